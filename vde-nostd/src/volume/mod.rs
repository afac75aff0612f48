//! A mounted volume: the [`Volume`] type, its state and the open transaction's staging (views of
//! blocks, commit). The volume owns the device and the caller's buffers; every change to metadata
//! goes through one WAL transaction. What it does is cut by concept:
//!
//! | module | holds |
//! |---|---|
//! | [`buffers`] | the caller's memory ([`Buffers`]) and its minimum sizes |
//! | [`open`] | format, mount, `mount_or_format`, recovery |
//! | [`superblock_choice`] | picking the newest valid superblock copy, repairing the other |
//! | [`allocation`] | the bitmap as a transaction leaves it, first fit, marking extents |
//! | [`region_addition`] | online region (module) addition |
//! | [`checks`] | region, metadata-allocation and whole-volume checks |
//! | [`transaction`] | [`Transaction`], the block-level transaction API |
//!
//! Invariants while mounted: `sb` is the superblock as last committed; `free_blocks` equals the
//! number of zero bits in the committed bitmap; the transaction buffer is empty between
//! operations (a dropped [`Transaction`] is rolled back without I/O).

use crate::bitmap;
use_mode!(bisync);
use_mode!(device::{self, BlockDevice, Held});
use crate::error::{Error, Structure};
use crate::format::bitmap_block;
use crate::format::layout::{Layout, SB_MIRROR, SB_PRIMARY};
use crate::format::regions::{self, RegionEntry};
use crate::format::superblock::{Superblock, FLAG_FORMATTING};
use crate::format::DecodeError;
use crate::modules::{self, Module, ModuleSet};
#[cfg(feature = "objects")]
use_mode!(objects::ObjState);
#[cfg(feature = "summaries")]
use_mode!(scanner::Summary);
use_mode!(scanner::{self, BitmapSource});
use crate::tx_buffer::TxBuf;
use crate::types::{div_rem, BlockNo, Extent, Seq};
use crate::verifier;
use_mode!(wal::{block_of, Durability, RecoveryReport, Wal, WalStats});

pub mod allocation;
if_blocking! {
    pub mod buffers;
}
if_async! {
    pub use crate::volume::buffers;
}
pub mod checks;
pub mod open;
pub mod region_addition;
pub mod superblock_choice;
pub mod transaction;

pub use buffers::Buffers;
pub use open::FormatOptions;
pub use region_addition::ModulePlan;
pub use transaction::Transaction;

use buffers::check_buffers;
use superblock_choice::{pick_superblock, repair_superblock_copy};

// Shared by the blocking and async builds: defined once, in the blocking one.
if_blocking! {
    /// Usage figures.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[cfg_attr(feature = "defmt", derive(defmt::Format))]
    pub struct Usage {
        /// Blocks on the volume.
        pub total_blocks: u64,
        /// Blocks taken by fixed metadata (superblocks, WAL, bitmap, directory, pointer table).
        pub metadata_blocks: u64,
        /// Free blocks.
        pub free_blocks: u64,
    }
}
if_async! {
    pub use crate::volume::{Usage};
}

/// A mounted volume over device `D` with transactions of up to `K` block updates (the
/// capacity of the [`Buffers`] it was given; [`crate::memory::DEFAULT_TX_BLOCKS`] where a type
/// names none).
///
/// Blocking ([`crate::Volume`]) and async ([`crate::asynch::Volume`]) are the same code; the
/// async one's operations are `async fn`s over an async device. An async operation may be
/// dropped before it finishes (a timeout, a `select`): the volume is then as a power cut at that
/// device call would leave it, and its next operation first recovers it in place from the
/// device, as a mount would; a [`Transaction`] or a batch open across that recovery
/// fails with [`Error::Interrupted`] instead of committing part of itself.
pub struct Volume<'b, D: BlockDevice, const K: usize = { crate::memory::DEFAULT_TX_BLOCKS }> {
    pub(crate) dev: Held<D>,
    pub(crate) layout: Layout,
    pub(crate) sb: Superblock,
    pub(crate) wal: Wal<'b>,
    pub(crate) tx: TxBuf<'b, K>,
    pub(crate) scratch: &'b mut [u8],
    pub(crate) free_blocks: u64,
    pub(crate) tx_free_delta: i64,
    #[cfg(feature = "objects")]
    pub(crate) index: &'b mut [u8],
    #[cfg(feature = "objects")]
    pub(crate) objects: Option<ObjState>,
    /// The `names` module's region, when present.
    #[cfg(feature = "names")]
    pub(crate) names: Option<Extent>,
    #[cfg(feature = "summaries")]
    summaries: Option<&'b mut [Summary]>,
    report: RecoveryReport,
    /// The byte ranges of the loaded view ([`Volume::view`]) that were changed.
    spans: heapless::Vec<(usize, usize), MAX_SPANS>,
    /// Extents the open transaction freed (or `None`: more than fit).
    pub(crate) tx_freed: Option<heapless::Vec<Extent, 2>>,
    /// The open transaction allocated a block it had freed (or may have: `tx_freed` overflowed),
    /// so its frees are not discarded.
    tx_reallocated: bool,
    /// Slot-index entries the open transaction changed (or `None`: more than fit).
    #[cfg(feature = "objects")]
    pub(crate) idx_touched: Option<heapless::Vec<usize, 12>>,
    /// Whether the open transaction set the object counters outright
    /// ([`Transaction::set_object_counters`]): the object state is reloaded after it.
    #[cfg(feature = "objects")]
    tx_sets_counters: bool,
}

