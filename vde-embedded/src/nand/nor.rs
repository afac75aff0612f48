//! A NOR flash presented as a NAND part, so the translation layer in [`crate::ftl`] can run on
//! NOR too (wear-leveled NOR).
//!
//! Owns: [`NorNand`], which implements [`NandFlash`] on any `embedded-storage`
//! [`NorFlash`], and its layout ([`NorNandLayout`]) and errors.
//!
//! Layout: an emulated erase block is `sectors_per_block` consecutive erase sectors starting at
//! `base_offset`. It holds `pages_per_block` emulated pages of `page_size` data bytes, each
//! followed directly by its spare area (`spare_size` bytes rounded up to the flash's program
//! unit), and ends with a bad-block marker of at least 4 bytes (rounded up to the unit) in its
//! last bytes. A page program writes the data first and the spare area last, so a cut program
//! never leaves a complete spare area over incomplete data. Bytes that do not fit a whole page
//! are left unused.
//!
//! The marker reads bad only when every byte of it is `0x00`: an erase torn by a power cut can
//! leave arbitrary bytes on NOR, and one stray byte must not retire a block. NOR has no factory
//! bad blocks and reports no program or erase failures, so [`NandErrorKind::BlockFailed`] never
//! occurs; the marker exists so the translation layer behaves the same on both media.

use core::fmt;

use embedded_storage::nor_flash::{NorFlash, NorFlashErrorKind};

use super::{BlockStatus, NandErrorKind, NandFlash, NandFlashError, NandGeometry, PageAddr};
use crate::sim::ERASED;

/// Largest spare area (rounded to the program unit) a [`NorNand`] supports.
pub const MAX_SPARE: usize = 128;

/// Smallest bad-block marker in bytes.
const MARKER_MIN: usize = 4;

/// Bytes programmed per `write` call (raised to the write size), as [`crate::NorFlashDevice`].
const PROGRAM_CHUNK: usize = 256;

/// How a [`NorNand`] carves the NOR flash into emulated NAND blocks and pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NorNandLayout {
    /// Flash address of the first emulated block (`ERASE_SIZE`-aligned).
    pub base_offset: u32,
    /// Erase sectors per emulated erase block.
    pub sectors_per_block: u32,
    /// Data bytes per emulated page (a multiple of the read and write sizes).
    pub page_size: usize,
    /// Spare bytes per emulated page.
    pub spare_size: usize,
    /// Emulated erase blocks, or `None` for as many as fit.
    pub block_count: Option<u32>,
}

/// Why a [`NorNand`] cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum NorNandSetupError {
    /// A zero size, a page size that is not a multiple of the read and write sizes, a spare
    /// area larger than [`MAX_SPARE`], or no whole page fits an emulated block.
    BadLayout,
    /// The base offset is not sector-aligned.
    BaseNotAligned,
    /// The requested blocks do not fit the flash (or the 4 GiB address space), or none does.
    TooSmall {
        /// Blocks that fit.
        available: u32,
    },
}

impl fmt::Display for NorNandSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NorNandSetupError::BadLayout => f.write_str("bad emulated NAND layout"),
            NorNandSetupError::BaseNotAligned => f.write_str("base offset not sector-aligned"),
            NorNandSetupError::TooSmall { available } => {
                write!(f, "only {available} emulated blocks fit")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for NorNandSetupError {}

/// Errors of [`NorNand`] operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum NorNandError {
    /// The NOR flash failed (its generic kind; a simulator's power loss is `Other`).
    Flash(NorFlashErrorKind),
    /// Address outside the emulated geometry.
    OutOfBounds,
    /// Buffer length not allowed.
    BadLength,
}

impl NandFlashError for NorNandError {
    fn kind(&self) -> NandErrorKind {
        match self {
            NorNandError::OutOfBounds | NorNandError::BadLength => NandErrorKind::OutOfBounds,
            NorNandError::Flash(_) => NandErrorKind::Other,
        }
    }
}

impl fmt::Display for NorNandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NorNandError::Flash(k) => write!(f, "NOR flash error: {k}"),
            NorNandError::OutOfBounds => f.write_str("emulated NAND address out of bounds"),
            NorNandError::BadLength => f.write_str("emulated NAND buffer length wrong"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for NorNandError {}

const fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// A NOR flash seen as a NAND part. See the [module docs](self) for the layout.
#[derive(Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NorNand<F: NorFlash> {
    flash: F,
    base: u32,
    block_bytes: u32,
    page_size: usize,
    spare_size: usize,
    spare_slot: usize,
    stride: usize,
    pages_per_block: u32,
    block_count: u32,
    marker_len: usize,
}

