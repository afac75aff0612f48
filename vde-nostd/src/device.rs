//! The block device the core runs on, and a RAM device over a caller-provided slice.
//!
//! Contract: `block_count` blocks of `block_size` bytes (a power of two, 512..=65536), read and
//! written whole, and appended to by the log ([`BlockDevice::append`]). A write may be torn by a
//! power cut; writes since the last [`BlockDevice::flush`] may be lost or land in any order.
//! `flush` is the durability barrier.

use crate::types::BlockNo;
use_mode!(bisync);

if_blocking! {
    /// The granularity of [`BlockDevice::read_at`]: offsets and lengths are multiples of it.
    pub const PARTIAL_READ_UNIT: usize = 64;

    /// Any device, with in-place home writes turned off ([`BlockDevice::programs_in_place`] is
    /// false): the volume then writes every changed home block whole and zeroes a deleted slot, as
    /// on a disk. For a device whose zero bytes are not its erased state behind an adapter that says
    /// they are, and for tests that compare the two paths.
    #[derive(Debug)]
    pub struct WholeBlocks<D>(pub D);

    /// Errors of [`RamDevice`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[cfg_attr(feature = "defmt", derive(defmt::Format))]
    pub enum RamError {
        /// Block address past the end.
        OutOfRange,
        /// Buffer length differs from the block size.
        BadLength,
    }

    /// A block device over a caller-provided byte slice (no heap). Flush is a no-op.
    pub struct RamDevice<'a> {
        pub(crate) mem: &'a mut [u8],
        pub(crate) block_size: usize,
    }

    impl<'a> RamDevice<'a> {
        /// Wraps `mem` as a device of `mem.len() / block_size` blocks. Returns `None` if the block size
        /// is not a power of two in 512..=65536.
        pub fn new(mem: &'a mut [u8], block_size: usize) -> Option<Self> {
            if !valid_block_size(block_size) {
                return None;
            }
            Some(RamDevice { mem, block_size })
        }
        /// The underlying bytes.
        pub fn bytes(&self) -> &[u8] {
            self.mem
        }
        /// The underlying bytes, mutably (for tests that corrupt an image).
        pub fn bytes_mut(&mut self) -> &mut [u8] {
            self.mem
        }
        pub(crate) fn range(&self, block: BlockNo, len: usize) -> Result<core::ops::Range<usize>, RamError> {
            if len != self.block_size {
                return Err(RamError::BadLength);
            }
            let start = usize::try_from(block.0)
                .ok()
                .and_then(|b| b.checked_mul(self.block_size))
                .ok_or(RamError::OutOfRange)?;
            let end = start.checked_add(len).ok_or(RamError::OutOfRange)?;
            if end > self.mem.len() {
                return Err(RamError::OutOfRange);
            }
            Ok(start..end)
        }
    }

    /// Whether `bs` is a block size the engine supports.
    pub const fn valid_block_size(bs: usize) -> bool {
        bs.is_power_of_two() && bs >= crate::MIN_BLOCK_SIZE && bs <= crate::MAX_BLOCK_SIZE
    }
}

if_async! {
    pub use crate::device::{valid_block_size, RamDevice, RamError, WholeBlocks, PARTIAL_READ_UNIT};
}

