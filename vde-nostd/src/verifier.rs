//! The rules of a valid image, written once. Each check reads blocks the caller has loaded (no
//! I/O here) and reports every rule it finds broken to a sink as a [`Finding`]; the sink says
//! whether to go on ([`Flow`]). Mount stops at the first finding and turns it into
//! [`Error::Corrupt`](crate::Error::Corrupt) ([`Finding::structure`]); the `vde check` tool
//! collects them all and prints each ([`Finding`]'s `Display`).
//!
//! Covered here: a superblock copy against the device ([`superblock`]) and the choice of the copy
//! mount uses ([`superblock_newer`]); a WAL header copy against
//! the layout ([`wal_header`]) and the choice of the copy mount uses ([`wal_choice`]); an allocation bitmap
//! block ([`bitmap_block`]) and the bits past the volume's last block ([`bitmap_tail`]); the
//! region directory and pointer table against the layout, the module catalogue, the manifest
//! and each other ([`regions()`]); the fixed metadata ([`metadata_allocated`]) and each region
//! ([`region_allocated`]) allocated in the bitmap, the caller counting the free blocks in the
//! bitmap it reads.
//!
//! With the `objects` module: the slot index's blocks ([`slot_index_block`]), each entry
//! ([`slot_entry`]) and where its shared block lies
//! ([`shared_place`]); the extent map's blocks ([`extent_map_block`]), their marks
//! ([`extent_marks`]) and their number ([`extent_count`]); each packed slot of a shared block
//! ([`slot`]) and its payload ([`slot_payload`]); each extent the map marks ([`extent`]),
//! where its blocks lie ([`extent_place`]) and its payload ([`extent_payload`]); the object
//! counters against the slot index ([`counters`]). What a rule needs from elsewhere (whether a
//! block is allocated, in a region, held twice; a payload's hash over several blocks) the
//! caller finds and hands in.
//!
//! Invariant: a check never panics on any bytes, and reports a broken rule at most once per
//! entry or pointer it concerns.

use crate::error::Structure;
use crate::format::bitmap_block as bitmap_fmt;
use crate::format::layout::Layout;
use crate::format::regions::{self, RPT_SLOTS};
use crate::format::superblock::{Superblock, FLAG_FORMATTING};
use crate::format::wal_header::WalHeader;
use crate::format::DecodeError;
use crate::modules::{self, ModuleSet};
use crate::types::Extent;
#[cfg(feature = "objects")]
use crate::{
    format::counters::Counters,
    format::object::{slot_check, ExtentHeader, SlotHeader, EXTENT_HDR, SLOT_HDR},
    format::slot_index,
    handle::{Handle, MAX_BLOCK},
    subblock::{self, SlotBitmapRef, UNIT},
    types::BlockNo,
};

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
    /// A WAL header copy does not decode (magic, version, checksum, reserved field, zero tail).
    WalHeaderDecode {
        /// Whether it is copy B (block 3; else A, block 2).
        b: bool,
        /// Why.
        error: DecodeError,
    },
    /// A WAL header copy describes another log area than the superblock's layout.
    WalHeaderArea {
        /// Whether it is copy B (block 3; else A, block 2).
        b: bool,
        /// The first block of its log area.
        wal_start: u64,
        /// Its log area's length in blocks.
        wal_blocks: u64,
    },
    /// A WAL header copy's epoch is 2^63 or above.
    WalHeaderEpoch {
        /// Whether it is copy B (block 3; else A, block 2).
        b: bool,
        /// Its epoch.
        epoch: u64,
    },
    /// Neither WAL header copy is usable.
    NoWalHeader,
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
    /// Fixed metadata blocks (`0..data_start`) are marked free in the allocation bitmap.
    MetadataFree {
        /// How many (at least: a caller may stop counting at the first).
        free: u64,
    },
    /// Blocks of a region are marked free in the allocation bitmap.
    RegionFree {
        /// Its module bit.
        module: u8,
        /// Its index among the module's regions.
        index: u16,
        /// Its blocks.
        extent: Extent,
        /// How many are free (at least: a caller may stop counting at the first).
        free: u64,
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
    /// A slot index block does not decode (magic, version, checksum, its index, reserved
    /// fields; block 0 also its block size, entry size and extent map size).
    #[cfg(feature = "objects")]
    SlotIndexBlock {
        /// Its index within the `objects` region.
        index: u64,
        /// Why.
        error: DecodeError,
    },
    /// The slot index counts more entries than its blocks hold.
    #[cfg(feature = "objects")]
    SlotIndexCount {
        /// The entry count of its block 0.
        count: u64,
        /// Entries its blocks hold.
        capacity: u64,
    },
    /// A slot index entry does not split into a block number, a slot bitmap and a dead bitmap.
    #[cfg(feature = "objects")]
    SharedEntrySize {
        /// The entry.
        entry: usize,
    },
    /// A shared block lies outside the data area (or past the blocks a handle can name).
    #[cfg(feature = "objects")]
    SharedOutsideData {
        /// Its slot index entry.
        entry: usize,
        /// The block.
        block: u64,
    },
    /// A unit of a shared block is both live and dead.
    #[cfg(feature = "objects")]
    SharedLiveAndDead {
        /// Its slot index entry.
        entry: usize,
        /// The block.
        block: u64,
    },
    /// A shared block is listed by two slot index entries.
    #[cfg(feature = "objects")]
    SharedTwice {
        /// The later entry.
        entry: usize,
        /// The block.
        block: u64,
        /// The earlier entry.
        first: usize,
    },
    /// A shared block lies inside a module region.
    #[cfg(feature = "objects")]
    SharedInRegion {
        /// Its slot index entry.
        entry: usize,
        /// The block.
        block: u64,
        /// The region's module bit.
        module: u8,
    },
    /// A shared block is marked free in the allocation bitmap.
    #[cfg(feature = "objects")]
    SharedFree {
        /// Its slot index entry.
        entry: usize,
        /// The block.
        block: u64,
    },
    /// An extent map block does not decode (checksum, trailer index, reserved field).
    #[cfg(feature = "objects")]
    ExtentMapBlock {
        /// Its index within the extent map.
        index: u64,
        /// Why.
        error: DecodeError,
    },
    /// An extent map block marks blocks outside the data area.
    #[cfg(feature = "objects")]
    ExtentMarkOutside {
        /// The first such block.
        block: u64,
        /// How many.
        marks: u64,
    },
    /// The extent map marks another number of blocks than the counters count extent objects.
    #[cfg(feature = "objects")]
    ExtentMarks {
        /// Blocks marked.
        marks: u64,
        /// The counters' extent objects.
        extent_objects: u64,
    },
    /// An occupied unit of a shared block holds no slot header (the block is cut short).
    #[cfg(feature = "objects")]
    SlotUnreadable {
        /// The shared block.
        block: u64,
        /// The unit.
        unit: usize,
    },
    /// An occupied unit of a shared block starts with an all-zero (free) slot header.
    #[cfg(feature = "objects")]
    SlotEmpty {
        /// The shared block.
        block: u64,
        /// The unit.
        unit: usize,
    },
    /// A slot header's payload length gives no slot class of the block size.
    #[cfg(feature = "objects")]
    SlotLength {
        /// The shared block.
        block: u64,
        /// The unit.
        unit: usize,
        /// The length.
        len: u16,
    },
    /// A slot (the class its length gives) is not aligned to its size or not all occupied in
    /// the slot bitmap.
    #[cfg(feature = "objects")]
    SlotUnheld {
        /// The shared block.
        block: u64,
        /// The unit.
        unit: usize,
        /// The slot's bytes.
        size: usize,
    },
    /// A packed object's payload does not match its slot header's checksum.
    #[cfg(feature = "objects")]
    SlotChecksum {
        /// The object.
        handle: Handle,
    },
    /// A block the extent map marks holds no extent header that decodes.
    #[cfg(feature = "objects")]
    ExtentHeader {
        /// The block.
        block: u64,
        /// Why.
        error: DecodeError,
    },
    /// A block the extent map marks holds the extent header of another handle than an
    /// extent's starting there.
    #[cfg(feature = "objects")]
    ExtentNamesOther {
        /// The block.
        block: u64,
        /// The handle its header names.
        handle: Handle,
    },
    /// An extent header's payload length gives no block count.
    #[cfg(feature = "objects")]
    ExtentLength {
        /// The object.
        handle: Handle,
        /// The length.
        len: u64,
    },
    /// An extent runs past the volume's last block.
    #[cfg(feature = "objects")]
    ExtentPastEnd {
        /// The object.
        handle: Handle,
        /// Its payload length.
        len: u64,
    },
    /// Blocks of an extent are free in the bitmap or used by something else.
    #[cfg(feature = "objects")]
    ExtentBlocks {
        /// The object.
        handle: Handle,
        /// How many (at least: a caller may stop counting at the first).
        unheld: u64,
        /// Its blocks.
        blocks: u64,
    },
    /// An extent object's payload does not match its header's checksum.
    #[cfg(feature = "objects")]
    ExtentChecksum {
        /// The object.
        handle: Handle,
    },
    /// The units of the packed objects the counters count per class are not the units
    /// occupied in the shared blocks.
    #[cfg(feature = "objects")]
    CountersUnits {
        /// The counters' units (`None`: past 2^64).
        counted: Option<u64>,
        /// Units occupied in the slot index.
        occupied: u64,
    },
    /// The counters' live objects are not their packed plus extent objects.
    #[cfg(feature = "objects")]
    CountersObjects {
        /// Live objects.
        objects: u64,
        /// Packed plus extent objects (`None`: past 2^64).
        sum: Option<u64>,
    },
    /// The counters' payload bytes are more than their objects can hold.
    #[cfg(feature = "objects")]
    CountersBytes {
        /// Payload bytes.
        bytes: u64,
        /// Live objects.
        objects: u64,
    },
    /// The counters count fewer extent blocks than extent objects.
    #[cfg(feature = "objects")]
    CountersExtentBlocks {
        /// Extent objects.
        extent_objects: u64,
        /// Extent blocks.
        extent_blocks: u64,
    },
    /// The counters' extent blocks are more than the allocated data blocks that are not shared
    /// blocks.
    #[cfg(feature = "objects")]
    CountersExtentRoom {
        /// Extent blocks.
        extent_blocks: u64,
        /// Allocated data blocks that are not shared blocks.
        room: u64,
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
            Finding::WalHeaderDecode { .. }
            | Finding::WalHeaderArea { .. }
            | Finding::WalHeaderEpoch { .. }
            | Finding::NoWalHeader => Structure::WalHeader,
            Finding::BitmapBlock { .. }
            | Finding::BitmapTail { .. }
            | Finding::MetadataFree { .. }
            | Finding::RegionFree { .. } => Structure::Bitmap,
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
            #[cfg(feature = "objects")]
            Finding::SlotIndexBlock { .. }
            | Finding::SlotIndexCount { .. }
            | Finding::SharedEntrySize { .. }
            | Finding::SharedOutsideData { .. }
            | Finding::SharedLiveAndDead { .. }
            | Finding::SharedTwice { .. }
            | Finding::SharedInRegion { .. }
            | Finding::SharedFree { .. }
            | Finding::SlotUnreadable { .. }
            | Finding::SlotEmpty { .. }
            | Finding::SlotLength { .. }
            | Finding::SlotUnheld { .. }
            | Finding::SlotChecksum { .. }
            | Finding::CountersUnits { .. }
            | Finding::CountersObjects { .. }
            | Finding::CountersBytes { .. }
            | Finding::CountersExtentBlocks { .. }
            | Finding::CountersExtentRoom { .. } => Structure::SlotIndex,
            #[cfg(feature = "objects")]
            Finding::ExtentMapBlock { .. }
            | Finding::ExtentMarkOutside { .. }
            | Finding::ExtentMarks { .. }
            | Finding::ExtentHeader { .. }
            | Finding::ExtentNamesOther { .. }
            | Finding::ExtentLength { .. }
            | Finding::ExtentPastEnd { .. }
            | Finding::ExtentBlocks { .. }
            | Finding::ExtentChecksum { .. } => Structure::Extent,
        }
    }
}

