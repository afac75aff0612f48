//! A flash translation layer: the core's [`BlockDevice`] over any [`NandFlash`], with garbage
//! collection, bad-block handling and wear leveling, in fixed caller-provided RAM.
//!
//! Owns: [`Ftl`] (the device), its sizing ([`FtlConfig`], [`FtlLayout`]), the RAM it is handed
//! ([`FtlMemory`], [`BlockInfo`]), its reports ([`FtlInfo`], [`FtlStats`]) and errors
//! ([`FtlError`], [`FtlSetupError`]).
//!
//! # Design
//!
//! **Slots.** A logical block (a vde block of `block_size` bytes) is stored as one *version* in a
//! *slot* of `pages_per_slot = block_size / page_size` consecutive pages of one erase block;
//! an erase block holds `slots_per_block = pages_per_block / pages_per_slot` slots (left-over
//! pages are never used). Every page's spare area holds a 24-byte record (see `meta.rs`):
//! logical block, 48-bit sequence number of the version, page index, erase count of the erase
//! block, a checksum of the page's data and a checksum of the record.
//!
//! **Log.** All writes — the host's and the relocations of garbage collection, static wear
//! leveling and bad-block handling — go to one *head* erase block, slot after slot, pages in
//! order, each page programmed once; every version gets the next sequence number. When the
//! head is full the least-worn free erase block is erased and becomes the head (erase on
//! allocation: a free block keeps its stale pages, and with them its erase count, until reused).
//! So the blocks' sequence ranges never interleave.
//!
//! **Log appends.** The core's [`BlockDevice::append`]s to a block gather in one RAM block until
//! a flush, which writes them once (the buffer keeps the block afterwards, so the next commit's
//! appends need no read back). On a part that programs part of a page
//! ([`NandGeometry::programs_partially`]: 512-byte ECC sectors, NoP 4 on the W25N01GV) the layout
//! is *sectored* ([`FtlLayout::sector_size`]): the layer reports the sector as its
//! [`BlockDevice::append_unit`], so each commit ends on a sector, and a flush programs only the
//! new sectors into the block's *open* version — the version it last wrote, while its slot is
//! still the last programmed in its erase block and the page has programs left — with a checksum
//! per sector in the spare area (`meta.rs`, FORMAT.md "On NAND"). Anything else (a remount, a
//! failed program, another write at the head, an append that does not continue it) writes a
//! new sectored version instead. A sector a cut tore fails its sum and reads erased; the
//! core never appends after unverified bytes, and a remount never extends a version.
//!
//! **Discards.** [`BlockDevice::discard`] (the volume sends the blocks a durable transaction
//! freed) unmaps blocks in RAM, so garbage collection stops copying their versions; a mount maps
//! what the medium holds again, which is harmless for blocks the volume holds free.
//!
//! **Mount** rebuilds the map by scanning (simple and robust; there are no checkpoints):
//! 1. for every block, its bad-block marker and the first valid record (its first sequence
//!    number and erase count);
//! 2. the blocks in increasing first-sequence order, every slot: a slot whose pages all carry
//!    valid records of the same version and whose data checksums hold maps its logical block (a
//!    later one overrides an earlier). A torn page fails its checksum, so a torn version is
//!    ignored and the previous one stays mapped;
//! 3. per-block valid-slot counts from the map; blocks with none are free; blocks whose erase
//!    count could not be read get the mean; the last-written block is resumed as the head after
//!    a one-slot gap (the slot a cut program may have touched without changing a bit is never
//!    programmed again, so gaps of one erased slot can sit between versions).
//!
//! Mount reads one spare area per good block, plus every page of every block that holds a
//! record, and orders the blocks in O(blocks²) comparisons.
//!
//! **Durability.** A page program is complete when [`NandFlash::program_page`] returns, and a
//! version is mapped only after all its pages are programmed; the previous version stays on
//! the medium until its erase block is erased, which happens only once the block holds no
//! mapped version. So every write acknowledged by `write_block` survives a power cut, and a
//! logical block reads as its last acknowledged version or (for the write in flight) the new
//! one — never a mix. [`BlockDevice::flush`] writes the gathered appends; a cut during it leaves
//! the appended block with its earlier sectors and, of the ones in flight, any of them whole (its
//! sum holds) and the others reading erased (in a sectored layout), or its previous version.
//!
//! **Garbage collection.** Before each host write, free space (free blocks plus the head's
//! room) is brought back to [`GC_FREE_BLOCKS`] (3) blocks' worth of slots by relocating the
//! valid versions of a victim: the used block with the fewest, where a block that lags behind
//! the least-worn used block in erases counts `slots_per_block / 4` fewer per erase of lag (so
//! lagging blocks are collected while they are nearly as cheap). A victim has at most
//! `slots_per_block − 1` valid versions, so that much free space lets its relocation finish even
//! after a cut has cost a gap slot and a free block has failed to erase — and a cut in the
//! middle of a relocation never leaves a medium with nowhere to write. [`FtlConfig::reserve_blocks`]
//! erase blocks are held back from the logical capacity (at least [`MIN_RESERVE`] = 4, plus one
//! per bad block to be absorbed); the rest of the reserve lowers the write amplification (see
//! the wear test for figures under uniformly random writes).
//!
//! **Wear leveling.** Dynamic: the least-worn free block becomes the next head, and garbage
//! collection favours lagging blocks. Static: when the head is full and every free block is
//! at least `wear_spread − 1` erases above the least-worn used block, that block (holding cold
//! data) is relocated so it takes its turn. Target: max − min erase count over good blocks
//! within [`FtlConfig::wear_spread`] (2 by default; 1 measured after 50× the capacity in
//! random writes).
//!
//! **Bad blocks.** Blocks whose marker reads bad at mount are skipped. When a program fails with
//! [`NandErrorKind::BlockFailed`] the block's valid versions are relocated to a new head, the
//! write is retried there, and the block is marked bad; an erase that fails marks the block bad
//! and another one is taken. A cut in the middle of this leaves the block unmarked; it fails
//! again the next time it is used and is retired then. A program the medium refuses
//! ([`NandErrorKind::ProgramRule`], content the scan did not expect) closes the head block and
//! goes on in another.
//!
//! # RAM
//!
//! Caller-provided and fixed ([`FtlMemory`], sized by [`FtlLayout::ram_bytes`]): 4 bytes per
//! logical block (the map), 16 bytes per erase block ([`BlockInfo`]), one page of data buffer
//! and one logical block that gathers log appends until a flush. With the default reserve a
//! whole W25N01GV (1,024 blocks of 64 × 2 KiB pages) takes 255,488 bytes as 2 KiB logical
//! blocks (58,752 of them) and 140,032 bytes as 4 KiB blocks; a 32-block slice of it 11,264 /
//! 9,984 bytes. Nothing else is allocated; the stack holds a
//! few 24-byte records. (A full map in RAM is the price of simplicity: a RAM-tight design uses
//! a slice of the part or larger logical blocks.)
//!
//! Nothing read from the medium can make it panic: records are checksummed, and numbers taken
//! from them are range-checked before use.

use core::fmt;

use vde_nostd::{BlockDevice, BlockNo, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE};

use crate::nand::{BlockStatus, NandErrorKind, NandFlash, NandFlashError, NandGeometry, PageAddr};

mod meta;
#[cfg(any(test, feature = "std"))]
mod owned;

#[cfg(any(test, feature = "std"))]
pub use owned::OwnedFtlMemory;

use meta::{data_sum, sector_sum, Meta, SECTORED, SEQ_MAX};
pub use meta::{META_LEN, SECTOR_SUM_LEN};

/// Most sectors per page a sectored layout handles.
const MAX_SECTORS: usize = 32;
/// Spare bytes read with a page: the record and, in a sectored layout, a sum per sector.
const SPARE_BUF: usize = META_LEN + SECTOR_SUM_LEN * MAX_SECTORS;

/// Blocks' worth of free space garbage collection keeps before each host write: enough to finish
/// relocating any victim after a cut has cost a gap slot and a block has failed to erase.
pub const GC_FREE_BLOCKS: u32 = 3;

/// Fewest reserve erase blocks: [`GC_FREE_BLOCKS`] of free space plus one, so that garbage
/// collection always finds a block with an invalid slot. Every bad block takes one more.
pub const MIN_RESERVE: u32 = GC_FREE_BLOCKS + 1;

