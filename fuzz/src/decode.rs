//! `decode`: every on-disk structure's decoder on arbitrary bytes.
//!
//! Input: `selector u8 | bytes`. The selector picks the structure whose round trip is checked
//! (every decoder also runs on the bytes, for coverage). Where a structure decodes, encoding it
//! again gives the same bytes (over its fixed encoded length, or for block structures over the
//! header and the entries the count covers).
//! ```text
//! 0 superblock      1 WAL header        2 begin and record header  3 commit marker
//! 4 region dir      5 pointer table     6 bitmap block (index u32 first)
//! 7 slot index block (index u8 first)   8 slot header        9 extent header
//! 10 handle text    11 layout (block size u32, count u64, wal u64)
//! 12 scanner against a bit-by-bit model (bytes per block u8, total bits u16 first)
//! 13 slot bitmap operations (block size u8, then op bytes, over a bitmap taken from the input)
//! 14 name table block (root or leaf; the whole input is the block)
//! ```

use crate::common::Cursor;
use vde_nostd::format::layout::{bits_per_bitmap_block, Layout, MIN_DATA_BLOCKS};
use vde_nostd::format::object::{ExtentHeader, SlotHeader, EXTENT_HDR, SLOT_HDR};
use vde_nostd::format::regions;
use vde_nostd::format::superblock::{self, Superblock};
use vde_nostd::format::wal_header::{self, WalHeader};
use vde_nostd::format::wal_record::{
    Commit, RecordHeader, TxIdent, BEGIN_LEN, COMMIT_MAX, RECORD_HEADER,
};
use vde_nostd::format::{bitmap_block, names, slot_index};
use vde_nostd::scanner::{self, SliceBitmap};
use vde_nostd::subblock::{self, SlotBitmap};
use vde_nostd::Handle;

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    decode_all(rest);
    let owned = (sel & 0x80 != 0).then(|| {
        let mut v = rest.to_vec();
        reseal(sel & 0x7F, &mut v);
        v
    });
    let rest = owned.as_deref().unwrap_or(rest);
    match (sel & 0x7F) % 15 {
        0 => superblock(rest),
        1 => wal_header(rest),
        2 => begin(rest),
        3 => commit(rest),
        4 => region_dir(rest),
        5 => pointer_table(rest),
        6 => bitmap(rest),
        7 => slot_index_block(rest),
        8 => slot_header(rest),
        9 => extent_header(rest),
        10 => handle_text(rest),
        11 => layout(rest),
        12 => scan(rest),
        13 => slots(rest),
        _ => name_block(rest),
    }
}

/// With selector bit 7 set, the structure's checksum is recomputed first, so that mutated
/// fields get past it and the round trip is tested on them.
fn reseal(sel: u8, b: &mut [u8]) {
    use crate::common::{reseal_superblock, reseal_trailer, reseal_wal_header, seal_at};
    match sel % 15 {
        0 => reseal_superblock(b),
        14 => {
            let _ = names::seal(b);
        }
        1 => reseal_wal_header(b),
        4 | 5 => reseal_trailer(b),
        6 if b.len() > 8 => reseal_trailer(&mut b[8..]),
        7 if b.len() > 1 => reseal_trailer(&mut b[1..]),
        9 => seal_at(b, 40),
        _ => {}
    }
}

