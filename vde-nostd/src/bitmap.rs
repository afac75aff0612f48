//! Bit operations on the allocation bitmap's bit area (1 = allocated, 0 = free, LSB first).
//!
//! These work on one bitmap block's bit slice; the volume maps block numbers to
//! (bitmap block, bit) and reseals each block it changes.

/// Whether bit `i` is set. Out-of-range bits read as set (allocated).
pub fn get(bits: &[u8], i: u64) -> bool {
    let byte = usize::try_from(i / 8).ok().and_then(|b| bits.get(b));
    byte.is_none_or(|b| b & (1 << (i % 8)) != 0)
}

/// Sets bits `from .. from + len` to `value`. Returns `None` if the range leaves the slice.
pub fn set_range(bits: &mut [u8], from: u64, len: u64, value: bool) -> Option<()> {
    let end = from.checked_add(len)?;
    if end > (bits.len() as u64).checked_mul(8)? {
        return None;
    }
    let mut i = from;
    while i < end {
        if i.is_multiple_of(8) && end - i >= 8 {
            let n = ((end - i) / 8) as usize;
            let s = (i / 8) as usize;
            bits.get_mut(s..s + n)?.fill(if value { 0xFF } else { 0 });
            i += n as u64 * 8;
        } else {
            let b = bits.get_mut((i / 8) as usize)?;
            let m = 1u8 << (i % 8);
            if value {
                *b |= m;
            } else {
                *b &= !m;
            }
            i += 1;
        }
    }
    Some(())
}

/// Whether every bit in `from .. from + len` equals `value` (out-of-range reads as set).
pub fn all(bits: &[u8], from: u64, len: u64, value: bool) -> bool {
    (from..from.saturating_add(len)).all(|i| get(bits, i) == value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_get() {
        let mut b = [0u8; 8];
        set_range(&mut b, 3, 20, true).unwrap();
        for i in 0..64 {
            assert_eq!(get(&b, i), (3..23).contains(&i), "bit {i}");
        }
        assert!(all(&b, 3, 20, true));
        assert!(!all(&b, 2, 2, true));
        set_range(&mut b, 5, 2, false).unwrap();
        assert!(!get(&b, 5) && !get(&b, 6) && get(&b, 7));
        assert!(set_range(&mut b, 60, 5, true).is_none());
        assert!(get(&b, 64));
    }
}
