//! [`BlockCache`]: recently read or written blocks of a file-backed device, kept in memory so
//! that the engine's repeated reads of the same blocks (the slot index, bitmap and shared blocks
//! a get reads, log blocks rebuilding a changed block) cost a copy instead of a system call.
//!
//! Invariant: every cached copy equals what the device would return for its block — the
//! device writes through it (a block write replaces the copy, an append patches it) and drops
//! everything after a failed write, when the file's content is unknown. Bounded by bytes
//! ([`DEFAULT_BYTES`] unless set); found through a hash map; evicted by the CLOCK rule (a copy
//! used since the hand last passed it gets a second chance), which is least-recently-used
//! order for a cache that is filled once and then read.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes a block number with one multiplication and a fold: block numbers come from the
/// engine, not from an adversary, and SipHash would cost more than the copy a hit saves.
#[derive(Debug, Default, Clone, Copy)]
struct BlockHasher(u64);

impl Hasher for BlockHasher {
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Where each cached block's slot is.
type SlotMap = HashMap<u64, usize, BuildHasherDefault<BlockHasher>>;

/// Bytes of cache a device keeps unless told otherwise.
pub const DEFAULT_BYTES: usize = 4 << 20;
/// Blocks cached at the least.
const MIN_BLOCKS: usize = 8;

#[derive(Debug)]
struct Slot {
    block: u64,
    used: bool,
    data: Box<[u8]>,
}

/// A write-through cache of whole blocks.
#[derive(Debug)]
pub struct BlockCache {
    bs: usize,
    cap: usize,
    hand: usize,
    slots: Vec<Slot>,
    at: SlotMap,
}

impl BlockCache {
    /// An empty cache for blocks of `bs` bytes, of [`DEFAULT_BYTES`].
    pub fn new(bs: usize) -> BlockCache {
        BlockCache::with_bytes(bs, DEFAULT_BYTES)
    }

    /// An empty cache for blocks of `bs` bytes holding about `bytes` (at least
    /// [`MIN_BLOCKS`] blocks).
    pub fn with_bytes(bs: usize, bytes: usize) -> BlockCache {
        BlockCache {
            bs,
            cap: (bytes / bs.max(1)).max(MIN_BLOCKS),
            hand: 0,
            slots: Vec::new(),
            at: SlotMap::default(),
        }
    }

    /// Blocks the cache holds at most.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    fn find(&mut self, block: u64) -> Option<&mut Slot> {
        let i = *self.at.get(&block)?;
        let s = self.slots.get_mut(i)?;
        s.used = true;
        Some(s)
    }

    /// Copies block `block` into `buf` if it is cached.
    pub fn get(&mut self, block: u64, buf: &mut [u8]) -> bool {
        match self.find(block) {
            Some(s) if s.data.len() == buf.len() => {
                buf.copy_from_slice(&s.data);
                true
            }
            _ => false,
        }
    }

    /// Copies bytes `offset..offset + buf.len()` of block `block` into `buf` if it is cached.
    pub fn get_at(&mut self, block: u64, offset: usize, buf: &mut [u8]) -> bool {
        let Some(s) = self.find(block) else {
            return false;
        };
        match s.data.get(offset..offset.saturating_add(buf.len())) {
            Some(src) => {
                buf.copy_from_slice(src);
                true
            }
            None => false,
        }
    }

    /// Caches `data` as block `block`'s content (replacing a copy not used lately when full).
    pub fn put(&mut self, block: u64, data: &[u8]) {
        if data.len() != self.bs {
            self.forget(block);
            return;
        }
        if let Some(s) = self.find(block) {
            s.data.copy_from_slice(data);
            return;
        }
        if self.slots.len() < self.cap {
            self.at.insert(block, self.slots.len());
            self.slots.push(Slot {
                block,
                used: false,
                data: data.into(),
            });
            return;
        }
        // The hand clears `used` marks until it finds a copy without one (at most one turn).
        let n = self.slots.len();
        for _ in 0..=n {
            let i = self.hand % n;
            self.hand = (i + 1) % n;
            let Some(s) = self.slots.get_mut(i) else {
                return;
            };
            if s.used {
                s.used = false;
                continue;
            }
            self.at.remove(&s.block);
            s.block = block;
            s.data.copy_from_slice(data);
            self.at.insert(block, i);
            return;
        }
    }

