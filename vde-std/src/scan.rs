//! A raw, read-only walk over every structure of an image, for the checker and the block map.
//!
//! Unlike mounting, which stops at the first inconsistency, [`scan`] reads each structure on its
//! own — superblocks, allocation bitmap, region directory and pointer table, slot index, shared
//! blocks, extent objects — and records every problem it meets as a [`Finding`], going on with
//! whatever remains trustworthy. It never writes. Cross-checks: metadata and regions are
//! allocated in the bitmap; regions lie in the data area and do not overlap; shared blocks are
//! allocated, outside regions and unique; every packed slot matches its slot bitmap and its
//! checksum; extent objects (found through the extent map, never by scanning for headers) are
//! allocated, name their first block and match their payload checksum; the object counters
//! equal what was found.
//!
//! The rules themselves are the core's, written once in [`vde_nostd::verifier`] (the ones a
//! mount checks too); this walk reads the blocks, finds what a rule needs from elsewhere (the
//! bitmap, the regions, the other entries and extents) and turns every finding into a
//! [`Finding`] of an area. Its own are only what needs the whole image at once: a mark inside
//! another extent, and the counters equal to what was found.

use std::collections::{HashMap, HashSet};
use std::io;

use vde_nostd::format::bitmap_block;
use vde_nostd::format::layout::{Layout, SB_MIRROR, SB_PRIMARY, WAL_HDR_A, WAL_HDR_B};
use vde_nostd::format::regions::{self, RegionEntry};
use vde_nostd::format::slot_index::{self, Counters};
use vde_nostd::format::superblock::Superblock;
use vde_nostd::format::DecodeError;
use vde_nostd::subblock::{self, UNIT};
use vde_nostd::verifier::{self, Finding as Finding0, Flow};
use vde_nostd::{bitmap, BlockDevice, BlockNo, Handle};

/// One problem found in an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The structure concerned (`superblock`, `wal`, `bitmap`, `regions`, `slot-index`,
    /// `objects`, `mount`, ...).
    pub area: &'static str,
    /// What is wrong, in one line.
    pub message: String,
    /// Whether `vde check --repair` can fix it.
    pub repairable: bool,
}

impl Finding {
    pub(crate) fn new(area: &'static str, message: impl Into<String>) -> Finding {
        Finding {
            area,
            message: message.into(),
            repairable: false,
        }
    }
    pub(crate) fn repairable(mut self) -> Finding {
        self.repairable = true;
        self
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.area, self.message)?;
        if self.repairable {
            f.write_str(" (repairable)")?;
        }
        Ok(())
    }
}

/// A shared block as listed by the slot index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedBlock {
    /// The block.
    pub block: u64,
    /// Units (64 bytes) per block.
    pub units: usize,
    /// Occupied units.
    pub used_units: usize,
    /// Intact packed objects: `(first unit, units)` of each.
    pub good_slots: Vec<(usize, usize)>,
    /// Occupied units that hold no intact object: `(first unit, units, why)`.
    pub bad_slots: Vec<(usize, usize, String)>,
}

/// An object stored in whole blocks, found by its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtentObject {
    /// Its handle.
    pub handle: Handle,
    /// First block.
    pub start: u64,
    /// Blocks it takes.
    pub blocks: u64,
    /// Payload bytes.
    pub len: u64,
    /// What is wrong with it (`None`: intact).
    pub damage: Option<String>,
}

/// The allocation bitmap as read from the image.
#[derive(Debug, Clone, Default)]
pub struct BitmapView {
    bits: Vec<u8>,
    bits_per_block: u64,
    valid: Vec<bool>,
    blocks: u64,
}

