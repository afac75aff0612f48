//! Object repair behind `vde check --repair`: drops damaged objects, recomputes the slot-index
//! counters from what is found, and frees leaked blocks.
//!
//! Input: a [`Scan`] of the image after WAL recovery. It acts only when the scan could read the
//! whole slot index and the whole bitmap (it never guesses at lost metadata) and the volume
//! mounts. Then, on a volume with the `objects` module:
//! - a packed object whose slot header is unreadable, empty, of an impossible length, outside
//!   its slot bitmap, or whose payload fails its checksum is dropped: its units are freed in the
//!   slot bitmap and zeroed in the shared block; a shared block left empty is dropped from the
//!   index;
//! - an extent object whose payload fails its checksum, or whose blocks are free or taken by
//!   something else, is dropped: its header block is zeroed; the extent map is rewritten to mark
//!   exactly the intact extents (a mark on a damaged header or inside another extent goes);
//! - the counters are recomputed from the intact objects;
//! - every allocated data block that belongs to no region, no kept shared block and no intact
//!   extent is freed (leaked blocks, the blocks of dropped objects, damaged extent headers).
//!
//! Every change goes through the engine's write-ahead log as raw transactions, so a power cut
//! during repair leaves the image as before or as after each transaction, and a second repair
//! finishes the job: first one transaction with the whole rewritten slot index (entries,
//! bitmaps and counters change together), then the zeroing of dropped slots and headers, then
//! the frees.
//!
//! Invariant: an intact object is never touched, and after a repair that completes the checker
//! finds nothing in the areas it covers.

use std::collections::HashSet;
use std::io;

use vde_nostd::format::bitmap_block;
use vde_nostd::format::slot_index::{self, Counters};
use vde_nostd::subblock::{self, SlotBitmap, UNIT};
use vde_nostd::{BlockDevice, BlockNo, Extent, ModuleSet, Volume};

use crate::error::{engine_message, Result};
use crate::scan::Scan;
use crate::TX_BLOCKS;

/// What the repair would write: the plan, computed from a scan without touching the image.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The rewritten slot index blocks (`(block, content)`), all in one transaction.
    pub index_blocks: Vec<(u64, Vec<u8>)>,
    /// The recomputed object counters, if they differ from the volume's (set by the index's
    /// transaction).
    pub counters: Option<Counters>,
    /// Blocks rewritten outside the index: shared blocks with dropped slots zeroed, and zeroed
    /// extent headers.
    pub rewrites: Vec<(u64, Vec<u8>)>,
    /// Runs of blocks to free.
    pub frees: Vec<Extent>,
    /// One line per dropped object, freed run or recomputed counter.
    pub actions: Vec<String>,
}

impl Plan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.index_blocks.is_empty()
            && self.counters.is_none()
            && self.rewrites.is_empty()
            && self.frees.is_empty()
    }
}

