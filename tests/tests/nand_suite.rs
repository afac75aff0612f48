//! The core's object and transaction behaviour through the translation layer: the model tests of
//! `flash_suite.rs` (objects against a `HashMap`, raw transactions against a block model) on
//! `Ftl<SimNand>` — a W25N01GV (2 KiB pages, so a 4 KiB vde block is a two-page version) with a
//! factory bad block and two blocks that go bad during the run, and an MT29F4G01ABAFD (4 KiB
//! pages) — and on wear-leveled NOR (`Ftl<NorNand<SimFlash>>`). The simulators are strict, so a
//! page programmed twice or out of order, or a bad block touched, would fail the run. A remount
//! step rescans the translation layer as well as remounting the volume. Plus: a rollback costs
//! no flash program, and garbage collection and block retirement happen during the runs.

use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};
use vde_embedded::ftl::{BlockInfo, Ftl, FtlConfig, FtlLayout, FtlMemory};
use vde_embedded::nand::nor::NorNandLayout;
use vde_embedded::nand::{
    NandFlash, NandPart, NorNand, SimNand, SimNandBlock, SimNandConfig, Timebomb, MT29F4G01ABAFD,
    W25N01GV,
};
use vde_embedded::sim::parts::{W25q16jv, W25Q16JV};
use vde_nostd::types::Extent;
use vde_nostd::{BlockDevice, BlockNo, Error, FormatOptions, Handle, ModuleSet, Volume};
use vde_tests::Mem;

const BS: usize = 4096;

fn opts(modules: ModuleSet) -> FormatOptions {
    FormatOptions {
        wal_blocks: Some(16),
        volume_id: [0x5A; 16],
        now: 10,
        modules,
    }
}

fn payload(n: usize, b: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(b))
        .collect()
}

/// Owned RAM of a translation layer.
struct Ram {
    map: Vec<u32>,
    blocks: Vec<BlockInfo>,
    page: Vec<u8>,
}

impl Ram {
    fn new<N: NandFlash>(nand: &N, c: &FtlConfig) -> Ram {
        let l = FtlLayout::compute(&nand.geometry(), c).unwrap();
        Ram {
            map: vec![0; l.map_entries()],
            blocks: vec![BlockInfo::EMPTY; l.block_entries()],
            page: vec![0; l.page_size],
        }
    }
    fn mem(&mut self) -> FtlMemory<'_> {
        FtlMemory {
            map: &mut self.map,
            blocks: &mut self.blocks,
            page: &mut self.page,
        }
    }
}

/// A translation layer that knows how to count its medium's programs and to be rescanned.
trait Dev: BlockDevice {
    fn programs(&self) -> u64;
    fn rescan(&mut self);
}

impl Dev for Ftl<'_, &mut SimNand<'_>> {
    fn programs(&self) -> u64 {
        self.nand().stats().programs
    }
    fn rescan(&mut self) {
        Ftl::rescan(self).unwrap();
    }
}

impl<const R: usize, const W: usize, const E: usize> Dev
    for Ftl<'_, &mut NorNand<&mut W25q16jvLike<'_, R, W, E>>>
{
    fn programs(&self) -> u64 {
        self.nand().flash().stats().programs
    }
    fn rescan(&mut self) {
        Ftl::rescan(self).unwrap();
    }
}

type W25q16jvLike<'m, const R: usize, const W: usize, const E: usize> =
    vde_embedded::SimFlash<'m, R, W, E>;

// ---------- objects against a HashMap model ----------

#[derive(Debug, Clone)]
enum ObjOp {
    Put(usize, u8),
    Delete(usize),
    Batch(Vec<(bool, usize, u8)>),
    Remount,
}

fn obj_op() -> impl Strategy<Value = ObjOp> {
    prop_oneof![
        6 => (prop_oneof![1usize..300, 300usize..2100, 2100usize..12000], any::<u8>())
            .prop_map(|(n, b)| ObjOp::Put(n, b)),
        3 => any::<usize>().prop_map(ObjOp::Delete),
        1 => proptest::collection::vec((any::<bool>(), 1usize..3000, any::<u8>()), 1..5)
            .prop_map(ObjOp::Batch),
        1 => Just(ObjOp::Remount),
    ]
}