impl BitmapView {
    /// `Some(true)` if block `b` is allocated, `None` if its bitmap block is damaged or `b` is
    /// past the end.
    pub fn allocated(&self, b: u64) -> Option<bool> {
        if b >= self.blocks || self.bits_per_block == 0 {
            return None;
        }
        let idx = usize::try_from(b / self.bits_per_block).ok()?;
        if !self.valid.get(idx).copied().unwrap_or(false) {
            return None;
        }
        Some(bitmap::get(&self.bits, b))
    }
    /// How many blocks of `e` are marked free (blocks whose bitmap block is damaged, or past the
    /// end, are not counted).
    pub fn free_in(&self, e: vde_nostd::Extent) -> u64 {
        let end = e.end().unwrap_or(u64::MAX).min(self.blocks);
        (e.start.0..end)
            .filter(|b| self.allocated(*b) == Some(false))
            .count() as u64
    }
    /// Whether every bitmap block passed its checks.
    pub fn all_valid(&self) -> bool {
        self.valid.iter().all(|v| *v)
    }
}

/// Packed objects found in shared blocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackedTotals {
    /// Objects.
    pub objects: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// Objects per size class.
    pub per_class: [u64; 6],
}

/// Everything [`scan`] learnt about an image.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// The superblock used (the newest valid copy), if any.
    pub superblock: Option<Superblock>,
    /// Its layout.
    pub layout: Option<Layout>,
    /// The allocation bitmap.
    pub bitmap: BitmapView,
    /// Free blocks counted in the bitmap's valid blocks.
    pub free_blocks: u64,
    /// Blocks whose bitmap block is damaged (allocation unknown).
    pub unknown_blocks: u64,
    /// Valid region directory entries.
    pub regions: Vec<RegionEntry>,
    /// Shared blocks listed by the slot index.
    pub shared: Vec<SharedBlock>,
    /// The object counters (from the WAL header mount would use), if the index was readable.
    pub counters: Option<Counters>,
    /// The `objects` region (the slot index), if the module is present.
    pub index_region: Option<vde_nostd::Extent>,
    /// Whether every block of the slot index and the extent map passed its checks (so its
    /// entries and extents are all known).
    pub index_complete: bool,
    /// The blocks the extent map marks as first blocks of extent objects, ascending.
    pub extent_marks: Vec<u64>,
    /// Packed objects found (damaged ones included).
    pub packed: PackedTotals,
    /// Intact packed objects.
    pub packed_intact: PackedTotals,
    /// Extent objects found.
    pub extents: Vec<ExtentObject>,
    /// Allocated data blocks that belong to no region, shared block or object.
    pub unaccounted: Vec<u64>,
    /// Problems.
    pub findings: Vec<Finding>,
    /// Observations that are not problems.
    pub notes: Vec<String>,
}

/// What [`scan`] reads beyond the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Structures and object headers only (for the map).
    Headers,
    /// Also every object's payload checksum (for the checker).
    Payloads,
}

/// Why a superblock copy is unusable, or `None` if it is fine.
pub fn superblock_problem(
    r: &Result<Superblock, DecodeError>,
    block_size: usize,
    block_count: u64,
) -> Option<String> {
    match r {
        Err(DecodeError::BadMagic) => Some("no vde magic".into()),
        Err(DecodeError::BadVersion(v)) => Some(format!("unsupported format version {v}")),
        Err(DecodeError::BadChecksum) => Some("bad checksum".into()),
        Err(DecodeError::BadField) => Some("malformed".into()),
        Ok(sb) => {
            // The rules are the core's (`vde_nostd::verifier`); the first broken one is told.
            let mut first = verifier::First::default();
            verifier::superblock(sb, block_size, block_count, false, &mut first.sink());
            first.0.map(|f| f.to_string())
        }
    }
}

/// Reads and decodes both superblock copies.
pub fn read_superblocks<D: BlockDevice<Error = io::Error>>(
    dev: &mut D,
) -> io::Result<[Result<Superblock, DecodeError>; 2]> {
    let mut buf = vec![0u8; dev.block_size()];
    dev.read_block(SB_PRIMARY, &mut buf)?;
    let a = Superblock::decode(&buf);
    dev.read_block(SB_MIRROR, &mut buf)?;
    let b = Superblock::decode(&buf);
    Ok([a, b])
}

