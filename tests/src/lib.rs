//! Shared helpers for the cross-crate tests: owned buffers for a volume, a RAM image, the
//! object and transaction models, the RAM crash suites' settings, and the async engine's test
//! executor and device ([`asynch`]). (The RAM power-cut device is `vde_embedded::SimRam`, driven by
//! the `vde_embedded::harness`.)

use vde_nostd::device::RamDevice;
use vde_nostd::Buffers;

/// Committed blocks a test volume caches: every test that mounts through [`Mem`] checks the
/// block cache too.
pub const CACHE_BLOCKS: usize = 3;

/// Owned memory for a volume's buffers.
pub struct Mem {
    /// Scratch ([`Buffers::SCRATCH_BLOCKS`] blocks and a cache of [`CACHE_BLOCKS`]).
    pub scratch: Vec<u8>,
    /// Transaction buffer.
    pub txn: Vec<u8>,
    /// RAM slot index.
    pub index: Vec<u8>,
}

impl Mem {
    /// Buffers for block size `bs` and transactions of `k` blocks, index for `entries` shared
    /// blocks.
    pub fn new(bs: usize, k: usize, entries: usize) -> Mem {
        Mem {
            scratch: vec![0; Buffers::scratch_with_cache(bs, CACHE_BLOCKS)],
            txn: vec![0; bs * k],
            index: vec![0; entries * vde_nostd::format::slot_index::entry_size(bs)],
        }
    }
    /// Borrows them as [`Buffers`].
    pub fn bufs<const K: usize>(&mut self) -> Buffers<'_, K> {
        Buffers {
            scratch: &mut self.scratch,
            txn: &mut self.txn,
            index: &mut self.index,
        }
    }
}

/// A formatted RAM image of `blocks` blocks of `bs` bytes with the objects module.
pub fn fresh_image(bs: usize, blocks: usize, wal_blocks: u64) -> Vec<u8> {
    let mut img = vec![0u8; bs * blocks];
    let mut mem = Mem::new(bs, 16, 1024);
    let dev = RamDevice::new(&mut img, bs).expect("block size");
    let opts = vde_nostd::FormatOptions {
        wal_blocks: Some(wal_blocks),
        volume_id: [0x42; 16],
        now: 1,
        modules: vde_nostd::ModuleSet::OBJECTS,
    };
    let vol = vde_nostd::Volume::<_, 16>::format(dev, &opts, mem.bufs()).expect("format");
    let _ = vol.unmount().expect("unmount");
    img
}

pub mod objmodel {
    //! The object API against a `HashMap` model, shared by the RAM, flash and NAND suites: an
    //! operation strategy, the model's step, and the after-step check.

    use proptest::prelude::*;
    use std::collections::HashMap;
    use vde_nostd::{BlockDevice, Error, Handle, Volume};

    /// One step of an object workload.
    #[derive(Debug, Clone)]
    pub enum ObjOp {
        /// Put an object of this many bytes, content seeded by the byte.
        Put(usize, u8),
        /// Delete the n-th live object (in handle order).
        Delete(usize),
        /// A batch of puts (true) and deletes (false).
        Batch(Vec<(bool, usize, u8)>),
        /// Remount (handled by the caller, which owns the device).
        Remount,
    }

    /// Operations with sizes from 1 byte to `max_size` bytes (several blocks).
    pub fn obj_op(max_size: usize) -> impl Strategy<Value = ObjOp> {
        prop_oneof![
            6 => (prop_oneof![1usize..300, 300usize..2100, 2100usize..max_size], any::<u8>())
                .prop_map(|(n, b)| ObjOp::Put(n, b)),
            3 => any::<usize>().prop_map(ObjOp::Delete),
            1 => proptest::collection::vec((any::<bool>(), 1usize..3000, any::<u8>()), 1..5)
                .prop_map(ObjOp::Batch),
            1 => Just(ObjOp::Remount),
        ]
    }

