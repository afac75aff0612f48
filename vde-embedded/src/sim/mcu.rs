//! The program rules of a microcontroller's internal flash, over any NOR flash.
//!
//! Owns: [`McuFlash`], a wrapper (in the manner of smoltcp's `FaultInjector`) that enforces on
//! any [`NorFlash`] what ECC-protected MCU flash demands and a plain SPI NOR part does not:
//! - every `WRITE_SIZE` unit (a 32-bit word on nRF52, a 64-bit double word on STM32L4 and TI
//!   C2000, a 128-bit quad word on STM32U5) is programmed at most [`McuRules::writes_per_unit`]
//!   times between two erases, **whatever the bytes** (programming a word with `0xFF` spends a
//!   write too: the ECC bits are written with it);
//! - a row of [`McuRules::row_bytes`] takes at most [`McuRules::writes_per_row`] programs between
//!   two erases of its sector (TI CC26xx: 83 per 256-byte row).
//!
//! A program that would break a rule is refused before anything changes
//! ([`McuError::UnitWritten`], [`McuError::RowFull`]) and counted in [`McuFlash::violations`],
//! so a test can assert that none happened even where the caller turned the error into
//! something else. The counters live in caller memory (one byte per unit, one `u16` per row),
//! so the wrapper needs no heap and runs on a target too.
//!
//! Invariants: `units[u]` is the number of programs that reached unit `u` since its sector was
//! last erased through the wrapper (a program cut by a power loss counts: it reached the
//! medium); `rows[r]` the same per row. A failed erase changes no counter. After the content is
//! replaced behind the wrapper's back (a harness restoring a snapshot), [`McuFlash::resync`]
//! rebuilds the counters from the content: a unit holding any programmed byte counts one write,
//! a blank unit none (its history is lost), a row with a programmed unit one program.

use core::fmt;

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

use super::{SimFlash, ERASED};

/// What an MCU flash allows between two erases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct McuRules {
    /// Programs one `WRITE_SIZE` unit takes between erases (at least 1).
    pub writes_per_unit: u8,
    /// Bytes per row for the row limit (a multiple of `WRITE_SIZE`; 0: no row limit).
    pub row_bytes: usize,
    /// Programs one row takes between erases (ignored when `row_bytes` is 0).
    pub writes_per_row: u16,
}

impl McuRules {
    /// Nordic nRF52840 NVMC: 32-bit words, each written at most twice before an erase
    /// (`n_WRITE` = 2, product specification 4.3.2), no row limit. Use with `WRITE_SIZE` 4.
    pub const NRF52840: McuRules = McuRules {
        writes_per_unit: 2,
        row_bytes: 0,
        writes_per_row: 0,
    };
    /// ST STM32L4 (RM0351): 64-bit double words with ECC, each written once. `WRITE_SIZE` 8.
    pub const STM32L4: McuRules = McuRules {
        writes_per_unit: 1,
        row_bytes: 0,
        writes_per_row: 0,
    };
    /// ST STM32U5 (RM0456): 128-bit quad words with ECC, each written once. `WRITE_SIZE` 16.
    pub const STM32U5: McuRules = McuRules {
        writes_per_unit: 1,
        row_bytes: 0,
        writes_per_row: 0,
    };
    /// TI CC26xx (SWRS207J): each 32-bit word once, at most 83 programs per 256-byte row.
    /// `WRITE_SIZE` 4.
    pub const CC26XX: McuRules = McuRules {
        writes_per_unit: 1,
        row_bytes: 256,
        writes_per_row: 83,
    };

    /// Counter entries needed for `capacity` bytes of flash with `write_size`-byte units:
    /// `(units, rows)`.
    pub const fn counters(&self, capacity: usize, write_size: usize) -> (usize, usize) {
        let units = if write_size == 0 {
            0
        } else {
            capacity.div_ceil(write_size)
        };
        let rows = if self.row_bytes == 0 {
            0
        } else {
            capacity.div_ceil(self.row_bytes)
        };
        (units, rows)
    }
}

/// Errors of an [`McuFlash`]: the inner flash's, or a broken rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum McuError<E> {
    /// The inner flash failed.
    Inner(E),
    /// The unit at `offset` has had all its programs since the last erase.
    UnitWritten {
        /// Flash address of the unit.
        offset: u32,
    },
    /// The row holding `offset` has had all its programs since the last erase.
    RowFull {
        /// Flash address of the first byte of the program in that row.
        offset: u32,
    },
}

impl<E: NorFlashError> NorFlashError for McuError<E> {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            McuError::Inner(e) => e.kind(),
            McuError::UnitWritten { .. } | McuError::RowFull { .. } => NorFlashErrorKind::Other,
        }
    }
}