/// How deep bad-block handling may nest (a block failing while relocating out of a failing
/// block) before giving up with [`FtlError::NoSpace`].
const MAX_RETIRE_DEPTH: u32 = 4;

/// A map entry with no version.
const UNMAPPED: u32 = u32::MAX;

/// Sizing and policy of an [`Ftl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FtlConfig {
    /// Logical block size in bytes: a power of two in 512..=65536 and a multiple of the page
    /// size.
    pub block_size: usize,
    /// Erase blocks held back from the logical capacity, for bad blocks (factory and grown) and
    /// garbage collection: at least [`MIN_RESERVE`]. More lowers write amplification.
    pub reserve_blocks: u32,
    /// Target spread (max − min) of erase counts over good blocks that static wear leveling
    /// keeps; 0 turns static wear leveling off.
    pub wear_spread: u32,
}

impl FtlConfig {
    /// `block_size` with [`default_reserve`](Self::default_reserve) for `geometry` and a wear
    /// spread of 2.
    pub const fn new(geometry: &NandGeometry, block_size: usize) -> FtlConfig {
        FtlConfig {
            block_size,
            reserve_blocks: Self::default_reserve(geometry.block_count),
            wear_spread: 2,
        }
    }

    /// [`MIN_RESERVE`] plus a tenth of the blocks: room for bad blocks (datasheets allow about
    /// 2 %) and garbage-collection headroom. More reserve, less write amplification.
    pub const fn default_reserve(blocks: u32) -> u32 {
        MIN_RESERVE + blocks / 10
    }
}

/// The shape an [`FtlConfig`] gives a medium.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FtlLayout {
    /// Logical block size.
    pub block_size: usize,
    /// Pages per logical block version.
    pub pages_per_slot: u32,
    /// Versions per erase block.
    pub slots_per_block: u32,
    /// Erase blocks of the medium.
    pub erase_blocks: u32,
    /// Erase blocks held back.
    pub reserve_blocks: u32,
    /// Logical blocks presented: `(erase_blocks − reserve_blocks) × slots_per_block`.
    pub logical_blocks: u32,
    /// Page data size (the page buffer needed).
    pub page_size: usize,
    /// Bytes of a sector program when the log's appends are programmed a sector at a time
    /// (the part [programs partially](NandGeometry::programs_partially), a version spans at
    /// most 127 pages and the spare area holds a record and a sum per sector); 0 if every
    /// version is programmed whole.
    pub sector_size: usize,
}

impl FtlLayout {
    /// The layout of `config` on `geometry`, or why it does not fit.
    pub fn compute(geometry: &NandGeometry, config: &FtlConfig) -> Result<Self, FtlSetupError> {
        let bs = config.block_size;
        let ps = geometry.page_size;
        if !bs.is_power_of_two()
            || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&bs)
            || ps == 0
            || !bs.is_multiple_of(ps)
        {
            return Err(FtlSetupError::BadBlockSize { block_size: bs });
        }
        if geometry.spare_size < META_LEN {
            return Err(FtlSetupError::SpareTooSmall {
                spare: geometry.spare_size,
            });
        }
        let pages = bs / ps;
        let pages_per_slot = u32::try_from(pages)
            .ok()
            .filter(|&p| p <= u32::from(u8::MAX) && p <= geometry.pages_per_block)
            .ok_or(FtlSetupError::BadBlockSize { block_size: bs })?;
        let slots_per_block = geometry.pages_per_block / pages_per_slot;
        let nb = geometry.block_count;
        if slots_per_block > u32::from(u16::MAX) {
            return Err(FtlSetupError::TooLarge);
        }
        if config.reserve_blocks < MIN_RESERVE || config.reserve_blocks >= nb {
            return Err(FtlSetupError::BadReserve {
                reserve: config.reserve_blocks,
                blocks: nb,
            });
        }
        let sectors = geometry.sectors_per_page();
        let sector_size = if geometry.programs_partially()
            && pages_per_slot < 128
            && geometry.spare_size >= META_LEN + SECTOR_SUM_LEN * sectors
        {
            geometry.sector_size
        } else {
            0
        };
        let total = u64::from(nb) * u64::from(slots_per_block);
        let logical = u64::from(nb - config.reserve_blocks) * u64::from(slots_per_block);
        if total >= u64::from(UNMAPPED) || logical == 0 {
            return Err(FtlSetupError::TooLarge);
        }
        Ok(FtlLayout {
            block_size: bs,
            pages_per_slot,
            slots_per_block,
            erase_blocks: nb,
            reserve_blocks: config.reserve_blocks,
            logical_blocks: logical as u32,
            page_size: ps,
            sector_size,
        })
    }

    /// Entries the map needs (one per logical block).
    pub fn map_entries(&self) -> usize {
        self.logical_blocks as usize
    }

    /// [`BlockInfo`] entries needed (one per erase block).
    pub fn block_entries(&self) -> usize {
        self.erase_blocks as usize
    }

    /// Bytes of RAM the [`FtlMemory`] takes: 4 per logical block, 16 per erase block, a page,
    /// a logical block.
    pub fn ram_bytes(&self) -> usize {
        self.map_entries() * 4
            + self.block_entries() * core::mem::size_of::<BlockInfo>()
            + self.page_size
            + self.block_size
    }
}

/// Why an [`Ftl`] cannot be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FtlSetupError {
    /// The block size is not a power of two in 512..=65536, not a multiple of the page size, or
    /// spans more pages than an erase block (or 255).
    BadBlockSize {
        /// The requested block size.
        block_size: usize,
    },
    /// The medium's user spare area cannot hold the [`META_LEN`]-byte record.
    SpareTooSmall {
        /// User spare bytes per page.
        spare: usize,
    },
    /// The reserve is below [`MIN_RESERVE`] or leaves no block for data.
    BadReserve {
        /// Reserve asked for.
        reserve: u32,
        /// Erase blocks of the medium.
        blocks: u32,
    },
    /// More slots than a `u32` map entry can address.
    TooLarge,
    /// A caller-provided slice is too short.
    MemoryTooSmall {
        /// Which: `"map"`, `"blocks"` or `"page"`.
        what: &'static str,
        /// Entries (or bytes) needed.
        need: usize,
        /// Entries (or bytes) given.
        got: usize,
    },
}

impl fmt::Display for FtlSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FtlSetupError::BadBlockSize { block_size } => {
                write!(f, "block size {block_size} does not fit the pages")
            }
            FtlSetupError::SpareTooSmall { spare } => {
                write!(f, "{spare} spare bytes per page, {META_LEN} needed")
            }
            FtlSetupError::BadReserve { reserve, blocks } => write!(
                f,
                "reserve of {reserve} erase blocks of {blocks} (at least {MIN_RESERVE})"
            ),
            FtlSetupError::TooLarge => f.write_str("too many slots for the map"),
            FtlSetupError::MemoryTooSmall { what, need, got } => {
                write!(f, "{what} has {got} entries, {need} needed")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for FtlSetupError {}

/// Errors of an [`Ftl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FtlError<E> {
    /// The medium failed (a power loss, a bus error, a rule broken).
    Nand(E),
    /// Setup refused.
    Setup(FtlSetupError),
    /// Logical block number past the end.
    OutOfRange,
    /// Buffer length is not the block size.
    BadLength,
    /// A mapped page failed its checksum or could not be read.
    Corrupt {
        /// Where.
        addr: PageAddr,
    },
    /// No erase block to write to: too many bad blocks for the reserve (or bad-block handling
    /// nested too deep).
    NoSpace,
    /// The medium holds valid pages of another layout (another block size or a larger logical
    /// capacity): [`Ftl::format`] it first.
    Mismatch {
        /// Where.
        addr: PageAddr,
    },
}

impl<E: fmt::Debug> fmt::Display for FtlError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FtlError::Nand(e) => write!(f, "flash: {e:?}"),
            FtlError::Setup(e) => write!(f, "setup: {e}"),
            FtlError::OutOfRange => f.write_str("logical block out of range"),
            FtlError::BadLength => f.write_str("buffer length differs from the block size"),
            FtlError::Corrupt { addr } => {
                write!(f, "page {}:{} is corrupt", addr.block, addr.page)
            }
            FtlError::NoSpace => f.write_str("no usable erase block left"),
            FtlError::Mismatch { addr } => write!(
                f,
                "page {}:{} belongs to another layout",
                addr.block, addr.page
            ),
        }
    }
}

#[cfg(feature = "std")]
impl<E: fmt::Debug> std::error::Error for FtlError<E> {}