    /// Deterministic payload bytes.
    pub fn payload(n: usize, b: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(b))
            .collect()
    }

    /// What should be stored, and what was deleted.
    #[derive(Default)]
    pub struct ObjModel {
        /// Live objects by raw handle.
        pub live: HashMap<u64, Vec<u8>>,
        /// Deleted handles.
        pub dead: Vec<u64>,
    }

    impl ObjModel {
        fn sorted_keys(&self) -> Vec<u64> {
            let mut keys: Vec<u64> = self.live.keys().copied().collect();
            keys.sort();
            keys
        }

        /// Applies `op` (other than `Remount`) to the volume and the model.
        pub fn apply<D: BlockDevice, const K: usize>(
            &mut self,
            vol: &mut Volume<'_, D, K>,
            op: &ObjOp,
        ) -> Result<(), TestCaseError> {
            match op {
                ObjOp::Put(n, b) => {
                    let d = payload(*n, *b);
                    let h = vol
                        .put(&d)
                        .map_err(|e| TestCaseError::fail(format!("put: {e:?}")))?;
                    prop_assert!(
                        !self.live.contains_key(&h.raw()),
                        "handle reused while live"
                    );
                    self.live.insert(h.raw(), d);
                }
                ObjOp::Delete(pick) => {
                    let keys = self.sorted_keys();
                    if !keys.is_empty() {
                        let k = keys[pick % keys.len()];
                        vol.delete(Handle::from_raw(k))
                            .map_err(|e| TestCaseError::fail(format!("delete: {e:?}")))?;
                        self.live.remove(&k);
                        self.dead.push(k);
                    }
                }
                ObjOp::Batch(items) => {
                    let mut keys = self.sorted_keys();
                    let fail = |e: Error<D::Error>| TestCaseError::fail(format!("batch: {e:?}"));
                    let mut b = vol.batch().map_err(fail)?;
                    let mut added = Vec::new();
                    let mut removed = Vec::new();
                    for (is_put, n, x) in items {
                        if *is_put || keys.is_empty() {
                            let d = payload(*n, *x);
                            added.push((b.put(&d).map_err(fail)?.raw(), d));
                        } else {
                            let k = keys.remove(n % keys.len());
                            b.delete(Handle::from_raw(k)).map_err(fail)?;
                            removed.push(k);
                        }
                    }
                    b.commit().map_err(fail)?;
                    self.live.extend(added);
                    for k in removed {
                        self.live.remove(&k);
                        self.dead.push(k);
                    }
                }
                ObjOp::Remount => {}
            }
            Ok(())
        }

        /// Every live object reads back exactly, every deleted handle is `BadHandle`, and the
        /// counters match.
        pub fn check<D: BlockDevice, const K: usize>(
            &self,
            vol: &mut Volume<'_, D, K>,
        ) -> Result<(), TestCaseError> {
            let mut buf = vec![0u8; 1 << 16];
            for (k, d) in &self.live {
                let n = vol
                    .get(Handle::from_raw(*k), &mut buf)
                    .map_err(|e| TestCaseError::fail(format!("get {k:016x}: {e:?}")))?;
                prop_assert_eq!(&buf[..n], &d[..]);
            }
            for k in &self.dead {
                if self.live.contains_key(k) {
                    continue;
                }
                let r = vol.get(Handle::from_raw(*k), &mut buf);
                prop_assert!(
                    matches!(r, Err(Error::BadHandle { .. })),
                    "stale handle {k:016x} gave {r:?}"
                );
            }
            let st = vol
                .object_stats()
                .map_err(|e| TestCaseError::fail(format!("stats: {e:?}")))?;
            prop_assert_eq!(st.counters.objects, self.live.len() as u64);
            prop_assert_eq!(
                st.counters.bytes,
                self.live.values().map(|v| v.len() as u64).sum::<u64>()
            );
            Ok(())
        }
    }
}

pub mod txmodel {
    //! Raw transactions against a block model, shared by the flash and NAND suites: random
    //! commits and rollbacks of allocate / rewrite / release, remounts and checkpoints; after
    //! every step each live block reads back with its last committed stamp, is allocated, and
    //! the free count matches the runs held. A rollback must not touch the medium.

    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use vde_nostd::types::Extent;
    use vde_nostd::{BlockDevice, BlockNo, FormatOptions, Volume};

    use crate::Mem;

    /// One operation inside a transaction.
    #[derive(Debug, Clone)]
    pub enum TxOp {
        /// Allocate a run of this many blocks and write them.
        Alloc(u64),
        /// Rewrite the n-th live block.
        Rewrite(usize),
        /// Release the n-th live run.
        Release(usize),
    }

    /// One step of the workload.
    #[derive(Debug, Clone)]
    pub enum Step {
        /// A transaction that commits.
        Commit(Vec<TxOp>),
        /// A transaction that rolls back.
        Rollback(Vec<TxOp>),
        /// Unmount (without checkpoint) and mount again.
        Remount,
        /// An explicit checkpoint.
        Checkpoint,
    }

    /// The step strategy.
    pub fn step() -> impl Strategy<Value = Step> {
        let tx_op = prop_oneof![
            3 => (1u64..4).prop_map(TxOp::Alloc),
            3 => any::<usize>().prop_map(TxOp::Rewrite),
            1 => any::<usize>().prop_map(TxOp::Release),
        ];
        let ops = proptest::collection::vec(tx_op, 1..4);
        prop_oneof![
            6 => ops.clone().prop_map(Step::Commit),
            2 => ops.prop_map(Step::Rollback),
            1 => Just(Step::Remount),
            1 => Just(Step::Checkpoint),
        ]
    }

