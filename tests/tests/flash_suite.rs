//! The core's object and transaction behaviour over `NorFlashDevice<SimFlash>`: the same model
//! tests as on RAM (`objects_model.rs`), on two flash geometries: the W25Q16JV (byte programs,
//! 4 KiB sectors, one sector per block) and an STM32L4-class MCU flash (8-byte programs, 2 KiB
//! pages, two pages per block). The simulator is strict, so any program over programmed bytes
//! (a missing erase) would fail the run. Plus flash-specific facts: a rollback costs no flash
//! operation, and every vde block write is one erase of its sectors.

use proptest::prelude::*;
use std::collections::BTreeMap;
use vde_embedded::sim::parts::{Stm32l4, W25q16jv, STM32L4, W25Q16JV};
use vde_embedded::{NorFlashDevice, SimFlash};
use vde_nostd::types::Extent;
use vde_nostd::{BlockNo, FormatOptions, ModuleSet, Volume};
use vde_tests::objmodel::{obj_op, ObjModel, ObjOp};
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

#[derive(Debug, Clone)]
enum TxOp {
    /// Allocate a run of this many blocks and write them.
    Alloc(u64),
    /// Rewrite the n-th live block.
    Rewrite(usize),
    /// Release the n-th live run.
    Release(usize),
}

#[derive(Debug, Clone)]
enum Step {
    Commit(Vec<TxOp>),
    Rollback(Vec<TxOp>),
    Remount,
    Checkpoint,
}

fn step() -> impl Strategy<Value = Step> {
    let tx_op = prop_oneof![
        3 => (1u64..4).prop_map(TxOp::Alloc),
        3 => any::<usize>().prop_map(TxOp::Rewrite),
        1 => any::<usize>().prop_map(TxOp::Release),
    ];
    let ops = proptest::collection::vec(tx_op, 1..4);
    prop_oneof![
        6 => ops.clone().prop_map(Step::Commit),
        2 => ops.prop_map(Step::Rollback),
        1 => Just(Step::Remount),
        1 => Just(Step::Checkpoint),
    ]
}

fn stamped(block: u64, stamp: u32) -> Vec<u8> {
    let mut d = vec![(stamp as u8) ^ 0x3C; BS];
    d[..8].copy_from_slice(&block.to_le_bytes());
    d[8..12].copy_from_slice(&stamp.to_le_bytes());
    d
}

fn transactions_model<const R: usize, const W: usize, const E: usize>(
    flash: &mut SimFlash<'_, R, W, E>,
    steps: Vec<Step>,
) -> Result<(), TestCaseError> {
    let mut mem = Mem::new(BS, 16, 0);
    let mut vol =
        Volume::<_, 16>::format(dev(flash), &opts(ModuleSet::empty()), mem.bufs()).unwrap();
    let mut live: BTreeMap<u64, u32> = BTreeMap::new();
    let mut runs: Vec<Extent> = Vec::new();
    let free0 = vol.usage().free_blocks;
    let mut buf = vec![0u8; BS];
    for (t, s) in steps.into_iter().enumerate() {
        let stamp = t as u32 + 1;
        let s_ref = match &s {
            Step::Commit(_) => StepKind::Commit,
            _ => StepKind::Other,
        };
        match s {
            Step::Commit(ops) | Step::Rollback(ops)
                if live.len() > 40 && ops.iter().any(|o| matches!(o, TxOp::Alloc(_))) =>
            {
                // Keep the volume from filling up: release everything instead.
                let mut tx = vol.begin();
                for e in runs.drain(..) {
                    tx.release(e).unwrap();
                }
                tx.commit().unwrap();
                live.clear();
            }
            Step::Commit(ops) | Step::Rollback(ops) => {
                let commit = matches!(s_ref, StepKind::Commit);
                let mut next = live.clone();
                let mut next_runs = runs.clone();
                let before = vol.device().flash().stats();
                let mut tx = vol.begin();
                for o in &ops {
                    match *o {
                        TxOp::Alloc(n) => {
                            let e = tx.allocate(n).unwrap();
                            next_runs.push(e);
                            for b in e.start.0..e.start.0 + e.len {
                                next.insert(b, stamp);
                            }
                        }
                        TxOp::Rewrite(i) if !next.is_empty() => {
                            let b = *next.keys().nth(i % next.len()).unwrap();
                            next.insert(b, stamp);
                        }
                        TxOp::Release(i) if !next_runs.is_empty() => {
                            let e = next_runs.swap_remove(i % next_runs.len());
                            tx.release(e).unwrap();
                            for b in e.start.0..e.start.0 + e.len {
                                next.remove(&b);
                            }
                        }
                        _ => {}
                    }
                }
                for (&b, &s) in &next {
                    if s == stamp {
                        tx.write(BlockNo(b), &stamped(b, stamp)).unwrap();
                    }
                }
                // Reads inside the transaction see its writes.
                if let Some((&b, &s)) = next.iter().find(|(_, s)| **s == stamp) {
                    tx.read(BlockNo(b), &mut buf).unwrap();
                    prop_assert_eq!(&buf, &stamped(b, s));
                }
                if commit {
                    tx.commit().unwrap();
                    live = next;
                    runs = next_runs;
                } else {
                    tx.rollback();
                    // Nothing reached the flash: no program, no erase.
                    let after = vol.device().flash().stats();
                    prop_assert_eq!(
                        (after.programs, after.erases),
                        (before.programs, before.erases)
                    );
                }
            }
            Step::Remount => {
                let d = vol.into_device();
                vol = Volume::<_, 16>::mount(d, mem.bufs()).unwrap();
            }
            Step::Checkpoint => vol.checkpoint().unwrap(),
        }
        for (&b, &s) in &live {
            prop_assert!(vol.is_allocated(BlockNo(b)).unwrap());
            vol.read_block(BlockNo(b), &mut buf).unwrap();
            prop_assert_eq!(&buf, &stamped(b, s), "block {}", b);
        }
        let held: u64 = runs.iter().map(|e| e.len).sum();
        prop_assert_eq!(vol.usage().free_blocks, free0 - held);
    }
    vol.verify().unwrap();
    Ok(())
}

enum StepKind {
    Commit,
    Other,
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
