//! Unit tests of the NOR block device: round trips, geometry checks and error mapping, on the
//! simulated flash.

use super::*;
use crate::sim::parts::{Nrf52840, Stm32l4, W25q16jv, NRF52840, STM32L4, W25Q16JV};
use crate::sim::{SimConfig, SimError, SimFlash, ERASED};
use embedded_storage::nor_flash::{ErrorType, ReadNorFlash};
use std::vec;
use std::vec::Vec;

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn round_trips_blocks_on_every_preset_geometry() {
    // W25Q16JV: 4 KiB sectors, byte programs; one block = one sector.
    let mut mem = vec![ERASED; 32 * 4096];
    let mut wear = vec![0u32; 32];
    let flash = W25q16jv::from_part(&mut mem, &mut wear, &W25Q16JV, 1).unwrap();
    let mut dev = NorFlashDevice::whole(flash, 4096).unwrap();
    assert_eq!(dev.block_size(), 4096);
    assert_eq!(dev.block_count(), 32);
    let mut out = vec![0u8; 4096];
    for b in [0u64, 5, 31] {
        let data = pattern(b as u8, 4096);
        dev.write_block(BlockNo(b), &data).unwrap();
        dev.read_block(BlockNo(b), &mut out).unwrap();
        assert_eq!(out, data);
    }
    // Rewriting a block works (erase + program) and does not disturb its neighbours.
    let data = pattern(99, 4096);
    dev.write_block(BlockNo(5), &data).unwrap();
    dev.read_block(BlockNo(5), &mut out).unwrap();
    assert_eq!(out, data);
    dev.read_block(BlockNo(0), &mut out).unwrap();
    assert_eq!(out, pattern(0, 4096));
    dev.flush().unwrap();
    let flash = dev.into_inner();
    assert_eq!(flash.wear()[5], 2);
    assert_eq!(flash.stats().erases, 4);
    // 16 page programs per 4 KiB block.
    assert_eq!(flash.stats().program_units, 4 * 16);

    // nRF52840: word writes; 8 KiB blocks of two pages, at a base offset.
    let mut mem = vec![ERASED; 40 * 4096];
    let mut wear = vec![0u32; 40];
    let flash = Nrf52840::from_part(&mut mem, &mut wear, &NRF52840, 1).unwrap();
    let mut dev = NorFlashDevice::new(flash, 8192, 8192, Some(16)).unwrap();
    let data = pattern(7, 8192);
    dev.write_block(BlockNo(15), &data).unwrap();
    let mut out = vec![0u8; 8192];
    dev.read_block(BlockNo(15), &mut out).unwrap();
    assert_eq!(out, data);
    assert_eq!(dev.base_offset(), 8192);
    let base = 8192 + 15 * 8192;
    // The flash holds the bitwise inverse of the block.
    assert_eq!(&dev.flash().bytes()[base..base + 8192], &inverse(&data)[..]);
    assert_eq!(dev.flash().wear()[(base / 4096)..(base / 4096) + 2], [1, 1]);
    assert_eq!(
        dev.flash().wear()[0],
        0,
        "nothing below the base offset is touched"
    );

    // STM32L4-class: 2 KiB pages, 8-byte writes; 512-byte blocks are too small (below a page),
    // 2 KiB blocks work. A block of all zeros (erased flash) needs no programs at all.
    let mut mem = vec![ERASED; 32 * 2048];
    let mut wear = vec![0u32; 32];
    let mut flash = Stm32l4::from_part(&mut mem, &mut wear, &STM32L4, 1).unwrap();
    assert_eq!(
        NorFlashDevice::whole(&mut flash, 512).unwrap_err(),
        GeometryError::NotEraseMultiple {
            block_size: 512,
            erase_size: 2048
        }
    );
    let mut dev = NorFlashDevice::whole(&mut flash, 2048).unwrap();
    let data = pattern(3, 2048);
    dev.write_block(BlockNo(1), &data).unwrap();
    dev.write_block(BlockNo(2), &[0; 2048]).unwrap();
    let mut out = vec![0u8; 2048];
    dev.read_block(BlockNo(1), &mut out).unwrap();
    assert_eq!(out, data);
    dev.read_block(BlockNo(2), &mut out).unwrap();
    assert_eq!(out, [0; 2048]);
    assert_eq!(flash.stats().programs, 2048 / 256);
    assert_eq!(flash.stats().erases, 2);
}

