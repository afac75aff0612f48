//! `vde check --repair` on images with damaged objects: what recovery can leave behind after
//! damage (the state of the extent crash bug among them) is repaired — damaged objects dropped
//! with a message, counters recomputed, leaked blocks freed — and the image checks clean
//! afterwards, with every intact object still readable and the free space and counters equal
//! to a volume that never held the dropped objects. (The command line's repair of the same state
//! is in `cli.rs`: these tests open images in-process and must not race a spawned `vde` for the
//! file lock.)

mod common;

use std::path::Path;

use common::bytes;
use vde_nostd::{BlockNo, FormatOptions, Handle, ModuleSet};
use vde_std::check::{check_path, repair_path};
use vde_std::{FileDevice, FileVolume, OwnedBuffers};

const BS: usize = 512;
const SIZE: u64 = 256 << 10;

/// Formats an image at `path` and stores `sizes` objects; returns their handles and payloads.
fn image(path: &Path, sizes: &[usize]) -> Vec<(Handle, Vec<u8>)> {
    let dev = FileDevice::create(path, SIZE, BS, false).unwrap();
    let mut mem = OwnedBuffers::for_device(&dev);
    let opts = FormatOptions {
        wal_blocks: None,
        volume_id: [9; 16],
        now: 1,
        modules: ModuleSet::OBJECTS,
    };
    let mut vol = FileVolume::format(dev, &opts, mem.bufs()).unwrap();
    let out = sizes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let d = bytes(i as u64 + 10, *n);
            (vol.put(&d).unwrap(), d)
        })
        .collect();
    vol.unmount().unwrap();
    out
}

/// Counters and free blocks of the image.
fn figures(path: &Path) -> (vde_nostd::ObjectStats, u64) {
    let dev = FileDevice::open(path).unwrap();
    let mut mem = OwnedBuffers::for_device(&dev);
    let mut vol = FileVolume::mount(dev, mem.bufs()).unwrap();
    let s = vol.object_stats().unwrap();
    let f = vol.usage().free_blocks;
    vol.unmount().unwrap();
    (s, f)
}

fn get(path: &Path, h: Handle) -> Result<Vec<u8>, vde_nostd::Error<std::io::Error>> {
    let dev = FileDevice::open(path).unwrap();
    let mut mem = OwnedBuffers::for_device(&dev);
    let mut vol = FileVolume::mount(dev, mem.bufs()).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let r = vol.get(h, &mut buf).map(|n| buf[..n].to_vec());
    vol.unmount().unwrap();
    r
}

fn extent_blocks(h: Handle, len: usize) -> std::ops::Range<u64> {
    let Handle::Extent { start, .. } = h else {
        panic!("not an extent: {h}")
    };
    let n = (len as u64 + 48).div_ceil(BS as u64);
    start.0..start.0 + n
}

fn zero_blocks(path: &Path, blocks: std::ops::Range<u64>) {
    let mut img = std::fs::read(path).unwrap();
    for b in blocks {
        let at = b as usize * BS;
        img[at..at + BS].fill(0);
    }
    std::fs::write(path, img).unwrap();
}

/// The block of `img` that holds extent map block 0 (the only one at this size).
fn extent_map_block(img: &[u8]) -> usize {
    use vde_nostd::format::{bitmap_block, slot_index};
    (0..img.len() / BS)
        .find(|b| {
            bitmap_block::check(&img[b * BS..(b + 1) * BS], slot_index::extent_map_tag(0)).is_ok()
        })
        .expect("the extent map block")
}

/// Repairs, asserts the image was unclean before and is clean after, returns the actions.
fn repair_clean(path: &Path) -> Vec<String> {
    let r = repair_path(path, &mut |_, _| {}).unwrap();
    assert!(!r.before.is_clean(), "nothing to repair");
    assert!(
        r.after.is_clean(),
        "still unclean after repair: {:?} (actions {:?})",
        r.after.findings,
        r.actions
    );
    r.actions
}