fn module_name(bit: u8) -> &'static str {
    modules::by_bit(bit).map_or("?", |m| m.name)
}

fn wal_copy(b: bool) -> &'static str {
    if b {
        "WAL header B (block 3)"
    } else {
        "WAL header A (block 2)"
    }
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
            Finding::WalHeaderDecode { b, error } => {
                write!(f, "{}: {}", wal_copy(*b), decode_text(error))
            }
            Finding::WalHeaderArea { b, .. } => {
                write!(f, "{}: describes another log area", wal_copy(*b))
            }
            Finding::WalHeaderEpoch { b, epoch } => {
                write!(f, "{}: epoch {epoch} is 2^63 or above", wal_copy(*b))
            }
            Finding::NoWalHeader => f.write_str("neither WAL header copy is usable"),
            Finding::BitmapBlock { index, error } => {
                write!(f, "bitmap block {index}: {}", decode_text(error))
            }
            Finding::BitmapTail { clear } => {
                write!(f, "{clear} bit(s) past the last block are clear")
            }
            Finding::MetadataFree { free } => write!(f, "{free} metadata block(s) marked free"),
            Finding::RegionFree {
                module,
                index,
                extent,
                free,
            } => write!(
                f,
                "region {} #{index} (blocks {}+{}): {free} block(s) marked free in the bitmap",
                module_name(*module),
                extent.start.0,
                extent.len
            ),
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
            #[cfg(feature = "objects")]
            Finding::SlotIndexBlock { index: 0, error } => {
                write!(f, "slot index head block: {}", decode_text(error))
            }
            #[cfg(feature = "objects")]
            Finding::SlotIndexBlock { index, error } => {
                write!(f, "index block {index}: {}", decode_text(error))
            }
            #[cfg(feature = "objects")]
            Finding::SlotIndexCount { count, capacity } => {
                write!(f, "{count} entries but room for {capacity}")
            }
            #[cfg(feature = "objects")]
            Finding::SharedEntrySize { entry } => {
                write!(f, "slot index entry {entry}: slot bitmap of the wrong size")
            }
            #[cfg(feature = "objects")]
            Finding::SharedOutsideData { block, .. } => {
                write!(f, "shared block {block}: outside the data area")
            }
            #[cfg(feature = "objects")]
            Finding::SharedLiveAndDead { block, .. } => {
                write!(f, "shared block {block}: a unit both live and dead")
            }
            #[cfg(feature = "objects")]
            Finding::SharedTwice { block, .. } => write!(f, "shared block {block}: listed twice"),
            #[cfg(feature = "objects")]
            Finding::SharedInRegion { block, module, .. } => write!(
                f,
                "shared block {block}: inside the {} region",
                module_name(*module)
            ),
            #[cfg(feature = "objects")]
            Finding::SharedFree { block, .. } => {
                write!(f, "shared block {block}: marked free in the bitmap")
            }
            #[cfg(feature = "objects")]
            Finding::ExtentMapBlock { index, error } => {
                write!(f, "extent map block {index}: {}", decode_text(error))
            }
            #[cfg(feature = "objects")]
            Finding::ExtentMarkOutside { block, marks: 1 } => write!(
                f,
                "the extent map marks block {block}, outside the data area"
            ),
            #[cfg(feature = "objects")]
            Finding::ExtentMarkOutside { block, marks } => write!(
                f,
                "the extent map marks {marks} blocks outside the data area (the first {block})"
            ),
            #[cfg(feature = "objects")]
            Finding::ExtentMarks {
                marks,
                extent_objects,
            } => write!(
                f,
                "the extent map marks {marks} block(s), the object counters count {extent_objects} extent objects"
            ),
            #[cfg(feature = "objects")]
            Finding::SlotUnreadable { block, unit } => {
                write!(f, "shared block {block} unit {unit}: unreadable slot header")
            }
            #[cfg(feature = "objects")]
            Finding::SlotEmpty { block, unit } => write!(
                f,
                "shared block {block} unit {unit}: occupied in the index but empty"
            ),
            #[cfg(feature = "objects")]
            Finding::SlotLength { block, unit, len } => write!(
                f,
                "shared block {block} unit {unit}: impossible length {len}"
            ),
            #[cfg(feature = "objects")]
            Finding::SlotUnheld { block, unit, size } => write!(
                f,
                "shared block {block} unit {unit}: a {size}-byte slot that the slot bitmap does not hold"
            ),
            #[cfg(feature = "objects")]
            Finding::SlotChecksum { handle } => write!(f, "object {handle}: checksum mismatch"),
            #[cfg(feature = "objects")]
            Finding::ExtentHeader { block, error } => write!(
                f,
                "block {block}: marked as an extent's first block, its header is damaged ({})",
                decode_text(error)
            ),
            #[cfg(feature = "objects")]
            Finding::ExtentNamesOther { block, handle } => write!(
                f,
                "block {block}: marked as an extent's first block, its header names object {handle}"
            ),
            #[cfg(feature = "objects")]
            Finding::ExtentLength { handle, len } => {
                write!(f, "object {handle}: impossible length {len}")
            }
            #[cfg(feature = "objects")]
            Finding::ExtentPastEnd { handle, len } => write!(
                f,
                "object {handle}: {len} bytes run past the end of the image"
            ),
            #[cfg(feature = "objects")]
            Finding::ExtentBlocks {
                handle,
                unheld,
                blocks,
            } => write!(
                f,
                "object {handle}: {unheld} of its {blocks} block(s) are free or used by something else"
            ),
            #[cfg(feature = "objects")]
            Finding::ExtentChecksum { handle } => {
                write!(f, "object {handle}: payload checksum mismatch")
            }
            #[cfg(feature = "objects")]
            Finding::CountersUnits {
                counted: Some(counted),
                occupied,
            } => write!(
                f,
                "the object counters count {counted} units of packed objects, the slot index {occupied} occupied ones"
            ),
            #[cfg(feature = "objects")]
            Finding::CountersUnits {
                counted: None,
                occupied,
            } => write!(
                f,
                "the object counters count more than 2^64 units of packed objects, the slot index {occupied} occupied ones"
            ),
            #[cfg(feature = "objects")]
            Finding::CountersObjects { objects, sum } => match sum {
                Some(sum) => write!(
                    f,
                    "the object counters say {objects} objects, {sum} packed and extent ones"
                ),
                None => write!(
                    f,
                    "the object counters say {objects} objects, more than 2^64 packed and extent ones"
                ),
            },
            #[cfg(feature = "objects")]
            Finding::CountersBytes { bytes, objects } => write!(
                f,
                "the object counters say {bytes} payload bytes, more than {objects} objects hold"
            ),
            #[cfg(feature = "objects")]
            Finding::CountersExtentBlocks {
                extent_objects,
                extent_blocks,
            } => write!(
                f,
                "the object counters say {extent_objects} extent objects in {extent_blocks} blocks"
            ),
            #[cfg(feature = "objects")]
            Finding::CountersExtentRoom {
                extent_blocks,
                room,
            } => write!(
                f,
                "the object counters say {extent_blocks} extent blocks, more than the {room} allocated data blocks that are not shared blocks"
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

/// Whether superblock copy `sb`, valid ([`superblock`]), replaces `best`, the copy chosen so far
/// of those read before it (primary, then mirror), as the copy mount uses (FORMAT.md,
/// "Superblock (blocks 0 and 1)": the valid copy with the highest sequence wins; the primary
/// on a tie).
pub fn superblock_newer(sb: &Superblock, best: Option<&Superblock>) -> bool {
    best.is_none_or(|x| sb.sequence > x.sequence)
}

/// Checks WAL header copy B (`b`; else copy A), the whole block `buf`, against `layout`
/// (FORMAT.md, "WAL header (blocks 2 and 3)"): it decodes (magic, version, checksum, reserved
/// field, zero tail), describes the layout's log area, and its epoch is below 2^63 (FORMAT.md,
/// "WAL area", recovery: a header with an epoch at or above 2^63 is invalid). Returns the header
/// if mount may use it.
pub fn wal_header(
    buf: &[u8],
    b: bool,
    layout: &Layout,
    sink: &mut impl FnMut(Finding) -> Flow,
) -> Option<WalHeader> {
    let h = match WalHeader::decode(buf) {
        Ok(h) => h,
        Err(error) => {
            let _ = stop(sink, Finding::WalHeaderDecode { b, error });
            return None;
        }
    };
    let mut ok = true;
    if h.wal_start != layout.wal_start || h.wal_blocks != layout.wal_blocks {
        ok = false;
        let f = Finding::WalHeaderArea {
            b,
            wal_start: h.wal_start,
            wal_blocks: h.wal_blocks,
        };
        if stop(sink, f) {
            return None;
        }
    }
    if h.epoch >= 1 << 63 {
        ok = false;
        let _ = stop(sink, Finding::WalHeaderEpoch { b, epoch: h.epoch });
    }
    ok.then_some(h)
}

/// The copy mount uses of the two WAL header copies (A, then B, each from [`wal_header`]: `None`
/// for one it may not use) and whether it is B: the one with the higher `(generation, epoch)`,
/// A on a tie (FORMAT.md, "WAL header (blocks 2 and 3)": the valid copy with the highest
/// generation wins; the epoch breaks a tie should a hostile header have pinned the generation at
/// its ceiling). `None` (and a finding) if neither is usable.
pub fn wal_choice(
    a: Option<WalHeader>,
    b: Option<WalHeader>,
    sink: &mut impl FnMut(Finding) -> Flow,
) -> Option<(WalHeader, bool)> {
    match (a, b) {
        (Some(x), Some(y)) if (y.generation, y.epoch) > (x.generation, x.epoch) => Some((y, true)),
        (Some(x), _) => Some((x, false)),
        (None, Some(y)) => Some((y, true)),
        (None, None) => {
            let _ = stop(sink, Finding::NoWalHeader);
            None
        }
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

/// The fixed metadata blocks of `layout` (`0..data_start`: superblocks, WAL headers and area,
/// bitmap, region directory and pointer table), which the allocation bitmap must mark allocated
/// ([`metadata_allocated`]).
pub fn metadata(layout: &Layout) -> Extent {
    Extent {
        start: crate::types::BlockNo(0),
        len: layout.data_start,
    }
}

/// The rule that the allocation bitmap marks every fixed metadata block ([`metadata`])
/// allocated (FORMAT.md, "Allocation bitmap": metadata blocks are 1). `free` is how many of them
/// the caller found marked free (a caller that stops at the first may pass 1). True if none.
pub fn metadata_allocated(free: u64, sink: &mut impl FnMut(Finding) -> Flow) -> bool {
    if free > 0 {
        let _ = stop(sink, Finding::MetadataFree { free });
        return false;
    }
    true
}

/// The rule that the allocation bitmap marks every block of region `e` allocated (FORMAT.md,
/// "Region directory", mount checks: every block allocated in the bitmap). `free` is how many
/// of its blocks the caller found marked free (a caller that stops at the first may pass 1).
/// True if none.
pub fn region_allocated(
    e: &regions::RegionEntry,
    free: u64,
    sink: &mut impl FnMut(Finding) -> Flow,
) -> bool {
    if free > 0 {
        let f = Finding::RegionFree {
            module: e.module,
            index: e.index,
            extent: e.extent,
            free,
        };
        let _ = stop(sink, f);
        return false;
    }
    true
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

/// Checks slot index block `index` (the whole block `buf`; FORMAT.md, "Slot index") of an
/// index of `index_blocks` blocks whose extent map has `map_blocks` blocks: it decodes (magic,
/// checksum, its index, reserved fields; block 0 also its version, block and entry sizes, and
/// `map_blocks` as the extent map's size), and block 0's entry count fits in the index blocks.
/// Returns the entry count block 0 states (0 for the others) if so.
#[cfg(feature = "objects")]
pub fn slot_index_block(
    buf: &[u8],
    index: u64,
    index_blocks: u64,
    map_blocks: u64,
    sink: &mut impl FnMut(Finding) -> Flow,
) -> Option<usize> {
    let count = match slot_index::check(buf, index, map_blocks) {
        Ok(n) => n,
        Err(error) => {
            let _ = stop(sink, Finding::SlotIndexBlock { index, error });
            return None;
        }
    };
    let capacity = slot_index::capacity(buf.len(), index_blocks);
    if u64::from(count) > capacity {
        let f = Finding::SlotIndexCount {
            count: u64::from(count),
            capacity,
        };
        let _ = stop(sink, f);
        return None;
    }
    usize::try_from(count).ok()
}

/// A slot index entry, decoded by [`slot_entry`].
#[cfg(feature = "objects")]
#[derive(Clone, Copy)]
pub struct SlotEntry<'a> {
    /// The shared block.
    pub block: BlockNo,
    /// Its slot bitmap (units of live slots).
    pub live: SlotBitmapRef<'a>,
    /// Its dead bitmap (units of deleted slots whose bytes are still in the block).
    pub dead: SlotBitmapRef<'a>,
}

/// Checks slot index entry `entry` (its bytes `bytes`) on its own (FORMAT.md, "Slot index",
/// checks on load): it splits into a block number and two bitmaps of the block size of
/// `layout`; its block lies in the data area (and a packed handle can name it); no unit is
/// both live and dead. Returns the entry if it breaks no rule. Where the block lies among the
/// other structures is [`shared_place`]'s.
#[cfg(feature = "objects")]
pub fn slot_entry<'a>(
    bytes: &'a [u8],
    entry: usize,
    layout: &Layout,
    sink: &mut impl FnMut(Finding) -> Flow,
) -> Option<SlotEntry<'a>> {
    let bs = layout.bs();
    let bm = subblock::bitmap_bytes(bs);
    // A bitmap view takes exactly its bytes: the entry is 8 + 2 bitmaps long.
    let split = bytes.split_first_chunk::<8>().and_then(|(num, maps)| {
        let (live, dead) = maps.split_at_checked(bm)?;
        Some((
            u64::from_le_bytes(*num),
            SlotBitmapRef::new(live, bs)?,
            SlotBitmapRef::new(dead, bs)?,
        ))
    });
    let Some((block, live, dead)) = split else {
        let _ = stop(sink, Finding::SharedEntrySize { entry });
        return None;
    };
    let mut ok = true;
    if block < layout.data_start || block >= layout.block_count || block > MAX_BLOCK {
        ok = false;
        if stop(sink, Finding::SharedOutsideData { entry, block }) {
            return None;
        }
    }
    if (0..bs / UNIT).any(|u| live.occupied(u) && dead.occupied(u)) {
        ok = false;
        let _ = stop(sink, Finding::SharedLiveAndDead { entry, block });
    }
    ok.then_some(SlotEntry {
        block: BlockNo(block),
        live,
        dead,
    })
}

/// What the caller found of a shared block among the other structures, for [`shared_place`].
#[cfg(feature = "objects")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SharedPlace {
    /// An earlier slot index entry that lists the same block.
    pub earlier: Option<usize>,
    /// The module bit of a region that holds the block.
    pub region: Option<u8>,
    /// Whether the allocation bitmap marks the block allocated (`None`: not known, its bitmap
    /// block being damaged).
    pub allocated: Option<bool>,
}

