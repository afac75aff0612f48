//! A simulated NAND flash with operation counters, wear tracking, bad blocks and power-cut
//! injection.
//!
//! Owns: [`SimNand`], which implements [`NandFlash`] over storage handed in by the caller (a
//! `&mut [u8]` for the raw content and a `&mut [SimNandBlock]` for one state entry per erase
//! block), so it needs neither `std` nor a heap; [`NandPart`] presets of real parts
//! ([`W25N01GV`], [`MT29F4G01ABAFD`]) and [`NandPart::custom`] for small test geometries.
//!
//! Raw layout: erase block `b`, page `p` occupies `(b × pages_per_block + p) × (page_size +
//! spare_size)` onwards: `page_size` data bytes, then the part's raw spare area, whose first
//! [`NandPart::marker_bytes`] bytes are the bad-block marker (any byte not `0xFF` in page 0 marks
//! the block bad, as on the W25N01GV). The user sees the rest of the spare area:
//! [`NandGeometry::spare_size`] = raw spare − marker bytes.
//!
//! Rules enforced (refused before anything changes, not counted as operations):
//! - a program targets an erased page (all `0xFF`) at or after the block's next programmable
//!   page (pages in order, each once per erase: [`SimNandError::NotErased`],
//!   [`SimNandError::OutOfOrder`]);
//! - on a part with partial programs ([`NandPart::with_partial_programs`]), a sector program
//!   targets erased sectors (and erased spare bytes) of the block's last programmed page or a
//!   later one, at most [`NandPart::partial_programs`] programs per page and each sector once
//!   ([`SimNandError::TooManyPrograms`]); a part without them refuses it
//!   ([`SimNandError::NoPartialProgram`]);
//! - no program or erase of a block whose marker says bad ([`SimNandError::BadBlock`]);
//! - addresses and buffer lengths inside the geometry ([`SimNandError::OutOfBounds`],
//!   [`SimNandError::BadLength`]).
//!
//! Faults:
//! - factory bad blocks: [`SimNand::factory_init`] blanks a part and marks a seeded choice of
//!   blocks bad (never the first [`NandPart::guaranteed_good`] ones), with garbage in them;
//! - timebombs ([`Timebomb`]): from its operation number on, every program or erase of the block
//!   fails with [`SimNandError::BlockFailed`], leaving the page garbled or the block partly
//!   erased (a grown bad block); reads keep working;
//! - power cuts: [`SimNand::arm_power_cut`]`(k)` lets `k` operations complete and cuts the next.
//!   A cut read fails; a cut program leaves the page torn ([`TearMode`]: only bits the program
//!   would clear are cleared); a cut erase leaves each page erased, untouched or partly erased
//!   (bits only rise, so a good block's marker stays `0xFF`). The damage depends only on the seed
//!   and the operation number. After a cut every operation fails with
//!   [`SimNandError::PowerLost`] until [`SimNand::reboot`].
//!
//! Counters: reads (including [`NandFlash::block_status`]), programs (including
//! [`NandFlash::mark_bad`]) and erases in [`FlashStats`] (`program_units` = pages), the total in
//! [`SimNand::op_count`], and one erase counter per block.

use core::fmt;
use core::ops::Range;

use super::{BlockStatus, NandErrorKind, NandFlash, NandFlashError, NandGeometry, PageAddr};
use crate::sim::{FlashStats, OpKind, PowerSwitch, TearMode, WearSummary, XorShift64, ERASED};

/// Datasheet timings of a NAND part, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NandTiming {
    /// Typical page read (array to cache).
    pub read_typ_ns: u64,
    /// Maximum page read, where the datasheet gives it.
    pub read_max_ns: Option<u64>,
    /// Typical page program.
    pub program_typ_ns: u64,
    /// Maximum page program, where the datasheet gives it.
    pub program_max_ns: Option<u64>,
    /// Typical block erase.
    pub erase_typ_ns: u64,
    /// Maximum block erase, where the datasheet gives it.
    pub erase_max_ns: Option<u64>,
}

impl NandTiming {
    /// No timing information: every operation costs nothing.
    pub const NONE: NandTiming = NandTiming {
        read_typ_ns: 0,
        read_max_ns: None,
        program_typ_ns: 0,
        program_max_ns: None,
        erase_typ_ns: 0,
        erase_max_ns: None,
    };

    /// Typical busy time of the operations in `stats` (reads + pages programmed + blocks erased).
    pub fn busy_time_ns(&self, stats: &FlashStats) -> u64 {
        stats
            .reads
            .saturating_mul(self.read_typ_ns)
            .saturating_add(stats.program_units.saturating_mul(self.program_typ_ns))
            .saturating_add(stats.erases.saturating_mul(self.erase_typ_ns))
    }
}

