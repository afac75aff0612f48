//! The caller's memory for a volume: [`Buffers`], the minimum sizes as `const fn`s, and the check
//! a format or mount makes before touching the device.

use super::*;
use crate::device::valid_block_size;

pub(crate) fn check_buffers<E, const K: usize>(
    bs: usize,
    partial: bool,
    bufs: &Buffers<'_, K>,
) -> Result<(), Error<E>> {
    if !valid_block_size(bs) {
        return Err(Error::InvalidGeometry);
    }
    let need = Buffers::scratch_min(bs, partial);
    if bufs.scratch.len() < need {
        return Err(Error::BufferTooSmall { need });
    }
    if bufs.txn.len() < Buffers::txn_min(bs) {
        return Err(Error::BufferTooSmall {
            need: Buffers::txn_min(bs),
        });
    }
    Ok(())
}

/// Memory the caller hands to a volume, and the transaction capacity `K` it is sized for
/// (distinct blocks one transaction may change; at most 64). `K` is the volume's: a
/// [`crate::memory::Memory`] built from a [`crate::MemoryPlan`] hands out buffers of the plan's
/// capacity, so [`Volume::mount_or_format`]`(dev, &opts, mem.buffers())` needs no type
/// argument. Built by hand, `K` is inferred from the volume type it is given to, or is
/// [`crate::memory::DEFAULT_TX_BLOCKS`] where a type names none.
pub struct Buffers<'b, const K: usize = { crate::memory::DEFAULT_TX_BLOCKS }> {
    /// Scratch for reads, commits and checkpoints, plus the log's own read buffer: at least
    /// [`Buffers::scratch_min`] bytes. Whole blocks past the first
    /// [`Buffers::SCRATCH_BLOCKS`] cache committed blocks (up to
    /// [`crate::block_cache::MAX_CACHED`]; see [`Buffers::scratch_with_cache`]).
    pub scratch: &'b mut [u8],
    /// Transaction data: the bytes a transaction changes, plus
    /// [`crate::tx_buffer::RANGE_OVERHEAD`] per changed range (at least
    /// [`Buffers::txn_min`]). A put of `n` bytes stages about `n + 100`; a whole-block write
    /// ([`Transaction::write`]) stages the block ([`Buffers::txn_for_blocks`]).
    pub txn: &'b mut [u8],
    /// The in-RAM slot index: `8 + block_size / 256` bytes
    /// ([`crate::format::slot_index::entry_size`]) per shared block it can track. May be
    /// empty if no objects are packed.
    pub index: &'b mut [u8],
}

impl Buffers<'_> {
    /// Blocks of scratch a volume needs on any device (one for the volume, one for the log's
    /// reads).
    pub const SCRATCH_BLOCKS: usize = 2;

    /// The smallest `scratch` for blocks of `block_size` bytes: [`Buffers::SCRATCH_BLOCKS`]
    /// blocks, or, on a device that reads part of a block
    /// ([`crate::BlockDevice::reads_partial`]), one block and a log read buffer of
    /// [`crate::wal::MIN_LOG_PAGE`] bytes (the log reads through what is left after the
    /// block, up to a block).
    /// Either way, plus the log's dirty-block table ([`crate::wal::DIRTY_TABLE_BYTES`]).
    pub const fn scratch_min(block_size: usize, partial: bool) -> usize {
        let blocks = if partial {
            block_size + crate::wal::MIN_LOG_PAGE
        } else {
            Self::SCRATCH_BLOCKS * block_size
        };
        blocks + crate::wal::DIRTY_TABLE_BYTES
    }

    /// A `scratch` for blocks of `block_size` bytes that also caches `cached` committed blocks
    /// (at most [`crate::block_cache::MAX_CACHED`] count): a block read again is then copied
    /// from RAM instead of rebuilt from the log's records and read from the device. A put reads
    /// its shared block and the slot index's block, a name lookup the name table's blocks: on
    /// NAND, where every page read costs 25 µs or more, 4 cached blocks take a durable put from
    /// 22 page reads to 0.4 on average (vde-bench's NAND row).
    pub const fn scratch_with_cache(block_size: usize, cached: usize) -> usize {
        (Self::SCRATCH_BLOCKS + cached) * block_size + crate::wal::DIRTY_TABLE_BYTES
    }

    /// The smallest `txn` for blocks of `block_size` bytes: room for the put of the largest
    /// packed object (its slot and the index and bitmap changes; the object counters ride in
    /// the commit marker), for a module addition, or for a small batch (test
    /// `the_smallest_buffers_carry_every_object_operation`, which passes from `slot + 224`).
    pub const fn txn_min(block_size: usize) -> usize {
        let slot = if block_size / 2 < 2048 {
            block_size / 2
        } else {
            2048
        };
        slot + 256
    }

    /// The `txn` for transactions of up to `n` whole-block writes of `block_size` bytes.
    pub const fn txn_for_blocks(block_size: usize, n: usize) -> usize {
        n * (block_size + crate::tx_buffer::RANGE_OVERHEAD)
    }
}
