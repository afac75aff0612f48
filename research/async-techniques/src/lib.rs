//! Prototype for "Async: blocking and async from one source".
//!
//! - `common`: layout constants, errors, checksum and record encoding (plain sync code, shared by
//!   every candidate).
//! - `blocking` / `asynch`: candidate B — `engine.rs` written once with `async fn`/`.await`,
//!   included twice; `#[bisync]` is `strip_async` in `blocking` and `keep_async` in `asynch`.
//! - Candidate A is `asynch` itself, driven for blocking users through
//!   `embassy_embedded_hal::adapter::BlockingAsync` + `embassy_futures::block_on` (see `a`).
//! - `sans_io`: candidate C — the same engine as request/completion state machines, plus a
//!   blocking and an async driver.
//! - `ramflash`: the fake NOR flash (blocking and async traits) used by every bench and firmware.
#![no_std]
#![forbid(unsafe_code)]

pub mod common;
pub mod ramflash;
pub mod sans_io;

/// Candidate B, blocking half: plain sync code generated from `engine.rs`.
#[path = "."]
pub mod blocking {
    pub use embedded_storage::nor_flash::NorFlash as Flash;
    pub use strip_async::strip_async as bisync;
    pub mod engine;
}

/// Candidate B, async half (and candidate A's engine): `engine.rs` as written.
#[path = "."]
pub mod asynch {
    pub use embedded_storage_async::nor_flash::NorFlash as Flash;
    pub use strip_async::keep_async as bisync;
    pub mod engine;
}

/// Candidate A for blocking users: async engine + adapter whose futures are always ready + block_on.
pub mod a {
    use crate::common::{Error, BLOCK};
    pub use embassy_embedded_hal::adapter::BlockingAsync;
    use embedded_storage::nor_flash::NorFlash;

    pub struct Volume<F: NorFlash>(pub crate::asynch::engine::Volume<BlockingAsync<F>>);

    impl<F: NorFlash> Volume<F> {
        pub fn new(dev: F) -> Self {
            Volume(crate::asynch::engine::Volume::new(BlockingAsync::new(dev)))
        }
        pub fn put(&mut self, key: u8, data: &[u8], scratch: &mut [u8; BLOCK]) -> Result<(), Error> {
            embassy_futures::block_on(self.0.put(key, data, scratch))
        }
        pub fn get(&mut self, key: u8, out: &mut [u8], scratch: &mut [u8; BLOCK]) -> Result<usize, Error> {
            embassy_futures::block_on(self.0.get(key, out, scratch))
        }
        pub fn recover(&mut self) -> Result<u32, Error> {
            embassy_futures::block_on(self.0.recover())
        }
    }
}