/// The newest usable superblock copy and its layout.
pub fn best_superblock(
    copies: &[Result<Superblock, DecodeError>; 2],
    block_size: usize,
    block_count: u64,
) -> Option<(Superblock, Layout)> {
    // The rules are the core's (`vde_nostd::verifier`); a copy of a format that did not finish
    // is not usable here (mount reads it as not formatted).
    let mut best: Option<(Superblock, Layout)> = None;
    for sb in copies.iter().flatten() {
        let mut no = |_| Flow::Stop;
        let Some(l) = verifier::superblock(sb, block_size, block_count, false, &mut no) else {
            continue;
        };
        if verifier::superblock_newer(sb, best.as_ref().map(|(x, _)| x)) {
            best = Some((*sb, l));
        }
    }
    best
}

fn decode_msg(e: DecodeError) -> String {
    match e {
        DecodeError::BadMagic => "bad magic".into(),
        DecodeError::BadVersion(v) => format!("unsupported version {v}"),
        DecodeError::BadChecksum => "bad checksum".into(),
        DecodeError::BadField => "malformed field".into(),
    }
}

struct Ctx<'a, D> {
    dev: &'a mut D,
    bs: usize,
    buf: Vec<u8>,
    /// Slot bitmaps of `out.shared`, in the same order.
    /// Each shared block's slot bitmap and dead bitmap.
    shared_bits: Vec<(Vec<u8>, Vec<u8>)>,
    /// Entries the slot index holds (accepted or not).
    index_entries: usize,
    out: Scan,
}

impl<D: BlockDevice<Error = io::Error>> Ctx<'_, D> {
    fn read(&mut self, b: u64) -> io::Result<()> {
        self.dev.read_block(BlockNo(b), &mut self.buf)
    }
    fn find(&mut self, area: &'static str, msg: impl Into<String>) {
        self.out.findings.push(Finding::new(area, msg));
    }
    /// A finding that the object repair ([`crate::repair`]) fixes, if the index and the bitmap
    /// are whole and the volume mounts.
    fn find_fixable(&mut self, area: &'static str, msg: impl Into<String>) {
        self.out.findings.push(Finding::new(area, msg).repairable());
    }
}

/// Walks the whole image on `dev` (see the module documentation). Only I/O errors are returned
/// as errors; everything wrong with the content is a finding. `progress(done, total)` is called
/// as data blocks are visited.
pub fn scan<D: BlockDevice<Error = io::Error>>(
    dev: &mut D,
    depth: Depth,
    progress: &mut dyn FnMut(u64, u64),
) -> io::Result<Scan> {
    let bs = dev.block_size();
    let n = dev.block_count();
    let copies = read_superblocks(dev)?;
    let mut cx = Ctx {
        dev,
        bs,
        buf: vec![0u8; bs],
        shared_bits: Vec::new(),
        index_entries: 0,
        out: Scan::default(),
    };
    let Some((sb, layout)) = best_superblock(&copies, bs, n) else {
        cx.find("superblock", "neither superblock copy is usable");
        return Ok(cx.out);
    };
    cx.out.superblock = Some(sb);
    cx.out.layout = Some(layout);
    read_bitmap(&mut cx, &layout)?;
    read_regions(&mut cx, &layout, sb.manifest)?;
    read_slot_index(&mut cx, &layout)?;
    walk_shared(&mut cx)?;
    walk_extents(&mut cx, &layout, depth, progress)?;
    compare_counters(&mut cx);
    progress(n, n);
    Ok(cx.out)
}

