//! The job with vde on nRF52840: mount the 64 KiB storage range, or format it on first boot;
//! store 16-, 64- and 200-byte objects, read them back and compare, delete one.
//!
//! Memory: the volume's buffers (scratch, transaction memory, slot index: the smallest the API
//! allows) are one static, taken once with `ConstStaticCell` (no `unsafe`), so they count as
//! static RAM (.bss); the `Volume` itself and the item buffers live on `main`'s stack.
//!
//! Each boot mounts the volume and stores three more objects (deleting one): a real firmware
//! would keep the handles it got, or use the `names` module to store under keys.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use cortex_m_rt::entry;
use panic_halt as _;
use static_cell::ConstStaticCell;
use vde_embedded::NorFlashDevice;
use vde_example_nrf52840::{
    finish, flash, item_bytes, ITEM_SIZES, MAX_ITEM, OK, PAGE, PAGES, RANGE_START,
};
use vde_nostd::{Buffers, FormatOptions, Handle, Volume};

/// Block updates one transaction may hold (a put changes a few blocks).
const TX_K: usize = 8;
/// One block and a 128-byte log page: the NOR adapter reads parts of blocks.
const SCRATCH: usize = Buffers::scratch_min(PAGE, true);
/// Room for the put of the largest packed object.
const TXN: usize = Buffers::txn_min(PAGE);
/// Slot index: `8 + block_size / 512` bytes for each of up to 16 shared blocks.
const INDEX: usize = 16 * (8 + PAGE / 512);

struct Mem {
    scratch: [u8; SCRATCH],
    txn: [u8; TXN],
    index: [u8; INDEX],
}

static MEM: ConstStaticCell<Mem> = ConstStaticCell::new(Mem {
    scratch: [0; SCRATCH],
    txn: [0; TXN],
    index: [0; INDEX],
});

#[entry]
fn main() -> ! {
    let mem = MEM.take();
    // Blocks of one 4 KiB page, 16 of them from 0xF0000: the last 64 KiB of flash.
    let Ok(dev) = NorFlashDevice::new(flash(), PAGE, RANGE_START, Some(PAGES)) else {
        finish(1)
    };
    let opts = FormatOptions {
        volume_id: *b"vde-nrf52840-ex1",
        ..FormatOptions::default()
    };
    let bufs = Buffers {
        scratch: &mut mem.scratch,
        txn: &mut mem.txn,
        index: &mut mem.index,
    };
    let Ok(mut vol) = Volume::<_, TX_K>::mount_or_format(dev, &opts, bufs) else {
        finish(2)
    };

    let mut item = [0u8; MAX_ITEM];
    let mut handles = [Handle::from_raw(0); ITEM_SIZES.len()];
    for (i, (&len, h)) in ITEM_SIZES.iter().zip(handles.iter_mut()).enumerate() {
        item_bytes(i as u8, &mut item[..len]);
        let Ok(got) = vol.put(&item[..len]) else {
            finish(3)
        };
        *h = got;
    }
    let mut back = [0u8; MAX_ITEM];
    for (i, (&len, &h)) in ITEM_SIZES.iter().zip(handles.iter()).enumerate() {
        item_bytes(i as u8, &mut item[..len]);
        match vol.get(h, &mut back) {
            Ok(n) if back[..n] == item[..len] => {}
            _ => finish(4),
        }
    }
    if vol.delete(handles[1]).is_err() {
        finish(5)
    }
    finish(OK)
}
