//! The simulated NAND (`SimNand`) and the NOR-as-NAND adapter (`NorNand`) follow the rules of the
//! `NandFlash` trait: presets match the datasheets, an unprogrammed page reads `0xFF`, a page is
//! programmed once per erase and in order, bad blocks are refused, refused operations are not
//! counted, power cuts tear programs (only clearing bits the program would clear) and erases
//! (only raising bits), timebombs turn blocks bad mid-run, and the damage is reproducible.

use vde_embedded::nand::nor::NorNandLayout;
use vde_embedded::nand::{
    BlockStatus, NandErrorKind, NandFlash, NandFlashError, NandPart, NorNand, PageAddr, SimNand,
    SimNandBlock, SimNandConfig, SimNandError, Timebomb, MT29F4G01ABAFD, W25N01GV,
};
use vde_embedded::sim::parts::W25q16jv;
use vde_embedded::sim::{OpKind, TearMode};
use vde_embedded::SimConfig;

const SMALL: NandPart = NandPart::custom(512, 32, 8, 16);

fn pa(block: u32, page: u32) -> PageAddr {
    PageAddr::new(block, page)
}

fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed) & 0x7E)
        .collect()
}

#[test]
fn presets_match_the_datasheets() {
    let g = W25N01GV.geometry(W25N01GV.blocks);
    assert_eq!(
        (g.page_size, g.pages_per_block, g.block_count),
        (2048, 64, 1024)
    );
    assert_eq!(W25N01GV.spare_size, 64);
    assert_eq!(g.spare_size, 62, "the two marker bytes are hidden");
    assert_eq!(g.data_bytes(), 128 * 1024 * 1024);
    assert_eq!(W25N01GV.guaranteed_good, 8);
    assert_eq!(W25N01GV.max_bad_blocks, 20);
    let m = MT29F4G01ABAFD.geometry(MT29F4G01ABAFD.blocks);
    assert_eq!(
        (m.page_size, m.pages_per_block, m.block_count),
        (4096, 64, 2048)
    );
    assert_eq!(MT29F4G01ABAFD.spare_size, 256);
    assert_eq!(m.data_bytes(), 512 * 1024 * 1024);
    assert_eq!(W25N01GV.raw_bytes(2), 2 * 64 * 2112);
    // A smaller simulator of a preset; a larger one is refused.
    let mut mem = vec![0xFFu8; W25N01GV.raw_bytes(4)];
    let mut st = vec![SimNandBlock::NEW; 4];
    let sim = SimNand::new(&mut mem, &mut st, &W25N01GV, SimNandConfig::new(1)).unwrap();
    assert_eq!(sim.geometry().block_count, 4);
    let tiny = W25N01GV.with_blocks(2);
    let mut st = vec![SimNandBlock::NEW; 4];
    assert!(SimNand::new(&mut mem, &mut st, &tiny, SimNandConfig::new(1)).is_err());
    let mut st = vec![SimNandBlock::NEW; 3];
    assert!(SimNand::new(&mut mem, &mut st, &W25N01GV, SimNandConfig::new(1)).is_err());
    let mut odd = vec![0xFFu8; 1000];
    let mut st = vec![SimNandBlock::NEW; 4];
    assert!(SimNand::new(&mut odd, &mut st, &W25N01GV, SimNandConfig::new(1)).is_err());
}

