//! The WAL header: two copies (blocks 2 and 3) written alternately, each followed by a flush, so
//! rewriting one can never lose the other. Mount takes the valid copy with the highest
//! `generation` (the rules: [`crate::verifier::wal_header`], [`crate::verifier::wal_choice`]).
//!
//! Byte layout (little-endian), rest of the block zero:
//! ```text
//!  0  8  magic "VDEWALHD"
//!  8  4  format version (3)
//! 12  4  reserved (0)
//! 16  8  generation (incremented at every header write)
//! 24  8  epoch (log content of any other epoch is ignored)
//! 32  8  checkpoint sequence: every transaction <= this is applied and durable
//!        (this is the seed's "completion marker")
//! 40  8  WAL area start block
//! 48  8  WAL area length in blocks
//! 56 80  object counters as of the checkpoint (see [`super::counters`])
//! 136 8  xxh64(bytes 0..136, seed 0)
//! ```

use super::codec::{get_u32, get_u64, put_u64};
use super::counters::{self, Counters};
use super::{check_magic, check_sum, check_version, check_zero_from, seal_sum, start, DecodeError};

/// The WAL header magic.
pub const MAGIC: &[u8; 8] = b"VDEWALHD";
/// Encoded length in bytes.
pub const LEN: usize = 144;
const COUNTERS_AT: usize = 56;
const SUM_AT: usize = COUNTERS_AT + counters::LEN;

/// A decoded WAL header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct WalHeader {
    /// Write counter: the newer valid copy wins.
    pub generation: u64,
    /// Current log epoch.
    pub epoch: u64,
    /// Every transaction with a sequence number at or below this is applied and durable.
    pub checkpoint_seq: u64,
    /// First block of the WAL area.
    pub wal_start: u64,
    /// WAL area length in blocks.
    pub wal_blocks: u64,
    /// The object counters after the transaction `checkpoint_seq` (the commit markers of later
    /// transactions carry their changes).
    pub counters: Counters,
}

impl WalHeader {
    /// Encodes into `out` (at least [`LEN`] bytes; the rest is zeroed).
    pub fn encode(&self, out: &mut [u8]) -> Option<()> {
        if out.len() < LEN {
            return None;
        }
        start(out, MAGIC)?;
        put_u64(out, 16, self.generation)?;
        put_u64(out, 24, self.epoch)?;
        put_u64(out, 32, self.checkpoint_seq)?;
        put_u64(out, 40, self.wal_start)?;
        put_u64(out, 48, self.wal_blocks)?;
        self.counters.encode_at(out, COUNTERS_AT)?;
        seal_sum(out, SUM_AT)
    }

    /// Decodes from `b`.
    pub fn decode(b: &[u8]) -> Result<WalHeader, DecodeError> {
        check_magic(b, MAGIC)?;
        check_version(b)?;
        check_sum(b, SUM_AT)?;
        // The rest of the block is zero by definition.
        check_zero_from(b, LEN)?;
        let f = DecodeError::BadField;
        if get_u32(b, 12).ok_or(f)? != 0 {
            return Err(f);
        }
        Ok(WalHeader {
            generation: get_u64(b, 16).ok_or(f)?,
            epoch: get_u64(b, 24).ok_or(f)?,
            checkpoint_seq: get_u64(b, 32).ok_or(f)?,
            wal_start: get_u64(b, 40).ok_or(f)?,
            wal_blocks: get_u64(b, 48).ok_or(f)?,
            counters: Counters::decode_at(b, COUNTERS_AT).ok_or(f)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_flips() {
        let h = WalHeader {
            generation: 5,
            epoch: 4,
            checkpoint_seq: 99,
            wal_start: 4,
            wal_blocks: 8,
            counters: Counters::from_array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
        };
        let mut b = [0u8; 512];
        h.encode(&mut b).unwrap();
        assert_eq!(WalHeader::decode(&b), Ok(h));
        for byte in 0..LEN {
            let mut c = b;
            c[byte] ^= 0x10;
            assert!(WalHeader::decode(&c).is_err());
        }
    }
}
