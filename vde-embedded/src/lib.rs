//! # vde-embedded — the vde engine on flash
//!
//! Everything here is `#![no_std]`, allocation-free and free of `unsafe`:
//!
//! - [`nor`]: [`NorFlashDevice`], which turns any `embedded-storage`
//!   [`NorFlash`](embedded_storage::nor_flash::NorFlash) into the core's
//!   [`BlockDevice`](vde_nostd::BlockDevice). One vde block is one or more whole erase sectors;
//!   a block write is an erase followed by programs.
//! - [`sim`]: [`SimFlash`], an in-memory NOR flash over caller-provided storage that enforces the
//!   flash rules (erased = `0xFF`, programs only clear bits, no program over programmed bytes),
//!   counts reads, programs and erases (and wear per erase sector), turns the counts into busy
//!   time at datasheet timings ([`sim::parts`]), and cuts power at the K-th operation, tearing a
//!   program or an erase in the middle. [`SimRam`] is the same for a RAM disk of whole blocks (a
//!   cut tears the write in progress at 512-byte sector granularity): a plain RAM image inside a
//!   [`FaultInjector`]. [`sim::McuFlash`] holds any NOR flash to a microcontroller's program
//!   rules (each `WRITE_SIZE` unit programmed once, or twice on nRF52, between erases whatever
//!   its bytes; a per-row program limit), with presets in [`sim::McuRules`].
//! - [`fault`]: [`FaultInjector`], power-cut injection around any
//!   [`BlockDevice`](vde_nostd::BlockDevice) (a file, a RAM disk, a user's own driver): it counts
//!   reads and writes, cuts the power at the K-th, tears the write in progress at 512-byte sector
//!   granularity over the device's old content (composed in one block of caller memory), fails a
//!   cut read, and fails everything after the cut with [`FaultError::PowerLost`] until a reboot.
//! - [`nand`]: the [`nand::NandFlash`] trait (pages with spare, program once per erase, erase
//!   blocks, bad-block status), `SimNand` with real part presets, factory and grown bad blocks,
//!   and a NOR-as-NAND adapter.
//! - [`ftl`]: a log-structured translation layer presenting a `BlockDevice` over any NAND (or NOR
//!   through the adapter): garbage collection, bad-block relocation and wear leveling, its map
//!   rebuilt from page spare records at mount.
//!
//! Every buffer comes from the caller, so the simulator runs as well on a Cortex-M as in a test.
//!
//! With the `std` feature, [`harness`] adds a reusable power-cut harness: a workload run with a
//! cut at every device operation in turn on NOR, NAND through the translation layer or a RAM
//! disk, each followed by reboot, the outcomes of the writes issued since the last flush (any
//! subset, any order, one torn: [`harness::unflushed`]), remount and a model check.
//!
//! Features: `std` (adds `std::error::Error` impls and the [`harness`]), `defmt`
//! (`defmt::Format` on every public type of the no_std part).
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod fault;
pub mod ftl;
pub mod nand;
pub mod sim;

// The NOR adapter is compiled twice from one source, as the core's I/O modules are: blocking
// (`nor`, over `embedded-storage`) and async ([`asynch::nor`], over `embedded-storage-async`).
#[allow(clippy::duplicate_mod)]
#[path = "."]
mod blocking {
    /// The items, in the blocking build only.
    macro_rules! if_blocking {
        ($($t:tt)*) => { $($t)* };
    }
    /// The items, in the async build only.
    macro_rules! if_async {
        ($($t:tt)*) => {};
    }
    #[cfg(feature = "std")]
    pub mod harness;
    pub mod nor;
}

/// vde's async engine ([`vde_nostd::asynch`]) on flash: [`asynch::NorFlashDevice`] over any
/// `embedded-storage-async` [`NorFlash`](embedded_storage_async::nor_flash::NorFlash), the same
/// code as the blocking [`NorFlashDevice`] with `.await` on the flash.
#[allow(clippy::duplicate_mod)]
#[path = "."]
pub mod asynch {
    /// The items, in the blocking build only.
    macro_rules! if_blocking {
        ($($t:tt)*) => {};
    }
    /// The items, in the async build only.
    macro_rules! if_async {
        ($($t:tt)*) => { $($t)* };
    }
    #[cfg(feature = "std")]
    pub mod harness;
    pub mod nor;
    pub use nor::NorFlashDevice;
}

#[cfg(feature = "std")]
pub use blocking::harness;
pub use blocking::nor;

pub use fault::{FaultError, FaultInjector};
pub use nor::{GeometryError, NorError, NorFlashDevice, MIN_BLOCKS};
pub use sim::{
    FlashPart, FlashStats, FlashTiming, OpKind, SimConfig, SimError, SimFlash, SimRam,
    SimSetupError, TearMode, WearSummary, XorShift64,
};
