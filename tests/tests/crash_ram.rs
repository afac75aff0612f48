//! Crash consistency over a RAM device with volatile-write modelling: a power cut at **every**
//! write and flush of a workload, with several seeds per cut choosing which unflushed writes
//! survive and how the write in progress tears. After each cut: remount (recovery), and check
//! that every transaction is wholly present or wholly absent and that every acknowledged commit
//! is present. A second cut during recovery itself is also exercised.

use std::collections::HashMap;
use vde_nostd::{BlockNo, Error, Handle, ModuleSet, Volume};
use vde_tests::{fresh_image, CutDevice, Mem};

const BS: usize = 512;
const BLOCKS: usize = 768;
const SEEDS: u64 = 3;

type Vol<'b> = Volume<'b, CutDevice, 16>;
type Work<S> = dyn Fn(&mut Vol<'_>, &mut S) -> Result<(), Error<vde_tests::CutError>>;

fn mount(img: Vec<u8>, mem: &mut Mem) -> Result<Vol<'_>, Error<vde_tests::CutError>> {
    Volume::mount(CutDevice::new(img, BS), mem.bufs())
}

/// Runs `work` with a cut at op `k` (or none) and returns the crash image and the number of
/// operations the workload made. `work` records acknowledgements in its own state.
fn run_cut<S>(
    base: &[u8],
    k: Option<u64>,
    seed: u64,
    state: &mut S,
    work: &Work<S>,
) -> (Vec<u8>, u64) {
    let mut mem = Mem::new(BS, 16, 256);
    let mut dev = CutDevice::new(base.to_vec(), BS);
    if let Some(k) = k {
        dev.arm(k, seed);
    }
    let mut vol = Volume::<_, 16>::mount(dev, mem.bufs()).expect("mount before workload");
    let ops_before = vol.device().ops;
    let _ = work(&mut vol, state);
    let mut dev = vol.into_device();
    let ops = dev.ops - ops_before;
    (dev.crash_image(), ops)
}

/// Counts the mount's own operations so cut points start after it.
fn mount_ops(base: &[u8]) -> u64 {
    let mut mem = Mem::new(BS, 16, 256);
    let vol = mount(base.to_vec(), &mut mem).expect("mount");
    let d = vol.into_device();
    d.ops
}

/// Remounts a crash image, with an optional second cut (at op `k`) during recovery first.
fn recover(img: Vec<u8>, second_cut: Option<(u64, u64)>) -> Vec<u8> {
    match second_cut {
        Some((k, seed)) => {
            let mut dev = CutDevice::new(img, BS);
            dev.arm(k, seed);
            let mut mem = Mem::new(BS, 16, 256);
            let _ = Volume::<_, 16>::mount(&mut dev, mem.bufs()).map(drop);
            dev.crash_image()
        }
        None => img,
    }
}

// ---------- workload (a): random multi-block transactions ----------

struct TxState {
    acked: usize,
}

fn tx_plan() -> Vec<Vec<(u64, u8)>> {
    let mut s = 0x1234_5678u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    (0..14)
        .map(|t| {
            let n = 1 + (next() % 5) as usize;
            let mut v: Vec<(u64, u8)> = Vec::new();
            while v.len() < n {
                let b = next() % 24;
                if !v.iter().any(|(x, _)| *x == b) {
                    v.push((b, (t as u8) + 1));
                }
            }
            v
        })
        .collect()
}

fn tx_work(vol: &mut Vol<'_>, st: &mut TxState) -> Result<(), Error<vde_tests::CutError>> {
    let ds = vol.layout().data_start;
    for (t, writes) in tx_plan().iter().enumerate() {
        let mut tx = vol.begin();
        for (b, stamp) in writes {
            let mut data = [0u8; BS];
            data.fill(*stamp);
            data[0] = *b as u8;
            tx.write(BlockNo(ds + 100 + b), &data)?;
        }
        tx.commit()?;
        st.acked = t + 1;
    }
    Ok(())
}

/// Block stamps after applying the first `n` transactions.
fn tx_model(n: usize) -> [u8; 24] {
    let mut m = [0u8; 24];
    for writes in tx_plan().iter().take(n) {
        for (b, stamp) in writes {
            m[*b as usize] = *stamp;
        }
    }
    m
}

