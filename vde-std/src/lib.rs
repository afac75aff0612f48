//! # vde-std — the vde engine on files, for desktop and server programs
//!
//! The core ([`vde_nostd`]) runs on any [`BlockDevice`](vde_nostd::BlockDevice) with buffers
//! the caller hands it. This crate supplies both for a normal operating system:
//!
//! - [`FileDevice`]: an image file (or block device) with positional I/O, `sync_data` as the
//!   durability barrier and a file lock that keeps a second writer out;
//! - [`OverlayDevice`]: a read-only image under an in-memory write overlay, so a volume can be
//!   mounted (WAL recovery included) without changing a byte of the file;
//! - [`OwnedBuffers`]: heap buffers sized from the geometry;
//! - [`SharedVolume`]: a mounted volume shared between threads;
//! - [`check`], [`scan`] and [`repair`]: the read-only verifier and the repair behind
//!   `vde check`.
//!
//! ```no_run
//! use vde_std::{FileDevice, OwnedBuffers, FileVolume};
//! # fn main() -> Result<(), vde_std::Error> {
//! let dev = FileDevice::open("disk.img")?;
//! let mut mem = OwnedBuffers::for_device(&dev);
//! let mut vol = FileVolume::mount(dev, mem.bufs())?;
//! let h = vol.put(b"hello")?;
//! let mut buf = [0u8; 16];
//! let n = vol.get(h, &mut buf)?;
//! assert_eq!(&buf[..n], b"hello");
//! vol.unmount()?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod buffers;
pub mod cache;
pub mod check;
pub mod error;
pub mod file;
pub mod file_io;
pub mod gather;
pub mod overlay;
pub mod repair;
pub mod scan;
pub mod shared;

use std::hash::BuildHasher;
use std::path::Path;

pub use buffers::OwnedBuffers;
pub use error::{Error, Result};
pub use file::{FileDevice, Geometry};
pub use file_io::FileIo;
pub use gather::{AppendGather, Written};
pub use overlay::OverlayDevice;
pub use shared::SharedVolume;

/// Block updates one transaction may hold (the `K` of [`vde_nostd::Volume`]).
pub const TX_BLOCKS: usize = 64;

/// A volume over an image file.
pub type FileVolume<'b> = vde_nostd::Volume<'b, FileDevice, TX_BLOCKS>;

/// The clock the engine is given: seconds since the UNIX epoch (0 if the system clock is
/// before it).
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A volume identity for a new image at `path`: a hash of the time, the process id, the path and
/// the standard library's per-process random hash keys.
pub fn new_volume_id(path: &Path) -> [u8; 16] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut out = [0u8; 16];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let h = std::collections::hash_map::RandomState::new().hash_one((
            i,
            nanos,
            std::process::id(),
            path,
        ));
        chunk.copy_from_slice(&h.to_le_bytes());
    }
    out
}