/// A device of fixed-size rewritable blocks.
#[bisync]
#[allow(async_fn_in_trait)]
pub trait BlockDevice {
    /// The device's own error.
    type Error: core::fmt::Debug;
    /// Block size in bytes: a power of two, at least 512.
    fn block_size(&self) -> usize;
    /// Number of blocks.
    fn block_count(&self) -> u64;
    /// Reads block `block` into `buf` (`buf.len() == block_size`).
    async fn read_block(&mut self, block: BlockNo, buf: &mut [u8]) -> Result<(), Self::Error>;
    /// Whether [`BlockDevice::read_at`] reads part of a block. A device that does lets the log
    /// read through a buffer smaller than a block (see [`crate::Buffers`]).
    fn reads_partial(&self) -> bool {
        false
    }
    /// Reads `buf.len()` bytes at byte `offset` of `block` (inside the block; `offset` and
    /// `buf.len()` are multiples of [`PARTIAL_READ_UNIT`]). Called only if
    /// [`BlockDevice::reads_partial`] is true; the default reads whole blocks only (offset 0,
    /// a block-long buffer).
    async fn read_at(
        &mut self,
        block: BlockNo,
        offset: usize,
        buf: &mut [u8],
    ) -> Result<(), Self::Error> {
        let _ = offset;
        self.read_block(block, buf).await
    }
    /// Writes `buf` (`buf.len() == block_size`) to block `block`. Not durable until `flush`.
    async fn write_block(&mut self, block: BlockNo, buf: &[u8]) -> Result<(), Self::Error>;
    /// Makes every write issued so far durable.
    async fn flush(&mut self) -> Result<(), Self::Error>;
    /// The granularity of [`BlockDevice::append`] in bytes: a power of two of at most
    /// [`crate::wal::MAX_APPEND_UNIT`] (512) that divides the block size (1 for files and SPI
    /// NOR flash; the write size of an MCU flash that programs words; the ECC sector of a NAND
    /// part that programs a sector at a time). Each unit of a log block is appended once: the
    /// log pads every transaction to a whole number of units, so each flush ends on a unit.
    /// Appends of a unit above 256 bytes may come in 256-byte pieces between two flushes.
    fn append_unit(&self) -> usize {
        1
    }
    /// Writes `data` at byte `offset` of `block`; only the log calls it, to append without
    /// rewriting what a block already holds. `offset == 0` starts the block afresh: its bytes
    /// past `data` become unspecified until appended (erased on flash, their old content on a
    /// file). Otherwise no byte of the range was written since the block was started, and
    /// `offset` and `data.len()` are multiples of [`BlockDevice::append_unit`] or of 256 bytes,
    /// whichever is smaller (`data` never crosses the block's end). Not durable until `flush`; a power cut may tear it, which
    /// never affects bytes outside the range.
    async fn append(
        &mut self,
        block: BlockNo,
        offset: usize,
        data: &[u8],
    ) -> Result<(), Self::Error>;
    /// Whether [`BlockDevice::program`] writes part of a home block in place. A device says
    /// yes only if a block's zero bytes are its *erased* state (flash: the adapter stores bytes
    /// inverted) and a torn program changes nothing outside its range. The log then writes a
    /// block home by programming only the bytes a checkpoint interval added into its zeros, with
    /// no erase and no copy of the block in the log.
    fn programs_in_place(&self) -> bool {
        false
    }
    /// Writes `data` at byte `offset` of home block `block` without erasing it: every byte of
    /// the range reads as zero and was not written since the block was last written whole
    /// (for flash: it is still erased). `offset` and `data.len()` are multiples of
    /// [`BlockDevice::append_unit`]; a unit of `data` that is all zero may be skipped. Not
    /// durable until `flush`; a power cut may tear it, which never affects bytes outside the
    /// range. Called only if [`BlockDevice::programs_in_place`] is true, so a device that
    /// says yes implements it; the default hands the range to [`BlockDevice::append`], which
    /// is a program only for `offset > 0` (at 0 it starts the block afresh).
    async fn program(
        &mut self,
        block: BlockNo,
        offset: usize,
        data: &[u8],
    ) -> Result<(), Self::Error> {
        self.append(block, offset, data).await
    }
    /// Says that the `count` blocks from `start` hold nothing the volume needs: a transaction
    /// that freed them is durable. A translation layer may forget them, so its garbage
    /// collection stops copying them; their content is unspecified until written again, and
    /// the hint need not survive a power cut (a block may read as any earlier content after
    /// one). The default ignores it. The volume ignores its errors: it is only a hint.
    async fn discard(&mut self, start: BlockNo, count: u64) -> Result<(), Self::Error> {
        let _ = (start, count);
        Ok(())
    }
}

