//! The slot index as stored in the `objects` module's region: which blocks are shared blocks
//! and the slot bitmap of each. (The object counters live in the WAL header and the commit
//! markers: see [`super::counters`].)
//!
//! Block 0 of the region:
//! ```text
//!   0  8  magic "VDESLOTX"
//!   8  4  format version (3)
//!  12  4  entry count (shared blocks)
//!  16  4  block size (checked on load)
//!  20  4  entry size = 8 + slot bitmap bytes
//!  24 80  reserved (0)
//! 104  4  extent map blocks M (= [`extent_map_blocks`], at least 1)
//! 108 20  reserved (0)
//! 128  .. entries
//! B-8  8  xxh64(bytes 0..B-8, seed 0)
//! ```
//! Blocks 1.. of the region:
//! ```text
//!   0  8  magic "VDESLOTB" | 8 4 block index within the region | 12 4 reserved (0)
//!  16  .. entries
//! B-8  8  xxh64(bytes 0..B-8, seed 0)
//! ```
//! Entry: shared block number u64, then its slot bitmap (`block_size / 512` bytes, one bit per
//! 64-byte unit, 1 = a live slot's unit), then its dead bitmap (as many bytes: 1 = a unit of a
//! deleted slot whose bytes are still in the block, not reusable until the block is
//! compacted; never set where the slot bitmap is). Entries are dense: entry `i` lives in the
//! block and offset [`locate`] gives.
//!
//! The region's last M blocks are the **extent map**: one bit per block of the volume (the
//! allocation bitmap's block format, trailer index [`extent_map_tag`]`(i)`), set exactly at the
//! first block of every extent object. The slot index takes the region's other blocks.

use super::codec::{get_u32, put_bytes, put_u32};
use super::{check_magic, check_sum, check_version, seal_sum, DecodeError, FORMAT_VERSION};
use crate::format::layout::bits_per_bitmap_block;
use crate::subblock;

/// Magic of the index's first block.
pub const HEAD_MAGIC: &[u8; 8] = b"VDESLOTX";
/// Magic of the index's other blocks.
pub const BLOCK_MAGIC: &[u8; 8] = b"VDESLOTB";
const HEAD_LEN: usize = 128;
const BLOCK_HEAD_LEN: usize = 16;

pub use super::counters::Counters;

/// The trailer index of extent map block 0; block `i` has [`extent_map_tag`]`(i)`.
pub const EXTENT_MAP_TAG: u32 = 0x4558_0000;

/// Trailer index of extent map block `i`: `EXTENT_MAP_TAG + i` modulo 2^32 (so neither an
/// allocation bitmap block, whose index is its position in the bitmap, nor another map block
/// passes for it).
pub fn extent_map_tag(i: u64) -> u32 {
    EXTENT_MAP_TAG.wrapping_add(i as u32)
}

/// Blocks of the extent map of a volume of `block_count` blocks (one bit per block).
pub fn extent_map_blocks(block_size: usize, block_count: u64) -> u64 {
    crate::types::div_ceil(block_count, bits_per_bitmap_block(block_size).max(1))
}

/// Slot index blocks of an objects region of `region_len` blocks (the extent map takes the
/// rest); 0 if the region cannot hold both.
pub fn index_blocks(block_size: usize, region_len: u64, block_count: u64) -> u64 {
    region_len.saturating_sub(extent_map_blocks(block_size, block_count))
}

/// Where a block's extent map bit is: the map block and the bit within it (the bitmap-block
/// bit numbering: byte `bit / 8`, mask `1 << (bit % 8)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtentBit {
    /// Map block, counted from the first block of the extent map.
    pub map_block: u64,
    /// Bit within that block.
    pub bit: u64,
}

impl ExtentBit {
    /// Byte offset of the bit within its map block.
    pub fn byte(self) -> usize {
        usize::try_from(self.bit / 8).unwrap_or(usize::MAX)
    }
    /// Mask of the bit within its byte.
    pub fn mask(self) -> u8 {
        1u8 << (self.bit % 8)
    }
}

/// Where block `b`'s extent map bit is.
pub fn extent_bit(block_size: usize, b: u64) -> ExtentBit {
    let (map_block, bit) = crate::types::div_rem(b, bits_per_bitmap_block(block_size).max(1));
    ExtentBit { map_block, bit }
}

/// Bytes per entry for a block size: the block number, the slot bitmap and the dead bitmap.
pub const fn entry_size(block_size: usize) -> usize {
    8 + 2 * subblock::bitmap_bytes(block_size)
}

/// Entries that fit in region block `i`.
pub fn entries_in(block_size: usize, i: u64) -> usize {
    let head = if i == 0 { HEAD_LEN } else { BLOCK_HEAD_LEN };
    block_size.saturating_sub(head + 8) / entry_size(block_size)
}

/// Entries a region of `blocks` blocks holds.
pub fn capacity(block_size: usize, blocks: u64) -> u64 {
    let first = entries_in(block_size, 0) as u64;
    let rest = entries_in(block_size, 1) as u64;
    first.saturating_add(rest.saturating_mul(blocks.saturating_sub(1)))
}

/// (region block, byte offset) of entry `i`.
pub fn locate(block_size: usize, i: usize) -> (u64, usize) {
    let es = entry_size(block_size);
    let first = entries_in(block_size, 0);
    if i < first {
        return (0, HEAD_LEN + i * es);
    }
    let rest = entries_in(block_size, 1).max(1);
    let j = i - first;
    ((j / rest) as u64 + 1, BLOCK_HEAD_LEN + (j % rest) * es)
}

