extern crate std;
use super::*;
use crate::device::RamDevice;
use crate::error::MountError;
use crate::handle::Handle;
use crate::modules::by_name;
use std::vec;
use std::vec::Vec;

const BS: usize = 512;

fn opts(modules: ModuleSet) -> FormatOptions {
    FormatOptions {
        wal_blocks: Some(16),
        volume_id: [7; 16],
        now: 100,
        modules,
    }
}

struct Mem {
    scratch: Vec<u8>,
    txn: Vec<u8>,
    index: Vec<u8>,
}

impl Mem {
    fn new() -> Mem {
        Mem {
            scratch: vec![0; Buffers::scratch_min(BS, false)],
            txn: vec![0; (BS + crate::tx_buffer::RANGE_OVERHEAD) * 8],
            index: vec![0; 4096],
        }
    }
    fn bufs<const K: usize>(&mut self) -> Buffers<'_, K> {
        Buffers {
            scratch: &mut self.scratch,
            txn: &mut self.txn,
            index: &mut self.index,
        }
    }
}

#[test]
fn format_mount_and_usage() {
    let mut img = vec![0u8; BS * 1024];
    let mut m = Mem::new();
    let dev = RamDevice::new(&mut img, BS).unwrap();
    let vol = Volume::<_, 8>::format(dev, &opts(ModuleSet::empty()), m.bufs()).unwrap();
    let l = *vol.layout();
    assert_eq!(vol.usage().free_blocks, 1024 - l.data_start);
    let _ = vol.unmount().unwrap();
    let dev = RamDevice::new(&mut img, BS).unwrap();
    let mut vol = Volume::<_, 8>::mount(dev, m.bufs()).unwrap();
    assert_eq!(vol.usage().free_blocks, 1024 - l.data_start);
    assert_eq!(vol.first_fit(10).unwrap(), Some(BlockNo(l.data_start)));
    assert_eq!(vol.recovery_report().replayed, 0);
}

#[test]
fn transaction_commit_rollback_and_remount() {
    let mut img = vec![0u8; BS * 1024];
    let mut m = Mem::new();
    let dev = RamDevice::new(&mut img, BS).unwrap();
    let mut vol = Volume::<_, 8>::format(dev, &opts(ModuleSet::empty()), m.bufs()).unwrap();
    let free0 = vol.usage().free_blocks;
    let mut tx = vol.begin();
    let e = tx.allocate(3).unwrap();
    for i in 0..3 {
        tx.write(BlockNo(e.start.0 + i), &[i as u8 + 1; BS])
            .unwrap();
    }
    tx.commit().unwrap();
    assert_eq!(vol.usage().free_blocks, free0 - 3);
    // rollback leaves the device byte-identical
    let before: Vec<u8> = vol.device().bytes().to_vec();
    let mut tx = vol.begin();
    let e2 = tx.allocate(2).unwrap();
    tx.write(e2.start, &[9; BS]).unwrap();
    tx.rollback();
    assert_eq!(vol.device().bytes(), &before[..]);
    assert_eq!(vol.usage().free_blocks, free0 - 3);
    // crash without checkpoint: recovery replays
    let _ = vol.into_device();
    let dev = RamDevice::new(&mut img, BS).unwrap();
    let mut vol = Volume::<_, 8>::mount(dev, m.bufs()).unwrap();
    assert_eq!(vol.usage().free_blocks, free0 - 3);
    let mut buf = [0u8; BS];
    vol.read_block(BlockNo(e.start.0 + 2), &mut buf).unwrap();
    assert_eq!(buf, [3u8; BS]);
}

#[test]
fn transaction_limits_are_clear_errors() {
    let mut img = vec![0u8; BS * 1024];
    let mut m = Mem::new();
    let dev = RamDevice::new(&mut img, BS).unwrap();
    let mut vol = Volume::<_, 8>::format(dev, &opts(ModuleSet::empty()), m.bufs()).unwrap();
    let ds = vol.layout().data_start;
    let mut tx = vol.begin();
    for i in 0..8 {
        tx.write(BlockNo(ds + i), &[1; BS]).unwrap();
    }
    assert_eq!(tx.write(BlockNo(ds + 8), &[1; BS]), Err(Error::TxCapacity));
    assert_eq!(tx.write(BlockNo(0), &[1; BS]), Err(Error::OutOfRange));
    assert_eq!(tx.write(BlockNo(1024), &[1; BS]), Err(Error::OutOfRange));
    drop(tx);
    assert_eq!(vol.begin().allocate(100_000), Err(Error::NoSpace));
}