#[bisync]
impl<T: BlockDevice + ?Sized> BlockDevice for &mut T {
    type Error = T::Error;
    fn block_size(&self) -> usize {
        (**self).block_size()
    }
    fn block_count(&self) -> u64 {
        (**self).block_count()
    }
    async fn read_block(&mut self, block: BlockNo, buf: &mut [u8]) -> Result<(), Self::Error> {
        (**self).read_block(block, buf).await
    }
    fn reads_partial(&self) -> bool {
        (**self).reads_partial()
    }
    async fn read_at(
        &mut self,
        block: BlockNo,
        offset: usize,
        buf: &mut [u8],
    ) -> Result<(), Self::Error> {
        (**self).read_at(block, offset, buf).await
    }
    async fn write_block(&mut self, block: BlockNo, buf: &[u8]) -> Result<(), Self::Error> {
        (**self).write_block(block, buf).await
    }
    async fn flush(&mut self) -> Result<(), Self::Error> {
        (**self).flush().await
    }
    fn append_unit(&self) -> usize {
        (**self).append_unit()
    }
    async fn append(
        &mut self,
        block: BlockNo,
        offset: usize,
        data: &[u8],
    ) -> Result<(), Self::Error> {
        (**self).append(block, offset, data).await
    }
    fn programs_in_place(&self) -> bool {
        (**self).programs_in_place()
    }
    async fn program(
        &mut self,
        block: BlockNo,
        offset: usize,
        data: &[u8],
    ) -> Result<(), Self::Error> {
        (**self).program(block, offset, data).await
    }
    async fn discard(&mut self, start: BlockNo, count: u64) -> Result<(), Self::Error> {
        (**self).discard(start, count).await
    }
}

#[bisync]
impl<D: BlockDevice> BlockDevice for WholeBlocks<D> {
    type Error = D::Error;
    fn block_size(&self) -> usize {
        self.0.block_size()
    }
    fn block_count(&self) -> u64 {
        self.0.block_count()
    }
    async fn read_block(&mut self, block: BlockNo, buf: &mut [u8]) -> Result<(), Self::Error> {
        self.0.read_block(block, buf).await
    }
    fn reads_partial(&self) -> bool {
        self.0.reads_partial()
    }
    async fn read_at(
        &mut self,
        block: BlockNo,
        offset: usize,
        buf: &mut [u8],
    ) -> Result<(), Self::Error> {
        self.0.read_at(block, offset, buf).await
    }
    async fn write_block(&mut self, block: BlockNo, buf: &[u8]) -> Result<(), Self::Error> {
        self.0.write_block(block, buf).await
    }
    async fn flush(&mut self) -> Result<(), Self::Error> {
        self.0.flush().await
    }
    fn append_unit(&self) -> usize {
        self.0.append_unit()
    }
    async fn append(
        &mut self,
        block: BlockNo,
        offset: usize,
        data: &[u8],
    ) -> Result<(), Self::Error> {
        self.0.append(block, offset, data).await
    }
    async fn discard(&mut self, start: BlockNo, count: u64) -> Result<(), Self::Error> {
        self.0.discard(start, count).await
    }
}