/// Checks where the shared block `block` of slot index entry `entry` lies (FORMAT.md, "Slot
/// index", checks on load): listed once, outside every region, allocated. True if so.
#[cfg(feature = "objects")]
pub fn shared_place(
    entry: usize,
    block: BlockNo,
    place: &SharedPlace,
    sink: &mut impl FnMut(Finding) -> Flow,
) -> bool {
    let block = block.0;
    let mut ok = true;
    if let Some(first) = place.earlier {
        ok = false;
        if stop(
            sink,
            Finding::SharedTwice {
                entry,
                block,
                first,
            },
        ) {
            return false;
        }
    }
    if let Some(module) = place.region {
        ok = false;
        if stop(
            sink,
            Finding::SharedInRegion {
                entry,
                block,
                module,
            },
        ) {
            return false;
        }
    }
    if place.allocated == Some(false) {
        ok = false;
        let _ = stop(sink, Finding::SharedFree { entry, block });
    }
    ok
}

/// Checks that extent map block `index` (the whole block `buf`) decodes (FORMAT.md, "Slot
/// index": the allocation bitmap's block format, trailer index
/// [`slot_index::extent_map_tag`]`(index)`). True if it does.
#[cfg(feature = "objects")]
pub fn extent_map_block(buf: &[u8], index: u64, sink: &mut impl FnMut(Finding) -> Flow) -> bool {
    match bitmap_fmt::check(buf, slot_index::extent_map_tag(index)) {
        Ok(()) => true,
        Err(error) => {
            let _ = stop(sink, Finding::ExtentMapBlock { index, error });
            false
        }
    }
}

