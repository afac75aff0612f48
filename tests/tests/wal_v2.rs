//! The write path of format version 2 (vde-nostd/src/wal.rs): home blocks written only at
//! checkpoint, reads rebuilt from the log, appends that never follow torn bytes, deferred
//! durability. Each test states the property it checks.

use vde_embedded::harness::unflushed::{read_all, Unflushed};
use vde_embedded::sim::parts::W25q16jv;
use vde_embedded::{NorFlashDevice, SimConfig};
use vde_nostd::device::RamDevice;
use vde_nostd::format::layout::Layout;
use vde_nostd::wal::Durability;
use vde_nostd::{BlockDevice, BlockNo, FormatOptions, Handle, Volume};
use vde_tests::{fresh_image, Mem};

const BS: usize = 512;

fn payload(i: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|k| (i.wrapping_mul(31).wrapping_add(k as u64 * 7)) as u8)
        .collect()
}

/// The blocks outside the WAL headers and area (where the two runs may differ only in how
/// far their logs got).
fn outside_log(img: &[u8], l: &Layout) -> Vec<u8> {
    let mut v = img[..2 * BS].to_vec();
    v.extend_from_slice(&img[(l.wal_start + l.wal_blocks) as usize * BS..]);
    v
}

/// Differential: the same operations with every commit forced home at once (a checkpoint after
/// each) and with home writes deferred to the log's own checkpoints reach the same image once
/// both checkpoint, and read the same on the way.
#[test]
fn deferred_and_forced_home_writes_reach_the_same_state() {
    let mut forced = fresh_image(BS, 256, 16);
    let mut deferred = forced.clone();
    let (mut mf, mut md) = (Mem::new(BS, 16, 64), Mem::new(BS, 16, 64));
    let mut f =
        Volume::<_, 16>::mount(RamDevice::new(&mut forced, BS).unwrap(), mf.bufs()).unwrap();
    let mut d =
        Volume::<_, 16>::mount(RamDevice::new(&mut deferred, BS).unwrap(), md.bufs()).unwrap();
    let layout = *f.layout();
    let mut live: Vec<(Handle, Vec<u8>)> = Vec::new();
    let mut rng = 0x5EEDu64;
    let mut deferred_checkpoints = 0;
    for i in 0..300u64 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        if rng.is_multiple_of(3) && !live.is_empty() {
            let (h, _) = live.remove((rng as usize / 3) % live.len());
            f.delete(h).unwrap();
            d.delete(h).unwrap();
        } else {
            let data = payload(i, 1 + (rng as usize >> 8) % 700);
            let h = f.put(&data).unwrap();
            assert_eq!(d.put(&data).unwrap(), h, "the same handle");
            live.push((h, data));
        }
        f.checkpoint().unwrap();
        assert_eq!(f.wal().dirty_blocks(), 0);
        deferred_checkpoints = d.wal_stats().checkpoints;
        let mut a = vec![0u8; 1024];
        let mut b = vec![0u8; 1024];
        for (h, data) in &live {
            let n = d.get(*h, &mut b).unwrap();
            assert_eq!(&b[..n], &data[..], "deferred read");
            let m = f.get(*h, &mut a).unwrap();
            assert_eq!(&a[..m], &b[..n]);
        }
        assert_eq!(f.object_stats().unwrap(), d.object_stats().unwrap());
        assert_eq!(f.usage(), d.usage());
    }
    assert!(deferred_checkpoints > 0 && deferred_checkpoints < 100);
    f.unmount().unwrap();
    d.unmount().unwrap();
    assert!(
        outside_log(&forced, &layout) == outside_log(&deferred, &layout),
        "the images differ outside the log"
    );
}

