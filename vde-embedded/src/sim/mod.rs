//! A simulated NOR flash with operation counters, wear tracking and power-cut injection.
//!
//! Owns: [`SimFlash`], which implements `embedded-storage`'s [`ReadNorFlash`] and [`NorFlash`]
//! over storage handed in by the caller (a `&mut [u8]` for the content and a `&mut [u32]` for one
//! erase counter per erase sector), so it needs neither `std` nor a heap and runs on the
//! firmware's target as well as in tests. Geometry is fixed by the const generics `READ`,
//! `WRITE` and `ERASE` (the traits' associated consts); [`parts`] has presets of real parts.
//!
//! Flash rules enforced (invariants of the content slice):
//! - erased = `0xFF`; an erase sets a whole `ERASE`-aligned sector to `0xFF`;
//! - a program only turns 1 bits into 0 bits; programming a byte that is not `0xFF` is refused
//!   with [`SimError::ProgramOverProgrammed`] before anything changes, unless
//!   [`SimConfig::multi_write`] is set (then the result is the AND of old and new);
//! - offsets and lengths must be multiples of `READ` / `WRITE` / `ERASE` ([`SimError::NotAligned`])
//!   and inside the storage ([`SimError::OutOfBounds`]).
//!
//! Counters: every operation that reaches the medium (valid arguments, power on) is counted in
//! [`FlashStats`] and in [`SimFlash::op_count`]; rejected operations are not. Each erased sector
//! adds one to its wear counter.
//!
//! Power cuts: [`SimFlash::arm_power_cut`]`(k)` lets `k` operations complete and cuts the next
//! one. A cut read returns an error; a cut program leaves a torn result ([`TearMode`]) that still
//! obeys the flash rules (only bits the program would clear may be cleared); a cut erase fully
//! erases the sectors of its range before a chosen one, leaves that one with arbitrary content,
//! and leaves the rest untouched. The damage is pseudo-random but depends only on the seed and
//! the operation number, so every cut point is reproducible. After a cut every operation fails
//! with [`SimError::PowerLost`] until [`SimFlash::reboot`].

use core::fmt;
use core::ops::Range;

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

pub mod mcu;
pub mod parts;
mod power;
mod ram;
mod rng;

pub(crate) use power::PowerSwitch;
pub(crate) use rng::mix;

pub use mcu::{McuError, McuFlash, McuRules, McuSetupError};
pub use parts::{FlashPart, FlashTiming};
pub use ram::SimRam;
pub use rng::XorShift64;

/// The erased value of a flash byte.
pub const ERASED: u8 = 0xFF;

/// Errors of [`SimFlash`] operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SimError {
    /// Offset or length is not a multiple of the operation's unit.
    NotAligned,
    /// The range reaches past the end of the flash (or `from > to` for an erase).
    OutOfBounds,
    /// A program targets a byte that is not erased (`0xFF`) and multi-write is off.
    ProgramOverProgrammed {
        /// Flash address of the first such byte.
        offset: u32,
    },
    /// Power was cut: the operation did not (fully) happen. Every operation fails this way until
    /// [`SimFlash::reboot`].
    PowerLost,
}

impl NorFlashError for SimError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            SimError::NotAligned => NorFlashErrorKind::NotAligned,
            SimError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            SimError::ProgramOverProgrammed { .. } | SimError::PowerLost => {
                NorFlashErrorKind::Other
            }
        }
    }
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::NotAligned => f.write_str("flash access not aligned"),
            SimError::OutOfBounds => f.write_str("flash access out of bounds"),
            SimError::ProgramOverProgrammed { offset } => {
                write!(f, "program over programmed byte at {offset:#x}")
            }
            SimError::PowerLost => f.write_str("power lost"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SimError {}

/// Why a [`SimFlash`] could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SimSetupError {
    /// `READ`, `WRITE` or `ERASE` is zero, or `ERASE` is not a multiple of `READ` and `WRITE`.
    BadGeometry,
    /// The content slice is not a whole number of erase sectors (or is empty).
    NotSectorMultiple {
        /// Length of the content slice.
        len: usize,
    },
    /// The content slice is larger than a `u32` flash address can reach.
    TooLarge {
        /// Length of the content slice.
        len: usize,
    },
    /// The wear slice has fewer entries than there are erase sectors.
    WearTooShort {
        /// Entries needed (one per erase sector).
        need: usize,
        /// Entries given.
        got: usize,
    },
    /// The [`FlashPart`]'s geometry differs from the type's `READ` / `WRITE` / `ERASE`.
    PartMismatch,
    /// The content slice is larger than the [`FlashPart`]'s capacity.
    LargerThanPart {
        /// Length of the content slice.
        len: usize,
        /// The part's capacity.
        capacity: usize,
    },
}