#[test]
fn add_modules_until_full_and_can_add_writes_nothing() {
    let mut img = vec![0u8; BS * 4096];
    let mut m = Mem::new();
    let dev = RamDevice::new(&mut img, BS).unwrap();
    let mut vol = Volume::<_, 8>::format(dev, &opts(ModuleSet::empty()), m.bufs()).unwrap();
    let before: Vec<u8> = vol.device().bytes().to_vec();
    let snap = by_name("snapshots").unwrap();
    let plan = vol.can_add_module(snap).unwrap();
    assert_eq!(plan.regions[0].len, 256);
    assert_eq!(vol.device().bytes(), &before[..]);
    let free0 = vol.usage().free_blocks;
    let got = vol.add_module_regions(snap, 555).unwrap();
    assert_eq!(got.regions, plan.regions);
    assert_eq!(vol.usage().free_blocks, free0 - 256);
    assert_eq!(vol.superblock().modified, 555);
    assert_eq!(vol.superblock().inode_size, 64 + 16);
    assert_eq!(
        vol.add_module_regions(snap, 1),
        Err(Error::ModuleAlreadyPresent)
    );
    let rep = by_name("replication").unwrap();
    vol.add_module_regions(rep, 556).unwrap();
    let regs = vol.module_regions(rep.bit).unwrap();
    assert_eq!(regs.len(), 2);
    assert!(vol.is_allocated(regs[1].extent.start).unwrap());
    let _ = vol.into_device();
    let dev = RamDevice::new(&mut img, BS).unwrap();
    let mut vol = Volume::<_, 8>::mount(dev, m.bufs()).unwrap();
    assert!(vol
        .modules()
        .contains(ModuleSet::SNAPSHOTS | ModuleSet::REPLICATION));
    assert_eq!(vol.usage().free_blocks, free0 - 256 - 256 - 64);
    // a volume too small for a large region gets NoSpace
    let dedup = by_name("dedup").unwrap();
    let integ = by_name("integrity").unwrap();
    vol.add_module_regions(dedup, 1).unwrap();
    let mut last = Ok(());
    for mdl in [
        integ,
        by_name("xattr").unwrap(),
        by_name("encryption").unwrap(),
    ] {
        last = vol.add_module_regions(mdl, 2).map(|_| ());
    }
    let _ = last;
}

#[test]
fn not_formatted_and_wrong_geometry() {
    let mut img = vec![0u8; BS * 256];
    let mut m = Mem::new();
    let dev = RamDevice::new(&mut img, BS).unwrap();
    assert!(matches!(
        Volume::<_, 8>::mount(dev, m.bufs()),
        Err(MountError::NotFormatted)
    ));
    let dev = RamDevice::new(&mut img, BS).unwrap();
    drop(Volume::<_, 8>::format(dev, &opts(ModuleSet::empty()), m.bufs()).unwrap());
    let dev = RamDevice::new(&mut img[..BS * 200], BS).unwrap();
    assert!(matches!(
        Volume::<_, 8>::mount(dev, m.bufs()),
        Err(MountError::InvalidGeometry)
    ));
    let mut small = Mem {
        scratch: vec![0; BS],
        txn: vec![0; BS * 8],
        index: vec![],
    };
    let dev = RamDevice::new(&mut img, BS).unwrap();
    assert!(matches!(
        Volume::<_, 8>::mount(dev, small.bufs()),
        Err(MountError::BufferTooSmall { .. })
    ));
}

#[test]
fn superblock_mirror_fallback() {
    let mut img = vec![0u8; BS * 256];
    let mut m = Mem::new();
    let dev = RamDevice::new(&mut img, BS).unwrap();
    let _ = Volume::<_, 8>::format(dev, &opts(ModuleSet::OBJECTS), m.bufs())
        .unwrap()
        .unmount()
        .unwrap();
    let good = img.clone();
    img[20] ^= 0x40; // primary broken
    let dev = RamDevice::new(&mut img, BS).unwrap();
    let vol = Volume::<_, 8>::mount(dev, m.bufs()).unwrap();
    assert!(vol.modules().contains(ModuleSet::OBJECTS));
    let _ = vol;
    // The mount healed the primary from the mirror.
    assert_eq!(img[..BS], good[..BS]);
    img[20] ^= 0x40;
    img[BS + 20] ^= 0x40; // both broken
    let dev = RamDevice::new(&mut img, BS).unwrap();
    assert!(matches!(
        Volume::<_, 8>::mount(dev, m.bufs()),
        Err(MountError::Corrupt(Structure::Superblock))
    ));
}

