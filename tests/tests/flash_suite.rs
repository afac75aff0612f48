//! The core's object and transaction behaviour over `NorFlashDevice<SimFlash>`: the same model
//! tests as on RAM (`objects_model.rs`), on two flash geometries: the W25Q16JV (byte programs,
//! 4 KiB sectors, one sector per block) and an STM32L4-class MCU flash (8-byte programs, 2 KiB
//! pages, two pages per block). The simulator is strict, so any program over programmed bytes
//! (a missing erase) would fail the run. Plus flash-specific facts: a rollback costs no flash
//! operation, and every vde block write is one erase of its sectors.

use proptest::prelude::*;
use vde_embedded::sim::parts::{Stm32l4, W25q16jv, STM32L4, W25Q16JV};
use vde_embedded::{NorFlashDevice, SimFlash};
use vde_nostd::{FormatOptions, ModuleSet, Volume};
use vde_tests::objmodel::{obj_op, ObjModel, ObjOp};
use vde_tests::txmodel::{self, step, Step};
use vde_tests::Mem;

const BS: usize = 4096;
const FLASH: usize = 1024 * 1024;

type Dev<'f, 'm, const R: usize, const W: usize, const E: usize> =
    NorFlashDevice<&'f mut SimFlash<'m, R, W, E>>;

fn dev<'f, 'm, const R: usize, const W: usize, const E: usize>(
    f: &'f mut SimFlash<'m, R, W, E>,
) -> Dev<'f, 'm, R, W, E> {
    NorFlashDevice::new(f, BS, 0, None).expect("geometry")
}

fn opts(modules: ModuleSet) -> FormatOptions {
    FormatOptions {
        wal_blocks: Some(16),
        volume_id: [0x5A; 16],
        now: 10,
        modules,
    }
}

// ---------- objects against a HashMap model ----------

fn objects_model<const R: usize, const W: usize, const E: usize>(
    flash: &mut SimFlash<'_, R, W, E>,
    ops: Vec<ObjOp>,
) -> Result<(), TestCaseError> {
    let mut mem = Mem::new(BS, 16, 64);
    let mut model = ObjModel::default();
    let mut vol =
        Volume::<_, 16>::format(dev(flash), &opts(ModuleSet::OBJECTS), mem.bufs()).unwrap();
    for op in ops {
        if let ObjOp::Remount = op {
            let d = vol.into_device();
            vol = Volume::<_, 16>::mount(d, mem.bufs()).unwrap();
        } else {
            model.apply(&mut vol, &op)?;
        }
        model.check(&mut vol)?;
    }
    vol.verify().unwrap();
    let d = vol.unmount().unwrap();
    let mut vol = Volume::<_, 16>::mount(d, mem.bufs()).unwrap();
    prop_assert_eq!(vol.recovery_report().replayed, 0);
    model.check(&mut vol)
}

// ---------- raw transactions against a block model ----------

fn transactions_model<const R: usize, const W: usize, const E: usize>(
    flash: &mut SimFlash<'_, R, W, E>,
    steps: Vec<Step>,
) -> Result<(), TestCaseError> {
    let ops = |d: &Dev<'_, '_, R, W, E>| {
        let s = d.flash().stats();
        (s.programs, s.erases)
    };
    txmodel::run(dev(flash), &opts(ModuleSet::empty()), steps, ops, |_| {})
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn flash_objects_match_model_w25q(ops in proptest::collection::vec(obj_op(12000), 1..40)) {
        let mut img = vec![0xFFu8; FLASH];
        let mut wear = vec![0u32; FLASH / 4096];
        let mut f = W25q16jv::from_part(&mut img, &mut wear, &W25Q16JV, 1).unwrap();
        objects_model(&mut f, ops)?;
    }

    #[test]
    fn flash_objects_match_model_stm32l4(ops in proptest::collection::vec(obj_op(12000), 1..40)) {
        let mut img = vec![0xFFu8; FLASH];
        let mut wear = vec![0u32; FLASH / 2048];
        let mut f = Stm32l4::from_part(&mut img, &mut wear, &STM32L4, 1).unwrap();
        objects_model(&mut f, ops)?;
    }

    #[test]
    fn flash_transactions_match_model_w25q(steps in proptest::collection::vec(step(), 1..40)) {
        let mut img = vec![0xFFu8; FLASH];
        let mut wear = vec![0u32; FLASH / 4096];
        let mut f = W25q16jv::from_part(&mut img, &mut wear, &W25Q16JV, 1).unwrap();
        transactions_model(&mut f, steps)?;
    }

    #[test]
    fn flash_transactions_match_model_stm32l4(steps in proptest::collection::vec(step(), 1..40)) {
        let mut img = vec![0xFFu8; FLASH];
        let mut wear = vec![0u32; FLASH / 2048];
        let mut f = Stm32l4::from_part(&mut img, &mut wear, &STM32L4, 1).unwrap();
        transactions_model(&mut f, steps)?;
    }
}
