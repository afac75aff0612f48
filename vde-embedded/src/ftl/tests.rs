//! Unit tests of the translation layer on small simulated parts: a model check of random writes
//! with remounts, every power cut of a short run, timebombs, factory bad blocks, setup checks.

use super::*;
use crate::nand::{NandPart, SimNand, SimNandBlock, SimNandConfig, Timebomb};
use crate::sim::{TearMode, XorShift64};
use std::collections::BTreeMap;
use std::vec;
use std::vec::Vec;

const PART: NandPart = NandPart::custom(512, 32, 8, 16);

fn cfg(bs: usize, reserve: u32) -> FtlConfig {
    FtlConfig {
        block_size: bs,
        reserve_blocks: reserve,
        wear_spread: 2,
    }
}

fn content(lba: u64, version: u32, bs: usize) -> Vec<u8> {
    let mut v = vec![0u8; bs];
    XorShift64::new(lba.wrapping_mul(0x9E37) ^ u64::from(version) << 20).fill_bytes(&mut v);
    v[..8].copy_from_slice(&lba.to_le_bytes());
    v[8..12].copy_from_slice(&version.to_le_bytes());
    v
}

fn version_of(buf: &[u8], lba: u64) -> Option<u32> {
    let v = u32::from_le_bytes(buf[8..12].try_into().ok()?);
    (buf == content(lba, v, buf.len()).as_slice()).then_some(v)
}

#[test]
fn setup_checks() {
    let g = PART.geometry(16);
    assert!(matches!(
        FtlLayout::compute(&g, &cfg(768, 4)),
        Err(FtlSetupError::BadBlockSize { .. })
    ));
    assert!(matches!(
        FtlLayout::compute(&g, &cfg(512, 3)),
        Err(FtlSetupError::BadReserve { .. })
    ));
    assert!(matches!(
        FtlLayout::compute(&g, &cfg(8192, 4)),
        Err(FtlSetupError::BadBlockSize { .. })
    ));
    let small = NandPart::custom(512, 20, 8, 16).geometry(16);
    assert!(matches!(
        FtlLayout::compute(&small, &cfg(512, 4)),
        Err(FtlSetupError::SpareTooSmall { .. })
    ));
    let l = FtlLayout::compute(&g, &cfg(1024, 4)).unwrap();
    assert_eq!(
        (l.pages_per_slot, l.slots_per_block, l.logical_blocks),
        (2, 4, 48)
    );
    assert_eq!(l.ram_bytes(), 48 * 4 + 16 * 16 + 512 + 1024);
    let mut mem = vec![0xFFu8; PART.raw_bytes(16)];
    let mut st = vec![SimNandBlock::NEW; 16];
    let nand = SimNand::new(&mut mem, &mut st, &PART, SimNandConfig::new(1)).unwrap();
    let mut ram = OwnedFtlMemory::new(&l);
    ram.map.pop();
    assert!(matches!(
        Ftl::mount(nand, ram.mem(), &cfg(1024, 4)),
        Err(FtlError::Setup(FtlSetupError::MemoryTooSmall {
            what: "map",
            ..
        }))
    ));
}

/// Random writes against a model, with remounts; 2-page logical blocks.
#[test]
fn random_writes_match_model_across_remounts() {
    let c = cfg(1024, 4);
    let mut mem = vec![0xFFu8; PART.raw_bytes(16)];
    let mut st = vec![SimNandBlock::NEW; 16];
    let mut nand = SimNand::new(&mut mem, &mut st, &PART, SimNandConfig::new(1)).unwrap();
    let l = FtlLayout::compute(&nand.geometry(), &c).unwrap();
    let mut ram = OwnedFtlMemory::new(&l);
    let mut model: BTreeMap<u64, u32> = BTreeMap::new();
    let mut rng = XorShift64::new(7);
    let mut buf = vec![0u8; 1024];
    for round in 0..6u32 {
        let mut ftl = Ftl::mount(&mut nand, ram.mem(), &c).unwrap();
        for (&lba, &v) in &model {
            ftl.read_block(BlockNo(lba), &mut buf).unwrap();
            assert_eq!(version_of(&buf, lba), Some(v), "round {round} lba {lba}");
        }
        for i in 0..300u32 {
            let lba = rng.below(u64::from(l.logical_blocks));
            let v = round * 1000 + i + 1;
            ftl.write_block(BlockNo(lba), &content(lba, v, 1024))
                .unwrap();
            model.insert(lba, v);
        }
        ftl.read_block(BlockNo(0), &mut buf).unwrap();
        assert!(ftl.stats().gc_victims > 0);
        let info = ftl.info();
        assert!(info.max_erases - info.min_erases <= 3, "{info:?}");
    }
    // Never-written blocks read as erased.
    let mut ftl = Ftl::mount(&mut nand, ram.mem(), &c).unwrap();
    for lba in 0..u64::from(l.logical_blocks) {
        ftl.read_block(BlockNo(lba), &mut buf).unwrap();
        match model.get(&lba) {
            Some(&v) => assert_eq!(version_of(&buf, lba), Some(v)),
            None => assert!(buf.iter().all(|&b| b == 0xFF)),
        }
    }
    assert_eq!(
        ftl.read_block(BlockNo(u64::from(l.logical_blocks)), &mut buf),
        Err(FtlError::OutOfRange)
    );
    assert_eq!(
        ftl.write_block(BlockNo(0), &buf[..512]),
        Err(FtlError::BadLength)
    );
}

