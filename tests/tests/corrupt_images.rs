//! Corrupt images: flipped bits in each superblock copy, the WAL headers, WAL records, the
//! bitmap, the region directory and pointer table, the slot index, and object payloads give
//! errors or a fallback to the mirror, never a panic or wrong data.

use vde_nostd::device::RamDevice;
use vde_nostd::{BlockNo, Error, Handle, MountError, Structure, Volume};
use vde_tests::{fresh_image, Mem};

const BS: usize = 512;

fn with_objects() -> (Vec<u8>, Vec<(Handle, Vec<u8>)>) {
    let mut img = fresh_image(BS, 1024, 16);
    let mut mem = Mem::new(BS, 16, 256);
    let mut vol =
        Volume::<_, 16>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs()).unwrap();
    let mut objs = Vec::new();
    for (i, n) in [20usize, 100, 200, 2000].iter().enumerate() {
        let d: Vec<u8> = (0..*n).map(|x| (x + i) as u8).collect();
        let h = vol.put(&d).unwrap();
        objs.push((h, d));
    }
    let _ = vol.into_device(); // leave committed transactions in the log
    (img, objs)
}

fn try_all(img: &mut [u8], objs: &[(Handle, Vec<u8>)]) -> Result<(), String> {
    let mut mem = Mem::new(BS, 16, 256);
    let mut vol = match Volume::<_, 16>::mount(RamDevice::new(img, BS).unwrap(), mem.bufs()) {
        Ok(v) => v,
        Err(e) => return Err(format!("{e:?}")),
    };
    let mut buf = vec![0u8; 4096];
    for (h, d) in objs {
        if let Ok(n) = vol.get(*h, &mut buf) {
            assert_eq!(&buf[..n], &d[..], "wrong bytes returned as right")
        }
    }
    let _ = vol.verify();
    Ok(())
}

#[test]
fn every_bit_flip_in_metadata_is_an_error_or_fallback_never_a_panic() {
    let (img, objs) = with_objects();
    let l = {
        let mut c = img.clone();
        let mut mem = Mem::new(BS, 16, 256);
        let v = Volume::<_, 16>::mount(RamDevice::new(&mut c, BS).unwrap(), mem.bufs()).unwrap();
        *v.layout()
    };
    let meta_blocks = l.data_start as usize + 2; // include the slot index head
    let mut errors = 0;
    let mut ok = 0;
    for block in 0..meta_blocks {
        for byte in (0..BS).step_by(7) {
            let mut c = img.clone();
            c[block * BS + byte] ^= 1 << (byte % 8);
            match try_all(&mut c, &objs) {
                Ok(()) => ok += 1,
                Err(_) => errors += 1,
            }
        }
    }
    println!(
        "metadata flips: {ok} mounted (fallback or unused bytes), {errors} refused with an error"
    );
    assert!(errors > 0 && ok > 0);
}

#[test]
fn superblock_flips_fall_back_to_the_mirror() {
    let (img, objs) = with_objects();
    for byte in 0..112 {
        let mut c = img.clone();
        c[byte] ^= 0x01;
        try_all(&mut c, &objs).unwrap_or_else(|e| panic!("primary flip at {byte}: {e}"));
        let mut c = img.clone();
        c[BS + byte] ^= 0x01;
        try_all(&mut c, &objs).unwrap_or_else(|e| panic!("mirror flip at {byte}: {e}"));
    }
}

#[test]
fn wal_header_flip_falls_back_to_the_other_copy() {
    let (img, objs) = with_objects();
    for blk in [2usize, 3] {
        let mut c = img.clone();
        c[blk * BS + 30] ^= 0x10;
        try_all(&mut c, &objs).unwrap_or_else(|e| panic!("wal header {blk}: {e}"));
    }
    let mut c = img.clone();
    c[2 * BS + 30] ^= 0x10;
    c[3 * BS + 30] ^= 0x10;
    let mut mem = Mem::new(BS, 16, 256);
    let r = Volume::<_, 16>::mount(RamDevice::new(&mut c, BS).unwrap(), mem.bufs());
    assert!(matches!(r, Err(MountError::Corrupt(Structure::WalHeader))));
}

