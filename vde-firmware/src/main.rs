//! Bare-metal smoke firmware for vde.
//!
//! Boots on a Cortex-M3 (QEMU `mps2-an385`), runs every check in [`CHECKS`], prints one line per
//! check over semihosting, then a summary, and exits QEMU with status 0 only if all passed.
//!
//! Output contract (read by `scripts/qemu-firmware.sh` and CI):
//! - `check ok: NAME` or `check FAILED: NAME: REASON`, one line per check;
//! - `firmware: N checks passed` when all passed, or `firmware: N checks passed, M FAILED`;
//! - a panic prints `panicked at ...` and exits with failure (panic-semihosting, feature `exit`);
//! - a hard fault prints `HardFault: ...` and exits with failure;
//! - a stack overflow makes QEMU stop with `Lockup` and a non-zero status (see `memory.x`).
//!
//! To add a check: write `fn check_xxx() -> Result<(), &'static str>` and list it in [`CHECKS`].
//! Device images can live on the stack (2 MiB) or in statics (2 MiB for .data and .bss).
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::hint::black_box;
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hprintln};
use panic_semihosting as _;

/// A named check: `Ok(())` if it passed, else a short reason.
type Check = (&'static str, fn() -> Result<(), &'static str>);

/// Every check the firmware runs, in order.
const CHECKS: &[Check] = &[
    ("runtime: data, bss and stack", check_runtime),
    ("ram device round trip", check_ram_device_round_trip),
];

#[entry]
fn main() -> ! {
    let mut passed = 0usize;
    let mut failed = 0usize;
    for &(name, check) in CHECKS {
        match check() {
            Ok(()) => {
                hprintln!("check ok: {}", name);
                passed += 1;
            }
            Err(reason) => {
                hprintln!("check FAILED: {}: {}", name, reason);
                failed += 1;
            }
        }
    }
    if failed == 0 {
        hprintln!("firmware: {} checks passed", passed);
        debug::exit(debug::EXIT_SUCCESS);
    } else {
        hprintln!("firmware: {} checks passed, {} FAILED", passed, failed);
        debug::exit(debug::EXIT_FAILURE);
    }
    // Only reached without a semihosting host (real hardware, no debugger attached).
    loop {
        cortex_m::asm::wfi();
    }
}

/// Any fault (bus error, bad instruction, ...) fails the run instead of hanging until the timeout.
#[allow(unsafe_code)] // cortex-m-rt requires the HardFault handler to be an `unsafe fn`.
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    hprintln!("HardFault: {:?}", frame);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

/// Turns a failed condition into a check failure.
fn ensure(cond: bool, reason: &'static str) -> Result<(), &'static str> {
    if cond {
        Ok(())
    } else {
        Err(reason)
    }
}

static DATA_WORD: AtomicU32 = AtomicU32::new(0x5644_4501);
static BSS_WORD: AtomicU32 = AtomicU32::new(0);

/// The startup code copied `.data` from flash, zeroed `.bss`, and the stack takes a big frame.
/// If `memory.x` is wrong for the board, this is the check that says so.
fn check_runtime() -> Result<(), &'static str> {
    ensure(
        DATA_WORD.fetch_add(1, Ordering::Relaxed) == 0x5644_4501,
        ".data not initialised",
    )?;
    ensure(
        BSS_WORD.fetch_add(1, Ordering::Relaxed) == 0,
        ".bss not zeroed",
    )?;
    let mut big = [0u8; 256 * 1024];
    for (i, b) in big.iter_mut().enumerate() {
        *b = i as u8;
    }
    let big = black_box(&big);
    ensure(
        big.iter().enumerate().all(|(i, &b)| b == i as u8),
        "256 KiB stack buffer corrupted",
    )
}

/// `vde_nostd::RamDevice` over a stack buffer: geometry, a block written and read back, and the
/// bounds and length errors.
fn check_ram_device_round_trip() -> Result<(), &'static str> {
    use vde_nostd::device::RamError;
    use vde_nostd::{BlockDevice, BlockNo, RamDevice};

    const BS: usize = 4096;
    const BLOCKS: usize = 16;
    let mut mem = [0u8; BS * BLOCKS];
    // black_box keeps LLVM from evaluating the whole check at compile time: the device code
    // has to run on the target.
    let mut dev =
        RamDevice::new(black_box(&mut mem), black_box(BS)).ok_or("RamDevice::new rejected 4096")?;
    ensure(dev.block_size() == BS, "block_size")?;
    ensure(dev.block_count() == BLOCKS as u64, "block_count")?;

    let mut data = [0u8; BS];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i as u8) ^ 0xA5;
    }
    dev.write_block(BlockNo(5), &data)
        .map_err(|_| "write_block failed")?;
    dev.flush().map_err(|_| "flush failed")?;
    let mut back = [0u8; BS];
    dev.read_block(BlockNo(5), &mut back)
        .map_err(|_| "read_block failed")?;
    ensure(back == data, "read back differs from what was written")?;
    dev.read_block(BlockNo(4), &mut back)
        .map_err(|_| "read_block of a neighbour failed")?;
    ensure(back.iter().all(|&b| b == 0), "write spilled into block 4")?;

    ensure(
        dev.read_block(BlockNo(BLOCKS as u64), &mut back) == Err(RamError::OutOfRange),
        "read past the end not rejected",
    )?;
    ensure(
        dev.write_block(BlockNo(u64::MAX), &data) == Err(RamError::OutOfRange),
        "write at u64::MAX not rejected",
    )?;
    ensure(
        dev.read_block(BlockNo(0), &mut back[..512]) == Err(RamError::BadLength),
        "short buffer not rejected",
    )?;
    ensure(
        RamDevice::new(&mut [0u8; 1024], 1000).is_none(),
        "block size 1000 accepted",
    )
}
