//! The log stream of one WAL transaction (format version 2), as it sits in the WAL area.
//!
//! The WAL area is one byte stream of `wal_blocks × block_size` bytes; a log position is a byte
//! offset into it. Each checkpoint interval starts at position 0 and transactions follow one
//! another; a transaction may cross block boundaries but never the end of the area.
//!
//! ```text
//! begin   (24 B)  magic "VTXB" | record bound u32 | epoch u64 | seq u64
//!                 (at most this many records follow; the commit marker may come sooner)
//! record  (16+N+8) kind u8 | flags u8 (0) | a u16 | b u16 | target u48 | prev u32
//!                 | Data[N] | XxHash64 u64 = xxh64(record header | Data, seed)
//!                 kind 1 IMAGE: a = 0, b = 0, N = block size (the whole block)
//!                 kind 2 RANGES: a = range count n (>= 1), b = changed bytes m (>= 1),
//!                 N = 4n + m: n entries (offset u16, length u16), ascending and disjoint,
//!                 lengths >= 1 summing to m, each inside the block; then the m bytes in
//!                 entry order
//!                 kind 3 SPARSE: as RANGES, over a block of zeros (a whole-block record, like
//!                 an IMAGE, for a block that is mostly zero)
//!                 prev: log position of the previous record naming the same target since the
//!                 checkpoint, 0xFFFF_FFFF if none (then the record must be an IMAGE)
//! ...             any number of records
//! commit  (17..=127 B)  magic "VTXC" | span u32 | counter delta (1..=111 B) | txn hash u64
//!                 span = bytes from the begin header to the next transaction's begin header
//!                 (this transaction's bytes plus zero padding to the device's append unit)
//!                 counter delta: how the transaction changed the object counters
//!                 ([`super::counters::Delta`]; `0` alone when it changed none)
//!                 txn hash = xxh64(begin | records | commit bytes before the hash, seed)
//! ```
//! `seed = seq XOR volume salt` binds every record to its transaction and volume: a stale record
//! left in the same log space by an earlier transaction, epoch or format never validates.

use super::codec::{get_u16, get_u32, get_u64, put_bytes, put_u16, put_u32, put_u64};
use super::counters::{self, Delta};
use super::DecodeError;

/// Magic of a transaction's begin header.
pub const BEGIN_MAGIC: &[u8; 4] = b"VTXB";
/// Magic of a transaction's commit marker.
pub const COMMIT_MAGIC: &[u8; 4] = b"VTXC";
/// Length of the begin header.
pub const BEGIN_LEN: usize = 24;
/// Length of a record header.
pub const RECORD_HEADER: usize = 16;
/// Length of a record's trailing hash.
pub const RECORD_SUFFIX: usize = 8;
/// Length of a commit marker without its counter delta.
pub const COMMIT_FIXED: usize = 16;
/// Longest commit marker (the largest counter delta).
pub const COMMIT_MAX: usize = COMMIT_FIXED + counters::MAX_DELTA;
/// `prev` of the first record naming a target since the checkpoint.
pub const NO_PREV: u32 = u32::MAX;
/// Most distinct targets the records of one checkpoint interval may name. A writer checkpoints
/// before exceeding it; recovery refuses a log that names more.
pub const MAX_DIRTY: usize = 64;
/// Most RANGES records a target's chain may hold after its last IMAGE. A writer logs a new
/// IMAGE instead; recovery refuses a longer chain.
pub const MAX_CHAIN: usize = 64;
/// Bytes of one entry of a RANGES record's table.
pub const RANGE_ENTRY: usize = 4;
/// Highest target block a record can name (48 bits).
pub const MAX_TARGET: u64 = (1 << 48) - 1;

/// The hash seed for transaction `seq` on a volume with `salt`.
pub fn seed(seq: u64, salt: u64) -> u64 {
    seq ^ salt
}

/// Bytes of a record carrying `n` data bytes.
pub const fn record_len(n: usize) -> usize {
    RECORD_HEADER + n + RECORD_SUFFIX
}

/// Bytes a transaction of `images` whole-block records takes before padding: the most a
/// transaction over that many blocks can take.
pub fn worst_txn_bytes(images: u64, block_size: u64) -> Option<u64> {
    let per = block_size.checked_add((RECORD_HEADER + RECORD_SUFFIX) as u64)?;
    per.checked_mul(images)?
        .checked_add((BEGIN_LEN + COMMIT_MAX) as u64)
}

/// A transaction's begin header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TxIdent {
    /// Log epoch the transaction was written in.
    pub epoch: u64,
    /// Transaction sequence number.
    pub seq: u64,
    /// Most records that follow (the commit marker may come after fewer).
    pub records: u32,
}

