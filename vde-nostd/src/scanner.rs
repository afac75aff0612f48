//! The free-space scanner over the allocation bitmap (bit 1 = allocated, bit 0 = free).
//!
//! It reads the bitmap one bitmap block at a time through a [`BitmapSource`] (so a bitmap larger
//! than RAM works) and processes 64 bits per step with `trailing_zeros`/`leading_zeros`. A free
//! run is carried across words and bitmap-block boundaries (`Carry`). Bits at or past
//! `total_bits` count as allocated.
//!
//! Runs of 64 or more (first fit for `n ≥ 64`, [`free_runs`] with `m ≥ 64`) take a fast path
//! over chunks of eight words. One branch-free pass over a chunk (vector code) bounds the free
//! runs inside it by what it lacks: no free 32-bit half-word bounds them at 62 bits, no free
//! word at 126, no two adjacent free words at 190 (`Tier`). When that bound is below the query,
//! only the chunk's edges matter: its free prefix ends the carried run and its free suffix
//! starts the next. A wholly free chunk extends the carried run at once. Other chunks, and
//! shorter queries, go word by word (for `n ≥ 64` without branches on the word's content, which
//! fragmented bitmaps mispredict; [`free_runs`] holds the runs it finds in a small buffer and
//! reports them in batches). The fast path's rules are checked against a bit-by-bit reference by
//! the proptests and at their edges by `long_run_fast_path_edges`.
//!
//! Queries: [`first_fit`] (lowest run of `n` free blocks), [`free_runs`] (every maximal run of at
//! least `m`), [`count_free`].

use crate::types::{BlockNo, Extent};
use_mode!(bisync);

/// Where the scanner gets bitmap blocks from.
#[bisync]
#[allow(async_fn_in_trait)]
pub trait BitmapSource {
    /// Error of the underlying storage.
    type Error;
    /// Bits per bitmap block: a positive multiple of 64.
    fn bits_per_block(&self) -> u64;
    /// Number of meaningful bits (blocks on the volume).
    fn total_bits(&self) -> u64;
    /// The bit area of bitmap block `idx` (`bits_per_block / 8` bytes): either `buf`, filled, or
    /// a slice the source already holds.
    async fn block<'s>(&'s mut self, idx: u64, buf: &'s mut [u8]) -> Result<&'s [u8], Self::Error>;
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

#[bisync]
impl BitmapSource for SliceBitmap<'_> {
    type Error = core::convert::Infallible;
    fn bits_per_block(&self) -> u64 {
        self.bytes_per_block as u64 * 8
    }
    fn total_bits(&self) -> u64 {
        self.total_bits
    }
    async fn block<'s>(
        &'s mut self,
        idx: u64,
        _buf: &'s mut [u8],
    ) -> Result<&'s [u8], Self::Error> {
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

/// Feeds every bitmap block's words to `f(words, base_bit)`: `words` is a whole number of
/// little-endian 64-bit words (the block's full words in one slice, then each partial or
/// missing word on its own, bits past the end masked as allocated), `base_bit` the bit number of
/// its first word. `f` returns `false` to stop. Returns whether it ran to the end.
#[bisync]
async fn for_each_words<S: BitmapSource>(
    src: &mut S,
    buf: &mut [u8],
    mut f: impl FnMut(&[u8], u64) -> bool,
) -> Result<bool, S::Error> {
    let bpb = src.bits_per_block();
    let total = src.total_bits();
    if bpb == 0 || !bpb.is_multiple_of(64) {
        return Ok(true);
    }
    let blocks = crate::types::div_ceil(total, bpb);
    for idx in 0..blocks {
        let base = idx.saturating_mul(bpb);
        let nbits = (total - base).min(bpb);
        let bytes = src.block(idx, buf).await?;
        let full = ((nbits / 64) as usize).min(bytes.len() / 8);
        let (words, rest_bytes) = bytes.split_at(full * 8);
        if full > 0 && !f(words, base) {
            return Ok(false);
        }
        // The tail: a partial word, or words the source did not return (read as allocated).
        let mut word_base = base + full as u64 * 64;
        let mut rest = nbits - full as u64 * 64;
        let mut tail = rest_bytes.iter();
        while rest > 0 {
            let mut a = [0xFFu8; 8];
            for (d, s) in a.iter_mut().zip(tail.by_ref()) {
                *d = *s;
            }
            let mut w = u64::from_le_bytes(a);
            let take = rest.min(64);
            if take < 64 {
                w |= u64::MAX << take;
            }
            if !f(&w.to_le_bytes(), word_base) {
                return Ok(false);
            }
            word_base += 64;
            rest -= take;
        }
    }
    Ok(true)
}