/// The smallest buffers (a block and a 128-byte log page of scratch, `txn_min` of transaction
/// memory) carry every object operation: the largest packed objects, extents, deletes that
/// empty a shared block, batches, module addition, and a remount that replays the log.
#[test]
fn the_smallest_buffers_carry_every_object_operation() {
    for bs in [512usize, 4096] {
        let mut img = vec![0u8; bs * 512];
        let mut scratch = vec![0u8; Buffers::scratch_min(bs, true)];
        let mut txn = vec![0u8; Buffers::txn_min(bs)];
        let mut index = vec![0u8; 64 * crate::format::slot_index::entry_size(bs)];
        let dev = RamDevice::new(&mut img, bs).unwrap();
        let bufs = Buffers {
            scratch: &mut scratch,
            txn: &mut txn,
            index: &mut index,
        };
        let mut vol = Volume::<_, 8>::format(dev, &opts(ModuleSet::OBJECTS), bufs).unwrap();
        vol.add_module_regions(by_name("snapshots").unwrap(), 7)
            .unwrap();
        let biggest = (bs / 2).min(2048) - 8;
        let mut live: Vec<(Handle, Vec<u8>)> = Vec::new();
        for i in 0..12u8 {
            let len = [biggest, 1, biggest / 2, 3 * bs + 5][usize::from(i) % 4];
            let data: Vec<u8> = (0..len).map(|j| (j as u8) ^ i.wrapping_mul(37)).collect();
            let h = vol.put(&data).unwrap();
            live.push((h, data));
            if i % 3 == 2 {
                let (h, _) = live.remove(0);
                vol.delete(h).unwrap();
            }
        }
        let mut b = vol.batch().unwrap();
        let x = b.put(&[5u8; 40]).unwrap();
        let y = b.put(&[6u8; 100]).unwrap();
        let (gone, _) = live.remove(0);
        b.delete(gone).unwrap();
        b.commit().unwrap();
        live.push((x, vec![5u8; 40]));
        live.push((y, vec![6u8; 100]));
        vol.verify().unwrap();
        let _ = vol.into_device();
        let dev = RamDevice::new(&mut img, bs).unwrap();
        let bufs = Buffers {
            scratch: &mut scratch,
            txn: &mut txn,
            index: &mut index,
        };
        let mut vol = Volume::<_, 8>::mount(dev, bufs).unwrap();
        assert!(vol.recovery_report().replayed > 0);
        vol.verify().unwrap();
        let mut buf = vec![0u8; 4 * bs];
        for (h, data) in &live {
            let n = vol.get(*h, &mut buf).unwrap();
            assert_eq!(&buf[..n], &data[..], "bs {bs}");
        }
        assert_eq!(
            vol.object_stats().unwrap().counters.objects,
            live.len() as u64
        );
    }
}

/// Extents are reachable only through the extent map: a block written through the raw
/// transaction API with a valid extent header naming itself is no object (`get` and `delete`
/// refuse its handle, `verify` passes), the map marks exactly the live extents' first blocks,
/// and a mark on a block that was no extent fails `verify`, after a remount too (the mount
/// itself does not read the map, so `vde check --repair` can still fix it).
#[test]
fn extents_are_reachable_only_through_the_extent_map() {
    use crate::format::object::{ExtentHeader, EXTENT_HDR};
    use crate::format::{bitmap_block, slot_index};
    let mut img = vec![0u8; BS * 1024];
    let mut m = Mem::new();
    let dev = RamDevice::new(&mut img, BS).unwrap();
    let mut vol = Volume::<_, 8>::format(dev, &opts(ModuleSet::OBJECTS), m.bufs()).unwrap();
    let big: Vec<u8> = (0..3 * BS).map(|i| (i * 7 % 251) as u8).collect();
    let h1 = vol.put(&big).unwrap();
    let h2 = vol.put(&big[..BS]).unwrap();
    vol.verify().unwrap();

    // A forged extent: a raw block whose header names it, with a matching payload checksum.
    let mut tx = vol.begin();
    let e = tx.allocate(1).unwrap();
    let fake = Handle::Extent {
        start: e.start,
        tag: 5,
    };
    let mut blk = vec![0u8; BS];
    blk[EXTENT_HDR..EXTENT_HDR + 10].fill(9);
    ExtentHeader {
        handle: fake.raw(),
        len: 10,
        payload_hash: xxhash_rust::xxh64::xxh64(&[9u8; 10], fake.raw()),
    }
    .encode(&mut blk)
    .unwrap();
    tx.write(e.start, &blk).unwrap();
    tx.commit().unwrap();
    let mut out = vec![0u8; 4 * BS];
    let bad = |r: Option<Error<_>>| matches!(r, Some(Error::BadHandle { handle }) if handle == fake.raw());
    assert!(bad(vol.get(fake, &mut out).err()));
    assert!(bad(vol.object_len(fake).err()));
    assert!(bad(vol.delete(fake).err()));
    vol.verify().unwrap();

    // The real ones read back; the map marks their first blocks and nothing else.
    assert_eq!(vol.get(h1, &mut out).unwrap(), big.len());
    assert_eq!(&out[..big.len()], &big[..]);
    let mut region = None;
    vol.for_each_region(|r| {
        if r.module == 0 {
            region = Some(r.extent)
        }
    })
    .unwrap();
    let region = region.unwrap();
    let map = BlockNo(region.start.0 + region.len - 1);
    assert_eq!(slot_index::extent_map_blocks(BS, 1024), 1);
    let marks = |vol: &mut Volume<'_, RamDevice<'_>, 8>| -> Vec<u64> {
        let mut b = vec![0u8; BS];
        vol.read_block(map, &mut b).unwrap();
        bitmap_block::check(&b, slot_index::EXTENT_MAP_TAG).unwrap();
        (0..1024u64)
            .filter(|k| b[(k / 8) as usize] & (1 << (k % 8)) != 0)
            .collect()
    };
    let start = |h: Handle| match h {
        Handle::Extent { start, .. } => start.0,
        _ => unreachable!(),
    };
    assert_eq!(marks(&mut vol), vec![start(h1), start(h2)]);
    vol.delete(h1).unwrap();
    assert_eq!(marks(&mut vol), vec![start(h2)]);
    assert!(matches!(
        vol.get(h1, &mut out),
        Err(Error::BadHandle { .. })
    ));
    vol.verify().unwrap();

    // A mark on the forged block (written raw, as a bug or an attacker could): caught.
    let mut b = vec![0u8; BS];
    vol.read_block(map, &mut b).unwrap();
    let at = slot_index::extent_bit(BS, e.start.0);
    b[at.byte()] |= at.mask();
    bitmap_block::seal(&mut b, slot_index::EXTENT_MAP_TAG).unwrap();
    let mut tx = vol.begin();
    tx.write(map, &b).unwrap();
    tx.commit().unwrap();
    assert!(matches!(
        vol.verify(),
        Err(Error::Corrupt(Structure::Extent))
    ));
    drop(vol);
    let dev = RamDevice::new(&mut img, BS).unwrap();
    let mut vol = Volume::<_, 8>::mount(dev, m.bufs()).unwrap();
    assert!(matches!(
        vol.verify(),
        Err(Error::Corrupt(Structure::Extent))
    ));
}