/// Every decoder on the same bytes: none may panic.
fn decode_all(b: &[u8]) {
    let _ = Superblock::decode(b);
    let _ = WalHeader::decode(b);
    let _ = TxIdent::decode_begin(b);
    let _ = Commit::decode(b);
    for bs in [512, 4096, 65536] {
        let _ = RecordHeader::decode(b, bs);
    }
    if let Ok(n) = regions::dir_check(b) {
        for i in 0..n + 2 {
            let _ = regions::dir_entry(b, i);
        }
    }
    let _ = regions::dir_entry(b, 0);
    let _ = regions::rpt_check(b);
    for bit in [0, 1, 63, 64, 1000] {
        let _ = regions::rpt_get(b, bit);
    }
    let _ = bitmap_block::check(b, 0);
    let _ = bitmap_block::bits(b);
    let _ = slot_index::check(b, 0, 1);
    let _ = slot_index::check(b, 1, 1);
    let _ = SlotHeader::decode(b);
    let _ = ExtentHeader::decode(b);
    if let Ok(r) = names::check_root(b, 64) {
        assert_eq!(names::dir_entries(b, r).count(), r.leaves);
    }
    if let Ok(l) = names::check_leaf(b) {
        assert_eq!(names::leaf_entries(b, l).count(), l.count);
    }
    if let Ok(s) = core::str::from_utf8(b) {
        let _ = Handle::parse(s);
    }
}

fn superblock(b: &[u8]) {
    if let Ok(sb) = Superblock::decode(b) {
        let mut out = vec![0u8; superblock::LEN];
        sb.encode(&mut out).expect("encode superblock");
        assert_eq!(&out[..], &b[..superblock::LEN], "superblock round trip");
        let _ = sb.wal_salt();
    }
}

fn wal_header(b: &[u8]) {
    if let Ok(h) = WalHeader::decode(b) {
        let mut out = vec![0u8; wal_header::LEN];
        h.encode(&mut out).expect("encode WAL header");
        assert_eq!(&out[..], &b[..wal_header::LEN], "WAL header round trip");
    }
}

fn begin(b: &[u8]) {
    if let Ok(t) = TxIdent::decode_begin(b) {
        let mut out = [0u8; BEGIN_LEN];
        t.encode_begin(&mut out);
        assert_eq!(&out[..], &b[..BEGIN_LEN], "begin header round trip");
    }
    for bs in [512, 4096, 65536] {
        if let Ok(h) = RecordHeader::decode(b, bs) {
            let out = h.encode().expect("a decoded record header encodes");
            assert_eq!(&out[..], &b[..RECORD_HEADER], "record header round trip");
            assert!(h.data_len(bs) < 4 * 65536 + 65536, "record data length");
        }
    }
}

fn commit(b: &[u8]) {
    if let Ok((cm, head)) = Commit::decode(b) {
        let mut out = [0u8; COMMIT_MAX];
        let n = cm
            .encode(&mut out)
            .expect("a decoded commit marker encodes");
        assert_eq!(n, head + 8, "commit marker length");
        assert_eq!(&out[..n], &b[..n], "commit marker round trip");
        // The independent walker's reading of the delta agrees with the engine's.
        assert_eq!(
            crate::common::delta_len(&b[8..]),
            Some(n - 16),
            "counter delta length"
        );
    }
}

fn region_dir(b: &[u8]) {
    let Ok(n) = regions::dir_check(b) else {
        return;
    };
    assert!(n <= regions::dir_capacity(b.len()), "count past capacity");
    let entries: Option<Vec<_>> = (0..n).map(|i| regions::dir_entry(b, i).ok()).collect();
    let Some(entries) = entries else {
        return;
    };
    let mut out = vec![0u8; b.len()];
    regions::dir_init(&mut out).expect("dir init");
    for e in &entries {
        regions::dir_push(&mut out, e).expect("dir push");
    }
    let used = 16 + 32 * n;
    assert_eq!(&out[..used], &b[..used], "region directory round trip");
    assert_eq!(regions::dir_check(&out), Ok(n));
}

fn pointer_table(b: &[u8]) {
    if regions::rpt_check(b).is_err() {
        return;
    }
    let ptrs: Option<Vec<_>> = (0..regions::RPT_SLOTS)
        .map(|bit| regions::rpt_get(b, bit).ok())
        .collect();
    let Some(ptrs) = ptrs else {
        return;
    };
    let mut out = vec![0u8; b.len()];
    if regions::rpt_init(&mut out).is_none() {
        return;
    }
    for (bit, (first, count)) in ptrs.iter().enumerate() {
        regions::rpt_set(&mut out, bit, *first, *count).expect("rpt set");
    }
    let used = 16 + 4 * regions::RPT_SLOTS;
    assert_eq!(&out[..used], &b[..used], "pointer table round trip");
    assert_eq!(regions::rpt_check(&out), Ok(()));
}

