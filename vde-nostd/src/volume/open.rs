//! Format, mount and recovery: how a device becomes a mounted [`Volume`]. A format writes every
//! structure through the log with the superblock's formatting flag set and clears it last, so a
//! format cut at any point mounts as `NotFormatted`; a mount picks the superblock
//! ([`super::superblock_choice`]), replays the log, then checks the regions and metadata
//! allocation ([`super::checks`]) before anything is changed.

use super::*;
use crate::error::MountError;

// Shared by the blocking and async builds: defined once, in the blocking one.
if_blocking! {
    /// Options for [`Volume::format`] and [`Volume::mount_or_format`]. A firmware can make them a
    /// `const`: `const OPTS: FormatOptions = FormatOptions::new(*b"my-device-store1");`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[cfg_attr(feature = "defmt", derive(defmt::Format))]
    pub struct FormatOptions {
        /// WAL blocks; `None` for the default (1/64 of the volume, 8..=256; a quarter, at least 4,
        /// of a volume under 32 blocks).
        pub wal_blocks: Option<u64>,
        /// Volume identity, kept in the superblock and mixed into the log's checksums, so that a
        /// stale log of an earlier volume in the same flash never validates. Any 16 bytes; distinct
        /// per format is best: a random value, or a chip's unique ID with a counter. A fixed value
        /// is safe (a format starts its log in an epoch above any earlier volume's), only less
        /// distinctive.
        pub volume_id: [u8; 16],
        /// Creation time from the caller's clock, in any unit (no_std has none). Recorded, and with
        /// the identity it seeds the log's checksums; 0 is fine on a device without a clock.
        pub now: u64,
        /// Modules to add right after formatting (each in its own transaction).
        pub modules: ModuleSet,
    }

    impl FormatOptions {
        /// The defaults ([`FormatOptions::default`]) with this volume identity, in a `const`.
        pub const fn new(volume_id: [u8; 16]) -> FormatOptions {
            FormatOptions {
                wal_blocks: None,
                volume_id,
                now: 0,
                modules: ModuleSet::OBJECTS,
            }
        }
    }

    impl Default for FormatOptions {
        /// The default log size, the `objects` module, a zero identity and time.
        fn default() -> Self {
            FormatOptions::new([0; 16])
        }
    }
}
if_async! {
    pub use crate::volume::open::{FormatOptions};
}

#[bisync]
impl<'b, D: BlockDevice, const K: usize> Volume<'b, D, K> {
    /// Formats `dev` as an empty volume and mounts it. To keep the device if this fails, pass
    /// `&mut device` (see [`Volume::mount_or_format`]).
    pub async fn format(
        dev: D,
        opts: &FormatOptions,
        bufs: Buffers<'b, K>,
    ) -> Result<Self, MountError<D::Error>> {
        let mut slot = None;
        Self::format_into(&mut slot, dev, opts, bufs).await?;
        slot.ok_or(MountError::NotFormatted)
    }

    /// [`Volume::format`] into `slot` (`Some` when it succeeds).
    #[inline(never)]
    async fn format_into(
        slot: &mut Option<Self>,
        dev: D,
        opts: &FormatOptions,
        bufs: Buffers<'b, K>,
    ) -> Result<(), Error<D::Error>> {
        await_outlined!(Self::format_open(slot, dev, opts, bufs))?;
        match slot {
            Some(vol) => await_outlined!(vol.format_modules(opts)),
            None => Err(Error::NotFormatted),
        }
    }

    async_split_fn! {
        /// The format's image and its mount, into `slot` (apart from [`Volume::format_into`]
        /// so that an async build does not keep the image's locals across the modules' step).
        async fn format_open(
            slot: &mut Option<Self>,
            mut dev: D,
            opts: &FormatOptions,
            bufs: Buffers<'b, K>,
        ) -> Result<(), Error<D::Error>> {
            let bs = dev.block_size();
            let n = dev.block_count();
            check_buffers::<D::Error, K>(bs, dev.reads_partial(), &bufs)?;
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
            await_outlined!(Self::write_image(&mut dev, &layout, &sb, bufs.scratch))?;
            await_outlined!(Self::open_into(slot, dev, bufs, true))
        }
    }

