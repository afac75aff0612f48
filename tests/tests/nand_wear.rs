//! Wear leveling and write amplification of the translation layer.
//!
//! 1. 50× the logical capacity in uniformly random logical-block writes, straight through the
//!    `BlockDevice`, on small simulated parts (the W25N01GV and MT29F4G01ABAFD geometries with a
//!    few dozen blocks, 1- and 2-page logical blocks, and wear-leveled NOR: a W25Q16JV seen as
//!    NAND with 64 KiB emulated erase blocks). Prints the erase-count spread (max − min over
//!    good blocks, from the simulator's own counters), the write amplification (pages programmed
//!    per logical block written) and the RAM used; asserts the spread is at most 2 and every
//!    block reads back.
//! 2. The same vde workload — small object puts — on the direct NOR adapter
//!    (`NorFlashDevice<SimFlash>`), on wear-leveled NOR (`Ftl<NorNand<SimFlash>>`, same flash
//!    size) and on NAND (`Ftl<SimNand>`): erases per put and the per-sector / per-block erase
//!    spread, side by side.

use std::time::Instant;

use vde_embedded::ftl::{Ftl, FtlConfig, FtlLayout, FtlStats, OwnedFtlMemory};
use vde_embedded::nand::nor::NorNandLayout;
use vde_embedded::nand::{
    NandFlash, NandPart, NorNand, SimNand, SimNandBlock, SimNandConfig, MT29F4G01ABAFD, W25N01GV,
};
use vde_embedded::sim::parts::{W25q16jv, W25Q16JV};
use vde_embedded::sim::XorShift64;
use vde_embedded::NorFlashDevice;
use vde_nostd::{BlockDevice, BlockNo, FormatOptions, ModuleSet, Volume};
use vde_tests::Mem;

/// Owned RAM for a translation layer over `nand` with `c`, and its layout.
fn ftl_ram<N: NandFlash>(nand: &N, c: &FtlConfig) -> (OwnedFtlMemory, FtlLayout) {
    let l = FtlLayout::compute(&nand.geometry(), c).unwrap();
    (OwnedFtlMemory::new(&l), l)
}

fn stamp(lba: u64, v: u32, buf: &mut [u8]) {
    buf.fill((v as u8) ^ (lba as u8));
    buf[..8].copy_from_slice(&lba.to_le_bytes());
    buf[8..12].copy_from_slice(&v.to_le_bytes());
}