fn objects_model<D: Dev>(dev: D, ops: Vec<ObjOp>) -> Result<(), TestCaseError> {
    let mut mem = Mem::new(BS, 16, 64);
    let mut model: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut dead: Vec<u64> = Vec::new();
    let mut vol = Volume::<_, 16>::format(dev, &opts(ModuleSet::OBJECTS), mem.bufs()).unwrap();
    let mut buf = vec![0u8; 16384];
    for o in ops {
        match o {
            ObjOp::Put(n, b) => {
                let d = payload(n, b);
                let h = vol.put(&d).unwrap();
                prop_assert!(!model.contains_key(&h.raw()));
                model.insert(h.raw(), d);
            }
            ObjOp::Delete(pick) => {
                if model.is_empty() {
                    continue;
                }
                let mut keys: Vec<u64> = model.keys().copied().collect();
                keys.sort();
                let k = keys[pick % keys.len()];
                vol.delete(Handle::from_raw(k)).unwrap();
                model.remove(&k);
                dead.push(k);
            }
            ObjOp::Batch(items) => {
                let mut keys: Vec<u64> = model.keys().copied().collect();
                keys.sort();
                let mut b = vol.batch().unwrap();
                let mut added = Vec::new();
                let mut removed = Vec::new();
                for (is_put, n, x) in items {
                    if is_put || keys.is_empty() {
                        let d = payload(n, x);
                        added.push((b.put(&d).unwrap().raw(), d));
                    } else {
                        let k = keys.remove(n % keys.len());
                        b.delete(Handle::from_raw(k)).unwrap();
                        removed.push(k);
                    }
                }
                b.commit().unwrap();
                model.extend(added);
                for k in removed {
                    model.remove(&k);
                    dead.push(k);
                }
            }
            ObjOp::Remount => {
                let mut d = vol.into_device();
                d.rescan();
                vol = Volume::<_, 16>::mount(d, mem.bufs()).unwrap();
            }
        }
        for (k, d) in &model {
            let n = vol.get(Handle::from_raw(*k), &mut buf).unwrap();
            prop_assert_eq!(&buf[..n], &d[..]);
        }
        for k in &dead {
            let r = vol.get(Handle::from_raw(*k), &mut buf);
            prop_assert!(
                matches!(r, Err(Error::BadHandle { .. })),
                "stale {k:016x} gave {r:?}"
            );
        }
        let st = vol.object_stats().unwrap();
        prop_assert_eq!(st.counters.objects, model.len() as u64);
        prop_assert_eq!(
            st.counters.bytes,
            model.values().map(|v| v.len() as u64).sum::<u64>()
        );
    }
    vol.verify().unwrap();
    let mut d = vol.unmount().unwrap();
    d.rescan();
    let mut vol = Volume::<_, 16>::mount(d, mem.bufs()).unwrap();
    prop_assert_eq!(vol.recovery_report().replayed, 0);
    for (k, d) in &model {
        let n = vol.get(Handle::from_raw(*k), &mut buf).unwrap();
        prop_assert_eq!(&buf[..n], &d[..]);
    }
    Ok(())
}

// ---------- raw transactions against a block model ----------

