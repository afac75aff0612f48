//! Real flash parts for the simulator: geometry, rules and datasheet timings.
//!
//! Owns: [`FlashTiming`] (turns operation counts into flash busy time), [`FlashPart`] (one part's
//! facts), one `const` per part and one type alias per geometry, so that
//! `W25q128jv::from_part(mem, wear, &W25Q128JV, seed)` builds a simulator of that part.
//!
//! Sources: `shared/flash-parts.md` (datasheet figures for the Winbond parts and the nRF52840),
//! except the STM32L4-class preset, whose timings are noted at [`STM32L4`].
//!
//! Invariant: each alias's const generics (`READ`, `WRITE`, `ERASE`) equal the matching part's
//! `read_size`, `write_size` and `erase_size`; [`SimFlash::from_part`] checks it and a unit test
//! checks every preset.

use super::{FlashStats, SimFlash};

/// Datasheet timings of a part, in nanoseconds.
///
/// Busy time is `program_units × program_typ_ns + erases × erase_typ_ns`, where a program unit is
/// one `program_unit`-aligned window touched by a program (a 256-byte page on SPI NOR, a word on
/// MCU flash: the unit the datasheet times) and an erase is one erase sector. Reads are not
/// counted: they are orders of magnitude faster than programs and erases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FlashTiming {
    /// Bytes covered by one timed program operation (page or word). `0` is treated as `1`.
    pub program_unit: usize,
    /// Typical time of one program unit.
    pub program_typ_ns: u64,
    /// Maximum time of one program unit, where the datasheet gives it.
    pub program_max_ns: Option<u64>,
    /// Typical time of one erase-sector erase.
    pub erase_typ_ns: u64,
    /// Maximum time of one erase-sector erase, where the datasheet gives it.
    pub erase_max_ns: Option<u64>,
}

impl FlashTiming {
    /// No timing information: every operation costs nothing.
    pub const NONE: FlashTiming = FlashTiming {
        program_unit: 1,
        program_typ_ns: 0,
        program_max_ns: None,
        erase_typ_ns: 0,
        erase_max_ns: None,
    };

    /// Typical busy time of the operations counted in `stats`, in nanoseconds (saturating).
    pub fn busy_time_ns(&self, stats: &FlashStats) -> u64 {
        stats
            .program_units
            .saturating_mul(self.program_typ_ns)
            .saturating_add(stats.erases.saturating_mul(self.erase_typ_ns))
    }

    /// Worst-case busy time of the operations counted in `stats`, or `None` if the datasheet
    /// gives no maximum for an operation kind that occurred.
    pub fn busy_time_max_ns(&self, stats: &FlashStats) -> Option<u64> {
        let programs = if stats.program_units == 0 {
            0
        } else {
            stats.program_units.saturating_mul(self.program_max_ns?)
        };
        let erases = if stats.erases == 0 {
            0
        } else {
            stats.erases.saturating_mul(self.erase_max_ns?)
        };
        Some(programs.saturating_add(erases))
    }

    /// Number of program units touched by a program of `len` bytes at `offset`.
    pub fn units_touched(&self, offset: usize, len: usize) -> u64 {
        let unit = self.program_unit.max(1);
        match offset.checked_add(len) {
            _ if len == 0 => 0,
            Some(end) => ((end - 1) / unit - offset / unit + 1) as u64,
            None => (len / unit + 1) as u64,
        }
    }
}

/// The facts about one flash part that the simulator needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FlashPart {
    /// Part name and datasheet revision.
    pub name: &'static str,
    /// Capacity of the whole part in bytes. A simulator may model only a prefix of it.
    pub capacity: usize,
    /// Smallest read unit in bytes (`ReadNorFlash::READ_SIZE`).
    pub read_size: usize,
    /// Smallest program unit in bytes (`NorFlash::WRITE_SIZE`).
    pub write_size: usize,
    /// Smallest erase unit in bytes (`NorFlash::ERASE_SIZE`).
    pub erase_size: usize,
    /// Whether programming over already programmed bytes (an AND of old and new) is allowed.
    pub multi_write: bool,
    /// Rated program/erase cycles per erase sector.
    pub endurance_cycles: u32,
    /// Datasheet timings.
    pub timing: FlashTiming,
}

impl FlashPart {
    /// Number of erase sectors in the whole part.
    pub const fn sectors(&self) -> usize {
        match self.capacity.checked_div(self.erase_size) {
            Some(n) => n,
            None => 0,
        }
    }
}

/// Winbond W25Q128JV SPI NOR (datasheet Rev M, 2024): 16 MiB, 256-byte pages programmed 1–256
/// bytes at a time into erased bytes, 4 KiB sector erase; tPP 0.4 / 3 ms, tSE 45 / 400 ms;
/// ≥ 100k cycles.
pub const W25Q128JV: FlashPart = FlashPart {
    name: "Winbond W25Q128JV (Rev M)",
    capacity: 16 * 1024 * 1024,
    read_size: 1,
    write_size: 1,
    erase_size: 4096,
    multi_write: false,
    endurance_cycles: 100_000,
    timing: FlashTiming {
        program_unit: 256,
        program_typ_ns: 400_000,
        program_max_ns: Some(3_000_000),
        erase_typ_ns: 45_000_000,
        erase_max_ns: Some(400_000_000),
    },
};

/// Simulator geometry of the [`W25Q128JV`]: byte reads and programs, 4 KiB sectors.
pub type W25q128jv<'a> = SimFlash<'a, 1, 1, 4096>;

