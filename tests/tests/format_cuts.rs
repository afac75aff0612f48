//! A format cut at any device operation leaves a device that either mounts as the complete
//! volume asked for (every module present, `verify` clean, usable) or reports `NotFormatted` —
//! never a volume that mounts without its modules. On a RAM disk (writes torn at sector
//! granularity) and on NOR flash through the direct adapter (programs and erases torn), over a
//! blank device and over an earlier volume; a second format after the cut always succeeds.

use vde_embedded::sim::parts::{W25q16jv, W25Q16JV};
use vde_embedded::{NorFlashDevice, SimRam};
use vde_nostd::{BlockDevice, FormatOptions, ModuleSet, MountError, Volume};
use vde_tests::Mem;

const BS: usize = 4096;

fn opts(now: u64) -> FormatOptions {
    FormatOptions {
        modules: ModuleSet::OBJECTS | ModuleSet::NAMES,
        volume_id: [now as u8; 16],
        now,
        ..FormatOptions::default()
    }
}

/// After a cut: the device mounts as the whole new volume, or as the old one untouched by the
/// format (impossible here: the format's first step erases its superblocks, so only if the cut
/// came before it), or is not formatted. Returns which.
fn after_cut<D: BlockDevice>(dev: D, old: Option<&[u8]>) -> &'static str
where
    D::Error: std::fmt::Debug,
{
    let mut mem = Mem::new(BS, 16, 64);
    match Volume::<_, 16>::mount(dev, mem.bufs()) {
        Ok(mut vol) => {
            vol.verify().expect("a mounted volume verifies");
            assert_eq!(
                vol.modules(),
                ModuleSet::OBJECTS | ModuleSet::NAMES,
                "a volume that mounts has every module"
            );
            let h = vol.store(b"k", b"value").expect("usable");
            let mut buf = [0u8; 8];
            let n = vol.get(h, &mut buf).unwrap();
            assert_eq!(&buf[..n], b"value");
            if old.is_some() && vol.fetch(b"old", &mut buf).is_ok() {
                "old volume"
            } else {
                "complete"
            }
        }
        Err(MountError::NotFormatted) => "not formatted",
        Err(e) => panic!("a cut format must mount or be NotFormatted, got {e:?}"),
    }
}

#[test]
fn a_format_cut_anywhere_mounts_whole_or_not_at_all_on_ram() {
    let blocks = 256;
    for over_old in [false, true] {
        let mut base = vec![0u8; BS * blocks];
        if over_old {
            let dev = SimRam::new(&mut base, BS, 1).unwrap();
            let mut mem = Mem::new(BS, 16, 64);
            let mut vol = Volume::<_, 16>::format(dev, &opts(1), mem.bufs()).unwrap();
            vol.store(b"old", b"old value").unwrap();
            vol.unmount().unwrap();
        }
        let mut seen = std::collections::BTreeMap::<&str, u32>::new();
        let mut k = 0u64;
        loop {
            let mut img = base.clone();
            let mut ram = SimRam::new(&mut img, BS, 7 + k).unwrap();
            ram.arm_power_cut(k);
            let mut mem = Mem::new(BS, 16, 64);
            let done = Volume::<_, 16>::format(&mut ram, &opts(2), mem.bufs()).is_ok();
            let cut = ram.power_lost();
            ram.reboot();
            let state = after_cut(&mut ram, over_old.then_some(&base[..]));
            *seen.entry(state).or_default() += 1;
            // The firmware's entry point takes over from any cut: the volume it mounts or
            // formats is whole, and a volume that was complete keeps its content.
            {
                let mut mem = Mem::new(BS, 16, 64);
                let mut vol = Volume::<_, 16>::mount_or_format(&mut ram, &opts(3), mem.bufs())
                    .expect("mount or format");
                vol.verify().expect("verify");
                assert_eq!(vol.modules(), ModuleSet::OBJECTS | ModuleSet::NAMES);
                let mut buf = [0u8; 8];
                // `after_cut` stored "k" in a volume that mounted: it must still be there.
                assert_eq!(
                    vol.fetch(b"k", &mut buf).is_ok(),
                    state == "complete",
                    "{state}"
                );
            }
            // A second format always succeeds.
            let mut mem = Mem::new(BS, 16, 64);
            Volume::<_, 16>::format(&mut ram, &opts(3), mem.bufs()).expect("reformat");
            if done && !cut {
                break;
            }
            k += 1;
        }
        println!("over an old volume: {over_old}; {k} cut points: {seen:?}");
        assert!(k > 20, "{k}");
        assert!(
            seen.get("not formatted").is_some_and(|&n| n > 10),
            "{seen:?}"
        );
        assert!(seen.get("complete").is_some_and(|&n| n >= 1), "{seen:?}");
        assert!(!seen.contains_key("old volume"), "{seen:?}");
    }
}