/// Plans the object repair of an image from its scan; `read` reads a block's current content.
/// Returns `None` when the scan cannot support one (no objects module, or a damaged index or
/// bitmap).
pub fn plan<E>(
    scan: &Scan,
    mut read: impl FnMut(u64, &mut [u8]) -> std::result::Result<(), E>,
) -> std::result::Result<Option<Plan>, E> {
    let (Some(sb), Some(l), Some(region), Some(old)) = (
        scan.superblock.as_ref(),
        scan.layout.as_ref(),
        scan.index_region,
        scan.counters,
    ) else {
        return Ok(None);
    };
    if !ModuleSet::from_bits_truncate(sb.manifest).contains(ModuleSet::OBJECTS)
        || !scan.index_complete
        || !scan.bitmap.all_valid()
    {
        return Ok(None);
    }
    let bs = l.bs();
    let units = bs / UNIT;
    let es = slot_index::entry_size(bs);
    let mut p = Plan::default();
    let mut counters = Counters::default();
    // Packed objects: keep the intact slots, drop the rest.
    let mut entries: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut keep: HashSet<u64> = HashSet::new();
    let mut buf = vec![0u8; bs];
    for s in &scan.shared {
        let mut bits = vec![0u8; subblock::bitmap_bytes(bs)];
        if let Some(mut bm) = SlotBitmap::new(&mut bits, bs) {
            for &(u, n) in &s.good_slots {
                bm.set_range(u, n, true);
            }
        }
        for (_, _, why) in &s.bad_slots {
            p.actions.push(format!("dropped {why}"));
        }
        if !s.bad_slots.is_empty() {
            read(s.block, &mut buf)?;
            for &(u, n, _) in &s.bad_slots {
                if let Some(d) = buf.get_mut(u * UNIT..(u + n).min(units) * UNIT) {
                    d.fill(0);
                }
            }
            if !s.good_slots.is_empty() {
                p.rewrites.push((s.block, buf.clone()));
            }
        }
        if s.good_slots.is_empty() {
            p.actions
                .push(format!("dropped shared block {} (no object left)", s.block));
            continue;
        }
        keep.insert(s.block);
        entries.push((s.block, bits));
    }
    let t = scan.packed_intact;
    counters.objects = t.objects;
    counters.bytes = t.bytes;
    counters.per_class = t.per_class;
    // Extent objects: keep the intact ones.
    let mut marks: Vec<u64> = Vec::new();
    for e in &scan.extents {
        match &e.damage {
            None => {
                marks.push(e.start);
                counters.objects += 1;
                counters.bytes += e.len;
                counters.extent_objects += 1;
                counters.extent_blocks += e.blocks;
                for b in e.start..e.start + e.blocks {
                    keep.insert(b);
                }
            }
            Some(why) => {
                p.actions.push(format!("dropped {why}"));
                p.rewrites.push((e.start, vec![0u8; bs]));
            }
        }
    }
    // The extent map, rewritten (in the index's transaction) when it marks anything but the
    // intact extents' first blocks.
    let map_blocks = slot_index::extent_map_blocks(bs, l.block_count);
    let index_blocks = slot_index::index_blocks(bs, region.len, l.block_count);
    let map_tag_count = u32::try_from(map_blocks).unwrap_or(u32::MAX);
    marks.sort_unstable();
    if marks != scan.extent_marks {
        p.actions.push(format!(
            "rewrote the extent map: {} extent(s) marked (was {})",
            marks.len(),
            scan.extent_marks.len()
        ));
        for j in 0..map_blocks {
            let mut blk = vec![0u8; bs];
            let bits = marks.iter().map(|b| slot_index::extent_bit(bs, *b));
            for at in bits.filter(|at| at.map_block == j) {
                if let Some(x) = blk.get_mut(at.byte()) {
                    *x |= at.mask();
                }
            }
            let tag = slot_index::extent_map_tag(j);
            if bitmap_block::seal(&mut blk, tag).is_some() {
                p.index_blocks
                    .push((region.start.0 + index_blocks + j, blk));
            }
        }
    }
    if counters != old {
        p.counters = Some(counters);
        p.actions.push(format!(
            "recomputed the object counters: {} objects ({} extent objects in {} blocks), {} payload bytes (were {} objects ({} extent objects in {} blocks), {} bytes)",
            counters.objects,
            counters.extent_objects,
            counters.extent_blocks,
            counters.bytes,
            old.objects,
            old.extent_objects,
            old.extent_blocks,
            old.bytes
        ));
    }
    // The index, rewritten when anything in it changes: a slot bitmap, or an entry dropped
    // with its last object.
    let index_changed = scan
        .shared
        .iter()
        .any(|s| !s.bad_slots.is_empty() || s.good_slots.is_empty());
    if index_changed {
        let count = u32::try_from(entries.len()).unwrap_or(u32::MAX);
        let mut i = 0u64;
        loop {
            let (first, room) = slot_index::block_span(bs, i);
            if i > 0 && first >= entries.len() {
                break;
            }
            if i >= index_blocks {
                break;
            }
            let mut blk = vec![0u8; bs];
            let off = slot_index::entries_offset(i);
            for (k, (b, bits)) in entries.iter().skip(first).take(room).enumerate() {
                let at = off + k * es;
                if let Some(d) = blk.get_mut(at..at + 8) {
                    d.copy_from_slice(&b.to_le_bytes());
                }
                // The slot bitmap; the dead bitmap after it stays zero (units of dropped or
                // deleted slots become free: a put clears any bytes left in a slot it takes).
                if let Some(d) = blk.get_mut(at + 8..at + 8 + bits.len()) {
                    d.copy_from_slice(bits);
                }
            }
            if slot_index::encode_head(&mut blk, i, count, map_tag_count)
                .and_then(|_| slot_index::seal(&mut blk))
                .is_some()
            {
                p.index_blocks.push((region.start.0 + i, blk));
            }
            i += 1;
        }
    }
    // Leaked blocks: allocated data blocks that nothing kept accounts for.
    let regions: Vec<Extent> = scan.regions.iter().map(|r| r.extent).collect();
    let accounted = |b: u64| keep.contains(&b) || regions.iter().any(|r| r.contains(BlockNo(b)));
    // Runs stop at bitmap-block boundaries, so freeing one stages at most one bitmap block.
    let bpb = l.bits_per_block();
    let mut run: Option<Extent> = None;
    for b in l.data_start..l.block_count {
        let leaked = scan.bitmap.allocated(b) == Some(true) && !accounted(b);
        match (&mut run, leaked) {
            (Some(r), true) if r.start.0 + r.len == b && !b.is_multiple_of(bpb) => r.len += 1,
            (_, true) => {
                if let Some(r) = run.take() {
                    p.frees.push(r);
                }
                run = Some(Extent {
                    start: BlockNo(b),
                    len: 1,
                });
            }
            (_, false) => {
                if let Some(r) = run.take() {
                    p.frees.push(r);
                }
            }
        }
    }
    if let Some(r) = run {
        p.frees.push(r);
    }
    for r in &p.frees {
        p.actions.push(if r.len == 1 {
            format!("freed leaked block {}", r.start.0)
        } else {
            format!(
                "freed leaked blocks {}..={}",
                r.start.0,
                r.start.0 + r.len - 1
            )
        });
    }
    Ok(Some(p))
}