/// Changed ranges a view remembers; past that they merge into one.
const MAX_SPANS: usize = 16;

#[bisync]
impl<'b, D: BlockDevice, const K: usize> Volume<'b, D, K> {
    /// Checkpoints and returns the device.
    pub async fn unmount(mut self) -> Result<D, Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.checkpoint().await?;
        Ok(device::release(self.dev))
    }

    /// Returns the device without a checkpoint (as a power cut would leave it, less the cut).
    pub fn into_device(self) -> D {
        device::release(self.dev)
    }

    /// Makes every committed transaction durable in place and empties the log.
    pub async fn checkpoint(&mut self) -> Result<(), Error<D::Error>> {
        if_async! { self.settle().await?; }
        let Volume {
            wal, dev, scratch, ..
        } = self;
        wal.checkpoint(dev, scratch).await
    }

    /// Makes every commit so far durable: one flush if any is outstanding. Only needed in
    /// [`Durability::Deferred`] mode; in the default mode every commit is durable on return.
    pub async fn sync(&mut self) -> Result<(), Error<D::Error>> {
        if_async! { self.settle().await?; }
        let Volume { wal, dev, .. } = self;
        wal.sync(dev).await
    }

    /// Sets when commits become durable: on return (the default), or at the next
    /// [`Volume::sync`] or checkpoint (group commit; a power cut keeps a prefix of the commits).
    pub fn set_durability(&mut self, d: Durability) {
        self.wal.set_durability(d);
    }

    /// When commits become durable.
    pub fn durability(&self) -> Durability {
        self.wal.durability()
    }

    /// The device, for reads outside the engine (tests, tools).
    pub fn device(&mut self) -> &mut D {
        device::held(&mut self.dev)
    }

    /// The layout of the fixed structures.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The superblock as last committed.
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// The modules present.
    pub fn modules(&self) -> ModuleSet {
        ModuleSet::from_bits_retain(self.sb.manifest)
    }

    /// What recovery did at mount.
    pub fn recovery_report(&self) -> RecoveryReport {
        self.report
    }

    /// WAL cost counters and position.
    pub fn wal(&self) -> &Wal<'b> {
        &self.wal
    }

    /// WAL cost counters.
    pub fn wal_stats(&self) -> WalStats {
        self.wal.stats()
    }

    /// Block usage.
    pub fn usage(&self) -> Usage {
        Usage {
            total_blocks: self.layout.block_count,
            metadata_blocks: self.layout.data_start,
            free_blocks: self.free_blocks,
        }
    }

    /// Block size in bytes.
    pub fn block_size(&self) -> usize {
        self.layout.bs()
    }

    /// How many whole-block writes one transaction can hold (the `K` blocks a transaction may
    /// change, bounded by the `txn` memory: one block and one range each).
    pub fn tx_capacity(&self) -> usize {
        self.tx.whole_blocks()
    }

    /// Reads block `b` as committed.
    pub async fn read_block(&mut self, b: BlockNo, buf: &mut [u8]) -> Result<(), Error<D::Error>> {
        if_async! { self.settle().await?; }
        if b.0 >= self.layout.block_count || buf.len() != self.layout.bs() {
            return Err(Error::OutOfRange);
        }
        let Volume { wal, dev, .. } = self;
        wal.read(dev, b, buf).await
    }

    /// Starts a transaction. Dropping it without commit rolls it back (no I/O).
    pub fn begin(&mut self) -> Transaction<'_, 'b, D, K> {
        self.abort_tx();
        let generation = device::generation(&self.dev);
        Transaction {
            vol: self,
            generation,
        }
    }

    pub(crate) fn abort_tx(&mut self) {
        self.clear_tx(false);
    }

    fn clear_tx(&mut self, committed: bool) {
        #[cfg(feature = "summaries")]
        if !committed {
            if let Some(sums) = self.summaries.as_deref_mut() {
                // Staged bitmap blocks had their summaries updated; they are void now.
                for b in self.tx.blocks() {
                    if b.0 >= self.layout.bitmap_start && b.0 < self.layout.regdir {
                        let i = (b.0 - self.layout.bitmap_start) as usize;
                        if let Some(s) = sums.get_mut(i) {
                            *s = Summary::UNKNOWN;
                        }
                    }
                }
            }
        }
        self.tx.clear();
        self.tx_free_delta = 0;
        self.tx_freed = Some(heapless::Vec::new());
        self.tx_reallocated = false;
        #[cfg(feature = "objects")]
        {
            self.idx_touched = Some(heapless::Vec::new());
        }
        #[cfg(feature = "objects")]
        if self.tx_sets_counters {
            self.tx_sets_counters = false;
            // The object code reloads its state (and the counters) before its next use.
            if let Some(o) = self.objects.as_mut() {
                o.stale = true;
            }
        }
    }

    /// Whether the open transaction may stage block `b`: a block it already holds always, a
    /// new one only while the transaction's records still fit the log
    /// ([`Error::TxTooLarge`] otherwise; nothing is staged).
    pub(crate) fn log_room_for(&self, b: BlockNo) -> Result<(), Error<D::Error>> {
        if self.tx.contains(b) || self.wal.tx_fits(&self.tx, 1) {
            Ok(())
        } else {
            Err(Error::TxTooLarge)
        }
    }

    /// Loads block `b` as the open transaction leaves it into the scratch block (zeros if
    /// `fresh`, which also stages it to start from zeros) and returns it: change it, say which
    /// bytes changed ([`Self::touched`]), then [`Self::stage_view`] stages them (or, for a
    /// block written whole from zeros, [`Self::stage_new_view`]). Nothing else may use the
    /// scratch in between.
    pub(crate) async fn view(
        &mut self,
        b: BlockNo,
        fresh: bool,
    ) -> Result<&mut [u8], Error<D::Error>> {
        if !self.wal.target_ok(b) {
            return Err(Error::OutOfRange);
        }
        self.log_room_for(b)?;
        if fresh {
            self.tx.stage::<D::Error>(b, true)?;
        }
        self.spans.clear();
        self.load_scratch(b).await
    }

    /// Notes that bytes `off..off + len` of the view changed (past [`MAX_SPANS`] ranges they
    /// merge into one that covers them all: more bytes staged, never fewer).
    pub(crate) fn touched(&mut self, off: usize, len: usize) {
        if len == 0 {
            return;
        }
        let end = off.saturating_add(len);
        if self.spans.push((off, end)).is_err() {
            let lo = self.spans.iter().map(|s| s.0).min().unwrap_or(off).min(off);
            let hi = self.spans.iter().map(|s| s.1).max().unwrap_or(end).max(end);
            self.spans.clear();
            let _ = self.spans.push((lo, hi));
        }
    }

    /// Stages block `b` with the bytes of the view ([`Self::view`]) noted as changed.
    pub(crate) fn stage_view(&mut self, b: BlockNo) -> Result<(), Error<D::Error>> {
        let bs = self.layout.bs();
        let Volume {
            tx, scratch, spans, ..
        } = self;
        let cur = block_of(scratch, bs)?;
        tx.stage::<D::Error>(b, false)?;
        for &(s, e) in spans.iter() {
            tx.write::<D::Error>(b, s, cur.get(s..e).ok_or(Error::OutOfRange)?)?;
        }
        spans.clear();
        Ok(())
    }

    /// Stages block `b`, loaded fresh and written whole, as the nonzero bytes of the view.
    pub(crate) fn stage_new_view(&mut self, b: BlockNo) -> Result<(), Error<D::Error>> {
        let bs = self.layout.bs();
        let Volume { tx, scratch, .. } = self;
        let cur = block_of(scratch, bs)?;
        tx.stage::<D::Error>(b, true)?;
        let mut err = None;
        crate::wal::diff_ranges(cur, None, &mut |s, e| {
            if err.is_none() {
                if let Err(x) = tx.write::<D::Error>(b, s, cur.get(s..e).unwrap_or(&[])) {
                    err = Some(x);
                }
            }
        });
        err.map_or(Ok(()), Err)
    }

    /// Reads bytes `at..at + out.len()` of block `b` through the open transaction without
    /// reading the whole block, if [`Wal::read_part`] can (a block in the log is rebuilt over
    /// the range; a home block needs a device that reads part of a block); returns `false`,
    /// having read nothing, otherwise (read the whole block with [`Volume::read_through`]).
    pub(crate) async fn read_through_part(
        &mut self,
        b: BlockNo,
        at: usize,
        out: &mut [u8],
    ) -> Result<bool, Error<D::Error>> {
        let Volume {
            tx,
            wal,
            dev,
            layout,
            ..
        } = self;
        read_part_staged(tx, wal, dev, layout.block_count, (b, at), out).await
    }

    /// Reads block `b` through the open transaction.
    pub(crate) async fn read_through(
        &mut self,
        b: BlockNo,
        buf: &mut [u8],
    ) -> Result<(), Error<D::Error>> {
        if b.0 >= self.layout.block_count || buf.len() != self.layout.bs() {
            return Err(Error::OutOfRange);
        }
        let Volume { tx, wal, dev, .. } = self;
        read_staged(tx, wal, dev, b, buf).await
    }

    /// Commits the open transaction through the WAL.
    pub(crate) async fn commit_tx(&mut self) -> Result<Seq, Error<D::Error>> {
        // The counters the transaction leaves: as the object code keeps them (unless its state
        // is stale and they were not set outright), or unchanged.
        #[cfg(feature = "objects")]
        let counters = {
            let set = self.tx_sets_counters;
            self.objects
                .filter(|o| !o.stale || set)
                .map_or(self.wal.counters(), |o| o.counters)
        };
        #[cfg(not(feature = "objects"))]
        let counters = self.wal.counters();
        let Volume {
            wal,
            dev,
            tx,
            scratch,
            ..
        } = self;
        let before = wal.last_seq();
        let r = wal.commit(dev, tx, scratch, &counters).await;
        // A commit may fail after its transaction is durable (a write-back that follows it):
        // the free count follows the log, not the result.
        let committed = self.wal.last_seq() != before;
        if committed {
            self.free_blocks = self.free_blocks.saturating_add_signed(self.tx_free_delta);
        }
        // Blocks a durable commit freed are discarded (a translation layer stops copying
        // them). Only after a durable commit: a deferred one may still be lost, and by the
        // next sync a later transaction may have taken the blocks again.
        if r.is_ok()
            && committed
            && !self.tx_reallocated
            && self.wal.durability() == Durability::Durable
        {
            if let Some(freed) = self.tx_freed.as_ref() {
                for e in freed {
                    // A hint: the commit stands whatever the device says.
                    let _ = self.dev.discard(e.start, e.len).await;
                }
            }
        }
        self.clear_tx(committed);
        r
    }

    /// Reads block `b` through the open transaction into the scratch block and returns it.
    pub(crate) async fn load_scratch(&mut self, b: BlockNo) -> Result<&mut [u8], Error<D::Error>> {
        if b.0 >= self.layout.block_count {
            return Err(Error::OutOfRange);
        }
        let bs = self.layout.bs();
        let Volume {
            tx,
            wal,
            dev,
            scratch,
            ..
        } = self;
        let buf = block_of(scratch, bs)?;
        read_staged(tx, wal, dev, b, buf).await?;
        Ok(buf)
    }

    /// The scratch block (what [`Self::view`] loaded last, until something else reads).
    pub(crate) fn scratch_block(&mut self) -> Result<&mut [u8], Error<D::Error>> {
        let bs = self.layout.bs();
        block_of(self.scratch, bs)
    }
}

