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
//! A check may print indented detail lines (`  ...`) before its verdict.
//!
//! The engine checks run vde-nostd over vde-embedded's `NorFlashDevice` on a `SimFlash` with the
//! W25Q16JV's geometry (byte programs, 4 KiB sectors), 256 KiB of it, all in stack memory: format,
//! add a module, put and get packed and extent objects, remount; then a power cut at every
//! operation of a put, each followed by reboot, remount and verification.
//!
//! The last check measures the peak stack of a put (one WAL commit) and of a mount that replays
//! the WAL, by stack painting ([`stack_peak`]), and prints
//! `  peak stack: put (one commit) N bytes, mount with recovery M bytes; put whose commit
//! checkpoints first C bytes`.
//!
//! The last check runs the job of the nRF52840 example firmware (`examples/nrf52840`, which cannot
//! run here) on a simulated nRF52840 flash, with vde and with sequential-storage's map, and
//! prints the peak stack of each ([`check_firmware_job_stack`]).
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
    (
        "engine on SimFlash: format, module, put/get, remount",
        check_engine_on_flash,
    ),
    (
        "engine on SimFlash: power cut in the middle of a put",
        check_power_cut_in_put,
    ),
    (
        "peak stack: put (one commit) and mount with recovery",
        check_peak_stack,
    ),
    (
        "firmware job: peak stack, vde beside sequential-storage",
        check_firmware_job_stack,
    ),
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

// ---------------------------------------------------------------------------------------------
// The engine on a simulated NOR flash.

use vde_embedded::sim::parts::{W25q16jv, W25Q16JV};
use vde_embedded::NorFlashDevice;
use vde_nostd::{Buffers, Error, FormatOptions, Handle, ModuleSet, Volume};

/// vde block size: one W25Q sector.
const FLASH_BS: usize = 4096;
/// Simulated flash: 64 sectors (a slice of the 2 MiB part).
const FLASH_BYTES: usize = 256 * 1024;
const FLASH_SECTORS: usize = FLASH_BYTES / FLASH_BS;
/// Transaction capacity in block updates.
const TX_K: usize = 8;
/// Scratch: one block and a 128-byte log read buffer (the NOR adapter reads part of a block).
const SCRATCH_BYTES: usize = vde_nostd::Buffers::scratch_min(FLASH_BS, true);
/// Transaction memory: the changed bytes of the largest put.
const TXN_BYTES: usize = vde_nostd::Buffers::txn_min(FLASH_BS);
/// Slot index RAM: 16 shared blocks.
const INDEX_BYTES: usize = 16 * (8 + FLASH_BS / 512);

type FlashDev<'f, 'm> = NorFlashDevice<&'f mut W25q16jv<'m>>;
type FlashVol<'b, 'f, 'm> = Volume<'b, FlashDev<'f, 'm>, TX_K>;

/// The volume's buffers, on the caller's stack.
struct EngineMem {
    scratch: [u8; SCRATCH_BYTES],
    txn: [u8; TXN_BYTES],
    index: [u8; INDEX_BYTES],
}

impl EngineMem {
    const fn new() -> Self {
        EngineMem {
            scratch: [0; SCRATCH_BYTES],
            txn: [0; TXN_BYTES],
            index: [0; INDEX_BYTES],
        }
    }
    fn bufs(&mut self) -> Buffers<'_, TX_K> {
        Buffers {
            scratch: &mut self.scratch,
            txn: &mut self.txn,
            index: &mut self.index,
        }
    }
}

/// Object `i` of `len` bytes: its number, then a pattern (unique per object).
fn object_bytes(i: u8, out: &mut [u8]) {
    for (j, b) in out.iter_mut().enumerate() {
        *b = (j as u8).wrapping_mul(29) ^ i.wrapping_mul(101) ^ (j >> 8) as u8;
    }
    if let Some(b) = out.first_mut() {
        *b = i;
    }
}

/// Sizes of the objects the checks store: three packed into slots, two in whole-block extents.
const OBJECT_SIZES: [usize; 5] = [24, 200, 1500, 3000, 9000];
/// Size of the object whose put is cut.
const CUT_SIZE: usize = 700;
const MAX_OBJECT: usize = 9000;

fn flash<'m>(
    image: &'m mut [u8],
    wear: &'m mut [u32],
    seed: u64,
) -> Result<W25q16jv<'m>, &'static str> {
    W25q16jv::from_part(image, wear, &W25Q16JV, seed).map_err(|_| "SimFlash setup refused")
}

