//! The rescue descriptor: names the copy of one home block that a checkpoint wrote before
//! erasing that block, because a torn in-place program (a power cut mid-program) left its home
//! copy unfit for programs. It lives in the WAL area's last block, the copy in the block before
//! it; both blocks are outside the log while an in-place chain is dirty (see the WAL's
//! "Writing home in place" in `FORMAT.md`).
//!
//! Byte layout (little-endian), rest of the block zero:
//! ```text
//!  0  8  magic "VDERESCU"
//!  8  4  format version (3)
//! 12  4  reserved (0)
//! 16  8  epoch: the log epoch whose checkpoint made the copy
//! 24  8  last sequence: the last committed transaction the copy's content includes
//! 32  8  block: the home block the copy stands for
//! 40  8  xxh64(copy block, seed 0)
//! 48  8  xxh64(bytes 0..48, seed 0)
//! ```
//! The copy counts only if the descriptor and the copy's hash hold, its epoch is the newest WAL
//! header's and its last sequence the log's last valid transaction; otherwise both blocks are
//! ignored.

use super::codec::{get_u32, get_u64, put_u64};
use super::{check_magic, check_sum, check_version, check_zero_from, seal_sum, start};

/// Magic of the rescue descriptor.
pub const MAGIC: &[u8; 8] = b"VDERESCU";
/// Bytes the descriptor takes (the rest of its block is zero).
pub const LEN: usize = 56;
const SUM_AT: usize = 48;

/// A decoded rescue descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Rescue {
    /// The epoch of the checkpoint that made the copy.
    pub epoch: u64,
    /// The last committed transaction the copy includes.
    pub last_seq: u64,
    /// The home block the copy stands for.
    pub block: u64,
    /// xxh64 of the copy block, seed 0.
    pub copy_sum: u64,
}

impl Rescue {
    /// Encodes into the first [`LEN`] bytes of `out` (the caller zeroes the rest).
    pub fn encode(&self, out: &mut [u8]) -> Option<()> {
        start(out, MAGIC)?;
        put_u64(out, 16, self.epoch)?;
        put_u64(out, 24, self.last_seq)?;
        put_u64(out, 32, self.block)?;
        put_u64(out, 40, self.copy_sum)?;
        seal_sum(out, SUM_AT)
    }

    /// Decodes a descriptor block; `None` unless magic, version, checksum, the reserved word
    /// and the zero rest all hold.
    pub fn decode(b: &[u8]) -> Option<Rescue> {
        check_magic(b, MAGIC).ok()?;
        check_version(b).ok()?;
        check_sum(b, SUM_AT).ok()?;
        check_zero_from(b, LEN).ok()?;
        if get_u32(b, 12)? != 0 {
            return None;
        }
        Some(Rescue {
            epoch: get_u64(b, 16)?,
            last_seq: get_u64(b, 24)?,
            block: get_u64(b, 32)?,
            copy_sum: get_u64(b, 40)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_flip_refused() {
        let r = Rescue {
            epoch: 7,
            last_seq: 99,
            block: 1234,
            copy_sum: 0xDEAD_BEEF,
        };
        let mut b = [0u8; 512];
        r.encode(&mut b).unwrap();
        assert_eq!(Rescue::decode(&b), Some(r));
        for byte in 0..b.len() {
            let mut c = b;
            c[byte] ^= 0x01;
            assert_eq!(Rescue::decode(&c), None, "flip at {byte}");
        }
        assert_eq!(Rescue::decode(&[0u8; 512]), None);
        assert_eq!(Rescue::decode(&b[..40]), None);
    }
}
