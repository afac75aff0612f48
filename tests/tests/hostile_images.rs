//! Hostile images: each test starts from a valid image, makes one structure lie, and re-seals
//! its checksum (and, for the WAL, computes every record, transaction and marker hash) so the lie
//! gets past the checksum and reaches the logic behind it. Each must give one specific error,
//! or, for a log that only looks torn, a clean mount that reports the discarded tail; never a
//! panic, never a write outside the image, never wrong data.

use vde_nostd::device::{RamDevice, RamError, WholeBlocks};
use vde_nostd::format::layout::{Layout, SB_MIRROR, SB_PRIMARY, WAL_HDR_A, WAL_HDR_B};
use vde_nostd::format::superblock::Superblock;
use vde_nostd::format::wal_header::WalHeader;
use vde_nostd::format::wal_record::seed;
use vde_nostd::format::xxh64;
use vde_nostd::wal::RecoveryReport;
use vde_nostd::{Error, FormatOptions, Handle, ModuleSet, MountError, Structure, Volume};
use vde_tests::{fresh_image, Mem};

const BS: usize = 512;
const BLOCKS: usize = 256;
const WAL: u64 = 16;

type E = Error<RamError>;

fn base() -> Vec<u8> {
    fresh_image(BS, BLOCKS, WAL)
}

/// An image formatted with the given modules.
fn image_with(modules: ModuleSet) -> Vec<u8> {
    let mut img = vec![0u8; BS * BLOCKS];
    let mut mem = Mem::new(BS, 16, 256);
    let opts = FormatOptions {
        wal_blocks: Some(WAL),
        volume_id: [0x42; 16],
        now: 1,
        modules,
    };
    let vol =
        Volume::<_, 16>::format(RamDevice::new(&mut img, BS).unwrap(), &opts, mem.bufs()).unwrap();
    vol.unmount().unwrap();
    img
}

fn mount(img: &mut [u8]) -> Result<RecoveryReport, E> {
    let mut mem = Mem::new(BS, 16, 256);
    Volume::<_, 16>::mount(RamDevice::new(img, BS).unwrap(), mem.bufs())
        .map(|v| v.recovery_report())
        .map_err(E::from)
}

/// Mounts and verifies.
fn mount_verify(img: &mut [u8]) -> Result<RecoveryReport, E> {
    let mut mem = Mem::new(BS, 16, 256);
    let mut v = Volume::<_, 16>::mount(RamDevice::new(img, BS).unwrap(), mem.bufs())?;
    v.verify()?;
    Ok(v.recovery_report())
}

struct Info {
    layout: Layout,
    salt: u64,
    epoch: u64,
    next_seq: u64,
    objects: Option<(u64, u64)>,
}

/// Mounts (which checkpoints) and reads what the forgeries need; the image keeps the header the
/// mount wrote, so a transaction forged with `epoch` and `next_seq` is the one recovery expects.
fn info(img: &mut [u8]) -> Info {
    let mut mem = Mem::new(BS, 16, 256);
    let mut v = Volume::<_, 16>::mount(RamDevice::new(img, BS).unwrap(), mem.bufs()).unwrap();
    let objects = v
        .module_regions(0)
        .ok()
        .and_then(|r| r.first().map(|e| (e.extent.start.0, e.extent.len)));
    let i = Info {
        layout: *v.layout(),
        salt: v.superblock().wal_salt(),
        epoch: v.wal().epoch().0,
        next_seq: v.wal().last_seq().next().0,
        objects,
    };
    let _ = v.into_device();
    i
}

