//! A reusable power-cut harness (feature `std`): runs a [`Workload`] on a volume over
//! [`NorFlashDevice`]`<`[`SimFlash`]`>` with a power cut at every flash operation in turn, and
//! checks after each cut that the remounted volume matches the workload's model.
//!
//! Owns: [`run`] (the driver), [`Config`], [`Report`], the [`Workload`] trait, and the three
//! standard workloads in [`workloads`] (random block transactions, online module addition, object
//! put / delete / batch).
//!
//! How [`run`] proceeds:
//! 1. formats a blank flash of [`Config::capacity`] bytes and keeps the image as the base;
//! 2. **reference run**: mounts the base, runs the workload with no cut and then a checkpoint
//!    (so every dirty block's write-back home is among the operations), and counts the flash
//!    operations it makes (`N`, reads, programs and erases alike); the reference log it leaves
//!    (for example the handles the object workload was given) is handed to every later check, and
//!    is itself checked after a remount;
//! 3. for every `k` in `0..N` (every [`Config::stride`]-th): restores the base image, mounts,
//!    arms [`SimFlash::arm_power_cut`]`(k)` so the `k`-th operation of the workload is cut (a read
//!    fails, a program or an erase is torn), runs the workload until its first error, reboots,
//!    mounts (no cut), verifies the volume ([`Volume::verify`]) and asks the workload to check the
//!    volume against what it logged: what was acknowledged and what was in flight. The device
//!    is wrapped in [`Unflushed`](unflushed::Unflushed), which records the writes issued since
//!    the last completed flush: besides the state the medium was left in, up to
//!    [`Config::crash_states`] outcomes of those writes (any subset, in any order, one torn; all
//!    of them when there are few) are imposed on the crash image, each remounted and checked
//!    the same way;
//! 4. **second cut**: for every [`Config::second_cut_every`]-th first cut whose recovery replayed a
//!    committed transaction, and every as many-th of the others, it counts the operations of that
//!    recovering mount (`M`) and, for every `j` in `0..M`, restores the crash image, cuts the
//!    mount at its `j`-th operation, reboots, mounts again and runs the same checks (over up to
//!    [`Config::second_crash_states`] outcomes of the recovery's unflushed writes).
//!
//! Every departure is recorded as a violation with the cut point, the kind of operation cut and
//! the tear mode, so a failure is reproducible from the report alone (the damage a cut does
//! depends only on [`Config::seed`], the cut point and the operation number).
//!
//! NOR flash has no volatile write cache ([`NorFlashDevice`]'s flush is a no-op), so what a cut
//! leaves physically is the flash content: finished operations are durable, the cut one is torn.
//! The unflushed-write outcomes go further on purpose: they show that the engine orders every
//! write it depends on with a flush, as it must on a file or a disk with a write cache.
//!
//! Checks every workload makes (see [`workloads`]): `verify`, the acknowledged state, the
//! in-flight operation wholly present (and readable) or wholly absent, and the free-space and
//! object counters equal to the reference run's at that point ([`Snapshot`]).

use std::format;
use std::string::String;
use std::vec;
use std::vec::Vec;

use vde_nostd::{Buffers, Error, FormatOptions};