#[test]
fn object_counters_ride_in_commit_markers_and_the_wal_header() {
    use crate::format::layout::{WAL_HDR_A, WAL_HDR_B};
    use crate::format::wal_header::WalHeader;
    let mut img = vec![0u8; BS * 1024];
    let mut m = Mem::new();
    let dev = RamDevice::new(&mut img, BS).unwrap();
    let mut vol = Volume::<_, 8>::format(dev, &opts(ModuleSet::OBJECTS), m.bufs()).unwrap();
    let mut head = None;
    vol.for_each_region(|r| {
        if r.module == 0 {
            head = Some(r.extent.start)
        }
    })
    .unwrap();
    let head = head.unwrap();
    let small = vol.put(&[1u8; 40]).unwrap();
    vol.put(&[2u8; 100]).unwrap();
    vol.checkpoint().unwrap();
    // An extent put or delete changes the counters and no slot-index block: the index head
    // is not in the log (a fixed block no longer written per put).
    let big = vol.put(&[3u8; 3 * BS]).unwrap();
    assert!(!vol.wal().is_dirty(head));
    let c = vol.object_stats().unwrap().counters;
    assert_eq!(
        (c.objects, c.extent_objects, c.bytes),
        (3, 1, 140 + 3 * BS as u64)
    );
    assert_eq!(vol.wal().counters(), c);
    let mut blk = vec![0u8; BS];
    vol.read_block(head, &mut blk).unwrap();
    assert!(
        blk[24..104].iter().all(|x| *x == 0),
        "no counters in the index head"
    );

    // A cut before any checkpoint: the commit markers' deltas rebuild them.
    let _ = vol.into_device();
    let dev = RamDevice::new(&mut img, BS).unwrap();
    let mut vol = Volume::<_, 8>::mount(dev, m.bufs()).unwrap();
    assert!(vol.recovery_report().replayed > 0);
    assert_eq!(vol.object_stats().unwrap().counters, c);
    vol.delete(big).unwrap();
    vol.delete(small).unwrap();
    let after = vol.object_stats().unwrap().counters;
    assert_eq!(
        (after.objects, after.extent_objects, after.bytes),
        (1, 0, 100)
    );
    vol.verify().unwrap();
    let _ = vol.unmount().unwrap();

    // After a checkpoint the WAL header mount uses holds them, and the log is empty.
    let header = |b: BlockNo| WalHeader::decode(&img[b.0 as usize * BS..][..BS]).ok();
    let mut none = |_| verifier::Flow::Continue;
    let (h, _) = verifier::wal_choice(header(WAL_HDR_A), header(WAL_HDR_B), &mut none).unwrap();
    assert_eq!(h.counters, after);
    let dev = RamDevice::new(&mut img, BS).unwrap();
    let mut vol = Volume::<_, 8>::mount(dev, m.bufs()).unwrap();
    assert_eq!(vol.recovery_report().replayed, 0);
    assert_eq!(vol.object_stats().unwrap().counters, after);
    vol.verify().unwrap();
}

#[test]
fn a_commit_can_set_the_counters_alone() {
    // What `vde check --repair` does when only the counters are wrong: a transaction with no
    // block staged still commits the change, and mount cross-checks it against the index.
    let mut img = vec![0u8; BS * 1024];
    let mut m = Mem::new();
    let dev = RamDevice::new(&mut img, BS).unwrap();
    let mut vol = Volume::<_, 8>::format(dev, &opts(ModuleSet::OBJECTS), m.bufs()).unwrap();
    vol.put(&[5u8; 30]).unwrap();
    let mut c = vol.object_stats().unwrap().counters;
    let seq = vol.wal().last_seq();
    c.bytes = 31;
    let mut tx = vol.begin();
    tx.set_object_counters(c).unwrap();
    assert!(tx.is_empty());
    assert!(tx.commit().unwrap() > seq);
    assert_eq!(vol.object_stats().unwrap().counters.bytes, 31);
    let _ = vol.into_device();
    let dev = RamDevice::new(&mut img, BS).unwrap();
    let mut vol = Volume::<_, 8>::mount(dev, m.bufs()).unwrap();
    assert_eq!(vol.object_stats().unwrap().counters, c);
    // A count the index cannot hold is refused at mount.
    c.objects = 2;
    let mut tx = vol.begin();
    tx.set_object_counters(c).unwrap();
    tx.commit().unwrap();
    let _ = vol.into_device();
    let dev = RamDevice::new(&mut img, BS).unwrap();
    assert!(matches!(
        Volume::<_, 8>::mount(dev, m.bufs()).err(),
        Some(MountError::Corrupt(Structure::SlotIndex))
    ));
}

