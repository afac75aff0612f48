//! The rules of a valid image, written once. Each check reads blocks the caller has loaded (no
//! I/O here) and reports every rule it finds broken to a sink as a [`Finding`]; the sink says
//! whether to go on ([`Flow`]). Mount stops at the first finding and turns it into
//! [`Error::Corrupt`](crate::Error::Corrupt) ([`Finding::structure`]); the `vde check` tool
//! collects them all and prints each ([`Finding`]'s `Display`).
//!
//! Covered here: a superblock copy against the device ([`superblock`]); an allocation bitmap
//! block ([`bitmap_block`]) and the bits past the volume's last block ([`bitmap_tail`]); the region directory
//! and pointer table against the layout, the module catalogue, the manifest and each other
//! ([`regions`]). The allocation of what they name is the caller's to check (against the
//! bitmap it reads), as are the object structures.
//!
//! Invariant: a check never panics on any bytes, and reports a broken rule at most once per
//! entry or pointer it concerns.

use crate::error::Structure;
use crate::format::bitmap_block as bitmap_fmt;
use crate::format::layout::Layout;
use crate::format::regions::{self, RPT_SLOTS};
use crate::format::superblock::{Superblock, FLAG_FORMATTING};
use crate::format::DecodeError;
use crate::modules::{self, ModuleSet};
use crate::types::Extent;

/// Whether a check should go on after a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Flow {
    /// Report the next finding too.
    Continue,
    /// Stop at this one (a mount).
    Stop,
}

/// A rule of the format an image breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Finding {
    /// A superblock copy is for another geometry than the device's.
    SuperblockGeometry {
        /// Its block size.
        block_size: u32,
        /// Its block count.
        block_count: u64,
    },
    /// A superblock copy carries the flag of a format that did not finish.
    SuperblockFormatting,
    /// A superblock copy has flags or module bits this version does not know.
    SuperblockUnknownBits,
    /// A superblock copy's log size gives no possible layout.
    SuperblockWalSize {
        /// Its log size in blocks.
        wal_blocks: u64,
    },
    /// An allocation bitmap block does not decode (checksum, index, reserved field).
    BitmapBlock {
        /// Its index among the bitmap blocks.
        index: u64,
        /// Why.
        error: DecodeError,
    },
    /// Bits past the volume's last block are clear (they must read as allocated).
    BitmapTail {
        /// How many.
        clear: u64,
    },
    /// The region pointer table does not decode.
    PointerTable(DecodeError),
    /// The region directory does not decode.
    Directory(DecodeError),
    /// A directory entry does not decode.
    DirectoryEntry {
        /// Its index.
        entry: usize,
        /// Why.
        error: DecodeError,
    },
    /// A directory entry names a module the catalogue does not have.
    EntryUnknownModule {
        /// Its index.
        entry: usize,
        /// The module bit it names.
        bit: u8,
    },
    /// A directory entry's blocks are empty or lie outside the data area.
    EntryOutsideData {
        /// Its index.
        entry: usize,
        /// Its blocks.
        extent: Extent,
    },
    /// Two directory entries overlap.
    EntriesOverlap {
        /// The first.
        a: usize,
        /// The second.
        b: usize,
    },
    /// A module has regions in the pointer table but is not in the manifest.
    PointerNotInManifest {
        /// The module bit.
        bit: u8,
        /// Its region count.
        count: u16,
    },
    /// A module in the manifest has another region count than the catalogue says.
    PointerWrongCount {
        /// The module bit.
        bit: u8,
        /// Its region count.
        count: u16,
    },
    /// A pointer names a directory entry that is missing or of another module or index.
    PointerWrongEntry {
        /// The module bit.
        bit: u8,
        /// The entry it names.
        entry: usize,
    },
    /// The pointer table references another number of entries than the directory holds.
    Unreferenced {
        /// Directory entries.
        entries: usize,
        /// Entries the pointers reference.
        referenced: usize,
    },
}

impl Finding {
    /// The structure a mount reports as corrupt for it.
    pub fn structure(&self) -> Structure {
        match self {
            Finding::SuperblockGeometry { .. }
            | Finding::SuperblockFormatting
            | Finding::SuperblockUnknownBits
            | Finding::SuperblockWalSize { .. } => Structure::Superblock,
            Finding::BitmapBlock { .. } | Finding::BitmapTail { .. } => Structure::Bitmap,
            Finding::Directory(_)
            | Finding::DirectoryEntry { .. }
            | Finding::EntryUnknownModule { .. }
            | Finding::EntryOutsideData { .. }
            | Finding::EntriesOverlap { .. } => Structure::RegionDirectory,
            Finding::PointerTable(_)
            | Finding::PointerNotInManifest { .. }
            | Finding::PointerWrongCount { .. }
            | Finding::PointerWrongEntry { .. }
            | Finding::Unreferenced { .. } => Structure::RegionPointerTable,
        }
    }
}

