//! Little-endian field access on byte slices with bounds checks that never panic.
//!
//! Reads past the end yield `None`; writes past the end are refused with `None`. Encoders write
//! into zeroed block buffers whose size they have checked first.

/// Reads a little-endian `u16` at `off`.
pub fn get_u16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([*s.first()?, *s.get(1)?]))
}

/// Reads a little-endian `u32` at `off`.
pub fn get_u32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(s);
    Some(u32::from_le_bytes(a))
}

/// Reads a little-endian `u64` at `off`.
pub fn get_u64(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

/// Writes a little-endian `u16` at `off`.
pub fn put_u16(b: &mut [u8], off: usize, v: u16) -> Option<()> {
    b.get_mut(off..off.checked_add(2)?)?
        .copy_from_slice(&v.to_le_bytes());
    Some(())
}

/// Writes a little-endian `u32` at `off`.
pub fn put_u32(b: &mut [u8], off: usize, v: u32) -> Option<()> {
    b.get_mut(off..off.checked_add(4)?)?
        .copy_from_slice(&v.to_le_bytes());
    Some(())
}

/// Writes a little-endian `u64` at `off`.
pub fn put_u64(b: &mut [u8], off: usize, v: u64) -> Option<()> {
    b.get_mut(off..off.checked_add(8)?)?
        .copy_from_slice(&v.to_le_bytes());
    Some(())
}

/// Copies `src` into `b` at `off`.
pub fn put_bytes(b: &mut [u8], off: usize, src: &[u8]) -> Option<()> {
    b.get_mut(off..off.checked_add(src.len())?)?
        .copy_from_slice(src);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        let mut b = [0u8; 10];
        assert_eq!(put_u64(&mut b, 2, 0x0102_0304_0506_0708), Some(()));
        assert_eq!(get_u64(&b, 2), Some(0x0102_0304_0506_0708));
        assert_eq!(b[2], 0x08);
        assert_eq!(get_u64(&b, 3), None);
        assert_eq!(get_u32(&b, usize::MAX), None);
        assert_eq!(put_u16(&mut b, 9, 1), None);
        assert_eq!(get_u16(&b, 8), Some(0x0102));
    }
}
