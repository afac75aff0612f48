//! Unit tests of the simulated flash: flash rules, counters, wear, and power-cut injection.

use super::parts::{Nrf52840, W25q16jv, NRF52840, W25Q16JV};
use super::*;
use std::vec;
use std::vec::Vec;

const SECTOR: usize = 4096;

/// Blank storage of `sectors` 4 KiB sectors and its wear counters.
fn storage(sectors: usize) -> (Vec<u8>, Vec<u32>) {
    (vec![ERASED; sectors * SECTOR], vec![0; sectors])
}

#[test]
fn program_over_programmed_bytes_fails_and_changes_nothing() {
    let (mut mem, mut wear) = storage(2);
    let mut f = W25q16jv::from_part(&mut mem, &mut wear, &W25Q16JV, 7).unwrap();
    f.write(10, &[0x5A, 0xF0]).unwrap();
    let ops = f.op_count();
    let stats = f.stats();
    // Even writing 0xFF over a programmed byte, or a write that only partly overlaps, is refused.
    assert_eq!(
        f.write(9, &[0x00, 0x00, 0x00]),
        Err(SimError::ProgramOverProgrammed { offset: 10 })
    );
    assert_eq!(
        f.write(11, &[0xFF]),
        Err(SimError::ProgramOverProgrammed { offset: 11 })
    );
    assert_eq!(f.bytes()[9..13], [0xFF, 0x5A, 0xF0, 0xFF]);
    assert_eq!(f.op_count(), ops, "a refused program is not an operation");
    assert_eq!(f.stats(), stats);
    assert_eq!(
        SimError::ProgramOverProgrammed { offset: 0 }.kind(),
        NorFlashErrorKind::Other
    );
}

#[test]
fn multi_write_ands_old_and_new() {
    let (mut mem, mut wear) = storage(1);
    let mut cfg = SimConfig::new(1);
    cfg.multi_write = true;
    let mut f = SimFlash::<1, 1, SECTOR>::new(&mut mem, &mut wear, cfg).unwrap();
    f.write(0, &[0b1111_0000]).unwrap();
    f.write(0, &[0b1010_1010]).unwrap();
    assert_eq!(f.bytes()[0], 0b1010_0000);
}

#[test]
fn erase_resets_to_ff_and_counts_wear() {
    let (mut mem, mut wear) = storage(4);
    let mut f = W25q16jv::from_part(&mut mem, &mut wear, &W25Q16JV, 7).unwrap();
    f.write(0, &[0u8; 100]).unwrap();
    f.write(SECTOR as u32 + 5, &[1, 2, 3]).unwrap();
    f.erase(0, 2 * SECTOR as u32).unwrap();
    assert!(f.bytes()[..2 * SECTOR].iter().all(|&b| b == ERASED));
    // Programmable again after the erase.
    f.write(0, &[0x12]).unwrap();
    f.erase(0, SECTOR as u32).unwrap();
    assert_eq!(f.wear(), &[2, 1, 0, 0]);
    assert_eq!(
        f.wear_summary(),
        WearSummary {
            sectors: 4,
            min: 0,
            max: 2,
            total: 3
        }
    );
    // An empty erase range is a valid (counted) no-op.
    f.erase(SECTOR as u32, SECTOR as u32).unwrap();
    assert_eq!(f.wear_summary().total, 3);
    f.reset_wear();
    assert_eq!(f.wear_summary().max, 0);
}

#[test]
fn counters_are_right() {
    let (mut mem, mut wear) = storage(2);
    let mut f = W25q16jv::from_part(&mut mem, &mut wear, &W25Q16JV, 7).unwrap();
    let mut buf = [0u8; 300];
    f.read(0, &mut buf).unwrap();
    f.read(1000, &mut buf[..10]).unwrap();
    f.write(250, &[0u8; 10]).unwrap(); // crosses a 256-byte page: 2 page programs
    f.write(512, &[0u8; 256]).unwrap(); // exactly one page
    f.erase(0, 2 * SECTOR as u32).unwrap();
    // Rejected operations are not counted.
    assert_eq!(
        f.read(2 * SECTOR as u32, &mut buf[..1]),
        Err(SimError::OutOfBounds)
    );
    assert_eq!(f.erase(1, SECTOR as u32), Err(SimError::NotAligned));
    let s = f.stats();
    assert_eq!(
        s,
        FlashStats {
            reads: 2,
            read_bytes: 310,
            programs: 2,
            program_bytes: 266,
            program_units: 3,
            erase_calls: 1,
            erases: 2,
            weak_reads: 0,
        }
    );
    assert_eq!(f.op_count(), 5);
    assert_eq!(f.busy_time_ns(), 3 * 400_000 + 2 * 45_000_000);
    f.reset_stats();
    assert_eq!(f.stats(), FlashStats::default());
    assert_eq!(f.op_count(), 5, "op_count is never reset");
}

