#![no_main]
//! See `vde_fuzz::decode` for the input format and what is checked.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vde_fuzz::decode::run(data));
