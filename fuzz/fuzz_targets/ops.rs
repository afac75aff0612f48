#![no_main]
//! See `vde_fuzz::ops` for the input format and what is checked.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vde_fuzz::ops::run(data));
