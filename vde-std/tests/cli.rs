//! The `vde` binary through every subcommand, and every error case with its message.

mod common;

use std::io::Write as _;
use std::path::Path;

use common::{bytes, open_retry, patch_superblocks, vde, vde_in};
use vde_nostd::{BlockDevice, Handle};
use vde_std::{FileDevice, FileVolume, OwnedBuffers};

fn is_handle(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|c| c.is_ascii_hexdigit())
}

fn format_small(dir: &Path, name: &str) {
    vde(
        dir,
        &["format", name, "--size", "2MiB", "--block-size", "4096"],
    )
    .ok();
}

#[test]
fn every_subcommand() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();

    let out = vde(d, &["format", "disk.img", "--size", "8MiB"]).ok();
    assert!(
        out.contains("formatted disk.img: 2048 blocks x 4096 bytes = 8.0 MiB"),
        "{out}"
    );
    for needle in [
        "superblock (primary)",
        "write-ahead log",
        "allocation bitmap",
        "region directory",
        "region pointer table",
        "data area",
        "objects",
    ] {
        assert!(out.contains(needle), "{needle} missing from {out}");
    }

    let out = vde(d, &["modules"]).ok();
    for m in vde_nostd::modules::CATALOGUE {
        assert!(out.contains(m.name) && out.contains(m.description), "{out}");
    }

    let out = vde(d, &["add-module", "disk.img", "xattr"]).ok();
    assert!(out.contains("added module xattr"), "{out}");

    std::fs::write(d.join("small.txt"), b"hello, vde").unwrap();
    let big = bytes(7, 100_000);
    std::fs::write(d.join("big.bin"), &big).unwrap();
    let h_small = vde(d, &["put", "disk.img", "small.txt"])
        .ok()
        .trim()
        .to_string();
    let h_big = vde(d, &["put", "disk.img", "big.bin"])
        .ok()
        .trim()
        .to_string();
    let h_stdin = vde_in(d, &["put", "disk.img", "-"], Some(b"from stdin"))
        .ok()
        .trim()
        .to_string();
    let h_stdin2 = vde_in(d, &["put", "disk.img"], Some(b""))
        .ok()
        .trim()
        .to_string();
    for h in [&h_small, &h_big, &h_stdin, &h_stdin2] {
        assert!(is_handle(h), "{h}");
    }

    assert_eq!(vde(d, &["get", "disk.img", &h_small]).ok(), "hello, vde");
    assert_eq!(vde(d, &["get", "disk.img", &h_stdin]).ok(), "from stdin");
    assert_eq!(vde(d, &["get", "disk.img", &h_stdin2]).ok(), "");
    vde(d, &["get", "disk.img", &h_big, "-o", "big.out"]).ok();
    assert_eq!(std::fs::read(d.join("big.out")).unwrap(), big);
    let upper = h_small.to_uppercase();
    assert_eq!(vde(d, &["get", "disk.img", &upper]).ok(), "hello, vde");

    let info = vde(d, &["info", "disk.img"]).ok();
    for needle in [
        "geometry:   2048 blocks x 4096 bytes",
        "modules:    objects, xattr",
        "xattr",
        "WAL:",
        "clean (nothing to replay)",
        "objects:    4 object(s)",
        "extents:  1 in 25 whole block(s)",
    ] {
        assert!(info.contains(needle), "{needle} missing from {info}");
    }
    let j: serde_json::Value =
        serde_json::from_str(&vde(d, &["info", "disk.img", "--json"]).ok()).unwrap();
    assert_eq!(j["block_size"], 4096);
    assert_eq!(j["block_count"], 2048);
    assert_eq!(j["modules"], serde_json::json!(["objects", "xattr"]));
    assert_eq!(j["regions"].as_array().unwrap().len(), 2);
    assert_eq!(j["objects"]["objects"], 4);
    assert_eq!(j["objects"]["extent_objects"], 1);
    assert_eq!(j["wal"]["pending_replayed_in_memory"], 0);
    let free = j["usage"]["free_blocks"].as_u64().unwrap();

    let out = vde(d, &["check", "disk.img"]).ok();
    assert!(out.contains("clean: no problems found"), "{out}");
    assert!(
        out.contains("objects: 3 packed and 1 in extents found"),
        "{out}"
    );
    let j: serde_json::Value =
        serde_json::from_str(&vde(d, &["check", "disk.img", "--json"]).ok()).unwrap();
    assert_eq!(j["clean"], true);
    assert_eq!(j["stats"]["free_blocks"].as_u64(), Some(free));
    assert_eq!(j["stats"]["extent_objects"], 1);

    let out = vde(d, &["rm", "disk.img", &h_small]).ok();
    assert!(out.contains(&format!("removed {h_small}")));
    vde(d, &["get", "disk.img", &h_small]).fails(2, "no such object");
    vde(d, &["rm", "disk.img", &h_small]).fails(2, "no such object");

    let out = vde(d, &["map", "disk.img", "-o", "map.png"]).ok();
    assert!(
        out.contains("wrote map.png: 2048 blocks, 1 cell = 1 block(s)"),
        "{out}"
    );
    let dec = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(d.join("map.png")).unwrap(),
    ));
    let reader = dec.read_info().unwrap();
    let info = reader.info();
    assert!(
        info.width >= 900 && info.height > 400,
        "{}x{}",
        info.width,
        info.height
    );
    vde(d, &["map", "disk.img", "-o", "map.svg"]).ok();
    let svg = std::fs::read_to_string(d.join("map.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("vde block map: disk.img") && svg.contains("xattr region"));

    // Reads never change the image.
    let before = std::fs::read(d.join("disk.img")).unwrap();
    vde(d, &["info", "disk.img"]).ok();
    vde(d, &["check", "disk.img"]).ok();
    vde(d, &["get", "disk.img", &h_big, "-o", "big.out"]).ok();
    vde(d, &["map", "disk.img", "-o", "map.png"]).ok();
    assert!(std::fs::read(d.join("disk.img")).unwrap() == before);

    // A reader that goes away (`vde get ... | head -c 10`) ends the output quietly.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vde"))
        .args(["get", "disk.img", &h_big])
        .current_dir(d)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.stderr.is_empty());

    let help = vde(d, &["--help"]).ok();
    for sub in [
        "format",
        "info",
        "check",
        "modules",
        "add-module",
        "put",
        "get",
        "rm",
        "map",
    ] {
        assert!(help.contains(sub), "{help}");
    }
}