fn read_bitmap<D: BlockDevice<Error = io::Error>>(
    cx: &mut Ctx<'_, D>,
    l: &Layout,
) -> io::Result<()> {
    let bpb = l.bits_per_block();
    let bytes_per = (bpb / 8) as usize;
    let total = usize::try_from(l.bitmap_blocks)
        .ok()
        .and_then(|b| b.checked_mul(bytes_per))
        .unwrap_or(0);
    let mut bits = vec![0u8; total];
    let mut valid = Vec::with_capacity(l.bitmap_blocks as usize);
    for i in 0..l.bitmap_blocks {
        let b = l.bitmap_start + i;
        cx.read(b)?;
        let mut found = Vec::new();
        let mut sink = |f| {
            found.push(f);
            Flow::Continue
        };
        let ok = verifier::bitmap_block(&cx.buf, i, &mut sink);
        // The rule for the bits past the last block, on the last block as read.
        if ok && i + 1 == l.bitmap_blocks {
            verifier::bitmap_tail(&cx.buf, l, &mut sink);
        }
        for f in found {
            let m = match f {
                Finding0::BitmapBlock { error, .. } => {
                    format!("bitmap block {i} (block {b}): {}", decode_msg(error))
                }
                _ => f.to_string(),
            };
            cx.find("bitmap", m);
        }
        if ok {
            let at = i as usize * bytes_per;
            if let (Some(dst), Some(src)) = (
                bits.get_mut(at..at + bytes_per),
                bitmap_block::bits(&cx.buf).get(..bytes_per),
            ) {
                dst.copy_from_slice(src);
            }
        }
        valid.push(ok);
    }
    cx.out.bitmap = BitmapView {
        bits,
        bits_per_block: bpb,
        valid,
        blocks: l.block_count,
    };
    // The rule is the core's (`vde_nostd::verifier`); the blocks of damaged bitmap blocks are
    // not counted (their allocation is unknown).
    let meta_free = cx.out.bitmap.free_in(verifier::metadata(l));
    let mut found = Vec::new();
    verifier::metadata_allocated(meta_free, &mut collect(&mut found));
    for f in found {
        cx.find("bitmap", f.to_string());
    }
    let (mut free, mut unknown) = (0u64, 0u64);
    for b in 0..l.block_count {
        match cx.out.bitmap.allocated(b) {
            Some(false) => free += 1,
            None => unknown += 1,
            Some(true) => {}
        }
    }
    cx.out.free_blocks = free;
    cx.out.unknown_blocks = unknown;
    Ok(())
}

fn read_regions<D: BlockDevice<Error = io::Error>>(
    cx: &mut Ctx<'_, D>,
    l: &Layout,
    manifest: u64,
) -> io::Result<()> {
    cx.read(l.regdir)?;
    let dir = cx.buf.clone();
    cx.read(l.rpt)?;
    let rpt = cx.buf.clone();
    // The rules are the core's (`vde_nostd::verifier`), every broken one reported.
    let mut found = Vec::new();
    let mut sink = |f: Finding0| {
        found.push(f);
        Flow::Continue
    };
    let mut table = [(0u16, 0u16); regions::RPT_SLOTS];
    let decoded = verifier::pointer_table(&rpt, &mut table, &mut sink);
    let count = verifier::regions(&dir, decoded.then_some(&table), l, manifest, &mut sink);
    for f in found {
        let m = match f {
            Finding0::PointerTable(e) => {
                format!("region pointer table (block {}): {}", l.rpt, decode_msg(e))
            }
            Finding0::Directory(e) => {
                format!("region directory (block {}): {}", l.regdir, decode_msg(e))
            }
            _ => f.to_string(),
        };
        cx.find("regions", m);
    }
    // The regions that lie in the data area: their blocks must be allocated (the core's rule).
    for i in 0..count.unwrap_or(0) {
        let Ok(e) = regions::dir_entry(&dir, i) else {
            continue;
        };
        if !verifier::in_data_area(&e.extent, l) {
            continue;
        }
        let mut found = Vec::new();
        let free = cx.out.bitmap.free_in(e.extent);
        verifier::region_allocated(&e, free, &mut collect(&mut found));
        for f in found {
            cx.find("bitmap", f.to_string());
        }
        cx.out.regions.push(e);
    }
    Ok(())
}

