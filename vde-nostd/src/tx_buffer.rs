//! [`TxBuf`]: the block updates of the open transaction, in caller-provided memory, and — in
//! the slots no update uses — the committed images of recently committed blocks.
//!
//! The volume stages a block here before it changes it (its committed content first, then the
//! change); [`crate::wal::Wal::commit`] logs what changed against the committed content.
//! Invariants: at most `min(K, memory / block size)` slots; staged block `i` is in slot `i`;
//! original `j` (block `origs[j]`) is in slot `capacity - 1 - j`, above every staged slot, and
//! equals its block's committed content (see [`TxBuf`] for who keeps that true).

use crate::error::Error;
use crate::types::BlockNo;

/// The block updates of one transaction, held in caller-provided memory until commit.
///
/// `K` bounds the number of distinct blocks; the data buffer holds one block per update.
/// Slots no update uses keep, from the top down, the committed content of recently used
/// blocks (their *originals*): a block staged again starts from its original instead of being
/// rebuilt from the log, and the commit diffs against it. Invariants: original `j` (block
/// `origs[j]`) is in slot `capacity - 1 - j`, above every staged slot (staging takes the
/// lowest original's slot when it needs it); an original equals its block's committed content
/// — a commit replaces the originals of the blocks it changed ([`TxBuf::committed`]), and
/// whoever changes a block any other way forgets its original ([`TxBuf::forget`]).
pub struct TxBuf<'b, const K: usize> {
    targets: heapless::Vec<BlockNo, K>,
    origs: heapless::Vec<BlockNo, K>,
    data: &'b mut [u8],
    bs: usize,
}