/// The word in an 8-byte chunk.
#[inline(always)]
fn word(c: &[u8]) -> u64 {
    u64::from_le_bytes(c.try_into().unwrap_or([0xFF; 8]))
}

/// Words examined at once by the long-run fast path.
const CHUNK_WORDS: usize = 8;
/// Bytes of such a chunk.
const CHUNK_BYTES: usize = CHUNK_WORDS * 8;
/// Bits of such a chunk.
const CHUNK_BITS: u64 = CHUNK_WORDS as u64 * 64;

/// How much of a chunk the long-run fast path can prove uninteresting for a query for runs of
/// at least `need` (≥ 64), by the free runs that lie inside a chunk, touching neither its first
/// nor its last bit: with no free 32-bit half-word such a run spans at most two half-words
/// (≤ 62); with no free word, at most the high part of one word and the low part of the next
/// (≤ 126); with no two adjacent free words, at most one whole word between two such parts
/// (≤ 190). Each test is one pass over the chunk with no branches on its words, so it compiles
/// to vector code.
#[derive(Clone, Copy)]
enum Tier {
    /// `need` ≤ 126: no free half-word.
    Halves,
    /// `need` ≤ 190: no free word.
    Words,
    /// `need` ≥ 191: no two adjacent free words.
    Pairs,
}

impl Tier {
    fn for_need(need: u64) -> Self {
        if need > 190 {
            Tier::Pairs
        } else if need > 126 {
            Tier::Words
        } else {
            Tier::Halves
        }
    }

    /// Whether no free run inside chunk `c` can reach the tier's `need`.
    #[inline(always)]
    fn inner_short(self, c: &[u8]) -> bool {
        match self {
            Tier::Halves => c
                .chunks_exact(4)
                .map(|h| u32::from_le_bytes(h.try_into().unwrap_or([0xFF; 4])))
                .fold(true, |ok, h| ok & (h != 0)),
            Tier::Words => c
                .chunks_exact(8)
                .map(word)
                .fold(true, |ok, w| ok & (w != 0)),
            Tier::Pairs => {
                let (mut ok, mut prev) = (true, u64::MAX);
                for w in c.chunks_exact(8).map(word) {
                    ok &= (prev | w) != 0;
                    prev = w;
                }
                ok
            }
        }
    }
}

/// Whether every word of chunk `c` is 0.
#[inline(always)]
fn chunk_free(c: &[u8]) -> bool {
    c.chunks_exact(8).map(word).fold(0, |or, w| or | w) == 0
}

/// Free bits at the start of a chunk that is not wholly free.
#[inline(always)]
fn chunk_prefix(c: &[u8]) -> u64 {
    let mut n = 0u64;
    for w in c.chunks_exact(8).map(word) {
        n += u64::from(w.trailing_zeros());
        if w != 0 {
            break;
        }
    }
    n
}

/// Free bits at the end of a chunk that is not wholly free.
#[inline(always)]
fn chunk_suffix(c: &[u8]) -> u64 {
    let mut n = 0u64;
    for w in c.chunks_exact(8).rev().map(word) {
        n += u64::from(w.leading_zeros());
        if w != 0 {
            break;
        }
    }
    n
}

/// A free run carried across words: where it starts and how long it is so far.
#[derive(Clone, Copy, Default)]
struct Carry {
    start: u64,
    len: u64,
}