fn blk(img: &mut [u8], b: u64) -> &mut [u8] {
    let at = b as usize * BS;
    &mut img[at..at + BS]
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

/// Re-seals a structure whose checksum is its block's last 8 bytes.
fn reseal(b: &mut [u8]) {
    let at = b.len() - 8;
    let sum = xxh64(&b[..at], 0);
    b[at..].copy_from_slice(&sum.to_le_bytes());
}

/// Rewrites both superblock copies with `f` applied (checksums re-computed by the encoder).
fn lie_in_superblock(img: &mut [u8], f: impl Fn(&mut Superblock)) {
    for b in [SB_PRIMARY, SB_MIRROR] {
        let mut sb = Superblock::decode(blk(img, b.0)).unwrap();
        f(&mut sb);
        sb.encode(blk(img, b.0)).unwrap();
    }
}

fn superblock_err(f: impl Fn(&mut Superblock)) -> E {
    let mut img = base();
    lie_in_superblock(&mut img, f);
    mount(&mut img).unwrap_err()
}

// ---------------------------------------------------------------------------------------------
// Superblock geometry that lies

#[test]
fn superblock_block_count_beyond_the_device() {
    assert_eq!(
        superblock_err(|s| s.block_count += 1),
        Error::InvalidGeometry
    );
    assert_eq!(
        superblock_err(|s| s.block_count = u64::MAX),
        Error::InvalidGeometry
    );
}

#[test]
fn superblock_block_count_short_of_the_device() {
    assert_eq!(
        superblock_err(|s| s.block_count -= 1),
        Error::InvalidGeometry
    );
    assert_eq!(
        superblock_err(|s| s.block_count = 0),
        Error::InvalidGeometry
    );
}

#[test]
fn superblock_block_size_not_a_power_of_two_or_not_the_devices() {
    for bs in [0u32, 1, 511, 768, 1000, 1024, 4096, 1 << 17, u32::MAX] {
        assert_eq!(
            superblock_err(|s| s.block_size = bs),
            Error::InvalidGeometry,
            "block size {bs}"
        );
    }
}

#[test]
fn superblock_wal_blocks_absurd() {
    for w in [
        0u64,
        3,
        BLOCKS as u64 / 2 + 1,
        BLOCKS as u64,
        u64::MAX / 2,
        u64::MAX,
    ] {
        assert_eq!(
            superblock_err(|s| s.wal_blocks = w),
            Error::Corrupt(Structure::Superblock),
            "wal_blocks {w}"
        );
    }
}

#[test]
fn superblock_wal_blocks_that_move_the_layout() {
    // A plausible WAL size that differs from the one formatted: the WAL headers no longer
    // describe this log, so neither copy is accepted.
    assert_eq!(
        superblock_err(|s| s.wal_blocks = WAL + 1),
        Error::Corrupt(Structure::WalHeader)
    );
}

#[test]
fn superblock_flags_and_unknown_modules() {
    // Bit 0 marks a format that did not finish: the volume is not formatted.
    assert_eq!(superblock_err(|s| s.flags = 1), Error::NotFormatted);
    assert_eq!(
        superblock_err(|s| s.flags = 2),
        Error::Corrupt(Structure::Superblock)
    );
    assert_eq!(
        superblock_err(|s| s.manifest |= 1 << 40),
        Error::Corrupt(Structure::Superblock)
    );
}

#[test]
fn superblock_manifest_claims_a_module_without_regions() {
    assert_eq!(
        superblock_err(|s| s.manifest |= ModuleSet::SNAPSHOTS.bits()),
        Error::Corrupt(Structure::RegionPointerTable)
    );
    assert_eq!(
        superblock_err(|s| s.manifest = 0),
        Error::Corrupt(Structure::RegionPointerTable)
    );
}

#[test]
fn superblock_version_and_magic() {
    let mut img = base();
    for b in [0u64, 1] {
        let s = blk(&mut img, b);
        put_u32(s, 8, 7);
        let sum = xxh64(&s[..104], 0);
        put_u64(s, 104, sum);
    }
    assert_eq!(mount(&mut img), Err(Error::UnsupportedVersion { found: 7 }));
    let mut img = base();
    blk(&mut img, 0)[0] = b'X';
    blk(&mut img, 1)[0] = b'X';
    assert_eq!(mount(&mut img), Err(Error::NotFormatted));
    let mut tiny = vec![0u8; BS];
    assert!(mount(&mut tiny).is_err());
    let mut empty: Vec<u8> = Vec::new();
    assert!(mount(&mut empty).is_err());
}

#[test]
fn a_lie_in_one_copy_falls_back_to_the_other() {
    let mut img = base();
    let mut sb = Superblock::decode(blk(&mut img, 0)).unwrap();
    sb.block_count = u64::MAX;
    sb.wal_blocks = u64::MAX;
    sb.sequence += 10; // the liar claims to be newer
    sb.encode(blk(&mut img, 0)).unwrap();
    mount_verify(&mut img).expect("the mirror is used");
}

// ---------------------------------------------------------------------------------------------
// Region directory and pointer table

const DIR_HDR: usize = 16;
const ENTRY: usize = 32;

fn patch_dir(img: &mut [u8], l: &Layout, f: impl Fn(&mut [u8])) {
    let b = blk(img, l.regdir);
    f(b);
    reseal(b);
}

fn patch_rpt(img: &mut [u8], l: &Layout, f: impl Fn(&mut [u8])) {
    let b = blk(img, l.rpt);
    f(b);
    reseal(b);
}

fn two_modules() -> (Vec<u8>, Layout) {
    let mut img = image_with(ModuleSet::OBJECTS | ModuleSet::XATTR);
    let l = info(&mut img).layout;
    (img, l)
}

fn entry_field(b: &[u8], i: usize, off: usize) -> u64 {
    let at = DIR_HDR + i * ENTRY + off;
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

#[test]
fn regions_overlapping() {
    let (mut img, l) = two_modules();
    let e1 = DIR_HDR + ENTRY;
    patch_dir(&mut img, &l, |b| {
        let start0 = entry_field(b, 0, 8);
        put_u64(b, e1 + 8, start0 + 1);
    });
    assert_eq!(
        mount(&mut img),
        Err(Error::Corrupt(Structure::RegionDirectory))
    );
}

#[test]
fn regions_past_the_end_or_inside_metadata() {
    let lies: [(u64, u64); 6] = [
        (BLOCKS as u64 - 2, 8), // runs past the end
        (BLOCKS as u64, 1),     // starts past the end
        (u64::MAX - 1, 5),      // end overflows
        (0, 4),                 // over the superblocks
        (5, 2),                 // inside the WAL
        (100, 0),               // empty
    ];
    for (start, len) in lies {
        let mut img = base();
        let l = info(&mut img).layout;
        patch_dir(&mut img, &l, |b| {
            put_u64(b, DIR_HDR + 8, start);
            put_u64(b, DIR_HDR + 16, len);
        });
        assert_eq!(
            mount(&mut img),
            Err(Error::Corrupt(Structure::RegionDirectory)),
            "region {start} + {len}"
        );
    }
}

#[test]
fn region_directory_count_module_and_reserved_fields() {
    let mut img = base();
    let l = info(&mut img).layout;
    let mut bad_count = img.clone();
    patch_dir(&mut bad_count, &l, |b| put_u32(b, 12, 1000));
    assert_eq!(
        mount(&mut bad_count),
        Err(Error::Corrupt(Structure::RegionDirectory))
    );
    let mut unknown_module = img.clone();
    patch_dir(&mut unknown_module, &l, |b| b[DIR_HDR] = 40);
    assert_eq!(
        mount(&mut unknown_module),
        Err(Error::Corrupt(Structure::RegionDirectory))
    );
    let mut bad_kind = img.clone();
    patch_dir(&mut bad_kind, &l, |b| b[DIR_HDR + 1] = 7);
    assert_eq!(
        mount(&mut bad_kind),
        Err(Error::Corrupt(Structure::RegionDirectory))
    );
    patch_dir(&mut img, &l, |b| b[DIR_HDR + 30] = 1);
    assert_eq!(
        mount(&mut img),
        Err(Error::Corrupt(Structure::RegionDirectory))
    );
}

#[test]
fn region_not_allocated_in_the_bitmap() {
    let mut img = base();
    let i = info(&mut img);
    let (start, _) = i.objects.unwrap();
    let l = i.layout;
    let b = blk(&mut img, l.bitmap_start);
    let bit = start as usize; // one bitmap block covers the whole volume
    b[bit / 8] &= !(1 << (bit % 8));
    reseal(b);
    assert_eq!(mount(&mut img), Err(Error::Corrupt(Structure::Bitmap)));
}

#[test]
fn pointer_table_duplicate_pointers() {
    // Two module bits name the same directory entry.
    let (mut img, l) = two_modules();
    patch_rpt(&mut img, &l, |b| {
        let objects = 16; // bit 0
        let xattr = 16 + 5 * 4; // bit 5
        let first = u16::from_le_bytes([b[objects], b[objects + 1]]);
        put_u16(b, xattr, first);
    });
    assert_eq!(
        mount(&mut img),
        Err(Error::Corrupt(Structure::RegionPointerTable))
    );
}

#[test]
fn pointer_table_count_mismatch_and_out_of_range() {
    let lies: [(usize, u16, u16); 5] = [
        (0, 0, 2),   // objects has one region, the pointer says two
        (0, 0, 0),   // a present module with no regions
        (0, 900, 1), // first entry past the directory
        (0, 65535, 65535),
        (3, 0, 1), // a pointer for a module not in the manifest
    ];
    for (bit, first, count) in lies {
        let mut img = base();
        let l = info(&mut img).layout;
        patch_rpt(&mut img, &l, |b| {
            put_u16(b, 16 + bit * 4, first);
            put_u16(b, 16 + bit * 4 + 2, count);
        });
        assert_eq!(
            mount(&mut img),
            Err(Error::Corrupt(Structure::RegionPointerTable)),
            "bit {bit} -> ({first}, {count})"
        );
    }
}

#[test]
fn pointer_table_orphan_directory_entry() {
    // The directory holds an entry no pointer references (a copy of the objects region's
    // entry with another index would overlap, so add a fresh, allocated-looking region).
    let (mut img, l) = two_modules();
    patch_rpt(&mut img, &l, |b| {
        put_u16(b, 16 + 5 * 4, 0);
        put_u16(b, 16 + 5 * 4 + 2, 0);
    });
    lie_in_superblock(&mut img, |s| s.manifest &= !ModuleSet::XATTR.bits());
    assert_eq!(
        mount(&mut img),
        Err(Error::Corrupt(Structure::RegionPointerTable))
    );
}

#[test]
fn pointer_table_reserved_field() {
    let mut img = base();
    let l = info(&mut img).layout;
    patch_rpt(&mut img, &l, |b| put_u32(b, 12, 1));
    assert_eq!(
        mount(&mut img),
        Err(Error::Corrupt(Structure::RegionPointerTable))
    );
}

// ---------------------------------------------------------------------------------------------
// Bitmap

#[test]
fn bitmap_block_from_the_wrong_place() {
    // A bitmap block whose index says it belongs elsewhere (a misdirected write), sealed.
    let mut img = base();
    let l = info(&mut img).layout;
    let b = blk(&mut img, l.bitmap_start);
    put_u32(b, BS - 16, 1);
    reseal(b);
    assert_eq!(mount(&mut img), Err(Error::Corrupt(Structure::Bitmap)));
}

#[test]
fn bitmap_too_short_for_the_volume() {
    // A volume whose bitmap needs two blocks; the second is missing (zeros).
    let blocks = 4200; // > 3968 bits per 512-byte bitmap block
    let mut img = fresh_image(BS, blocks, WAL);
    let mut mem = Mem::new(BS, 16, 256);
    let l = *Volume::<_, 16>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs())
        .unwrap()
        .layout();
    assert_eq!(l.bitmap_blocks, 2);
    blk(&mut img, l.bitmap_start + 1).fill(0);
    assert_eq!(mount(&mut img), Err(Error::Corrupt(Structure::Bitmap)));
    // The same block sealed but claiming index 0 (a copy of the first).
    let first = blk(&mut img, l.bitmap_start).to_vec();
    blk(&mut img, l.bitmap_start + 1).copy_from_slice(&first);
    assert_eq!(mount(&mut img), Err(Error::Corrupt(Structure::Bitmap)));
}

#[test]
fn bitmap_that_frees_the_metadata_never_lets_data_over_it() {
    // Every metadata block marked free, sealed. (That `verify` does not notice is a gap,
    // tested in hostile_regressions.rs.) The allocator must never hand a metadata block out.
    let mut img = base();
    let l = info(&mut img).layout;
    let b = blk(&mut img, l.bitmap_start);
    for bit in 0..l.data_start as usize {
        b[bit / 8] &= !(1 << (bit % 8));
    }
    reseal(b);
    let meta = l.data_start as usize * BS;
    let before = img[..meta].to_vec();
    let mut mem = Mem::new(BS, 16, 256);
    match Volume::<_, 16>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs()) {
        Err(e) => assert_eq!(e, MountError::Corrupt(Structure::Bitmap)),
        Ok(mut v) => {
            for len in [10usize, 2000] {
                let r = v.put(&vec![1u8; len]);
                assert!(
                    r.is_err(),
                    "a put of {len} bytes took a metadata block: {r:?}"
                );
            }
            let mut tx = v.begin();
            assert!(
                tx.allocate(1).is_err(),
                "allocate handed out a metadata block"
            );
        }
    }
    // No metadata block was overwritten (the WAL headers may have been checkpointed).
    assert_eq!(img[..2 * BS], before[..2 * BS]);
    let bm = l.bitmap_start as usize * BS;
    assert_eq!(img[bm..meta], before[bm..meta]);
}

