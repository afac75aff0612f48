//! The region directory (which runs of blocks belong to which module) and the region pointer
//! table (for each module bit, where its entries sit in the directory). One block each.
//!
//! Region directory block:
//! ```text
//!  0  8  magic "VDEREGDR"
//!  8  4  format version (3)
//! 12  4  entry count
//! 16  .. entries, 32 bytes each:
//!        0 1 module bit (0..63) | 1 1 kind (0 small, 1 large) | 2 2 index within module
//!        4 4 reserved (0) | 8 8 start block | 16 8 length in blocks | 24 8 reserved (0)
//! B-8 8  xxh64(bytes 0..B-8, seed 0)
//! ```
//! Region pointer table block:
//! ```text
//!  0  8  magic "VDERGPTR"
//!  8  4  format version (3)
//! 12  4  reserved (0)
//! 16 256 64 entries of 4 bytes, one per module bit: first directory index u16 | count u16
//! B-8 8  xxh64(bytes 0..B-8, seed 0)
//! ```
//! These functions check shape and checksum; cross-checks (overlaps, bounds, cycles) belong to
//! the volume, which knows the geometry.

use super::codec::{get_u16, get_u32, get_u64, put_u16, put_u32, put_u64};
use super::{check_magic, check_sum, check_version, seal_sum, start, DecodeError};
use crate::types::{BlockNo, Extent};

/// Magic of the region directory.
pub const DIR_MAGIC: &[u8; 8] = b"VDEREGDR";
/// Magic of the region pointer table.
pub const RPT_MAGIC: &[u8; 8] = b"VDERGPTR";
const HDR: usize = 16;
const ENTRY: usize = 32;
/// Bytes at the end of a directory or pointer-table block that hold its checksum.
pub const SEAL: usize = 8;
/// The bytes of a directory block's entry count: offset and length.
pub const DIR_COUNT: (usize, usize) = (12, 4);

/// The bytes of directory entries `first..first + n`: offset and length.
pub const fn dir_entries(first: usize, n: usize) -> (usize, usize) {
    (HDR + first * ENTRY, n * ENTRY)
}

/// The bytes of pointer-table slot `bit`: offset and length.
pub const fn rpt_slot(bit: usize) -> (usize, usize) {
    (HDR + bit * 4, 4)
}
/// Module bits the pointer table has room for.
pub const RPT_SLOTS: usize = 64;

/// Kind of region a module asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RegionKind {
    /// max(64, total/1024) blocks, capped at total/16.
    Small,
    /// max(256, total/256) blocks, capped at total/16.
    Large,
}

/// One region directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RegionEntry {
    /// Owning module's bit.
    pub module: u8,
    /// Small or large.
    pub kind: RegionKind,
    /// Index of this region among its module's regions.
    pub index: u16,
    /// The blocks.
    pub extent: Extent,
}

/// Entries a directory block of `block_size` bytes holds.
pub fn dir_capacity(block_size: usize) -> usize {
    block_size.saturating_sub(HDR + 8) / ENTRY
}

fn seal(b: &mut [u8]) -> Option<()> {
    seal_sum(b, b.len().checked_sub(8)?)
}

fn check(b: &[u8], magic: &[u8; 8]) -> Result<(), DecodeError> {
    check_magic(b, magic)?;
    check_version(b)?;
    check_sum(b, b.len().checked_sub(8).ok_or(DecodeError::BadField)?)
}

/// Writes an empty directory into the block buffer `b`.
pub fn dir_init(b: &mut [u8]) -> Option<()> {
    start(b, DIR_MAGIC)?;
    seal(b)
}

/// Validates a directory block and returns its entry count.
pub fn dir_check(b: &[u8]) -> Result<usize, DecodeError> {
    check(b, DIR_MAGIC)?;
    let n = get_u32(b, 12).ok_or(DecodeError::BadField)? as usize;
    if n > dir_capacity(b.len()) {
        return Err(DecodeError::BadField);
    }
    Ok(n)
}

