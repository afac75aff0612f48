//! The log stream of one WAL transaction, as it sits in the WAL area. A transaction starts at a
//! block boundary and is a byte stream running through consecutive WAL blocks:
//!
//! ```text
//! begin   (32 B)  magic "VDETXBEG" | epoch u64 | seq u64 | record count u32 | reserved u32 (0)
//! record  (20+N)  TargetBlock u64 | DataLength u32 | Data[N] | XxHash64 u64
//!                 (hash = xxh64(TargetBlock|DataLength|Data, seed))
//! ...             one record per block update, N = block size
//! commit  (48 B)  magic "VDETXCMT" | epoch u64 | seq u64 | record count u32 | reserved u32 (0)
//!                 | txn hash u64 = xxh64(every byte from begin through the last record, seed)
//!                 | marker hash u64 = xxh64(commit bytes 0..40, seed)
//! ```
//! `seed = seq XOR volume salt` binds every record to its transaction and volume: a stale record
//! left in the same log space by an earlier transaction, epoch or format never validates.
//! The unused tail of the last block is zero.

use super::codec::{get_u32, get_u64, put_bytes, put_u32, put_u64};
use super::{xxh64, DecodeError};

/// Magic of a transaction's begin header.
pub const BEGIN_MAGIC: &[u8; 8] = b"VDETXBEG";
/// Magic of a transaction's commit marker.
pub const COMMIT_MAGIC: &[u8; 8] = b"VDETXCMT";
/// Length of the begin header.
pub const BEGIN_LEN: usize = 32;
/// Length of a record's prefix (target + length).
pub const RECORD_PREFIX: usize = 12;
/// Length of a record's suffix (hash).
pub const RECORD_SUFFIX: usize = 8;
/// Length of the commit marker.
pub const COMMIT_LEN: usize = 48;

/// The hash seed for transaction `seq` on a volume with `salt`.
pub fn seed(seq: u64, salt: u64) -> u64 {
    seq ^ salt
}

/// Bytes a transaction of `records` full-block records occupies in the log.
pub fn txn_bytes(records: u64, block_size: u64) -> Option<u64> {
    let per = block_size.checked_add((RECORD_PREFIX + RECORD_SUFFIX) as u64)?;
    per.checked_mul(records)?
        .checked_add((BEGIN_LEN + COMMIT_LEN) as u64)
}

/// Log blocks a transaction of `records` records occupies.
pub fn txn_blocks(records: u64, block_size: u64) -> Option<u64> {
    Some(txn_bytes(records, block_size)?.div_ceil(block_size))
}

/// A transaction's begin header (also the identity fields of its commit marker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TxIdent {
    /// Log epoch the transaction was written in.
    pub epoch: u64,
    /// Transaction sequence number.
    pub seq: u64,
    /// Number of records.
    pub records: u32,
}

impl TxIdent {
    fn encode_with(&self, magic: &[u8; 8], out: &mut [u8]) -> Option<()> {
        put_bytes(out, 0, magic)?;
        put_u64(out, 8, self.epoch)?;
        put_u64(out, 16, self.seq)?;
        put_u32(out, 24, self.records)?;
        put_u32(out, 28, 0)
    }
    fn decode_with(magic: &[u8; 8], b: &[u8]) -> Result<TxIdent, DecodeError> {
        if b.get(0..8) != Some(magic.as_slice()) {
            return Err(DecodeError::BadMagic);
        }
        let f = DecodeError::BadField;
        if get_u32(b, 28).ok_or(f)? != 0 {
            return Err(f);
        }
        Ok(TxIdent {
            epoch: get_u64(b, 8).ok_or(f)?,
            seq: get_u64(b, 16).ok_or(f)?,
            records: get_u32(b, 24).ok_or(f)?,
        })
    }
    /// Encodes the begin header into `out` ([`BEGIN_LEN`] bytes).
    pub fn encode_begin(&self, out: &mut [u8; BEGIN_LEN]) {
        // The array is exactly BEGIN_LEN long, so every put fits.
        let _ = self.encode_with(BEGIN_MAGIC, out);
    }
    /// Decodes a begin header.
    pub fn decode_begin(b: &[u8]) -> Result<TxIdent, DecodeError> {
        Self::decode_with(BEGIN_MAGIC, b)
    }
}

/// A transaction's commit marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Commit {
    /// Identity (must equal the begin header's).
    pub ident: TxIdent,
    /// xxh64 of every byte from the begin header through the last record.
    pub txn_hash: u64,
}

impl Commit {
    /// Encodes the commit marker, sealing it with `seed`.
    pub fn encode(&self, seed: u64, out: &mut [u8; COMMIT_LEN]) {
        let _ = self.ident.encode_with(COMMIT_MAGIC, out);
        let _ = put_u64(out, 32, self.txn_hash);
        let sum = xxh64(&out[..40], seed);
        let _ = put_u64(out, 40, sum);
    }
    /// Decodes a commit marker sealed with `seed`.
    pub fn decode(b: &[u8], seed: u64) -> Result<Commit, DecodeError> {
        let ident = TxIdent::decode_with(COMMIT_MAGIC, b)?;
        let f = DecodeError::BadField;
        let sum = get_u64(b, 40).ok_or(f)?;
        if xxh64(b.get(..40).ok_or(f)?, seed) != sum {
            return Err(DecodeError::BadChecksum);
        }
        Ok(Commit {
            ident,
            txn_hash: get_u64(b, 32).ok_or(f)?,
        })
    }
}

/// Encodes a record prefix.
pub fn record_prefix(target: u64, len: u32) -> [u8; RECORD_PREFIX] {
    let mut p = [0u8; RECORD_PREFIX];
    p[..8].copy_from_slice(&target.to_le_bytes());
    p[8..].copy_from_slice(&len.to_le_bytes());
    p
}

/// Decodes a record prefix into (target, length).
pub fn parse_record_prefix(p: &[u8; RECORD_PREFIX]) -> (u64, u32) {
    let t = get_u64(p, 0).unwrap_or(u64::MAX);
    let l = get_u32(p, 8).unwrap_or(u32::MAX);
    (t, l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(txn_bytes(1, 4096), Some(32 + 4116 + 48));
        assert_eq!(txn_blocks(1, 4096), Some(2));
        assert_eq!(txn_blocks(0, 512), Some(1));
        assert_eq!(txn_bytes(u64::MAX, 4096), None);
    }

    #[test]
    fn commit_round_trip_and_seed_binding() {
        let c = Commit {
            ident: TxIdent {
                epoch: 3,
                seq: 9,
                records: 2,
            },
            txn_hash: 0xdead,
        };
        let mut b = [0u8; COMMIT_LEN];
        c.encode(seed(9, 77), &mut b);
        assert_eq!(Commit::decode(&b, seed(9, 77)), Ok(c));
        assert_eq!(
            Commit::decode(&b, seed(10, 77)),
            Err(DecodeError::BadChecksum)
        );
        assert_eq!(
            Commit::decode(&b, seed(9, 78)),
            Err(DecodeError::BadChecksum)
        );
        let mut h = [0u8; BEGIN_LEN];
        c.ident.encode_begin(&mut h);
        assert_eq!(TxIdent::decode_begin(&h), Ok(c.ident));
        assert_eq!(TxIdent::decode_begin(&b), Err(DecodeError::BadMagic));
    }
}
