//! Object handles: a `u64` that names an object and carries everything `get` needs.
//!
//! ```text
//! packed (bit 63 = 0): bits 0..36 shared block | 36..46 first 64-byte unit | 46..49 class
//!                      | 49..63 tag (14 bits)
//! extent (bit 63 = 1): bits 0..36 first block | 36..63 tag (27 bits)
//! ```
//! The tag is the low bits of the sequence number of the transaction that stored the object, and
//! is written beside the object; a handle whose tag does not match what is stored is stale.
//! Text form: 16 lowercase hexadecimal digits.

use crate::types::BlockNo;

const BLOCK_BITS: u32 = 36;
const BLOCK_MASK: u64 = (1 << BLOCK_BITS) - 1;
/// Highest block number a handle can name.
pub const MAX_BLOCK: u64 = BLOCK_MASK;

/// A decoded handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Handle {
    /// An object packed into a slot of a shared block.
    Packed {
        /// The shared block.
        block: BlockNo,
        /// First 64-byte unit of the slot.
        unit: u16,
        /// Size class index (0..6).
        class: u8,
        /// Tag (14 bits).
        tag: u16,
    },
    /// An object stored in a run of whole blocks.
    Extent {
        /// First block of the run (holds the extent header).
        start: BlockNo,
        /// Tag (27 bits).
        tag: u32,
    },
}

impl Handle {
    /// The raw `u64`.
    pub fn raw(&self) -> u64 {
        match *self {
            Handle::Packed {
                block,
                unit,
                class,
                tag,
            } => {
                (block.0 & BLOCK_MASK)
                    | (u64::from(unit & 0x3FF) << 36)
                    | (u64::from(class & 7) << 46)
                    | (u64::from(tag & 0x3FFF) << 49)
            }
            Handle::Extent { start, tag } => {
                (1 << 63) | (start.0 & BLOCK_MASK) | (u64::from(tag & 0x7FF_FFFF) << 36)
            }
        }
    }

    /// Decodes a raw value (every `u64` decodes; validity is checked against the volume).
    pub fn from_raw(v: u64) -> Handle {
        if v >> 63 == 0 {
            Handle::Packed {
                block: BlockNo(v & BLOCK_MASK),
                unit: ((v >> 36) & 0x3FF) as u16,
                class: ((v >> 46) & 7) as u8,
                tag: ((v >> 49) & 0x3FFF) as u16,
            }
        } else {
            Handle::Extent {
                start: BlockNo(v & BLOCK_MASK),
                tag: ((v >> 36) & 0x7FF_FFFF) as u32,
            }
        }
    }

    /// The tag a transaction with sequence number `seq` gives a packed object.
    pub fn packed_tag(seq: u64) -> u16 {
        (seq & 0x3FFF) as u16
    }

    /// The tag a transaction with sequence number `seq` gives an extent object.
    pub fn extent_tag(seq: u64) -> u32 {
        (seq & 0x7FF_FFFF) as u32
    }

    /// Writes the 16-digit text form into `out`.
    pub fn to_text(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        let v = self.raw();
        for (i, o) in out.iter_mut().enumerate() {
            let nib = ((v >> (60 - 4 * i)) & 0xF) as u8;
            *o = if nib < 10 {
                b'0' + nib
            } else {
                b'a' + nib - 10
            };
        }
        out
    }

    /// Parses the text form (exactly 16 hexadecimal digits, either case).
    pub fn parse(text: &str) -> Option<Handle> {
        let b = text.as_bytes();
        if b.len() != 16 {
            return None;
        }
        let mut v = 0u64;
        for c in b {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return None,
            };
            v = (v << 4) | u64::from(d);
        }
        Some(Handle::from_raw(v))
    }
}

impl core::fmt::Display for Handle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:016x}", self.raw())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn raw_and_text_round_trip(v in any::<u64>()) {
            let h = Handle::from_raw(v);
            prop_assert_eq!(h.raw(), v);
            let t = h.to_text();
            let s = core::str::from_utf8(&t).unwrap();
            prop_assert_eq!(Handle::parse(s), Some(h));
        }
    }

    #[test]
    fn parse_rejects_garbage() {
        assert_eq!(Handle::parse("xyz"), None);
        assert_eq!(Handle::parse("000000000000000g"), None);
        assert_eq!(Handle::parse("00000000000000000"), None);
        let h = Handle::Extent {
            start: BlockNo(5),
            tag: 9,
        };
        assert_eq!(Handle::parse("800000090000000"), None);
        assert_eq!(Handle::parse("8000009000000005"), Some(h));
    }
}
