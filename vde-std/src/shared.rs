//! [`SharedVolume`]: a mounted volume that any number of threads can use at once.
//!
//! A [`Volume`] borrows its buffers, so it cannot simply be put in an `Arc<Mutex<..>>` next to
//! the memory it borrows without `unsafe` or leaking that memory. Instead one worker thread owns
//! the buffers and the mounted volume on its own stack; every call is a job sent to it over a
//! channel and answered over another. Jobs run one at a time, in arrival order, so the volume
//! sees exactly the serialised operations a mutex would give. Cloning a `SharedVolume` clones the
//! handle, not the volume.
//!
//! **Group commit**: the worker keeps the volume in [`Durability::Deferred`] mode. It runs the
//! job it was waiting for and then every job already queued behind it (up to [`GROUP_MAX`]),
//! then makes all their commits durable with one flush ([`Volume::sync`]), and only then
//! answers them. A caller therefore returns only once its changes are durable, as with the
//! default mode, but threads that call at the same time share one flush: while the worker
//! waits on one flush, the next callers queue up and go out together with the next. Alone, a
//! caller pays exactly what a durable commit costs. If the flush fails, every job of the group
//! gets the error (their changes may not be durable).
//!
//! When the last handle is dropped (or [`SharedVolume::close`] is called) the worker finishes
//! the jobs already queued, unmounts (a checkpoint) and exits; `close` returns the device. A
//! panic inside a job ([`SharedVolume::with`]) is carried back to the calling thread.
//!
//! ```no_run
//! use vde_std::SharedVolume;
//! # fn main() -> Result<(), vde_std::Error> {
//! let vol = SharedVolume::open("disk.img")?;
//! let workers: Vec<_> = (0..4u8)
//!     .map(|i| {
//!         let vol = vol.clone();
//!         std::thread::spawn(move || -> Result<(), vde_std::Error> {
//!             let h = vol.put(&[i; 100])?;
//!             assert_eq!(vol.get(h)?, vec![i; 100]);
//!             vol.delete(h)
//!         })
//!     })
//!     .collect();
//! for w in workers {
//!     w.join().expect("worker")?;
//! }
//! // Anything else the core offers, run on the worker:
//! let free = vol.with(|v| v.usage().free_blocks)?;
//! # let _ = free;
//! vol.close()?; // unmount (a checkpoint) and get the device back
//! # Ok(()) }
//! ```

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};

use vde_nostd::volume::Usage;
use vde_nostd::wal::Durability;
use vde_nostd::{BlockDevice, FormatOptions, Handle, ObjectStats, Volume};

use crate::error::{Error, Result};
use crate::file::FileDevice;
use crate::{OwnedBuffers, TX_BLOCKS};

/// What a job leaves to be sent once its group's flush is done: it is told the flush's
/// failure, if any.
type Reply = Box<dyn FnOnce(Option<&Flushed>) + Send>;
type Job<D> = Box<dyn for<'b> FnOnce(&mut Volume<'b, D, TX_BLOCKS>) -> Reply + Send>;

/// The jobs one flush serves at most.
pub const GROUP_MAX: usize = 64;

/// Why a group's flush failed, for each of its callers.
struct Flushed {
    kind: std::io::ErrorKind,
    message: String,
}

struct Inner<D: BlockDevice> {
    jobs: Mutex<Option<Sender<Job<D>>>>,
    worker: Mutex<Option<JoinHandle<Result<D>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code panics while holding these locks; recover from poisoning anyway.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<D: BlockDevice> Inner<D> {
    fn stop(&self) -> Option<thread::Result<Result<D>>> {
        drop(lock(&self.jobs).take());
        let handle = lock(&self.worker).take()?;
        if handle.thread().id() == thread::current().id() {
            // The last handle was dropped inside a job: the worker ends by itself once the
            // job returns (the channel is closed); it cannot wait for itself.
            return None;
        }
        Some(handle.join())
    }
}

impl<D: BlockDevice> Drop for Inner<D> {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// A thread-safe handle to a mounted volume (see the module documentation).
pub struct SharedVolume<D: BlockDevice<Error = std::io::Error> + Send + 'static = FileDevice> {
    inner: Arc<Inner<D>>,
}

impl<D: BlockDevice<Error = std::io::Error> + Send + 'static> Clone for SharedVolume<D> {
    fn clone(&self) -> Self {
        SharedVolume {
            inner: Arc::clone(&self.inner),
        }
    }
}

enum Start {
    Mount,
    Format(FormatOptions),
}

impl SharedVolume<FileDevice> {
    /// Opens the image at `path` for writing and mounts it (with WAL recovery).
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::mount(FileDevice::open(path)?)
    }
}

