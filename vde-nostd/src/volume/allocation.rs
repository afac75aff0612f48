//! Block allocation: the committed bitmap as the open transaction leaves it, first-fit search
//! ([`crate::scanner`], through the optional per-bitmap-block summaries), and marking extents
//! allocated or free inside a transaction. Invariant: `free_blocks + tx_free_delta` is the number
//! of zero bits the open transaction would commit.

use super::*;

pub(super) struct VolBitmap<'x, 'b, D: BlockDevice, const K: usize> {
    dev: &'x mut Held<D>,
    wal: &'x mut Wal<'b>,
    tx: &'x TxBuf<'b, K>,
    layout: &'x Layout,
}

#[bisync]
impl<D: BlockDevice, const K: usize> BitmapSource for VolBitmap<'_, '_, D, K> {
    type Error = Error<D::Error>;
    fn bits_per_block(&self) -> u64 {
        self.layout.bits_per_block()
    }
    fn total_bits(&self) -> u64 {
        self.layout.block_count
    }
    async fn block<'s>(&'s mut self, idx: u64, buf: &'s mut [u8]) -> Result<&'s [u8], Self::Error> {
        let b = BlockNo(self.layout.bitmap_start.saturating_add(idx));
        if idx >= self.layout.bitmap_blocks {
            return Err(Error::Corrupt(Structure::Bitmap));
        }
        let staged = self.tx.contains(b);
        read_staged(self.tx, self.wal, self.dev, b, buf).await?;
        if staged {
            // Checked when the transaction first changed it.
            return Ok(bitmap_block::bits(buf));
        }
        let idx32 = u32::try_from(idx).map_err(|_| Error::Corrupt(Structure::Bitmap))?;
        bitmap_block::check(buf, idx32).map_err(|_| Error::Corrupt(Structure::Bitmap))?;
        Ok(bitmap_block::bits(buf))
    }
}

