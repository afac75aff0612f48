//! Seed corpora for the vde fuzz targets, and a replayer that runs inputs through the harnesses
//! on stable (no libFuzzer, no sanitizer).
//!
//! ```text
//! cargo run --release --manifest-path fuzz/seedgen/Cargo.toml -- gen [DIR]      (default fuzz/seeds)
//! cargo run --release --manifest-path fuzz/seedgen/Cargo.toml -- run TARGET FILE|DIR...
//! ```

use std::path::{Path, PathBuf};
use vde_fuzz::common::{ImageDevice, Mem};
use vde_nostd::format::counters::{Counters, Delta};
use vde_nostd::format::layout::Layout;
use vde_nostd::format::object::{ExtentHeader, SlotHeader};
use vde_nostd::format::wal_header::WalHeader;
use vde_nostd::format::wal_record::{Commit, RecordHeader, RecordKind, TxIdent, COMMIT_MAX};
use vde_nostd::format::{bitmap_block, regions, superblock::Superblock};
use vde_nostd::{FormatOptions, ModuleSet, Volume};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("gen") => {
            let dir = PathBuf::from(args.get(1).map_or("fuzz/seeds", String::as_str));
            gen(&dir);
        }
        Some("run") if args.len() >= 3 => {
            let target = args[1].as_str();
            let f: fn(&[u8]) = match target {
                "mount" => vde_fuzz::mount::run,
                "wal_recovery" => vde_fuzz::wal_recovery::run,
                "ops" => vde_fuzz::ops::run,
                "decode" => vde_fuzz::decode::run,
                _ => {
                    eprintln!("unknown target {target}");
                    std::process::exit(2);
                }
            };
            let mut n = 0;
            for a in &args[2..] {
                for p in files(Path::new(a)) {
                    let data = std::fs::read(&p).expect("read input");
                    println!("{}", p.display());
                    f(&data);
                    n += 1;
                }
            }
            println!("{n} inputs ran clean");
        }
        _ => {
            eprintln!("usage: seedgen gen [DIR] | seedgen run TARGET FILE|DIR...");
            std::process::exit(2);
        }
    }
}

fn files(p: &Path) -> Vec<PathBuf> {
    if p.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(p)
            .expect("read dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.is_file())
            .collect();
        v.sort();
        v
    } else {
        vec![p.to_path_buf()]
    }
}

fn write(dir: &Path, target: &str, name: &str, data: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("mkdir");
    assert!(data.len() < 100_000, "seed {target}/{name} too large");
    std::fs::write(d.join(name), data).expect("write seed");
}

type Vol<'b> = Volume<'b, ImageDevice, 16>;

/// Formats an image; `work` runs on the mounted volume; `checkpoint` says whether to unmount
/// (log emptied) or leave committed transactions in the log.
fn image(
    bs: usize,
    blocks: usize,
    modules: ModuleSet,
    checkpoint: bool,
    work: impl FnOnce(&mut Vol<'_>),
) -> Vec<u8> {
    let mut mem = Mem::new(bs, 16, 64);
    let opts = FormatOptions {
        wal_blocks: None,
        volume_id: [0x11; 16],
        now: 3,
        modules,
    };
    let mut vol = Vol::format(
        ImageDevice::new(vec![0; bs * blocks], bs),
        &opts,
        mem.bufs(),
    )
    .expect("format");
    work(&mut vol);
    if checkpoint {
        vol.unmount().expect("unmount").img
    } else {
        vol.into_device().img
    }
}

/// A `mount` input: flags, block count, the image without its trailing zeros.
fn mount_input(flags: u8, bs: usize, img: &[u8]) -> Vec<u8> {
    let blocks = (img.len() / bs) as u16;
    let used = img.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1);
    let mut v = vec![flags];
    v.extend_from_slice(&blocks.to_le_bytes());
    v.extend_from_slice(&img[..used]);
    v
}

fn some_objects(vol: &mut Vol<'_>) {
    let bs = vol.block_size();
    for (i, n) in [5usize, 60, 130, bs / 2 - 8, bs + 100].iter().enumerate() {
        let d = vde_fuzz::common::payload(i as u64, *n);
        vol.put(&d).expect("put");
    }
    let h = vol.put(b"short lived").expect("put");
    vol.delete(h).expect("delete");
}