impl<D: BlockDevice<Error = std::io::Error> + Send + 'static> SharedVolume<D> {
    /// Mounts the volume on `dev` in a new worker thread.
    pub fn mount(dev: D) -> Result<Self> {
        Self::start(dev, Start::Mount)
    }

    /// Formats `dev` and mounts it in a new worker thread.
    pub fn format(dev: D, opts: &FormatOptions) -> Result<Self> {
        Self::start(dev, Start::Format(*opts))
    }

    fn start(dev: D, how: Start) -> Result<Self> {
        let (job_tx, job_rx) = mpsc::channel::<Job<D>>();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<()>>(1);
        let handle =
            thread::Builder::new()
                .name("vde-volume".into())
                .spawn(move || -> Result<D> {
                    let mut mem = OwnedBuffers::for_device(&dev);
                    let mounted = match how {
                        Start::Mount => Volume::<D, TX_BLOCKS>::mount(dev, mem.bufs()),
                        Start::Format(o) => Volume::<D, TX_BLOCKS>::format(dev, &o, mem.bufs()),
                    };
                    let mut vol = match mounted {
                        Ok(v) => v,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.into()));
                            return Err(Error::Closed);
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    vol.set_durability(Durability::Deferred);
                    let mut replies: Vec<Reply> = Vec::with_capacity(GROUP_MAX);
                    while let Ok(job) = job_rx.recv() {
                        replies.push(job(&mut vol));
                        while replies.len() < GROUP_MAX {
                            match job_rx.try_recv() {
                                Ok(job) => replies.push(job(&mut vol)),
                                Err(_) => break,
                            }
                        }
                        let failed = vol.sync().err().map(|e| Flushed {
                            kind: match &e {
                                vde_nostd::Error::Device(io) => io.kind(),
                                _ => std::io::ErrorKind::Other,
                            },
                            message: format!("the flush of a group commit failed: {e:?}"),
                        });
                        for reply in replies.drain(..) {
                            reply(failed.as_ref());
                        }
                    }
                    vol.unmount().map_err(Error::from)
                })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(SharedVolume {
                inner: Arc::new(Inner {
                    jobs: Mutex::new(Some(job_tx)),
                    worker: Mutex::new(Some(handle)),
                }),
            }),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(e)
            }
            Err(_) => match handle.join() {
                Ok(r) => r.and(Err(Error::Closed)),
                Err(p) => resume_unwind(p),
            },
        }
    }

    /// Runs `f` on the mounted volume, alone (no other call runs meanwhile), and returns its
    /// result once every commit `f` made is durable (the group's flush, see the module
    /// documentation; the volume is in [`Durability::Deferred`] mode inside `f`). A panic in
    /// `f` is resumed in the calling thread; a failed flush is [`Error::Io`].
    pub fn with<R: Send + 'static>(
        &self,
        f: impl for<'b> FnOnce(&mut Volume<'b, D, TX_BLOCKS>) -> R + Send + 'static,
    ) -> Result<R> {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        let job: Job<D> = Box::new(move |vol: &mut Volume<'_, D, TX_BLOCKS>| -> Reply {
            let r = catch_unwind(AssertUnwindSafe(|| f(vol)));
            Box::new(move |failed: Option<&Flushed>| {
                let sent = match (r, failed) {
                    (Ok(_), Some(f)) => Err(std::io::Error::new(f.kind, f.message.clone())),
                    (r, _) => Ok(r),
                };
                let _ = reply_tx.send(sent);
            })
        });
        {
            let jobs = lock(&self.inner.jobs);
            let tx = jobs.as_ref().ok_or(Error::Closed)?;
            tx.send(job).map_err(|_| Error::Closed)?;
        }
        match reply_rx.recv() {
            Ok(Ok(Ok(r))) => Ok(r),
            Ok(Ok(Err(panic))) => resume_unwind(panic),
            Ok(Err(flush)) => Err(Error::Io(flush)),
            Err(_) => Err(Error::Closed),
        }
    }

    /// Stores `data` (copied) and returns its handle.
    pub fn put(&self, data: &[u8]) -> Result<Handle> {
        let data = data.to_vec();
        self.with(move |v| v.put(&data))?.map_err(Error::from)
    }

    /// Reads the object named by `h`.
    pub fn get(&self, h: Handle) -> Result<Vec<u8>> {
        self.with(move |v| -> Result<Vec<u8>> {
            let len = usize::try_from(v.object_len(h)?)
                .map_err(|_| Error::Engine(vde_nostd::Error::ObjectChecksum { handle: h.raw() }))?;
            let mut buf = Vec::new();
            buf.try_reserve_exact(len).map_err(|_| {
                Error::Io(std::io::Error::new(
                    std::io::ErrorKind::OutOfMemory,
                    format!("cannot allocate {len} bytes for object {h}"),
                ))
            })?;
            buf.resize(len, 0);
            let n = v.get(h, &mut buf)?;
            buf.truncate(n);
            Ok(buf)
        })?
    }

    /// Deletes the object named by `h`.
    pub fn delete(&self, h: Handle) -> Result<()> {
        self.with(move |v| v.delete(h))?.map_err(Error::from)
    }

    /// Object statistics.
    pub fn object_stats(&self) -> Result<ObjectStats> {
        self.with(|v| v.object_stats())?.map_err(Error::from)
    }

    /// Block usage.
    pub fn usage(&self) -> Result<Usage> {
        self.with(|v| v.usage())
    }

    /// Makes every committed transaction durable in place and empties the log.
    pub fn checkpoint(&self) -> Result<()> {
        self.with(|v| v.checkpoint())?.map_err(Error::from)
    }

    /// Stops the worker after the jobs already queued, unmounts, and returns the device. Every
    /// other handle gets [`Error::Closed`] from then on.
    pub fn close(self) -> Result<D> {
        match self.inner.stop() {
            Some(Ok(r)) => r,
            Some(Err(panic)) => resume_unwind(panic),
            None => Err(Error::Closed),
        }
    }
}
