//! The core's object and transaction behaviour through the translation layer: the model tests of
//! `flash_suite.rs` (objects against a `HashMap`, raw transactions against a block model) on
//! `Ftl<SimNand>` — a W25N01GV (2 KiB pages, so a 4 KiB vde block is a two-page version) with a
//! factory bad block and two blocks that go bad during the run, and an MT29F4G01ABAFD (4 KiB
//! pages) — and on wear-leveled NOR (`Ftl<NorNand<SimFlash>>`). The simulators are strict, so a
//! page programmed twice or out of order, or a bad block touched, would fail the run. A remount
//! step rescans the translation layer as well as remounting the volume. Plus: a rollback costs
//! no flash program, and garbage collection and block retirement happen during the runs.

use proptest::prelude::*;
use vde_embedded::ftl::{Ftl, FtlConfig, FtlLayout, OwnedFtlMemory};
use vde_embedded::nand::nor::NorNandLayout;
use vde_embedded::nand::{
    NandFlash, NandPart, NorNand, SimNand, SimNandBlock, SimNandConfig, Timebomb, MT29F4G01ABAFD,
    W25N01GV,
};
use vde_embedded::sim::parts::{W25q16jv, W25Q16JV};
use vde_nostd::{BlockDevice, FormatOptions, ModuleSet, Volume};
use vde_tests::objmodel::{obj_op, ObjModel, ObjOp};
use vde_tests::txmodel::{self, step, Step};
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

/// Owned RAM for a translation layer over `nand` with `c`.
fn ftl_ram<N: NandFlash>(nand: &N, c: &FtlConfig) -> OwnedFtlMemory {
    OwnedFtlMemory::new(&FtlLayout::compute(&nand.geometry(), c).unwrap())
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

fn objects_model<D: Dev>(dev: D, ops: Vec<ObjOp>) -> Result<(), TestCaseError> {
    let mut mem = Mem::new(BS, 16, 64);
    let mut model = ObjModel::default();
    let mut vol = Volume::<_, 16>::format(dev, &opts(ModuleSet::OBJECTS), mem.bufs()).unwrap();
    for op in ops {
        if let ObjOp::Remount = op {
            let mut d = vol.into_device();
            d.rescan();
            vol = Volume::<_, 16>::mount(d, mem.bufs()).unwrap();
        } else {
            model.apply(&mut vol, &op)?;
        }
        model.check(&mut vol)?;
    }
    vol.verify().unwrap();
    let mut d = vol.unmount().unwrap();
    d.rescan();
    let mut vol = Volume::<_, 16>::mount(d, mem.bufs()).unwrap();
    prop_assert_eq!(vol.recovery_report().replayed, 0);
    model.check(&mut vol)
}

// ---------- raw transactions against a block model ----------

fn transactions_model<D: Dev>(dev: D, steps: Vec<Step>) -> Result<(), TestCaseError> {
    // A rollback must not program; the translation layer never erases without a program.
    txmodel::run(
        dev,
        &opts(ModuleSet::empty()),
        steps,
        |d| (d.programs(), 0),
        |d| d.rescan(),
    )
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
    let mut ram = ftl_ram(&sim, &c);
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
    let mut ram = ftl_ram(&nand, &c);
    let ftl = Ftl::format(&mut nand, ram.mem(), &c).unwrap();
    f(ftl)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn nand_objects_match_model_w25n(ops in proptest::collection::vec(obj_op(12000), 1..40)) {
        w25n(|ftl| objects_model(ftl, ops))?;
    }

    #[test]
    fn nand_objects_match_model_mt29(ops in proptest::collection::vec(obj_op(12000), 1..40)) {
        mt29(|ftl| objects_model(ftl, ops))?;
    }

    #[test]
    fn nand_objects_match_model_nor_ftl(ops in proptest::collection::vec(obj_op(12000), 1..40)) {
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
