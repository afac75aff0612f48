//! Memory sized at compile time: a [`MemoryPlan`] says what a volume needs (block size, whether
//! the device reads part of a block, blocks to cache, shared blocks to index, transaction
//! room), its sizes are `const fn`s of it, and [`Memory`] holds the arrays they size, with a
//! `const fn new()` so it can live in a `static`. A plan that cannot work (a block size that is
//! not a power of two in 512..=65536, more cached blocks than the cache takes) fails to compile
//! when it is a `const`, as does a [`Memory`] too small for its block size.
//!
//! ```
//! use vde_nostd::{MountError, Memory, MemoryPlan};
//!
//! // 4 KiB NOR sectors read in part, 16 shared blocks of small objects indexed in RAM.
//! const PLAN: MemoryPlan = MemoryPlan::new(4096).partial_reads().shared_blocks(16);
//! // The type `Memory<{ PLAN.scratch() }, { PLAN.txn() }, { PLAN.index() }, 4096>`:
//! static MEM: static_cell_like::Cell<vde_nostd::Memory!(PLAN)> =
//!     static_cell_like::Cell::new(Memory::new());
//! # mod static_cell_like { pub struct Cell<T>(pub T); impl<T> Cell<T> {
//! #     pub const fn new(t: T) -> Self { Cell(t) } } }
//! // 4096 + 128 + 1216 scratch, 2048 + 256 transaction room, 16 x 24 index.
//! assert_eq!(PLAN.total(), 5440 + 2304 + 384);
//! ```
//!
//! Invariant: a [`Memory`] built by [`Memory::new`] holds at least the minimum buffers for
//! blocks of `BS` bytes on a device that reads part of a block ([`Buffers::scratch_min`],
//! [`Buffers::txn_min`]); [`Memory::buffers`] hands them to a volume.

use crate::block_cache::MAX_CACHED;
use crate::device::valid_block_size;
use crate::format::slot_index;
use crate::volume::Buffers;

/// The transaction capacity a plan gives unless told otherwise: enough for any object
/// operation (a put changes at most a few blocks) and a small batch.
pub const DEFAULT_TX_BLOCKS: usize = 8;

/// What a volume's memory must hold, computed at compile time. Start from
/// [`MemoryPlan::new`] and add what the application uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MemoryPlan {
    block_size: usize,
    partial: bool,
    cached: usize,
    shared_blocks: usize,
    txn: usize,
    tx_blocks: usize,
}

impl MemoryPlan {
    /// The smallest memory for blocks of `block_size` bytes on a device that reads only whole
    /// blocks: two blocks of scratch with the log's dirty-block table, the smallest transaction
    /// room ([`Buffers::txn_min`]), no slot index. Panics (a compile error in a `const`) if
    /// the block size is not a power of two in 512..=65536.
    pub const fn new(block_size: usize) -> MemoryPlan {
        assert!(
            valid_block_size(block_size),
            "the block size must be a power of two in 512..=65536"
        );
        MemoryPlan {
            block_size,
            partial: false,
            cached: 0,
            shared_blocks: 0,
            txn: Buffers::txn_min(block_size),
            tx_blocks: DEFAULT_TX_BLOCKS,
        }
    }

    /// The device reads part of a block ([`crate::BlockDevice::reads_partial`]: NOR flash,
    /// files): the log reads through a 128-byte page instead of a second block.
    pub const fn partial_reads(mut self) -> MemoryPlan {
        self.partial = true;
        self
    }

    /// Caches `n` committed blocks in RAM (whole blocks; see [`Buffers::scratch_with_cache`]).
    /// Panics (a compile error in a `const`) past [`MAX_CACHED`].
    pub const fn cache_blocks(mut self, n: usize) -> MemoryPlan {
        assert!(n <= MAX_CACHED, "at most 8 cached blocks");
        self.cached = n;
        self
    }

    /// Indexes up to `n` shared blocks of packed objects in RAM (each holds many small
    /// objects, in 64-byte units): [`slot_index::entry_size`] bytes each.
    pub const fn shared_blocks(mut self, n: usize) -> MemoryPlan {
        self.shared_blocks = n;
        self
    }