/// Winbond W25Q16JV SPI NOR (datasheet Rev D, 2016; the Raspberry Pi Pico's flash): 2 MiB,
/// otherwise as the [`W25Q128JV`].
pub const W25Q16JV: FlashPart = FlashPart {
    name: "Winbond W25Q16JV (Rev D)",
    capacity: 2 * 1024 * 1024,
    ..W25Q128JV
};

/// Simulator geometry of the [`W25Q16JV`]: byte reads and programs, 4 KiB sectors.
pub type W25q16jv<'a> = SimFlash<'a, 1, 1, 4096>;

/// Nordic nRF52840 internal flash (NVMC): 1 MiB, 32-bit word-aligned writes only, 4 KiB page
/// erase; tWRITE ≈ 41 µs per word, tERASEPAGE ≈ 85 ms; 10k cycles (secondary sources, see
/// `flash-parts.md`). The part allows a word to be written a limited number of times before an
/// erase; the preset is strict (once), as `embedded-storage` requires.
pub const NRF52840: FlashPart = FlashPart {
    name: "Nordic nRF52840 NVMC",
    capacity: 1024 * 1024,
    read_size: 1,
    write_size: 4,
    erase_size: 4096,
    multi_write: false,
    endurance_cycles: 10_000,
    timing: FlashTiming {
        program_unit: 4,
        program_typ_ns: 41_000,
        program_max_ns: None,
        erase_typ_ns: 85_000_000,
        erase_max_ns: None,
    },
};

/// Simulator geometry of the [`NRF52840`]: byte reads, word programs, 4 KiB pages.
pub type Nrf52840<'a> = SimFlash<'a, 1, 4, 4096>;

/// A small-MCU internal flash, STM32L4-class: 1 MiB, 2 KiB pages, 64-bit (8-byte) double-word
/// programs (with ECC: a double word is written once per erase), 10k cycles.
///
/// Timings are typical figures of the STM32L476 datasheet (DS10198: 64-bit program ≈ 81.69 µs,
/// 2 KiB page erase ≈ 22.02 ms); they are not in `flash-parts.md` and no maximum is recorded.
pub const STM32L4: FlashPart = FlashPart {
    name: "STM32L4-class MCU flash (2 KiB pages, 64-bit writes)",
    capacity: 1024 * 1024,
    read_size: 1,
    write_size: 8,
    erase_size: 2048,
    multi_write: false,
    endurance_cycles: 10_000,
    timing: FlashTiming {
        program_unit: 8,
        program_typ_ns: 81_690,
        program_max_ns: None,
        erase_typ_ns: 22_020_000,
        erase_max_ns: None,
    },
};

/// Simulator geometry of the [`STM32L4`]-class flash: byte reads, 8-byte programs, 2 KiB pages.
pub type Stm32l4<'a> = SimFlash<'a, 1, 8, 2048>;

/// Every NOR preset, for benchmarks that report all of them.
pub const ALL_NOR: [&FlashPart; 4] = [&W25Q128JV, &W25Q16JV, &NRF52840, &STM32L4];

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};

    fn geometry<F: NorFlash>() -> (usize, usize, usize) {
        (F::READ_SIZE, F::WRITE_SIZE, F::ERASE_SIZE)
    }

    fn part_geometry(p: &FlashPart) -> (usize, usize, usize) {
        (p.read_size, p.write_size, p.erase_size)
    }

    #[test]
    fn aliases_match_parts() {
        assert_eq!(geometry::<W25q128jv>(), part_geometry(&W25Q128JV));
        assert_eq!(geometry::<W25q16jv>(), part_geometry(&W25Q16JV));
        assert_eq!(geometry::<Nrf52840>(), part_geometry(&NRF52840));
        assert_eq!(geometry::<Stm32l4>(), part_geometry(&STM32L4));
        for p in ALL_NOR {
            assert_eq!(p.capacity % p.erase_size, 0, "{}", p.name);
            assert_eq!(p.erase_size % p.write_size, 0, "{}", p.name);
            assert!(p.sectors() > 0);
        }
        assert_eq!(W25Q16JV.sectors(), 512);
        assert_eq!(W25Q128JV.sectors(), 4096);
    }

    #[test]
    fn units_and_busy_time() {
        let t = W25Q128JV.timing;
        assert_eq!(t.units_touched(0, 0), 0);
        assert_eq!(t.units_touched(0, 256), 1);
        assert_eq!(t.units_touched(255, 2), 2);
        assert_eq!(t.units_touched(0, 4096), 16);
        let stats = FlashStats {
            program_units: 16,
            erases: 1,
            ..FlashStats::default()
        };
        assert_eq!(t.busy_time_ns(&stats), 16 * 400_000 + 45_000_000);
        assert_eq!(
            t.busy_time_max_ns(&stats),
            Some(16 * 3_000_000 + 400_000_000)
        );
        assert_eq!(NRF52840.timing.busy_time_max_ns(&stats), None);
        assert_eq!(
            NRF52840.timing.busy_time_max_ns(&FlashStats::default()),
            Some(0)
        );
        // A real W25Q read is not timed.
        let mut mem = [0xFFu8; 8192];
        let mut wear = [0u32; 2];
        let mut f = W25q16jv::from_part(&mut mem, &mut wear, &W25Q16JV, 1).unwrap();
        let mut b = [0u8; 16];
        f.read(0, &mut b).unwrap();
        assert_eq!(f.busy_time_ns(), 0);
    }
}