fn device<'f, 'm>(f: &'f mut W25q16jv<'m>) -> Result<FlashDev<'f, 'm>, &'static str> {
    NorFlashDevice::new(f, FLASH_BS, 0, None).map_err(|_| "NorFlashDevice refused the geometry")
}

fn mount<'b, 'f, 'm>(
    f: &'f mut W25q16jv<'m>,
    mem: &'b mut EngineMem,
) -> Result<FlashVol<'b, 'f, 'm>, &'static str> {
    Volume::mount(device(f)?, mem.bufs()).map_err(|_| "mount failed")
}

/// Reads `h` and compares it with object `i` of `len` bytes.
fn object_is(
    vol: &mut FlashVol<'_, '_, '_>,
    h: Handle,
    i: u8,
    len: usize,
) -> Result<bool, &'static str> {
    let mut want = [0u8; MAX_OBJECT];
    let mut got = [0u8; MAX_OBJECT];
    let want = want.get_mut(..len).ok_or("object too large")?;
    object_bytes(i, want);
    match vol.get(h, &mut got) {
        Ok(n) => Ok(got.get(..n) == Some(&*want)),
        Err(Error::BadHandle { .. }) => Ok(false),
        Err(_) => Err("get failed"),
    }
}

/// Formats the flash, adds the `xattr` module, stores the objects of [`OBJECT_SIZES`], and returns
/// their handles.
fn build_volume(
    image: &mut [u8],
    wear: &mut [u32],
    mem: &mut EngineMem,
) -> Result<[Handle; OBJECT_SIZES.len()], &'static str> {
    image.fill(0xFF);
    let mut f = flash(image, wear, 1)?;
    let opts = FormatOptions {
        volume_id: *b"vde-firmware-001",
        now: 1,
        modules: ModuleSet::OBJECTS,
        ..FormatOptions::default()
    };
    let mut vol = Volume::<_, TX_K>::format(device(&mut f)?, &opts, mem.bufs())
        .map_err(|_| "format failed")?;
    let xattr = vde_nostd::modules::by_name("xattr").ok_or("no xattr module")?;
    vol.add_module_regions(xattr, 2)
        .map_err(|_| "add_module_regions failed")?;
    ensure(
        vol.modules().contains(ModuleSet::XATTR),
        "module missing after addition",
    )?;
    let mut handles = [Handle::from_raw(0); OBJECT_SIZES.len()];
    let mut data = [0u8; MAX_OBJECT];
    for (i, (&len, h)) in OBJECT_SIZES.iter().zip(handles.iter_mut()).enumerate() {
        let d = data.get_mut(..len).ok_or("object too large")?;
        object_bytes(i as u8, d);
        *h = vol.put(d).map_err(|_| "put failed")?;
    }
    for (i, (&len, &h)) in OBJECT_SIZES.iter().zip(handles.iter()).enumerate() {
        ensure(
            object_is(&mut vol, h, i as u8, len)?,
            "object reads back wrong",
        )?;
    }
    vol.verify().map_err(|_| "verify failed")?;
    vol.unmount().map_err(|_| "unmount failed")?;
    Ok(handles)
}