impl Carry {
    /// Extends the run by `bits` free bits starting at `base`.
    fn extend(&mut self, base: u64, bits: u64) {
        if self.len == 0 {
            self.start = base;
        }
        self.len += bits;
    }
    /// Restarts the run as the `len` free bits that end at bit `end`.
    fn restart(&mut self, end: u64, len: u64) {
        self.len = len;
        self.start = end - len;
    }
}

/// A query that walks the bitmap word by word, with a fast path over whole chunks for runs of
/// 64 blocks or more.
trait WordScan {
    /// The shortest run the query cares about when that is 64 or more (the chunk fast path is
    /// exact for it); `None` for shorter queries.
    fn long(&self) -> Option<u64>;
    /// The carried run.
    fn carry(&mut self) -> &mut Carry;
    /// One word `w` at bit `here`; `false` stops the walk.
    fn word(&mut self, w: u64, here: u64) -> bool;
    /// The free run at `start` of `len` bits has ended; `false` stops the walk.
    fn ended(&mut self, start: u64, len: u64) -> bool;
    /// After a run grew by a whole free chunk; `false` stops the walk.
    fn grew(&mut self) -> bool {
        true
    }
    /// The words of a chunk the fast path could not skip.
    #[inline(always)]
    fn chunk(&mut self, c: &[u8], base: u64) -> bool {
        let mut here = base;
        for cw in c.chunks_exact(8) {
            if !self.word(word(cw), here) {
                return false;
            }
            here += 64;
        }
        true
    }

    /// Walks `words` (whole little-endian words) starting at bit `base`.
    fn words(&mut self, words: &[u8], mut base: u64) -> bool {
        let mut rest = words;
        if let Some(need) = self.long() {
            let tier = Tier::for_need(need);
            while rest.len() >= CHUNK_BYTES {
                let (c, after) = rest.split_at(CHUNK_BYTES);
                if tier.inner_short(c) {
                    // Only the runs at the chunk's edges can be long enough: the carried run
                    // ends in the chunk's free prefix, a new one starts at its free suffix.
                    // (A wholly free chunk is never short: its words are free.)
                    let pre = chunk_prefix(c);
                    let carry = *self.carry();
                    let start = if carry.len == 0 { base } else { carry.start };
                    if !self.ended(start, carry.len + pre) {
                        return false;
                    }
                    self.carry().restart(base + CHUNK_BITS, chunk_suffix(c));
                } else if chunk_free(c) {
                    self.carry().extend(base, CHUNK_BITS);
                    if !self.grew() {
                        return false;
                    }
                } else if !self.chunk(c, base) {
                    return false;
                }
                rest = after;
                base += CHUNK_BITS;
            }
        }
        for cw in rest.chunks_exact(8) {
            if !self.word(word(cw), base) {
                return false;
            }
            base += 64;
        }
        true
    }
}

/// [`first_fit`]'s state.
struct FirstFit {
    n: u64,
    run: Carry,
    found: Option<u64>,
}

impl WordScan for FirstFit {
    fn long(&self) -> Option<u64> {
        (self.n >= 64).then_some(self.n)
    }
    fn carry(&mut self) -> &mut Carry {
        &mut self.run
    }
    fn ended(&mut self, start: u64, len: u64) -> bool {
        if len >= self.n {
            self.found = Some(start);
            return false;
        }
        true
    }
    fn grew(&mut self) -> bool {
        if self.run.len >= self.n {
            self.found = Some(self.run.start);
            return false;
        }
        true
    }
    #[inline(always)]
    fn word(&mut self, w: u64, here: u64) -> bool {
        let n = self.n;
        if n >= 64 {
            // Without branches on the word (fragmented bitmaps mispredict them): the run goes
            // on through a free word or ends at the word's low free bits and restarts at its
            // high ones; only reaching `n` branches.
            let tz = u64::from(w.trailing_zeros());
            let lz = u64::from(w.leading_zeros());
            let start = if self.run.len == 0 {
                here
            } else {
                self.run.start
            };
            if self.run.len + tz >= n {
                self.found = Some(start);
                return false;
            }
            let free = w == 0;
            self.run.start = if free { start } else { here + 64 - lz };
            self.run.len = if free { self.run.len + 64 } else { lz };
            return true;
        }
        if w == u64::MAX {
            self.run.len = 0;
            return true;
        }
        if w == 0 {
            self.run.extend(here, 64);
            return self.grew();
        }
        // The run carried in from earlier words continues into this word's low free bits.
        let tz = u64::from(w.trailing_zeros());
        if self.run.len == 0 {
            self.run.start = here;
        }
        if self.run.len + tz >= n {
            self.found = Some(self.run.start);
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
                self.found = Some(here + u64::from(x.trailing_zeros()));
                return false;
            }
        }
        // The high free bits start a run that may continue into the next word.
        self.run.restart(here + 64, u64::from(w.leading_zeros()));
        true
    }
}

