//! Harnesses of the vde fuzz targets. Each module holds one target's logic (`run(&[u8])`) so
//! the targets in `fuzz_targets/` are one line each, and the seed generator and the regression
//! tests can replay an input on stable without libFuzzer.

pub mod common;
pub mod decode;
pub mod mount;
pub mod ops;
pub mod wal_recovery;
