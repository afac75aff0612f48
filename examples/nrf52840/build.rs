//! Link setup for cortex-m-rt.
//!
//! - Puts `memory.x` on the linker search path, so that cortex-m-rt's `link.x` finds it whatever
//!   directory the linker runs in, and relinks when it changes.
//! - Passes `-Tlink.x` here rather than as `rustflags` in `.cargo/config.toml`: a `RUSTFLAGS`
//!   environment variable (common in CI) replaces config rustflags and would silently drop it.

use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
}