#[test]
fn a_flipped_wal_record_is_never_applied() {
    // Commit one transaction with a known block, crash before checkpoint, flip a byte of its
    // record in the log: recovery must discard it (the block keeps its old content).
    let mut img = fresh_image(BS, 1024, 16);
    let mut mem = Mem::new(BS, 16, 256);
    let mut vol =
        Volume::<_, 16>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs()).unwrap();
    let target = BlockNo(vol.layout().data_start + 200);
    let mut tx = vol.begin();
    tx.write(target, &[0xAB; BS]).unwrap();
    tx.commit().unwrap();
    let wal_start = vol.layout().wal_start as usize;
    let _ = vol.into_device();
    // Undo the in-place write so only replay could restore it.
    img[target.0 as usize * BS..(target.0 as usize + 1) * BS].fill(0);
    for off in [40usize, 300, 520] {
        let mut c = img.clone();
        c[wal_start * BS + off] ^= 0x04;
        let mut mem = Mem::new(BS, 16, 256);
        let mut vol =
            Volume::<_, 16>::mount(RamDevice::new(&mut c, BS).unwrap(), mem.bufs()).unwrap();
        assert_eq!(vol.recovery_report().replayed, 0);
        let mut buf = [0u8; BS];
        vol.read_block(target, &mut buf).unwrap();
        assert_eq!(buf, [0u8; BS], "flip at {off} applied a bad record");
    }
    let mut c = img.clone();
    let mut mem = Mem::new(BS, 16, 256);
    let mut vol = Volume::<_, 16>::mount(RamDevice::new(&mut c, BS).unwrap(), mem.bufs()).unwrap();
    assert_eq!(vol.recovery_report().replayed, 1);
    let mut buf = [0u8; BS];
    vol.read_block(target, &mut buf).unwrap();
    assert_eq!(buf, [0xAB; BS]);
}

#[test]
fn bitmap_flip_is_a_bitmap_error() {
    let (mut img, _) = with_objects();
    let mut mem = Mem::new(BS, 16, 256);
    let l = *Volume::<_, 16>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs())
        .unwrap()
        .layout();
    img[l.bitmap_start as usize * BS + 100] ^= 0x80;
    let r = Volume::<_, 16>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs());
    assert!(
        matches!(r, Err(MountError::Corrupt(Structure::Bitmap))),
        "{:?}",
        r.err()
    );
}

#[test]
fn payload_flips_are_checksum_errors_naming_the_handle() {
    let (mut img, objs) = with_objects();
    let mut mem = Mem::new(BS, 16, 256);
    let _ = Volume::<_, 16>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs())
        .unwrap()
        .unmount()
        .unwrap();
    for (h, d) in &objs {
        let (block, off) = match *h {
            Handle::Packed { block, unit, .. } => {
                (block.0 as usize, unit as usize * 64 + 8 + d.len() / 2)
            }
            Handle::Extent { start, .. } => (start.0 as usize + 1, 10),
        };
        let mut c = img.clone();
        c[block * BS + off] ^= 0x20;
        let mut mem = Mem::new(BS, 16, 256);
        let mut vol =
            Volume::<_, 16>::mount(RamDevice::new(&mut c, BS).unwrap(), mem.bufs()).unwrap();
        let mut buf = vec![0u8; 4096];
        let r = vol.get(*h, &mut buf);
        assert_eq!(r, Err(Error::ObjectChecksum { handle: h.raw() }), "{h}");
    }
}

#[test]
fn forged_and_stale_handles_are_rejected() {
    let (mut img, objs) = with_objects();
    let mut mem = Mem::new(BS, 16, 256);
    let mut vol =
        Volume::<_, 16>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs()).unwrap();
    let mut buf = vec![0u8; 4096];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..5000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let h = Handle::from_raw(x);
        if objs.iter().any(|(o, _)| *o == h) {
            continue;
        }
        assert!(matches!(
            vol.get(h, &mut buf),
            Err(Error::BadHandle { .. }) | Err(Error::ObjectChecksum { .. })
        ));
        assert!(vol.delete(h).is_err());
    }
    // Near misses of real handles: other tag, other unit, other class.
    for (h, _) in &objs {
        for bit in 0..64 {
            let f = Handle::from_raw(h.raw() ^ (1 << bit));
            assert!(vol.get(f, &mut buf).is_err(), "{f} accepted");
        }
    }
    let (h, _) = &objs[0];
    vol.delete(*h).unwrap();
    assert_eq!(
        vol.get(*h, &mut buf),
        Err(Error::BadHandle { handle: h.raw() })
    );
    assert_eq!(vol.delete(*h), Err(Error::BadHandle { handle: h.raw() }));
}