impl<'b, const K: usize> TxBuf<'b, K> {
    /// A transaction buffer over `data` for blocks of `bs` bytes. Capacity is
    /// `min(K, data.len() / bs)` block updates.
    pub fn new(data: &'b mut [u8], bs: usize) -> Self {
        TxBuf {
            targets: heapless::Vec::new(),
            origs: heapless::Vec::new(),
            data,
            bs: bs.max(1),
        }
    }
    /// How many block updates fit.
    pub fn capacity(&self) -> usize {
        K.min(self.data.len() / self.bs)
    }
    /// Number of staged updates.
    pub fn len(&self) -> usize {
        self.targets.len()
    }
    /// Whether nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
    /// Drops every staged update (the originals stay: the committed content did not change).
    pub fn clear(&mut self) {
        self.targets.clear();
    }
    /// Drops every staged update and every original (after a failed commit, when what is
    /// committed is not known until recovery).
    pub fn reset(&mut self) {
        self.targets.clear();
        self.origs.clear();
    }
    /// Forgets block `b`'s original: its committed content changed outside the buffer.
    pub fn forget(&mut self, b: BlockNo) {
        let Some(j) = self.kept(b) else {
            return;
        };
        let last = self.origs.len().saturating_sub(1);
        self.copy_slot(self.top(last), self.top(j));
        self.origs.swap_remove(j);
    }
    /// The staged updates were committed: each becomes its block's original, and the staged
    /// updates are dropped. Taken last to first, a new original's slot is never one of a
    /// staged update still to be taken (staged and kept together never exceed the capacity).
    pub fn committed(&mut self) {
        for i in (0..self.targets.len()).rev() {
            let Some(&b) = self.targets.get(i) else { break };
            let j = match self.kept(b) {
                Some(j) => j,
                None if self.origs.push(b).is_ok() => self.origs.len() - 1,
                None => continue,
            };
            self.copy_slot(i, self.top(j));
        }
        self.targets.clear();
    }
    /// The block size this buffer was made for.
    pub fn block_size(&self) -> usize {
        self.bs
    }
    fn slot(&self, i: usize) -> &[u8] {
        let s = i.saturating_mul(self.bs);
        self.data.get(s..s.saturating_add(self.bs)).unwrap_or(&[])
    }
    fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        let s = i.saturating_mul(self.bs);
        self.data
            .get_mut(s..s.saturating_add(self.bs))
            .unwrap_or(&mut [])
    }
    /// The block of staged update `i` (staging order).
    pub fn target(&self, i: usize) -> Option<BlockNo> {
        self.targets.get(i).copied()
    }
    /// Position of `b` among the originals.
    fn kept(&self, b: BlockNo) -> Option<usize> {
        self.origs.iter().position(|o| *o == b)
    }
    /// The slot of original `j`.
    fn top(&self, j: usize) -> usize {
        self.capacity().saturating_sub(j.saturating_add(1))
    }
    /// Copies slot `from` over slot `to` (in range by the invariants; out of range it does
    /// nothing rather than panic).
    fn copy_slot(&mut self, from: usize, to: usize) {
        let bs = self.bs;
        let (Some(a), Some(b)) = (from.checked_mul(bs), to.checked_mul(bs)) else {
            return;
        };
        if from != to && a.max(b).saturating_add(bs) <= self.data.len() {
            self.data.copy_within(a..a + bs, b);
        }
    }
    /// Position of `b` among the staged updates.
    pub fn find(&self, b: BlockNo) -> Option<usize> {
        self.targets.iter().position(|t| *t == b)
    }
    /// The staged content of block `b`, if staged.
    pub fn get(&self, b: BlockNo) -> Option<&[u8]> {
        self.find(b).map(|i| self.slot(i))
    }
    /// The staged content of block `b`, mutably, if staged.
    pub fn get_mut(&mut self, b: BlockNo) -> Option<&mut [u8]> {
        self.find(b).map(|i| self.slot_mut(i))
    }
    /// Stages block `b`: returns its buffer and whether it is new (a new buffer holds stale bytes
    /// the caller must overwrite). Fails with [`Error::TxCapacity`] when full.
    pub fn stage<E>(&mut self, b: BlockNo) -> Result<(&mut [u8], bool), Error<E>> {
        if let Some(i) = self.find(b) {
            return Ok((self.slot_mut(i), false));
        }
        if self.targets.len() >= self.capacity() {
            return Err(Error::TxCapacity);
        }
        if self.targets.len() + self.origs.len() >= self.capacity() {
            self.origs.pop();
        }
        self.targets.push(b).map_err(|_| Error::TxCapacity)?;
        let i = self.targets.len() - 1;
        Ok((self.slot_mut(i), true))
    }
    /// Removes the most recently staged block (used to undo a failed stage).
    pub fn unstage_last(&mut self) {
        self.targets.pop();
    }
    /// Keeps a copy of staged block `b`'s content (just read: its committed content) in a
    /// free slot, if one is left, as its original.
    pub fn keep_original(&mut self, b: BlockNo) {
        let (Some(i), cap) = (self.find(b), self.capacity()) else {
            return;
        };
        let j = self.origs.len();
        if self.targets.len() + j >= cap || self.kept(b).is_some() {
            return;
        }
        if self.origs.push(b).is_err() {
            return;
        }
        self.copy_slot(i, self.top(j));
    }
    /// Copies block `b`'s original, if kept, into its staged slot; whether it did.
    pub fn restore(&mut self, b: BlockNo) -> bool {
        let (Some(i), Some(j)) = (self.find(b), self.kept(b)) else {
            return false;
        };
        self.copy_slot(self.top(j), i);
        true
    }
    /// The committed content of staged block `b`, if kept.
    pub fn original(&self, b: BlockNo) -> Option<&[u8]> {
        let j = self.kept(b)?;
        Some(self.slot(self.top(j)))
    }
    /// Iterates over `(block, content)` in staging order.
    pub fn iter(&self) -> impl Iterator<Item = (BlockNo, &[u8])> + '_ {
        self.targets
            .iter()
            .enumerate()
            .map(move |(i, b)| (*b, self.slot(i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transaction_buffer_keeps_committed_images_in_free_slots() {
        type E = ();
        let mut mem = [0u8; 4 * 16];
        let mut tx = TxBuf::<4>::new(&mut mem, 16);
        let fill = |tx: &mut TxBuf<'_, 4>, b: u64, v: u8| {
            let (s, new) = tx.stage::<E>(BlockNo(b)).unwrap();
            assert!(new);
            s.fill(v);
        };
        // Block 1 read (value 1) and kept; changed to 2 and committed: its original is 2.
        fill(&mut tx, 1, 1);
        tx.keep_original(BlockNo(1));
        assert_eq!(tx.original(BlockNo(1)), Some(&[1u8; 16][..]));
        tx.get_mut(BlockNo(1)).unwrap().fill(2);
        assert_eq!(tx.original(BlockNo(1)), Some(&[1u8; 16][..]));
        fill(&mut tx, 2, 7);
        tx.committed();
        assert!(tx.is_empty());
        assert_eq!(tx.original(BlockNo(1)), Some(&[2u8; 16][..]));
        assert_eq!(tx.original(BlockNo(2)), Some(&[7u8; 16][..]));
        // Restored into a new staging slot; a rollback keeps the originals.
        tx.stage::<E>(BlockNo(2)).unwrap();
        assert!(tx.restore(BlockNo(2)));
        assert_eq!(tx.get(BlockNo(2)), Some(&[7u8; 16][..]));
        assert!(!tx.restore(BlockNo(9)));
        tx.get_mut(BlockNo(2)).unwrap().fill(8);
        tx.clear();
        assert_eq!(tx.original(BlockNo(2)), Some(&[7u8; 16][..]));
        // Staging needs the slots back: the lowest original goes first, the rest stay right.
        fill(&mut tx, 5, 5);
        fill(&mut tx, 6, 6);
        assert_eq!(tx.original(BlockNo(1)), Some(&[2u8; 16][..]));
        assert_eq!(tx.original(BlockNo(2)), Some(&[7u8; 16][..]));
        fill(&mut tx, 3, 3);
        assert_eq!(tx.original(BlockNo(2)), None);
        assert_eq!(tx.original(BlockNo(1)), Some(&[2u8; 16][..]));
        fill(&mut tx, 4, 4);
        assert_eq!(tx.original(BlockNo(1)), None);
        assert!(tx.stage::<E>(BlockNo(7)).is_err());
        // A full buffer: every committed block becomes an original.
        tx.committed();
        for (b, v) in [(5u64, 5u8), (6, 6), (3, 3), (4, 4)] {
            assert_eq!(tx.original(BlockNo(b)), Some(&[v; 16][..]));
        }
        tx.reset();
        // Forgetting one moves the last into its slot.
        for (b, v) in [(10u64, 10u8), (11, 11), (12, 12)] {
            fill(&mut tx, b, v);
        }
        tx.committed();
        tx.forget(BlockNo(10));
        assert_eq!(tx.original(BlockNo(10)), None);
        assert_eq!(tx.original(BlockNo(11)), Some(&[11u8; 16][..]));
        assert_eq!(tx.original(BlockNo(12)), Some(&[12u8; 16][..]));
        tx.reset();
        assert_eq!(tx.original(BlockNo(11)), None);
    }
}
