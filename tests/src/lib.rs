//! Shared helpers for the cross-crate tests: owned buffers for a volume, a RAM image, and a
//! device wrapper that counts operations and can cut power.

use vde_nostd::device::RamDevice;
use vde_nostd::{BlockDevice, BlockNo, Buffers};

/// Owned memory for a volume's buffers.
pub struct Mem {
    /// Scratch (2 blocks).
    pub scratch: Vec<u8>,
    /// Transaction buffer.
    pub txn: Vec<u8>,
    /// RAM slot index.
    pub index: Vec<u8>,
}

impl Mem {
    /// Buffers for block size `bs` and transactions of `k` blocks, index for `entries` shared
    /// blocks.
    pub fn new(bs: usize, k: usize, entries: usize) -> Mem {
        Mem {
            scratch: vec![0; bs * 2],
            txn: vec![0; bs * k],
            index: vec![0; entries * (8 + bs / 512)],
        }
    }
    /// Borrows them as [`Buffers`].
    pub fn bufs(&mut self) -> Buffers<'_> {
        Buffers {
            scratch: &mut self.scratch,
            txn: &mut self.txn,
            index: &mut self.index,
        }
    }
}

/// Error of [`CutDevice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutError {
    /// Power is off.
    PowerLost,
    /// The inner device failed.
    Inner,
}

/// A RAM device that models volatile writes: writes since the last flush are kept in a pending
/// list; a power cut at operation `K` tears the write in progress and keeps an arbitrary
/// (seeded) subset of the pending writes.
pub struct CutDevice {
    /// Durable content.
    pub durable: Vec<u8>,
    /// What reads see (durable plus pending writes).
    pub visible: Vec<u8>,
    pending: Vec<(u64, Vec<u8>)>,
    bs: usize,
    /// Operations (writes and flushes) so far.
    pub ops: u64,
    /// Flushes so far.
    pub flushes: u64,
    /// Block writes so far.
    pub writes: u64,
    cut_at: Option<u64>,
    seed: u64,
    dead: bool,
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

impl CutDevice {
    /// A device over `image` (taken as durable).
    pub fn new(image: Vec<u8>, bs: usize) -> CutDevice {
        CutDevice {
            visible: image.clone(),
            durable: image,
            pending: Vec::new(),
            bs,
            ops: 0,
            flushes: 0,
            writes: 0,
            cut_at: None,
            seed: 1,
            dead: false,
        }
    }
    /// Cuts power at write/flush number `k` (0-based) with `seed` choosing what survives.
    pub fn arm(&mut self, k: u64, seed: u64) {
        self.cut_at = Some(k);
        self.seed = seed | 1;
    }
    /// Whether power was cut.
    pub fn is_dead(&self) -> bool {
        self.dead
    }
    /// The image after the cut: durable content plus a random subset of pending writes, the
    /// last of them possibly torn.
    pub fn crash_image(&mut self) -> Vec<u8> {
        let mut img = self.durable.clone();
        let pending = std::mem::take(&mut self.pending);
        for (b, data) in pending {
            let r = xorshift(&mut self.seed);
            let at = b as usize * self.bs;
            match r % 4 {
                0 => {} // lost
                1 => {
                    // torn: a prefix of 512-byte sectors lands
                    let sectors = (xorshift(&mut self.seed) as usize) % (self.bs / 512 + 1);
                    let n = sectors * 512;
                    img[at..at + n].copy_from_slice(&data[..n]);
                }
                _ => img[at..at + self.bs].copy_from_slice(&data),
            }
        }
        img
    }
    fn tick(&mut self) -> Result<(), CutError> {
        if self.dead {
            return Err(CutError::PowerLost);
        }
        if self.cut_at == Some(self.ops) {
            self.dead = true;
            return Err(CutError::PowerLost);
        }
        self.ops += 1;
        Ok(())
    }
}

impl BlockDevice for CutDevice {
    type Error = CutError;
    fn block_size(&self) -> usize {
        self.bs
    }
    fn block_count(&self) -> u64 {
        (self.visible.len() / self.bs) as u64
    }
    fn read_block(&mut self, block: BlockNo, buf: &mut [u8]) -> Result<(), CutError> {
        if self.dead {
            return Err(CutError::PowerLost);
        }
        let at = block.0 as usize * self.bs;
        buf.copy_from_slice(self.visible.get(at..at + self.bs).ok_or(CutError::Inner)?);
        Ok(())
    }
    fn write_block(&mut self, block: BlockNo, buf: &[u8]) -> Result<(), CutError> {
        let at = block.0 as usize * self.bs;
        if at + self.bs > self.visible.len() {
            return Err(CutError::Inner);
        }
        if let Err(e) = self.tick() {
            // The write in progress may land torn.
            self.pending.push((block.0, buf.to_vec()));
            return Err(e);
        }
        self.writes += 1;
        self.visible[at..at + self.bs].copy_from_slice(buf);
        self.pending.push((block.0, buf.to_vec()));
        Ok(())
    }
    fn flush(&mut self) -> Result<(), CutError> {
        self.tick()?;
        self.flushes += 1;
        self.durable.copy_from_slice(&self.visible);
        self.pending.clear();
        Ok(())
    }
}

/// A formatted RAM image of `blocks` blocks of `bs` bytes with the objects module.
pub fn fresh_image(bs: usize, blocks: usize, wal_blocks: u64) -> Vec<u8> {
    let mut img = vec![0u8; bs * blocks];
    let mut mem = Mem::new(bs, 16, 1024);
    let dev = RamDevice::new(&mut img, bs).expect("block size");
    let opts = vde_nostd::FormatOptions {
        wal_blocks: Some(wal_blocks),
        volume_id: [0x42; 16],
        now: 1,
        modules: vde_nostd::ModuleSet::OBJECTS,
    };
    let vol = vde_nostd::Volume::<_, 16>::format(dev, &opts, mem.bufs()).expect("format");
    let _ = vol.unmount().expect("unmount");
    img
}