#[test]
fn refuses_bad_geometries() {
    type W = W25q16jv<'static>;
    let cap = 64 * 4096;
    let check = |bs, base, count| NorFlashDevice::<W>::check_geometry(cap, bs, base, count);
    assert_eq!(check(4096, 0, None), Ok(64));
    assert_eq!(check(8192, 0, None), Ok(32));
    assert_eq!(check(4096, 4096, Some(16)), Ok(16));
    assert_eq!(
        check(3000, 0, None),
        Err(GeometryError::BadBlockSize { block_size: 3000 })
    );
    assert_eq!(
        check(256, 0, None),
        Err(GeometryError::BadBlockSize { block_size: 256 })
    );
    assert_eq!(
        check(1 << 17, 0, None),
        Err(GeometryError::BadBlockSize {
            block_size: 1 << 17
        })
    );
    assert_eq!(
        check(1024, 0, None),
        Err(GeometryError::NotEraseMultiple {
            block_size: 1024,
            erase_size: 4096
        })
    );
    assert_eq!(
        check(4096, 100, None),
        Err(GeometryError::BaseNotAligned {
            base_offset: 100,
            erase_size: 4096
        })
    );
    assert_eq!(check(16384, 0, None), Ok(16));
    assert_eq!(
        check(32768, 0, None),
        Err(GeometryError::TooFewBlocks { blocks: 8 })
    );
    assert_eq!(
        check(4096, 0, Some(15)),
        Err(GeometryError::TooFewBlocks { blocks: 15 })
    );
    assert_eq!(
        check(4096, 4096, Some(64)),
        Err(GeometryError::CapacityTooSmall {
            requested: 64,
            available: 63
        })
    );
    assert_eq!(
        check(4096, 60 * 4096, None),
        Err(GeometryError::TooFewBlocks { blocks: 4 })
    );
    assert_eq!(
        check(4096, u32::MAX - 4095, None),
        Err(GeometryError::TooFewBlocks { blocks: 0 })
    );
    // WRITE_SIZE / READ_SIZE that do not divide the block.
    type OddWrite = SimFlash<'static, 1, 48, 4096>;
    assert_eq!(
        NorFlashDevice::<OddWrite>::check_geometry(cap, 4096, 0, None),
        Err(GeometryError::WriteSizeMismatch {
            block_size: 4096,
            write_size: 48
        })
    );
    type OddRead = SimFlash<'static, 24, 8, 6144>;
    assert_eq!(
        NorFlashDevice::<OddRead>::check_geometry(cap, 4096, 0, None),
        Err(GeometryError::NotEraseMultiple {
            block_size: 4096,
            erase_size: 6144
        })
    );
    assert_eq!(
        NorFlashDevice::<FaultyFlash<24>>::check_geometry(cap, 4096, 0, None),
        Err(GeometryError::ReadSizeMismatch {
            block_size: 4096,
            read_size: 24
        })
    );
    // Too small a flash for 16 blocks, through `new`.
    let mut mem = vec![ERASED; 8 * 4096];
    let mut wear = vec![0u32; 8];
    let flash = W25q16jv::from_part(&mut mem, &mut wear, &W25Q16JV, 1).unwrap();
    assert_eq!(
        NorFlashDevice::whole(flash, 4096).unwrap_err(),
        GeometryError::TooFewBlocks { blocks: 8 }
    );
    assert!(std::format!("{}", GeometryError::TooFewBlocks { blocks: 8 }).contains("16"));
}

