//! The engine on a microcontroller's internal flash: `NorFlashDevice` over a `SimFlash` held to
//! MCU program rules by `McuFlash` (each `WRITE_SIZE` unit programmed once between erases,
//! whatever its bytes; on the CC26xx preset also at most 83 programs per 256-byte row), with
//! write sizes 4, 8 and 16 (TI CC26xx, STM32L4, STM32U5), 4 KiB sectors and 4 KiB vde blocks.
//!
//! - Every crash harness workload (module addition, random transactions, objects) with a cut at
//!   every flash operation, as `flash_powercut.rs` does on SPI NOR: reboot, remount, verify and
//!   the model check, plus second cuts during recovery. A program the rules refuse, in any run,
//!   is a violation.
//! - A long uncut run per write size: thousands of puts and deletes through many log wraps and
//!   checkpoints, remounts, every object read back, no refused program.
//!
//! Each harness test prints `power-cut points: N, violations: 0`.

use vde_embedded::harness::rig::run_mcu;
use vde_embedded::harness::{
    AddModules, Config, Names, Objects, RandomTransactions, Report, Workload,
};
use vde_embedded::sim::{McuFlash, McuRules, SimConfig, SimFlash};
use vde_embedded::NorFlashDevice;
use vde_nostd::{FormatOptions, ModuleSet, Volume};
use vde_tests::Mem;

const BS: usize = 4096;

fn run<const W: usize, L: Workload>(rules: McuRules, cfg: &Config, w: &L) -> Report {
    let r = run_mcu::<1, W, 4096, _>(cfg, rules, w).expect("harness setup");
    println!("write size {W}: {r}");
    r
}

fn assert_clean(r: &Report, min_points: u64) {
    assert_eq!(r.violations, 0, "{r}");
    assert!(r.points >= min_points, "only {} cut points: {r}", r.points);
    assert!(
        r.cut_reads > 0 && r.cut_programs > 0 && r.cut_erases > 0,
        "{r}"
    );
    assert!(r.second_points > 0, "no second cut during recovery: {r}");
}

fn random_transactions() -> (Config, RandomTransactions) {
    let mut cfg = Config::new(256 * 1024, BS);
    cfg.format.modules = ModuleSet::empty();
    cfg.crash_states = 2;
    let w = RandomTransactions {
        seed: 0x3C0,
        transactions: 12,
        max_alloc: 3,
        max_live: 16,
    };
    (cfg, w)
}

fn objects() -> (Config, Objects) {
    let mut cfg = Config::new(512 * 1024, BS);
    cfg.crash_states = 2;
    cfg.second_cut_every = 16;
    let w = Objects {
        seed: 0x3C1,
        operations: 50,
        min_len: 16,
        max_len: 6 * 1024,
        max_live_bytes: 64 * 1024,
        batches: true,
    };
    (cfg, w)
}

fn names() -> (Config, Names) {
    let mut cfg = Config::new(512 * 1024, BS);
    cfg.format.modules = ModuleSet::OBJECTS | ModuleSet::NAMES;
    cfg.crash_states = 2;
    cfg.second_cut_every = 16;
    let w = Names {
        seed: 0x3C2,
        operations: 40,
        keys: 20,
        max_len: 6000,
    };
    (cfg, w)
}

fn modules() -> (Config, AddModules) {
    let cfg = Config::new(512 * 1024, BS);
    let w = AddModules {
        modules: &["snapshots", "xattr", "integrity"],
        now: 1_700_000_000,
    };
    (cfg, w)
}

#[test]
fn mcu_words_of_4_bytes_with_a_row_limit_survive_every_cut() {
    let (c, w) = modules();
    assert_clean(&run::<4, _>(McuRules::CC26XX, &c, &w), 50);
    let (c, w) = random_transactions();
    assert_clean(&run::<4, _>(McuRules::CC26XX, &c, &w), 1000);
    let (c, w) = objects();
    assert_clean(&run::<4, _>(McuRules::CC26XX, &c, &w), 600);
    let (c, w) = names();
    assert_clean(&run::<4, _>(McuRules::CC26XX, &c, &w), 400);
}

#[test]
fn mcu_double_words_survive_every_cut() {
    let (c, w) = modules();
    assert_clean(&run::<8, _>(McuRules::STM32L4, &c, &w), 50);
    let (c, w) = random_transactions();
    assert_clean(&run::<8, _>(McuRules::STM32L4, &c, &w), 1000);
    let (c, w) = objects();
    assert_clean(&run::<8, _>(McuRules::STM32L4, &c, &w), 600);
    let (c, w) = names();
    assert_clean(&run::<8, _>(McuRules::STM32L4, &c, &w), 400);
}