/// The report's crash state: a committed extent put whose data blocks never landed (bitmap and
/// index say allocated and counted, the blocks hold nothing).
#[test]
fn repair_an_extent_committed_without_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.img");
    let reference = dir.path().join("ref.img");
    let objs = image(&path, &[100, 3000, 40]);
    image(&reference, &[100]);
    let before = figures(&reference);
    let (h, d) = objs[1].clone();
    zero_blocks(&path, extent_blocks(h, d.len()));
    // Checked as the report saw it.
    let c = check_path(&path, &mut |_, _| {}).unwrap();
    let text: Vec<String> = c.findings.iter().map(|f| f.to_string()).collect();
    assert!(
        text.iter()
            .any(|f| f.contains("object counters say 1 extent objects, found 0")),
        "{text:?}"
    );
    assert!(text.iter().any(|f| f.contains("leaked")), "{text:?}");
    assert!(c.findings.iter().all(|f| f.repairable), "{text:?}");
    let actions = repair_clean(&path);
    assert!(
        actions.iter().any(|a| a.contains("recomputed")),
        "{actions:?}"
    );
    assert!(actions.iter().any(|a| a.contains("freed")), "{actions:?}");
    // The packed objects survive; the lost extent is gone; the third put's counters remain.
    assert_eq!(get(&path, objs[0].0).unwrap(), objs[0].1);
    assert_eq!(get(&path, objs[2].0).unwrap(), objs[2].1);
    assert!(matches!(
        get(&path, h),
        Err(vde_nostd::Error::BadHandle { .. })
    ));
    let (s, free) = figures(&path);
    let (s0, free0) = before;
    assert_eq!(free, free0, "free blocks as without the extent");
    assert_eq!(s.counters.extent_objects, 0);
    assert_eq!(s.counters.extent_blocks, 0);
    assert_eq!(s.counters.objects, s0.counters.objects + 1);
    // And the volume is usable: a new extent put and get.
    let dev = FileDevice::open(&path).unwrap();
    let mut mem = OwnedBuffers::for_device(&dev);
    let mut vol = FileVolume::mount(dev, mem.bufs()).unwrap();
    let d2 = bytes(5, 5000);
    let h2 = vol.put(&d2).unwrap();
    let mut buf = vec![0u8; 6000];
    let n = vol.get(h2, &mut buf).unwrap();
    assert_eq!(&buf[..n], &d2[..]);
    vol.unmount().unwrap();
    assert!(check_path(&path, &mut |_, _| {}).unwrap().is_clean());
}

/// Only the last data block lost: the extent's header is intact, its payload fails the
/// checksum. Repair drops it (one message), frees its blocks, recomputes the counters.
#[test]
fn repair_drops_an_extent_whose_payload_fails_its_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.img");
    let objs = image(&path, &[5000, 70]);
    let (h, d) = objs[0].clone();
    let r = extent_blocks(h, d.len());
    zero_blocks(&path, r.end - 1..r.end);
    assert!(get(&path, h).is_err());
    let actions = repair_clean(&path);
    assert!(
        actions
            .iter()
            .any(|a| a.contains("dropped") && a.contains("checksum")),
        "{actions:?}"
    );
    assert!(matches!(
        get(&path, h),
        Err(vde_nostd::Error::BadHandle { .. })
    ));
    assert_eq!(get(&path, objs[1].0).unwrap(), objs[1].1);
    let (s, _) = figures(&path);
    assert_eq!(s.counters.objects, 1);
    assert_eq!(s.counters.extent_objects, 0);
}

