//! The job through vde's async engine, over any `embedded-storage-async` flash: mount the 64 KiB
//! range or format it on first boot, store the items, read them back and compare, delete the
//! second. The `vde_async` bin runs it with `embassy_futures::block_on` (beside the `seqstore`
//! bin, for the size check); the `vde_embassy` bin runs it as an embassy-executor application.

use embedded_storage_async::nor_flash::NorFlash;
use vde_embedded::asynch::NorFlashDevice;
use vde_nostd::asynch::Volume;
use vde_nostd::{FormatOptions, Handle, Memory, MemoryPlan};

use crate::{item_bytes, ITEM_SIZES, MAX_ITEM, OK, PAGE, PAGES, RANGE_START};

/// The `vde` bin's plan: the two engines need the same memory.
pub const PLAN: MemoryPlan = MemoryPlan::new(PAGE).partial_reads().shared_blocks(16);

/// The volume's buffers, sized by [`PLAN`] (a `static` in the bins).
pub type Mem = vde_nostd::Memory!(PLAN);

/// Runs the job on `flash` with the buffers in `mem`; returns [`OK`] or the number of the step
/// that failed.
pub async fn job<F: NorFlash>(flash: F, mem: &mut Mem) -> u32 {
    let Ok(dev) = NorFlashDevice::new(flash, PAGE, RANGE_START, Some(PAGES)) else {
        return 1;
    };
    let opts = FormatOptions {
        volume_id: *b"vde-nrf52840-ex1",
        ..FormatOptions::default()
    };
    // The volume is built in `slot`, inside this future, and used through the `&mut` returned.
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

/// An empty [`Mem`], for a `static`.
pub const fn mem() -> Mem {
    Memory::new()
}