impl TxIdent {
    /// Encodes the begin header.
    pub fn encode_begin(&self, out: &mut [u8; BEGIN_LEN]) {
        // The array is exactly BEGIN_LEN long, so every put fits.
        let _ = put_bytes(out, 0, BEGIN_MAGIC);
        let _ = put_u32(out, 4, self.records);
        let _ = put_u64(out, 8, self.epoch);
        let _ = put_u64(out, 16, self.seq);
    }
    /// Decodes a begin header.
    pub fn decode_begin(b: &[u8]) -> Result<TxIdent, DecodeError> {
        if b.get(0..4) != Some(BEGIN_MAGIC.as_slice()) {
            return Err(DecodeError::BadMagic);
        }
        let f = DecodeError::BadField;
        Ok(TxIdent {
            records: get_u32(b, 4).ok_or(f)?,
            epoch: get_u64(b, 8).ok_or(f)?,
            seq: get_u64(b, 16).ok_or(f)?,
        })
    }
}

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RecordKind {
    /// The whole block.
    Image,
    /// `count` byte ranges of `bytes` bytes in all: a table of `count` (offset u16, length
    /// u16) entries, then the bytes.
    Ranges {
        /// Number of ranges (at least 1).
        count: u16,
        /// Bytes they cover (at least 1).
        bytes: u16,
    },
    /// The whole block: zeros, except `count` byte ranges of `bytes` bytes in all (laid out as
    /// in [`RecordKind::Ranges`]).
    Sparse {
        /// Number of ranges (at least 1).
        count: u16,
        /// Bytes they cover (at least 1).
        bytes: u16,
    },
}

impl RecordKind {
    /// Whether the record gives the whole block (IMAGE or SPARSE): it may start a chain and
    /// ends a rebuild.
    pub fn is_whole(&self) -> bool {
        !matches!(self, RecordKind::Ranges { .. })
    }
}

/// A record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RecordHeader {
    /// Image or byte range.
    pub kind: RecordKind,
    /// The block it changes.
    pub target: u64,
    /// Log position of the previous record naming `target` since the checkpoint, or
    /// [`NO_PREV`].
    pub prev: u32,
}

impl RecordHeader {
    /// Encodes the header. `None` if the target does not fit 48 bits.
    pub fn encode(&self) -> Option<[u8; RECORD_HEADER]> {
        if self.target > MAX_TARGET {
            return None;
        }
        let mut o = [0u8; RECORD_HEADER];
        let (kind, off, len) = match self.kind {
            RecordKind::Image => (1u8, 0, 0),
            RecordKind::Ranges { count, bytes } => (2u8, count, bytes),
            RecordKind::Sparse { count, bytes } => (3u8, count, bytes),
        };
        o[0] = kind;
        put_u16(&mut o, 2, off)?;
        put_u16(&mut o, 4, len)?;
        put_bytes(&mut o, 6, self.target.to_le_bytes().get(..6)?)?;
        put_u32(&mut o, 12, self.prev)?;
        Some(o)
    }
    /// Decodes a header for a volume of `block_size`-byte blocks.
    pub fn decode(b: &[u8], block_size: usize) -> Result<RecordHeader, DecodeError> {
        let f = DecodeError::BadField;
        let b = b.get(..RECORD_HEADER).ok_or(f)?;
        if b.get(1) != Some(&0) {
            return Err(f);
        }
        let off = get_u16(b, 2).ok_or(f)?;
        let len = get_u16(b, 4).ok_or(f)?;
        let mut t = [0u8; 8];
        t.get_mut(..6)
            .ok_or(f)?
            .copy_from_slice(b.get(6..12).ok_or(f)?);
        let kind = match b.first() {
            Some(1) if off == 0 && len == 0 => RecordKind::Image,
            Some(2) if off > 0 && len > 0 && usize::from(len) < block_size => RecordKind::Ranges {
                count: off,
                bytes: len,
            },
            Some(3) if off > 0 && len > 0 && usize::from(len) < block_size => RecordKind::Sparse {
                count: off,
                bytes: len,
            },
            _ => return Err(f),
        };
        Ok(RecordHeader {
            kind,
            target: u64::from_le_bytes(t),
            prev: get_u32(b, 12).ok_or(f)?,
        })
    }
    /// Data bytes that follow the header.
    pub fn data_len(&self, block_size: usize) -> usize {
        match self.kind {
            RecordKind::Image => block_size,
            RecordKind::Ranges { count, bytes } | RecordKind::Sparse { count, bytes } => {
                usize::from(count) * RANGE_ENTRY + usize::from(bytes)
            }
        }
    }
}

/// One entry of a RANGES record's table: `len` bytes at `offset` of the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Range {
    /// First byte.
    pub offset: u16,
    /// Length (at least 1).
    pub len: u16,
}

impl Range {
    /// Encodes the entry.
    pub fn encode(&self) -> [u8; RANGE_ENTRY] {
        let mut o = [0u8; RANGE_ENTRY];
        o[..2].copy_from_slice(&self.offset.to_le_bytes());
        o[2..].copy_from_slice(&self.len.to_le_bytes());
        o
    }
    /// Decodes an entry that must start at or after `min` (the end of the previous one) and
    /// end inside a block of `block_size` bytes.
    pub fn decode(b: &[u8; RANGE_ENTRY], min: usize, block_size: usize) -> Option<Range> {
        let r = Range {
            offset: u16::from_le_bytes([b[0], b[1]]),
            len: u16::from_le_bytes([b[2], b[3]]),
        };
        let start = usize::from(r.offset);
        (r.len > 0 && start >= min && start + usize::from(r.len) <= block_size).then_some(r)
    }
    /// One past the last byte.
    pub fn end(&self) -> usize {
        usize::from(self.offset) + usize::from(self.len)
    }
}