fn gen(dir: &Path) {
    // mount
    let fresh = image(512, 64, ModuleSet::OBJECTS, true, |_| {});
    write(dir, "mount", "fresh-512", &mount_input(0, 512, &fresh));
    let logged = image(512, 64, ModuleSet::OBJECTS, false, some_objects);
    write(
        dir,
        "mount",
        "objects-in-log-512",
        &mount_input(0, 512, &logged),
    );
    write(
        dir,
        "mount",
        "objects-in-log-512-resealed",
        &mount_input(0x7C, 512, &logged),
    );
    let applied = image(512, 80, ModuleSet::OBJECTS, true, some_objects);
    write(
        dir,
        "mount",
        "objects-512-resealed",
        &mount_input(0x3C, 512, &applied),
    );
    let multi = image(
        1024,
        48,
        ModuleSet::OBJECTS | ModuleSet::XATTR | ModuleSet::ENCRYPTION,
        true,
        some_objects,
    );
    write(dir, "mount", "modules-1024", &mount_input(1, 1024, &multi));
    let big = image(4096, 24, ModuleSet::OBJECTS, false, some_objects);
    write(dir, "mount", "objects-4096", &mount_input(0x43, 4096, &big));
    let bare = image(2048, 32, ModuleSet::empty(), true, |_| {});
    write(
        dir,
        "mount",
        "no-modules-2048",
        &mount_input(0x02, 2048, &bare),
    );

    // wal_recovery: setup byte, then a mutation program.
    let wr: &[(&str, &[u8])] = &[
        ("raw-1", &[0]),
        ("raw-6", &[5]),
        ("puts-6", &[11]),
        ("deletes-6", &[17]),
        ("add-module-6", &[23]),
        ("truncate", &[5, 5, 3]),
        ("header-rewrite", &[17, 4, 0, 1, 0, 0xFF, 0]),
        ("header-skip", &[11, 4, 1, 2, 0, 2, 0]),
        ("forge-into-wal", &[23, 6, 2, 0, 3, 1]),
        ("forge-past-end", &[5, 6, 0, 0, 0, 9]),
        ("flip-record", &[11, 1, 0x10, 0x05, 3]),
        ("copy-blocks", &[17, 2, 3, 4, 2, 5, 6]),
    ];
    for (name, data) in wr {
        write(dir, "wal_recovery", name, data);
    }

    // ops: geometry byte, then operations (see vde_fuzz::ops).
    let ops: &[(&str, &[u8])] = &[
        (
            "puts-512",
            &[
                0, 0, 10, 0, 101, 0, 202, 0, 3, 10, 20, 1, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8,
            ],
        ),
        (
            "cut-during-put-512",
            &[4, 0, 10, 0, 3, 5, 40, 0, 0, 7, 0, 100, 0, 3, 1, 1],
        ),
        (
            "batch-and-cut-4096",
            &[
                1, 0, 9, 0, 50, 5, 120, 0, 7, 2, 3, 0, 5, 1, 0, 2, 9, 1, 0, 0, 1,
            ],
        ),
        (
            "modules-remount",
            &[8, 3, 1, 3, 4, 4, 0, 33, 5, 200, 1, 30, 3, 2, 0, 7],
        ),
        (
            "raw-release-cut",
            &[2, 7, 1, 7, 2, 8, 0, 5, 20, 0, 7, 0, 8, 0, 6, 0, 1],
        ),
        (
            "cut-in-recovery",
            &[6, 0, 1, 0, 2, 0, 3, 5, 60, 0, 7, 0, 200, 0, 4, 1, 0, 0, 5],
        ),
        (
            "names-store-replace-cut-512",
            &[
                0, 11, 0, 5, 11, 0, 9, 11, 5, 4, 12, 0, 4, 11, 1, 3, 5, 30, 0, 0, 11, 1, 7, 0, 0,
                11, 2, 8, 12, 1, 1, 0, 4,
            ],
        ),
        (
            "names-replace-cut-512",
            &[
                0, 11, 0, 5, 11, 0, 9, 11, 5, 4, 5, 9, 0, 0, 11, 5, 7, 0, 12, 0, 11, 1, 4,
            ],
        ),
        (
            "names-remove-cut-512",
            &[0, 11, 0, 5, 11, 0, 9, 5, 4, 0, 0, 12, 0, 11, 1, 4],
        ),
        (
            "names-cut-4096",
            &[
                1, 11, 3, 14, 11, 3, 2, 5, 10, 0, 1, 11, 3, 6, 2, 0, 12, 3, 11, 7, 9, 12, 9,
            ],
        ),
    ];
    for (name, data) in ops {
        write(dir, "ops", name, data);
    }

    // decode: selector, then the structure's bytes.
    let bs = 512;
    let l = Layout::compute(bs, 80, 8).expect("layout");
    let blk = |b: u64| applied[b as usize * bs..(b as usize + 1) * bs].to_vec();
    let sel = |s: u8, body: &[u8]| {
        let mut v = vec![s];
        v.extend_from_slice(body);
        v
    };
    write(dir, "decode", "superblock", &sel(0, &blk(0)[..128]));
    {
        use vde_nostd::format::names;
        let mut root = vec![0u8; 512];
        names::encode_root(&mut root, 1).expect("root");
        let mut at = names::HEAD + 3;
        for (leaf, sep) in [(3u16, &b"config/"[..]), (2, b"firmware")] {
            names::put_dir_entry(&mut root, at, leaf, sep).expect("entry");
            at += names::root_entry_size(sep.len());
        }
        names::set_counts(&mut root, 3, None).expect("count");
        names::seal(&mut root).expect("seal");
        write(dir, "decode", "names-root", &sel(14, &root));
        let mut leaf = vec![0u8; 512];
        names::encode_leaf(&mut leaf).expect("leaf");
        let mut at = names::HEAD;
        for (k, h) in [
            (&b"config/a"[..], 0x0006_0000_0000_00a8u64),
            (b"config/b", 7),
        ] {
            names::put_leaf_entry(&mut leaf, at, k, h).expect("entry");
            at += names::leaf_entry_size(k.len());
        }
        names::set_counts(&mut leaf, 2, Some(at)).expect("counts");
        names::seal(&mut leaf).expect("seal");
        write(dir, "decode", "names-leaf", &sel(14, &leaf));
    }
    write(dir, "decode", "wal-header", &sel(1, &blk(2)[..64]));
    let ident = TxIdent {
        epoch: 4,
        seq: 9,
        records: 2,
    };
    let mut b = [0u8; 24];
    ident.encode_begin(&mut b);
    write(dir, "decode", "begin", &sel(2, &b));
    let rec = RecordHeader {
        kind: RecordKind::Ranges {
            count: 2,
            bytes: 72,
        },
        target: 40,
        prev: 24,
    }
    .encode()
    .expect("record header");
    write(dir, "decode", "record", &sel(2, &rec));
    let after = Counters {
        objects: 1,
        bytes: 100,
        per_class: [0, 1, 0, 0, 0, 0],
        ..Default::default()
    };
    let cm = Commit {
        span: 300,
        delta: Delta::between(&Counters::default(), &after),
        txn_hash: 0x1234_5678,
    };
    let mut body = vec![0u8; COMMIT_MAX];
    let n = cm.encode(&mut body).expect("commit marker");
    body.truncate(n);
    write(dir, "decode", "commit", &sel(3, &body));
    write(dir, "decode", "region-dir", &sel(4, &blk(l.regdir)));
    write(dir, "decode", "pointer-table", &sel(5, &blk(l.rpt)));
    let mut body = 0u64.to_le_bytes().to_vec();
    body.extend_from_slice(&blk(l.bitmap_start));
    write(dir, "decode", "bitmap", &sel(6, &body));
    let mut body = vec![0u8];
    body.extend_from_slice(&blk(l.data_start));
    write(dir, "decode", "slot-index", &sel(7, &body));
    let mut sh = [0u8; 8];
    SlotHeader {
        len: 5,
        tag: 3,
        check: 0xdead_beef,
    }
    .encode(&mut sh)
    .expect("slot header");
    write(dir, "decode", "slot-header", &sel(8, &sh));
    let mut eh = [0u8; 48];
    ExtentHeader {
        handle: 0x8000_0090_0000_0005,
        len: 10_000,
        payload_hash: 3,
    }
    .encode(&mut eh)
    .expect("extent header");
    write(dir, "decode", "extent-header", &sel(9, &eh));
    write(dir, "decode", "handle", &sel(10, b"8000009000000005"));
    let mut body = 512u64.to_le_bytes().to_vec();
    body.push(1);
    body.extend_from_slice(&1000u64.to_le_bytes());
    body.extend_from_slice(&16u64.to_le_bytes());
    write(dir, "decode", "layout", &sel(11, &body));
    let mut body = vec![3, 200, 0, 5];
    body.extend_from_slice(&[
        0xFF, 0x0F, 0, 0x81, 0xFF, 0, 0, 0, 0xF0, 0xFF, 1, 2, 3, 4, 5, 6,
    ]);
    write(dir, "decode", "scanner", &sel(12, &body));
    write(
        dir,
        "decode",
        "slots",
        &sel(13, &[3, 0, 0, 0, 0, 1, 2, 3, 4, 5, 0x83, 0, 1, 2]),
    );
    // The same with the re-seal bit, so mutations of sealed structures get past the checksum.
    for name in [
        "superblock",
        "wal-header",
        "commit",
        "region-dir",
        "pointer-table",
        "bitmap",
        "slot-index",
        "extent-header",
    ] {
        let mut v = std::fs::read(dir.join("decode").join(name)).expect("seed");
        v[0] |= 0x80;
        write(dir, "decode", &format!("{name}-resealed"), &v);
    }
    // Make sure the real structures really decode.
    assert!(Superblock::decode(&blk(0)).is_ok());
    assert!(WalHeader::decode(&blk(2)).is_ok());
    assert!(regions::dir_check(&blk(l.regdir)).is_ok());
    assert!(regions::rpt_check(&blk(l.rpt)).is_ok());
    assert!(bitmap_block::check(&blk(l.bitmap_start), 0).is_ok());
    println!("seeds written under {}", dir.display());
}
