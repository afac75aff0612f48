//! Sub-block packing: the secondary slot bitmap of one shared block.
//!
//! A shared block is cut into 64-byte units; one bit per unit (1 = occupied). An object of class
//! `c` (64, 128, ..., 2048 bytes; a length rounds up to the next power of two) takes `c / 64`
//! contiguous units starting at a multiple of `c / 64`, so every slot is aligned to its class.
//! The bitmap is a byte slice of `block_size / 512` bytes (at least 1), LSB first.

/// Bytes per unit.
pub const UNIT: usize = 64;
/// The slot size classes.
pub const CLASSES: [usize; 6] = [64, 128, 256, 512, 1024, 2048];

/// Class index (0..6) for a stored length, or `None` if it exceeds 2048 or half the block.
pub fn class_for(len: usize, block_size: usize) -> Option<u8> {
    let c = len.max(UNIT).checked_next_power_of_two()?;
    if c > block_size / 2 {
        return None;
    }
    CLASSES.iter().position(|x| *x == c).map(|i| i as u8)
}

/// Size in bytes of class index `class`.
pub fn class_size(class: u8) -> Option<usize> {
    CLASSES.get(class as usize).copied()
}

/// Bytes of slot bitmap for a block size.
pub const fn bitmap_bytes(block_size: usize) -> usize {
    (block_size / UNIT).div_ceil(8)
}

/// The slot bitmap of one shared block.
#[doc(alias = "SubBlockBitmap")]
pub struct SlotBitmap<'a> {
    bits: &'a mut [u8],
    units: usize,
}

/// A read-only view of a slot bitmap.
#[derive(Clone, Copy)]
pub struct SlotBitmapRef<'a> {
    bits: &'a [u8],
    units: usize,
}

fn bit(bits: &[u8], i: usize) -> bool {
    bits.get(i / 8).is_none_or(|b| b & (1 << (i % 8)) != 0)
}

impl<'a> SlotBitmapRef<'a> {
    /// Views `bits` as the slot bitmap of a block of `block_size` bytes. `None` if the slice
    /// has the wrong length for that block size.
    pub fn new(bits: &'a [u8], block_size: usize) -> Option<Self> {
        (bits.len() == bitmap_bytes(block_size)).then_some(SlotBitmapRef {
            bits,
            units: block_size / UNIT,
        })
    }
    /// The bitmap's bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bits
    }
    /// Whether unit `i` is occupied (out of range reads as occupied).
    pub fn occupied(&self, i: usize) -> bool {
        i >= self.units || bit(self.bits, i)
    }
    /// Free units.
    pub fn free_units(&self) -> usize {
        // `units` is a multiple of 8 (block size >= 512), so whole bytes cover it exactly;
        // counted a word at a time (a best-fit put asks every entry).
        let mut words = self.bits.chunks_exact(8);
        let whole: usize = words
            .by_ref()
            .map(|w| {
                let w = <[u8; 8]>::try_from(w).map_or(0, u64::from_le_bytes);
                // Most shared blocks are full: skip the bit count for them.
                if w == u64::MAX {
                    0
                } else {
                    w.count_zeros() as usize
                }
            })
            .sum();
        whole
            + words
                .remainder()
                .iter()
                .map(|b| b.count_zeros() as usize)
                .sum::<usize>()
    }
    /// Free slots of class `class` (aligned positions wholly free).
    pub fn free_slots(&self, class: u8) -> usize {
        let Some(per) = class_size(class).map(|c| c / UNIT) else {
            return 0;
        };
        (0..self.units / per.max(1))
            .filter(|s| self.range_free(s * per, per))
            .count()
    }
    /// Whether every unit is free.
    pub fn fully_free(&self) -> bool {
        self.free_units() == self.units
    }
    /// Whether every unit is occupied.
    pub fn fully_occupied(&self) -> bool {
        self.free_units() == 0
    }
    /// Whether units `at .. at + n` are all free.
    pub fn range_free(&self, at: usize, n: usize) -> bool {
        at.checked_add(n).is_some_and(|e| e <= self.units)
            && (at..at + n).all(|i| !bit(self.bits, i))
    }
    /// Whether units `at .. at + n` are all occupied.
    pub fn range_occupied(&self, at: usize, n: usize) -> bool {
        at.checked_add(n).is_some_and(|e| e <= self.units)
            && (at..at + n).all(|i| bit(self.bits, i))
    }
    /// First aligned free slot of class `class`: its first unit.
    pub fn find(&self, class: u8) -> Option<usize> {
        let per = class_size(class)? / UNIT;
        if per >= 8 {
            // Whole aligned groups of bytes.
            let nb = per / 8;
            return self
                .bits
                .chunks_exact(nb)
                .position(|g| g.iter().all(|b| *b == 0))
                .map(|g| g * per)
                .filter(|at| at + per <= self.units);
        }
        let mask = (1u8 << per) - 1;
        for (i, b) in self.bits.iter().enumerate() {
            if *b == 0xFF {
                continue;
            }
            for shift in (0..8).step_by(per) {
                if b & (mask << shift) == 0 {
                    return Some(i * 8 + shift);
                }
            }
        }
        None
    }
}

