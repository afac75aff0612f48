//! The core's block device over an `embedded-storage` NOR flash.
//!
//! Owns: [`NorFlashDevice`], which implements [`BlockDevice`] on any [`NorFlash`], its
//! construction-time checks ([`GeometryError`]) and its run-time error ([`NorError`]).
//!
//! Layout: block `b` occupies flash bytes `base_offset + b × block_size ..` `+ block_size`.
//! Invariants, checked once by [`NorFlashDevice::new`] so no operation can violate them:
//! - `block_size` is a power of two in [`MIN_BLOCK_SIZE`]`..=`[`MAX_BLOCK_SIZE`] and a multiple
//!   of `ERASE_SIZE`, `WRITE_SIZE` and `READ_SIZE`: a block is one or more whole erase sectors and
//!   is read and programmed in whole units;
//! - `base_offset` is `ERASE_SIZE`-aligned, and all `block_count` (at least [`MIN_BLOCKS`])
//!   blocks lie inside the flash and below 4 GiB (flash addresses are `u32`).
//!
//! **Bytes are stored inverted**: the flash holds the bitwise NOT of every byte the core writes,
//! and reads are inverted back, so the format's zero bytes are the flash's erased state (`0xFF`).
//! A raw dump of the flash is the bitwise inverse of a vde image (`FORMAT.md` applies to
//! `!byte`). What this buys: zeros are never programmed (a unit of all-zero bytes is skipped, so
//! on MCU flash it keeps its one program for later), and a home block's zero bytes are erased
//! flash that [`BlockDevice::program`] can fill in place with no erase
//! ([`BlockDevice::programs_in_place`] is true).
//!
//! A block write is an erase of the block's sectors followed by programs of its bytes, so a power
//! cut tears it (the core's device contract allows that); a program or an append only programs
//! erased bytes of its range. Reads and writes go straight to the flash: nothing is cached here,
//! which is why [`BlockDevice::flush`] has nothing to do.

use vde_nostd::{BlockNo, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE};

// Compiled twice (see the crate root): over `embedded-storage`'s blocking `NorFlash` for the
// core's blocking engine, and over `embedded-storage-async`'s for its async one.
if_blocking! {
    use embedded_storage::nor_flash::NorFlash;
    use vde_bisync::strip_async as bisync;
    use vde_nostd::BlockDevice;
}
if_async! {
    use embedded_storage_async::nor_flash::NorFlash;
    use vde_bisync::keep_async as bisync;
    use vde_nostd::asynch::BlockDevice;
}

