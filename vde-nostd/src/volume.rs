//! A mounted volume: format, mount (with WAL recovery), block transactions with allocation, and
//! online module addition. The volume owns the device and the caller's buffers; every change to
//! metadata goes through one WAL transaction.
//!
//! Invariants while mounted: `sb` is the superblock as last committed; `free_blocks` equals the
//! number of zero bits in the committed bitmap; the transaction buffer is empty between
//! operations (a dropped [`Transaction`] is rolled back without I/O).

use crate::bitmap;
use crate::device::{valid_block_size, BlockDevice};
use crate::error::{Error, Structure};
use crate::format::bitmap_block;
use crate::format::counters::Counters;
use crate::format::layout::{Layout, SB_MIRROR, SB_PRIMARY};
use crate::format::regions::{self, RegionEntry, RPT_SLOTS};
use crate::format::superblock::{Superblock, FLAG_FORMATTING};
use crate::format::DecodeError;
use crate::modules::{self, Module, ModuleSet};
use crate::objects::ObjState;
use crate::scanner::{self, BitmapSource, Summary};
use crate::tx_buffer::TxBuf;
use crate::types::{BlockNo, Extent, Seq};
use crate::wal::{block_of, Durability, RecoveryReport, Wal, WalStats};

/// Options for [`Volume::format`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FormatOptions {
    /// WAL blocks; `None` for the default (1/64 of the volume, 8..=256; a quarter, at least 4,
    /// of a volume under 32 blocks).
    pub wal_blocks: Option<u64>,
    /// Volume identity (any bytes; a random value is best).
    pub volume_id: [u8; 16],
    /// Creation time from the caller's clock (no_std has none).
    pub now: u64,
    /// Modules to add right after formatting (each in its own transaction).
    pub modules: ModuleSet,
}

impl Default for FormatOptions {
    fn default() -> Self {
        FormatOptions {
            wal_blocks: None,
            volume_id: [0; 16],
            now: 0,
            modules: ModuleSet::OBJECTS,
        }
    }
}

/// Memory the caller hands to a volume.
pub struct Buffers<'b> {
    /// Scratch for reads, commits and checkpoints, plus the log's own read buffer: at least
    /// [`Buffers::scratch_min`] bytes. Whole blocks past the first
    /// [`Buffers::SCRATCH_BLOCKS`] cache committed blocks (up to
    /// [`crate::block_cache::MAX_CACHED`]; see [`Buffers::scratch_with_cache`]).
    pub scratch: &'b mut [u8],
    /// Transaction data: the bytes a transaction changes, plus
    /// [`crate::tx_buffer::RANGE_OVERHEAD`] per changed range (at least
    /// [`Buffers::txn_min`]). A put of `n` bytes stages about `n + 100`; a whole-block write
    /// ([`Transaction::write`]) stages the block ([`Buffers::txn_for_blocks`]).
    pub txn: &'b mut [u8],
    /// The in-RAM slot index: `8 + block_size / 512` bytes per shared block it can track. May be
    /// empty if no objects are packed.
    pub index: &'b mut [u8],
}

impl Buffers<'_> {
    /// Blocks of scratch a volume needs on any device (one for the volume, one for the log's
    /// reads).
    pub const SCRATCH_BLOCKS: usize = 2;

    /// The smallest `scratch` for blocks of `block_size` bytes: [`Buffers::SCRATCH_BLOCKS`]
    /// blocks, or, on a device that reads part of a block
    /// ([`crate::BlockDevice::reads_partial`]), one block and a log read buffer of
    /// [`crate::wal::MIN_LOG_PAGE`] bytes (the log reads through what is left after the
    /// block, up to a block).
    pub const fn scratch_min(block_size: usize, partial: bool) -> usize {
        if partial {
            block_size + crate::wal::MIN_LOG_PAGE
        } else {
            Self::SCRATCH_BLOCKS * block_size
        }
    }

    /// A `scratch` for blocks of `block_size` bytes that also caches `cached` committed blocks
    /// (at most [`crate::block_cache::MAX_CACHED`] count): a block read again is then copied
    /// from RAM instead of rebuilt from the log's records and read from the device. A put reads
    /// its shared block and the slot index's block, a name lookup the name table's blocks: on
    /// NAND, where every page read costs 25 µs or more, 4 cached blocks take a durable put from
    /// 22 page reads to 0.4 on average (vde-bench's NAND row).
    pub const fn scratch_with_cache(block_size: usize, cached: usize) -> usize {
        (Self::SCRATCH_BLOCKS + cached) * block_size
    }

    /// The smallest `txn` for blocks of `block_size` bytes: room for the put of the largest
    /// packed object (its slot and the index and bitmap changes; the object counters ride in
    /// the commit marker), for a module addition, or for a small batch (test
    /// `the_smallest_buffers_carry_every_object_operation`, which passes from `slot + 224`).
    pub const fn txn_min(block_size: usize) -> usize {
        let slot = if block_size / 2 < 2048 {
            block_size / 2
        } else {
            2048
        };
        slot + 256
    }

    /// The `txn` for transactions of up to `n` whole-block writes of `block_size` bytes.
    pub const fn txn_for_blocks(block_size: usize, n: usize) -> usize {
        n * (block_size + crate::tx_buffer::RANGE_OVERHEAD)
    }
}

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

/// The regions a module addition would take (from [`Volume::can_add_module`]) or took.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ModulePlan {
    /// The module.
    pub module: &'static Module,
    /// Its regions, in catalogue order.
    pub regions: heapless::Vec<Extent, 4>,
    /// Inode size after the addition.
    pub inode_size: u32,
}

/// A mounted volume over device `D` with transactions of up to `K` block updates.
pub struct Volume<'b, D: BlockDevice, const K: usize> {
    pub(crate) dev: D,
    pub(crate) layout: Layout,
    pub(crate) sb: Superblock,
    pub(crate) wal: Wal<'b>,
    pub(crate) tx: TxBuf<'b, K>,
    pub(crate) scratch: &'b mut [u8],
    pub(crate) free_blocks: u64,
    pub(crate) tx_free_delta: i64,
    pub(crate) index: &'b mut [u8],
    pub(crate) objects: Option<ObjState>,
    /// The `names` module's region, when present.
    pub(crate) names: Option<Extent>,
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
    pub(crate) idx_touched: Option<heapless::Vec<usize, 12>>,
    /// Whether the open transaction set the object counters outright
    /// ([`Transaction::set_object_counters`]): the object state is reloaded after it.
    tx_sets_counters: bool,
}

/// Changed ranges a view remembers; past that they merge into one.
const MAX_SPANS: usize = 16;

