//! Damaged images never make the tool panic: truncated, zeroed and bit-flipped at many offsets,
//! `info`, `check` and `get` answer with an exit status of 0, 1 or 2 and, on error, one line —
//! never 101 (a Rust panic). A `get` that succeeds returns exactly the bytes stored.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use common::{bytes, vde};
use vde_nostd::{modules, FormatOptions, Handle, ModuleSet};
use vde_std::{FileDevice, FileVolume, OwnedBuffers};

const BS: usize = 512;
const SIZE: u64 = 128 << 10;

struct Base {
    name: &'static str,
    image: Vec<u8>,
    objects: Vec<(Handle, Vec<u8>)>,
}

/// A small image with packed and extent objects and two modules; with `crash`, the last puts
/// stay in the log (committed, not checkpointed), so recovery runs over the damage too.
fn base(dir: &Path, name: &'static str, crash: bool) -> Base {
    let path = dir.join(name);
    let dev = FileDevice::create(&path, SIZE, BS, false).unwrap();
    let mut mem = OwnedBuffers::for_device(&dev);
    let opts = FormatOptions {
        wal_blocks: None,
        volume_id: [7; 16],
        now: 1_700_000_000,
        modules: ModuleSet::OBJECTS,
    };
    let mut vol = FileVolume::format(dev, &opts, mem.bufs()).unwrap();
    vol.add_module_regions(modules::by_name("xattr").unwrap(), 1_700_000_001)
        .unwrap();
    let mut objects = Vec::new();
    for (i, len) in [10usize, 60, 120, 200, 1500].into_iter().enumerate() {
        let data = bytes(i as u64 + 1, len);
        objects.push((vol.put(&data).unwrap(), data));
    }
    if crash {
        vol.checkpoint().unwrap();
        let data = bytes(99, 90);
        objects.push((vol.put(&data).unwrap(), data));
        drop(vol.into_device());
    } else {
        vol.unmount().unwrap();
    }
    Base {
        name,
        image: std::fs::read(&path).unwrap(),
        objects,
    }
}

fn mutations(b: &Base) -> Vec<(String, Vec<u8>)> {
    let img = &b.image;
    let len = img.len();
    let mut out = Vec::new();
    for cut in [
        0,
        1,
        100,
        511,
        512,
        513,
        1024,
        2047,
        2048,
        4096,
        len / 2,
        len - BS,
        len - 1,
    ] {
        out.push((format!("truncate {cut}"), img[..cut].to_vec()));
    }
    // Metadata: superblocks, WAL headers and log, bitmap, directory, pointer table (blocks
    // 0..15), both module regions' first blocks (15.. and 31..), and the first data blocks.
    let mut blocks: Vec<usize> = (0..24).collect();
    blocks.extend([31, 32, 47, 48, 49, 50, 51, 52]);
    for (h, _) in &b.objects {
        let blk = match h {
            Handle::Packed { block, .. } => block.0,
            Handle::Extent { start, .. } => start.0,
        } as usize;
        if !blocks.contains(&blk) {
            blocks.push(blk);
        }
    }
    for &blk in &blocks {
        if (blk + 1) * BS > len {
            continue;
        }
        let mut z = img.clone();
        z[blk * BS..(blk + 1) * BS].fill(0);
        out.push((format!("zero block {blk}"), z));
        for off in [0usize, 9, 13, 17, 26, 45, 104, 140, 300, 505, 511] {
            let mut f = img.clone();
            f[blk * BS + off] ^= 1 << (off % 8);
            out.push((format!("flip block {blk} byte {off}"), f));
        }
    }
    // Random multi-byte garbage over the first 16 blocks.
    for seed in 0..6u64 {
        let mut g = img.clone();
        let noise = bytes(seed + 1000, 64);
        let at = (seed as usize * 1337) % (16 * BS);
        g[at..at + 64].copy_from_slice(&noise);
        out.push((format!("garbage at {at}"), g));
    }
    out
}

fn one_line_error(stderr: &str) -> bool {
    let lines: Vec<&str> = stderr.lines().collect();
    lines.len() == 1 && lines[0].starts_with("vde: error: ")
}

#[test]
fn damaged_images_never_panic() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let bases = [base(d, "clean.img", false), base(d, "crashed.img", true)];
    let mut cases = Vec::new();
    for b in &bases {
        for (what, img) in mutations(b) {
            cases.push((b, what, img));
        }
    }
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::<String>::new());
    let counts = Mutex::new([0usize; 3]);
    std::thread::scope(|s| {
        for w in 0..4 {
            let (cases, next, failures, counts) = (&cases, &next, &failures, &counts);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((b, what, img)) = cases.get(i) else {
                    break;
                };
                let name = format!("w{w}-{i}.img");
                std::fs::write(d.join(&name), img).unwrap();
                let fail = |m: String| {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{} / {what}: {m}", b.name))
                };
                let r = vde(d, &["info", &name]);
                if r.code != 0 && (r.code != 2 || !one_line_error(&r.stderr)) {
                    fail(format!("info exit {} stderr {:?}", r.code, r.stderr));
                }
                let r = vde(d, &["check", &name]);
                if !matches!(r.code, 0 | 1) && (r.code != 2 || !one_line_error(&r.stderr)) {
                    fail(format!("check exit {} stderr {:?}", r.code, r.stderr));
                }
                if let Some(c) = counts.lock().unwrap().get_mut(r.code.clamp(0, 2) as usize) {
                    *c += 1;
                }
                if i % 4 == 0 {
                    let r = vde(d, &["map", &name, "-o", &format!("{name}.png")]);
                    if r.code != 0 && (r.code != 2 || !one_line_error(&r.stderr)) {
                        fail(format!("map exit {} stderr {:?}", r.code, r.stderr));
                    }
                    let _ = std::fs::remove_file(d.join(format!("{name}.png")));
                }
                // The packed object of the crashed base lives only in the log.
                for (h, data) in [b.objects.first(), b.objects.last()].into_iter().flatten() {
                    let r = vde(d, &["get", &name, &h.to_string()]);
                    match r.code {
                        0 if r.stdout == *data => {}
                        0 => fail(format!("get {h} returned different bytes")),
                        2 if one_line_error(&r.stderr) => {}
                        c => fail(format!("get {h} exit {c} stderr {:?}", r.stderr)),
                    }
                }
                std::fs::remove_file(d.join(&name)).unwrap();
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    let [clean, problems, errors] = counts.into_inner().unwrap();
    // The checker sees most of the damage (some lands in unused bytes).
    assert!(
        problems + errors > clean,
        "check: {clean} clean, {problems} with problems, {errors} errors"
    );
    eprintln!(
        "{} damaged images: check clean {clean}, problems {problems}, errors {errors}",
        cases.len()
    );
}