/// Checks extent map block `index` (the whole, decoded block `buf`) of `layout`'s volume
/// marks no block outside the data area (FORMAT.md, "Slot index": those bits are 0). Returns
/// the blocks it marks if so.
#[cfg(feature = "objects")]
pub fn extent_marks(
    buf: &[u8],
    index: u64,
    layout: &Layout,
    sink: &mut impl FnMut(Finding) -> Flow,
) -> Option<u64> {
    let bits = bitmap_fmt::bits(buf);
    let end = layout.bits_per_block().min(bits.len() as u64 * 8);
    let base = index.saturating_mul(layout.bits_per_block());
    // This block's bits of the metadata blocks, and of blocks past the volume's last.
    let meta = layout.data_start.saturating_sub(base).min(end);
    let tail = layout.block_count.saturating_sub(base).min(end).max(meta);
    let set = |from: u64, to: u64| to.saturating_sub(from) - count_clear(bits, from, to);
    let outside = set(0, meta) + set(tail, end);
    if outside > 0 {
        let first = (0..meta)
            .chain(tail..end)
            .find(|b| crate::bitmap::get(bits, *b));
        let f = Finding::ExtentMarkOutside {
            block: base.saturating_add(first.unwrap_or(0)),
            marks: outside,
        };
        let _ = stop(sink, f);
        return None;
    }
    Some(bits.iter().map(|x| u64::from(x.count_ones())).sum())
}