// Shared by both builds: defined once, in the blocking one.
if_blocking! {
    use core::fmt;
    use embedded_storage::nor_flash::{NorFlashError, NorFlashErrorKind};

    /// The fewest blocks a [`NorFlashDevice`] accepts: below this no vde image fits.
    pub const MIN_BLOCKS: u64 = 16;

    /// Bytes programmed per `write` call at most: one SPI NOR page, so a page-programming driver
    /// never has to split a call. A flash's `WRITE_SIZE` may not exceed it.
    pub(crate) const PROGRAM_CHUNK: usize = 256;

    /// Why a flash cannot be used as a block device of the requested geometry.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[cfg_attr(feature = "defmt", derive(defmt::Format))]
    pub enum GeometryError {
        /// The block size is not a power of two in `MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE`.
        BadBlockSize {
            /// The requested block size.
            block_size: usize,
        },
        /// The block size is not a multiple of the flash's erase size: a block must be whole erase
        /// sectors.
        NotEraseMultiple {
            /// The requested block size.
            block_size: usize,
            /// The flash's `ERASE_SIZE`.
            erase_size: usize,
        },
        /// The flash's write size is zero, above 256 bytes or does not divide the block size.
        WriteSizeMismatch {
            /// The requested block size.
            block_size: usize,
            /// The flash's `WRITE_SIZE`.
            write_size: usize,
        },
        /// The flash's read size is zero or does not divide the block size.
        ReadSizeMismatch {
            /// The requested block size.
            block_size: usize,
            /// The flash's `READ_SIZE`.
            read_size: usize,
        },
        /// The base offset is not aligned to an erase sector.
        BaseNotAligned {
            /// The requested base offset.
            base_offset: u32,
            /// The flash's `ERASE_SIZE`.
            erase_size: usize,
        },
        /// Fewer than [`MIN_BLOCKS`] blocks were requested, or fit between the base offset and the
        /// end of the flash.
        TooFewBlocks {
            /// Blocks requested, or available when no count was given.
            blocks: u64,
        },
        /// The requested blocks do not fit between the base offset and the end of the flash (or the
        /// 4 GiB address space).
        CapacityTooSmall {
            /// Blocks requested.
            requested: u64,
            /// Blocks that fit.
            available: u64,
        },
    }

    /// A geometry the flash cannot give is the core's [`Error::InvalidGeometry`](vde_nostd::Error),
    /// so a firmware's set-up can use `?` on [`NorFlashDevice::new`] and on the volume's calls alike
    /// (the details are lost: match [`GeometryError`] first to report them).
    impl<E> From<GeometryError> for vde_nostd::Error<E> {
        fn from(_: GeometryError) -> Self {
            vde_nostd::Error::InvalidGeometry
        }
    }

    impl fmt::Display for GeometryError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match *self {
                GeometryError::BadBlockSize { block_size } => write!(
                    f,
                    "block size {block_size} is not a power of two in {MIN_BLOCK_SIZE}..={MAX_BLOCK_SIZE}"
                ),
                GeometryError::NotEraseMultiple {
                    block_size,
                    erase_size,
                } => write!(
                    f,
                    "block size {block_size} is not a multiple of the erase size {erase_size}"
                ),
                GeometryError::WriteSizeMismatch {
                    block_size,
                    write_size,
                } => write!(
                    f,
                    "write size {write_size} does not divide the block size {block_size}"
                ),
                GeometryError::ReadSizeMismatch {
                    block_size,
                    read_size,
                } => write!(
                    f,
                    "read size {read_size} does not divide the block size {block_size}"
                ),
                GeometryError::BaseNotAligned {
                    base_offset,
                    erase_size,
                } => write!(
                    f,
                    "base offset {base_offset:#x} is not aligned to the erase size {erase_size}"
                ),
                GeometryError::TooFewBlocks { blocks } => {
                    write!(f, "{blocks} blocks; at least {MIN_BLOCKS} are needed")
                }
                GeometryError::CapacityTooSmall {
                    requested,
                    available,
                } => write!(
                    f,
                    "{requested} blocks requested but only {available} fit in the flash"
                ),
            }
        }
    }

    #[cfg(feature = "std")]
    impl std::error::Error for GeometryError {}

    /// The [`BlockDevice::Error`] of a [`NorFlashDevice`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[cfg_attr(feature = "defmt", derive(defmt::Format))]
    pub enum NorError {
        /// The flash reported an error (its generic kind; a simulator's power loss is `Other`).
        Flash(NorFlashErrorKind),
        /// The block number is not below `block_count`.
        OutOfRange,
        /// The buffer length is not `block_size`.
        BadLength,
    }

    impl NorError {
        /// The [`NorError`] of a flash error: its generic kind.
        pub fn from_flash<E: NorFlashError>(e: &E) -> NorError {
            NorError::Flash(e.kind())
        }
    }

    impl fmt::Display for NorError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                NorError::Flash(kind) => write!(f, "flash error: {kind}"),
                NorError::OutOfRange => f.write_str("block number out of range"),
                NorError::BadLength => f.write_str("buffer length differs from the block size"),
            }
        }
    }

    #[cfg(feature = "std")]
    impl std::error::Error for NorError {}


    /// Inverts every byte of `buf` (flash content ↔ vde bytes).
    pub(crate) fn invert(buf: &mut [u8]) {
        for b in buf {
            *b = !*b;
        }
    }
}
if_async! {
    use crate::nor::{invert, PROGRAM_CHUNK};
    pub use crate::nor::{GeometryError, NorError, MIN_BLOCKS};
}