/// Best fit skips the full shared blocks at the front of the index, and a delete makes its
/// block a candidate again: a freed slot is reused before any new block, the first in index
/// order on a tie; a delete that is rolled back frees nothing.
#[test]
fn a_freed_slot_is_reused_before_a_new_block() {
    let mut img = vec![0u8; BS * 1024];
    let mut m = Mem::new();
    let dev = crate::device::WholeBlocks(RamDevice::new(&mut img, BS).unwrap());
    let mut vol = Volume::<_, 8>::format(dev, &opts(ModuleSet::OBJECTS), m.bufs()).unwrap();
    let block = |h: Handle| match h {
        Handle::Packed { block, .. } => block,
        Handle::Extent { .. } => panic!("not packed"),
    };
    // Five shared blocks, each full with eight 64-byte slots.
    let hs: Vec<Handle> = (0..40u8).map(|i| vol.put(&[i; 50]).unwrap()).collect();
    let blocks: Vec<BlockNo> = hs.iter().map(|h| block(*h)).collect();
    for (k, group) in blocks.chunks(8).enumerate() {
        assert!(
            group.iter().all(|b| *b == group[0]),
            "block {k} holds eight"
        );
    }
    assert_eq!(vol.object_stats().unwrap().shared_blocks, 5);
    // A hole in the second block and one in the third, a remount between them.
    vol.delete(hs[9]).unwrap();
    let _ = vol.unmount().unwrap();
    let dev = crate::device::WholeBlocks(RamDevice::new(&mut img, BS).unwrap());
    let mut vol = Volume::<_, 8>::mount(dev, m.bufs()).unwrap();
    vol.delete(hs[17]).unwrap();
    assert_eq!(block(vol.put(&[1; 50]).unwrap()), blocks[9]);
    assert_eq!(block(vol.put(&[2; 50]).unwrap()), blocks[17]);
    assert_eq!(vol.object_stats().unwrap().shared_blocks, 5);
    // Every block full again: a new one.
    let sixth = block(vol.put(&[3; 50]).unwrap());
    assert!(!blocks.contains(&sixth));
    assert_eq!(vol.object_stats().unwrap().shared_blocks, 6);
    // A delete in a batch that is rolled back leaves its block full.
    {
        let mut b = vol.batch().unwrap();
        b.delete(hs[2]).unwrap();
        b.rollback();
    }
    assert_eq!(block(vol.put(&[4; 50]).unwrap()), sixth);
    // One that commits opens its block again, and best fit prefers it (one free slot) to the
    // sixth block (six).
    vol.delete(hs[2]).unwrap();
    assert_eq!(block(vol.put(&[5; 50]).unwrap()), blocks[2]);
    vol.verify().unwrap();
}

