//! A volume formatted again over an earlier one with the same options (the same identity and
//! time, as a firmware's factory reset gives) must never replay the earlier volume's log.

use vde_nostd::{FormatOptions, Handle, ModuleSet, RamDevice, Volume};
use vde_tests::Mem;

const BS: usize = 512;

fn opts() -> FormatOptions {
    FormatOptions {
        wal_blocks: Some(16),
        volume_id: *b"fixed-identity!!",
        now: 0,
        modules: ModuleSet::OBJECTS,
    }
}

/// Puts `n` objects of 40 bytes whose content starts with `tag`, durable one by one, and
/// drops the volume without a checkpoint (the log keeps them).
fn session(img: &mut [u8], format: bool, n: usize, tag: u8) -> Vec<Handle> {
    let mut mem = Mem::new(BS, 16, 64);
    let dev = RamDevice::new(img, BS).unwrap();
    let mut vol = if format {
        Volume::<_, 16>::format(dev, &opts(), mem.bufs()).unwrap()
    } else {
        Volume::<_, 16>::mount(dev, mem.bufs()).unwrap()
    };
    (0..n)
        .map(|i| vol.put(&[tag.wrapping_add(i as u8); 40]).unwrap())
        .collect()
}

#[test]
fn a_second_format_with_the_same_options_never_replays_the_first_volumes_log() {
    for first_puts in [3usize, 20, 60] {
        for second_puts in 0..first_puts {
            let mut img = vec![0u8; BS * 256];
            session(&mut img, true, first_puts, 0x10);
            let kept = session(&mut img, true, second_puts, 0x80);
            let mut mem = Mem::new(BS, 16, 64);
            let dev = RamDevice::new(&mut img, BS).unwrap();
            let mut vol = Volume::<_, 16>::mount(dev, mem.bufs()).unwrap();
            let stats = vol.object_stats().unwrap();
            assert_eq!(
                stats.counters.objects, second_puts as u64,
                "{first_puts} then {second_puts}: the remount holds objects of the first volume"
            );
            let mut buf = [0u8; 64];
            for (i, h) in kept.iter().enumerate() {
                let n = vol.get(*h, &mut buf).unwrap();
                assert_eq!(&buf[..n], &[0x80u8.wrapping_add(i as u8); 40][..]);
            }
            vol.verify().unwrap();
        }
    }
}
