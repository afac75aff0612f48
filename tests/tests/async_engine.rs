//! The async engine (`vde_nostd::asynch`) against the blocking one and against cancellation.
//!
//! - The same scripted sequence run by both builds writes byte-identical images.
//! - An async operation dropped while any one of its device calls is pending (every call, for
//!   each kind of operation) leaves the volume as a power cut there would: the next operation
//!   recovers it in place, the in-flight operation is wholly done or wholly undone, and the image
//!   mounts and verifies under the blocking engine too.
//! - A transaction open across such a recovery fails with `Error::Interrupted` and leaves
//!   nothing on the device.
//! - A power cut at every device call of the async path (the blocking fault injector under
//!   `asynch::device::FromBlocking`) recovers as the blocking engine's does.
//!
//! The executor is a loop polling with a no-op waker; the test device returns `Pending` once
//! before each I/O call and counts the calls, so a test can drop an operation at call `k`.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use vde_embedded::fault::FaultInjector;
use vde_nostd::asynch;
use vde_nostd::asynch::device::FromBlocking;
use vde_nostd::device::RamError;
use vde_nostd::{BlockNo, Buffers, Error, Extent, FormatOptions, Handle, ModuleSet, RamDevice};
use vde_tests::asynch::{block_on, Stepper};

const BS: usize = 512;
const BLOCKS: usize = 256;
const K: usize = 16;

// ---------------------------------------------------------------------------------------------
// Dropping an operation at a chosen device call (the executor and the counting device are
// `vde_tests::asynch`'s).

/// Polls `f` until it completes (`Some`) or until device call number `k` (counted by `calls`
/// from 0) is pending, and then drops it (`None`).
fn run_until_call<F: Future>(f: F, calls: &Cell<u64>, k: u64) -> Option<F::Output> {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return Some(v),
            Poll::Pending => {
                if calls.get() > k {
                    assert_eq!(calls.get(), k + 1, "one call pending at a time");
                    return None;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Memory, data and the observed state of a volume.

struct Mem {
    scratch: Vec<u8>,
    txn: Vec<u8>,
    index: Vec<u8>,
}

impl Mem {
    fn new() -> Self {
        Mem {
            scratch: vec![0; Buffers::scratch_min(BS, false)],
            txn: vec![0; Buffers::txn_for_blocks(BS, K) + 4096],
            index: vec![0; 16 * 1024],
        }
    }
    fn bufs(&mut self) -> Buffers<'_, K> {
        Buffers {
            scratch: &mut self.scratch,
            txn: &mut self.txn,
            index: &mut self.index,
        }
    }
}

fn opts() -> FormatOptions {
    FormatOptions {
        wal_blocks: None,
        volume_id: [0xA5; 16],
        now: 1,
        modules: ModuleSet::OBJECTS | ModuleSet::NAMES,
    }
}

fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect()
}

/// What a test observes of a volume: every live object with its bytes (sorted by handle), the
/// free block count, and the content of some blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    objects: Vec<(String, Vec<u8>)>,
    free: u64,
    blocks: Vec<Vec<u8>>,
}

async fn state_async<D: asynch::BlockDevice>(
    vol: &mut asynch::Volume<'_, D, K>,
    blocks: &[BlockNo],
) -> State {
    let mut infos = Vec::new();
    vol.for_each_object(|i| {
        infos.push(i);
        true
    })
    .await
    .expect("for_each_object");
    let mut objects = Vec::new();
    for i in infos {
        let mut buf = vec![0; i.len as usize];
        let n = vol
            .get(i.handle, &mut buf)
            .await
            .expect("get of a listed object");
        assert_eq!(n as u64, i.len, "object {} length", i.handle);
        objects.push((i.handle.to_string(), buf));
    }
    objects.sort();
    let stats = vol.object_stats().await.expect("object_stats");
    assert_eq!(stats.counters.objects as usize, objects.len(), "counters");
    let mut out = Vec::new();
    for &b in blocks {
        let mut buf = vec![0; BS];
        vol.read_block(b, &mut buf).await.expect("read_block");
        out.push(buf);
    }
    State {
        objects,
        free: vol.usage().free_blocks,
        blocks: out,
    }
}