/// Every object of [`OBJECT_SIZES`] reads back.
fn all_objects_there(
    vol: &mut FlashVol<'_, '_, '_>,
    handles: &[Handle],
) -> Result<bool, &'static str> {
    for (i, (&len, &h)) in OBJECT_SIZES.iter().zip(handles).enumerate() {
        if !object_is(vol, h, i as u8, len)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn check_engine_on_flash() -> Result<(), &'static str> {
    let mut image = [0xFFu8; FLASH_BYTES];
    let mut wear = [0u32; FLASH_SECTORS];
    let mut mem = EngineMem::new();
    let handles = build_volume(black_box(&mut image), &mut wear, &mut mem)?;
    let packed = handles
        .iter()
        .filter(|h| matches!(h, Handle::Packed { .. }))
        .count();
    ensure(packed == 3, "expected three packed objects and two extents")?;
    let mut f = flash(&mut image, &mut wear, 2)?;
    let mut vol = mount(&mut f, &mut mem)?;
    ensure(
        all_objects_there(&mut vol, &handles)?,
        "objects lost across remount",
    )?;
    ensure(
        vol.modules().contains(ModuleSet::XATTR),
        "module lost across remount",
    )?;
    let stats = vol.object_stats().map_err(|_| "object_stats failed")?;
    ensure(
        stats.counters.objects == handles.len() as u64,
        "object count",
    )?;
    // A delete, and the stale handle is refused.
    vol.delete(handles[1]).map_err(|_| "delete failed")?;
    ensure(
        !object_is(&mut vol, handles[1], 1, OBJECT_SIZES[1])?,
        "deleted object still readable",
    )?;
    vol.verify().map_err(|_| "verify failed")?;
    drop(vol);
    hprintln!(
        "  RAM for the volume: {} bytes of Volume state + {} scratch + {} txn + {} slot index = {} bytes",
        core::mem::size_of::<FlashVol<'static, 'static, 'static>>(),
        SCRATCH_BYTES,
        TXN_BYTES,
        INDEX_BYTES,
        core::mem::size_of::<FlashVol<'static, 'static, 'static>>()
            + SCRATCH_BYTES
            + TXN_BYTES
            + INDEX_BYTES
    );
    let s = f.stats();
    let w = f.wear_summary();
    hprintln!(
        "  {} objects ({} packed, {} extent) on {} KiB of W25Q16JV: {} reads, {} programs, {} erases, wear max {}",
        handles.len(),
        packed,
        handles.len() - packed,
        FLASH_BYTES / 1024,
        s.reads,
        s.programs,
        s.erases,
        w.max
    );
    Ok(())
}

fn check_power_cut_in_put() -> Result<(), &'static str> {
    let mut image = [0xFFu8; FLASH_BYTES];
    let mut base = [0u8; FLASH_BYTES];
    let mut wear = [0u32; FLASH_SECTORS];
    let mut mem = EngineMem::new();
    let handles = build_volume(black_box(&mut image), &mut wear, &mut mem)?;
    base.copy_from_slice(&image);
    let mut data = [0u8; CUT_SIZE];
    object_bytes(99, &mut data);

    // The put uncut: its flash operations and the handle it gets.
    let (ops, want) = {
        let mut f = flash(&mut image, &mut wear, 3)?;
        let mut vol = mount(&mut f, &mut mem)?;
        let start = vol.device().flash().op_count();
        let h = vol.put(&data).map_err(|_| "uncut put failed")?;
        (vol.device().flash().op_count() - start, h)
    };
    // Reads of the index and the block it lands in, and the log's programs (an erase too when
    // it starts a log block): a handful of operations, each cut below.
    ensure(ops > 4, "a put should take more than 4 flash operations")?;

    // The middle of the put first, then every other operation.
    let (mut present, mut absent) = (0u32, 0u32);
    let middle = ops / 2;
    for k in core::iter::once(middle).chain((0..ops).filter(|&k| k != middle)) {
        image.copy_from_slice(&base);
        let mut f = flash(&mut image, &mut wear, 100 + k)?;
        {
            let mut vol = mount(&mut f, &mut mem)?;
            vol.device().flash_mut().arm_power_cut(k);
            ensure(
                vol.put(&data).is_err(),
                "put acknowledged although the power was cut",
            )?;
        }
        ensure(f.power_lost(), "the cut did not happen")?;
        f.reboot();
        let mut vol = mount(&mut f, &mut mem).map_err(|_| "remount after the cut failed")?;
        vol.verify().map_err(|_| "verify after the cut failed")?;
        ensure(
            all_objects_there(&mut vol, &handles)?,
            "acknowledged object lost after the cut",
        )?;
        let mut got = [0u8; MAX_OBJECT];
        let whole = match vol.get(want, &mut got) {
            Ok(n) if got.get(..n) == Some(&data[..]) => true,
            Err(Error::BadHandle { .. }) => false,
            _ => return Err("interrupted object is neither wholly there nor absent"),
        };
        let count = vol
            .object_stats()
            .map_err(|_| "object_stats failed")?
            .counters
            .objects;
        ensure(
            count == handles.len() as u64 + u64::from(whole),
            "object count after the cut",
        )?;
        if whole {
            present += 1;
        } else {
            absent += 1;
        }
        if k == middle {
            hprintln!(
                "  cut at op {} of {} (middle of the put): remounted, {} acknowledged objects intact, interrupted object {}",
                k,
                ops,
                handles.len(),
                if whole { "wholly present" } else { "wholly absent" }
            );
        }
    }
    hprintln!(
        "  cut at each of the put's {} flash operations: {} left it wholly present, {} wholly absent, 0 violations",
        ops,
        present,
        absent
    );
    ensure(absent > 0, "no cut left the object absent")
}