impl fmt::Display for SimSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimSetupError::BadGeometry => f.write_str("bad read/write/erase sizes"),
            SimSetupError::NotSectorMultiple { len } => {
                write!(f, "{len} bytes is not a whole number of erase sectors")
            }
            SimSetupError::TooLarge { len } => write!(f, "{len} bytes exceeds 4 GiB"),
            SimSetupError::WearTooShort { need, got } => {
                write!(f, "wear slice has {got} entries, {need} needed")
            }
            SimSetupError::PartMismatch => f.write_str("part geometry differs from the type's"),
            SimSetupError::LargerThanPart { len, capacity } => {
                write!(f, "{len} bytes exceeds the part's {capacity}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SimSetupError {}

/// How a program cut by a power loss is torn. In both modes only bits that the program would
/// clear can be cleared; no other byte changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TearMode {
    /// A prefix of the bytes (pseudo-random length, possibly none or all) is programmed, the next
    /// byte is partly programmed, the rest is untouched: a program proceeding in address order.
    #[default]
    Prefix,
    /// Every byte is independently left old, programmed, or partly programmed.
    Scattered,
}

/// Behaviour of a [`SimFlash`] beyond its geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SimConfig {
    /// Allow programming over programmed bytes (result: AND of old and new).
    pub multi_write: bool,
    /// Timings used by [`SimFlash::busy_time_ns`].
    pub timing: FlashTiming,
    /// Seed of the fault-injection randomness.
    pub seed: u64,
    /// How a cut program is torn.
    pub tear: TearMode,
    /// Weak bits: a byte that a cut program left partly programmed reads differently on every
    /// read (each bit it was to clear reads 0 or 1 at random) until its sector is erased, as a
    /// marginal NOR cell does.
    pub weak_bits: bool,
}

impl SimConfig {
    /// Strict programs, no timings, [`TearMode::Prefix`], the given seed.
    pub const fn new(seed: u64) -> Self {
        SimConfig {
            multi_write: false,
            timing: FlashTiming::NONE,
            seed,
            tear: TearMode::Prefix,
            weak_bits: false,
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig::new(0)
    }
}

impl FlashPart {
    /// A [`SimConfig`] with this part's rules and timings and the given seed.
    pub const fn config(&self, seed: u64) -> SimConfig {
        SimConfig {
            multi_write: self.multi_write,
            timing: self.timing,
            seed,
            tear: TearMode::Prefix,
            weak_bits: false,
        }
    }
}

/// Operation counters of a [`SimFlash`]. Operations cut by a power loss are counted as issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FlashStats {
    /// Read calls.
    pub reads: u64,
    /// Bytes read.
    pub read_bytes: u64,
    /// Program (write) calls.
    pub programs: u64,
    /// Bytes programmed.
    pub program_bytes: u64,
    /// Timed program units touched (pages or words, see [`FlashTiming::program_unit`]).
    pub program_units: u64,
    /// Erase calls (each may cover several sectors).
    pub erase_calls: u64,
    /// Erase sectors erased (including one torn by a cut).
    pub erases: u64,
    /// Reads that returned at least one weak byte differently from what is stored
    /// ([`SimConfig::weak_bits`]).
    pub weak_reads: u64,
}