impl<'b, D: BlockDevice, const K: usize> Volume<'b, D, K> {
    /// Formats `dev` as an empty volume and mounts it.
    pub fn format(
        mut dev: D,
        opts: &FormatOptions,
        bufs: Buffers<'b>,
    ) -> Result<Self, Error<D::Error>> {
        let bs = dev.block_size();
        let n = dev.block_count();
        check_buffers::<D::Error>(bs, dev.reads_partial(), &bufs)?;
        let wal_blocks = opts
            .wal_blocks
            .unwrap_or_else(|| Layout::default_wal_blocks(n));
        let layout = Layout::compute(bs, n, wal_blocks).ok_or(Error::InvalidGeometry)?;
        // Until the last step clears it, the flag makes the volume read as not formatted.
        let sb = Superblock {
            block_size: layout.block_size,
            block_count: n,
            sequence: 1,
            checkpoint_seq: 0,
            manifest: 0,
            free_blocks: n - layout.data_start,
            inode_size: modules::BASE_INODE_SIZE,
            flags: FLAG_FORMATTING,
            created: opts.now,
            modified: opts.now,
            wal_blocks,
            volume_id: opts.volume_id,
        };
        let blk = block_of(bufs.scratch, bs)?;
        // An earlier volume's superblocks go first: from here until the flag is cleared, a cut
        // leaves a device that reads as not formatted, never an old superblock over new
        // structures.
        blk.fill(0);
        dev.write_block(SB_PRIMARY, blk)?;
        dev.write_block(SB_MIRROR, blk)?;
        dev.flush()?;
        // Bitmap: metadata blocks and the tail past the last block are allocated.
        let bpb = layout.bits_per_block();
        for i in 0..layout.bitmap_blocks {
            blk.fill(0);
            let base = i.saturating_mul(bpb);
            let bits = bitmap_block::bits_mut(blk);
            let meta_end = layout.data_start.saturating_sub(base).min(bpb);
            bitmap::set_range(bits, 0, meta_end, true).ok_or(Error::InvalidGeometry)?;
            let valid = n.saturating_sub(base).min(bpb);
            bitmap::set_range(bits, valid, bpb - valid, true).ok_or(Error::InvalidGeometry)?;
            let idx = u32::try_from(i).map_err(|_| Error::InvalidGeometry)?;
            bitmap_block::seal(blk, idx).ok_or(Error::InvalidGeometry)?;
            dev.write_block(BlockNo(layout.bitmap_start + i), blk)?;
        }
        regions::dir_init(blk).ok_or(Error::InvalidGeometry)?;
        dev.write_block(BlockNo(layout.regdir), blk)?;
        regions::rpt_init(blk).ok_or(Error::InvalidGeometry)?;
        dev.write_block(BlockNo(layout.rpt), blk)?;
        Wal::format(&mut dev, &layout, blk)?;
        dev.flush()?;
        sb.encode(blk).ok_or(Error::InvalidGeometry)?;
        dev.write_block(SB_PRIMARY, blk)?;
        dev.flush()?;
        dev.write_block(SB_MIRROR, blk)?;
        dev.flush()?;
        let mut vol = Self::open(dev, bufs, true)?;
        for m in modules::CATALOGUE {
            if opts.modules.contains(m.flag()) {
                vol.add_module_regions(m, opts.now)?;
            }
        }
        vol.finish_format(opts.now)?;
        Ok(vol)
    }

    /// The format's last step: a transaction that rewrites both superblocks without
    /// [`FLAG_FORMATTING`].
    fn finish_format(&mut self, now: u64) -> Result<(), Error<D::Error>> {
        self.abort_tx();
        let mut sb = self.sb;
        sb.flags &= !FLAG_FORMATTING;
        sb.free_blocks = self.free_blocks;
        sb.checkpoint_seq = self.wal.last_seq().next().0;
        sb.modified = now;
        sb.sequence = sb.sequence.saturating_add(1);
        self.stage_superblocks(&sb)?;
        self.commit_tx()?;
        self.sb = sb;
        Ok(())
    }

    /// Stages both superblock copies as `sb` in the open transaction.
    fn stage_superblocks(&mut self, sb: &Superblock) -> Result<(), Error<D::Error>> {
        for b in [SB_PRIMARY, SB_MIRROR] {
            let buf = self.view(b, true)?;
            sb.encode(buf).ok_or(Error::InvalidGeometry)?;
            self.stage_new_view(b)?;
        }
        Ok(())
    }

    /// Mounts the volume on `dev`: picks the newest valid superblock, replays the WAL, checks the
    /// region directory and pointer table, and counts free space. A volume whose format did not
    /// finish is [`Error::NotFormatted`].
    pub fn mount(dev: D, bufs: Buffers<'b>) -> Result<Self, Error<D::Error>> {
        Self::open(dev, bufs, false)
    }

    /// Mounts the volume on `dev`, or formats it with `opts` if it holds none: no valid
    /// superblock (a blank or erased device), or a format that a cut or a failure interrupted
    /// (found after the log is recovered, so a format that finished is never redone). Any
    /// other problem is returned, never formatted over: a corrupt volume
    /// ([`Error::Corrupt`]), one of another format version or geometry. The firmware's entry
    /// point: a cut at any point of the format it may run leaves a device this call handles.
    /// The device needs at least 16 blocks (64 KiB of 4 KiB flash sectors: a 4-block log, 5
    /// data blocks, [`Error::InvalidGeometry`] below that); the device is consumed either way.
    pub fn mount_or_format(
        mut dev: D,
        opts: &FormatOptions,
        mut bufs: Buffers<'b>,
    ) -> Result<Self, Error<D::Error>> {
        check_buffers::<D::Error>(dev.block_size(), dev.reads_partial(), &bufs)?;
        if Self::formatted(&mut dev, &mut bufs)? {
            Self::mount(dev, bufs)
        } else {
            Self::format(dev, opts, bufs)
        }
    }

    /// Whether `dev` holds a volume whose format finished: a valid superblock without
    /// [`FLAG_FORMATTING`], or with it until the log's recovery (run here as a mount would run
    /// it) clears it. `Ok(false)` for no valid superblock at all.
    fn formatted(dev: &mut D, bufs: &mut Buffers<'_>) -> Result<bool, Error<D::Error>> {
        let bs = dev.block_size();
        let (scratch, page) = bufs.scratch.split_at_mut(bs);
        let sb = match pick_superblock(dev, scratch) {
            Ok((sb, _)) => sb,
            Err(Error::NotFormatted) => return Ok(false),
            Err(e) => return Err(e),
        };
        if sb.flags & FLAG_FORMATTING == 0 {
            return Ok(true);
        }
        let (sb2, ..) = Self::recover(dev, scratch, page)?;
        Ok(sb2.flags & FLAG_FORMATTING == 0)
    }

