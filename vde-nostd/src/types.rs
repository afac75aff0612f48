//! Newtypes for the numbers the engine passes around: block numbers, transaction sequence
//! numbers and WAL epochs. Keeping them distinct types stops a sequence number from being used
//! as a block address by mistake.

/// A block address on the device (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BlockNo(pub u64);

impl BlockNo {
    /// The raw block number.
    pub const fn get(self) -> u64 {
        self.0
    }
    /// `self + n`, or `None` on overflow.
    pub fn checked_add(self, n: u64) -> Option<BlockNo> {
        self.0.checked_add(n).map(BlockNo)
    }
}

/// A transaction sequence number: strictly increasing over the life of a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Seq(pub u64);

impl Seq {
    /// The next sequence number (saturating: 2^64 transactions are never reached).
    pub const fn next(self) -> Seq {
        Seq(self.0.saturating_add(1))
    }
}

/// A WAL epoch: incremented at every checkpoint, so that log content written in an earlier
/// epoch can never validate in a later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Epoch(pub u64);

impl Epoch {
    /// The next epoch.
    pub const fn next(self) -> Epoch {
        Epoch(self.0.saturating_add(1))
    }
}

/// A contiguous run of blocks: `start .. start + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Extent {
    /// First block of the run.
    pub start: BlockNo,
    /// Number of blocks in the run.
    pub len: u64,
}

impl Extent {
    /// One past the last block, or `None` on overflow.
    pub fn end(&self) -> Option<u64> {
        self.start.0.checked_add(self.len)
    }
    /// Whether two extents share at least one block.
    pub fn overlaps(&self, other: &Extent) -> bool {
        match (self.end(), other.end()) {
            (Some(a_end), Some(b_end)) => self.start.0 < b_end && other.start.0 < a_end,
            _ => true,
        }
    }
    /// Whether `b` lies inside this extent.
    pub fn contains(&self, b: BlockNo) -> bool {
        b.0 >= self.start.0 && self.end().is_some_and(|e| b.0 < e)
    }
}

/// `x / d` for a power-of-two `d` (a block size, bits per bitmap block), by a shift: no 64-bit
/// division routine on a 32-bit target. A `d` of 0 gives 0.
pub(crate) fn pow2_div(x: u64, d: u64) -> u64 {
    x.checked_shr(d.trailing_zeros()).unwrap_or(0)
}

/// `x % d` for a power-of-two `d`, by a mask. A `d` of 0 gives `x`.
pub(crate) fn pow2_rem(x: u64, d: u64) -> u64 {
    x & d.wrapping_sub(1)
}

/// `x.div_ceil(d)` for a power-of-two `d`.
pub(crate) fn pow2_div_ceil(x: u64, d: u64) -> u64 {
    pow2_div(x, d) + u64::from(pow2_rem(x, d) != 0)
}

/// `(x / d, x % d)` for block arithmetic whose divisor is not a power of two (bits per bitmap
/// block). In 32 bits when both fit, which is every volume a 32-bit microcontroller holds; past
/// that, on a 32-bit target, a bitwise long division (slow, and small: the 64-bit division
/// routine is not linked). A `d` of 0 gives `(0, x)`.
pub(crate) fn div_rem(x: u64, d: u64) -> (u64, u64) {
    if d == 0 {
        return (0, x);
    }
    if let (Ok(x32), Ok(d32)) = (u32::try_from(x), u32::try_from(d)) {
        return (u64::from(x32 / d32), u64::from(x32 % d32));
    }
    #[cfg(target_pointer_width = "64")]
    {
        (x / d, x % d)
    }
    #[cfg(not(target_pointer_width = "64"))]
    {
        let (mut q, mut r) = (0u64, 0u64);
        for i in (0..64).rev() {
            r = (r << 1) | ((x >> i) & 1);
            if r >= d {
                r -= d;
                q |= 1 << i;
            }
        }
        (q, r)
    }
}

/// `x.div_ceil(d)` through [`div_rem`].
pub(crate) fn div_ceil(x: u64, d: u64) -> u64 {
    let (q, r) = div_rem(x, d);
    q + u64::from(r != 0)
}

#[cfg(test)]
mod pow2_tests {
    use super::*;

    #[test]
    fn shifts_and_masks_agree_with_division() {
        for d in [1u64, 2, 512, 4096, 32768, 1 << 19] {
            for x in [0u64, 1, 511, 512, 4097, 1 << 40, u64::MAX] {
                assert_eq!(pow2_div(x, d), x / d);
                assert_eq!(pow2_rem(x, d), x % d);
                assert_eq!(pow2_div_ceil(x, d), x.div_ceil(d));
            }
        }
        assert_eq!(pow2_div(7, 0), 0);
        for d in [1u64, 3, 4064 * 8, 1 << 33, u64::MAX] {
            for x in [0u64, 5, 32511, 32512, 1 << 40, u64::MAX] {
                assert_eq!(div_rem(x, d), (x / d, x % d));
            }
        }
        assert_eq!(div_rem(9, 0), (0, 9));
        assert_eq!(div_ceil(32513, 32512), 2);
    }
}