/// A cut at every operation of a run that garbage-collects: every acknowledged write survives,
/// the one in flight is old or new, never torn; and the medium stays usable.
#[test]
fn every_power_cut_keeps_acknowledged_writes() {
    cut_sweep(&[], 4);
}

/// The same with blocks going bad during the run: one while it is the head (a failed program:
/// its versions are relocated and it is retired), two while free (a failed erase). Every cut,
/// before, during or after a retirement, keeps every acknowledged write.
#[test]
fn every_power_cut_with_blocks_going_bad() {
    // Find a (block, operation) where the bomb hits a program: the block is the head then.
    let mut bombs = vec![
        Timebomb {
            block: 9,
            at_op: 150,
        },
        Timebomb {
            block: 13,
            at_op: 150,
        },
    ];
    let hit = (0..16u32)
        .flat_map(|b| {
            [120u64, 160, 200].map(|at| Timebomb {
                block: b,
                at_op: at,
            })
        })
        .find(|&t| {
            let mut all = bombs.clone();
            all.push(t);
            reference_stats(&all, 7).program_failures > 0
        })
        .expect("some bomb hits a program");
    bombs.push(hit);
    cut_sweep(&bombs, 7);
}

/// Pre-fills a 16-block part (1 KiB versions, two pages each) so that the script garbage-
/// collects; returns the base image and the script.
fn prefilled(
    c: &FtlConfig,
    st: &mut [SimNandBlock],
    ram: &mut OwnedFtlMemory,
) -> (Vec<u8>, Vec<(u64, u32)>) {
    let mut base = vec![0xFFu8; PART.raw_bytes(16)];
    let l = FtlLayout::compute(&PART.geometry(16), c).unwrap();
    {
        let mut nand = SimNand::new(&mut base, st, &PART, SimNandConfig::new(1)).unwrap();
        let mut ftl = Ftl::format(&mut nand, ram.mem(), c).unwrap();
        for lba in 0..u64::from(l.logical_blocks) {
            ftl.write_block(BlockNo(lba), &content(lba, 1, 1024))
                .unwrap();
        }
    }
    let mut rng = XorShift64::new(99);
    let script = (0..60)
        .map(|i| (rng.below(u64::from(l.logical_blocks)), i + 2))
        .collect();
    (base, script)
}

fn reference_stats(bombs: &[Timebomb], reserve: u32) -> FtlStats {
    let c = cfg(1024, reserve);
    let l = FtlLayout::compute(&PART.geometry(16), &c).unwrap();
    let mut ram = OwnedFtlMemory::new(&l);
    let mut st = vec![SimNandBlock::NEW; 16];
    let (mut img, script) = prefilled(&c, &mut st, &mut ram);
    let mut conf = SimNandConfig::new(2);
    for &b in bombs {
        conf.add_timebomb(b);
    }
    let mut nand = SimNand::new(&mut img, &mut st, &PART, conf).unwrap();
    let mut ftl = Ftl::mount(&mut nand, ram.mem(), &c).unwrap();
    for &(lba, v) in &script {
        if ftl
            .write_block(BlockNo(lba), &content(lba, v, 1024))
            .is_err()
        {
            break;
        }
    }
    ftl.stats()
}

