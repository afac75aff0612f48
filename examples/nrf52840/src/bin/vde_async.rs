//! The same job as the `vde` bin through vde's async engine ([`vde_nostd::asynch`]), as a
//! firmware whose flash is an `embedded-storage-async` `NorFlash` would run it
//! ([`vde_example_nrf52840::async_job`]).
//!
//! The flash: embassy-nrf's blocking `Nvmc` made async by embassy-embedded-hal's `BlockingAsync`,
//! exactly as the `seqstore` bin gives it to sequential-storage (whose map is async only), and
//! `embassy_futures::block_on` runs the job, so the two async builds are measured side by side.
//! The volume's buffers are one static, as in the `vde` bin; the volume lives in the job's
//! future. The `vde_embassy` bin is the same job as an embassy-executor application.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use cortex_m_rt::entry;
use embassy_embedded_hal::adapter::BlockingAsync;
use embassy_futures::block_on;
use panic_halt as _;
use static_cell::ConstStaticCell;
use vde_example_nrf52840::async_job::{self, Mem};
use vde_example_nrf52840::{finish, flash};

static MEM: ConstStaticCell<Mem> = ConstStaticCell::new(async_job::mem());

#[entry]
fn main() -> ! {
    let mem = MEM.take();
    finish(block_on(async_job::job(BlockingAsync::new(flash()), mem)))
}