/// Summary of the per-sector erase counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct WearSummary {
    /// Number of erase sectors.
    pub sectors: usize,
    /// Fewest erases of any sector.
    pub min: u32,
    /// Most erases of any sector.
    pub max: u32,
    /// Erases over all sectors.
    pub total: u64,
}

/// Kind of a flash operation (for reporting which one a power cut interrupted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum OpKind {
    /// A read.
    Read,
    /// A program (write).
    Program,
    /// An erase.
    Erase,
}

/// An in-memory NOR flash of `READ`-byte reads, `WRITE`-byte programs and `ERASE`-byte sectors
/// over caller-provided storage. See the [module docs](self) for the rules it enforces.
pub struct SimFlash<'a, const READ: usize, const WRITE: usize, const ERASE: usize> {
    mem: &'a mut [u8],
    wear: &'a mut [u32],
    sectors: usize,
    config: SimConfig,
    stats: FlashStats,
    power: PowerSwitch,
    weak: [Weak; WEAK_SLOTS],
    weak_next: usize,
}

/// How many weak bytes a [`SimFlash`] remembers (the newest replace the oldest).
const WEAK_SLOTS: usize = 8;

/// A byte a cut program left partly programmed: where, what it was to become, and what it holds
/// (an entry whose byte no longer holds that value was overwritten and is void).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Weak {
    at: usize,
    meant: u8,
    held: u8,
    live: bool,
}

impl<const READ: usize, const WRITE: usize, const ERASE: usize> fmt::Debug
    for SimFlash<'_, READ, WRITE, ERASE>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFlash")
            .field("capacity", &self.mem.len())
            .field("read_size", &READ)
            .field("write_size", &WRITE)
            .field("erase_size", &ERASE)
            .field("config", &self.config)
            .field("stats", &self.stats)
            .field("ops", &self.power.op_count())
            .field("power", &self.power.power)
            .finish()
    }
}

#[cfg(feature = "defmt")]
impl<const READ: usize, const WRITE: usize, const ERASE: usize> defmt::Format
    for SimFlash<'_, READ, WRITE, ERASE>
{
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "SimFlash {{ capacity: {}, read: {}, write: {}, erase: {}, stats: {}, ops: {}, power: {} }}",
            self.mem.len(),
            READ,
            WRITE,
            ERASE,
            self.stats,
            self.power.op_count(),
            self.power.power
        )
    }
}

