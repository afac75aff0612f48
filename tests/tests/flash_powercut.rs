//! Crash consistency on NOR flash: the `vde_embedded::harness` power-cut harness over
//! `NorFlashDevice<SimFlash>` (W25Q16JV geometry: byte reads and programs, programs issued in
//! 256-byte page chunks, 4 KiB sectors; 4 KiB vde blocks; a 256 or 512 KiB slice of the part so
//! that each cut run is fast).
//!
//! For each workload: count its flash operations N, then cut the power at every one of them in
//! turn (a read fails; a program or an erase is torn; program tears alternate between a prefix and
//! a scattered pattern), reboot, remount (no cut), verify, and check the model: everything
//! acknowledged is there, the operation in flight is wholly there or wholly absent, no object
//! returns another's bytes, every block of a raw transaction is all old or all new. For a sample of
//! the cuts (every eighth recovery that replayed a committed transaction, every eighth that did
//! not), cut again at every operation of the recovering mount, reboot, remount and check again.
//! Each test prints `power-cut points: N, violations: 0`.

use vde_embedded::harness::{self, AddModules, Config, Objects, RandomTransactions, Report};
use vde_embedded::sim::parts::W25q16jv;
use vde_embedded::{NorFlashDevice, SimConfig};
use vde_nostd::format::layout::{SB_MIRROR, SB_PRIMARY};
use vde_nostd::format::superblock::Superblock;
use vde_nostd::{modules, FormatOptions, Volume};
use vde_tests::Mem;

const BS: usize = 4096;

/// Runs a workload on the W25Q16JV geometry (read 1, write 1, erase 4096) and prints the report.
fn run_w25q<W: harness::Workload>(cfg: &Config, w: &W) -> Report {
    let t = std::time::Instant::now();
    let r = harness::run::<1, 1, 4096, _>(cfg, w).expect("harness setup");
    println!("{r}");
    println!("  ({:.1} s)", t.elapsed().as_secs_f64());
    r
}

/// Every operation cut; a second-cut sweep for every 8th recovery of each kind.
fn config(capacity: usize) -> Config {
    Config::new(capacity, BS)
}

fn assert_clean(r: &Report, min_points: u64) {
    assert!(r.points >= min_points, "only {} cut points: {r}", r.points);
    assert!(
        r.cut_reads > 0 && r.cut_programs > 0 && r.cut_erases > 0,
        "{r}"
    );
    assert!(
        r.replaying_recoveries > 0,
        "no cut left a transaction to replay: {r}"
    );
    assert!(r.second_points > 0, "no second cut during recovery: {r}");
    assert_eq!(r.violations, 0, "{r}");
}

#[test]
fn flash_power_cut_random_transactions() {
    let mut cfg = config(256 * 1024);
    cfg.format.modules = vde_nostd::ModuleSet::empty();
    let w = RandomTransactions {
        seed: 0xA11CE,
        transactions: 24,
        max_alloc: 3,
        max_live: 16,
    };
    assert_clean(&run_w25q(&cfg, &w), 2000);
}

#[test]
fn flash_power_cut_add_module_regions() {
    let cfg = config(512 * 1024);
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
    // Seven transactions and a checkpoint: since format version 2 (no home writes before the
    // checkpoint, small records) that is ~150 flash operations, against ~1,100 before; ~80
    // with the block cache (a block read again is copied from RAM).
    assert_clean(&run_w25q(&cfg, &w), 60);
}

/// The smallest flash range: 64 KiB, sixteen 4 KiB sectors (4 of log, 5 of data), formatted
/// with the defaults: objects put, deleted, batched and compacted at every cut.
#[test]
fn flash_power_cut_objects_in_64_kib() {
    let cfg = config(64 * 1024);
    let w = Objects {
        seed: 0x6464,
        operations: 240,
        min_len: 8,
        max_len: 900,
        max_live_bytes: 3 * 1024,
        // A batch's blocks do not fit a 16 KiB log whole (TxTooLarge, by design).
        batches: false,
    };
    assert_clean(&run_w25q(&cfg, &w), 1000);
}

#[test]
fn flash_power_cut_objects() {
    let cfg = config(512 * 1024);
    let w = Objects {
        seed: 0x0B1EC7,
        // 45 operations made 2,000 flash operations until the transaction buffer kept
        // committed block images (fewer log reads); 72 made about as many again until deletes
        // stopped rewriting shared blocks (dead slots, in-place home writes); 100 do now.
        operations: 100,
        min_len: 16,
        max_len: 10 * 1024,
        max_live_bytes: 96 * 1024,
        batches: true,
    };
    assert_clean(&run_w25q(&cfg, &w), 2000);
}

#[test]
fn flash_power_cut_named_objects() {
    let mut cfg = config(512 * 1024);
    cfg.format.modules = vde_nostd::ModuleSet::OBJECTS | vde_nostd::ModuleSet::NAMES;
    let w = harness::Names {
        seed: 0x4A3E,
        operations: 60,
        keys: 30,
        max_len: 9000,
    };
    // ~1,100 with the block cache.
    assert_clean(&run_w25q(&cfg, &w), 900);
}

/// Whether the flash holds a valid superblock at `b` (the NOR adapter stores bytes inverted).
fn sb_valid(img: &[u8], b: vde_nostd::BlockNo) -> bool {
    let at = b.0 as usize * BS;
    let block: Vec<u8> = img[at..at + BS].iter().map(|x| !x).collect();
    Superblock::decode(&block).is_ok()
}

