//! [`TxBuf`]: the changes of the open transaction, as byte ranges of blocks, in caller memory.
//!
//! The volume changes a block by reading its current content (committed, with this buffer's
//! ranges over it), changing it, and staging the bytes that differ
//! ([`crate::volume::Volume`]'s `view` / `stage_view`); [`crate::wal::Wal::commit`] logs each
//! block's merged ranges, or, where the log needs the whole block, its committed content with
//! the ranges over it. So the buffer holds the bytes a transaction changes, not block images: a
//! 64-byte put stages about 150 bytes.
//!
//! Invariants: at most `K` blocks; every range lies inside its block and is non-empty; ranges
//! are kept in staging order, so where two of a block overlap the later one wins; a *fresh*
//! block's content starts from zeros, not from its committed content.

use crate::error::Error;
use crate::types::BlockNo;

/// Bytes of bookkeeping per staged range (block index, offset, length − 1: three `u16`).
pub const RANGE_OVERHEAD: usize = 6;

/// One staged range: block index, offset and length in the block, position of its bytes.
#[derive(Debug, Clone, Copy)]
struct Entry {
    idx: usize,
    off: usize,
    len: usize,
    at: usize,
}

impl Entry {
    fn end(&self) -> usize {
        self.off + self.len
    }
}

/// The changes of one transaction, held in caller-provided memory until commit.
///
/// `K` bounds the number of distinct blocks (at most 64, the most one transaction may change:
/// [`crate::format::wal_record::MAX_DIRTY`]); the memory holds the changed bytes, plus
/// [`RANGE_OVERHEAD`] per range.
pub struct TxBuf<'b, const K: usize> {
    blocks: heapless::Vec<BlockNo, K>,
    /// Bit `i`: staged block `i` is fresh.
    fresh: u64,
    data: &'b mut [u8],
    used: usize,
    bs: usize,
    failed: bool,
}

