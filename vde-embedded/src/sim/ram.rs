//! [`SimRam`]: a RAM disk of whole blocks with power-cut injection, the medium of the RAM crash
//! harness (a file or a disk, less its write cache).
//!
//! Owns the block image (caller memory), the [`PowerSwitch`] and the counters. A write lands at
//! once; a write that a cut interrupts is torn at 512-byte sector granularity (a pseudo-random
//! prefix of its sectors lands, possibly none or all: sectors are the unit a disk writes
//! atomically); a cut read fails. `flush` reaches no medium: the volatile write cache of a real
//! disk or of the page cache is modelled above the device, by
//! [`Unflushed`](crate::harness::unflushed::Unflushed) (feature `std`).
//!
//! Invariant: the image is changed only by writes that reached the medium; nothing is read from
//! or written to it while the power is lost.

use vde_nostd::{BlockDevice, BlockNo};

use super::rng::mix;
use super::{FlashStats, OpKind, PowerSwitch, SimError, TearMode, XorShift64};

/// A RAM disk over caller memory with power-cut injection.
pub struct SimRam<'m> {
    mem: &'m mut [u8],
    bs: usize,
    power: PowerSwitch,
    stats: FlashStats,
    seed: u64,
    tear: TearMode,
}

impl<'m> SimRam<'m> {
    /// A RAM disk of `mem.len() / block_size` blocks. Fails with [`SimError::NotAligned`] unless
    /// `block_size` is a power of two of at least 512 dividing `mem.len()`.
    pub fn new(mem: &'m mut [u8], block_size: usize, seed: u64) -> Result<Self, SimError> {
        if !block_size.is_power_of_two()
            || block_size < 512
            || !mem.len().is_multiple_of(block_size)
        {
            return Err(SimError::NotAligned);
        }
        Ok(SimRam {
            mem,
            bs: block_size,
            power: PowerSwitch::new(),
            stats: FlashStats::default(),
            seed,
            tear: TearMode::Prefix,
        })
    }

    /// The image.
    pub fn bytes(&self) -> &[u8] {
        self.mem
    }
    /// The image, mutably (to restore a snapshot).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.mem
    }
    /// Sets the seed of the tear randomness and the tear mode ([`TearMode::Scattered`] tears
    /// each sector independently instead of a prefix).
    pub fn set_faults(&mut self, seed: u64, tear: TearMode) {
        self.seed = seed;
        self.tear = tear;
    }
    /// Operations (reads and writes) that reached the medium.
    pub fn op_count(&self) -> u64 {
        self.power.op_count()
    }
    /// Lets `after_ops` operations complete and cuts the next one.
    pub fn arm_power_cut(&mut self, after_ops: u64) {
        self.power.arm(after_ops);
    }
    /// Whether the power is lost.
    pub fn power_lost(&self) -> bool {
        self.power.lost()
    }
    /// The kind of operation the cut interrupted ([`OpKind::Program`] for a write).
    pub fn cut_kind(&self) -> Option<OpKind> {
        self.power.cut_kind()
    }
    /// Restores power; the image stays as the cut left it.
    pub fn reboot(&mut self) {
        self.power.reboot();
    }
    /// Counters (a write counts as a program).
    pub fn stats(&self) -> FlashStats {
        self.stats
    }
    /// Zeroes the counters.
    pub fn reset_stats(&mut self) {
        self.stats = FlashStats::default();
    }

    fn range(&self, b: BlockNo, len: usize) -> Result<core::ops::Range<usize>, SimError> {
        if len != self.bs {
            return Err(SimError::NotAligned);
        }
        let at = usize::try_from(b.0)
            .ok()
            .and_then(|i| i.checked_mul(self.bs))
            .ok_or(SimError::OutOfBounds)?;
        let end = at.checked_add(self.bs).ok_or(SimError::OutOfBounds)?;
        if end > self.mem.len() {
            return Err(SimError::OutOfBounds);
        }
        Ok(at..end)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for SimRam<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "SimRam {{ bytes: {}, block_size: {}, stats: {}, ops: {}, power: {} }}",
            self.mem.len(),
            self.bs,
            self.stats,
            self.power.op_count(),
            self.power.power
        )
    }
}

