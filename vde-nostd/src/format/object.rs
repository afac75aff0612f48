//! Object headers: the 8-byte header at the start of every packed slot and the 48-byte header at
//! the start of every extent's first block.
//!
//! Slot header (slot bytes 0..8, payload follows):
//! ```text
//! 0 2 payload length | 2 2 tag | 4 4 low 32 bits of xxh64(payload, seed = handle)
//! ```
//! An all-zero slot header marks a free slot (a zero-length object has a non-zero check).
//!
//! Extent header (first block bytes 0..48, payload follows and runs on through the next blocks):
//! ```text
//!  0 8 magic "VDEOBJX1" |  8 8 handle | 16 8 payload length | 24 8 xxh64(payload, seed = handle)
//! 32 8 reserved (0)     | 40 8 xxh64(bytes 0..40, seed 0)
//! ```

use super::codec::{get_u16, get_u32, get_u64, put_bytes, put_u16, put_u32, put_u64};
use super::{check_magic, check_sum, seal_sum, xxh64, DecodeError};

/// Bytes of slot header.
pub const SLOT_HDR: usize = 8;
/// Bytes of extent header.
pub const EXTENT_HDR: usize = 48;
/// Magic of an extent header.
pub const EXTENT_MAGIC: &[u8; 8] = b"VDEOBJX1";

/// A decoded slot header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SlotHeader {
    /// Payload length.
    pub len: u16,
    /// The object's tag.
    pub tag: u16,
    /// Payload checksum (low 32 bits of xxh64 seeded with the handle).
    pub check: u32,
}

/// The payload checksum a slot header stores.
pub fn slot_check(payload: &[u8], handle: u64) -> u32 {
    xxh64(payload, handle) as u32
}

impl SlotHeader {
    /// Encodes into the first [`SLOT_HDR`] bytes of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Option<()> {
        put_u16(out, 0, self.len)?;
        put_u16(out, 2, self.tag)?;
        put_u32(out, 4, self.check)
    }
    /// Decodes from the first bytes of `b`.
    pub fn decode(b: &[u8]) -> Result<SlotHeader, DecodeError> {
        let f = DecodeError::BadField;
        Ok(SlotHeader {
            len: get_u16(b, 0).ok_or(f)?,
            tag: get_u16(b, 2).ok_or(f)?,
            check: get_u32(b, 4).ok_or(f)?,
        })
    }
}

/// A decoded extent header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ExtentHeader {
    /// The handle this extent was stored under.
    pub handle: u64,
    /// Payload length.
    pub len: u64,
    /// xxh64 of the payload, seeded with the handle.
    pub payload_hash: u64,
}

impl ExtentHeader {
    /// Encodes into the first [`EXTENT_HDR`] bytes of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Option<()> {
        put_bytes(out, 0, EXTENT_MAGIC)?;
        put_u64(out, 8, self.handle)?;
        put_u64(out, 16, self.len)?;
        put_u64(out, 24, self.payload_hash)?;
        put_u64(out, 32, 0)?;
        seal_sum(out, 40)
    }
    /// Decodes from the first bytes of `b`.
    pub fn decode(b: &[u8]) -> Result<ExtentHeader, DecodeError> {
        check_magic(b, EXTENT_MAGIC)?;
        check_sum(b, 40)?;
        let f = DecodeError::BadField;
        if get_u64(b, 32) != Some(0) {
            return Err(f);
        }
        Ok(ExtentHeader {
            handle: get_u64(b, 8).ok_or(f)?,
            len: get_u64(b, 16).ok_or(f)?,
            payload_hash: get_u64(b, 24).ok_or(f)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let s = SlotHeader {
            len: 5,
            tag: 7,
            check: 9,
        };
        let mut b = [0u8; 16];
        s.encode(&mut b).unwrap();
        assert_eq!(SlotHeader::decode(&b), Ok(s));
        let e = ExtentHeader {
            handle: 1 << 63,
            len: 10_000,
            payload_hash: 3,
        };
        let mut b = [0u8; 64];
        e.encode(&mut b).unwrap();
        assert_eq!(ExtentHeader::decode(&b), Ok(e));
        b[17] ^= 1;
        assert_eq!(ExtentHeader::decode(&b), Err(DecodeError::BadChecksum));
    }
}
