//! What the example firmwares share: the HAL setup, the storage range, the items they store, and
//! how they report the outcome; and the job through vde's async engine ([`async_job`]).
//!
//! Every bin runs the same HAL setup ([`flash`]: `embassy_nrf::init` and `Nvmc::new`), so the
//! difference between a storage bin and `bare` is the storage engine and its use. No logging in
//! any bin: the outcome is a word in [`RESULT`] (read it with a debugger), kept alive with
//! `black_box`.
#![no_std]
#![deny(unsafe_code)]

use core::hint::black_box;
use core::sync::atomic::{AtomicU32, Ordering};

use embassy_nrf::nvmc::Nvmc;

#[cfg(feature = "objects")]
pub mod async_job;

/// The storage range: the last 64 KiB of the nRF52840's 1 MiB flash, 16 pages of 4 KiB.
pub const RANGE_START: u32 = 0xF_0000;
/// End of the storage range (exclusive).
pub const RANGE_END: u32 = 0x10_0000;
/// The NVMC's erase page, and vde's block size.
pub const PAGE: usize = 4096;
/// Pages in the storage range.
pub const PAGES: u64 = ((RANGE_END - RANGE_START) as usize / PAGE) as u64;

/// Sizes of the items the job stores, reads back and (the second one) deletes.
pub const ITEM_SIZES: [usize; 3] = [16, 64, 200];
/// The largest item.
pub const MAX_ITEM: usize = 200;

/// [`RESULT`] when the job ran to the end with every check passed.
pub const OK: u32 = 0x600D;

/// The job's outcome: 0 while it runs, [`OK`], or the number of the step that failed.
pub static RESULT: AtomicU32 = AtomicU32::new(0);

/// HAL init (default config: no time driver, no logging) and the flash controller.
pub fn flash() -> Nvmc<'static> {
    let p = embassy_nrf::init(Default::default());
    Nvmc::new(p.NVMC)
}

/// Item `i`: its number, then a pattern unique per item.
pub fn item_bytes(i: u8, out: &mut [u8]) {
    for (j, b) in out.iter_mut().enumerate() {
        *b = (j as u8).wrapping_mul(29) ^ i.wrapping_mul(101);
    }
    if let Some(b) = out.first_mut() {
        *b = i;
    }
}

/// Records the outcome and sleeps forever.
pub fn finish(code: u32) -> ! {
    RESULT.store(black_box(code), Ordering::SeqCst);
    black_box(&RESULT);
    loop {
        cortex_m::asm::wfi();
    }
}
