//! COMPILE-FAIL PROBE (never builds, never linked): makes rustc print the size of each future for
//! the thumb target via the E0512 "cannot transmute between types of different sizes" message.
//! run.sh builds it with `--features probe` and greps "(N bits)". The `unsafe` here is only the
//! vehicle for that error message; the library itself forbids unsafe.
#![no_std]
#![no_main]
use async_techniques::common::BLOCK;
use async_techniques::ramflash::RamFlash;
use async_techniques::{asynch, sans_io};
use panic_halt as _;

pub fn probe(mem: &mut [u8], s: &mut [u8; BLOCK], d: &[u8]) {
    let mut v = asynch::engine::Volume::new(RamFlash::new(mem));
    let _: [u8; 1] = unsafe { core::mem::transmute(v.put(1, d, s)) };
    let mut c = sans_io::AsyncVolume::new(RamFlash::new(&mut []));
    let _: [u8; 2] = unsafe { core::mem::transmute(c.put(1, d, s)) };
}