const FREE: u8 = 0;
const USED: u8 = 1;
const HEAD: u8 = 2;
const BAD: u8 = 3;
const RETIRING: u8 = 4;

/// Flag: the erase count was read from the medium (or counted here).
const EC_KNOWN: u8 = 1;
/// Flag: mount found a valid record in the block.
const HAS_DATA: u8 = 2;

/// What an [`Ftl`] keeps in RAM per erase block (16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BlockInfo {
    seq: u64,
    erases: u32,
    valid: u16,
    state: u8,
    flags: u8,
}

impl BlockInfo {
    /// An empty entry (to fill the caller's array).
    pub const EMPTY: BlockInfo = BlockInfo {
        seq: 0,
        erases: 0,
        valid: 0,
        state: FREE,
        flags: 0,
    };

    /// Erase count as the translation layer knows it.
    pub fn erase_count(&self) -> u32 {
        self.erases
    }

    /// Slots holding the mapped version of a logical block.
    pub fn valid_slots(&self) -> u16 {
        self.valid
    }

    /// Whether the block is bad (or being retired).
    pub fn is_bad(&self) -> bool {
        self.state == BAD || self.state == RETIRING
    }

    fn good(&self) -> bool {
        !self.is_bad()
    }
}

/// The RAM an [`Ftl`] works in, sized by [`FtlLayout`].
#[derive(Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FtlMemory<'r> {
    /// One entry per logical block.
    pub map: &'r mut [u32],
    /// One entry per erase block.
    pub blocks: &'r mut [BlockInfo],
    /// At least one page of data.
    pub page: &'r mut [u8],
    /// One logical block where [`BlockDevice::append`]s to a block gather until the next flush
    /// (or a write, read or append of another block) writes it once. Empty: every append
    /// rewrites its block at once.
    pub log: &'r mut [u8],
}

/// Counters of an [`Ftl`] since mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FtlStats {
    /// Logical blocks written by the host.
    pub host_writes: u64,
    /// Pages programmed (host data, relocations, and failed programs).
    pub pages_programmed: u64,
    /// Versions copied by garbage collection.
    pub gc_copies: u64,
    /// Versions copied by static wear leveling.
    pub wl_copies: u64,
    /// Versions copied out of failing blocks.
    pub bad_copies: u64,
    /// Erase blocks reclaimed by garbage collection.
    pub gc_victims: u64,
    /// Erase blocks relocated by static wear leveling.
    pub wl_victims: u64,
    /// Erases issued.
    pub erases: u64,
    /// Programs that failed with [`NandErrorKind::BlockFailed`].
    pub program_failures: u64,
    /// Erases that failed with [`NandErrorKind::BlockFailed`].
    pub erase_failures: u64,
    /// Programs the medium refused ([`NandErrorKind::ProgramRule`] or
    /// [`NandErrorKind::BadBlock`]: content the scan did not expect); the block was left.
    pub program_refusals: u64,
    /// Logical blocks unmapped by [`BlockDevice::discard`].
    pub discarded: u64,
    /// Commits programmed as sectors of an open version (no new version).
    pub sector_appends: u64,
}

impl FtlStats {
    /// Pages programmed per logical block written by the host, ×1000 (0 before any write).
    pub fn write_amplification_milli(&self) -> u64 {
        (self.pages_programmed * 1000)
            .checked_div(self.host_writes)
            .unwrap_or(0)
    }
}

/// The state of an [`Ftl`]'s medium.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FtlInfo {
    /// The layout.
    pub layout: FtlLayout,
    /// Good erase blocks.
    pub good_blocks: u32,
    /// Bad erase blocks found at mount.
    pub bad_at_mount: u32,
    /// Blocks that went bad since mount.
    pub grown_bad: u32,
    /// Free erase blocks.
    pub free_blocks: u32,
    /// Good blocks beyond those the logical capacity needs (`good − ⌈logical / slots⌉`): what
    /// is left for garbage collection and future bad blocks. Below [`MIN_RESERVE`] writes may
    /// fail with [`FtlError::NoSpace`] (the medium is worn out).
    pub spare_blocks: u32,
    /// Lowest erase count over good blocks.
    pub min_erases: u32,
    /// Highest erase count over good blocks.
    pub max_erases: u32,
}

#[derive(Debug, Clone, Copy)]
struct Head {
    block: u32,
    next: u32,
}

/// A sectored version whose slot is the last programmed one of its erase block: appends
/// program its next sectors in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Open {
    lba: u32,
    block: u32,
    slot: u32,
    seq: u64,
    /// Byte offset of its first sector not programmed.
    next: usize,
    /// Programs the page holding byte `next − 1` has taken (0 when `next` starts a page).
    programs: u32,
}

/// Where a version's data comes from.
#[derive(Clone, Copy)]
enum Src<'s> {
    Host(&'s [u8]),
    Copy {
        block: u32,
        slot: u32,
    },
    /// The block's current version (erased if none) with `data` at byte `offset`.
    Patch {
        offset: usize,
        data: &'s [u8],
    },
    /// Bytes `0..to` of `data` (a whole block), as a sectored version.
    Sectors {
        data: &'s [u8],
        to: usize,
    },
}

/// Why versions are relocated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    Gc,
    Wl,
    Bad,
}

/// Outcome of programming a version.
enum Prog<E> {
    /// The destination block failed: retire it and retry.
    BlockFailed,
    /// The medium refused the program (page not erased, or the block is marked bad): leave the
    /// block and retry elsewhere.
    Refused {
        /// The block is marked bad.
        bad: bool,
    },
    /// Reading the source failed; nothing was programmed.
    Source(FtlError<E>),
    /// The program failed otherwise (power loss, bus error).
    Err(FtlError<E>),
}

/// The core's [`BlockDevice`] over a NAND medium. See the [module docs](self).
pub struct Ftl<'r, N: NandFlash> {
    nand: N,
    map: &'r mut [u32],
    blocks: &'r mut [BlockInfo],
    page: &'r mut [u8],
    log: &'r mut [u8],
    pending: Option<u32>,
    /// The logical block whose mapped version `log` holds, after its appends were written.
    kept: Option<u32>,
    /// Bytes of `pending` appended since it was last written (lowest offset, end), and whether
    /// an append at offset 0 started it afresh.
    span: Option<(usize, usize)>,
    restart: bool,
    /// The sectored version the next appends to its block may extend in place.
    open: Option<Open>,
    layout: FtlLayout,
    wear_spread: u32,
    head: Option<Head>,
    next_seq: u64,
    free_blocks: u32,
    bad_at_mount: u32,
    grown_bad: u32,
    in_gc: bool,
    depth: u32,
    stats: FtlStats,
}

impl<N: NandFlash> fmt::Debug for Ftl<'_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ftl")
            .field("layout", &self.layout)
            .field("head", &self.head)
            .field("next_seq", &self.next_seq)
            .field("free_blocks", &self.free_blocks)
            .field("stats", &self.stats)
            .finish()
    }
}

#[cfg(feature = "defmt")]
impl<N: NandFlash> defmt::Format for Ftl<'_, N> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "Ftl {{ layout: {}, next_seq: {}, free_blocks: {}, stats: {} }}",
            self.layout,
            self.next_seq,
            self.free_blocks,
            self.stats
        )
    }
}

type Res<T, N> = Result<T, FtlError<<N as NandFlash>::Error>>;

fn all_erased(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0xFF)
}

impl<'r, N: NandFlash> Ftl<'r, N> {
    /// Erases every good block of `nand` (marking bad those whose erase fails), then mounts the
    /// empty medium. Everything on it is lost, including the erase counts (they restart from
    /// the mean of what is known, here 0).
    pub fn format(nand: N, mem: FtlMemory<'r>, config: &FtlConfig) -> Res<Self, N> {
        let mut nand = nand;
        let geo = nand.geometry();
        FtlLayout::compute(&geo, config).map_err(FtlError::Setup)?;
        for b in 0..geo.block_count {
            if nand.block_status(b).map_err(FtlError::Nand)? == BlockStatus::Bad {
                continue;
            }
            if let Err(e) = nand.erase_block(b) {
                if e.kind() != NandErrorKind::BlockFailed {
                    return Err(FtlError::Nand(e));
                }
                Self::mark(&mut nand, b)?;
            }
        }
        Self::mount(nand, mem, config)
    }

