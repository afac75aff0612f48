//! [`FaultInjector`]: power-cut injection around any [`BlockDevice`] (a RAM disk, a file, a
//! user's own driver), in the manner of smoltcp's `phy::FaultInjector` (no_std, no alloc).
//!
//! Owns: the wrapper's power switch (operation counter and cut state), its [`FlashStats`], the
//! fault seed and [`TearMode`], and the way a cut write reaches the inner device (a
//! [`Compose`]r: by default [`Scratch`], one block of caller memory). [`Landed`] lists the
//! pieces of a cut write that land.
//!
//! Behaviour:
//! - Every read (`read_block`, `read_at`) and write (`write_block`, `append`, `program`) whose
//!   arguments keep the [`BlockDevice`] contract (block in range, a whole-block buffer for a
//!   block operation, a byte range inside the block) is one operation: counted in
//!   [`FaultInjector::op_count`] and [`FaultInjector::stats`] (a write as a program), then
//!   passed to the inner device. Other calls are passed on uncounted, for the inner device to
//!   refuse. `flush` and `discard` are passed on and not counted.
//! - [`FaultInjector::arm_power_cut`]`(k)` lets `k` operations complete and cuts the next. A
//!   cut read fails and leaves the buffer as it was. A cut write is torn at [`SECTOR`]
//!   (512-byte) granularity: its range is split at the device's sector boundaries and a
//!   pseudo-random prefix of the pieces lands (possibly none or all), or, with
//!   [`TearMode::Scattered`], each piece independently; the rest of the block keeps the inner
//!   device's old content. The damage depends only on the seed and the operation number, so
//!   every cut point is reproducible.
//! - After a cut every call but the geometry queries fails with [`FaultError::PowerLost`] until
//!   [`FaultInjector::reboot`].
//!
//! Invariants: while the power is lost the inner device is not called; a cut write changes no
//! byte outside its range, and inside it only whole pieces, each either old or new.

use core::fmt;
use core::marker::PhantomData;

use vde_nostd::{BlockDevice, BlockNo};

use crate::sim::{mix, FlashStats, OpKind, PowerSwitch, TearMode, XorShift64};

/// The granularity of a torn write: the sector a disk writes atomically.
pub const SECTOR: usize = 512;

/// Errors of a [`FaultInjector`]: the inner device's, or a power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FaultError<E> {
    /// Power was cut: the operation did not (fully) happen. Every operation fails this way until
    /// [`FaultInjector::reboot`].
    PowerLost,
    /// The inner device failed.
    Device(E),
}

impl<E> FaultError<E> {
    /// Whether this is a power loss.
    pub fn is_power_lost(&self) -> bool {
        matches!(self, FaultError::PowerLost)
    }
}

impl<E: fmt::Display> fmt::Display for FaultError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultError::PowerLost => f.write_str("power lost"),
            FaultError::Device(e) => write!(f, "device: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl<E: fmt::Debug + fmt::Display> std::error::Error for FaultError<E> {}

/// Why [`FaultInjector::new`] refused its scratch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ScratchTooSmall {
    /// Bytes needed: one block of the inner device.
    pub need: usize,
    /// Bytes given.
    pub got: usize,
}

impl fmt::Display for ScratchTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "scratch of {} bytes, a block needs {}",
            self.got, self.need
        )
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ScratchTooSmall {}

/// The pieces of a cut write that land, in address order: `(offset in the block, bytes)`.
///
/// The write's range is split at [`SECTOR`] boundaries of the block; which pieces land is drawn
/// from the cut's randomness as the iterator advances (one draw for the prefix length, and in
/// [`TearMode::Scattered`] one more per piece), so a [`Compose`]r should drain it.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Landed<'a> {
    data: &'a [u8],
    offset: usize,
    first: usize,
    pieces: usize,
    prefix: usize,
    next: usize,
    at: usize,
    tear: TearMode,
    rng: XorShift64,
}

impl<'a> Landed<'a> {
    /// The landing pieces of `data` written at byte `offset` of a block, torn per `tear` with
    /// `rng`.
    fn new(offset: usize, data: &'a [u8], tear: TearMode, mut rng: XorShift64) -> Self {
        // Sector boundaries of the device, seen from the start of the range.
        let first = SECTOR - offset % SECTOR;
        let pieces = 1 + data.len().saturating_sub(first).div_ceil(SECTOR);
        let prefix = usize::try_from(rng.below(pieces as u64 + 1)).unwrap_or(0);
        Landed {
            data,
            offset,
            first,
            pieces,
            prefix,
            next: 0,
            at: 0,
            tear,
            rng,
        }
    }
}

