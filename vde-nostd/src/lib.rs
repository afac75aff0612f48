//! # vde-nostd — the power-loss-safe virtual disk engine core
//!
//! A small on-disk format plus the code that allocates space in it ([`scanner`], [`bitmap`]),
//! changes it atomically through a write-ahead log ([`wal`]), grows it online ([`volume`] with the
//! [`modules`] catalogue), packs small objects densely ([`subblock`], [`objects`]) and finds
//! them by name ([`names`]). The rules a valid image keeps are checked by [`verifier`], which
//! mount and the `vde check` tool share.
//!
//! The crate is `#![no_std]`, never allocates, and contains no `unsafe`. Every buffer comes from
//! the caller, sized at compile time by a [`MemoryPlan`] ([`memory`]). Nothing read from a device
//! can make it panic: corrupt or hostile content yields an [`Error`].
//!
//! The on-disk format is described byte by byte in `FORMAT.md` at the repository root; the
//! encoders and decoders for it live in [`format`], apart from the logic that uses them. Why the
//! design is as it is: `DESIGN.md` beside it.
//!
//! # Cargo features
//!
//! An application links what it uses. The default is everything; with `default-features =
//! false` the core keeps block transactions through the log ([`Transaction`]), allocation and
//! the free-space scanner, and these add:
//!
//! | feature | adds |
//! |---|---|
//! | `objects` | [`Volume::put`], `get`, `delete`, batches, packing of small objects |
//! | `names` | named objects: `store`, `fetch`, `remove`, listing by key (implies `objects`) |
//! | `summaries` | [`Volume::attach_summaries`]: first fit reads one bitmap block |
//! | `verify` | [`Volume::verify`], the whole-volume check (mount's own checks are always in) |
//! | `module-addition` | [`Volume::add_module_regions`] and `can_add_module` after format |
//! | `defmt` | `defmt::Format` on the public types |
//!
//! A volume written by any build mounts in any other; an operation that needs left-out code
//! (adding the objects module to a volume in a build without `objects`) fails with
//! [`Error::NotCompiled`].
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
// A build without every feature leaves helpers only the left-out code calls: the full build
// (the default, which CI lints) keeps every lint.
#![cfg_attr(
    not(all(
        feature = "objects",
        feature = "names",
        feature = "summaries",
        feature = "verify",
        feature = "module-addition"
    )),
    allow(dead_code, unused_imports, unused_variables)
)]

pub mod bitmap;
pub mod block_cache;
pub mod error;
pub mod format;
pub mod handle;
pub mod memory;
pub mod modules;
pub mod subblock;
pub mod tx_buffer;
pub mod types;
pub mod verifier;