fn state_blocking<D: vde_nostd::BlockDevice>(
    vol: &mut vde_nostd::Volume<'_, D, K>,
    blocks: &[BlockNo],
) -> State {
    let mut infos = Vec::new();
    vol.for_each_object(|i| {
        infos.push(i);
        true
    })
    .expect("for_each_object");
    let mut objects = Vec::new();
    for i in infos {
        let mut buf = vec![0; i.len as usize];
        let n = vol.get(i.handle, &mut buf).expect("get of a listed object");
        assert_eq!(n as u64, i.len, "object {} length", i.handle);
        objects.push((i.handle.to_string(), buf));
    }
    objects.sort();
    let stats = vol.object_stats().expect("object_stats");
    assert_eq!(stats.counters.objects as usize, objects.len(), "counters");
    let mut out = Vec::new();
    for &b in blocks {
        let mut buf = vec![0; BS];
        vol.read_block(b, &mut buf).expect("read_block");
        out.push(buf);
    }
    State {
        objects,
        free: vol.usage().free_blocks,
        blocks: out,
    }
}

/// The volume verifies, takes a new object of `len` bytes (pattern `seed`) and gives it back,
/// and verifies again: it is usable after whatever `what` did to it.
async fn usable<D: asynch::BlockDevice>(
    vol: &mut asynch::Volume<'_, D, K>,
    what: &str,
    seed: u8,
    len: usize,
) where
    D::Error: std::fmt::Debug,
{
    vol.verify()
        .await
        .unwrap_or_else(|e| panic!("{what}: verify: {e:?}"));
    let h = vol
        .put(&data(seed, len))
        .await
        .unwrap_or_else(|e| panic!("{what}: put after: {e:?}"));
    let mut buf = vec![0u8; len];
    assert_eq!(vol.get(h, &mut buf).await.unwrap(), len, "{what}");
    assert_eq!(buf, data(seed, len), "{what}");
    vol.verify()
        .await
        .unwrap_or_else(|e| panic!("{what}: verify after put: {e:?}"));
}

/// Asserts that `got` is `before` or `after`, saying which differs how.
fn assert_one_of(got: &State, before: &State, after: &State, what: &str) {
    if got == before || got == after {
        return;
    }
    let names = |s: &State| s.objects.iter().map(|o| o.0.clone()).collect::<Vec<_>>();
    panic!(
        "{what}: state is neither before nor after the operation\n got objects {:?} free {}\n \
         before {:?} free {}\n after {:?} free {}\n blocks equal before: {} after: {}",
        names(got),
        got.free,
        names(before),
        before.free,
        names(after),
        after.free,
        got.blocks == before.blocks,
        got.blocks == after.blocks,
    );
}

// ---------------------------------------------------------------------------------------------
// 1. Both builds write the same image.