/// Writes `times` × capacity random blocks, checks every block, returns the FTL's counters.
fn random_writes<N: NandFlash>(ftl: &mut Ftl<'_, N>, times: u64, seed: u64) -> FtlStats
where
    N::Error: std::fmt::Debug,
{
    let n = ftl.block_count();
    let bs = ftl.block_size();
    let mut last = vec![0u32; n as usize];
    let mut buf = vec![0u8; bs];
    // Fill once, so every block holds data (the worst case for garbage collection).
    for lba in 0..n {
        stamp(lba, 1, &mut buf);
        ftl.write_block(BlockNo(lba), &buf).unwrap();
        last[lba as usize] = 1;
    }
    let mut rng = XorShift64::new(seed);
    for i in 0..times * n {
        let lba = rng.below(n);
        let v = i as u32 + 2;
        stamp(lba, v, &mut buf);
        ftl.write_block(BlockNo(lba), &buf).unwrap();
        last[lba as usize] = v;
    }
    let mut want = vec![0u8; bs];
    for lba in 0..n {
        ftl.read_block(BlockNo(lba), &mut buf).unwrap();
        stamp(lba, last[lba as usize], &mut want);
        assert_eq!(buf, want, "block {lba}");
    }
    ftl.stats()
}

struct Figures {
    spread: u32,
    min: u32,
    max: u32,
}

fn print_ftl(what: &str, l: &FtlLayout, ram: usize, s: &FtlStats, w: &Figures, secs: f64) {
    println!(
        "{what}: {} logical blocks of {} B ({} page(s) each) in {} erase blocks ({} reserve)",
        l.logical_blocks, l.block_size, l.pages_per_slot, l.erase_blocks, l.reserve_blocks
    );
    println!(
        "  50x capacity in random writes: {} host writes, {} pages programmed → write amplification {:.2} pages per logical block ({:.2} per page of data)",
        s.host_writes,
        s.pages_programmed,
        s.pages_programmed as f64 / s.host_writes as f64,
        s.pages_programmed as f64 / (s.host_writes * u64::from(l.pages_per_slot)) as f64
    );
    println!(
        "  erases: {} (GC victims {}, static wear-leveling moves {} blocks / {} versions); erase count per block over good blocks: min {}, max {}, spread {}",
        s.erases, s.gc_victims, s.wl_victims, s.wl_copies, w.min, w.max, w.spread
    );
    println!("  RAM: {ram} bytes; {secs:.1} s");
}

fn nand_run(part: &NandPart, blocks: u32, bs: usize, reserve: Option<u32>, times: u64, seed: u64) {
    let t = Instant::now();
    let mut mem = vec![0u8; part.raw_bytes(blocks)];
    SimNand::factory_init(&mut mem, part, 1, seed);
    let mut st = vec![SimNandBlock::NEW; blocks as usize];
    let mut sim = SimNand::new(&mut mem, &mut st, part, SimNandConfig::new(seed)).unwrap();
    let mut c = FtlConfig::new(&sim.geometry(), bs);
    if let Some(r) = reserve {
        c.reserve_blocks = r;
    }
    let (mut ram, l) = ftl_ram(&sim, &c);
    let s = {
        let mut ftl = Ftl::format(&mut sim, ram.mem(), &c).unwrap();
        ftl.nand_mut().reset_wear();
        random_writes(&mut ftl, times, seed)
    };
    let w = sim.wear_summary_good();
    let fig = Figures {
        spread: w.max - w.min,
        min: w.min,
        max: w.max,
    };
    let name = format!("{} ({blocks} blocks, 1 factory bad)", part.name);
    if times == 50 {
        print_ftl(
            &name,
            &l,
            l.ram_bytes(),
            &s,
            &fig,
            t.elapsed().as_secs_f64(),
        );
        assert!(fig.spread <= 2, "{name}: erase spread {}", fig.spread);
    } else {
        let good_slots = u64::from(w.sectors as u32) * u64::from(l.slots_per_block);
        println!(
            "  reserve {:>2} of {} blocks (logical = {:.0} % of the good blocks' slots): write amplification {:.2}, erase spread {} ({times}x capacity)",
            l.reserve_blocks,
            l.erase_blocks,
            100.0 * f64::from(l.logical_blocks) / good_slots as f64,
            s.pages_programmed as f64 / s.host_writes as f64,
            fig.spread
        );
    }
}

fn nand_50x(part: &NandPart, blocks: u32, bs: usize, seed: u64) {
    nand_run(part, blocks, bs, None, 50, seed);
}

#[test]
fn nand_wear_50x_w25n01gv_2k_blocks() {
    nand_50x(&W25N01GV, 32, 2048, 1);
}

#[test]
fn nand_wear_50x_w25n01gv_4k_blocks() {
    nand_50x(&W25N01GV, 32, 4096, 2);
}

#[test]
fn nand_wear_50x_mt29f4g01abafd() {
    nand_50x(&MT29F4G01ABAFD, 24, 4096, 3);
}

/// Write amplification against the reserve (uniformly random writes are the worst case: real
/// workloads have cold data and amplify less).
#[test]
fn nand_write_amplification_against_reserve() {
    println!("W25N01GV geometry, 32 blocks, 2 KiB logical blocks, random writes:");
    for r in [5, 7, 9, 13] {
        nand_run(&W25N01GV, 32, 2048, Some(r), 10, 7);
    }
}

/// 64 KiB emulated erase blocks (the W25Q's block erase: 16 sectors), 4 KiB + 32 B pages.
const NOR_LAYOUT: NorNandLayout = NorNandLayout {
    base_offset: 0,
    sectors_per_block: 16,
    page_size: 4096,
    spare_size: 32,
    block_count: None,
};

#[test]
fn nor_ftl_wear_50x() {
    let t = Instant::now();
    let mut img = vec![0xFFu8; 2 * 1024 * 1024];
    let mut wear = vec![0u32; img.len() / 4096];
    let mut f = W25q16jv::from_part(&mut img, &mut wear, &W25Q16JV, 1).unwrap();
    let mut nand = NorNand::new(&mut f, NOR_LAYOUT).unwrap();
    let c = FtlConfig::new(&nand.geometry(), 4096);
    let (mut ram, l) = ftl_ram(&nand, &c);
    let s = {
        let mut ftl = Ftl::format(&mut nand, ram.mem(), &c).unwrap();
        ftl.nand_mut().flash_mut().reset_wear();
        random_writes(&mut ftl, 50, 4)
    };
    let w = f.wear_summary();
    let fig = Figures {
        spread: w.max - w.min,
        min: w.min,
        max: w.max,
    };
    print_ftl(
        "wear-leveled NOR: W25Q16JV as NAND (64 KiB blocks, erase counts per 4 KiB sector)",
        &l,
        l.ram_bytes(),
        &s,
        &fig,
        t.elapsed().as_secs_f64(),
    );
    assert!(fig.spread <= 2, "erase spread {}", fig.spread);
}

// ---------------------------------------------------------------------------------------------
// the same vde workload on direct NOR, wear-leveled NOR and NAND

const PUTS: usize = 4000;

fn puts<D: BlockDevice>(dev: D) -> (D, u64)
where
    D::Error: std::fmt::Debug,
{
    let mut mem = Mem::new(4096, 16, 512);
    let opts = FormatOptions {
        volume_id: [0x77; 16],
        now: 1,
        modules: ModuleSet::OBJECTS,
        wal_blocks: Some(32),
    };
    let mut vol = Volume::<_, 16>::format(dev, &opts, mem.bufs()).unwrap();
    let mut rng = XorShift64::new(9);
    let mut stored = Vec::new();
    for i in 0..PUTS {
        let len = 64 + rng.below(137) as usize;
        let mut d = vec![(i as u8).wrapping_mul(7); len];
        d[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let h = vol.put(&d).unwrap();
        stored.push((h, d));
        // Keep the volume from filling: delete an old object now and then.
        if i % 3 == 2 {
            let (h, _) = stored.swap_remove(rng.below(stored.len() as u64) as usize);
            vol.delete(h).unwrap();
        }
    }
    let mut buf = vec![0u8; 512];
    for (h, d) in &stored {
        let n = vol.get(*h, &mut buf).unwrap();
        assert_eq!(&buf[..n], &d[..]);
    }
    vol.verify().unwrap();
    let commits = vol.wal_stats().commits;
    (vol.unmount().unwrap(), commits)
}

#[test]
fn wear_same_workload_direct_nor_vs_wear_leveled_nor_vs_nand() {
    let t = Instant::now();
    const FLASH: usize = 2 * 1024 * 1024;
    println!(
        "{PUTS} puts of 64..=200 B (a third of them deleted again), 4 KiB vde blocks, 32-block WAL:"
    );
    // Direct NOR: one vde block = one 4 KiB sector, every block write erases it.
    let direct = {
        let mut img = vec![0xFFu8; FLASH];
        let mut wear = vec![0u32; FLASH / 4096];
        let mut f = W25q16jv::from_part(&mut img, &mut wear, &W25Q16JV, 1).unwrap();
        let dev = NorFlashDevice::new(&mut f, 4096, 0, None).unwrap();
        let (_, commits) = puts(dev);
        let w = f.wear_summary();
        let erased = f.wear().iter().filter(|&&c| c > 0).count();
        println!(
            "  direct NOR (NorFlashDevice, W25Q16JV 2 MiB): {} sector erases ({:.2} per put, {commits} commits); per sector: max {}, min {}, spread {}; {} of {} sectors ever erased",
            w.total,
            w.total as f64 / PUTS as f64,
            w.max,
            w.min,
            w.max - w.min,
            erased,
            w.sectors
        );
        w
    };
    // Wear-leveled NOR: the translation layer over the same flash seen as NAND.
    let leveled = {
        let mut img = vec![0xFFu8; FLASH];
        let mut wear = vec![0u32; FLASH / 4096];
        let mut f = W25q16jv::from_part(&mut img, &mut wear, &W25Q16JV, 1).unwrap();
        let mut nand = NorNand::new(&mut f, NOR_LAYOUT).unwrap();
        let c = FtlConfig::new(&nand.geometry(), 4096);
        let (mut ram, l) = ftl_ram(&nand, &c);
        let s = {
            let ftl = Ftl::format(&mut nand, ram.mem(), &c).unwrap();
            let (ftl, _) = puts(ftl);
            ftl.stats()
        };
        let w = f.wear_summary();
        println!(
            "  wear-leveled NOR (Ftl<NorNand>, same flash, {} logical blocks): {} sector erases ({:.2} per put), write amplification {:.2}; per sector: max {}, min {}, spread {}",
            l.logical_blocks,
            w.total,
            w.total as f64 / PUTS as f64,
            s.write_amplification_milli() as f64 / 1000.0,
            w.max,
            w.min,
            w.max - w.min
        );
        w
    };
    // NAND: W25N01GV geometry, 32 blocks (4 MiB raw: about the same logical capacity).
    {
        let mut mem = vec![0xFFu8; W25N01GV.raw_bytes(32)];
        let mut st = vec![SimNandBlock::NEW; 32];
        let mut sim = SimNand::new(&mut mem, &mut st, &W25N01GV, SimNandConfig::new(1)).unwrap();
        let c = FtlConfig::new(&sim.geometry(), 4096);
        let (mut ram, l) = ftl_ram(&sim, &c);
        let s = {
            let ftl = Ftl::format(&mut sim, ram.mem(), &c).unwrap();
            let (ftl, _) = puts(ftl);
            ftl.stats()
        };
        let w = sim.wear_summary_good();
        println!(
            "  NAND (Ftl<SimNand>, W25N01GV × 32 blocks, {} logical blocks of 2 pages): {} block erases ({:.3} per put), {} pages programmed, write amplification {:.2} pages per logical block ({:.2} per page of data); per block: max {}, min {}, spread {}; busy {:.1} ms per put",
            l.logical_blocks,
            w.total,
            w.total as f64 / PUTS as f64,
            s.pages_programmed,
            s.write_amplification_milli() as f64 / 1000.0,
            s.write_amplification_milli() as f64 / 2000.0,
            w.max,
            w.min,
            w.max - w.min,
            sim.busy_time_ns() as f64 / PUTS as f64 / 1e6
        );
    }
    println!("  ({:.1} s)", t.elapsed().as_secs_f64());
    assert!(leveled.max - leveled.min <= 2);
    // Without leveling, the wear piles up on the sectors the log and the hot blocks live in.
    assert!(direct.max - direct.min > 10 * (leveled.max - leveled.min).max(1));
}
