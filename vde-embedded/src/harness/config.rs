//! What the harness's runs share, in both its builds (the blocking engine's and the async
//! one's): the settings ([`Config`], [`TearPlan`]), the [`Report`], the volume's memory, and the
//! verdict on a cut run. Defined once; `vde_embedded::asynch::harness` re-exports it.

use std::format;
use std::string::String;
use std::vec;
use std::vec::Vec;

use vde_nostd::{Buffers, FormatOptions};

use crate::sim::{FlashStats, OpKind, TearMode};

/// Transaction capacity (block updates) of the volumes the harness mounts.
pub const TX_BLOCKS: usize = 16;

/// Which tear modes the cut runs use for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TearPlan {
    /// One mode for every cut.
    Only(TearMode),
    /// [`TearMode::Prefix`] at even cut points, [`TearMode::Scattered`] at odd ones.
    Alternate,
    /// Every cut point twice, once per mode.
    Both,
}

impl TearPlan {
    pub(crate) fn modes(&self, k: u64) -> &'static [TearMode] {
        match self {
            TearPlan::Only(TearMode::Prefix) => &[TearMode::Prefix],
            TearPlan::Only(TearMode::Scattered) => &[TearMode::Scattered],
            TearPlan::Alternate if k.is_multiple_of(2) => &[TearMode::Prefix],
            TearPlan::Alternate => &[TearMode::Scattered],
            TearPlan::Both => &[TearMode::Prefix, TearMode::Scattered],
        }
    }
}

/// Harness settings.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Flash bytes simulated (a whole number of erase sectors and of blocks).
    pub capacity: usize,
    /// vde block size (a multiple of the erase size).
    pub block_size: usize,
    /// How the base image is formatted.
    pub format: FormatOptions,
    /// Shared blocks the RAM slot index can hold.
    pub index_entries: usize,
    /// Seed of the fault-injection randomness.
    pub seed: u64,
    /// Tear modes.
    pub tear: TearPlan,
    /// Cut at every `stride`-th operation (1 = every operation).
    pub stride: u64,
    /// Sweep a second cut over every operation of the recovering mount for every this-many-th
    /// first cut whose recovery replayed a committed transaction, and every this-many-th of the
    /// others (0 = never).
    pub second_cut_every: u64,
    /// Violation descriptions kept in the report (all are counted).
    pub keep_violations: usize,
    /// Outcomes of the unflushed writes checked per first cut, the medium's own state included
    /// (1 = only the medium's state).
    pub crash_states: usize,
    /// The same for every second cut.
    pub second_crash_states: usize,
    /// Weak bits on simulated NOR ([`SimConfig::weak_bits`](crate::sim::SimConfig::weak_bits)): bytes a cut program left partly
    /// programmed read differently on every read.
    pub weak_bits: bool,
    /// Mount with the smallest scratch the device allows (one block and a
    /// [`vde_nostd::wal::MIN_LOG_PAGE`] log read buffer on a device that reads part of a
    /// block), as a small firmware would; otherwise two blocks (the log reads whole blocks).
    /// Small log reads multiply the read operations, each a cut point: set it on small
    /// workloads.
    pub small_log_page: bool,
    /// Committed blocks the volume caches in RAM ([`Buffers::scratch_with_cache`]) when not
    /// mounted with `small_log_page`: a stale cached copy shows as a wrong read after a cut.
    pub cache_blocks: usize,
}

impl Config {
    /// Every operation, both tear modes alternating, a second-cut sweep for every 8th recovery
    /// of each kind, the default format (objects module, default WAL size).
    pub fn new(capacity: usize, block_size: usize) -> Config {
        Config {
            capacity,
            block_size,
            format: FormatOptions {
                volume_id: *b"vde power-cuts!!",
                now: 1,
                ..FormatOptions::default()
            },
            index_entries: 128,
            seed: 0x5EED,
            tear: TearPlan::Alternate,
            stride: 1,
            second_cut_every: 8,
            keep_violations: 40,
            crash_states: 6,
            second_crash_states: 2,
            weak_bits: false,
            small_log_page: false,
            cache_blocks: 3,
        }
    }
}

