//! A tiny deterministic pseudo-random generator for fault injection (no_std, no alloc).
//!
//! Owns: [`XorShift64`] (Marsaglia's xorshift64 with a `*` output multiplier) and the
//! [`mix`] function that derives a per-operation seed. Invariant: the state is never zero (a zero
//! seed is replaced by a fixed constant), so the sequence never gets stuck. Not cryptographic;
//! its only job is to make torn programs and erases reproducible from a seed.

/// Replaces a zero seed: xorshift's state must never be zero.
const NONZERO_SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// xorshift64* pseudo-random generator. Deterministic: the same seed gives the same sequence on
/// every target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct XorShift64 {
    state: u64,
}

impl XorShift64 {
    /// A generator seeded with `seed` (zero is replaced by a fixed non-zero constant).
    pub const fn new(seed: u64) -> Self {
        XorShift64 {
            state: if seed == 0 { NONZERO_SEED } else { seed },
        }
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The next 32 pseudo-random bits (the high half of [`next_u64`](Self::next_u64)).
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// The next pseudo-random byte.
    pub fn next_u8(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }

    /// A value in `0..bound` (`0` when `bound` is `0`). The tiny modulo bias is irrelevant for
    /// fault injection.
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }

    /// Fills `buf` with pseudo-random bytes.
    pub fn fill_bytes(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            for (b, w) in chunk.iter_mut().zip(word) {
                *b = w;
            }
        }
    }
}

/// Mixes a seed and an operation number into an independent seed (splitmix64 finaliser), so the
/// damage done by a cut at operation `op` depends only on `(seed, op)`, not on earlier history.
pub(crate) const fn mix(seed: u64, op: u64) -> u64 {
    let mut z = seed
        ^ op.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(0x6A09_E667_F3BC_C909);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_nonzero() {
        let mut a = XorShift64::new(42);
        let mut b = XorShift64::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut z = XorShift64::new(0);
        assert_ne!(z.next_u64(), 0);
        assert_eq!(z.below(0), 0);
        for _ in 0..100 {
            assert!(z.below(7) < 7);
        }
        let mut buf = [0u8; 13];
        z.fill_bytes(&mut buf);
        assert!(buf.iter().any(|&x| x != 0));
        assert_ne!(mix(1, 0), mix(1, 1));
        assert_ne!(mix(1, 0), mix(2, 0));
    }
}