/// Reads entry `i` of a (checked) directory block.
pub fn dir_entry(b: &[u8], i: usize) -> Result<RegionEntry, DecodeError> {
    let f = DecodeError::BadField;
    let off = i
        .checked_mul(ENTRY)
        .and_then(|o| o.checked_add(HDR))
        .ok_or(f)?;
    let e = b.get(off..off.checked_add(ENTRY).ok_or(f)?).ok_or(f)?;
    let module = *e.first().ok_or(f)?;
    let kind = match e.get(1) {
        Some(0) => RegionKind::Small,
        Some(1) => RegionKind::Large,
        _ => return Err(f),
    };
    if module as usize >= RPT_SLOTS || get_u32(e, 4) != Some(0) || get_u64(e, 24) != Some(0) {
        return Err(f);
    }
    Ok(RegionEntry {
        module,
        kind,
        index: get_u16(e, 2).ok_or(f)?,
        extent: Extent {
            start: BlockNo(get_u64(e, 8).ok_or(f)?),
            len: get_u64(e, 16).ok_or(f)?,
        },
    })
}

/// Appends an entry to a (checked) directory block and reseals it. `None` if full.
pub fn dir_push(b: &mut [u8], e: &RegionEntry) -> Option<usize> {
    let n = get_u32(b, 12)? as usize;
    if n >= dir_capacity(b.len()) {
        return None;
    }
    let off = HDR.checked_add(n.checked_mul(ENTRY)?)?;
    let rec = b.get_mut(off..off.checked_add(ENTRY)?)?;
    rec.fill(0);
    *rec.first_mut()? = e.module;
    *rec.get_mut(1)? = match e.kind {
        RegionKind::Small => 0,
        RegionKind::Large => 1,
    };
    put_u16(rec, 2, e.index)?;
    put_u64(rec, 8, e.extent.start.0)?;
    put_u64(rec, 16, e.extent.len)?;
    put_u32(b, 12, u32::try_from(n.checked_add(1)?).ok()?)?;
    seal(b)?;
    Some(n)
}

/// Writes an empty pointer table into `b`.
pub fn rpt_init(b: &mut [u8]) -> Option<()> {
    if b.len() < HDR + RPT_SLOTS * 4 + 8 {
        return None;
    }
    start(b, RPT_MAGIC)?;
    seal(b)
}

/// Validates a pointer table block.
pub fn rpt_check(b: &[u8]) -> Result<(), DecodeError> {
    check(b, RPT_MAGIC)?;
    if get_u32(b, 12) != Some(0) {
        return Err(DecodeError::BadField);
    }
    Ok(())
}

/// Pointer of module bit `bit`: (first directory index, count).
pub fn rpt_get(b: &[u8], bit: usize) -> Result<(u16, u16), DecodeError> {
    let f = DecodeError::BadField;
    if bit >= RPT_SLOTS {
        return Err(f);
    }
    let off = HDR + bit * 4;
    Ok((get_u16(b, off).ok_or(f)?, get_u16(b, off + 2).ok_or(f)?))
}

/// Sets the pointer of module bit `bit` and reseals.
pub fn rpt_set(b: &mut [u8], bit: usize, first: u16, count: u16) -> Option<()> {
    if bit >= RPT_SLOTS {
        return None;
    }
    let off = HDR + bit * 4;
    put_u16(b, off, first)?;
    put_u16(b, off + 2, count)?;
    seal(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_push_read_and_full() {
        let mut b = [0u8; 512];
        dir_init(&mut b).unwrap();
        assert_eq!(dir_check(&b), Ok(0));
        let cap = dir_capacity(512);
        assert_eq!(cap, 15);
        for i in 0..cap {
            let e = RegionEntry {
                module: (i % 64) as u8,
                kind: if i % 2 == 0 {
                    RegionKind::Small
                } else {
                    RegionKind::Large
                },
                index: i as u16,
                extent: Extent {
                    start: BlockNo(100 + i as u64),
                    len: 3,
                },
            };
            assert_eq!(dir_push(&mut b, &e), Some(i));
            assert_eq!(dir_entry(&b, i), Ok(e));
        }
        assert_eq!(dir_check(&b), Ok(cap));
        let e0 = dir_entry(&b, 0).unwrap();
        assert!(dir_push(&mut b, &e0).is_none());
        b[20] ^= 1;
        assert_eq!(dir_check(&b), Err(DecodeError::BadChecksum));
    }

    #[test]
    fn pointer_table() {
        let mut b = [0u8; 512];
        rpt_init(&mut b).unwrap();
        rpt_check(&b).unwrap();
        rpt_set(&mut b, 63, 4, 2).unwrap();
        rpt_check(&b).unwrap();
        assert_eq!(rpt_get(&b, 63), Ok((4, 2)));
        assert!(rpt_get(&b, 64).is_err());
        b[16] = 1;
        assert!(rpt_check(&b).is_err());
    }
}