fn cut_sweep(bombs: &[Timebomb], reserve: u32) {
    let c = cfg(1024, reserve);
    let conf_of = |seed: u64| {
        let mut conf = SimNandConfig::new(seed);
        for &b in bombs {
            conf.add_timebomb(b);
        }
        conf
    };
    let l = FtlLayout::compute(&PART.geometry(16), &c).unwrap();
    let mut ram = OwnedFtlMemory::new(&l);
    let mut st = vec![SimNandBlock::NEW; 16];
    let (base, script) = prefilled(&c, &mut st, &mut ram);
    let mut img = base.clone();
    let ops = {
        let mut nand = SimNand::new(&mut img, &mut st, &PART, conf_of(2)).unwrap();
        let mut ftl = Ftl::mount(&mut nand, ram.mem(), &c).unwrap();
        let start = ftl.nand().op_count();
        for &(lba, v) in &script {
            ftl.write_block(BlockNo(lba), &content(lba, v, 1024))
                .unwrap();
        }
        let s = ftl.stats();
        assert!(s.gc_victims > 0);
        if !bombs.is_empty() {
            assert!(s.program_failures + s.erase_failures > 0, "{s:?}");
            assert!(s.bad_copies > 0, "{s:?}");
        }
        ftl.nand().op_count() - start
    };
    let mut buf = vec![0u8; 1024];
    let mut tears = [0u32; 3];
    for k in 0..ops {
        img.copy_from_slice(&base);
        let mut conf = conf_of(k);
        conf.tear = if k % 2 == 0 {
            TearMode::Prefix
        } else {
            TearMode::Scattered
        };
        let mut nand = SimNand::new(&mut img, &mut st, &PART, conf).unwrap();
        let mut acked: BTreeMap<u64, u32> =
            (0..u64::from(l.logical_blocks)).map(|b| (b, 1)).collect();
        let mut inflight = None;
        {
            let mut ftl = Ftl::mount(&mut nand, ram.mem(), &c).unwrap();
            ftl.nand_mut().arm_power_cut(k);
            for &(lba, v) in &script {
                inflight = Some((lba, v));
                if ftl
                    .write_block(BlockNo(lba), &content(lba, v, 1024))
                    .is_err()
                {
                    break;
                }
                acked.insert(lba, v);
                inflight = None;
            }
            assert!(ftl.nand().power_lost(), "cut {k} not reached");
        }
        match nand.cut_kind() {
            Some(crate::sim::OpKind::Read) => tears[0] += 1,
            Some(crate::sim::OpKind::Program) => tears[1] += 1,
            _ => tears[2] += 1,
        }
        nand.reboot();
        let mut ftl = Ftl::mount(&mut nand, ram.mem(), &c).unwrap();
        for (&lba, &v) in &acked {
            ftl.read_block(BlockNo(lba), &mut buf).unwrap();
            let got = version_of(&buf, lba);
            let ok = got == Some(v) || inflight.is_some_and(|(l, n)| l == lba && got == Some(n));
            assert!(
                ok,
                "cut {k}: lba {lba} reads {got:?}, acked {v}, in flight {inflight:?}"
            );
        }
        // Still usable: write everything once more and read it back.
        for lba in 0..u64::from(l.logical_blocks) {
            if let Err(e) = ftl.write_block(BlockNo(lba), &content(lba, 500, 1024)) {
                let blocks: Vec<_> = (0..16).map(|b| ftl.block_info(b).unwrap()).collect();
                panic!(
                    "cut {k}: rewrite {lba}: {e:?}\n{:?}\n{:?}\n{blocks:#?}",
                    ftl,
                    ftl.info()
                );
            }
        }
        for lba in 0..u64::from(l.logical_blocks) {
            ftl.read_block(BlockNo(lba), &mut buf).unwrap();
            assert_eq!(version_of(&buf, lba), Some(500), "cut {k}");
        }
    }
    assert!(tears.iter().all(|&t| t > 0), "{tears:?}");
}