#[test]
fn format_options_and_refusals() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    format_small(d, "a.img");
    vde(d, &["format", "a.img", "--size", "2MiB"])
        .fails(2, "a.img already exists (use --force to overwrite it)");
    let out = vde(
        d,
        &[
            "format",
            "a.img",
            "--size",
            "1MiB",
            "--block-size",
            "512",
            "--force",
            "--module",
            "snapshots",
            "--wal-blocks",
            "16",
        ],
    )
    .ok();
    assert!(
        out.contains("2048 blocks x 512 bytes") && out.contains("snapshots"),
        "{out}"
    );
    assert!(out.contains("write-ahead log (16 blocks)"), "{out}");
    assert_eq!(std::fs::metadata(d.join("a.img")).unwrap().len(), 1 << 20);

    vde(d, &["format", "b.img", "--size", "4KiB"]).fails(2, "too small");
    assert!(!d.join("b.img").exists(), "a failed format leaves no file");
    vde(
        d,
        &["format", "b.img", "--size", "1MiB", "--block-size", "1000"],
    )
    .fails(2, "not a power of two");
    vde(
        d,
        &[
            "format",
            "b.img",
            "--size",
            "1MiB",
            "--block-size",
            "128KiB",
        ],
    )
    .fails(2, "not a power of two");
    vde(d, &["format", "b.img", "--size", "12XB"]).fails(2, "unknown unit 'XB'");
    vde(
        d,
        &["format", "b.img", "--size", "1MiB", "--module", "nope"],
    )
    .fails(2, "unknown module 'nope'");
    vde(
        d,
        &[
            "format",
            "b.img",
            "--size",
            "1MiB",
            "--wal-blocks",
            "100000",
        ],
    )
    .fails(2, "--wal-blocks 100000 does not fit");
    assert!(!d.join("b.img").exists());
    vde(d, &["format", "b.img"]).fails(2, "--size");
    vde(d, &["format", "sub/dir/b.img", "--size", "1MiB"]).fails(2, "no such file or directory");
    std::fs::create_dir(d.join("adir")).unwrap();
    vde(d, &["format", "adir", "--size", "1MiB", "--force"]).fails(2, "adir");
}

