//! [`FileDevice`]: a [`BlockDevice`] over a `std::fs::File` (an image file or a block device).
//!
//! Blocks are read and written with positional I/O (`pread`/`pwrite`, no shared cursor) and
//! `flush` is `sync_data`, through [`FileIo`]: log appends are gathered in memory and reach the
//! file in one `pwrite` per transaction, and recent blocks are cached. Opening for writing takes an exclusive lock on the file and opening
//! read-only a shared one, so a second writer — in this process or another — is refused with
//! [`Error::Locked`] instead of corrupting the image. The lock goes with the `File` when the
//! device is dropped.
//!
//! [`FileDevice::open`] learns the geometry from the image itself: the superblock's block size
//! and count, from the primary copy at offset 0, or from the mirror at offset `block_size` when
//! the primary is damaged.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use vde_nostd::device::valid_block_size;
use vde_nostd::format::layout::Layout;
use vde_nostd::format::superblock::Superblock;
use vde_nostd::format::DecodeError;
use vde_nostd::{BlockDevice, BlockNo, Structure};

use crate::error::{Error, Result};
use crate::file_io::FileIo;

/// Block size and count of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Block size in bytes.
    pub block_size: usize,
    /// Number of blocks.
    pub block_count: u64,
}

impl Geometry {
    /// Bytes the geometry covers.
    pub fn bytes(&self) -> Option<u64> {
        self.block_count.checked_mul(self.block_size as u64)
    }
}

/// A block device over a file.
#[derive(Debug)]
pub struct FileDevice {
    io: FileIo,
    path: PathBuf,
    geometry: Geometry,
    writable: bool,
}

/// How to lock a file.
#[derive(Clone, Copy)]
enum Lock {
    Exclusive,
    Shared,
}

fn lock(file: &File, how: Lock) -> Result<()> {
    let r = match how {
        Lock::Exclusive => file.try_lock(),
        Lock::Shared => file.try_lock_shared(),
    };
    match r {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(Error::Locked),
        // A file system without locks: go on unlocked rather than refuse to work.
        Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => Ok(()),
        Err(TryLockError::Error(e)) => Err(Error::Io(e)),
    }
}

fn open_error(path: &Path, source: io::Error) -> Error {
    Error::Open {
        path: path.to_path_buf(),
        source,
    }
}

/// Length of an open file or block device (seeking to its end works for both).
fn length(file: &mut File) -> io::Result<u64> {
    let len = file.seek(SeekFrom::End(0))?;
    file.seek(SeekFrom::Start(0))?;
    Ok(len)
}

/// Bytes read from each superblock copy: the encoded superblock is 112 bytes at the start of
/// its block, and 512 is the smallest block.
const PROBE: usize = 512;

/// Reads `PROBE` bytes at `offset`, or `None` if the file is too short.
fn probe_at(file: &File, len: u64, offset: u64) -> io::Result<Option<[u8; PROBE]>> {
    if offset.saturating_add(PROBE as u64) > len {
        return Ok(None);
    }
    let mut buf = [0u8; PROBE];
    file.read_exact_at(&mut buf, offset)?;
    Ok(Some(buf))
}

fn usable(sb: &Superblock) -> Option<Geometry> {
    let bs = sb.block_size as usize;
    if !valid_block_size(bs) {
        return None;
    }
    Layout::compute(bs, sb.block_count, sb.wal_blocks)?;
    Some(Geometry {
        block_size: bs,
        block_count: sb.block_count,
    })
}