    /// Mounts `nand`: rebuilds the map by scanning (see the [module docs](self)).
    pub fn mount(nand: N, mem: FtlMemory<'r>, config: &FtlConfig) -> Res<Self, N> {
        let geo = nand.geometry();
        let layout = FtlLayout::compute(&geo, config).map_err(FtlError::Setup)?;
        let short = |what, need: usize, got: usize| {
            (got < need).then_some(FtlError::Setup(FtlSetupError::MemoryTooSmall {
                what,
                need,
                got,
            }))
        };
        if let Some(e) = short("map", layout.map_entries(), mem.map.len())
            .or(short("blocks", layout.block_entries(), mem.blocks.len()))
            .or(short("page", layout.page_size, mem.page.len()))
        {
            return Err(e);
        }
        let mut ftl = Ftl {
            nand,
            map: mem.map,
            blocks: mem.blocks,
            page: mem.page,
            log: if mem.log.len() >= layout.block_size {
                mem.log
            } else {
                &mut []
            },
            pending: None,
            kept: None,
            span: None,
            restart: false,
            open: None,
            layout,
            wear_spread: config.wear_spread,
            head: None,
            next_seq: 1,
            free_blocks: 0,
            bad_at_mount: 0,
            grown_bad: 0,
            in_gc: false,
            depth: 0,
            stats: FtlStats::default(),
        };
        ftl.scan()?;
        Ok(ftl)
    }

    /// Forgets the RAM state and scans the medium again, as a mount after a reboot would (the
    /// counters are kept).
    pub fn rescan(&mut self) -> Res<(), N> {
        self.scan()
    }

    /// The medium.
    pub fn nand(&self) -> &N {
        &self.nand
    }

    /// The medium, mutably (for counters and fault injection; writing through it bypasses the
    /// translation layer).
    pub fn nand_mut(&mut self) -> &mut N {
        &mut self.nand
    }

    /// Gives the medium back.
    pub fn into_inner(self) -> N {
        self.nand
    }

    /// The layout.
    pub fn layout(&self) -> &FtlLayout {
        &self.layout
    }

    /// Counters since mount.
    pub fn stats(&self) -> FtlStats {
        self.stats
    }

    /// What the translation layer knows about erase block `block`.
    pub fn block_info(&self, block: u32) -> Option<BlockInfo> {
        self.blocks.get(block as usize).copied()
    }

    /// Capacity, bad blocks, free blocks and wear.
    pub fn info(&self) -> FtlInfo {
        let n = self.layout.erase_blocks as usize;
        let good = self.blocks.iter().take(n).filter(|b| b.good());
        let (mut cnt, mut min, mut max) = (0u32, u32::MAX, 0u32);
        for b in good {
            cnt += 1;
            min = min.min(b.erases);
            max = max.max(b.erases);
        }
        let needed = self
            .layout
            .logical_blocks
            .div_ceil(self.layout.slots_per_block.max(1));
        FtlInfo {
            layout: self.layout,
            good_blocks: cnt,
            bad_at_mount: self.bad_at_mount,
            grown_bad: self.grown_bad,
            free_blocks: self.free_blocks,
            spare_blocks: cnt.saturating_sub(needed),
            min_erases: if cnt == 0 { 0 } else { min },
            max_erases: max,
        }
    }

    // ------------------------------------------------------------------------------------
    // addresses

    fn slots(&self) -> u32 {
        self.layout.slots_per_block
    }

    fn loc(&self, block: u32, slot: u32) -> u32 {
        block * self.slots() + slot
    }

    fn unloc(&self, loc: u32) -> (u32, u32) {
        let s = self.slots().max(1);
        (loc / s, loc % s)
    }

    fn addr(&self, block: u32, slot: u32, idx: u32) -> PageAddr {
        PageAddr::new(block, slot * self.layout.pages_per_slot + idx)
    }

    fn info_mut(&mut self, block: u32) -> Option<&mut BlockInfo> {
        self.blocks.get_mut(block as usize)
    }

    fn state(&self, block: u32) -> u8 {
        self.blocks.get(block as usize).map_or(BAD, |b| b.state)
    }

    fn set_state(&mut self, block: u32, state: u8) {
        let old = self.state(block);
        if old == FREE && state != FREE {
            self.free_blocks = self.free_blocks.saturating_sub(1);
        } else if old != FREE && state == FREE {
            self.free_blocks += 1;
        }
        if let Some(b) = self.info_mut(block) {
            b.state = state;
        }
    }

    // ------------------------------------------------------------------------------------
    // mount

    fn scan(&mut self) -> Res<(), N> {
        let nb = self.layout.erase_blocks;
        self.head = None;
        self.free_blocks = 0;
        self.bad_at_mount = 0;
        self.grown_bad = 0;
        self.in_gc = false;
        self.depth = 0;
        self.pending = None;
        self.kept = None;
        self.span = None;
        self.restart = false;
        self.open = None;
        self.map.fill(UNMAPPED);
        for b in self.blocks.iter_mut() {
            *b = BlockInfo::EMPTY;
        }
        let mut max_seq = 0u64;
        // 1. Markers and each block's first record.
        for b in 0..nb {
            if self.nand.block_status(b).map_err(FtlError::Nand)? == BlockStatus::Bad {
                if let Some(i) = self.info_mut(b) {
                    i.state = BAD;
                }
                self.bad_at_mount += 1;
                continue;
            }
            for p in 0..self.slots() * self.layout.pages_per_slot {
                let mut m = [0u8; META_LEN];
                match self.nand.read_page(PageAddr::new(b, p), &mut [], &mut m) {
                    Ok(()) => {}
                    Err(e) if e.kind() == NandErrorKind::Uncorrectable => continue,
                    Err(e) => return Err(FtlError::Nand(e)),
                }
                if let Some(meta) = Meta::decode(&m) {
                    max_seq = max_seq.max(meta.seq);
                    if let Some(i) = self.info_mut(b) {
                        i.seq = meta.seq;
                        i.erases = meta.erases;
                        i.flags = EC_KNOWN | HAS_DATA;
                    }
                    break;
                }
                if all_erased(&m) {
                    break;
                }
            }
        }
        // 2. Blocks in write order; later versions override earlier ones.
        let mut last: Option<(u64, u32)> = None;
        let mut head: Option<Head> = None;
        loop {
            let mut next: Option<(u64, u32)> = None;
            for (b, i) in self.blocks.iter().take(nb as usize).enumerate() {
                let key = (i.seq, b as u32);
                if i.flags & HAS_DATA != 0
                    && i.state != BAD
                    && last.is_none_or(|l| key > l)
                    && next.is_none_or(|n| key < n)
                {
                    next = Some(key);
                }
            }
            let Some(key) = next else { break };
            last = Some(key);
            // The last-written block is resumed after a one-slot gap.
            let resume = self.scan_block(key.1, &mut max_seq)?.map_or(1, |t| t + 2);
            head = (resume < self.slots()).then_some(Head {
                block: key.1,
                next: resume,
            });
        }
        // 3. Valid counts, free blocks, unknown erase counts, the head.
        for i in 0..self.layout.logical_blocks as usize {
            let loc = self.map.get(i).copied().unwrap_or(UNMAPPED);
            if loc == UNMAPPED {
                continue;
            }
            let (b, _) = self.unloc(loc);
            if let Some(info) = self.info_mut(b) {
                info.valid = info.valid.saturating_add(1);
            }
        }
        let (mut known, mut sum) = (0u64, 0u64);
        for i in self.blocks.iter().take(nb as usize) {
            if i.state != BAD && i.flags & EC_KNOWN != 0 {
                known += 1;
                sum += u64::from(i.erases);
            }
        }
        let avg = u32::try_from(sum.checked_div(known).unwrap_or(0)).unwrap_or(u32::MAX);
        self.free_blocks = 0;
        for i in self.blocks.iter_mut().take(nb as usize) {
            if i.state == BAD {
                continue;
            }
            if i.flags & EC_KNOWN == 0 {
                i.erases = avg;
                i.flags |= EC_KNOWN;
            }
            if i.valid > 0 {
                i.state = USED;
            } else {
                i.state = FREE;
                self.free_blocks += 1;
            }
        }
        if let Some(h) = head {
            self.set_state(h.block, HEAD);
            self.head = Some(h);
        }
        self.next_seq = max_seq.saturating_add(1);
        Ok(())
    }

