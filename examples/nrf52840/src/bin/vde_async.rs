//! The same job as the `vde` bin through vde's async engine ([`vde_nostd::asynch`]), as a
//! firmware whose flash is an `embedded-storage-async` `NorFlash` (an embassy application, or one
//! with a BLE stack that owns the flash) would run it: mount the 64 KiB range or format it on
//! first boot, store 16-, 64- and 200-byte objects, read them back and compare, delete one.
//!
//! The flash: embassy-nrf's blocking `Nvmc` made async by embassy-embedded-hal's `BlockingAsync`,
//! exactly as the `seqstore` bin gives it to sequential-storage (whose map is async only), so the
//! two async builds are measured side by side; `embassy_futures::block_on` runs the job. The
//! volume's buffers are one static, as in the `vde` bin; the volume lives in the job's future.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use cortex_m_rt::entry;
use embassy_embedded_hal::adapter::BlockingAsync;
use embassy_futures::block_on;
use panic_halt as _;
use static_cell::ConstStaticCell;
use vde_embedded::asynch::NorFlashDevice;
use vde_example_nrf52840::{
    finish, flash, item_bytes, ITEM_SIZES, MAX_ITEM, OK, PAGE, PAGES, RANGE_START,
};
use vde_nostd::asynch::Volume;
use vde_nostd::{FormatOptions, Handle, Memory, MemoryPlan};

/// The `vde` bin's plan: the two engines need the same memory.
const PLAN: MemoryPlan = MemoryPlan::new(PAGE).partial_reads().shared_blocks(16);

static MEM: ConstStaticCell<vde_nostd::Memory!(PLAN)> = ConstStaticCell::new(Memory::new());

#[entry]
fn main() -> ! {
    finish(block_on(job()))
}

/// The job; its result is the code `finish` records.
async fn job() -> u32 {
    let mem = MEM.take();
    let Ok(dev) = NorFlashDevice::new(BlockingAsync::new(flash()), PAGE, RANGE_START, Some(PAGES))
    else {
        return 1;
    };
    let opts = FormatOptions {
        volume_id: *b"vde-nrf52840-ex1",
        ..FormatOptions::default()
    };
    let mut slot = None;
    let Ok(vol) = Volume::mount_or_format_in(&mut slot, dev, &opts, mem.buffers()).await else {
        return 2;
    };

    let mut item = [0u8; MAX_ITEM];
    let mut handles = [Handle::from_raw(0); ITEM_SIZES.len()];
    for (i, (&len, h)) in ITEM_SIZES.iter().zip(handles.iter_mut()).enumerate() {
        item_bytes(i as u8, &mut item[..len]);
        let Ok(got) = vol.put(&item[..len]).await else {
            return 3;
        };
        *h = got;
    }
    let mut back = [0u8; MAX_ITEM];
    for (i, (&len, &h)) in ITEM_SIZES.iter().zip(handles.iter()).enumerate() {
        item_bytes(i as u8, &mut item[..len]);
        match vol.get(h, &mut back).await {
            Ok(n) if back[..n] == item[..len] => {}
            _ => return 4,
        }
    }
    if vol.delete(handles[1]).await.is_err() {
        return 5;
    }
    OK
}