/// A [`BlockDevice`] of `block_count` blocks of `block_size` bytes on a NOR flash, starting at
/// `base_offset`. See the [module docs](self) for the layout and invariants.
#[derive(Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NorFlashDevice<F: NorFlash> {
    flash: F,
    block_size: usize,
    base_offset: u32,
    block_count: u64,
}

#[bisync]
impl<F: NorFlash> NorFlashDevice<F> {
    /// Uses `flash` from `base_offset` as `block_count` blocks of `block_size` bytes, or, when
    /// `block_count` is `None`, as many whole blocks as fit up to the end of the flash.
    ///
    /// Refuses a geometry that breaks the [module invariants](self) with a [`GeometryError`]
    /// (and hands nothing back: the flash is dropped, so pass `&mut flash` to keep it).
    pub fn new(
        flash: F,
        block_size: usize,
        base_offset: u32,
        block_count: Option<u64>,
    ) -> Result<Self, GeometryError> {
        let block_count =
            Self::check_geometry(flash.capacity(), block_size, base_offset, block_count)?;
        Ok(NorFlashDevice {
            flash,
            block_size,
            base_offset,
            block_count,
        })
    }

    /// Uses the whole of `flash` as blocks of `block_size` bytes.
    pub fn whole(flash: F, block_size: usize) -> Result<Self, GeometryError> {
        Self::new(flash, block_size, 0, None)
    }