impl<'a, const READ: usize, const WRITE: usize, const ERASE: usize>
    SimFlash<'a, READ, WRITE, ERASE>
{
    /// A simulator over `mem` (its current content is the flash content: fill it with `0xFF` for
    /// a blank part) with one erase counter per sector in `wear` (extra entries are ignored; the
    /// counters are kept as given, so wear can carry over from an earlier simulator).
    pub fn new(
        mem: &'a mut [u8],
        wear: &'a mut [u32],
        config: SimConfig,
    ) -> Result<Self, SimSetupError> {
        if READ == 0
            || WRITE == 0
            || ERASE == 0
            || !ERASE.is_multiple_of(READ)
            || !ERASE.is_multiple_of(WRITE)
        {
            return Err(SimSetupError::BadGeometry);
        }
        let len = mem.len();
        if len == 0 || !len.is_multiple_of(ERASE) {
            return Err(SimSetupError::NotSectorMultiple { len });
        }
        if len as u64 > u64::from(u32::MAX) + 1 {
            return Err(SimSetupError::TooLarge { len });
        }
        let sectors = len / ERASE;
        if wear.len() < sectors {
            return Err(SimSetupError::WearTooShort {
                need: sectors,
                got: wear.len(),
            });
        }
        Ok(SimFlash {
            mem,
            wear,
            sectors,
            config,
            stats: FlashStats::default(),
            power: PowerSwitch::new(),
            weak: [Weak::default(); WEAK_SLOTS],
            weak_next: 0,
        })
    }

    /// Remembers a byte a cut program left partly programmed.
    fn mark_weak(&mut self, at: usize, meant: u8, held: u8) {
        if !self.config.weak_bits || held == meant || held == ERASED {
            return;
        }
        if let Some(w) = self.weak.get_mut(self.weak_next % WEAK_SLOTS) {
            *w = Weak {
                at,
                meant,
                held,
                live: true,
            };
        }
        self.weak_next = self.weak_next.wrapping_add(1);
    }

    /// A simulator of `part` (its rules and timings) over `mem`, which may be smaller than the
    /// part (the simulator models the part's first `mem.len()` bytes). Refuses a part whose
    /// geometry differs from the type's.
    pub fn from_part(
        mem: &'a mut [u8],
        wear: &'a mut [u32],
        part: &FlashPart,
        seed: u64,
    ) -> Result<Self, SimSetupError> {
        if (part.read_size, part.write_size, part.erase_size) != (READ, WRITE, ERASE) {
            return Err(SimSetupError::PartMismatch);
        }
        if mem.len() > part.capacity {
            return Err(SimSetupError::LargerThanPart {
                len: mem.len(),
                capacity: part.capacity,
            });
        }
        Self::new(mem, wear, part.config(seed))
    }

    /// Number of erase sectors.
    pub fn sector_count(&self) -> usize {
        self.sectors
    }

    /// The flash content (for snapshots and checks; reading it is not counted).
    pub fn bytes(&self) -> &[u8] {
        self.mem
    }

    /// The flash content, mutably (to restore a snapshot or inject corruption; not counted and
    /// not checked against the flash rules).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.mem
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The configuration, mutably (seed, tear mode, multi-write, timings may change at any time).
    pub fn config_mut(&mut self) -> &mut SimConfig {
        &mut self.config
    }

    /// The operation counters since creation or the last [`reset_stats`](Self::reset_stats).
    pub fn stats(&self) -> FlashStats {
        self.stats
    }

    /// Zeroes the operation counters (not the wear counters nor [`op_count`](Self::op_count)).
    pub fn reset_stats(&mut self) {
        self.stats = FlashStats::default();
    }

    /// Erases per sector, one entry per erase sector.
    pub fn wear(&self) -> &[u32] {
        self.wear.get(..self.sectors).unwrap_or(&[])
    }

    /// Minimum, maximum and total of the per-sector erase counters.
    pub fn wear_summary(&self) -> WearSummary {
        let w = self.wear();
        WearSummary {
            sectors: w.len(),
            min: w.iter().copied().min().unwrap_or(0),
            max: w.iter().copied().max().unwrap_or(0),
            total: w.iter().map(|&c| u64::from(c)).sum(),
        }
    }

    /// Zeroes the per-sector erase counters.
    pub fn reset_wear(&mut self) {
        self.wear.fill(0);
    }

    /// Typical flash busy time of the counted operations at the configured timings, in ns.
    pub fn busy_time_ns(&self) -> u64 {
        self.config.timing.busy_time_ns(&self.stats)
    }

    /// Operations that reached the medium since creation (reads, programs and erases with valid
    /// arguments while powered, including a cut one). Never reset: a harness reads it before and
    /// after a workload to learn how many cut points the workload has.
    pub fn op_count(&self) -> u64 {
        self.power.op_count()
    }

    /// Arms a power cut: the next `after_ops` operations complete, the one after them is cut
    /// (`0` cuts the very next operation). Replaces an earlier armed cut; ignored while power is
    /// lost.
    pub fn arm_power_cut(&mut self, after_ops: u64) {
        self.power.arm(after_ops);
    }

    /// Cancels an armed power cut (no effect once power is lost).
    pub fn disarm_power_cut(&mut self) {
        self.power.disarm();
    }

    /// Operations still to complete before the armed cut, if one is armed.
    pub fn power_cut_armed(&self) -> Option<u64> {
        self.power.armed()
    }

    /// Whether power has been cut (and not yet restored by [`reboot`](Self::reboot)).
    pub fn power_lost(&self) -> bool {
        self.power.lost()
    }

    /// The kind of operation the last power cut interrupted, until [`reboot`](Self::reboot).
    pub fn cut_kind(&self) -> Option<OpKind> {
        self.power.cut_kind()
    }

    /// Restores power: operations work again and no cut is armed. The content is kept as the
    /// cut left it.
    pub fn reboot(&mut self) {
        self.power.reboot();
    }

    fn powered(&self) -> Result<(), SimError> {
        if self.power.lost() {
            Err(SimError::PowerLost)
        } else {
            Ok(())
        }
    }

    /// Bounds and alignment of `len` bytes at `offset` for a `unit`-aligned operation.
    fn range(&self, unit: usize, offset: u32, len: usize) -> Result<Range<usize>, SimError> {
        let start = usize::try_from(offset).map_err(|_| SimError::OutOfBounds)?;
        let end = start.checked_add(len).ok_or(SimError::OutOfBounds)?;
        if end > self.mem.len() {
            return Err(SimError::OutOfBounds);
        }
        if !start.is_multiple_of(unit) || !len.is_multiple_of(unit) {
            return Err(SimError::NotAligned);
        }
        Ok(start..end)
    }

    /// Starts an operation that reached the medium: counts it and says whether it is cut.
    fn begin_op(&mut self, kind: OpKind) -> Option<XorShift64> {
        let (op, cut) = self.power.begin(kind);
        cut.then(|| XorShift64::new(rng::mix(self.config.seed, op)))
    }

    fn add_wear(&mut self, sector: usize) {
        if let Some(w) = self.wear.get_mut(sector) {
            *w = w.saturating_add(1);
        }
        self.stats.erases = self.stats.erases.saturating_add(1);
    }
}

