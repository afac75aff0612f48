//! The object API on a mounted volume: `put` / `get` / `delete`, batches, and statistics.
//!
//! Objects whose payload plus the 8-byte slot header fits in half a block are packed into slots
//! of shared blocks ([`crate::subblock`]); larger ones get a run of whole blocks found by the
//! scanner, with a 48-byte header in the first block, and the extent map (the last blocks of the
//! `objects` region, one bit per block) marks that first block: an extent is reachable only
//! through its mark, never found by its header. The in-RAM slot index (a caller buffer of dense
//! entries, mirrored on disk in the same region) says which blocks are shared and which units of
//! each are taken.
//!
//! Every put and delete is one WAL transaction: the shared block, the index blocks and the
//! bitmap change together, and the object counters (kept in RAM here, handed to the log at
//! commit, which records their change in the commit marker and keeps them whole in the WAL
//! header: no fixed block is written for them). Extent payload is written unlogged ([`crate::wal::Wal::write_unlogged`])
//! to blocks that are free in the committed state; the log flushes it before the transaction's
//! commit record, and if the transaction never commits those blocks stay free. The log also
//! keeps such a write off any block a logged but not yet checkpointed record names.
//!
//! On a device that writes home in place, a delete leaves its slot's bytes and marks its units
//! **dead** (a second bitmap per index entry), so the shared block is not rewritten; a put takes
//! only units that are neither live nor dead, and a **compaction** ([`Volume::gc`], or a put that
//! finds no free unit) zeroes one block's dead units in one transaction, leaving its live slots
//! (and their handles) in place.
//!
//! Invariant: between operations the RAM index equals the committed on-disk index; after any
//! failed or rolled-back operation it is marked stale and reloaded before the next one. A unit
//! is never both live and dead; free units are zero in the committed content.

use_mode!(bisync);
use_mode!(device::{self, BlockDevice});
use crate::error::{Error, Structure};
use crate::format::bitmap_block;
use crate::format::object::{slot_check, ExtentHeader, SlotHeader, EXTENT_HDR, SLOT_HDR};
use crate::format::slot_index::{self, Counters};
use crate::format::DecodeError;
use crate::handle::{Handle, MAX_BLOCK};
use crate::modules;
use crate::subblock::{self, SlotBitmap, SlotBitmapRef, UNIT};
use crate::types::{BlockNo, Extent, Seq};
use crate::verifier::{self, Finding};
use_mode!(volume::{read_part_staged, Volume});

/// Bytes of the largest slot bitmap (a 64 KiB block: 1024 units).
const MAX_BITMAP: usize = crate::MAX_BLOCK_SIZE / UNIT / 8;

// Shared by the blocking and async builds: defined once, in the blocking one.
if_blocking! {
    /// Object statistics.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    #[cfg_attr(feature = "defmt", derive(defmt::Format))]
    pub struct ObjectStats {
        /// The object counters (as of the last commit).
        pub counters: Counters,
        /// Shared blocks in use.
        pub shared_blocks: u64,
        /// Free 64-byte units across shared blocks (neither live nor dead).
        pub free_units: u64,
        /// Dead 64-byte units across shared blocks: deleted slots whose bytes stay until their
        /// block is compacted ([`Volume::gc`]). Only on a device that writes home in place.
        pub dead_units: u64,
        /// Units per shared block.
        pub units_per_block: u64,
        /// Shared blocks the index can still take (RAM and region bound).
        pub index_room: u64,
    }

    /// One live object, as [`Volume::for_each_object`] reports it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[cfg_attr(feature = "defmt", derive(defmt::Format))]
    pub struct ObjectInfo {
        /// Its handle.
        pub handle: Handle,
        /// Payload bytes.
        pub len: u64,
        /// Packed in a shared block (else a run of whole blocks).
        pub packed: bool,
    }
}
if_async! {
    pub use crate::objects::{ObjectStats, ObjectInfo};
}

/// State of the objects module while mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(crate) struct ObjState {
    pub region: Extent,
    pub count: usize,
    pub counters: Counters,
    pub stale: bool,
    /// The entry [`Volume::find_entry`] found last (a guess, checked before use: entries move),
    /// so lookups of objects in the same shared block skip the scan. Two bytes: it fits in the
    /// struct's padding.
    pub hint: u16,
    /// Every entry before this one is full (no free unit), so a best-fit put starts here
    /// (lowered by every delete to the entry it frees in, 0 after a reload). Two bytes in the
    /// padding too; a count past `u16::MAX` is kept as `u16::MAX`, which is still true.
    pub open: u16,
    /// Shared blocks compacted since mount (by puts and [`Volume::gc`]; one in a transaction
    /// that was rolled back counts too).
    pub compactions: u64,
}

#[bisync]
impl<'b, D: BlockDevice, const K: usize> Volume<'b, D, K> {
    fn es(&self) -> usize {
        slot_index::entry_size(self.layout.bs())
    }

    fn index_cap(&self) -> usize {
        let ram = self.index.len() / self.es().max(1);
        let region = self.objects.map_or(0, |o| {
            slot_index::capacity(self.layout.bs(), self.index_blocks(o.region))
        });
        ram.min(usize::try_from(region).unwrap_or(usize::MAX))
    }

    /// Slot index blocks of the objects region `region` (the extent map takes the rest).
    fn index_blocks(&self, region: Extent) -> u64 {
        slot_index::index_blocks(self.layout.bs(), region.len, self.layout.block_count)
    }

    /// The extent map's first block and block count.
    fn extent_map(&self) -> Result<(BlockNo, u64), Error<D::Error>> {
        let o = self.obj()?;
        let m = slot_index::extent_map_blocks(self.layout.bs(), self.layout.block_count);
        Ok((BlockNo(o.region.start.0 + self.index_blocks(o.region)), m))
    }

    /// Reads extent map block `j` into the scratch block and checks its trailer.
    async fn load_map_block(&mut self, j: u64) -> Result<(), Error<D::Error>> {
        let (first, _) = self.extent_map()?;
        self.load_scratch(BlockNo(first.0 + j)).await?;
        let bs = self.layout.bs();
        let buf = self.scratch.get(..bs).unwrap_or(&[]);
        if !verifier::extent_map_block(buf, j, &mut verifier::First::default().sink()) {
            return Err(Error::Corrupt(Structure::Extent));
        }
        Ok(())
    }

    /// Whether block `b` starts an extent object (its extent map bit; as the open transaction
    /// leaves it).
    async fn starts_extent(&mut self, b: BlockNo) -> Result<bool, Error<D::Error>> {
        let at = slot_index::extent_bit(self.layout.bs(), b.0);
        self.load_map_block(at.map_block).await?;
        Ok(self
            .scratch
            .get(at.byte())
            .is_some_and(|x| x & at.mask() != 0))
    }

    /// Sets (`on`) or clears block `b`'s extent map bit in the open transaction; the bit must
    /// be in the other state.
    async fn set_extent_bit(&mut self, b: BlockNo, on: bool) -> Result<(), Error<D::Error>> {
        let (first, _) = self.extent_map()?;
        let at = slot_index::extent_bit(self.layout.bs(), b.0);
        self.set_bits(
            BlockNo(first.0 + at.map_block),
            slot_index::extent_map_tag(at.map_block),
            at.bit,
            1,
            on,
            Structure::Extent,
        )
        .await
    }

