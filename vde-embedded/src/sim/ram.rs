//! [`SimRam`]: a RAM disk of whole blocks with power-cut injection, the medium of the RAM crash
//! harness (a file or a disk, less its write cache).
//!
//! Owns the block image (caller memory) as a plain RAM device, wrapped by a
//! [`FaultInjector`](crate::fault::FaultInjector), which owns the power switch, the counters and
//! the tears: a write lands at once; a write that a cut interrupts is torn at 512-byte sector
//! granularity (a pseudo-random prefix of its sectors lands, possibly none or all: sectors are
//! the unit a disk writes atomically); a cut read fails. The landing sectors are written into the
//! image in place, so no scratch block is needed. `flush` reaches no medium: the volatile write
//! cache of a real disk or of the page cache is modelled above the device, by
//! [`Unflushed`](crate::harness::unflushed::Unflushed) (feature `std`).
//!
//! Invariant: the image is changed only by writes that reached the medium; nothing is read from
//! or written to it while the power is lost.

use vde_nostd::{BlockDevice, BlockNo};

use super::{FlashStats, OpKind, SimError, TearMode};
use crate::fault::{Compose, FaultError, FaultInjector, Landed};

/// The image: a fault-free RAM device of whole blocks, written in place.
struct RamImage<'m> {
    mem: &'m mut [u8],
    bs: usize,
}

impl RamImage<'_> {
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

impl BlockDevice for RamImage<'_> {
    type Error = SimError;
    fn block_size(&self) -> usize {
        self.bs
    }
    fn block_count(&self) -> u64 {
        (self.mem.len() / self.bs) as u64
    }
    fn read_block(&mut self, b: BlockNo, buf: &mut [u8]) -> Result<(), SimError> {
        let r = self.range(b, buf.len())?;
        buf.copy_from_slice(self.mem.get(r).ok_or(SimError::OutOfBounds)?);
        Ok(())
    }
    fn reads_partial(&self) -> bool {
        true
    }
    fn read_at(&mut self, b: BlockNo, offset: usize, buf: &mut [u8]) -> Result<(), SimError> {
        let r = self.range(b, self.bs)?;
        let end = offset.checked_add(buf.len()).filter(|e| *e <= self.bs);
        let end = end.ok_or(SimError::OutOfBounds)?;
        let src = self.mem.get(r.start + offset..r.start + end);
        buf.copy_from_slice(src.ok_or(SimError::OutOfBounds)?);
        Ok(())
    }
    fn write_block(&mut self, b: BlockNo, buf: &[u8]) -> Result<(), SimError> {
        let r = self.range(b, buf.len())?;
        let dst = self.mem.get_mut(r).ok_or(SimError::OutOfBounds)?;
        dst.copy_from_slice(buf);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), SimError> {
        Ok(())
    }
    fn append(&mut self, b: BlockNo, offset: usize, data: &[u8]) -> Result<(), SimError> {
        let r = self.range(b, self.bs)?;
        let end = offset
            .checked_add(data.len())
            .filter(|e| *e <= self.bs)
            .ok_or(SimError::NotAligned)?;
        let dst = self.mem.get_mut(r.start + offset..r.start + end);
        dst.ok_or(SimError::OutOfBounds)?.copy_from_slice(data);
        Ok(())
    }
    fn programs_in_place(&self) -> bool {
        true
    }
    fn program(&mut self, b: BlockNo, offset: usize, data: &[u8]) -> Result<(), SimError> {
        self.append(b, offset, data)
    }
}

/// Lands the sectors of a cut write straight into the image (a RAM write of any range is in
/// place), so [`SimRam`] needs no scratch block.
struct InPlace;

impl<'m> Compose<RamImage<'m>> for InPlace {
    fn compose(
        &mut self,
        dev: &mut RamImage<'m>,
        block: BlockNo,
        landed: Landed<'_>,
    ) -> Result<(), SimError> {
        for (at, bytes) in landed {
            dev.append(block, at, bytes)?;
        }
        Ok(())
    }
}

/// The device's error, or [`SimError::PowerLost`].
fn flat(e: FaultError<SimError>) -> SimError {
    match e {
        FaultError::PowerLost => SimError::PowerLost,
        FaultError::Device(e) => e,
    }
}

