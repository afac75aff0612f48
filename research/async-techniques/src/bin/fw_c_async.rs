//! Firmware for the size/stack measurement: candidate C, async user: state machines + async driver, driven by block_on.
#![no_std]
#![no_main]
use async_techniques::sans_io::AsyncVolume; use embassy_futures::block_on;

type Vol<'m> = AsyncVolume<RamFlash<'m>>;
fn new_vol(f: RamFlash<'_>) -> Vol<'_> { AsyncVolume::new(f) }
fn op_put(v: &mut Vol<'_>, key: u8, d: &[u8], s: &mut [u8; BLOCK]) -> Result<(), Error> { block_on(v.put(key, d, s)) }
fn op_get(v: &mut Vol<'_>, key: u8, o: &mut [u8], s: &mut [u8; BLOCK]) -> Result<usize, Error> { block_on(v.get(key, o, s)) }
fn op_recover(v: &mut Vol<'_>) -> Result<u32, Error> { block_on(v.recover()) }

include!("../fw_main.rs");