    /// Picks the newest valid superblock, repairs the other copy, replays the log (which may
    /// rewrite the superblocks) and picks again; returns that superblock, the layout, the log
    /// and what recovery found. `page` becomes the log's buffer.
    fn recover<'x>(
        dev: &mut D,
        scratch: &mut [u8],
        page: &'x mut [u8],
    ) -> Result<(Superblock, Layout, Wal<'x>, RecoveryReport), Error<D::Error>> {
        let (sb, layout) = pick_superblock(dev, scratch)?;
        // Recovery may rewrite the superblock; never let it overwrite the only valid copy.
        repair_superblock_copy(dev, scratch)?;
        let salt = sb.wal_salt();
        let (wal, report) = Wal::open(dev, &layout, salt, Some(SB_MIRROR), page, scratch)?;
        // Recovery may have rewritten the superblock: read it again.
        let (sb2, layout2) = pick_superblock(dev, scratch)?;
        if layout2 != layout || sb2.wal_salt() != salt {
            return Err(Error::Corrupt(Structure::Superblock));
        }
        Ok((sb2, layout, wal, report))
    }

    /// [`Volume::mount`]; `formatting` accepts a superblock with [`FLAG_FORMATTING`] (the
    /// format's own mount).
    fn open(mut dev: D, bufs: Buffers<'b>, formatting: bool) -> Result<Self, Error<D::Error>> {
        let bs = dev.block_size();
        check_buffers::<D::Error>(bs, dev.reads_partial(), &bufs)?;
        let (scratch, page) = bufs.scratch.split_at_mut(bs);
        let (sb2, layout, wal, report) = Self::recover(&mut dev, scratch, page)?;
        if sb2.flags & FLAG_FORMATTING != 0 && !formatting {
            return Err(Error::NotFormatted);
        }
        let mut vol = Volume {
            dev,
            layout,
            sb: sb2,
            wal,
            tx: TxBuf::new(bufs.txn, bs),
            scratch,
            free_blocks: 0,
            tx_free_delta: 0,
            index: bufs.index,
            objects: None,
            names: None,
            summaries: None,
            report,
            spans: heapless::Vec::new(),
            tx_freed: Some(heapless::Vec::new()),
            tx_reallocated: false,
            idx_touched: Some(heapless::Vec::new()),
            tx_sets_counters: false,
        };
        vol.check_regions()?;
        vol.check_metadata_allocated()?;
        vol.free_blocks = vol.count_free()?;
        vol.load_objects()?;
        vol.load_names()?;
        Ok(vol)
    }

    /// Checkpoints and returns the device.
    pub fn unmount(mut self) -> Result<D, Error<D::Error>> {
        self.checkpoint()?;
        Ok(self.dev)
    }

    /// Returns the device without a checkpoint (as a power cut would leave it, less the cut).
    pub fn into_device(self) -> D {
        self.dev
    }

    /// Makes every committed transaction durable in place and empties the log.
    pub fn checkpoint(&mut self) -> Result<(), Error<D::Error>> {
        let Volume {
            wal, dev, scratch, ..
        } = self;
        wal.checkpoint(dev, scratch)
    }

    /// Makes every commit so far durable: one flush if any is outstanding. Only needed in
    /// [`Durability::Deferred`] mode; in the default mode every commit is durable on return.
    pub fn sync(&mut self) -> Result<(), Error<D::Error>> {
        let Volume { wal, dev, .. } = self;
        wal.sync(dev)
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
        &mut self.dev
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
    pub fn read_block(&mut self, b: BlockNo, buf: &mut [u8]) -> Result<(), Error<D::Error>> {
        if b.0 >= self.layout.block_count || buf.len() != self.layout.bs() {
            return Err(Error::OutOfRange);
        }
        let Volume { wal, dev, .. } = self;
        wal.read(dev, b, buf)
    }

    /// Starts a transaction. Dropping it without commit rolls it back (no I/O).
    pub fn begin(&mut self) -> Transaction<'_, 'b, D, K> {
        self.abort_tx();
        Transaction { vol: self }
    }

    /// Free-space queries through the committed bitmap.
    pub fn first_fit(&mut self, n: u64) -> Result<Option<BlockNo>, Error<D::Error>> {
        self.abort_tx();
        let (mut src, buf) = self.bitmap_source();
        scanner::first_fit(&mut src, n, buf)
    }

    /// Calls `f` with every free run of at least `m` blocks until it returns `false`.
    pub fn free_runs(
        &mut self,
        m: u64,
        f: impl FnMut(Extent) -> bool,
    ) -> Result<(), Error<D::Error>> {
        self.abort_tx();
        let (mut src, buf) = self.bitmap_source();
        scanner::free_runs(&mut src, m, buf, f)
    }

    /// Counts free blocks by scanning the bitmap.
    pub fn count_free(&mut self) -> Result<u64, Error<D::Error>> {
        let (mut src, buf) = self.bitmap_source();
        scanner::count_free(&mut src, buf)
    }

    /// Whether block `b` is allocated in the committed bitmap (plus the open transaction).
    pub fn is_allocated(&mut self, b: BlockNo) -> Result<bool, Error<D::Error>> {
        if b.0 >= self.layout.block_count {
            return Err(Error::OutOfRange);
        }
        let bpb = self.layout.bits_per_block();
        let idx = b.0 / bpb;
        let (mut src, buf) = self.bitmap_source();
        let bits = src.block(idx, buf)?;
        Ok(bitmap::get(bits, b.0 % bpb))
    }

    fn bitmap_source(&mut self) -> (VolBitmap<'_, 'b, D, K>, &mut [u8]) {
        let bs = self.layout.bs();
        let buf = self.scratch.get_mut(..bs).unwrap_or(&mut []);
        (
            VolBitmap {
                dev: &mut self.dev,
                wal: &mut self.wal,
                tx: &self.tx,
                layout: &self.layout,
            },
            buf,
        )
    }

    pub(crate) fn abort_tx(&mut self) {
        self.clear_tx(false);
    }

    fn clear_tx(&mut self, committed: bool) {
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
        self.idx_touched = Some(heapless::Vec::new());
        if self.tx_sets_counters {
            self.tx_sets_counters = false;
            // The object code reloads its state (and the counters) before its next use.
            if let Some(o) = self.objects.as_mut() {
                o.stale = true;
            }
        }
    }

    /// Attaches one [`Summary`] per bitmap block (caller memory, at least
    /// `layout().bitmap_blocks` entries) and builds them. From then on every allocation and free
    /// keeps them current and first-fit allocation reads only the bitmap block that holds the
    /// answer.
    pub fn attach_summaries(&mut self, sums: &'b mut [Summary]) -> Result<(), Error<D::Error>> {
        self.abort_tx();
        let n = usize::try_from(self.layout.bitmap_blocks).map_err(|_| Error::InvalidGeometry)?;
        let sums = sums.get_mut(..n).ok_or(Error::BufferTooSmall {
            need: n.saturating_mul(core::mem::size_of::<Summary>()),
        })?;
        {
            let (mut src, buf) = self.bitmap_source();
            scanner::summarize_all(&mut src, sums, buf)?;
        }
        self.summaries = Some(sums);
        Ok(())
    }

    /// First fit through the summaries (refreshing any unknown ones first), or the plain scan.
    fn find_free(&mut self, n: u64) -> Result<Option<BlockNo>, Error<D::Error>> {
        let Some(sums) = self.summaries.take() else {
            let (mut src, buf) = self.bitmap_source();
            return scanner::first_fit(&mut src, n, buf);
        };
        let bpb = self.layout.bits_per_block();
        let total = self.layout.block_count;
        let r = (|| {
            for (i, s) in sums.iter_mut().enumerate() {
                if *s == Summary::UNKNOWN {
                    let base = (i as u64).saturating_mul(bpb);
                    let (mut src, buf) = self.bitmap_source();
                    let bits = src.block(i as u64, buf)?;
                    *s = scanner::summarize(bits, total.saturating_sub(base).min(bpb));
                }
            }
            let (mut src, buf) = self.bitmap_source();
            scanner::first_fit_summarized(&mut src, sums, n, buf)
        })();
        self.summaries = Some(sums);
        r
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
    pub(crate) fn view(&mut self, b: BlockNo, fresh: bool) -> Result<&mut [u8], Error<D::Error>> {
        if !self.wal.target_ok(b) {
            return Err(Error::OutOfRange);
        }
        self.log_room_for(b)?;
        if fresh {
            self.tx.stage::<D::Error>(b, true)?;
        }
        self.spans.clear();
        self.load_scratch(b)
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

    /// Whether block `b`, free in the open transaction, is allocated in the committed state
    /// (so the transaction freed it and its new content must go through the log).
    pub(crate) fn committed_allocated(&mut self, b: BlockNo) -> Result<bool, Error<D::Error>> {
        if let Some(freed) = &self.tx_freed {
            return Ok(freed.iter().any(|e| e.contains(b)));
        }
        let bpb = self.layout.bits_per_block();
        let idx = b.0 / bpb;
        let bs = self.layout.bs();
        let buf = block_of(self.scratch, bs)?;
        self.wal
            .read(&mut self.dev, BlockNo(self.layout.bitmap_start + idx), buf)?;
        let idx32 = u32::try_from(idx).map_err(|_| Error::Corrupt(Structure::Bitmap))?;
        bitmap_block::check(buf, idx32).map_err(|_| Error::Corrupt(Structure::Bitmap))?;
        Ok(bitmap::get(bitmap_block::bits(buf), b.0 % bpb))
    }

    /// Reads bytes `at..at + out.len()` of block `b` through the open transaction without
    /// reading the whole block, if [`Wal::read_part`] can (a block in the log is rebuilt over
    /// the range; a home block needs a device that reads part of a block); returns `false`,
    /// having read nothing, otherwise (read the whole block with [`Volume::read_through`]).
    pub(crate) fn read_through_part(
        &mut self,
        b: BlockNo,
        at: usize,
        out: &mut [u8],
    ) -> Result<bool, Error<D::Error>> {
        if b.0 >= self.layout.block_count {
            return Err(Error::OutOfRange);
        }
        let Volume { tx, wal, dev, .. } = self;
        if tx.is_fresh(b) {
            out.fill(0);
        } else if !wal.read_part(dev, b, at, out)? {
            return Ok(false);
        }
        tx.overlay(b, at, out);
        Ok(true)
    }

    /// Reads block `b` through the open transaction.
    pub(crate) fn read_through(
        &mut self,
        b: BlockNo,
        buf: &mut [u8],
    ) -> Result<(), Error<D::Error>> {
        if b.0 >= self.layout.block_count || buf.len() != self.layout.bs() {
            return Err(Error::OutOfRange);
        }
        let Volume { tx, wal, dev, .. } = self;
        read_staged(tx, wal, dev, b, buf)
    }

    /// Sets bits `within..within + n` of `blk_no`, a block in the allocation bitmap's block
    /// format with trailer index `tag`, to `value` in the open transaction; each must hold the
    /// opposite value first (else `Corrupt(what)`). The scratch keeps the block's new content.
    pub(crate) fn set_bits(
        &mut self,
        blk_no: BlockNo,
        tag: u32,
        within: u64,
        n: u64,
        value: bool,
        what: Structure,
    ) -> Result<(), Error<D::Error>> {
        let first_touch = !self.tx.contains(blk_no);
        let blk = self.view(blk_no, false)?;
        if first_touch && bitmap_block::check(blk, tag).is_err() {
            return Err(Error::Corrupt(what));
        }
        let bits = bitmap_block::bits_mut(blk);
        if !bitmap::all(bits, within, n, !value) {
            return Err(Error::Corrupt(what));
        }
        bitmap::set_range(bits, within, n, value).ok_or(Error::Corrupt(what))?;
        bitmap_block::seal(blk, tag).ok_or(Error::Corrupt(what))?;
        let (lo, hi) = ((within / 8) as usize, (within + n).div_ceil(8) as usize);
        self.touched(lo, hi - lo);
        // The trailer's index and reserved word were checked: only the checksum changes.
        let bs = self.layout.bs();
        self.touched(bs - 8, 8);
        self.stage_view(blk_no)
    }

    /// Sets the bitmap bits of `e` to `value` inside the open transaction. Every bit must hold
    /// the opposite value first (so a double free or double allocation is caught).
    pub(crate) fn mark(&mut self, e: Extent, value: bool) -> Result<(), Error<D::Error>> {
        let end = e.end().ok_or(Error::OutOfRange)?;
        if e.len == 0 || e.start.0 < self.layout.data_start || end > self.layout.block_count {
            return Err(Error::OutOfRange);
        }
        let bpb = self.layout.bits_per_block();
        let total = self.layout.block_count;
        let mut at = e.start.0;
        while at < end {
            let idx = at / bpb;
            let within = at % bpb;
            let n = (bpb - within).min(end - at);
            let blk_no = BlockNo(self.layout.bitmap_start + idx);
            let idx32 = u32::try_from(idx).map_err(|_| Error::Corrupt(Structure::Bitmap))?;
            self.set_bits(blk_no, idx32, within, n, value, Structure::Bitmap)?;
            let bits = bitmap_block::bits(self.scratch.get(..self.layout.bs()).unwrap_or(&[]));
            let summary = scanner::summarize(bits, total.saturating_sub(idx * bpb).min(bpb));
            if let Some(s) = self
                .summaries
                .as_deref_mut()
                .and_then(|s| s.get_mut(idx as usize))
            {
                *s = summary;
            }
            at += n;
        }
        if value {
            let end = e.start.0.saturating_add(e.len);
            self.tx_reallocated |= self.tx_freed.as_ref().is_none_or(|f| {
                f.iter()
                    .any(|x| x.start.0 < end && e.start.0 < x.start.0.saturating_add(x.len))
            });
        } else if let Some(f) = self.tx_freed.as_mut() {
            if f.push(e).is_err() {
                self.tx_freed = None;
            }
        }
        let delta = i64::try_from(e.len).map_err(|_| Error::OutOfRange)?;
        self.tx_free_delta = if value {
            self.tx_free_delta.saturating_sub(delta)
        } else {
            self.tx_free_delta.saturating_add(delta)
        };
        Ok(())
    }

    /// Allocates the first free run of `n` blocks inside the open transaction.
    pub(crate) fn alloc(&mut self, n: u64) -> Result<Extent, Error<D::Error>> {
        let start = self.find_free(n)?.ok_or(Error::NoSpace)?;
        let e = Extent { start, len: n };
        self.mark(e, true)?;
        Ok(e)
    }

    /// Commits the open transaction through the WAL.
    pub(crate) fn commit_tx(&mut self) -> Result<Seq, Error<D::Error>> {
        // The counters the transaction leaves: as the object code keeps them (unless its state
        // is stale and they were not set outright), or unchanged.
        let set = self.tx_sets_counters;
        let counters = self
            .objects
            .filter(|o| !o.stale || set)
            .map_or(self.wal.counters(), |o| o.counters);
        let Volume {
            wal,
            dev,
            tx,
            scratch,
            ..
        } = self;
        let before = wal.last_seq();
        let r = wal.commit(dev, tx, scratch, &counters);
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
                    let _ = self.dev.discard(e.start, e.len);
                }
            }
        }
        self.clear_tx(committed);
        r
    }

    fn region_entries(&mut self) -> Result<usize, Error<D::Error>> {
        let bs = self.layout.bs();
        let buf = block_of(self.scratch, bs)?;
        let b = BlockNo(self.layout.regdir);
        let Volume { tx, wal, dev, .. } = self;
        read_staged(tx, wal, dev, b, buf)?;
        regions::dir_check(buf).map_err(|_| Error::Corrupt(Structure::RegionDirectory))
    }

    /// The regions of the module with bit `bit`, from the committed directory.
    pub fn module_regions(
        &mut self,
        bit: u8,
    ) -> Result<heapless::Vec<RegionEntry, 4>, Error<D::Error>> {
        self.abort_tx();
        let bs = self.layout.bs();
        let buf = block_of(self.scratch, bs)?;
        self.wal
            .read(&mut self.dev, BlockNo(self.layout.rpt), buf)?;
        let c = Structure::RegionPointerTable;
        let (first, count) = regions::rpt_get(buf, bit as usize).map_err(|_| Error::Corrupt(c))?;
        self.wal
            .read(&mut self.dev, BlockNo(self.layout.regdir), buf)?;
        let dir = &*buf;
        let mut out = heapless::Vec::new();
        for i in 0..count {
            let idx = usize::from(first) + usize::from(i);
            let e = regions::dir_entry(dir, idx)
                .map_err(|_| Error::Corrupt(Structure::RegionDirectory))?;
            out.push(e).map_err(|_| Error::Corrupt(c))?;
        }
        Ok(out)
    }

    /// The first region of the module with bit `bit`, or `None` if the volume does not have
    /// the module (a module in the manifest without a region is `Corrupt`).
    pub(crate) fn module_region(&mut self, bit: u8) -> Result<Option<Extent>, Error<D::Error>> {
        if !self
            .modules()
            .contains(ModuleSet::from_bits_retain(1u64 << (bit & 63)))
        {
            return Ok(None);
        }
        let regions = self.module_regions(bit)?;
        regions
            .first()
            .map(|r| Some(r.extent))
            .ok_or(Error::Corrupt(Structure::RegionPointerTable))
    }

    /// Calls `f` with every region directory entry.
    pub fn for_each_region(
        &mut self,
        mut f: impl FnMut(&RegionEntry),
    ) -> Result<(), Error<D::Error>> {
        self.abort_tx();
        let n = self.region_entries()?;
        let bs = self.layout.bs();
        let buf = block_of(self.scratch, bs)?;
        for i in 0..n {
            let e = regions::dir_entry(buf, i)
                .map_err(|_| Error::Corrupt(Structure::RegionDirectory))?;
            f(&e);
        }
        Ok(())
    }

    /// Verifies the whole volume without changing it: both superblock copies, both WAL headers,
    /// every bitmap block, the free count, the region directory and pointer table, and the slot
    /// index with its counters. Returns the first problem found.
    pub fn verify(&mut self) -> Result<(), Error<D::Error>> {
        self.abort_tx();
        let bs = self.layout.bs();
        let a = block_of(self.scratch, bs)?;
        for b in [SB_PRIMARY, SB_MIRROR] {
            self.wal.read(&mut self.dev, b, a)?;
            let sb = Superblock::decode(a).map_err(|_| Error::Corrupt(Structure::Superblock))?;
            if validate_sb(&sb, &self.dev).ok() != Some(self.layout) {
                return Err(Error::Corrupt(Structure::Superblock));
            }
        }
        for b in [
            crate::format::layout::WAL_HDR_A,
            crate::format::layout::WAL_HDR_B,
        ] {
            self.dev.read_block(b, a)?;
            crate::format::wal_header::WalHeader::decode(a)
                .map_err(|_| Error::Corrupt(Structure::WalHeader))?;
        }
        if self.count_free()? != self.free_blocks {
            return Err(Error::Corrupt(Structure::Bitmap));
        }
        self.check_regions()?;
        self.check_metadata_allocated()?;
        self.verify_objects()?;
        self.verify_names().map(|_| ())
    }

    /// Reads block `b` through the open transaction into the scratch block and returns it.
    pub(crate) fn load_scratch(&mut self, b: BlockNo) -> Result<&mut [u8], Error<D::Error>> {
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
        read_staged(tx, wal, dev, b, buf)?;
        Ok(buf)
    }

    /// The scratch block (what [`Self::view`] loaded last, until something else reads).
    pub(crate) fn scratch_block(&mut self) -> Result<&mut [u8], Error<D::Error>> {
        let bs = self.layout.bs();
        block_of(self.scratch, bs)
    }

    /// Validates the region directory and pointer table against each other, the geometry and
    /// the bitmap.
    fn check_regions(&mut self) -> Result<(), Error<D::Error>> {
        let bs = self.layout.bs();
        let n_blocks = self.layout.block_count;
        let data_start = self.layout.data_start;
        let manifest = self.sb.manifest;
        let rd = Structure::RegionDirectory;
        let rp = Structure::RegionPointerTable;
        let buf = block_of(self.scratch, bs)?;
        self.wal
            .read(&mut self.dev, BlockNo(self.layout.rpt), buf)?;
        regions::rpt_check(buf).map_err(|_| Error::Corrupt(rp))?;
        let mut table = [(0u16, 0u16); RPT_SLOTS];
        for (bit, t) in table.iter_mut().enumerate() {
            *t = regions::rpt_get(buf, bit).map_err(|_| Error::Corrupt(rp))?;
        }
        self.wal
            .read(&mut self.dev, BlockNo(self.layout.regdir), buf)?;
        let dir = &*buf;
        let n = regions::dir_check(dir).map_err(|_| Error::Corrupt(rd))?;
        for i in 0..n {
            let e = regions::dir_entry(dir, i).map_err(|_| Error::Corrupt(rd))?;
            let end = e.extent.end().ok_or(Error::Corrupt(rd))?;
            if e.extent.len == 0 || e.extent.start.0 < data_start || end > n_blocks {
                return Err(Error::Corrupt(rd));
            }
            if modules::by_bit(e.module).is_none() {
                return Err(Error::Corrupt(rd));
            }
            for j in 0..i {
                let o = regions::dir_entry(dir, j).map_err(|_| Error::Corrupt(rd))?;
                if o.extent.overlaps(&e.extent) {
                    return Err(Error::Corrupt(rd));
                }
            }
        }
        let mut referenced = 0usize;
        for (bit, &(first, count)) in table.iter().enumerate() {
            let present = manifest & (1u64 << bit) != 0;
            let module = modules::by_bit(bit as u8);
            match (present, module) {
                (false, _) if count == 0 => continue,
                (true, Some(m)) if usize::from(count) == m.regions.len() => {}
                _ => return Err(Error::Corrupt(rp)),
            }
            for k in 0..count {
                let idx = usize::from(first) + usize::from(k);
                if idx >= n {
                    return Err(Error::Corrupt(rp));
                }
                let e = regions::dir_entry(dir, idx).map_err(|_| Error::Corrupt(rd))?;
                if usize::from(e.module) != bit || e.index != k {
                    return Err(Error::Corrupt(rp));
                }
            }
            referenced += usize::from(count);
        }
        // Each entry is owned by the one pointer of its module, so equal counts mean every
        // entry is referenced exactly once: no orphan, duplicate or cycle.
        if referenced != n {
            return Err(Error::Corrupt(rp));
        }
        for i in 0..n {
            let e = {
                let dir = block_of::<D::Error>(self.scratch, bs)?;
                self.wal
                    .read(&mut self.dev, BlockNo(self.layout.regdir), dir)?;
                regions::dir_entry(dir, i).map_err(|_| Error::Corrupt(rd))?
            };
            if !self.extent_allocated(e.extent)? {
                return Err(Error::Corrupt(Structure::Bitmap));
            }
        }
        Ok(())
    }

    /// Every fixed metadata block (`0..data_start`) must be marked allocated.
    fn check_metadata_allocated(&mut self) -> Result<(), Error<D::Error>> {
        let meta = Extent {
            start: BlockNo(0),
            len: self.layout.data_start,
        };
        if self.extent_allocated(meta)? {
            Ok(())
        } else {
            Err(Error::Corrupt(Structure::Bitmap))
        }
    }

    /// Whether every block of `e` is allocated (committed bitmap plus open transaction).
    pub(crate) fn extent_allocated(&mut self, e: Extent) -> Result<bool, Error<D::Error>> {
        let end = e.end().ok_or(Error::OutOfRange)?;
        if end > self.layout.block_count {
            return Ok(false);
        }
        let bpb = self.layout.bits_per_block();
        let mut at = e.start.0;
        while at < end {
            let idx = at / bpb;
            let within = at % bpb;
            let n = (bpb - within).min(end - at);
            let (mut src, buf) = self.bitmap_source();
            let bits = src.block(idx, buf)?;
            if !bitmap::all(bits, within, n, true) {
                return Ok(false);
            }
            at += n;
        }
        Ok(true)
    }

    /// Pre-flight for [`Volume::add_module_regions`]: where the module's regions would go. Writes
    /// nothing.
    pub fn can_add_module(&mut self, m: &'static Module) -> Result<ModulePlan, Error<D::Error>> {
        self.abort_tx();
        let r = self.plan_module(m);
        self.abort_tx();
        r
    }

    /// Adds module `m` online: allocates its regions and updates bitmap, region directory,
    /// pointer table and both superblocks in one WAL transaction. `now` is the caller's clock.
    #[doc(alias = "OnlineRegionAddition")]
    pub fn add_module_regions(
        &mut self,
        m: &'static Module,
        now: u64,
    ) -> Result<ModulePlan, Error<D::Error>> {
        self.abort_tx();
        let r = self.add_module_tx(m, now);
        self.abort_tx();
        r
    }

    fn plan_module(&mut self, m: &'static Module) -> Result<ModulePlan, Error<D::Error>> {
        if modules::by_bit(m.bit) != Some(m) {
            return Err(Error::UnknownModule);
        }
        if self.modules().contains(m.flag()) {
            return Err(Error::ModuleAlreadyPresent);
        }
        let n = self.region_entries()?;
        if n.saturating_add(m.regions.len()) > regions::dir_capacity(self.layout.bs()) {
            return Err(Error::DirectoryFull);
        }
        let mut plan = ModulePlan {
            module: m,
            regions: heapless::Vec::new(),
            inode_size: modules::inode_size(self.modules() | m.flag()),
        };
        for i in 0..m.regions.len() {
            let len =
                modules::module_region_blocks(m, i, self.layout.bs(), self.layout.block_count);
            let e = self.alloc(len)?;
            plan.regions.push(e).map_err(|_| Error::DirectoryFull)?;
        }
        Ok(plan)
    }

    fn add_module_tx(
        &mut self,
        m: &'static Module,
        now: u64,
    ) -> Result<ModulePlan, Error<D::Error>> {
        // The superblocks first, as they are (rewritten last): staged fresh, they count for
        // their few nonzero bytes, not as whole blocks, in a small log's room.
        let sb = self.sb;
        self.stage_superblocks(&sb)?;
        let plan = self.plan_module(m)?;
        // The regions' first content next (staged fresh, mostly zeros), before the directory
        // and pointer table, which count whole.
        self.init_module_regions(m, &plan)?;
        let dir_block = BlockNo(self.layout.regdir);
        let first = self.region_entries()?;
        {
            let dir = self.view(dir_block, false)?;
            for (i, (kind, e)) in m.regions.iter().zip(plan.regions.iter()).enumerate() {
                let entry = RegionEntry {
                    module: m.bit,
                    kind: *kind,
                    index: u16::try_from(i).map_err(|_| Error::DirectoryFull)?,
                    extent: *e,
                };
                regions::dir_push(dir, &entry).ok_or(Error::DirectoryFull)?;
            }
            let (at, n) = regions::dir_entries(first, m.regions.len());
            self.touched(at, n);
            self.touched(regions::DIR_COUNT.0, regions::DIR_COUNT.1);
            self.touched(self.layout.bs() - regions::SEAL, regions::SEAL);
            self.stage_view(dir_block)?;
        }
        {
            let rpt_block = BlockNo(self.layout.rpt);
            let rpt = self.view(rpt_block, false)?;
            regions::rpt_check(rpt).map_err(|_| Error::Corrupt(Structure::RegionPointerTable))?;
            let first = u16::try_from(first).map_err(|_| Error::DirectoryFull)?;
            let count = u16::try_from(m.regions.len()).map_err(|_| Error::DirectoryFull)?;
            regions::rpt_set(rpt, m.bit as usize, first, count)
                .ok_or(Error::Corrupt(Structure::RegionPointerTable))?;
            let (at, n) = regions::rpt_slot(m.bit as usize);
            self.touched(at, n);
            self.touched(self.layout.bs() - regions::SEAL, regions::SEAL);
            self.stage_view(rpt_block)?;
        }
        let mut sb = self.sb;
        sb.manifest |= m.flag().bits();
        sb.free_blocks = self.free_blocks.saturating_add_signed(self.tx_free_delta);
        sb.checkpoint_seq = self.wal.last_seq().next().0;
        sb.inode_size = plan.inode_size;
        sb.modified = now;
        sb.sequence = sb.sequence.saturating_add(1);
        self.stage_superblocks(&sb)?;
        self.commit_tx()?;
        self.sb = sb;
        self.on_module_added(m)?;
        Ok(plan)
    }

    /// Module-specific content written in the same transaction as the regions.
    fn init_module_regions(
        &mut self,
        m: &'static Module,
        plan: &ModulePlan,
    ) -> Result<(), Error<D::Error>> {
        if m.flag() == ModuleSet::OBJECTS {
            if let Some(r) = plan.regions.first() {
                self.init_index(*r)?;
            }
        }
        if m.flag() == ModuleSet::NAMES {
            if !self.modules().contains(ModuleSet::OBJECTS) {
                return Err(Error::ModuleMissing);
            }
            if let Some(r) = plan.regions.first() {
                self.init_names(*r)?;
            }
        }
        Ok(())
    }

    /// Module-specific state loaded after a module is added.
    fn on_module_added(&mut self, m: &'static Module) -> Result<(), Error<D::Error>> {
        if m.flag() == ModuleSet::OBJECTS {
            self.load_objects()?;
        }
        if m.flag() == ModuleSet::NAMES {
            self.load_names()?;
        }
        Ok(())
    }
}

