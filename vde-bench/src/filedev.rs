//! What the file benchmarks stand on: a private block device over a `std::fs::File` (positional
//! I/O, `sync_data` as the flush) that counts its writes, bytes and flushes; a redb storage
//! backend that counts the same for redb; and the kernel's own counters (`/proc/self/io` and the
//! disk's flush requests in `/sys/block/*/stat`) for the peers that cannot be wrapped.
//!
//! vde-std will have `vde_std::FileDevice`; until it is exported this private one keeps the
//! bench unblocked. It is deliberately minimal: no locking, no geometry header.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use vde_nostd::{BlockDevice, BlockNo};
use vde_std::{FileIo, Written};

/// Counts of writes and flushes, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct IoCounters {
    /// Write calls.
    pub writes: AtomicU64,
    /// Bytes written.
    pub bytes: AtomicU64,
    /// `sync_data` / `fdatasync` calls.
    pub flushes: AtomicU64,
}

/// A snapshot of [`IoCounters`].
#[derive(Debug, Clone, Copy, Default)]
pub struct IoSnap {
    /// Write calls.
    pub writes: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Flushes.
    pub flushes: u64,
}

impl IoCounters {
    /// The current values.
    pub fn snap(&self) -> IoSnap {
        IoSnap {
            writes: self.writes.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
        }
    }
    fn wrote(&self, n: usize) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
    fn written(&self, w: Written) {
        self.writes
            .fetch_add(u64::from(w.writes), Ordering::Relaxed);
        self.bytes.fetch_add(w.bytes as u64, Ordering::Relaxed);
    }
    fn flushed(&self) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }
}

impl std::ops::Sub for IoSnap {
    type Output = IoSnap;
    fn sub(self, o: IoSnap) -> IoSnap {
        IoSnap {
            writes: self.writes - o.writes,
            bytes: self.bytes - o.bytes,
            flushes: self.flushes - o.flushes,
        }
    }
}

/// A block device over a file: block `b` is bytes `b * bs .. (b + 1) * bs`.
pub struct FileDev {
    /// The I/O `vde_std::FileDevice` does (gathered appends, a block cache).
    fio: FileIo,
    bs: usize,
    blocks: u64,
    /// Counters of this device.
    pub io: Arc<IoCounters>,
}

impl FileDev {
    /// Creates `path` as `blocks` zeroed blocks of `bs` bytes, written out (not sparse, so the
    /// file system allocates nothing during the benchmark) and synced.
    pub fn create(path: &Path, bs: usize, blocks: u64) -> io::Result<FileDev> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        preallocate(&file, bs as u64 * blocks)?;
        Ok(FileDev {
            fio: FileIo::new(file, bs),
            bs,
            blocks,
            io: Arc::default(),
        })
    }
}

/// Writes `len` zero bytes to `file` from offset 0 and syncs it.
pub fn preallocate(file: &File, len: u64) -> io::Result<()> {
    let chunk = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(chunk.len() as u64) as usize;
        file.write_all_at(&chunk[..n], off)?;
        off += n as u64;
    }
    file.sync_all()
}

impl BlockDevice for FileDev {
    type Error = io::Error;
    fn block_size(&self) -> usize {
        self.bs
    }
    fn block_count(&self) -> u64 {
        self.blocks
    }
    fn read_block(&mut self, b: BlockNo, buf: &mut [u8]) -> io::Result<()> {
        self.fio.read(b.0, buf)
    }
    fn write_block(&mut self, b: BlockNo, buf: &[u8]) -> io::Result<()> {
        let w = self.fio.write(b.0, buf)?;
        self.io.written(w);
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        let w = self.fio.sync()?;
        self.io.written(w);
        self.io.flushed();
        Ok(())
    }
    fn append(&mut self, b: BlockNo, offset: usize, data: &[u8]) -> io::Result<()> {
        let w = self.fio.append(b.0, offset, data)?;
        self.io.written(w);
        Ok(())
    }
}

/// redb's own file backend with counters around it; every other call is passed through.
#[derive(Debug)]
pub struct CountingBackend {
    inner: redb::backends::FileBackend,
    /// Counters of this backend.
    pub io: Arc<IoCounters>,
}

impl CountingBackend {
    /// Wraps redb's file backend over `file`.
    pub fn new(file: File, io: Arc<IoCounters>) -> CountingBackend {
        CountingBackend {
            inner: redb::backends::FileBackend::new(file).expect("redb file backend"),
            io,
        }
    }
}

impl redb::StorageBackend for CountingBackend {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.io.flushed();
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.io.wrote(data.len());
        self.inner.write(offset, data)
    }
    fn close(&self) -> io::Result<()> {
        self.inner.close()
    }
    fn try_lock_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.inner.try_lock_range(start, end)
    }
    fn try_lock_shared_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }
    fn lock_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> Result<(), redb::BackendError> {
        self.inner.lock_range(start, end)
    }
    fn lock_shared_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> Result<(), redb::BackendError> {
        self.inner.lock_shared_range(start, end)
    }
    fn unlock_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> Result<(), redb::BackendError> {
        self.inner.unlock_range(start, end)
    }
    fn query_lock_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

/// Opens a redb database over a new file at `path` through a [`CountingBackend`].
pub fn redb_create(path: &Path, io: Arc<IoCounters>) -> redb::Database {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .expect("redb file");
    redb::Builder::new()
        .create_with_backend(CountingBackend::new(file, io))
        .expect("redb create")
}

/// This process's I/O counters from `/proc/self/io`: bytes handed to `write`-family calls.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcIo {
    /// Bytes passed to write(2)-family calls (`wchar`).
    pub wchar: u64,
}

impl ProcIo {
    /// Reads `/proc/self/io`; zeros where unavailable.
    pub fn read() -> ProcIo {
        let text = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        ProcIo {
            wchar: field("wchar:"),
        }
    }
}

/// Flush requests completed by the disk under a directory, from `/sys/dev/block/M:m/stat`
/// (field 16, Linux ≥ 5.5). Whole-disk and system-wide: other processes' flushes count too.
pub struct DiskFlushes {
    stat: Option<PathBuf>,
}

impl DiskFlushes {
    /// Finds the disk that holds `dir`.
    pub fn for_dir(dir: &Path) -> DiskFlushes {
        use std::os::unix::fs::MetadataExt;
        let stat = std::fs::metadata(dir).ok().and_then(|m| {
            let dev = m.dev();
            // glibc's encoding of dev_t
            let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff);
            let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff);
            let sys = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
            let sys = std::fs::canonicalize(sys).ok()?;
            // A partition's flushes are counted on its whole disk.
            let disk = if sys.join("partition").exists() {
                sys.parent()?.to_path_buf()
            } else {
                sys
            };
            let stat = disk.join("stat");
            Self::parse(&stat).map(|_| stat)
        });
        DiskFlushes { stat }
    }

    fn parse(stat: &Path) -> Option<u64> {
        std::fs::read_to_string(stat)
            .ok()?
            .split_whitespace()
            .nth(15)?
            .parse()
            .ok()
    }

    /// Flush requests completed so far, if the kernel reports them.
    pub fn now(&self) -> Option<u64> {
        self.stat.as_deref().and_then(Self::parse)
    }

    /// The disk's name, for the report.
    pub fn name(&self) -> String {
        self.stat
            .as_deref()
            .and_then(|s| s.parent()?.file_name()?.to_str().map(str::to_owned))
            .unwrap_or_else(|| "unknown".into())
    }
}