fn module_name(bit: u8) -> &'static str {
    modules::by_bit(bit).map_or("?", |m| m.name)
}

fn decode_text(e: &DecodeError) -> &'static str {
    match e {
        DecodeError::BadMagic => "bad magic",
        DecodeError::BadVersion(_) => "unsupported version",
        DecodeError::BadChecksum => "bad checksum",
        _ => "malformed",
    }
}

impl core::fmt::Display for Finding {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Finding::SuperblockGeometry {
                block_size,
                block_count,
            } => write!(
                f,
                "geometry {block_count} x {block_size} does not match the device"
            ),
            Finding::SuperblockFormatting => f.write_str("written by a format that did not finish"),
            Finding::SuperblockUnknownBits => f.write_str("unknown flags or module bits"),
            Finding::SuperblockWalSize { wal_blocks } => {
                write!(f, "impossible WAL size {wal_blocks}")
            }
            Finding::BitmapBlock { index, error } => {
                write!(f, "bitmap block {index}: {}", decode_text(error))
            }
            Finding::BitmapTail { clear } => {
                write!(f, "{clear} bit(s) past the last block are clear")
            }
            Finding::PointerTable(e) => write!(f, "region pointer table: {}", decode_text(e)),
            Finding::Directory(e) => write!(f, "region directory: {}", decode_text(e)),
            Finding::DirectoryEntry { entry, error } => {
                write!(f, "directory entry {entry}: {}", decode_text(error))
            }
            Finding::EntryUnknownModule { entry, bit } => {
                write!(f, "entry {entry}: unknown module bit {bit}")
            }
            Finding::EntryOutsideData { entry, extent } => write!(
                f,
                "entry {entry}: blocks {}+{} lie outside the data area",
                extent.start.0, extent.len
            ),
            Finding::EntriesOverlap { a, b } => write!(f, "entries {a} and {b} overlap"),
            Finding::PointerNotInManifest { bit, count } => write!(
                f,
                "module bit {bit} has {count} region(s) but is not in the manifest"
            ),
            Finding::PointerWrongCount { bit, count } => write!(
                f,
                "module {} has {count} region(s) in the pointer table",
                module_name(*bit)
            ),
            Finding::PointerWrongEntry { bit, entry } => write!(
                f,
                "pointer of module {} names a wrong directory entry {entry}",
                module_name(*bit)
            ),
            Finding::Unreferenced {
                entries,
                referenced,
            } => write!(
                f,
                "{entries} directory entries but {referenced} referenced by the pointer table"
            ),
        }
    }
}

/// Reports `finding`; true if the check must stop.
fn stop(sink: &mut impl FnMut(Finding) -> Flow, finding: Finding) -> bool {
    sink(finding) == Flow::Stop
}

/// Checks a decoded superblock copy against a device of `block_size` x `block_count`; a copy
/// with the formatting flag is a finding unless `formatting` (the format's own mount) accepts
/// it. Returns the layout it gives when it breaks no rule.
pub fn superblock(
    sb: &Superblock,
    block_size: usize,
    block_count: u64,
    formatting: bool,
    sink: &mut impl FnMut(Finding) -> Flow,
) -> Option<Layout> {
    let mut ok = true;
    if sb.block_size as usize != block_size || sb.block_count != block_count {
        ok = false;
        let f = Finding::SuperblockGeometry {
            block_size: sb.block_size,
            block_count: sb.block_count,
        };
        if stop(sink, f) {
            return None;
        }
    }
    if sb.flags & FLAG_FORMATTING != 0 && !formatting {
        ok = false;
        if stop(sink, Finding::SuperblockFormatting) {
            return None;
        }
    }
    if sb.flags & !FLAG_FORMATTING != 0 || ModuleSet::from_bits(sb.manifest).is_none() {
        ok = false;
        if stop(sink, Finding::SuperblockUnknownBits) {
            return None;
        }
    }
    let layout = Layout::compute(sb.block_size as usize, sb.block_count, sb.wal_blocks);
    if layout.is_none() {
        ok = false;
        let _ = stop(
            sink,
            Finding::SuperblockWalSize {
                wal_blocks: sb.wal_blocks,
            },
        );
    }
    if ok {
        layout
    } else {
        None
    }
}