impl<'a> Iterator for Landed<'a> {
    type Item = (usize, &'a [u8]);
    fn next(&mut self) -> Option<(usize, &'a [u8])> {
        while self.next < self.pieces {
            let i = self.next;
            self.next += 1;
            let len = if i == 0 { self.first } else { SECTOR };
            let n = len.min(self.data.len().saturating_sub(self.at));
            let lands = match self.tear {
                TearMode::Prefix => i < self.prefix,
                TearMode::Scattered => self.rng.below(2) == 0,
            };
            let at = self.at;
            self.at += n;
            if lands && n > 0 {
                if let Some(bytes) = self.data.get(at..at + n) {
                    return Some((self.offset + at, bytes));
                }
            }
        }
        None
    }
}

/// How the landing pieces of a cut write reach the inner device.
pub trait Compose<D: BlockDevice> {
    /// Leaves block `block` of `dev` with its old content except the pieces of `landed`, which
    /// hold their new bytes. Called while the injector's power is already lost.
    fn compose(&mut self, dev: &mut D, block: BlockNo, landed: Landed<'_>) -> Result<(), D::Error>;
}

/// One block of caller memory in which a cut write is composed: the inner device's old block,
/// the landing pieces copied over it, written back whole. Works over any device. Made by
/// [`FaultInjector::new`], which checks it holds a block.
pub struct Scratch<'m>(&'m mut [u8]);

impl fmt::Debug for Scratch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scratch({} bytes)", self.0.len())
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Scratch<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Scratch({} bytes)", self.0.len())
    }
}

impl<D: BlockDevice> Compose<D> for Scratch<'_> {
    /// Nothing is read or written when no piece lands.
    fn compose(&mut self, dev: &mut D, block: BlockNo, landed: Landed<'_>) -> Result<(), D::Error> {
        let mut landed = landed.peekable();
        if landed.peek().is_none() {
            return Ok(());
        }
        let Some(buf) = self.0.get_mut(..dev.block_size()) else {
            return Ok(());
        };
        dev.read_block(block, buf)?;
        for (at, bytes) in landed {
            if let Some(d) = buf.get_mut(at..at + bytes.len()) {
                d.copy_from_slice(bytes);
            }
        }
        dev.write_block(block, buf)
    }
}

/// A [`BlockDevice`] wrapper that counts operations and cuts the power at a chosen one (see the
/// [module docs](self)). `C` says how a cut write reaches the inner device; the default,
/// [`Scratch`], composes it in one block of caller memory.
pub struct FaultInjector<'m, D, C = Scratch<'m>> {
    inner: D,
    compose: C,
    power: PowerSwitch,
    stats: FlashStats,
    seed: u64,
    tear: TearMode,
    _mem: PhantomData<&'m mut [u8]>,
}

impl<'m, D: BlockDevice> FaultInjector<'m, D, Scratch<'m>> {
    /// Wraps `inner`, powered, nothing counted, no cut armed, tears of [`TearMode::Prefix`]
    /// drawn from `seed`. `scratch` must hold a block of `inner`, in which a cut write is
    /// composed.
    pub fn new(inner: D, scratch: &'m mut [u8], seed: u64) -> Result<Self, ScratchTooSmall> {
        let need = inner.block_size();
        if scratch.len() < need {
            return Err(ScratchTooSmall {
                need,
                got: scratch.len(),
            });
        }
        Ok(Self::with_composer(inner, Scratch(scratch), seed))
    }
}