#[test]
fn missing_file_and_not_an_image() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    for args in [
        vec!["info", "nope.img"],
        vec!["check", "nope.img"],
        vec!["get", "nope.img", "0000000000000000"],
        vec!["rm", "nope.img", "0000000000000000"],
        vec!["add-module", "nope.img", "xattr"],
        vec!["map", "nope.img", "-o", "m.png"],
    ] {
        vde(d, &args).fails(2, "nope.img: no such file or directory");
    }
    vde_in(d, &["put", "nope.img", "-"], Some(b"x"))
        .fails(2, "nope.img: no such file or directory");

    std::fs::write(d.join("text.img"), b"hello").unwrap();
    std::fs::write(d.join("empty.img"), b"").unwrap();
    std::fs::write(d.join("random.img"), bytes(3, 300_000)).unwrap();
    for img in ["text.img", "empty.img", "random.img"] {
        vde(d, &["info", img]).fails(2, &format!("{img}: not a vde image"));
        vde(d, &["check", img]).fails(2, "not a vde image");
        vde(d, &["get", img, "0000000000000000"]).fails(2, "not a vde image");
    }
    std::fs::create_dir(d.join("adir")).unwrap();
    vde(d, &["info", "adir"]).fails(2, "adir: is a directory");
}

#[test]
fn wrong_version_and_truncated() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    format_small(d, "v.img");
    patch_superblocks(&d.join("v.img"), 4096, |sb| {
        sb[8..12].copy_from_slice(&4u32.to_le_bytes())
    });
    vde(d, &["info", "v.img"]).fails(
        2,
        "unsupported format version 4 (this build reads version 3)",
    );
    vde(d, &["check", "v.img"]).fails(2, "unsupported format version 4");

    format_small(d, "t.img");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(d.join("t.img"))
        .unwrap();
    f.set_len(1_000_000).unwrap();
    drop(f);
    vde(d, &["info", "t.img"]).fails(
        2,
        "truncated image: the superblock describes 2097152 bytes but the file holds 1000000",
    );
    vde(d, &["get", "t.img", "0000000000000000"]).fails(2, "truncated image");
    let r = vde(d, &["check", "t.img"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.out().contains("problem: image: truncated image"),
        "{}",
        r.out()
    );
}