// ---------------------------------------------------------------------------------------------
// WAL: forged transactions with every hash computed

/// A record to forge: target, declared data length, data.
struct Rec {
    kind: u8,
    off: u16,
    len: u16,
    target: u64,
    /// `prev` as written; `None`: chained to the transaction's previous record for the target.
    prev: Option<u32>,
    data: Vec<u8>,
}

/// A whole-block (IMAGE) record of `fill` bytes.
fn rec(target: u64, fill: u8) -> Rec {
    Rec {
        kind: 1,
        off: 0,
        len: 0,
        target,
        prev: None,
        data: vec![fill; BS],
    }
}

/// Writes a transaction into the log from position 0, byte by byte as FORMAT.md describes
/// (begin header, records with `prev` chained per target and their hashes, commit marker with
/// an empty counter delta and the transaction hash; seed = seq ^ salt), as `Wal::commit` does. `records` overrides the
/// count in the begin header.
fn forge(img: &mut [u8], i: &Info, seq: u64, recs: &[Rec], records: Option<u32>) {
    forge_at(img, i, 0, seq, recs, records);
}

/// [`forge`] at log position `pos`; returns the position after the transaction.
fn forge_at(
    img: &mut [u8],
    i: &Info,
    pos: usize,
    seq: u64,
    recs: &[Rec],
    records: Option<u32>,
) -> usize {
    let sd = seed(seq, i.salt);
    let mut stream = Vec::new();
    stream.extend_from_slice(b"VTXB");
    stream.extend_from_slice(&records.unwrap_or(recs.len() as u32).to_le_bytes());
    stream.extend_from_slice(&i.epoch.to_le_bytes());
    stream.extend_from_slice(&seq.to_le_bytes());
    let mut last = std::collections::HashMap::new();
    for r in recs {
        let pos = (pos + stream.len()) as u32;
        let target = r.target & ((1 << 48) - 1);
        let chained = last.insert(target, pos).unwrap_or(u32::MAX);
        let prev = r.prev.unwrap_or(chained);
        let mut h = vec![r.kind, 0];
        h.extend_from_slice(&r.off.to_le_bytes());
        h.extend_from_slice(&r.len.to_le_bytes());
        h.extend_from_slice(&target.to_le_bytes()[..6]);
        h.extend_from_slice(&prev.to_le_bytes());
        h.extend_from_slice(&r.data);
        stream.extend_from_slice(&h);
        stream.extend_from_slice(&xxh64(&h, sd).to_le_bytes());
    }
    // The commit marker, with a counter delta that changes nothing (one byte: 0 entries).
    let span = (stream.len() + 17) as u32;
    stream.extend_from_slice(b"VTXC");
    stream.extend_from_slice(&span.to_le_bytes());
    stream.push(0);
    let txn_hash = xxh64(&stream, sd);
    stream.extend_from_slice(&txn_hash.to_le_bytes());
    let start = i.layout.wal_start as usize * BS + pos;
    let end = (i.layout.wal_start + i.layout.wal_blocks) as usize * BS;
    let n = stream.len().min(end - start);
    img[start..start + n].copy_from_slice(&stream[..n]);
    pos + stream.len()
}