#[test]
fn a_format_cut_anywhere_mounts_whole_or_not_at_all_on_nor() {
    let size = 512 * 1024;
    let mut k = 0u64;
    let mut seen = std::collections::BTreeMap::<&str, u32>::new();
    loop {
        let mut mem = vec![0xFFu8; size];
        let mut wear = vec![0u32; size / 4096];
        let mut sim = W25q16jv::from_part(&mut mem, &mut wear, &W25Q16JV, k).unwrap();
        sim.arm_power_cut(k);
        let done = {
            let dev = NorFlashDevice::whole(&mut sim, BS).unwrap();
            let mut m = Mem::new(BS, 16, 64);
            Volume::<_, 16>::format(dev, &opts(2), m.bufs()).is_ok()
        };
        let cut = sim.power_lost();
        sim.reboot();
        let dev = NorFlashDevice::whole(&mut sim, BS).unwrap();
        *seen.entry(after_cut(dev, None)).or_default() += 1;
        if done && !cut {
            break;
        }
        k += 1;
    }
    println!("{k} cut points: {seen:?}");
    assert!(k > 20, "{k}");
    assert!(
        seen.get("not formatted").is_some_and(|&n| n > 10),
        "{seen:?}"
    );
}

/// `mount_or_format` formats a blank device, mounts a volume (its objects intact), and refuses a
/// corrupt one rather than formatting over it.
#[test]
fn mount_or_format_formats_only_what_holds_no_volume() {
    let mut img = vec![0u8; BS * 64];
    let h = {
        let dev = SimRam::new(&mut img, BS, 1).unwrap();
        let mut mem = Mem::new(BS, 16, 64);
        let mut vol = Volume::<_, 16>::mount_or_format(dev, &opts(1), mem.bufs()).unwrap();
        assert_eq!(vol.modules(), ModuleSet::OBJECTS | ModuleSet::NAMES);
        let h = vol.put(b"kept").unwrap();
        vol.unmount().unwrap();
        h
    };
    {
        let dev = SimRam::new(&mut img, BS, 1).unwrap();
        let mut mem = Mem::new(BS, 16, 64);
        let mut vol = Volume::<_, 16>::mount_or_format(dev, &opts(2), mem.bufs()).unwrap();
        let mut buf = [0u8; 8];
        let n = vol.get(h, &mut buf).expect("mounted, not formatted again");
        assert_eq!(&buf[..n], b"kept");
        vol.unmount().unwrap();
    }
    // Both superblocks damaged: corrupt, not blank; never formatted over.
    img[40] ^= 0xFF;
    img[BS + 40] ^= 0xFF;
    let dev = SimRam::new(&mut img, BS, 1).unwrap();
    let mut mem = Mem::new(BS, 16, 64);
    match Volume::<_, 16>::mount_or_format(dev, &opts(3), mem.bufs()) {
        Err(MountError::Corrupt(_)) => {}
        Err(e) => panic!("want Corrupt, got {e:?}"),
        Ok(_) => panic!("formatted over a damaged volume"),
    }
}
