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