fn bitmap(rest: &[u8]) {
    let mut c = Cursor::new(rest);
    let idx = c.u64().unwrap_or(0) as u32;
    let b = c.rest();
    if bitmap_block::check(b, idx).is_ok() {
        let mut out = b.to_vec();
        bitmap_block::seal(&mut out, idx).expect("seal");
        assert_eq!(&out[..], b, "bitmap block round trip");
    }
}

fn slot_index_block(rest: &[u8]) {
    let Some((&i, b)) = rest.split_first() else {
        return;
    };
    let i = u64::from(i % 4);
    // The extent map's block count is the head's own (bytes 104..108); `check` compares it.
    let map = b
        .get(104..108)
        .map_or(0, |m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
    if let Ok(n) = slot_index::check(b, i, u64::from(map)) {
        let mut out = b.to_vec();
        slot_index::encode_head(&mut out, i, n, map).expect("encode head");
        slot_index::seal(&mut out).expect("seal");
        assert_eq!(&out[..], b, "slot index block {i} round trip");
    }
}

/// A name table block that checks re-encodes, entry by entry, to the same bytes.
fn name_block(b: &[u8]) {
    if let Ok(r) = names::check_root(b, u64::from(u16::MAX) + 1) {
        let mut out = vec![0u8; b.len()];
        names::encode_root(&mut out, 1).expect("encode root");
        out[names::HEAD..].fill(0);
        let mut at = names::HEAD;
        for e in names::dir_entries(b, r) {
            names::put_dir_entry(&mut out, at, e.leaf, e.sep).expect("put entry");
            at += e.size();
        }
        names::set_counts(&mut out, r.leaves, None).expect("counts");
        names::seal(&mut out).expect("seal");
        assert_eq!(&out[..], b, "name table root round trip");
    }
    if let Ok(l) = names::check_leaf(b) {
        let mut out = vec![0u8; b.len()];
        names::encode_leaf(&mut out).expect("encode leaf");
        let mut at = names::HEAD;
        for e in names::leaf_entries(b, l) {
            names::put_leaf_entry(&mut out, at, e.key, e.handle).expect("put entry");
            at += e.size();
        }
        names::set_counts(&mut out, l.count, Some(at)).expect("counts");
        names::seal(&mut out).expect("seal");
        assert_eq!(&out[..], b, "name table leaf round trip");
    }
}

fn slot_header(b: &[u8]) {
    if let Ok(h) = SlotHeader::decode(b) {
        let mut out = [0u8; SLOT_HDR];
        h.encode(&mut out).expect("encode slot header");
        assert_eq!(&out[..], &b[..SLOT_HDR], "slot header round trip");
    }
}

fn extent_header(b: &[u8]) {
    if let Ok(h) = ExtentHeader::decode(b) {
        let mut out = [0u8; EXTENT_HDR];
        h.encode(&mut out).expect("encode extent header");
        assert_eq!(&out[..], &b[..EXTENT_HDR], "extent header round trip");
    }
}

fn handle_text(b: &[u8]) {
    let Ok(s) = core::str::from_utf8(b) else {
        return;
    };
    if let Some(h) = Handle::parse(s) {
        let t = h.to_text();
        assert_eq!(
            core::str::from_utf8(&t).expect("hex"),
            s.to_ascii_lowercase(),
            "handle text round trip"
        );
        assert_eq!(Handle::from_raw(h.raw()), h);
        assert_eq!(h.to_string().as_bytes(), &t[..]);
    }
    if b.len() >= 8 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        let v = u64::from_le_bytes(a);
        assert_eq!(Handle::from_raw(v).raw(), v, "raw handle round trip");
    }
}

