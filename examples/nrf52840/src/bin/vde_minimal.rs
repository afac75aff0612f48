//! vde's minimal feature set on nRF52840 (`vde-nostd` without default features: block
//! transactions through the log, allocation and the free-space scanner): mount the 64 KiB range
//! or format it on first boot, allocate a block and write it in one transaction, read it back,
//! release it in a second. The size check builds this bin with the example's
//! `--no-default-features`, so none of the objects code is compiled.
//!
//! Memory as in the `vde` bin: the buffers are one static, the `Volume` is on `main`'s stack.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use cortex_m_rt::entry;
use panic_halt as _;
use static_cell::ConstStaticCell;
use vde_embedded::NorFlashDevice;
use vde_example_nrf52840::{finish, flash, item_bytes, OK, PAGE, PAGES, RANGE_START};
use vde_nostd::{FormatOptions, Memory, MemoryPlan, ModuleSet, Volume};

/// One block, a 128-byte log page and the log's dirty-block table; room for one whole-block
/// write.
const PLAN: MemoryPlan = MemoryPlan::new(PAGE).partial_reads().whole_block_writes(1);

static MEM: ConstStaticCell<vde_nostd::Memory!(PLAN)> = ConstStaticCell::new(Memory::new());
static BLOCK: ConstStaticCell<[u8; PAGE]> = ConstStaticCell::new([0; PAGE]);

#[entry]
fn main() -> ! {
    let mem = MEM.take();
    let Ok(dev) = NorFlashDevice::new(flash(), PAGE, RANGE_START, Some(PAGES)) else {
        finish(1)
    };
    let opts = FormatOptions {
        volume_id: *b"vde-nrf52840-min",
        modules: ModuleSet::empty(),
        ..FormatOptions::default()
    };
    let mut slot = None;
    let Ok(vol) = Volume::mount_or_format_in(&mut slot, dev, &opts, mem.buffers()) else {
        finish(2)
    };
    let block = BLOCK.take();
    item_bytes(7, block);
    let mut tx = vol.begin();
    let Ok(e) = tx.allocate(1) else { finish(3) };
    if tx.write(e.start, block).is_err() || tx.commit().is_err() {
        finish(4)
    }
    block.fill(0);
    if vol.read_block(e.start, block).is_err() || block[0] != 7 {
        finish(5)
    }
    let mut tx = vol.begin();
    if tx.release(e).is_err() || tx.commit().is_err() {
        finish(6)
    }
    finish(OK)
}
