//! Crash consistency on NAND through the translation layer: the `vde_embedded::harness` power-cut
//! harness ([`run_rig`](vde_embedded::harness::rig::run_rig)) over `Ftl<SimNand>` for the three
//! standard workloads, a cut at every flash operation in turn (reads, page programs — torn with
//! a prefix or a scattered pattern, alternating — and block erases, torn), reboot, remount
//! (translation-layer scan + vde mount), verify and model check; a second-cut sweep over the
//! recovering mount for a sample of the cuts.
//!
//! Small geometry so every cut is quick: 2 KiB + 64 B pages, 16 pages per erase block, 4 KiB vde
//! blocks (two pages per version, so a version can tear between its pages), one seeded factory
//! bad block. Then the same with blocks going bad mid-run (timebombs): a program or an erase
//! fails, the translation layer relocates and retires the block, and no acknowledged data is
//! lost at any cut. And the random-transactions workload on wear-leveled NOR (the translation
//! layer over a W25Q16JV seen as NAND).
//!
//! Each test prints `power-cut points: N, violations: 0`.

use vde_embedded::ftl::FtlConfig;
use vde_embedded::harness::rig::{run_nand, run_rig, NandRig, NorFtlRig};
use vde_embedded::harness::{AddModules, Config, Objects, RandomTransactions, Report};
use vde_embedded::nand::nor::NorNandLayout;
use vde_embedded::nand::{NandPart, SimNand, SimNandBlock, SimNandConfig, Timebomb};
use vde_embedded::sim::parts::W25q16jv;
use vde_embedded::SimConfig;

const BS: usize = 4096;
/// 2 KiB + 64 B pages, 16 pages (32 KiB) per erase block, four 512-byte sector programs per
/// page (as the W25N01GV): the log's commits are sector programs into the open version.
const PART: NandPart = NandPart::custom(2048, 64, 16, 64).with_partial_programs(512, 4);

fn ftl(reserve: u32) -> FtlConfig {
    FtlConfig {
        block_size: BS,
        reserve_blocks: reserve,
        wear_spread: 2,
    }
}

fn config() -> Config {
    Config {
        second_cut_every: 16,
        ..Config::new(0, BS)
    }
}

fn show(r: &Report, t: std::time::Instant) {
    println!("{r}");
    println!("  ({:.1} s)", t.elapsed().as_secs_f64());
}

fn assert_clean(r: &Report, min_points: u64) {
    assert!(r.points >= min_points, "only {} cut points: {r}", r.points);
    assert!(
        r.cut_reads > 0 && r.cut_programs > 0 && r.cut_erases > 0,
        "{r}"
    );
    assert!(r.second_points > 0, "no second cut during recovery: {r}");
    assert_eq!(r.violations, 0, "{r}");
}

fn transactions() -> RandomTransactions {
    RandomTransactions {
        seed: 0xA11CE,
        transactions: 24,
        max_alloc: 3,
        max_live: 16,
    }
}

/// 13 erase blocks: 64 logical blocks of 4 KiB (256 KiB) + 5 reserve (one factory bad).
#[test]
fn nand_power_cut_random_transactions() {
    let t = std::time::Instant::now();
    let mut cfg = config();
    cfg.format.modules = vde_nostd::ModuleSet::empty();
    let r = run_nand(&cfg, &PART, 13, 1, &[], &ftl(5), &transactions()).expect("setup");
    show(&r, t);
    assert_clean(&r, 600);
}

/// 21 erase blocks: 128 logical blocks (512 KiB) + 5 reserve (one factory bad).
#[test]
fn nand_power_cut_add_module_regions() {
    let t = std::time::Instant::now();
    let w = AddModules {
        modules: &[
            "snapshots",
            "compression",
            "encryption",
            "dedup",
            "xattr",
            "integrity",
            "replication",
        ],
        now: 1_700_000_000,
    };
    let r = run_nand(&config(), &PART, 21, 1, &[], &ftl(5), &w).expect("setup");
    show(&r, t);
    // ~140 operations since format version 2 (small records, home blocks at the checkpoint),
    // ~95 since the transaction buffer keeps committed block images (fewer log reads), ~26
    // with the block cache and sector programs (a commit pads to a 512-byte sector, so the
    // log fills in fewer commits).
    assert_clean(&r, 20);
}

#[test]
fn nand_power_cut_objects() {
    let t = std::time::Instant::now();
    let w = Objects {
        seed: 0x0B1EC7,
        operations: 30,
        min_len: 16,
        max_len: 10 * 1024,
        max_live_bytes: 96 * 1024,
        batches: true,
    };
    // Without the block cache: every page read is a cut point.
    let cfg = Config {
        cache_blocks: 0,
        ..config()
    };
    let r = run_nand(&cfg, &PART, 21, 1, &[], &ftl(5), &w).expect("setup");
    show(&r, t);
    assert_clean(&r, 450);
}

#[test]
fn nand_power_cut_named_objects() {
    let t = std::time::Instant::now();
    let mut cfg = config();
    cfg.format.modules = vde_nostd::ModuleSet::OBJECTS | vde_nostd::ModuleSet::NAMES;
    let w = vde_embedded::harness::Names {
        seed: 0x4A3E,
        operations: 30,
        keys: 20,
        max_len: 9000,
    };
    let r = run_nand(&cfg, &PART, 21, 1, &[], &ftl(5), &w).expect("setup");
    show(&r, t);
    assert_clean(&r, 300);
}