impl<E: fmt::Display> fmt::Display for McuError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            McuError::Inner(e) => e.fmt(f),
            McuError::UnitWritten { offset } => {
                write!(
                    f,
                    "flash unit at {offset:#x} already programmed since its erase"
                )
            }
            McuError::RowFull { offset } => {
                write!(
                    f,
                    "flash row at {offset:#x} has had all its programs since its erase"
                )
            }
        }
    }
}

#[cfg(feature = "std")]
impl<E: fmt::Debug + fmt::Display> std::error::Error for McuError<E> {}

/// Why an [`McuFlash`] could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum McuSetupError {
    /// `writes_per_unit` is 0, a row limit of 0 programs, or `row_bytes` is not a multiple of
    /// the flash's `WRITE_SIZE` or does not divide its `ERASE_SIZE`.
    BadRules,
    /// A counter slice is shorter than [`McuRules::counters`] says.
    CountersTooShort {
        /// Unit counters needed.
        units: usize,
        /// Row counters needed.
        rows: usize,
    },
}

impl fmt::Display for McuSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            McuSetupError::BadRules => f.write_str("MCU flash rules do not fit the geometry"),
            McuSetupError::CountersTooShort { units, rows } => {
                write!(f, "need {units} unit counters and {rows} row counters")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for McuSetupError {}

/// A NOR flash held to MCU program rules. See the [module docs](self).
pub struct McuFlash<'a, F> {
    inner: F,
    rules: McuRules,
    units: &'a mut [u8],
    rows: &'a mut [u16],
    violations: u64,
    first_violation: Option<u32>,
}

impl<F> fmt::Debug for McuFlash<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McuFlash")
            .field("rules", &self.rules)
            .field("violations", &self.violations)
            .field("first_violation", &self.first_violation)
            .finish()
    }
}

#[cfg(feature = "defmt")]
impl<F> defmt::Format for McuFlash<'_, F> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "McuFlash {{ rules: {}, violations: {} }}",
            self.rules,
            self.violations
        )
    }
}

impl<'a, F: NorFlash> McuFlash<'a, F> {
    /// Wraps `inner` (whose content must be what the counters say: blank, for fresh counters)
    /// with `rules`, counting in `units` and `rows` (sized by [`McuRules::counters`]; they are
    /// zeroed here).
    pub fn new(
        inner: F,
        rules: McuRules,
        units: &'a mut [u8],
        rows: &'a mut [u16],
    ) -> Result<Self, McuSetupError> {
        let row_ok = rules.row_bytes == 0
            || (rules.writes_per_row > 0
                && rules.row_bytes.is_multiple_of(F::WRITE_SIZE.max(1))
                && F::ERASE_SIZE.is_multiple_of(rules.row_bytes));
        if rules.writes_per_unit == 0 || !row_ok {
            return Err(McuSetupError::BadRules);
        }
        let (nu, nr) = rules.counters(inner.capacity(), F::WRITE_SIZE.max(1));
        if units.len() < nu || rows.len() < nr {
            return Err(McuSetupError::CountersTooShort {
                units: nu,
                rows: nr,
            });
        }
        units.fill(0);
        rows.fill(0);
        Ok(McuFlash {
            inner,
            rules,
            units,
            rows,
            violations: 0,
            first_violation: None,
        })
    }

    /// Programs refused for breaking a rule, since creation.
    pub fn violations(&self) -> u64 {
        self.violations
    }

    /// Address of the first refused program, if any.
    pub fn first_violation(&self) -> Option<u32> {
        self.first_violation
    }

    /// The rules.
    pub fn rules(&self) -> McuRules {
        self.rules
    }

    /// The wrapped flash.
    pub fn inner(&self) -> &F {
        &self.inner
    }

    /// The wrapped flash, mutably (programs and erases through it bypass the counters; call
    /// [`resync`](Self::resync) after changing its content).
    pub fn inner_mut(&mut self) -> &mut F {
        &mut self.inner
    }

    fn refuse<E>(&mut self, e: McuError<E>, at: u32) -> McuError<E> {
        self.violations = self.violations.saturating_add(1);
        self.first_violation.get_or_insert(at);
        e
    }
}

impl<'a, 'm, const R: usize, const W: usize, const E: usize> McuFlash<'a, SimFlash<'m, R, W, E>> {
    /// Rebuilds the counters from the simulator's content, after it was replaced (see the
    /// [module docs](self) for what is lost).
    pub fn resync(&mut self) {
        let content = self.inner.bytes();
        for (u, c) in self.units.iter_mut().zip(content.chunks(W.max(1))) {
            *u = u8::from(c.iter().any(|&b| b != ERASED));
        }
        if self.rules.row_bytes > 0 {
            for (r, c) in self
                .rows
                .iter_mut()
                .zip(content.chunks(self.rules.row_bytes))
            {
                *r = u16::from(c.iter().any(|&b| b != ERASED));
            }
        }
    }
}