/// The facts about a NAND part the simulator needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NandPart {
    /// Part name and datasheet revision.
    pub name: &'static str,
    /// Data bytes per page.
    pub page_size: usize,
    /// Raw spare bytes per page (including the bad-block marker).
    pub spare_size: usize,
    /// Leading spare bytes of page 0 that hold the bad-block marker (hidden from the user).
    pub marker_bytes: usize,
    /// Pages per erase block.
    pub pages_per_block: u32,
    /// Erase blocks of the whole part.
    pub blocks: u32,
    /// Leading blocks guaranteed good at shipment.
    pub guaranteed_good: u32,
    /// Most factory bad blocks the datasheet allows.
    pub max_bad_blocks: u32,
    /// Rated program/erase cycles per block.
    pub endurance_cycles: u32,
    /// Bytes programmed as one by a partial program (the on-chip ECC sector); `page_size` if
    /// the part programs whole pages only.
    pub sector_size: usize,
    /// Programs per page between erases (NoP); 1 if the part programs whole pages only.
    pub partial_programs: u32,
    /// Datasheet timings.
    pub timing: NandTiming,
}

impl NandPart {
    /// A part of any shape for tests: 2 marker bytes, block 0 guaranteed good, no timings.
    pub const fn custom(
        page_size: usize,
        spare_size: usize,
        pages_per_block: u32,
        blocks: u32,
    ) -> NandPart {
        NandPart {
            name: "custom NAND",
            page_size,
            spare_size,
            marker_bytes: 2,
            pages_per_block,
            blocks,
            guaranteed_good: 1,
            max_bad_blocks: blocks / 50,
            endurance_cycles: 100_000,
            sector_size: page_size,
            partial_programs: 1,
            timing: NandTiming::NONE,
        }
    }

    /// The same part programming `sector_size`-byte sectors of a page, up to `partial_programs`
    /// programs per page (as the W25N01GV: 512 and 4).
    pub const fn with_partial_programs(
        self,
        sector_size: usize,
        partial_programs: u32,
    ) -> NandPart {
        NandPart {
            sector_size,
            partial_programs,
            ..self
        }
    }

    /// The same part with another block count (a simulator of fewer blocks, for quick tests).
    pub const fn with_blocks(self, blocks: u32) -> NandPart {
        NandPart { blocks, ..self }
    }

    /// Raw bytes per page (data + spare).
    pub const fn raw_page_size(&self) -> usize {
        self.page_size + self.spare_size
    }

    /// Raw bytes per erase block.
    pub const fn raw_block_size(&self) -> usize {
        self.raw_page_size() * self.pages_per_block as usize
    }

    /// Raw bytes of `blocks` erase blocks: the length of a simulator's content slice.
    pub const fn raw_bytes(&self, blocks: u32) -> usize {
        self.raw_block_size() * blocks as usize
    }

    /// The user's view of `blocks` blocks of this part.
    pub const fn geometry(&self, blocks: u32) -> NandGeometry {
        NandGeometry {
            page_size: self.page_size,
            spare_size: self.spare_size.saturating_sub(self.marker_bytes),
            pages_per_block: self.pages_per_block,
            block_count: blocks,
            sector_size: self.sector_size,
            partial_programs: self.partial_programs,
        }
    }
}

/// Winbond W25N01GV SPI NAND (datasheet Rev R, 2023): 1,024 blocks of 64 pages of 2,048 + 64
/// bytes; ≥ 1,004 valid blocks, blocks 0–7 good at shipment; bad-block marker in the first two
/// spare bytes of page 0; tPROG 250 / 700 µs, tBERS 2 / 10 ms, tRD ≤ 25 µs (ECC off, used as
/// typical) / ≤ 60 µs (ECC on); 100k cycles; up to 4 partial programs per page (NoP), each of
/// whole 512-byte ECC sectors.
pub const W25N01GV: NandPart = NandPart {
    name: "Winbond W25N01GV (Rev R)",
    page_size: 2048,
    spare_size: 64,
    marker_bytes: 2,
    pages_per_block: 64,
    blocks: 1024,
    guaranteed_good: 8,
    max_bad_blocks: 20,
    endurance_cycles: 100_000,
    sector_size: 512,
    partial_programs: 4,
    timing: NandTiming {
        read_typ_ns: 25_000,
        read_max_ns: Some(60_000),
        program_typ_ns: 250_000,
        program_max_ns: Some(700_000),
        erase_typ_ns: 2_000_000,
        erase_max_ns: Some(10_000_000),
    },
};

/// Micron MT29F4G01ABAFD SPI NAND (datasheet Rev G, 2019): 2,048 blocks of 64 pages of 4,096 +
/// 256 bytes; blocks 0–7 good; ≤ 40 bad (a Linux driver table); tPROG 200 µs typ (ECC off),
/// tBERS 2 ms typ, tRD ≤ 25 µs (ECC off, used as typical) / ≤ 115 µs; 100k cycles. The simulator
/// keeps the marker in the first two spare bytes of page 0, as for the W25N01GV.
pub const MT29F4G01ABAFD: NandPart = NandPart {
    name: "Micron MT29F4G01ABAFD (Rev G)",
    page_size: 4096,
    spare_size: 256,
    marker_bytes: 2,
    pages_per_block: 64,
    blocks: 2048,
    guaranteed_good: 8,
    max_bad_blocks: 40,
    endurance_cycles: 100_000,
    // The datasheet summary at hand gives no partial-program count: whole pages only.
    sector_size: 4096,
    partial_programs: 1,
    timing: NandTiming {
        read_typ_ns: 25_000,
        read_max_ns: Some(115_000),
        program_typ_ns: 200_000,
        program_max_ns: None,
        erase_typ_ns: 2_000_000,
        erase_max_ns: None,
    },
};

