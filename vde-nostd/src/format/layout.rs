//! Where each fixed structure lives, computed from the geometry alone.
//!
//! ```text
//! block 0            superblock (primary)
//! block 1            superblock (mirror)
//! block 2            WAL header A
//! block 3            WAL header B
//! 4 .. 4+W           WAL area (W blocks)
//! ..  + bitmap       allocation bitmap (ceil(N / bits_per_bitmap_block) blocks)
//! next               region directory (1 block)
//! next               region pointer table (1 block)
//! data_start .. N    data area (module regions, objects, user blocks)
//! ```
//! Invariant: every field is derived from `(block_size, block_count, wal_blocks)`; a superblock
//! whose stored layout differs from the derived one is corrupt.

use crate::types::BlockNo;

/// Block of the primary superblock.
pub const SB_PRIMARY: BlockNo = BlockNo(0);
/// Block of the mirror superblock.
pub const SB_MIRROR: BlockNo = BlockNo(1);
/// Block of WAL header A.
pub const WAL_HDR_A: BlockNo = BlockNo(2);
/// Block of WAL header B.
pub const WAL_HDR_B: BlockNo = BlockNo(3);
/// First block of the WAL area.
pub const WAL_START: u64 = 4;
/// Fewest WAL blocks a volume may have.
pub const MIN_WAL_BLOCKS: u64 = 4;
/// Fewest data blocks a volume must have after its metadata (room for the objects module's
/// region and a few shared blocks: a 64 KiB flash of 4 KiB blocks has 5).
pub const MIN_DATA_BLOCKS: u64 = 4;
/// Bytes at the end of every bitmap block used by its trailer (index + checksum).
pub const BITMAP_TRAILER: usize = 16;

/// The computed positions of the fixed structures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Layout {
    /// Block size in bytes.
    pub block_size: u32,
    /// Blocks on the volume.
    pub block_count: u64,
    /// First WAL block.
    pub wal_start: u64,
    /// WAL blocks.
    pub wal_blocks: u64,
    /// First bitmap block.
    pub bitmap_start: u64,
    /// Bitmap blocks.
    pub bitmap_blocks: u64,
    /// The region directory block.
    pub regdir: u64,
    /// The region pointer table block.
    pub rpt: u64,
    /// First block of the data area.
    pub data_start: u64,
}

impl Layout {
    /// Computes the layout, or `None` if the geometry cannot hold a volume.
    pub fn compute(block_size: usize, block_count: u64, wal_blocks: u64) -> Option<Layout> {
        if !crate::device::valid_block_size(block_size)
            || wal_blocks < MIN_WAL_BLOCKS
            || wal_blocks > block_count / 2
        {
            return None;
        }
        let bpb = bits_per_bitmap_block(block_size);
        let bitmap_blocks = crate::types::div_ceil(block_count, bpb);
        let bitmap_start = WAL_START.checked_add(wal_blocks)?;
        let regdir = bitmap_start.checked_add(bitmap_blocks)?;
        let rpt = regdir.checked_add(1)?;
        let data_start = rpt.checked_add(1)?;
        if data_start.checked_add(MIN_DATA_BLOCKS)? > block_count {
            return None;
        }
        Some(Layout {
            block_size: u32::try_from(block_size).ok()?,
            block_count,
            wal_start: WAL_START,
            wal_blocks,
            bitmap_start,
            bitmap_blocks,
            regdir,
            rpt,
            data_start,
        })
    }

    /// The default WAL size for a volume of `block_count` blocks: 1/64 of it, 8..=256 blocks;
    /// a quarter of a volume under 32 blocks (at least [`MIN_WAL_BLOCKS`]: 4 of a 64 KiB flash's
    /// 16 blocks of 4 KiB).
    pub fn default_wal_blocks(block_count: u64) -> u64 {
        if block_count < 32 {
            (block_count / 4).max(MIN_WAL_BLOCKS)
        } else {
            (block_count / 64).clamp(8, 256)
        }
    }

    /// Block size as `usize`.
    pub fn bs(&self) -> usize {
        self.block_size as usize
    }

    /// Bits held by one bitmap block.
    pub fn bits_per_block(&self) -> u64 {
        bits_per_bitmap_block(self.bs())
    }

    /// Whether `b` is inside the WAL (headers or area): no transaction may target it.
    pub fn is_wal_block(&self, b: BlockNo) -> bool {
        b == WAL_HDR_A || b == WAL_HDR_B || (b.0 >= self.wal_start && b.0 < self.bitmap_start)
    }
}

/// Bits per bitmap block for a block size.
pub fn bits_per_bitmap_block(block_size: usize) -> u64 {
    (block_size.saturating_sub(BITMAP_TRAILER) as u64).saturating_mul(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_contiguous_and_refuses_tiny() {
        let l = Layout::compute(4096, 4096, 64).unwrap();
        assert_eq!(l.bitmap_start, 68);
        assert_eq!(l.bitmap_blocks, 1);
        assert_eq!(l.regdir, 69);
        assert_eq!(l.rpt, 70);
        assert_eq!(l.data_start, 71);
        // The smallest: 16 blocks (a 64 KiB flash of 4 KiB sectors), a 4-block log, 5 data
        // blocks; one block fewer, or a larger log, leaves too few data blocks.
        let tiny = Layout::compute(4096, 16, 4).unwrap();
        assert_eq!(tiny.data_start, 11);
        assert_eq!(Layout::default_wal_blocks(16), 4);
        assert!(Layout::compute(4096, 14, 4).is_none());
        assert!(Layout::compute(4096, 16, 8).is_none());
        assert!(Layout::compute(1000, 4096, 8).is_none());
        assert!(Layout::compute(512, u64::MAX, u64::MAX).is_none());
        let big = Layout::compute(4096, 1 << 28, 256).unwrap();
        assert_eq!(big.bitmap_blocks, (1u64 << 28).div_ceil(32640));
    }
}
