//! Every crash harness over the async engine: the power-cut harness of the blocking suites
//! (`flash_powercut`, `crash_ram`, `mcu_powercut`, `nand_powercut`), compiled from the same source
//! for `vde_nostd::asynch::Volume` (`vde_embedded::asynch::harness`: the rig's device under
//! `asynch::device::FromBlocking`), run on each medium with each workload.
//!
//! For each: a power cut at every device operation of the workload and its final checkpoint
//! (every read, program, erase or block write of the async path), the outcomes of the writes
//! left unflushed, reboot, remount through the async engine, `verify`, the model (acknowledged
//! state; the in-flight operation wholly present and readable or wholly absent) and the counters
//! and free space against the reference run, plus a second cut during a sample of the recoveries.
//! The same checks as the blocking suites, on shorter runs of the same workloads (the blocking
//! suites run the long ones); each prints its report.

use vde_embedded::asynch::harness::rig::{run_mcu, run_nand, run_ram};
use vde_embedded::asynch::harness::{
    self, block_on, AddModules, Config, Names, Objects, RandomTransactions, Report,
};
use vde_embedded::ftl::FtlConfig;
use vde_embedded::nand::NandPart;
use vde_embedded::sim::McuRules;
use vde_nostd::ModuleSet;

fn show(r: Result<Report, String>, t: std::time::Instant) -> Report {
    let r = r.expect("harness setup");
    println!("{r}");
    println!("  ({:.1} s)", t.elapsed().as_secs_f64());
    r
}

/// The blocking suites' checks: enough cut points, each kind of operation cut, a recovery that
/// replayed a committed transaction, a second cut during recovery, no violation.
fn assert_clean(r: &Report, min_points: u64, erases: bool) {
    assert_eq!(r.violations, 0, "{r}");
    assert!(r.points >= min_points, "only {} cut points: {r}", r.points);
    assert!(r.cut_reads > 0 && r.cut_programs > 0, "{r}");
    assert!(!erases || r.cut_erases > 0, "no erase cut: {r}");
    assert!(
        r.replaying_recoveries > 0,
        "no cut left a transaction to replay: {r}"
    );
    assert!(r.second_points > 0, "no second cut during recovery: {r}");
}

// ---------------------------------------------------------------------------------------------
// NOR flash (W25Q16JV geometry), as `flash_powercut`.

fn nor<W: harness::Workload>(cfg: &Config, w: &W) -> Report {
    let t = std::time::Instant::now();
    show(block_on(harness::run::<1, 1, 4096, _>(cfg, w)), t)
}

#[test]
fn async_nor_power_cut_random_transactions() {
    let mut cfg = Config::new(256 * 1024, 4096);
    cfg.format.modules = ModuleSet::empty();
    let w = RandomTransactions {
        seed: 0xA11CE,
        transactions: 12,
        max_alloc: 3,
        max_live: 16,
    };
    assert_clean(&nor(&cfg, &w), 900, true);
}

#[test]
fn async_nor_power_cut_add_module_regions() {
    let cfg = Config::new(512 * 1024, 4096);
    let w = AddModules {
        modules: &["snapshots", "compression", "encryption", "dedup", "xattr"],
        now: 1_700_000_000,
    };
    assert_clean(&nor(&cfg, &w), 40, true);
}

#[test]
fn async_nor_power_cut_objects() {
    let cfg = Config::new(512 * 1024, 4096);
    let w = Objects {
        seed: 0x0B1EC7,
        operations: 50,
        min_len: 16,
        max_len: 10 * 1024,
        max_live_bytes: 96 * 1024,
        batches: true,
    };
    assert_clean(&nor(&cfg, &w), 600, true);
}

#[test]
fn async_nor_power_cut_named_objects() {
    let mut cfg = Config::new(512 * 1024, 4096);
    cfg.format.modules = ModuleSet::OBJECTS | ModuleSet::NAMES;
    let w = Names {
        seed: 0x4A3E,
        operations: 30,
        keys: 20,
        max_len: 9000,
    };
    assert_clean(&nor(&cfg, &w), 400, true);
}

// ---------------------------------------------------------------------------------------------
// A RAM disk with a write cache's outcomes (any subset of the unflushed writes, in any order,
// one torn), as `crash_ram`.

fn ram_config() -> Config {
    vde_tests::ram_crash_config(24)
}

#[test]
fn async_ram_power_cut_objects_with_unflushed_outcomes() {
    let w = Objects {
        seed: 0x5EED,
        operations: 60,
        min_len: 1,
        max_len: 3000,
        max_live_bytes: 64 * 1024,
        batches: true,
    };
    let t = std::time::Instant::now();
    let r = show(block_on(run_ram(&ram_config(), 768, &w)), t);
    assert_clean(&r, 500, false);
    assert!(r.states > r.points, "no unflushed-write outcomes: {r}");
}

#[test]
fn async_ram_power_cut_random_transactions_with_unflushed_outcomes() {
    let mut cfg = ram_config();
    cfg.format.modules = ModuleSet::empty();
    let w = RandomTransactions {
        seed: 0xBEEF,
        transactions: 20,
        max_alloc: 3,
        max_live: 12,
    };
    let t = std::time::Instant::now();
    let r = show(block_on(run_ram(&cfg, 768, &w)), t);
    assert_clean(&r, 300, false);
    assert!(r.states > r.points, "no unflushed-write outcomes: {r}");
}

// ---------------------------------------------------------------------------------------------
// Microcontroller flash rules (nRF52840-class 4-byte words programmed once), as `mcu_powercut`.

#[test]
fn async_mcu_words_survive_every_cut() {
    let mut cfg = Config::new(512 * 1024, 4096);
    cfg.crash_states = 2;
    cfg.second_cut_every = 16;
    let w = Objects {
        seed: 0x3C0,
        operations: 30,
        min_len: 8,
        max_len: 6000,
        max_live_bytes: 48 * 1024,
        batches: true,
    };
    let t = std::time::Instant::now();
    let r = show(
        block_on(run_mcu::<1, 4, 4096, _>(&cfg, McuRules::CC26XX, &w)),
        t,
    );
    assert_clean(&r, 300, true);
}

// ---------------------------------------------------------------------------------------------
// NAND through the translation layer (sector programs within the part's NoP), as
// `nand_powercut`.

#[test]
fn async_nand_power_cut_objects() {
    const PART: NandPart = NandPart::custom(2048, 64, 16, 64).with_partial_programs(512, 4);
    let ftl = FtlConfig {
        block_size: 4096,
        reserve_blocks: 5,
        wear_spread: 2,
    };
    let cfg = Config {
        second_cut_every: 16,
        ..Config::new(0, 4096)
    };
    let w = Objects {
        seed: 0x7A7D,
        operations: 40,
        min_len: 16,
        max_len: 6000,
        max_live_bytes: 40 * 1024,
        batches: true,
    };
    let t = std::time::Instant::now();
    let r = show(block_on(run_nand(&cfg, &PART, 21, 1, &[], &ftl, &w)), t);
    assert_clean(&r, 300, true);
}
