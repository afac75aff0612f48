//! The free-space scanner over the allocation bitmap (bit 1 = allocated, bit 0 = free).
//!
//! It reads the bitmap one bitmap block at a time through a [`BitmapSource`] (so a bitmap larger
//! than RAM works) and processes 64 bits per step with `trailing_zeros`/`leading_zeros`. A free
//! run is carried across bitmap-block boundaries. Bits at or past `total_bits` count as allocated.
//!
//! Queries: [`first_fit`] (lowest run of `n` free blocks), [`free_runs`] (every maximal run of at
//! least `m`), [`count_free`].

use crate::types::{BlockNo, Extent};

/// Where the scanner gets bitmap blocks from.
pub trait BitmapSource {
    /// Error of the underlying storage.
    type Error;
    /// Bits per bitmap block: a positive multiple of 64.
    fn bits_per_block(&self) -> u64;
    /// Number of meaningful bits (blocks on the volume).
    fn total_bits(&self) -> u64;
    /// The bit area of bitmap block `idx` (`bits_per_block / 8` bytes): either `buf`, filled, or
    /// a slice the source already holds.
    fn block<'s>(&'s mut self, idx: u64, buf: &'s mut [u8]) -> Result<&'s [u8], Self::Error>;
}

/// A bitmap held wholly in memory, cut into blocks of `bytes_per_block`.
pub struct SliceBitmap<'a> {
    bits: &'a [u8],
    bytes_per_block: usize,
    total_bits: u64,
}

impl<'a> SliceBitmap<'a> {
    /// A bitmap over `bits`, of which the first `total_bits` are meaningful, read in blocks of
    /// `bytes_per_block` (a positive multiple of 8).
    pub fn new(bits: &'a [u8], total_bits: u64, bytes_per_block: usize) -> Option<Self> {
        if bytes_per_block == 0 || !bytes_per_block.is_multiple_of(8) {
            return None;
        }
        let total_bits = total_bits.min((bits.len() as u64).saturating_mul(8));
        Some(SliceBitmap {
            bits,
            bytes_per_block,
            total_bits,
        })
    }
}

impl BitmapSource for SliceBitmap<'_> {
    type Error = core::convert::Infallible;
    fn bits_per_block(&self) -> u64 {
        self.bytes_per_block as u64 * 8
    }
    fn total_bits(&self) -> u64 {
        self.total_bits
    }
    fn block<'s>(&'s mut self, idx: u64, _buf: &'s mut [u8]) -> Result<&'s [u8], Self::Error> {
        let start = usize::try_from(idx)
            .ok()
            .and_then(|i| i.checked_mul(self.bytes_per_block));
        let s = start.and_then(|s| {
            let end = s.saturating_add(self.bytes_per_block).min(self.bits.len());
            self.bits.get(s..end)
        });
        Ok(s.unwrap_or(&[]))
    }
}

/// Feeds the words of every bitmap block to `f(word, base_bit)`, masking bits past the end as
/// allocated. `f` returns `false` to stop. Returns whether it ran to the end.
fn for_each_word<S: BitmapSource>(
    src: &mut S,
    buf: &mut [u8],
    mut f: impl FnMut(u64, u64) -> bool,
) -> Result<bool, S::Error> {
    let bpb = src.bits_per_block();
    let total = src.total_bits();
    if bpb == 0 || !bpb.is_multiple_of(64) {
        return Ok(true);
    }
    let blocks = total.div_ceil(bpb);
    for idx in 0..blocks {
        let base = idx.saturating_mul(bpb);
        let nbits = (total - base).min(bpb);
        let bytes = src.block(idx, buf)?;
        let full_words = (nbits / 64) as usize;
        let mut word_base = base;
        let mut words = bytes.chunks_exact(8);
        for chunk in words.by_ref().take(full_words) {
            let mut a = [0u8; 8];
            a.copy_from_slice(chunk);
            if !f(u64::from_le_bytes(a), word_base) {
                return Ok(false);
            }
            word_base += 64;
        }
        // The tail: a partial word, or a short slice (missing bytes read as allocated).
        let seen = word_base - base;
        let mut rest = nbits - seen;
        let mut tail = words.remainder().iter();
        let mut from_chunks = words;
        while rest > 0 {
            let mut a = [0xFFu8; 8];
            if let Some(chunk) = from_chunks.next() {
                a.copy_from_slice(chunk);
            } else {
                for (d, s) in a.iter_mut().zip(tail.by_ref()) {
                    *d = *s;
                }
            }
            let mut w = u64::from_le_bytes(a);
            let take = rest.min(64);
            if take < 64 {
                w |= u64::MAX << take;
            }
            if !f(w, word_base) {
                return Ok(false);
            }
            word_base += 64;
            rest -= take;
        }
    }
    Ok(true)
}