#[test]
fn blocking_and_async_builds_write_the_same_image() {
    let sizes = [16usize, 64, 200, 3000, 9000];

    // Blocking.
    let mut img_b = vec![0u8; BLOCKS * BS];
    let mut mem_b = Mem::new();
    let (handles_b, free_b) = {
        let dev = RamDevice::new(&mut img_b, BS).unwrap();
        let mut vol = vde_nostd::Volume::<_, K>::format(dev, &opts(), mem_b.bufs()).unwrap();
        let mut hs = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            hs.push(vol.put(&data(i as u8, n)).unwrap());
        }
        vol.delete(hs[1]).unwrap();
        let mut b = vol.batch().unwrap();
        for (i, n) in [32usize, 700, 100].into_iter().enumerate() {
            hs.push(b.put(&data(40 + i as u8, n)).unwrap());
        }
        b.commit().unwrap();
        let mut tx = vol.begin();
        let e = tx.allocate(2).unwrap();
        tx.write(e.start, &data(50, BS)).unwrap();
        tx.write(BlockNo(e.start.0 + 1), &data(51, BS)).unwrap();
        tx.commit().unwrap();
        hs.push(vol.store(b"key", &data(60, 50)).unwrap());
        hs.push(vol.remove(b"key").unwrap());
        vol.checkpoint().unwrap();
        let free = vol.usage().free_blocks;
        vol.unmount().unwrap();
        ((hs, e), free)
    };

    // Async, through the Pending-once device.
    let mut img_a = vec![0u8; BLOCKS * BS];
    let mut mem_a = Mem::new();
    let (handles_a, free_a, calls) = {
        let (dev, calls) = Stepper::new(RamDevice::new(&mut img_a, BS).unwrap());
        block_on(async {
            let mut vol = asynch::Volume::<_, K>::format(dev, &opts(), mem_a.bufs())
                .await
                .unwrap();
            let mut hs = Vec::new();
            for (i, &n) in sizes.iter().enumerate() {
                hs.push(vol.put(&data(i as u8, n)).await.unwrap());
            }
            vol.delete(hs[1]).await.unwrap();
            let mut b = vol.batch().await.unwrap();
            for (i, n) in [32usize, 700, 100].into_iter().enumerate() {
                hs.push(b.put(&data(40 + i as u8, n)).await.unwrap());
            }
            b.commit().await.unwrap();
            let mut tx = vol.begin();
            let e = tx.allocate(2).await.unwrap();
            tx.write(e.start, &data(50, BS)).await.unwrap();
            tx.write(BlockNo(e.start.0 + 1), &data(51, BS))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            hs.push(vol.store(b"key", &data(60, 50)).await.unwrap());
            hs.push(vol.remove(b"key").await.unwrap());
            vol.checkpoint().await.unwrap();
            let free = vol.usage().free_blocks;
            vol.unmount().await.unwrap();
            ((hs, e), free, calls.get())
        })
    };

    assert!(calls > 0, "the async engine went through the test device");
    assert_eq!(handles_a, handles_b, "handles and extents");
    assert_eq!(free_a, free_b, "free blocks");
    if let Some(i) = img_a.iter().zip(&img_b).position(|(a, b)| a != b) {
        panic!(
            "images differ first at byte {i} (block {}, offset {})",
            i / BS,
            i % BS
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2. A dropped operation is recovered as a power cut would be.

#[derive(Clone, Copy, Debug)]
enum Op {
    BigPut,
    SmallPut,
    DeletePacked,
    DeleteExtent,
    Batch3,
    Tx2,
}

const OPS: [Op; 6] = [
    Op::BigPut,
    Op::SmallPut,
    Op::DeletePacked,
    Op::DeleteExtent,
    Op::Batch3,
    Op::Tx2,
];

/// Runs `op`; returns the extent a transaction allocated.
async fn run_op<D: asynch::BlockDevice>(
    vol: &mut asynch::Volume<'_, D, K>,
    op: Op,
    base: &[Handle],
) -> Result<Option<Extent>, Error<D::Error>> {
    match op {
        Op::BigPut => {
            vol.put(&data(1, 6000)).await?;
        }
        Op::SmallPut => {
            vol.put(&data(2, 40)).await?;
        }
        Op::DeletePacked => vol.delete(base[0]).await?,
        Op::DeleteExtent => vol.delete(base[1]).await?,
        Op::Batch3 => {
            let mut b = vol.batch().await?;
            b.put(&data(3, 20)).await?;
            b.put(&data(4, 700)).await?;
            b.put(&data(5, 90)).await?;
            b.commit().await?;
        }
        Op::Tx2 => {
            let mut tx = vol.begin();
            let e = tx.allocate(2).await?;
            tx.write(e.start, &data(6, BS)).await?;
            tx.write(BlockNo(e.start.0 + 1), &data(7, BS)).await?;
            tx.commit().await?;
            return Ok(Some(e));
        }
    }
    Ok(None)
}

/// The baseline image: a few committed objects (the first packed, the second in an extent),
/// the last transactions still in the log.
fn baseline() -> (Vec<u8>, Vec<Handle>) {
    let mut img = vec![0u8; BLOCKS * BS];
    let mut mem = Mem::new();
    let dev = RamDevice::new(&mut img, BS).unwrap();
    let mut vol = vde_nostd::Volume::<_, K>::format(dev, &opts(), mem.bufs()).unwrap();
    let mut hs = Vec::new();
    for (i, n) in [100usize, 2000, 30, 5000].into_iter().enumerate() {
        hs.push(vol.put(&data(100 + i as u8, n)).unwrap());
    }
    vol.checkpoint().unwrap();
    hs.push(vol.put(&data(110, 300)).unwrap());
    drop(vol);
    (img, hs)
}

#[test]
fn a_dropped_operation_leaves_the_volume_as_a_power_cut_would() {
    let (base_img, base) = baseline();
    let mut mem = Mem::new();
    let mut mem2 = Mem::new();
    let mut points = 0;
    let mut failures = Vec::new();
    for op in OPS {
        // The uncut run: the models before and after, and the number of device calls.
        let mut img = base_img.clone();
        let (dev, calls) = Stepper::new(RamDevice::new(&mut img, BS).unwrap());
        let (before, after, n, blocks) = block_on(async {
            let mut vol = asynch::Volume::<_, K>::mount(dev, mem.bufs())
                .await
                .unwrap();
            let c0 = calls.get();
            let e = run_op(&mut vol, op, &base).await.unwrap();
            let n = calls.get() - c0;
            let blocks: Vec<BlockNo> = e
                .map(|e| vec![e.start, BlockNo(e.start.0 + 1)])
                .unwrap_or_default();
            let after = state_async(&mut vol, &blocks).await;
            drop(vol);
            // The model before, with the same blocks read.
            let mut img0 = base_img.clone();
            let dev = RamDevice::new(&mut img0, BS).unwrap();
            let mut v0 = vde_nostd::Volume::<_, K>::mount(dev, mem2.bufs()).unwrap();
            let before = state_blocking(&mut v0, &blocks);
            (before, after, n, blocks)
        });
        assert_ne!(before, after, "{op:?} changes the volume");
        assert!(n > 0, "{op:?} makes device calls");
        for k in 0..n {
            let what = format!("{op:?} dropped at call {k} of {n}");
            let point = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut img = base_img.clone();
                let (dev, calls) = Stepper::new(RamDevice::new(&mut img, BS).unwrap());
                let mut vol = block_on(asynch::Volume::<_, K>::mount(dev, mem.bufs())).unwrap();
                let c0 = calls.get();
                let done = run_until_call(run_op(&mut vol, op, &base), &calls, c0 + k);
                assert!(done.is_none(), "{what}: completed before its call {k}");
                // The image at the drop, as a power cut there would leave it (RAM: every write
                // landed).
                let mut cut_img = vol.device().inner.bytes().to_vec();
                // The next operations recover first, then work.
                let final_state = block_on(async {
                    let got = state_async(&mut vol, &blocks).await;
                    assert_one_of(&got, &before, &after, &what);
                    usable(&mut vol, &what, 200, 150).await;
                    state_async(&mut vol, &blocks).await
                });
                drop(vol);
                // The blocking engine mounts the image of the drop, and the one the async
                // recovery and the put after it left.
                for (label, image) in [("cut image", &mut cut_img), ("after recovery", &mut img)] {
                    let dev = RamDevice::new(image, BS).unwrap();
                    let mut v = vde_nostd::Volume::<_, K>::mount(dev, mem2.bufs())
                        .unwrap_or_else(|e| panic!("{what}: blocking mount of {label}: {e:?}"));
                    v.verify()
                        .unwrap_or_else(|e| panic!("{what}: blocking verify of {label}: {e:?}"));
                    let got = state_blocking(&mut v, &blocks);
                    if label == "after recovery" {
                        assert_eq!(got, final_state, "{what}: blocking view of {label}");
                    } else {
                        assert_one_of(&got, &before, &after, &format!("{what}: {label}"));
                    }
                }
            }));
            if let Err(p) = point {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{what}: {msg}"));
            }
            points += 1;
        }
    }
    assert!(points > 30, "only {points} drop points");
    assert!(
        failures.is_empty(),
        "{} of {points} drop points fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// 3. A transaction open across a recovery is interrupted.

#[test]
fn an_open_transaction_across_a_recovery_is_interrupted() {
    let mut img = vec![0u8; BLOCKS * BS];
    let mut mem = Mem::new();
    let (dev, calls) = Stepper::new(RamDevice::new(&mut img, BS).unwrap());
    block_on(async {
        let mut vol = asynch::Volume::<_, K>::format(dev, &opts(), mem.bufs())
            .await
            .unwrap();
        let kept = vol.put(&data(9, 400)).await.unwrap();
        // A and B committed, still in the log (so a write to them reads their content).
        let mut tx = vol.begin();
        let e = tx.allocate(2).await.unwrap();
        let (a, b) = (e.start, BlockNo(e.start.0 + 1));
        tx.write(a, &data(10, BS)).await.unwrap();
        tx.write(b, &data(11, BS)).await.unwrap();
        tx.commit().await.unwrap();
        let free = vol.usage().free_blocks;

        let mut tx = vol.begin();
        tx.write(a, &data(20, BS)).await.unwrap();
        let e2 = tx.allocate(1).await.unwrap();
        tx.write(e2.start, &data(22, BS)).await.unwrap();
        let k = calls.get();
        let dropped = run_until_call(tx.write(b, &data(21, BS)), &calls, k);
        assert!(dropped.is_none(), "the write of B made no device call");
        assert!(
            matches!(tx.write(b, &data(21, BS)).await, Err(Error::Interrupted)),
            "write after the recovery"
        );
        assert!(
            matches!(tx.commit().await, Err(Error::Interrupted)),
            "commit after the recovery"
        );

        // Nothing of the transaction reached the volume.
        let mut buf = vec![0u8; BS];
        vol.read_block(a, &mut buf).await.unwrap();
        assert_eq!(buf, data(10, BS), "A keeps its committed content");
        vol.read_block(b, &mut buf).await.unwrap();
        assert_eq!(buf, data(11, BS), "B keeps its committed content");
        assert_eq!(vol.usage().free_blocks, free, "the allocation is undone");
        vol.verify().await.unwrap();

        // The volume works on.
        let mut buf = [0u8; 400];
        assert_eq!(vol.get(kept, &mut buf).await.unwrap(), 400);
        assert_eq!(&buf[..], &data(9, 400)[..]);
        let h = vol.put(&data(30, 77)).await.unwrap();
        let mut buf = [0u8; 77];
        assert_eq!(vol.get(h, &mut buf).await.unwrap(), 77);
        assert_eq!(&buf[..], &data(30, 77)[..]);
        let mut tx = vol.begin();
        tx.write(a, &data(31, BS)).await.unwrap();
        tx.commit().await.unwrap();
        let mut buf = vec![0u8; BS];
        vol.read_block(a, &mut buf).await.unwrap();
        assert_eq!(buf, data(31, BS));
        vol.verify().await.unwrap();
        vol.unmount().await.unwrap();
    });
    let dev = RamDevice::new(&mut img, BS).unwrap();
    let mut v = vde_nostd::Volume::<_, K>::mount(dev, mem.bufs()).unwrap();
    v.verify().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 4. A power cut at every device call of the async path.

/// The workload of the power-cut test: each step is one acknowledged operation.
async fn cut_step<D: asynch::BlockDevice>(
    vol: &mut asynch::Volume<'_, D, K>,
    step: usize,
    base: &[Handle],
) -> Result<(), Error<D::Error>> {
    match step {
        0 => {
            vol.put(&data(70, 40)).await?;
        }
        1 => {
            vol.put(&data(71, 3000)).await?;
        }
        2 => vol.delete(base[0]).await?,
        3 => {
            let mut b = vol.batch().await?;
            b.put(&data(72, 20)).await?;
            b.put(&data(73, 700)).await?;
            b.delete(base[1]).await?;
            b.commit().await?;
        }
        4 => {
            vol.store(b"name", &data(74, 90)).await?;
        }
        _ => {
            vol.put(&data(75, 10)).await?;
        }
    }
    Ok(())
}
const CUT_STEPS: usize = 6;

#[test]
fn a_power_cut_at_every_device_call_of_the_async_path() {
    let (base_img, base) = baseline();
    let mut mem = Mem::new();
    let mut fscratch = vec![0u8; BS];

    // The uncut run: the state after each step, and the operations it takes.
    let mut models = Vec::new();
    let total = {
        let mut img = base_img.clone();
        let ram = RamDevice::new(&mut img, BS).unwrap();
        let fi = FaultInjector::new(ram, &mut fscratch, 7).unwrap();
        block_on(async {
            let mut vol = asynch::Volume::<_, K>::mount(FromBlocking(fi), mem.bufs())
                .await
                .unwrap();
            models.push(state_async(&mut vol, &[]).await);
            let c0 = vol.device().0.op_count();
            for s in 0..CUT_STEPS {
                cut_step(&mut vol, s, &base).await.unwrap();
                models.push(state_async(&mut vol, &[]).await);
            }
            // The state reads count too: the ops of the steps alone are counted below.
            let _ = c0;
            let mut img2 = base_img.clone();
            let mut m2 = Mem::new();
            let mut s2 = vec![0u8; BS];
            let ram = RamDevice::new(&mut img2, BS).unwrap();
            let fi = FaultInjector::new(ram, &mut s2, 7).unwrap();
            let mut v = asynch::Volume::<_, K>::mount(FromBlocking(fi), m2.bufs())
                .await
                .unwrap();
            let c0 = v.device().0.op_count();
            for s in 0..CUT_STEPS {
                cut_step(&mut v, s, &base).await.unwrap();
            }
            v.device().0.op_count() - c0
        })
    };
    for w in models.windows(2) {
        assert_ne!(w[0], w[1], "every step changes the volume");
    }
    assert!(total > 20, "only {total} operations");

    for k in 0..total {
        let what = format!("cut at operation {k} of {total}");
        let mut img = base_img.clone();
        let ram = RamDevice::new(&mut img, BS).unwrap();
        let fi = FaultInjector::new(ram, &mut fscratch, 7 + k).unwrap();
        let acked = block_on(async {
            let mut vol = asynch::Volume::<_, K>::mount(FromBlocking(fi), mem.bufs())
                .await
                .unwrap();
            vol.device().0.arm_power_cut(k);
            let mut acked = 0;
            while acked < CUT_STEPS {
                if cut_step(&mut vol, acked, &base).await.is_err() {
                    break;
                }
                acked += 1;
            }
            assert!(vol.device().0.power_lost(), "{what}: no cut");
            let FromBlocking(mut fi) = vol.into_device();
            fi.reboot();
            let mut vol = asynch::Volume::<_, K>::mount(FromBlocking(fi), mem.bufs())
                .await
                .unwrap_or_else(|e| panic!("{what}: remount: {e:?}"));
            vol.verify()
                .await
                .unwrap_or_else(|e| panic!("{what}: verify: {e:?}"));
            let got = state_async(&mut vol, &[]).await;
            assert!(acked < CUT_STEPS, "{what}: every step acknowledged");
            assert_one_of(&got, &models[acked], &models[acked + 1], &what);
            usable(&mut vol, &what, 201, 60).await;
            acked
        });
        let _ = acked;
    }
}

#[test]
fn the_test_device_counts_and_pends() {
    // The harness itself: a call is pending once and counted once.
    let mut img = vec![0u8; BLOCKS * BS];
    let (mut dev, calls) = Stepper::new(RamDevice::new(&mut img, BS).unwrap());
    let mut buf = vec![0u8; BS];
    let r: Option<Result<(), RamError>> = run_until_call(
        asynch::BlockDevice::read_block(&mut dev, BlockNo(0), &mut buf),
        &calls,
        0,
    );
    assert!(r.is_none());
    assert_eq!(calls.get(), 1);
    block_on(asynch::BlockDevice::read_block(
        &mut dev,
        BlockNo(0),
        &mut buf,
    ))
    .unwrap();
    assert_eq!(calls.get(), 2);
}