/// Checks the extent map's `marks` (from [`extent_marks`], every block) against the object
/// counters' `extent_objects`: equal (FORMAT.md, "For an independent reader", how extents are
/// found). True if so.
#[cfg(feature = "objects")]
pub fn extent_count(
    marks: u64,
    extent_objects: u64,
    sink: &mut impl FnMut(Finding) -> Flow,
) -> bool {
    if marks != extent_objects {
        let _ = stop(
            sink,
            Finding::ExtentMarks {
                marks,
                extent_objects,
            },
        );
        return false;
    }
    true
}

/// A packed slot, read by [`slot`].
#[cfg(feature = "objects")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Slot {
    /// Its header.
    pub header: SlotHeader,
    /// Its class (the one its length gives).
    pub class: u8,
    /// The units it takes.
    pub units: usize,
}

/// Checks the slot that starts at occupied unit `unit` of shared block `block` (`buf`: the
/// block's bytes, of which this reads the slot header; `live`: its slot bitmap; FORMAT.md,
/// "Shared blocks and slots" and "For an independent reader", slot boundaries): its header is
/// not the all-zero one of a free slot, its payload length gives a class of the block size
/// (`payload + 8 <= min(2048, B/2)`), and the slot of that class is aligned to its size and
/// all occupied. Returns the slot if so (the caller goes on after its units, or after `unit`
/// if not).
#[cfg(feature = "objects")]
pub fn slot(
    buf: &[u8],
    block: u64,
    unit: usize,
    live: SlotBitmapRef<'_>,
    block_size: usize,
    sink: &mut impl FnMut(Finding) -> Flow,
) -> Option<Slot> {
    let at = unit.saturating_mul(UNIT);
    let Some(header) = buf
        .get(at..at.saturating_add(SLOT_HDR))
        .and_then(|b| SlotHeader::decode(b).ok())
    else {
        let _ = stop(sink, Finding::SlotUnreadable { block, unit });
        return None;
    };
    let empty = SlotHeader {
        len: 0,
        tag: 0,
        check: 0,
    };
    if header == empty {
        let _ = stop(sink, Finding::SlotEmpty { block, unit });
        return None;
    }
    let class = subblock::class_for(usize::from(header.len) + SLOT_HDR, block_size);
    let Some((class, size)) = class.and_then(|c| Some((c, subblock::class_size(c)?))) else {
        let f = Finding::SlotLength {
            block,
            unit,
            len: header.len,
        };
        let _ = stop(sink, f);
        return None;
    };
    let units = size / UNIT;
    if !unit.is_multiple_of(units) || !live.range_occupied(unit, units) {
        let _ = stop(sink, Finding::SlotUnheld { block, unit, size });
        return None;
    }
    Some(Slot {
        header,
        class,
        units,
    })
}

/// Checks the payload of the packed object `handle` against its slot header `header`
/// (`slot`: the slot's bytes from its first; FORMAT.md, "Shared blocks and slots": the low 32
/// bits of xxh64(payload, seed = handle)). True if it matches.
#[cfg(feature = "objects")]
pub fn slot_payload(
    slot: &[u8],
    header: &SlotHeader,
    handle: Handle,
    sink: &mut impl FnMut(Finding) -> Flow,
) -> bool {
    let payload = slot.get(SLOT_HDR..SLOT_HDR + usize::from(header.len));
    if payload.is_some_and(|p| slot_check(p, handle.raw()) == header.check) {
        return true;
    }
    let _ = stop(sink, Finding::SlotChecksum { handle });
    false
}

/// An extent object, read by [`extent`].
#[cfg(feature = "objects")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ExtentObject {
    /// Its header.
    pub header: ExtentHeader,
    /// Its handle (the header's).
    pub handle: Handle,
    /// The blocks it takes, from its first.
    pub blocks: u64,
}

/// Checks the extent that starts at block `block`, which the extent map marks (`buf`: the
/// block's bytes; FORMAT.md, "Extents" and "For an independent reader", how extents are
/// found): its header decodes (magic, checksum, reserved field), its handle is an extent
/// handle naming `block`, and its `ceil((48 + length) / B)` blocks end within the volume of
/// `layout`. Returns the extent if so. Where its blocks lie is [`extent_place`]'s, its payload
/// [`extent_payload`]'s.
#[cfg(feature = "objects")]
pub fn extent(
    buf: &[u8],
    block: u64,
    layout: &Layout,
    sink: &mut impl FnMut(Finding) -> Flow,
) -> Option<ExtentObject> {
    let header = match ExtentHeader::decode(buf) {
        Ok(h) => h,
        Err(error) => {
            let _ = stop(sink, Finding::ExtentHeader { block, error });
            return None;
        }
    };
    let handle = Handle::from_raw(header.handle);
    if !matches!(handle, Handle::Extent { start, .. } if start.0 == block) {
        let _ = stop(sink, Finding::ExtentNamesOther { block, handle });
        return None;
    }
    let len = header.len;
    let blocks = len
        .checked_add(EXTENT_HDR as u64)
        .map(|t| crate::types::pow2_div_ceil(t, layout.bs() as u64));
    let Some((blocks, end)) = blocks.and_then(|k| Some((k, block.checked_add(k)?))) else {
        let _ = stop(sink, Finding::ExtentLength { handle, len });
        return None;
    };
    if end > layout.block_count {
        let _ = stop(sink, Finding::ExtentPastEnd { handle, len });
        return None;
    }
    Some(ExtentObject {
        header,
        handle,
        blocks,
    })
}

/// Checks where the blocks of extent `handle` (`blocks` of them) lie: `unheld` is how many
/// the caller found free in the allocation bitmap or used by a region, a shared block or
/// another extent (FORMAT.md, "For an independent reader", how extents are found: none). True
/// if none.
#[cfg(feature = "objects")]
pub fn extent_place(
    handle: Handle,
    blocks: u64,
    unheld: u64,
    sink: &mut impl FnMut(Finding) -> Flow,
) -> bool {
    if unheld > 0 {
        let f = Finding::ExtentBlocks {
            handle,
            unheld,
            blocks,
        };
        let _ = stop(sink, f);
        return false;
    }
    true
}

/// The payload of an extent object as its blocks are read, for [`extent_payload`].
#[cfg(feature = "objects")]
pub struct ExtentPayload {
    hasher: xxhash_rust::xxh64::Xxh64,
    left: u64,
}

#[cfg(feature = "objects")]
impl ExtentPayload {
    /// The payload of the extent with header `header`.
    pub fn new(header: &ExtentHeader) -> ExtentPayload {
        ExtentPayload {
            hasher: xxhash_rust::xxh64::Xxh64::new(header.handle),
            left: header.len,
        }
    }

    /// Takes block `k` of the extent (its bytes `buf`) and returns the payload it holds: after
    /// the header in block 0, up to the payload's length (FORMAT.md, "Extents").
    pub fn block<'a>(&mut self, k: u64, buf: &'a [u8]) -> &'a [u8] {
        let from = if k == 0 { EXTENT_HDR } else { 0 };
        let room = buf.len().saturating_sub(from);
        let take = room.min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let part = buf.get(from..from + take).unwrap_or_default();
        self.hasher.update(part);
        self.left -= part.len() as u64;
        part
    }
}

#[cfg(feature = "objects")]
impl core::fmt::Debug for ExtentPayload {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ExtentPayload")
            .field("left", &self.left)
            .finish_non_exhaustive()
    }
}

/// Checks the payload of extent `object` (every block given to `payload`) against its
/// header's checksum (xxh64(payload, seed = handle)). True if the whole payload was given
/// and matches.
#[cfg(feature = "objects")]
pub fn extent_payload(
    payload: ExtentPayload,
    object: &ExtentObject,
    sink: &mut impl FnMut(Finding) -> Flow,
) -> bool {
    if payload.left == 0 && payload.hasher.digest() == object.header.payload_hash {
        return true;
    }
    let f = Finding::ExtentChecksum {
        handle: object.handle,
    };
    let _ = stop(sink, f);
    false
}