fn read_slot_index<D: BlockDevice<Error = io::Error>>(
    cx: &mut Ctx<'_, D>,
    l: &Layout,
) -> io::Result<()> {
    let Some(region) = cx
        .out
        .regions
        .iter()
        .find(|r| r.module == 0 && r.index == 0)
        .copied()
    else {
        return Ok(());
    };
    cx.out.index_region = Some(region.extent);
    let bs = cx.bs;
    let es = slot_index::entry_size(bs);
    let start = region.extent.start.0;
    // The rules are the core's (`vde_nostd::verifier`), every broken one reported.
    let mut found = Vec::new();
    cx.read(start)?;
    let map_blocks = slot_index::extent_map_blocks(bs, l.block_count);
    let index_blocks = slot_index::index_blocks(bs, region.extent.len, l.block_count);
    let head = verifier::slot_index_block(
        &cx.buf,
        0,
        index_blocks,
        map_blocks,
        &mut collect(&mut found),
    );
    report_index(cx, start, std::mem::take(&mut found));
    // The counters are the checkpoint's, in the WAL header mount would use (the scan runs
    // after recovery, so no committed transaction is left in the log).
    // The rules are the core's (`vde_nostd::verifier`); a damaged copy is the check's to report
    // (as it is on disk, before recovery), neither usable here.
    let mut headers = [None, None];
    for (h, (b, is_b)) in headers
        .iter_mut()
        .zip([(WAL_HDR_A, false), (WAL_HDR_B, true)])
    {
        cx.read(b.0)?;
        *h = verifier::wal_header(&cx.buf, is_b, l, &mut |_| Flow::Continue);
    }
    let chosen = verifier::wal_choice(headers[0], headers[1], &mut collect(&mut found));
    match chosen {
        Some((h, _)) => cx.out.counters = Some(h.counters),
        None => {
            for f in std::mem::take(&mut found) {
                cx.find("wal", format!("{f}: no object counters"));
            }
            return Ok(());
        }
    }
    let Some(count) = head else {
        return Ok(());
    };
    cx.read(start)?;
    // The entries, dense (entry `i` at `i * es`), as the core keeps them.
    let mut index: Vec<u8> = Vec::with_capacity(count.saturating_mul(es));
    let mut blk = 0u64;
    while index.len() < count * es && blk < index_blocks {
        if blk > 0 {
            cx.read(start + blk)?;
            let read = {
                let sink = &mut collect(&mut found);
                verifier::slot_index_block(&cx.buf, blk, index_blocks, map_blocks, sink)
            };
            if read.is_none() {
                report_index(cx, start, found);
                return Ok(());
            }
        }
        let (first, room) = slot_index::block_span(bs, blk);
        let take = room.min(count.saturating_sub(first));
        let off = slot_index::entries_offset(blk);
        if let Some(e) = cx.buf.get(off..off + take * es) {
            index.extend_from_slice(e);
        }
        blk += 1;
    }
    let entries = index.len() / es;
    cx.index_entries = entries;
    cx.out.index_complete = entries == count && read_extent_map(cx, l, start + index_blocks)?;
    let units = bs / UNIT;
    let mut listed: HashMap<u64, usize> = HashMap::new();
    for (i, bytes) in index.chunks_exact(es).enumerate() {
        let mut found = Vec::new();
        let raw = bytes
            .first_chunk::<8>()
            .map_or(0, |n| u64::from_le_bytes(*n));
        let earlier = listed.get(&raw).copied();
        listed.entry(raw).or_insert(i);
        let placed = {
            let mut sink = collect(&mut found);
            verifier::slot_entry(bytes, i, l, &mut sink).filter(|e| {
                let place = verifier::SharedPlace {
                    earlier,
                    region: cx
                        .out
                        .regions
                        .iter()
                        .find(|r| r.extent.contains(e.block))
                        .map(|r| r.module),
                    allocated: cx.out.bitmap.allocated(e.block.0),
                };
                verifier::shared_place(i, e.block, &place, &mut sink)
            })
        };
        if let Some(e) = placed {
            cx.out.shared.push(SharedBlock {
                block: e.block.0,
                units,
                used_units: units - e.live.free_units(),
                good_slots: Vec::new(),
                bad_slots: Vec::new(),
            });
            cx.shared_bits
                .push((e.live.bytes().to_vec(), e.dead.bytes().to_vec()));
        }
        report_index(cx, start, found);
    }
    Ok(())
}