/// Checks that allocation bitmap block `index` (the whole block `buf`) decodes: checksum,
/// index, reserved field. True if it does.
pub fn bitmap_block(buf: &[u8], index: u64, sink: &mut impl FnMut(Finding) -> Flow) -> bool {
    let decoded = u32::try_from(index)
        .map_err(|_| DecodeError::BadField)
        .and_then(|i| bitmap_fmt::check(buf, i));
    match decoded {
        Ok(()) => true,
        Err(error) => {
            let _ = stop(sink, Finding::BitmapBlock { index, error });
            false
        }
    }
}

/// Checks the last allocation bitmap block of `layout` (the whole, decoded block `buf`): every
/// bit past the volume's last block is set. True if so.
pub fn bitmap_tail(buf: &[u8], layout: &Layout, sink: &mut impl FnMut(Finding) -> Flow) -> bool {
    let bpb = layout.bits_per_block();
    let bits = bitmap_fmt::bits(buf);
    let end = bpb.min(bits.len() as u64 * 8);
    let last = layout.bitmap_blocks.saturating_sub(1);
    let from = layout
        .block_count
        .saturating_sub(last.saturating_mul(bpb))
        .min(end);
    let clear = count_clear(bits, from, end);
    if clear > 0 {
        let _ = stop(sink, Finding::BitmapTail { clear });
        return false;
    }
    true
}

/// Clear bits in `from..to` (whole bytes at a time; bits past `bits` read as set).
fn count_clear(bits: &[u8], from: u64, to: u64) -> u64 {
    let mut n = 0u64;
    let mut i = from;
    while i < to && !i.is_multiple_of(8) {
        n += u64::from(!crate::bitmap::get(bits, i));
        i += 1;
    }
    while i + 8 <= to {
        let byte = usize::try_from(i / 8).ok().and_then(|k| bits.get(k));
        n += u64::from(byte.map_or(0, |b| b.count_zeros()));
        i += 8;
    }
    while i < to {
        n += u64::from(!crate::bitmap::get(bits, i));
        i += 1;
    }
    n
}

/// Whether `e` is a non-empty run of the data area (a region's blocks must be).
pub fn in_data_area(e: &Extent, layout: &Layout) -> bool {
    e.len > 0 && e.start.0 >= layout.data_start && e.end().is_some_and(|x| x <= layout.block_count)
}

/// The region pointer table decoded: `(first entry, region count)` per module bit.
pub type PointerTable = [(u16, u16); RPT_SLOTS];

/// Decodes the region pointer table block `rpt` (checksum, reserved fields, every slot) into
/// `table`; false (and a finding) if it does not decode.
pub fn pointer_table(
    rpt: &[u8],
    table: &mut PointerTable,
    sink: &mut impl FnMut(Finding) -> Flow,
) -> bool {
    let decoded = regions::rpt_check(rpt).and_then(|()| {
        for (bit, t) in table.iter_mut().enumerate() {
            *t = regions::rpt_get(rpt, bit)?;
        }
        Ok(())
    });
    match decoded {
        Ok(()) => true,
        Err(e) => {
            let _ = stop(sink, Finding::PointerTable(e));
            false
        }
    }
}

