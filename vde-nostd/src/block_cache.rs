//! [`BlockCache`]: committed block contents kept in caller memory, so that a block read again
//! (the shared block and the slot-index block every put changes, a name-table leaf, a block
//! whose log chain is long) is neither rebuilt from the log nor read from the device each time.
//!
//! Owns: up to [`MAX_CACHED`] block copies in the scratch memory past the volume's and the log's
//! own blocks ([`crate::Buffers::scratch_with_cache`]), their tags and a least-recently-used
//! order. Nothing on the device: a power cut loses it and costs nothing.
//!
//! Invariant: a cached copy equals its block's committed content. The log ([`crate::wal`])
//! keeps it so: it fills a copy after a whole-block read, applies each commit's staged ranges to
//! the copies of the blocks the commit changed (a block staged fresh is zeroed first), drops the
//! copy of a block written around the log (an extent's payload), and empties the cache when a
//! commit fails part-way. Checkpoints, write-backs and rescues write a block's committed content
//! home, so they leave copies as they are.
//!
//! A copy may also be marked *checked* by a reader that verified its structure (a name-table
//! block's checksum and order), with a small note of what the check found (a name-table block's
//! entry size, when its entries share one): the mark lasts until the copy changes, so an
//! unchanged block is verified once, not on every read, and a checked copy may be read where it
//! lies ([`BlockCache::checked_copy`]) instead of copied out.

use crate::types::BlockNo;

/// The most blocks a cache holds (more memory is left unused): a put touches three or four
/// blocks, a name lookup two or three, and a linear search over a few tags stays cheap.
pub const MAX_CACHED: usize = 8;

/// A tag with no block.
const EMPTY: u64 = u64::MAX;

/// Committed block contents in caller memory (see the module documentation).
pub struct BlockCache<'b> {
    mem: &'b mut [u8],
    bs: usize,
    slots: usize,
    tags: [u64; MAX_CACHED],
    used: [u32; MAX_CACHED],
    /// Bit `i`: copy `i` was checked since it last changed.
    checked: u8,
    /// Copy `i`'s note from its check (meaningful while bit `i` of `checked` is set).
    notes: [u16; MAX_CACHED],
    clock: u32,
    hits: u64,
}

impl core::fmt::Debug for BlockCache<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BlockCache")
            .field("slots", &self.slots)
            .field("hits", &self.hits)
            .finish_non_exhaustive()
    }
}

impl<'b> BlockCache<'b> {
    /// A cache of the whole blocks of `bs` bytes that fit in `mem` (at most [`MAX_CACHED`]);
    /// none if `mem` holds less than a block.
    pub fn new(mem: &'b mut [u8], bs: usize) -> Self {
        let slots = mem.len().checked_div(bs).unwrap_or(0).min(MAX_CACHED);
        BlockCache {
            mem,
            bs,
            slots,
            tags: [EMPTY; MAX_CACHED],
            used: [0; MAX_CACHED],
            checked: 0,
            notes: [0; MAX_CACHED],
            clock: 0,
            hits: 0,
        }
    }