#[test]
fn checks_block_numbers_and_lengths() {
    let mut mem = vec![ERASED; 16 * 4096];
    let mut wear = vec![0u32; 16];
    let flash = W25q16jv::from_part(&mut mem, &mut wear, &W25Q16JV, 1).unwrap();
    let mut dev = NorFlashDevice::whole(flash, 4096).unwrap();
    let mut buf = vec![0u8; 4096];
    assert_eq!(
        dev.read_block(BlockNo(16), &mut buf),
        Err(NorError::OutOfRange)
    );
    assert_eq!(
        dev.write_block(BlockNo(u64::MAX), &buf),
        Err(NorError::OutOfRange)
    );
    assert_eq!(
        dev.read_block(BlockNo(0), &mut buf[..512]),
        Err(NorError::BadLength)
    );
    assert_eq!(
        dev.write_block(BlockNo(0), &buf[..4095]),
        Err(NorError::BadLength)
    );
    assert_eq!(
        dev.flash().op_count(),
        0,
        "rejected before reaching the flash"
    );
}

#[test]
fn maps_flash_errors_and_power_cuts() {
    let mut mem = vec![ERASED; 16 * 4096];
    let mut wear = vec![0u32; 16];
    let flash = W25q16jv::from_part(&mut mem, &mut wear, &W25Q16JV, 1).unwrap();
    let mut dev = NorFlashDevice::whole(flash, 4096).unwrap();
    let old = pattern(1, 4096);
    dev.write_block(BlockNo(3), &old).unwrap();
    // Cut the erase of the next block write: the block is torn, the error is Flash(Other).
    dev.flash_mut().arm_power_cut(0);
    assert_eq!(
        dev.write_block(BlockNo(3), &pattern(2, 4096)),
        Err(NorError::Flash(NorFlashErrorKind::Other))
    );
    let mut out = vec![0u8; 4096];
    assert_eq!(
        dev.read_block(BlockNo(3), &mut out),
        Err(NorError::Flash(NorFlashErrorKind::Other))
    );
    dev.flash_mut().reboot();
    dev.read_block(BlockNo(3), &mut out).unwrap();
    assert_ne!(out, old);
    // Cut in the middle of programming (erase = op 0, programs = ops 1..=16).
    let new = pattern(3, 4096);
    dev.flash_mut().arm_power_cut(8);
    assert!(dev.write_block(BlockNo(3), &new).is_err());
    dev.flash_mut().reboot();
    dev.read_block(BlockNo(3), &mut out).unwrap();
    assert_eq!(out[..7 * 256], new[..7 * 256]);
    assert!(
        out[8 * 256..].iter().all(|&b| b == 0),
        "erased flash reads as zeros"
    );
    // Rewrites after the cut succeed.
    dev.write_block(BlockNo(3), &new).unwrap();
    dev.read_block(BlockNo(3), &mut out).unwrap();
    assert_eq!(out, new);

    // Every error kind a flash reports comes through as its kind.
    for kind in [
        NorFlashErrorKind::NotAligned,
        NorFlashErrorKind::OutOfBounds,
        NorFlashErrorKind::Other,
    ] {
        let mut dev = NorFlashDevice::whole(FaultyFlash::<1> { fail: kind }, 4096).unwrap();
        assert_eq!(
            dev.read_block(BlockNo(0), &mut out),
            Err(NorError::Flash(kind))
        );
        assert_eq!(
            dev.write_block(BlockNo(0), &out),
            Err(NorError::Flash(kind))
        );
        assert_eq!(dev.flush(), Ok(()));
    }
    assert_eq!(
        NorError::from_flash(&SimError::PowerLost),
        NorError::Flash(NorFlashErrorKind::Other)
    );
    assert_eq!(
        std::format!("{}", NorError::Flash(NorFlashErrorKind::OutOfBounds)),
        "flash error: Arguments are out of bounds"
    );
}

#[test]
fn works_over_a_borrowed_flash_and_with_multi_write() {
    let mut mem = vec![ERASED; 16 * 4096];
    let mut wear = vec![0u32; 16];
    let mut cfg = SimConfig::new(4);
    cfg.multi_write = true;
    let mut flash = SimFlash::<1, 1, 4096>::new(&mut mem, &mut wear, cfg).unwrap();
    {
        let mut dev = NorFlashDevice::whole(&mut flash, 4096).unwrap();
        dev.write_block(BlockNo(0), &pattern(5, 4096)).unwrap();
    }
    assert_eq!(flash.wear()[0], 1);
    assert_eq!(&flash.bytes()[..4096], &inverse(&pattern(5, 4096))[..]);
}

