//! Firmware for the size/stack measurement: candidate C, blocking user: state machines + blocking driver.
#![no_std]
#![no_main]
use async_techniques::sans_io::Volume;

type Vol<'m> = Volume<RamFlash<'m>>;
fn new_vol(f: RamFlash<'_>) -> Vol<'_> { Volume::new(f) }
fn op_put(v: &mut Vol<'_>, key: u8, d: &[u8], s: &mut [u8; BLOCK]) -> Result<(), Error> { v.put(key, d, s) }
fn op_get(v: &mut Vol<'_>, key: u8, o: &mut [u8], s: &mut [u8; BLOCK]) -> Result<usize, Error> { v.get(key, o, s) }
fn op_recover(v: &mut Vol<'_>) -> Result<u32, Error> { v.recover() }

include!("../fw_main.rs");