/// A transaction on a volume: stage block writes, allocate and release blocks, then commit (one
/// WAL transaction) or drop to roll back. Nothing reaches the device before commit.
#[doc(alias = "WalJournaledRegionWriter")]
pub struct Transaction<'v, 'b, D: BlockDevice, const K: usize> {
    vol: &'v mut Volume<'b, D, K>,
}

impl<D: BlockDevice, const K: usize> Transaction<'_, '_, D, K> {
    /// Stages a whole-block write of `data` to data-area block `b` (one block of the `txn`
    /// memory and a range's bookkeeping; on [`Error::TxCapacity`] nothing is staged and the
    /// transaction can still commit what it holds).
    pub fn write(&mut self, b: BlockNo, data: &[u8]) -> Result<(), Error<D::Error>> {
        let l = &self.vol.layout;
        if b.0 < l.data_start || b.0 >= l.block_count {
            return Err(Error::OutOfRange);
        }
        if data.len() != l.bs() {
            return Err(Error::BufferTooSmall { need: l.bs() });
        }
        let v = &mut *self.vol;
        v.log_room_for(b)?;
        let (room, used) = v.tx.bytes();
        if !v.wal.is_dirty(b) {
            // The log takes the whole block: nothing of its committed content is needed.
            if used.saturating_add(crate::tx_buffer::RANGE_OVERHEAD + data.len()) > room {
                return Err(Error::TxCapacity);
            }
            v.tx.stage::<D::Error>(b, true)?;
            return v.tx.write(b, 0, data);
        }
        // The log may extend the block's chain: only the bytes that differ from its content.
        let bs = v.layout.bs();
        v.view(b, false)?;
        let Volume { tx, scratch, .. } = v;
        let cur = block_of(scratch, bs)?;
        let mut need = 0usize;
        crate::wal::diff_ranges(data, Some(cur), &mut |s, e| {
            need += e - s + crate::tx_buffer::RANGE_OVERHEAD;
        });
        if used.saturating_add(need) > room {
            return Err(Error::TxCapacity);
        }
        tx.stage::<D::Error>(b, false)?;
        let mut err = None;
        crate::wal::diff_ranges(data, Some(cur), &mut |s, e| {
            if err.is_none() {
                if let Err(x) = tx.write::<D::Error>(b, s, data.get(s..e).unwrap_or(&[])) {
                    err = Some(x);
                }
            }
        });
        err.map_or(Ok(()), Err)
    }