/// The bitwise inverse of `data`: what the flash holds for it.
fn inverse(data: &[u8]) -> Vec<u8> {
    data.iter().map(|b| !b).collect()
}

#[test]
fn programs_in_place_into_erased_bytes_without_an_erase() {
    let mut mem = vec![ERASED; 16 * 4096];
    let mut wear = vec![0u32; 16];
    let flash = SimFlash::<1, 1, 4096>::new(&mut mem, &mut wear, SimConfig::new(3)).unwrap();
    let mut dev = NorFlashDevice::whole(flash, 4096).unwrap();
    assert!(dev.programs_in_place());
    // A fresh flash reads as zeros: the format's empty bytes are erased flash.
    let mut out = vec![9u8; 4096];
    dev.read_block(BlockNo(2), &mut out).unwrap();
    assert!(out.iter().all(|&b| b == 0));
    let mut block = vec![0u8; 4096];
    block[100..140].copy_from_slice(&pattern(1, 40));
    dev.write_block(BlockNo(2), &block).unwrap();
    let erases = dev.flash().stats().erases;
    // Two programs into the block's zeros: no erase, and both land beside the old bytes.
    dev.program(BlockNo(2), 640, &pattern(2, 128)).unwrap();
    dev.program(BlockNo(2), 4000, &pattern(3, 96)).unwrap();
    block[640..768].copy_from_slice(&pattern(2, 128));
    block[4000..4096].copy_from_slice(&pattern(3, 96));
    dev.read_block(BlockNo(2), &mut out).unwrap();
    assert_eq!(out, block);
    assert_eq!(dev.flash().stats().erases, erases, "no erase");
    assert_eq!(
        &dev.flash().bytes()[2 * 4096..3 * 4096],
        &inverse(&block)[..]
    );
    // Programming over programmed bytes is what the flash refuses; the adapter passes it on.
    assert_eq!(
        dev.program(BlockNo(2), 100, &pattern(4, 8)),
        Err(NorError::Flash(NorFlashErrorKind::Other))
    );
    // A range past the block is refused before the flash sees it.
    assert_eq!(
        dev.program(BlockNo(2), 4090, &pattern(4, 8)),
        Err(NorError::BadLength)
    );
}

#[test]
fn word_flash_skips_zero_units_so_they_stay_programmable() {
    // nRF52840 geometry: 4-byte words; a word holding zeros only is never programmed.
    let mut mem = vec![ERASED; 32 * 4096];
    let mut wear = vec![0u32; 32];
    let flash = Nrf52840::from_part(&mut mem, &mut wear, &NRF52840, 1).unwrap();
    let mut dev = NorFlashDevice::whole(flash, 4096).unwrap();
    let mut block = vec![0u8; 4096];
    block[8..12].copy_from_slice(&[1, 2, 3, 4]);
    dev.write_block(BlockNo(1), &block).unwrap();
    let programs = dev.flash().stats().program_units;
    // The zero words around the one programmed word are still erased: program them now.
    dev.program(BlockNo(1), 0, &[5, 6, 7, 8, 0, 0, 0, 0])
        .unwrap();
    dev.program(BlockNo(1), 12, &[9, 9, 9, 9]).unwrap();
    block[0..4].copy_from_slice(&[5, 6, 7, 8]);
    block[12..16].copy_from_slice(&[9, 9, 9, 9]);
    let mut out = vec![0u8; 4096];
    dev.read_block(BlockNo(1), &mut out).unwrap();
    assert_eq!(out, block);
    assert!(dev.flash().stats().program_units > programs);
    // Unaligned to the 4-byte word: refused.
    assert_eq!(
        dev.program(BlockNo(1), 18, &[1, 1, 1, 1]),
        Err(NorError::BadLength)
    );
}

