//! The baseline: HAL init and the flash controller, one word read from the storage range. The
//! storage bins are measured against this one (`scripts/firmware-size.sh`).
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::hint::black_box;

use cortex_m_rt::entry;
use embassy_nrf::nvmc::Nvmc;
use embedded_storage::nor_flash::ReadNorFlash;
use panic_halt as _;
use vde_example_nrf52840::{finish, flash, OK, RANGE_START};

#[entry]
fn main() -> ! {
    let mut nvmc: Nvmc<'static> = flash();
    let mut word = [0u8; 4];
    match nvmc.read(black_box(RANGE_START), &mut word) {
        Ok(()) => {
            black_box(word);
            finish(OK)
        }
        Err(_) => finish(1),
    }
}
