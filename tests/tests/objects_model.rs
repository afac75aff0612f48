//! The object API against a HashMap model over random put/get/delete/batch/remount sequences on
//! a RAM device (sizes from 1 byte to several blocks). The same model runs on flash in
//! `flash_suite.rs`.

use proptest::prelude::*;
use vde_nostd::device::RamDevice;
use vde_nostd::Volume;
use vde_tests::objmodel::{obj_op, ObjModel, ObjOp};
use vde_tests::{fresh_image, Mem};

const BS: usize = 4096;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]
    #[test]
    fn objects_match_model(ops in proptest::collection::vec(obj_op(20000), 1..60)) {
        let mut img = fresh_image(BS, 1024, 32);
        let mut mem = Mem::new(BS, 16, 256);
        let mut model = ObjModel::default();
        let mut vol = Volume::<_, 16>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs()).unwrap();
        for op in ops {
            if let ObjOp::Remount = op {
                let _ = vol.into_device();
                vol = Volume::<_, 16>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs()).unwrap();
            } else {
                model.apply(&mut vol, &op)?;
            }
            model.check(&mut vol)?;
        }
        vol.verify().unwrap();
    }
}

/// Batches that add and remove enough shared blocks to move the slot index across its block
/// boundaries (512-byte blocks: 41 entries in index block 0, 54 in each later one). Each index
/// block a batch stages is encoded from RAM once, at commit; after every batch — half the time
/// unmounted, half the time dropped and recovered from the log — every live object reads back,
/// the counters match and the volume verifies.
#[test]
fn batches_across_index_blocks_survive_remounts() {
    use vde_nostd::Handle;
    const B: usize = 512;
    let mut img = fresh_image(B, 4096, 64);
    let mut mem = Mem::new(B, 64, 512);
    let mut live: Vec<(Handle, Vec<u8>)> = Vec::new();
    let mut rng = 0xBA7C4u64;
    let mut next = |m: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % m
    };
    for round in 0..8u64 {
        let mut vol =
            Volume::<_, 64>::mount(RamDevice::new(&mut img, B).unwrap(), mem.bufs()).unwrap();
        let mut batch = vol.batch().unwrap();
        let mut added = Vec::new();
        // Odd rounds shrink the index (most deletes), even rounds grow it.
        let (puts, deletes) = if round % 2 == 0 {
            (90, 6)
        } else {
            (6, live.len() * 3 / 4)
        };
        for _ in 0..deletes.min(live.len()) {
            let (h, _) = live.swap_remove(next(live.len() as u64) as usize);
            batch.delete(h).unwrap();
        }
        for i in 0..puts {
            let len = 120 + next(129) as usize;
            let data: Vec<u8> = (0..len).map(|k| (k as u64 ^ round ^ i) as u8).collect();
            added.push((batch.put(&data).unwrap(), data));
        }
        batch.commit().unwrap();
        live.extend(added);
        if round % 3 == 1 {
            let _ = vol.into_device();
        } else {
            vol.unmount().unwrap();
        }
        let mut vol =
            Volume::<_, 64>::mount(RamDevice::new(&mut img, B).unwrap(), mem.bufs()).unwrap();
        vol.verify().unwrap();
        let st = vol.object_stats().unwrap();
        assert_eq!(st.counters.objects, live.len() as u64, "round {round}");
        assert!(
            round > 0 || st.shared_blocks > 41,
            "the index never left block 0"
        );
        let mut buf = [0u8; 256];
        for (h, data) in &live {
            let n = vol.get(*h, &mut buf).unwrap();
            assert_eq!(&buf[..n], &data[..], "round {round}");
        }
        vol.unmount().unwrap();
    }
}