    /// Room for transactions of up to `n` whole-block writes ([`Buffers::txn_for_blocks`]),
    /// if that is more than the objects need.
    pub const fn whole_block_writes(mut self, n: usize) -> MemoryPlan {
        let t = Buffers::txn_for_blocks(self.block_size, n);
        if t > self.txn {
            self.txn = t;
        }
        if n > self.tx_blocks {
            self.tx_blocks = n;
        }
        self
    }

    /// Lets one transaction change up to `n` distinct blocks (the volume's `K`; default
    /// [`DEFAULT_TX_BLOCKS`], at least what [`MemoryPlan::whole_block_writes`] asked for).
    /// A format (or an online addition) of the objects or names module changes 7 blocks at
    /// once, so below 7 only volumes without modules can be formatted: such a format fails
    /// with [`crate::Error::TxCapacity`] and leaves no volume behind.
    /// Panics (a compile error in a `const`) past 64, the most one transaction may change.
    pub const fn transaction_blocks(mut self, n: usize) -> MemoryPlan {
        assert!(n >= 1 && n <= 64, "a transaction changes 1 to 64 blocks");
        self.tx_blocks = n;
        self
    }

    /// The volume's transaction capacity `K` for this plan. [`Memory::buffers`] carries it to
    /// the volume, so a volume mounted on them has it without a type argument; a type that
    /// names the volume writes `Volume<'_, D, { PLAN.tx_blocks() }>`.
    pub const fn tx_blocks(&self) -> usize {
        self.tx_blocks
    }

    /// The block size.
    pub const fn block_size(&self) -> usize {
        self.block_size
    }

    /// Bytes of scratch ([`Buffers::scratch`]).
    pub const fn scratch(&self) -> usize {
        if self.cached > 0 {
            Buffers::scratch_with_cache(self.block_size, self.cached)
        } else {
            Buffers::scratch_min(self.block_size, self.partial)
        }
    }

    /// Bytes of transaction room ([`Buffers::txn`]).
    pub const fn txn(&self) -> usize {
        self.txn
    }

    /// Bytes of slot index ([`Buffers::index`]).
    pub const fn index(&self) -> usize {
        self.shared_blocks * slot_index::entry_size(self.block_size)
    }

    /// All of it.
    pub const fn total(&self) -> usize {
        self.scratch() + self.txn() + self.index()
    }
}

/// A volume's buffers as arrays, for a `static` (or the stack): `SCRATCH`, `TXN` and `INDEX`
/// bytes for blocks of `BS` bytes. Name the type from a [`MemoryPlan`] with the
/// [`Memory!`](crate::Memory!) macro rather than by hand.
pub struct Memory<
    const SCRATCH: usize,
    const TXN: usize,
    const INDEX: usize,
    const BS: usize,
    const K: usize = DEFAULT_TX_BLOCKS,
> {
    scratch: [u8; SCRATCH],
    txn: [u8; TXN],
    index: [u8; INDEX],
}

impl<
        const SCRATCH: usize,
        const TXN: usize,
        const INDEX: usize,
        const BS: usize,
        const K: usize,
    > Memory<SCRATCH, TXN, INDEX, BS, K>
{
    /// Zeroed memory. Fails to compile if the sizes cannot carry a volume of `BS`-byte blocks
    /// (on a device that reads part of a block, the least any device needs).
    pub const fn new() -> Self {
        const {
            assert!(
                valid_block_size(BS),
                "the block size must be a power of two in 512..=65536"
            );
            assert!(
                SCRATCH >= Buffers::scratch_min(BS, true),
                "scratch below Buffers::scratch_min for this block size"
            );
            assert!(
                TXN >= Buffers::txn_min(BS),
                "transaction room below Buffers::txn_min for this block size"
            );
            assert!(
                K >= 1 && K <= crate::format::wal_record::MAX_DIRTY,
                "a transaction changes 1 to 64 blocks"
            );
        };
        Memory {
            scratch: [0; SCRATCH],
            txn: [0; TXN],
            index: [0; INDEX],
        }
    }

    /// The buffers for [`crate::Volume::mount`], [`crate::Volume::format`] or
    /// [`crate::Volume::mount_or_format`]. The volume borrows them; once it is dropped they
    /// can be handed out again (to mount again after an error, say).
    /// The transaction capacity `K` (the plan's [`MemoryPlan::tx_blocks`]) comes with them, so
    /// the volume's type needs no argument.
    pub fn buffers(&mut self) -> Buffers<'_, K> {
        Buffers {
            scratch: &mut self.scratch,
            txn: &mut self.txn,
            index: &mut self.index,
        }
    }
}