#[test]
fn corrupt_metadata_is_reported() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    format_small(d, "c.img");
    let h = vde_in(d, &["put", "c.img"], Some(b"payload"))
        .ok()
        .trim()
        .to_string();
    let img = d.join("c.img");
    // Region directory block: layout 512 blocks, WAL 8 -> bitmap 12, directory 13.
    let dir_block = 13usize;
    let mut data = std::fs::read(&img).unwrap();
    data[dir_block * 4096 + 40] ^= 0xFF;
    std::fs::write(&img, &data).unwrap();
    vde(d, &["info", "c.img"]).fails(2, "c.img: corrupt metadata: region directory");
    vde(d, &["get", "c.img", &h]).fails(2, "corrupt metadata: region directory");
    vde(d, &["put", "c.img", "-"]).fails(2, "corrupt metadata: region directory");
    let r = vde(d, &["check", "c.img"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let out = r.out();
    assert!(
        out.contains(
            "problem: mount: the volume does not mount: corrupt metadata: region directory"
        ),
        "{out}"
    );
    assert!(
        out.contains("problem: regions: region directory (block 13): bad checksum"),
        "{out}"
    );
    let j: serde_json::Value =
        serde_json::from_str(&vde(d, &["check", "c.img", "--json"]).out()).unwrap();
    assert_eq!(j["clean"], false);
    assert!(j["problems"].as_array().unwrap().len() >= 2);
    let r = vde(d, &["check", "c.img", "--repair"]);
    assert_eq!(r.code, 1, "nothing can rebuild a region directory");

    // An object's payload flipped: check finds it, get refuses it.
    format_small(d, "o.img");
    let big = bytes(1, 20_000);
    let h = vde_in(d, &["put", "o.img"], Some(&big))
        .ok()
        .trim()
        .to_string();
    let Handle::Extent { start, .. } = Handle::parse(&h).unwrap() else {
        panic!("extent expected")
    };
    let mut data = std::fs::read(d.join("o.img")).unwrap();
    data[start.0 as usize * 4096 + 5000] ^= 1;
    std::fs::write(d.join("o.img"), &data).unwrap();
    vde(d, &["get", "o.img", &h]).fails(2, &format!("object {h} is damaged: checksum mismatch"));
    let r = vde(d, &["check", "o.img"]);
    assert_eq!(r.code, 1);
    assert!(
        r.out().contains(&format!(
            "problem: objects: object {h}: payload checksum mismatch"
        )),
        "{}",
        r.out()
    );
}

#[test]
fn bad_handles() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    format_small(d, "h.img");
    for bad in ["xyz", "123", "000000000000000g", "00000000000000000"] {
        vde(d, &["get", "h.img", bad]).fails(
            2,
            &format!("bad handle '{bad}': expected 16 hexadecimal digits"),
        );
        vde(d, &["rm", "h.img", bad]).fails(2, "bad handle");
    }
    for forged in [
        "0000000000000000",
        "ffffffffffffffff",
        "8000000000000005",
        "0006000000000199",
    ] {
        vde(d, &["get", "h.img", forged]).fails(2, &format!("bad handle {forged}: no such object"));
    }
}

#[test]
fn image_full_and_missing_module() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    vde(d, &["format", "f.img", "--size", "1MiB"]).ok();
    std::fs::write(d.join("huge.bin"), bytes(2, 2 << 20)).unwrap();
    vde(d, &["put", "f.img", "huge.bin"])
        .fails(2, "f.img: image full: huge.bin holds more than the");
    // An endless input stops at the free space.
    vde(d, &["put", "f.img", "/dev/zero"])
        .fails(2, "f.img: image full: /dev/zero holds more than the");
    let chunk = bytes(5, 300_000);
    vde_in(d, &["put", "f.img"], Some(&chunk)).ok();
    vde_in(d, &["put", "f.img"], Some(&chunk)).ok();
    // Exactly the free bytes: the 48-byte extent header needs one block more.
    let j: serde_json::Value =
        serde_json::from_str(&vde(d, &["info", "f.img", "--json"]).ok()).unwrap();
    let free = j["usage"]["free_blocks"].as_u64().unwrap() as usize;
    vde_in(d, &["put", "f.img"], Some(&bytes(6, free * 4096)))
        .fails(2, "f.img: image full: not enough free space");
    vde(d, &["put", "f.img", "nofile.bin"]).fails(2, "nofile.bin: no such file or directory");
    vde(d, &["check", "f.img"]).ok();

    vde(d, &["format", "n.img", "--size", "1MiB", "--no-objects"]).ok();
    vde_in(d, &["put", "n.img"], Some(b"x")).fails(
        2,
        "the image has no 'objects' module (add it with 'vde add-module n.img objects')",
    );
    vde(d, &["add-module", "n.img", "objects"]).ok();
    let h = vde_in(d, &["put", "n.img"], Some(b"x")).ok();
    assert_eq!(vde(d, &["get", "n.img", h.trim()]).ok(), "x");
    vde(d, &["add-module", "n.img", "objects"])
        .fails(2, "n.img: module 'objects' is already present");
    vde(d, &["add-module", "n.img", "frobnicate"])
        .fails(2, "unknown module 'frobnicate' (known: objects,");
    // Fill the image, then ask for a module: no room for its region.
    let chunk = bytes(4, 40_000);
    let mut puts = 0;
    loop {
        let r = vde_in(d, &["put", "n.img"], Some(&chunk));
        if r.code != 0 {
            r.fails(2, "n.img: image full");
            break;
        }
        puts += 1;
        assert!(puts < 100);
    }
    let r = vde(d, &["add-module", "n.img", "snapshots"]);
    r.fails(
        2,
        "n.img: image full: no room for the regions of module 'snapshots'",
    );
    vde(d, &["check", "n.img"]).ok();
}