#[bisync]
impl BlockDevice for RamDevice<'_> {
    type Error = RamError;
    fn block_size(&self) -> usize {
        self.block_size
    }
    fn block_count(&self) -> u64 {
        (self.mem.len() / self.block_size) as u64
    }
    async fn read_block(&mut self, block: BlockNo, buf: &mut [u8]) -> Result<(), RamError> {
        let r = self.range(block, buf.len())?;
        buf.copy_from_slice(self.mem.get(r).ok_or(RamError::OutOfRange)?);
        Ok(())
    }
    fn reads_partial(&self) -> bool {
        true
    }
    async fn read_at(
        &mut self,
        block: BlockNo,
        offset: usize,
        buf: &mut [u8],
    ) -> Result<(), RamError> {
        let r = self.range(block, self.block_size)?;
        let end = offset.checked_add(buf.len()).ok_or(RamError::BadLength)?;
        if end > self.block_size {
            return Err(RamError::BadLength);
        }
        buf.copy_from_slice(
            self.mem
                .get(r.start + offset..r.start + end)
                .ok_or(RamError::OutOfRange)?,
        );
        Ok(())
    }
    async fn write_block(&mut self, block: BlockNo, buf: &[u8]) -> Result<(), RamError> {
        let r = self.range(block, buf.len())?;
        self.mem
            .get_mut(r)
            .ok_or(RamError::OutOfRange)?
            .copy_from_slice(buf);
        Ok(())
    }
    async fn flush(&mut self) -> Result<(), RamError> {
        Ok(())
    }
    async fn append(&mut self, block: BlockNo, offset: usize, data: &[u8]) -> Result<(), RamError> {
        let r = self.range(block, self.block_size)?;
        let end = offset.checked_add(data.len()).ok_or(RamError::BadLength)?;
        if end > self.block_size {
            return Err(RamError::BadLength);
        }
        self.mem
            .get_mut(r.start + offset..r.start + end)
            .ok_or(RamError::OutOfRange)?
            .copy_from_slice(data);
        Ok(())
    }
    /// RAM writes a range in place and tears nothing else.
    fn programs_in_place(&self) -> bool {
        true
    }
    async fn program(
        &mut self,
        block: BlockNo,
        offset: usize,
        data: &[u8],
    ) -> Result<(), RamError> {
        self.append(block, offset, data).await
    }
}

if_async! {
    /// A blocking device ([`crate::BlockDevice`]) as an async one: each call completes at once.
    /// For a device with no async driver (a file, a RAM image, a simulator) under the async
    /// engine, and for tests of the async engine over the blocking simulators.
    #[derive(Debug)]
    pub struct FromBlocking<D>(pub D);

    impl<D: crate::BlockDevice> BlockDevice for FromBlocking<D> {
        type Error = D::Error;
        fn block_size(&self) -> usize {
            self.0.block_size()
        }
        fn block_count(&self) -> u64 {
            self.0.block_count()
        }
        async fn read_block(&mut self, block: BlockNo, buf: &mut [u8]) -> Result<(), Self::Error> {
            self.0.read_block(block, buf)
        }
        fn reads_partial(&self) -> bool {
            self.0.reads_partial()
        }
        async fn read_at(&mut self, block: BlockNo, offset: usize, buf: &mut [u8]) -> Result<(), Self::Error> {
            self.0.read_at(block, offset, buf)
        }
        async fn write_block(&mut self, block: BlockNo, buf: &[u8]) -> Result<(), Self::Error> {
            self.0.write_block(block, buf)
        }
        async fn flush(&mut self) -> Result<(), Self::Error> {
            self.0.flush()
        }
        fn append_unit(&self) -> usize {
            self.0.append_unit()
        }
        async fn append(&mut self, block: BlockNo, offset: usize, data: &[u8]) -> Result<(), Self::Error> {
            self.0.append(block, offset, data)
        }
        fn programs_in_place(&self) -> bool {
            self.0.programs_in_place()
        }
        async fn program(&mut self, block: BlockNo, offset: usize, data: &[u8]) -> Result<(), Self::Error> {
            self.0.program(block, offset, data)
        }
        async fn discard(&mut self, start: BlockNo, count: u64) -> Result<(), Self::Error> {
            self.0.discard(start, count)
        }
    }
}

if_blocking! {
    /// The device as a volume holds it: the device itself (a blocking operation is never
    /// dropped half-way).
    pub(crate) type Held<D> = D;
    /// `dev` as a volume holds it.
    pub(crate) fn hold<D>(dev: D) -> Held<D> {
        dev
    }
    /// The device a volume holds.
    pub(crate) fn held<D>(h: &mut Held<D>) -> &mut D {
        h
    }
    /// The device a volume held, given back.
    pub(crate) fn release<D>(h: Held<D>) -> D {
        h
    }
    /// The number of recoveries the next operation will have started: none, here.
    pub(crate) fn generation<D>(_: &Held<D>) -> u32 {
        0
    }
}

