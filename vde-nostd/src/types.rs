//! Newtypes for the numbers the engine passes around: block numbers, transaction sequence
//! numbers and WAL epochs. Keeping them distinct types stops a sequence number from being used
//! as a block address by mistake.

/// A block address on the device (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BlockNo(pub u64);

impl BlockNo {
    /// The raw block number.
    pub const fn get(self) -> u64 {
        self.0
    }
    /// `self + n`, or `None` on overflow.
    pub fn checked_add(self, n: u64) -> Option<BlockNo> {
        self.0.checked_add(n).map(BlockNo)
    }
}

/// A transaction sequence number: strictly increasing over the life of a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Seq(pub u64);

impl Seq {
    /// The next sequence number (saturating: 2^64 transactions are never reached).
    pub const fn next(self) -> Seq {
        Seq(self.0.saturating_add(1))
    }
}

/// A WAL epoch: incremented at every checkpoint, so that log content written in an earlier
/// epoch can never validate in a later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Epoch(pub u64);

impl Epoch {
    /// The next epoch.
    pub const fn next(self) -> Epoch {
        Epoch(self.0.saturating_add(1))
    }
}

/// A contiguous run of blocks: `start .. start + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Extent {
    /// First block of the run.
    pub start: BlockNo,
    /// Number of blocks in the run.
    pub len: u64,
}

impl Extent {
    /// One past the last block, or `None` on overflow.
    pub fn end(&self) -> Option<u64> {
        self.start.0.checked_add(self.len)
    }
    /// Whether two extents share at least one block.
    pub fn overlaps(&self, other: &Extent) -> bool {
        match (self.end(), other.end()) {
            (Some(a_end), Some(b_end)) => self.start.0 < b_end && other.start.0 < a_end,
            _ => true,
        }
    }
    /// Whether `b` lies inside this extent.
    pub fn contains(&self, b: BlockNo) -> bool {
        b.0 >= self.start.0 && self.end().is_some_and(|e| b.0 < e)
    }
}