#[test]
fn alignment_and_bounds_are_enforced() {
    let (mut mem, mut wear) = storage(2);
    let mut f = Nrf52840::from_part(&mut mem, &mut wear, &NRF52840, 3).unwrap();
    let cap = f.capacity() as u32;
    assert_eq!(f.write(2, &[0; 4]), Err(SimError::NotAligned));
    assert_eq!(f.write(0, &[0; 3]), Err(SimError::NotAligned));
    assert_eq!(f.write(cap - 4, &[0; 8]), Err(SimError::OutOfBounds));
    assert_eq!(f.write(u32::MAX, &[0; 4]), Err(SimError::OutOfBounds));
    assert_eq!(f.erase(0, 100), Err(SimError::NotAligned));
    assert_eq!(f.erase(SECTOR as u32, 0), Err(SimError::OutOfBounds));
    assert_eq!(f.erase(0, cap + SECTOR as u32), Err(SimError::OutOfBounds));
    let mut b = [0u8; 3];
    f.read(1, &mut b).unwrap(); // READ_SIZE 1
    assert_eq!(f.read(cap - 1, &mut b), Err(SimError::OutOfBounds));
    assert_eq!(SimError::NotAligned.kind(), NorFlashErrorKind::NotAligned);
    assert_eq!(SimError::OutOfBounds.kind(), NorFlashErrorKind::OutOfBounds);
    f.write(4, &[1, 2, 3, 4]).unwrap();
    assert_eq!(f.bytes()[4..8], [1, 2, 3, 4]);
}

#[test]
fn setup_refuses_bad_storage() {
    let (mut mem, mut wear) = storage(2);
    assert_eq!(
        SimFlash::<1, 1, SECTOR>::new(&mut mem[..100], &mut wear, SimConfig::new(0)).unwrap_err(),
        SimSetupError::NotSectorMultiple { len: 100 }
    );
    assert_eq!(
        SimFlash::<1, 1, SECTOR>::new(&mut mem, &mut wear[..1], SimConfig::new(0)).unwrap_err(),
        SimSetupError::WearTooShort { need: 2, got: 1 }
    );
    assert_eq!(
        SimFlash::<1, 3, SECTOR>::new(&mut mem, &mut wear, SimConfig::new(0)).unwrap_err(),
        SimSetupError::BadGeometry
    );
    assert_eq!(
        SimFlash::<1, 1, 0>::new(&mut mem, &mut wear, SimConfig::new(0)).unwrap_err(),
        SimSetupError::BadGeometry
    );
    assert_eq!(
        W25q16jv::from_part(&mut mem, &mut wear, &NRF52840, 0).unwrap_err(),
        SimSetupError::PartMismatch
    );
    let mut big = vec![ERASED; W25Q16JV.capacity + SECTOR];
    let mut big_wear = vec![0u32; W25Q16JV.sectors() + 1];
    assert_eq!(
        W25q16jv::from_part(&mut big, &mut big_wear, &W25Q16JV, 0).unwrap_err(),
        SimSetupError::LargerThanPart {
            len: W25Q16JV.capacity + SECTOR,
            capacity: W25Q16JV.capacity
        }
    );
}

/// Every byte of a torn program over erased flash must be reachable by clearing only bits the
/// program clears: `result & new == new`.
fn obeys_program_rule(result: &[u8], new: &[u8]) -> bool {
    result.iter().zip(new).all(|(&r, &n)| r & n == n)
}

fn torn_program(seed: u64, tear: TearMode) -> Vec<u8> {
    let (mut mem, mut wear) = storage(1);
    let mut cfg = SimConfig::new(seed);
    cfg.tear = tear;
    let mut f = SimFlash::<1, 1, SECTOR>::new(&mut mem, &mut wear, cfg).unwrap();
    f.arm_power_cut(0);
    let new: Vec<u8> = (0..256u32).map(|i| (i * 7) as u8 & 0x0F).collect();
    assert_eq!(f.write(256, &new), Err(SimError::PowerLost));
    assert!(f.power_lost());
    assert!(f.bytes()[..256].iter().all(|&b| b == ERASED));
    assert!(f.bytes()[512..].iter().all(|&b| b == ERASED));
    let got = f.bytes()[256..512].to_vec();
    assert!(obeys_program_rule(&got, &new));
    got
}