    /// The content of `block` written by step `stamp`.
    pub fn stamped(block: u64, stamp: u32, bs: usize) -> Vec<u8> {
        let mut d = vec![(stamp as u8) ^ 0x3C; bs];
        d[..8].copy_from_slice(&block.to_le_bytes());
        d[8..12].copy_from_slice(&stamp.to_le_bytes());
        d
    }

    /// Formats `dev` with `opts` and runs `steps` against the model. `medium_ops` reports the
    /// medium's (programs, erases), which a rollback must leave unchanged; `reopen` runs between
    /// unmount and mount (a translation layer rescans there).
    pub fn run<D: BlockDevice>(
        dev: D,
        opts: &FormatOptions,
        steps: Vec<Step>,
        medium_ops: impl Fn(&D) -> (u64, u64),
        mut reopen: impl FnMut(&mut D),
    ) -> Result<(), TestCaseError> {
        let bs = dev.block_size();
        let fail =
            |what: &str, e: &dyn core::fmt::Debug| TestCaseError::fail(format!("{what}: {e:?}"));
        let mut mem = Mem::new(bs, 16, 0);
        let mut vol =
            Volume::<_, 16>::format(dev, opts, mem.bufs()).map_err(|e| fail("format", &e))?;
        let mut live: BTreeMap<u64, u32> = BTreeMap::new();
        let mut runs: Vec<Extent> = Vec::new();
        let free0 = vol.usage().free_blocks;
        let mut buf = vec![0u8; bs];
        for (t, s) in steps.into_iter().enumerate() {
            let stamp = t as u32 + 1;
            let commit = matches!(s, Step::Commit(_));
            match s {
                Step::Commit(ops) | Step::Rollback(ops)
                    if live.len() > 40 && ops.iter().any(|o| matches!(o, TxOp::Alloc(_))) =>
                {
                    // Keep the volume from filling up: release everything instead.
                    let mut tx = vol.begin();
                    for e in runs.drain(..) {
                        tx.release(e).map_err(|e| fail("release", &e))?;
                    }
                    tx.commit().map_err(|e| fail("commit", &e))?;
                    live.clear();
                }
                Step::Commit(ops) | Step::Rollback(ops) => {
                    let mut next = live.clone();
                    let mut next_runs = runs.clone();
                    let before = medium_ops(vol.device());
                    let mut tx = vol.begin();
                    for o in &ops {
                        match *o {
                            TxOp::Alloc(n) => {
                                let e = tx.allocate(n).map_err(|e| fail("allocate", &e))?;
                                next_runs.push(e);
                                for b in e.start.0..e.start.0 + e.len {
                                    next.insert(b, stamp);
                                }
                            }
                            TxOp::Rewrite(i) if !next.is_empty() => {
                                let b = *next.keys().nth(i % next.len()).expect("non-empty");
                                next.insert(b, stamp);
                            }
                            TxOp::Release(i) if !next_runs.is_empty() => {
                                let e = next_runs.swap_remove(i % next_runs.len());
                                tx.release(e).map_err(|e| fail("release", &e))?;
                                for b in e.start.0..e.start.0 + e.len {
                                    next.remove(&b);
                                }
                            }
                            _ => {}
                        }
                    }
                    for (&b, &s) in &next {
                        if s == stamp {
                            tx.write(BlockNo(b), &stamped(b, stamp, bs))
                                .map_err(|e| fail("write", &e))?;
                        }
                    }
                    // Reads inside the transaction see its writes.
                    if let Some((&b, &s)) = next.iter().find(|(_, s)| **s == stamp) {
                        tx.read(BlockNo(b), &mut buf)
                            .map_err(|e| fail("read", &e))?;
                        prop_assert!(
                            buf == stamped(b, s, bs),
                            "read in the transaction: block {} lacks stamp {}",
                            b,
                            s
                        );
                    }
                    if commit {
                        tx.commit().map_err(|e| fail("commit", &e))?;
                        live = next;
                        runs = next_runs;
                    } else {
                        tx.rollback();
                        // Nothing reached the medium: no program, no erase.
                        prop_assert_eq!(medium_ops(vol.device()), before);
                    }
                }
                Step::Remount => {
                    let mut d = vol.into_device();
                    reopen(&mut d);
                    vol = Volume::<_, 16>::mount(d, mem.bufs()).map_err(|e| fail("mount", &e))?;
                }
                Step::Checkpoint => vol.checkpoint().map_err(|e| fail("checkpoint", &e))?,
            }
            for (&b, &s) in &live {
                prop_assert!(vol
                    .is_allocated(BlockNo(b))
                    .map_err(|e| fail("bitmap", &e))?);
                vol.read_block(BlockNo(b), &mut buf)
                    .map_err(|e| fail("read", &e))?;
                prop_assert!(
                    buf == stamped(b, s, bs),
                    "block {} does not hold stamp {}",
                    b,
                    s
                );
            }
            let held: u64 = runs.iter().map(|e| e.len).sum();
            prop_assert_eq!(vol.usage().free_blocks, free0 - held);
        }
        vol.verify().map_err(|e| fail("verify", &e))?;
        Ok(())
    }
}

