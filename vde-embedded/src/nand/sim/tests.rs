//! Unit tests of the simulated NAND (the full rule set is exercised in `tests/tests/nand_sim.rs`).

use super::*;
use std::vec;

const PART: NandPart = NandPart::custom(512, 32, 4, 4);

#[test]
fn erased_reads_and_program_order() {
    let mut mem = vec![0xFFu8; PART.raw_bytes(4)];
    let mut st = vec![SimNandBlock::NEW; 4];
    let mut n = SimNand::new(&mut mem, &mut st, &PART, SimNandConfig::new(1)).unwrap();
    let mut d = vec![0u8; 512];
    let mut s = [0u8; 30];
    n.read_page(PageAddr::new(1, 1), &mut d, &mut s).unwrap();
    assert!(d.iter().chain(&s).all(|&b| b == ERASED));
    n.program_page(PageAddr::new(1, 2), &[0u8; 512], &[1; 30])
        .unwrap();
    assert!(matches!(
        n.program_page(PageAddr::new(1, 1), &[0u8; 512], &[]),
        Err(SimNandError::OutOfOrder { next: 3, .. })
    ));
    n.read_page(PageAddr::new(1, 2), &mut d, &mut s).unwrap();
    assert_eq!(s, [1; 30]);
    assert_eq!(n.stats().programs, 1);
    assert_eq!(n.op_count(), 3);
}

#[test]
fn timebomb_and_cut_precedence() {
    let mut mem = vec![0xFFu8; PART.raw_bytes(4)];
    let mut st = vec![SimNandBlock::NEW; 4];
    let mut c = SimNandConfig::new(1);
    c.add_timebomb(Timebomb { block: 2, at_op: 0 });
    for _ in 1..MAX_TIMEBOMBS {
        assert!(c.add_timebomb(Timebomb { block: 3, at_op: 9 }));
    }
    assert!(!c.add_timebomb(Timebomb { block: 3, at_op: 9 }));
    let mut n = SimNand::new(&mut mem, &mut st, &PART, c).unwrap();
    n.arm_power_cut(0);
    // A cut takes precedence over the bomb.
    assert_eq!(n.erase_block(2), Err(SimNandError::PowerLost));
    n.reboot();
    assert_eq!(
        n.erase_block(2),
        Err(SimNandError::BlockFailed { block: 2 })
    );
    assert_eq!(n.erase_count(2), 2);
    assert_eq!(n.wear_summary().max, 2);
}

/// Sector programs: each sector once, at most NoP programs per page, only the block's last
/// programmed page or a later one, nothing outside the sectors (and spare bytes) given; a part
/// without partial programs refuses them.
#[test]
fn partial_programs_keep_nop_sector_and_page_rules() {
    let part = NandPart::custom(2048, 64, 4, 4).with_partial_programs(512, 3);
    let mut mem = vec![0xFFu8; part.raw_bytes(4)];
    let mut st = vec![SimNandBlock::NEW; 4];
    let mut n = SimNand::new(&mut mem, &mut st, &part, SimNandConfig::new(1)).unwrap();
    let a = PageAddr::new(0, 1);
    let mut spare = [0xFFu8; 62];
    spare[0] = 7;
    n.program_sectors(a, 0, &[1u8; 512], &spare).unwrap();
    assert!(matches!(
        n.program_sectors(a, 0, &[2u8; 512], &[]),
        Err(SimNandError::TooManyPrograms { .. })
    ));
    spare = [0xFF; 62];
    spare[1] = 8;
    n.program_sectors(a, 1, &[3u8; 512], &spare).unwrap();
    // A spare byte programmed before may not be programmed again.
    spare[0] = 9;
    assert!(matches!(
        n.program_sectors(a, 2, &[4u8; 512], &spare),
        Err(SimNandError::NotErased { .. })
    ));
    n.program_sectors(a, 2, &[4u8; 512], &[]).unwrap();
    // The fourth program of the page passes NoP 3.
    assert!(matches!(
        n.program_sectors(a, 3, &[5u8; 512], &[]),
        Err(SimNandError::TooManyPrograms { .. })
    ));
    let mut d = vec![0u8; 2048];
    let mut s = [0u8; 62];
    n.read_page(a, &mut d, &mut s).unwrap();
    assert!(d[..512].iter().all(|&x| x == 1) && d[512..1024].iter().all(|&x| x == 3));
    assert!(d[1024..1536].iter().all(|&x| x == 4) && d[1536..].iter().all(|&x| x == ERASED));
    assert_eq!((s[0], s[1], s[2]), (7, 8, ERASED));
    // A later page; then the earlier one is closed.
    n.program_sectors(PageAddr::new(0, 2), 1, &[6u8; 1024], &[])
        .unwrap();
    assert!(matches!(
        n.program_sectors(a, 3, &[5u8; 512], &[]),
        Err(SimNandError::OutOfOrder { next: 3, .. })
    ));
    // Whole sectors inside the page only.
    assert!(matches!(
        n.program_sectors(PageAddr::new(0, 3), 3, &[0u8; 1024], &[]),
        Err(SimNandError::NoPartialProgram)
    ));
    assert!(matches!(
        n.program_sectors(PageAddr::new(0, 3), 0, &[0u8; 100], &[]),
        Err(SimNandError::NoPartialProgram)
    ));
    // A whole-page program leaves no room for sector programs.
    n.program_page(PageAddr::new(1, 0), &[0u8; 2048], &[])
        .unwrap();
    assert!(matches!(
        n.program_sectors(PageAddr::new(1, 0), 3, &[0u8; 512], &[]),
        Err(SimNandError::TooManyPrograms { .. })
    ));
    // A cut sector program tears only its sector.
    n.arm_power_cut(0);
    assert_eq!(
        n.program_sectors(PageAddr::new(0, 2), 3, &[0u8; 512], &[]),
        Err(SimNandError::PowerLost)
    );
    n.reboot();
    n.read_page(PageAddr::new(0, 2), &mut d, &mut s).unwrap();
    assert!(d[..512].iter().all(|&x| x == ERASED));
    assert!(d[512..1536].iter().all(|&x| x == 6));
    // After a restart the last page's programmed sectors are known from its content.
    n.restart(SimNandConfig::new(1), 0);
    assert!(matches!(
        n.program_sectors(PageAddr::new(0, 2), 1, &[0u8; 512], &[]),
        Err(SimNandError::TooManyPrograms { .. })
    ));
    let whole = PART;
    let mut mem = vec![0xFFu8; whole.raw_bytes(4)];
    let mut st = vec![SimNandBlock::NEW; 4];
    let mut w = SimNand::new(&mut mem, &mut st, &whole, SimNandConfig::new(1)).unwrap();
    assert!(matches!(
        w.program_sectors(PageAddr::new(0, 0), 0, &[0u8; 512], &[]),
        Err(SimNandError::NoPartialProgram)
    ));
}