/// A focused case of what the second-cut sweeps look for: an addition is cut while it rewrites
/// the superblock mirror (the primary already holds the new copy, the mirror is torn), then the
/// recovery that replays it is cut at each of its operations in turn. Whatever the second cut
/// hits, the next mount must succeed: one valid superblock copy must survive every point.
#[test]
fn flash_power_cut_torn_mirror_then_cut_during_recovery() {
    let mut img = vec![0xFFu8; 512 * 1024];
    let mut wear = vec![0u32; img.len() / BS];
    let mut mem = Mem::new(BS, 16, 128);
    {
        let f = W25q16jv::new(&mut img, &mut wear, SimConfig::new(7)).unwrap();
        let dev = NorFlashDevice::new(f, BS, 0, None).unwrap();
        let v = Volume::<_, 16>::format(dev, &FormatOptions::default(), mem.bufs()).unwrap();
        v.unmount().unwrap();
    }
    let base = img.clone();
    let xattr = modules::by_name("xattr").unwrap();
    // Find the cut points of the addition that leave the primary valid and the mirror torn.
    let mut torn_mirror = Vec::new();
    for k in 0.. {
        img.copy_from_slice(&base);
        let mut f = W25q16jv::new(&mut img, &mut wear, SimConfig::new(k)).unwrap();
        let mut v = Volume::<_, 16>::mount(
            NorFlashDevice::new(&mut f, BS, 0, None).unwrap(),
            mem.bufs(),
        )
        .unwrap();
        v.device().flash_mut().arm_power_cut(k);
        // The addition logs the superblocks; the checkpoint writes them home, mirror last.
        let r = v.add_module_regions(xattr, 5).and_then(|_| v.checkpoint());
        drop(v);
        if r.is_ok() {
            break;
        }
        if sb_valid(f.bytes(), SB_PRIMARY) && !sb_valid(f.bytes(), SB_MIRROR) {
            torn_mirror.push((k, f.bytes().to_vec()));
        }
    }
    assert!(!torn_mirror.is_empty(), "no cut tore the mirror");
    let mut failures = Vec::new();
    for (k, crash) in &torn_mirror {
        // Operations of the recovering mount.
        img.copy_from_slice(crash);
        let mut f = W25q16jv::new(&mut img, &mut wear, SimConfig::new(1)).unwrap();
        let start = f.op_count();
        let v = Volume::<_, 16>::mount(
            NorFlashDevice::new(&mut f, BS, 0, None).unwrap(),
            mem.bufs(),
        )
        .unwrap_or_else(|e| panic!("cut {k}: mount: {e:?}"));
        assert!(v.recovery_report().replayed > 0);
        drop(v);
        let m = f.op_count() - start;
        for j in 0..m {
            f.reboot();
            f.bytes_mut().copy_from_slice(crash);
            f.arm_power_cut(j);
            let first = Volume::<_, 16>::mount(
                NorFlashDevice::new(&mut f, BS, 0, None).unwrap(),
                mem.bufs(),
            )
            .map(drop);
            assert!(first.is_err() && f.power_lost());
            let kind = f.cut_kind();
            f.reboot();
            let mut dev = NorFlashDevice::new(&mut f, BS, 0, None).unwrap();
            let mut p = vec![0u8; BS];
            let mut q = vec![0u8; BS];
            use vde_nostd::BlockDevice;
            dev.read_block(SB_PRIMARY, &mut p).unwrap();
            dev.read_block(SB_MIRROR, &mut q).unwrap();
            match Volume::<_, 16>::mount(dev, mem.bufs()) {
                Ok(mut v) => {
                    if !v.modules().contains(xattr.flag()) {
                        failures.push(format!("cut {k} then {j}: committed module lost"));
                    }
                    if let Err(e) = v.verify() {
                        failures.push(format!("cut {k} then {j}: verify {e:?}"));
                    }
                }
                Err(e) => failures.push(format!(
                    "addition cut at op {k} (mirror torn), recovery cut at op {j} ({kind:?}): \
                     mount {e:?}; primary valid: {}, mirror valid: {}",
                    Superblock::decode(&p).is_ok(),
                    Superblock::decode(&q).is_ok()
                )),
            }
        }
    }
    println!(
        "torn mirror then cut during recovery: {} first cuts x recovery ops, failures: {}",
        torn_mirror.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Weak bits: every byte a cut program leaves partly programmed reads differently on every read
/// until its sector is erased (a marginal NOR cell). Recovery must decide from one reading and
/// never append next to such bytes: the same checks as everywhere, with the flash lying.
#[test]
fn flash_power_cut_objects_with_weak_bits() {
    let mut cfg = config(512 * 1024);
    cfg.weak_bits = true;
    cfg.seed = 0x3EA4;
    // Weak bits read differently on every read: no cached copy in between.
    cfg.cache_blocks = 0;
    let w = Objects {
        seed: 0x57EA4,
        operations: 30,
        min_len: 16,
        max_len: 6 * 1024,
        max_live_bytes: 64 * 1024,
        batches: true,
    };
    let r = run_w25q(&cfg, &w);
    assert!(r.weak_reads > 0, "no read saw a weak bit: {r}");
    assert_clean(&r, 600);
}

/// The memory of a small firmware: one block of scratch and a 128-byte log read buffer (the NOR
/// adapter reads part of a block), so every log read during commits, checkpoints and recovery
/// is a window of a log block, and each such read is a cut point too.
#[test]
fn flash_power_cut_objects_in_the_smallest_memory() {
    let mut cfg = config(512 * 1024);
    cfg.small_log_page = true;
    cfg.seed = 0x5A11;
    let w = Objects {
        seed: 0x5A11_0B1E,
        operations: 9,
        min_len: 16,
        max_len: 6 * 1024,
        max_live_bytes: 64 * 1024,
        batches: true,
    };
    assert_clean(&run_w25q(&cfg, &w), 600);
}