/// Blocks going bad mid-run and factory bad blocks lose nothing acknowledged.
#[test]
fn timebombs_and_factory_bad_blocks() {
    let c = cfg(512, 8);
    let mut mem = vec![0u8; PART.raw_bytes(16)];
    let bad = SimNand::factory_init(&mut mem, &PART, 1, 3);
    assert_eq!(bad, 1);
    let mut st = vec![SimNandBlock::NEW; 16];
    let mut conf = SimNandConfig::new(5);
    for (i, b) in [3u32, 7, 11].iter().enumerate() {
        conf.add_timebomb(Timebomb {
            block: *b,
            at_op: 300 + 500 * i as u64,
        });
    }
    let mut nand = SimNand::new(&mut mem, &mut st, &PART, conf).unwrap();
    let l = FtlLayout::compute(&nand.geometry(), &c).unwrap();
    let mut ram = OwnedFtlMemory::new(&l);
    let mut model = BTreeMap::new();
    let mut rng = XorShift64::new(11);
    let mut buf = vec![0u8; 512];
    {
        let mut ftl = Ftl::format(&mut nand, ram.mem(), &c).unwrap();
        assert_eq!(ftl.info().bad_at_mount, 1);
        for i in 0..2000u32 {
            let lba = rng.below(u64::from(l.logical_blocks));
            ftl.write_block(BlockNo(lba), &content(lba, i + 1, 512))
                .unwrap();
            model.insert(lba, i + 1);
        }
        let s = ftl.stats();
        let info = ftl.info();
        assert!(s.program_failures + s.erase_failures >= 3, "{s:?}");
        assert_eq!(info.grown_bad, 3, "{info:?}");
        for (&lba, &v) in &model {
            ftl.read_block(BlockNo(lba), &mut buf).unwrap();
            assert_eq!(version_of(&buf, lba), Some(v));
        }
    }
    for b in [3u32, 7, 11] {
        assert!(nand.is_marked_bad(b), "block {b}");
    }
    let mut ftl = Ftl::mount(&mut nand, ram.mem(), &c).unwrap();
    assert_eq!(ftl.info().bad_at_mount, 4);
    for (&lba, &v) in &model {
        ftl.read_block(BlockNo(lba), &mut buf).unwrap();
        assert_eq!(version_of(&buf, lba), Some(v));
    }
}

#[test]
fn mount_rejects_another_layout() {
    let mut mem = vec![0xFFu8; PART.raw_bytes(16)];
    let mut st = vec![SimNandBlock::NEW; 16];
    let mut nand = SimNand::new(&mut mem, &mut st, &PART, SimNandConfig::new(1)).unwrap();
    let c1 = cfg(1024, 4);
    let l1 = FtlLayout::compute(&nand.geometry(), &c1).unwrap();
    let mut ram = OwnedFtlMemory::new(&l1);
    {
        let mut ftl = Ftl::format(&mut nand, ram.mem(), &c1).unwrap();
        ftl.write_block(BlockNo(3), &content(3, 1, 1024)).unwrap();
    }
    let c2 = cfg(512, 4);
    let l2 = FtlLayout::compute(&nand.geometry(), &c2).unwrap();
    let mut ram2 = OwnedFtlMemory::new(&l2);
    assert!(matches!(
        Ftl::mount(&mut nand, ram2.mem(), &c2),
        Err(FtlError::Mismatch { .. })
    ));
    let ftl = Ftl::format(&mut nand, ram2.mem(), &c2).unwrap();
    assert_eq!(ftl.info().free_blocks, 16);
}

/// The RAM figures quoted in the module docs.
#[test]
fn ram_of_a_whole_w25n01gv() {
    use crate::nand::W25N01GV;
    let g = W25N01GV.geometry(1024);
    let l2 = FtlLayout::compute(&g, &FtlConfig::new(&g, 2048)).unwrap();
    assert_eq!((l2.reserve_blocks, l2.logical_blocks), (106, 58_752));
    assert_eq!(l2.ram_bytes(), 255_488);
    let l4 = FtlLayout::compute(&g, &FtlConfig::new(&g, 4096)).unwrap();
    assert_eq!(l4.ram_bytes(), 140_032);
    assert_eq!(core::mem::size_of::<BlockInfo>(), 16);
}