/// Checks the region directory block `dir` and the pointer table (from [`pointer_table`];
/// `None` if it did not decode, which checks the directory alone)
/// against `layout`, the catalogue, the `manifest` and each other: the directory decodes;
/// every entry names a known module and lies in the data area; no two overlap; each module of
/// the manifest has exactly its catalogue's number of regions through its pointer, each
/// pointed entry being that module's region of that index; no other module has any; and every
/// entry is referenced (so exactly once: no orphan, duplicate or cycle). Returns the number of
/// directory entries if the directory decodes (the entries can then be read with
/// [`regions::dir_entry`]).
pub fn regions(
    dir: &[u8],
    table: Option<&PointerTable>,
    layout: &Layout,
    manifest: u64,
    sink: &mut impl FnMut(Finding) -> Flow,
) -> Option<usize> {
    let n = match regions::dir_check(dir) {
        Ok(n) => n,
        Err(e) => {
            let _ = stop(sink, Finding::Directory(e));
            return None;
        }
    };
    for i in 0..n {
        let e = match regions::dir_entry(dir, i) {
            Ok(e) => e,
            Err(error) => {
                if stop(sink, Finding::DirectoryEntry { entry: i, error }) {
                    return None;
                }
                continue;
            }
        };
        if modules::by_bit(e.module).is_none() {
            let f = Finding::EntryUnknownModule {
                entry: i,
                bit: e.module,
            };
            if stop(sink, f) {
                return None;
            }
        }
        if !in_data_area(&e.extent, layout) {
            let f = Finding::EntryOutsideData {
                entry: i,
                extent: e.extent,
            };
            if stop(sink, f) {
                return None;
            }
            continue;
        }
        for j in 0..i {
            let Ok(o) = regions::dir_entry(dir, j) else {
                continue;
            };
            if o.extent.overlaps(&e.extent) && stop(sink, Finding::EntriesOverlap { a: j, b: i }) {
                return None;
            }
        }
    }
    let Some(table) = table else {
        return Some(n);
    };
    let mut referenced = 0usize;
    for (bit, &(first, count)) in table.iter().enumerate() {
        let bit8 = bit as u8;
        let present = manifest & (1u64 << bit) != 0;
        match (present, modules::by_bit(bit8)) {
            (false, _) if count == 0 => continue,
            (false, _) => {
                if stop(sink, Finding::PointerNotInManifest { bit: bit8, count }) {
                    return None;
                }
            }
            (true, Some(m)) if usize::from(count) == m.regions.len() => {}
            (true, _) => {
                if stop(sink, Finding::PointerWrongCount { bit: bit8, count }) {
                    return None;
                }
            }
        }
        for k in 0..count {
            let idx = usize::from(first) + usize::from(k);
            let right = idx < n
                && regions::dir_entry(dir, idx)
                    .is_ok_and(|e| usize::from(e.module) == bit && e.index == k);
            if !right
                && stop(
                    sink,
                    Finding::PointerWrongEntry {
                        bit: bit8,
                        entry: idx,
                    },
                )
            {
                return None;
            }
        }
        referenced += usize::from(count);
    }
    if referenced != n {
        let f = Finding::Unreferenced {
            entries: n,
            referenced,
        };
        if stop(sink, f) {
            return None;
        }
    }
    Some(n)
}

/// A sink that keeps the first finding and stops: what a mount uses.
#[derive(Debug, Default)]
pub struct First(pub Option<Finding>);