impl<'a> SlotBitmap<'a> {
    /// Views `bits` as the slot bitmap of a block of `block_size` bytes.
    pub fn new(bits: &'a mut [u8], block_size: usize) -> Option<Self> {
        (bits.len() == bitmap_bytes(block_size)).then_some(SlotBitmap {
            bits,
            units: block_size / UNIT,
        })
    }
    /// A read-only view.
    pub fn view(&self) -> SlotBitmapRef<'_> {
        SlotBitmapRef {
            bits: self.bits,
            units: self.units,
        }
    }
    /// Marks units `at..at + n` occupied (`true`) or free; units past the block are ignored.
    /// (For repair tools; the engine allocates and frees whole slots.)
    pub fn set_range(&mut self, at: usize, n: usize, occupied: bool) {
        self.set(at, n, occupied);
    }
    fn set(&mut self, at: usize, n: usize, v: bool) {
        for i in at..at.saturating_add(n).min(self.units) {
            if let Some(b) = self.bits.get_mut(i / 8) {
                if v {
                    *b |= 1 << (i % 8);
                } else {
                    *b &= !(1 << (i % 8));
                }
            }
        }
    }
    /// Allocates an aligned slot of class `class`; returns its first unit.
    pub fn allocate(&mut self, class: u8) -> Option<usize> {
        let at = self.view().find(class)?;
        self.set(at, class_size(class)? / UNIT, true);
        Some(at)
    }
    /// Frees the slot of class `class` at unit `at`. `false` (nothing changed) if the slot is
    /// misaligned, out of range or not wholly occupied.
    pub fn free(&mut self, at: usize, class: u8) -> bool {
        let Some(per) = class_size(class).map(|c| c / UNIT) else {
            return false;
        };
        if !at.is_multiple_of(per) || !self.view().range_occupied(at, per) {
            return false;
        }
        self.set(at, per, false);
        true
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn classes_and_bounds() {
        assert_eq!(class_for(1, 4096), Some(0));
        assert_eq!(class_for(65, 4096), Some(1));
        assert_eq!(class_for(2048, 4096), Some(5));
        assert_eq!(class_for(2049, 4096), None);
        assert_eq!(class_for(300, 512), None);
        assert_eq!(class_for(256, 512), Some(2));
        assert_eq!(bitmap_bytes(512), 1);
        assert_eq!(bitmap_bytes(4096), 8);
        let mut b = [0u8; 8];
        assert!(SlotBitmap::new(&mut b, 512).is_none());
    }

    #[test]
    fn fill_mixed_classes() {
        let mut b = [0u8; 8];
        let mut s = SlotBitmap::new(&mut b, 4096).unwrap();
        assert_eq!(s.allocate(5), Some(0));
        assert_eq!(s.allocate(0), Some(32));
        assert_eq!(s.allocate(1), Some(34));
        assert_eq!(s.allocate(5), None);
        assert!(!s.free(33, 0));
        assert!(s.free(32, 0));
        assert!(!s.free(32, 0));
        assert_eq!(s.view().free_units(), 64 - 32 - 2);
    }

    proptest! {
        #[test]
        fn slot_bitmap_matches_model(ops in proptest::collection::vec((any::<bool>(), 0u8..6, any::<u16>()), 1..200)) {
            let bs = 4096;
            let mut bytes = vec![0u8; bitmap_bytes(bs)];
            let mut s = SlotBitmap::new(&mut bytes, bs).unwrap();
            let mut model = [false; 64];
            let mut live: Vec<(usize, u8)> = Vec::new();
            for (alloc, class, pick) in ops {
                let per = class_size(class).unwrap() / UNIT;
                if alloc || live.is_empty() {
                    let want = (0..64 / per).map(|k| k * per).find(|at| (*at..at + per).all(|i| !model[i]));
                    let got = s.allocate(class);
                    prop_assert_eq!(got, want);
                    if let Some(at) = got {
                        prop_assert_eq!(at % per, 0);
                        for m in model.iter_mut().skip(at).take(per) { *m = true; }
                        live.push((at, class));
                    }
                } else {
                    let (at, c) = live.swap_remove(pick as usize % live.len());
                    prop_assert!(s.free(at, c));
                    for m in model.iter_mut().skip(at).take(class_size(c).unwrap() / UNIT) { *m = false; }
                }
                let free = model.iter().filter(|x| !**x).count();
                prop_assert_eq!(s.view().free_units(), free);
                prop_assert_eq!(s.view().fully_free(), free == 64);
                prop_assert_eq!(s.view().fully_occupied(), free == 0);
                for c in 0..6u8 {
                    let per = class_size(c).unwrap() / UNIT;
                    let want = (0..64 / per).filter(|k| (k * per..k * per + per).all(|i| !model[i])).count();
                    prop_assert_eq!(s.view().free_slots(c), want);
                }
            }
        }
    }
}