#[test]
fn with_no_wait_a_second_writer_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    format_small(d, "l.img");
    let held = open_retry(|| FileDevice::open(d.join("l.img")));
    vde_in(d, &["put", "l.img", "--no-wait"], Some(b"x"))
        .fails(2, "l.img: image is in use by another process");
    vde(d, &["--no-wait", "info", "l.img"]).fails(2, "image is in use by another process");
    vde(d, &["check", "l.img", "--repair", "--no-wait"])
        .fails(2, "image is in use by another process");
    vde(d, &["map", "l.img", "-o", "m.svg", "--no-wait"])
        .fails(2, "image is in use by another process");
    drop(held);
    // Readers share.
    let reader = open_retry(|| FileDevice::open_read_only(d.join("l.img")));
    vde(d, &["info", "l.img"]).ok();
    vde(d, &["check", "l.img"]).ok();
    vde_in(d, &["put", "l.img", "--no-wait"], Some(b"x"))
        .fails(2, "image is in use by another process");
    drop(reader);
    vde_in(d, &["put", "l.img", "--no-wait"], Some(b"x")).ok();
}

/// Starts `vde put IMAGE` in `dir` with `data` on its stdin (closed afterwards), its output
/// piped, without waiting for it.
fn spawn_put(dir: &Path, image: &str, data: &[u8]) -> std::process::Child {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_vde"))
        .args(["put", image])
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(data).unwrap();
    c
}

/// Without `--no-wait` a command waits for the lock, says so once, and goes on when the lock
/// is released.
#[test]
fn a_second_writer_waits_for_the_lock() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    format_small(d, "w.img");
    let held = open_retry(|| FileDevice::open(d.join("w.img")));
    let mut child = spawn_put(d, "w.img", b"waited");
    // It is still waiting after a while.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "vde put did not wait");
    drop(held);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(
        err.matches("waiting for the lock on w.img").count(),
        1,
        "{err}"
    );
    let h = String::from_utf8(o.stdout).unwrap().trim().to_string();
    assert!(is_handle(&h), "{h}");
    assert_eq!(vde(d, &["get", "w.img", &h]).ok(), "waited");
}

/// Eight `vde put` at once on one image: every one waits its turn, succeeds, and its object is
/// there afterwards.
#[test]
fn eight_parallel_puts_all_land() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    format_small(d, "p.img");
    let children: Vec<_> = (0..8u8)
        .map(|i| {
            let data = vec![b'a' + i; 100 + usize::from(i) * 700];
            (spawn_put(d, "p.img", &data), data)
        })
        .collect();
    let mut handles = Vec::new();
    for (c, data) in children {
        let o = c.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(0), "{err}");
        assert!(
            err.is_empty() || err.contains("waiting for the lock"),
            "{err}"
        );
        let h = String::from_utf8(o.stdout).unwrap().trim().to_string();
        assert!(is_handle(&h), "{h}");
        handles.push((h, data));
    }
    for (h, data) in &handles {
        let got = vde(d, &["get", "p.img", h]).ok();
        assert_eq!(got.as_bytes(), &data[..]);
    }
    vde(d, &["check", "p.img"]).ok();
}

#[test]
fn usage_errors_are_one_line() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    vde(d, &["frobnicate"]).fails(2, "unrecognized subcommand 'frobnicate'");
    vde(d, &["info"]).fails(2, "<IMAGE>");
    vde(d, &["info", "x.img", "--bogus"]).fails(2, "--bogus");
    vde(d, &["map", "x.img"]).fails(2, "--output");
    format_small(d, "m.img");
    vde(d, &["map", "m.img", "-o", "m.jpg"]).fails(2, "m.jpg: the map must be a .png or .svg file");
    vde(d, &["map", "m.img", "-o", "no/such/dir/m.png"]).fails(2, "no such file or directory");
    vde(
        d,
        &["get", "m.img", "0000000000000000", "-o", "no/such/dir/x"],
    )
    .fails(2, "bad handle");
    let v = vde(d, &["--version"]).ok();
    assert!(v.starts_with("vde "), "{v}");
}