fn tx_observed(img: Vec<u8>) -> Result<[u8; 24], String> {
    let mut mem = Mem::new(BS, 16, 256);
    let mut vol = mount(img, &mut mem).map_err(|e| format!("mount: {e:?}"))?;
    let ds = vol.layout().data_start;
    let mut m = [0u8; 24];
    let mut buf = [0u8; BS];
    for (i, slot) in m.iter_mut().enumerate() {
        vol.read_block(BlockNo(ds + 100 + i as u64), &mut buf)
            .map_err(|e| format!("{e:?}"))?;
        let stamp = buf[1];
        if buf[1..].iter().any(|x| *x != stamp) || (stamp != 0 && buf[0] != i as u8) {
            return Err(format!("block {i} is torn"));
        }
        *slot = stamp;
    }
    vol.verify().map_err(|e| format!("verify: {e:?}"))?;
    Ok(m)
}

#[test]
fn power_cut_at_every_operation_random_transactions() {
    let base = fresh_image(BS, BLOCKS, 24);
    let (_, total) = run_cut(&base, None, 0, &mut TxState { acked: 0 }, &tx_work);
    let mut points = 0;
    let mut violations = Vec::new();
    for k in 0..total {
        for seed in 0..SEEDS {
            let mut st = TxState { acked: 0 };
            let skip = mount_ops(&base);
            let (img, _) = run_cut(&base, Some(skip + k), seed * 7919 + k, &mut st, &tx_work);
            let second = (k % 5 == 0).then_some((k % 11, seed + 99));
            let img = recover(img, second);
            points += 1;
            match tx_observed(img) {
                Ok(m) if m == tx_model(st.acked) || m == tx_model(st.acked + 1) => {}
                Ok(m) => {
                    violations.push(format!("cut {k} seed {seed}: acked {} got {m:?}", st.acked))
                }
                Err(e) => violations.push(format!("cut {k} seed {seed}: {e}")),
            }
        }
    }
    println!(
        "random transactions: power-cut points: {points}, violations: {}",
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(points > 100);
}

// ---------- workload (b): add_module_regions ----------

struct ModState {
    acked: ModuleSet,
}

const MODS: [&str; 4] = ["snapshots", "xattr", "replication", "encryption"];

fn mod_work(vol: &mut Vol<'_>, st: &mut ModState) -> Result<(), Error<vde_tests::CutError>> {
    for name in MODS {
        let m = vde_nostd::modules::by_name(name).expect("module");
        vol.add_module_regions(m, 77)?;
        st.acked |= m.flag();
    }
    Ok(())
}

#[test]
fn power_cut_at_every_operation_add_module() {
    let base = fresh_image(BS, BLOCKS * 4, 24);
    let (_, total) = run_cut(
        &base,
        None,
        0,
        &mut ModState {
            acked: ModuleSet::OBJECTS,
        },
        &mod_work,
    );
    let mut points = 0;
    let mut violations = Vec::new();
    for k in 0..total {
        for seed in 0..SEEDS {
            let mut st = ModState {
                acked: ModuleSet::OBJECTS,
            };
            let skip = mount_ops(&base);
            let (img, _) = run_cut(&base, Some(skip + k), seed * 31 + k, &mut st, &mod_work);
            let second = (k % 5 == 0).then_some((k % 13, seed + 5));
            let img = recover(img, second);
            points += 1;
            let mut mem = Mem::new(BS, 16, 256);
            let mut vol = match mount(img, &mut mem) {
                Ok(v) => v,
                Err(e) => {
                    violations.push(format!("cut {k}: mount {e:?}"));
                    continue;
                }
            };
            let got = vol.modules();
            // Acked modules present; at most the next one more.
            let next = MODS
                .iter()
                .map(|n| vde_nostd::modules::by_name(n).unwrap().flag())
                .find(|f| !st.acked.contains(*f))
                .unwrap_or(ModuleSet::empty());
            if got != st.acked && got != (st.acked | next) {
                violations.push(format!("cut {k}: acked {:?} got {got:?}", st.acked));
            }
            let mut region_blocks = 0;
            vol.for_each_region(|e| region_blocks += e.extent.len)
                .unwrap();
            let u = vol.usage();
            if u.free_blocks != u.total_blocks - u.metadata_blocks - region_blocks {
                violations.push(format!(
                    "cut {k}: free count {u:?} vs regions {region_blocks}"
                ));
            }
            if vol.superblock().inode_size != vde_nostd::modules::inode_size(got) {
                violations.push(format!("cut {k}: inode size"));
            }
            if let Err(e) = vol.verify() {
                violations.push(format!("cut {k}: verify {e:?}"));
            }
        }
    }
    println!(
        "add_module_regions: power-cut points: {points}, violations: {}",
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
}

// ---------- workload (c): put / delete / batch ----------

#[derive(Default)]
struct ObjState {
    live: HashMap<u64, Vec<u8>>,
    dead: Vec<u64>,
    inflight_put: Vec<Vec<u8>>,
    inflight_del: Vec<u64>,
}

fn payload(n: usize, x: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(13) ^ x).collect()
}

fn obj_work(vol: &mut Vol<'_>, st: &mut ObjState) -> Result<(), Error<vde_tests::CutError>> {
    let sizes = [10usize, 200, 40, 1000, 70, 3000, 120];
    for (i, n) in sizes.iter().enumerate() {
        let d = payload(*n, i as u8);
        st.inflight_put = vec![d.clone()];
        let h = vol.put(&d)?;
        st.live.insert(h.raw(), d);
        st.inflight_put.clear();
    }
    for round in 0..2u8 {
        let mut keys: Vec<u64> = st.live.keys().copied().collect();
        keys.sort();
        let victim = keys[(round as usize * 3) % keys.len()];
        st.inflight_del = vec![victim];
        vol.delete(Handle::from_raw(victim))?;
        st.live.remove(&victim);
        st.dead.push(victim);
        st.inflight_del.clear();
        // a batch: two puts and one delete
        let mut keys: Vec<u64> = st.live.keys().copied().collect();
        keys.sort();
        let del = keys[0];
        let a = payload(90, 50 + round);
        let b = payload(1500, 60 + round);
        st.inflight_put = vec![a.clone(), b.clone()];
        st.inflight_del = vec![del];
        let mut batch = vol.batch()?;
        let ha = batch.put(&a)?;
        let hb = batch.put(&b)?;
        batch.delete(Handle::from_raw(del))?;
        batch.commit()?;
        st.live.insert(ha.raw(), a);
        st.live.insert(hb.raw(), b);
        st.live.remove(&del);
        st.dead.push(del);
        st.inflight_put.clear();
        st.inflight_del.clear();
    }
    Ok(())
}

#[test]
fn power_cut_at_every_operation_objects() {
    let base = fresh_image(BS, BLOCKS, 24);
    let (_, total) = run_cut(&base, None, 0, &mut ObjState::default(), &obj_work);
    let mut points = 0;
    let mut violations = Vec::new();
    let mut buf = vec![0u8; 8192];
    for k in 0..total {
        for seed in 0..SEEDS {
            let mut st = ObjState::default();
            let skip = mount_ops(&base);
            let (img, _) = run_cut(&base, Some(skip + k), seed * 131 + k, &mut st, &obj_work);
            let second = (k % 7 == 0).then_some((k % 9, seed + 3));
            let img = recover(img, second);
            points += 1;
            let mut mem = Mem::new(BS, 16, 256);
            let mut vol = match mount(img, &mut mem) {
                Ok(v) => v,
                Err(e) => {
                    violations.push(format!("cut {k}: mount {e:?}"));
                    continue;
                }
            };
            // Acknowledged live objects are intact, unless deleted by the in-flight operation.
            let mut inflight_applied: Option<bool> = None;
            for (h, d) in &st.live {
                match vol.get(Handle::from_raw(*h), &mut buf) {
                    Ok(n) if buf[..n] == d[..] => {
                        if st.inflight_del.contains(h) {
                            if inflight_applied == Some(true) {
                                violations.push(format!("cut {k}: half-applied batch"));
                            }
                            inflight_applied = Some(false);
                        }
                    }
                    Err(Error::BadHandle { .. }) if st.inflight_del.contains(h) => {
                        if inflight_applied == Some(false) {
                            violations.push(format!("cut {k}: half-applied batch"));
                        }
                        inflight_applied = Some(true);
                    }
                    other => violations.push(format!("cut {k} seed {seed}: {h:016x} -> {other:?}")),
                }
            }
            for h in &st.dead {
                if !matches!(
                    vol.get(Handle::from_raw(*h), &mut buf),
                    Err(Error::BadHandle { .. })
                ) {
                    violations.push(format!("cut {k}: deleted {h:016x} readable"));
                }
            }
            let stats = vol.object_stats().unwrap();
            let base_n = st.live.len() as u64;
            let extra = stats.counters.objects as i64 - base_n as i64;
            let allowed_up = st.inflight_put.len() as i64 - st.inflight_del.len() as i64;
            if extra != 0 && extra != allowed_up {
                violations.push(format!(
                    "cut {k}: object count {} vs model {base_n}",
                    stats.counters.objects
                ));
            }
            if let Err(e) = vol.verify() {
                violations.push(format!("cut {k}: verify {e:?}"));
            }
        }
    }
    println!(
        "put/delete/batch: power-cut points: {points}, violations: {}",
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
}