/// A packed object whose payload is damaged is dropped; its neighbours in the same shared block
/// are kept; a second repair finds nothing to do.
#[test]
fn repair_drops_a_damaged_packed_object_and_keeps_its_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.img");
    let objs = image(&path, &[30, 31, 32]);
    let Handle::Packed { block, unit, .. } = objs[1].0 else {
        panic!("not packed")
    };
    let mut img = std::fs::read(&path).unwrap();
    img[block.0 as usize * BS + usize::from(unit) * 64 + 8 + 3] ^= 0x55;
    std::fs::write(&path, img).unwrap();
    let actions = repair_clean(&path);
    assert!(actions.iter().any(|a| a.contains("dropped")), "{actions:?}");
    assert_eq!(get(&path, objs[0].0).unwrap(), objs[0].1);
    assert_eq!(get(&path, objs[2].0).unwrap(), objs[2].1);
    assert!(get(&path, objs[1].0).is_err());
    let (s, _) = figures(&path);
    assert_eq!(s.counters.objects, 2);
    let again = repair_path(&path, &mut |_, _| {}).unwrap();
    assert!(again.before.is_clean() && again.actions.is_empty());
}

/// A block allocated by a raw transaction on an objects volume belongs to nothing: it is
/// reported as leaked and freed.
#[test]
fn repair_frees_leaked_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.img");
    let objs = image(&path, &[64]);
    let free0 = figures(&path).1;
    {
        let dev = FileDevice::open(&path).unwrap();
        let mut mem = OwnedBuffers::for_device(&dev);
        let mut vol = FileVolume::mount(dev, mem.bufs()).unwrap();
        let mut tx = vol.begin();
        let e = tx.allocate(3).unwrap();
        tx.write(BlockNo(e.start.0), &[1u8; BS]).unwrap();
        tx.commit().unwrap();
        vol.unmount().unwrap();
    }
    assert_eq!(figures(&path).1, free0 - 3);
    let actions = repair_clean(&path);
    assert!(
        actions.iter().any(|a| a.contains("freed leaked")),
        "{actions:?}"
    );
    assert_eq!(figures(&path).1, free0);
    assert_eq!(get(&path, objs[0].0).unwrap(), objs[0].1);
}

/// A file device that loses power after `left` more writes: the cut write and everything after
/// it fail (what the page cache holds stays, as after a process is killed mid-repair).
struct Cut {
    inner: FileDevice,
    left: Option<u64>,
    writes: u64,
}