    /// Reads block `b` as this transaction would leave it.
    pub fn read(&mut self, b: BlockNo, buf: &mut [u8]) -> Result<(), Error<D::Error>> {
        self.vol.read_through(b, buf)
    }

    /// Allocates the first free run of `n` blocks.
    pub fn allocate(&mut self, n: u64) -> Result<Extent, Error<D::Error>> {
        self.vol.alloc(n)
    }

    /// Releases the blocks of `e` (they must be allocated data blocks).
    pub fn release(&mut self, e: Extent) -> Result<(), Error<D::Error>> {
        self.vol.mark(e, false)
    }

    /// Sets the object counters this transaction leaves (they are logged in its commit marker
    /// and kept in the WAL header at checkpoints). For repair tools that rewrite the slot
    /// index: the engine keeps them itself for every object operation, and mount refuses
    /// counters that disagree with the index.
    /// Fails with [`Error::ModuleMissing`] on a volume without the objects module.
    pub fn set_object_counters(&mut self, c: Counters) -> Result<(), Error<D::Error>> {
        let o = self.vol.objects.as_mut().ok_or(Error::ModuleMissing)?;
        o.counters = c;
        self.vol.tx_sets_counters = true;
        Ok(())
    }

    /// Block updates staged so far.
    pub fn len(&self) -> usize {
        self.vol.tx.len()
    }

