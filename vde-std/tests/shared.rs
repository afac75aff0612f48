//! `SharedVolume` under load: 8 threads put, get and delete at once; then a remount must hold
//! exactly what the threads' models say.

mod common;

use std::collections::HashMap;

use common::bytes;
use vde_nostd::{FormatOptions, Handle};
use vde_std::{FileDevice, FileVolume, OwnedBuffers, SharedVolume};

const THREADS: u64 = 8;
const OPS: u64 = 150;

/// One thread's view: live objects and deleted handles.
type Model = (HashMap<Handle, Vec<u8>>, Vec<Handle>);

#[test]
fn eight_threads_then_remount() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("shared.img");
    let dev = FileDevice::create(&path, 16 << 20, 4096, false).unwrap();
    let vol = SharedVolume::format(dev, &FormatOptions::default()).unwrap();

    let models: Vec<Model> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let vol = vol.clone();
                s.spawn(move || {
                    let mut live: HashMap<Handle, Vec<u8>> = HashMap::new();
                    let mut dead = Vec::new();
                    let mut rng = t * 7919 + 1;
                    for i in 0..OPS {
                        rng = rng
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let pick = (rng >> 33) % 10;
                        if pick < 5 || live.is_empty() {
                            // Mostly packed objects, some whole-block ones.
                            let len = if pick == 0 {
                                5000 + (rng >> 40) as usize % 9000
                            } else {
                                (rng >> 40) as usize % 1500
                            };
                            let data = bytes(t * 1_000_000 + i, len);
                            let h = vol.put(&data).unwrap();
                            assert!(
                                live.insert(h, data).is_none(),
                                "handle {h} handed out twice"
                            );
                        } else if pick < 8 {
                            let h = *live.keys().nth((rng >> 20) as usize % live.len()).unwrap();
                            assert_eq!(vol.get(h).unwrap(), live[&h], "thread {t} read {h}");
                        } else {
                            let h = *live.keys().nth((rng >> 20) as usize % live.len()).unwrap();
                            vol.delete(h).unwrap();
                            live.remove(&h);
                            dead.push(h);
                        }
                    }
                    (live, dead)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });

    let live: HashMap<Handle, Vec<u8>> = models.iter().flat_map(|(l, _)| l.clone()).collect();
    let total: usize = models.iter().map(|(l, _)| l.len()).sum();
    assert_eq!(live.len(), total, "no two threads got the same handle");
    let stats = vol.object_stats().unwrap();
    assert_eq!(stats.counters.objects, live.len() as u64);
    // Calls after close fail cleanly on every other handle.
    let other = vol.clone();
    let dev = vol.close().unwrap();
    assert!(matches!(other.usage(), Err(vde_std::Error::Closed)));
    drop(dev);

    // Remount from the file and compare with the models.
    let dev = FileDevice::open(&path).unwrap();
    let mut mem = OwnedBuffers::for_device(&dev);
    let mut v = FileVolume::mount(dev, mem.bufs()).unwrap();
    assert_eq!(
        v.object_stats().unwrap().counters.objects,
        live.len() as u64
    );
    for (h, data) in &live {
        let mut buf = vec![0u8; data.len()];
        assert_eq!(v.get(*h, &mut buf).unwrap(), data.len());
        assert_eq!(&buf, data);
    }
    for (_, dead) in &models {
        for h in dead {
            if !live.contains_key(h) {
                assert!(
                    v.get(*h, &mut [0u8; 16384]).is_err(),
                    "deleted {h} still reads"
                );
            }
        }
    }
    v.unmount().unwrap();
    let report = vde_std::check::check_path(&path, &mut |_, _| {}).unwrap();
    assert!(report.is_clean(), "{:?}", report.findings);
}

#[test]
fn shared_volume_basics() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("s.img");
    let dev = FileDevice::create(&path, 1 << 20, 512, false).unwrap();
    drop(SharedVolume::format(dev, &FormatOptions::default()).unwrap());
    // Dropping the last handle unmounts: the image reopens for writing.
    let vol = SharedVolume::open(&path).unwrap();
    assert!(matches!(
        SharedVolume::open(&path),
        Err(vde_std::Error::Locked)
    ));
    let h = vol.put(b"abc").unwrap();
    assert_eq!(vol.get(h).unwrap(), b"abc");
    assert_eq!(vol.with(|v| v.block_size()).unwrap(), 512);
    vol.checkpoint().unwrap();
    assert!(vol.usage().unwrap().free_blocks > 0);
    assert!(vol.get(Handle::from_raw(12345)).is_err());
    // A panic inside `with` reaches the caller; the volume keeps working.
    let v2 = vol.clone();
    let p = std::thread::spawn(move || v2.with(|_| panic!("boom"))).join();
    assert!(p.is_err());
    assert_eq!(vol.get(h).unwrap(), b"abc");
    drop(vol);
    assert!(SharedVolume::open(&path).is_ok());
    // Mount errors come back from the worker.
    std::fs::write(t.path().join("junk"), [0u8; 4096]).unwrap();
    assert!(matches!(
        SharedVolume::open(t.path().join("junk")),
        Err(vde_std::Error::NotAnImage)
    ));
}