impl vde_nostd::BlockDevice for Cut {
    type Error = std::io::Error;
    fn block_size(&self) -> usize {
        self.inner.block_size()
    }
    fn block_count(&self) -> u64 {
        self.inner.block_count()
    }
    fn read_block(&mut self, b: BlockNo, buf: &mut [u8]) -> std::io::Result<()> {
        if self.left == Some(0) {
            return Err(std::io::Error::other("power cut"));
        }
        self.inner.read_block(b, buf)
    }
    fn write_block(&mut self, b: BlockNo, buf: &[u8]) -> std::io::Result<()> {
        match &mut self.left {
            Some(0) => return Err(std::io::Error::other("power cut")),
            Some(n) => *n -= 1,
            None => {}
        }
        self.writes += 1;
        self.inner.write_block(b, buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.left == Some(0) {
            return Err(std::io::Error::other("power cut"));
        }
        self.inner.flush()
    }
    fn append(&mut self, b: BlockNo, offset: usize, data: &[u8]) -> std::io::Result<()> {
        match &mut self.left {
            Some(0) => return Err(std::io::Error::other("power cut")),
            Some(n) => *n -= 1,
            None => {}
        }
        self.writes += 1;
        self.inner.append(b, offset, data)
    }
}

/// The object repair cut after every one of its writes in turn: whatever prefix of its
/// transactions landed, a second `vde check --repair` finishes the job, the image checks clean,
/// the intact objects read back and the free space is that of a volume without the lost extent.
#[test]
fn a_repair_cut_at_every_write_is_finished_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let damaged = dir.path().join("damaged.img");
    let reference = dir.path().join("ref.img");
    // Several shared blocks' worth of packed objects, a lost extent, a damaged packed object.
    let sizes = [100usize, 3000, 40, 200, 500, 60, 1000];
    let objs = image(&damaged, &sizes);
    image(&reference, &[100, 40, 200, 500, 60, 1000]);
    let (h, d) = objs[1].clone();
    zero_blocks(&damaged, extent_blocks(h, d.len()));
    let Handle::Packed { block, unit, .. } = objs[3].0 else {
        panic!("not packed")
    };
    let mut img = std::fs::read(&damaged).unwrap();
    img[block.0 as usize * BS + usize::from(unit) * 64 + 12] ^= 1;
    std::fs::write(&damaged, &img).unwrap();
    let report = check_path(&damaged, &mut |_, _| {}).unwrap();
    let plan = {
        let mut dev = FileDevice::open(&damaged).unwrap();
        vde_std::repair::plan(&report.scan, |b, buf| {
            vde_nostd::BlockDevice::read_block(&mut dev, BlockNo(b), buf)
        })
        .unwrap()
        .expect("a plan")
    };
    // How many writes the whole plan takes.
    let total = {
        let p = dir.path().join("count.img");
        std::fs::write(&p, &img).unwrap();
        let mut dev = Cut {
            inner: FileDevice::open(&p).unwrap(),
            left: None,
            writes: 0,
        };
        vde_std::repair::apply(&mut dev, &plan, &mut Vec::new()).unwrap();
        dev.writes
    };
    assert!(total >= 4, "the plan takes {total} writes");
    let free_ref = figures(&reference).1;
    for k in 0..total {
        let p = dir.path().join(format!("cut{k}.img"));
        std::fs::write(&p, &img).unwrap();
        {
            let mut dev = Cut {
                inner: FileDevice::open(&p).unwrap(),
                left: Some(k),
                writes: 0,
            };
            // Fails, or reports that the volume does not mount when the cut is in the mount.
            let _ = vde_std::repair::apply(&mut dev, &plan, &mut Vec::new());
            assert_eq!(dev.left, Some(0), "cut after {k} writes not reached");
        }
        let r = repair_path(&p, &mut |_, _| {}).unwrap();
        assert!(
            r.after.is_clean(),
            "cut after {k} writes: {:?} (actions {:?})",
            r.after.findings,
            r.actions
        );
        for (i, (h, d)) in objs.iter().enumerate() {
            let got = get(&p, *h);
            if i == 1 || i == 3 {
                assert!(got.is_err(), "cut after {k}: dropped object {i} readable");
            } else {
                assert_eq!(got.unwrap(), *d, "cut after {k}: object {i}");
            }
        }
        let (s, free) = figures(&p);
        assert_eq!(s.counters.objects, 5, "cut after {k}");
        assert_eq!(free, free_ref, "cut after {k}: free blocks");
    }
}

/// A raw block with a valid extent header naming itself is no object: the extent map does not
/// mark it, so the checker counts it as leaked (not as an extent) and the repair frees it.
#[test]
fn a_forged_extent_header_is_leaked_not_an_object() {
    use vde_nostd::format::object::{ExtentHeader, EXTENT_HDR};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.img");
    let objs = image(&path, &[64, 2000]);
    let free0 = figures(&path).1;
    let fake = {
        let dev = FileDevice::open(&path).unwrap();
        let mut mem = OwnedBuffers::for_device(&dev);
        let mut vol = FileVolume::mount(dev, mem.bufs()).unwrap();
        let mut tx = vol.begin();
        let e = tx.allocate(1).unwrap();
        let fake = Handle::Extent {
            start: e.start,
            tag: 3,
        };
        let mut blk = [0u8; BS];
        ExtentHeader {
            handle: fake.raw(),
            len: 4,
            payload_hash: xxhash_rust::xxh64::xxh64(&blk[EXTENT_HDR..EXTENT_HDR + 4], fake.raw()),
        }
        .encode(&mut blk)
        .unwrap();
        tx.write(e.start, &blk).unwrap();
        tx.commit().unwrap();
        vol.unmount().unwrap();
        fake
    };
    let before = check_path(&path, &mut |_, _| {}).unwrap();
    assert_eq!(before.scan.extents.len(), 1, "only the real extent");
    assert_eq!(before.scan.unaccounted.len(), 1);
    assert!(get(&path, fake).is_err());
    let actions = repair_clean(&path);
    assert!(
        actions.iter().any(|a| a.contains("freed leaked")),
        "{actions:?}"
    );
    assert_eq!(figures(&path).1, free0);
    for (h, d) in &objs {
        assert_eq!(get(&path, *h).unwrap(), *d);
    }
}