    /// How many blocks it can hold.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Reads served from a copy since the cache was made.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    fn find(&self, b: BlockNo) -> Option<usize> {
        self.tags
            .get(..self.slots)?
            .iter()
            .position(|&t| t == b.0 && t != EMPTY)
    }

    fn copy_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        let at = i.checked_mul(self.bs)?;
        self.mem.get_mut(at..at.checked_add(self.bs)?)
    }

    fn touch(&mut self, i: usize) {
        self.clock = self.clock.wrapping_add(1);
        if self.clock == 0 {
            // Wrapped: restart the order (every copy equally old) rather than misorder it.
            self.used = [0; MAX_CACHED];
            self.clock = 1;
        }
        if let Some(u) = self.used.get_mut(i) {
            *u = self.clock;
        }
    }

    /// Copies bytes `offset..offset + out.len()` of block `b` into `out` if the block is cached;
    /// `false` (and `out` untouched) if not, or if the range passes the block's end.
    pub fn read(&mut self, b: BlockNo, offset: usize, out: &mut [u8]) -> bool {
        let Some(i) = self.find(b) else {
            return false;
        };
        let Some(end) = offset.checked_add(out.len()).filter(|&e| e <= self.bs) else {
            return false;
        };
        let Some(src) = self.copy_mut(i).and_then(|c| c.get(offset..end)) else {
            return false;
        };
        out.copy_from_slice(src);
        self.touch(i);
        self.hits += 1;
        true
    }

    /// Keeps `data` (a whole block) as block `b`'s committed content, in place of the least
    /// recently used copy if the cache is full.
    pub fn insert(&mut self, b: BlockNo, data: &[u8]) {
        if self.slots == 0 || data.len() != self.bs || b.0 == EMPTY {
            return;
        }
        let i = match self.find(b) {
            Some(i) => i,
            None => {
                let tags = self.tags.get(..self.slots).unwrap_or(&[]);
                match tags.iter().position(|&t| t == EMPTY) {
                    Some(i) => i,
                    None => (0..self.slots)
                        .min_by_key(|&i| self.used.get(i).copied().unwrap_or(0))
                        .unwrap_or(0),
                }
            }
        };
        let Some(c) = self.copy_mut(i) else { return };
        c.copy_from_slice(data);
        if let Some(t) = self.tags.get_mut(i) {
            *t = b.0;
        }
        self.checked &= !(1 << i);
        self.touch(i);
    }

    /// Whether block `b` is cached and its copy was marked checked since it last changed.
    pub fn is_checked(&self, b: BlockNo) -> bool {
        self.find(b).is_some_and(|i| self.checked & (1 << i) != 0)
    }

    /// Marks block `b`'s copy (if cached) as checked: its reader verified it.
    pub fn mark_checked(&mut self, b: BlockNo) {
        self.mark_checked_with(b, 0);
    }

    /// Marks block `b`'s copy (if cached) as checked, with `note`: what the check found, given
    /// back with the copy by [`BlockCache::checked_copy`] while the copy is unchanged.
    pub fn mark_checked_with(&mut self, b: BlockNo, note: u16) {
        if let Some(i) = self.find(b) {
            self.checked |= 1 << i;
            if let Some(n) = self.notes.get_mut(i) {
                *n = note;
            }
        }
    }

    /// Block `b`'s copy where it lies, and the note of its check, if the block is cached and
    /// its copy was marked checked since it last changed (a read: it counts as a hit and
    /// makes the copy the most recently used). `None` otherwise: read it with
    /// [`BlockCache::read`] or from its home and check it.
    pub fn checked_copy(&mut self, b: BlockNo) -> Option<(&[u8], u16)> {
        let i = self.find(b).filter(|&i| self.checked & (1 << i) != 0)?;
        let note = self.notes.get(i).copied().unwrap_or(0);
        self.touch(i);
        self.hits += 1;
        let at = i.checked_mul(self.bs)?;
        let c = self.mem.get(at..at.checked_add(self.bs)?)?;
        Some((c, note))
    }

    /// Changes block `b`'s copy, if it is cached, by `f`: a commit's ranges over it.
    pub fn update(&mut self, b: BlockNo, f: impl FnOnce(&mut [u8])) {
        if let Some(i) = self.find(b) {
            self.checked &= !(1 << i);
            if let Some(c) = self.copy_mut(i) {
                f(c);
            }
        }
    }

    /// Forgets block `b`'s copy.
    pub fn forget(&mut self, b: BlockNo) {
        if let Some(i) = self.find(b) {
            if let Some(t) = self.tags.get_mut(i) {
                *t = EMPTY;
            }
            self.checked &= !(1 << i);
        }
    }

    /// Forgets every copy.
    pub fn clear(&mut self) {
        self.tags = [EMPTY; MAX_CACHED];
        self.checked = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_whole_blocks_and_evicts_the_least_recently_used() {
        let mut mem = [0u8; 3 * 16 + 5];
        let mut c = BlockCache::new(&mut mem, 16);
        assert_eq!(c.slots(), 3);
        for b in 0..3u8 {
            c.insert(BlockNo(u64::from(b)), &[b + 1; 16]);
        }
        let mut out = [0u8; 4];
        assert!(c.read(BlockNo(0), 12, &mut out)); // 0 is now the newest
        assert_eq!(out, [1; 4]);
        c.insert(BlockNo(9), &[7; 16]); // evicts 1, the least recently used
        assert!(!c.read(BlockNo(1), 0, &mut out));
        assert!(c.read(BlockNo(2), 0, &mut out) && out == [3; 4]);
        assert!(c.read(BlockNo(9), 0, &mut out) && out == [7; 4]);
        assert!(c.read(BlockNo(0), 0, &mut out) && out == [1; 4]);
        assert!(!c.read(BlockNo(0), 13, &mut out), "past the block's end");
        assert_eq!(c.hits(), 4);
    }

    #[test]
    fn updates_forgets_and_clears() {
        let mut mem = [0u8; 64];
        let mut c = BlockCache::new(&mut mem, 32);
        c.insert(BlockNo(5), &[1; 32]);
        c.update(BlockNo(5), |d| d[3] = 9);
        c.update(BlockNo(6), |d| d.fill(4)); // not cached: nothing
        let mut out = [0u8; 32];
        assert!(c.read(BlockNo(5), 0, &mut out));
        assert_eq!(out[2..5], [1, 9, 1]);
        assert!(!c.read(BlockNo(6), 0, &mut out));
        c.forget(BlockNo(5));
        assert!(!c.read(BlockNo(5), 0, &mut out));
        c.insert(BlockNo(5), &[2; 32]);
        c.insert(BlockNo(7), &[3; 32]);
        c.clear();
        assert!(!c.read(BlockNo(5), 0, &mut out) && !c.read(BlockNo(7), 0, &mut out));
    }

    #[test]
    fn a_checked_mark_lasts_until_the_copy_changes() {
        let mut mem = [0u8; 64];
        let mut c = BlockCache::new(&mut mem, 32);
        c.mark_checked(BlockNo(1)); // not cached: nothing
        assert!(!c.is_checked(BlockNo(1)));
        c.insert(BlockNo(1), &[1; 32]);
        c.insert(BlockNo(2), &[2; 32]);
        assert!(!c.is_checked(BlockNo(1)));
        c.mark_checked(BlockNo(1));
        c.mark_checked(BlockNo(2));
        let mut out = [0u8; 4];
        assert!(c.read(BlockNo(1), 0, &mut out));
        assert!(c.is_checked(BlockNo(1)), "a read leaves it");
        c.update(BlockNo(1), |d| d[0] = 5);
        assert!(!c.is_checked(BlockNo(1)) && c.is_checked(BlockNo(2)));
        c.insert(BlockNo(2), &[3; 32]);
        assert!(!c.is_checked(BlockNo(2)), "new content");
        c.mark_checked(BlockNo(2));
        c.forget(BlockNo(2));
        c.insert(BlockNo(7), &[7; 32]); // takes the freed slot
        assert!(!c.is_checked(BlockNo(7)));
    }

    #[test]
    fn a_checked_copy_is_lent_until_it_changes() {
        let mut mem = [0u8; 64];
        let mut c = BlockCache::new(&mut mem, 32);
        c.insert(BlockNo(1), &[1; 32]);
        assert!(c.checked_copy(BlockNo(1)).is_none(), "not checked yet");
        assert!(c.checked_copy(BlockNo(2)).is_none(), "not cached");
        c.mark_checked_with(BlockNo(1), 17);
        let hits = c.hits();
        assert_eq!(c.checked_copy(BlockNo(1)), Some((&[1u8; 32][..], 17)));
        assert_eq!(c.hits(), hits + 1);
        // A commit's change ends the loan until the new content is checked again.
        c.update(BlockNo(1), |d| d[0] = 5);
        assert!(c.checked_copy(BlockNo(1)).is_none());
        let mut out = [0u8; 32];
        assert!(c.read(BlockNo(1), 0, &mut out) && out[0] == 5);
        c.mark_checked(BlockNo(1));
        let (copy, note) = c.checked_copy(BlockNo(1)).unwrap();
        assert_eq!(
            (copy[0], copy[1], note),
            (5, 1, 0),
            "the new content, a new note"
        );
        // New content, a forgotten copy, a cleared cache: none lent.
        c.insert(BlockNo(1), &[2; 32]);
        assert!(c.checked_copy(BlockNo(1)).is_none());
        c.mark_checked_with(BlockNo(1), 3);
        c.forget(BlockNo(1));
        assert!(c.checked_copy(BlockNo(1)).is_none());
        c.insert(BlockNo(1), &[2; 32]);
        c.mark_checked_with(BlockNo(1), 3);
        c.clear();
        assert!(c.checked_copy(BlockNo(1)).is_none());
        // The lent copy counts as a use: the other one is evicted first.
        c.insert(BlockNo(1), &[1; 32]);
        c.insert(BlockNo(2), &[2; 32]);
        c.mark_checked(BlockNo(1));
        assert!(c.checked_copy(BlockNo(1)).is_some());
        c.insert(BlockNo(3), &[3; 32]);
        assert!(c.read(BlockNo(1), 0, &mut out) && !c.read(BlockNo(2), 0, &mut out));
    }

    #[test]
    fn too_little_memory_caches_nothing() {
        let mut mem = [0u8; 15];
        let mut c = BlockCache::new(&mut mem, 16);
        c.insert(BlockNo(1), &[1; 16]);
        let mut out = [0u8; 16];
        assert_eq!(c.slots(), 0);
        assert!(!c.read(BlockNo(1), 0, &mut out));
    }
}
