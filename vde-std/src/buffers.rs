//! [`OwnedBuffers`]: heap memory for a volume's [`Buffers`], sized from the geometry.
//!
//! The core never allocates; a volume borrows a scratch area (2 blocks: one for the volume, one
//! for the log's reads, then a cache of [`CACHE_BLOCKS`] committed blocks), a transaction buffer (room for [`crate::TX_BLOCKS`] whole-block
//! writes) and the in-RAM slot index.
//! The index is sized for every shared block the image's `objects` region can describe, capped at
//! [`INDEX_CAP_BYTES`].

use vde_nostd::format::regions::RegionKind;
use vde_nostd::format::slot_index;
use vde_nostd::{modules, Buffers};

use crate::TX_BLOCKS;

/// Committed blocks a volume keeps in RAM (the core's most, `vde_nostd::block_cache::MAX_CACHED`):
/// a lookup by name reads the same name-table blocks every time.
pub const CACHE_BLOCKS: usize = vde_nostd::block_cache::MAX_CACHED;

/// Largest in-RAM slot index allocated for one volume.
pub const INDEX_CAP_BYTES: usize = 64 << 20;

/// Owned memory for a volume.
#[derive(Debug, Clone)]
pub struct OwnedBuffers {
    scratch: Vec<u8>,
    txn: Vec<u8>,
    index: Vec<u8>,
}

impl OwnedBuffers {
    /// Buffers for a volume of `block_count` blocks of `block_size` bytes.
    pub fn for_geometry(block_size: usize, block_count: u64) -> OwnedBuffers {
        OwnedBuffers {
            scratch: vec![0; Buffers::scratch_with_cache(block_size, CACHE_BLOCKS)],
            txn: vec![0; Buffers::txn_for_blocks(block_size, TX_BLOCKS)],
            index: vec![0; index_bytes(block_size, block_count)],
        }
    }

    /// Buffers for the geometry of `dev`.
    pub fn for_device<D: vde_nostd::BlockDevice>(dev: &D) -> OwnedBuffers {
        Self::for_geometry(dev.block_size(), dev.block_count())
    }

    /// Borrows them as the core's [`Buffers`].
    pub fn bufs<const K: usize>(&mut self) -> Buffers<'_, K> {
        Buffers {
            scratch: &mut self.scratch,
            txn: &mut self.txn,
            index: &mut self.index,
        }
    }
}

/// Bytes of in-RAM slot index for a geometry: one entry per shared block the `objects` region
/// can hold (never more than one per block), capped at [`INDEX_CAP_BYTES`].
pub fn index_bytes(block_size: usize, block_count: u64) -> usize {
    let region = modules::region_blocks(RegionKind::Small, block_count);
    // The objects region is the kind's size plus the extent map; the slot index takes the
    // kind's size.
    let entries = slot_index::capacity(block_size, region).min(block_count);
    let es = slot_index::entry_size(block_size) as u64;
    let bytes = entries.saturating_mul(es).min(INDEX_CAP_BYTES as u64);
    usize::try_from(bytes).unwrap_or(INDEX_CAP_BYTES)
}