impl<D, C> FaultInjector<'_, D, C> {
    /// Wraps `inner` like [`FaultInjector::new`], with `compose` landing cut writes (for a
    /// device that can write a piece of a block in place, no scratch is needed).
    pub fn with_composer(inner: D, compose: C, seed: u64) -> Self {
        FaultInjector {
            inner,
            compose,
            power: PowerSwitch::new(),
            stats: FlashStats::default(),
            seed,
            tear: TearMode::Prefix,
            _mem: PhantomData,
        }
    }
    /// The inner device.
    pub fn inner(&self) -> &D {
        &self.inner
    }
    /// The inner device, mutably (its operations are not counted and never cut).
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }
    /// The inner device, unwrapped.
    pub fn into_inner(self) -> D {
        self.inner
    }
    /// Sets the seed of the tear randomness and the tear mode ([`TearMode::Scattered`] tears
    /// each sector independently instead of a prefix).
    pub fn set_faults(&mut self, seed: u64, tear: TearMode) {
        self.seed = seed;
        self.tear = tear;
    }
    /// Operations (reads and writes) that reached the inner device since creation, including a
    /// cut one. Never reset.
    pub fn op_count(&self) -> u64 {
        self.power.op_count()
    }
    /// Lets `after_ops` operations complete and cuts the next one (`0` cuts the very next).
    /// Replaces an earlier armed cut; ignored while the power is lost.
    pub fn arm_power_cut(&mut self, after_ops: u64) {
        self.power.arm(after_ops);
    }
    /// Cancels an armed cut (no effect once the power is lost).
    pub fn disarm_power_cut(&mut self) {
        self.power.disarm();
    }
    /// Operations still to complete before the armed cut, if one is armed.
    pub fn power_cut_armed(&self) -> Option<u64> {
        self.power.armed()
    }
    /// Whether the power is lost.
    pub fn power_lost(&self) -> bool {
        self.power.lost()
    }
    /// The kind of operation the cut interrupted ([`OpKind::Program`] for a write), until
    /// [`reboot`](Self::reboot).
    pub fn cut_kind(&self) -> Option<OpKind> {
        self.power.cut_kind()
    }
    /// Restores power, no cut armed; the inner device stays as the cut left it.
    pub fn reboot(&mut self) {
        self.power.reboot();
    }
    /// Counters since creation or the last [`reset_stats`](Self::reset_stats) (a write counts as
    /// a program).
    pub fn stats(&self) -> FlashStats {
        self.stats
    }
    /// Zeroes the counters (not [`op_count`](Self::op_count)).
    pub fn reset_stats(&mut self) {
        self.stats = FlashStats::default();
    }

    fn powered<E>(&self) -> Result<(), FaultError<E>> {
        if self.power.lost() {
            Err(FaultError::PowerLost)
        } else {
            Ok(())
        }
    }
    /// Counts a read of `bytes`; whether it is cut.
    fn begin_read(&mut self, bytes: usize) -> bool {
        let (_, cut) = self.power.begin(OpKind::Read);
        self.stats.reads = self.stats.reads.saturating_add(1);
        self.stats.read_bytes = self.stats.read_bytes.saturating_add(bytes as u64);
        cut
    }
    /// Counts a write of `bytes`; the cut's randomness if it is cut.
    fn begin_write(&mut self, bytes: usize) -> Option<XorShift64> {
        let (op, cut) = self.power.begin(OpKind::Program);
        self.stats.programs = self.stats.programs.saturating_add(1);
        self.stats.program_bytes = self.stats.program_bytes.saturating_add(bytes as u64);
        cut.then(|| XorShift64::new(mix(self.seed, op)))
    }
}

impl<D: BlockDevice, C> FaultInjector<'_, D, C> {
    /// Whether a block operation's arguments keep the contract.
    fn whole(&self, b: BlockNo, len: usize) -> bool {
        b.0 < self.inner.block_count() && len == self.inner.block_size()
    }
    /// Whether a byte range's arguments keep the contract.
    fn inside(&self, b: BlockNo, offset: usize, len: usize) -> bool {
        b.0 < self.inner.block_count()
            && offset
                .checked_add(len)
                .is_some_and(|e| e <= self.inner.block_size())
    }
}

impl<D: BlockDevice, C: Compose<D>> FaultInjector<'_, D, C> {
    /// Tears the cut write of `data` at `offset` of `b`.
    fn tear(
        &mut self,
        b: BlockNo,
        offset: usize,
        data: &[u8],
        rng: XorShift64,
    ) -> Result<(), FaultError<D::Error>> {
        let landed = Landed::new(offset, data, self.tear, rng);
        self.compose
            .compose(&mut self.inner, b, landed)
            .map_err(FaultError::Device)?;
        Err(FaultError::PowerLost)
    }
}

impl<D: fmt::Debug, C> fmt::Debug for FaultInjector<'_, D, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultInjector")
            .field("inner", &self.inner)
            .field("stats", &self.stats)
            .field("ops", &self.power.op_count())
            .field("power", &self.power.power)
            .field("seed", &self.seed)
            .field("tear", &self.tear)
            .finish()
    }
}

