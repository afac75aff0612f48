//! `SharedVolume` under load: 8 threads put, get, delete and commit batches at once; then a
//! remount must hold exactly what the threads' models say. Group commit: callers that overlap
//! share flushes, and everything a caller was answered for is in the flushed image.

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
                        if pick == 4 {
                            // A batch: two puts and, if there is one, a delete, in one
                            // transaction run on the worker.
                            let a = bytes(t * 1_000_000 + i, 100 + i as usize % 700);
                            let b = bytes(t * 1_000_000 + i + 500_000, 3000);
                            let gone = live.keys().next().copied();
                            let (a2, b2) = (a.clone(), b.clone());
                            let (ha, hb) = vol
                                .with(move |v| -> vde_std::Result<(Handle, Handle)> {
                                    let mut batch = v.batch()?;
                                    let ha = batch.put(&a2)?;
                                    let hb = batch.put(&b2)?;
                                    if let Some(g) = gone {
                                        batch.delete(g)?;
                                    }
                                    batch.commit()?;
                                    Ok((ha, hb))
                                })
                                .unwrap()
                                .unwrap();
                            if let Some(g) = gone {
                                live.remove(&g);
                                dead.push(g);
                            }
                            assert!(live.insert(ha, a).is_none());
                            assert!(live.insert(hb, b).is_none());
                        } else if pick < 5 || live.is_empty() {
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

/// A RAM disk whose writes become durable only at a flush (which takes a millisecond, as a
/// disk's would): the durable image is what a power cut would leave.
struct Volatile {
    bs: usize,
    now: Vec<u8>,
    durable: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    flushes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl vde_nostd::BlockDevice for Volatile {
    type Error = std::io::Error;
    fn block_size(&self) -> usize {
        self.bs
    }
    fn block_count(&self) -> u64 {
        (self.now.len() / self.bs) as u64
    }
    fn read_block(&mut self, b: vde_nostd::BlockNo, buf: &mut [u8]) -> std::io::Result<()> {
        let at = b.0 as usize * self.bs;
        buf.copy_from_slice(&self.now[at..at + self.bs]);
        Ok(())
    }
    fn write_block(&mut self, b: vde_nostd::BlockNo, buf: &[u8]) -> std::io::Result<()> {
        let at = b.0 as usize * self.bs;
        self.now[at..at + self.bs].copy_from_slice(buf);
        Ok(())
    }
    fn append(&mut self, b: vde_nostd::BlockNo, offset: usize, data: &[u8]) -> std::io::Result<()> {
        let at = b.0 as usize * self.bs + offset;
        self.now[at..at + data.len()].copy_from_slice(data);
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::thread::sleep(std::time::Duration::from_millis(1));
        self.durable.lock().unwrap().copy_from_slice(&self.now);
        self.flushes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

/// Eight threads put at once: they share flushes (a group commit), and every put a thread was
/// answered for is in the durable image at that moment, which mounts and reads back.
#[test]
fn group_commit_shares_flushes_and_answers_only_when_durable() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    const BS: usize = 512;
    const PUTS: u64 = 60;
    let durable = Arc::new(Mutex::new(vec![0u8; 4 << 20]));
    let flushes = Arc::new(AtomicU64::new(0));
    let dev = Volatile {
        bs: BS,
        now: vec![0u8; 4 << 20],
        durable: Arc::clone(&durable),
        flushes: Arc::clone(&flushes),
    };
    let vol = SharedVolume::format(dev, &FormatOptions::default()).unwrap();
    let before = flushes.load(Ordering::SeqCst);
    let acked: Vec<(Handle, Vec<u8>, Vec<u8>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let vol = vol.clone();
                let durable = Arc::clone(&durable);
                s.spawn(move || {
                    let mut acked = Vec::new();
                    for i in 0..PUTS {
                        let data = bytes(t * 1000 + i, 100);
                        let h = vol.put(&data).unwrap();
                        // Answered: the durable image holds it now. Keep a copy of that image
                        // for the last put of each thread.
                        if i == PUTS - 1 {
                            acked.push((h, data, durable.lock().unwrap().clone()));
                        } else {
                            acked.push((h, data, Vec::new()));
                        }
                    }
                    acked
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let used = flushes.load(Ordering::SeqCst) - before;
    let puts = THREADS * PUTS;
    assert!(
        used * 2 <= puts,
        "{used} flushes for {puts} puts: callers did not share them"
    );
    // Each thread's last answered put: every put that thread made is in the image taken right
    // after the answer, and that image mounts (recovery of what was flushed).
    for (h_last, _, img) in acked.iter().filter(|a| !a.2.is_empty()) {
        let mut img = img.clone();
        let dev = vde_nostd::RamDevice::new(&mut img, BS).unwrap();
        let mut mem = OwnedBuffers::for_device(&dev);
        let mut v = vde_nostd::Volume::<_, { vde_std::TX_BLOCKS }>::mount(dev, mem.bufs()).unwrap();
        let t = acked.iter().position(|a| a.0 == *h_last).unwrap() / PUTS as usize;
        for (h, data, _) in &acked[t * PUTS as usize..(t + 1) * PUTS as usize] {
            let mut buf = vec![0u8; 200];
            let n = v.get(*h, &mut buf).unwrap();
            assert_eq!(&buf[..n], &data[..], "answered put {h} is not durable");
        }
        v.verify().unwrap();
    }
    drop(vol);
}