    /// Maps the valid versions of block `b`; returns the index of its last slot that is not
    /// entirely erased. Reads every slot: a slot left erased as a gap after a remount may be
    /// followed by versions written after it.
    fn scan_block(&mut self, b: u32, max_seq: &mut u64) -> Res<Option<u32>, N> {
        let pps = self.layout.pages_per_slot;
        let ps = self.layout.page_size;
        let mut prev: Option<u64> = None;
        let mut last = None;
        let sums = self.sums();
        let ss = self.layout.sector_size.max(1);
        for s in 0..self.slots() {
            let mut slot: Option<Meta> = None;
            let mut ok = true;
            let mut erased = true;
            for i in 0..pps {
                // The sectors of this page a sectored version's first program wrote (its page-0
                // record's base length): each must be intact.
                let base = slot
                    .filter(|f| f.sectored())
                    .map_or(0, |f| f.data_sum as usize);
                let required = sectors_below(base.saturating_sub(i as usize * ps), ps, ss);
                let addr = self.addr(b, s, i);
                let mut buf = [0u8; SPARE_BUF];
                let sp = buf
                    .get_mut(..META_LEN + SECTOR_SUM_LEN * sums)
                    .ok_or(FtlError::BadLength)?;
                let data = self.page.get_mut(..ps).ok_or(FtlError::BadLength)?;
                match self.nand.read_page(addr, data, sp) {
                    Ok(()) => {}
                    Err(e) if e.kind() == NandErrorKind::Uncorrectable => {
                        ok = false;
                        erased = false;
                        continue;
                    }
                    Err(e) => return Err(FtlError::Nand(e)),
                }
                let data = self.page.get_mut(..ps).ok_or(FtlError::BadLength)?;
                // A sectored version needs only its first page's first sector: the pages
                // after it may be erased or partly programmed.
                let sectored = slot.is_some_and(|f| f.sectored());
                if all_erased(sp) && all_erased(data) {
                    ok &= sectored && required == 0;
                    continue;
                }
                erased = false;
                let Some(meta) = sp.first_chunk::<META_LEN>().and_then(Meta::decode) else {
                    ok &= sectored && required == 0;
                    continue;
                };
                *max_seq = (*max_seq).max(meta.seq);
                if u32::from(meta.pages & !SECTORED) != pps
                    || meta.lba >= self.layout.logical_blocks
                    || (meta.sectored() && sums == 0)
                {
                    return Err(FtlError::Mismatch { addr });
                }
                let same = match slot {
                    None => i == 0,
                    Some(first) => {
                        first.lba == meta.lba && first.seq == meta.seq && first.pages == meta.pages
                    }
                };
                if !same || u32::from(meta.idx) != i || !page_intact(data, sp, &meta) {
                    ok = false;
                }
                // Page 0 is where the base is read from: its own sectors are checked here.
                let required = if i == 0 && meta.sectored() {
                    sectors_below(meta.data_sum as usize, ps, ss)
                } else {
                    required
                };
                if meta.sectored() && check_sectors(data, sp, &meta) & required != required {
                    ok = false;
                }
                if slot.is_none() {
                    slot = Some(meta);
                }
            }
            if !erased {
                last = Some(s);
            }
            match slot {
                Some(m) if ok && prev.is_none_or(|p| m.seq > p) => {
                    prev = Some(m.seq);
                    let loc = self.loc(b, s);
                    if let Some(e) = self.map.get_mut(m.lba as usize) {
                        *e = loc;
                    }
                }
                _ => {}
            }
        }
        Ok(last)
    }

    // ------------------------------------------------------------------------------------
    // writing

    fn take_seq(&mut self) -> Res<u64, N> {
        let s = self.next_seq;
        if s > SEQ_MAX {
            return Err(FtlError::NoSpace);
        }
        self.next_seq += 1;
        Ok(s)
    }

    /// Writes the block the appends gathered in, if any: sector programs that extend its open
    /// version, or one new version.
    fn write_pending(&mut self) -> Res<(), N> {
        let Some(lba) = self.pending.take() else {
            return Ok(());
        };
        let bs = self.layout.block_size;
        let log = core::mem::take(&mut self.log);
        let r = match log.get(..bs) {
            Some(l) if self.layout.sector_size > 0 => self.write_sectors(lba, l),
            Some(l) => self
                .make_room()
                .and_then(|()| self.put(lba, Src::Host(l)).map(|_| ())),
            None => Err(FtlError::BadLength),
        };
        self.log = log;
        if r.is_err() {
            // Retried by the next flush (as a new version: the open one is closed).
            self.pending = Some(lba);
            self.restart = true;
            self.open = None;
        }
        r?;
        self.span = None;
        self.restart = false;
        // The buffer still holds what was just written: the block's next append (the log's
        // next commit) and its reads need no read back.
        self.kept = Some(lba);
        self.stats.host_writes += 1;
        Ok(())
    }

    /// Writes a version of `lba` from `src` at the head, retiring blocks that fail; returns
    /// where (block, slot, sequence number).
    /// Writes the appends gathered for `lba` (`data`, the whole block): the sectors after its
    /// open version's last, in place, when the appends continue it; otherwise a new sectored
    /// version of every sector up to the last that is not erased.
    fn write_sectors(&mut self, lba: u32, data: &[u8]) -> Res<(), N> {
        let ss = self.layout.sector_size;
        let ps = self.layout.page_size;
        let bs = self.layout.block_size;
        let nop = self.nand.geometry().partial_programs;
        let (lo, hi) = self.span.unwrap_or((0, 0));
        let to = hi.next_multiple_of(ss).min(bs);
        if let Some(o) = self.open {
            let continues = o.lba == lba
                && !self.restart
                && lo == o.next
                && to > o.next
                && (o.next.is_multiple_of(ps) || o.programs < nop);
            if continues {
                match self.program_sectors_range(o.block, o.slot, lba, o.seq, data, o.next, to) {
                    Ok(()) => {
                        let same_page = (to - 1) / ps == (o.next.saturating_sub(1)) / ps
                            && !o.next.is_multiple_of(ps);
                        self.stats.sector_appends += 1;
                        self.open = Some(Open {
                            next: to,
                            programs: if to.is_multiple_of(ps) {
                                0
                            } else if same_page {
                                o.programs + 1
                            } else {
                                1
                            },
                            ..o
                        });
                        return Ok(());
                    }
                    // A failed or refused block is left (the appends go into a new version
                    // below); any other error stops.
                    Err(e) => self.after_failed_program(o.block, e)?,
                }
            }
        }
        // A new version: every sector up to the last byte that is not erased (at least one).
        let used = data
            .iter()
            .rposition(|&x| x != 0xFF)
            .map_or(1, |p| p + 1)
            .max(hi);
        let to = used.next_multiple_of(ss).min(bs);
        self.make_room()?;
        let (block, slot, seq) = self.put(lba, Src::Sectors { data, to })?;
        self.open = Some(Open {
            lba,
            block,
            slot,
            seq,
            next: to,
            programs: u32::from(!to.is_multiple_of(ps)),
        });
        Ok(())
    }

    fn put(&mut self, lba: u32, src: Src<'_>) -> Res<(u32, u32, u64), N> {
        // Any program at the head ends the open version's right to more sector programs.
        self.open = None;
        let mut refusals = 0u32;
        loop {
            let (b, s) = self.alloc_slot()?;
            let seq = self.take_seq()?;
            match self.program_slot(b, s, lba, seq, src) {
                Ok(()) => {
                    self.remap(lba, b, s);
                    return Ok((b, s, seq));
                }
                Err(e) => {
                    let refused = matches!(e, Prog::Refused { .. });
                    self.after_failed_program(b, e)?;
                    if refused {
                        refusals += 1;
                        if refusals > self.layout.erase_blocks {
                            return Err(FtlError::NoSpace);
                        }
                    }
                }
            }
        }
    }

    /// Handles a program of block `b` that did not complete: a failed block is retired (its
    /// versions relocated) and a refused one left, `Ok` for the caller to program elsewhere;
    /// any other error is returned, after closing the head where the program may have touched
    /// a page (nothing more is programmed in that block this session).
    fn after_failed_program(&mut self, b: u32, e: Prog<N::Error>) -> Res<(), N> {
        match e {
            Prog::BlockFailed => {
                self.stats.program_failures += 1;
                self.retire(b)
            }
            Prog::Refused { bad } => {
                // Content the scan did not expect (or a marker it missed): never trust the
                // rest of this block in this session.
                self.stats.program_refusals += 1;
                self.close_head();
                if bad {
                    self.set_state(b, BAD);
                    self.grown_bad += 1;
                }
                Ok(())
            }
            Prog::Source(e) => Err(e),
            Prog::Err(e) => {
                // The failed page may be partly programmed.
                self.close_head();
                Err(e)
            }
        }
    }