/// The RAM-disk power-cut suites' harness settings (`crash_ram`, and `async_powercut` over the
/// async engine): 512-byte blocks, a `wal` -block log so checkpoints come often, the objects
/// module, every outcome of the unflushed writes up to 16 per cut, both tear modes, and a second
/// cut during every other recovery.
pub fn ram_crash_config(wal: u64) -> vde_embedded::harness::Config {
    use vde_embedded::harness::{Config, TearPlan};
    use vde_nostd::{FormatOptions, ModuleSet};
    Config {
        format: FormatOptions {
            wal_blocks: Some(wal),
            volume_id: [0x42; 16],
            now: 1,
            modules: ModuleSet::OBJECTS,
        },
        index_entries: 256,
        crash_states: 16,
        second_crash_states: 3,
        second_cut_every: 2,
        tear: TearPlan::Both,
        ..Config::new(0, 512)
    }
}

/// The async engine's test tools: the executor (`block_on`, the harness's: a loop polling with
/// a no-op waker, no allocation) and [`asynch::Stepper`], a blocking device as an async one whose
/// every I/O call is counted and pending once (so a test can drop an operation at call `k`, and
/// the engine's futures are really suspended).
pub mod asynch {
    use std::cell::Cell;
    use std::future::Future;
    use std::rc::Rc;
    use std::task::{Context, Poll};

    use vde_nostd::asynch;
    use vde_nostd::BlockNo;

    pub use vde_embedded::asynch::harness::block_on;

    /// A future that is pending once, then ready.
    pub struct YieldOnce(pub bool);

    impl Future for YieldOnce {
        type Output = ();
        fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                Poll::Ready(())
            } else {
                self.0 = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    /// An async device over a blocking one: each I/O call is counted, returns `Pending` once, then
    /// completes on the blocking device.
    pub struct Stepper<D> {
        /// The blocking device.
        pub inner: D,
        calls: Rc<Cell<u64>>,
    }

    impl<D> Stepper<D> {
        /// `inner` as an async device, and the count of its I/O calls so far.
        pub fn new(inner: D) -> (Self, Rc<Cell<u64>>) {
            let calls = Rc::new(Cell::new(0));
            (
                Stepper {
                    inner,
                    calls: calls.clone(),
                },
                calls,
            )
        }
        /// Counts a call and is pending once.
        async fn step(&self) {
            self.calls.set(self.calls.get() + 1);
            YieldOnce(false).await;
        }
    }

    impl<D: vde_nostd::BlockDevice> asynch::BlockDevice for Stepper<D> {
        type Error = D::Error;
        fn block_size(&self) -> usize {
            self.inner.block_size()
        }
        fn block_count(&self) -> u64 {
            self.inner.block_count()
        }
        async fn read_block(&mut self, block: BlockNo, buf: &mut [u8]) -> Result<(), D::Error> {
            self.step().await;
            self.inner.read_block(block, buf)
        }
        fn reads_partial(&self) -> bool {
            self.inner.reads_partial()
        }
        async fn read_at(
            &mut self,
            block: BlockNo,
            offset: usize,
            buf: &mut [u8],
        ) -> Result<(), D::Error> {
            self.step().await;
            self.inner.read_at(block, offset, buf)
        }
        async fn write_block(&mut self, block: BlockNo, buf: &[u8]) -> Result<(), D::Error> {
            self.step().await;
            self.inner.write_block(block, buf)
        }
        async fn flush(&mut self) -> Result<(), D::Error> {
            self.step().await;
            self.inner.flush()
        }
        fn append_unit(&self) -> usize {
            self.inner.append_unit()
        }
        async fn append(
            &mut self,
            block: BlockNo,
            offset: usize,
            data: &[u8],
        ) -> Result<(), D::Error> {
            self.step().await;
            self.inner.append(block, offset, data)
        }
        fn programs_in_place(&self) -> bool {
            self.inner.programs_in_place()
        }
        async fn program(
            &mut self,
            block: BlockNo,
            offset: usize,
            data: &[u8],
        ) -> Result<(), D::Error> {
            self.step().await;
            self.inner.program(block, offset, data)
        }
        async fn discard(&mut self, start: BlockNo, count: u64) -> Result<(), D::Error> {
            self.step().await;
            self.inner.discard(start, count)
        }
    }
}
