//! # vde-nostd — the power-loss-safe virtual disk engine core
//!
//! A small on-disk format plus the code that allocates space in it ([`scanner`], [`bitmap`]),
//! changes it atomically through a write-ahead log ([`wal`]), grows it online ([`volume`] with the
//! [`modules`] catalogue), packs small objects densely ([`subblock`], [`objects`]) and finds
//! them by name ([`names`]).
//!
//! The crate is `#![no_std]`, never allocates, and contains no `unsafe`. Every buffer comes from
//! the caller: block-sized scratch slices and const-generic capacities. Nothing read from a device
//! can make it panic: corrupt or hostile content yields an [`Error`].
//!
//! The on-disk format is described byte by byte in `FORMAT.md` at the repository root; the
//! encoders and decoders for it live in [`format`], apart from the logic that uses them. Why the
//! design is as it is: `DESIGN.md` beside it.
//!
//! # Seed concepts
//!
//! The original plans named these parts; each name is a `doc(alias)` on the item that carries it
//! (search the docs for it):
//!
//! | seed name | here |
//! |---|---|
//! | FreeSpaceScanner | [`scanner::first_fit`] (and [`scanner::free_runs`], [`scanner::count_free`]) |
//! | WalJournaledRegionWriter | [`wal::Wal`], driven through [`Transaction`] |
//! | OnlineRegionAddition | [`Volume::add_module_regions`] |
//! | SubBlockBitmap | [`subblock::SlotBitmap`] |
//! | SubBlockPacker | [`Volume::put`] (packing in [`objects`], slot classes in [`subblock`]) |
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod bitmap;
pub mod block_cache;
#[cfg(feature = "defmt")]
mod defmt_impls;
pub mod device;
pub mod error;
pub mod format;
pub mod handle;
pub mod modules;
pub mod names;
pub mod objects;
pub mod scanner;
pub mod subblock;
pub mod tx_buffer;
pub mod types;
pub mod volume;
pub mod wal;

pub use device::{BlockDevice, RamDevice};
pub use error::{Error, Structure};
pub use handle::Handle;
pub use modules::{Module, ModuleSet};
pub use objects::{Batch, ObjectInfo, ObjectStats};
pub use types::{BlockNo, Epoch, Extent, Seq};
pub use volume::{Buffers, FormatOptions, Transaction, Volume};

/// Smallest supported block size in bytes.
pub const MIN_BLOCK_SIZE: usize = 512;
/// Largest supported block size in bytes.
pub const MAX_BLOCK_SIZE: usize = 65536;