impl<F: NorFlash> ErrorType for McuFlash<'_, F> {
    type Error = McuError<F::Error>;
}

impl<F: NorFlash> ReadNorFlash for McuFlash<'_, F> {
    const READ_SIZE: usize = F::READ_SIZE;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.inner.read(offset, bytes).map_err(McuError::Inner)
    }

    fn capacity(&self) -> usize {
        self.inner.capacity()
    }
}

impl<F: NorFlash> NorFlash for McuFlash<'_, F> {
    const WRITE_SIZE: usize = F::WRITE_SIZE;
    const ERASE_SIZE: usize = F::ERASE_SIZE;

    /// Erases through the inner flash; on success the erased sectors' counters restart.
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.inner.erase(from, to).map_err(McuError::Inner)?;
        let (from, to) = (from as usize, to as usize);
        let w = F::WRITE_SIZE.max(1);
        if let Some(u) = self.units.get_mut(from / w..to.div_ceil(w)) {
            u.fill(0);
        }
        if self.rules.row_bytes > 0 {
            let rb = self.rules.row_bytes;
            if let Some(r) = self.rows.get_mut(from / rb..to.div_ceil(rb)) {
                r.fill(0);
            }
        }
        Ok(())
    }

    /// Refuses a program that would break a rule; otherwise programs through the inner flash
    /// and counts it (also when a power cut stops it: it reached the medium).
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let w = F::WRITE_SIZE.max(1);
        let start = offset as usize;
        let end = start.saturating_add(bytes.len());
        let counted = start.is_multiple_of(w)
            && end.is_multiple_of(w)
            && end <= self.inner.capacity()
            && !bytes.is_empty();
        if !counted {
            // Misaligned, out of bounds or empty: the inner flash says which.
            return self.inner.write(offset, bytes).map_err(McuError::Inner);
        }
        let limit = self.rules.writes_per_unit;
        let full = self
            .units
            .get(start / w..end / w)
            .and_then(|u| u.iter().position(|&n| n >= limit));
        if let Some(i) = full {
            let at = offset.saturating_add((i * w) as u32);
            return Err(self.refuse(McuError::UnitWritten { offset: at }, at));
        }
        let rb = self.rules.row_bytes;
        if let Some(first_row) = start.checked_div(rb) {
            let rows = first_row..end.div_ceil(rb);
            let cap = self.rules.writes_per_row;
            let full = self
                .rows
                .get(rows.clone())
                .and_then(|r| r.iter().position(|&n| n >= cap));
            if let Some(i) = full {
                let at = u32::try_from((rows.start + i) * rb)
                    .unwrap_or(offset)
                    .max(offset);
                return Err(self.refuse(McuError::RowFull { offset: at }, at));
            }
            if let Some(r) = self.rows.get_mut(rows) {
                r.iter_mut().for_each(|n| *n = n.saturating_add(1));
            }
        }
        if let Some(u) = self.units.get_mut(start / w..end / w) {
            u.iter_mut().for_each(|n| *n = n.saturating_add(1));
        }
        self.inner.write(offset, bytes).map_err(McuError::Inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimConfig;

    /// Each unit once, no row limit.
    const ONCE: McuRules = McuRules {
        writes_per_unit: 1,
        row_bytes: 0,
        writes_per_row: 0,
    };

    fn sim<'m, const W: usize>(mem: &'m mut [u8], wear: &'m mut [u32]) -> SimFlash<'m, 1, W, 4096> {
        mem.fill(ERASED);
        SimFlash::new(mem, wear, SimConfig::new(1)).unwrap()
    }

    #[test]
    fn a_unit_takes_its_writes_then_is_refused_until_erased() {
        let (mut mem, mut wear) = ([0u8; 8192], [0u32; 2]);
        let (mut units, mut rows) = ([0u8; 2048], [0u16; 0]);
        let mut f =
            McuFlash::new(sim::<4>(&mut mem, &mut wear), ONCE, &mut units, &mut rows).unwrap();
        // All-0xFF data spends the write too.
        f.write(8, &[0xFF; 4]).unwrap();
        assert_eq!(
            f.write(8, &[0x00; 4]),
            Err(McuError::UnitWritten { offset: 8 })
        );
        assert_eq!(
            f.write(4, &[0x12; 8]),
            Err(McuError::UnitWritten { offset: 8 })
        );
        assert_eq!(f.violations(), 2);
        assert_eq!(f.first_violation(), Some(8));
        // Nothing changed by a refused program.
        let mut b = [0u8; 12];
        f.read(4, &mut b).unwrap();
        assert_eq!(b, [0xFF; 12]);
        f.write(4, &[0x12; 4]).unwrap();
        f.erase(0, 4096).unwrap();
        f.write(8, &[0x00; 4]).unwrap();
        // The other sector kept its counters.
        f.write(4096, &[1; 4]).unwrap();
        f.erase(0, 4096).unwrap();
        assert!(f.write(4096, &[1; 4]).is_err());
    }

    #[test]
    fn nrf52840_words_take_two_writes() {
        let (mut mem, mut wear) = ([0u8; 4096], [0u32; 1]);
        let (mut units, mut rows) = ([0u8; 1024], [0u16; 0]);
        let mut flash = sim::<4>(&mut mem, &mut wear);
        // nRF52 programs AND into the word (the simulator's multi-write mode).
        flash.config_mut().multi_write = true;
        let mut f = McuFlash::new(flash, McuRules::NRF52840, &mut units, &mut rows).unwrap();
        f.write(0, &[0xF0, 0xFF, 0xFF, 0xFF]).unwrap();
        f.write(0, &[0xFF, 0x0F, 0xFF, 0xFF]).unwrap();
        assert_eq!(
            f.write(0, &[0; 4]),
            Err(McuError::UnitWritten { offset: 0 })
        );
        let mut b = [0u8; 4];
        f.read(0, &mut b).unwrap();
        assert_eq!(b, [0xF0, 0x0F, 0xFF, 0xFF]);
    }

    #[test]
    fn a_row_takes_its_programs() {
        let (mut mem, mut wear) = ([0u8; 4096], [0u32; 1]);
        let (mut units, mut rows) = ([0u8; 1024], [0u16; 16]);
        let rules = McuRules {
            writes_per_unit: 1,
            row_bytes: 256,
            writes_per_row: 4,
        };
        let mut f =
            McuFlash::new(sim::<4>(&mut mem, &mut wear), rules, &mut units, &mut rows).unwrap();
        for i in 0..4u32 {
            f.write(i * 4, &[0; 4]).unwrap();
        }
        assert_eq!(f.write(16, &[0; 4]), Err(McuError::RowFull { offset: 16 }));
        // A program across rows 1 and 2 counts in both.
        f.write(508, &[0; 8]).unwrap();
        for i in 0..3u32 {
            f.write(256 + i * 4, &[0; 4]).unwrap();
            f.write(512 + 8 + i * 4, &[0; 4]).unwrap();
        }
        assert_eq!(
            f.write(300, &[0; 4]),
            Err(McuError::RowFull { offset: 300 })
        );
        assert_eq!(
            f.write(600, &[0; 4]),
            Err(McuError::RowFull { offset: 600 })
        );
        assert_eq!(f.violations(), 3);
        assert_eq!(f.first_violation(), Some(16));
        f.erase(0, 4096).unwrap();
        f.write(16, &[0; 4]).unwrap();
    }

    #[test]
    fn resync_counts_programmed_units_and_refuses_bad_setups() {
        let (mut mem, mut wear) = ([0u8; 4096], [0u32; 1]);
        let (mut units, mut rows) = ([0u8; 512], [0u16; 0]);
        let mut f = McuFlash::new(
            sim::<8>(&mut mem, &mut wear),
            McuRules::STM32L4,
            &mut units,
            &mut rows,
        )
        .unwrap();
        f.inner_mut().bytes_mut()[17] = 0x55;
        f.resync();
        assert_eq!(
            f.write(16, &[0x55; 8]),
            Err(McuError::UnitWritten { offset: 16 })
        );
        f.write(24, &[0x55; 8]).unwrap();

        let (mut mem, mut wear) = ([0u8; 4096], [0u32; 1]);
        let (mut units, mut rows) = ([0u8; 10], [0u16; 0]);
        assert_eq!(
            McuFlash::new(
                sim::<8>(&mut mem, &mut wear),
                McuRules::STM32L4,
                &mut units,
                &mut rows
            )
            .err(),
            Some(McuSetupError::CountersTooShort {
                units: 512,
                rows: 0
            })
        );
        let bad = McuRules {
            writes_per_unit: 1,
            row_bytes: 100,
            writes_per_row: 8,
        };
        let (mut units, mut rows) = ([0u8; 1024], [0u16; 64]);
        assert_eq!(
            McuFlash::new(sim::<4>(&mut mem, &mut wear), bad, &mut units, &mut rows).err(),
            Some(McuSetupError::BadRules)
        );
    }
}