/// Most timebombs a [`SimNandConfig`] holds.
pub const MAX_TIMEBOMBS: usize = 8;

/// A block that goes bad: from operation number `at_op` on (counted by
/// [`SimNand::op_count`]), every program or erase of `block` fails with
/// [`SimNandError::BlockFailed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Timebomb {
    /// The block that goes bad.
    pub block: u32,
    /// The operation number from which it fails.
    pub at_op: u64,
}

/// Behaviour of a [`SimNand`] beyond its geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SimNandConfig {
    /// Seed of the fault-injection randomness.
    pub seed: u64,
    /// How a cut program is torn.
    pub tear: TearMode,
    /// Blocks that go bad during the run.
    pub timebombs: [Option<Timebomb>; MAX_TIMEBOMBS],
}

impl SimNandConfig {
    /// No timebombs, [`TearMode::Prefix`], the given seed.
    pub const fn new(seed: u64) -> Self {
        SimNandConfig {
            seed,
            tear: TearMode::Prefix,
            timebombs: [None; MAX_TIMEBOMBS],
        }
    }

    /// Adds a timebomb in the first free place; returns `false` if all places are taken.
    pub fn add_timebomb(&mut self, bomb: Timebomb) -> bool {
        match self.timebombs.iter_mut().find(|t| t.is_none()) {
            Some(t) => {
                *t = Some(bomb);
                true
            }
            None => false,
        }
    }
}

impl Default for SimNandConfig {
    fn default() -> Self {
        SimNandConfig::new(0)
    }
}

/// Per-block state of a [`SimNand`] (caller-provided, one per erase block).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SimNandBlock {
    /// Erases of this block (including torn and failed ones).
    pub erases: u32,
    /// The lowest page that may be programmed next (recomputed from the content on creation).
    next_page: u32,
    /// Programs the last programmed page (`next_page − 1`) has taken.
    programs: u32,
    /// Sectors of that page programmed (bit `k`: sector `k`).
    sectors: u32,
}

impl SimNandBlock {
    /// A fresh entry.
    pub const NEW: SimNandBlock = SimNandBlock {
        erases: 0,
        next_page: 0,
        programs: 0,
        sectors: 0,
    };
}

/// Errors of [`SimNand`] operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SimNandError {
    /// Block or page number past the end.
    OutOfBounds,
    /// A data buffer that is neither `page_size` bytes (nor empty, for a read), or a spare
    /// buffer longer than the user spare area.
    BadLength,
    /// A program of a page that is not erased.
    NotErased {
        /// The page.
        addr: PageAddr,
    },
    /// A program of a page below one already programmed in its block.
    OutOfOrder {
        /// The page.
        addr: PageAddr,
        /// The lowest page that may be programmed in the block.
        next: u32,
    },
    /// A partial program of a page that has taken its [`NandPart::partial_programs`], or of
    /// a sector already programmed.
    TooManyPrograms {
        /// The page.
        addr: PageAddr,
    },
    /// A partial program on a part that programs whole pages only, or of sectors that are not
    /// whole or not in the page.
    NoPartialProgram,
    /// A program or erase of a block marked bad.
    BadBlock {
        /// The block.
        block: u32,
    },
    /// A program or erase failed: the block has gone bad (a [`Timebomb`]).
    BlockFailed {
        /// The block.
        block: u32,
    },
    /// Power was cut: the operation did not (fully) happen.
    PowerLost,
}

impl NandFlashError for SimNandError {
    fn kind(&self) -> NandErrorKind {
        match self {
            SimNandError::OutOfBounds
            | SimNandError::BadLength
            | SimNandError::NoPartialProgram => NandErrorKind::OutOfBounds,
            SimNandError::NotErased { .. }
            | SimNandError::OutOfOrder { .. }
            | SimNandError::TooManyPrograms { .. } => NandErrorKind::ProgramRule,
            SimNandError::BadBlock { .. } => NandErrorKind::BadBlock,
            SimNandError::BlockFailed { .. } => NandErrorKind::BlockFailed,
            SimNandError::PowerLost => NandErrorKind::Other,
        }
    }
}

impl fmt::Display for SimNandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimNandError::OutOfBounds => f.write_str("NAND address out of bounds"),
            SimNandError::BadLength => f.write_str("NAND buffer length wrong"),
            SimNandError::NotErased { addr } => {
                write!(
                    f,
                    "program of a programmed page {}:{}",
                    addr.block, addr.page
                )
            }
            SimNandError::OutOfOrder { addr, next } => write!(
                f,
                "program of page {}:{} out of order (next is {next})",
                addr.block, addr.page
            ),
            SimNandError::TooManyPrograms { addr } => write!(
                f,
                "partial program of page {}:{} past its program count or over a programmed sector",
                addr.block, addr.page
            ),
            SimNandError::NoPartialProgram => {
                f.write_str("partial program of whole pages only, or of a bad sector range")
            }
            SimNandError::BadBlock { block } => write!(f, "program or erase of bad block {block}"),
            SimNandError::BlockFailed { block } => write!(f, "block {block} failed"),
            SimNandError::PowerLost => f.write_str("power lost"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SimNandError {}

/// Why a [`SimNand`] could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SimNandSetupError {
    /// Page size or pages per block is zero, or the spare area is smaller than the marker.
    BadGeometry,
    /// The content slice is not a whole, non-zero number of erase blocks.
    NotBlockMultiple {
        /// Length of the content slice.
        len: usize,
    },
    /// The content slice holds more blocks than the part has.
    LargerThanPart {
        /// Blocks in the content slice.
        blocks: usize,
        /// Blocks of the part.
        part_blocks: u32,
    },
    /// The block-state slice has fewer entries than there are blocks.
    StateTooShort {
        /// Entries needed.
        need: usize,
        /// Entries given.
        got: usize,
    },
}