/// Mounts an image whose log was forged; returns the result and asserts that nothing outside
/// the WAL headers changed (a refused transaction writes nothing).
fn mount_forged(img: &mut [u8]) -> Result<RecoveryReport, E> {
    let before = img.to_vec();
    let r = mount(img);
    if r.is_err() {
        assert_eq!(img, &before[..], "a refused log changed the image");
    }
    r
}

#[test]
fn forged_transaction_that_validates_is_replayed() {
    // The control: the forgery is right, so recovery applies it.
    let mut img = base();
    let i = info(&mut img);
    let target = i.layout.data_start + 100;
    forge(&mut img, &i, i.next_seq, &[rec(target, 0xAB)], None);
    let r = mount_forged(&mut img).expect("mount");
    assert_eq!(r.replayed, 1);
    assert!(blk(&mut img, target).iter().all(|b| *b == 0xAB));
}

#[test]
fn committed_record_pointing_outside_the_image() {
    for target in [BLOCKS as u64, BLOCKS as u64 + 1, 1 << 40, u64::MAX] {
        let mut img = base();
        let i = info(&mut img);
        let ok = i.layout.data_start + 10;
        forge(
            &mut img,
            &i,
            i.next_seq,
            &[rec(ok, 1), rec(target, 2)],
            None,
        );
        assert_eq!(
            mount_forged(&mut img),
            Err(Error::Corrupt(Structure::WalRecord)),
            "target {target}"
        );
    }
}