    /// Whether nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.vol.tx.is_empty()
    }

    /// Commits: durable when this returns `Ok`.
    pub fn commit(self) -> Result<Seq, Error<D::Error>> {
        self.vol.commit_tx()
    }

    /// Discards every staged change; the device is untouched.
    pub fn rollback(self) {}
}

impl<D: BlockDevice, const K: usize> Drop for Transaction<'_, '_, D, K> {
    fn drop(&mut self) {
        self.vol.abort_tx();
    }
}

struct VolBitmap<'x, 'b, D: BlockDevice, const K: usize> {
    dev: &'x mut D,
    wal: &'x mut Wal<'b>,
    tx: &'x TxBuf<'b, K>,
    layout: &'x Layout,
}

impl<D: BlockDevice, const K: usize> BitmapSource for VolBitmap<'_, '_, D, K> {
    type Error = Error<D::Error>;
    fn bits_per_block(&self) -> u64 {
        self.layout.bits_per_block()
    }
    fn total_bits(&self) -> u64 {
        self.layout.block_count
    }
    fn block<'s>(&'s mut self, idx: u64, buf: &'s mut [u8]) -> Result<&'s [u8], Self::Error> {
        let b = BlockNo(self.layout.bitmap_start.saturating_add(idx));
        if idx >= self.layout.bitmap_blocks {
            return Err(Error::Corrupt(Structure::Bitmap));
        }
        let staged = self.tx.contains(b);
        read_staged(self.tx, self.wal, self.dev, b, buf)?;
        if staged {
            // Checked when the transaction first changed it.
            return Ok(bitmap_block::bits(buf));
        }
        let idx32 = u32::try_from(idx).map_err(|_| Error::Corrupt(Structure::Bitmap))?;
        bitmap_block::check(buf, idx32).map_err(|_| Error::Corrupt(Structure::Bitmap))?;
        Ok(bitmap_block::bits(buf))
    }
}