    /// Checks a geometry against a flash of `capacity` bytes without building a device; returns
    /// the block count the device would have.
    pub fn check_geometry(
        capacity: usize,
        block_size: usize,
        base_offset: u32,
        block_count: Option<u64>,
    ) -> Result<u64, GeometryError> {
        if !block_size.is_power_of_two() || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size)
        {
            return Err(GeometryError::BadBlockSize { block_size });
        }
        if F::ERASE_SIZE == 0 || !block_size.is_multiple_of(F::ERASE_SIZE) {
            return Err(GeometryError::NotEraseMultiple {
                block_size,
                erase_size: F::ERASE_SIZE,
            });
        }
        if F::WRITE_SIZE == 0
            || F::WRITE_SIZE > PROGRAM_CHUNK
            || !block_size.is_multiple_of(F::WRITE_SIZE)
        {
            return Err(GeometryError::WriteSizeMismatch {
                block_size,
                write_size: F::WRITE_SIZE,
            });
        }
        if F::READ_SIZE == 0 || !block_size.is_multiple_of(F::READ_SIZE) {
            return Err(GeometryError::ReadSizeMismatch {
                block_size,
                read_size: F::READ_SIZE,
            });
        }
        if !(base_offset as usize).is_multiple_of(F::ERASE_SIZE) {
            return Err(GeometryError::BaseNotAligned {
                base_offset,
                erase_size: F::ERASE_SIZE,
            });
        }
        // Flash addresses are u32: the usable end is the smaller of the capacity and 4 GiB.
        let end = (capacity as u64).min(u64::from(u32::MAX) + 1);
        let available = end.saturating_sub(u64::from(base_offset)) / block_size as u64;
        let blocks = block_count.unwrap_or(available);
        if blocks < MIN_BLOCKS {
            return Err(GeometryError::TooFewBlocks { blocks });
        }
        if blocks > available {
            return Err(GeometryError::CapacityTooSmall {
                requested: blocks,
                available,
            });
        }
        Ok(blocks)
    }

    /// The flash.
    pub fn flash(&self) -> &F {
        &self.flash
    }

    /// The flash, mutably (for counters and fault injection; writing through it bypasses the
    /// device).
    pub fn flash_mut(&mut self) -> &mut F {
        &mut self.flash
    }

    /// Gives the flash back.
    pub fn into_inner(self) -> F {
        self.flash
    }

    /// Flash address of the first byte of the device.
    pub fn base_offset(&self) -> u32 {
        self.base_offset
    }

    /// Flash address of block `block` after checking the block number and buffer length.
    fn address(&self, block: BlockNo, len: usize) -> Result<u32, NorError> {
        if len != self.block_size {
            return Err(NorError::BadLength);
        }
        if block.0 >= self.block_count {
            return Err(NorError::OutOfRange);
        }
        // Cannot overflow (checked at construction); checked anyway so no input can panic.
        block
            .0
            .checked_mul(self.block_size as u64)
            .and_then(|off| off.checked_add(u64::from(self.base_offset)))
            .and_then(|a| u32::try_from(a).ok())
            .ok_or(NorError::OutOfRange)
    }

    fn flash_err(e: F::Error) -> NorError {
        NorError::from_flash(&e)
    }

    /// Flash address of byte `offset` of block `block`, after checking that `len` bytes from
    /// there stay inside the block and that both are whole write units.
    fn range_address(&self, block: BlockNo, offset: usize, len: usize) -> Result<u32, NorError> {
        let addr = self.address(block, self.block_size)?;
        let unit = F::WRITE_SIZE.max(1);
        let end = offset.checked_add(len).ok_or(NorError::BadLength)?;
        if end > self.block_size || !offset.is_multiple_of(unit) || !len.is_multiple_of(unit) {
            return Err(NorError::BadLength);
        }
        // `offset` < block_size, which fits the address space (checked at construction).
        addr.checked_add(offset as u32).ok_or(NorError::OutOfRange)
    }

    /// Programs the inverse of `data` at flash address `at` (erased there), in pieces that never
    /// cross a [`PROGRAM_CHUNK`] boundary, skipping what would program only `0xFF`: a whole
    /// piece on a flash that programs single bytes (where programming `0xFF` changes nothing),
    /// each all-zero write unit on one that programs words (where it would spend the unit's
    /// only program).
    async fn program_inverted(&mut self, at: u32, data: &[u8]) -> Result<(), NorError> {
        let unit = F::WRITE_SIZE.max(1);
        let mut buf = [0u8; PROGRAM_CHUNK];
        let mut addr = at;
        let mut rest = data;
        while !rest.is_empty() {
            let room = PROGRAM_CHUNK - addr as usize % PROGRAM_CHUNK;
            let (piece, later) = rest.split_at(room.min(rest.len()));
            let skip = if unit == 1 { piece.len() } else { unit };
            // Runs of units that hold a nonzero byte, each one program.
            let mut i = 0usize;
            while i < piece.len() {
                let live = |j: usize| {
                    piece
                        .get(j..j + skip)
                        .is_some_and(|u| u.iter().any(|&b| b != 0))
                };
                if !live(i) {
                    i += skip;
                    continue;
                }
                let mut j = i + skip;
                while j < piece.len() && live(j) {
                    j += skip;
                }
                let (src, dst) = (
                    piece.get(i..j).unwrap_or(&[]),
                    buf.get_mut(..j - i).unwrap_or(&mut []),
                );
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = !*s;
                }
                // `i` < PROGRAM_CHUNK.
                self.flash
                    .write(addr.saturating_add(i as u32), dst)
                    .await
                    .map_err(Self::flash_err)?;
                i = j;
            }
            addr = addr.saturating_add(piece.len() as u32);
            rest = later;
        }
        Ok(())
    }

    /// Erases the sectors of the block at flash address `addr`.
    async fn erase_block(&mut self, addr: u32) -> Result<(), NorError> {
        let end = u32::try_from(u64::from(addr) + self.block_size as u64)
            .map_err(|_| NorError::OutOfRange)?;
        self.flash.erase(addr, end).await.map_err(Self::flash_err)
    }
}