#[test]
fn committed_record_pointing_into_the_wal() {
    let mut img = base();
    let l = info(&mut img).layout;
    for target in [
        WAL_HDR_A.0,
        WAL_HDR_B.0,
        l.wal_start,
        l.wal_start + 3,
        l.wal_start + l.wal_blocks - 1,
    ] {
        let mut img = base();
        let i = info(&mut img);
        forge(&mut img, &i, i.next_seq, &[rec(target, 9)], None);
        assert_eq!(
            mount_forged(&mut img),
            Err(Error::Corrupt(Structure::WalRecord)),
            "target {target}"
        );
    }
}

#[test]
fn record_with_an_impossible_kind_offset_or_length() {
    // (kind, a, b): an IMAGE with a range, a RANGES record of no ranges or no bytes, or of
    // at least a block, an unknown kind.
    for (kind, off, len) in [
        (1u8, 0u16, 1u16),
        (1, 8, 0),
        (2, 0, 0),
        (2, 0, 8),
        (2, 1, 0),
        (2, 1, BS as u16),
        (2, u16::MAX, u16::MAX),
        (0, 0, 0),
        (3, 0, 0),
        (255, 0, 8),
    ] {
        let mut img = base();
        let i = info(&mut img);
        let r = Rec {
            kind,
            off,
            len,
            target: i.layout.data_start + 5,
            prev: None,
            data: vec![3; BS],
        };
        forge(&mut img, &i, i.next_seq, &[r], None);
        let rep = mount_forged(&mut img).expect("a bad record reads as a torn tail");
        assert_eq!(rep.replayed, 0, "{kind} {off} {len}");
        assert!(rep.discarded_tail, "{kind} {off} {len}");
        mount_verify(&mut img).unwrap();
    }
}

/// A RANGES record: `ranges` as (offset, length), with `fill` bytes.
fn ranges(target: u64, ranges: &[(u16, u16)], fill: u8) -> Rec {
    let mut data = Vec::new();
    for (o, l) in ranges {
        data.extend_from_slice(&o.to_le_bytes());
        data.extend_from_slice(&l.to_le_bytes());
    }
    let bytes: u16 = ranges.iter().map(|r| r.1).sum();
    data.extend(std::iter::repeat_n(fill, bytes as usize));
    Rec {
        kind: 2,
        off: ranges.len() as u16,
        len: bytes,
        target,
        prev: None,
        data,
    }
}

#[test]
fn committed_ranges_are_replayed_over_their_image() {
    // The control for the refusals below: an image, then ranges of it, in two transactions.
    let mut img = base();
    let i = info(&mut img);
    let t = i.layout.data_start + 4;
    let next = forge_at(&mut img, &i, 0, i.next_seq, &[rec(t, 0x11)], None);
    // The ranges point back at the image (position 24, after the first begin header).
    let second = ranges(t, &[(8, 4), (100, 2)], 0x22);
    forge_chained(&mut img, &i, next, i.next_seq + 1, &second, 24);
    let r = mount_forged(&mut img).expect("mount");
    assert_eq!(r.replayed, 2);
    let b = blk(&mut img, t);
    assert!(b[..8].iter().all(|x| *x == 0x11));
    assert!(b[8..12].iter().all(|x| *x == 0x22));
    assert!(b[12..100].iter().all(|x| *x == 0x11));
    assert!(b[100..102].iter().all(|x| *x == 0x22));
    assert!(b[102..].iter().all(|x| *x == 0x11));
}

/// A transaction of one record whose `prev` is given (not chained by [`forge_at`]).
fn forge_chained(img: &mut [u8], i: &Info, pos: usize, seq: u64, r: &Rec, prev: u32) {
    let r = Rec {
        prev: Some(prev),
        data: r.data.clone(),
        ..*r
    };
    forge_at(img, i, pos, seq, &[r], None);
}