#[test]
fn mcu_quad_words_survive_every_cut() {
    let (c, w) = modules();
    assert_clean(&run::<16, _>(McuRules::STM32U5, &c, &w), 50);
    let (c, w) = random_transactions();
    assert_clean(&run::<16, _>(McuRules::STM32U5, &c, &w), 1000);
    let (c, w) = objects();
    assert_clean(&run::<16, _>(McuRules::STM32U5, &c, &w), 600);
    let (c, w) = names();
    assert_clean(&run::<16, _>(McuRules::STM32U5, &c, &w), 400);
}

/// The rig does hold the engine to the rules: with one program per 4 KiB sector allowed, a
/// second log append into a sector is refused, and the run reports it (or fails at setup).
#[test]
fn a_broken_rule_is_a_violation() {
    let rules = McuRules {
        writes_per_unit: 1,
        row_bytes: 4096,
        writes_per_row: 1,
    };
    let (c, w) = random_transactions();
    match run_mcu::<1, 4, 4096, _>(&c, rules, &w) {
        Ok(r) => assert!(r.violations > 0, "{r}"),
        Err(e) => assert!(e.contains("Flash") || e.contains("flash"), "{e}"),
    }
}

/// Thousands of puts and deletes on a small volume (the log wraps and checkpoints many times),
/// with remounts: no program is refused and every live object reads back.
fn long_run<const W: usize>(rules: McuRules) {
    const CAP: usize = 256 * 1024;
    let mut img = vec![0xFFu8; CAP];
    let mut wear = vec![0u32; CAP / 4096];
    let (nu, nr) = rules.counters(CAP, W);
    let (mut units, mut rows) = (vec![0u8; nu], vec![0u16; nr]);
    let sim = SimFlash::<1, W, 4096>::new(&mut img, &mut wear, SimConfig::new(7)).unwrap();
    let mut flash = McuFlash::new(sim, rules, &mut units, &mut rows).unwrap();
    let mut mem = Mem::new(BS, 16, 256);
    let opts = FormatOptions {
        volume_id: [0x4D; 16],
        now: 1,
        modules: ModuleSet::OBJECTS,
        wal_blocks: Some(8),
    };
    let dev = NorFlashDevice::new(&mut flash, BS, 0, None).unwrap();
    let mut vol = Volume::<_, 16>::format(dev, &opts, mem.bufs()).unwrap();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut live: Vec<(vde_nostd::Handle, Vec<u8>)> = Vec::new();
    let mut buf = vec![0u8; 8192];
    let mut checkpoints_seen = 0u64;
    for i in 0..3000u64 {
        if live.len() > 40 || (!live.is_empty() && next() % 3 == 0) {
            let (h, _) = live.swap_remove((next() % live.len() as u64) as usize);
            vol.delete(h).unwrap();
        } else {
            let len = if next() % 10 == 0 {
                2000 + (next() % 4000) as usize
            } else {
                1 + (next() % 300) as usize
            };
            let d: Vec<u8> = (0..len).map(|j| (j as u64 ^ i) as u8).collect();
            let h = vol.put(&d).unwrap();
            live.push((h, d));
        }
        if i % 500 == 499 {
            checkpoints_seen += vol.wal_stats().checkpoints;
            let dev = vol.unmount().unwrap();
            vol = Volume::<_, 16>::mount(dev, mem.bufs()).unwrap();
            vol.verify().unwrap();
        }
    }
    checkpoints_seen += vol.wal_stats().checkpoints;
    for (h, d) in &live {
        let n = vol.get(*h, &mut buf).unwrap();
        assert_eq!(&buf[..n], &d[..]);
    }
    vol.verify().unwrap();
    drop(vol);
    assert!(checkpoints_seen > 50, "only {checkpoints_seen} checkpoints");
    assert_eq!(
        flash.violations(),
        0,
        "first at {:?}",
        flash.first_violation()
    );
    println!(
        "write size {W}: 3000 operations, {checkpoints_seen} checkpoints, {} erases, no refused program",
        flash.inner().stats().erases
    );
}

#[test]
fn mcu_long_runs_never_program_a_unit_twice() {
    long_run::<4>(McuRules::CC26XX);
    long_run::<8>(McuRules::STM32L4);
    long_run::<16>(McuRules::STM32U5);
}
