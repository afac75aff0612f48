//! NAND flash: the [`NandFlash`] trait, a simulated NAND part ([`sim`]) and an adapter that
//! presents any NOR flash as a NAND-like medium ([`nor`]).
//!
//! Owns: [`NandFlash`] with its geometry ([`NandGeometry`]), addresses ([`PageAddr`]), block
//! status ([`BlockStatus`]) and error classification ([`NandFlashError`], [`NandErrorKind`]).
//!
//! There is no NAND trait in `embedded-storage` (its issue #62 discusses one); this one stays
//! close to that discussion: a part is `block_count` erase blocks of `pages_per_block` pages, each
//! page `page_size` data bytes plus `spare_size` spare (out-of-band) bytes; pages are read whole,
//! programmed once per erase and in order within a block; blocks can be factory bad or go bad in
//! use, and a failed program or erase says so ([`NandErrorKind::BlockFailed`]) so the caller can
//! retire the block.
//!
//! Addresses are (erase block, page within the block) pairs of `u32`s rather than byte offsets,
//! so parts larger than 4 GiB need nothing special.
//!
//! The medium is not usable as a [`BlockDevice`](vde_nostd::BlockDevice) directly: its erase
//! blocks are far larger than a vde block and pages cannot be rewritten. The translation layer in
//! [`crate::ftl`] does that.

use core::fmt;

pub mod nor;
pub mod sim;

pub use nor::{NorNand, NorNandError, NorNandLayout, NorNandSetupError};
pub use sim::{
    NandPart, NandTiming, SimNand, SimNandBlock, SimNandConfig, SimNandError, SimNandSetupError,
    Timebomb, MAX_TIMEBOMBS, MT29F4G01ABAFD, W25N01GV,
};

/// Shape of a NAND part as its user sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NandGeometry {
    /// Data bytes per page.
    pub page_size: usize,
    /// Spare (out-of-band) bytes per page available to the user: the part's spare area less
    /// what the driver keeps for itself (the bad-block marker, on-chip ECC bytes).
    pub spare_size: usize,
    /// Pages per erase block.
    pub pages_per_block: u32,
    /// Erase blocks.
    pub block_count: u32,
    /// Bytes of a page that [`NandFlash::program_sectors`] programs as one (the on-chip ECC's
    /// sector, 512 on most SPI NAND); `page_size` if the part programs whole pages only.
    pub sector_size: usize,
    /// Programs a page may take between erases of its block (the datasheet's NoP): 1 if the part
    /// programs whole pages only. Each program covers sectors not programmed before.
    pub partial_programs: u32,
}

impl NandGeometry {
    /// Pages on the part.
    pub const fn page_count(&self) -> u64 {
        self.pages_per_block as u64 * self.block_count as u64
    }

    /// Data bytes of one erase block.
    pub const fn block_data_bytes(&self) -> usize {
        self.page_size * self.pages_per_block as usize
    }

    /// Data bytes of the whole part.
    pub const fn data_bytes(&self) -> u64 {
        self.page_count() * self.page_size as u64
    }

    /// Sectors per page ([`Self::sector_size`] bytes each).
    pub const fn sectors_per_page(&self) -> usize {
        match self.page_size.checked_div(self.sector_size) {
            Some(n) => n,
            None => 1,
        }
    }

    /// Whether the part programs part of a page: sectors that divide the page, at most 32 of
    /// them, and more than one program per page.
    pub const fn programs_partially(&self) -> bool {
        self.partial_programs > 1
            && self.sector_size > 0
            && self.sector_size < self.page_size
            && self.page_size.is_multiple_of(self.sector_size)
            && self.page_size / self.sector_size <= 32
    }

    /// Whether `addr` names a page of this part.
    pub const fn contains(&self, addr: PageAddr) -> bool {
        addr.block < self.block_count && addr.page < self.pages_per_block
    }
}

/// A page address: erase block and page within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PageAddr {
    /// Erase block.
    pub block: u32,
    /// Page within the block.
    pub page: u32,
}

impl PageAddr {
    /// Page `page` of erase block `block`.
    pub const fn new(block: u32, page: u32) -> Self {
        PageAddr { block, page }
    }
}

/// What a block's bad-block marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BlockStatus {
    /// Usable.
    Good,
    /// Marked bad, by the factory or by [`NandFlash::mark_bad`] (the marker looks the same):
    /// never program or erase it (an erase would wipe a factory marker for good).
    Bad,
}

/// Generic classes of NAND errors, so code generic over [`NandFlash`] can react to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum NandErrorKind {
    /// An address or a buffer length outside the geometry.
    OutOfBounds,
    /// A program of a page that is not erased, or below a page already programmed in its block.
    /// A bug in the caller; nothing was changed.
    ProgramRule,
    /// A program or an erase of a block marked bad. A bug in the caller; nothing was changed.
    BadBlock,
    /// The part reported that a program or an erase failed (status fail): the block is wearing
    /// out and must be retired after moving what it holds. What the failed operation left in the
    /// block is undefined; pages programmed before it are still readable.
    BlockFailed,
    /// A read the part's ECC could not correct: the page's content is unreliable.
    Uncorrectable,
    /// Anything else (bus error, timeout, power loss in a simulator).
    Other,
}