impl<F: NorFlash> NorNand<F> {
    /// Lays `layout` over `flash`, or says why it does not fit.
    pub fn new(flash: F, layout: NorNandLayout) -> Result<Self, NorNandSetupError> {
        let unit = {
            let (r, w) = (F::READ_SIZE.max(1), F::WRITE_SIZE.max(1));
            r / gcd(r, w) * w
        };
        let l = layout;
        if l.page_size == 0
            || l.sectors_per_block == 0
            || !l.page_size.is_multiple_of(unit)
            || F::ERASE_SIZE == 0
            || !F::ERASE_SIZE.is_multiple_of(unit)
        {
            return Err(NorNandSetupError::BadLayout);
        }
        let spare_slot = l.spare_size.next_multiple_of(unit);
        if spare_slot > MAX_SPARE {
            return Err(NorNandSetupError::BadLayout);
        }
        if !(l.base_offset as usize).is_multiple_of(F::ERASE_SIZE) {
            return Err(NorNandSetupError::BaseNotAligned);
        }
        let block_bytes = (F::ERASE_SIZE as u64) * u64::from(l.sectors_per_block);
        let marker_len = MARKER_MIN.next_multiple_of(unit);
        if marker_len > MAX_SPARE {
            return Err(NorNandSetupError::BadLayout);
        }
        let stride = l.page_size + spare_slot;
        let pages = (block_bytes.saturating_sub(marker_len as u64)) / stride as u64;
        let pages_per_block = u32::try_from(pages)
            .ok()
            .filter(|&p| p > 0)
            .ok_or(NorNandSetupError::BadLayout)?;
        let block_bytes = u32::try_from(block_bytes).map_err(|_| NorNandSetupError::BadLayout)?;
        let end = (flash.capacity() as u64).min(u64::from(u32::MAX) + 1);
        let available = end.saturating_sub(u64::from(l.base_offset)) / u64::from(block_bytes);
        let available = u32::try_from(available).unwrap_or(u32::MAX);
        let block_count = l.block_count.unwrap_or(available);
        if block_count == 0 || block_count > available {
            return Err(NorNandSetupError::TooSmall { available });
        }
        Ok(NorNand {
            flash,
            base: l.base_offset,
            block_bytes,
            page_size: l.page_size,
            spare_size: l.spare_size,
            spare_slot,
            stride,
            pages_per_block,
            block_count,
            marker_len,
        })
    }

    /// The flash.
    pub fn flash(&self) -> &F {
        &self.flash
    }

    /// The flash, mutably (counters, fault injection).
    pub fn flash_mut(&mut self) -> &mut F {
        &mut self.flash
    }

    /// Gives the flash back.
    pub fn into_inner(self) -> F {
        self.flash
    }

    /// Bytes of an emulated erase block.
    pub fn block_bytes(&self) -> u32 {
        self.block_bytes
    }

    fn block_start(&self, block: u32) -> Result<u32, NorNandError> {
        if block >= self.block_count {
            return Err(NorNandError::OutOfBounds);
        }
        u32::try_from(u64::from(self.base) + u64::from(block) * u64::from(self.block_bytes))
            .map_err(|_| NorNandError::OutOfBounds)
    }

    fn page_start(&self, addr: PageAddr) -> Result<u32, NorNandError> {
        if addr.page >= self.pages_per_block {
            return Err(NorNandError::OutOfBounds);
        }
        let b = self.block_start(addr.block)?;
        let off = addr.page as usize * self.stride;
        u32::try_from(b as usize + off).map_err(|_| NorNandError::OutOfBounds)
    }

    fn marker_start(&self, block: u32) -> Result<u32, NorNandError> {
        let b = self.block_start(block)?;
        let off = self.block_bytes as usize - self.marker_len;
        u32::try_from(b as usize + off).map_err(|_| NorNandError::OutOfBounds)
    }

    fn flash_err(e: F::Error) -> NorNandError {
        use embedded_storage::nor_flash::NorFlashError;
        NorNandError::Flash(e.kind())
    }