/// A sink that keeps every finding.
fn collect(found: &mut Vec<Finding0>) -> impl FnMut(Finding0) -> Flow + '_ {
    |f| {
        found.push(f);
        Flow::Continue
    }
}

/// Records the findings of the slot index rules (its first block `start`).
fn report_index<D: BlockDevice<Error = io::Error>>(
    cx: &mut Ctx<'_, D>,
    start: u64,
    found: Vec<Finding0>,
) {
    for f in found {
        let m = match f {
            Finding0::SlotIndexBlock { index: 0, error } => {
                format!("head block {start}: {}", decode_msg(error))
            }
            Finding0::SlotIndexBlock { index, error } => format!(
                "index block {index} (block {}): {}",
                start + index,
                decode_msg(error)
            ),
            _ => f.to_string(),
        };
        cx.find("slot-index", m);
    }
}

/// Reads the extent map (its `M` blocks from `first`) into `extent_marks` (the marks in the
/// data area); `false` (with a finding) if a block is damaged or marks a block outside the
/// data area.
fn read_extent_map<D: BlockDevice<Error = io::Error>>(
    cx: &mut Ctx<'_, D>,
    l: &Layout,
    first: u64,
) -> io::Result<bool> {
    let per = l.bits_per_block();
    let mut found = Vec::new();
    let mut whole = true;
    for j in 0..slot_index::extent_map_blocks(cx.bs, l.block_count) {
        cx.read(first + j)?;
        // The rules are the core's (`vde_nostd::verifier`).
        if !verifier::extent_map_block(&cx.buf, j, &mut collect(&mut found)) {
            whole = false;
            break;
        }
        whole &= verifier::extent_marks(&cx.buf, j, l, &mut collect(&mut found)).is_some();
        for (k, byte) in bitmap_block::bits(&cx.buf).iter().enumerate() {
            for bit in 0..8u64 {
                let b = j * per + k as u64 * 8 + bit;
                if byte & (1 << bit) != 0 && b >= l.data_start && b < l.block_count {
                    cx.out.extent_marks.push(b);
                }
            }
        }
    }
    for f in found {
        let m = match f {
            Finding0::ExtentMapBlock { index, error } => format!(
                "extent map block {index} (block {}): {}",
                first + index,
                decode_msg(error)
            ),
            _ => f.to_string(),
        };
        cx.find("slot-index", m);
    }
    Ok(whole)
}

fn walk_shared<D: BlockDevice<Error = io::Error>>(cx: &mut Ctx<'_, D>) -> io::Result<()> {
    let bits = std::mem::take(&mut cx.shared_bits);
    let bs = cx.bs;
    let units = bs / UNIT;
    let shared: Vec<u64> = cx.out.shared.iter().map(|s| s.block).collect();
    for (i, (block, (bits, dead))) in shared.into_iter().zip(bits).enumerate() {
        let (Some(view), Some(dead)) = (
            subblock::SlotBitmapRef::new(&bits, bs),
            subblock::SlotBitmapRef::new(&dead, bs),
        ) else {
            continue;
        };
        cx.read(block)?;
        let mut dirty_free = 0usize;
        let mut good = Vec::new();
        let mut bad: Vec<(usize, usize, String)> = Vec::new();
        let mut u = 0usize;
        while u < units {
            let at = u * UNIT;
            if !view.occupied(u) {
                // A dead unit keeps a deleted slot's bytes until its block is compacted.
                if !dead.occupied(u)
                    && cx
                        .buf
                        .get(at..at + UNIT)
                        .is_some_and(|s| s.iter().any(|x| *x != 0))
                {
                    dirty_free += 1;
                }
                u += 1;
                continue;
            }
            // The rules are the core's (`vde_nostd::verifier`).
            let mut found = Vec::new();
            let Some(slot) = verifier::slot(&cx.buf, block, u, view, bs, &mut collect(&mut found))
            else {
                for f in found {
                    let m = f.to_string();
                    cx.find_fixable("objects", m.clone());
                    bad.push((u, 1, m));
                }
                u += 1;
                continue;
            };
            let (class, hdr, per) = (slot.class, slot.header, slot.units);
            let h = Handle::Packed {
                block: BlockNo(block),
                unit: u as u16,
                class,
                tag: hdr.tag,
            };
            let slot_bytes = cx.buf.get(at..).unwrap_or_default();
            let intact = verifier::slot_payload(slot_bytes, &hdr, h, &mut collect(&mut found));
            let count = |t: &mut PackedTotals| {
                t.objects += 1;
                t.bytes += u64::from(hdr.len);
                if let Some(c) = t.per_class.get_mut(usize::from(class)) {
                    *c += 1;
                }
            };
            count(&mut cx.out.packed);
            if intact {
                count(&mut cx.out.packed_intact);
                good.push((u, per));
            }
            for f in found {
                let m = f.to_string();
                cx.find_fixable("objects", m.clone());
                bad.push((u, per, m));
            }
            u += per;
        }
        if dirty_free > 0 {
            cx.out.notes.push(format!(
                "shared block {block}: {dirty_free} free unit(s) hold non-zero bytes (harmless)"
            ));
        }
        if let Some(sb) = cx.out.shared.get_mut(i) {
            sb.good_slots = good;
            sb.bad_slots = bad;
        }
    }
    Ok(())
}