    /// Entry `i`'s shared block and slot bitmap (its live slots' units).
    fn entry(&self, i: usize) -> Option<(BlockNo, SlotBitmapRef<'_>)> {
        let es = self.es();
        let bm = subblock::bitmap_bytes(self.layout.bs());
        let e = self
            .index
            .get(i.checked_mul(es)?..(i + 1).checked_mul(es)?)?;
        let (b, bits) = e.split_at(8);
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some((
            BlockNo(u64::from_le_bytes(a)),
            SlotBitmapRef::new(bits.get(..bm)?, self.layout.bs())?,
        ))
    }

    /// Entry `i`'s dead bitmap: units of deleted slots whose bytes are still in the block.
    fn entry_dead(&self, i: usize) -> Option<SlotBitmapRef<'_>> {
        let es = self.es();
        let bm = subblock::bitmap_bytes(self.layout.bs());
        let e = self
            .index
            .get(i.checked_mul(es)?..(i + 1).checked_mul(es)?)?;
        SlotBitmapRef::new(e.get(8 + bm..)?, self.layout.bs())
    }

    /// Entry `i`'s taken units (live or dead: not free for a new slot), as bitmap bytes.
    fn entry_taken(&self, i: usize) -> Option<([u8; MAX_BITMAP], usize)> {
        let es = self.es();
        let bm = subblock::bitmap_bytes(self.layout.bs());
        let e = self
            .index
            .get(i.checked_mul(es)?..(i + 1).checked_mul(es)?)?;
        let mut out = [0u8; MAX_BITMAP];
        let (live, dead) = (e.get(8..8 + bm)?, e.get(8 + bm..8 + 2 * bm)?);
        for ((o, l), d) in out.iter_mut().zip(live).zip(dead) {
            *o = l | d;
        }
        Some((out, bm))
    }

    fn entry_bits_mut(&mut self, i: usize) -> Option<SlotBitmap<'_>> {
        self.entry_half_mut(i, false)
    }

    fn entry_dead_mut(&mut self, i: usize) -> Option<SlotBitmap<'_>> {
        self.entry_half_mut(i, true)
    }

    fn entry_half_mut(&mut self, i: usize, dead: bool) -> Option<SlotBitmap<'_>> {
        let es = self.es();
        let bs = self.layout.bs();
        let bm = subblock::bitmap_bytes(bs);
        let e = self
            .index
            .get_mut(i.checked_mul(es)?..(i + 1).checked_mul(es)?)?;
        let at = if dead { 8 + bm } else { 8 };
        SlotBitmap::new(e.get_mut(at..at + bm)?, bs)
    }

    /// The index entry of shared block `b`: the one found last if it is still `b`'s, else one
    /// pass over the entries' block numbers (the first 8 bytes of each).
    fn find_entry(&mut self, b: BlockNo) -> Option<usize> {
        let o = self.objects?;
        let es = self.es();
        let key = b.0.to_le_bytes();
        let hint = usize::from(o.hint);
        if hint < o.count && self.index.get(hint * es..hint * es + 8) == Some(&key[..]) {
            return Some(hint);
        }
        let found = self
            .index
            .get(..o.count.checked_mul(es)?)?
            .chunks_exact(es)
            .position(|e| e.get(..8) == Some(&key[..]))?;
        if let Some(o) = self.objects.as_mut() {
            o.hint = u16::try_from(found).unwrap_or(u16::MAX);
        }
        Some(found)
    }

    fn obj(&self) -> Result<ObjState, Error<D::Error>> {
        self.objects.ok_or(Error::ModuleMissing)
    }

    /// Loads the objects module's state if present (mount and after module addition).
    #[inline(never)]
    pub(crate) async fn load_objects(&mut self) -> Result<(), Error<D::Error>> {
        let Some(region) = self.module_region(0).await? else {
            self.objects = None;
            return Ok(());
        };
        self.objects = Some(ObjState {
            region,
            count: 0,
            counters: Counters::default(),
            stale: true,
            hint: 0,
            open: 0,
            compactions: 0,
        });
        self.reload_index().await
    }

    /// Reads the on-disk slot index into RAM and validates it: each block and entry, and
    /// where each shared block lies, by the rules of [`verifier`] (the first broken one is the
    /// error), then the object counters against it ([`Self::check_counters`]).
    pub(crate) async fn reload_index(&mut self) -> Result<(), Error<D::Error>> {
        self.abort_tx();
        let mut o = self.obj()?;
        let bs = self.layout.bs();
        let es = self.es();
        // Every finding of the slot index rules is the slot index's (`Finding::structure`).
        let si = || Error::Corrupt(Structure::SlotIndex);
        let mut first = verifier::First::default();
        let mut loaded = 0usize;
        let mut count = 0usize;
        let mut blk_i = 0u64;
        let index_blocks = self.index_blocks(o.region);
        let map_blocks = slot_index::extent_map_blocks(bs, self.layout.block_count);
        while blk_i == 0 || loaded < count {
            if blk_i >= index_blocks {
                return Err(si());
            }
            let buf = self
                .scratch
                .get_mut(..bs)
                .ok_or(Error::BufferTooSmall { need: bs })?;
            self.wal
                .read(&mut self.dev, BlockNo(o.region.start.0 + blk_i), buf)
                .await?;
            let read =
                verifier::slot_index_block(buf, blk_i, index_blocks, map_blocks, &mut first.sink());
            let Some(n) = read else {
                return Err(match first.0 {
                    Some(Finding::SlotIndexBlock {
                        error: DecodeError::BadVersion(found),
                        ..
                    }) => Error::UnsupportedVersion { found },
                    _ => si(),
                });
            };
            if blk_i == 0 {
                count = n;
                if count > self.index.len() / es {
                    return Err(Error::BufferTooSmall {
                        need: count.saturating_mul(es),
                    });
                }
            }
            let (first_entry, room) = slot_index::block_span(bs, blk_i);
            let take = room.min(count.saturating_sub(first_entry));
            let off = slot_index::entries_offset(blk_i);
            let src = buf.get(off..off + take * es).ok_or_else(si)?;
            let dst = self
                .index
                .get_mut(first_entry * es..(first_entry + take) * es)
                .ok_or_else(si)?;
            dst.copy_from_slice(src);
            loaded += take;
            blk_i += 1;
        }
        o.count = count;
        o.counters = self.wal.counters();
        o.stale = false;
        o.open = 0;
        self.objects = Some(o);
        self.check_counters()?;
        for i in 0..count {
            let bytes = self.index.get(i * es..(i + 1) * es).ok_or_else(si)?;
            let Some(b) =
                verifier::slot_entry(bytes, i, &self.layout, &mut first.sink()).map(|e| e.block)
            else {
                return Err(si());
            };
            let key = b.0.to_le_bytes();
            let earlier = (0..i).find(|j| self.index.get(j * es..j * es + 8) == Some(&key[..]));
            let place = verifier::SharedPlace {
                earlier,
                region: self.region_of(b).await?,
                allocated: Some(self.is_allocated_in_op(b).await?),
            };
            if !verifier::shared_place(i, b, &place, &mut first.sink()) {
                return Err(si());
            }
        }
        // The extent map is read when an extent is located; `verify_objects` checks its
        // trailers and that its marks number the extents (not here: a mount that reads it
        // could not be followed by a repair of it).
        Ok(())
    }

    /// The module bit of the region that holds block `b`, if one does.
    async fn region_of(&mut self, b: BlockNo) -> Result<Option<u8>, Error<D::Error>> {
        let mut hit = None;
        self.for_each_region_in_op(|e| {
            if e.extent.contains(b) {
                hit.get_or_insert(e.module);
            }
        })
        .await?;
        Ok(hit)
    }

    /// Writes an empty index into the first block of the `objects` region and an empty extent
    /// map into its last blocks (inside the open transaction).
    pub(crate) async fn init_index(&mut self, region: Extent) -> Result<(), Error<D::Error>> {
        let bs = self.layout.bs();
        let map = slot_index::extent_map_blocks(bs, self.layout.block_count);
        let index_blocks = self.index_blocks(region);
        if index_blocks == 0 {
            return Err(Error::NoSpace);
        }
        let m = u32::try_from(map).map_err(|_| Error::NoSpace)?;
        let blk = self.view(region.start, true).await?;
        slot_index::encode_head(blk, 0, 0, m)
            .and_then(|_| slot_index::seal(blk))
            .ok_or(Error::Corrupt(Structure::SlotIndex))?;
        self.stage_new_view(region.start)?;
        for j in 0..m {
            let b = BlockNo(region.start.0 + index_blocks + u64::from(j));
            let blk = self.view(b, true).await?;
            bitmap_block::seal(blk, slot_index::extent_map_tag(u64::from(j)))
                .ok_or(Error::Corrupt(Structure::Extent))?;
            self.stage_new_view(b)?;
        }
        Ok(())
    }

    /// Stages index region block `i` in the open transaction, to be encoded from RAM by
    /// [`Self::encode_staged_index`], which the commit of every object transaction runs: a
    /// batch of puts encodes (and checksums) each index block once, not once per put.
    fn restage_index_block(&mut self, i: u64) -> Result<(), Error<D::Error>> {
        let o = self.obj()?;
        let b = BlockNo(o.region.start.0.saturating_add(i));
        self.log_room_for(b)?;
        self.tx.stage::<D::Error>(b, false).map(|_| ())
    }

    /// Re-encodes every index region block the open transaction staged, from RAM (an object
    /// transaction's last step before its commit).
    async fn encode_staged_index(&mut self) -> Result<(), Error<D::Error>> {
        let Some(o) = self.objects else {
            return Ok(());
        };
        let index_blocks = self.index_blocks(o.region);
        for k in 0..self.tx.len() {
            let Some(b) = self.tx.block(k) else { break };
            let i = b.0.wrapping_sub(o.region.start.0);
            if i < index_blocks {
                await_outlined!(self.encode_index_block(i))?;
            }
        }
        Ok(())
    }

    /// Encodes index region block `i` from RAM into the open transaction: its head, the
    /// entries the transaction changed (all of them if it changed more than it tracks) and its
    /// checksum; only the bytes that differ are staged.
    async fn encode_index_block(&mut self, i: u64) -> Result<(), Error<D::Error>> {
        let o = self.obj()?;
        let bs = self.layout.bs();
        let es = self.es();
        let (first, room) = slot_index::block_span(bs, i);
        if i > 0 && first >= o.count && first > 0 {
            // Nothing lives there any more; leave the block as it is (never read).
            return Ok(());
        }
        let count = u32::try_from(o.count).map_err(|_| Error::IndexFull)?;
        let map = slot_index::extent_map_blocks(bs, self.layout.block_count);
        let map = u32::try_from(map).map_err(|_| Error::Corrupt(Structure::SlotIndex))?;
        let b = BlockNo(o.region.start.0 + i);
        let off = slot_index::entries_offset(i);
        let corrupt = || Error::Corrupt(Structure::SlotIndex);
        self.view(b, false).await?;
        let mut spans = heapless::Vec::<(usize, usize), 14>::new();
        let Volume {
            scratch,
            index,
            idx_touched,
            ..
        } = self;
        let blk = scratch
            .get_mut(..bs)
            .ok_or(Error::BufferTooSmall { need: bs })?;
        // Entry `e`'s bytes from RAM (zeros past the count) where they differ.
        let mut put_entry = |blk: &mut [u8], e: usize| -> Option<()> {
            let at = off + (e - first) * es;
            let dst = blk.get_mut(at..at + es)?;
            let zeros = [0u8; 8 + 65536 / 512];
            let src = if e < o.count {
                index.get(e * es..(e + 1) * es)?
            } else {
                zeros.get(..es)?
            };
            let lo = dst.iter().zip(src).position(|(a, b)| a != b);
            let hi = dst.iter().zip(src).rposition(|(a, b)| a != b);
            if let (Some(lo), Some(hi)) = (lo, hi) {
                dst.copy_from_slice(src);
                if spans.push((at + lo, at + hi + 1)).is_err() {
                    spans.clear();
                    spans.push((off, bs)).ok()?;
                }
            }
            Some(())
        };
        match idx_touched {
            Some(list) => {
                for &e in list.iter() {
                    if e >= first && e < first + room {
                        put_entry(blk, e).ok_or_else(corrupt)?;
                    }
                }
            }
            None => {
                for e in first..first + room {
                    put_entry(blk, e).ok_or_else(corrupt)?;
                }
            }
        }
        // The head where it changed, then the checksum.
        let mut head = [0u8; 128];
        let old = head.get_mut(..off).ok_or_else(corrupt)?;
        old.copy_from_slice(blk.get(..off).ok_or_else(corrupt)?);
        slot_index::encode_head(blk, i, count, map)
            .and_then(|_| slot_index::seal(blk))
            .ok_or_else(corrupt)?;
        // The head's changed runs (the entry count).
        let new = blk.get(..off).ok_or_else(corrupt)?;
        let mut over = false;
        crate::wal::diff_ranges(new, old.get(..off), &mut |s, e| {
            over |= spans.push((s, e)).is_err();
        });
        if over {
            spans.clear();
            spans.push((0, bs)).map_err(|_| corrupt())?;
        }
        for (s, e) in spans {
            self.touched(s, e - s);
        }
        self.touched(bs - 8, 8);
        self.stage_view(b)
    }

    /// Notes that slot-index entry `e` changed in the open transaction.
    fn touch_entry(&mut self, e: usize) {
        if let Some(list) = self.idx_touched.as_mut() {
            if !list.contains(&e) && list.push(e).is_err() {
                self.idx_touched = None;
            }
        }
    }

    fn restage_entry(&mut self, entry: usize) -> Result<(), Error<D::Error>> {
        self.touch_entry(entry);
        let (blk, _) = slot_index::locate(self.layout.bs(), entry);
        self.restage_index_block(blk)
    }

    pub(crate) async fn ensure_index(&mut self) -> Result<(), Error<D::Error>> {
        let o = self.obj()?;
        if o.stale {
            self.reload_index().await?;
        }
        Ok(())
    }

    pub(crate) fn mark_stale(&mut self) {
        self.abort_tx();
        if let Some(o) = self.objects.as_mut() {
            o.stale = true;
        }
    }

    /// Runs `f` as one transaction over the object index, committing on success.
    pub(crate) async fn object_tx<T>(
        &mut self,
        f: impl AsyncFnOnce(&mut Self) -> Result<T, Error<D::Error>>,
    ) -> Result<T, Error<D::Error>> {
        await_outlined!(self.ensure_index())?;
        self.abort_tx();
        let r = match await_outlined!(f(self)) {
            Ok(v) => match await_outlined!(self.encode_staged_index()) {
                Ok(()) => await_outlined!(self.commit_tx()).map(|_| v),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if r.is_err() {
            self.mark_stale();
        }
        r
    }

    /// Stores `data` and returns its handle: packed into a slot if `data.len() + 8` fits in half
    /// a block, else in a run of whole blocks. One WAL transaction.
    #[doc(alias = "SubBlockPacker")]
    #[inline(never)]
    pub async fn put(&mut self, data: &[u8]) -> Result<Handle, Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.object_tx(async |v| v.put_in_tx(data, false).await)
            .await
    }

    /// Packs `data` into a slot of a shared block; objects that do not fit half a block (with
    /// the 8-byte slot header) are refused with [`Error::ObjectTooLarge`].
    pub async fn pack(&mut self, data: &[u8]) -> Result<Handle, Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.object_tx(async |v| v.put_in_tx(data, true).await)
            .await
    }

    /// Deletes the object named by `h` (and its name, if it has one). One WAL transaction.
    #[inline(never)]
    pub async fn delete(&mut self, h: Handle) -> Result<(), Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.object_tx(async |v| {
            {
                #[cfg(feature = "names")]
                v.unname_in_tx(h).await?;
                v.delete_in_tx(h)
            }
            .await
        })
        .await
    }

    /// Compacts one shared block: the one with the most dead units (the units of deleted
    /// slots, which on a device that writes home in place keep their bytes, so that a delete
    /// erases nothing). Its dead units are zeroed and become free for new slots; its live
    /// slots stay where they are, so every handle stays valid. One transaction; the block is
    /// erased and rewritten once, at the next checkpoint. Returns the units reclaimed (0 when
    /// no block has dead units: nothing is written). Call it in idle time to keep puts from
    /// compacting, one block per call, so no single call stalls for long.
    ///
    /// A put compacts on its own only when it finds no free unit, and then only when the block
    /// it would compact is at least three quarters dead, when dead units outnumber live ones
    /// two to one, or when no new shared block can be had.
    pub async fn gc(&mut self) -> Result<u64, Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.object_tx(async |v| match v.compaction_victim(None)? {
            Some((i, dead)) => {
                v.compact_entry(i).await?;
                Ok(dead as u64)
            }
            None => Ok(0),
        })
        .await
    }

    /// Starts a batch: several puts and deletes committed as one transaction.
    pub async fn batch(&mut self) -> Result<Batch<'_, 'b, D, K>, Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.ensure_index().await?;
        self.abort_tx();
        let generation = device::generation(&self.dev);
        Ok(Batch {
            vol: self,
            failed: false,
            done: false,
            generation,
        })
    }

    pub(crate) async fn put_in_tx(
        &mut self,
        data: &[u8],
        packed_only: bool,
    ) -> Result<Handle, Error<D::Error>> {
        let bs = self.layout.bs();
        let seq = self.wal.last_seq().next().0;
        let stored = data
            .len()
            .checked_add(SLOT_HDR)
            .ok_or(Error::ObjectTooLarge)?;
        match subblock::class_for(stored, bs) {
            Some(class) => self.put_packed(data, class, seq).await,
            None if packed_only => Err(Error::ObjectTooLarge),
            None => self.put_extent(data, seq).await,
        }
    }

    async fn put_packed(
        &mut self,
        data: &[u8],
        class: u8,
        seq: u64,
    ) -> Result<Handle, Error<D::Error>> {
        let mut o = self.obj()?;
        let per = subblock::class_size(class).ok_or(Error::ObjectTooLarge)? / UNIT;
        // Best fit: the shared block with the fewest free units that still has a slot. The
        // entries before `open` are full; so are those the scan finds full right after them.
        let bs = self.layout.bs();
        let mut best: Option<(usize, usize)> = None;
        let first = usize::from(o.open).min(o.count);
        let mut open = first;
        for i in first..o.count {
            let Some((taken, n)) = self.entry_taken(i) else {
                continue;
            };
            let Some(bm) = taken.get(..n).and_then(|t| SlotBitmapRef::new(t, bs)) else {
                continue;
            };
            let free = bm.free_units();
            if free == 0 {
                if open == i {
                    open = i + 1;
                }
                continue;
            }
            if free >= per && best.is_none_or(|(_, f)| free < f) && bm.find(class).is_some() {
                best = Some((i, free));
                if free == per {
                    break; // cannot fit tighter
                }
            }
        }
        o.open = u16::try_from(open).unwrap_or(u16::MAX);
        self.objects = Some(o);
        let entry = match best {
            Some((i, _)) => i,
            None => match self.compaction_victim(Some(class))? {
                Some((i, dead)) if self.compact_first(dead)? => {
                    self.compact_entry(i).await?;
                    i
                }
                victim => self.new_shared_block(victim).await?,
            },
        };
        let unit = {
            let (taken, n) = self
                .entry_taken(entry)
                .ok_or(Error::Corrupt(Structure::SlotIndex))?;
            let at = taken
                .get(..n)
                .and_then(|t| SlotBitmapRef::new(t, bs))
                .and_then(|bm| bm.find(class))
                .ok_or(Error::Corrupt(Structure::SlotIndex))?;
            self.entry_bits_mut(entry)
                .ok_or(Error::Corrupt(Structure::SlotIndex))?
                .set_range(at, per, true);
            at
        };
        self.finish_put_packed(entry, unit, data, class, seq).await
    }

    /// The shared block with the most dead units that, compacted, would take a slot of
    /// `class` (any block with a dead unit if `None`): its entry and dead unit count.
    fn compaction_victim(
        &self,
        class: Option<u8>,
    ) -> Result<Option<(usize, usize)>, Error<D::Error>> {
        let o = self.obj()?;
        let units = self.layout.bs() / UNIT;
        let mut best: Option<(usize, usize)> = None;
        for i in 0..o.count {
            let (Some((_, live)), Some(dead)) = (self.entry(i), self.entry_dead(i)) else {
                continue;
            };
            let d = units - dead.free_units();
            let fits = class.is_none_or(|c| live.find(c).is_some());
            if d > 0 && best.is_none_or(|(_, b)| d > b) && fits {
                best = Some((i, d));
            }
        }
        Ok(best)
    }

    /// Whether a put that found no free unit compacts the block with `dead` dead units rather
    /// than take a new shared block: when that block is at least three quarters dead (a cheap
    /// reclaim), or the shared blocks hold twice as many dead units as live ones (so dead
    /// slots never take more than two thirds of the space that packed objects use).
    fn compact_first(&self, dead: usize) -> Result<bool, Error<D::Error>> {
        let units = self.layout.bs() / UNIT;
        if dead * 4 >= units * 3 {
            return Ok(true);
        }
        let o = self.obj()?;
        let (mut live_total, mut dead_total) = (0usize, 0usize);
        for i in 0..o.count {
            if let (Some((_, live)), Some(d)) = (self.entry(i), self.entry_dead(i)) {
                live_total += units - live.free_units();
                dead_total += units - d.free_units();
            }
        }
        Ok(dead_total >= 2 * live_total)
    }

    /// Takes a new shared block (entry at the end of the index) for a put; when the index or
    /// the volume has no room, compacts `victim` instead. Returns the entry.
    async fn new_shared_block(
        &mut self,
        victim: Option<(usize, usize)>,
    ) -> Result<usize, Error<D::Error>> {
        let mut o = self.obj()?;
        let room = if o.count >= self.index_cap() {
            Err(Error::IndexFull)
        } else {
            self.alloc(1).await.and_then(|e| {
                if e.start.0 > MAX_BLOCK {
                    Err(Error::NoSpace)
                } else {
                    Ok(e)
                }
            })
        };
        let e = match (room, victim) {
            (Ok(e), _) => e,
            (Err(Error::IndexFull | Error::NoSpace), Some((i, _))) => {
                self.compact_entry(i).await?;
                return Ok(i);
            }
            (Err(x), _) => return Err(x),
        };
        {
            let es = self.es();
            let i = o.count;
            let slot = self
                .index
                .get_mut(i * es..(i + 1) * es)
                .ok_or(Error::IndexFull)?;
            slot.fill(0);
            if let Some(b) = slot.get_mut(..8) {
                b.copy_from_slice(&e.start.0.to_le_bytes());
            }
            o.count += 1;
            self.objects = Some(o);
            // The head's entry count.
            self.restage_index_block(0)?;
            self.log_room_for(e.start)?;
            self.tx.stage::<D::Error>(e.start, true)?;
            Ok(i)
        }
    }

    /// Compacts the shared block of entry `e` in the open transaction: its dead units are
    /// zeroed and become free. Its live slots stay where they are, so handles stay valid; the
    /// log takes the block whole (its home copy is erased and rewritten at the checkpoint).
    async fn compact_entry(&mut self, e: usize) -> Result<(), Error<D::Error>> {
        let corrupt = || Error::Corrupt(Structure::SlotIndex);
        let (block, _) = self.entry(e).ok_or_else(corrupt)?;
        let units = self.layout.bs() / UNIT;
        // The dead bitmap, copied out (the view below borrows the volume).
        let mut bits = [0u8; MAX_BITMAP];
        let n = {
            let d = self.entry_dead(e).ok_or_else(corrupt)?;
            let n = d.bytes().len();
            bits.get_mut(..n)
                .ok_or_else(corrupt)?
                .copy_from_slice(d.bytes());
            n
        };
        let dead = SlotBitmapRef::new(bits.get(..n).ok_or_else(corrupt)?, self.layout.bs())
            .ok_or_else(corrupt)?;
        let blk = self.view(block, false).await?;
        for u in (0..units).filter(|&u| dead.occupied(u)) {
            blk.get_mut(u * UNIT..(u + 1) * UNIT)
                .ok_or_else(corrupt)?
                .fill(0);
        }
        let mut u = 0usize;
        while u < units {
            if dead.occupied(u) {
                let s = u;
                while u < units && dead.occupied(u) {
                    u += 1;
                }
                self.touched(s * UNIT, (u - s) * UNIT);
            }
            u += 1;
        }
        self.stage_view(block)?;
        self.entry_dead_mut(e)
            .ok_or_else(corrupt)?
            .set_range(0, units, false);
        if let Some(o) = self.objects.as_mut() {
            o.compactions = o.compactions.saturating_add(1);
            // The entry has free units now.
            o.open = o.open.min(u16::try_from(e).unwrap_or(u16::MAX));
        }
        self.restage_entry(e)
    }

    /// Writes a packed object into unit `unit` (already taken in the slot bitmap) of entry
    /// `entry`'s shared block, in the open transaction.
    async fn finish_put_packed(
        &mut self,
        entry: usize,
        unit: usize,
        data: &[u8],
        class: u8,
        seq: u64,
    ) -> Result<Handle, Error<D::Error>> {
        let (block, _) = self
            .entry(entry)
            .ok_or(Error::Corrupt(Structure::SlotIndex))?;
        let h = Handle::Packed {
            block,
            unit: u16::try_from(unit).map_err(|_| Error::Corrupt(Structure::SlotIndex))?,
            class,
            tag: Handle::packed_tag(seq),
        };
        let size = subblock::class_size(class).ok_or(Error::ObjectTooLarge)?;
        let hdr = SlotHeader {
            len: u16::try_from(data.len()).map_err(|_| Error::ObjectTooLarge)?,
            tag: Handle::packed_tag(seq),
            check: slot_check(data, h.raw()),
        };
        let blk = self.view(block, false).await?;
        let at = unit * UNIT;
        let slot = blk
            .get_mut(at..at + size)
            .ok_or(Error::Corrupt(Structure::SlotIndex))?;
        // The header and payload, and any stale bytes after them (a slot is normally zero).
        let used = SLOT_HDR + data.len();
        let stale = slot
            .get(used..)
            .and_then(|t| t.iter().rposition(|x| *x != 0));
        slot.fill(0);
        hdr.encode(slot).ok_or(Error::ObjectTooLarge)?;
        slot.get_mut(SLOT_HDR..used)
            .ok_or(Error::ObjectTooLarge)?
            .copy_from_slice(data);
        self.touched(at, stale.map_or(used, |t| used + t + 1));
        self.stage_view(block)?;
        let mut o = self.obj()?;
        o.counters.objects = o.counters.objects.saturating_add(1);
        o.counters.bytes = o.counters.bytes.saturating_add(data.len() as u64);
        if let Some(c) = o.counters.per_class.get_mut(class as usize) {
            *c = c.saturating_add(1);
        }
        self.objects = Some(o);
        self.restage_entry(entry)?;
        Ok(h)
    }

    async fn put_extent(&mut self, data: &[u8], seq: u64) -> Result<Handle, Error<D::Error>> {
        let bs = self.layout.bs();
        let total = (data.len() as u64)
            .checked_add(EXTENT_HDR as u64)
            .ok_or(Error::ObjectTooLarge)?;
        let blocks = crate::types::pow2_div_ceil(total, bs as u64);
        if blocks > self.layout.block_count {
            return Err(Error::ObjectTooLarge);
        }
        let e = self.alloc(blocks).await?;
        if e.start.0 > MAX_BLOCK {
            return Err(Error::NoSpace);
        }
        let h = Handle::Extent {
            start: e.start,
            tag: Handle::extent_tag(seq),
        };
        // A record logged since the last checkpoint must not be replayed over the payload.
        {
            let Volume {
                wal, dev, scratch, ..
            } = self;
            wal.prepare_unlogged(dev, e, scratch).await?;
        }
        let hdr = ExtentHeader {
            handle: h.raw(),
            len: data.len() as u64,
            payload_hash: crate::format::xxh64(data, h.raw()),
        };
        // Blocks free in the committed bitmap are written unlogged (if the transaction never
        // commits they stay free; the log orders them before its commit record). A block freed
        // earlier in this same transaction still holds committed data, so its new content goes
        // through the log.
        let mut off = 0usize;
        for k in 0..blocks {
            let b = BlockNo(e.start.0 + k);
            let via_log = self.tx.contains(b) || self.committed_allocated(b).await?;
            if via_log {
                self.log_room_for(b)?;
            }
            let Volume {
                tx,
                dev,
                scratch,
                wal,
                ..
            } = self;
            let buf = crate::wal::block_of(scratch, bs)?;
            buf.fill(0);
            let mut at = 0;
            if k == 0 {
                hdr.encode(buf).ok_or(Error::ObjectTooLarge)?;
                at = EXTENT_HDR;
            }
            let n = (bs - at).min(data.len() - off);
            buf.get_mut(at..at + n)
                .ok_or(Error::ObjectTooLarge)?
                .copy_from_slice(data.get(off..off + n).ok_or(Error::ObjectTooLarge)?);
            off += n;
            if via_log {
                // The block's whole new content, over zeros.
                tx.stage::<D::Error>(b, true)?;
                tx.write::<D::Error>(b, 0, buf)?;
            } else {
                wal.write_unlogged(dev, b, buf).await?;
            }
        }
        self.set_extent_bit(e.start, true).await?;
        let mut o = self.obj()?;
        o.counters.objects = o.counters.objects.saturating_add(1);
        o.counters.bytes = o.counters.bytes.saturating_add(data.len() as u64);
        o.counters.extent_objects = o.counters.extent_objects.saturating_add(1);
        o.counters.extent_blocks = o.counters.extent_blocks.saturating_add(blocks);
        self.objects = Some(o);
        Ok(h)
    }

    /// Checks a packed handle against the index and the slot header; returns the entry index,
    /// the header and the class size.
    async fn locate_packed(
        &mut self,
        h: Handle,
    ) -> Result<(usize, SlotHeader, usize), Error<D::Error>> {
        let raw = h.raw();
        let bad = || Error::BadHandle { handle: raw };
        let Handle::Packed {
            block,
            unit,
            class,
            tag,
        } = h
        else {
            return Err(bad());
        };
        let size = subblock::class_size(class).ok_or_else(bad)?;
        let per = size / UNIT;
        let unit = usize::from(unit);
        let entry = self.find_entry(block).ok_or_else(bad)?;
        let (_, bm) = self.entry(entry).ok_or_else(bad)?;
        if unit % per != 0 || !bm.range_occupied(unit, per) {
            return Err(bad());
        }
        let bs = self.layout.bs();
        self.read_range_through_scratch(block, unit * UNIT, size)
            .await?;
        let buf = self
            .scratch
            .get(..bs)
            .ok_or(Error::BufferTooSmall { need: bs })?;
        let slot = buf.get(unit * UNIT..unit * UNIT + size).ok_or_else(bad)?;
        if SlotHeader::decode(slot).map_err(|_| bad())?.tag != tag {
            return Err(bad());
        }
        // The slot by the rules of `verifier`: a free one's header means a stale handle, any
        // other broken rule (or another class than the handle's) a damaged header.
        let (_, bm) = self.entry(entry).ok_or_else(bad)?;
        let mut first = verifier::First::default();
        let read = verifier::slot(buf, block.0, unit, bm, bs, &mut first.sink());
        match read {
            Some(s) if s.class == class => Ok((entry, s.header, size)),
            None if matches!(first.0, Some(Finding::SlotEmpty { .. })) => Err(bad()),
            _ => Err(Error::ObjectChecksum { handle: raw }),
        }
    }

    /// Reads bytes `at..at + len` of block `b` through the open transaction into the same
    /// place of the scratch (the rest of the scratch is not meaningful afterwards): one partial
    /// device read where [`Volume::read_through_part`] can, the whole block otherwise.
    async fn read_range_through_scratch(
        &mut self,
        b: BlockNo,
        at: usize,
        len: usize,
    ) -> Result<(), Error<D::Error>> {
        let Volume {
            tx,
            wal,
            dev,
            layout,
            scratch,
            ..
        } = self;
        let part = scratch
            .get_mut(at..at.saturating_add(len))
            .ok_or(Error::OutOfRange)?;
        if !read_part_staged(tx, wal, dev, layout.block_count, (b, at), part).await? {
            self.load_scratch(b).await?;
        }
        Ok(())
    }

    /// Checks an extent handle; returns its extent.
    async fn locate_extent(
        &mut self,
        h: Handle,
    ) -> Result<verifier::ExtentObject, Error<D::Error>> {
        let raw = h.raw();
        let bad = || Error::BadHandle { handle: raw };
        let Handle::Extent { start, .. } = h else {
            return Err(bad());
        };
        if start.0 < self.layout.data_start || start.0 >= self.layout.block_count {
            return Err(bad());
        }
        // Allocated and marked in the extent map: an unmarked block is never read as an object.
        if !self.extent_allocated(Extent { start, len: 1 }).await?
            || !self.starts_extent(start).await?
        {
            return Err(bad());
        }
        self.load_scratch(start).await?;
        let bs = self.layout.bs();
        let buf = self
            .scratch
            .get(..bs)
            .ok_or(Error::BufferTooSmall { need: bs })?;
        // The extent by the rules of `verifier`: a header that does not decode but for its
        // checksum, or that is another object's, means a stale handle; any other broken rule
        // means damage.
        let damaged = || Error::ObjectChecksum { handle: raw };
        let mut first = verifier::First::default();
        let read = verifier::extent(buf, start.0, &self.layout, &mut first.sink());
        let x = match (read, first.0) {
            (Some(x), _) if x.handle == h => x,
            (
                None,
                Some(
                    Finding::ExtentLength { .. }
                    | Finding::ExtentPastEnd { .. }
                    | Finding::ExtentHeader {
                        error: DecodeError::BadChecksum,
                        ..
                    },
                ),
            ) => return Err(damaged()),
            _ => return Err(bad()),
        };
        let all = self
            .extent_allocated(Extent {
                start,
                len: x.blocks,
            })
            .await?;
        if !verifier::extent_place(h, x.blocks, u64::from(!all), &mut first.sink()) {
            return Err(damaged());
        }
        Ok(x)
    }

    /// Payload length of the object named by `h`.
    pub async fn object_len(&mut self, h: Handle) -> Result<u64, Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.ensure_index().await?;
        self.abort_tx();
        match h {
            Handle::Packed { .. } => self
                .locate_packed(h)
                .await
                .map(|(_, sh, _)| u64::from(sh.len)),
            Handle::Extent { .. } => self.locate_extent(h).await.map(|x| x.header.len),
        }
    }

    /// Reads the object named by `h` into `buf`, verifying its checksum; returns its length.
    #[inline(never)]
    pub async fn get(&mut self, h: Handle, buf: &mut [u8]) -> Result<usize, Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.ensure_index().await?;
        self.abort_tx();
        let raw = h.raw();
        match h {
            Handle::Packed { unit, .. } => {
                let (_, sh, _) = self.locate_packed(h).await?;
                let len = usize::from(sh.len);
                let out = buf
                    .get_mut(..len)
                    .ok_or(Error::BufferTooSmall { need: len })?;
                let at = usize::from(unit) * UNIT;
                let slot = self
                    .scratch
                    .get(at..)
                    .ok_or(Error::BadHandle { handle: raw })?;
                let mut first = verifier::First::default();
                if !verifier::slot_payload(slot, &sh, h, &mut first.sink()) {
                    return Err(Error::ObjectChecksum { handle: raw });
                }
                let src = slot
                    .get(SLOT_HDR..SLOT_HDR + len)
                    .ok_or(Error::BadHandle { handle: raw })?;
                out.copy_from_slice(src);
                Ok(len)
            }
            Handle::Extent { start, .. } => {
                let x = self.locate_extent(h).await?;
                let len = usize::try_from(x.header.len)
                    .map_err(|_| Error::BufferTooSmall { need: usize::MAX })?;
                let out = buf
                    .get_mut(..len)
                    .ok_or(Error::BufferTooSmall { need: len })?;
                let bs = self.layout.bs();
                let mut payload = verifier::ExtentPayload::new(&x.header);
                let mut off = 0usize;
                for k in 0..x.blocks {
                    self.load_scratch(BlockNo(start.0 + k)).await?;
                    let src = payload.block(k, self.scratch.get(..bs).unwrap_or_default());
                    out.get_mut(off..off + src.len())
                        .ok_or(Error::ObjectChecksum { handle: raw })?
                        .copy_from_slice(src);
                    off += src.len();
                }
                let mut first = verifier::First::default();
                if !verifier::extent_payload(payload, &x, &mut first.sink()) {
                    return Err(Error::ObjectChecksum { handle: raw });
                }
                Ok(len)
            }
        }
    }

    /// Reads a packed object (same as [`Volume::get`] for a packed handle).
    pub async fn unpack(&mut self, h: Handle, buf: &mut [u8]) -> Result<usize, Error<D::Error>> {
        if_async! { self.settle().await?; }
        match h {
            Handle::Packed { .. } => self.get(h, buf).await,
            Handle::Extent { .. } => Err(Error::BadHandle { handle: h.raw() }),
        }
    }

    pub(crate) async fn delete_in_tx(&mut self, h: Handle) -> Result<(), Error<D::Error>> {
        match h {
            Handle::Packed {
                block, unit, class, ..
            } => {
                let (entry, sh, size) = self.locate_packed(h).await?;
                let freed_all = {
                    let mut bm = self
                        .entry_bits_mut(entry)
                        .ok_or(Error::Corrupt(Structure::SlotIndex))?;
                    if !bm.free(usize::from(unit), class) {
                        return Err(Error::BadHandle { handle: h.raw() });
                    }
                    bm.view().fully_free()
                };
                let mut o = self.obj()?;
                // The entry has a free unit now (and, if it is dropped, the last entry moves
                // to its place).
                o.open = o.open.min(u16::try_from(entry).unwrap_or(u16::MAX));
                o.counters.objects = o.counters.objects.saturating_sub(1);
                o.counters.bytes = o.counters.bytes.saturating_sub(u64::from(sh.len));
                if let Some(c) = o.counters.per_class.get_mut(class as usize) {
                    *c = c.saturating_sub(1);
                }
                if freed_all {
                    // Return the block to the allocator and drop its entry (swap with the last).
                    self.mark(
                        Extent {
                            start: block,
                            len: 1,
                        },
                        false,
                    )
                    .await?;
                    let es = self.es();
                    let last = o.count - 1;
                    if entry < last {
                        let (lo, hi) = self
                            .index
                            .split_at_mut_checked(last * es)
                            .ok_or(Error::Corrupt(Structure::SlotIndex))?;
                        let (Some(dst), Some(src)) =
                            (lo.get_mut(entry * es..(entry + 1) * es), hi.get(..es))
                        else {
                            return Err(Error::Corrupt(Structure::SlotIndex));
                        };
                        dst.copy_from_slice(src);
                    }
                    o.count = last;
                    self.objects = Some(o);
                    // The head's entry count.
                    self.restage_index_block(0)?;
                    // The last entry's old place is emptied.
                    self.touch_entry(last);
                    self.restage_entry(entry)?;
                    let (lb, _) = slot_index::locate(self.layout.bs(), last);
                    if lb != 0 && o.count > 0 {
                        self.restage_index_block(lb)?;
                    }
                } else if self.wal.writes_in_place() {
                    // The slot's bytes stay (rewriting them would erase the block on flash):
                    // its units are dead until the block is compacted.
                    self.objects = Some(o);
                    let per = size / UNIT;
                    self.entry_dead_mut(entry)
                        .ok_or(Error::Corrupt(Structure::SlotIndex))?
                        .set_range(usize::from(unit), per, true);
                    self.restage_entry(entry)?;
                } else {
                    self.objects = Some(o);
                    let blk = self.view(block, false).await?;
                    let at = usize::from(unit) * UNIT;
                    let slot = blk
                        .get_mut(at..at + size)
                        .ok_or(Error::Corrupt(Structure::SlotIndex))?;
                    let end = slot.iter().rposition(|x| *x != 0).map_or(0, |t| t + 1);
                    slot.fill(0);
                    self.touched(at, end);
                    self.stage_view(block)?;
                    self.restage_entry(entry)?;
                }
                Ok(())
            }
            Handle::Extent { start, .. } => {
                let x = self.locate_extent(h).await?;
                let (hdr, blocks) = (x.header, x.blocks);
                self.mark(Extent { start, len: blocks }, false).await?;
                // Wipe the header so the stale handle can never validate again.
                let blk = self.view(start, false).await?;
                blk.get_mut(..EXTENT_HDR)
                    .ok_or(Error::Corrupt(Structure::SlotIndex))?
                    .fill(0);
                self.touched(0, EXTENT_HDR);
                self.stage_view(start)?;
                self.set_extent_bit(start, false).await?;
                let mut o = self.obj()?;
                o.counters.objects = o.counters.objects.saturating_sub(1);
                o.counters.bytes = o.counters.bytes.saturating_sub(hdr.len);
                o.counters.extent_objects = o.counters.extent_objects.saturating_sub(1);
                o.counters.extent_blocks = o.counters.extent_blocks.saturating_sub(blocks);
                self.objects = Some(o);
                Ok(())
            }
        }
    }

    /// Frees a packed object (same as [`Volume::delete`] for a packed handle).
    pub async fn free(&mut self, h: Handle) -> Result<(), Error<D::Error>> {
        if_async! { self.settle().await?; }
        match h {
            Handle::Packed { .. } => self.delete(h).await,
            Handle::Extent { .. } => Err(Error::BadHandle { handle: h.raw() }),
        }
    }

    /// Shared blocks compacted since mount, by puts and [`Volume::gc`] (a compaction in a
    /// transaction that was rolled back counts too).
    pub fn compactions(&self) -> u64 {
        self.objects.map_or(0, |o| o.compactions)
    }

    /// Object statistics.
    pub async fn object_stats(&mut self) -> Result<ObjectStats, Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.ensure_index().await?;
        let o = self.obj()?;
        let (mut free_units, mut dead_units) = (0u64, 0u64);
        let units = self.layout.bs() / UNIT;
        for i in 0..o.count {
            if let (Some((_, bm)), Some(dead)) = (self.entry(i), self.entry_dead(i)) {
                let d = units - dead.free_units();
                dead_units += d as u64;
                free_units += bm.free_units().saturating_sub(d) as u64;
            }
        }
        Ok(ObjectStats {
            counters: o.counters,
            shared_blocks: o.count as u64,
            free_units,
            dead_units,
            units_per_block: (self.layout.bs() / UNIT) as u64,
            index_room: self.index_cap().saturating_sub(o.count) as u64,
        })
    }

    /// Calls `f(block, slot bitmap)` for every shared block (for maps and checkers).
    pub async fn for_each_shared_block(
        &mut self,
        mut f: impl FnMut(BlockNo, SlotBitmapRef<'_>),
    ) -> Result<(), Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.ensure_index().await?;
        let o = self.obj()?;
        for i in 0..o.count {
            if let Some((b, bm)) = self.entry(i) {
                f(b, bm);
            }
        }
        Ok(())
    }

    /// Reloads the slot index, which cross-checks it (see [`Self::check_counters`]), then
    /// checks the extent map by the rules of [`verifier`]: each block's trailer holds, it marks
    /// no block outside the data area, and it marks as many blocks as the counters count
    /// extents. (Each mark's header, the blocks it holds and their overlaps are the checker's,
    /// `vde check`; `get` checks one extent's.)
    pub(crate) async fn verify_objects(&mut self) -> Result<(), Error<D::Error>> {
        if self.objects.is_none() {
            return Ok(());
        }
        self.reload_index().await?;
        let bs = self.layout.bs();
        let (_, m) = self.extent_map()?;
        let mut first = verifier::First::default();
        let corrupt =
            |f: Option<Finding>| Error::Corrupt(f.map_or(Structure::Extent, |f| f.structure()));
        let mut marked = 0u64;
        for j in 0..m {
            self.load_map_block(j).await?;
            let buf = self.scratch.get(..bs).unwrap_or(&[]);
            let Some(n) = verifier::extent_marks(buf, j, &self.layout, &mut first.sink()) else {
                return Err(corrupt(first.0));
            };
            marked += n;
        }
        let counted = self.obj()?.counters.extent_objects;
        if !verifier::extent_count(marked, counted, &mut first.sink()) {
            return Err(corrupt(first.0));
        }
        Ok(())
    }

    /// Cross-checks the object counters against the slot index by the rules of
    /// [`verifier::counters`]: the units occupied in shared blocks must equal the units of the
    /// packed objects counted per class, and the object count must equal packed plus extent
    /// objects; extent blocks fit in the allocated data blocks that are not shared blocks, and
    /// number at least the extent objects.
    fn check_counters(&self) -> Result<(), Error<D::Error>> {
        let o = self.obj()?;
        let units = (self.layout.bs() / UNIT) as u64;
        let mut occupied = 0u64;
        for i in 0..o.count {
            if let Some((_, bm)) = self.entry(i) {
                occupied = occupied.saturating_add(units.saturating_sub(bm.free_units() as u64));
            }
        }
        // Extent blocks are allocated data blocks that are not shared blocks.
        let extent_room = self
            .layout
            .block_count
            .saturating_sub(self.layout.data_start)
            .saturating_sub(self.free_blocks)
            .saturating_sub(o.count as u64);
        let mut first = verifier::First::default();
        if !verifier::counters(&o.counters, occupied, extent_room, &mut first.sink()) {
            return Err(Error::Corrupt(
                first.0.map_or(Structure::SlotIndex, |f| f.structure()),
            ));
        }
        Ok(())
    }

    /// Calls `f` with every live object until it returns `false`: the packed ones shared block
    /// by shared block (from the slot index: each used slot's header gives its length and
    /// class), then the extent objects in block order (from the extent map: each marked block's
    /// extent header). Nothing is found by scanning the data area.
    pub async fn for_each_object(
        &mut self,
        mut f: impl FnMut(ObjectInfo) -> bool,
    ) -> Result<(), Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.ensure_index().await?;
        self.abort_tx();
        let bs = self.layout.bs();
        let units = bs / UNIT;
        let si = || Error::Corrupt(Structure::SlotIndex);
        for i in 0..self.obj()?.count {
            // The entry's slot bitmap, copied out of the index (at most 128 bytes: 64 KiB
            // blocks), since the loop below borrows the volume.
            let (block, live) = self.entry(i).ok_or_else(si)?;
            let mut bits = [0u8; MAX_BITMAP];
            let copy = bits.get_mut(..live.bytes().len()).ok_or_else(si)?;
            copy.copy_from_slice(live.bytes());
            let used = SlotBitmapRef::new(copy, bs).ok_or_else(si)?;
            let blk = self.load_scratch(block).await?;
            let mut u = 0usize;
            while u < units {
                if !used.occupied(u) {
                    u += 1;
                    continue;
                }
                let mut first = verifier::First::default();
                let Some(slot) = verifier::slot(blk, block.0, u, used, bs, &mut first.sink())
                else {
                    return Err(Error::Corrupt(
                        first.0.map_or(Structure::SlotIndex, |f| f.structure()),
                    ));
                };
                let handle = Handle::Packed {
                    block,
                    unit: u16::try_from(u).map_err(|_| si())?,
                    class: slot.class,
                    tag: slot.header.tag,
                };
                if !f(ObjectInfo {
                    handle,
                    len: u64::from(slot.header.len),
                    packed: true,
                }) {
                    return Ok(());
                }
                u += slot.units.max(1);
            }
        }
        let (_, m) = self.extent_map()?;
        let per_map = crate::format::layout::bits_per_bitmap_block(bs);
        for j in 0..m {
            let mut bit = 0u64;
            loop {
                // The next marked block of this map block (the map is read again after each
                // header: they share the scratch block).
                self.load_map_block(j).await?;
                let bits = bitmap_block::bits(self.scratch.get(..bs).unwrap_or(&[]));
                let next = (bit..per_map).find(|b| crate::bitmap::get(bits, *b));
                let Some(b) = next else { break };
                bit = b + 1;
                let start = BlockNo(j * per_map + b);
                let layout = self.layout;
                let blk = self.load_scratch(start).await?;
                let mut first = verifier::First::default();
                let Some(x) = verifier::extent(blk, start.0, &layout, &mut first.sink()) else {
                    return Err(Error::Corrupt(
                        first.0.map_or(Structure::Extent, |f| f.structure()),
                    ));
                };
                if !f(ObjectInfo {
                    handle: x.handle,
                    len: x.header.len,
                    packed: false,
                }) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Whether the `objects` module is present.
    pub fn has_objects(&self) -> bool {
        self.objects.is_some()
    }

    /// The `objects` module is present by default; this adds it to a volume formatted without.
    pub async fn enable_objects(&mut self, now: u64) -> Result<(), Error<D::Error>> {
        if_async! { self.settle().await?; }
        let m = modules::by_bit(0).ok_or(Error::UnknownModule)?;
        self.add_module(m, now).await.map(|_| ())
    }
}

/// Several puts, deletes, stores and removes committed as one WAL transaction. Dropping it without
/// [`Batch::commit`] rolls everything back. After any failed operation the whole batch is rolled
/// back and every later call returns [`Error::BatchAborted`].
pub struct Batch<'v, 'b, D: BlockDevice, const K: usize> {
    vol: &'v mut Volume<'b, D, K>,
    failed: bool,
    done: bool,
    /// As [`crate::Transaction`]'s: a recovery since the batch began means its staged
    /// operations are gone.
    #[allow(dead_code)] // read by the async build only
    generation: u32,
}

#[bisync]
impl<D: BlockDevice, const K: usize> Batch<'_, '_, D, K> {
    if_async! {
        /// Recovers the volume first if an operation was dropped half-way; if a recovery since
        /// [`Volume::batch`] dropped the batch's staged operations, the batch fails
        /// ([`Error::Interrupted`], then [`Error::BatchAborted`]).
        async fn settle(&mut self) -> Result<(), Error<D::Error>> {
            let r = self.vol.settle().await;
            if r.is_err() || device::generation(&self.vol.dev) != self.generation {
                self.failed = true;
                return r.and(Err(Error::Interrupted));
            }
            Ok(())
        }
    }

    async fn run<T>(
        &mut self,
        f: impl AsyncFnOnce(&mut Volume<'_, D, K>) -> Result<T, Error<D::Error>>,
    ) -> Result<T, Error<D::Error>> {
        if self.failed {
            return Err(Error::BatchAborted);
        }
        if_async! { self.settle().await?; }
        let r = f(self.vol).await;
        if r.is_err() {
            self.failed = true;
            self.vol.mark_stale();
        }
        r
    }

    /// Adds a put; the handle is valid once the batch commits.
    pub async fn put(&mut self, data: &[u8]) -> Result<Handle, Error<D::Error>> {
        self.run(async |v| v.put_in_tx(data, false).await).await
    }

    /// Adds a delete (of the object and its name, if it has one).
    pub async fn delete(&mut self, h: Handle) -> Result<(), Error<D::Error>> {
        self.run(async |v| {
            {
                #[cfg(feature = "names")]
                v.unname_in_tx(h).await?;
                v.delete_in_tx(h)
            }
            .await
        })
        .await
    }

    /// Adds a [`Volume::store`]: `data` as a new object named `key`, the key's old object freed.
    #[cfg(feature = "names")]
    pub async fn store(&mut self, key: &[u8], data: &[u8]) -> Result<Handle, Error<D::Error>> {
        self.run(async |v| v.store_in_tx(key, data).await).await
    }

    /// Adds a [`Volume::remove`]: the object named `key` and the name deleted.
    #[cfg(feature = "names")]
    pub async fn remove(&mut self, key: &[u8]) -> Result<Handle, Error<D::Error>> {
        self.run(async |v| v.remove_in_tx(key).await).await
    }

    /// Commits every operation of the batch at once.
    pub async fn commit(mut self) -> Result<Seq, Error<D::Error>> {
        if self.failed {
            return Err(Error::BatchAborted);
        }
        if_async! { self.settle().await?; }
        self.done = true;
        let r = match self.vol.encode_staged_index().await {
            Ok(()) => self.vol.commit_tx().await,
            Err(e) => Err(e),
        };
        if r.is_err() {
            self.vol.mark_stale();
        }
        r
    }

    /// Discards the batch.
    pub fn rollback(self) {}
}

impl<D: BlockDevice, const K: usize> Drop for Batch<'_, '_, D, K> {
    fn drop(&mut self) {
        if !self.done {
            self.vol.mark_stale();
        }
    }
}