/// A flash of 64 KiB whose every operation fails with `fail`, with read size `R`.
struct FaultyFlash<const R: usize> {
    fail: NorFlashErrorKind,
}

impl<const R: usize> ErrorType for FaultyFlash<R> {
    type Error = NorFlashErrorKind;
}

impl<const R: usize> ReadNorFlash for FaultyFlash<R> {
    const READ_SIZE: usize = R;
    fn read(&mut self, _: u32, _: &mut [u8]) -> Result<(), NorFlashErrorKind> {
        Err(self.fail)
    }
    fn capacity(&self) -> usize {
        64 * 1024
    }
}

impl<const R: usize> NorFlash for FaultyFlash<R> {
    const WRITE_SIZE: usize = 8;
    const ERASE_SIZE: usize = 4096;
    fn erase(&mut self, _: u32, _: u32) -> Result<(), NorFlashErrorKind> {
        Err(self.fail)
    }
    fn write(&mut self, _: u32, _: &[u8]) -> Result<(), NorFlashErrorKind> {
        Err(self.fail)
    }
}

/// A firmware's set-up in one function with one error type: `?` on the device's constructor
/// (its geometry error) and on the volume's calls (the flash's own errors) alike.
fn set_up(
    flash: Nrf52840<'_>,
    blocks: u64,
    mem: &mut [u8],
) -> Result<u64, vde_nostd::Error<NorError>> {
    const PLAN: vde_nostd::MemoryPlan = vde_nostd::MemoryPlan::new(4096).partial_reads();
    let dev = NorFlashDevice::new(flash, 4096, 0, Some(blocks))?;
    let (scratch, rest) = mem.split_at_mut(PLAN.scratch());
    let (txn, _) = rest.split_at_mut(PLAN.txn());
    let bufs = vde_nostd::Buffers::<'_, 8> {
        scratch,
        txn,
        index: &mut [],
    };
    let opts = vde_nostd::FormatOptions {
        modules: vde_nostd::ModuleSet::empty(),
        ..vde_nostd::FormatOptions::new([3; 16])
    };
    let vol = vde_nostd::Volume::mount_or_format(dev, &opts, bufs)?;
    Ok(vol.usage().free_blocks)
}

#[test]
fn a_geometry_error_and_the_volumes_errors_meet_in_one_error_type_with_from() {
    let mut mem = vec![ERASED; 16 * 4096];
    let mut wear = vec![0u32; 16];
    let mut bufs = vec![0u8; 16 * 1024];
    // 17 blocks of a 16-sector flash: the constructor's error, through `?`.
    let flash = Nrf52840::from_part(&mut mem, &mut wear, &NRF52840, 1).unwrap();
    assert_eq!(
        set_up(flash, 17, &mut bufs),
        Err(vde_nostd::Error::InvalidGeometry)
    );
    // 16 blocks: formatted, with free blocks.
    let flash = Nrf52840::from_part(&mut mem, &mut wear, &NRF52840, 1).unwrap();
    assert!(set_up(flash, 16, &mut bufs).unwrap() > 0);
}

/// A flash behind `embedded-storage-async`: each call is `Pending` once (as a driver waiting on
/// its interrupt would be) before it runs on the blocking flash inside.
struct AsyncFlash<F>(F);

/// A future that is `Pending` on its first poll and ready on the second.
struct YieldOnce(bool);

impl core::future::Future for YieldOnce {
    type Output = ();
    fn poll(mut self: core::pin::Pin<&mut Self>, cx: &mut core::task::Context<'_>) -> core::task::Poll<()> {
        if self.0 {
            return core::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        core::task::Poll::Pending
    }
}

impl<F: ErrorType> ErrorType for AsyncFlash<F> {
    type Error = F::Error;
}

impl<F: ReadNorFlash> embedded_storage_async::nor_flash::ReadNorFlash for AsyncFlash<F> {
    const READ_SIZE: usize = F::READ_SIZE;
    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        YieldOnce(false).await;
        self.0.read(offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.0.capacity()
    }
}

impl<F: NorFlash> embedded_storage_async::nor_flash::NorFlash for AsyncFlash<F> {
    const WRITE_SIZE: usize = F::WRITE_SIZE;
    const ERASE_SIZE: usize = F::ERASE_SIZE;
    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        YieldOnce(false).await;
        self.0.erase(from, to)
    }
    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        YieldOnce(false).await;
        self.0.write(offset, bytes)
    }
}

