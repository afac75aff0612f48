//! The async job ([`vde_example_nrf52840::async_job`]) as an embassy application: the
//! embassy-executor thread executor runs `main` as a task, and the volume's operations are
//! `.await`ed like any other driver call, beside whatever else the application runs (a BLE
//! stack, other tasks). The flash is embassy-nrf's `Nvmc` behind embassy-embedded-hal's
//! `BlockingAsync` (the nRF52840's flash controller is blocking; a QSPI flash or nrf-softdevice's
//! flash would be async by itself, and goes in the same place).
//!
//! Not in the size comparison (the executor is not part of the storage engine's cost): the
//! `vde_async` bin is.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use embassy_embedded_hal::adapter::BlockingAsync;
use embassy_executor::Spawner;
use panic_halt as _;
use static_cell::ConstStaticCell;
use vde_example_nrf52840::async_job::{self, Mem};
use vde_example_nrf52840::{finish, flash};

static MEM: ConstStaticCell<Mem> = ConstStaticCell::new(async_job::mem());

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    let mem = MEM.take();
    let outcome = async_job::job(BlockingAsync::new(flash()), mem).await;
    finish(outcome)
}
