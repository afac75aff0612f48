//! A long randomized run on direct NOR flash (the adapter that writes home in place): puts,
//! deletes, replacing updates, compactions and remounts, until the updates have written more
//! than 50 times the flash's capacity. Checks the model (every live object reads back, every
//! deleted handle is gone, the counters agree, `verify` holds) along the way and at the end,
//! and the wear spread: no sector erased more than once per checkpoint or log pass, and the
//! data area's erases spread over its sectors rather than piling onto a few.

use std::collections::BTreeMap;

use vde_embedded::sim::parts::W25q16jv;
use vde_embedded::{NorFlashDevice, SimConfig};
use vde_nostd::{FormatOptions, Handle, ModuleSet, Volume};
use vde_tests::Mem;

const BS: usize = 4096;
const CAPACITY: usize = 128 * 1024;

fn payload(i: u64, len: usize) -> Vec<u8> {
    let mut d = vec![0u8; len];
    for (j, b) in d.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31) ^ (j as u8).wrapping_mul(7) ^ (i >> 8) as u8;
    }
    if len >= 8 {
        d[..8].copy_from_slice(&i.to_le_bytes());
    }
    d
}

#[test]
fn long_random_churn_keeps_the_model_and_spreads_wear() {
    let mut img = vec![0xFFu8; CAPACITY];
    let mut wear = vec![0u32; CAPACITY / BS];
    let mut mem = Mem::new(BS, 16, 64);
    let opts = FormatOptions {
        volume_id: [0x5C; 16],
        now: 1,
        modules: ModuleSet::OBJECTS,
        ..FormatOptions::default()
    };
    {
        let f = W25q16jv::new(&mut img, &mut wear, SimConfig::new(9)).unwrap();
        let dev = NorFlashDevice::whole(f, BS).unwrap();
        Volume::<_, 16>::format(dev, &opts, mem.bufs())
            .unwrap()
            .unmount()
            .unwrap();
    }
    let mut model: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut gone: Vec<u64> = Vec::new();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let (mut written, mut updates, mut checkpoints, mut gcs, mut compactions) =
        (0u64, 0u64, 0, 0, 0);
    let mut i = 0u64;
    let mut session = 0u64;
    let mut layout = None;
    while written < 50 * CAPACITY as u64 {
        session += 1;
        let f = W25q16jv::new(&mut img, &mut wear, SimConfig::new(session)).unwrap();
        let dev = NorFlashDevice::whole(f, BS).unwrap();
        let mut vol = Volume::<_, 16>::mount(dev, mem.bufs()).unwrap();
        vol.verify().unwrap();
        layout = Some(*vol.layout());
        let mut buf = vec![0u8; 1024];
        // Everything the model holds reads back after the remount; deleted handles do not.
        for (h, d) in &model {
            let n = vol.get(Handle::from_raw(*h), &mut buf).unwrap();
            assert_eq!(&buf[..n], &d[..], "object {h:016x} after remount {session}");
        }
        for h in gone.iter().rev().take(50) {
            assert!(
                vol.get(Handle::from_raw(*h), &mut buf).is_err(),
                "deleted {h:016x} reads"
            );
        }
        for _ in 0..2_000 {
            i += 1;
            let len = 16 + (next() % 300) as usize;
            let d = payload(i, len);
            match next() % 10 {
                // Keep about 120 objects live: put while below, replace or delete above.
                _ if model.len() < 100 => {
                    let h = vol.put(&d).unwrap().raw();
                    model.insert(h, d);
                }
                0..=5 => {
                    let k = *model
                        .keys()
                        .nth((next() % model.len() as u64) as usize)
                        .unwrap();
                    let mut b = vol.batch().unwrap();
                    b.delete(Handle::from_raw(k)).unwrap();
                    let h = b.put(&d).unwrap().raw();
                    b.commit().unwrap();
                    model.remove(&k);
                    gone.push(k);
                    model.insert(h, d);
                }
                6 | 7 if model.len() < 140 => {
                    let h = vol.put(&d).unwrap().raw();
                    model.insert(h, d);
                }
                8 => {
                    let k = *model
                        .keys()
                        .nth((next() % model.len() as u64) as usize)
                        .unwrap();
                    vol.delete(Handle::from_raw(k)).unwrap();
                    model.remove(&k);
                    gone.push(k);
                    continue;
                }
                // Now and then an idle-time compaction.
                _ if next() % 16 == 0 => {
                    gcs += 1;
                    vol.gc().unwrap();
                    continue;
                }
                _ => continue,
            }
            written += len as u64;
            updates += 1;
            if updates % 997 == 0 {
                // Spot checks: a random live object, and the counters.
                let k = *model
                    .keys()
                    .nth((next() % model.len() as u64) as usize)
                    .unwrap();
                let n = vol.get(Handle::from_raw(k), &mut buf).unwrap();
                assert_eq!(&buf[..n], &model[&k][..]);
                let s = vol.object_stats().unwrap();
                assert_eq!(s.counters.objects, model.len() as u64);
                let bytes: u64 = model.values().map(|d| d.len() as u64).sum();
                assert_eq!(s.counters.bytes, bytes);
            }
        }
        checkpoints += vol.wal_stats().checkpoints;
        compactions += vol.compactions();
        vol.verify().unwrap();
        vol.unmount().unwrap();
    }
    let layout = layout.unwrap();
    let sectors_per_block = BS / 4096;
    let data: Vec<u32> = (layout.data_start as usize * sectors_per_block..wear.len())
        .map(|s| wear[s])
        .collect();
    let max = *wear.iter().max().unwrap();
    let data_max = *data.iter().max().unwrap();
    let data_mean = data.iter().map(|&w| u64::from(w)).sum::<u64>() as f64 / data.len() as f64;
    let wal_passes = wear[layout.wal_start as usize + 1];
    let erases: u64 = wear.iter().map(|&w| u64::from(w)).sum();
    println!(
        "erases per update {:.3} ({erases} in all)",
        erases as f64 / updates as f64
    );
    println!(
        "{updates} updates ({} bytes, {:.0}× the flash), {checkpoints} checkpoints, {gcs} gc calls, \
         {compactions} compactions; erases per sector: max {max}, data area max {data_max}, \
         mean {data_mean:.1}; log passes {wal_passes}",
        written,
        written as f64 / CAPACITY as f64
    );
    assert!(written >= 50 * CAPACITY as u64);
    assert!(compactions > 0, "the run never compacted");
    // No sector is erased more than once per checkpoint or per pass of the log.
    assert!(
        u64::from(max) <= checkpoints + u64::from(wal_passes) + 2,
        "a sector erased {max} times in {checkpoints} checkpoints"
    );
    // The data area's erases are spread: the hottest data sector sees at most four times the
    // mean (a block rewritten by every update would be hundreds of times it).
    assert!(
        f64::from(data_max) <= 4.0 * data_mean + 2.0,
        "data area wear: max {data_max}, mean {data_mean:.1}"
    );
}