/// Reads the geometry of the image in `file` (of `len` bytes) from its superblocks.
fn read_geometry(file: &File, len: u64) -> Result<Geometry> {
    let mut version: Option<u32> = None;
    let mut damaged = false;
    let note = |e: DecodeError, version: &mut Option<u32>, damaged: &mut bool| match e {
        DecodeError::BadMagic => {}
        DecodeError::BadVersion(v) => *version = version.or(Some(v)),
        DecodeError::BadChecksum | DecodeError::BadField => *damaged = true,
    };
    if let Some(buf) = probe_at(file, len, 0)? {
        match Superblock::decode(&buf) {
            Ok(sb) => match usable(&sb) {
                Some(g) => return check_length(g, len),
                None => damaged = true,
            },
            Err(e) => note(e, &mut version, &mut damaged),
        }
    }
    // The primary is unusable: look for the mirror at offset `block_size` for every size.
    let mut bs = vde_nostd::MIN_BLOCK_SIZE;
    while bs <= vde_nostd::MAX_BLOCK_SIZE {
        if let Some(buf) = probe_at(file, len, bs as u64)? {
            match Superblock::decode(&buf) {
                Ok(sb) if sb.block_size as usize == bs => match usable(&sb) {
                    Some(g) => return check_length(g, len),
                    None => damaged = true,
                },
                Ok(_) => damaged = true,
                Err(e) => note(e, &mut version, &mut damaged),
            }
        }
        bs *= 2;
    }
    if let Some(found) = version {
        return Err(Error::UnsupportedVersion { found });
    }
    if damaged {
        return Err(Error::Engine(vde_nostd::Error::Corrupt(
            Structure::Superblock,
        )));
    }
    Err(Error::NotAnImage)
}

fn check_length(g: Geometry, len: u64) -> Result<Geometry> {
    let expected = g.bytes().ok_or(Error::Engine(vde_nostd::Error::Corrupt(
        Structure::Superblock,
    )))?;
    if len < expected {
        return Err(Error::Truncated {
            expected,
            actual: len,
        });
    }
    Ok(g)
}

impl FileDevice {
    /// Opens an existing image for reading and writing, with an exclusive lock. The geometry
    /// comes from the image's superblock.
    pub fn open(path: impl AsRef<Path>) -> Result<FileDevice> {
        Self::open_with(path.as_ref(), true)
    }

    /// Opens an existing image read-only, with a shared lock (other readers may share it, a
    /// writer may not). Writes to the device fail; wrap it in an
    /// [`OverlayDevice`](crate::OverlayDevice) to mount it.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<FileDevice> {
        Self::open_with(path.as_ref(), false)
    }

    fn open_with(path: &Path, writable: bool) -> Result<FileDevice> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .map_err(|e| open_error(path, e))?;
        if file.metadata().map_err(|e| open_error(path, e))?.is_dir() {
            return Err(open_error(path, io::ErrorKind::IsADirectory.into()));
        }
        lock(
            &file,
            if writable {
                Lock::Exclusive
            } else {
                Lock::Shared
            },
        )?;
        let len = length(&mut file)?;
        let geometry = read_geometry(&file, len)?;
        Ok(FileDevice {
            io: FileIo::new(file, geometry.block_size),
            path: path.to_path_buf(),
            geometry,
            writable,
        })
    }

    /// Creates an image file of `size` bytes (rounded down to whole blocks of `block_size`),
    /// zero-filled (sparse where the file system allows) and exclusively locked, ready for
    /// [`vde_nostd::Volume::format`]. An existing file is refused unless `force` is set, in which
    /// case it is truncated (after its lock is taken, so an image in use is never clobbered).
    pub fn create(
        path: impl AsRef<Path>,
        size: u64,
        block_size: usize,
        force: bool,
    ) -> Result<FileDevice> {
        let path = path.as_ref();
        if !valid_block_size(block_size) {
            return Err(Error::Geometry(format!(
                "block size {block_size} is not a power of two between {} and {}",
                vde_nostd::MIN_BLOCK_SIZE,
                vde_nostd::MAX_BLOCK_SIZE
            )));
        }
        let block_count = size / block_size as u64;
        let wal = Layout::default_wal_blocks(block_count);
        if Layout::compute(block_size, block_count, wal).is_none() {
            return Err(Error::Geometry(format!(
                "{size} bytes is too small for a volume of {block_size}-byte blocks (at least {} bytes)",
                min_image_bytes(block_size)
            )));
        }
        let mut opts = OpenOptions::new();
        opts.read(true).write(true);
        if force {
            opts.create(true);
        } else {
            opts.create_new(true);
        }
        let file = opts.open(path).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => Error::Exists(path.to_path_buf()),
            _ => open_error(path, e),
        })?;
        if file.metadata().map_err(|e| open_error(path, e))?.is_dir() {
            return Err(open_error(path, io::ErrorKind::IsADirectory.into()));
        }
        lock(&file, Lock::Exclusive)?;
        let bytes = block_count * block_size as u64;
        file.set_len(0)?;
        file.set_len(bytes)?;
        Ok(FileDevice {
            io: FileIo::new(file, block_size),
            path: path.to_path_buf(),
            geometry: Geometry {
                block_size,
                block_count,
            },
            writable: true,
        })
    }

    /// Reads the geometry of the image at `path` without locking it.
    pub fn probe(path: impl AsRef<Path>) -> Result<Geometry> {
        let path = path.as_ref();
        let mut file = File::open(path).map_err(|e| open_error(path, e))?;
        let len = length(&mut file)?;
        read_geometry(&file, len)
    }

    /// Sets how many bytes of recently read or written blocks the device keeps in memory
    /// (default [`crate::cache::DEFAULT_BYTES`], 4 MiB; at least 8 blocks). Repeated reads of
    /// the slot index, bitmap and shared blocks cost a copy instead of a system call while they
    /// fit. The cache starts empty again.
    pub fn set_cache_bytes(&mut self, bytes: usize) {
        self.io.set_cache_bytes(bytes);
    }

    /// The image path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Block size and count.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Whether writes are allowed.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// Refuses a buffer that is not one block, a block past the end, or one whose byte offset
    /// overflows.
    fn check(&self, block: BlockNo, len: usize) -> io::Result<()> {
        if len != self.geometry.block_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "buffer length differs from the block size",
            ));
        }
        if block.0 >= self.geometry.block_count {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("block {} is past the end of the image", block.0),
            ));
        }
        block
            .0
            .checked_mul(self.geometry.block_size as u64)
            .map(drop)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "block offset overflows"))
    }
}