fn walk_extents<D: BlockDevice<Error = io::Error>>(
    cx: &mut Ctx<'_, D>,
    l: &Layout,
    depth: Depth,
    progress: &mut dyn FnMut(u64, u64),
) -> io::Result<()> {
    let n = l.block_count;
    let shared: HashSet<u64> = cx.out.shared.iter().map(|s| s.block).collect();
    let regions: Vec<_> = cx.out.regions.iter().map(|r| r.extent).collect();
    let claimed = |b: u64| shared.contains(&b) || regions.iter().any(|r| r.contains(BlockNo(b)));
    // Blocks of the extents found (intact or not): they are not leaked.
    let mut held: HashSet<u64> = HashSet::new();
    let marks = std::mem::take(&mut cx.out.extent_marks);
    for &b in &marks {
        if held.contains(&b) {
            cx.find_fixable(
                "objects",
                format!("block {b}: marked as an extent's first block inside another extent"),
            );
            continue;
        }
        cx.read(b)?;
        // The rules are the core's (`vde_nostd::verifier`).
        let mut found = Vec::new();
        let Some(x) = verifier::extent(&cx.buf, b, l, &mut collect(&mut found)) else {
            for f in found {
                let m = match f {
                    Finding0::ExtentHeader { block, error } => format!(
                        "block {block}: marked as an extent's first block, its header is damaged ({})",
                        decode_msg(error)
                    ),
                    _ => f.to_string(),
                };
                cx.find_fixable("objects", m);
            }
            continue;
        };
        let (h, blocks, end) = (x.handle, x.blocks, b + x.blocks);
        let unheld = (b..end)
            .filter(|x| {
                cx.out.bitmap.allocated(*x) == Some(false) || claimed(*x) || held.contains(x)
            })
            .count();
        verifier::extent_place(h, blocks, unheld as u64, &mut collect(&mut found));
        if depth == Depth::Payloads {
            let mut payload = verifier::ExtentPayload::new(&x.header);
            for k in 0..blocks {
                if k > 0 {
                    cx.read(b + k)?;
                }
                payload.block(k, &cx.buf);
            }
            verifier::extent_payload(payload, &x, &mut collect(&mut found));
        }
        let mut damage = None;
        for f in found {
            let m = f.to_string();
            cx.find_fixable("objects", m.clone());
            damage.get_or_insert(m);
        }
        held.extend(b..end);
        cx.out.extents.push(ExtentObject {
            handle: h,
            start: b,
            blocks,
            len: x.header.len,
            damage,
        });
    }
    cx.out.extent_marks = marks;
    // Every other allocated data block outside regions and shared blocks is unaccounted for.
    for b in l.data_start..n {
        if b.is_multiple_of(4096) {
            progress(b, n);
        }
        if cx.out.bitmap.allocated(b) == Some(true) && !claimed(b) && !held.contains(&b) {
            cx.out.unaccounted.push(b);
        }
    }
    Ok(())
}