// ---------------------------------------------------------------------------------------------
// Peak stack, by stack painting.

/// What [`stack_peak`] writes over the free stack.
const STACK_PAINT: u32 = 0xDEAD_BEEF;
/// Bytes just below the stack pointer that [`stack_peak`] leaves unpainted, so that painting never
/// touches a live frame. A use below this is reported as "at most" this.
const STACK_MARGIN: usize = 256;

/// Peak stack of one operation, as measured by [`stack_peak`].
#[derive(Clone, Copy)]
struct StackPeak {
    /// Bytes below the measuring frame's stack pointer that the operation wrote.
    bytes: usize,
    /// The operation wrote nothing below the unpainted margin: `bytes` is an upper bound.
    within_margin: bool,
}

impl core::fmt::Display for StackPeak {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.within_margin {
            write!(f, "at most {} bytes", self.bytes)
        } else {
            write!(f, "{} bytes", self.bytes)
        }
    }
}

/// Runs `op` and measures the stack it used, by painting.
///
/// 1. Reads the stack pointer (SP) of this frame, which is complete once the prologue has run.
/// 2. Fills every word from `SP - STACK_MARGIN` down to the bottom of the stack region
///    (`_stack_end`, set to the start of the STACK region by `memory.x`) with [`STACK_PAINT`].
///    Nothing runs between reading SP and painting but this function's own loop, whose frame is
///    above SP, so no live data is painted over.
/// 3. Calls `op` through a never-inlined trampoline, so that its frames all lie below SP.
/// 4. Scans up from the bottom for the first word that is not the pattern: the lowest address
///    `op` wrote. Peak = SP - that address. A word `op` wrote with the pattern's value, or stack
///    it reserved but never wrote, is not seen; the figure counts the stack actually written.
///
/// Fails, so the measurement is refused rather than understated, if there is nothing to paint or
/// if the bottom word was overwritten (the stack was used all the way down).
///
/// The only unsafe code in the firmware apart from the fault handler: volatile accesses to the
/// free part of the stack region, which no live Rust object occupies.
#[allow(unsafe_code)]
#[inline(never)]
fn stack_peak<R>(op: impl FnOnce() -> R) -> Result<(R, StackPeak), &'static str> {
    use core::ptr::{read_volatile, with_exposed_provenance_mut, write_volatile};
    use core::sync::atomic::{compiler_fence, Ordering};

    extern "C" {
        /// Lowest address of the stack (cortex-m-rt's `link.x`, value from `memory.x`).
        static _stack_end: u32;
    }
    #[inline(never)]
    fn run<R>(op: impl FnOnce() -> R) -> R {
        op()
    }

    let word = core::mem::size_of::<u32>();
    let sp = cortex_m::register::msp::read() as usize;
    let bottom = core::ptr::addr_of!(_stack_end) as usize;
    // Word-aligned top of the painted area (exclusive).
    let top = sp.saturating_sub(STACK_MARGIN) & !(word - 1);
    if top <= bottom {
        return Err("no free stack to paint");
    }
    let mut a = bottom;
    while a < top {
        // SAFETY: [bottom, top) is inside the stack region and below SP minus a margin, so no live
        // object is there; the address is word-aligned.
        unsafe { write_volatile(with_exposed_provenance_mut::<u32>(a), STACK_PAINT) };
        a += word;
    }
    compiler_fence(Ordering::SeqCst);
    let r = run(op);
    compiler_fence(Ordering::SeqCst);
    let mut a = bottom;
    // SAFETY: as above; `op` has returned, so below SP there is again nothing live.
    while a < top && unsafe { read_volatile(with_exposed_provenance_mut::<u32>(a)) } == STACK_PAINT
    {
        a += word;
    }
    if a == bottom {
        return Err("painted stack fully overwritten: measurement invalid");
    }
    Ok((
        r,
        StackPeak {
            bytes: sp - a,
            within_margin: a == top,
        },
    ))
}

