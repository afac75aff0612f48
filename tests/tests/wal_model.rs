//! The WAL against a model of block contents: random sequences of multi-block transactions,
//! rollbacks, clean remounts and crashes (no checkpoint, recovery on the next mount), with the
//! log wrapping many times. After every step the device must equal the model.

use proptest::prelude::*;
use vde_nostd::device::RamDevice;
use vde_nostd::{BlockNo, Error, Volume};
use vde_tests::{fresh_image, Mem};

const BS: usize = 512;
const POOL: u64 = 32;

#[derive(Debug, Clone)]
enum Step {
    Commit(Vec<(u64, u8)>),
    Rollback(Vec<(u64, u8)>),
    Remount,
    Crash,
}

fn step() -> impl Strategy<Value = Step> {
    let writes = proptest::collection::vec((0..POOL, any::<u8>()), 1..8);
    prop_oneof![
        8 => writes.clone().prop_map(Step::Commit),
        2 => writes.prop_map(Step::Rollback),
        1 => Just(Step::Remount),
        1 => Just(Step::Crash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn wal_matches_block_model(steps in proptest::collection::vec(step(), 1..80)) {
        let mut img = fresh_image(BS, 512, 12);
        let mut mem = Mem::new(BS, 8, 64);
        let mut model = vec![0u8; POOL as usize];
        let mut vol = Volume::<_, 8>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs()).unwrap();
        let base = vol.layout().data_start + 100;
        for s in steps {
            match s {
                Step::Commit(w) | Step::Rollback(w) if w.is_empty() => {}
                Step::Commit(w) => {
                    let mut tx = vol.begin();
                    for (b, v) in &w {
                        tx.write(BlockNo(base + b), &[*v; BS]).unwrap();
                    }
                    tx.commit().unwrap();
                    for (b, v) in w { model[b as usize] = v; }
                }
                Step::Rollback(w) => {
                    let mut tx = vol.begin();
                    for (b, v) in &w {
                        tx.write(BlockNo(base + b), &[*v; BS]).unwrap();
                    }
                    tx.rollback();
                }
                Step::Remount => {
                    let _ = vol.unmount().unwrap();
                    vol = Volume::<_, 8>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs()).unwrap();
                }
                Step::Crash => {
                    let _ = vol.into_device();
                    vol = Volume::<_, 8>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs()).unwrap();
                }
            }
            let mut buf = [0u8; BS];
            for (i, want) in model.iter().enumerate() {
                vol.read_block(BlockNo(base + i as u64), &mut buf).unwrap();
                prop_assert!(buf.iter().all(|x| x == want), "block {i}");
            }
        }
        vol.verify().unwrap();
    }
}

#[test]
fn oversized_transactions_are_refused_before_any_write() {
    // 8 WAL blocks of 512 bytes hold at most 7 records; a 4-block buffer holds 3 whole-block
    // updates (each takes a block and a range's bookkeeping).
    for (k_blocks, refused_at, err) in [
        (16usize, 7u64, Error::TxTooLarge),
        (4, 3, Error::TxCapacity),
    ] {
        let mut img = fresh_image(BS, 512, 8);
        let mut mem = Mem::new(BS, k_blocks, 64);
        let mut vol =
            Volume::<_, 16>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs()).unwrap();
        let snapshot = vol.device().bytes().to_vec();
        let base = vol.layout().data_start + 100;
        let mut tx = vol.begin();
        let mut refused = None;
        for i in 0..16 {
            if let Err(e) = tx.write(BlockNo(base + i), &[1; BS]) {
                refused = Some((i, e));
                break;
            }
        }
        tx.rollback();
        assert_eq!(refused, Some((refused_at, err)));
        assert_eq!(vol.device().bytes(), &snapshot[..]);
    }
}
