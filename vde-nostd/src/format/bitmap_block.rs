//! A block of the allocation bitmap: bits for `(block_size - 16) * 8` blocks, then a trailer.
//!
//! ```text
//! 0 .. B-16   bits, LSB first: bit i of byte j is block (index * bits_per_block + 8j + i);
//!             1 = allocated, 0 = free. Bits past the volume's last block are 1.
//! B-16  4     bitmap block index (guards against a misdirected write)
//! B-12  4     reserved (0)
//! B-8   8     xxh64(bytes 0..B-8, seed 0)
//! ```

use super::codec::{get_u32, put_u32};
use super::{check_sum, seal_sum, DecodeError};
use crate::format::layout::BITMAP_TRAILER;

/// Seals a bitmap block buffer: writes its index and checksum.
pub fn seal(b: &mut [u8], index: u32) -> Option<()> {
    let t = b.len().checked_sub(BITMAP_TRAILER)?;
    put_u32(b, t, index)?;
    put_u32(b, t + 4, 0)?;
    seal_sum(b, t + 8)
}

/// Checks a bitmap block's trailer against its expected index.
pub fn check(b: &[u8], index: u32) -> Result<(), DecodeError> {
    let f = DecodeError::BadField;
    let t = b.len().checked_sub(BITMAP_TRAILER).ok_or(f)?;
    check_sum(b, t + 8)?;
    if get_u32(b, t) != Some(index) || get_u32(b, t + 4) != Some(0) {
        return Err(f);
    }
    Ok(())
}

/// The bit area of a bitmap block buffer.
pub fn bits(b: &[u8]) -> &[u8] {
    let t = b.len().saturating_sub(BITMAP_TRAILER);
    b.get(..t).unwrap_or(&[])
}

/// The bit area of a bitmap block buffer, mutably.
pub fn bits_mut(b: &mut [u8]) -> &mut [u8] {
    let t = b.len().saturating_sub(BITMAP_TRAILER);
    b.get_mut(..t).unwrap_or(&mut [])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_check() {
        let mut b = [0u8; 512];
        b[3] = 0xF0;
        seal(&mut b, 7).unwrap();
        assert_eq!(check(&b, 7), Ok(()));
        assert_eq!(check(&b, 8), Err(DecodeError::BadField));
        b[0] = 1;
        assert_eq!(check(&b, 7), Err(DecodeError::BadChecksum));
        assert_eq!(bits(&b).len(), 496);
    }
}