/// Reads through the log: a block changed by a raw transaction reads back as committed
/// before any checkpoint, while its home copy still holds the old bytes.
#[test]
fn committed_blocks_read_through_the_log_before_the_checkpoint() {
    let mut img = fresh_image(BS, 256, 16);
    let mut mem = Mem::new(BS, 16, 64);
    let mut v = Volume::<_, 16>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs()).unwrap();
    let mut tx = v.begin();
    let e = tx.allocate(1).unwrap();
    tx.write(e.start, &[0xA5; BS]).unwrap();
    tx.commit().unwrap();
    for round in 0..40u8 {
        let mut tx = v.begin();
        let mut cur = vec![0u8; BS];
        tx.read(e.start, &mut cur).unwrap();
        cur[usize::from(round) * 7 % BS] = round;
        tx.write(e.start, &cur).unwrap();
        tx.commit().unwrap();
        let mut back = vec![0u8; BS];
        v.read_block(e.start, &mut back).unwrap();
        assert_eq!(back, cur);
        let mut home = vec![0u8; BS];
        v.device().read_block(e.start, &mut home).unwrap();
        if v.wal().is_dirty(e.start) {
            assert_ne!(home, cur, "written home before a checkpoint");
        }
    }
    assert!(v.wal().dirty_blocks() > 0);
    v.checkpoint().unwrap();
    assert_eq!(v.wal().dirty_blocks(), 0);
}

/// A lone 64-byte put logs well under 256 bytes once its blocks are in the log.
#[test]
fn a_small_put_logs_a_few_hundred_bytes_at_most() {
    let mut img = fresh_image(4096, 256, 16);
    let mut mem = Mem::new(4096, 16, 64);
    let mut v =
        Volume::<_, 16>::mount(RamDevice::new(&mut img, 4096).unwrap(), mem.bufs()).unwrap();
    v.put(&[1; 64]).unwrap();
    let mut sizes = Vec::new();
    for i in 0..20u8 {
        let before = v.wal_stats().log_bytes_written;
        v.put(&[i; 64]).unwrap();
        sizes.push(v.wal_stats().log_bytes_written - before);
    }
    sizes.sort();
    let median = sizes[sizes.len() / 2];
    assert!(median < 256, "median {median} bytes: {sizes:?}");
}

/// Deferred durability: commits share the next flush, and whatever subset of the unflushed
/// writes a power cut keeps, the volume holds a prefix of the committed puts.
#[test]
fn deferred_commits_leave_a_prefix_after_a_cut() {
    let base = fresh_image(BS, 256, 16);
    let mut img = base.clone();
    let durable = read_all(&mut RamDevice::new(&mut img, BS).unwrap()).unwrap();
    let mut mem = Mem::new(BS, 16, 64);
    let (handles, window) = {
        let dev = Unflushed::new(RamDevice::new(&mut img, BS).unwrap(), durable);
        let mut v = Volume::<_, 16>::mount(dev, mem.bufs()).unwrap();
        v.set_durability(Durability::Deferred);
        assert_eq!(v.durability(), Durability::Deferred);
        let handles: Vec<Handle> = (0..6u64).map(|i| v.put(&payload(i, 40)).unwrap()).collect();
        let w = v.device().window();
        assert!(!w.is_empty(), "deferred commits left unflushed");
        (handles, w)
    };
    let states = window.states(64, 7);
    assert!(states.len() > 2);
    for s in &states {
        let mut crash = img.clone();
        s.apply_to_image(&window, &mut crash);
        let mut m = Mem::new(BS, 16, 64);
        let mut v = Volume::<_, 16>::mount(RamDevice::new(&mut crash, BS).unwrap(), m.bufs())
            .unwrap_or_else(|e| panic!("{}: {e:?}", s.describe(&window)));
        v.verify().unwrap();
        let mut buf = vec![0u8; 64];
        let present: Vec<bool> = handles
            .iter()
            .map(|h| v.get(*h, &mut buf).is_ok())
            .collect();
        let n = present.iter().take_while(|p| **p).count();
        assert!(
            present[n..].iter().all(|p| !p),
            "not a prefix: {present:?} ({})",
            s.describe(&window)
        );
        for (i, h) in handles.iter().take(n).enumerate() {
            let len = v.get(*h, &mut buf).unwrap();
            assert_eq!(&buf[..len], &payload(i as u64, 40)[..]);
        }
        assert_eq!(v.object_stats().unwrap().counters.objects, n as u64);
    }
    // After sync, every commit is durable: nothing is left unflushed.
    let mut img2 = base.clone();
    let durable = read_all(&mut RamDevice::new(&mut img2, BS).unwrap()).unwrap();
    let dev = Unflushed::new(RamDevice::new(&mut img2, BS).unwrap(), durable);
    let mut m2 = Mem::new(BS, 16, 64);
    let mut v = Volume::<_, 16>::mount(dev, m2.bufs()).unwrap();
    v.set_durability(Durability::Deferred);
    v.put(&[3; 40]).unwrap();
    v.sync().unwrap();
    assert!(v.device().window().is_empty());
}