// Compiled twice, as the engine is: over the blocking volume (`vde_embedded::harness`) and over
// the async one (`vde_embedded::asynch::harness`, the rig's blocking device under
// `FromBlocking`). The media, the rigs and the checks are the same code in both.
if_blocking! {
    use vde_bisync::strip_async as bisync;
    use vde_nostd::{BlockDevice, Volume};
}
if_async! {
    use vde_bisync::keep_async as bisync;
    use vde_nostd::asynch::{BlockDevice, Volume};

    /// Runs an async harness call to completion on this thread (a loop polling with a no-op
    /// waker: the async harness's devices complete at once).
    pub fn block_on<F: core::future::Future>(f: F) -> F::Output {
        let mut f = core::pin::pin!(f);
        let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
        loop {
            if let core::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }
}

#[cfg(doc)]
use crate::nor::NorFlashDevice;
use crate::sim::{FlashStats, OpKind, SimConfig, SimFlash, TearMode};

pub mod rig;
pub mod unflushed;
pub mod workloads;

pub use workloads::{
    AddModules, InFlight, ModulesLog, Names, NamesLog, Objects, ObjectsLog, RandomTransactions,
    Snapshot, TxLog,
};

/// Transaction capacity (block updates) of the volumes the harness mounts.
pub const TX_BLOCKS: usize = 16;

/// A scripted workload with a model of what must survive a power cut.
///
/// `run` must be deterministic: given the same volume content it makes the same calls, so that
/// every cut run follows the reference run up to its cut. It logs, as it goes, what was
/// acknowledged and what is in flight; `check` compares a remounted volume with that log.
#[bisync]
#[allow(async_fn_in_trait)]
pub trait Workload {
    /// What the workload records while it runs (acknowledged and in-flight operations).
    type Log: Default;

    /// Name for reports.
    fn name(&self) -> String;

    /// Runs the workload, stopping at the first error, and logs into `log`.
    async fn run<D: BlockDevice, const K: usize>(
        &self,
        vol: &mut Volume<'_, D, K>,
        log: &mut Self::Log,
    ) -> Result<(), Error<D::Error>>;

    /// Checks a volume remounted after a cut against `log` (what the cut run acknowledged and had
    /// in flight). `reference` is the log of the uncut run: it tells what the in-flight operation
    /// would have produced (e.g. its handles). May change the volume (to show it is usable).
    async fn check<D: BlockDevice, const K: usize>(
        &self,
        vol: &mut Volume<'_, D, K>,
        log: &Self::Log,
        reference: &Self::Log,
    ) -> Result<(), String>;
}

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
    fn modes(&self, k: u64) -> &'static [TearMode] {
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
    /// Weak bits on simulated NOR ([`SimConfig::weak_bits`]): bytes a cut program left partly
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

    fn violation(&mut self, keep: usize, what: String) {
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
struct Mem {
    bs: usize,
    small_log_page: bool,
    scratch: Vec<u8>,
    txn: Vec<u8>,
    index: Vec<u8>,
}

impl Mem {
    fn new(bs: usize, entries: usize, small_log_page: bool, cache_blocks: usize) -> Mem {
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
    fn bufs<const K: usize>(&mut self, partial: bool) -> Buffers<'_, K> {
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

fn name(kind: Option<OpKind>) -> &'static str {
    match kind {
        Some(OpKind::Read) => "read",
        Some(OpKind::Program) => "program",
        Some(OpKind::Erase) => "erase",
        None => "no op",
    }
}

/// Judges a workload (or mount) that ran with a cut armed, from its error (if it failed) and
/// whether the power was cut.
fn judge(failed: Option<String>, lost: bool) -> Result<(), String> {
    match (failed, lost) {
        (Some(_), true) => Ok(()),
        (None, false) => Err(String::from(
            "the cut point was not reached (nondeterminism?)",
        )),
        (None, true) => Err(String::from("acknowledged success after the power was cut")),
        (Some(e), false) => Err(format!("failed without a power cut: {e}")),
    }
}

/// Runs `workload` under the harness on a simulated flash of geometry `R`/`W`/`E` (read, write
/// and erase sizes) of [`Config::capacity`] bytes, through [`NorFlashDevice`] (the
/// [`NorRig`](rig::NorRig) under [`run_rig`](rig::run_rig)). Returns an error only if the
/// harness cannot set up (bad geometry, the base image cannot be formatted, or the uncut workload
/// fails or fails its own check); every problem found under power cuts is a violation in the
/// [`Report`].
#[bisync]
pub async fn run<const R: usize, const W: usize, const E: usize, L: Workload>(
    cfg: &Config,
    workload: &L,
) -> Result<Report, String> {
    with_sim_flash::<R, W, E, _>(cfg, async |flash| {
        let mut rig = rig::NorRig::new(flash, cfg.block_size);
        rig::run_rig(cfg, &mut rig, workload).await
    })
    .await
}

/// Calls `f` with a blank simulated flash of geometry `R`/`W`/`E` and [`Config::capacity`]
/// bytes, seeded and with weak bits as `cfg` says (its storage lives for the call).
#[bisync]
pub(crate) async fn with_sim_flash<const R: usize, const W: usize, const E: usize, T>(
    cfg: &Config,
    f: impl AsyncFnOnce(SimFlash<'_, R, W, E>) -> Result<T, String>,
) -> Result<T, String> {
    let sectors = cfg.capacity.div_ceil(E.max(1)).max(1);
    let mut image = vec![0xFFu8; cfg.capacity];
    let mut wear = vec![0u32; sectors];
    let sim = SimConfig {
        weak_bits: cfg.weak_bits,
        ..SimConfig::new(cfg.seed)
    };
    let flash =
        SimFlash::<R, W, E>::new(&mut image, &mut wear, sim).map_err(|e| format!("flash: {e}"))?;
    f(flash).await
}

if_blocking! {
    #[cfg(test)]
    mod tests;
}