#[test]
fn committed_chain_a_writer_never_makes_is_refused() {
    // Every hash holds, but: the first record naming the block is a range (nothing to apply
    // it to); a range's `prev` skips the image before it; a range table that overlaps, runs
    // past the block or does not add up to its byte count.
    fn t_of(i: &Info) -> u64 {
        i.layout.data_start + 4
    }
    type Case = Box<dyn Fn(&mut [u8], &Info)>;
    let cases: Vec<(&str, Case)> = vec![
        (
            "prev skips the image",
            Box::new(|img, i| {
                let next = forge_at(img, i, 0, i.next_seq, &[rec(t_of(i), 1)], None);
                let r = ranges(t_of(i), &[(8, 4)], 2);
                forge_chained(img, i, next, i.next_seq + 1, &r, 8);
            }),
        ),
        (
            "overlapping ranges",
            Box::new(|img, i| {
                let next = forge_at(img, i, 0, i.next_seq, &[rec(t_of(i), 1)], None);
                let r = ranges(t_of(i), &[(8, 4), (10, 4)], 2);
                forge_chained(img, i, next, i.next_seq + 1, &r, 24);
            }),
        ),
        (
            "range past the block",
            Box::new(|img, i| {
                let next = forge_at(img, i, 0, i.next_seq, &[rec(t_of(i), 1)], None);
                let r = ranges(t_of(i), &[(BS as u16 - 2, 4)], 2);
                forge_chained(img, i, next, i.next_seq + 1, &r, 24);
            }),
        ),
        (
            "byte count that does not add up",
            Box::new(|img, i| {
                let next = forge_at(img, i, 0, i.next_seq, &[rec(t_of(i), 1)], None);
                let mut r = ranges(t_of(i), &[(8, 4), (20, 4)], 2);
                r.len = 6;
                r.data.truncate(8 + 6);
                forge_chained(img, i, next, i.next_seq + 1, &r, 24);
            }),
        ),
    ];
    for (what, forge_case) in cases {
        let mut img = base();
        let i = info(&mut img);
        forge_case(&mut img, &i);
        assert_eq!(
            mount_forged(&mut img),
            Err(Error::Corrupt(Structure::WalRecord)),
            "{what}"
        );
    }
    // A chain that starts with ranges (`prev` = none: first in the interval, or after the
    // block was written back) is an in-place chain (FORMAT.md, "Writing home in place"):
    // replayed over the home copy on a device that programs in place, and on one that does not
    // (an image moved from flash), which rescues the block rather than program it.
    let in_place: Vec<(&str, Case)> = vec![
        (
            "ranges first",
            Box::new(|img, i| {
                forge(img, i, i.next_seq, &[ranges(t_of(i), &[(8, 4)], 1)], None);
            }),
        ),
        (
            "ranges restarting a chain",
            Box::new(|img, i| {
                let next = forge_at(img, i, 0, i.next_seq, &[rec(t_of(i), 1)], None);
                let r = ranges(t_of(i), &[(8, 4)], 2);
                forge_chained(img, i, next, i.next_seq + 1, &r, u32::MAX);
            }),
        ),
    ];
    for (what, forge_case) in in_place {
        let mut img = base();
        let i = info(&mut img);
        forge_case(&mut img, &i);
        let mut other = img.clone();
        {
            let mut mem = Mem::new(BS, 16, 256);
            let dev = WholeBlocks(RamDevice::new(&mut other, BS).unwrap());
            let mut v = Volume::<_, 16>::mount(dev, mem.bufs())
                .unwrap_or_else(|e| panic!("{what} on whole blocks: {e:?}"));
            assert!(v.recovery_report().replayed >= 1, "{what}");
            assert_eq!(v.wal_stats().rescues, 1, "{what}: the block is rescued");
            v.verify().unwrap();
        }
        let report = mount(&mut img).unwrap_or_else(|e| panic!("{what}: {e:?}"));
        assert!(report.replayed >= 1, "{what}");
        // Both leave the same blocks outside the WAL area.
        let wal_end = (i.layout.wal_start + i.layout.wal_blocks) as usize * BS;
        assert_eq!(other[wal_end..], img[wal_end..], "{what}");
    }
}

#[test]
fn record_bound_above_or_below_the_records_written() {
    // The begin header's count is a bound (FORMAT.md): a commit marker after fewer records is
    // a whole transaction, however large the bound; a bound below the records written puts
    // the marker where a record is, which reads as a torn transaction.
    for records in [2u32, WAL as u32, 1000, u32::MAX] {
        let mut img = base();
        let i = info(&mut img);
        let t = i.layout.data_start + 7;
        forge(&mut img, &i, i.next_seq, &[rec(t, 4)], Some(records));
        let rep = mount_forged(&mut img).expect("mount");
        assert_eq!(rep.replayed, 1, "records {records}");
        assert!(blk(&mut img, t).iter().all(|b| *b == 4), "applied");
    }
    let mut img = base();
    let i = info(&mut img);
    let t = i.layout.data_start + 7;
    forge(
        &mut img,
        &i,
        i.next_seq,
        &[rec(t, 4), rec(t + 1, 4)],
        Some(1),
    );
    let rep = mount_forged(&mut img).expect("mount");
    assert_eq!((rep.replayed, rep.discarded_tail), (0, true));
    assert!(blk(&mut img, t).iter().all(|b| *b == 0), "nothing applied");
}

#[test]
fn transaction_running_past_the_end_of_the_log() {
    // Records that are individually fine but more than the log's 16 blocks can hold.
    let mut img = base();
    let i = info(&mut img);
    let recs: Vec<Rec> = (0..20).map(|k| rec(i.layout.data_start + k, 5)).collect();
    forge(&mut img, &i, i.next_seq, &recs, None);
    let rep = mount_forged(&mut img).expect("mount");
    assert_eq!((rep.replayed, rep.discarded_tail), (0, true));
}

#[test]
fn torn_looking_log_mounts_cleanly_with_a_discarded_tail() {
    let mut img = base();
    let i = info(&mut img);
    let t = i.layout.data_start + 3;
    forge(&mut img, &i, i.next_seq, &[rec(t, 6), rec(t + 1, 6)], None);
    // Tear the transaction in its second block.
    let at = (i.layout.wal_start as usize + 1) * BS + 100;
    img[at..at + 50].fill(0xEE);
    let rep = mount_forged(&mut img).expect("mount");
    assert_eq!((rep.replayed, rep.discarded_tail), (0, true));
    assert!(blk(&mut img, t).iter().all(|b| *b == 0));
    mount_verify(&mut img).unwrap();
}

