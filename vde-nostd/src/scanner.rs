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

/// Per-bitmap-block summary (the technique of Go's page allocator): free bits at the start, free
/// bits at the end, and the longest free run inside the block. With one summary per bitmap
/// block, [`first_fit_summarized`] reads only the block that holds the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Summary {
    /// Free bits from the block's first bit.
    pub start: u32,
    /// Free bits up to the block's last meaningful bit.
    pub end: u32,
    /// Longest free run in the block.
    pub max: u32,
}

impl Summary {
    /// A summary that is not known (forces a read of its block).
    pub const UNKNOWN: Summary = Summary {
        start: 0,
        end: 0,
        max: u32::MAX,
    };
}

/// Computes the summary of one block's bit area holding `nbits` meaningful bits.
pub fn summarize(bits: &[u8], nbits: u64) -> Summary {
    let mut start = 0u64;
    let mut in_start = true;
    let mut run = 0u64;
    let mut max = 0u64;
    let words = nbits.div_ceil(64);
    for wi in 0..words {
        let mut a = [0xFFu8; 8];
        let at = (wi * 8) as usize;
        for (k, d) in a.iter_mut().enumerate() {
            if let Some(b) = bits.get(at + k) {
                *d = *b;
            }
        }
        let mut w = u64::from_le_bytes(a);
        let valid = (nbits - wi * 64).min(64);
        if valid < 64 {
            w |= u64::MAX << valid;
        }
        if w == 0 {
            run += 64;
            if in_start {
                start += 64;
            }
            max = max.max(run);
            continue;
        }
        let tz = u64::from(w.trailing_zeros());
        if in_start {
            start += tz;
            in_start = false;
        }
        max = max.max(run + tz);
        // interior runs
        let mut bit = tz;
        while bit < valid {
            let used = u64::from((!(w >> bit)).trailing_zeros()).min(64 - bit);
            bit += used;
            if bit >= 64 {
                break;
            }
            let free = u64::from((w >> bit).trailing_zeros()).min(64 - bit);
            max = max.max(free);
            bit += free;
        }
        run = u64::from(w.leading_zeros());
    }
    let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX - 1);
    Summary {
        start: clamp(start),
        end: clamp(run),
        max: clamp(max.max(run)),
    }
}

/// Computes the summary of every bitmap block of `src` into `out` (one per block).
pub fn summarize_all<S: BitmapSource>(
    src: &mut S,
    out: &mut [Summary],
    buf: &mut [u8],
) -> Result<(), S::Error> {
    let bpb = src.bits_per_block();
    let total = src.total_bits();
    for (idx, s) in out.iter_mut().enumerate() {
        let base = (idx as u64).saturating_mul(bpb);
        if base >= total {
            *s = Summary::default();
            continue;
        }
        let nbits = (total - base).min(bpb);
        let bits = src.block(idx as u64, buf)?;
        *s = summarize(bits, nbits);
    }
    Ok(())
}

/// First fit of `n` free blocks using one [`Summary`] per bitmap block: only a block whose
/// summary says it holds a long enough run (or whose summary is [`Summary::UNKNOWN`]) is read.
/// Gives the same answer as [`first_fit`] when the summaries are current.
pub fn first_fit_summarized<S: BitmapSource>(
    src: &mut S,
    summaries: &[Summary],
    n: u64,
    buf: &mut [u8],
) -> Result<Option<BlockNo>, S::Error> {
    if n == 0 {
        return Ok(None);
    }
    let bpb = src.bits_per_block();
    let total = src.total_bits();
    if bpb == 0 {
        return Ok(None);
    }
    let blocks = total.div_ceil(bpb);
    let mut carry = 0u64; // free bits running into the current block from earlier blocks
    for idx in 0..blocks {
        let base = idx.saturating_mul(bpb);
        let nbits = (total - base).min(bpb);
        let mut s = summaries
            .get(idx as usize)
            .copied()
            .unwrap_or(Summary::UNKNOWN);
        if s == Summary::UNKNOWN {
            let bits = src.block(idx, buf)?;
            s = summarize(bits, nbits);
        }
        if carry + u64::from(s.start) >= n {
            return Ok(Some(BlockNo(base - carry)));
        }
        if u64::from(s.max) >= n {
            let bits = src.block(idx, buf)?;
            let mut one = SliceBitmap {
                bits,
                bytes_per_block: bits.len().max(8).next_multiple_of(8),
                total_bits: nbits,
            };
            let mut tmp = [0u8; 0];
            if let Ok(Some(b)) = first_fit(&mut one, n, &mut tmp) {
                return Ok(Some(BlockNo(base + b.0)));
            }
        }
        carry = if u64::from(s.start) == nbits {
            carry + nbits
        } else {
            u64::from(s.end)
        };
    }
    Ok(None)
}

#[cfg(test)]
mod summary_tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn summarized_first_fit_matches_plain(
            raw in proptest::collection::vec(any::<u8>(), 8..400),
            mode in 0u8..4,
            bpb_words in 1usize..6,
            n in 1u64..400,
            cut in 0u64..64,
        ) {
            let bits: Vec<u8> = raw.iter().enumerate().map(|(i, b)| match mode {
                0 => *b,
                1 => if i % 7 < 4 { 0 } else { *b },
                2 => if (i / 16) % 3 == 0 { *b } else { 0 },
                _ => b & raw[(i * 5) % raw.len()] & raw[(i * 3) % raw.len()],
            }).collect();
            let total = (bits.len() as u64 * 8).saturating_sub(cut);
            let bpb = bpb_words * 8;
            let mut buf = vec![0u8; bpb];
            let mut s = SliceBitmap::new(&bits, total, bpb).unwrap();
            let blocks = total.div_ceil(bpb as u64 * 8) as usize;
            let mut sums = vec![Summary::default(); blocks];
            summarize_all(&mut s, &mut sums, &mut buf).unwrap();
            let plain = first_fit(&mut s, n, &mut buf).unwrap();
            prop_assert_eq!(first_fit_summarized(&mut s, &sums, n, &mut buf).unwrap(), plain);
            // Unknown summaries give the same answer too.
            let unknown = vec![Summary::UNKNOWN; blocks];
            prop_assert_eq!(first_fit_summarized(&mut s, &unknown, n, &mut buf).unwrap(), plain);
        }
    }
}