/// What a harness run found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Workload name.
    pub workload: String,
    /// Flash operations of the uncut workload (`N`).
    pub ops: u64,
    /// Flash counters of the uncut workload.
    pub reference: FlashStats,
    /// Cut runs (first cuts).
    pub points: u64,
    /// First cuts that hit a read.
    pub cut_reads: u64,
    /// First cuts that hit (tore) a program.
    pub cut_programs: u64,
    /// First cuts that hit (tore) an erase.
    pub cut_erases: u64,
    /// First cuts whose recovery replayed at least one committed transaction.
    pub replaying_recoveries: u64,
    /// Recovering mounts swept with a second cut.
    pub second_sweeps: u64,
    /// Second cuts (one per operation of each swept mount).
    pub second_points: u64,
    /// Crash states checked: every outcome of the unflushed writes tried after a first or a
    /// second cut (the medium's own state included).
    pub states: u64,
    /// Violations found.
    pub violations: u64,
    /// Reads (over all runs after the reference run) that returned a weak byte differently
    /// from what the medium holds ([`Config::weak_bits`]).
    pub weak_reads: u64,
    /// The first [`Config::keep_violations`] violations, described.
    pub details: Vec<String>,
}

impl Report {
    /// First and second cut points together.
    pub fn total_points(&self) -> u64 {
        self.points + self.second_points
    }

    pub(crate) fn violation(&mut self, keep: usize, what: String) {
        self.violations += 1;
        if self.details.len() < keep {
            self.details.push(what);
        }
    }
}

impl core::fmt::Display for Report {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        writeln!(
            f,
            "{}: power-cut points: {}, crash states: {}, violations: {}",
            self.workload,
            self.total_points(),
            self.states,
            self.violations
        )?;
        write!(
            f,
            "  workload: {} flash ops ({} reads, {} programs, {} erases); first cuts: {} \
             ({} reads, {} programs, {} erases cut), {} with a replaying recovery; \
             second cuts during recovery: {} over {} mounts",
            self.ops,
            self.reference.reads,
            self.reference.programs,
            self.reference.erase_calls,
            self.points,
            self.cut_reads,
            self.cut_programs,
            self.cut_erases,
            self.replaying_recoveries,
            self.second_points,
            self.second_sweeps
        )?;
        if self.weak_reads > 0 {
            write!(f, "; {} reads saw weak bits", self.weak_reads)?;
        }
        for d in &self.details {
            write!(f, "\n  violation: {d}")?;
        }
        Ok(())
    }
}

/// Owned memory for one volume's buffers.
pub(crate) struct Mem {
    bs: usize,
    small_log_page: bool,
    scratch: Vec<u8>,
    txn: Vec<u8>,
    index: Vec<u8>,
}

impl Mem {
    pub(crate) fn new(bs: usize, entries: usize, small_log_page: bool, cache_blocks: usize) -> Mem {
        Mem {
            bs,
            small_log_page,
            scratch: vec![0; Buffers::scratch_with_cache(bs, cache_blocks)],
            txn: vec![0; Buffers::txn_for_blocks(bs, TX_BLOCKS)],
            index: vec![0; entries * vde_nostd::format::slot_index::entry_size(bs)],
        }
    }

    /// The buffers; with `small_log_page` (and a device that reads part of a block), the
    /// smallest scratch the device allows (no cache).
    pub(crate) fn bufs<const K: usize>(&mut self, partial: bool) -> Buffers<'_, K> {
        let n = if partial && self.small_log_page {
            Buffers::scratch_min(self.bs, true).min(self.scratch.len())
        } else {
            self.scratch.len()
        };
        let (scratch, _) = self.scratch.split_at_mut(n);
        Buffers {
            scratch,
            txn: &mut self.txn,
            index: &mut self.index,
        }
    }
}

pub(crate) fn name(kind: Option<OpKind>) -> &'static str {
    match kind {
        Some(OpKind::Read) => "read",
        Some(OpKind::Program) => "program",
        Some(OpKind::Erase) => "erase",
        None => "no op",
    }
}

/// Judges a workload (or mount) that ran with a cut armed, from its error (if it failed) and
/// whether the power was cut.
pub(crate) fn judge(failed: Option<String>, lost: bool) -> Result<(), String> {
    match (failed, lost) {
        (Some(_), true) => Ok(()),
        (None, false) => Err(String::from(
            "the cut point was not reached (nondeterminism?)",
        )),
        (None, true) => Err(String::from("acknowledged success after the power was cut")),
        (Some(e), false) => Err(format!("failed without a power cut: {e}")),
    }
}