/// Single-page versions: 4 KiB + 128 B pages (an MT29F4G01ABAFD-like page), 16 pages per block.
#[test]
fn nand_power_cut_objects_4k_pages() {
    let t = std::time::Instant::now();
    // Eight sectors per page but four programs: the fifth commit into a page starts a new
    // version.
    let part = NandPart::custom(4096, 128, 16, 15).with_partial_programs(512, 4);
    let w = Objects {
        seed: 0x4B,
        operations: 40,
        min_len: 16,
        max_len: 10 * 1024,
        max_live_bytes: 96 * 1024,
        batches: true,
    };
    let r = run_nand(&config(), &part, 15, 1, &[], &ftl(5), &w).expect("setup");
    show(&r, t);
    assert_clean(&r, 250);
}

/// Three blocks go bad during the workload (at operations spread over it): every cut point,
/// with the failures before or after the cut, keeps every acknowledged transaction.
#[test]
fn nand_power_cut_with_timebombs() {
    let t = std::time::Instant::now();
    let mut cfg = config();
    cfg.format.modules = vde_nostd::ModuleSet::empty();
    // A run with a single cut tells the operation count; bombs go off a quarter, half and three
    // quarters of the way through (counted from power-up, so mount reads included).
    let count = Config {
        stride: u64::MAX,
        second_cut_every: 0,
        ..cfg
    };
    let probe = run_nand(&count, &PART, 14, 0, &[], &ftl(7), &transactions()).expect("setup");
    let n = probe.ops;
    // Blocks 2, 5 and 9: used by the log early on, so they fail while holding data.
    let bombs = [
        Timebomb {
            block: 2,
            at_op: n / 4,
        },
        Timebomb {
            block: 5,
            at_op: n / 2,
        },
        Timebomb {
            block: 9,
            at_op: 3 * n / 4,
        },
    ];
    let mut mem = vec![0xFFu8; PART.raw_bytes(14)];
    let mut state = vec![SimNandBlock::NEW; 14];
    let mut conf = SimNandConfig::new(cfg.seed);
    for b in bombs {
        conf.add_timebomb(b);
    }
    let sim = SimNand::new(&mut mem, &mut state, &PART, conf).unwrap();
    let mut rig = NandRig::new(sim, ftl(7)).unwrap();
    let r = run_rig(&cfg, &mut rig, &transactions()).expect("setup");
    show(&r, t);
    // The last cut run got to the end of the workload: every bomb went off and its block was
    // retired (marked bad) there.
    let bad: Vec<u32> = (0..14).filter(|&b| rig.sim().is_marked_bad(b)).collect();
    println!("  blocks marked bad by the end of the last cut run: {bad:?}");
    assert_eq!(bad, [2, 5, 9]);
    assert_clean(&r, 600);
}

/// Wear-leveled NOR: the same transactions through the translation layer over a W25Q16JV seen
/// as NAND (16 KiB emulated erase blocks of four 4 KiB sectors, 4 KiB + 32 B pages, three pages
/// per block).
#[test]
fn nor_ftl_power_cut_random_transactions() {
    let t = std::time::Instant::now();
    let mut cfg = config();
    cfg.format.modules = vde_nostd::ModuleSet::empty();
    cfg.second_cut_every = 200;
    let mut img = vec![0xFFu8; 40 * 16 * 1024];
    let mut wear = vec![0u32; img.len() / 4096];
    let flash = W25q16jv::new(&mut img, &mut wear, SimConfig::new(1)).unwrap();
    let layout = NorNandLayout {
        base_offset: 0,
        sectors_per_block: 4,
        page_size: 4096,
        spare_size: 32,
        block_count: None,
    };
    let mut rig = NorFtlRig::new(flash, layout, ftl(6)).unwrap();
    let r = run_rig(&cfg, &mut rig, &transactions()).expect("setup");
    show(&r, t);
    assert!(r.points > 3000, "{r}");
    assert_eq!(r.violations, 0, "{r}");
}

/// A new sectored version copies the log block's earlier content (after a remount, the first
/// commit cannot extend the old version): a cut that tore one of its later programs left a
/// version whose page 0 was intact, which the mount took over the previous one, and the earlier
/// commits it was copying read as erased (acknowledged objects lost, deleted ones back). The
/// version now records its base length and is taken only if all of it is intact. These seeds
/// and sizes (small objects, 6 KB at most) found it at 2-3 cut points each.
#[test]
fn nand_power_cut_a_new_sectored_version_is_all_or_nothing() {
    for seed in [0x1234, 0x7A7D] {
        let t = std::time::Instant::now();
        let w = Objects {
            seed,
            operations: 40,
            min_len: 16,
            max_len: 6000,
            max_live_bytes: 40 * 1024,
            batches: true,
        };
        let cfg = Config {
            second_cut_every: 0,
            ..config()
        };
        let r = run_nand(&cfg, &PART, 21, 1, &[], &ftl(5), &w).expect("setup");
        show(&r, t);
        assert_eq!(r.violations, 0, "{r}");
        assert!(r.points >= 300, "only {} cut points: {r}", r.points);
    }
}
