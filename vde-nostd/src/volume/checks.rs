//! The volume's consistency checks: the region directory and pointer table against the layout
//! and each other, fixed metadata allocated in the bitmap, and [`Volume::verify`] over the whole
//! volume. Mount runs the region and metadata checks before anything is written.

use super::superblock_choice::validate_sb;
use super::*;

#[bisync]
impl<'b, D: BlockDevice, const K: usize> Volume<'b, D, K> {
    /// Verifies the whole volume without changing it: both superblock copies, both WAL headers,
    /// every bitmap block, the free count, the region directory and pointer table, and the slot
    /// index with its counters. Returns the first problem found.
    #[cfg(feature = "verify")]
    pub async fn verify(&mut self) -> Result<(), Error<D::Error>> {
        if_async! { self.settle().await?; }
        self.abort_tx();
        let bs = self.layout.bs();
        let a = block_of(self.scratch, bs)?;
        for b in [SB_PRIMARY, SB_MIRROR] {
            self.wal.read(&mut self.dev, b, a).await?;
            let sb = Superblock::decode(a).map_err(|_| Error::Corrupt(Structure::Superblock))?;
            if validate_sb(&sb, &self.dev).ok() != Some(self.layout) {
                return Err(Error::Corrupt(Structure::Superblock));
            }
        }
        for (b, is_b) in [
            (crate::format::layout::WAL_HDR_A, false),
            (crate::format::layout::WAL_HDR_B, true),
        ] {
            // Both copies, as recovery and every checkpoint leave them: usable.
            self.dev.read_block(b, a).await.map_err(Error::Device)?;
            let mut first = verifier::First::default();
            verifier::wal_header(a, is_b, &self.layout, &mut first.sink())
                .ok_or(Error::Corrupt(Structure::WalHeader))?;
        }
        if self.count_free().await? != self.free_blocks {
            return Err(Error::Corrupt(Structure::Bitmap));
        }
        self.check_regions().await?;
        self.check_metadata_allocated().await?;
        #[cfg(feature = "objects")]
        self.verify_objects().await?;
        #[cfg(feature = "names")]
        self.verify_names().await?;
        Ok(())
    }

    /// Validates the region directory and pointer table against each other, the geometry and
    /// the bitmap.
    #[inline(never)]
    pub(super) async fn check_regions(&mut self) -> Result<(), Error<D::Error>> {
        let bs = self.layout.bs();
        let manifest = self.sb.manifest;
        let corrupt = |first: verifier::First| {
            Error::Corrupt(
                first
                    .0
                    .map_or(Structure::RegionDirectory, |f| f.structure()),
            )
        };
        let buf = block_of(self.scratch, bs)?;
        self.wal
            .read(&mut self.dev, BlockNo(self.layout.rpt), buf)
            .await?;
        let mut first = verifier::First::default();
        let mut table = [(0u16, 0u16); regions::RPT_SLOTS];
        if !verifier::pointer_table(buf, &mut table, &mut first.sink()) {
            return Err(corrupt(first));
        }
        self.wal
            .read(&mut self.dev, BlockNo(self.layout.regdir), buf)
            .await?;
        let Some(n) =
            verifier::regions(buf, Some(&table), &self.layout, manifest, &mut first.sink())
        else {
            return Err(corrupt(first));
        };
        let rd = Structure::RegionDirectory;
        for i in 0..n {
            let e = {
                let dir = block_of::<D::Error>(self.scratch, bs)?;
                self.wal
                    .read(&mut self.dev, BlockNo(self.layout.regdir), dir)
                    .await?;
                regions::dir_entry(dir, i).map_err(|_| Error::Corrupt(rd))?
            };
            // Stops at the first free block: one is enough to break the rule.
            let free = u64::from(!self.extent_allocated(e.extent).await?);
            if !verifier::region_allocated(&e, free, &mut first.sink()) {
                return Err(corrupt(first));
            }
        }
        Ok(())
    }

    /// Every fixed metadata block must be marked allocated ([`verifier::metadata_allocated`]),
    /// and every bit past the volume's last block set ([`verifier::bitmap_tail`]).
    #[inline(never)]
    pub(super) async fn check_metadata_allocated(&mut self) -> Result<(), Error<D::Error>> {
        // Stops at the first free block: one is enough to break the rule.
        let free = u64::from(
            !self
                .extent_allocated(verifier::metadata(&self.layout))
                .await?,
        );
        if !verifier::metadata_allocated(free, &mut verifier::First::default().sink()) {
            return Err(Error::Corrupt(Structure::Bitmap));
        }
        let last = self.layout.bitmap_blocks.saturating_sub(1);
        let layout = self.layout;
        let (mut src, buf) = self.bitmap_source();
        // Reads the block whole into `buf` (and checks it decodes).
        src.block(last, buf).await?;
        if !verifier::bitmap_tail(buf, &layout, &mut verifier::First::default().sink()) {
            return Err(Error::Corrupt(Structure::Bitmap));
        }
        Ok(())
    }

    /// Whether every block of `e` is allocated (committed bitmap plus open transaction).
    pub(crate) async fn extent_allocated(&mut self, e: Extent) -> Result<bool, Error<D::Error>> {
        let end = e.end().ok_or(Error::OutOfRange)?;
        if end > self.layout.block_count {
            return Ok(false);
        }
        let bpb = self.layout.bits_per_block();
        let mut at = e.start.0;
        while at < end {
            let (idx, within) = div_rem(at, bpb);
            let n = (bpb - within).min(end - at);
            let (mut src, buf) = self.bitmap_source();
            let bits = src.block(idx, buf).await?;
            if !bitmap::all(bits, within, n, true) {
                return Ok(false);
            }
            at += n;
        }
        Ok(true)
    }
}
