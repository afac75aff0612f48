//! The record the translation layer keeps in each programmed page's spare area.
//!
//! Layout ([`META_LEN`] = 24 bytes, little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | logical block number |
//! | 4..10 | sequence number (48 bits) of the logical block version; every page of a version has the same one |
//! | 10 | page index within the version (`0..pages_per_slot`) |
//! | 11 | pages per version (`pages_per_slot`), plus [`SECTORED`] (`0x80`) in a page written by sector programs |
//! | 12..16 | erase count of the erase block when it was written |
//! | 16..20 | low 32 bits of xxh64 of the page's data, seeded with the logical block, sequence and index |
//! | 20..24 | low 32 bits of xxh64 of bytes 0..20, seeded with [`META_SEED`] |
//!
//! Decoding checks only the record's own checksum; [`data_sum`] checks the data. All-`0xFF`
//! (an erased spare area) never decodes.
//!
//! A *sectored* page (a version the log's appends write a sector program at a time, on a part
//! that programs partially) has in `data_sum` the version's base length on page 0 (the bytes its
//! first program wrote, which a mount requires intact; 0 in later pages) and, after the record, one 4-byte [`sector_sum`]
//! per sector of the page (bytes `24 + 4k .. 28 + 4k` for sector `k`), each programmed with its
//! sector; an erased sum (`0xFFFF_FFFF`, never a sum's value) marks a sector not programmed. The
//! record itself is programmed with the page's first sector program.

use vde_nostd::format::xxh64;

/// Spare bytes the translation layer needs per page.
pub const META_LEN: usize = 24;

/// Bytes of one sector's checksum in a sectored page's spare area.
pub const SECTOR_SUM_LEN: usize = 4;

/// Flag in the pages byte: the page is sectored.
pub const SECTORED: u8 = 0x80;

/// Largest sequence number (48 bits).
pub const SEQ_MAX: u64 = (1 << 48) - 1;

/// Seed of the record checksum ("vde-ftl1").
pub const META_SEED: u64 = 0x7664_652D_6674_6C31;

/// One page's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Logical block.
    pub lba: u32,
    /// Version sequence number.
    pub seq: u64,
    /// Page index within the version.
    pub idx: u8,
    /// Pages per version.
    pub pages: u8,
    /// Erase count of the erase block.
    pub erases: u32,
    /// Checksum of the page's data.
    pub data_sum: u32,
}

impl Meta {
    /// The 24-byte record.
    pub fn encode(&self) -> [u8; META_LEN] {
        let mut b = [0u8; META_LEN];
        let seq = (self.seq & SEQ_MAX).to_le_bytes();
        put(&mut b, 0, &self.lba.to_le_bytes());
        put(&mut b, 4, seq.get(..6).unwrap_or(&[]));
        put(&mut b, 10, &[self.idx, self.pages]);
        put(&mut b, 12, &self.erases.to_le_bytes());
        put(&mut b, 16, &self.data_sum.to_le_bytes());
        let sum = xxh64(b.get(..20).unwrap_or(&[]), META_SEED) as u32;
        put(&mut b, 20, &sum.to_le_bytes());
        b
    }

    /// The record in `b`, if its checksum holds.
    pub fn decode(b: &[u8; META_LEN]) -> Option<Meta> {
        let sum = xxh64(b.get(..20)?, META_SEED) as u32;
        if sum != u32::from_le_bytes(b.get(20..24)?.try_into().ok()?) {
            return None;
        }
        let mut seq = [0u8; 8];
        seq.get_mut(..6)?.copy_from_slice(b.get(4..10)?);
        Some(Meta {
            lba: u32::from_le_bytes(b.get(0..4)?.try_into().ok()?),
            seq: u64::from_le_bytes(seq),
            idx: *b.get(10)?,
            pages: *b.get(11)?,
            erases: u32::from_le_bytes(b.get(12..16)?.try_into().ok()?),
            data_sum: u32::from_le_bytes(b.get(16..20)?.try_into().ok()?),
        })
    }
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    if let Some(d) = b.get_mut(at..at + v.len()) {
        d.copy_from_slice(v);
    }
}

/// Checksum of sector `k` (`data`) of page `idx` of logical block `lba`'s version `seq`; never
/// `0xFFFF_FFFF` (an erased sum).
pub fn sector_sum(data: &[u8], lba: u32, seq: u64, idx: u8, k: usize) -> u32 {
    let s = xxh64(data, page_seed(lba, seq, idx) ^ ((k as u64 + 1) << 40)) as u32;
    if s == u32::MAX {
        u32::MAX - 1
    } else {
        s
    }
}

impl Meta {
    /// Whether the page is sectored.
    pub fn sectored(&self) -> bool {
        self.pages & SECTORED != 0
    }
}

/// Checksum of a page's data for logical block `lba`, version `seq`, page `idx`.
pub fn data_sum(data: &[u8], lba: u32, seq: u64, idx: u8) -> u32 {
    xxh64(data, page_seed(lba, seq, idx)) as u32
}

/// The checksum seed of page `idx` of logical block `lba`'s version `seq` (a sector's adds its
/// index above bit 40).
fn page_seed(lba: u32, seq: u64, idx: u8) -> u64 {
    seq.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ u64::from(lba).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ u64::from(idx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let m = Meta {
            lba: 7,
            seq: SEQ_MAX - 3,
            idx: 1,
            pages: 2,
            erases: 99,
            data_sum: 0xDEAD_BEEF,
        };
        let b = m.encode();
        assert_eq!(Meta::decode(&b), Some(m));
        assert_eq!(Meta::decode(&[0xFF; META_LEN]), None);
        assert_eq!(Meta::decode(&[0; META_LEN]), None);
        for i in 0..META_LEN {
            let mut c = b;
            c[i] ^= 0x10;
            assert_eq!(Meta::decode(&c), None, "flip in byte {i}");
        }
        assert_ne!(data_sum(&[1, 2], 1, 2, 0), data_sum(&[1, 2], 1, 3, 0));
        assert_ne!(data_sum(&[1, 2], 1, 2, 0), data_sum(&[1, 2], 1, 2, 1));
        let d = [7u8; 512];
        let s = sector_sum(&d, 1, 2, 0, 0);
        assert_ne!(s, u32::MAX);
        assert_ne!(
            s,
            sector_sum(&d, 1, 2, 0, 1),
            "the sector index is in the sum"
        );
        assert_ne!(s, sector_sum(&d, 1, 3, 0, 0), "the version is in the sum");
        let mut e = d;
        e[300] ^= 1;
        assert_ne!(s, sector_sum(&e, 1, 2, 0, 0));
    }
}