    /// Writes `data` at byte `offset` of block `block`'s copy, if it is cached.
    pub fn patch(&mut self, block: u64, offset: usize, data: &[u8]) {
        let Some(s) = self.find(block) else { return };
        match s.data.get_mut(offset..offset.saturating_add(data.len())) {
            Some(d) => d.copy_from_slice(data),
            None => self.forget(block),
        }
    }

    /// Drops block `block`'s copy.
    pub fn forget(&mut self, block: u64) {
        let Some(i) = self.at.remove(&block) else {
            return;
        };
        if i >= self.slots.len() {
            return;
        }
        self.slots.swap_remove(i);
        if let Some(moved) = self.slots.get(i) {
            self.at.insert(moved.block, i);
        }
        if self.hand >= self.slots.len() {
            self.hand = 0;
        }
    }

    /// Drops every copy.
    pub fn clear(&mut self) {
        self.slots.clear();
        self.at.clear();
        self.hand = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_patches_and_evicts_a_copy_not_used_lately() {
        let mut c = BlockCache::with_bytes(4096, 256 << 10);
        assert_eq!(c.capacity(), 64);
        let mut buf = vec![0u8; 4096];
        assert!(!c.get(1, &mut buf));
        for b in 0..64u64 {
            c.put(b, &vec![b as u8; 4096]);
        }
        // Block 0 is used again, so block 1 is the oldest when block 64 arrives.
        assert!(c.get(0, &mut buf));
        c.put(64, &vec![64u8; 4096]);
        assert!(!c.get(1, &mut buf));
        assert!(c.get(0, &mut buf) && buf.iter().all(|&x| x == 0));
        c.patch(64, 4090, &[1, 2, 3, 4, 5, 6]);
        assert!(c.get(64, &mut buf));
        assert_eq!(&buf[4088..], &[64, 64, 1, 2, 3, 4, 5, 6]);
        // A patch past the end drops the copy rather than keep a wrong one.
        c.patch(64, 4095, &[9, 9]);
        assert!(!c.get(64, &mut buf));
        c.put(5, &[0u8; 100]);
        assert!(!c.get(5, &mut buf));
        assert!(!c.get(0, &mut [0u8; 100]));
        c.clear();
        assert!(!c.get(0, &mut buf));
        assert_eq!(BlockCache::with_bytes(65536, 4096).capacity(), MIN_BLOCKS);
        assert_eq!(BlockCache::new(4096).capacity(), DEFAULT_BYTES / 4096);
    }

    /// Random puts, gets, patches and forgets against a map of every block's true content: a
    /// hit always returns the true content, and the cache never holds more than its capacity.
    #[test]
    fn a_hit_is_always_the_latest_content() {
        let mut c = BlockCache::with_bytes(64, 64 * 8);
        let mut truth: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut buf = vec![0u8; 64];
        for i in 0..20_000u32 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let b = rng % 20;
            match (rng >> 8) % 5 {
                0 | 1 => {
                    let v = vec![(i % 251) as u8; 64];
                    c.put(b, &v);
                    truth.insert(b, v);
                }
                2 => {
                    if let Some(t) = truth.get_mut(&b) {
                        let off = (rng >> 16) as usize % 60;
                        t[off..off + 4].copy_from_slice(&i.to_le_bytes());
                        c.patch(b, off, &i.to_le_bytes());
                    }
                }
                3 => c.forget(b),
                _ => {
                    if c.get(b, &mut buf) {
                        assert_eq!(Some(&buf), truth.get(&b), "block {b} after {i} steps");
                    }
                    let off = (rng >> 16) as usize % 60;
                    let mut part = [0u8; 4];
                    if c.get_at(b, off, &mut part) {
                        assert_eq!(&part[..], &truth[&b][off..off + 4]);
                    }
                }
            }
            assert!(c.slots.len() <= c.capacity() && c.at.len() == c.slots.len());
        }
    }
}