fn compare_counters<D: BlockDevice<Error = io::Error>>(cx: &mut Ctx<'_, D>) {
    let Some(c) = cx.out.counters else {
        // Without damage elsewhere, blocks outside regions and objects were written raw.
        if !cx.out.unaccounted.is_empty() && cx.out.findings.is_empty() {
            let k = cx.out.unaccounted.len();
            cx.out.notes.push(format!(
                "{k} allocated data block(s) belong to no region or object (blocks written through the raw transaction API)"
            ));
        }
        unfixable(&mut cx.out.findings);
        return;
    };
    // Counts are only comparable when nothing was skipped for damage.
    if !cx.out.bitmap.all_valid() || !cx.out.index_complete {
        unfixable(&mut cx.out.findings);
        return;
    }
    let p = cx.out.packed;
    let ext = cx.out.extents.len() as u64;
    let ext_blocks: u64 = cx.out.extents.iter().map(|e| e.blocks).sum();
    let ext_bytes: u64 = cx.out.extents.iter().map(|e| e.len).sum();
    // The rules of the marks' number and of the counters against the slot index are the
    // core's (`vde_nostd::verifier`); the second only when every entry was accepted.
    let mut found = Vec::new();
    let marks = cx.out.extent_marks.len() as u64;
    verifier::extent_count(marks, c.extent_objects, &mut collect(&mut found));
    if let (Some(l), true) = (cx.out.layout, cx.index_entries == cx.out.shared.len()) {
        let occupied: u64 = cx.out.shared.iter().map(|s| s.used_units as u64).sum();
        let room = l
            .block_count
            .saturating_sub(l.data_start)
            .saturating_sub(cx.out.free_blocks)
            .saturating_sub(cx.out.shared.len() as u64);
        verifier::counters(&c, occupied, room, &mut collect(&mut found));
    }
    let mut bad = Vec::new();
    for f in found {
        cx.find_fixable("objects", f.to_string());
    }
    if c.per_class != p.per_class {
        bad.push(format!(
            "packed objects per class {:?}, found {:?}",
            c.per_class, p.per_class
        ));
    }
    if c.extent_objects != ext {
        bad.push(format!("{} extent objects, found {ext}", c.extent_objects));
    }
    if c.extent_blocks != ext_blocks {
        bad.push(format!(
            "{} extent blocks, found {ext_blocks}",
            c.extent_blocks
        ));
    }
    if c.objects != p.objects + ext {
        bad.push(format!("{} objects, found {}", c.objects, p.objects + ext));
    }
    if c.bytes != p.bytes + ext_bytes {
        bad.push(format!(
            "{} payload bytes, found {}",
            c.bytes,
            p.bytes + ext_bytes
        ));
    }
    for m in bad {
        cx.find_fixable("objects", format!("the object counters say {m}"));
    }
    // With the objects module, every allocated data block belongs to a region, a shared block
    // or an extent object: any other is leaked.
    if !cx.out.unaccounted.is_empty() {
        let k = cx.out.unaccounted.len();
        let first: Vec<String> = cx
            .out
            .unaccounted
            .iter()
            .take(8)
            .map(u64::to_string)
            .collect();
        let more = if k > 8 { ", ..." } else { "" };
        cx.find_fixable(
            "objects",
            format!(
                "{k} allocated data block(s) belong to no region, shared block or object (leaked): {}{more}",
                first.join(", ")
            ),
        );
    }
}

/// Marks the object findings (areas `objects` and `slot-index`) as not repairable: the object
/// repair needs the whole index and bitmap, and a volume that mounts.
pub(crate) fn unfixable(findings: &mut [Finding]) {
    for f in findings
        .iter_mut()
        .filter(|f| f.area == "objects" || f.area == "slot-index")
    {
        f.repairable = false;
    }
}