/// Peak stack of a put of a small packed object on a mounted volume (one WAL transaction: begin,
/// records, commit, flush; the largest over the puts before the log fills up), of the put whose
/// commit finds the log full and checkpoints first, then of a mount that replays the WAL.
fn check_peak_stack() -> Result<(), &'static str> {
    /// Puts tried before the log must have filled up.
    const MAX_PUTS: usize = 200;
    const LEN: usize = 100;
    let mut image = [0xFFu8; FLASH_BYTES];
    let mut wear = [0u32; FLASH_SECTORS];
    let mut mem = EngineMem::new();
    build_volume(black_box(&mut image), &mut wear, &mut mem)?;
    let mut data = [0u8; LEN];
    let mut handles = [Handle::from_raw(0); MAX_PUTS];

    let mut f = flash(&mut image, &mut wear, 5)?;
    let (mut put, mut put_checkpoint, mut puts) = (None, None, 0);
    {
        // Mounted after an unmount: the log is empty, so the first put only commits.
        let mut vol = mount(&mut f, &mut mem)?;
        while put_checkpoint.is_none() && puts < MAX_PUTS {
            object_bytes(50 + puts as u8, &mut data);
            let before = vol.wal_stats();
            let (r, peak) = stack_peak(|| vol.put(&data))?;
            let h = r.map_err(|_| "put failed")?;
            let after = vol.wal_stats();
            ensure(
                matches!(h, Handle::Packed { .. }),
                "small object not packed",
            )?;
            ensure(
                after.commits == before.commits + 1,
                "a put was not one commit",
            )?;
            if after.checkpoints == before.checkpoints {
                if put.is_none_or(|p: StackPeak| peak.bytes > p.bytes) {
                    put = Some(peak);
                }
            } else {
                put_checkpoint = Some(peak);
            }
            handles[puts] = h;
            puts += 1;
        }
        // Dropped without unmount: the last transactions stay in the WAL for the next mount.
    }
    let put = put.ok_or("the first put checkpointed an empty log")?;
    let put_checkpoint = put_checkpoint.ok_or("the log never filled up")?;
    let (r, remount) = stack_peak(|| mount(&mut f, &mut mem))?;
    let mut vol = r?;
    ensure(
        vol.recovery_report().replayed > 0,
        "mount replayed no transaction",
    )?;
    for (i, &h) in handles.iter().take(puts).enumerate() {
        ensure(
            object_is(&mut vol, h, 50 + i as u8, LEN)?,
            "object wrong after recovery",
        )?;
    }
    hprintln!(
        "  peak stack: put (one commit) {}, mount with recovery {}; put whose commit checkpoints first {}",
        put,
        remount,
        put_checkpoint
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The nRF52840 example's job (examples/nrf52840): vde beside sequential-storage.

use embassy_embedded_hal::adapter::BlockingAsync;
use embassy_futures::block_on;
use embedded_storage::nor_flash::{ErrorType, MultiwriteNorFlash, NorFlash, ReadNorFlash};
use sequential_storage::cache::Cache;
use sequential_storage::map::{MapConfig, MapStorage};
use vde_embedded::sim::parts::{Nrf52840, NRF52840};
use vde_embedded::sim::{FlashPart, SimError};

/// The example's storage range: 64 KiB, 16 pages of 4 KiB.
const JOB_BYTES: usize = 64 * 1024;
const JOB_PAGES: usize = JOB_BYTES / FLASH_BS;
/// The items the job stores, reads back and (the second) deletes.
const JOB_SIZES: [usize; 3] = [16, 64, 200];
const JOB_MAX: usize = 200;
/// sequential-storage's data buffer: a `u8` key and the largest value, rounded up to the word.
const SS_BUF: usize = (1 + JOB_MAX).div_ceil(4) * 4;

/// The nRF52840's internal flash as the simulator models it (word programs, 4 KiB pages), with a
/// word programmable again between erases (the part allows two programs per word):
/// sequential-storage's `remove_item` needs `MultiwriteNorFlash`. vde never programs a word
/// twice. Both engines run on this same flash, blank at the start of the first boot.
struct JobFlash<'m>(Nrf52840<'m>);

impl<'m> JobFlash<'m> {
    fn blank(image: &'m mut [u8], wear: &'m mut [u32]) -> Result<Self, &'static str> {
        image.fill(0xFF);
        wear.fill(0);
        JobFlash::again(image, wear)
    }

    /// The flash as the last boot left it.
    fn again(image: &'m mut [u8], wear: &'m mut [u32]) -> Result<Self, &'static str> {
        let part = FlashPart {
            multi_write: true,
            ..NRF52840
        };
        Nrf52840::from_part(image, wear, &part, 7)
            .map(JobFlash)
            .map_err(|_| "SimFlash setup refused")
    }
}