#[test]
fn program_rules_are_enforced() {
    let mut mem = vec![0xFFu8; SMALL.raw_bytes(16)];
    let mut st = vec![SimNandBlock::NEW; 16];
    let mut nand = SimNand::new(&mut mem, &mut st, &SMALL, SimNandConfig::new(1)).unwrap();
    let g = nand.geometry();
    assert_eq!(g.spare_size, 30);
    let (mut d, mut s) = (vec![0u8; 512], vec![0u8; 30]);
    // Unprogrammed pages read as erased, data and spare.
    nand.read_page(pa(3, 5), &mut d, &mut s).unwrap();
    assert!(d.iter().chain(&s).all(|&b| b == 0xFF));
    // Program and read back (a short spare write leaves the rest erased).
    nand.program_page(pa(3, 1), &data(1, 512), &[1, 2, 3])
        .unwrap();
    nand.read_page(pa(3, 1), &mut d, &mut s).unwrap();
    assert_eq!(d, data(1, 512));
    assert_eq!(&s[..3], &[1, 2, 3]);
    assert!(s[3..].iter().all(|&b| b == 0xFF));
    // Spare-only read.
    let mut s4 = [0u8; 4];
    nand.read_page(pa(3, 1), &mut [], &mut s4).unwrap();
    assert_eq!(s4, [1, 2, 3, 0xFF]);
    let ops = nand.op_count();
    // Twice: refused. Below a programmed page: refused. Not counted.
    assert!(matches!(
        nand.program_page(pa(3, 1), &data(2, 512), &[]),
        Err(SimNandError::OutOfOrder { .. })
    ));
    assert!(matches!(
        nand.program_page(pa(3, 0), &data(2, 512), &[]),
        Err(SimNandError::OutOfOrder { next: 2, .. })
    ));
    let e = nand.program_page(pa(3, 0), &data(2, 512), &[]).unwrap_err();
    assert_eq!(e.kind(), NandErrorKind::ProgramRule);
    // Lengths and bounds.
    assert_eq!(
        nand.program_page(pa(3, 4), &data(2, 511), &[]),
        Err(SimNandError::BadLength)
    );
    assert_eq!(
        nand.program_page(pa(3, 4), &data(2, 512), &[0; 31]),
        Err(SimNandError::BadLength)
    );
    assert_eq!(
        nand.read_page(pa(3, 4), &mut d[..100], &mut []),
        Err(SimNandError::BadLength)
    );
    assert_eq!(
        nand.program_page(pa(16, 0), &data(2, 512), &[]),
        Err(SimNandError::OutOfBounds)
    );
    assert_eq!(
        nand.read_page(pa(0, 8), &mut d, &mut []),
        Err(SimNandError::OutOfBounds)
    );
    assert_eq!(nand.erase_block(16), Err(SimNandError::OutOfBounds));
    assert_eq!(nand.op_count(), ops, "refused operations are not counted");
    // A page not erased (content changed behind the simulator's back) is refused.
    {
        let raw = SMALL.raw_page_size();
        let at = (3 * 8 + 6) * raw + 10;
        nand.bytes_mut()[at] = 0;
    }
    assert!(matches!(
        nand.program_page(pa(3, 6), &data(2, 512), &[]),
        Err(SimNandError::NotErased { .. })
    ));
    // Skipping pages is allowed.
    nand.program_page(pa(3, 7), &data(3, 512), &[]).unwrap();
    // Erase: everything reads 0xFF again and page 0 may be programmed.
    assert_eq!(nand.erase_count(3), 0);
    nand.erase_block(3).unwrap();
    assert_eq!(nand.erase_count(3), 1);
    nand.read_page(pa(3, 1), &mut d, &mut s).unwrap();
    assert!(d.iter().chain(&s).all(|&b| b == 0xFF));
    nand.program_page(pa(3, 0), &data(4, 512), &[]).unwrap();
    let st = nand.stats();
    assert_eq!(
        (st.programs, st.erases, st.program_units),
        (3, 1, 3),
        "{st:?}"
    );
    assert_eq!(nand.op_count(), ops + 4, "two programs, an erase, a read");
    // restart() recomputes the program order from the content.
    nand.restart(SimNandConfig::new(2), 0);
    assert_eq!(nand.op_count(), 0);
    assert!(matches!(
        nand.program_page(pa(3, 0), &data(2, 512), &[]),
        Err(SimNandError::OutOfOrder { next: 1, .. })
    ));
    nand.program_page(pa(3, 1), &data(2, 512), &[]).unwrap();
}

#[test]
fn bad_blocks_factory_and_marked() {
    let mut mem = vec![0u8; W25N01GV.raw_bytes(64)];
    let n = SimNand::factory_init(&mut mem, &W25N01GV, 5, 77);
    assert_eq!(n, 5);
    let mut st = vec![SimNandBlock::NEW; 64];
    let mut nand = SimNand::new(&mut mem, &mut st, &W25N01GV, SimNandConfig::new(1)).unwrap();
    let bad: Vec<u32> = (0..64)
        .filter(|&b| nand.block_status(b).unwrap() == BlockStatus::Bad)
        .collect();
    assert_eq!(bad.len(), 5);
    assert!(bad.iter().all(|&b| b >= 8), "blocks 0-7 are good: {bad:?}");
    let b = bad[0];
    let ops = nand.op_count();
    assert_eq!(
        nand.erase_block(b),
        Err(SimNandError::BadBlock { block: b })
    );
    let e = nand
        .program_page(pa(b, 0), &vec![0; 2048], &[])
        .unwrap_err();
    assert_eq!(e.kind(), NandErrorKind::BadBlock);
    assert_eq!(nand.op_count(), ops);
    // The same seed marks the same blocks.
    let mut again = vec![0u8; W25N01GV.raw_bytes(64)];
    SimNand::factory_init(&mut again, &W25N01GV, 5, 77);
    let mut st2 = vec![SimNandBlock::NEW; 64];
    let other = SimNand::new(&mut again, &mut st2, &W25N01GV, SimNandConfig::new(1)).unwrap();
    assert!(bad.iter().all(|&b| other.is_marked_bad(b)));
    // Marking a good, programmed block bad.
    nand.program_page(pa(2, 0), &vec![0x11; 2048], &[0x22; 62])
        .unwrap();
    assert_eq!(nand.block_status(2).unwrap(), BlockStatus::Good);
    nand.mark_bad(2).unwrap();
    assert_eq!(nand.block_status(2).unwrap(), BlockStatus::Bad);
    assert_eq!(
        nand.erase_block(2),
        Err(SimNandError::BadBlock { block: 2 })
    );
    assert_eq!(nand.wear_summary_good().sectors, 64 - 6);
}

