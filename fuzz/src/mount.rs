//! `mount`: arbitrary bytes as a whole image.
//!
//! Input: `flags u8 | block count u16 | image bytes`. Flags bits 0-1 pick the block size (512,
//! 1024, 2048, 4096); bits 2-6 re-seal checksums before mounting (see
//! [`reseal_image`](crate::common::reseal_image)) so mutations get past them; bit 7 gives the
//! volume tiny buffers. The image is `block count` blocks (at most 1 MiB), filled from the input
//! and zero past it.
//!
//! Checks: no panic, no endless loop, no write outside the image, no read past the end once
//! mounted; if the image mounted and [`Volume::verify`] accepted it, every put can be read back
//! byte for byte, a deleted object is gone, a raw transaction reads back, verify still accepts
//! the volume after the operations, and it unmounts and mounts again.

use crate::common::{payload, reseal_image, Cursor, ImageDevice, Mem, MAX_IMAGE};
use vde_nostd::format::object::{ExtentHeader, SlotHeader};
use vde_nostd::modules::CATALOGUE;
use vde_nostd::{BlockNo, Error, Handle, Volume};

type Vol<'b> = Volume<'b, ImageDevice, 8>;

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut c = Cursor::new(data);
    let flags = c.u8().unwrap_or(0);
    let bs = [512usize, 1024, 2048, 4096][usize::from(flags & 3)];
    let nblocks = usize::from(c.u16().unwrap_or(0)).min(MAX_IMAGE / bs);
    let mut img = vec![0u8; nblocks * bs];
    let rest = c.rest();
    let n = rest.len().min(img.len());
    img[..n].copy_from_slice(&rest[..n]);
    reseal_image(&mut img, bs, flags);
    let mut mem = if flags & 0x80 != 0 {
        Mem::new(bs, 4, 1)
    } else {
        Mem::new(bs, 8, 64)
    };
    let vol = match Vol::mount(ImageDevice::new(img, bs), mem.bufs()) {
        Ok(v) => v,
        Err(_) => return,
    };
    exercise(vol, bs, flags & 0x80 != 0);
}