/// Two torn appends, then a clean one, then a remount: the clean commit survives (no append
/// ever lands after bytes a cut may have torn, so no phantom record ends the log early), and
/// the torn ones are wholly present or wholly absent.
#[test]
fn two_torn_appends_then_a_clean_one_leave_no_phantom_record() {
    const NOR_BS: usize = 4096;
    let mut img = vec![0xFFu8; 256 * 1024];
    let mut wear = vec![0u32; img.len() / NOR_BS];
    let mut mem = Mem::new(NOR_BS, 16, 64);
    let first;
    {
        let f = W25q16jv::new(&mut img, &mut wear, SimConfig::new(3)).unwrap();
        let dev = NorFlashDevice::new(f, NOR_BS, 0, None).unwrap();
        let mut v = Volume::<_, 16>::format(dev, &FormatOptions::default(), mem.bufs()).unwrap();
        first = v.put(&payload(1, 64)).unwrap();
        v.put(&payload(2, 64)).unwrap();
    }
    let base = img.clone();
    // How many flash operations a put takes, to cut inside its appends.
    let ops = {
        let mut f = W25q16jv::new(&mut img, &mut wear, SimConfig::new(3)).unwrap();
        let mut v = Volume::<_, 16>::mount(
            NorFlashDevice::new(&mut f, NOR_BS, 0, None).unwrap(),
            mem.bufs(),
        )
        .unwrap();
        let start = v.device().flash_mut().op_count();
        v.put(&payload(3, 64)).unwrap();
        v.device().flash_mut().op_count() - start
    };
    assert!(ops > 0);
    let mut cases = 0;
    for k1 in 0..ops {
        for k2 in [0, ops / 2, ops - 1] {
            img.copy_from_slice(&base);
            let mut in_flight = Vec::new();
            for (round, k) in [k1, k2].into_iter().enumerate() {
                let mut f = W25q16jv::new(&mut img, &mut wear, SimConfig::new(k + 11)).unwrap();
                let mut v = Volume::<_, 16>::mount(
                    NorFlashDevice::new(&mut f, NOR_BS, 0, None).unwrap(),
                    mem.bufs(),
                )
                .unwrap();
                let data = payload(10 + round as u64, 64);
                v.device().flash_mut().arm_power_cut(k);
                // The cut lands inside the put (or after it, when recovery made it shorter).
                let _ = v.put(&data);
                in_flight.push(data);
            }
            let mut f = W25q16jv::new(&mut img, &mut wear, SimConfig::new(99)).unwrap();
            let mut v = Volume::<_, 16>::mount(
                NorFlashDevice::new(&mut f, NOR_BS, 0, None).unwrap(),
                mem.bufs(),
            )
            .unwrap();
            let clean = payload(20, 64);
            let h = v.put(&clean).unwrap();
            drop(v);
            let mut f = W25q16jv::new(&mut img, &mut wear, SimConfig::new(100)).unwrap();
            let mut v = Volume::<_, 16>::mount(
                NorFlashDevice::new(&mut f, NOR_BS, 0, None).unwrap(),
                mem.bufs(),
            )
            .unwrap();
            v.verify().unwrap();
            let mut buf = vec![0u8; 64];
            let n = v
                .get(h, &mut buf)
                .expect("the clean put after two torn ones");
            assert_eq!(&buf[..n], &clean[..], "cuts at {k1}, {k2}");
            let n = v.get(first, &mut buf).unwrap();
            assert_eq!(&buf[..n], &payload(1, 64)[..]);
            // 2 before, the clean one, and each torn one wholly or not at all.
            let objects = v.object_stats().unwrap().counters.objects;
            assert!((3..=5).contains(&objects), "{objects} objects");
            cases += 1;
        }
    }
    assert!(cases >= 3);
}

