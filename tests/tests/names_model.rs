//! Named objects against a `BTreeMap` model: stores (new keys and replacements), removes,
//! deletes by handle, batches that commit or roll back, remounts; after every step each key
//! fetches its value, absent keys are `NameNotFound`, the listing (whole and by prefix) is the
//! model's keys in order, the object counter equals the number of names (a replaced value is
//! freed), and `verify` passes. 512-byte blocks keep leaves small, so leaves split and empty
//! often.

use proptest::prelude::*;
use std::collections::BTreeMap;
use vde_nostd::{Error, FormatOptions, Handle, ModuleSet, RamDevice, Volume};
use vde_tests::Mem;

const BS: usize = 512;

#[derive(Debug, Clone)]
enum Op {
    Store(Vec<u8>, usize, u8),
    Remove(Vec<u8>),
    /// Delete by handle the n-th named object.
    DeleteHandle(usize),
    /// A batch of stores (`Some(len)`) and removes (`None`), committed or rolled back.
    Batch(Vec<(Vec<u8>, Option<usize>)>, bool),
    Remount,
}

/// Keys from a small alphabet with shared prefixes, 1..=64 bytes.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'c')], 1..6),
        1 => proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'z')], 40..=64),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (key(), 0usize..400, any::<u8>()).prop_map(|(k, n, b)| Op::Store(k, n, b)),
        3 => key().prop_map(Op::Remove),
        1 => any::<usize>().prop_map(Op::DeleteHandle),
        2 => (proptest::collection::vec((key(), proptest::option::of(0usize..300)), 1..5), any::<bool>())
            .prop_map(|(v, c)| Op::Batch(v, c)),
        1 => Just(Op::Remount),
    ]
}

fn value(n: usize, b: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(13) ^ b).collect()
}

fn check(
    vol: &mut Volume<'_, RamDevice<'_>, 16>,
    model: &BTreeMap<Vec<u8>, Vec<u8>>,
    probe: &[Vec<u8>],
) -> Result<(), TestCaseError> {
    let mut buf = vec![0u8; 1024];
    for (k, v) in model {
        let n = vol
            .fetch(k, &mut buf)
            .map_err(|e| TestCaseError::fail(format!("fetch {k:?}: {e:?}")))?;
        prop_assert_eq!(&buf[..n], &v[..]);
    }
    for k in probe {
        if !model.contains_key(k) {
            prop_assert_eq!(vol.fetch(k, &mut buf), Err(Error::NameNotFound));
        }
    }
    let mut listed = Vec::new();
    vol.for_each_name(b"", |k, _| {
        listed.push(k.to_vec());
        true
    })
    .map_err(|e| TestCaseError::fail(format!("list: {e:?}")))?;
    prop_assert_eq!(&listed, &model.keys().cloned().collect::<Vec<_>>());
    for p in [&b"a"[..], b"ab", b"b", b"az"] {
        let mut got = Vec::new();
        vol.for_each_name(p, |k, _| {
            got.push(k.to_vec());
            true
        })
        .map_err(|e| TestCaseError::fail(format!("list {p:?}: {e:?}")))?;
        let want: Vec<Vec<u8>> = model.keys().filter(|k| k.starts_with(p)).cloned().collect();
        prop_assert_eq!(got, want, "prefix {:?}", p);
    }
    let st = vol
        .object_stats()
        .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
    prop_assert_eq!(st.counters.objects, model.len() as u64);
    vol.verify()
        .map_err(|e| TestCaseError::fail(format!("verify: {e:?}")))?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn names_match_a_btreemap(ops in proptest::collection::vec(op(), 1..60)) {
        let mut img = vec![0u8; BS * 1024];
        let mut mem = Mem::new(BS, 16, 256);
        let opts = FormatOptions {
            wal_blocks: Some(32),
            volume_id: [9; 16],
            now: 1,
            modules: ModuleSet::OBJECTS | ModuleSet::NAMES,
        };
        let dev = RamDevice::new(&mut img, BS).unwrap();
        let vol = Volume::<_, 16>::format(dev, &opts, mem.bufs()).unwrap();
        let _ = vol.unmount().unwrap();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut probe: Vec<Vec<u8>> = Vec::new();
        let dev = RamDevice::new(&mut img, BS).unwrap();
        let mut vol = Volume::<_, 16>::mount(dev, mem.bufs()).unwrap();
        for op in &ops {
            match op {
                Op::Store(k, n, b) => {
                    let v = value(*n, *b);
                    vol.store(k, &v).map_err(|e| TestCaseError::fail(format!("store: {e:?}")))?;
                    model.insert(k.clone(), v);
                    probe.push(k.clone());
                }
                Op::Remove(k) => {
                    let r = vol.remove(k);
                    if model.remove(k).is_some() {
                        prop_assert!(r.is_ok(), "remove {:?}: {:?}", k, r);
                    } else {
                        prop_assert_eq!(r, Err(Error::NameNotFound));
                    }
                    probe.push(k.clone());
                }
                Op::DeleteHandle(i) => {
                    if let Some(k) = model.keys().nth(i % model.len().max(1)).cloned() {
                        let h: Handle = vol.lookup(&k).unwrap().expect("named");
                        vol.delete(h).map_err(|e| TestCaseError::fail(format!("delete: {e:?}")))?;
                        model.remove(&k);
                    }
                }
                Op::Batch(items, commit) => {
                    let mut next = model.clone();
                    let mut b = vol.batch().unwrap();
                    let mut ok = true;
                    for (k, len) in items {
                        match len {
                            Some(n) => {
                                let v = value(*n, k.len() as u8);
                                b.store(k, &v).map_err(|e| TestCaseError::fail(format!("batch store: {e:?}")))?;
                                next.insert(k.clone(), v);
                            }
                            None => {
                                let r = b.remove(k);
                                if next.remove(k).is_none() {
                                    // Removing an absent key fails the batch: all of it rolls back.
                                    prop_assert_eq!(r, Err(Error::NameNotFound));
                                    ok = false;
                                    break;
                                }
                                prop_assert!(r.is_ok());
                            }
                        }
                        probe.push(k.clone());
                    }
                    if ok && *commit {
                        b.commit().map_err(|e| TestCaseError::fail(format!("commit: {e:?}")))?;
                        model = next;
                    } else if ok {
                        b.rollback();
                    } else {
                        prop_assert_eq!(b.commit(), Err(Error::BatchAborted));
                    }
                }
                Op::Remount => {
                    let _ = vol.unmount().unwrap();
                    let dev = RamDevice::new(&mut img, BS).unwrap();
                    vol = Volume::<_, 16>::mount(dev, mem.bufs()).unwrap();
                }
            }
            check(&mut vol, &model, &probe)?;
        }
    }
}