/// A hot/cold workload: after every block is written once, only four logical blocks are
/// rewritten. Without static wear leveling the blocks holding cold data would never be erased
/// again; with it the spread stays within 2, and cuts during the moves lose nothing.
#[test]
fn static_wear_leveling_moves_cold_data() {
    let c = cfg(512, 4);
    let mut mem = vec![0xFFu8; PART.raw_bytes(16)];
    let mut st = vec![SimNandBlock::NEW; 16];
    let mut nand = SimNand::new(&mut mem, &mut st, &PART, SimNandConfig::new(1)).unwrap();
    let l = FtlLayout::compute(&nand.geometry(), &c).unwrap();
    let mut ram = OwnedFtlMemory::new(&l);
    let mut model = BTreeMap::new();
    let mut buf = vec![0u8; 512];
    {
        let mut ftl = Ftl::format(&mut nand, ram.mem(), &c).unwrap();
        for lba in 0..u64::from(l.logical_blocks) {
            ftl.write_block(BlockNo(lba), &content(lba, 1, 512))
                .unwrap();
            model.insert(lba, 1);
        }
        for i in 0..6000u32 {
            let lba = u64::from(i % 4);
            ftl.write_block(BlockNo(lba), &content(lba, i + 2, 512))
                .unwrap();
            model.insert(lba, i + 2);
        }
        let s = ftl.stats();
        assert!(s.wl_victims > 10, "{s:?}");
        let info = ftl.info();
        assert!(info.max_erases - info.min_erases <= 2, "{info:?}");
    }
    let w = nand.wear_summary_good();
    assert!(w.max - w.min <= 2, "{w:?}");
    // Cuts at every operation of 150 more hot writes (static moves included).
    let base = nand.bytes().to_vec();
    let mut ops = 0;
    let mut moves = 0;
    for k in 0.. {
        mem.copy_from_slice(&base);
        let mut nand = SimNand::new(&mut mem, &mut st, &PART, SimNandConfig::new(k)).unwrap();
        let mut acked = model.clone();
        let mut inflight = None;
        {
            let mut ftl = Ftl::mount(&mut nand, ram.mem(), &c).unwrap();
            ftl.nand_mut().arm_power_cut(k);
            for i in 0..150u32 {
                let lba = u64::from(i % 4);
                inflight = Some((lba, 10_000 + i));
                if ftl
                    .write_block(BlockNo(lba), &content(lba, 10_000 + i, 512))
                    .is_err()
                {
                    break;
                }
                acked.insert(lba, 10_000 + i);
                inflight = None;
            }
            moves = moves.max(ftl.stats().wl_victims);
            if !ftl.nand().power_lost() {
                break;
            }
        }
        ops += 1;
        nand.reboot();
        let mut ftl = Ftl::mount(&mut nand, ram.mem(), &c).unwrap();
        for (&lba, &v) in &acked {
            ftl.read_block(BlockNo(lba), &mut buf).unwrap();
            let got = version_of(&buf, lba);
            let ok = got == Some(v) || inflight.is_some_and(|(l, n)| l == lba && got == Some(n));
            assert!(ok, "cut {k}: lba {lba} reads {got:?}, acked {v}");
        }
    }
    assert!(ops > 100 && moves > 0, "{ops} cuts, {moves} moves");
}