/// Commits without a checkpoint, as a crash would leave the image: the log holds committed
/// transactions that recovery replays.
fn crash_after_puts(img: &Path, n: usize) -> Vec<(Handle, Vec<u8>)> {
    let dev = open_retry(|| FileDevice::open(img));
    let mut mem = OwnedBuffers::for_device(&dev);
    let mut vol = FileVolume::mount(dev, mem.bufs()).unwrap();
    let mut out = Vec::new();
    for i in 0..n {
        let data = bytes(i as u64, 100 + i * 700);
        out.push((vol.put(&data).unwrap(), data));
    }
    drop(vol.into_device());
    out
}

#[test]
fn check_and_repair() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    format_small(d, "r.img");
    let img = d.join("r.img");
    let objs = crash_after_puts(&img, 3);
    let before = std::fs::read(&img).unwrap();
    let r = vde(d, &["check", "r.img"]);
    assert_eq!(r.code, 1, "{}", r.out());
    let out = r.out();
    let at = out.find("problem: wal: ").expect("a pending transaction") + 14;
    let pending: u64 = out[at..].split(' ').next().unwrap().parse().unwrap();
    assert!(pending >= 1);
    assert!(
        out.contains("committed transaction(s) not yet applied in place"),
        "{out}"
    );
    assert!(
        r.out()
            .contains("can be fixed with 'vde check --repair r.img'"),
        "{}",
        r.out()
    );
    let info = vde(d, &["info", "r.img"]).ok();
    assert!(
        info.contains(&format!("{pending} committed transaction(s) were pending")),
        "{info}"
    );
    for (h, data) in &objs {
        assert_eq!(vde(d, &["get", "r.img", &h.to_string()]).stdout, *data);
    }
    assert!(
        std::fs::read(&img).unwrap() == before,
        "check, info and get leave the file alone"
    );
    let r = vde(d, &["check", "r.img", "--repair"]);
    assert_eq!(r.code, 0, "{}", r.out());
    let replayed = format!("repaired: replayed {pending} committed WAL transaction(s) in place");
    assert!(r.out().contains(&replayed), "{}", r.out());
    assert!(r.out().contains("clean: no problems found"));
    vde(d, &["check", "r.img"]).ok();

    // A damaged primary superblock: mounts from the mirror, check reports, repair rewrites.
    let mut data = std::fs::read(&img).unwrap();
    data[30] ^= 0x40;
    std::fs::write(&img, &data).unwrap();
    vde(d, &["info", "r.img"]).ok();
    let r = vde(d, &["check", "r.img", "--json"]);
    assert_eq!(r.code, 1);
    let j: serde_json::Value = serde_json::from_str(&r.out()).unwrap();
    assert_eq!(j["problems"][0]["area"], "superblock");
    assert_eq!(
        j["problems"][0]["message"],
        "primary superblock (block 0): bad checksum"
    );
    assert_eq!(j["problems"][0]["repairable"], true);
    let r = vde(d, &["check", "r.img", "--repair", "--json"]);
    assert_eq!(r.code, 0, "{}", r.out());
    let j: serde_json::Value = serde_json::from_str(&r.out()).unwrap();
    assert_eq!(j["clean"], true);
    assert!(
        j["repair"]["actions"]
            .to_string()
            .contains("rewrote the primary superblock"),
        "{j}"
    );
    vde(d, &["check", "r.img"]).ok();

    // A damaged WAL header.
    let mut data = std::fs::read(&img).unwrap();
    data[3 * 4096 + 20] ^= 0x01;
    std::fs::write(&img, &data).unwrap();
    let r = vde(d, &["check", "r.img"]);
    assert_eq!(r.code, 1);
    assert!(
        r.out()
            .contains("problem: wal: WAL header B (block 3): bad checksum (repairable)"),
        "{}",
        r.out()
    );
    let r = vde(d, &["check", "r.img", "--repair"]);
    assert_eq!(r.code, 0, "{}", r.out());
    assert!(
        r.out()
            .contains("repaired: rewrote the damaged WAL header copy"),
        "{}",
        r.out()
    );
    vde(d, &["check", "r.img"]).ok();

    // A clean image: nothing to repair.
    let r = vde(d, &["check", "r.img", "--repair"]);
    assert_eq!(r.code, 0);
    assert!(r.out().contains("nothing to repair"), "{}", r.out());
    for (h, data) in &objs {
        assert_eq!(vde(d, &["get", "r.img", &h.to_string()]).stdout, *data);
    }
}

