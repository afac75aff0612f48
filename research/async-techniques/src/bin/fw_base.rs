//! Baseline firmware: only touches the fake flash (read/write/erase), no engine.
#![no_std]
#![no_main]
use async_techniques::common::{BLOCK, FLASH_SIZE};
use async_techniques::ramflash::RamFlash;
use core::hint::black_box;
use cortex_m_rt::entry;
use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use panic_halt as _;

#[entry]
fn main() -> ! {
    let mut mem = [0xFFu8; FLASH_SIZE];
    let mut scratch = [0u8; BLOCK];
    let mut f = RamFlash::new(black_box(&mut mem[..]));
    loop {
        let d = black_box([0x5Au8; 300]);
        let _ = black_box(f.erase(black_box(0), black_box(BLOCK as u32)));
        let _ = black_box(f.write(black_box(0), &d));
        let _ = black_box(f.read(black_box(0), &mut scratch));
        black_box(&mut scratch);
    }
}