/// Finds the lowest run of `n` consecutive free blocks. `None` if there is none or `n == 0`.
#[doc(alias = "FreeSpaceScanner")]
#[bisync]
pub async fn first_fit<S: BitmapSource>(
    src: &mut S,
    n: u64,
    buf: &mut [u8],
) -> Result<Option<BlockNo>, S::Error> {
    if n == 0 {
        return Ok(None);
    }
    let mut q = FirstFit {
        n,
        run: Carry::default(),
        found: None,
    };
    for_each_words(src, buf, |words, base| q.words(words, base)).await?;
    Ok(q.found.map(BlockNo))
}

/// [`free_runs`]' state.
struct Runs<F> {
    m: u64,
    run: Carry,
    go: bool,
    f: F,
    /// Runs found by [`Runs::chunk`] and not yet reported: (start, length).
    pending: [(u64, u64); PENDING],
    /// How many of `pending` are filled.
    npending: usize,
}

/// Runs held back by [`free_runs`]' word-by-word path so that reporting them is one loop of
/// mostly the same length (a branch the processor predicts) rather than one per chunk.
const PENDING: usize = 4 * CHUNK_WORDS;

impl<F: FnMut(Extent) -> bool> Runs<F> {
    /// Reports the pending runs.
    fn flush(&mut self) {
        let n = self.npending;
        self.npending = 0;
        for i in 0..n {
            let Some(&(start, len)) = self.pending.get(i) else {
                break;
            };
            if !self.go {
                break;
            }
            self.go = (self.f)(Extent {
                start: BlockNo(start),
                len,
            });
        }
    }

    /// Reports the run at `start` of `len` blocks if it is long enough, after the pending ones.
    fn emit(&mut self, start: u64, len: u64) {
        if self.npending > 0 {
            self.flush();
        }
        if len >= self.m && self.go {
            self.go = (self.f)(Extent {
                start: BlockNo(start),
                len,
            });
        }
    }
}

impl<F: FnMut(Extent) -> bool> WordScan for Runs<F> {
    fn long(&self) -> Option<u64> {
        (self.m >= 64).then_some(self.m)
    }
    fn carry(&mut self) -> &mut Carry {
        &mut self.run
    }
    fn ended(&mut self, start: u64, len: u64) -> bool {
        self.emit(start, len);
        self.go
    }
    /// For runs of 64 or more, without branches on the words: each word ends the carried run at
    /// its low free bits and restarts it at its high ones, or extends it when it is wholly free.
    /// Every ending is written to `pending` and kept (the count advanced) when it is long
    /// enough; they are reported once `pending` is nearly full. The carried run always ends
    /// where the next word starts, so only its length is carried through the loop.
    #[inline(always)]
    fn chunk(&mut self, c: &[u8], base: u64) -> bool {
        let mut k = self.npending;
        let mut here = base;
        let mut len = self.run.len;
        for cw in c.chunks_exact(8) {
            let w = word(cw);
            let tz = u64::from(w.trailing_zeros());
            let lz = u64::from(w.leading_zeros());
            if let Some(slot) = self.pending.get_mut(k) {
                *slot = (here - len, len + tz);
            }
            let free = w == 0;
            k += usize::from(!free & (len + tz >= self.m));
            len = if free { len + 64 } else { lz };
            here += 64;
        }
        self.run.restart(here, len);
        self.npending = k;
        if k > PENDING - CHUNK_WORDS {
            self.flush();
        }
        self.go
    }
    #[inline(always)]
    fn word(&mut self, w: u64, here: u64) -> bool {
        if w == 0 {
            self.run.extend(here, 64);
            return true;
        }
        if w == u64::MAX {
            self.emit(self.run.start, self.run.len);
            self.run.len = 0;
            return self.go;
        }
        if self.m >= 64 {
            // Only the runs crossing the word's edges can be long enough.
            let tz = u64::from(w.trailing_zeros());
            if self.run.len == 0 {
                self.run.start = here;
            }
            self.emit(self.run.start, self.run.len + tz);
            self.run.restart(here + 64, u64::from(w.leading_zeros()));
            return self.go;
        }
        let mut bit = 0u64;
        while bit < 64 {
            let free = u64::from((w >> bit).trailing_zeros()).min(64 - bit);
            if free > 0 {
                self.run.extend(here + bit, free);
                bit += free;
                if bit >= 64 {
                    break;
                }
            }
            let used = u64::from((!(w >> bit)).trailing_zeros()).min(64 - bit);
            self.emit(self.run.start, self.run.len);
            self.run.len = 0;
            bit += used;
        }
        self.go
    }
}