/// Carries out `plan` on `dev` through the engine's log (see the module documentation), and
/// appends the actions taken, or why nothing was done, to `actions`. An error (a device error
/// or a power cut) may leave any prefix of the plan's transactions applied; a later repair
/// plans afresh from what it finds and finishes.
pub fn apply<D: BlockDevice<Error = io::Error>>(
    dev: &mut D,
    plan: &Plan,
    actions: &mut Vec<String>,
) -> Result<()> {
    if plan.is_empty() {
        return Ok(());
    }
    let mut mem = crate::OwnedBuffers::for_device(&*dev);
    let mut vol = match Volume::<&mut D, TX_BLOCKS>::mount(dev, mem.bufs()) {
        Ok(v) => v,
        Err(e) => {
            actions.push(format!(
                "objects not repaired: the volume does not mount ({})",
                engine_message(&e.into())
            ));
            return Ok(());
        }
    };
    // The most block updates one transaction may hold (the buffer and the log both bound it).
    let max = (1..=vol.tx_capacity())
        .take_while(|n| vol.wal().fits(*n))
        .last()
        .unwrap_or(0);
    // 1. The index, whole, in one transaction.
    if plan.index_blocks.len() > max {
        actions.push(format!(
            "objects not repaired: the rewritten slot index ({} blocks) does not fit one transaction ({max})",
            plan.index_blocks.len()
        ));
        return Ok(());
    }
    if !plan.index_blocks.is_empty() || plan.counters.is_some() {
        let mut tx = vol.begin();
        for (b, d) in &plan.index_blocks {
            tx.write(BlockNo(*b), d)?;
        }
        if let Some(c) = plan.counters {
            tx.set_object_counters(c)?;
        }
        tx.commit()?;
    }
    // 2. Zeroed slots and headers, 3. frees (one bitmap block each): as many per transaction
    // as fit.
    let mut tx = vol.begin();
    for (b, d) in &plan.rewrites {
        if tx.len() + 1 > max {
            tx.commit()?;
            tx = vol.begin();
        }
        tx.write(BlockNo(*b), d)?;
    }
    for r in &plan.frees {
        if tx.len() + 1 > max {
            tx.commit()?;
            tx = vol.begin();
        }
        tx.release(*r)?;
    }
    tx.commit()?;
    vol.unmount()?;
    actions.extend(plan.actions.iter().cloned());
    Ok(())
}