impl ErrorType for JobFlash<'_> {
    type Error = SimError;
}

impl ReadNorFlash for JobFlash<'_> {
    const READ_SIZE: usize = <Nrf52840<'static> as ReadNorFlash>::READ_SIZE;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimError> {
        self.0.read(offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.0.capacity()
    }
}

impl NorFlash for JobFlash<'_> {
    const WRITE_SIZE: usize = <Nrf52840<'static> as NorFlash>::WRITE_SIZE;
    const ERASE_SIZE: usize = <Nrf52840<'static> as NorFlash>::ERASE_SIZE;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), SimError> {
        self.0.erase(from, to)
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), SimError> {
        self.0.write(offset, bytes)
    }
}

impl MultiwriteNorFlash for JobFlash<'_> {}

/// Peak stack of one boot's job: the whole job and each kind of operation (the largest of its
/// calls).
#[derive(Clone, Copy)]
struct JobStack {
    whole: StackPeak,
    open: StackPeak,
    store: StackPeak,
    read: StackPeak,
    delete: StackPeak,
}

impl JobStack {
    fn max(self, o: JobStack) -> JobStack {
        let m = |a: StackPeak, b: StackPeak| if b.bytes > a.bytes { b } else { a };
        JobStack {
            whole: m(self.whole, o.whole),
            open: m(self.open, o.open),
            store: m(self.store, o.store),
            read: m(self.read, o.read),
            delete: m(self.delete, o.delete),
        }
    }
}

/// The kinds of operation a job measures: open (mount_or_format), store, read, delete.
const OP_KINDS: usize = 4;

/// How a job runs its operations: [`Straight`] calls them (the whole job is measured from
/// outside, laid out as the example's `main`), [`PerOp`] measures each with [`stack_peak`].
trait Meter {
    fn op<R>(&mut self, kind: usize, f: impl FnOnce() -> R) -> Result<R, &'static str>;
}

struct Straight;

impl Meter for Straight {
    #[inline(always)]
    fn op<R>(&mut self, _kind: usize, f: impl FnOnce() -> R) -> Result<R, &'static str> {
        Ok(f())
    }
}

/// The largest peak of each kind of operation.
struct PerOp([Option<StackPeak>; OP_KINDS]);

impl Meter for PerOp {
    fn op<R>(&mut self, kind: usize, f: impl FnOnce() -> R) -> Result<R, &'static str> {
        let (r, peak) = stack_peak(f)?;
        if let Some(slot) = self.0.get_mut(kind) {
            if slot.is_none_or(|p| peak.bytes > p.bytes) {
                *slot = Some(peak);
            }
        }
        Ok(r)
    }
}

/// One engine's job, with the memory the example keeps in statics.
trait Job {
    fn run<M: Meter>(&mut self, f: &mut JobFlash<'_>, m: &mut M) -> Result<(), &'static str>;
}

/// The vde job on `$dev` with `$bufs` through `$volume` (the blocking engine's `Volume` or the
/// async one's), each operation measured by `$m` and run by `$run` (`identity` for the blocking
/// engine, `block_on` for the async one): mount the range (formatting it if blank), put each
/// item, get each back and compare, delete the second. The `Volume`, the items and the handles
/// are the job's own.
macro_rules! vde_job {
    ($m:ident, $dev:expr, $bufs:expr, $volume:path, $run:path) => {{
        let (dev, bufs) = ($dev, $bufs);
        let mut slot = None;
        let vol = $m
            .op(0, || {
                $run(<$volume>::mount_or_format_in(
                    &mut slot, dev, &JOB_OPTS, bufs,
                ))
                .map(|_| ())
            })?
            .map_err(|_| "mount_or_format failed")
            .and_then(|()| slot.as_mut().ok_or("mount_or_format left no volume"))?;
        let mut item = [0u8; JOB_MAX];
        let mut handles = [Handle::from_raw(0); JOB_SIZES.len()];
        for (i, (&len, h)) in JOB_SIZES.iter().zip(handles.iter_mut()).enumerate() {
            object_bytes(i as u8, &mut item[..len]);
            *h = $m
                .op(1, || $run(vol.put(&item[..len])))?
                .map_err(|_| "put failed")?;
        }
        let mut back = [0u8; JOB_MAX];
        for (i, (&len, &h)) in JOB_SIZES.iter().zip(handles.iter()).enumerate() {
            object_bytes(i as u8, &mut item[..len]);
            let n = $m
                .op(2, || $run(vol.get(h, &mut back)))?
                .map_err(|_| "get failed")?;
            ensure(back[..n] == item[..len], "object reads back wrong")?;
        }
        $m.op(3, || $run(vol.delete(handles[1])))?
            .map_err(|_| "delete failed")
    }};
}

/// The example's format options (its volume identity, the objects module).
const JOB_OPTS: FormatOptions = FormatOptions::new(*b"vde-nrf52840-ex1");

/// The vde bin's job ([`vde_job!`]). The buffers (`EngineMem`, the example's static) come from
/// outside.
struct VdeJob<'a>(&'a mut EngineMem);

