//! The volume's consistency checks: the region directory and pointer table against the layout
//! and each other, fixed metadata allocated in the bitmap, and [`Volume::verify`] over the whole
//! volume. Mount runs the region and metadata checks before anything is written.

use super::superblock_choice::validate_sb;
use super::*;

impl<'b, D: BlockDevice, const K: usize> Volume<'b, D, K> {
    /// Verifies the whole volume without changing it: both superblock copies, both WAL headers,
    /// every bitmap block, the free count, the region directory and pointer table, and the slot
    /// index with its counters. Returns the first problem found.
    #[cfg(feature = "verify")]
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
        #[cfg(feature = "objects")]
        self.verify_objects()?;
        #[cfg(feature = "names")]
        self.verify_names()?;
        Ok(())
    }

    /// Validates the region directory and pointer table against each other, the geometry and
    /// the bitmap.
    pub(super) fn check_regions(&mut self) -> Result<(), Error<D::Error>> {
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
    pub(super) fn check_metadata_allocated(&mut self) -> Result<(), Error<D::Error>> {
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
            let (idx, within) = div_rem(at, bpb);
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
}