    fn program_slot(
        &mut self,
        b: u32,
        s: u32,
        lba: u32,
        seq: u64,
        src: Src<'_>,
    ) -> Result<(), Prog<N::Error>> {
        let ps = self.layout.page_size;
        let erases = self.blocks.get(b as usize).map_or(0, |i| i.erases);
        if let Src::Sectors { data, to } = src {
            return self.program_sectors_range(b, s, lba, seq, data, 0, to);
        }
        // The version read from: its page 0's record, for the pages after it.
        let mut first = None;
        for i in 0..self.layout.pages_per_slot {
            let idx = i as u8;
            if let Src::Copy { block, slot } = src {
                first = Some(
                    self.read_version_page(block, slot, i, Some(lba), first)
                        .map_err(Prog::Source)?,
                );
            }
            if let Src::Patch { offset, data } = src {
                let old = self.map.get(lba as usize).copied().unwrap_or(UNMAPPED);
                if old == UNMAPPED {
                    if let Some(p) = self.page.get_mut(..ps) {
                        p.fill(0xFF);
                    }
                } else {
                    let (ob, os) = self.unloc(old);
                    first = Some(
                        self.read_version_page(ob, os, i, Some(lba), first)
                            .map_err(Prog::Source)?,
                    );
                }
                // The part of [offset, offset + len) inside page i.
                let (p0, p1) = (i as usize * ps, (i as usize + 1) * ps);
                let (s, e) = (offset.max(p0), (offset + data.len()).min(p1));
                if s < e {
                    if let (Some(d), Some(src)) = (
                        self.page.get_mut(s - p0..e - p0),
                        data.get(s - offset..e - offset),
                    ) {
                        d.copy_from_slice(src);
                    }
                }
            }
            let data = match src {
                Src::Host(buf) => {
                    let at = i as usize * ps;
                    buf.get(at..at + ps).ok_or(Prog::Err(FtlError::BadLength))?
                }
                Src::Copy { .. } | Src::Patch { .. } | Src::Sectors { .. } => {
                    self.page.get(..ps).ok_or(Prog::Err(FtlError::BadLength))?
                }
            };
            let meta = Meta {
                lba,
                seq,
                idx,
                pages: self.layout.pages_per_slot as u8,
                erases,
                data_sum: data_sum(data, lba, seq, idx),
            }
            .encode();
            self.stats.pages_programmed += 1;
            if let Err(e) = self.nand.program_page(self.addr(b, s, i), data, &meta) {
                return Err(prog_error(e));
            }
        }
        Ok(())
    }

    /// Programs bytes `from..to` (whole sectors) of sectored version `seq` of `lba` in slot
    /// `(b, s)` from `data` (the whole block), a program per page they touch: the page's
    /// record with its first sector program, each sector's sum with the sector.
    #[allow(clippy::too_many_arguments)]
    fn program_sectors_range(
        &mut self,
        b: u32,
        s: u32,
        lba: u32,
        seq: u64,
        data: &[u8],
        from: usize,
        to: usize,
    ) -> Result<(), Prog<N::Error>> {
        let ps = self.layout.page_size;
        let ss = self.layout.sector_size;
        let spp = self.sums();
        if ss == 0 || !from.is_multiple_of(ss) || !to.is_multiple_of(ss) || to > data.len() {
            return Err(Prog::Err(FtlError::BadLength));
        }
        let erases = self.blocks.get(b as usize).map_or(0, |i| i.erases);
        let pages = self.layout.pages_per_slot as u8 | SECTORED;
        for i in from / ps..to.div_ceil(ps) {
            let p0 = i * ps;
            let (lo, hi) = (from.max(p0), to.min(p0 + ps));
            if lo >= hi {
                continue;
            }
            let idx = i as u8;
            let page = data
                .get(p0..p0 + ps)
                .ok_or(Prog::Err(FtlError::BadLength))?;
            let mut buf = [0xFFu8; SPARE_BUF];
            let sp = buf
                .get_mut(..META_LEN + SECTOR_SUM_LEN * spp)
                .ok_or(Prog::Err(FtlError::BadLength))?;
            if lo == p0 {
                // The version's first program (page 0 from byte 0) records how many bytes it
                // writes: a mount takes the version only if all of them are intact, so a cut
                // while it is written (it copies the block's earlier content) leaves the previous
                // version, never one that lost that content.
                let base = if from == 0 && i == 0 { to as u32 } else { 0 };
                let meta = Meta {
                    lba,
                    seq,
                    idx,
                    pages,
                    erases,
                    data_sum: base,
                };
                if let Some(m) = sp.get_mut(..META_LEN) {
                    m.copy_from_slice(&meta.encode());
                }
            }
            let (k0, k1) = ((lo - p0) / ss, (hi - p0) / ss);
            for k in k0..k1 {
                let sum = sector_sum(
                    page.get(k * ss..(k + 1) * ss).unwrap_or(&[]),
                    lba,
                    seq,
                    idx,
                    k,
                );
                let at = META_LEN + k * SECTOR_SUM_LEN;
                if let Some(d) = sp.get_mut(at..at + SECTOR_SUM_LEN) {
                    d.copy_from_slice(&sum.to_le_bytes());
                }
            }
            let bytes = page
                .get(k0 * ss..k1 * ss)
                .ok_or(Prog::Err(FtlError::BadLength))?;
            self.stats.pages_programmed += 1;
            if let Err(e) = self
                .nand
                .program_sectors(self.addr(b, s, i as u32), k0, bytes, sp)
            {
                return Err(prog_error(e));
            }
        }
        Ok(())
    }

    /// Sums per page a sectored page of this layout carries (0: none).
    fn sums(&self) -> usize {
        self.layout
            .page_size
            .checked_div(self.layout.sector_size)
            .unwrap_or(0)
    }

    /// Reads page `i` of the version in `(block, slot)` into the page buffer and checks it
    /// (its logical block against `lba` if given; `first`: its page 0's record, for `i > 0`);
    /// returns its page 0's record.
    fn read_version_page(
        &mut self,
        block: u32,
        slot: u32,
        i: u32,
        lba: Option<u32>,
        first: Option<Meta>,
    ) -> Res<Meta, N> {
        let ps = self.layout.page_size;
        let addr = self.addr(block, slot, i);
        let sectors = self.sums();
        let data = self.page.get_mut(..ps).ok_or(FtlError::BadLength)?;
        let meta = read_checked(&mut self.nand, addr, data, i, sectors, first)?;
        if lba.is_some_and(|l| l != meta.lba) {
            return Err(FtlError::Corrupt { addr });
        }
        Ok(meta)
    }

    fn remap(&mut self, lba: u32, b: u32, s: u32) {
        let new = self.loc(b, s);
        let old = self.map.get(lba as usize).copied().unwrap_or(UNMAPPED);
        if let Some(e) = self.map.get_mut(lba as usize) {
            *e = new;
        }
        if let Some(i) = self.info_mut(b) {
            i.valid = i.valid.saturating_add(1);
        }
        if old != UNMAPPED {
            self.release(old);
        }
    }

    /// The version at `loc` is no longer mapped: its erase block holds one valid version fewer,
    /// and becomes free when it holds none (unless it is the head).
    fn release(&mut self, loc: u32) {
        let (ob, _) = self.unloc(loc);
        let left = self.info_mut(ob).map_or(1, |i| {
            i.valid = i.valid.saturating_sub(1);
            i.valid
        });
        if left == 0 && self.state(ob) == USED {
            self.set_state(ob, FREE);
        }
    }

    /// Ends the head block: nothing more is programmed in it until it is erased.
    fn close_head(&mut self) {
        self.open = None;
        if let Some(h) = self.head.take() {
            let empty = self
                .blocks
                .get(h.block as usize)
                .is_none_or(|i| i.valid == 0);
            if self.state(h.block) == HEAD {
                self.set_state(h.block, if empty { FREE } else { USED });
            }
        }
    }

