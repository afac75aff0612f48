//! Images written by the library and read by the CLI, and the other way round, hold identical
//! content.

mod common;

use common::{bytes, vde, vde_in};
use vde_nostd::{FormatOptions, Handle};
use vde_std::{FileDevice, FileVolume, OverlayDevice, OwnedBuffers};

/// Sizes that cover every slot class, the packing limit (block/2 - 8) and multi-block extents.
const SIZES: [usize; 12] = [0, 1, 56, 57, 120, 250, 504, 1016, 2040, 2041, 4096, 70_000];

#[test]
fn library_to_cli_and_back() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();

    // The library writes.
    let lib_img = d.join("lib.img");
    let dev = FileDevice::create(&lib_img, 4 << 20, 4096, false).unwrap();
    let mut mem = OwnedBuffers::for_device(&dev);
    let opts = FormatOptions {
        volume_id: vde_std::new_volume_id(&lib_img),
        now: vde_std::now(),
        ..FormatOptions::default()
    };
    let mut vol = FileVolume::format(dev, &opts, mem.bufs()).unwrap();
    let mut stored = Vec::new();
    for (i, len) in SIZES.into_iter().enumerate() {
        let data = bytes(i as u64, len);
        stored.push((vol.put(&data).unwrap(), data));
    }
    vol.unmount().unwrap();
    vde(d, &["check", "lib.img"]).ok();

    // The CLI reads every object back and stores them all in a fresh image.
    vde(d, &["format", "cli.img", "--size", "4MiB"]).ok();
    let mut moved = Vec::new();
    for (i, (h, data)) in stored.iter().enumerate() {
        let out = format!("obj{i}");
        vde(d, &["get", "lib.img", &h.to_string(), "-o", &out]).ok();
        assert_eq!(
            &std::fs::read(d.join(&out)).unwrap(),
            data,
            "object {i} via the CLI"
        );
        assert_eq!(&vde(d, &["get", "lib.img", &h.to_string()]).stdout, data);
        let h2 = vde(d, &["put", "cli.img", &out]).ok();
        moved.push((Handle::parse(h2.trim()).unwrap(), data.clone()));
    }
    let h = vde_in(d, &["put", "cli.img"], Some(b"written by the CLI")).ok();
    moved.push((
        Handle::parse(h.trim()).unwrap(),
        b"written by the CLI".to_vec(),
    ));
    vde(d, &["check", "cli.img"]).ok();

    // The library reads the CLI's image, read-only first, then for writing.
    let dev = OverlayDevice::open(d.join("cli.img")).unwrap();
    let mut mem = OwnedBuffers::for_device(&dev);
    let mut ro = vde_nostd::Volume::<_, { vde_std::TX_BLOCKS }>::mount(dev, mem.bufs()).unwrap();
    for (h, data) in &moved {
        let mut buf = vec![0u8; data.len()];
        let n = ro.get(*h, &mut buf).unwrap();
        assert_eq!(&buf[..n], &data[..]);
    }
    drop(ro);
    let dev = FileDevice::open(d.join("cli.img")).unwrap();
    let mut mem = OwnedBuffers::for_device(&dev);
    let mut vol = FileVolume::mount(dev, mem.bufs()).unwrap();
    let stats = vol.object_stats().unwrap();
    assert_eq!(stats.counters.objects, moved.len() as u64);
    for (h, data) in &moved {
        assert_eq!(vol.object_len(*h).unwrap(), data.len() as u64);
        let mut buf = vec![0u8; data.len()];
        assert_eq!(vol.get(*h, &mut buf).unwrap(), data.len());
        assert_eq!(&buf, data);
    }
    // ... deletes half of them; the CLI agrees on what is left.
    for (h, _) in moved.iter().step_by(2) {
        vol.delete(*h).unwrap();
    }
    vol.unmount().unwrap();
    for (i, (h, data)) in moved.iter().enumerate() {
        let r = vde(d, &["get", "cli.img", &h.to_string()]);
        if i % 2 == 0 {
            r.fails(2, "no such object");
        } else {
            assert_eq!(&r.stdout, data);
        }
    }
    let out = vde(d, &["check", "cli.img"]).ok();
    assert!(out.contains("clean"), "{out}");
}