impl fmt::Display for SimNandSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimNandSetupError::BadGeometry => f.write_str("bad NAND geometry"),
            SimNandSetupError::NotBlockMultiple { len } => {
                write!(f, "{len} bytes is not a whole number of erase blocks")
            }
            SimNandSetupError::LargerThanPart {
                blocks,
                part_blocks,
            } => write!(f, "{blocks} blocks exceed the part's {part_blocks}"),
            SimNandSetupError::StateTooShort { need, got } => {
                write!(f, "block state has {got} entries, {need} needed")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SimNandSetupError {}

/// Mixes a seed and an operation number (splitmix64 finaliser).
const fn mix(seed: u64, op: u64) -> u64 {
    let mut z = seed
        ^ op.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(0x3C6E_F372_FE94_F82B);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// How a program lands.
enum Landing<'r> {
    Whole,
    Torn(TearMode, &'r mut XorShift64),
}

/// An in-memory NAND flash over caller-provided storage. See the [module docs](self).
pub struct SimNand<'a> {
    mem: &'a mut [u8],
    blocks: &'a mut [SimNandBlock],
    part: NandPart,
    block_count: u32,
    config: SimNandConfig,
    stats: FlashStats,
    power: PowerSwitch,
}

impl fmt::Debug for SimNand<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimNand")
            .field("part", &self.part.name)
            .field("blocks", &self.block_count)
            .field("config", &self.config)
            .field("stats", &self.stats)
            .field("ops", &self.power.op_count())
            .field("power", &self.power.power)
            .finish()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for SimNand<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "SimNand {{ part: {}, blocks: {}, stats: {}, ops: {}, power: {} }}",
            self.part.name,
            self.block_count,
            self.stats,
            self.power.op_count(),
            self.power.power
        )
    }
}

impl<'a> SimNand<'a> {
    /// A simulator of the first `mem.len() / part.raw_block_size()` blocks of `part` over `mem`
    /// (its content is the flash content: use [`factory_init`](Self::factory_init) for a new
    /// part) with one state entry per block in `blocks` (erase counters are kept as given).
    pub fn new(
        mem: &'a mut [u8],
        blocks: &'a mut [SimNandBlock],
        part: &NandPart,
        config: SimNandConfig,
    ) -> Result<Self, SimNandSetupError> {
        let count = Self::check(mem.len(), blocks.len(), part)?;
        let mut sim = SimNand {
            mem,
            blocks,
            part: *part,
            block_count: count,
            config,
            stats: FlashStats::default(),
            power: PowerSwitch::new(),
        };
        sim.resync();
        Ok(sim)
    }

    fn check(len: usize, states: usize, part: &NandPart) -> Result<u32, SimNandSetupError> {
        if part.page_size == 0 || part.pages_per_block == 0 || part.spare_size < part.marker_bytes {
            return Err(SimNandSetupError::BadGeometry);
        }
        let rb = part.raw_block_size();
        if len == 0 || !len.is_multiple_of(rb) {
            return Err(SimNandSetupError::NotBlockMultiple { len });
        }
        let n = len / rb;
        let count = u32::try_from(n).ok().filter(|&c| c <= part.blocks).ok_or(
            SimNandSetupError::LargerThanPart {
                blocks: n,
                part_blocks: part.blocks,
            },
        )?;
        if states < n {
            return Err(SimNandSetupError::StateTooShort {
                need: n,
                got: states,
            });
        }
        Ok(count)
    }

    /// Blanks `mem` (all `0xFF`) as a new part and marks `bad_blocks` seeded, distinct blocks
    /// bad (never one of the first [`NandPart::guaranteed_good`]), with garbage in their pages.
    /// Returns the number of blocks marked (fewer if the part is too small).
    pub fn factory_init(mem: &mut [u8], part: &NandPart, bad_blocks: u32, seed: u64) -> u32 {
        mem.fill(ERASED);
        let rb = part.raw_block_size();
        let n = mem.len().checked_div(rb).unwrap_or(0) as u64;
        let first = u64::from(part.guaranteed_good.max(1)).min(n);
        let mut rng = XorShift64::new(mix(seed, 0xFAC7));
        let mut marked = 0;
        let mut tries = 0u32;
        while marked < bad_blocks && n > first && tries < bad_blocks.saturating_mul(64) {
            tries += 1;
            let b = first + rng.below(n - first);
            let start = usize::try_from(b).unwrap_or(0) * rb;
            let Some(block) = mem.get_mut(start..start + rb) else {
                break;
            };
            let marker = part.page_size..part.page_size + part.marker_bytes;
            if block
                .get(marker.clone())
                .is_some_and(|m| m.iter().any(|&x| x != ERASED))
            {
                continue;
            }
            for x in block.iter_mut() {
                if rng.below(4) == 0 {
                    *x = rng.next_u8();
                }
            }
            if let Some(m) = block.get_mut(marker) {
                m.fill(0);
            }
            marked += 1;
        }
        marked
    }