#[test]
fn a_bitmap_that_disagrees_is_caught() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    format_small(d, "b.img");
    let big = bytes(9, 30_000);
    let h = vde_in(d, &["put", "b.img"], Some(&big))
        .ok()
        .trim()
        .to_string();
    let Handle::Extent { start, .. } = Handle::parse(&h).unwrap() else {
        panic!()
    };
    // Clear the object's bits and reseal the bitmap block (block 12): a consistent-looking
    // bitmap that no longer owns the object.
    let img = d.join("b.img");
    let mut data = std::fs::read(&img).unwrap();
    let bm = &mut data[12 * 4096..13 * 4096];
    for b in start.0..start.0 + 3 {
        bm[(b / 8) as usize] &= !(1 << (b % 8));
    }
    let sum = xxhash_rust::xxh64::xxh64(&bm[..4096 - 8], 0);
    bm[4096 - 8..].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(&img, &data).unwrap();
    let r = vde(d, &["check", "b.img"]);
    assert_eq!(r.code, 1, "{}", r.out());
    // The extent map still names the object: it is found, with the blocks it lost.
    assert!(
        r.out().contains(&format!(
            "objects: object {h}: 3 of its 8 block(s) are free or used by something else"
        )),
        "{}",
        r.out()
    );
    vde(d, &["get", "b.img", &h]).fails(2, "bad handle");
    let dev = open_retry(|| FileDevice::open_read_only(&img));
    assert_eq!(dev.block_count(), 512);
}

/// The extent crash bug's image, repaired from the command line: an extent put committed (bitmap
/// and counters) without its data blocks. `check` exits 1 naming the counters and the leaked
/// blocks, `check --repair` fixes both, and `check` is clean afterwards.
#[test]
fn repair_an_extent_committed_without_its_data() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    format_small(d, "x.img");
    std::fs::write(d.join("obj"), bytes(3, 20_000)).unwrap();
    let h = vde(d, &["put", "x.img", "obj"]).ok();
    let h = Handle::parse(h.trim()).expect("a handle");
    let Handle::Extent { start, .. } = h else {
        panic!("not an extent: {h}")
    };
    // Drop the data blocks: 20,000 bytes + the 48-byte header in 4 KiB blocks.
    let mut img = std::fs::read(d.join("x.img")).unwrap();
    for b in start.0..start.0 + 5 {
        img[b as usize * 4096..(b as usize + 1) * 4096].fill(0);
    }
    std::fs::write(d.join("x.img"), img).unwrap();
    let r = vde(d, &["check", "x.img"]);
    assert_eq!(r.code, 1, "{}", r.out());
    assert!(
        r.out()
            .contains("object counters say 1 extent objects, found 0"),
        "{}",
        r.out()
    );
    assert!(r.out().contains("leaked"), "{}", r.out());
    let out = vde(d, &["check", "x.img", "--repair"]).ok();
    assert!(out.contains("recomputed the object counters"), "{out}");
    assert!(out.contains("freed leaked blocks"), "{out}");
    vde(d, &["check", "x.img"]).ok();
    vde(d, &["get", "x.img", &h.to_string()]).fails(2, "bad handle");
}

