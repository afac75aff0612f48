//! The superblock: geometry, layout, module manifest and counters. Two copies (blocks 0 and 1);
//! mount takes the valid one with the highest `sequence`.
//!
//! Byte layout (little-endian), the rest of the block is zero:
//! ```text
//!   0  8  magic "VDESUPER"
//!   8  4  format version (3)
//!  12  4  block size
//!  16  8  block count
//!  24  8  sequence (incremented at every superblock rewrite)
//!  32  8  checkpoint sequence (transaction that wrote this copy)
//!  40  8  module manifest (ModuleSet bits)
//!  48  8  free blocks (as of this write)
//!  56  4  inode size in bytes
//!  60  4  flags: bit 0 = FLAG_FORMATTING (the format has not finished), others 0
//!  64  8  created (caller time)
//!  72  8  modified (caller time)
//!  80  8  WAL blocks
//!  88 16  volume id
//! 104  8  xxh64(bytes 0..104, seed 0)
//! ```
//! The layout (bitmap, directory, pointer table, data start) is derived from block size, block
//! count and WAL blocks; see [`crate::format::layout`].

use super::codec::{get_u32, get_u64, put_bytes, put_u32, put_u64};
use super::{
    check_magic, check_sum, check_version, check_zero_from, seal_sum, start, xxh64, DecodeError,
};

/// Superblock flag: the format that wrote this copy has not finished (its modules may be
/// missing); a mount refuses such a volume as not formatted. The format's last transaction
/// clears it.
pub const FLAG_FORMATTING: u32 = 1;

/// The superblock magic.
pub const MAGIC: &[u8; 8] = b"VDESUPER";
/// Encoded length in bytes.
pub const LEN: usize = 112;
const SUM_AT: usize = 104;

/// A decoded superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Superblock {
    /// Block size in bytes.
    pub block_size: u32,
    /// Blocks on the volume.
    pub block_count: u64,
    /// Rewrite counter: the newer of the two copies wins.
    pub sequence: u64,
    /// Sequence number of the transaction that last wrote this superblock.
    pub checkpoint_seq: u64,
    /// Module manifest bits.
    pub manifest: u64,
    /// Free blocks as of this write (the bitmap is authoritative).
    pub free_blocks: u64,
    /// Inode size in bytes: base plus each present module's contribution.
    pub inode_size: u32,
    /// Reserved flags, zero.
    pub flags: u32,
    /// Creation time (caller's clock).
    pub created: u64,
    /// Last modification time (caller's clock).
    pub modified: u64,
    /// WAL area length in blocks.
    pub wal_blocks: u64,
    /// Volume identity, chosen at format.
    pub volume_id: [u8; 16],
}

impl Superblock {
    /// Encodes into `out` (at least [`LEN`] bytes; the rest of `out` is zeroed).
    pub fn encode(&self, out: &mut [u8]) -> Option<()> {
        if out.len() < LEN {
            return None;
        }
        start(out, MAGIC)?;
        put_u32(out, 12, self.block_size)?;
        put_u64(out, 16, self.block_count)?;
        put_u64(out, 24, self.sequence)?;
        put_u64(out, 32, self.checkpoint_seq)?;
        put_u64(out, 40, self.manifest)?;
        put_u64(out, 48, self.free_blocks)?;
        put_u32(out, 56, self.inode_size)?;
        put_u32(out, 60, self.flags)?;
        put_u64(out, 64, self.created)?;
        put_u64(out, 72, self.modified)?;
        put_u64(out, 80, self.wal_blocks)?;
        put_bytes(out, 88, &self.volume_id)?;
        seal_sum(out, SUM_AT)
    }

    /// Decodes from `b`.
    pub fn decode(b: &[u8]) -> Result<Superblock, DecodeError> {
        check_magic(b, MAGIC)?;
        check_version(b)?;
        check_sum(b, SUM_AT)?;
        // The rest of the block is zero by definition.
        check_zero_from(b, LEN)?;
        let f = DecodeError::BadField;
        let mut volume_id = [0u8; 16];
        volume_id.copy_from_slice(b.get(88..104).ok_or(f)?);
        Ok(Superblock {
            block_size: get_u32(b, 12).ok_or(f)?,
            block_count: get_u64(b, 16).ok_or(f)?,
            sequence: get_u64(b, 24).ok_or(f)?,
            checkpoint_seq: get_u64(b, 32).ok_or(f)?,
            manifest: get_u64(b, 40).ok_or(f)?,
            free_blocks: get_u64(b, 48).ok_or(f)?,
            inode_size: get_u32(b, 56).ok_or(f)?,
            flags: get_u32(b, 60).ok_or(f)?,
            created: get_u64(b, 64).ok_or(f)?,
            modified: get_u64(b, 72).ok_or(f)?,
            wal_blocks: get_u64(b, 80).ok_or(f)?,
            volume_id,
        })
    }

    /// A salt unique to this volume, mixed into WAL checksums so that a log left by an earlier
    /// format of the same device never validates.
    pub fn wal_salt(&self) -> u64 {
        let mut b = [0u8; 24];
        b[..16].copy_from_slice(&self.volume_id);
        b[16..].copy_from_slice(&self.created.to_le_bytes());
        xxh64(&b, 0x5644_4557_414c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Superblock {
        Superblock {
            block_size: 4096,
            block_count: 1000,
            sequence: 7,
            checkpoint_seq: 3,
            manifest: 0b101,
            free_blocks: 900,
            inode_size: 96,
            flags: 0,
            created: 11,
            modified: 12,
            wal_blocks: 16,
            volume_id: [9; 16],
        }
    }

    #[test]
    fn round_trip_and_every_bit_flip_is_caught() {
        let mut buf = [0u8; 512];
        sample().encode(&mut buf).unwrap();
        assert_eq!(Superblock::decode(&buf), Ok(sample()));
        for byte in 0..LEN {
            for bit in 0..8 {
                let mut c = buf;
                c[byte] ^= 1 << bit;
                assert!(Superblock::decode(&c).is_err(), "flip {byte}.{bit}");
            }
        }
        assert_eq!(Superblock::decode(&[0u8; 512]), Err(DecodeError::BadMagic));
        assert!(Superblock::decode(&buf[..50]).is_err());
    }
}