/// Checks the object counters `c` against the slot index (FORMAT.md, "Slot index", checks on
/// load, and "Object counters"): the units of the packed objects they count per class are the
/// `occupied_units` of the shared blocks; live objects are the packed plus the extent ones;
/// the payload bytes fit in the objects; extent objects are at most extent blocks, which are
/// at most the `extent_room` (the allocated data blocks that are not shared blocks). True if
/// so.
#[cfg(feature = "objects")]
pub fn counters(
    c: &Counters,
    occupied_units: u64,
    extent_room: u64,
    sink: &mut impl FnMut(Finding) -> Flow,
) -> bool {
    let mut counted = Some(0u64);
    let mut packed = Some(0u64);
    for (n, size) in c.per_class.iter().zip(subblock::CLASSES.iter()) {
        counted = counted.and_then(|e| e.checked_add(n.checked_mul((size / UNIT) as u64)?));
        packed = packed.and_then(|p| p.checked_add(*n));
    }
    let mut ok = true;
    let mut report = |f: Finding| {
        ok = false;
        stop(sink, f)
    };
    if counted != Some(occupied_units)
        && report(Finding::CountersUnits {
            counted,
            occupied: occupied_units,
        })
    {
        return false;
    }
    let sum = packed.and_then(|p| p.checked_add(c.extent_objects));
    if sum != Some(c.objects)
        && report(Finding::CountersObjects {
            objects: c.objects,
            sum,
        })
    {
        return false;
    }
    // The largest object: every block a handle can name, of the largest block size.
    let most = c.objects.saturating_mul(MAX_BLOCK.saturating_mul(65536));
    if c.bytes > most
        && report(Finding::CountersBytes {
            bytes: c.bytes,
            objects: c.objects,
        })
    {
        return false;
    }
    if c.extent_objects > c.extent_blocks
        && report(Finding::CountersExtentBlocks {
            extent_objects: c.extent_objects,
            extent_blocks: c.extent_blocks,
        })
    {
        return false;
    }
    if c.extent_blocks > extent_room {
        let _ = report(Finding::CountersExtentRoom {
            extent_blocks: c.extent_blocks,
            room: extent_room,
        });
    }
    ok
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

    /// A head block and entries of a volume of 1024 blocks of 512 bytes (entries of 10 bytes:
    /// a block number and two one-byte bitmaps; 37 fit in block 0).
    #[cfg(feature = "objects")]
    #[test]
    fn the_slot_index_reports_every_broken_rule_or_stops_at_the_first() {
        use crate::types::BlockNo;
        let layout = Layout::compute(512, 1024, 16).unwrap();
        let ds = layout.data_start;
        let mut head = vec![0u8; 512];
        slot_index::encode_head(&mut head, 0, 3, 1).unwrap();
        slot_index::seal(&mut head).unwrap();
        let mut all = Vec::new();
        let mut sink = |f| {
            all.push(f);
            Flow::Continue
        };
        assert_eq!(slot_index_block(&head, 0, 1, 1, &mut sink), Some(3));
        assert_eq!(
            slot_index_block(&head, 0, 1, 2, &mut sink),
            None,
            "map size"
        );
        let mut full = head.clone();
        slot_index::encode_head(&mut full, 0, 38, 1).unwrap();
        slot_index::seal(&mut full).unwrap();
        assert_eq!(slot_index_block(&full, 0, 1, 1, &mut sink), None);
        assert_eq!(slot_index_block(&full, 0, 2, 1, &mut sink), Some(38));
        let none = slot_index_block(&head, 1, 2, 1, &mut sink);
        assert_eq!(none, None, "a head is no block 1");
        let mut next = vec![0u8; 512];
        slot_index::encode_head(&mut next, 1, 0, 1).unwrap();
        slot_index::seal(&mut next).unwrap();
        assert_eq!(slot_index_block(&next, 1, 2, 1, &mut sink), Some(0));
        let entry = |block: u64, live: u8, dead: u8| {
            let mut e = block.to_le_bytes().to_vec();
            e.extend([live, dead]);
            e
        };
        // Outside the data area, and a unit both live and dead: both told.
        let bad = entry(5, 0b11, 0b10);
        assert!(slot_entry(&bad, 0, &layout, &mut sink).is_none());
        assert!(slot_entry(&bad[..9], 1, &layout, &mut sink).is_none());
        let good = entry(ds, 0b11, 0b1100);
        let e = slot_entry(&good, 2, &layout, &mut sink).unwrap();
        assert_eq!(
            (e.block, e.live.free_units(), e.dead.free_units()),
            (BlockNo(ds), 6, 6)
        );
        let past = entry(crate::handle::MAX_BLOCK + 1, 0, 0);
        let huge = Layout::compute(512, 1 << 40, 256).unwrap();
        assert!(
            slot_entry(&past, 3, &huge, &mut sink).is_none(),
            "no handle names it"
        );
        let place = SharedPlace {
            earlier: Some(1),
            region: Some(0),
            allocated: Some(false),
        };
        assert!(!shared_place(4, BlockNo(ds), &place, &mut sink));
        assert!(shared_place(
            5,
            BlockNo(ds),
            &SharedPlace::default(),
            &mut sink
        ));
        let block = ds;
        assert_eq!(
            all,
            [
                Finding::SlotIndexBlock {
                    index: 0,
                    error: DecodeError::BadField
                },
                Finding::SlotIndexCount {
                    count: 38,
                    capacity: 37
                },
                Finding::SlotIndexBlock {
                    index: 1,
                    error: DecodeError::BadMagic
                },
                Finding::SharedOutsideData { entry: 0, block: 5 },
                Finding::SharedLiveAndDead { entry: 0, block: 5 },
                Finding::SharedEntrySize { entry: 1 },
                Finding::SharedOutsideData {
                    entry: 3,
                    block: crate::handle::MAX_BLOCK + 1
                },
                Finding::SharedTwice {
                    entry: 4,
                    block,
                    first: 1
                },
                Finding::SharedInRegion {
                    entry: 4,
                    block,
                    module: 0
                },
                Finding::SharedFree { entry: 4, block },
            ]
        );
        assert!(all.iter().all(|f| f.structure() == Structure::SlotIndex));
        assert_eq!(
            std::string::ToString::to_string(&all[8]),
            std::format!("shared block {block}: inside the objects region")
        );
        let mut first = First::default();
        assert!(slot_entry(&bad, 0, &layout, &mut first.sink()).is_none());
        assert_eq!(first.0, Some(all[3]));
        let mut first = First::default();
        assert!(!shared_place(4, BlockNo(ds), &place, &mut first.sink()));
        assert_eq!(first.0, Some(all[7]));
    }

    /// An extent map of 1000 blocks of 512 bytes (one map block of 3,968 bits): marks in the
    /// data area count, marks of metadata blocks or past the last block are a finding, and
    /// their number must be the counters' extent objects.
    #[cfg(feature = "objects")]
    #[test]
    fn the_extent_map_reports_every_broken_rule_or_stops_at_the_first() {
        let layout = Layout::compute(512, 1000, 16).unwrap();
        let ds = layout.data_start;
        let mut blk = vec![0u8; 512];
        for b in [ds, ds + 5, 999] {
            crate::bitmap::set_range(bitmap_fmt::bits_mut(&mut blk), b, 1, true).unwrap();
        }
        bitmap_fmt::seal(&mut blk, slot_index::extent_map_tag(0)).unwrap();
        let mut all = Vec::new();
        let mut sink = |f| {
            all.push(f);
            Flow::Continue
        };
        assert!(extent_map_block(&blk, 0, &mut sink));
        assert_eq!(extent_marks(&blk, 0, &layout, &mut sink), Some(3));
        assert!(extent_count(3, 3, &mut sink));
        assert!(
            !extent_map_block(&blk, 1, &mut sink),
            "another map block's index"
        );
        let mut stray = blk.clone();
        for b in [1u64, 1000, 3967] {
            crate::bitmap::set_range(bitmap_fmt::bits_mut(&mut stray), b, 1, true).unwrap();
        }
        assert_eq!(extent_marks(&stray, 0, &layout, &mut sink), None);
        assert!(!extent_count(3, 2, &mut sink));
        // Map block 1 of a larger volume: its bit 0 is block 3968, in the data area.
        let big = Layout::compute(512, 3968 + 10, 16).unwrap();
        let mut second = vec![0u8; 512];
        crate::bitmap::set_range(bitmap_fmt::bits_mut(&mut second), 9, 2, true).unwrap();
        assert_eq!(extent_marks(&second, 1, &big, &mut sink), None);
        assert!(matches!(all[0], Finding::ExtentMapBlock { index: 1, .. }));
        assert_eq!(
            all[1..],
            [
                Finding::ExtentMarkOutside { block: 1, marks: 3 },
                Finding::ExtentMarks {
                    marks: 3,
                    extent_objects: 2
                },
                Finding::ExtentMarkOutside {
                    block: 3968 + 10,
                    marks: 1
                },
            ]
        );
        assert!(all.iter().all(|f| f.structure() == Structure::Extent));
        let mut first = First::default();
        assert_eq!(extent_marks(&stray, 0, &layout, &mut first.sink()), None);
        assert_eq!(first.0, Some(all[1]));
    }

    /// A shared block of 512 bytes (8 units) holding a 64-byte slot at unit 0, an empty header
    /// at unit 2, an impossible length at unit 3, a 128-byte slot at the odd unit 5 and one at
    /// unit 6.
    #[cfg(feature = "objects")]
    #[test]
    fn packed_slots_report_every_broken_rule_or_stop_at_the_first() {
        use crate::types::BlockNo;
        let handle = |unit: u16, class: u8| Handle::Packed {
            block: BlockNo(30),
            unit,
            class,
            tag: 7,
        };
        let mut blk = vec![0u8; 512];
        let mut put = |unit: usize, len: u16, payload: &[u8], h: Handle| {
            let at = unit * UNIT;
            let check = slot_check(payload, h.raw());
            SlotHeader { len, tag: 7, check }
                .encode(&mut blk[at..])
                .unwrap();
            blk[at + SLOT_HDR..at + SLOT_HDR + payload.len()].copy_from_slice(payload);
        };
        put(0, 3, b"abc", handle(0, 0));
        put(3, 300, &[], handle(3, 0));
        put(5, 100, &[1; 100], handle(5, 1));
        put(6, 100, &[2; 100], handle(6, 1));
        let bits = [0b1110_1101u8];
        let live = SlotBitmapRef::new(&bits, 512).unwrap();
        let mut all = Vec::new();
        let mut sink = |f| {
            all.push(f);
            Flow::Continue
        };
        let s0 = slot(&blk, 30, 0, live, 512, &mut sink).unwrap();
        assert_eq!((s0.class, s0.units, s0.header.len), (0, 1, 3));
        assert!(slot_payload(&blk, &s0.header, handle(0, 0), &mut sink));
        for u in [2, 3, 5] {
            assert!(slot(&blk, 30, u, live, 512, &mut sink).is_none());
        }
        let s6 = slot(&blk, 30, 6, live, 512, &mut sink).unwrap();
        assert_eq!((s6.class, s6.units), (1, 2));
        assert!(slot_payload(
            &blk[6 * UNIT..],
            &s6.header,
            handle(6, 1),
            &mut sink
        ));
        blk[6 * UNIT + 50] ^= 1;
        assert!(!slot_payload(
            &blk[6 * UNIT..],
            &s6.header,
            handle(6, 1),
            &mut sink
        ));
        assert!(slot(&blk[..100], 30, 6, live, 512, &mut sink).is_none());
        assert_eq!(
            all,
            [
                Finding::SlotEmpty { block: 30, unit: 2 },
                Finding::SlotLength {
                    block: 30,
                    unit: 3,
                    len: 300
                },
                Finding::SlotUnheld {
                    block: 30,
                    unit: 5,
                    size: 128
                },
                Finding::SlotChecksum {
                    handle: handle(6, 1)
                },
                Finding::SlotUnreadable { block: 30, unit: 6 },
            ]
        );
        let mut first = First::default();
        assert!(slot(&blk, 30, 3, live, 512, &mut first.sink()).is_none());
        assert_eq!(first.0, Some(all[1]));
    }

    /// Extents of a volume of 1000 blocks of 512 bytes: one of 1000 bytes (3 blocks) whose
    /// payload is checked block by block, and headers that are damaged, name another block,
    /// give no block count or run past the last block.
    #[cfg(feature = "objects")]
    #[test]
    fn extents_report_every_broken_rule_or_stop_at_the_first() {
        use crate::types::BlockNo;
        let layout = Layout::compute(512, 1000, 16).unwrap();
        let b = layout.data_start + 10;
        let at = |start: u64| Handle::Extent {
            start: BlockNo(start),
            tag: 3,
        };
        let payload: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let header = |h: Handle, len: u64| {
            let mut blk = vec![0u8; 512];
            ExtentHeader {
                handle: h.raw(),
                len,
                payload_hash: crate::format::xxh64(&payload, h.raw()),
            }
            .encode(&mut blk)
            .unwrap();
            blk
        };
        let mut blocks = vec![header(at(b), 1000), vec![0; 512], vec![0; 512]];
        let mut flat = Vec::new();
        for (k, blk) in blocks.iter_mut().enumerate() {
            let from = if k == 0 { EXTENT_HDR } else { 0 };
            let n = (512 - from).min(1000 - flat.len());
            blk[from..from + n].copy_from_slice(&payload[flat.len()..flat.len() + n]);
            flat.extend_from_slice(&blk[from..from + n]);
        }
        let mut all = Vec::new();
        let mut sink = |f| {
            all.push(f);
            Flow::Continue
        };
        let x = extent(&blocks[0], b, &layout, &mut sink).unwrap();
        assert_eq!((x.handle, x.blocks, x.header.len), (at(b), 3, 1000));
        assert!(extent_place(x.handle, 3, 0, &mut sink));
        let check = |blocks: &[Vec<u8>], sink: &mut dyn FnMut(Finding) -> Flow| {
            let mut p = ExtentPayload::new(&x.header);
            let got: Vec<u8> = (0..3u64)
                .flat_map(|k| p.block(k, &blocks[k as usize]).to_vec())
                .collect();
            (got, extent_payload(p, &x, &mut |f| sink(f)))
        };
        assert_eq!(check(&blocks, &mut sink), (payload.clone(), true));
        blocks[2][0] ^= 1;
        assert!(!check(&blocks, &mut sink).1);
        let mut torn = header(at(b), 1000);
        torn[20] ^= 1;
        assert!(extent(&torn, b, &layout, &mut sink).is_none());
        assert!(extent(&header(at(b + 1), 1000), b, &layout, &mut sink).is_none());
        assert!(extent(&header(at(b), u64::MAX), b, &layout, &mut sink).is_none());
        assert!(extent(&header(at(998), 1000), 998, &layout, &mut sink).is_none());
        assert!(!extent_place(x.handle, 3, 2, &mut sink));
        assert_eq!(
            all,
            [
                Finding::ExtentChecksum { handle: at(b) },
                Finding::ExtentHeader {
                    block: b,
                    error: DecodeError::BadChecksum
                },
                Finding::ExtentNamesOther {
                    block: b,
                    handle: at(b + 1)
                },
                Finding::ExtentLength {
                    handle: at(b),
                    len: u64::MAX
                },
                Finding::ExtentPastEnd {
                    handle: at(998),
                    len: 1000
                },
                Finding::ExtentBlocks {
                    handle: at(b),
                    unheld: 2,
                    blocks: 3
                },
            ]
        );
        assert!(all.iter().all(|f| f.structure() == Structure::Extent));
        let mut first = First::default();
        assert!(extent(&torn, b, &layout, &mut first.sink()).is_none());
        assert_eq!(first.0, Some(all[1]));
    }

    /// Counters of 2 packed objects of 64 and 1 of 128 bytes (4 units) and 2 extents in 5
    /// blocks, then each rule broken.
    #[cfg(feature = "objects")]
    #[test]
    fn the_counters_report_every_broken_rule_or_stop_at_the_first() {
        let good = Counters {
            objects: 5,
            bytes: 9000,
            extent_objects: 2,
            extent_blocks: 5,
            per_class: [2, 1, 0, 0, 0, 0],
        };
        let mut all = Vec::new();
        let mut sink = |f| {
            all.push(f);
            Flow::Continue
        };
        assert!(counters(&good, 4, 5, &mut sink));
        let bad = Counters {
            objects: 1,
            bytes: u64::MAX,
            extent_objects: 6,
            extent_blocks: 5,
            per_class: [2, 1, 0, 0, 0, u64::MAX],
        };
        assert!(!counters(&bad, 4, 4, &mut sink));
        assert_eq!(
            all,
            [
                Finding::CountersUnits {
                    counted: None,
                    occupied: 4
                },
                Finding::CountersObjects {
                    objects: 1,
                    sum: None
                },
                Finding::CountersBytes {
                    bytes: u64::MAX,
                    objects: 1
                },
                Finding::CountersExtentBlocks {
                    extent_objects: 6,
                    extent_blocks: 5
                },
                Finding::CountersExtentRoom {
                    extent_blocks: 5,
                    room: 4
                },
            ]
        );
        assert!(all.iter().all(|f| f.structure() == Structure::SlotIndex));
        let mut first = First::default();
        assert!(!counters(&good, 3, 5, &mut first.sink()));
        assert_eq!(
            first.0,
            Some(Finding::CountersUnits {
                counted: Some(4),
                occupied: 3
            })
        );
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
    fn the_newest_valid_superblock_wins_the_primary_on_a_tie() {
        let a = sb();
        let b = Superblock { sequence: 2, ..a };
        assert!(superblock_newer(&a, None));
        assert!(superblock_newer(&b, Some(&a)));
        assert!(!superblock_newer(&a, Some(&b)));
        assert!(
            !superblock_newer(&a, Some(&a)),
            "the primary, read first, on a tie"
        );
    }

    /// WAL header copies of a volume of 1000 blocks of 512 bytes (log area 4+16): damaged,
    /// of another log area, of an epoch at 2^63, and the choice between two.
    #[test]
    fn wal_headers_report_every_broken_rule_or_stop_at_the_first() {
        use crate::format::wal_header::WalHeader;
        let layout = Layout::compute(512, 1000, 16).unwrap();
        let good = WalHeader {
            generation: 7,
            epoch: 3,
            checkpoint_seq: 9,
            wal_start: layout.wal_start,
            wal_blocks: layout.wal_blocks,
            counters: Default::default(),
        };
        let block = |h: &WalHeader| {
            let mut b = vec![0u8; 512];
            h.encode(&mut b).unwrap();
            b
        };
        let mut all = Vec::new();
        let mut sink = |f| {
            all.push(f);
            Flow::Continue
        };
        assert_eq!(
            wal_header(&block(&good), false, &layout, &mut sink),
            Some(good)
        );
        let mut torn = block(&good);
        torn[20] ^= 1;
        assert_eq!(wal_header(&torn, true, &layout, &mut sink), None);
        let bad = WalHeader {
            wal_blocks: 17,
            epoch: 1 << 63,
            ..good
        };
        assert_eq!(wal_header(&block(&bad), false, &layout, &mut sink), None);
        assert_eq!(wal_choice(None, None, &mut sink), None);
        let newer = WalHeader {
            generation: 8,
            ..good
        };
        let tie = WalHeader { epoch: 4, ..good };
        assert_eq!(
            wal_choice(Some(good), Some(newer), &mut sink),
            Some((newer, true))
        );
        assert_eq!(
            wal_choice(Some(newer), Some(good), &mut sink),
            Some((newer, false))
        );
        assert_eq!(
            wal_choice(Some(good), Some(tie), &mut sink),
            Some((tie, true))
        );
        assert_eq!(
            wal_choice(Some(good), Some(good), &mut sink),
            Some((good, false))
        );
        assert_eq!(wal_choice(None, Some(good), &mut sink), Some((good, true)));
        assert_eq!(
            all,
            [
                Finding::WalHeaderDecode {
                    b: true,
                    error: DecodeError::BadChecksum
                },
                Finding::WalHeaderArea {
                    b: false,
                    wal_start: layout.wal_start,
                    wal_blocks: 17
                },
                Finding::WalHeaderEpoch {
                    b: false,
                    epoch: 1 << 63
                },
                Finding::NoWalHeader,
            ]
        );
        assert!(all.iter().all(|f| f.structure() == Structure::WalHeader));
        assert_eq!(
            std::string::ToString::to_string(&all[0]),
            "WAL header B (block 3): bad checksum"
        );
        let mut first = First::default();
        assert_eq!(
            wal_header(&block(&bad), false, &layout, &mut first.sink()),
            None
        );
        assert_eq!(first.0, Some(all[1]));
    }

    /// The metadata of 1000 blocks of 512 bytes must be allocated, and so must a region's
    /// blocks: every free block is counted, a mount stops at the first.
    #[test]
    fn metadata_and_regions_must_be_allocated() {
        use crate::format::regions::{RegionEntry, RegionKind};
        use crate::types::BlockNo;
        let layout = Layout::compute(512, 1000, 16).unwrap();
        let meta = metadata(&layout);
        assert_eq!((meta.start.0, meta.len), (0, layout.data_start));
        let region = RegionEntry {
            module: 0,
            kind: RegionKind::Small,
            index: 0,
            extent: Extent {
                start: BlockNo(layout.data_start),
                len: 8,
            },
        };
        let mut all = Vec::new();
        let mut sink = |f| {
            all.push(f);
            Flow::Continue
        };
        assert!(metadata_allocated(0, &mut sink));
        assert!(region_allocated(&region, 0, &mut sink));
        assert!(!metadata_allocated(3, &mut sink));
        assert!(!region_allocated(&region, 8, &mut sink));
        assert_eq!(
            all,
            [
                Finding::MetadataFree { free: 3 },
                Finding::RegionFree {
                    module: 0,
                    index: 0,
                    extent: region.extent,
                    free: 8
                },
            ]
        );
        assert!(all.iter().all(|f| f.structure() == Structure::Bitmap));
        assert_eq!(
            std::string::ToString::to_string(&all[1]),
            std::format!(
                "region objects #0 (blocks {}+8): 8 block(s) marked free in the bitmap",
                layout.data_start
            )
        );
        let mut first = First::default();
        assert!(!region_allocated(&region, 1, &mut first.sink()));
        assert!(!metadata_allocated(1, &mut first.sink()));
        assert_eq!(
            first.0,
            Some(Finding::RegionFree {
                module: 0,
                index: 0,
                extent: region.extent,
                free: 1
            })
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