#[bisync]
impl<F: NorFlash> BlockDevice for NorFlashDevice<F> {
    type Error = NorError;

    fn block_size(&self) -> usize {
        self.block_size
    }

    fn block_count(&self) -> u64 {
        self.block_count
    }

    /// One flash read of the whole block (`block_size` is a multiple of `READ_SIZE`).
    async fn read_block(&mut self, block: BlockNo, buf: &mut [u8]) -> Result<(), NorError> {
        let addr = self.address(block, buf.len())?;
        self.flash.read(addr, buf).await.map_err(Self::flash_err)?;
        invert(buf);
        Ok(())
    }

    /// Partial reads when `READ_SIZE` divides the log's read granularity.
    fn reads_partial(&self) -> bool {
        F::READ_SIZE.is_power_of_two() && F::READ_SIZE <= vde_nostd::device::PARTIAL_READ_UNIT
    }

    /// One flash read of bytes `offset..offset + buf.len()` of the block.
    async fn read_at(
        &mut self,
        block: BlockNo,
        offset: usize,
        buf: &mut [u8],
    ) -> Result<(), NorError> {
        let addr = self.address(block, self.block_size)?;
        if offset
            .checked_add(buf.len())
            .is_none_or(|e| e > self.block_size)
        {
            return Err(NorError::BadLength);
        }
        let at = u32::try_from(offset)
            .ok()
            .and_then(|o| addr.checked_add(o))
            .ok_or(NorError::OutOfRange)?;
        self.flash.read(at, buf).await.map_err(Self::flash_err)?;
        invert(buf);
        Ok(())
    }

    /// Erases the block's sectors, then programs its (inverted) bytes in page-sized pieces,
    /// skipping zeros (`program_inverted`): the erase already left them so.
    /// A power cut in between leaves the block torn (erased or partly written), which the core
    /// tolerates.
    async fn write_block(&mut self, block: BlockNo, buf: &[u8]) -> Result<(), NorError> {
        let addr = self.address(block, buf.len())?;
        self.erase_block(addr).await?;
        self.program_inverted(addr, buf).await
    }

    /// The flash's write size: appends are programmed in whole words.
    fn append_unit(&self) -> usize {
        F::WRITE_SIZE.max(1)
    }

    /// `offset == 0` erases the block's sectors first; then programs `data` (inverted, zeros
    /// skipped). The rest of an erased block reads as zeros, so each later append programs only
    /// erased bytes.
    async fn append(&mut self, block: BlockNo, offset: usize, data: &[u8]) -> Result<(), NorError> {
        let at = self.range_address(block, offset, data.len())?;
        if offset == 0 {
            self.erase_block(at).await?;
        }
        self.program_inverted(at, data).await
    }

    /// Zeros are erased flash: a range of them is programmed in place.
    fn programs_in_place(&self) -> bool {
        true
    }

    /// Programs `data` (inverted, zeros skipped) over the range's erased bytes; no erase.
    async fn program(
        &mut self,
        block: BlockNo,
        offset: usize,
        data: &[u8],
    ) -> Result<(), NorError> {
        let at = self.range_address(block, offset, data.len())?;
        self.program_inverted(at, data).await
    }

    /// A no-op. `NorFlash::erase` and `NorFlash::write` are blocking: they return only once the
    /// flash has finished the operation (the driver waits out the part's busy status), and this
    /// adapter keeps no cache, so by the time `write_block` returns its data is already on the
    /// medium and there is nothing left to make durable. (A flash driver that buffers writes in
    /// RAM behind the `NorFlash` traits breaks this and must be drained by its owner.)
    async fn flush(&mut self) -> Result<(), NorError> {
        Ok(())
    }
}

if_blocking! {
    #[cfg(test)]
    mod tests;
}