/// Programs `new` over `old` as far as a cut program gets (see [`TearMode`]).
fn tear_program(old: &mut [u8], new: &[u8], mode: TearMode, rng: &mut XorShift64) {
    match mode {
        TearMode::Prefix => {
            let cut = usize::try_from(rng.below(old.len() as u64 + 1)).unwrap_or(0);
            for (i, (o, &n)) in old.iter_mut().zip(new).enumerate() {
                if i < cut {
                    *o &= n;
                } else if i == cut {
                    *o &= n | !rng.next_u8();
                } else {
                    break;
                }
            }
        }
        TearMode::Scattered => {
            for (o, &n) in old.iter_mut().zip(new) {
                match rng.below(3) {
                    0 => {}
                    1 => *o &= n,
                    _ => *o &= n | !rng.next_u8(),
                }
            }
        }
    }
}

/// Leaves a sector as an erase cut in the middle might: each byte erased, partly erased (some
/// bits raised) or arbitrary.
fn tear_erase(sector: &mut [u8], rng: &mut XorShift64) {
    for b in sector.iter_mut() {
        let r = rng.next_u64();
        *b = match r & 3 {
            0 | 1 => ERASED,
            2 => *b | (r >> 8) as u8,
            _ => (r >> 16) as u8,
        };
    }
}

impl<const READ: usize, const WRITE: usize, const ERASE: usize> ErrorType
    for SimFlash<'_, READ, WRITE, ERASE>
{
    type Error = SimError;
}

impl<const READ: usize, const WRITE: usize, const ERASE: usize> ReadNorFlash
    for SimFlash<'_, READ, WRITE, ERASE>
{
    const READ_SIZE: usize = READ;

    /// Reads `bytes.len()` bytes at `offset`. A cut read fails and leaves `bytes` unchanged.
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimError> {
        self.powered()?;
        let r = self.range(READ, offset, bytes.len())?;
        let cut = self.begin_op(OpKind::Read);
        self.stats.reads = self.stats.reads.saturating_add(1);
        self.stats.read_bytes = self.stats.read_bytes.saturating_add(bytes.len() as u64);
        if cut.is_some() {
            return Err(SimError::PowerLost);
        }
        bytes.copy_from_slice(self.mem.get(r.clone()).ok_or(SimError::OutOfBounds)?);
        if self.config.weak_bits && self.weak.iter().any(|w| w.live) {
            let mut rng = XorShift64::new(rng::mix(
                self.config.seed ^ 0x57EA_C0DE,
                self.power.op_count(),
            ));
            let mut differed = false;
            for w in self.weak.iter().filter(|w| w.live && r.contains(&w.at)) {
                if self.mem.get(w.at) != Some(&w.held) {
                    continue;
                }
                // Each bit the program was to clear reads 0 or 1 at random.
                let v = w.meant | (rng.next_u8() & !w.meant);
                if let Some(b) = bytes.get_mut(w.at - r.start) {
                    differed |= *b != v;
                    *b = v;
                }
            }
            if differed {
                self.stats.weak_reads = self.stats.weak_reads.saturating_add(1);
            }
        }
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.mem.len()
    }
}