#[cfg(feature = "defmt")]
impl<D, C> defmt::Format for FaultInjector<'_, D, C> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "FaultInjector {{ stats: {}, ops: {}, power: {} }}",
            self.stats,
            self.power.op_count(),
            self.power.power
        )
    }
}

impl<D: BlockDevice, C: Compose<D>> BlockDevice for FaultInjector<'_, D, C> {
    type Error = FaultError<D::Error>;
    fn block_size(&self) -> usize {
        self.inner.block_size()
    }
    fn block_count(&self) -> u64 {
        self.inner.block_count()
    }
    fn read_block(&mut self, b: BlockNo, buf: &mut [u8]) -> Result<(), Self::Error> {
        self.powered()?;
        if self.whole(b, buf.len()) && self.begin_read(buf.len()) {
            return Err(FaultError::PowerLost);
        }
        self.inner.read_block(b, buf).map_err(FaultError::Device)
    }
    fn reads_partial(&self) -> bool {
        self.inner.reads_partial()
    }
    /// A read like [`read_block`](Self::read_block)'s (one operation a cut can hit).
    fn read_at(&mut self, b: BlockNo, offset: usize, buf: &mut [u8]) -> Result<(), Self::Error> {
        self.powered()?;
        if self.inside(b, offset, buf.len()) && self.begin_read(buf.len()) {
            return Err(FaultError::PowerLost);
        }
        self.inner
            .read_at(b, offset, buf)
            .map_err(FaultError::Device)
    }
    fn write_block(&mut self, b: BlockNo, buf: &[u8]) -> Result<(), Self::Error> {
        self.powered()?;
        if self.whole(b, buf.len()) {
            if let Some(rng) = self.begin_write(buf.len()) {
                return self.tear(b, 0, buf, rng);
            }
        }
        self.inner.write_block(b, buf).map_err(FaultError::Device)
    }
    /// Passed on, not counted (the write cache of a disk is modelled above the device, by
    /// [`Unflushed`](crate::harness::unflushed::Unflushed) with feature `std`).
    fn flush(&mut self) -> Result<(), Self::Error> {
        self.powered()?;
        self.inner.flush().map_err(FaultError::Device)
    }
    fn append_unit(&self) -> usize {
        self.inner.append_unit()
    }
    /// A write; a cut tears it over its byte range like a block write (bytes outside the range
    /// never change).
    fn append(&mut self, b: BlockNo, offset: usize, data: &[u8]) -> Result<(), Self::Error> {
        self.powered()?;
        if self.inside(b, offset, data.len()) {
            if let Some(rng) = self.begin_write(data.len()) {
                return self.tear(b, offset, data, rng);
            }
        }
        self.inner
            .append(b, offset, data)
            .map_err(FaultError::Device)
    }
    fn programs_in_place(&self) -> bool {
        self.inner.programs_in_place()
    }
    /// A write, torn like an append.
    fn program(&mut self, b: BlockNo, offset: usize, data: &[u8]) -> Result<(), Self::Error> {
        self.powered()?;
        if self.inside(b, offset, data.len()) {
            if let Some(rng) = self.begin_write(data.len()) {
                return self.tear(b, offset, data, rng);
            }
        }
        self.inner
            .program(b, offset, data)
            .map_err(FaultError::Device)
    }
    /// Passed on, not counted.
    fn discard(&mut self, start: BlockNo, count: u64) -> Result<(), Self::Error> {
        self.powered()?;
        self.inner.discard(start, count).map_err(FaultError::Device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimRam;
    use std::vec;
    use std::vec::Vec;
    use vde_nostd::device::RamError;
    use vde_nostd::RamDevice;

    const BS: usize = 4096;

    /// Which 512-byte sectors of `block` hold `new` (the others must hold `old`).
    fn landed_sectors(block: &[u8], old: u8, new: u8) -> Vec<bool> {
        block
            .chunks(SECTOR)
            .map(|s| {
                let is_new = s.iter().all(|b| *b == new);
                assert!(is_new || s.iter().all(|b| *b == old), "a sector is mixed");
                is_new
            })
            .collect()
    }

    #[test]
    fn a_cut_at_op_k_fails_it_and_everything_after_until_reboot() {
        let mut mem = vec![0u8; BS * 4];
        let mut scratch = vec![0u8; BS];
        let ram = RamDevice::new(&mut mem, BS).unwrap();
        let mut f = FaultInjector::new(ram, &mut scratch, 7).unwrap();
        let mut buf = vec![0u8; BS];
        f.write_block(BlockNo(0), &[1; BS]).unwrap();
        f.arm_power_cut(2);
        assert_eq!(f.power_cut_armed(), Some(2));
        // Reads before the cut pass through.
        f.read_block(BlockNo(0), &mut buf).unwrap();
        assert_eq!(buf, [1; BS]);
        f.read_at(BlockNo(0), 64, &mut buf[..128]).unwrap();
        assert!(!f.power_lost());
        // The third operation is cut: a read fails and leaves the buffer alone.
        buf.fill(9);
        assert_eq!(
            f.read_block(BlockNo(0), &mut buf),
            Err(FaultError::PowerLost)
        );
        assert_eq!(buf, [9; BS]);
        assert!(f.power_lost());
        assert_eq!(f.cut_kind(), Some(OpKind::Read));
        // Everything fails, uncounted, and the inner device is left alone.
        assert!(f
            .write_block(BlockNo(1), &[2; BS])
            .unwrap_err()
            .is_power_lost());
        assert_eq!(
            f.append(BlockNo(1), 0, &[2; 64]),
            Err(FaultError::PowerLost)
        );
        assert_eq!(
            f.program(BlockNo(1), 0, &[2; 64]),
            Err(FaultError::PowerLost)
        );
        assert_eq!(
            f.read_at(BlockNo(0), 0, &mut buf[..64]),
            Err(FaultError::PowerLost)
        );
        assert_eq!(f.flush(), Err(FaultError::PowerLost));
        assert_eq!(f.discard(BlockNo(0), 1), Err(FaultError::PowerLost));
        f.arm_power_cut(0);
        assert!(f.power_lost(), "arming while the power is lost is ignored");
        assert_eq!(f.op_count(), 4);
        assert_eq!(f.inner().bytes()[BS..2 * BS], [0; BS]);
        // Reboot: the device works again, as the cut left it.
        f.reboot();
        assert_eq!(f.cut_kind(), None);
        f.read_block(BlockNo(1), &mut buf).unwrap();
        assert_eq!(buf, [0; BS]);
        f.flush().unwrap();
        assert_eq!(f.op_count(), 5);
        let s = f.stats();
        assert_eq!((s.reads, s.programs), (4, 1));
        assert_eq!(s.read_bytes, (3 * BS + 128) as u64);
        assert_eq!(s.program_bytes, BS as u64);
        f.reset_stats();
        assert_eq!(f.stats(), FlashStats::default());
        assert_eq!(f.op_count(), 5);
    }

    #[test]
    fn a_cut_write_lands_a_prefix_of_its_sectors_over_the_old_content() {
        let mut prefixes = Vec::new();
        for seed in 0..40 {
            let mut mem = vec![0xAAu8; BS * 2];
            let mut scratch = vec![0u8; BS];
            let ram = RamDevice::new(&mut mem, BS).unwrap();
            let mut f = FaultInjector::new(ram, &mut scratch, seed).unwrap();
            f.arm_power_cut(0);
            assert_eq!(
                f.write_block(BlockNo(1), &[0x55; BS]),
                Err(FaultError::PowerLost)
            );
            assert_eq!(f.cut_kind(), Some(OpKind::Program));
            let bytes = f.inner().bytes();
            assert_eq!(bytes[..BS], [0xAA; BS], "another block changed");
            let landed = landed_sectors(&bytes[BS..], 0xAA, 0x55);
            let p = landed.iter().take_while(|l| **l).count();
            assert!(landed[p..].iter().all(|l| !l), "not a prefix: {landed:?}");
            prefixes.push(p);
        }
        assert!(prefixes.contains(&0) || prefixes.contains(&8));
        assert!(prefixes.iter().any(|p| (1..8).contains(p)));
    }

    #[test]
    fn scattered_tears_mix_sectors_and_appends_tear_over_their_range() {
        let mut mixed = false;
        for seed in 0..40 {
            let mut mem = vec![0xAAu8; BS];
            let mut scratch = vec![0u8; BS];
            let ram = RamDevice::new(&mut mem, BS).unwrap();
            let mut f = FaultInjector::new(ram, &mut scratch, 1).unwrap();
            f.set_faults(seed, TearMode::Scattered);
            f.arm_power_cut(0);
            assert!(f.write_block(BlockNo(0), &[0x55; BS]).is_err());
            let landed = landed_sectors(f.inner().bytes(), 0xAA, 0x55);
            let p = landed.iter().take_while(|l| **l).count();
            mixed |= landed[p..].iter().any(|l| *l);
        }
        assert!(mixed, "no scattered tear left a gap");
        // An append from byte 300 to 1800 has pieces 300..512, 512..1024, 1024..1536, 1536..1800.
        let mut seen = Vec::new();
        for seed in 0..40 {
            let mut mem = vec![0xAAu8; BS];
            let mut scratch = vec![0u8; BS];
            let ram = RamDevice::new(&mut mem, BS).unwrap();
            let mut f = FaultInjector::new(ram, &mut scratch, seed).unwrap();
            f.arm_power_cut(0);
            assert!(f.append(BlockNo(0), 300, &[0x55; 1500]).is_err());
            let b = f.inner().bytes();
            assert!(b[..300].iter().chain(&b[1800..]).all(|x| *x == 0xAA));
            let pieces = [300..512, 512..1024, 1024..1536, 1536..1800];
            let landed: Vec<bool> = pieces
                .iter()
                .map(|r| {
                    let s = &b[r.clone()];
                    assert!(s.iter().all(|x| *x == 0x55) || s.iter().all(|x| *x == 0xAA));
                    s[0] == 0x55
                })
                .collect();
            let p = landed.iter().take_while(|l| **l).count();
            assert!(landed[p..].iter().all(|l| !l));
            seen.push(p);
        }
        assert!(seen.iter().any(|p| (1..4).contains(p)));
    }

    #[test]
    fn arguments_outside_the_contract_pass_uncounted_and_scratch_is_checked() {
        let mut mem = vec![0u8; BS * 2];
        let mut small = vec![0u8; BS - 1];
        let ram = RamDevice::new(&mut mem, BS).unwrap();
        let e = FaultInjector::new(ram, &mut small, 1).err();
        assert_eq!(
            e,
            Some(ScratchTooSmall {
                need: BS,
                got: BS - 1
            })
        );
        let ram = RamDevice::new(&mut mem, BS).unwrap();
        let mut scratch = vec![0u8; BS];
        let mut f = FaultInjector::new(ram, &mut scratch, 1).unwrap();
        f.arm_power_cut(0);
        assert_eq!(
            f.write_block(BlockNo(2), &[0; BS]),
            Err(FaultError::Device(RamError::OutOfRange))
        );
        assert_eq!(
            f.append(BlockNo(0), BS - 10, &[0; 20]),
            Err(FaultError::Device(RamError::BadLength))
        );
        assert_eq!(f.op_count(), 0);
        assert_eq!(f.power_cut_armed(), Some(0));
    }

    #[test]
    fn a_sim_ram_tears_as_an_injector_over_any_device_does() {
        for tear in [TearMode::Prefix, TearMode::Scattered] {
            for seed in 0..20u64 {
                for (offset, len) in [(0, BS), (300, 1500), (1024, 512), (0, 64)] {
                    let mut a = vec![0xAAu8; BS * 2];
                    let mut b = a.clone();
                    let mut scratch = vec![0u8; BS];
                    let mut sim = SimRam::new(&mut a, BS, seed).unwrap();
                    let ram = RamDevice::new(&mut b, BS).unwrap();
                    let mut f = FaultInjector::new(ram, &mut scratch, seed).unwrap();
                    sim.set_faults(seed, tear);
                    f.set_faults(seed, tear);
                    let data = vec![0x55u8; len];
                    for _ in 0..3 {
                        sim.write_block(BlockNo(0), &[0x11; BS]).unwrap();
                        f.write_block(BlockNo(0), &[0x11; BS]).unwrap();
                    }
                    sim.arm_power_cut(0);
                    f.arm_power_cut(0);
                    let r = if len == BS {
                        (
                            sim.write_block(BlockNo(1), &data),
                            f.write_block(BlockNo(1), &data),
                        )
                    } else {
                        (
                            sim.append(BlockNo(1), offset, &data),
                            f.append(BlockNo(1), offset, &data),
                        )
                    };
                    assert_eq!(r.0, Err(crate::SimError::PowerLost));
                    assert_eq!(r.1, Err(FaultError::PowerLost));
                    assert_eq!(sim.bytes(), f.inner().bytes(), "{tear:?} {seed} {offset}");
                    assert_eq!(sim.stats(), f.stats());
                }
            }
        }
    }
}