    /// The next slot at the head, taking (and erasing) the least-worn free block as the new
    /// head when needed.
    fn alloc_slot(&mut self) -> Res<(u32, u32), N> {
        loop {
            if let Some(h) = self.head.as_mut() {
                if h.next < self.layout.slots_per_block {
                    let at = (h.block, h.next);
                    h.next += 1;
                    return Ok(at);
                }
                self.close_head();
            }
            let b = self.least_worn(FREE).ok_or(FtlError::NoSpace)?;
            self.stats.erases += 1;
            if let Some(i) = self.info_mut(b) {
                i.erases = i.erases.saturating_add(1);
                i.flags |= EC_KNOWN;
            }
            match self.nand.erase_block(b) {
                Ok(()) => {
                    self.set_state(b, HEAD);
                    self.head = Some(Head { block: b, next: 0 });
                }
                Err(e) if e.kind() == NandErrorKind::BlockFailed => {
                    self.stats.erase_failures += 1;
                    self.set_state(b, BAD);
                    self.grown_bad += 1;
                    Self::mark(&mut self.nand, b)?;
                }
                Err(e) => return Err(FtlError::Nand(e)),
            }
        }
    }

    /// Slots that can be programmed without erasing a block holding data: free blocks and the
    /// head's room.
    fn free_space(&self) -> u64 {
        let room = self.head.map_or(0, |h| self.slots().saturating_sub(h.next));
        u64::from(self.free_blocks) * u64::from(self.slots()) + u64::from(room)
    }

    fn mark(nand: &mut N, b: u32) -> Res<(), N> {
        match nand.mark_bad(b) {
            Ok(()) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    NandErrorKind::BlockFailed | NandErrorKind::BadBlock
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(FtlError::Nand(e)),
        }
    }

    /// The good block in `state` with the fewest erases (ties: fewer valid slots, lower index).
    fn least_worn(&self, state: u8) -> Option<u32> {
        let mut best: Option<(u32, u16, u32)> = None;
        for (b, i) in self
            .blocks
            .iter()
            .take(self.layout.erase_blocks as usize)
            .enumerate()
        {
            let key = (i.erases, i.valid, b as u32);
            if i.state == state && best.is_none_or(|k| key < k) {
                best = Some(key);
            }
        }
        best.map(|k| k.2)
    }

    /// Garbage collection and static wear leveling before a host write: keeps at least
    /// [`GC_FREE_BLOCKS`] blocks' worth of free space (see the [module docs](self)).
    fn make_room(&mut self) -> Res<(), N> {
        if self.in_gc {
            return Ok(());
        }
        self.in_gc = true;
        let r = self.collect();
        self.in_gc = false;
        r
    }

    fn collect(&mut self) -> Res<(), N> {
        let nb = self.layout.erase_blocks as usize;
        let target = u64::from(GC_FREE_BLOCKS) * u64::from(self.slots());
        while self.free_space() < target {
            // Greedy (fewest valid versions), but a block worn less than the others counts
            // `slots / 4` fewer versions per erase it lags behind: a lagging block is taken
            // while it is nearly as cheap, before static wear leveling has to move it.
            let least = self
                .blocks
                .iter()
                .take(nb)
                .filter(|i| i.state == USED)
                .map(|i| i.erases)
                .min()
                .unwrap_or(0);
            let bonus = u64::from(self.slots() / 4);
            let mut best: Option<(u64, u32, u32)> = None;
            for (b, i) in self.blocks.iter().take(nb).enumerate() {
                let lag = u64::from(i.erases.saturating_sub(least)).min(4);
                let key = (u64::from(i.valid) + lag * bonus, i.erases, b as u32);
                // A full block gains nothing.
                let gain = u32::from(i.valid) < self.layout.slots_per_block;
                if i.state == USED && gain && best.is_none_or(|k| key < k) {
                    best = Some(key);
                }
            }
            let Some((_, _, victim)) = best else {
                // Nothing to gain; writes go on while there is room.
                break;
            };
            self.stats.gc_victims += 1;
            self.relocate(victim, Why::Gc)?;
            if self.state(victim) == USED {
                // A mapped version the victim should hold could not be found there.
                return Err(FtlError::Corrupt {
                    addr: PageAddr::new(victim, 0),
                });
            }
        }
        let head_full = self
            .head
            .is_none_or(|h| h.next >= self.layout.slots_per_block);
        if self.wear_spread == 0 || !head_full || self.free_space() < target {
            return Ok(());
        }
        // Static wear leveling: the next head would come from the free blocks; if all of them
        // are worn `wear_spread - 1` or more above the least-worn used block, move that block's
        // (cold) data so it can take its turn.
        let min_of = |want: u8| {
            self.blocks
                .iter()
                .take(nb)
                .filter(|i| i.state == want)
                .map(|i| i.erases)
                .min()
        };
        if let (Some(f), Some(u)) = (min_of(FREE), min_of(USED)) {
            if u < f && f >= u.saturating_add(self.wear_spread - 1) {
                if let Some(victim) = self.least_worn(USED) {
                    self.stats.wl_victims += 1;
                    self.relocate(victim, Why::Wl)?;
                }
            }
        }
        Ok(())
    }

    /// Moves every valid version out of block `v` to the head.
    fn relocate(&mut self, v: u32, why: Why) -> Res<(), N> {
        for s in 0..self.slots() {
            if self.blocks.get(v as usize).is_none_or(|i| i.valid == 0) {
                break;
            }
            let mut m = [0u8; META_LEN];
            let addr = self.addr(v, s, 0);
            match self.nand.read_page(addr, &mut [], &mut m) {
                Ok(()) => {}
                Err(e) if e.kind() == NandErrorKind::Uncorrectable => continue,
                Err(e) => return Err(FtlError::Nand(e)),
            }
            let Some(meta) = Meta::decode(&m) else {
                continue;
            };
            let here = self.loc(v, s);
            if self.map.get(meta.lba as usize) != Some(&here) {
                continue;
            }
            self.put(meta.lba, Src::Copy { block: v, slot: s })?;
            match why {
                Why::Gc => self.stats.gc_copies += 1,
                Why::Wl => self.stats.wl_copies += 1,
                Why::Bad => self.stats.bad_copies += 1,
            }
        }
        Ok(())
    }

    /// Retires block `b` after a failed program: moves its valid versions out, marks it bad.
    fn retire(&mut self, b: u32) -> Res<(), N> {
        if self.head.is_some_and(|h| h.block == b) {
            self.head = None;
        }
        if self.depth >= MAX_RETIRE_DEPTH {
            return Err(FtlError::NoSpace);
        }
        self.set_state(b, RETIRING);
        self.depth += 1;
        let r = self.relocate(b, Why::Bad);
        self.depth -= 1;
        r?;
        self.set_state(b, BAD);
        self.grown_bad += 1;
        Self::mark(&mut self.nand, b)
    }
}

/// Reads page `addr` (page `i` of a version) into `data` and checks its record and data.
/// How a failed program is handled.
fn prog_error<E: NandFlashError>(e: E) -> Prog<E> {
    match e.kind() {
        NandErrorKind::BlockFailed => Prog::BlockFailed,
        NandErrorKind::ProgramRule => Prog::Refused { bad: false },
        NandErrorKind::BadBlock => Prog::Refused { bad: true },
        _ => Prog::Err(FtlError::Nand(e)),
    }
}

/// Reads page `i` of a version into `data` and checks it; `first` is the version's page-0
/// record when `i > 0`, `sectors` the sums a sectored page carries (0: the layout has none).
/// Returns the version's page-0 record. A whole page must be intact; in a sectored page a
/// sector whose sum does not hold reads as erased (a program a cut tore, or one never made),
/// and a sectored version's page never programmed reads erased — but its page 0 must hold an
/// intact sector 0 (the version's first program wrote it).
fn read_checked<N: NandFlash>(
    nand: &mut N,
    addr: PageAddr,
    data: &mut [u8],
    i: u32,
    sectors: usize,
    first: Option<Meta>,
) -> Result<Meta, FtlError<N::Error>> {
    let corrupt = FtlError::Corrupt { addr };
    let mut buf = [0u8; SPARE_BUF];
    let sp = buf
        .get_mut(..META_LEN + SECTOR_SUM_LEN * sectors)
        .ok_or(FtlError::BadLength)?;
    match nand.read_page(addr, data, sp) {
        Ok(()) => {}
        Err(e) if e.kind() == NandErrorKind::Uncorrectable => return Err(corrupt),
        Err(e) => return Err(FtlError::Nand(e)),
    }
    let meta = sp
        .first_chunk::<META_LEN>()
        .and_then(Meta::decode)
        .filter(|m| u32::from(m.idx) == i);
    let this = |m: &Meta, f: &Meta| m.lba == f.lba && m.seq == f.seq && m.pages == f.pages;
    match (first, meta) {
        (None, Some(m)) => page_intact(data, sp, &m).then_some(m).ok_or(corrupt),
        (Some(f), Some(m)) if this(&m, &f) => page_intact(data, sp, &m).then_some(f).ok_or(corrupt),
        (Some(f), None) if f.sectored() => {
            data.fill(0xFF);
            Ok(f)
        }
        _ => Err(corrupt),
    }
}