/// On a device that writes home in place, a delete leaves its slot's units dead (the bytes
/// stay, so a checkpoint erases nothing for it): a put never takes them, a deleted handle is
/// gone, the dead units survive a remount, and a compaction (`gc`, or a put that finds no free
/// unit) zeroes them and makes them free while every live handle stays valid.
#[test]
fn deleted_slots_stay_dead_until_their_block_is_compacted() {
    let mut img = vec![0u8; BS * 1024];
    let mut m = Mem::new();
    let dev = RamDevice::new(&mut img, BS).unwrap();
    let mut vol = Volume::<_, 8>::format(dev, &opts(ModuleSet::OBJECTS), m.bufs()).unwrap();
    assert!(vol.wal.writes_in_place());
    let block = |h: Handle| match h {
        Handle::Packed { block, .. } => block,
        Handle::Extent { .. } => panic!("not packed"),
    };
    // Three shared blocks of eight 64-byte slots each.
    let hs: Vec<Handle> = (0..24u8).map(|i| vol.put(&[i; 50]).unwrap()).collect();
    let blocks: Vec<BlockNo> = hs.iter().map(|h| block(*h)).collect();
    assert_eq!(vol.object_stats().unwrap().shared_blocks, 3);
    vol.checkpoint().unwrap();
    // Three deletes in the first block: dead, not free, and the block's home copy unchanged.
    let home_before = img_block(&mut vol, blocks[0]);
    for h in [hs[1], hs[2], hs[5]] {
        vol.delete(h).unwrap();
    }
    let s = vol.object_stats().unwrap();
    assert_eq!((s.dead_units, s.free_units), (3, 0));
    let mut buf = [0u8; 64];
    assert!(matches!(
        vol.get(hs[2], &mut buf),
        Err(Error::BadHandle { .. })
    ));
    vol.checkpoint().unwrap();
    assert_eq!(
        img_block(&mut vol, blocks[0]),
        home_before,
        "a delete rewrote the block"
    );
    // A remount keeps them dead; the next put takes a new block, not a dead unit (3 of 8 dead
    // is under three quarters, and live units outnumber dead ones).
    let _ = vol.unmount().unwrap();
    let dev = RamDevice::new(&mut img, BS).unwrap();
    let mut vol = Volume::<_, 8>::mount(dev, m.bufs()).unwrap();
    vol.verify().unwrap();
    assert_eq!(vol.object_stats().unwrap().dead_units, 3);
    let fourth = block(vol.put(&[100; 50]).unwrap());
    assert!(!blocks.contains(&fourth));
    // gc compacts the block with the most dead units: they become free, live handles still read.
    assert_eq!(vol.gc().unwrap(), 3);
    assert_eq!(vol.object_stats().unwrap().dead_units, 0);
    assert_eq!(vol.compactions(), 1);
    assert_eq!(vol.gc().unwrap(), 0, "nothing left to compact");
    for (i, h) in hs.iter().enumerate() {
        if [1, 2, 5].contains(&i) {
            continue;
        }
        assert_eq!(vol.get(*h, &mut buf).unwrap(), 50);
        assert_eq!(buf[..50], [i as u8; 50]);
    }
    // The freed units are reused before a new block.
    assert_eq!(block(vol.put(&[101; 50]).unwrap()), blocks[0]);
    // Three quarters of a block dead: the put that finds no free unit compacts it instead of
    // taking a new block.
    for h in &hs[8..14] {
        vol.delete(*h).unwrap();
    }
    let before = vol.object_stats().unwrap();
    assert_eq!((before.free_units, before.dead_units), (9, 6));
    for k in 0..9u8 {
        assert_ne!(block(vol.put(&[110 + k; 50]).unwrap()), blocks[8]);
    }
    assert_eq!(block(vol.put(&[120; 50]).unwrap()), blocks[8]);
    let after = vol.object_stats().unwrap();
    assert_eq!(after.shared_blocks, before.shared_blocks, "no new block");
    assert_eq!((after.dead_units, after.free_units), (0, 5));
    assert_eq!(vol.compactions(), 2);
    vol.verify().unwrap();
    let _ = vol.unmount().unwrap();
    let dev = RamDevice::new(&mut img, BS).unwrap();
    let mut vol = Volume::<_, 8>::mount(dev, m.bufs()).unwrap();
    vol.verify().unwrap();
}

/// Block `b`'s bytes on the device.
fn img_block<D: BlockDevice, const K: usize>(vol: &mut Volume<'_, D, K>, b: BlockNo) -> Vec<u8> {
    let mut out = vec![0u8; vol.layout.bs()];
    vol.dev.read_block(b, &mut out).unwrap();
    out
}

/// Named objects on 512-byte blocks (leaves of a few entries, so keys split leaves early):
/// store, replace, fetch, remove, iteration in key order and by prefix, across a remount.
#[test]
fn named_objects_store_replace_list_and_remove() {
    use std::collections::BTreeMap;
    let mut img = vec![0u8; BS * 2048];
    let mut m = Mem::new();
    let dev = RamDevice::new(&mut img, BS).unwrap();
    let mut vol =
        Volume::<_, 8>::format(dev, &opts(ModuleSet::OBJECTS | ModuleSet::NAMES), m.bufs())
            .unwrap();
    assert!(vol.has_names());
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut x = 7u64;
    for i in 0..300u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = std::format!("k{:03}", x % 120).into_bytes();
        match x % 5 {
            0 if model.contains_key(&key) => {
                vol.remove(&key).unwrap();
                model.remove(&key);
            }
            _ => {
                let data: Vec<u8> = (0..(x % 300) as usize)
                    .map(|j| (j as u8) ^ (i as u8))
                    .collect();
                vol.store(&key, &data).unwrap();
                model.insert(key, data);
            }
        }
        if i % 50 == 49 {
            let _ = vol.unmount().unwrap();
            let dev = RamDevice::new(&mut img, BS).unwrap();
            vol = Volume::<_, 8>::mount(dev, m.bufs()).unwrap();
        }
    }
    vol.verify().unwrap();
    let mut buf = vec![0u8; 512];
    for (k, v) in &model {
        let n = vol.fetch(k, &mut buf).unwrap();
        assert_eq!(&buf[..n], &v[..]);
    }
    assert_eq!(vol.fetch(b"nope", &mut buf), Err(Error::NameNotFound));
    assert_eq!(vol.remove(b"nope"), Err(Error::NameNotFound));
    assert_eq!(vol.store(&[0u8; 65], b"x"), Err(Error::KeyInvalid));
    assert_eq!(vol.store(b"", b"x"), Err(Error::KeyInvalid));
    // Every object is a named one (one per key: replaced values were freed).
    assert_eq!(
        vol.object_stats().unwrap().counters.objects,
        model.len() as u64
    );
    let mut listed: Vec<Vec<u8>> = Vec::new();
    vol.for_each_name(b"", |k, _| {
        listed.push(k.to_vec());
        true
    })
    .unwrap();
    assert_eq!(listed, model.keys().cloned().collect::<Vec<_>>());
    let mut with_prefix: Vec<Vec<u8>> = Vec::new();
    vol.for_each_name(b"k05", |k, _| {
        with_prefix.push(k.to_vec());
        true
    })
    .unwrap();
    let want: Vec<Vec<u8>> = model
        .keys()
        .filter(|k| k.starts_with(b"k05"))
        .cloned()
        .collect();
    assert_eq!(with_prefix, want);
    // A delete by handle takes the name with it.
    let (k0, _) = model.iter().next().unwrap();
    let h = vol.lookup(k0).unwrap().unwrap();
    vol.delete(h).unwrap();
    assert!(!vol.contains(k0).unwrap());
    vol.verify().unwrap();
}