/// First entry index held by region block `i`, and how many it can hold.
pub fn block_span(block_size: usize, i: u64) -> (usize, usize) {
    let first = entries_in(block_size, 0);
    if i == 0 {
        return (0, first);
    }
    let rest = entries_in(block_size, 1);
    let start = first.saturating_add(rest.saturating_mul((i - 1) as usize));
    (start, rest)
}

/// Offset of the first entry in region block `i`.
pub fn entries_offset(i: u64) -> usize {
    if i == 0 {
        HEAD_LEN
    } else {
        BLOCK_HEAD_LEN
    }
}

/// Encodes block `i`'s head (and for block 0, the count, counters and `map` = the extent
/// map's block count). Entries must already be in place; the caller seals afterwards.
pub fn encode_head(b: &mut [u8], i: u64, count: u32, map: u32) -> Option<()> {
    if i == 0 {
        b.get_mut(..HEAD_LEN)?.fill(0);
        put_bytes(b, 0, HEAD_MAGIC)?;
        put_u32(b, 8, FORMAT_VERSION)?;
        put_u32(b, 12, count)?;
        put_u32(b, 16, u32::try_from(b.len()).ok()?)?;
        put_u32(b, 20, u32::try_from(entry_size(b.len())).ok()?)?;
        put_u32(b, 104, map)?;
    } else {
        b.get_mut(..BLOCK_HEAD_LEN)?.fill(0);
        put_bytes(b, 0, BLOCK_MAGIC)?;
        put_u32(b, 8, u32::try_from(i).ok()?)?;
    }
    Some(())
}

/// Seals an index block with its checksum.
pub fn seal(b: &mut [u8]) -> Option<()> {
    seal_sum(b, b.len().checked_sub(8)?)
}

/// Checks block `i` (magic, version, checksum, and for block 0 the block and entry sizes and
/// the extent map's block count `map`). Returns the entry count for block 0 (0 for the others).
pub fn check(b: &[u8], i: u64, map: u64) -> Result<u32, DecodeError> {
    let f = DecodeError::BadField;
    let at = b.len().checked_sub(8).ok_or(f)?;
    check_magic(b, if i == 0 { HEAD_MAGIC } else { BLOCK_MAGIC })?;
    check_sum(b, at)?;
    if i != 0 {
        if u64::from(get_u32(b, 8).ok_or(f)?) != i || get_u32(b, 12) != Some(0) {
            return Err(f);
        }
        return Ok(0);
    }
    check_version(b)?;
    let zero = |r: core::ops::Range<usize>| b.get(r).is_some_and(|r| r.iter().all(|x| *x == 0));
    if !zero(24..104) || !zero(108..HEAD_LEN) || get_u32(b, 104).map(u64::from) != Some(map) {
        return Err(f);
    }
    if get_u32(b, 16).map(|v| v as usize) != Some(b.len())
        || get_u32(b, 20).map(|v| v as usize) != Some(entry_size(b.len()))
    {
        return Err(f);
    }
    get_u32(b, 12).ok_or(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_and_round_trip() {
        assert_eq!(entry_size(4096), 24);
        assert_eq!(entries_in(4096, 0), (4096 - 136) / 24);
        assert_eq!(entries_in(4096, 1), (4096 - 24) / 24);
        let f = entries_in(4096, 0);
        assert_eq!(locate(4096, 0), (0, 128));
        assert_eq!(locate(4096, f), (1, 16));
        assert_eq!(block_span(4096, 2).0, f + entries_in(4096, 1));
        let mut b = [0u8; 512];
        encode_head(&mut b, 0, 2, 1).unwrap();
        seal(&mut b).unwrap();
        assert_eq!(check(&b, 0, 1), Ok(2));
        assert_eq!(check(&b, 0, 2), Err(DecodeError::BadField));
        assert!(check(&b[..256], 0, 1).is_err());
        // The former counter bytes are reserved: nonzero is refused.
        let mut c = b;
        c[24] = 1;
        seal(&mut c).unwrap();
        assert_eq!(check(&c, 0, 1), Err(DecodeError::BadField));
        encode_head(&mut b, 3, 0, 1).unwrap();
        seal(&mut b).unwrap();
        assert!(check(&b, 3, 1).is_ok());
        assert!(check(&b, 4, 1).is_err());
    }

    #[test]
    fn extent_map_geometry() {
        // 4 KiB blocks: (4096 - 16) * 8 = 32,640 bits per map block.
        assert_eq!(extent_map_blocks(4096, 1), 1);
        assert_eq!(extent_map_blocks(4096, 32_640), 1);
        assert_eq!(extent_map_blocks(4096, 32_641), 2);
        assert_eq!(index_blocks(4096, 4, 64), 3);
        assert_eq!(index_blocks(4096, 1, 64), 0);
        let at = |b| {
            let x = extent_bit(4096, b);
            (x.map_block, x.byte(), x.mask())
        };
        assert_eq!(at(0), (0, 0, 1));
        assert_eq!(at(11), (0, 1, 8));
        assert_eq!(at(32_641), (1, 0, 2));
        assert_eq!(extent_map_tag(0), 0x4558_0000);
        assert_eq!(extent_map_tag(3), 0x4558_0003);
        assert_eq!(extent_map_tag(0x10_0000), 0x4568_0000); // no overlap with the tag's bits
    }
}