/// Block `b` as the open transaction leaves it, into `buf` (one block): its committed content
/// (zeros if staged fresh) with the staged ranges over it.
fn read_staged<D: BlockDevice, const K: usize>(
    tx: &TxBuf<'_, K>,
    wal: &mut Wal<'_>,
    dev: &mut D,
    b: BlockNo,
    buf: &mut [u8],
) -> Result<(), Error<D::Error>> {
    if tx.is_fresh(b) {
        buf.fill(0);
    } else {
        wal.read(dev, b, buf)?;
    }
    tx.overlay(b, 0, buf);
    Ok(())
}

fn check_buffers<E>(bs: usize, partial: bool, bufs: &Buffers<'_>) -> Result<(), Error<E>> {
    if !valid_block_size(bs) {
        return Err(Error::InvalidGeometry);
    }
    let need = Buffers::scratch_min(bs, partial);
    if bufs.scratch.len() < need {
        return Err(Error::BufferTooSmall { need });
    }
    if bufs.txn.len() < Buffers::txn_min(bs) {
        return Err(Error::BufferTooSmall {
            need: Buffers::txn_min(bs),
        });
    }
    Ok(())
}

/// Reads both superblock copies and returns the newest one that is valid and consistent with
/// the device, with its layout.
fn pick_superblock<D: BlockDevice>(
    dev: &mut D,
    scratch: &mut [u8],
) -> Result<(Superblock, Layout), Error<D::Error>> {
    let bs = dev.block_size();
    let a = block_of(scratch, bs)?;
    dev.read_block(SB_PRIMARY, a)?;
    let ra = Superblock::decode(a);
    dev.read_block(SB_MIRROR, a)?;
    let rb = Superblock::decode(a);
    let mut best: Option<(Superblock, Layout)> = None;
    let mut first_err: Option<Error<D::Error>> = None;
    for r in [ra, rb] {
        match r
            .map_err(map_decode)
            .and_then(|sb| validate_sb(&sb, dev).map(|l| (sb, l)))
        {
            Ok((sb, l)) => {
                if best.is_none_or(|(x, _)| sb.sequence > x.sequence) {
                    best = Some((sb, l));
                }
            }
            Err(e) => {
                if first_err.is_none() || !matches!(e, Error::NotFormatted) {
                    first_err = Some(e);
                }
            }
        }
    }
    match (best, first_err) {
        (Some(x), _) => Ok(x),
        (None, Some(e)) => Err(e),
        (None, None) => Err(Error::NotFormatted),
    }
}