#[test]
fn stale_epoch_or_sequence_is_ignored_not_replayed() {
    for (depoch, dseq) in [(1i64, 0i64), (-1, 0), (0, 1), (0, -1)] {
        let mut img = base();
        let mut i = info(&mut img);
        i.epoch = i.epoch.wrapping_add_signed(depoch);
        let seq = i.next_seq.wrapping_add_signed(dseq);
        let t = i.layout.data_start + 1;
        forge(&mut img, &i, seq, &[rec(t, 8)], None);
        let rep = mount_forged(&mut img).expect("mount");
        assert_eq!(rep.replayed, 0, "epoch {depoch:+} seq {dseq:+}");
        assert!(!rep.discarded_tail, "another epoch's content is not ours");
        assert!(blk(&mut img, t).iter().all(|b| *b == 0));
    }
}

#[test]
fn second_transaction_bad_after_a_good_one() {
    // The first forged transaction is good; the second, right after it, aims outside: the log
    // is refused before anything is written (recovery validates every transaction first), and
    // a remount refuses again.
    let mut img = base();
    let i = info(&mut img);
    let good = i.layout.data_start + 20;
    let next = forge_at(&mut img, &i, 0, i.next_seq, &[rec(good, 0x77)], None);
    forge_at(
        &mut img,
        &i,
        next,
        i.next_seq + 1,
        &[rec(u64::MAX, 1)],
        None,
    );
    assert_eq!(
        mount_forged(&mut img),
        Err(Error::Corrupt(Structure::WalRecord))
    );
    assert!(blk(&mut img, good).iter().all(|b| *b == 0));
    assert_eq!(mount(&mut img), Err(Error::Corrupt(Structure::WalRecord)));
}

#[test]
fn wal_headers_that_lie() {
    // Both copies describe another log area: neither is accepted.
    let mut img = base();
    for b in [WAL_HDR_A.0, WAL_HDR_B.0] {
        let mut h = WalHeader::decode(blk(&mut img, b)).unwrap();
        h.wal_blocks += 1;
        h.encode(blk(&mut img, b)).unwrap();
    }
    assert_eq!(mount(&mut img), Err(Error::Corrupt(Structure::WalHeader)));
    // Both damaged.
    let mut img = base();
    blk(&mut img, WAL_HDR_A.0)[20] ^= 1;
    blk(&mut img, WAL_HDR_B.0)[20] ^= 1;
    assert_eq!(mount(&mut img), Err(Error::Corrupt(Structure::WalHeader)));
    // One damaged: the other serves.
    let mut img = base();
    blk(&mut img, WAL_HDR_A.0)[20] ^= 1;
    mount_verify(&mut img).unwrap();
    // Extreme counters, sealed: no overflow, no panic.
    let mut img = base();
    for b in [WAL_HDR_A.0, WAL_HDR_B.0] {
        let mut h = WalHeader::decode(blk(&mut img, b)).unwrap();
        h.generation = u64::MAX;
        h.epoch = u64::MAX;
        h.checkpoint_seq = u64::MAX;
        h.encode(blk(&mut img, b)).unwrap();
    }
    let _ = mount(&mut img);
    let _ = mount(&mut img);
}

// ---------------------------------------------------------------------------------------------
// Slot index

const HEAD: usize = 128;

/// An image with a few packed objects (two shared blocks), its index head block, and entries.
fn with_shared_blocks() -> (Vec<u8>, u64, Vec<Handle>) {
    let mut img = base();
    let mut mem = Mem::new(BS, 16, 256);
    let mut v = Volume::<_, 16>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs()).unwrap();
    let mut hs = Vec::new();
    for k in 0..10u8 {
        hs.push(v.put(&[k; 100]).unwrap());
    }
    let head = v.module_regions(0).unwrap()[0].extent.start.0;
    assert!(v.object_stats().unwrap().shared_blocks >= 2);
    v.unmount().unwrap();
    (img, head, hs)
}

fn entry_size() -> usize {
    8 + 2 * (BS / 512)
}

fn patch_index(img: &mut [u8], head: u64, f: impl Fn(&mut [u8])) {
    let b = blk(img, head);
    f(b);
    reseal(b);
}

fn index_entry_block(img: &mut [u8], head: u64, i: usize) -> u64 {
    let at = HEAD + i * entry_size();
    u64::from_le_bytes(blk(img, head)[at..at + 8].try_into().unwrap())
}

#[test]
fn slot_index_entry_pointing_at_an_unallocated_block() {
    let (mut img, head, _) = with_shared_blocks();
    let free = BLOCKS as u64 - 5;
    patch_index(&mut img, head, |b| put_u64(b, HEAD, free));
    assert_eq!(mount(&mut img), Err(Error::Corrupt(Structure::SlotIndex)));
}

#[test]
fn slot_index_entries_duplicated() {
    let (mut img, head, _) = with_shared_blocks();
    let first = index_entry_block(&mut img, head, 0);
    patch_index(&mut img, head, |b| put_u64(b, HEAD + entry_size(), first));
    assert_eq!(mount(&mut img), Err(Error::Corrupt(Structure::SlotIndex)));
}

#[test]
fn slot_index_entries_pointing_at_metadata_regions_or_past_the_end() {
    for target in [0u64, 1, 6, 30, BLOCKS as u64, u64::MAX] {
        let (mut img, head, _) = with_shared_blocks();
        let t = if target == 30 { head } else { target }; // 30: the index region itself
        patch_index(&mut img, head, |b| put_u64(b, HEAD, t));
        assert_eq!(
            mount(&mut img),
            Err(Error::Corrupt(Structure::SlotIndex)),
            "entry -> {t}"
        );
    }
}