    fn program(&mut self, at: u32, bytes: &[u8]) -> Result<(), NorNandError> {
        let chunk = PROGRAM_CHUNK
            .max(F::WRITE_SIZE)
            .next_multiple_of(F::WRITE_SIZE.max(1));
        let mut at = at;
        for data in bytes.chunks(chunk) {
            if data.iter().any(|&b| b != ERASED) {
                self.flash.write(at, data).map_err(Self::flash_err)?;
            }
            at = at.saturating_add(data.len() as u32);
        }
        Ok(())
    }
}

impl<F: NorFlash> NandFlash for NorNand<F> {
    type Error = NorNandError;

    fn geometry(&self) -> NandGeometry {
        NandGeometry {
            page_size: self.page_size,
            spare_size: self.spare_size,
            pages_per_block: self.pages_per_block,
            block_count: self.block_count,
            sector_size: self.page_size,
            partial_programs: 1,
        }
    }

    /// A read of the data (if asked for) and a read of the spare area.
    fn read_page(
        &mut self,
        addr: PageAddr,
        data: &mut [u8],
        spare: &mut [u8],
    ) -> Result<(), NorNandError> {
        if !(data.is_empty() || data.len() == self.page_size) || spare.len() > self.spare_size {
            return Err(NorNandError::BadLength);
        }
        let at = self.page_start(addr)?;
        if !data.is_empty() {
            self.flash.read(at, data).map_err(Self::flash_err)?;
        }
        if !spare.is_empty() {
            let mut buf = [ERASED; MAX_SPARE];
            let slot = buf
                .get_mut(..self.spare_slot)
                .ok_or(NorNandError::BadLength)?;
            let sat = at.saturating_add(self.page_size as u32);
            self.flash.read(sat, slot).map_err(Self::flash_err)?;
            let got = slot.get(..spare.len()).ok_or(NorNandError::BadLength)?;
            spare.copy_from_slice(got);
        }
        Ok(())
    }

    /// Programs the data (in page-sized chunks, skipping all-`0xFF` ones), then the spare area.
    fn program_page(
        &mut self,
        addr: PageAddr,
        data: &[u8],
        spare: &[u8],
    ) -> Result<(), NorNandError> {
        if data.len() != self.page_size || spare.len() > self.spare_size {
            return Err(NorNandError::BadLength);
        }
        let at = self.page_start(addr)?;
        self.program(at, data)?;
        let mut buf = [ERASED; MAX_SPARE];
        let slot = buf
            .get_mut(..self.spare_slot)
            .ok_or(NorNandError::BadLength)?;
        slot.get_mut(..spare.len())
            .ok_or(NorNandError::BadLength)?
            .copy_from_slice(spare);
        if slot.iter().any(|&b| b != ERASED) {
            let sat = at.saturating_add(self.page_size as u32);
            self.flash.write(sat, slot).map_err(Self::flash_err)?;
        }
        Ok(())
    }

    /// Refused: the emulated pages are programmed whole ([`NandGeometry::partial_programs`] is 1).
    fn program_sectors(
        &mut self,
        _addr: PageAddr,
        _first: usize,
        _data: &[u8],
        _spare: &[u8],
    ) -> Result<(), NorNandError> {
        Err(NorNandError::BadLength)
    }

    /// One erase of the block's sectors.
    fn erase_block(&mut self, block: u32) -> Result<(), NorNandError> {
        let start = self.block_start(block)?;
        let end = u32::try_from(u64::from(start) + u64::from(self.block_bytes))
            .map_err(|_| NorNandError::OutOfBounds)?;
        self.flash.erase(start, end).map_err(Self::flash_err)
    }

    /// Bad only if every marker byte is `0x00`.
    fn block_status(&mut self, block: u32) -> Result<BlockStatus, NorNandError> {
        let at = self.marker_start(block)?;
        let mut buf = [ERASED; MAX_SPARE];
        let m = buf
            .get_mut(..self.marker_len)
            .ok_or(NorNandError::BadLength)?;
        self.flash.read(at, m).map_err(Self::flash_err)?;
        Ok(if m.iter().all(|&b| b == 0) {
            BlockStatus::Bad
        } else {
            BlockStatus::Good
        })
    }

    /// Programs the marker to all `0x00` (fails if the marker bytes are not erased).
    fn mark_bad(&mut self, block: u32) -> Result<(), NorNandError> {
        let at = self.marker_start(block)?;
        let buf = [0u8; MAX_SPARE];
        let m = buf.get(..self.marker_len).ok_or(NorNandError::BadLength)?;
        self.flash.write(at, m).map_err(Self::flash_err)
    }
}