/// Runs `fut` to completion on this thread, polling again whenever it is pending.
fn block_on<T>(fut: impl core::future::Future<Output = T>) -> T {
    let mut fut = core::pin::pin!(fut);
    let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
    let mut polls = 0u32;
    loop {
        if let core::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        polls += 1;
        assert!(polls < 10_000_000, "a future that never finishes");
    }
}

#[test]
fn the_async_adapter_and_engine_leave_the_same_flash_as_the_blocking_ones() {
    const PLAN: vde_nostd::MemoryPlan = vde_nostd::MemoryPlan::new(4096)
        .partial_reads()
        .shared_blocks(4)
        .whole_block_writes(3);
    let opts = vde_nostd::FormatOptions::new([7; 16]);
    let sizes = [16usize, 64, 200, 3000, 9000];
    let run_blocking = |mem: &mut Vec<u8>, wear: &mut Vec<u32>| {
        let flash = Nrf52840::from_part(mem, wear, &NRF52840, 1).unwrap();
        let dev = NorFlashDevice::whole(flash, 4096).unwrap();
        let mut m = <vde_nostd::Memory!(PLAN)>::new();
        let mut vol = vde_nostd::Volume::mount_or_format(dev, &opts, m.buffers()).unwrap();
        let mut hs = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            hs.push(vol.put(&pattern(i as u8, n)).unwrap());
        }
        vol.delete(hs[1]).unwrap();
        let mut out = vec![0u8; 9000];
        for (i, &n) in sizes.iter().enumerate().filter(|&(i, _)| i != 1) {
            assert_eq!(vol.get(hs[i], &mut out).unwrap(), n);
            assert_eq!(out[..n], pattern(i as u8, n)[..]);
        }
        vol.verify().unwrap();
        (hs, vol.usage(), vol.into_device().into_inner().stats())
    };
    let run_async = |mem: &mut Vec<u8>, wear: &mut Vec<u32>| {
        block_on(async {
            let flash = Nrf52840::from_part(mem, wear, &NRF52840, 1).unwrap();
            let dev = crate::asynch::NorFlashDevice::whole(AsyncFlash(flash), 4096).unwrap();
            let mut m = <vde_nostd::Memory!(PLAN)>::new();
            let mut vol = vde_nostd::asynch::Volume::mount_or_format(dev, &opts, m.buffers())
                .await
                .unwrap();
            let mut hs = Vec::new();
            for (i, &n) in sizes.iter().enumerate() {
                hs.push(vol.put(&pattern(i as u8, n)).await.unwrap());
            }
            vol.delete(hs[1]).await.unwrap();
            let mut out = vec![0u8; 9000];
            for (i, &n) in sizes.iter().enumerate().filter(|&(i, _)| i != 1) {
                assert_eq!(vol.get(hs[i], &mut out).await.unwrap(), n);
                assert_eq!(out[..n], pattern(i as u8, n)[..]);
            }
            vol.verify().await.unwrap();
            (hs, vol.usage(), vol.into_device().into_inner().0.stats())
        })
    };
    let (mut mem_b, mut wear_b) = (vec![ERASED; 32 * 4096], vec![0u32; 32]);
    let (mut mem_a, mut wear_a) = (vec![ERASED; 32 * 4096], vec![0u32; 32]);
    let blocking = run_blocking(&mut mem_b, &mut wear_b);
    let asynchronous = run_async(&mut mem_a, &mut wear_a);
    assert_eq!(blocking.0, asynchronous.0, "handles");
    assert_eq!(blocking.1, asynchronous.1, "usage");
    assert_eq!(blocking.2, asynchronous.2, "flash operations");
    assert!(mem_a == mem_b, "the two flash images differ");
    assert_eq!(wear_a, wear_b);
}