if_async! {
    /// The device as an async volume holds it: the device, and whether a call to it was dropped
    /// before it finished (the operation that made it was dropped: a timeout, a `select`) or a
    /// recovery did not finish. Either way the volume's state in memory may be half-changed, and
    /// its next operation recovers it from the device first, as a mount after a power cut would.
    /// A drop can only happen at an `.await`, and the engine awaits nothing but its device, so
    /// every dropped operation leaves `in_call` set.
    #[derive(Debug)]
    pub(crate) struct Held<D> {
        dev: D,
        in_call: bool,
        recovering: bool,
        recoveries: u32,
    }
    /// `dev` as a volume holds it.
    pub(crate) fn hold<D>(dev: D) -> Held<D> {
        Held { dev, in_call: false, recovering: false, recoveries: 0 }
    }
    /// The device a volume holds.
    pub(crate) fn held<D>(h: &mut Held<D>) -> &mut D {
        &mut h.dev
    }
    /// The device a volume held, given back.
    pub(crate) fn release<D>(h: Held<D>) -> D {
        h.dev
    }
    /// Whether the volume must recover before its next operation.
    pub(crate) fn needs_recovery<D>(h: &Held<D>) -> bool {
        h.in_call || h.recovering
    }
    /// Notes that a recovery started (`true`: counted once, however many attempts it takes)
    /// or finished (`false`).
    pub(crate) fn recovering<D>(h: &mut Held<D>, on: bool) {
        if on && !h.recovering {
            h.recoveries = h.recoveries.wrapping_add(1);
        }
        h.recovering = on;
    }
    /// The number of recoveries the next operation will have started: a transaction begun now
    /// belongs to this generation, and fails with [`crate::Error::Interrupted`] once another
    /// recovery starts.
    pub(crate) fn generation<D>(h: &Held<D>) -> u32 {
        h.recoveries.wrapping_add(u32::from(h.in_call && !h.recovering))
    }

    /// `call` on the held device, noted as begun until it returns (a drop in between leaves the
    /// note).
    macro_rules! tracked {
        ($held:ident, $call:expr) => {{
            $held.in_call = true;
            let r = $call.await;
            $held.in_call = false;
            r
        }};
    }

    impl<D: BlockDevice> BlockDevice for Held<D> {
        type Error = D::Error;
        fn block_size(&self) -> usize {
            self.dev.block_size()
        }
        fn block_count(&self) -> u64 {
            self.dev.block_count()
        }
        async fn read_block(&mut self, block: BlockNo, buf: &mut [u8]) -> Result<(), Self::Error> {
            tracked!(self, self.dev.read_block(block, buf))
        }
        fn reads_partial(&self) -> bool {
            self.dev.reads_partial()
        }
        async fn read_at(&mut self, block: BlockNo, offset: usize, buf: &mut [u8]) -> Result<(), Self::Error> {
            tracked!(self, self.dev.read_at(block, offset, buf))
        }
        async fn write_block(&mut self, block: BlockNo, buf: &[u8]) -> Result<(), Self::Error> {
            tracked!(self, self.dev.write_block(block, buf))
        }
        async fn flush(&mut self) -> Result<(), Self::Error> {
            tracked!(self, self.dev.flush())
        }
        fn append_unit(&self) -> usize {
            self.dev.append_unit()
        }
        async fn append(&mut self, block: BlockNo, offset: usize, data: &[u8]) -> Result<(), Self::Error> {
            tracked!(self, self.dev.append(block, offset, data))
        }
        fn programs_in_place(&self) -> bool {
            self.dev.programs_in_place()
        }
        async fn program(&mut self, block: BlockNo, offset: usize, data: &[u8]) -> Result<(), Self::Error> {
            tracked!(self, self.dev.program(block, offset, data))
        }
        async fn discard(&mut self, start: BlockNo, count: u64) -> Result<(), Self::Error> {
            tracked!(self, self.dev.discard(start, count))
        }
    }
}

if_blocking! {
    #[cfg(test)]
    mod tests;
}
