//! The module catalogue: the optional features a volume can carry, each with the regions it needs
//! and the bytes it adds to the inode. A volume's modules are recorded as a [`ModuleSet`] manifest
//! in the superblock. Module bits are part of the on-disk format and never change meaning.

use crate::format::regions::RegionKind;

bitflags::bitflags! {
    /// The module manifest stored in the superblock.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct ModuleSet: u64 {
        /// Packed small objects: the slot index region.
        const OBJECTS = 1 << 0;
        /// Snapshots: a snapshot table region.
        const SNAPSHOTS = 1 << 1;
        /// Compression: a dictionary region.
        const COMPRESSION = 1 << 2;
        /// Encryption: a key-slot region.
        const ENCRYPTION = 1 << 3;
        /// Deduplication: a fingerprint index region.
        const DEDUP = 1 << 4;
        /// Extended attributes: an attribute region.
        const XATTR = 1 << 5;
        /// Integrity: a Merkle tree region.
        const INTEGRITY = 1 << 6;
        /// Replication: a change-journal region and a peer table region.
        const REPLICATION = 1 << 7;
        /// Names: a key → object map (the name table region). Needs `OBJECTS`.
        const NAMES = 1 << 8;
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for ModuleSet {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "ModuleSet({=u64:#x})", self.bits())
    }
}

/// A catalogue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Module {
    /// The manifest bit.
    pub bit: u8,
    /// Name used by the tool and in reports.
    pub name: &'static str,
    /// What it is for.
    pub description: &'static str,
    /// Regions it needs, in order.
    pub regions: &'static [RegionKind],
    /// Bytes it adds to every inode.
    pub inode_bytes: u32,
}

impl Module {
    /// The module's manifest flag.
    pub fn flag(&self) -> ModuleSet {
        ModuleSet::from_bits_retain(1u64 << (self.bit & 63))
    }
}

use RegionKind::{Large, Small};

/// Every module the engine knows, by bit.
pub const CATALOGUE: &[Module] = &[
    Module {
        bit: 0,
        name: "objects",
        description: "packed small objects (slot index)",
        regions: &[Small],
        inode_bytes: 16,
    },
    Module {
        bit: 1,
        name: "snapshots",
        description: "point-in-time snapshot table",
        regions: &[Large],
        inode_bytes: 16,
    },
    Module {
        bit: 2,
        name: "compression",
        description: "shared compression dictionaries",
        regions: &[Small],
        inode_bytes: 8,
    },
    Module {
        bit: 3,
        name: "encryption",
        description: "key slots for per-volume encryption",
        regions: &[Small],
        inode_bytes: 32,
    },
    Module {
        bit: 4,
        name: "dedup",
        description: "content fingerprint index",
        regions: &[Large],
        inode_bytes: 8,
    },
    Module {
        bit: 5,
        name: "xattr",
        description: "extended attribute storage",
        regions: &[Small],
        inode_bytes: 16,
    },
    Module {
        bit: 6,
        name: "integrity",
        description: "Merkle tree over data blocks",
        regions: &[Large],
        inode_bytes: 32,
    },
    Module {
        bit: 7,
        name: "replication",
        description: "change journal and peer table",
        regions: &[Large, Small],
        inode_bytes: 24,
    },
    Module {
        bit: 8,
        name: "names",
        description: "named objects (key to object map)",
        regions: &[Small],
        inode_bytes: 0,
    },
];

/// Inode size of a volume with no modules.
pub const BASE_INODE_SIZE: u32 = 64;

/// Looks a module up by name.
pub fn by_name(name: &str) -> Option<&'static Module> {
    CATALOGUE.iter().find(|m| m.name == name)
}

/// Looks a module up by bit.
pub fn by_bit(bit: u8) -> Option<&'static Module> {
    CATALOGUE.iter().find(|m| m.bit == bit)
}

/// Blocks a region of `kind` takes on a volume of `total` blocks:
/// small = max(64, total/1024), large = max(256, total/256), each capped at total/16 (at least 1).
pub fn region_blocks(kind: RegionKind, total: u64) -> u64 {
    let want = match kind {
        Small => (total / 1024).max(64),
        Large => (total / 256).max(256),
    };
    want.min(total / 16).max(1)
}

/// Blocks region `i` of module `m` takes on a volume of `total` blocks of `bs` bytes: its
/// kind's size ([`region_blocks`]), plus the extent map's blocks for the `objects` region (so
/// the slot index keeps the kind's size on every volume); the `names` region has at least two
/// blocks (the name table's root and a leaf).
pub fn module_region_blocks(m: &Module, i: usize, bs: usize, total: u64) -> u64 {
    let Some(kind) = m.regions.get(i) else {
        return 0;
    };
    let map = if m.bit == 0 && i == 0 {
        crate::format::slot_index::extent_map_blocks(bs, total)
    } else {
        0
    };
    let blocks = region_blocks(*kind, total).saturating_add(map);
    if m.bit == 8 {
        // The name table's root and at least one leaf.
        blocks.max(2)
    } else {
        blocks
    }
}

/// Inode size for a manifest: the base plus each known module's bytes.
pub fn inode_size(manifest: ModuleSet) -> u32 {
    CATALOGUE
        .iter()
        .filter(|m| manifest.contains(m.flag()))
        .fold(BASE_INODE_SIZE, |acc, m| acc.saturating_add(m.inode_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_consistent() {
        assert!(CATALOGUE.len() >= 6);
        for (i, m) in CATALOGUE.iter().enumerate() {
            assert_eq!(m.bit as usize, i);
            assert_eq!(by_name(m.name), Some(m));
            assert!(!m.regions.is_empty());
            assert!(ModuleSet::all().contains(m.flag()));
        }
        assert!(by_name("nope").is_none());
        assert_eq!(inode_size(ModuleSet::empty()), 64);
        assert_eq!(
            inode_size(ModuleSet::OBJECTS | ModuleSet::ENCRYPTION),
            64 + 16 + 32
        );
    }

    #[test]
    fn region_sizes_follow_the_formula() {
        assert_eq!(region_blocks(Small, 1 << 20), 1024);
        assert_eq!(region_blocks(Large, 1 << 20), 4096);
        assert_eq!(region_blocks(Small, 4096), 64);
        assert_eq!(region_blocks(Large, 4096), 256);
        assert_eq!(region_blocks(Small, 512), 32); // capped at total/16
        assert_eq!(region_blocks(Large, 10), 1);
    }
}