/// A transaction's commit marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// Bytes from the begin header to the next transaction's (padding included).
    pub span: u32,
    /// How the transaction changed the object counters.
    pub delta: Delta,
    /// xxh64 of the begin header, every record and the marker's bytes before the hash.
    pub txn_hash: u64,
}

impl Commit {
    /// Encodes the marker's bytes before the hash (magic, span, counter delta) into the start
    /// of `out`; returns their length.
    pub fn encode_head(span: u32, delta: &Delta, out: &mut [u8]) -> Option<usize> {
        put_bytes(out, 0, COMMIT_MAGIC)?;
        put_u32(out, 4, span)?;
        Some(8 + delta.encode(out.get_mut(8..)?)?)
    }
    /// Encodes the marker into the start of `out`; returns its length.
    pub fn encode(&self, out: &mut [u8]) -> Option<usize> {
        let n = Self::encode_head(self.span, &self.delta, out)?;
        put_u64(out, n, self.txn_hash)?;
        Some(n + 8)
    }
    /// Decodes a marker from the start of `b` (its hash is checked by the caller, who has the
    /// transaction); returns it and the length of its bytes before the hash.
    pub fn decode(b: &[u8]) -> Result<(Commit, usize), DecodeError> {
        if b.get(0..4) != Some(COMMIT_MAGIC.as_slice()) {
            return Err(DecodeError::BadMagic);
        }
        let f = DecodeError::BadField;
        let (delta, n) = Delta::decode(b.get(8..).ok_or(f)?)?;
        Ok((
            Commit {
                span: get_u32(b, 4).ok_or(f)?,
                delta,
                txn_hash: get_u64(b, 8 + n).ok_or(f)?,
            },
            8 + n,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(worst_txn_bytes(1, 4096), Some(24 + 16 + 4096 + 8 + 127));
        assert_eq!(worst_txn_bytes(u64::MAX, 4096), None);
        assert_eq!(record_len(72), 96);
    }

    #[test]
    fn round_trips_and_refusals() {
        let t = TxIdent {
            epoch: 3,
            seq: 9,
            records: 2,
        };
        let mut h = [0u8; BEGIN_LEN];
        t.encode_begin(&mut h);
        assert_eq!(TxIdent::decode_begin(&h), Ok(t));
        let after = super::super::counters::Counters {
            objects: 1,
            bytes: 300,
            ..Default::default()
        };
        let c = Commit {
            span: 300,
            delta: Delta::between(&Default::default(), &after),
            txn_hash: 0xdead,
        };
        let mut m = [0u8; COMMIT_MAX];
        let n = c.encode(&mut m).unwrap();
        assert_eq!(n, COMMIT_FIXED + 6);
        assert_eq!(Commit::decode(&m[..n]), Ok((c, n - 8)));
        assert!(Commit::decode(&m[..n - 1]).is_err());
        assert_eq!(TxIdent::decode_begin(&m), Err(DecodeError::BadMagic));
        for kind in [
            RecordKind::Image,
            RecordKind::Ranges {
                count: 2,
                bytes: 72,
            },
            RecordKind::Sparse {
                count: 1,
                bytes: 4095,
            },
        ] {
            let r = RecordHeader {
                kind,
                target: MAX_TARGET,
                prev: 17,
            };
            let e = r.encode().unwrap();
            assert_eq!(RecordHeader::decode(&e, 4096), Ok(r));
        }
        let over = RecordHeader {
            kind: RecordKind::Image,
            target: MAX_TARGET + 1,
            prev: NO_PREV,
        };
        assert_eq!(over.encode(), None);
        let whole = RecordHeader {
            kind: RecordKind::Ranges {
                count: 1,
                bytes: 4096,
            },
            target: 1,
            prev: NO_PREV,
        };
        let e = whole.encode().unwrap();
        assert_eq!(RecordHeader::decode(&e, 4096), Err(DecodeError::BadField));
        let mut bad_kind = e;
        bad_kind[0] = 4;
        assert!(RecordHeader::decode(&bad_kind, 65536).is_err());
        let r = Range { offset: 8, len: 4 };
        assert_eq!(Range::decode(&r.encode(), 8, 4096), Some(r));
        assert_eq!(
            Range::decode(&r.encode(), 9, 4096),
            None,
            "overlaps the previous"
        );
        assert_eq!(Range::decode(&r.encode(), 0, 11), None, "past the block");
        let empty = Range { offset: 8, len: 0 };
        assert_eq!(Range::decode(&empty.encode(), 0, 4096), None);
    }
}
