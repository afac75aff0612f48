//! The same job as the `vde` bin with sequential-storage's map on the same 64 KiB range: store
//! 16-, 64- and 200-byte items under keys 0, 1, 2, fetch them back and compare, remove key 1.
//!
//! Blocking: sequential-storage is async only; `BlockingAsync` (embassy-embedded-hal) makes the
//! blocking `Nvmc` an async flash and `embassy_futures::block_on` runs each operation.
//!
//! Memory: the data buffer (one key and the largest value, rounded up to the 4-byte word) is a
//! static taken once with `ConstStaticCell`, as the `vde` bin's buffers are; the map (with no
//! cache) and the item buffer live on `main`'s stack.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use cortex_m_rt::entry;
use embassy_embedded_hal::adapter::BlockingAsync;
use embassy_futures::block_on;
use panic_halt as _;
use sequential_storage::cache::Cache;
use sequential_storage::map::{MapConfig, MapStorage};
use static_cell::ConstStaticCell;
use vde_example_nrf52840::{
    finish, flash, item_bytes, ITEM_SIZES, MAX_ITEM, OK, RANGE_END, RANGE_START,
};

/// A `u8` key and the largest value, rounded up to the flash word.
const DATA_BUF: usize = (1 + MAX_ITEM).div_ceil(4) * 4;

static DATA: ConstStaticCell<[u8; DATA_BUF]> = ConstStaticCell::new([0; DATA_BUF]);

#[entry]
fn main() -> ! {
    let buf = DATA.take();
    let mut map = MapStorage::<u8, _, _>::new(
        BlockingAsync::new(flash()),
        const { MapConfig::new(RANGE_START..RANGE_END) },
        Cache::new_uncached(),
    );

    let mut item = [0u8; MAX_ITEM];
    for (i, &len) in ITEM_SIZES.iter().enumerate() {
        item_bytes(i as u8, &mut item[..len]);
        if block_on(map.store_item(buf, &(i as u8), &&item[..len])).is_err() {
            finish(3)
        }
    }
    for (i, &len) in ITEM_SIZES.iter().enumerate() {
        item_bytes(i as u8, &mut item[..len]);
        match block_on(map.fetch_item::<&[u8]>(buf, &(i as u8))) {
            Ok(Some(v)) if v == &item[..len] => {}
            _ => finish(4),
        }
    }
    if block_on(map.remove_item(buf, &1)).is_err() {
        finish(5)
    }
    finish(OK)
}