impl Job for VdeJob<'_> {
    fn run<M: Meter>(&mut self, f: &mut JobFlash<'_>, m: &mut M) -> Result<(), &'static str> {
        let dev = NorFlashDevice::new(f, FLASH_BS, 0, Some(JOB_PAGES as u64))
            .map_err(|_| "NorFlashDevice refused the geometry")?;
        vde_job!(
            m,
            dev,
            self.0.bufs(),
            Volume<'_, _>,
            core::convert::identity
        )
    }
}

/// The vde_async bin's job: [`VdeJob`] through vde's async engine (`vde_nostd::asynch`) over the
/// async flash sequential-storage gets (`BlockingAsync`), each operation run by `block_on` as
/// [`SsJob`]'s are. Its futures hold the volume's state across the calls' `.await`s, so the figure
/// is the stack of the future and of its polls.
struct VdeAsyncJob<'a>(&'a mut EngineMem);

impl Job for VdeAsyncJob<'_> {
    fn run<M: Meter>(&mut self, f: &mut JobFlash<'_>, m: &mut M) -> Result<(), &'static str> {
        let dev = vde_embedded::asynch::NorFlashDevice::new(
            BlockingAsync::new(f),
            FLASH_BS,
            0,
            Some(JOB_PAGES as u64),
        )
        .map_err(|_| "NorFlashDevice refused the geometry")?;
        vde_job!(
            m,
            dev,
            self.0.bufs(),
            vde_nostd::asynch::Volume<'_, _>,
            block_on
        )
    }
}

/// The seqstore bin's job: the same items under keys 0, 1, 2 in a map on the same range, fetched
/// back and compared, key 1 removed. The data buffer (the example's static) comes from outside;
/// the map and the item are the job's own.
struct SsJob<'a>(&'a mut [u8; SS_BUF]);

impl Job for SsJob<'_> {
    fn run<M: Meter>(&mut self, f: &mut JobFlash<'_>, m: &mut M) -> Result<(), &'static str> {
        let buf = &mut *self.0;
        // Opening a map reads nothing: its first operation finds its state on the flash.
        let mut map = m.op(0, || {
            MapStorage::<u8, _, _>::new(
                BlockingAsync::new(f),
                MapConfig::new(0..JOB_BYTES as u32),
                Cache::new_uncached(),
            )
        })?;
        let mut item = [0u8; JOB_MAX];
        for (i, &len) in JOB_SIZES.iter().enumerate() {
            object_bytes(i as u8, &mut item[..len]);
            m.op(1, || {
                block_on(map.store_item(buf, &(i as u8), &&item[..len]))
            })?
            .map_err(|_| "store_item failed")?;
        }
        for (i, &len) in JOB_SIZES.iter().enumerate() {
            object_bytes(i as u8, &mut item[..len]);
            let same = m.op(2, || {
                matches!(block_on(map.fetch_item::<&[u8]>(buf, &(i as u8))),
                    Ok(Some(v)) if v == &item[..len])
            })?;
            ensure(same, "fetch_item failed or read back wrong")?;
        }
        m.op(3, || block_on(map.remove_item(buf, &1)))?
            .map_err(|_| "remove_item failed")?;
        ensure(
            matches!(block_on(map.fetch_item::<&[u8]>(buf, &1)), Ok(None)),
            "removed item still there",
        )
    }
}

