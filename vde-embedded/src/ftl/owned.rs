//! [`OwnedFtlMemory`] (feature `std`): heap memory for an [`Ftl`](super::Ftl), sized from its
//! layout, for tests, tools and hosts; firmware hands in static buffers as [`FtlMemory`].
//!
//! Invariant: the buffers are exactly the sizes [`FtlLayout`] asks for.

use std::vec;
use std::vec::Vec;

use super::{BlockInfo, FtlLayout, FtlMemory};

/// Owned RAM of a translation layer.
#[derive(Debug, Clone)]
pub struct OwnedFtlMemory {
    pub(crate) map: Vec<u32>,
    pub(crate) blocks: Vec<BlockInfo>,
    pub(crate) page: Vec<u8>,
    pub(crate) log: Vec<u8>,
}

impl OwnedFtlMemory {
    /// Buffers for `layout`: one map entry per logical block, one entry per erase block, one
    /// page, one logical block.
    pub fn new(layout: &FtlLayout) -> OwnedFtlMemory {
        OwnedFtlMemory {
            map: vec![0; layout.map_entries()],
            blocks: vec![BlockInfo::EMPTY; layout.block_entries()],
            page: vec![0; layout.page_size],
            log: vec![0; layout.block_size],
        }
    }

    /// Borrows them as the [`FtlMemory`] that [`Ftl::format`](super::Ftl::format) and
    /// [`Ftl::mount`](super::Ftl::mount) take.
    pub fn mem(&mut self) -> FtlMemory<'_> {
        FtlMemory {
            map: &mut self.map,
            blocks: &mut self.blocks,
            page: &mut self.page,
            log: &mut self.log,
        }
    }
}