    /// Starts over as a new simulator over the same memory would: counters zeroed, power on,
    /// the given configuration, [`op_count`](Self::op_count) set to `op_count` (timebombs count
    /// from it), and every block's next programmable page recomputed from the content (after
    /// [`bytes_mut`](Self::bytes_mut) restored a snapshot). Erase counters are kept.
    pub fn restart(&mut self, config: SimNandConfig, op_count: u64) {
        self.config = config;
        self.stats = FlashStats::default();
        self.power.restart(op_count);
        self.resync();
    }

    fn resync(&mut self) {
        for b in 0..self.block_count {
            self.resync_block(b);
        }
    }

    /// Recomputes `block`'s next programmable page and the sectors of its last programmed page
    /// from the content (each sector that reads programmed counted as one program: the most a
    /// program that left a trace in it can have taken, the least if it took several).
    fn resync_block(&mut self, block: u32) {
        let next = self.scan_next_page(block);
        let mut sectors = 0u32;
        if next > 0 {
            let g = self.geo();
            let ss = g.sector_size.max(1);
            let r = self.raw_page(PageAddr::new(block, next - 1));
            if let Some(page) = self.mem.get(r) {
                for k in 0..g.sectors_per_page() {
                    if page
                        .get(k * ss..(k + 1) * ss)
                        .is_some_and(|d| d.iter().any(|&x| x != ERASED))
                    {
                        sectors |= 1 << (k % 32);
                    }
                }
                if sectors == 0 {
                    sectors = 1; // only the spare area: a program that covered sector 0
                }
            }
        }
        if let Some(s) = self.blocks.get_mut(block as usize) {
            s.next_page = next;
            s.sectors = sectors;
            s.programs = sectors.count_ones();
        }
    }

    /// One past the last page of `block` that is not entirely `0xFF`.
    fn scan_next_page(&self, block: u32) -> u32 {
        let mut next = 0;
        for p in 0..self.part.pages_per_block {
            let r = self.raw_page(PageAddr::new(block, p));
            if self
                .mem
                .get(r)
                .is_some_and(|page| page.iter().any(|&x| x != ERASED))
            {
                next = p + 1;
            }
        }
        next
    }

    /// The part being simulated.
    pub fn part(&self) -> &NandPart {
        &self.part
    }

    /// Erase blocks simulated.
    pub fn block_count(&self) -> u32 {
        self.block_count
    }

    /// The raw content (for snapshots and checks; not counted).
    pub fn bytes(&self) -> &[u8] {
        self.mem
    }