/// Named objects through the tool: `put --name` (adding the 'names' module on first use),
/// `ls` (table, prefix, JSON), `get` and `rm` by name or handle, a replace, and the errors for a
/// missing name, a name too long and an ambiguous-looking target.
#[test]
fn named_objects() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    format_small(d, "n.img");
    std::fs::write(d.join("a.txt"), b"alpha").unwrap();
    std::fs::write(d.join("big.bin"), bytes(3, 20_000)).unwrap();
    let r = vde(d, &["put", "n.img", "a.txt", "--name", "config/wifi"]);
    assert!(
        r.stderr.contains("n.img: added the 'names' module"),
        "{}",
        r.stderr
    );
    let h_wifi = r.ok().trim().to_string();
    assert!(is_handle(&h_wifi), "{h_wifi}");
    let h_big = vde(d, &["put", "n.img", "big.bin", "--name", "firmware/image"])
        .ok()
        .trim()
        .to_string();
    let h_anon = vde_in(d, &["put", "n.img"], Some(b"no name"))
        .ok()
        .trim()
        .to_string();
    assert_eq!(vde(d, &["get", "n.img", "config/wifi"]).ok(), "alpha");
    assert_eq!(vde(d, &["get", "n.img", &h_wifi]).ok(), "alpha");
    assert_eq!(vde(d, &["get", "n.img", &h_anon]).ok(), "no name");

    let ls = vde(d, &["ls", "n.img"]).ok();
    let lines: Vec<&str> = ls.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("HANDLE"),
        "{ls}"
    );
    assert!(
        lines[1].starts_with("config/wifi") && lines[1].contains(&h_wifi),
        "{ls}"
    );
    assert!(lines[1].contains("5  packed"), "{ls}");
    assert!(
        lines[2].starts_with("firmware/image") && lines[2].contains("20000  extent"),
        "{ls}"
    );
    assert!(
        lines[3].starts_with("-") && lines[3].contains(&h_anon),
        "{ls}"
    );
    assert_eq!(lines.len(), 4, "{ls}");
    let only = vde(d, &["ls", "n.img", "firm"]).ok();
    assert_eq!(only.lines().count(), 2, "{only}");
    assert!(only.contains(&h_big), "{only}");
    let j: serde_json::Value =
        serde_json::from_str(&vde(d, &["ls", "n.img", "--json"]).ok()).unwrap();
    assert_eq!(j[0]["name"], "config/wifi");
    assert_eq!(j[0]["handle"], h_wifi.as_str());
    assert_eq!(j[0]["size"], 5);
    assert_eq!(j[0]["kind"], "packed");
    assert_eq!(j[2]["name"], serde_json::Value::Null);

    // A replace: one object for the name, the old handle gone.
    std::fs::write(d.join("b.txt"), b"bravo!").unwrap();
    let h_new = vde(d, &["put", "n.img", "b.txt", "--name", "config/wifi"])
        .ok()
        .trim()
        .to_string();
    assert_ne!(h_new, h_wifi);
    assert_eq!(vde(d, &["get", "n.img", "config/wifi"]).ok(), "bravo!");
    vde(d, &["get", "n.img", &h_wifi]).fails(2, "no such object");
    assert_eq!(vde(d, &["ls", "n.img"]).ok().lines().count(), 4);

    // Errors.
    vde(d, &["get", "n.img", "config/nope"]).fails(
        2,
        "n.img: no object is named 'config/nope' (and it is not a handle)",
    );
    let long = "k".repeat(65);
    vde(d, &["put", "n.img", "a.txt", "--name", &long]).fails(2, "bad name 'kkkk");
    vde(d, &["get", "n.img", &long]).fails(
        2,
        "is neither a handle nor a name (a name is 1 to 64 bytes)",
    );

    // rm by name removes the object and the name; rm by handle of a named object too.
    assert!(vde(d, &["rm", "n.img", "config/wifi"])
        .ok()
        .contains("(config/wifi)"));
    vde(d, &["rm", "n.img", &h_big]).ok();
    let ls = vde(d, &["ls", "n.img"]).ok();
    assert_eq!(ls.lines().count(), 2, "{ls}");
    assert!(ls.contains(&h_anon), "{ls}");
    vde(d, &["check", "n.img"]).ok();
}