// The modules that reach the device are written once, as `async fn` with `.await` (see
// `vde-bisync`), and compiled twice: here without `async` (the blocking engine, whose modules the
// crate root re-exports) and in [`asynch`] as written. Each copy brings its own `#[bisync]`,
// `if_blocking!`, `if_async!` and `use_mode!` (a `use` of the same copy's items) into scope.
// Clippy's `duplicate_mod` is the point here: the same files, compiled twice.
#[allow(clippy::duplicate_mod)]
#[path = "."]
mod blocking {
    pub(crate) use vde_bisync::strip_async as bisync;
    /// The items, in the blocking build only.
    macro_rules! if_blocking {
        ($($t:tt)*) => { $($t)* };
    }
    /// The items, in the async build only.
    macro_rules! if_async {
        ($($t:tt)*) => {};
    }
    /// `use` of items of this build's copy of the I/O modules.
    macro_rules! use_mode {
        ($($t:tt)*) => { use crate::blocking::$($t)*; };
    }
    /// `$e` awaited with its poll out of line (async build); here the call itself.
    macro_rules! await_outlined {
        ($e:expr) => {
            $e
        };
    }
    /// A function split out only for the async build's sake (its locals in a future of their
    /// own): here inlined back into its one caller, so the blocking code is as before.
    macro_rules! async_split_fn {
        ($($t:tt)*) => { #[inline(always)] $($t)* };
    }

    #[cfg(feature = "defmt")]
    mod defmt_impls;
    pub mod device;
    #[cfg(feature = "names")]
    pub mod names;
    #[cfg(feature = "objects")]
    pub mod objects;
    pub mod scanner;
    pub mod volume;
    pub mod wal;
}

/// The async engine: the same code as the blocking one at the crate root, over an async device
/// ([`asynch::BlockDevice`], whose reads and writes are `async fn`). Each operation of
/// [`asynch::Volume`] is the blocking one's `async` twin with the same guarantees; an
/// operation dropped before it finishes (a timeout, a `select`) leaves the volume as a power
/// cut there would, and the next operation recovers it first (see [`asynch::Volume`]).
#[allow(clippy::duplicate_mod)]
#[path = "."]
pub mod asynch {
    pub(crate) use vde_bisync::keep_async as bisync;
    /// The items, in the blocking build only.
    macro_rules! if_blocking {
        ($($t:tt)*) => {};
    }
    /// The items, in the async build only.
    macro_rules! if_async {
        ($($t:tt)*) => { $($t)* };
    }
    /// `use` of items of this build's copy of the I/O modules.
    macro_rules! use_mode {
        ($($t:tt)*) => { use crate::asynch::$($t)*; };
    }
    /// `$e.await`, with the future pinned where it is built and polled by a function of its
    /// own ([`poll_outlined`]): the caller's poll keeps none of the callee's temporaries in its
    /// frame (LLVM inlines a child's poll into its parent's and does not overlap their stack
    /// slots), so the stack is the deepest chain of frames, not their sum.
    macro_rules! await_outlined {
        ($e:expr) => {{
            let f = ::core::pin::pin!($e);
            crate::asynch::outlined(f).await
        }};
    }

    /// A function split out so that its locals live in a future of its own, which its caller
    /// awaits before its next step (a local live across two `.await`s stays in a future for
    /// all of it); the blocking build inlines it back.
    macro_rules! async_split_fn {
        ($($t:tt)*) => { #[inline(never)] $($t)* };
    }

    /// Awaits `f` through [`poll_outlined`] (see `await_outlined!`).
    pub(crate) fn outlined<F: core::future::Future>(
        mut f: core::pin::Pin<&mut F>,
    ) -> impl core::future::Future<Output = F::Output> + '_ {
        core::future::poll_fn(move |cx| poll_outlined(f.as_mut(), cx))
    }

    /// `f.poll(cx)` in a frame of its own.
    #[inline(never)]
    pub(crate) fn poll_outlined<F: core::future::Future>(
        f: core::pin::Pin<&mut F>,
        cx: &mut core::task::Context<'_>,
    ) -> core::task::Poll<F::Output> {
        f.poll(cx)
    }

    #[cfg(feature = "defmt")]
    mod defmt_impls;
    pub mod device;
    #[cfg(feature = "names")]
    pub mod names;
    #[cfg(feature = "objects")]
    pub mod objects;
    pub mod scanner;
    pub mod volume;
    pub mod wal;

    pub use device::BlockDevice;
    #[cfg(feature = "objects")]
    pub use objects::Batch;
    pub use volume::{Transaction, Volume};
}

#[cfg(feature = "names")]
pub use blocking::names;
#[cfg(feature = "objects")]
pub use blocking::objects;
pub use blocking::{device, scanner, volume, wal};

pub use device::{BlockDevice, RamDevice};
pub use error::{Error, MountError, Structure};
pub use handle::Handle;
pub use memory::{Memory, MemoryPlan};
pub use modules::{Module, ModuleSet};
#[cfg(feature = "objects")]
pub use objects::{Batch, ObjectInfo, ObjectStats};
pub use types::{BlockNo, Epoch, Extent, Seq};
pub use volume::{Buffers, FormatOptions, Transaction, Volume};

/// Smallest supported block size in bytes.
pub const MIN_BLOCK_SIZE: usize = 512;
/// Largest supported block size in bytes.
pub const MAX_BLOCK_SIZE: usize = 65536;