#[test]
fn torn_program_leaves_a_mix_of_old_and_new() {
    let new: Vec<u8> = (0..256u32).map(|i| (i * 7) as u8 & 0x0F).collect();
    for tear in [TearMode::Prefix, TearMode::Scattered] {
        let mut mixed = 0;
        for seed in 0..32 {
            let got = torn_program(seed, tear);
            let programmed = got.iter().zip(&new).filter(|(g, n)| g == n).count();
            let untouched = got.iter().filter(|&&g| g == ERASED).count();
            if programmed > 0 && untouched > 0 {
                mixed += 1;
            }
            if tear == TearMode::Prefix {
                // Programmed prefix, at most one partial byte, erased suffix.
                let first_not_new = got.iter().zip(&new).position(|(g, n)| g != n);
                if let Some(p) = first_not_new {
                    assert!(got[p + 1..].iter().all(|&b| b == ERASED), "seed {seed}");
                }
            }
            // Same seed, same damage.
            assert_eq!(got, torn_program(seed, tear));
        }
        assert!(
            mixed >= 24,
            "{tear:?}: only {mixed} of 32 cuts tore the program"
        );
    }
}

#[test]
fn torn_erase_leaves_non_uniform_content() {
    for seed in 0..16 {
        let (mut mem, mut wear) = storage(4);
        let mut f =
            SimFlash::<1, 1, SECTOR>::new(&mut mem, &mut wear, SimConfig::new(seed)).unwrap();
        for s in 0..4 {
            f.write((s * SECTOR) as u32, &[0u8; SECTOR]).unwrap();
        }
        f.arm_power_cut(0);
        assert_eq!(f.erase(0, 4 * SECTOR as u32), Err(SimError::PowerLost));
        let wear_after = f.wear().to_vec();
        let sectors: Vec<&[u8]> = f.bytes().chunks(SECTOR).collect();
        let torn = wear_after.iter().filter(|&&w| w == 1).count() - 1;
        for (i, sector) in sectors.iter().enumerate() {
            if i < torn {
                assert!(
                    sector.iter().all(|&b| b == ERASED),
                    "seed {seed} sector {i}"
                );
            } else if i == torn {
                assert!(sector.contains(&ERASED), "seed {seed}");
                assert!(sector.iter().any(|&b| b != ERASED), "seed {seed}");
            } else {
                assert!(sector.iter().all(|&b| b == 0), "seed {seed} sector {i}");
                assert_eq!(wear_after[i], 0);
            }
        }
        assert_eq!(f.stats().erases, torn as u64 + 1);
    }
}

#[test]
fn every_operation_fails_after_a_cut_until_reboot() {
    let (mut mem, mut wear) = storage(2);
    let mut f = W25q16jv::from_part(&mut mem, &mut wear, &W25Q16JV, 9).unwrap();
    f.arm_power_cut(2);
    assert_eq!(f.power_cut_armed(), Some(2));
    f.write(0, &[1]).unwrap();
    let mut b = [0u8; 4];
    f.read(0, &mut b).unwrap();
    assert_eq!(f.power_cut_armed(), Some(0));
    // The third operation is cut; a cut read leaves the buffer as it was.
    let mut c = [0xAAu8; 4];
    assert_eq!(f.cut_kind(), None);
    assert_eq!(f.read(0, &mut c), Err(SimError::PowerLost));
    assert_eq!(c, [0xAA; 4]);
    assert_eq!(f.cut_kind(), Some(OpKind::Read));
    let ops = f.op_count();
    let snapshot = f.bytes().to_vec();
    assert_eq!(f.read(0, &mut b), Err(SimError::PowerLost));
    assert_eq!(f.write(4, &[1]), Err(SimError::PowerLost));
    assert_eq!(f.erase(0, SECTOR as u32), Err(SimError::PowerLost));
    // Even an invalid operation reports the power loss.
    assert_eq!(f.write(u32::MAX, &[1]), Err(SimError::PowerLost));
    f.arm_power_cut(5);
    assert_eq!(f.power_cut_armed(), None, "arming while off is ignored");
    assert_eq!(f.bytes(), &snapshot[..]);
    assert_eq!(f.op_count(), ops, "failed operations are not counted");
    assert_eq!(SimError::PowerLost.kind(), NorFlashErrorKind::Other);
    f.reboot();
    assert!(!f.power_lost());
    assert_eq!(f.cut_kind(), None);
    f.read(0, &mut b).unwrap();
    assert_eq!(b[0], 1);
    f.write(4, &[2]).unwrap();
    f.arm_power_cut(0);
    f.disarm_power_cut();
    f.write(5, &[3]).unwrap();
    f.arm_power_cut(0);
    assert_eq!(f.write(6, &[3]), Err(SimError::PowerLost));
    assert_eq!(f.cut_kind(), Some(OpKind::Program));
    f.reboot();
    f.arm_power_cut(0);
    assert_eq!(f.erase(0, SECTOR as u32), Err(SimError::PowerLost));
    assert_eq!(f.cut_kind(), Some(OpKind::Erase));
}