/// Block `b` as the open transaction leaves it, into `buf` (one block): its committed content
/// (zeros if staged fresh) with the staged ranges over it.
#[bisync]
async fn read_staged<D: BlockDevice, const K: usize>(
    tx: &TxBuf<'_, K>,
    wal: &mut Wal<'_>,
    dev: &mut D,
    b: BlockNo,
    buf: &mut [u8],
) -> Result<(), Error<D::Error>> {
    if tx.is_fresh(b) {
        buf.fill(0);
    } else {
        wal.read(dev, b, buf).await?;
    }
    tx.overlay(b, 0, buf);
    Ok(())
}

/// Bytes `at..at + out.len()` of block `b` (below `block_count`) as the open transaction
/// leaves them, into `out`, with one partial read; `false` (and `out` unspecified) where the log
/// cannot read part of the block. The volume's fields are passed apart so that a caller can read
/// into its own scratch: no buffer is ever taken out of the volume across an `.await` (a
/// dropped operation would lose it).
#[bisync]
pub(crate) async fn read_part_staged<D: BlockDevice, const K: usize>(
    tx: &TxBuf<'_, K>,
    wal: &mut Wal<'_>,
    dev: &mut D,
    block_count: u64,
    (b, at): (BlockNo, usize),
    out: &mut [u8],
) -> Result<bool, Error<D::Error>> {
    if b.0 >= block_count {
        return Err(Error::OutOfRange);
    }
    if tx.is_fresh(b) {
        out.fill(0);
    } else if !wal.read_part(dev, b, at, out).await? {
        return Ok(false);
    }
    tx.overlay(b, at, out);
    Ok(true)
}

if_blocking! {
    #[cfg(test)]
    mod tests;
}