fn exercise(mut vol: Vol<'_>, bs: usize, small: bool) {
    assert_eq!(
        vol.device().oob_reads,
        0,
        "mounted volume read past the end"
    );
    let verified = vol.verify().is_ok();
    crate::trace!(
        "mounted, verified: {verified}, stats {:?}",
        vol.object_stats()
    );
    let _ = vol.usage();
    let _ = vol.modules();
    let _ = vol.recovery_report();
    let _ = vol.wal_stats();
    let _ = vol.for_each_region(|_| {});
    for bit in 0..64u8 {
        let _ = vol.module_regions(bit);
    }
    let _ = vol.object_stats();
    let _ = vol.for_each_shared_block(|_, _| {});
    let _ = vol.first_fit(1);
    let _ = vol.free_runs(1, |_| true);
    let _ = vol.count_free();

    probe_existing_objects(&mut vol, bs);

    // Objects: put, read back, delete, gone.
    let mut buf = vec![0u8; 4 * bs];
    let mut kept = Vec::new();
    for (i, len) in [10usize, bs / 2 - 8, bs / 2, 2 * bs + 5]
        .into_iter()
        .enumerate()
    {
        let d = payload(i as u64 + 1, len);
        let r = vol.put(&d);
        crate::trace!("put {len} -> {r:?} stats {:?}", vol.object_stats());
        match r {
            Ok(h) => {
                match vol.get(h, &mut buf) {
                    Ok(n) => assert_eq!(&buf[..n], &d[..], "put then get returned other bytes"),
                    Err(e) => assert!(!verified, "put then get failed on a verified image: {e:?}"),
                }
                kept.push((h, d));
            }
            Err(e) => {
                if verified && !small {
                    assert!(!is_corruption(&e), "put on a verified image hit {e:?}");
                }
            }
        }
    }
    if let Some((h, _)) = kept.first().cloned() {
        let r = vol.delete(h);
        crate::trace!(
            "delete {h} -> {r:?}, verify {:?} stats {:?}",
            vol.verify(),
            vol.object_stats()
        );
        if r.is_ok() {
            assert!(
                vol.get(h, &mut buf).is_err(),
                "deleted object still readable"
            );
            kept.remove(0);
        }
    }
    for (h, d) in &kept {
        if let Ok(n) = vol.get(*h, &mut buf) {
            assert_eq!(&buf[..n], &d[..], "object returned other bytes");
        }
    }

    // A raw transaction.
    let raw = {
        let mut tx = vol.begin();
        match tx.allocate(2) {
            Ok(e) => {
                let mut ok = true;
                for k in 0..2 {
                    ok &= tx
                        .write(BlockNo(e.start.0 + k), &payload(100 + k, bs))
                        .is_ok();
                }
                (ok && tx.commit().is_ok()).then_some(e)
            }
            Err(_) => None,
        }
    };
    if let Some(e) = raw {
        let mut b = vec![0u8; bs];
        for k in 0..2 {
            if vol.read_block(BlockNo(e.start.0 + k), &mut b).is_ok() {
                assert_eq!(b, payload(100 + k, bs), "raw transaction did not read back");
            }
        }
    }

    // Online module addition.
    for m in CATALOGUE.iter().skip(1).take(3) {
        let _ = vol.can_add_module(m);
        let r = vol.add_module_regions(m, 7);
        crate::trace!(
            "add {} -> {:?}, verify {:?}",
            m.name,
            r.map(|_| ()),
            vol.verify()
        );
    }
    for (h, d) in &kept {
        if let Ok(n) = vol.get(*h, &mut buf) {
            assert_eq!(
                &buf[..n],
                &d[..],
                "object returned other bytes after add-module"
            );
        }
    }

    if verified {
        if let Err(e) = vol.verify() {
            panic!("verify accepted the image, then refused it after operations: {e:?}");
        }
    }
    assert_eq!(
        vol.device().oob_reads,
        0,
        "mounted volume read past the end"
    );
    let dev = match vol.unmount() {
        Ok(d) => d,
        Err(e) => {
            assert!(!verified, "unmount of a verified volume failed: {e:?}");
            return;
        }
    };
    let mut mem = if small {
        Mem::new(bs, 4, 1)
    } else {
        Mem::new(bs, 8, 64)
    };
    match Vol::mount(dev, mem.bufs()) {
        Ok(mut v) => {
            if verified {
                if let Err(e) = v.verify() {
                    panic!("verified volume fails verify after remount: {e:?}");
                }
                for (h, d) in &kept {
                    match v.get(*h, &mut buf) {
                        Ok(n) => assert_eq!(&buf[..n], &d[..], "object changed over remount"),
                        Err(e) => panic!("object lost over remount: {e:?}"),
                    }
                }
            }
        }
        Err(e) => assert!(!verified, "verified volume does not mount again: {e:?}"),
    }
}

fn is_corruption(e: &Error<crate::common::ImageError>) -> bool {
    matches!(
        e,
        Error::Corrupt(_) | Error::ObjectChecksum { .. } | Error::Device(_)
    )
}

/// Tries handles built from what is on the image: every extent header's handle and, for every
/// shared block, a handle per unit and class with the tag found in the slot.
fn probe_existing_objects(vol: &mut Vol<'_>, bs: usize) {
    let mut buf = vec![0u8; 4 * bs];
    let n = vol.layout().block_count.min(512);
    let start = vol.layout().data_start;
    let mut blk = vec![0u8; bs];
    let mut handles = Vec::new();
    for b in start..n {
        if vol.read_block(BlockNo(b), &mut blk).is_err() {
            continue;
        }
        if let Ok(h) = ExtentHeader::decode(&blk) {
            handles.push(Handle::from_raw(h.handle));
        }
    }
    let mut shared = Vec::new();
    let _ = vol.for_each_shared_block(|b, _| shared.push(b));
    for b in shared.into_iter().take(8) {
        if vol.read_block(b, &mut blk).is_err() {
            continue;
        }
        for unit in 0..(bs / 64) {
            if let Ok(sh) = SlotHeader::decode(&blk[unit * 64..]) {
                if sh.len == 0 && sh.tag == 0 && sh.check == 0 {
                    continue;
                }
                for class in 0..6u8 {
                    handles.push(Handle::Packed {
                        block: b,
                        unit: unit as u16,
                        class,
                        tag: sh.tag,
                    });
                }
            }
        }
    }
    for h in handles.into_iter().take(64) {
        let _ = vol.object_len(h);
        let _ = vol.get(h, &mut buf);
        let _ = vol.get(h, &mut buf[..1]);
    }
}