/// Finds the lowest run of `n` consecutive free blocks. `None` if there is none or `n == 0`.
pub fn first_fit<S: BitmapSource>(
    src: &mut S,
    n: u64,
    buf: &mut [u8],
) -> Result<Option<BlockNo>, S::Error> {
    if n == 0 {
        return Ok(None);
    }
    let mut run_start = 0u64;
    let mut run_len = 0u64;
    let mut found = None;
    for_each_word(src, buf, |w, base| {
        if w == 0 {
            if run_len == 0 {
                run_start = base;
            }
            run_len += 64;
            if run_len >= n {
                found = Some(run_start);
                return false;
            }
            return true;
        }
        if w == u64::MAX {
            run_len = 0;
            return true;
        }
        // The run carried in from earlier words continues into this word's low free bits.
        let tz = u64::from(w.trailing_zeros());
        if run_len == 0 {
            run_start = base;
        }
        if run_len + tz >= n {
            found = Some(run_start);
            return false;
        }
        // A run wholly inside the word: n consecutive ones in !w.
        if n < 64 && u64::from(w.count_zeros()) >= n {
            let mut x = !w;
            let mut have = 1u64;
            while have < n && x != 0 {
                let shift = have.min(n - have);
                x &= x >> shift;
                have += shift;
            }
            if x != 0 {
                found = Some(base + u64::from(x.trailing_zeros()));
                return false;
            }
        }
        // The high free bits start a run that may continue into the next word.
        let lz = u64::from(w.leading_zeros());
        run_len = lz;
        run_start = base + 64 - lz;
        true
    })?;
    Ok(found.map(BlockNo))
}

/// Calls `f` with every maximal free run of at least `m` blocks, in address order, until `f`
/// returns `false`.
pub fn free_runs<S: BitmapSource>(
    src: &mut S,
    m: u64,
    buf: &mut [u8],
    mut f: impl FnMut(Extent) -> bool,
) -> Result<(), S::Error> {
    let m = m.max(1);
    let mut run_start = 0u64;
    let mut run_len = 0u64;
    let mut go = true;
    let mut emit = |start: u64, len: u64, go: &mut bool| {
        if len >= m && *go {
            *go = f(Extent {
                start: BlockNo(start),
                len,
            });
        }
    };
    for_each_word(src, buf, |w, base| {
        if w == 0 {
            if run_len == 0 {
                run_start = base;
            }
            run_len += 64;
            return true;
        }
        if w == u64::MAX {
            emit(run_start, run_len, &mut go);
            run_len = 0;
            return go;
        }
        let mut bit = 0u64;
        while bit < 64 {
            let free = u64::from((w >> bit).trailing_zeros()).min(64 - bit);
            if free > 0 {
                if run_len == 0 {
                    run_start = base + bit;
                }
                run_len += free;
                bit += free;
                if bit >= 64 {
                    break;
                }
            }
            let used = u64::from((!(w >> bit)).trailing_zeros()).min(64 - bit);
            emit(run_start, run_len, &mut go);
            run_len = 0;
            bit += used;
        }
        go
    })?;
    emit(run_start, run_len, &mut go);
    Ok(())
}

