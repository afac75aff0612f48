//! [`BlockCache`]: recently read or written blocks of a file-backed device, kept in memory so
//! that the engine's repeated reads of the same log blocks (rebuilding a changed block from its
//! records) cost a copy instead of a system call.
//!
//! Invariant: every cached copy equals what the device would return for its block — the
//! device writes through it (a block write replaces the copy, an append patches it) and drops
//! everything after a failed write, when the file's content is unknown. Eviction is least
//! recently used.

/// Bytes of cache a device keeps (at least [`MIN_BLOCKS`] blocks).
const BYTES: usize = 256 << 10;
/// Blocks cached at the least.
const MIN_BLOCKS: usize = 8;

#[derive(Debug)]
struct Slot {
    block: u64,
    used: u64,
    data: Box<[u8]>,
}

/// A small write-through cache of whole blocks.
#[derive(Debug)]
pub struct BlockCache {
    bs: usize,
    cap: usize,
    clock: u64,
    slots: Vec<Slot>,
}

impl BlockCache {
    /// An empty cache for blocks of `bs` bytes.
    pub fn new(bs: usize) -> BlockCache {
        BlockCache {
            bs,
            cap: (BYTES / bs.max(1)).max(MIN_BLOCKS),
            clock: 0,
            slots: Vec::new(),
        }
    }

    /// Blocks the cache holds at most.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    fn find(&mut self, block: u64) -> Option<&mut Slot> {
        self.clock += 1;
        let now = self.clock;
        let s = self.slots.iter_mut().find(|s| s.block == block)?;
        s.used = now;
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

    /// Caches `data` as block `block`'s content (replacing the least recently used copy when
    /// full).
    pub fn put(&mut self, block: u64, data: &[u8]) {
        if data.len() != self.bs {
            self.forget(block);
            return;
        }
        if let Some(s) = self.find(block) {
            s.data.copy_from_slice(data);
            return;
        }
        let used = self.clock;
        if self.slots.len() < self.cap {
            self.slots.push(Slot {
                block,
                used,
                data: data.into(),
            });
        } else if let Some(s) = self.slots.iter_mut().min_by_key(|s| s.used) {
            s.block = block;
            s.used = used;
            s.data.copy_from_slice(data);
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
        self.slots.retain(|s| s.block != block);
    }

    /// Drops every copy.
    pub fn clear(&mut self) {
        self.slots.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_patches_and_evicts_the_least_recently_used() {
        let mut c = BlockCache::new(4096);
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
        assert_eq!(BlockCache::new(65536).capacity(), MIN_BLOCKS);
    }
}