fn layout(rest: &[u8]) {
    let mut c = Cursor::new(rest);
    let bs = c.u64().unwrap_or(0) as u32 as usize;
    let bs = if c.u8().unwrap_or(0) & 1 == 0 {
        512usize << (bs % 8)
    } else {
        bs
    };
    let count = c.u64().unwrap_or(0);
    let wal = c.u64().unwrap_or(0);
    let Some(l) = Layout::compute(bs, count, wal) else {
        return;
    };
    assert!(bs.is_power_of_two() && (512..=65536).contains(&bs));
    assert_eq!(l.wal_start + l.wal_blocks, l.bitmap_start);
    assert!(l.bitmap_blocks.saturating_mul(bits_per_bitmap_block(bs)) >= count);
    assert_eq!(l.bitmap_start + l.bitmap_blocks, l.regdir);
    assert_eq!(l.regdir + 1, l.rpt);
    assert_eq!(l.rpt + 1, l.data_start);
    assert!(l.data_start + MIN_DATA_BLOCKS <= count);
}

fn scan(rest: &[u8]) {
    let mut c = Cursor::new(rest);
    let bpb = 8 * (1 + usize::from(c.u8().unwrap_or(0) % 8));
    let total = u64::from(c.u16().unwrap_or(0));
    let want = u64::from(c.u8().unwrap_or(1) % 40);
    let bits = c.rest();
    let Some(mut src) = SliceBitmap::new(bits, total, bpb) else {
        return;
    };
    let total = total.min(bits.len() as u64 * 8);
    let get = |i: u64| bits[(i / 8) as usize] & (1 << (i % 8)) != 0;
    let mut buf = vec![0u8; bpb];
    let free = (0..total).filter(|i| !get(*i)).count() as u64;
    assert_eq!(
        scanner::count_free(&mut src, &mut buf),
        Ok(free),
        "count_free"
    );
    let mut naive = None;
    if want > 0 {
        let mut run = 0;
        for i in 0..total {
            run = if get(i) { 0 } else { run + 1 };
            if run == want {
                naive = Some(i + 1 - want);
                break;
            }
        }
    }
    let ff = scanner::first_fit(&mut src, want, &mut buf).map(|o| o.map(|b| b.0));
    assert_eq!(ff, Ok(naive), "first_fit({want})");
    let mut runs = Vec::new();
    scanner::free_runs(&mut src, want.max(1), &mut buf, |e| {
        runs.push(e);
        true
    })
    .expect("free_runs");
    for e in &runs {
        assert!(e.len >= want.max(1));
        for i in e.start.0..e.start.0 + e.len {
            assert!(i < total && !get(i), "free run covers an allocated bit");
        }
    }
}

fn slots(rest: &[u8]) {
    let mut c = Cursor::new(rest);
    let bs = 512usize << (c.u8().unwrap_or(0) % 5);
    let n = subblock::bitmap_bytes(bs);
    let mut bits = c.bytes(n).to_vec();
    bits.resize(n, 0);
    let Some(mut bm) = SlotBitmap::new(&mut bits, bs) else {
        panic!("slot bitmap refused its own size");
    };
    let units = bs / 64;
    while let Some(op) = c.u8() {
        let class = op % 7;
        let view_free = bm.view().free_units();
        if op & 0x80 == 0 {
            if let Some(at) = bm.allocate(class) {
                let per = subblock::class_size(class).expect("class") / 64;
                assert!(at % per == 0 && at + per <= units, "misaligned slot");
                assert!(bm.view().range_occupied(at, per));
                assert_eq!(bm.view().free_units(), view_free - per);
            }
        } else {
            let at = usize::from(c.u8().unwrap_or(0));
            let _ = bm.free(at, class);
        }
        let v = bm.view();
        let _ = (v.fully_free(), v.fully_occupied(), v.free_slots(class % 6));
    }
}