/// The log's appends on a part that programs 512-byte sectors (NoP 4, 2 KiB pages, 4 KiB
/// blocks): each flush programs only the new sectors of the open version (one program per page
/// touched, no new version, no erase), the content survives a remount, a cut sector program
/// loses only what it carried, and appends after a remount go into a new version.
#[test]
fn log_appends_program_sectors_in_place() {
    let part = NandPart::custom(2048, 64, 8, 8).with_partial_programs(512, 4);
    let c = cfg(4096, 4);
    let mut mem = vec![0xFFu8; part.raw_bytes(8)];
    let mut st = vec![SimNandBlock::NEW; 8];
    let mut nand = SimNand::new(&mut mem, &mut st, &part, SimNandConfig::new(1)).unwrap();
    let l = FtlLayout::compute(&nand.geometry(), &c).unwrap();
    assert_eq!(l.sector_size, 512);
    let mut ram = OwnedFtlMemory::new(&l);
    let chunk = |i: usize| vec![(i as u8).wrapping_mul(37) | 1; 512];
    let mut buf = vec![0u8; 4096];
    {
        let mut ftl = Ftl::format(&mut nand, ram.mem(), &c).unwrap();
        assert_eq!(ftl.append_unit(), 512);
        for i in 0..5usize {
            let before = ftl.nand().stats();
            ftl.append(BlockNo(3), i * 512, &chunk(i)).unwrap();
            ftl.flush().unwrap();
            let after = ftl.nand().stats();
            assert_eq!(
                after.programs - before.programs,
                1,
                "commit {i}: one sector program"
            );
            if i > 0 {
                assert_eq!(after.erases, before.erases, "commit {i}: no erase");
            }
            assert_eq!(after.reads, before.reads, "commit {i}: no read back");
        }
        // A commit over a page boundary: one program per page.
        let before = ftl.nand().stats().programs;
        let mut two = chunk(5);
        two.extend(chunk(6));
        ftl.append(BlockNo(3), 5 * 512, &two[..]).unwrap();
        ftl.flush().unwrap();
        assert_eq!(ftl.nand().stats().programs - before, 1);
        ftl.read_block(BlockNo(3), &mut buf).unwrap();
        for i in 0..7 {
            assert_eq!(buf[i * 512..(i + 1) * 512], chunk(i)[..], "sector {i}");
        }
        // The last sector, cut while programmed.
        ftl.nand_mut().arm_power_cut(0);
        ftl.append(BlockNo(3), 7 * 512, &chunk(7)).unwrap();
        assert!(ftl.flush().is_err());
        ftl.nand_mut().reboot();
    }
    let mut ftl = Ftl::mount(&mut nand, ram.mem(), &c).unwrap();
    ftl.read_block(BlockNo(3), &mut buf).unwrap();
    for i in 0..7 {
        assert_eq!(
            buf[i * 512..(i + 1) * 512],
            chunk(i)[..],
            "sector {i} after the cut"
        );
    }
    assert!(
        buf[7 * 512..].iter().all(|&b| b == 0xFF),
        "a torn sector reads erased"
    );
    // After the remount the version is not extended in place: a new one holds it all.
    let before = ftl.nand().stats().programs;
    ftl.append(BlockNo(3), 7 * 512, &chunk(8)).unwrap();
    ftl.flush().unwrap();
    assert_eq!(
        ftl.nand().stats().programs - before,
        2,
        "a new two-page version"
    );
    ftl.read_block(BlockNo(3), &mut buf).unwrap();
    assert_eq!(buf[7 * 512..], chunk(8)[..]);
    assert_eq!(buf[..512], chunk(0)[..]);
    // A fresh start (offset 0) is a new version of only what is appended.
    ftl.append(BlockNo(3), 0, &chunk(9)).unwrap();
    ftl.flush().unwrap();
    let _ = ftl;
    let mut ftl = Ftl::mount(&mut nand, ram.mem(), &c).unwrap();
    ftl.read_block(BlockNo(3), &mut buf).unwrap();
    assert_eq!(buf[..512], chunk(9)[..]);
    assert!(buf[512..].iter().all(|&b| b == 0xFF));
}

/// More sectors per page than programs (8 × 512 B in a 4 KiB page, NoP 4): the fifth commit
/// into a page starts a new version instead of passing NoP, and every commit reads back.
#[test]
fn sector_programs_respect_nop() {
    let part = NandPart::custom(4096, 128, 8, 8).with_partial_programs(512, 4);
    let c = cfg(4096, 4);
    let mut mem = vec![0xFFu8; part.raw_bytes(8)];
    let mut st = vec![SimNandBlock::NEW; 8];
    let mut nand = SimNand::new(&mut mem, &mut st, &part, SimNandConfig::new(1)).unwrap();
    let l = FtlLayout::compute(&nand.geometry(), &c).unwrap();
    let mut ram = OwnedFtlMemory::new(&l);
    let mut ftl = Ftl::format(&mut nand, ram.mem(), &c).unwrap();
    let mut buf = vec![0u8; 4096];
    for i in 0..8usize {
        ftl.append(BlockNo(1), i * 512, &[i as u8 + 1; 512])
            .unwrap();
        ftl.flush().unwrap();
        ftl.read_block(BlockNo(1), &mut buf).unwrap();
        for j in 0..=i {
            assert!(buf[j * 512..(j + 1) * 512]
                .iter()
                .all(|&b| b == j as u8 + 1));
        }
    }
    let _ = ftl;
    let mut ftl = Ftl::mount(&mut nand, ram.mem(), &c).unwrap();
    ftl.read_block(BlockNo(1), &mut buf).unwrap();
    for j in 0..8 {
        assert!(buf[j * 512..(j + 1) * 512]
            .iter()
            .all(|&b| b == j as u8 + 1));
    }
}