#[test]
fn slot_index_count_beyond_capacity_and_wrong_geometry() {
    let (img, head, _) = with_shared_blocks();
    let mut c = img.clone();
    patch_index(&mut c, head, |b| put_u32(b, 12, u32::MAX));
    assert_eq!(mount(&mut c), Err(Error::Corrupt(Structure::SlotIndex)));
    let mut c = img.clone();
    patch_index(&mut c, head, |b| put_u32(b, 16, 4096));
    assert_eq!(mount(&mut c), Err(Error::Corrupt(Structure::SlotIndex)));
    let mut c = img.clone();
    patch_index(&mut c, head, |b| put_u32(b, 20, 16));
    assert_eq!(mount(&mut c), Err(Error::Corrupt(Structure::SlotIndex)));
    // More entries than the caller's RAM index holds: a clear buffer error.
    let mut c = img.clone();
    let mut mem = Mem::new(BS, 16, 1);
    let r = Volume::<_, 16>::mount(RamDevice::new(&mut c, BS).unwrap(), mem.bufs()).map(drop);
    assert!(matches!(r, Err(MountError::BufferTooSmall { .. })), "{r:?}");
}

#[test]
fn slot_bitmap_and_counters_that_disagree_are_caught_by_verify() {
    let (mut img, head, hs) = with_shared_blocks();
    // Mark every unit of a shared block that has free units occupied: the counters no longer
    // match the slot bitmaps.
    let es = entry_size();
    let i = (0..3)
        .find(|i| blk(&mut img, head)[HEAD + i * es + 8] != 0xFF)
        .expect("a shared block with room");
    patch_index(&mut img, head, |b| b[HEAD + i * es + 8] = 0xFF);
    let mut mem = Mem::new(BS, 16, 256);
    let mut v = match Volume::<_, 16>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs()) {
        Err(e) => {
            assert_eq!(e, MountError::Corrupt(Structure::SlotIndex));
            return;
        }
        Ok(v) => v,
    };
    assert_eq!(v.verify(), Err(Error::Corrupt(Structure::SlotIndex)));
    // Reads still return only right bytes or errors.
    let mut buf = vec![0u8; BS];
    for (k, h) in hs.iter().enumerate() {
        if let Ok(n) = v.get(*h, &mut buf) {
            assert_eq!(&buf[..n], &[k as u8; 100][..]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Extent headers

#[test]
fn extent_header_that_lies_about_its_length_or_handle() {
    let mut img = base();
    let mut mem = Mem::new(BS, 16, 256);
    let (h, data) = {
        let mut v =
            Volume::<_, 16>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs()).unwrap();
        let data: Vec<u8> = (0..3000u32).map(|x| x as u8).collect();
        let h = v.put(&data).unwrap();
        v.unmount().unwrap();
        (h, data)
    };
    let Handle::Extent { start, .. } = h else {
        panic!("expected an extent");
    };
    for (len, want) in [
        (u64::MAX, "checksum"),
        (u64::MAX - 47, "checksum"),
        (1 << 40, "checksum"),
        (100_000, "checksum"),
        (2999, "checksum"),
    ] {
        let mut c = img.clone();
        let b = blk(&mut c, start.0);
        put_u64(b, 16, len);
        let sum = xxh64(&b[..40], 0);
        put_u64(b, 40, sum);
        let mut mem = Mem::new(BS, 16, 256);
        let mut v =
            Volume::<_, 16>::mount(RamDevice::new(&mut c, BS).unwrap(), mem.bufs()).unwrap();
        let mut buf = vec![0u8; 8192];
        let r = v.get(h, &mut buf);
        assert!(
            matches!(
                r,
                Err(Error::ObjectChecksum { .. }) | Err(Error::BufferTooSmall { .. })
            ),
            "len {len} ({want}): {r:?}"
        );
        let _ = v.object_len(h);
        let _ = v.delete(h);
    }
    // A header naming another handle: the handle is stale.
    let mut c = img.clone();
    let b = blk(&mut c, start.0);
    put_u64(b, 8, h.raw() ^ (1 << 40));
    let sum = xxh64(&b[..40], 0);
    put_u64(b, 40, sum);
    let mut mem = Mem::new(BS, 16, 256);
    let mut v = Volume::<_, 16>::mount(RamDevice::new(&mut c, BS).unwrap(), mem.bufs()).unwrap();
    let mut buf = vec![0u8; 8192];
    assert_eq!(
        v.get(h, &mut buf),
        Err(Error::BadHandle { handle: h.raw() })
    );
    // The untouched image still reads right.
    let mut v = Volume::<_, 16>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs()).unwrap();
    let n = v.get(h, &mut buf).unwrap();
    assert_eq!(&buf[..n], &data[..]);
}

#[test]
fn forged_handles_never_panic_or_return_other_bytes() {
    let (mut img, _, hs) = with_shared_blocks();
    let mut mem = Mem::new(BS, 16, 256);
    let mut v = Volume::<_, 16>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs()).unwrap();
    let mut buf = vec![0u8; BS];
    let mut tried = 0;
    for (k, h) in hs.iter().enumerate() {
        let raw = h.raw();
        for bit in 0..64 {
            let f = Handle::from_raw(raw ^ (1 << bit));
            tried += 1;
            if let Ok(n) = v.get(f, &mut buf) {
                // Only another live object's handle can read, and then its own bytes.
                let j = hs
                    .iter()
                    .position(|x| *x == f)
                    .expect("forged handle read bytes");
                assert_eq!(&buf[..n], &[j as u8; 100][..], "from handle of object {k}");
            }
        }
    }
    assert_eq!(tried, 640);
}
