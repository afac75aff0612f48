#![no_main]
//! See `vde_fuzz::wal_recovery` for the input format and what is checked.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vde_fuzz::wal_recovery::run(data));
