//! Unit tests of the harness: the workloads pass their own checks on small runs, and the harness
//! does catch a workload that acknowledges before it commits.

use super::*;
use crate::sim::parts::W25Q16JV;
use std::string::ToString;
use vde_nostd::{BlockNo, ModuleSet};

fn small(capacity: usize) -> Config {
    Config {
        second_cut_every: 1,
        ..Config::new(capacity, 4096)
    }
}

#[test]
fn random_transactions_survive_every_cut() {
    let mut cfg = small(256 * 1024);
    cfg.format.modules = ModuleSet::empty();
    let w = RandomTransactions {
        seed: 3,
        transactions: 3,
        max_alloc: 2,
        max_live: 8,
    };
    let r = run::<1, 1, 4096, _>(&cfg, &w).unwrap();
    assert!(r.points > 50, "{r}");
    assert!(
        r.cut_programs > 0 && r.cut_erases > 0 && r.cut_reads > 0,
        "{r}"
    );
    assert!(r.second_points > 0, "{r}");
    assert_eq!(r.violations, 0, "{r}");
}

#[test]
fn objects_and_modules_survive_sampled_cuts() {
    let mut cfg = small(512 * 1024);
    cfg.stride = 7;
    let w = Objects {
        seed: 1,
        operations: 4,
        min_len: 16,
        max_len: 10 * 1024,
        max_live_bytes: 64 * 1024,
        batches: true,
    };
    let r = run::<1, 1, 4096, _>(&cfg, &w).unwrap();
    assert_eq!(r.violations, 0, "{r}");
    let w = AddModules {
        modules: &["xattr", "replication"],
        now: 9,
    };
    // First cuts only: the double-cut sweeps of module additions are in
    // tests/tests/flash_powercut.rs.
    cfg.second_cut_every = 0;
    let r = run::<1, 1, 4096, _>(&cfg, &w).unwrap();
    assert_eq!(r.violations, 0, "{r}");
    assert!(r.to_string().contains("power-cut points: "));
}

#[test]
fn runs_on_other_geometries() {
    // STM32L4-class: 2 KiB pages, 8-byte programs, a 4 KiB block is two pages.
    let mut cfg = small(256 * 1024);
    cfg.stride = 3;
    cfg.format.modules = ModuleSet::empty();
    let w = RandomTransactions {
        seed: 5,
        transactions: 2,
        max_alloc: 2,
        max_live: 8,
    };
    let r = run::<1, 8, 2048, _>(&cfg, &w).unwrap();
    assert_eq!(r.violations, 0, "{r}");
    assert!(r.points > 10, "{r}");
    // A geometry the adapter refuses is a setup error, not a report.
    let bad = Config::new(W25Q16JV.erase_size * 64, 2048);
    assert!(run::<1, 1, 4096, _>(&bad, &w).is_err());
}

/// Claims each transaction before committing it: the harness must notice.
struct AcksEarly;

impl Workload for AcksEarly {
    type Log = u32;
    fn name(&self) -> String {
        "acks early".to_string()
    }
    fn run<D: BlockDevice, const K: usize>(
        &self,
        vol: &mut Volume<'_, D, K>,
        log: &mut u32,
    ) -> Result<(), Error<D::Error>> {
        let b = BlockNo(vol.layout().data_start);
        let mut buf = vec![0u8; vol.block_size()];
        for stamp in 1..=3u8 {
            buf.fill(stamp);
            *log = u32::from(stamp);
            let mut tx = vol.begin();
            tx.write(b, &buf)?;
            tx.commit()?;
        }
        Ok(())
    }
    fn check<D: BlockDevice, const K: usize>(
        &self,
        vol: &mut Volume<'_, D, K>,
        log: &u32,
        _: &u32,
    ) -> Result<(), String> {
        let b = BlockNo(vol.layout().data_start);
        let mut buf = vec![0u8; vol.block_size()];
        vol.read_block(b, &mut buf).map_err(|e| format!("{e:?}"))?;
        let want = u8::try_from(*log).unwrap_or(0);
        if buf.iter().all(|&x| x == want) {
            Ok(())
        } else {
            Err(format!("want stamp {want}"))
        }
    }
}

#[test]
fn catches_a_workload_that_acknowledges_too_early() {
    let mut cfg = small(256 * 1024);
    cfg.second_cut_every = 0;
    cfg.format.modules = ModuleSet::empty();
    let r = run::<1, 1, 4096, _>(&cfg, &AcksEarly).unwrap();
    assert!(r.violations > 0, "{r}");
    assert!(!r.details.is_empty());
}