impl<
        const SCRATCH: usize,
        const TXN: usize,
        const INDEX: usize,
        const BS: usize,
        const K: usize,
    > Default for Memory<SCRATCH, TXN, INDEX, BS, K>
{
    fn default() -> Self {
        Self::new()
    }
}

/// The [`Memory`] type a [`MemoryPlan`] constant sizes:
/// `Memory!(PLAN)` is `Memory<{ PLAN.scratch() }, { PLAN.txn() }, { PLAN.index() },
/// { PLAN.block_size() }, { PLAN.tx_blocks() }>`.
#[macro_export]
macro_rules! Memory {
    ($plan:expr) => {
        $crate::memory::Memory<
            { $plan.scratch() },
            { $plan.txn() },
            { $plan.index() },
            { $plan.block_size() },
            { $plan.tx_blocks() },
        >
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: MemoryPlan = MemoryPlan::new(4096).partial_reads().shared_blocks(16);

    #[test]
    fn a_plan_sizes_the_memory_as_the_buffer_minimums_do() {
        assert_eq!(PLAN.scratch(), Buffers::scratch_min(4096, true));
        assert_eq!(PLAN.txn(), Buffers::txn_min(4096));
        assert_eq!(PLAN.index(), 16 * slot_index::entry_size(4096));
        let cached = MemoryPlan::new(512).cache_blocks(3).whole_block_writes(4);
        assert_eq!(cached.scratch(), Buffers::scratch_with_cache(512, 3));
        assert_eq!(cached.txn(), Buffers::txn_for_blocks(512, 4));
        assert_eq!(PLAN.tx_blocks(), DEFAULT_TX_BLOCKS);
        assert_eq!(MemoryPlan::new(512).whole_block_writes(16).tx_blocks(), 16);
        assert_eq!(MemoryPlan::new(512).transaction_blocks(3).tx_blocks(), 3);
        let mut mem = <Memory!(PLAN)>::new();
        let b = mem.buffers();
        assert_eq!(
            (b.scratch.len(), b.txn.len(), b.index.len()),
            (PLAN.scratch(), PLAN.txn(), PLAN.index())
        );
    }

    #[test]
    fn the_buffers_carry_the_plans_transaction_capacity_to_the_volume() {
        const SMALL: MemoryPlan = MemoryPlan::new(512)
            .whole_block_writes(3)
            .transaction_blocks(3);
        const WIDE: MemoryPlan = MemoryPlan::new(512).whole_block_writes(12);
        let mut image = [0u8; 512 * 64];
        let mut small = <Memory!(SMALL)>::new();
        let dev = crate::RamDevice::new(&mut image, 512).unwrap();
        let mut opts = crate::FormatOptions::new([7; 16]);
        // Adding the objects module takes a 7-block transaction (two superblocks, directory,
        // pointer table, bitmap, the slot index's first blocks): 3 cannot, and the format that
        // failed leaves no volume behind.
        let r = crate::Volume::mount_or_format(dev, &opts, small.buffers());
        assert!(matches!(r, Err(crate::MountError::TxCapacity)));
        drop(r);
        let dev = crate::RamDevice::new(&mut image, 512).unwrap();
        assert!(matches!(
            crate::Volume::mount(dev, small.buffers()),
            Err(crate::MountError::NotFormatted)
        ));
        // No type argument: K comes from the memory's type.
        opts.modules = crate::ModuleSet::empty();
        let dev = crate::RamDevice::new(&mut image, 512).unwrap();
        let vol = crate::Volume::mount_or_format(dev, &opts, small.buffers()).unwrap();
        assert_eq!(vol.tx_capacity(), 3);
        drop(vol);
        let mut wide = <Memory!(WIDE)>::new();
        let dev = crate::RamDevice::new(&mut image, 512).unwrap();
        let vol = crate::Volume::mount(dev, wide.buffers()).unwrap();
        assert_eq!(vol.tx_capacity(), 12);
    }

    #[test]
    #[should_panic(expected = "power of two")]
    fn a_plan_refuses_a_bad_block_size() {
        let _ = MemoryPlan::new(core::hint::black_box(1000));
    }
}