#[derive(Debug, Clone)]
enum TxOp {
    Alloc(u64),
    Rewrite(usize),
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

fn transactions_model<D: Dev>(dev: D, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let mut mem = Mem::new(BS, 16, 0);
    let mut vol = Volume::<_, 16>::format(dev, &opts(ModuleSet::empty()), mem.bufs()).unwrap();
    let mut live: BTreeMap<u64, u32> = BTreeMap::new();
    let mut runs: Vec<Extent> = Vec::new();
    let free0 = vol.usage().free_blocks;
    let mut buf = vec![0u8; BS];
    for (t, s) in steps.into_iter().enumerate() {
        let stamp = t as u32 + 1;
        let commit = matches!(s, Step::Commit(_));
        match s {
            Step::Commit(ops) | Step::Rollback(ops)
                if live.len() > 40 && ops.iter().any(|o| matches!(o, TxOp::Alloc(_))) =>
            {
                let mut tx = vol.begin();
                for e in runs.drain(..) {
                    tx.release(e).unwrap();
                }
                tx.commit().unwrap();
                live.clear();
            }
            Step::Commit(ops) | Step::Rollback(ops) => {
                let mut next = live.clone();
                let mut next_runs = runs.clone();
                let before = vol.device().programs();
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
                    // Nothing reached the flash.
                    prop_assert_eq!(vol.device().programs(), before);
                }
            }
            Step::Remount => {
                let mut d = vol.into_device();
                d.rescan();
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

// ---------- media ----------

/// Runs `f` on a translation layer over a simulated `part` of `blocks` blocks with
/// `factory_bad` bad blocks and `bombs`.
fn on_nand<T>(
    part: &NandPart,
    blocks: u32,
    factory_bad: u32,
    bombs: &[Timebomb],
    reserve: u32,
    f: impl FnOnce(Ftl<'_, &mut SimNand<'_>>) -> T,
) -> T {
    let mut mem = vec![0u8; part.raw_bytes(blocks)];
    SimNand::factory_init(&mut mem, part, factory_bad, 5);
    let mut st = vec![SimNandBlock::NEW; blocks as usize];
    let mut conf = SimNandConfig::new(1);
    for &b in bombs {
        conf.add_timebomb(b);
    }
    let mut sim = SimNand::new(&mut mem, &mut st, part, conf).unwrap();
    let c = FtlConfig {
        reserve_blocks: reserve,
        ..FtlConfig::new(&sim.geometry(), BS)
    };
    let mut ram = Ram::new(&sim, &c);
    let ftl = Ftl::format(&mut sim, ram.mem(), &c).unwrap();
    f(ftl)
}

/// W25N01GV geometry, 24 blocks of 128 KiB, one factory bad block, two blocks going bad at
/// operations 1,500 and 4,000.
fn w25n<T>(f: impl FnOnce(Ftl<'_, &mut SimNand<'_>>) -> T) -> T {
    let bombs = [
        Timebomb {
            block: 3,
            at_op: 1500,
        },
        Timebomb {
            block: 6,
            at_op: 4000,
        },
    ];
    on_nand(&W25N01GV, 24, 1, &bombs, 7, f)
}

fn mt29<T>(f: impl FnOnce(Ftl<'_, &mut SimNand<'_>>) -> T) -> T {
    on_nand(&MT29F4G01ABAFD, 12, 0, &[], 4, f)
}

fn nor<T>(f: impl FnOnce(Ftl<'_, &mut NorNand<&mut W25q16jvLike<'_, 1, 1, 4096>>>) -> T) -> T {
    let mut img = vec![0xFFu8; 2 * 1024 * 1024];
    let mut wear = vec![0u32; img.len() / 4096];
    let mut fl = W25q16jv::from_part(&mut img, &mut wear, &W25Q16JV, 1).unwrap();
    let layout = NorNandLayout {
        base_offset: 0,
        sectors_per_block: 16,
        page_size: 4096,
        spare_size: 32,
        block_count: None,
    };
    let mut nand = NorNand::new(&mut fl, layout).unwrap();
    let c = FtlConfig::new(&nand.geometry(), BS);
    let mut ram = Ram::new(&nand, &c);
    let ftl = Ftl::format(&mut nand, ram.mem(), &c).unwrap();
    f(ftl)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn nand_objects_match_model_w25n(ops in proptest::collection::vec(obj_op(), 1..40)) {
        w25n(|ftl| objects_model(ftl, ops))?;
    }

    #[test]
    fn nand_objects_match_model_mt29(ops in proptest::collection::vec(obj_op(), 1..40)) {
        mt29(|ftl| objects_model(ftl, ops))?;
    }

    #[test]
    fn nand_objects_match_model_nor_ftl(ops in proptest::collection::vec(obj_op(), 1..40)) {
        nor(|ftl| objects_model(ftl, ops))?;
    }

    #[test]
    fn nand_transactions_match_model_w25n(steps in proptest::collection::vec(step(), 1..40)) {
        w25n(|ftl| transactions_model(ftl, steps))?;
    }

    #[test]
    fn nand_transactions_match_model_mt29(steps in proptest::collection::vec(step(), 1..40)) {
        mt29(|ftl| transactions_model(ftl, steps))?;
    }
}

/// A long objects run on the W25N01GV geometry: the volume is rewritten many times over, so the
/// translation layer garbage-collects, and both timebombs go off; nothing is lost.
#[test]
fn nand_objects_long_run_with_gc_and_bad_blocks() {
    let ops: Vec<ObjOp> = (0..400)
        .map(|i| match i % 10 {
            0..=5 => ObjOp::Put(100 + (i * 997) % 9000, i as u8),
            6..=8 => ObjOp::Delete(i * 7),
            _ => ObjOp::Remount,
        })
        .collect();
    w25n(|mut ftl| {
        let before = ftl.stats();
        objects_model(&mut ftl, ops).unwrap();
        let s = ftl.stats();
        let info = ftl.info();
        println!("W25N01GV × 24 blocks after 400 object operations: {s:?}\n  {info:?}");
        assert!(s.gc_victims > before.gc_victims, "{s:?}");
        assert_eq!(info.grown_bad + info.bad_at_mount, 3, "{info:?}");
    });
}

impl<T: Dev> Dev for &mut T {
    fn programs(&self) -> u64 {
        (**self).programs()
    }
    fn rescan(&mut self) {
        (**self).rescan()
    }
}