/// Counts free blocks.
pub fn count_free<S: BitmapSource>(src: &mut S, buf: &mut [u8]) -> Result<u64, S::Error> {
    let mut n = 0u64;
    for_each_word(src, buf, |w, _| {
        n += u64::from(w.count_zeros());
        true
    })?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    fn bit(bits: &[u8], i: u64) -> bool {
        bits[(i / 8) as usize] & (1 << (i % 8)) != 0
    }

    fn ref_runs(bits: &[u8], total: u64) -> Vec<Extent> {
        let mut v = Vec::new();
        let mut i = 0;
        while i < total {
            if !bit(bits, i) {
                let s = i;
                while i < total && !bit(bits, i) {
                    i += 1;
                }
                v.push(Extent {
                    start: BlockNo(s),
                    len: i - s,
                });
            } else {
                i += 1;
            }
        }
        v
    }

    fn ref_first_fit(bits: &[u8], total: u64, n: u64) -> Option<BlockNo> {
        ref_runs(bits, total)
            .into_iter()
            .find(|r| r.len >= n)
            .map(|r| r.start)
    }

    #[test]
    fn empty_full_and_boundary() {
        let bits = [0u8; 64];
        let mut s = SliceBitmap::new(&bits, 500, 16).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(count_free(&mut s, &mut buf).unwrap(), 500);
        assert_eq!(first_fit(&mut s, 500, &mut buf).unwrap(), Some(BlockNo(0)));
        assert_eq!(first_fit(&mut s, 501, &mut buf).unwrap(), None);
        let mut full = [0xFFu8; 64];
        // a run of 10 straddling the boundary between bitmap block 0 and 1 (bit 128)
        for i in 123..133u64 {
            full[(i / 8) as usize] &= !(1 << (i % 8));
        }
        let mut s = SliceBitmap::new(&full, 512, 16).unwrap();
        assert_eq!(first_fit(&mut s, 10, &mut buf).unwrap(), Some(BlockNo(123)));
        assert_eq!(first_fit(&mut s, 11, &mut buf).unwrap(), None);
        let mut runs = Vec::new();
        free_runs(&mut s, 1, &mut buf, |e| {
            runs.push(e);
            true
        })
        .unwrap();
        assert_eq!(
            runs,
            [Extent {
                start: BlockNo(123),
                len: 10
            }]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn scanner_matches_bit_by_bit_reference(
            raw in proptest::collection::vec(any::<u8>(), 1..200),
            density in 0u8..4,
            total_cut in 0u64..64,
            bpb_words in 1usize..5,
            n in 1u64..300,
            m in 1u64..100,
        ) {
            // Bias toward long runs: AND/OR the random bytes to vary density.
            let bits: Vec<u8> = raw.iter().enumerate().map(|(i, b)| match density {
                0 => *b,
                1 => b & raw[(i * 7) % raw.len()],
                2 => if i % 5 < 3 { 0 } else { *b },
                _ => b | raw[(i * 3) % raw.len()],
            }).collect();
            let total = (bits.len() as u64 * 8).saturating_sub(total_cut);
            let bpb = bpb_words * 8;
            let mut buf = vec![0u8; bpb];
            let mut s = SliceBitmap::new(&bits, total, bpb).unwrap();
            let free_ref = (0..total).filter(|i| !bit(&bits, *i)).count() as u64;
            prop_assert_eq!(count_free(&mut s, &mut buf).unwrap(), free_ref);
            prop_assert_eq!(first_fit(&mut s, n, &mut buf).unwrap(), ref_first_fit(&bits, total, n));
            let mut got = Vec::new();
            free_runs(&mut s, m, &mut buf, |e| { got.push(e); true }).unwrap();
            let want: Vec<Extent> = ref_runs(&bits, total).into_iter().filter(|r| r.len >= m).collect();
            prop_assert_eq!(got, want);
        }
    }
}
