//! The job with vde on nRF52840: mount the 64 KiB storage range, or format it on first boot;
//! store 16-, 64- and 200-byte objects, read them back and compare, delete one.
//!
//! Memory: the volume's buffers (scratch, transaction memory, slot index), sized at compile time
//! by a `MemoryPlan`, are one static, taken once with `ConstStaticCell` (no `unsafe`), so they
//! count as static RAM (.bss); the `Volume` itself and the item buffers live on `main`'s stack.
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
use vde_nostd::{FormatOptions, Handle, Memory, MemoryPlan, Volume};

/// What the volume needs, sized at compile time: 4 KiB blocks on a flash that reads part of a
/// block (one block of scratch, a 128-byte log page and the log's dirty-block table), the
/// smallest transaction room (the put of the largest packed object), and the slot index of up
/// to 16 shared blocks. A plan that cannot work does not compile.
const PLAN: MemoryPlan = MemoryPlan::new(PAGE).partial_reads().shared_blocks(16);

static MEM: ConstStaticCell<vde_nostd::Memory!(PLAN)> = ConstStaticCell::new(Memory::new());

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
    // The volume is built in `slot` and used through the `&mut` it returns: never moved.
    let mut slot = None;
    let Ok(vol) = Volume::mount_or_format_in(&mut slot, dev, &opts, mem.buffers()) else {
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