#[test]
fn power_cuts_tear_programs_and_erases() {
    let new = data(9, 512);
    let spare = [0x55u8; 24];
    for (k, mode) in [TearMode::Prefix, TearMode::Scattered]
        .into_iter()
        .enumerate()
    {
        for seed in 0..40u64 {
            let mut mem = vec![0xFFu8; SMALL.raw_bytes(16)];
            let mut st = vec![SimNandBlock::NEW; 16];
            let mut c = SimNandConfig::new(seed * 7 + k as u64);
            c.tear = mode;
            let mut nand = SimNand::new(&mut mem, &mut st, &SMALL, c).unwrap();
            nand.program_page(pa(1, 0), &data(1, 512), &spare).unwrap();
            nand.arm_power_cut(1);
            nand.program_page(pa(1, 1), &data(2, 512), &spare).unwrap();
            assert_eq!(
                nand.program_page(pa(1, 2), &new, &spare),
                Err(SimNandError::PowerLost)
            );
            assert!(nand.power_lost());
            assert_eq!(nand.cut_kind(), Some(OpKind::Program));
            // Everything fails until reboot.
            let mut d = vec![0u8; 512];
            assert_eq!(
                nand.read_page(pa(1, 0), &mut d, &mut []),
                Err(SimNandError::PowerLost)
            );
            assert_eq!(nand.erase_block(5), Err(SimNandError::PowerLost));
            nand.reboot();
            let mut s = [0u8; 30];
            nand.read_page(pa(1, 2), &mut d, &mut s).unwrap();
            // Only bits the program would clear are cleared.
            for (t, n) in d.iter().zip(&new) {
                assert_eq!(n & !t, 0);
            }
            for (t, n) in s.iter().zip(spare.iter().chain(&[0xFF; 6])) {
                assert_eq!(n & !t, 0);
            }
            // The pages before are intact; the torn page cannot be programmed again.
            nand.read_page(pa(1, 1), &mut d, &mut []).unwrap();
            assert_eq!(d, data(2, 512));
            assert!(nand.program_page(pa(1, 2), &new, &[]).is_err());
            // A cut erase: bits only rise, the marker stays, the wear counts.
            nand.arm_power_cut(0);
            assert_eq!(nand.erase_block(1), Err(SimNandError::PowerLost));
            assert_eq!(nand.cut_kind(), Some(OpKind::Erase));
            nand.reboot();
            assert_eq!(nand.erase_count(1), 1);
            assert!(!nand.is_marked_bad(1));
            nand.read_page(pa(1, 1), &mut d, &mut []).unwrap();
            for (t, o) in d.iter().zip(&data(2, 512)) {
                assert_eq!(o & !t, 0, "an erase only raises bits");
            }
        }
    }
    // Reproducible: the same seed and operation number give the same damage.
    let run = |seed: u64| {
        let mut mem = vec![0xFFu8; SMALL.raw_bytes(16)];
        let mut st = vec![SimNandBlock::NEW; 16];
        let mut c = SimNandConfig::new(seed);
        c.tear = TearMode::Scattered;
        let mut nand = SimNand::new(&mut mem, &mut st, &SMALL, c).unwrap();
        nand.arm_power_cut(0);
        let _ = nand.program_page(pa(0, 0), &new, &spare);
        nand.bytes().to_vec()
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4));
}

