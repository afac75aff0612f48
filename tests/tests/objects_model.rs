//! The object API against a HashMap model over random put/get/delete/batch/remount sequences.

use proptest::prelude::*;
use std::collections::HashMap;
use vde_nostd::device::RamDevice;
use vde_nostd::{Error, Handle, Volume};
use vde_tests::{fresh_image, Mem};

const BS: usize = 4096;

#[derive(Debug, Clone)]
enum Op {
    Put(usize, u8),
    Delete(usize),
    Batch(Vec<(bool, usize, u8)>),
    Remount,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (prop_oneof![1usize..300, 300usize..2100, 2100usize..20000], any::<u8>()).prop_map(|(n, b)| Op::Put(n, b)),
        3 => any::<usize>().prop_map(Op::Delete),
        1 => proptest::collection::vec((any::<bool>(), 1usize..3000, any::<u8>()), 1..5).prop_map(Op::Batch),
        1 => Just(Op::Remount),
    ]
}

fn payload(n: usize, b: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(b))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]
    #[test]
    fn objects_match_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut img = fresh_image(BS, 1024, 32);
        let mut mem = Mem::new(BS, 16, 256);
        let mut model: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut dead: Vec<u64> = Vec::new();
        let mut vol = Volume::<_, 16>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs()).unwrap();
        let mut buf = vec![0u8; 32768];
        for o in ops {
            match o {
                Op::Put(n, b) => {
                    let d = payload(n, b);
                    let h = vol.put(&d).unwrap();
                    prop_assert!(!model.contains_key(&h.raw()));
                    model.insert(h.raw(), d);
                }
                Op::Delete(pick) => {
                    if model.is_empty() { continue; }
                    let mut keys: Vec<u64> = model.keys().copied().collect();
                    keys.sort();
                    let k = keys[pick % keys.len()];
                    vol.delete(Handle::from_raw(k)).unwrap();
                    model.remove(&k);
                    dead.push(k);
                }
                Op::Batch(items) => {
                    let mut keys: Vec<u64> = model.keys().copied().collect();
                    keys.sort();
                    let mut b = vol.batch().unwrap();
                    let mut added = Vec::new();
                    let mut removed = Vec::new();
                    for (is_put, n, x) in items {
                        if is_put || keys.is_empty() {
                            let d = payload(n, x);
                            let h = b.put(&d).unwrap();
                            added.push((h.raw(), d));
                        } else {
                            let k = keys.remove(n % keys.len());
                            b.delete(Handle::from_raw(k)).unwrap();
                            removed.push(k);
                        }
                    }
                    b.commit().unwrap();
                    for (k, d) in added { model.insert(k, d); }
                    for k in removed { model.remove(&k); dead.push(k); }
                }
                Op::Remount => {
                    let _ = vol.into_device();
                    vol = Volume::<_, 16>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs()).unwrap();
                }
            }
            for (k, d) in &model {
                let n = vol.get(Handle::from_raw(*k), &mut buf).unwrap();
                prop_assert_eq!(&buf[..n], &d[..]);
            }
            for k in &dead {
                if model.contains_key(k) { continue; }
                let r = vol.get(Handle::from_raw(*k), &mut buf);
                prop_assert!(matches!(r, Err(Error::BadHandle { .. })), "stale handle {k:016x} gave {r:?}");
            }
            let st = vol.object_stats().unwrap();
            prop_assert_eq!(st.counters.objects, model.len() as u64);
            prop_assert_eq!(st.counters.bytes, model.values().map(|v| v.len() as u64).sum::<u64>());
        }
    }
}