impl First {
    /// The sink function.
    pub fn sink(&mut self) -> impl FnMut(Finding) -> Flow + '_ {
        |f| {
            self.0.get_or_insert(f);
            Flow::Stop
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    fn sb() -> Superblock {
        Superblock {
            block_size: 512,
            block_count: 1024,
            sequence: 1,
            checkpoint_seq: 0,
            manifest: 0,
            free_blocks: 0,
            inode_size: 64,
            flags: 0,
            created: 0,
            modified: 0,
            wal_blocks: 16,
            volume_id: [0; 16],
        }
    }

    #[test]
    fn a_superblock_reports_every_broken_rule_or_stops_at_the_first() {
        let mut bad = sb();
        bad.block_count = 2048;
        bad.flags = 0x8000;
        let mut all = Vec::new();
        assert!(superblock(&bad, 512, 1024, false, &mut |f| {
            all.push(f);
            Flow::Continue
        })
        .is_none());
        assert_eq!(
            all,
            [
                Finding::SuperblockGeometry {
                    block_size: 512,
                    block_count: 2048
                },
                Finding::SuperblockUnknownBits
            ]
        );
        let mut first = First::default();
        assert!(superblock(&bad, 512, 1024, false, &mut first.sink()).is_none());
        assert_eq!(all.first().copied(), first.0);
        assert!(superblock(&sb(), 512, 1024, false, &mut first.sink()).is_some());
        let mut formatting = sb();
        formatting.flags = FLAG_FORMATTING;
        let mut n = 0;
        let mut count = |_| {
            n += 1;
            Flow::Continue
        };
        assert!(superblock(&formatting, 512, 1024, true, &mut count).is_some());
        assert!(superblock(&formatting, 512, 1024, false, &mut count).is_none());
        assert_eq!(n, 1);
    }

    /// A directory with an entry of an unknown module, two overlapping entries and one in the
    /// metadata, under a pointer table that gives the objects module one region: every broken
    /// rule is reported when the sink goes on, the first only when it stops.
    #[test]
    fn regions_report_every_broken_rule_or_stop_at_the_first() {
        use crate::format::regions::{RegionEntry, RegionKind};
        use crate::types::BlockNo;
        let layout = Layout::compute(512, 1024, 16).unwrap();
        let entry = |module: u8, start: u64, len: u64| RegionEntry {
            module,
            kind: RegionKind::Small,
            index: 0,
            extent: Extent {
                start: BlockNo(start),
                len,
            },
        };
        let ds = layout.data_start;
        let mut dir = vec![0u8; 512];
        regions::dir_init(&mut dir).unwrap();
        regions::dir_push(&mut dir, &entry(0, ds, 10)).unwrap();
        regions::dir_push(&mut dir, &entry(63, ds + 20, 5)).unwrap();
        regions::dir_push(&mut dir, &entry(1, ds + 5, 10)).unwrap();
        regions::dir_push(&mut dir, &entry(2, 1, 2)).unwrap();
        let mut rpt = vec![0u8; 512];
        regions::rpt_init(&mut rpt).unwrap();
        regions::rpt_set(&mut rpt, 0, 0, 1).unwrap();
        let mut table = [(0u16, 0u16); RPT_SLOTS];
        assert!(pointer_table(&rpt, &mut table, &mut |_| Flow::Stop));
        let manifest = ModuleSet::OBJECTS.bits();
        let mut all = Vec::new();
        let n = regions(&dir, Some(&table), &layout, manifest, &mut |f| {
            all.push(f);
            Flow::Continue
        });
        assert_eq!(n, Some(4));
        assert_eq!(
            all,
            [
                Finding::EntryUnknownModule { entry: 1, bit: 63 },
                Finding::EntriesOverlap { a: 0, b: 2 },
                Finding::EntryOutsideData {
                    entry: 3,
                    extent: Extent {
                        start: BlockNo(1),
                        len: 2
                    }
                },
                Finding::Unreferenced {
                    entries: 4,
                    referenced: 1
                },
            ]
        );
        let mut first = First::default();
        assert_eq!(
            regions(&dir, Some(&table), &layout, manifest, &mut first.sink()),
            None
        );
        assert_eq!(first.0, all.first().copied());
        // A pointer table that does not decode: one finding, and the directory alone is
        // checked by a caller that goes on.
        rpt[100] ^= 1;
        let mut bad = Vec::new();
        assert!(!pointer_table(&rpt, &mut table, &mut |f| {
            bad.push(f);
            Flow::Continue
        }));
        assert!(matches!(bad.as_slice(), [Finding::PointerTable(_)]));
        let mut dir_only = Vec::new();
        regions(&dir, None, &layout, manifest, &mut |f| {
            dir_only.push(f);
            Flow::Continue
        });
        assert_eq!(dir_only, all[..3]);
    }

    /// 1000 blocks of 512 bytes: one bitmap block of 3,968 bits, so bits 1000.. are the tail.
    #[test]
    fn the_bitmap_tail_must_be_set_and_a_block_must_decode() {
        let layout = Layout::compute(512, 1000, 16).unwrap();
        assert_eq!(layout.bitmap_blocks, 1);
        let mut blk = vec![0u8; 512];
        crate::bitmap::set_range(bitmap_fmt::bits_mut(&mut blk), 1000, 3968 - 1000, true).unwrap();
        bitmap_fmt::seal(&mut blk, 0).unwrap();
        let mut all = Vec::new();
        let mut sink = |f| {
            all.push(f);
            Flow::Continue
        };
        assert!(bitmap_block(&blk, 0, &mut sink));
        assert!(bitmap_tail(&blk, &layout, &mut sink));
        assert!(!bitmap_block(&blk, 1, &mut sink), "another block's index");
        for b in [1000u64, 1001, 1017, 3967] {
            crate::bitmap::set_range(bitmap_fmt::bits_mut(&mut blk), b, 1, false).unwrap();
        }
        assert!(!bitmap_tail(&blk, &layout, &mut sink));
        assert!(matches!(all[0], Finding::BitmapBlock { index: 1, .. }));
        assert_eq!(all[1], Finding::BitmapTail { clear: 4 });
        assert_eq!(all[1].structure(), Structure::Bitmap);
        assert_eq!(count_clear(&[0xF0, 0x00], 2, 13), 2 + 5);
        assert_eq!(
            count_clear(&[0xFF], 0, 64),
            0,
            "bits past the slice read as set"
        );
    }

    #[test]
    fn findings_name_their_structure_and_read_as_text() {
        use std::string::ToString;
        let f = Finding::EntriesOverlap { a: 1, b: 2 };
        assert_eq!(f.structure(), Structure::RegionDirectory);
        assert_eq!(f.to_string(), "entries 1 and 2 overlap");
        let p = Finding::Unreferenced {
            entries: 3,
            referenced: 2,
        };
        assert_eq!(p.structure(), Structure::RegionPointerTable);
    }
}