#[test]
fn timebombs_turn_blocks_bad() {
    let mut mem = vec![0xFFu8; SMALL.raw_bytes(16)];
    let mut st = vec![SimNandBlock::NEW; 16];
    let mut c = SimNandConfig::new(1);
    assert!(c.add_timebomb(Timebomb { block: 4, at_op: 3 }));
    let mut nand = SimNand::new(&mut mem, &mut st, &SMALL, c).unwrap();
    nand.program_page(pa(4, 0), &data(1, 512), &[]).unwrap(); // op 0
    nand.program_page(pa(5, 0), &data(1, 512), &[]).unwrap(); // op 1
    nand.program_page(pa(4, 1), &data(2, 512), &[]).unwrap(); // op 2
    let e = nand.program_page(pa(4, 2), &data(3, 512), &[]).unwrap_err(); // op 3
    assert_eq!(e, SimNandError::BlockFailed { block: 4 });
    assert_eq!(e.kind(), NandErrorKind::BlockFailed);
    let mut d = vec![0u8; 512];
    nand.read_page(pa(4, 2), &mut d, &mut []).unwrap();
    assert_ne!(d, data(3, 512), "the failed page is garbled");
    // Earlier pages still read; the block keeps failing; other blocks are fine.
    nand.read_page(pa(4, 1), &mut d, &mut []).unwrap();
    assert_eq!(d, data(2, 512));
    assert_eq!(
        nand.erase_block(4),
        Err(SimNandError::BlockFailed { block: 4 })
    );
    nand.erase_block(5).unwrap();
    nand.mark_bad(4).unwrap();
    assert_eq!(nand.block_status(4).unwrap(), BlockStatus::Bad);
    assert_eq!(nand.stats().erases, 2);
}

#[test]
fn busy_time_at_datasheet_timings() {
    let mut mem = vec![0xFFu8; W25N01GV.raw_bytes(2)];
    let mut st = vec![SimNandBlock::NEW; 2];
    let mut nand = SimNand::new(&mut mem, &mut st, &W25N01GV, SimNandConfig::new(1)).unwrap();
    nand.program_page(pa(0, 0), &vec![0; 2048], &[]).unwrap();
    let mut d = vec![0u8; 2048];
    nand.read_page(pa(0, 0), &mut d, &mut []).unwrap();
    nand.erase_block(0).unwrap();
    assert_eq!(nand.busy_time_ns(), 250_000 + 25_000 + 2_000_000);
}

#[test]
fn nor_seen_as_nand() {
    let mut img = vec![0xFFu8; 64 * 1024];
    let mut wear = vec![0u32; 16];
    let f = W25q16jv::new(&mut img, &mut wear, SimConfig::new(1)).unwrap();
    let layout = NorNandLayout {
        base_offset: 4096,
        sectors_per_block: 2,
        page_size: 1024,
        spare_size: 30,
        block_count: None,
    };
    let mut n = NorNand::new(f, layout).unwrap();
    let g = n.geometry();
    // (8192 − 4 marker bytes) / (1024 + 30) = 7 pages; (64 KiB − 4 KiB) / 8 KiB = 7 blocks.
    assert_eq!(
        (g.page_size, g.spare_size, g.pages_per_block, g.block_count),
        (1024, 30, 7, 7)
    );
    let mut d = vec![0u8; 1024];
    let mut s = [0u8; 30];
    n.read_page(pa(2, 6), &mut d, &mut s).unwrap();
    assert!(d.iter().chain(&s).all(|&b| b == 0xFF));
    n.program_page(pa(2, 6), &data(5, 1024), &[7; 24]).unwrap();
    n.read_page(pa(2, 6), &mut d, &mut s).unwrap();
    assert_eq!(d, data(5, 1024));
    assert_eq!(&s[..24], &[7; 24]);
    assert!(n.program_page(pa(2, 6), &data(5, 1024), &[]).is_err());
    assert!(n.read_page(pa(7, 0), &mut d, &mut []).is_err());
    assert_eq!(n.block_status(2).unwrap(), BlockStatus::Good);
    n.mark_bad(2).unwrap();
    assert_eq!(n.block_status(2).unwrap(), BlockStatus::Bad);
    n.erase_block(2).unwrap();
    assert_eq!(n.block_status(2).unwrap(), BlockStatus::Good);
    n.read_page(pa(2, 6), &mut d, &mut []).unwrap();
    assert!(d.iter().all(|&b| b == 0xFF));
    // Block 2 is flash bytes 4096 + 2 × 8192 onward: its two sectors were erased once.
    assert_eq!(n.flash().wear()[5..7], [1, 1]);
    // A layout where no page fits is refused.
    let f = n.into_inner();
    let bad = NorNandLayout {
        sectors_per_block: 1,
        page_size: 4096,
        ..layout
    };
    assert!(NorNand::new(f, bad).is_err());
}