/// Calls `f` with every maximal free run of at least `m` blocks, in address order, until `f`
/// returns `false`.
#[bisync]
pub async fn free_runs<S: BitmapSource>(
    src: &mut S,
    m: u64,
    buf: &mut [u8],
    f: impl FnMut(Extent) -> bool,
) -> Result<(), S::Error> {
    let mut q = Runs {
        m: m.max(1),
        run: Carry::default(),
        go: true,
        f,
        pending: [(0, 0); PENDING],
        npending: 0,
    };
    for_each_words(src, buf, |words, base| q.words(words, base)).await?;
    q.emit(q.run.start, q.run.len);
    Ok(())
}

/// Counts free blocks.
#[bisync]
pub async fn count_free<S: BitmapSource>(src: &mut S, buf: &mut [u8]) -> Result<u64, S::Error> {
    let mut n = 0u64;
    for_each_words(src, buf, |words, _| {
        n += words
            .chunks_exact(8)
            .map(|c| u64::from(word(c).count_zeros()))
            .sum::<u64>();
        true
    })
    .await?;
    Ok(n)
}

if_blocking! {
    #[cfg(test)]
    mod tests;
}

// Shared by the blocking and async builds: defined once, in the blocking one.
if_blocking! {
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
}
if_async! {
    pub use crate::scanner::{Summary};
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
#[bisync]
pub async fn summarize_all<S: BitmapSource>(
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
        let bits = src.block(idx as u64, buf).await?;
        *s = summarize(bits, nbits);
    }
    Ok(())
}

/// First fit of `n` free blocks using one [`Summary`] per bitmap block: only a block whose
/// summary says it holds a long enough run (or whose summary is [`Summary::UNKNOWN`]) is read.
/// Gives the same answer as [`first_fit`] when the summaries are current.
#[bisync]
pub async fn first_fit_summarized<S: BitmapSource>(
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
    let blocks = crate::types::div_ceil(total, bpb);
    let mut carry = 0u64; // free bits running into the current block from earlier blocks
    for idx in 0..blocks {
        let base = idx.saturating_mul(bpb);
        let nbits = (total - base).min(bpb);
        let mut s = summaries
            .get(idx as usize)
            .copied()
            .unwrap_or(Summary::UNKNOWN);
        if s == Summary::UNKNOWN {
            let bits = src.block(idx, buf).await?;
            s = summarize(bits, nbits);
        }
        if carry + u64::from(s.start) >= n {
            return Ok(Some(BlockNo(base - carry)));
        }
        if u64::from(s.max) >= n {
            let bits = src.block(idx, buf).await?;
            let mut one = SliceBitmap {
                bits,
                bytes_per_block: bits.len().max(8).next_multiple_of(8),
                total_bits: nbits,
            };
            let mut tmp = [0u8; 0];
            if let Ok(Some(b)) = first_fit(&mut one, n, &mut tmp).await {
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

if_blocking! {
    #[cfg(test)]
    mod summary_tests;
}