impl<'b, const K: usize> TxBuf<'b, K> {
    /// A transaction buffer over `data` for blocks of `bs` bytes.
    pub fn new(data: &'b mut [u8], bs: usize) -> Self {
        const { assert!(K <= 64, "a transaction changes at most 64 blocks") };
        TxBuf {
            blocks: heapless::Vec::new(),
            fresh: 0,
            data,
            used: 0,
            bs: bs.max(1),
            failed: false,
        }
    }
    /// How many distinct blocks a transaction may change.
    pub fn capacity(&self) -> usize {
        K
    }
    /// How many whole-block writes fit (each takes one block and one range).
    pub fn whole_blocks(&self) -> usize {
        K.min(self.data.len() / (self.bs + RANGE_OVERHEAD))
    }
    /// Bytes of memory for staged ranges, and how many are taken.
    pub fn bytes(&self) -> (usize, usize) {
        (self.data.len(), self.used)
    }
    /// Number of staged blocks.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }
    /// Whether nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }
    /// Drops every staged change.
    pub fn clear(&mut self) {
        self.blocks.clear();
        self.fresh = 0;
        self.used = 0;
        self.failed = false;
    }
    /// Whether a write ran out of memory, leaving a change half staged: such a transaction
    /// must not commit.
    pub fn failed(&self) -> bool {
        self.failed
    }
    /// The block staged `i`-th.
    pub fn block(&self, i: usize) -> Option<BlockNo> {
        self.blocks.get(i).copied()
    }
    /// The staged blocks, in staging order.
    pub fn blocks(&self) -> impl Iterator<Item = BlockNo> + '_ {
        self.blocks.iter().copied()
    }
    fn index(&self, b: BlockNo) -> Option<usize> {
        self.blocks.iter().position(|s| *s == b)
    }
    /// Whether block `b` is staged.
    pub fn contains(&self, b: BlockNo) -> bool {
        self.index(b).is_some()
    }
    /// Whether block `b` is staged fresh (its content starts from zeros).
    pub fn is_fresh(&self, b: BlockNo) -> bool {
        self.index(b).is_some_and(|i| self.fresh & (1u64 << i) != 0)
    }
    /// Stages block `b` if it is not yet; `fresh` makes its content start from zeros (dropping
    /// any range staged for it before). Fails with [`Error::TxCapacity`] past `K` blocks.
    pub fn stage<E>(&mut self, b: BlockNo, fresh: bool) -> Result<usize, Error<E>> {
        if let Some(i) = self.index(b) {
            if fresh {
                self.drop_ranges(i);
                self.fresh |= 1u64 << i;
            }
            return Ok(i);
        }
        self.blocks.push(b).map_err(|_| Error::TxCapacity)?;
        let i = self.blocks.len() - 1;
        if fresh {
            self.fresh |= 1u64 << i;
        }
        Ok(i)
    }
    /// Stages `bytes` at `off` of block `b` (staging the block if needed). Overwrites in place
    /// when the newest range of `b` that overlaps them covers them; else adds a range, or fails
    /// with [`Error::TxCapacity`] when the memory is full.
    pub fn write<E>(&mut self, b: BlockNo, off: usize, bytes: &[u8]) -> Result<(), Error<E>> {
        let len = bytes.len();
        if off.checked_add(len).is_none_or(|e| e > self.bs) || self.bs > 65536 {
            return Err(Error::OutOfRange);
        }
        let idx = self.stage(b, false)?;
        if len == 0 {
            return Ok(());
        }
        let mut newest = None;
        for e in self.entries() {
            if e.idx == idx && e.off < off + len && off < e.end() {
                newest = Some(e);
            }
        }
        if let Some(e) = newest.filter(|e| e.off <= off && off + len <= e.end()) {
            let at = e.at + (off - e.off);
            if let Some(d) = self.data.get_mut(at..at + len) {
                d.copy_from_slice(bytes);
                return Ok(());
            }
        }
        let Some(end) = self
            .used
            .checked_add(RANGE_OVERHEAD + len)
            .filter(|e| *e <= self.data.len())
        else {
            self.failed = true;
            return Err(Error::TxCapacity);
        };
        let head = self.data.get_mut(self.used..end).ok_or(Error::TxCapacity)?;
        let (h, d) = head.split_at_mut(RANGE_OVERHEAD);
        for (k, v) in [idx, off, len - 1].into_iter().enumerate() {
            let v = u16::try_from(v).map_err(|_| Error::OutOfRange)?;
            if let Some(x) = h.get_mut(2 * k..2 * k + 2) {
                x.copy_from_slice(&v.to_le_bytes());
            }
        }
        d.copy_from_slice(bytes);
        self.used = end;
        Ok(())
    }
    /// Applies block `b`'s staged ranges, in order, over `buf`, which holds bytes
    /// `off..off + buf.len()` of the block.
    pub fn overlay(&self, b: BlockNo, off: usize, buf: &mut [u8]) {
        let Some(idx) = self.index(b) else { return };
        let end = off.saturating_add(buf.len());
        for e in self.entries() {
            if e.idx != idx || e.end() <= off || e.off >= end {
                continue;
            }
            let s = e.off.max(off);
            let t = e.end().min(end);
            let src = self.data.get(e.at + (s - e.off)..e.at + (t - e.off));
            if let (Some(src), Some(dst)) = (src, buf.get_mut(s - off..t - off)) {
                dst.copy_from_slice(src);
            }
        }
    }
    /// Calls `f(start, end)` for each maximal run of bytes of block `b` that some staged range
    /// covers, in ascending order (runs that touch are one): [`TxBuf::next_range`] from 0 on.
    pub fn ranges(&self, b: BlockNo, f: &mut dyn FnMut(usize, usize)) {
        let mut from = 0;
        while let Some((s, e)) = self.next_range(b, from) {
            f(s, e);
            from = e;
        }
    }
    /// The lowest maximal run of bytes of block `b` that staged ranges cover and that reaches
    /// past byte `from` (every range starting at or before `from` belongs to an earlier run when
    /// `from` is the end of one); `None` past the last. Called again from the run's end, it
    /// gives the next: an iterator the async log can `.await` inside.
    pub fn next_range(&self, b: BlockNo, from: usize) -> Option<(usize, usize)> {
        let idx = self.index(b)?;
        // The range that starts lowest among those reaching past `from`, then every range that
        // overlaps or touches the run so far.
        let first = self
            .entries()
            .filter(|e| e.idx == idx && e.end() > from)
            .min_by_key(|e| e.off)?;
        let mut end = first.end();
        while let Some(n) = self
            .entries()
            .filter(|e| e.idx == idx && e.off <= end && e.end() > end)
            .map(|e| e.end())
            .max()
        {
            end = n;
        }
        Some((first.off, end))
    }
    /// Drops every range of block index `idx`, compacting the memory.
    fn drop_ranges(&mut self, idx: usize) {
        let mut r = 0usize;
        let mut w = 0usize;
        while let Some(e) = self.entry_at(r) {
            let span = RANGE_OVERHEAD + e.len;
            if e.idx != idx {
                // Forward, a byte at a time (w < r; the ranges may overlap): no `memmove` in
                // the binary, and nothing that can panic.
                for i in 0..span {
                    if let (Some(&x), true) = (self.data.get(r + i), w != r) {
                        if let Some(y) = self.data.get_mut(w + i) {
                            *y = x;
                        }
                    }
                }
                w += span;
            }
            r += span;
        }
        self.used = w;
    }
    /// The entry whose header is at `pos`, if one is.
    fn entry_at(&self, pos: usize) -> Option<Entry> {
        if pos >= self.used {
            return None;
        }
        let h = self.data.get(pos..pos + RANGE_OVERHEAD)?;
        let get = |k: usize| {
            let mut a = [0u8; 2];
            a.copy_from_slice(h.get(2 * k..2 * k + 2).unwrap_or(&[0, 0]));
            usize::from(u16::from_le_bytes(a))
        };
        Some(Entry {
            idx: get(0),
            off: get(1),
            len: get(2) + 1,
            at: pos + RANGE_OVERHEAD,
        })
    }
    fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        let mut pos = 0usize;
        core::iter::from_fn(move || {
            let e = self.entry_at(pos)?;
            pos = e.at + e.len;
            Some(e)
        })
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    type E = ();

    fn content(tx: &TxBuf<'_, 4>, b: u64, base: u8) -> [u8; 32] {
        let mut out = [base; 32];
        tx.overlay(BlockNo(b), 0, &mut out);
        out
    }

    fn runs(tx: &TxBuf<'_, 4>, b: u64) -> std::vec::Vec<(usize, usize)> {
        let mut v = std::vec::Vec::new();
        tx.ranges(BlockNo(b), &mut |s, e| v.push((s, e)));
        v
    }

    #[test]
    fn later_ranges_win_and_runs_merge() {
        let mut mem = [0u8; 128];
        let mut tx = TxBuf::<4>::new(&mut mem, 32);
        tx.write::<E>(BlockNo(1), 4, &[1; 8]).unwrap();
        tx.write::<E>(BlockNo(2), 0, &[9; 2]).unwrap();
        tx.write::<E>(BlockNo(1), 10, &[2; 4]).unwrap();
        tx.write::<E>(BlockNo(1), 20, &[3; 2]).unwrap();
        let c = content(&tx, 1, 0xee);
        assert_eq!(&c[..4], &[0xee; 4]);
        assert_eq!(&c[4..10], &[1; 6]);
        assert_eq!(&c[10..14], &[2; 4]);
        assert_eq!(&c[14..20], &[0xee; 6]);
        assert_eq!(&c[20..22], &[3; 2]);
        assert_eq!(runs(&tx, 1), [(4, 14), (20, 22)]);
        assert_eq!(runs(&tx, 2), [(0, 2)]);
        // A partial overlay window.
        let mut w = [0u8; 4];
        tx.overlay(BlockNo(1), 9, &mut w);
        assert_eq!(w, [1, 2, 2, 2]);
        // In place: the newest overlapping range covers the write.
        let used = tx.bytes().1;
        tx.write::<E>(BlockNo(1), 11, &[5; 2]).unwrap();
        assert_eq!(tx.bytes().1, used);
        assert_eq!(&content(&tx, 1, 0)[10..14], &[2, 5, 5, 2]);
        // Not in place when an older range covers but a newer one overlaps.
        tx.write::<E>(BlockNo(1), 5, &[6; 6]).unwrap();
        assert!(tx.bytes().1 > used);
        assert_eq!(&content(&tx, 1, 0)[4..14], &[1, 6, 6, 6, 6, 6, 6, 5, 5, 2]);
        assert_eq!(runs(&tx, 1), [(4, 14), (20, 22)]);
        assert_eq!(tx.len(), 2);
    }

    #[test]
    fn fresh_blocks_drop_their_ranges_and_limits_hold() {
        let mut mem = [0u8; 40];
        let mut tx = TxBuf::<2>::new(&mut mem, 32);
        tx.write::<E>(BlockNo(1), 0, &[1; 4]).unwrap();
        tx.write::<E>(BlockNo(2), 0, &[2; 4]).unwrap();
        tx.write::<E>(BlockNo(1), 8, &[3; 4]).unwrap();
        assert!(matches!(
            tx.write::<E>(BlockNo(3), 0, &[1]),
            Err(Error::TxCapacity)
        ));
        assert!(matches!(
            tx.write::<E>(BlockNo(1), 30, &[1; 3]),
            Err(Error::OutOfRange)
        ));
        tx.stage::<E>(BlockNo(1), true).unwrap();
        assert!(tx.is_fresh(BlockNo(1)) && !tx.is_fresh(BlockNo(2)));
        let mut c = [0u8; 32];
        tx.overlay(BlockNo(1), 0, &mut c);
        assert_eq!(c, [0; 32]);
        let mut d = [0u8; 4];
        tx.overlay(BlockNo(2), 0, &mut d);
        assert_eq!(d, [2; 4]);
        assert_eq!(tx.bytes().1, RANGE_OVERHEAD + 4);
        // The memory bounds the bytes.
        tx.write::<E>(BlockNo(1), 0, &[7; 20]).unwrap();
        assert!(matches!(
            tx.write::<E>(BlockNo(1), 24, &[7; 8]),
            Err(Error::TxCapacity)
        ));
        assert!(tx.failed());
        tx.clear();
        assert!(tx.is_empty() && tx.bytes().1 == 0 && !tx.failed());
    }

    /// Random writes (some in ascending order, some not): the runs `ranges` reports are the
    /// maximal runs of bytes some write covered, whichever merge path it takes.
    #[test]
    fn ranges_are_the_covered_runs() {
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for case in 0..400 {
            let mut mem = [0u8; 2048];
            let mut tx = TxBuf::<4>::new(&mut mem, 256);
            let mut covered = [false; 256];
            let ascending = case % 2 == 0;
            let mut off = 0usize;
            for _ in 0..(next() % 40) {
                let len = 1 + (next() % 24) as usize;
                off = if ascending {
                    (off + (next() % 20) as usize).min(256 - len)
                } else {
                    (next() % (256 - len as u64)) as usize
                };
                let b = next() % 2;
                if tx.write::<E>(BlockNo(b), off, &[7u8; 24][..len]).is_err() {
                    break;
                }
                if b == 0 {
                    covered[off..off + len].iter_mut().for_each(|c| *c = true);
                }
            }
            let mut want = std::vec::Vec::new();
            let mut i = 0;
            while i < 256 {
                if covered[i] {
                    let s = i;
                    while i < 256 && covered[i] {
                        i += 1;
                    }
                    want.push((s, i));
                } else {
                    i += 1;
                }
            }
            assert_eq!(runs(&tx, 0), want, "case {case}");
        }
    }
}