/// A device that tears one chosen whole-block write after `keep` bytes and fails everything
/// after it (a power cut in the middle of a home rewrite).
struct TearOne<'a> {
    inner: RamDevice<'a>,
    writes: usize,
    tear_at: Option<(usize, usize)>,
    dead: bool,
}

#[derive(Debug)]
struct Cut;

impl BlockDevice for TearOne<'_> {
    type Error = Cut;
    fn block_size(&self) -> usize {
        self.inner.block_size()
    }
    fn block_count(&self) -> u64 {
        self.inner.block_count()
    }
    fn read_block(&mut self, b: BlockNo, buf: &mut [u8]) -> Result<(), Cut> {
        if self.dead {
            return Err(Cut);
        }
        self.inner.read_block(b, buf).map_err(|_| Cut)
    }
    fn write_block(&mut self, b: BlockNo, buf: &[u8]) -> Result<(), Cut> {
        if self.dead {
            return Err(Cut);
        }
        let n = self.writes;
        self.writes += 1;
        if let Some((j, keep)) = self.tear_at {
            if n == j {
                let mut cur = vec![0u8; buf.len()];
                self.inner.read_block(b, &mut cur).map_err(|_| Cut)?;
                cur[..keep].copy_from_slice(&buf[..keep]);
                self.inner.write_block(b, &cur).map_err(|_| Cut)?;
                self.dead = true;
                return Err(Cut);
            }
        }
        self.inner.write_block(b, buf).map_err(|_| Cut)
    }
    fn flush(&mut self) -> Result<(), Cut> {
        if self.dead {
            return Err(Cut);
        }
        Ok(())
    }
    fn append(&mut self, b: BlockNo, offset: usize, data: &[u8]) -> Result<(), Cut> {
        if self.dead {
            return Err(Cut);
        }
        self.inner.append(b, offset, data).map_err(|_| Cut)
    }
}

/// A checkpoint's home rewrite torn at every byte of every block it writes home: the next
/// mount rebuilds each block from the log alone (its newest image and the ranges after it),
/// so every committed object reads back and the volume verifies.
#[test]
fn a_home_rewrite_torn_at_every_byte_is_rebuilt_from_the_log() {
    let mut base = fresh_image(BS, 256, 16);
    let mut mem = Mem::new(BS, 16, 64);
    let mut objects = Vec::new();
    {
        let mut v =
            Volume::<_, 16>::mount(RamDevice::new(&mut base, BS).unwrap(), mem.bufs()).unwrap();
        for i in 0..6u64 {
            let data = payload(i, 30 + 20 * i as usize);
            objects.push((v.put(&data).unwrap(), data));
        }
        v.delete(objects.remove(2).0).unwrap();
        assert!(v.wal().dirty_blocks() >= 3);
    }
    // The writes of the checkpoint: its home rewrites are the first whole-block writes.
    let homes = {
        let mut img = base.clone();
        let dev = TearOne {
            inner: RamDevice::new(&mut img, BS).unwrap(),
            writes: 0,
            tear_at: None,
            dead: false,
        };
        let v = Volume::<_, 16>::mount(dev, mem.bufs()).unwrap();
        let dirty = v.wal().dirty_blocks();
        assert_eq!(dirty, 0, "the mount checkpointed the log it found");
        v.into_device().writes
    };
    assert!(homes >= 3, "{homes} writes");
    let mut mounts = 0;
    for j in 0..homes {
        for keep in 0..BS {
            let mut img = base.clone();
            {
                let dev = TearOne {
                    inner: RamDevice::new(&mut img, BS).unwrap(),
                    writes: 0,
                    tear_at: Some((j, keep)),
                    dead: false,
                };
                assert!(Volume::<_, 16>::mount(dev, mem.bufs()).is_err());
            }
            let mut v = Volume::<_, 16>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs())
                .unwrap_or_else(|e| panic!("write {j} torn at byte {keep}: {e:?}"));
            v.verify()
                .unwrap_or_else(|e| panic!("write {j} torn at byte {keep}: {e:?}"));
            let mut buf = vec![0u8; 256];
            for (h, data) in &objects {
                let n = v.get(*h, &mut buf).unwrap();
                assert_eq!(&buf[..n], &data[..], "write {j} torn at byte {keep}");
            }
            mounts += 1;
        }
    }
    assert_eq!(mounts, homes * BS);
}