    /// The raw content, mutably (to restore a snapshot or inject corruption; not counted, not
    /// checked: call [`restart`](Self::restart) afterwards so the program-order state follows).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.mem
    }

    /// The configuration.
    pub fn config(&self) -> &SimNandConfig {
        &self.config
    }

    /// The configuration, mutably (seed, tear mode and timebombs may change at any time).
    pub fn config_mut(&mut self) -> &mut SimNandConfig {
        &mut self.config
    }

    /// Operation counters since creation or the last reset.
    pub fn stats(&self) -> FlashStats {
        self.stats
    }

    /// Zeroes the operation counters (not the erase counters nor the operation count).
    pub fn reset_stats(&mut self) {
        self.stats = FlashStats::default();
    }

    /// Erases of block `block` (0 past the end).
    pub fn erase_count(&self, block: u32) -> u32 {
        self.blocks.get(block as usize).map_or(0, |s| s.erases)
    }

    /// Zeroes every erase counter.
    pub fn reset_wear(&mut self) {
        for s in self.blocks.iter_mut() {
            s.erases = 0;
        }
    }

    /// Whether block `block`'s marker says bad (a peek at the content, not counted).
    pub fn is_marked_bad(&self, block: u32) -> bool {
        self.mem
            .get(self.marker(block))
            .is_some_and(|m| m.iter().any(|&x| x != ERASED))
    }

    /// Minimum, maximum and total erase count over all blocks.
    pub fn wear_summary(&self) -> WearSummary {
        self.summary(|_| true)
    }

    /// Minimum, maximum and total erase count over the blocks not marked bad.
    pub fn wear_summary_good(&self) -> WearSummary {
        self.summary(|b| !self.is_marked_bad(b))
    }

    fn summary(&self, keep: impl Fn(u32) -> bool) -> WearSummary {
        let mut w = WearSummary {
            min: u32::MAX,
            ..WearSummary::default()
        };
        for b in (0..self.block_count).filter(|&b| keep(b)) {
            let c = self.erase_count(b);
            w.sectors += 1;
            w.min = w.min.min(c);
            w.max = w.max.max(c);
            w.total += u64::from(c);
        }
        if w.sectors == 0 {
            w.min = 0;
        }
        w
    }

    /// Typical busy time of the counted operations at the part's timings, in ns.
    pub fn busy_time_ns(&self) -> u64 {
        self.part.timing.busy_time_ns(&self.stats)
    }

    /// Operations that reached the medium since creation or [`restart`](Self::restart).
    pub fn op_count(&self) -> u64 {
        self.power.op_count()
    }

    /// Arms a power cut: the next `after_ops` operations complete, the one after is cut.
    /// Ignored while power is lost.
    pub fn arm_power_cut(&mut self, after_ops: u64) {
        self.power.arm(after_ops);
    }

    /// Cancels an armed power cut.
    pub fn disarm_power_cut(&mut self) {
        self.power.disarm();
    }

    /// Whether power has been cut (and not restored by [`reboot`](Self::reboot)).
    pub fn power_lost(&self) -> bool {
        self.power.lost()
    }

    /// The kind of operation the last power cut interrupted, until [`reboot`](Self::reboot).
    pub fn cut_kind(&self) -> Option<OpKind> {
        self.power.cut_kind()
    }

    /// Restores power (no cut armed); the content stays as the cut left it.
    pub fn reboot(&mut self) {
        self.power.reboot();
    }

    fn raw_page(&self, addr: PageAddr) -> Range<usize> {
        let idx = addr.block as usize * self.part.pages_per_block as usize + addr.page as usize;
        let start = idx * self.part.raw_page_size();
        start..start + self.part.raw_page_size()
    }

    fn marker(&self, block: u32) -> Range<usize> {
        let start = self.raw_page(PageAddr::new(block, 0)).start + self.part.page_size;
        start..start + self.part.marker_bytes
    }

    fn geo(&self) -> NandGeometry {
        self.part.geometry(self.block_count)
    }

    fn powered(&self) -> Result<(), SimNandError> {
        if self.power.lost() {
            Err(SimNandError::PowerLost)
        } else {
            Ok(())
        }
    }

    fn check_block(&self, block: u32) -> Result<(), SimNandError> {
        if block >= self.block_count {
            Err(SimNandError::OutOfBounds)
        } else {
            Ok(())
        }
    }

    /// Counts an operation that reached the medium; returns the damage randomness if it is cut.
    fn begin_op(&mut self, kind: OpKind) -> (u64, Option<XorShift64>) {
        let (op, cut) = self.power.begin(kind);
        (op, cut.then(|| XorShift64::new(mix(self.config.seed, op))))
    }

    fn bombed(&self, block: u32, op: u64) -> bool {
        self.config
            .timebombs
            .iter()
            .flatten()
            .any(|t| t.block == block && op >= t.at_op)
    }

    /// Programs raw bytes `range` with `new(i)` for each byte offset `i`, whole or torn.
    fn land(
        &mut self,
        range: Range<usize>,
        new: impl Fn(usize) -> u8,
        landing: Landing<'_>,
    ) -> Result<(), SimNandError> {
        let target = self.mem.get_mut(range).ok_or(SimNandError::OutOfBounds)?;
        match landing {
            Landing::Whole => {
                for (i, o) in target.iter_mut().enumerate() {
                    *o &= new(i);
                }
            }
            Landing::Torn(TearMode::Prefix, rng) => {
                let cut = usize::try_from(rng.below(target.len() as u64 + 1)).unwrap_or(0);
                for (i, o) in target.iter_mut().enumerate().take(cut.saturating_add(1)) {
                    if i < cut {
                        *o &= new(i);
                    } else {
                        *o &= new(i) | !rng.next_u8();
                    }
                }
            }
            Landing::Torn(TearMode::Scattered, rng) => {
                for (i, o) in target.iter_mut().enumerate() {
                    match rng.below(3) {
                        0 => {}
                        1 => *o &= new(i),
                        _ => *o &= new(i) | !rng.next_u8(),
                    }
                }
            }
        }
        Ok(())
    }

    /// Counts a program of `bytes` bytes (one page unit) that reached the medium; returns the
    /// operation number and the damage randomness if it is cut.
    fn begin_program(&mut self, bytes: u64) -> (u64, Option<XorShift64>) {
        let r = self.begin_op(OpKind::Program);
        let s = &mut self.stats;
        s.programs = s.programs.saturating_add(1);
        s.program_bytes = s.program_bytes.saturating_add(bytes);
        s.program_units = s.program_units.saturating_add(1);
        r
    }

    /// Lands program `op` of raw bytes `r` in `block` with `new(i)`: whole, torn by a cut
    /// ([`SimNandError::PowerLost`]), or garbled when the block is bombed
    /// ([`SimNandError::BlockFailed`]).
    fn program_lands(
        &mut self,
        block: u32,
        r: Range<usize>,
        new: impl Fn(usize) -> u8,
        op: u64,
        cut: Option<XorShift64>,
    ) -> Result<(), SimNandError> {
        let bombed = self.bombed(block, op);
        match cut {
            Some(mut rng) => {
                let tear = self.config.tear;
                self.land(r, new, Landing::Torn(tear, &mut rng))?;
                Err(SimNandError::PowerLost)
            }
            None if bombed => {
                let mut rng = XorShift64::new(mix(self.config.seed ^ 0xB0B, op));
                self.land(r, new, Landing::Torn(TearMode::Scattered, &mut rng))?;
                Err(SimNandError::BlockFailed { block })
            }
            None => self.land(r, new, Landing::Whole),
        }
    }

    /// Leaves `block` as an interrupted erase might: each page erased, untouched or partly
    /// erased (bits only rise).
    fn tear_erase(&mut self, block: u32, rng: &mut XorShift64) {
        for p in 0..self.part.pages_per_block {
            let r = self.raw_page(PageAddr::new(block, p));
            let choice = rng.below(3);
            if let Some(page) = self.mem.get_mut(r) {
                match choice {
                    0 => page.fill(ERASED),
                    1 => {}
                    _ => {
                        for x in page.iter_mut() {
                            *x |= rng.next_u8();
                        }
                    }
                }
            }
        }
        self.resync_block(block);
    }
}