/// One boot of `job` on the flash in `image`, run twice from the same flash content: once with
/// each operation under its own [`stack_peak`] (on a copy of the flash), once whole under
/// [`stack_peak`]. Leaves in `image` the flash as the whole run left it, for the next boot.
fn job_boot(
    image: &mut [u8],
    wear: &mut [u32],
    snapshot: &mut [u8],
    job: &mut impl Job,
) -> Result<JobStack, &'static str> {
    snapshot.copy_from_slice(image);
    let mut ops = PerOp([None; OP_KINDS]);
    {
        let mut f = JobFlash::again(snapshot, wear)?;
        job.run(&mut f, &mut ops)?;
    }
    let mut f = JobFlash::again(image, wear)?;
    let (r, whole) = stack_peak(|| job.run(&mut f, &mut Straight))?;
    r?;
    let get = |k: usize| {
        ops.0
            .get(k)
            .copied()
            .flatten()
            .ok_or("operation not measured")
    };
    Ok(JobStack {
        whole,
        open: get(0)?,
        store: get(1)?,
        read: get(2)?,
        delete: get(3)?,
    })
}

/// The nRF52840 example's job under [`stack_peak`], vde beside sequential-storage, each on a blank
/// simulated nRF52840 flash of 64 KiB (4-byte programs, 4 KiB pages), for two boots: the first
/// finds the flash blank (vde formats), the second finds what the first left (vde mounts and
/// replays the log, since the firmware never unmounts). The figures are the larger of the two.
///
/// Memory convention, as in the example: the buffers the nRF bins keep in statics (vde's scratch,
/// txn and slot index; sequential-storage's data buffer) are declared outside the measured
/// closure; everything the nRF bins keep on `main`'s stack (the `Volume` or the map, the item
/// buffers, the handles) is declared inside it, so it counts as stack. Built for thumbv7m at
/// opt-level "s" (this crate's profile), not thumbv7em at "z" as the example: an approximation of
/// the nRF52840 figure, made the same way for both engines.
fn check_firmware_job_stack() -> Result<(), &'static str> {
    let mut image = [0xFFu8; JOB_BYTES];
    let mut snapshot = [0xFFu8; JOB_BYTES];
    let mut wear = [0u32; JOB_PAGES];

    let mut mem = EngineMem::new();
    JobFlash::blank(black_box(&mut image), &mut wear)?;
    let vde1 = job_boot(&mut image, &mut wear, &mut snapshot, &mut VdeJob(&mut mem))?;
    let vde2 = job_boot(&mut image, &mut wear, &mut snapshot, &mut VdeJob(&mut mem))?;
    let vde = vde1.max(vde2);

    JobFlash::blank(black_box(&mut image), &mut wear)?;
    let va1 = job_boot(
        &mut image,
        &mut wear,
        &mut snapshot,
        &mut VdeAsyncJob(&mut mem),
    )?;
    let va2 = job_boot(
        &mut image,
        &mut wear,
        &mut snapshot,
        &mut VdeAsyncJob(&mut mem),
    )?;
    let va = va1.max(va2);

    let mut buf = [0u8; SS_BUF];
    JobFlash::blank(black_box(&mut image), &mut wear)?;
    let ss1 = job_boot(&mut image, &mut wear, &mut snapshot, &mut SsJob(&mut buf))?;
    let ss2 = job_boot(&mut image, &mut wear, &mut snapshot, &mut SsJob(&mut buf))?;
    let ss = ss1.max(ss2);

    hprintln!(
        "  firmware job peak stack: vde {} (mount_or_format {}, put {}, get {}, delete {}), sequential-storage {}",
        vde.whole,
        vde.open,
        vde.store,
        vde.read,
        vde.delete,
        ss.whole
    );
    hprintln!(
        "  firmware job peak stack, vde's async engine: {} (mount_or_format {}, put {}, get {}, delete {}; boots {} then {})",
        va.whole,
        va.open,
        va.store,
        va.read,
        va.delete,
        va1.whole,
        va2.whole
    );
    hprintln!(
        "  sequential-storage per operation: store_item {}, fetch_item {}, remove_item {}",
        ss.store,
        ss.read,
        ss.delete
    );
    hprintln!(
        "  by boot (blank flash, then as the first boot left it): vde {} then {} (mount_or_format: formats {}, mounts and replays the log {}); sequential-storage {} then {}",
        vde1.whole,
        vde2.whole,
        vde1.open,
        vde2.open,
        ss1.whole,
        ss2.whole
    );
    Ok(())
}
