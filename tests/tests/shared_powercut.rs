//! Group commit under power cuts: eight threads put, delete and commit batches through
//! `SharedVolume` (deferred commits, one flush per group) on a device that records every
//! operation. Afterwards the recorded run is cut at every device operation, and each cut is
//! imposed with up to [`STATES`] outcomes of the writes issued since the last completed flush
//! (any subset, in any order, one torn; `vde_embedded::harness::unflushed`). Each outcome must
//! mount (recovery), `verify`, and hold exactly the state after some prefix of the worker's
//! commits: every object and deletion of the prefix (each read back whole), nothing of the
//! commits after it, the object counter and the free-block count of that moment. The prefix must
//! include every commit a thread had been answered for before the cut: an answer means durable.
//!
//! Prints `power-cut points: N, crash states: S, violations: 0`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use vde_embedded::harness::unflushed::{Touched, Window};
use vde_nostd::{BlockDevice, BlockNo, Error, FormatOptions, Handle, RamDevice, Volume};
use vde_std::{OwnedBuffers, SharedVolume, TX_BLOCKS};

const BS: usize = 512;
const BLOCKS: usize = 1024;
const THREADS: u64 = 8;
const OPS: u64 = 40;
/// Outcomes of the unflushed writes tried at each cut.
const STATES: usize = 8;

/// One operation the worker issued to the device.
#[derive(Clone)]
enum DevOp {
    /// A whole block written.
    Write(u64, Vec<u8>),
    /// Bytes appended into a block at an offset.
    Append(u64, usize, Vec<u8>),
    /// A flush that completed.
    Flush,
}

/// A RAM disk that records every write, append and flush in order.
struct Recorder {
    now: Vec<u8>,
    log: Arc<Mutex<Vec<DevOp>>>,
}

impl BlockDevice for Recorder {
    type Error = std::io::Error;
    fn block_size(&self) -> usize {
        BS
    }
    fn block_count(&self) -> u64 {
        (self.now.len() / BS) as u64
    }
    fn read_block(&mut self, b: BlockNo, buf: &mut [u8]) -> std::io::Result<()> {
        let at = b.0 as usize * BS;
        buf.copy_from_slice(&self.now[at..at + BS]);
        Ok(())
    }
    fn write_block(&mut self, b: BlockNo, buf: &[u8]) -> std::io::Result<()> {
        let at = b.0 as usize * BS;
        self.now[at..at + BS].copy_from_slice(buf);
        self.log
            .lock()
            .unwrap()
            .push(DevOp::Write(b.0, buf.to_vec()));
        Ok(())
    }
    fn append(&mut self, b: BlockNo, offset: usize, data: &[u8]) -> std::io::Result<()> {
        let at = b.0 as usize * BS + offset;
        self.now[at..at + data.len()].copy_from_slice(data);
        self.log
            .lock()
            .unwrap()
            .push(DevOp::Append(b.0, offset, data.to_vec()));
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.log.lock().unwrap().push(DevOp::Flush);
        Ok(())
    }
}

/// One commit of the worker, in commit order: what it changed and the counts after it.
struct Commit {
    /// Objects it created (with their bytes) or deleted (`None`).
    changes: Vec<(Handle, Option<Vec<u8>>)>,
    free_blocks: u64,
    objects: u64,
}

fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn group_commit_survives_a_cut_at_every_operation() {
    // A formatted image with a small log, so checkpoints happen during the run.
    let mut base = vec![0u8; BS * BLOCKS];
    {
        let dev = RamDevice::new(&mut base, BS).unwrap();
        let mut mem = OwnedBuffers::for_device(&dev);
        let opts = FormatOptions {
            wal_blocks: Some(24),
            ..FormatOptions::default()
        };
        let v = Volume::<_, TX_BLOCKS>::format(dev, &opts, mem.bufs()).unwrap();
        v.unmount().unwrap();
    }
    let log = Arc::new(Mutex::new(Vec::new()));
    let commits: Arc<Mutex<Vec<Commit>>> = Arc::new(Mutex::new(Vec::new()));
    let vol = SharedVolume::mount(Recorder {
        now: base.clone(),
        log: Arc::clone(&log),
    })
    .unwrap();
    let start_free = vol.usage().unwrap().free_blocks;
    let start_ops = log.lock().unwrap().len();

    // (commit index, device operations done when the thread was answered)
    let acks: Vec<(usize, usize)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let vol = vol.clone();
                let commits = Arc::clone(&commits);
                let log = Arc::clone(&log);
                s.spawn(move || {
                    let mut live: Vec<Handle> = Vec::new();
                    let mut acks = Vec::new();
                    for i in 0..OPS {
                        let seed = t * 1000 + i;
                        let kind = (seed * 7 + t) % 5;
                        let gone = if kind >= 3 && !live.is_empty() {
                            Some(live.remove((seed as usize * 31) % live.len()))
                        } else {
                            None
                        };
                        // Mostly packed objects; every seventh spans blocks (an extent).
                        let len = if i % 7 == 3 {
                            1200
                        } else {
                            20 + (seed as usize * 13) % 180
                        };
                        let data = bytes(seed, len);
                        let commits = Arc::clone(&commits);
                        let (idx, made) = vol
                            .with(
                                move |v| -> Result<(usize, Vec<Handle>), Error<std::io::Error>> {
                                    let mut changes = Vec::new();
                                    match (kind, gone) {
                                        (4, Some(g)) => {
                                            // A batch: a put and a delete in one transaction.
                                            let mut b = v.batch()?;
                                            let h = b.put(&data)?;
                                            b.delete(g)?;
                                            b.commit()?;
                                            changes.push((h, Some(data)));
                                            changes.push((g, None));
                                        }
                                        (_, Some(g)) => {
                                            v.delete(g)?;
                                            changes.push((g, None));
                                        }
                                        _ => {
                                            let h = v.put(&data)?;
                                            changes.push((h, Some(data)));
                                        }
                                    }
                                    let made = changes
                                        .iter()
                                        .filter(|c| c.1.is_some())
                                        .map(|c| c.0)
                                        .collect();
                                    let mut c = commits.lock().unwrap();
                                    c.push(Commit {
                                        changes,
                                        free_blocks: v.usage().free_blocks,
                                        objects: v.object_stats()?.counters.objects,
                                    });
                                    Ok((c.len() - 1, made))
                                },
                            )
                            .unwrap()
                            .unwrap();
                        acks.push((idx, log.lock().unwrap().len()));
                        live.extend(made);
                    }
                    acks
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    drop(vol);
    let log = log.lock().unwrap().clone();
    let commits = std::mem::take(&mut *commits.lock().unwrap());
    let flushes = log[start_ops..]
        .iter()
        .filter(|o| matches!(o, DevOp::Flush))
        .count();
    let home_writes = log[start_ops..]
        .iter()
        .filter(|o| matches!(o, DevOp::Write(..)))
        .count();
    assert!(home_writes > 0, "no checkpoint during the run");
    assert!(
        flushes < commits.len(),
        "{flushes} flushes for {} commits: no group commit to test",
        commits.len()
    );

    // The state after each prefix of the commits.
    let mut models: Vec<HashMap<Handle, Vec<u8>>> = vec![HashMap::new()];
    for c in &commits {
        let mut m = models.last().unwrap().clone();
        for (h, d) in &c.changes {
            match d {
                Some(d) => assert!(m.insert(*h, d.clone()).is_none()),
                None => assert!(m.remove(h).is_some()),
            }
        }
        models.push(m);
    }
    let handles: Vec<Handle> = {
        let mut h: Vec<Handle> = commits
            .iter()
            .flat_map(|c| c.changes.iter().map(|x| x.0))
            .collect();
        h.sort_by_key(|h| h.raw());
        h.dedup();
        h
    };
    let counts = |j: usize| {
        j.checked_sub(1).map_or((start_free, 0), |i| {
            (commits[i].free_blocks, commits[i].objects)
        })
    };

    // Replay the log: at every cut, the medium (every issued write landed), the content at the
    // last completed flush, and the writes in between.
    let mut medium = base.clone();
    let mut durable = base.clone();
    let mut window: Vec<(u64, Vec<u8>)> = Vec::new();
    let (mut points, mut states, mut violations) = (0u64, 0u64, Vec::new());
    for k in 0..=log.len() {
        if k > 0 {
            match &log[k - 1] {
                DevOp::Write(b, d) => {
                    let at = *b as usize * BS;
                    medium[at..at + BS].copy_from_slice(d);
                    window.push((*b, d.clone()));
                }
                DevOp::Append(b, off, d) => {
                    let at = *b as usize * BS;
                    medium[at + off..at + off + d.len()].copy_from_slice(d);
                    window.push((*b, medium[at..at + BS].to_vec()));
                }
                DevOp::Flush => {
                    durable.copy_from_slice(&medium);
                    window.clear();
                }
            }
        }
        if k < start_ops {
            continue;
        }
        points += 1;
        // Commits answered before this cut must survive it.
        let min = acks
            .iter()
            .filter(|a| a.1 <= k)
            .map(|a| a.0 + 1)
            .max()
            .unwrap_or(0);
        let w = window_of(&window, &durable);
        for (n, st) in w.states(STATES, k as u64).into_iter().enumerate() {
            states += 1;
            let mut img = medium.clone();
            st.apply_to_image(&w, &mut img);
            if let Err(e) = check(&mut img, &handles, &models, min, counts) {
                violations.push(format!("cut {k}, outcome {n} ({}): {e}", st.describe(&w)));
            }
        }
    }
    println!(
        "power-cut points: {points}, crash states: {states}, violations: {} ({} commits, {flushes} flushes, \
         {home_writes} whole-block writes)",
        violations.len(),
        commits.len()
    );
    assert!(
        violations.is_empty(),
        "{:#?}",
        &violations[..violations.len().min(10)]
    );
    assert!(points > 100, "only {points} cut points");
}

/// The writes since the last flush as the harness's [`Window`].
fn window_of(writes: &[(u64, Vec<u8>)], durable: &[u8]) -> Window {
    let mut blocks: Vec<Touched> = Vec::new();
    for (b, d) in writes {
        match blocks.iter_mut().find(|t| t.block == *b) {
            Some(t) => t.versions.push(d.clone()),
            None => blocks.push(Touched {
                block: *b,
                durable: durable[*b as usize * BS..(*b as usize + 1) * BS].to_vec(),
                versions: vec![d.clone()],
            }),
        }
    }
    blocks.sort_by_key(|t| t.block);
    Window { bs: BS, blocks }
}

/// Mounts `img` and finds the prefix of commits it holds (at least `min`).
fn check(
    img: &mut [u8],
    handles: &[Handle],
    models: &[HashMap<Handle, Vec<u8>>],
    min: usize,
    counts: impl Fn(usize) -> (u64, u64),
) -> Result<(), String> {
    let dev = RamDevice::new(img, BS).ok_or("block size")?;
    let mut mem = OwnedBuffers::for_device(&dev);
    let mut v =
        Volume::<_, TX_BLOCKS>::mount(dev, mem.bufs()).map_err(|e| format!("mount: {e:?}"))?;
    v.verify().map_err(|e| format!("verify: {e:?}"))?;
    let mut found: HashMap<Handle, Vec<u8>> = HashMap::new();
    // Handles `get` refused as damaged: right for a stale handle (its slot may now lie inside
    // another object, whose bytes can pass the tag check by chance and then fail the
    // checksum), a violation for a live one.
    let mut refused: Vec<(Handle, String)> = Vec::new();
    let mut buf = vec![0u8; 4096];
    for h in handles {
        match v.get(*h, &mut buf) {
            Ok(n) => {
                found.insert(*h, buf[..n].to_vec());
            }
            Err(Error::BadHandle { .. }) => {}
            Err(e @ Error::ObjectChecksum { .. }) => refused.push((*h, format!("{e:?}"))),
            Err(e) => return Err(format!("get {h}: {e:?}")),
        }
    }
    let objects = v
        .object_stats()
        .map_err(|e| format!("{e:?}"))?
        .counters
        .objects;
    let free = v.usage().free_blocks;
    // Several prefixes may leave the same objects (a put, then its delete); the image must be
    // one of them, counters included.
    let matching: Vec<usize> = (min..models.len())
        .filter(|j| models[*j] == found)
        .collect();
    let Some(&first) = matching.first() else {
        return Err(format!(
            "{} objects readable match no state after commit {min} or later",
            found.len()
        ));
    };
    let Some(&j) = matching.iter().find(|&&j| counts(j) == (free, objects)) else {
        return Err(format!(
            "after commit {first}: free blocks and objects {:?}, want {:?}",
            (free, objects),
            counts(first)
        ));
    };
    if let Some((h, e)) = refused.iter().find(|(h, _)| models[j].contains_key(h)) {
        return Err(format!("get {h} (live after commit {j}): {e}"));
    }
    Ok(())
}