    /// The format's writes before its mount: superblocks zeroed, bitmap, region directory,
    /// pointer table, log, then both superblocks (still flagged [`FLAG_FORMATTING`]). Apart from
    /// [`Volume::format`] so that its locals are not on the stack while the volume is mounted.
    #[inline(never)]
    async fn write_image(
        dev: &mut D,
        layout: &Layout,
        sb: &Superblock,
        scratch: &mut [u8],
    ) -> Result<(), Error<D::Error>> {
        let bs = layout.bs();
        let n = sb.block_count;
        let blk = block_of(scratch, bs)?;
        // An earlier volume's superblocks go first: from here until the flag is cleared, a cut
        // leaves a device that reads as not formatted, never an old superblock over new
        // structures.
        blk.fill(0);
        dev.write_block(SB_PRIMARY, blk)
            .await
            .map_err(Error::Device)?;
        dev.write_block(SB_MIRROR, blk)
            .await
            .map_err(Error::Device)?;
        dev.flush().await.map_err(Error::Device)?;
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
            dev.write_block(BlockNo(layout.bitmap_start + i), blk)
                .await
                .map_err(Error::Device)?;
        }
        regions::dir_init(blk).ok_or(Error::InvalidGeometry)?;
        dev.write_block(BlockNo(layout.regdir), blk)
            .await
            .map_err(Error::Device)?;
        regions::rpt_init(blk).ok_or(Error::InvalidGeometry)?;
        dev.write_block(BlockNo(layout.rpt), blk)
            .await
            .map_err(Error::Device)?;
        Wal::format(dev, layout, blk).await?;
        dev.flush().await.map_err(Error::Device)?;
        sb.encode(blk).ok_or(Error::InvalidGeometry)?;
        dev.write_block(SB_PRIMARY, blk)
            .await
            .map_err(Error::Device)?;
        dev.flush().await.map_err(Error::Device)?;
        dev.write_block(SB_MIRROR, blk)
            .await
            .map_err(Error::Device)?;
        dev.flush().await.map_err(Error::Device)?;
        Ok(())
    }

    /// The format's steps on the mounted volume: the modules `opts` asks for, then the last
    /// step ([`Volume::finish_format`]).
    #[inline(never)]
    async fn format_modules(&mut self, opts: &FormatOptions) -> Result<(), Error<D::Error>> {
        for m in modules::CATALOGUE {
            if opts.modules.contains(m.flag()) {
                self.add_module(m, opts.now).await?;
            }
        }
        self.finish_format(opts.now).await
    }

    /// The format's last step: a transaction that rewrites both superblocks without
    /// [`FLAG_FORMATTING`].
    pub(super) async fn finish_format(&mut self, now: u64) -> Result<(), Error<D::Error>> {
        self.abort_tx();
        let mut sb = self.sb;
        sb.flags &= !FLAG_FORMATTING;
        sb.free_blocks = self.free_blocks;
        sb.checkpoint_seq = self.wal.last_seq().next().0;
        sb.modified = now;
        sb.sequence = sb.sequence.saturating_add(1);
        self.stage_superblocks(&sb).await?;
        self.commit_tx().await?;
        self.sb = sb;
        Ok(())
    }

    /// Stages both superblock copies as `sb` in the open transaction.
    pub(super) async fn stage_superblocks(
        &mut self,
        sb: &Superblock,
    ) -> Result<(), Error<D::Error>> {
        for b in [SB_PRIMARY, SB_MIRROR] {
            let buf = self.view(b, true).await?;
            sb.encode(buf).ok_or(Error::InvalidGeometry)?;
            self.stage_new_view(b)?;
        }
        Ok(())
    }

    /// Mounts the volume on `dev`: picks the newest valid superblock, replays the WAL, checks the
    /// region directory and pointer table, and counts free space. A volume whose format did not
    /// finish is [`MountError::NotFormatted`].
    pub async fn mount(dev: D, bufs: Buffers<'b, K>) -> Result<Self, MountError<D::Error>> {
        let mut slot = None;
        Self::open_into(&mut slot, dev, bufs, false).await?;
        slot.ok_or(MountError::NotFormatted)
    }

    /// Mounts the volume on `dev`, or formats it with `opts` if it holds none: no valid
    /// superblock (a blank or erased device), or a format that a cut or a failure interrupted
    /// (found after the log is recovered, so a format that finished is never redone). Any
    /// other problem is returned, never formatted over: a corrupt volume
    /// ([`MountError::Corrupt`]), one of another format version or geometry. The firmware's entry
    /// point: a cut at any point of the format it may run leaves a device this call handles.
    /// The device needs at least 16 blocks (64 KiB of 4 KiB flash sectors: a 4-block log, 5
    /// data blocks, [`MountError::InvalidGeometry`] below that).
    ///
    /// Keeping the device and memory on an error: pass `&mut device` (a `&mut` of any
    /// [`BlockDevice`] is one) and buffers borrowed from memory the caller keeps (such as
    /// [`crate::Memory::buffers`]); when the call fails, both are the caller's again (to erase
    /// the range, report, or retry), and the volume borrows them when it succeeds. The same holds
    /// for [`Volume::mount`] and [`Volume::format`]. (An error carrying the device back would
    /// tie the error type to the device's, and could not convert into [`Error`] with `From`
    /// for every device; [`MountError`] does.)
    ///
    /// The volume is returned by value; on a small stack, [`Volume::mount_or_format_in`] puts it
    /// in a place the caller gives instead, so that it is never copied.
    pub async fn mount_or_format(
        dev: D,
        opts: &FormatOptions,
        bufs: Buffers<'b, K>,
    ) -> Result<Self, MountError<D::Error>> {
        let mut slot = None;
        Self::mount_or_format_into(&mut slot, dev, opts, bufs).await?;
        slot.ok_or(MountError::NotFormatted)
    }

    /// [`Volume::mount_or_format`] with the volume built where `slot` is and never moved: a
    /// volume is about a kilobyte, and each move of a returned value can take that much stack
    /// again. Returns the volume in `slot`; on an error `slot` is `None` (any volume it held
    /// before is dropped first, in every case). A device or memory lent with `&mut` is the
    /// caller's again once that slot is no longer used (its type holds the borrow): retry into
    /// a new slot.
    ///
    /// ```
    /// # use vde_nostd::{FormatOptions, Memory, MemoryPlan, RamDevice, Volume};
    /// const PLAN: MemoryPlan = MemoryPlan::new(512);
    /// let mut mem = <vde_nostd::Memory!(PLAN)>::new();
    /// let mut image = [0u8; 512 * 64];
    /// let dev = RamDevice::new(&mut image, 512).unwrap();
    /// let mut slot = None;
    /// let vol = Volume::mount_or_format_in(&mut slot, dev, &FormatOptions::new([1; 16]), mem.buffers())?;
    /// assert!(vol.usage().free_blocks > 0);
    /// # Ok::<(), vde_nostd::Error<vde_nostd::device::RamError>>(())
    /// ```
    pub async fn mount_or_format_in<'s>(
        slot: &'s mut Option<Self>,
        dev: D,
        opts: &FormatOptions,
        bufs: Buffers<'b, K>,
    ) -> Result<&'s mut Self, MountError<D::Error>> {
        *slot = None;
        if let Err(e) = await_outlined!(Self::mount_or_format_into(slot, dev, opts, bufs)) {
            *slot = None;
            return Err(e.into());
        }
        // `Some` after a success (the `None` arm is not reached).
        slot.as_mut().ok_or(MountError::NotFormatted)
    }

    /// [`Volume::mount_or_format`] into `slot`, which it leaves `Some` when it succeeds.
    #[inline(never)]
    async fn mount_or_format_into(
        slot: &mut Option<Self>,
        dev: D,
        opts: &FormatOptions,
        bufs: Buffers<'b, K>,
    ) -> Result<(), Error<D::Error>> {
        // The locals `formatted` borrows end in this block (an async build would otherwise keep
        // them in its future across the mount or format).
        let (formatted, dev, bufs) = {
            let (mut dev, mut bufs) = (dev, bufs);
            check_buffers::<D::Error, K>(dev.block_size(), dev.reads_partial(), &bufs)?;
            let f = await_outlined!(Self::formatted(&mut dev, &mut bufs))?;
            (f, dev, bufs)
        };
        if formatted {
            await_outlined!(Self::open_into(slot, dev, bufs, false))
        } else {
            await_outlined!(Self::format_into(slot, dev, opts, bufs))
        }
    }

    /// Whether `dev` holds a volume whose format finished: a valid superblock without
    /// [`FLAG_FORMATTING`], or with it until the log's recovery (run here as a mount would run
    /// it) clears it. `Ok(false)` for no valid superblock at all.
    #[inline(never)]
    pub(super) async fn formatted(
        dev: &mut D,
        bufs: &mut Buffers<'_, K>,
    ) -> Result<bool, Error<D::Error>> {
        let bs = dev.block_size();
        let (scratch, page) = bufs.scratch.split_at_mut(bs);
        let (sb, layout) = match await_outlined!(pick_superblock(dev, scratch)) {
            Ok(picked) => picked,
            Err(Error::NotFormatted) => return Ok(false),
            Err(e) => return Err(e),
        };
        if sb.flags & FLAG_FORMATTING == 0 {
            return Ok(true);
        }
        // As a mount would go on from the copy it picked (`pick_and_repair`).
        await_outlined!(repair_superblock_copy(dev, scratch))?;
        let mut wal = Wal::unset(page);
        wal.set_up(dev, &layout, sb.wal_salt(), Some(SB_MIRROR))?;
        let (sb2, _) =
            await_outlined!(Self::replay(dev, scratch, &mut wal, &layout, sb.wal_salt()))?;
        Ok(sb2.flags & FLAG_FORMATTING == 0)
    }

    /// The first step of a mount: picks the newest valid superblock and repairs the other copy
    /// (recovery may rewrite the superblock; it must never overwrite the only valid copy).
    #[inline(never)]
    async fn pick_and_repair<T: BlockDevice<Error = D::Error>>(
        dev: &mut T,
        scratch: &mut [u8],
    ) -> Result<(Superblock, Layout), Error<D::Error>> {
        let picked = await_outlined!(pick_superblock(dev, scratch))?;
        await_outlined!(repair_superblock_copy(dev, scratch))?;
        Ok(picked)
    }

    /// The second: recovers `wal` (new, for `layout` and `salt`) in place, then picks the
    /// superblock again (recovery may have rewritten it), which must be the same volume's.
    /// Returns that superblock and what recovery found.
    #[inline(never)]
    async fn replay<T: BlockDevice<Error = D::Error>>(
        dev: &mut T,
        scratch: &mut [u8],
        wal: &mut Wal<'_>,
        layout: &Layout,
        salt: u64,
    ) -> Result<(Superblock, RecoveryReport), Error<D::Error>> {
        let report = await_outlined!(wal.recover(dev, layout, scratch))?;
        let (sb2, layout2) = await_outlined!(pick_superblock(dev, scratch))?;
        if layout2 != *layout || sb2.wal_salt() != salt {
            return Err(Error::Corrupt(Structure::Superblock));
        }
        Ok((sb2, report))
    }

    /// [`Volume::mount`]; `formatting` accepts a superblock with [`FLAG_FORMATTING`] (the
    /// format's own mount).
    /// Builds the volume in `slot` (so it is not copied on its way out) and leaves it there
    /// when every step succeeds; `slot` may hold a volume that failed a step when it does not
    /// (the public callers drop it).
    #[inline(never)]
    pub(super) async fn open_into(
        slot: &mut Option<Self>,
        mut dev: D,
        bufs: Buffers<'b, K>,
        formatting: bool,
    ) -> Result<(), Error<D::Error>> {
        let bs = dev.block_size();
        check_buffers::<D::Error, K>(bs, dev.reads_partial(), &bufs)?;
        let (scratch, page) = bufs.scratch.split_at_mut(bs);
        let (sb, layout) = await_outlined!(Self::pick_and_repair(&mut dev, scratch))?;
        // The log is set up and recovered where it lives, inside the volume in the slot: the
        // state is built once and never moved.
        let vol = slot.insert(Volume {
            dev: device::hold(dev),
            layout,
            sb,
            wal: Wal::unset(page),
            tx: TxBuf::new(bufs.txn, bs),
            scratch,
            free_blocks: 0,
            tx_free_delta: 0,
            #[cfg(feature = "objects")]
            index: bufs.index,
            #[cfg(feature = "objects")]
            objects: None,
            #[cfg(feature = "names")]
            names: None,
            #[cfg(feature = "summaries")]
            summaries: None,
            report: RecoveryReport::default(),
            spans: heapless::Vec::new(),
            tx_freed: Some(heapless::Vec::new()),
            tx_reallocated: false,
            #[cfg(feature = "objects")]
            idx_touched: Some(heapless::Vec::new()),
            #[cfg(feature = "objects")]
            tx_sets_counters: false,
        });
        // The salt from the volume, not the local: a borrowed local would stay in an async
        // build's future across the rest of the mount.
        let salt = vol.sb.wal_salt();
        let Volume {
            dev, wal, layout, ..
        } = vol;
        wal.set_up(dev, layout, salt, Some(SB_MIRROR))?;
        await_outlined!(vol.finish_mount(salt, formatting))
    }

    /// The mount's steps once the volume's state is built and its log set up: the log
    /// recovered, the superblock it leaves, the region and allocation checks, the free count
    /// and the modules' state.
    #[inline(never)]
    async fn finish_mount(&mut self, salt: u64, formatting: bool) -> Result<(), Error<D::Error>> {
        let Volume {
            dev,
            wal,
            scratch,
            layout,
            ..
        } = self;
        let (sb2, report) = await_outlined!(Self::replay(dev, scratch, wal, layout, salt))?;
        if sb2.flags & FLAG_FORMATTING != 0 && !formatting {
            return Err(Error::NotFormatted);
        }
        self.sb = sb2;
        self.report = report;
        await_outlined!(self.check_regions())?;
        await_outlined!(self.check_metadata_allocated())?;
        self.free_blocks = await_outlined!(self.scan_free())?;
        #[cfg(feature = "objects")]
        await_outlined!(self.load_objects())?;
        #[cfg(feature = "names")]
        await_outlined!(self.load_names())?;
        Ok(())
    }

    // The async build's recovery after an operation dropped half-way.
    if_async! {
        /// Recovers the volume before an operation if an earlier one was dropped half-way (or an
        /// earlier recovery failed): in place, from the device, as a mount after a power cut at
        /// that point would (see [`Volume::remount`]).
        #[inline(never)]
        pub(crate) async fn settle(&mut self) -> Result<(), Error<D::Error>> {
            if !device::needs_recovery(&self.dev) {
                return Ok(());
            }
            device::recovering(&mut self.dev, true);
            await_outlined!(self.remount())?;
            device::recovering(&mut self.dev, false);
            Ok(())
        }

        /// Rebuilds the mounted state from the device, in place, with the volume's own device and
        /// memory: the superblock picked again, the log's knowledge forgotten and the log
        /// recovered, then every step a mount makes. The open transaction is dropped.
        #[inline(never)]
        async fn remount(&mut self) -> Result<(), Error<D::Error>> {
            self.abort_tx();
            let salt = {
                let (sb, layout) =
                    await_outlined!(Self::pick_and_repair(&mut self.dev, self.scratch))?;
                if layout != self.layout {
                    return Err(Error::Corrupt(Structure::Superblock));
                }
                self.sb = sb;
                sb.wal_salt()
            };
            // `abort_tx` above reset the transaction's state; what the mount derives from the
            // device goes too.
            self.wal.forget();
            self.free_blocks = 0;
            #[cfg(feature = "objects")]
            {
                self.objects = None;
            }
            #[cfg(feature = "names")]
            {
                self.names = None;
            }
            #[cfg(feature = "summaries")]
            if let Some(sums) = self.summaries.as_deref_mut() {
                sums.fill(Summary::UNKNOWN);
            }
            self.spans.clear();
            await_outlined!(self.finish_mount(salt, false))
        }
    }
}