impl fmt::Display for NandErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NandErrorKind::OutOfBounds => "address or length out of bounds",
            NandErrorKind::ProgramRule => "program over a programmed page or out of order",
            NandErrorKind::BadBlock => "program or erase of a bad block",
            NandErrorKind::BlockFailed => "program or erase failed: block worn out",
            NandErrorKind::Uncorrectable => "uncorrectable read",
            NandErrorKind::Other => "flash error",
        })
    }
}

/// An error of a [`NandFlash`] that can say which [`NandErrorKind`] it is.
pub trait NandFlashError: fmt::Debug {
    /// The generic class of the error.
    fn kind(&self) -> NandErrorKind;
}

impl NandFlashError for NandErrorKind {
    fn kind(&self) -> NandErrorKind {
        *self
    }
}

/// A raw NAND flash part (or anything shaped like one).
///
/// Rules a caller must follow (a simulator enforces them, a real part may silently corrupt data
/// when they are broken):
/// - a page is programmed at most once between erases of its block, and the pages of a block are
///   programmed in increasing page order (pages may be skipped, never revisited); on a part that
///   [programs partially](NandGeometry::programs_partially), the last page programmed in a block
///   may take further [`NandFlash::program_sectors`] of sectors not yet programmed, up to
///   [`NandGeometry::partial_programs`] programs in all;
/// - a block reported [`BlockStatus::Bad`] is never programmed or erased;
/// - after [`NandErrorKind::BlockFailed`] the block should be emptied and [marked
///   bad](NandFlash::mark_bad).
///
/// Operations are blocking: when `program_page` or `erase_block` returns `Ok`, the operation is
/// complete on the medium (durable). A power cut during an operation may leave the page (or the
/// block) in any state between old and new; an erased page reads as all `0xFF`.
pub trait NandFlash {
    /// The part's error.
    type Error: NandFlashError;

    /// The part's shape.
    fn geometry(&self) -> NandGeometry;

    /// Reads the page at `addr`: its data into `data` (which is either `page_size` bytes, or
    /// empty to read only the spare area) and the first `spare.len()` (at most `spare_size`)
    /// user spare bytes into `spare`.
    fn read_page(
        &mut self,
        addr: PageAddr,
        data: &mut [u8],
        spare: &mut [u8],
    ) -> Result<(), Self::Error>;

    /// Programs the page at `addr` with `data` (`page_size` bytes) and the first `spare.len()`
    /// (at most `spare_size`) user spare bytes; the rest of the spare area stays erased.
    fn program_page(
        &mut self,
        addr: PageAddr,
        data: &[u8],
        spare: &[u8],
    ) -> Result<(), Self::Error>;

    /// Programs sectors `first..first + data.len() / sector_size` of the page at `addr` (see
    /// [`NandGeometry::sector_size`]) with `data`, and the bytes of `spare` that are not `0xFF`
    /// into the first `spare.len()` user spare bytes (an `0xFF` byte is left as it is: the
    /// program of a sector never changes bytes it does not cover). The sectors must be erased
    /// and the page the block's last programmed one or a later one; a part that does not
    /// [program partially](NandGeometry::programs_partially) refuses it. A cut program may
    /// leave the sectors and spare bytes it covers in any state between old and new, and no
    /// others.
    fn program_sectors(
        &mut self,
        addr: PageAddr,
        first: usize,
        data: &[u8],
        spare: &[u8],
    ) -> Result<(), Self::Error>;

    /// Erases erase block `block`: every page reads as `0xFF` again and may be programmed again.
    fn erase_block(&mut self, block: u32) -> Result<(), Self::Error>;

    /// Reads block `block`'s bad-block marker.
    fn block_status(&mut self, block: u32) -> Result<BlockStatus, Self::Error>;

    /// Writes block `block`'s bad-block marker, so it reads [`BlockStatus::Bad`] from now on.
    fn mark_bad(&mut self, block: u32) -> Result<(), Self::Error>;
}

impl<T: NandFlash + ?Sized> NandFlash for &mut T {
    type Error = T::Error;
    fn geometry(&self) -> NandGeometry {
        (**self).geometry()
    }
    fn read_page(
        &mut self,
        addr: PageAddr,
        data: &mut [u8],
        spare: &mut [u8],
    ) -> Result<(), Self::Error> {
        (**self).read_page(addr, data, spare)
    }
    fn program_page(
        &mut self,
        addr: PageAddr,
        data: &[u8],
        spare: &[u8],
    ) -> Result<(), Self::Error> {
        (**self).program_page(addr, data, spare)
    }
    fn program_sectors(
        &mut self,
        addr: PageAddr,
        first: usize,
        data: &[u8],
        spare: &[u8],
    ) -> Result<(), Self::Error> {
        (**self).program_sectors(addr, first, data, spare)
    }
    fn erase_block(&mut self, block: u32) -> Result<(), Self::Error> {
        (**self).erase_block(block)
    }
    fn block_status(&mut self, block: u32) -> Result<BlockStatus, Self::Error> {
        (**self).block_status(block)
    }
    fn mark_bad(&mut self, block: u32) -> Result<(), Self::Error> {
        (**self).mark_bad(block)
    }
}