/// Keys stored in order fill leaves; when the root or the region has no room, `NamesFull`,
/// and the failed store changed nothing.
#[test]
fn a_full_name_table_is_a_clear_error() {
    let mut img = vec![0u8; BS * 256];
    let mut m = Mem::new();
    let dev = RamDevice::new(&mut img, BS).unwrap();
    let mut vol =
        Volume::<_, 8>::format(dev, &opts(ModuleSet::OBJECTS | ModuleSet::NAMES), m.bufs())
            .unwrap();
    let mut stored = 0u32;
    let err = loop {
        let key = std::format!("{stored:060}");
        match vol.store(key.as_bytes(), b"v") {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
        assert!(stored < 10_000);
    };
    assert_eq!(err, Error::NamesFull);
    assert!(stored >= 40, "only {stored} keys fit");
    let objects = vol.object_stats().unwrap().counters.objects;
    assert_eq!(objects, u64::from(stored));
    vol.verify().unwrap();
    let mut n = 0;
    vol.for_each_name(b"", |_, _| {
        n += 1;
        true
    })
    .unwrap();
    assert_eq!(n, stored);
    // Replacing an existing key still works when full.
    vol.store(std::format!("{:060}", 0).as_bytes(), b"w")
        .unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(
        vol.fetch(std::format!("{:060}", 0).as_bytes(), &mut buf),
        Ok(1)
    );
    assert_eq!(&buf[..1], b"w");
}

/// Extra whole blocks of scratch cache committed blocks: rereads are served from RAM, every
/// commit updates the copies it touches, and an extent written around the log (onto blocks a
/// deleted object's copies may still name) is read back as written, in the session and after
/// a remount.
#[test]
fn block_cache_serves_rereads_and_follows_every_change() {
    let mut img = vec![0u8; BS * 1024];
    let mut m = Mem::new();
    m.scratch = vec![0; Buffers::scratch_with_cache(BS, 3)];
    let dev = RamDevice::new(&mut img, BS).unwrap();
    let mut vol = Volume::<_, 8>::format(dev, &opts(ModuleSet::OBJECTS), m.bufs()).unwrap();
    let mut live: Vec<(Handle, Vec<u8>)> = Vec::new();
    for i in 0..40u8 {
        let data = vec![i; 20 + usize::from(i) * 3];
        live.push((vol.put(&data).unwrap(), data));
        if i % 3 == 2 {
            let (h, _) = live.remove(usize::from(i) % live.len());
            vol.delete(h).unwrap();
        }
    }
    assert!(vol.wal_stats().cache_hits > 40, "{:?}", vol.wal_stats());
    // Large objects (extents, written around the log) over the freed space, then small ones.
    for i in 0..3u8 {
        let big = vec![0xA0 | i; BS * 3 + 17];
        live.push((vol.put(&big).unwrap(), big));
        let (h, _) = live.remove(0);
        vol.delete(h).unwrap();
    }
    for i in 0..10u8 {
        let data = vec![0x50 | i; 40];
        live.push((vol.put(&data).unwrap(), data));
    }
    let mut out = vec![0u8; BS * 4];
    for (h, data) in &live {
        let n = vol.get(*h, &mut out).unwrap();
        assert_eq!(&out[..n], &data[..]);
    }
    vol.verify().unwrap();
    let _ = vol.unmount().unwrap();
    let dev = RamDevice::new(&mut img, BS).unwrap();
    let mut vol = Volume::<_, 8>::mount(dev, m.bufs()).unwrap();
    for (h, data) in &live {
        let n = vol.get(*h, &mut out).unwrap();
        assert_eq!(&out[..n], &data[..]);
    }
}

/// A shared block that empties is freed; an extent written around the log onto it must not be
/// read back as the cached copy of the shared block.
#[test]
fn block_cache_forgets_a_block_written_around_the_log() {
    for cached in [0usize, 3] {
        let mut img = vec![0u8; BS * 1024];
        let mut m = Mem::new();
        m.scratch = vec![0; Buffers::scratch_with_cache(BS, cached)];
        let dev = RamDevice::new(&mut img, BS).unwrap();
        let mut vol = Volume::<_, 8>::format(dev, &opts(ModuleSet::OBJECTS), m.bufs()).unwrap();
        let mut out = vec![0u8; BS];
        let hs: Vec<Handle> = (0..3u8).map(|i| vol.put(&[i + 1; 100]).unwrap()).collect();
        for h in &hs {
            vol.get(*h, &mut out).unwrap();
        }
        for h in hs {
            vol.delete(h).unwrap();
        }
        let big = vec![0xEE; BS - 20];
        let h = vol.put(&big).unwrap();
        let n = vol.get(h, &mut out).unwrap();
        assert_eq!(&out[..n], &big[..], "cache of {cached} blocks");
        vol.verify().unwrap();
    }
}

/// The memory of the tests of a lent device (a firmware's `Memory` in miniature).
const LENT_PLAN: crate::MemoryPlan = crate::MemoryPlan::new(BS)
    .whole_block_writes(8)
    .shared_blocks(32);

/// A firmware keeps its device and memory through a failed `mount_or_format` by lending them:
/// the device by `&mut`, the buffers from a `Memory` it owns. Here the first attempt fails
/// (a corrupt superblock pair is refused, never formatted over); the caller erases the range
/// with the device it still holds and the next call formats it.
#[test]
fn a_lent_device_and_memory_survive_a_failed_mount_or_format() {
    let mut mem = <crate::Memory!(LENT_PLAN)>::new();
    let mut img = vec![0u8; BS * 256];
    let mut dev = RamDevice::new(&mut img, BS).unwrap();
    {
        let vol =
            Volume::<_, 8>::format(&mut dev, &opts(ModuleSet::OBJECTS), mem.buffers()).unwrap();
        drop(vol);
    }
    // Both superblock copies damaged the same way: a corrupt volume.
    for b in [
        crate::format::layout::SB_PRIMARY,
        crate::format::layout::SB_MIRROR,
    ] {
        let mut blk = vec![0u8; BS];
        dev.read_block(b, &mut blk).unwrap();
        blk[40] ^= 0xFF;
        dev.write_block(b, &blk).unwrap();
    }
    let r = Volume::<_, 8>::mount_or_format(&mut dev, &opts(ModuleSet::OBJECTS), mem.buffers());
    assert!(matches!(r, Err(MountError::Corrupt(Structure::Superblock))));
    // The device and the memory are the caller's again.
    let zeros = vec![0u8; BS];
    for b in 0..dev.block_count() {
        dev.write_block(BlockNo(b), &zeros).unwrap();
    }
    let mut vol =
        Volume::<_, 8>::mount_or_format(&mut dev, &opts(ModuleSet::OBJECTS), mem.buffers())
            .unwrap();
    let h = vol.put(b"kept").unwrap();
    let mut out = [0u8; 8];
    assert_eq!(vol.get(h, &mut out).unwrap(), 4);
}

#[test]
fn mount_or_format_in_builds_in_the_slot_and_empties_it_on_an_error() {
    let mut mem = <crate::Memory!(LENT_PLAN)>::new();
    let mut img = vec![0u8; BS * 256];
    let mut dev = RamDevice::new(&mut img, BS).unwrap();
    let o = opts(ModuleSet::OBJECTS);
    let regdir = {
        let mut slot = None;
        let vol = Volume::mount_or_format_in(&mut slot, &mut dev, &o, mem.buffers()).unwrap();
        vol.put(b"first").unwrap();
        // Everything home, so that the damage below is what the next mount reads.
        vol.checkpoint().unwrap();
        let regdir = vol.layout.regdir;
        assert!(slot.is_some());
        regdir
    };
    // A region directory that fails its checksum: the mount gets as far as the region check,
    // with the volume already in the slot, and fails there.
    let mut blk = vec![0u8; BS];
    dev.read_block(BlockNo(regdir), &mut blk).unwrap();
    blk[3] ^= 0x55;
    dev.write_block(BlockNo(regdir), &blk).unwrap();
    let mut failed = None;
    let r = Volume::mount_or_format_in(&mut failed, &mut dev, &o, mem.buffers());
    assert!(matches!(
        r,
        Err(MountError::Corrupt(Structure::RegionDirectory))
    ));
    assert!(failed.is_none(), "a failed mount left a volume in the slot");
    // The device and the memory are the caller's again once that slot is no longer used (its
    // type holds the borrow); the next call, into a new slot, formats afresh.
    let zeros = vec![0u8; BS];
    for b in 0..dev.block_count() {
        dev.write_block(BlockNo(b), &zeros).unwrap();
    }
    let mut slot = None;
    let vol = Volume::mount_or_format_in(&mut slot, &mut dev, &o, mem.buffers()).unwrap();
    assert_eq!(vol.object_stats().unwrap().counters.objects, 0);
    let h = vol.put(b"second").unwrap();
    let mut out = [0u8; 8];
    assert_eq!(vol.get(h, &mut out).unwrap(), 6);
    assert!(slot.is_some());
}