impl<const READ: usize, const WRITE: usize, const ERASE: usize> NorFlash
    for SimFlash<'_, READ, WRITE, ERASE>
{
    const WRITE_SIZE: usize = WRITE;
    const ERASE_SIZE: usize = ERASE;

    /// Erases the sectors in `from..to` (both `ERASE`-aligned). A cut erase erases the sectors
    /// before a pseudo-random one of the range, tears that one, and leaves the rest untouched.
    fn erase(&mut self, from: u32, to: u32) -> Result<(), SimError> {
        self.powered()?;
        if from > to {
            return Err(SimError::OutOfBounds);
        }
        let len = usize::try_from(to - from).map_err(|_| SimError::OutOfBounds)?;
        let r = self.range(ERASE, from, len)?;
        let first = r.start / ERASE;
        let count = len / ERASE;
        let mut cut = self.begin_op(OpKind::Erase);
        self.stats.erase_calls = self.stats.erase_calls.saturating_add(1);
        let torn = match cut.as_mut() {
            Some(rng) => usize::try_from(rng.below(count as u64)).unwrap_or(0),
            None => count,
        };
        for i in 0..count.min(torn.saturating_add(1)) {
            let sector = first + i;
            let start = sector * ERASE;
            let bytes = self
                .mem
                .get_mut(start..start + ERASE)
                .ok_or(SimError::OutOfBounds)?;
            match cut.as_mut() {
                Some(rng) if i == torn => tear_erase(bytes, rng),
                _ => bytes.fill(ERASED),
            }
            for w in self.weak.iter_mut() {
                if (start..start + ERASE).contains(&w.at) {
                    w.live = false;
                }
            }
            self.add_wear(sector);
        }
        match cut {
            Some(_) => Err(SimError::PowerLost),
            None => Ok(()),
        }
    }

    /// Programs `bytes` at `offset` (both `WRITE`-aligned). Refuses, before changing anything, a
    /// target byte that is not erased unless multi-write is on. A cut program is torn per
    /// [`SimConfig::tear`].
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), SimError> {
        self.powered()?;
        let r = self.range(WRITE, offset, bytes.len())?;
        let start = r.start;
        if !self.config.multi_write {
            let target = self.mem.get(r.clone()).ok_or(SimError::OutOfBounds)?;
            if let Some(i) = target.iter().position(|&b| b != ERASED) {
                let at = u32::try_from(start + i).map_err(|_| SimError::OutOfBounds)?;
                return Err(SimError::ProgramOverProgrammed { offset: at });
            }
        }
        let cut = self.begin_op(OpKind::Program);
        let units = self.config.timing.units_touched(start, bytes.len());
        let s = &mut self.stats;
        s.programs = s.programs.saturating_add(1);
        s.program_bytes = s.program_bytes.saturating_add(bytes.len() as u64);
        s.program_units = s.program_units.saturating_add(units);
        let tear = self.config.tear;
        let target = self.mem.get_mut(r).ok_or(SimError::OutOfBounds)?;
        match cut {
            Some(mut rng) => {
                tear_program(target, bytes, tear, &mut rng);
                // Partly programmed bytes: neither what they held nor what they were to hold.
                for (i, &meant) in bytes.iter().enumerate() {
                    let held = self.mem.get(start + i).copied().unwrap_or(ERASED);
                    if held != meant && held != ERASED {
                        self.mark_weak(start + i, meant, held);
                    }
                }
                Err(SimError::PowerLost)
            }
            None => {
                for (t, &n) in target.iter_mut().zip(bytes) {
                    *t &= n;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests;