/// If exactly one superblock copy is valid, rewrites the other from it and flushes, so that a
/// replay that rewrites the primary and then the mirror always has one whole copy behind it.
fn repair_superblock_copy<D: BlockDevice>(
    dev: &mut D,
    scratch: &mut [u8],
) -> Result<(), Error<D::Error>> {
    let bs = dev.block_size();
    let a = block_of(scratch, bs)?;
    dev.read_block(SB_PRIMARY, a)?;
    let ok_a = Superblock::decode(a).is_ok_and(|sb| validate_sb(&sb, dev).is_ok());
    dev.read_block(SB_MIRROR, a)?;
    let ok_b = Superblock::decode(a).is_ok_and(|sb| validate_sb(&sb, dev).is_ok());
    // `a` holds the mirror.
    match (ok_a, ok_b) {
        (true, false) => {
            dev.read_block(SB_PRIMARY, a)?;
            dev.write_block(SB_MIRROR, a)?
        }
        (false, true) => dev.write_block(SB_PRIMARY, a)?,
        _ => return Ok(()),
    }
    dev.flush()?;
    Ok(())
}

fn map_decode<E>(e: DecodeError) -> Error<E> {
    match e {
        DecodeError::BadMagic => Error::NotFormatted,
        DecodeError::BadVersion(found) => Error::UnsupportedVersion { found },
        _ => Error::Corrupt(Structure::Superblock),
    }
}

fn validate_sb<D: BlockDevice>(sb: &Superblock, dev: &D) -> Result<Layout, Error<D::Error>> {
    if sb.block_size as usize != dev.block_size() || sb.block_count != dev.block_count() {
        return Err(Error::InvalidGeometry);
    }
    if sb.flags & !FLAG_FORMATTING != 0 || ModuleSet::from_bits(sb.manifest).is_none() {
        return Err(Error::Corrupt(Structure::Superblock));
    }
    Layout::compute(sb.block_size as usize, sb.block_count, sb.wal_blocks)
        .ok_or(Error::Corrupt(Structure::Superblock))
}

#[cfg(test)]
#[path = "volume_tests.rs"]
mod tests;
