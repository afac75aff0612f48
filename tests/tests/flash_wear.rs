//! Wear report: 10,000 small puts (64–200 bytes) on a simulated W25Q128JV (the whole 16 MiB part,
//! 4 KiB sectors, 4 KiB vde blocks). Prints programs and erases per put, the flash busy time per
//! put at the datasheet's typical timings, and the erase count per sector (max, min, and where
//! the hottest sectors are). Asserts only invariants: counts add up and every object reads back.

use vde_embedded::sim::parts::{W25q128jv, W25Q128JV};
use vde_embedded::NorFlashDevice;
use vde_nostd::{FormatOptions, ModuleSet, Volume};
use vde_tests::Mem;

const BS: usize = 4096;
const PUTS: usize = 10_000;

#[test]
fn flash_wear_report_10k_small_puts() {
    let mut img = vec![0xFFu8; W25Q128JV.capacity];
    let mut wear = vec![0u32; W25Q128JV.sectors()];
    let mut f = W25q128jv::from_part(&mut img, &mut wear, &W25Q128JV, 42).unwrap();
    let mut mem = Mem::new(BS, 16, 2048);
    let opts = FormatOptions {
        volume_id: [0x77; 16],
        now: 1,
        modules: ModuleSet::OBJECTS,
        ..FormatOptions::default()
    };
    let dev = NorFlashDevice::new(&mut f, BS, 0, None).unwrap();
    let mut vol = Volume::<_, 16>::format(dev, &opts, mem.bufs()).unwrap();
    let layout = *vol.layout();
    let objects_region = vol.module_regions(0).unwrap()[0].extent;
    vol.device().flash_mut().reset_stats();
    vol.device().flash_mut().reset_wear();

    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut objects = Vec::with_capacity(PUTS);
    let mut stored = 0u64;
    for i in 0..PUTS {
        let len = 64 + (next() % 137) as usize;
        let mut d = vec![0u8; len];
        d[..8].copy_from_slice(&(i as u64).to_le_bytes());
        for (j, b) in d.iter_mut().enumerate().skip(8) {
            *b = (j as u8).wrapping_mul(7) ^ (i as u8);
        }
        stored += len as u64;
        let h = vol.put(&d).unwrap();
        objects.push((h, d));
    }
    let stats = vol.device().flash().stats();
    let busy_ns = vol.device().flash().busy_time_ns();
    let busy_max_ns = W25Q128JV.timing.busy_time_max_ns(&stats);
    let wal = vol.wal_stats();
    let ostats = vol.object_stats().unwrap();

    // Every object reads back, before and after a remount.
    let mut buf = vec![0u8; 512];
    for (h, d) in &objects {
        let n = vol.get(*h, &mut buf).unwrap();
        assert_eq!(&buf[..n], &d[..]);
    }
    let dev = vol.unmount().unwrap();
    let mut vol = Volume::<_, 16>::mount(dev, mem.bufs()).unwrap();
    for (h, d) in objects.iter().step_by(7) {
        let n = vol.get(*h, &mut buf).unwrap();
        assert_eq!(&buf[..n], &d[..]);
    }
    vol.verify().unwrap();
    drop(vol);

    let w = f.wear_summary();
    let per = |x: u64| x as f64 / PUTS as f64;
    println!(
        "wear report: {PUTS} puts of 64..=200 B ({stored} B) on {}",
        W25Q128JV.name
    );
    println!(
        "  geometry: {} sectors of 4 KiB, vde blocks of {BS} B; WAL {} blocks at {}, objects index region {:?}",
        w.sectors, layout.wal_blocks, layout.wal_start, objects_region
    );
    println!(
        "  per put: {:.2} program calls ({:.2} pages, {:.0} B), {:.2} sector erases, {:.2} reads",
        per(stats.programs),
        per(stats.program_units),
        per(stats.program_bytes),
        per(stats.erases),
        per(stats.reads)
    );
    println!(
        "  WAL: {} commits, {} checkpoints, {:.2} log blocks per put",
        wal.commits,
        wal.checkpoints,
        per(wal.log_blocks_written)
    );
    println!(
        "  flash busy time per put: {:.1} ms typical ({:.1} ms programs + {:.1} ms erases), {} ms worst case",
        busy_ns as f64 / PUTS as f64 / 1e6,
        per(stats.program_units) * W25Q128JV.timing.program_typ_ns as f64 / 1e6,
        per(stats.erases) * W25Q128JV.timing.erase_typ_ns as f64 / 1e6,
        busy_max_ns.map_or("n/a".to_string(), |n| format!("{:.1}", n as f64 / PUTS as f64 / 1e6))
    );
    let erased: Vec<(usize, u32)> = f
        .wear()
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, c)| *c > 0)
        .collect();
    let min_erased = erased.iter().map(|x| x.1).min().unwrap_or(0);
    println!(
        "  erase count per sector: max {}, min {} over all {} sectors; {} sectors erased at least once (min among them {}), mean {:.1}",
        w.max,
        w.min,
        w.sectors,
        erased.len(),
        min_erased,
        w.total as f64 / erased.len().max(1) as f64
    );
    let mut hot = erased.clone();
    hot.sort_by_key(|x| std::cmp::Reverse(x.1));
    let what = |s: usize| {
        let b = s as u64; // one sector per block
        if b < 2 {
            "superblock"
        } else if b < 4 {
            "WAL header"
        } else if (layout.wal_start..layout.wal_start + layout.wal_blocks).contains(&b) {
            "WAL log"
        } else if (layout.bitmap_start..layout.bitmap_start + layout.bitmap_blocks).contains(&b) {
            "bitmap"
        } else if b == layout.regdir || b == layout.rpt {
            "region directory"
        } else if objects_region.contains(vde_nostd::BlockNo(b)) {
            "slot index"
        } else {
            "shared data block"
        }
    };
    let top: Vec<String> = hot
        .iter()
        .take(6)
        .map(|(s, c)| format!("#{s} {} ({c})", what(*s)))
        .collect();
    println!("  hottest sectors: {}", top.join(", "));
    println!(
        "  at {} cycles the hottest sector wears out after ~{:.0} such puts ({:.1} days at one put per second)",
        W25Q128JV.endurance_cycles,
        W25Q128JV.endurance_cycles as f64 * PUTS as f64 / w.max.max(1) as f64,
        W25Q128JV.endurance_cycles as f64 * PUTS as f64 / w.max.max(1) as f64 / 86_400.0
    );
    println!(
        "  objects: {} in {} shared blocks",
        ostats.counters.objects, ostats.shared_blocks
    );

    assert_eq!(ostats.counters.objects, PUTS as u64);
    assert_eq!(ostats.counters.bytes, stored);
    assert!(stats.programs > 0 && stats.erases > 0 && busy_ns > 0);
    assert!(w.max >= w.min && w.total > 0);
    assert!(
        w.total >= stats.erases,
        "wear counts every erase since the reset"
    );
    assert!(wal.commits >= PUTS as u64);
}