impl NandFlash for SimNand<'_> {
    type Error = SimNandError;

    fn geometry(&self) -> NandGeometry {
        self.geo()
    }

    /// One counted read. A cut read fails and leaves the buffers unchanged.
    fn read_page(
        &mut self,
        addr: PageAddr,
        data: &mut [u8],
        spare: &mut [u8],
    ) -> Result<(), SimNandError> {
        self.powered()?;
        let g = self.geo();
        if !g.contains(addr) {
            return Err(SimNandError::OutOfBounds);
        }
        if !(data.is_empty() || data.len() == g.page_size) || spare.len() > g.spare_size {
            return Err(SimNandError::BadLength);
        }
        let (_, cut) = self.begin_op(OpKind::Read);
        self.stats.reads = self.stats.reads.saturating_add(1);
        let n = (data.len() + spare.len()) as u64;
        self.stats.read_bytes = self.stats.read_bytes.saturating_add(n);
        if cut.is_some() {
            return Err(SimNandError::PowerLost);
        }
        let r = self.raw_page(addr);
        let page = self.mem.get(r).ok_or(SimNandError::OutOfBounds)?;
        if let Some(d) = page.get(..data.len()) {
            data.copy_from_slice(d);
        }
        let s0 = g.page_size + self.part.marker_bytes;
        let s = page
            .get(s0..s0 + spare.len())
            .ok_or(SimNandError::OutOfBounds)?;
        spare.copy_from_slice(s);
        Ok(())
    }

    /// Refuses (uncounted) a bad block, a page below the block's next programmable page or a
    /// page not erased. A cut program is torn; a program of a bombed block garbles the page and
    /// fails with [`SimNandError::BlockFailed`].
    fn program_page(
        &mut self,
        addr: PageAddr,
        data: &[u8],
        spare: &[u8],
    ) -> Result<(), SimNandError> {
        self.powered()?;
        let g = self.geo();
        if !g.contains(addr) {
            return Err(SimNandError::OutOfBounds);
        }
        if data.len() != g.page_size || spare.len() > g.spare_size {
            return Err(SimNandError::BadLength);
        }
        if self.is_marked_bad(addr.block) {
            return Err(SimNandError::BadBlock { block: addr.block });
        }
        let next = self
            .blocks
            .get(addr.block as usize)
            .map_or(0, |s| s.next_page);
        if addr.page < next {
            return Err(SimNandError::OutOfOrder { addr, next });
        }
        let r = self.raw_page(addr);
        if self
            .mem
            .get(r.clone())
            .is_none_or(|p| p.iter().any(|&x| x != ERASED))
        {
            return Err(SimNandError::NotErased { addr });
        }
        let (op, cut) = self.begin_program((data.len() + spare.len()) as u64);
        if let Some(st) = self.blocks.get_mut(addr.block as usize) {
            st.next_page = addr.page + 1;
            st.programs = g.partial_programs.max(1);
            st.sectors = u32::MAX;
        }
        let ps = g.page_size;
        let s0 = ps + self.part.marker_bytes;
        let new = |i: usize| -> u8 {
            if i < ps {
                data.get(i).copied().unwrap_or(ERASED)
            } else if i >= s0 {
                spare.get(i - s0).copied().unwrap_or(ERASED)
            } else {
                ERASED
            }
        };
        self.program_lands(addr.block, r, new, op, cut)
    }

    /// One counted program of whole sectors. Refuses (uncounted) a part that programs whole
    /// pages only, a bad block, a page below the block's last programmed one, sectors or spare
    /// bytes not erased, and a program past the page's count or over a programmed sector. A cut
    /// program tears only the sectors and spare bytes it covers.
    fn program_sectors(
        &mut self,
        addr: PageAddr,
        first: usize,
        data: &[u8],
        spare: &[u8],
    ) -> Result<(), SimNandError> {
        self.powered()?;
        let g = self.geo();
        if !g.contains(addr) {
            return Err(SimNandError::OutOfBounds);
        }
        let ss = g.sector_size.max(1);
        let n = data.len() / ss;
        if !g.programs_partially()
            || data.is_empty()
            || !data.len().is_multiple_of(ss)
            || first.saturating_add(n) > g.sectors_per_page()
        {
            return Err(SimNandError::NoPartialProgram);
        }
        if spare.len() > g.spare_size {
            return Err(SimNandError::BadLength);
        }
        if self.is_marked_bad(addr.block) {
            return Err(SimNandError::BadBlock { block: addr.block });
        }
        let st = self
            .blocks
            .get(addr.block as usize)
            .copied()
            .unwrap_or(SimNandBlock::NEW);
        let mask = (((1u64 << n) - 1) << first) as u32;
        let reopen = st.next_page > 0 && addr.page == st.next_page - 1;
        if addr.page < st.next_page && !reopen {
            return Err(SimNandError::OutOfOrder {
                addr,
                next: st.next_page,
            });
        }
        if reopen && (st.programs >= g.partial_programs || st.sectors & mask != 0) {
            return Err(SimNandError::TooManyPrograms { addr });
        }
        let r = self.raw_page(addr);
        let ps = g.page_size;
        let s0 = ps + self.part.marker_bytes;
        let covered = |i: usize| -> Option<u8> {
            if i < ps {
                let k = i / ss;
                (k >= first && k < first + n).then(|| data.get(i - first * ss).copied())?
            } else if i >= s0 {
                spare.get(i - s0).copied().filter(|&b| b != ERASED)
            } else {
                None
            }
        };
        let page = self.mem.get(r.clone()).ok_or(SimNandError::OutOfBounds)?;
        if page
            .iter()
            .enumerate()
            .any(|(i, &x)| covered(i).is_some() && x != ERASED)
        {
            return Err(SimNandError::NotErased { addr });
        }
        let (op, cut) = self.begin_program((data.len() + spare.len()) as u64);
        if let Some(b) = self.blocks.get_mut(addr.block as usize) {
            if reopen {
                b.programs += 1;
                b.sectors |= mask;
            } else {
                b.next_page = addr.page + 1;
                b.programs = 1;
                b.sectors = mask;
            }
        }
        let new = |i: usize| covered(i).unwrap_or(ERASED);
        self.program_lands(addr.block, r, new, op, cut)
    }

    /// Refuses (uncounted) a bad block. A cut or failed erase leaves the block partly erased.
    fn erase_block(&mut self, block: u32) -> Result<(), SimNandError> {
        self.powered()?;
        self.check_block(block)?;
        if self.is_marked_bad(block) {
            return Err(SimNandError::BadBlock { block });
        }
        let (op, cut) = self.begin_op(OpKind::Erase);
        self.stats.erase_calls = self.stats.erase_calls.saturating_add(1);
        self.stats.erases = self.stats.erases.saturating_add(1);
        if let Some(s) = self.blocks.get_mut(block as usize) {
            s.erases = s.erases.saturating_add(1);
        }
        let bombed = self.bombed(block, op);
        match cut {
            Some(mut rng) => {
                self.tear_erase(block, &mut rng);
                Err(SimNandError::PowerLost)
            }
            None if bombed => {
                let mut rng = XorShift64::new(mix(self.config.seed ^ 0xB0B, op));
                self.tear_erase(block, &mut rng);
                Err(SimNandError::BlockFailed { block })
            }
            None => {
                let start = self.raw_page(PageAddr::new(block, 0)).start;
                let end = start + self.part.raw_block_size();
                self.mem
                    .get_mut(start..end)
                    .ok_or(SimNandError::OutOfBounds)?
                    .fill(ERASED);
                if let Some(s) = self.blocks.get_mut(block as usize) {
                    s.next_page = 0;
                    s.programs = 0;
                    s.sectors = 0;
                }
                Ok(())
            }
        }
    }

    /// One counted read of the marker.
    fn block_status(&mut self, block: u32) -> Result<BlockStatus, SimNandError> {
        self.powered()?;
        self.check_block(block)?;
        let (_, cut) = self.begin_op(OpKind::Read);
        self.stats.reads = self.stats.reads.saturating_add(1);
        self.stats.read_bytes = self
            .stats
            .read_bytes
            .saturating_add(self.part.marker_bytes as u64);
        if cut.is_some() {
            return Err(SimNandError::PowerLost);
        }
        Ok(if self.is_marked_bad(block) {
            BlockStatus::Bad
        } else {
            BlockStatus::Good
        })
    }

    /// One counted program of the marker bytes (allowed on any block, programmed or not). A cut
    /// one is torn.
    fn mark_bad(&mut self, block: u32) -> Result<(), SimNandError> {
        self.powered()?;
        self.check_block(block)?;
        let (_, cut) = self.begin_op(OpKind::Program);
        self.stats.programs = self.stats.programs.saturating_add(1);
        self.stats.program_bytes = self
            .stats
            .program_bytes
            .saturating_add(self.part.marker_bytes as u64);
        let r = self.marker(block);
        match cut {
            Some(mut rng) => {
                self.land(r, |_| 0, Landing::Torn(TearMode::Prefix, &mut rng))?;
                Err(SimNandError::PowerLost)
            }
            None => self.land(r, |_| 0, Landing::Whole),
        }
    }
}

#[cfg(test)]
mod tests;