impl BlockDevice for SimRam<'_> {
    type Error = SimError;
    fn block_size(&self) -> usize {
        self.bs
    }
    fn block_count(&self) -> u64 {
        (self.mem.len() / self.bs) as u64
    }
    fn read_block(&mut self, b: BlockNo, buf: &mut [u8]) -> Result<(), SimError> {
        if self.power.lost() {
            return Err(SimError::PowerLost);
        }
        let r = self.range(b, buf.len())?;
        let (_, cut) = self.power.begin(OpKind::Read);
        self.stats.reads = self.stats.reads.saturating_add(1);
        self.stats.read_bytes = self.stats.read_bytes.saturating_add(buf.len() as u64);
        if cut {
            return Err(SimError::PowerLost);
        }
        buf.copy_from_slice(self.mem.get(r).ok_or(SimError::OutOfBounds)?);
        Ok(())
    }
    fn reads_partial(&self) -> bool {
        true
    }
    /// A read like [`SimRam::read_block`]'s (one operation a cut can hit), of part of a block.
    fn read_at(&mut self, b: BlockNo, offset: usize, buf: &mut [u8]) -> Result<(), SimError> {
        if self.power.lost() {
            return Err(SimError::PowerLost);
        }
        let r = self.range(b, self.bs)?;
        let end = offset.checked_add(buf.len()).filter(|e| *e <= self.bs);
        let end = end.ok_or(SimError::OutOfBounds)?;
        let (_, cut) = self.power.begin(OpKind::Read);
        self.stats.reads = self.stats.reads.saturating_add(1);
        self.stats.read_bytes = self.stats.read_bytes.saturating_add(buf.len() as u64);
        if cut {
            return Err(SimError::PowerLost);
        }
        let src = self.mem.get(r.start + offset..r.start + end);
        buf.copy_from_slice(src.ok_or(SimError::OutOfBounds)?);
        Ok(())
    }
    fn write_block(&mut self, b: BlockNo, buf: &[u8]) -> Result<(), SimError> {
        if self.power.lost() {
            return Err(SimError::PowerLost);
        }
        let r = self.range(b, buf.len())?;
        let (op, cut) = self.power.begin(OpKind::Program);
        self.stats.programs = self.stats.programs.saturating_add(1);
        self.stats.program_bytes = self.stats.program_bytes.saturating_add(buf.len() as u64);
        let dst = self.mem.get_mut(r).ok_or(SimError::OutOfBounds)?;
        if !cut {
            dst.copy_from_slice(buf);
            return Ok(());
        }
        let mut rng = XorShift64::new(mix(self.seed, op));
        let sectors = buf.len() / 512;
        let prefix = rng.below(sectors as u64 + 1) as usize;
        for (i, (d, s)) in dst.chunks_mut(512).zip(buf.chunks(512)).enumerate() {
            let lands = match self.tear {
                TearMode::Prefix => i < prefix,
                TearMode::Scattered => rng.below(2) == 0,
            };
            if lands {
                d.copy_from_slice(s);
            }
        }
        Err(SimError::PowerLost)
    }
    fn flush(&mut self) -> Result<(), SimError> {
        if self.power.lost() {
            return Err(SimError::PowerLost);
        }
        Ok(())
    }
    /// Writes the bytes in place; a cut tears the write at sector granularity like a block
    /// write (a prefix of the sectors it touches lands; bytes outside the range never change).
    fn append(&mut self, b: BlockNo, offset: usize, data: &[u8]) -> Result<(), SimError> {
        if self.power.lost() {
            return Err(SimError::PowerLost);
        }
        let r = self.range(b, self.bs)?;
        let end = offset
            .checked_add(data.len())
            .filter(|e| *e <= self.bs)
            .ok_or(SimError::NotAligned)?;
        let (op, cut) = self.power.begin(OpKind::Program);
        self.stats.programs = self.stats.programs.saturating_add(1);
        self.stats.program_bytes = self.stats.program_bytes.saturating_add(data.len() as u64);
        let dst = self
            .mem
            .get_mut(r.start + offset..r.start + end)
            .ok_or(SimError::OutOfBounds)?;
        if !cut {
            dst.copy_from_slice(data);
            return Ok(());
        }
        let mut rng = XorShift64::new(mix(self.seed, op));
        // Sector boundaries of the device, seen from the start of the range.
        let first = 512 - offset % 512;
        let pieces = 1 + data.len().saturating_sub(first).div_ceil(512);
        let prefix = rng.below(pieces as u64 + 1) as usize;
        let mut at = 0usize;
        for i in 0..pieces {
            let n = if i == 0 { first } else { 512 }.min(data.len() - at);
            let lands = match self.tear {
                TearMode::Prefix => i < prefix,
                TearMode::Scattered => rng.below(2) == 0,
            };
            if lands {
                if let (Some(d), Some(s)) = (dst.get_mut(at..at + n), data.get(at..at + n)) {
                    d.copy_from_slice(s);
                }
            }
            at += n;
        }
        Err(SimError::PowerLost)
    }
    /// A RAM disk writes part of a block in place, torn like an append.
    fn programs_in_place(&self) -> bool {
        true
    }
    fn program(&mut self, b: BlockNo, offset: usize, data: &[u8]) -> Result<(), SimError> {
        self.append(b, offset, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    #[test]
    fn a_cut_write_tears_at_sector_granularity_and_later_ops_fail() {
        let mut mem = vec![0u8; 4096 * 4];
        let mut ram = SimRam::new(&mut mem, 4096, 7).unwrap();
        let data = vec![0xAB; 4096];
        ram.write_block(BlockNo(0), &data).unwrap();
        ram.arm_power_cut(0);
        assert_eq!(
            ram.write_block(BlockNo(1), &[0xCD; 4096]),
            Err(SimError::PowerLost)
        );
        assert_eq!(ram.cut_kind(), Some(OpKind::Program));
        let mut buf = vec![0u8; 4096];
        assert_eq!(
            ram.read_block(BlockNo(0), &mut buf),
            Err(SimError::PowerLost)
        );
        ram.reboot();
        ram.read_block(BlockNo(1), &mut buf).unwrap();
        for s in buf.chunks(512) {
            assert!(s.iter().all(|b| *b == 0xCD) || s.iter().all(|b| *b == 0));
        }
        ram.read_block(BlockNo(0), &mut buf).unwrap();
        assert_eq!(buf, data);
        assert_eq!(ram.op_count(), 4);
    }

    #[test]
    fn bad_geometry_and_ranges_are_refused() {
        let mut mem = vec![0u8; 1000];
        assert!(SimRam::new(&mut mem, 512, 1).is_err());
        let mut mem = vec![0u8; 1024];
        let mut ram = SimRam::new(&mut mem, 512, 1).unwrap();
        assert_eq!(
            ram.write_block(BlockNo(2), &[0; 512]),
            Err(SimError::OutOfBounds)
        );
        assert_eq!(
            ram.write_block(BlockNo(0), &[0; 100]),
            Err(SimError::NotAligned)
        );
    }
}