/// The log is used to its end: a transaction that finds too little log left is abandoned
/// part-way, the log is checkpointed and the transaction appended again from the start. Each
/// checkpoint comes when the log is within one transaction of full, some commits succeed in
/// less room than a worst-case estimate would ask for, and every committed block reads back,
/// before and after a remount that replays the log.
#[test]
fn a_transaction_that_runs_out_of_log_is_appended_again_after_a_checkpoint() {
    let mut img = fresh_image(BS, 256, 16);
    let mut mem = Mem::new(BS, 16, 64);
    let mut vol =
        Volume::<_, 16>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs()).unwrap();
    let cap = vol.wal().capacity_blocks() * BS as u64;
    // Three image records: the most a transaction here can need (begin, commit, padding).
    let most = 24 + 3 * (16 + BS as u64 + 8) + 16 + 256;
    let mut tx = vol.begin();
    let e = tx.allocate(8).unwrap();
    tx.commit().unwrap();
    let block = |j: usize| BlockNo(e.start.0 + j as u64);
    let mut want = vec![vec![0u8; BS]; 8];
    let mut rng = 0xC0FFEEu64;
    let (mut overflows, mut tight) = (0, 0);
    let mut buf = vec![0u8; BS];
    for i in 0..600usize {
        let js = [(i * 3) % 8, (i * 3 + 1) % 8, (i * 3 + 2) % 8];
        for &j in &js {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            if rng.is_multiple_of(7) {
                want[j] = payload(rng, BS);
            } else {
                let at = (rng as usize >> 8) % (BS - 16);
                want[j][at..at + 16].copy_from_slice(&payload(rng, 16));
            }
        }
        let (cps, used) = (vol.wal_stats().checkpoints, vol.wal().used_bytes());
        let mut tx = vol.begin();
        for &j in &js {
            tx.write(block(j), &want[j]).unwrap();
        }
        tx.commit().unwrap();
        if vol.wal_stats().checkpoints > cps {
            overflows += 1;
            assert!(
                used + most > cap,
                "checkpoint with {used} of {cap} log bytes used"
            );
        } else if used + most > cap {
            tight += 1;
        }
        for &j in &js {
            vol.read_block(block(j), &mut buf).unwrap();
            assert_eq!(buf, want[j], "block {j} after commit {i}");
        }
    }
    assert!(overflows >= 3, "only {overflows} log-full checkpoints");
    assert!(tight >= 3, "only {tight} commits in the log's last stretch");
    drop(vol);
    // No unmount: recovery replays the log as the last commit left it.
    let mut mem = Mem::new(BS, 16, 64);
    let mut vol =
        Volume::<_, 16>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs()).unwrap();
    for (j, w) in want.iter().enumerate() {
        vol.read_block(block(j), &mut buf).unwrap();
        assert_eq!(&buf, w, "block {j} after the remount");
    }
}
