//! [`OverlayDevice`]: a copy-on-write view of an image that never writes to it.
//!
//! Mounting a volume runs WAL recovery, which writes (replays committed transactions, then
//! checkpoints). To inspect an image without changing a byte of it — `vde info`, `vde check`,
//! `vde get` — the tool mounts an overlay: reads come from the file unless the block was written
//! through the overlay, writes land in an in-memory map, and `flush` does nothing. Dropping the
//! overlay forgets every write.

use std::collections::HashMap;
use std::io;
use std::path::Path;

use vde_nostd::{BlockDevice, BlockNo};

use crate::error::Result;
use crate::file::FileDevice;

/// A read-only image with an in-memory write overlay.
#[derive(Debug)]
pub struct OverlayDevice {
    inner: FileDevice,
    overlay: HashMap<u64, Box<[u8]>>,
}

impl OverlayDevice {
    /// Opens the image at `path` read-only (shared lock) under an overlay.
    pub fn open(path: impl AsRef<Path>) -> Result<OverlayDevice> {
        Ok(OverlayDevice::new(FileDevice::open_read_only(path)?))
    }

    /// Puts an overlay over `inner` (which may be writable: the overlay never writes to it).
    pub fn new(inner: FileDevice) -> OverlayDevice {
        OverlayDevice {
            inner,
            overlay: HashMap::new(),
        }
    }

    /// Number of blocks written through the overlay.
    pub fn changed_blocks(&self) -> usize {
        self.overlay.len()
    }

    /// Forgets every write made through the overlay.
    pub fn discard(&mut self) {
        self.overlay.clear();
    }

    /// The device underneath.
    pub fn inner(&self) -> &FileDevice {
        &self.inner
    }

    /// Drops the overlay and returns the device underneath, unchanged.
    pub fn into_inner(self) -> FileDevice {
        self.inner
    }
}

impl BlockDevice for OverlayDevice {
    type Error = io::Error;

    fn block_size(&self) -> usize {
        self.inner.block_size()
    }

    fn block_count(&self) -> u64 {
        self.inner.block_count()
    }

    fn read_block(&mut self, block: BlockNo, buf: &mut [u8]) -> io::Result<()> {
        match self.overlay.get(&block.0) {
            Some(d) if d.len() == buf.len() => {
                buf.copy_from_slice(d);
                Ok(())
            }
            _ => self.inner.read_block(block, buf),
        }
    }

    fn write_block(&mut self, block: BlockNo, buf: &[u8]) -> io::Result<()> {
        if buf.len() != self.block_size() || block.0 >= self.block_count() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "write outside the image or of the wrong length",
            ));
        }
        self.overlay.insert(block.0, buf.into());
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn append(&mut self, block: BlockNo, offset: usize, data: &[u8]) -> io::Result<()> {
        let bs = self.block_size();
        let end = offset.checked_add(data.len()).filter(|e| *e <= bs);
        let (Some(end), true) = (end, block.0 < self.block_count()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "append outside the image",
            ));
        };
        let mut cur = vec![0u8; bs];
        self.read_block(block, &mut cur)?;
        if let Some(d) = cur.get_mut(offset..end) {
            d.copy_from_slice(data);
        }
        self.overlay.insert(block.0, cur.into());
        Ok(())
    }
}
