//! [`FileIo`]: the block I/O of a file-backed device — positional reads and writes of whole
//! blocks, log appends gathered into one `pwrite` per transaction ([`AppendGather`]), a
//! write-through cache of recent blocks ([`BlockCache`], 4 MiB unless set) and `sync_data` as
//! the barrier.
//!
//! Invariants: a read returns what the last write or append to those bytes put there (the
//! cache is written through, gathered appends are overlaid); writes reach the file in the
//! order they were made (a block write or a sync writes the gathered appends first); after a
//! failed write nothing is cached. [`FileDevice`](crate::FileDevice) and the benchmarks' file
//! device both do their I/O through it, so they measure the same thing.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::cache::BlockCache;
use crate::gather::{AppendGather, Written};

/// Block I/O on a file of `bs`-byte blocks (block `b` at byte `b * bs`). Bounds are the
/// caller's to check.
#[derive(Debug)]
pub struct FileIo {
    file: File,
    bs: usize,
    gather: AppendGather,
    cache: BlockCache,
    /// A block buffer for partial reads that miss the cache.
    whole: Vec<u8>,
}

impl FileIo {
    /// I/O on `file` in blocks of `bs` bytes.
    pub fn new(file: File, bs: usize) -> FileIo {
        FileIo {
            file,
            bs,
            gather: AppendGather::new(),
            cache: BlockCache::new(bs),
            whole: Vec::new(),
        }
    }

    /// The file.
    pub fn file(&self) -> &File {
        &self.file
    }

    fn at(&self, block: u64) -> u64 {
        block.saturating_mul(self.bs as u64)
    }

    /// Reads block `block` into `buf` (`bs` bytes).
    pub fn read(&mut self, block: u64, buf: &mut [u8]) -> io::Result<()> {
        if self.cache.get(block, buf) {
            return Ok(());
        }
        let at = self.at(block);
        self.file.read_exact_at(buf, at)?;
        self.gather.overlay(at, buf);
        self.cache.put(block, buf);
        Ok(())
    }

    /// Reads bytes `offset..offset + buf.len()` of block `block` (through the cache and the
    /// gathered appends, like [`FileIo::read`]).
    pub fn read_at(&mut self, block: u64, offset: usize, buf: &mut [u8]) -> io::Result<()> {
        if self.cache.get_at(block, offset, buf) {
            return Ok(());
        }
        // A miss reads (and caches) the whole block: the next part of it costs a copy.
        let mut whole = std::mem::take(&mut self.whole);
        whole.resize(self.bs, 0);
        let r = self.read(block, &mut whole).and_then(|()| {
            let part = whole
                .get(offset..offset.saturating_add(buf.len()))
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "read past the block")
                })?;
            buf.copy_from_slice(part);
            Ok(())
        });
        self.whole = whole;
        r
    }

    /// Sets how many bytes of blocks the cache keeps (it starts empty again).
    pub fn set_cache_bytes(&mut self, bytes: usize) {
        self.cache = BlockCache::with_bytes(self.bs, bytes);
    }

    /// Writes `buf` as block `block`, after the gathered appends.
    pub fn write(&mut self, block: u64, buf: &[u8]) -> io::Result<Written> {
        let at = self.at(block);
        let r = self.gather.drain(&self.file).and_then(|mut w| {
            self.file.write_all_at(buf, at)?;
            w.writes += 1;
            w.bytes += buf.len();
            Ok(w)
        });
        match r {
            Ok(_) => self.cache.put(block, buf),
            Err(_) => self.cache.clear(),
        }
        r
    }

    /// Appends `data` at byte `offset` of block `block` (gathered: it reaches the file before
    /// the next block write or sync).
    pub fn append(&mut self, block: u64, offset: usize, data: &[u8]) -> io::Result<Written> {
        self.cache.patch(block, offset, data);
        let at = self.at(block).saturating_add(offset as u64);
        let r = self.gather.append(&self.file, at, data);
        if r.is_err() {
            self.cache.clear();
        }
        r
    }

    /// Writes the gathered appends without syncing.
    pub fn drain(&mut self) -> io::Result<Written> {
        let r = self.gather.drain(&self.file);
        if r.is_err() {
            self.cache.clear();
        }
        r
    }

    /// Writes the gathered appends, then `sync_data`: everything written before is durable.
    pub fn sync(&mut self) -> io::Result<Written> {
        let w = self.drain()?;
        self.file.sync_data()?;
        Ok(w)
    }
}

impl Drop for FileIo {
    /// Writes gathered appends out (not synced: dropping a device without a flush promises no
    /// durability, but the bytes reach the file as an unbuffered device's would).
    fn drop(&mut self) {
        let _ = self.gather.drain(&self.file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_see_appends_and_writes_in_order() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(8 * 512).unwrap();
        let mut io = FileIo::new(f.try_clone().unwrap(), 512);
        let mut buf = vec![0u8; 512];
        io.read(3, &mut buf).unwrap(); // cached, all zero
        assert_eq!(io.append(3, 10, b"abc").unwrap(), Written::default());
        io.read(3, &mut buf).unwrap();
        assert_eq!(&buf[9..14], b"\0abc\0");
        // Not cached: the read overlays the gathered bytes.
        io.append(4, 0, b"z").unwrap();
        io.read(4, &mut buf).unwrap();
        assert_eq!(buf[0], b'z');
        // A block write goes after the gathered appends (here: the same bytes, overwritten).
        let w = io.write(4, &[7u8; 512]).unwrap();
        assert_eq!(w.writes, 2);
        let mut raw = vec![0u8; 512];
        f.read_exact_at(&mut raw, 4 * 512).unwrap();
        assert!(raw.iter().all(|&x| x == 7));
        f.read_exact_at(&mut raw, 3 * 512).unwrap();
        assert_eq!(&raw[10..13], b"abc");
        io.append(5, 0, b"q").unwrap();
        assert_eq!(io.sync().unwrap().bytes, 1);
        drop(io);
        f.read_exact_at(&mut raw, 5 * 512).unwrap();
        assert_eq!(raw[0], b'q');
    }

    #[test]
    fn dropping_writes_what_was_gathered() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(512).unwrap();
        let mut io = FileIo::new(f.try_clone().unwrap(), 512);
        io.append(0, 5, b"xy").unwrap();
        drop(io);
        let mut raw = [0u8; 2];
        f.read_exact_at(&mut raw, 5).unwrap();
        assert_eq!(&raw, b"xy");
    }
}