#[bisync]
impl<'b, D: BlockDevice, const K: usize> Volume<'b, D, K> {
    /// Free-space queries through the committed bitmap.
    pub async fn first_fit(&mut self, n: u64) -> Result<Option<BlockNo>, Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.abort_tx();
        let (mut src, buf) = self.bitmap_source();
        scanner::first_fit(&mut src, n, buf).await
    }

    /// Calls `f` with every free run of at least `m` blocks until it returns `false`.
    pub async fn free_runs(
        &mut self,
        m: u64,
        f: impl FnMut(Extent) -> bool,
    ) -> Result<(), Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.abort_tx();
        let (mut src, buf) = self.bitmap_source();
        scanner::free_runs(&mut src, m, buf, f).await
    }

    /// Counts free blocks by scanning the bitmap.
    #[inline(never)]
    pub async fn count_free(&mut self) -> Result<u64, Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.scan_free().await
    }

    /// [`Volume::count_free`] inside an operation (the mount's own count among them).
    pub(crate) async fn scan_free(&mut self) -> Result<u64, Error<D::Error>> {
        let (mut src, buf) = self.bitmap_source();
        scanner::count_free(&mut src, buf).await
    }

    /// Whether block `b` is allocated in the committed bitmap (plus the open transaction).
    pub async fn is_allocated(&mut self, b: BlockNo) -> Result<bool, Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.is_allocated_in_op(b).await
    }

    /// [`Volume::is_allocated`] inside an operation (no recovery check first).
    pub(crate) async fn is_allocated_in_op(&mut self, b: BlockNo) -> Result<bool, Error<D::Error>> {
        if b.0 >= self.layout.block_count {
            return Err(Error::OutOfRange);
        }
        let bpb = self.layout.bits_per_block();
        let (idx, within) = div_rem(b.0, bpb);
        let (mut src, buf) = self.bitmap_source();
        let bits = src.block(idx, buf).await?;
        Ok(bitmap::get(bits, within))
    }

    pub(super) fn bitmap_source(&mut self) -> (VolBitmap<'_, 'b, D, K>, &mut [u8]) {
        let Volume {
            dev,
            wal,
            tx,
            layout,
            scratch,
            ..
        } = self;
        bitmap_source_of(dev, wal, tx, layout, scratch)
    }

    /// Attaches one [`Summary`] per bitmap block (caller memory, at least
    /// `layout().bitmap_blocks` entries) and builds them. From then on every allocation and free
    /// keeps them current and first-fit allocation reads only the bitmap block that holds the
    /// answer.
    #[cfg(feature = "summaries")]
    pub async fn attach_summaries(
        &mut self,
        sums: &'b mut [Summary],
    ) -> Result<(), Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.abort_tx();
        let n = usize::try_from(self.layout.bitmap_blocks).map_err(|_| Error::InvalidGeometry)?;
        let sums = sums.get_mut(..n).ok_or(Error::BufferTooSmall {
            need: n.saturating_mul(core::mem::size_of::<Summary>()),
        })?;
        {
            let (mut src, buf) = self.bitmap_source();
            scanner::summarize_all(&mut src, sums, buf).await?;
        }
        self.summaries = Some(sums);
        Ok(())
    }

    /// First fit through the summaries (refreshing any unknown ones first), or the plain scan.
    pub(super) async fn find_free(&mut self, n: u64) -> Result<Option<BlockNo>, Error<D::Error>> {
        #[cfg(not(feature = "summaries"))]
        {
            let (mut src, buf) = self.bitmap_source();
            scanner::first_fit(&mut src, n, buf).await
        }
        #[cfg(feature = "summaries")]
        self.find_free_summarized(n).await
    }

    #[cfg(feature = "summaries")]
    async fn find_free_summarized(&mut self, n: u64) -> Result<Option<BlockNo>, Error<D::Error>> {
        // The volume's fields apart: the summaries are used in place, never taken out of the
        // volume across an `.await` (a dropped operation would lose them).
        let Volume {
            dev,
            wal,
            tx,
            layout,
            scratch,
            summaries,
            ..
        } = self;
        let Some(sums) = summaries.as_deref_mut() else {
            let (mut src, buf) = bitmap_source_of(dev, wal, tx, layout, scratch);
            return scanner::first_fit(&mut src, n, buf).await;
        };
        let bpb = layout.bits_per_block();
        let total = layout.block_count;
        for (i, s) in sums.iter_mut().enumerate() {
            if *s == Summary::UNKNOWN {
                let base = (i as u64).saturating_mul(bpb);
                let (mut src, buf) = bitmap_source_of(dev, wal, tx, layout, scratch);
                let bits = src.block(i as u64, buf).await?;
                *s = scanner::summarize(bits, total.saturating_sub(base).min(bpb));
            }
        }
        let (mut src, buf) = bitmap_source_of(dev, wal, tx, layout, scratch);
        scanner::first_fit_summarized(&mut src, sums, n, buf).await
    }

    /// Whether block `b`, free in the open transaction, is allocated in the committed state
    /// (so the transaction freed it and its new content must go through the log).
    pub(crate) async fn committed_allocated(
        &mut self,
        b: BlockNo,
    ) -> Result<bool, Error<D::Error>> {
        if let Some(freed) = &self.tx_freed {
            return Ok(freed.iter().any(|e| e.contains(b)));
        }
        let bpb = self.layout.bits_per_block();
        let (idx, within) = div_rem(b.0, bpb);
        let bs = self.layout.bs();
        let buf = block_of(self.scratch, bs)?;
        self.wal
            .read(&mut self.dev, BlockNo(self.layout.bitmap_start + idx), buf)
            .await?;
        let idx32 = u32::try_from(idx).map_err(|_| Error::Corrupt(Structure::Bitmap))?;
        bitmap_block::check(buf, idx32).map_err(|_| Error::Corrupt(Structure::Bitmap))?;
        Ok(bitmap::get(bitmap_block::bits(buf), within))
    }

    /// Sets bits `within..within + n` of `blk_no`, a block in the allocation bitmap's block
    /// format with trailer index `tag`, to `value` in the open transaction; each must hold the
    /// opposite value first (else `Corrupt(what)`). The scratch keeps the block's new content.
    pub(crate) async fn set_bits(
        &mut self,
        blk_no: BlockNo,
        tag: u32,
        within: u64,
        n: u64,
        value: bool,
        what: Structure,
    ) -> Result<(), Error<D::Error>> {
        let first_touch = !self.tx.contains(blk_no);
        let blk = self.view(blk_no, false).await?;
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
    pub(crate) async fn mark(&mut self, e: Extent, value: bool) -> Result<(), Error<D::Error>> {
        let end = e.end().ok_or(Error::OutOfRange)?;
        if e.len == 0 || e.start.0 < self.layout.data_start || end > self.layout.block_count {
            return Err(Error::OutOfRange);
        }
        let bpb = self.layout.bits_per_block();
        let total = self.layout.block_count;
        let mut at = e.start.0;
        while at < end {
            let (idx, within) = div_rem(at, bpb);
            let n = (bpb - within).min(end - at);
            let blk_no = BlockNo(self.layout.bitmap_start + idx);
            let idx32 = u32::try_from(idx).map_err(|_| Error::Corrupt(Structure::Bitmap))?;
            self.set_bits(blk_no, idx32, within, n, value, Structure::Bitmap)
                .await?;
            // The block's summary, if summaries are attached, is what the block now holds.
            #[cfg(feature = "summaries")]
            if let Some(s) = self
                .summaries
                .as_deref_mut()
                .and_then(|s| s.get_mut(idx as usize))
            {
                let bits = bitmap_block::bits(self.scratch.get(..self.layout.bs()).unwrap_or(&[]));
                *s = scanner::summarize(bits, total.saturating_sub(idx * bpb).min(bpb));
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
    pub(crate) async fn alloc(&mut self, n: u64) -> Result<Extent, Error<D::Error>> {
        let start = self.find_free(n).await?.ok_or(Error::NoSpace)?;
        let e = Extent { start, len: n };
        self.mark(e, true).await?;
        Ok(e)
    }
}

/// The committed bitmap as the open transaction leaves it, over the volume's fields passed
/// apart, and the scratch block to read it through.
fn bitmap_source_of<'x, 'b, D: BlockDevice, const K: usize>(
    dev: &'x mut Held<D>,
    wal: &'x mut Wal<'b>,
    tx: &'x TxBuf<'b, K>,
    layout: &'x Layout,
    scratch: &'x mut [u8],
) -> (VolBitmap<'x, 'b, D, K>, &'x mut [u8]) {
    let bs = layout.bs();
    let buf = scratch.get_mut(..bs).unwrap_or(&mut []);
    (
        VolBitmap {
            dev,
            wal,
            tx,
            layout,
        },
        buf,
    )
}