/// A mark in the extent map on a block inside another extent (a bit flipped and resealed):
/// the checker reports it, the volume still mounts, and the repair rewrites the map to mark
/// the intact extents only.
#[test]
fn repair_rewrites_an_extent_map_with_a_stray_mark() {
    use vde_nostd::format::{bitmap_block, slot_index};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.img");
    let objs = image(&path, &[3000, 64]);
    let inside = extent_blocks(objs[0].0, 3000).start + 2;
    let mut img = std::fs::read(&path).unwrap();
    let map = extent_map_block(&img);
    let blk = &mut img[map * BS..(map + 1) * BS];
    let at = slot_index::extent_bit(BS, inside);
    blk[at.byte()] |= at.mask();
    bitmap_block::seal(blk, slot_index::EXTENT_MAP_TAG).unwrap();
    std::fs::write(&path, &img).unwrap();
    let before = check_path(&path, &mut |_, _| {}).unwrap();
    assert!(
        before
            .findings
            .iter()
            .any(|f| f.message.contains("inside another extent") && f.repairable),
        "{:?}",
        before.findings
    );
    let actions = repair_clean(&path);
    assert!(
        actions.iter().any(|a| a.contains("rewrote the extent map")),
        "{actions:?}"
    );
    for (h, d) in &objs {
        assert_eq!(get(&path, *h).unwrap(), *d);
    }
}

/// A damaged extent map block (bad checksum) is reported and left alone: the repair never
/// guesses which blocks start extents, so the object findings are not repairable, the volume
/// still mounts and packed objects still read back, and an extent read fails with an error
/// instead of returning unverified data.
#[test]
fn a_damaged_extent_map_is_reported_not_guessed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.img");
    let objs = image(&path, &[64, 3000]);
    let mut img = std::fs::read(&path).unwrap();
    let map = extent_map_block(&img);
    img[map * BS + 3] ^= 0x40;
    std::fs::write(&path, &img).unwrap();
    let r = check_path(&path, &mut |_, _| {}).unwrap();
    assert!(
        r.findings
            .iter()
            .any(|f| f.message.contains("extent map block 0") && !f.repairable),
        "{:?}",
        r.findings
    );
    assert!(r.findings.iter().all(|f| !f.repairable), "{:?}", r.findings);
    assert_eq!(get(&path, objs[0].0).unwrap(), objs[0].1);
    assert!(matches!(
        get(&path, objs[1].0),
        Err(vde_nostd::Error::Corrupt(vde_nostd::Structure::Extent))
    ));
}

/// A WAL header copy whose epoch is 2^63, re-sealed: mount may not use it (FORMAT.md, recovery),
/// so `vde check` reports it (it once took any copy of the right log area) as repairable, and
/// the repair's mount rewrites it.
#[test]
fn a_wal_header_of_an_impossible_epoch_is_reported_and_rewritten() {
    use vde_nostd::format::wal_header::WalHeader;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.img");
    image(&path, &[100]);
    let mut img = std::fs::read(&path).unwrap();
    let b = &mut img[3 * BS..4 * BS];
    let mut h = WalHeader::decode(b).unwrap();
    h.epoch = 1 << 63;
    h.encode(b).unwrap();
    std::fs::write(&path, &img).unwrap();
    let r = check_path(&path, &mut |_, _| {}).unwrap();
    let m = format!(
        "WAL header B (block 3): epoch {} is 2^63 or above",
        1u64 << 63
    );
    assert!(
        r.findings
            .iter()
            .any(|f| f.area == "wal" && f.message == m && f.repairable),
        "{:?}",
        r.findings
    );
    let actions = repair_clean(&path);
    assert!(
        actions
            .iter()
            .any(|a| a == "rewrote the damaged WAL header copy"),
        "{actions:?}"
    );
}