/// Smallest image, in bytes, that holds a volume of `block_size`-byte blocks.
pub fn min_image_bytes(block_size: usize) -> u64 {
    let mut n = 1u64;
    while n < 1 << 20 {
        if Layout::compute(block_size, n, Layout::default_wal_blocks(n)).is_some() {
            return n * block_size as u64;
        }
        n += 1;
    }
    0
}

impl BlockDevice for FileDevice {
    type Error = io::Error;

    fn block_size(&self) -> usize {
        self.geometry.block_size
    }

    fn block_count(&self) -> u64 {
        self.geometry.block_count
    }

    fn read_block(&mut self, block: BlockNo, buf: &mut [u8]) -> io::Result<()> {
        self.check(block, buf.len())?;
        self.io.read(block.0, buf)
    }

    fn reads_partial(&self) -> bool {
        true
    }

    fn read_at(&mut self, block: BlockNo, offset: usize, buf: &mut [u8]) -> io::Result<()> {
        self.check(block, self.geometry.block_size)?;
        if offset.saturating_add(buf.len()) > self.geometry.block_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "read past the end of the block",
            ));
        }
        self.io.read_at(block.0, offset, buf)
    }

    fn write_block(&mut self, block: BlockNo, buf: &[u8]) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the image is open read-only",
            ));
        }
        self.check(block, buf.len())?;
        self.io.write(block.0, buf).map(drop)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.writable {
            self.io.sync().map(drop)
        } else {
            Ok(())
        }
    }

    fn append(&mut self, block: BlockNo, offset: usize, data: &[u8]) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the image is open read-only",
            ));
        }
        let bs = self.block_size();
        self.check(block, bs)?;
        if offset.checked_add(data.len()).is_none_or(|e| e > bs) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "append past the end of a block",
            ));
        }
        self.io.append(block.0, offset, data).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FileVolume, OverlayDevice, OwnedBuffers};
    use vde_nostd::FormatOptions;

    fn formatted(dir: &Path, bs: usize, size: u64) -> PathBuf {
        let p = dir.join(format!("img-{bs}"));
        let dev = FileDevice::create(&p, size, bs, false).unwrap();
        let mut mem = OwnedBuffers::for_device(&dev);
        let vol = FileVolume::format(dev, &FormatOptions::default(), mem.bufs()).unwrap();
        vol.unmount().unwrap();
        p
    }

    fn poke(p: &Path, at: u64, bytes: &[u8]) {
        let f = OpenOptions::new().write(true).open(p).unwrap();
        f.write_all_at(bytes, at).unwrap();
    }

    #[test]
    fn geometry_from_either_superblock() {
        let t = tempfile::tempdir().unwrap();
        for bs in [512usize, 4096, 65536] {
            let p = formatted(t.path(), bs, 64 * bs as u64 + 100);
            let want = Geometry {
                block_size: bs,
                block_count: 64,
            };
            assert_eq!(FileDevice::probe(&p).unwrap(), want);
            // Primary gone: the mirror at offset `bs` still tells the geometry, and mounts.
            poke(&p, 0, &[0xAA; 112]);
            let dev = FileDevice::open_read_only(&p).unwrap();
            assert_eq!(dev.geometry(), want);
            let dev = OverlayDevice::new(dev);
            let mut mem = OwnedBuffers::for_device(&dev);
            vde_nostd::Volume::<_, { crate::TX_BLOCKS }>::mount(dev, mem.bufs()).unwrap();
            // Both gone.
            poke(&p, bs as u64 + 50, &[0xAA]);
            assert!(matches!(
                FileDevice::open(&p),
                Err(Error::Engine(vde_nostd::Error::Corrupt(
                    Structure::Superblock
                )))
            ));
            poke(&p, 0, &[0; 112]);
            poke(&p, bs as u64, &[0; 112]);
            assert!(matches!(FileDevice::open(&p), Err(Error::NotAnImage)));
        }
    }

    #[test]
    fn truncated_short_and_missing() {
        let t = tempfile::tempdir().unwrap();
        let p = formatted(t.path(), 512, 64 * 512);
        OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(64 * 512 - 1)
            .unwrap();
        assert!(matches!(
            FileDevice::open(&p),
            Err(Error::Truncated {
                expected: 32768,
                actual: 32767
            })
        ));
        OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(10)
            .unwrap();
        assert!(matches!(FileDevice::open(&p), Err(Error::NotAnImage)));
        let e = FileDevice::open(t.path().join("nope")).unwrap_err();
        assert!(
            e.to_string().ends_with("nope: no such file or directory"),
            "{e}"
        );
        assert!(matches!(
            FileDevice::create(&p, 1 << 20, 512, false),
            Err(Error::Exists(_))
        ));
        assert!(matches!(
            FileDevice::create(t.path().join("x"), 1 << 20, 3000, false),
            Err(Error::Geometry(_))
        ));
        assert!(matches!(
            FileDevice::create(t.path().join("x"), 2048, 512, false),
            Err(Error::Geometry(_))
        ));
        assert!(min_image_bytes(512) > 0);
    }

    #[test]
    fn locks_and_read_only() {
        let t = tempfile::tempdir().unwrap();
        let p = formatted(t.path(), 512, 64 * 512);
        let w = FileDevice::open(&p).unwrap();
        assert!(matches!(FileDevice::open(&p), Err(Error::Locked)));
        assert!(matches!(FileDevice::open_read_only(&p), Err(Error::Locked)));
        assert!(matches!(
            FileDevice::create(&p, 1 << 20, 512, true),
            Err(Error::Locked)
        ));
        assert_eq!(
            Error::Locked.to_string(),
            "image is in use by another process"
        );
        drop(w);
        let mut r1 = FileDevice::open_read_only(&p).unwrap();
        let _r2 = FileDevice::open_read_only(&p).unwrap();
        assert!(matches!(FileDevice::open(&p), Err(Error::Locked)));
        let buf = vec![1u8; 512];
        assert!(r1.write_block(BlockNo(10), &buf).is_err());
        assert!(r1.read_block(BlockNo(64), &mut vec![0u8; 512]).is_err());
        assert!(r1.read_block(BlockNo(0), &mut [0u8; 100]).is_err());
        // The overlay takes writes in memory only.
        let before = std::fs::read(&p).unwrap();
        let mut ov = OverlayDevice::new(r1);
        ov.write_block(BlockNo(10), &buf).unwrap();
        ov.flush().unwrap();
        let mut got = vec![0u8; 512];
        ov.read_block(BlockNo(10), &mut got).unwrap();
        assert_eq!(got, buf);
        assert_eq!(ov.changed_blocks(), 1);
        assert!(ov.write_block(BlockNo(64), &buf).is_err());
        ov.discard();
        ov.read_block(BlockNo(10), &mut got).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), before);
        assert_eq!(&got[..], &before[10 * 512..11 * 512]);
    }
}