/// A RAM disk over caller memory with power-cut injection.
pub struct SimRam<'m> {
    dev: FaultInjector<'m, RamImage<'m>, InPlace>,
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
        let image = RamImage {
            mem,
            bs: block_size,
        };
        Ok(SimRam {
            dev: FaultInjector::with_composer(image, InPlace, seed),
        })
    }

    /// The image.
    pub fn bytes(&self) -> &[u8] {
        self.dev.inner().mem
    }
    /// The image, mutably (to restore a snapshot).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.dev.inner_mut().mem
    }
    /// Sets the seed of the tear randomness and the tear mode ([`TearMode::Scattered`] tears
    /// each sector independently instead of a prefix).
    pub fn set_faults(&mut self, seed: u64, tear: TearMode) {
        self.dev.set_faults(seed, tear);
    }
    /// Operations (reads and writes) that reached the medium.
    pub fn op_count(&self) -> u64 {
        self.dev.op_count()
    }
    /// Lets `after_ops` operations complete and cuts the next one.
    pub fn arm_power_cut(&mut self, after_ops: u64) {
        self.dev.arm_power_cut(after_ops);
    }
    /// Whether the power is lost.
    pub fn power_lost(&self) -> bool {
        self.dev.power_lost()
    }
    /// The kind of operation the cut interrupted ([`OpKind::Program`] for a write).
    pub fn cut_kind(&self) -> Option<OpKind> {
        self.dev.cut_kind()
    }
    /// Restores power; the image stays as the cut left it.
    pub fn reboot(&mut self) {
        self.dev.reboot();
    }
    /// Counters (a write counts as a program).
    pub fn stats(&self) -> FlashStats {
        self.dev.stats()
    }
    /// Zeroes the counters.
    pub fn reset_stats(&mut self) {
        self.dev.reset_stats();
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for SimRam<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "SimRam {{ bytes: {}, block_size: {}, faults: {} }}",
            self.dev.inner().mem.len(),
            self.dev.inner().bs,
            self.dev
        )
    }
}

/// The [`FaultInjector`]'s device, its errors flattened into [`SimError`].
impl BlockDevice for SimRam<'_> {
    type Error = SimError;
    fn block_size(&self) -> usize {
        self.dev.block_size()
    }
    fn block_count(&self) -> u64 {
        self.dev.block_count()
    }
    fn read_block(&mut self, b: BlockNo, buf: &mut [u8]) -> Result<(), SimError> {
        self.dev.read_block(b, buf).map_err(flat)
    }
    fn reads_partial(&self) -> bool {
        self.dev.reads_partial()
    }
    /// A read like [`SimRam::read_block`]'s (one operation a cut can hit), of part of a block.
    fn read_at(&mut self, b: BlockNo, offset: usize, buf: &mut [u8]) -> Result<(), SimError> {
        self.dev.read_at(b, offset, buf).map_err(flat)
    }
    fn write_block(&mut self, b: BlockNo, buf: &[u8]) -> Result<(), SimError> {
        self.dev.write_block(b, buf).map_err(flat)
    }
    fn flush(&mut self) -> Result<(), SimError> {
        self.dev.flush().map_err(flat)
    }
    /// Writes the bytes in place; a cut tears the write at sector granularity like a block
    /// write (a prefix of the sectors it touches lands; bytes outside the range never change).
    fn append(&mut self, b: BlockNo, offset: usize, data: &[u8]) -> Result<(), SimError> {
        self.dev.append(b, offset, data).map_err(flat)
    }
    /// A RAM disk writes part of a block in place, torn like an append.
    fn programs_in_place(&self) -> bool {
        self.dev.programs_in_place()
    }
    fn program(&mut self, b: BlockNo, offset: usize, data: &[u8]) -> Result<(), SimError> {
        self.dev.program(b, offset, data).map_err(flat)
    }
    /// A hint, passed on (it fails while the power is lost).
    fn discard(&mut self, start: BlockNo, count: u64) -> Result<(), SimError> {
        self.dev.discard(start, count).map_err(flat)
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