#[test]
fn harness_can_cut_at_every_operation_of_a_workload() {
    fn workload<const R: usize, const W: usize, const E: usize>(
        f: &mut SimFlash<'_, R, W, E>,
    ) -> Result<(), SimError> {
        f.erase(0, E as u32)?;
        f.write(0, &[0x11; 64])?;
        let mut b = [0u8; 64];
        f.read(0, &mut b)?;
        f.erase(E as u32, 2 * E as u32)?;
        f.write(E as u32, &b)?;
        Ok(())
    }
    let (mut mem, mut wear) = storage(2);
    let n = {
        let mut f = W25q16jv::from_part(&mut mem, &mut wear, &W25Q16JV, 5).unwrap();
        let before = f.op_count();
        workload(&mut f).unwrap();
        f.op_count() - before
    };
    assert_eq!(n, 5);
    let good = mem.clone();
    for k in 0..n {
        let (mut mem, mut wear) = storage(2);
        let mut f = W25q16jv::from_part(&mut mem, &mut wear, &W25Q16JV, 5).unwrap();
        f.arm_power_cut(k);
        assert_eq!(workload(&mut f), Err(SimError::PowerLost), "cut {k}");
        assert_eq!(f.op_count(), k + 1);
        f.reboot();
        workload(&mut f).unwrap();
        assert_eq!(f.bytes(), &good[..], "rerun after cut {k}");
    }
}

#[test]
fn debug_output_is_a_summary() {
    let (mut mem, mut wear) = storage(1);
    let f = SimFlash::<1, 1, SECTOR>::new(&mut mem, &mut wear, SimConfig::default()).unwrap();
    let s = std::format!("{f:?}");
    assert!(s.contains("capacity: 4096"));
    assert!(s.len() < 1000);
    assert_eq!(
        std::format!("{}", SimError::ProgramOverProgrammed { offset: 16 }),
        "program over programmed byte at 0x10"
    );
}

#[test]
fn weak_bits_read_differently_until_the_sector_is_erased() {
    let mut found = false;
    for seed in 0..64u64 {
        let (mut mem, mut wear) = storage(2);
        let mut f = W25q16jv::from_part(&mut mem, &mut wear, &W25Q16JV, seed).unwrap();
        f.config_mut().weak_bits = true;
        f.arm_power_cut(0);
        assert_eq!(f.write(0, &[0x00; 256]), Err(SimError::PowerLost));
        f.reboot();
        // The partly programmed byte, if this cut left one.
        let Some(at) = f.bytes()[..256].iter().position(|&b| b != 0 && b != ERASED) else {
            continue;
        };
        found = true;
        let mut seen = std::collections::BTreeSet::new();
        let mut buf = [0u8; 256];
        for _ in 0..64 {
            f.read(0, &mut buf).unwrap();
            seen.insert(buf[at]);
            // Only that byte moves: the bytes before it are programmed, after it erased.
            assert!(buf[..at].iter().all(|&b| b == 0));
            assert!(buf[at + 1..].iter().all(|&b| b == ERASED));
        }
        assert!(seen.len() > 1, "a weak byte read the same 64 times");
        assert!(f.stats().weak_reads > 0);
        // Without weak bits the same flash reads what it holds.
        f.config_mut().weak_bits = false;
        let held = f.bytes()[at];
        f.read(0, &mut buf).unwrap();
        assert_eq!(
            buf[at], held,
            "entries stay, but a read only varies while enabled"
        );
        f.config_mut().weak_bits = true;
        f.erase(0, SECTOR as u32).unwrap();
        for _ in 0..8 {
            f.read(0, &mut buf).unwrap();
            assert!(
                buf.iter().all(|&b| b == ERASED),
                "an erase ends the weakness"
            );
        }
    }
    assert!(found, "no cut left a partly programmed byte");
}