/// Whether page `data` (read with spare bytes `sp`, record `m`) is intact: a whole page's data
/// checksum holds; a sectored page has the sectors whose sums fail erased in `data`, and is
/// intact unless it is its version's first page and sector 0 fails (the version's first program
/// wrote it).
fn page_intact(data: &mut [u8], sp: &[u8], m: &Meta) -> bool {
    if m.sectored() {
        check_sectors(data, sp, m) & 1 != 0 || m.idx > 0
    } else {
        data_sum(data, m.lba, m.seq, m.idx) == m.data_sum
    }
}

/// The mask of a page's sectors (of `ss` bytes in a page of `ps`) that lie below byte `len` of
/// the page (bit `k`: sector `k`).
fn sectors_below(len: usize, ps: usize, ss: usize) -> u32 {
    let n = len.min(ps).div_ceil(ss.max(1)).min(MAX_SECTORS);
    if n >= 32 {
        u32::MAX
    } else {
        (1u32 << n) - 1
    }
}

/// Checks each sector of sectored page `data` against its sum in `sp` (the spare bytes read
/// with it), erasing in `data` every sector whose sum does not hold; returns the mask of the
/// sectors that hold (bit `k`: sector `k`).
fn check_sectors(data: &mut [u8], sp: &[u8], m: &Meta) -> u32 {
    let n = (sp.len().saturating_sub(META_LEN) / SECTOR_SUM_LEN).min(MAX_SECTORS);
    let ss = data.len().checked_div(n).unwrap_or(0);
    let mut ok = 0u32;
    for k in 0..n {
        let at = META_LEN + k * SECTOR_SUM_LEN;
        let sum = sp
            .get(at..at + SECTOR_SUM_LEN)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes);
        let Some(d) = data.get_mut(k * ss..(k + 1) * ss) else {
            break;
        };
        if sum.is_some_and(|x| x == sector_sum(d, m.lba, m.seq, m.idx, k)) {
            ok |= 1 << k;
        } else {
            d.fill(0xFF);
        }
    }
    ok
}

impl<N: NandFlash> BlockDevice for Ftl<'_, N> {
    type Error = FtlError<N::Error>;

    fn block_size(&self) -> usize {
        self.layout.block_size
    }

    fn block_count(&self) -> u64 {
        u64::from(self.layout.logical_blocks)
    }

    /// Reads the mapped version's pages (checked); a block never written reads as `0xFF`.
    fn read_block(&mut self, block: BlockNo, buf: &mut [u8]) -> Result<(), Self::Error> {
        if buf.len() != self.layout.block_size {
            return Err(FtlError::BadLength);
        }
        let lba = u32::try_from(block.0)
            .ok()
            .filter(|&l| l < self.layout.logical_blocks)
            .ok_or(FtlError::OutOfRange)?;
        if self.pending == Some(lba) || self.kept == Some(lba) {
            buf.copy_from_slice(self.log.get(..buf.len()).ok_or(FtlError::BadLength)?);
            return Ok(());
        }
        let loc = self.map.get(lba as usize).copied().unwrap_or(UNMAPPED);
        if loc == UNMAPPED {
            buf.fill(0xFF);
            return Ok(());
        }
        let (b, s) = self.unloc(loc);
        let ps = self.layout.page_size;
        let sectors = self.sums();
        let mut first: Option<Meta> = None;
        for (i, chunk) in buf.chunks_mut(ps).enumerate() {
            let i = i as u32;
            let addr = self.addr(b, s, i);
            let meta = read_checked(&mut self.nand, addr, chunk, i, sectors, first)?;
            if meta.lba != lba {
                return Err(FtlError::Corrupt { addr });
            }
            first = Some(meta);
        }
        Ok(())
    }

    /// Programs a new version at the head (garbage-collecting first if needed). Durable when
    /// it returns `Ok`.
    fn write_block(&mut self, block: BlockNo, buf: &[u8]) -> Result<(), Self::Error> {
        if buf.len() != self.layout.block_size {
            return Err(FtlError::BadLength);
        }
        let lba = u32::try_from(block.0)
            .ok()
            .filter(|&l| l < self.layout.logical_blocks)
            .ok_or(FtlError::OutOfRange)?;
        if self.kept == Some(lba) {
            self.kept = None;
        }
        if self.pending == Some(lba) {
            // Overwritten whole: the gathered appends are void.
            self.pending = None;
        } else {
            self.write_pending()?;
        }
        self.make_room()?;
        self.put(lba, Src::Host(buf))?;
        self.stats.host_writes += 1;
        Ok(())
    }

    /// Gathers the bytes appended in RAM until the next flush (or a write, or an append to
    /// another block), which writes them: a new version (atomic like every write), or, in a
    /// sectored layout, sector programs that extend the block's open version. Without a log
    /// buffer, rewrites the block at once; `offset == 0` keeps the block's other bytes then.
    fn append(&mut self, block: BlockNo, offset: usize, data: &[u8]) -> Result<(), Self::Error> {
        let bs = self.layout.block_size;
        let end = offset
            .checked_add(data.len())
            .filter(|e| *e <= bs)
            .ok_or(FtlError::BadLength)?;
        let lba = u32::try_from(block.0)
            .ok()
            .filter(|&l| l < self.layout.logical_blocks)
            .ok_or(FtlError::OutOfRange)?;
        if end > bs {
            return Err(FtlError::BadLength);
        }
        if self.log.len() < bs {
            self.make_room()?;
            self.put(lba, Src::Patch { offset, data })?;
            self.stats.host_writes += 1;
            return Ok(());
        }
        if self.pending != Some(lba) {
            self.write_pending()?;
            let kept = self.kept.take() == Some(lba);
            let log = core::mem::take(&mut self.log);
            let r = match log.get_mut(..bs) {
                // A block started afresh: what lies past the append is unspecified.
                Some(l) if offset == 0 => {
                    l.fill(0xFF);
                    Ok(())
                }
                // The buffer holds the block as last written.
                Some(_) if kept => Ok(()),
                Some(l) => self.read_block(block, l),
                None => Err(FtlError::BadLength),
            };
            self.log = log;
            r?;
            self.pending = Some(lba);
            self.span = None;
            self.restart = false;
        }
        self.log
            .get_mut(offset..end)
            .ok_or(FtlError::BadLength)?
            .copy_from_slice(data);
        if offset == 0 {
            self.restart = true;
        }
        self.span = Some(match self.span {
            Some((lo, hi)) => (lo.min(offset), hi.max(end)),
            None => (offset, end),
        });
        Ok(())
    }

    /// The sector size where the log's appends are programmed a sector at a time (see
    /// [`FtlLayout::sector_size`]), so each flush ends on a sector; otherwise 1.
    fn append_unit(&self) -> usize {
        if self.layout.sector_size > 0 && self.log.len() >= self.layout.block_size {
            self.layout.sector_size
        } else {
            1
        }
    }

    /// Writes the gathered appends, if any; every other acknowledged write is already on the
    /// medium.
    fn flush(&mut self) -> Result<(), Self::Error> {
        self.write_pending()
    }

    /// Unmaps the blocks (in RAM: a mount maps what the medium holds again), so garbage
    /// collection no longer copies their versions and their erase blocks empty sooner; they
    /// read as erased until written again.
    fn discard(&mut self, start: BlockNo, count: u64) -> Result<(), Self::Error> {
        let end = start
            .0
            .checked_add(count)
            .filter(|&e| e <= u64::from(self.layout.logical_blocks))
            .ok_or(FtlError::OutOfRange)?;
        for lba in start.0..end {
            let lba = lba as u32;
            if self.pending == Some(lba) {
                self.pending = None;
            }
            if self.kept == Some(lba) {
                self.kept = None;
            }
            if self.open.is_some_and(|o| o.lba == lba) {
                self.open = None;
            }
            let old = self.map.get(lba as usize).copied().unwrap_or(UNMAPPED);
            if old == UNMAPPED {
                continue;
            }
            if let Some(e) = self.map.get_mut(lba as usize) {
                *e = UNMAPPED;
            }
            self.release(old);
            self.stats.discarded += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
