//! [`AppendGather`]: the log appends of a file-backed device, gathered in memory so that a
//! transaction reaches the file in one `pwrite` instead of one per 256-byte chunk.
//!
//! The engine appends a transaction to its log in small pieces
//! ([`BlockDevice::append`](vde_nostd::BlockDevice::append)); on a file each piece would be a
//! system call. The gather holds the bytes of consecutive appends until something else touches
//! the file.
//!
//! Invariants: `buf` holds the bytes for file offsets `at .. at + buf.len()`, appended and not
//! yet written. A read overlays them ([`AppendGather::overlay`]), so the device reads what it
//! was given; a block write or a flush writes them first ([`AppendGather::drain`]), so writes
//! reach the file in the order the engine made them and a flush covers every append before it.
//! Appends are not durable before a flush on any device, so holding them in memory changes no
//! power-cut outcome the engine does not already survive.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Gathered bytes are written out once they reach this size, so memory stays bounded.
const LIMIT: usize = 1 << 20;

/// What a call wrote to the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// `pwrite` calls made.
    pub writes: u32,
    /// Bytes they wrote.
    pub bytes: usize,
}

impl Written {
    pub(crate) fn add(self, o: Written) -> Written {
        Written {
            writes: self.writes + o.writes,
            bytes: self.bytes + o.bytes,
        }
    }
}

/// Consecutive appends to a file, not yet written.
#[derive(Debug, Default)]
pub struct AppendGather {
    at: u64,
    buf: Vec<u8>,
}

impl AppendGather {
    /// An empty gather.
    pub fn new() -> AppendGather {
        AppendGather::default()
    }

    /// Bytes held.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Takes `data` for file offset `at`: joined to the held bytes if it follows them, else
    /// the held bytes are written first. Returns what reached the file.
    pub fn append(&mut self, file: &File, at: u64, data: &[u8]) -> io::Result<Written> {
        let mut w = Written::default();
        if !self.buf.is_empty() && self.end() != Some(at) {
            w = w.add(self.drain(file)?);
        }
        if self.buf.is_empty() {
            self.at = at;
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= LIMIT {
            w = w.add(self.drain(file)?);
        }
        Ok(w)
    }

    /// Writes the held bytes to the file (one `pwrite`, none if nothing is held) and forgets
    /// them, whether or not the write succeeds (a failed write leaves the log unverified, as a
    /// failed append would). Returns what reached the file.
    pub fn drain(&mut self, file: &File) -> io::Result<Written> {
        if self.buf.is_empty() {
            return Ok(Written::default());
        }
        let r = file.write_all_at(&self.buf, self.at);
        let w = Written {
            writes: 1,
            bytes: self.buf.len(),
        };
        self.buf.clear();
        r.map(|()| w)
    }

    /// Copies the held bytes that fall in file offsets `at .. at + buf.len()` over `buf`.
    pub fn overlay(&self, at: u64, buf: &mut [u8]) {
        let Some(end) = self.end() else { return };
        let lo = at.max(self.at);
        let hi = (at.saturating_add(buf.len() as u64)).min(end);
        if lo >= hi {
            return;
        }
        // Both differences are below the two buffers' lengths, so they fit in `usize`.
        let (src, dst) = ((lo - self.at) as usize, (lo - at) as usize);
        let n = (hi - lo) as usize;
        if let (Some(d), Some(s)) = (buf.get_mut(dst..dst + n), self.buf.get(src..src + n)) {
            d.copy_from_slice(s);
        }
    }

    fn end(&self) -> Option<u64> {
        self.at.checked_add(self.buf.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_appends_are_one_write_and_reads_see_them() {
        let t = tempfile::tempfile().unwrap();
        t.set_len(4096).unwrap();
        let mut g = AppendGather::new();
        let none = Written::default();
        assert_eq!(g.append(&t, 100, b"abc").unwrap(), none);
        assert_eq!(g.append(&t, 103, b"def").unwrap(), none);
        assert_eq!(g.pending(), 6);
        // Nothing reached the file yet; a read overlays the held bytes.
        let mut buf = [0u8; 8];
        t.read_exact_at(&mut buf, 98).unwrap();
        assert_eq!(buf, [0; 8]);
        g.overlay(98, &mut buf);
        assert_eq!(&buf, b"\0\0abcdef");
        let mut tail = [9u8; 4];
        g.overlay(104, &mut tail);
        assert_eq!(&tail, b"ef\x09\x09");
        let mut before = [7u8; 4];
        g.overlay(0, &mut before);
        assert_eq!(before, [7; 4]);
        // A gap writes the held bytes first.
        let six = Written {
            writes: 1,
            bytes: 6,
        };
        assert_eq!(g.append(&t, 200, b"xy").unwrap(), six);
        t.read_exact_at(&mut buf, 98).unwrap();
        assert_eq!(&buf, b"\0\0abcdef");
        assert_eq!(g.drain(&t).unwrap().bytes, 2);
        assert_eq!(g.drain(&t).unwrap(), none);
        let mut xy = [0u8; 2];
        t.read_exact_at(&mut xy, 200).unwrap();
        assert_eq!(&xy, b"xy");
    }

    #[test]
    fn the_gather_is_bounded() {
        let t = tempfile::tempfile().unwrap();
        let mut g = AppendGather::new();
        let chunk = vec![5u8; 4096];
        let mut w = Written::default();
        for i in 0..(2 * LIMIT / 4096) as u64 {
            w = w.add(g.append(&t, i * 4096, &chunk).unwrap());
            assert!(g.pending() < LIMIT);
        }
        assert_eq!(
            w,
            Written {
                writes: 2,
                bytes: 2 * LIMIT
            }
        );
    }
}
