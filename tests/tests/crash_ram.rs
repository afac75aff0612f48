//! Crash consistency on a RAM disk with a volatile write cache: the `vde_embedded::harness`
//! power-cut harness over [`SimRam`] (512-byte blocks, a 24-block WAL so checkpoints come often,
//! 16-block transactions) for the three standard workloads, the regression tests of the
//! extent crash bug, and the same runner over the core's `RamDevice` inside the library's
//! [`FaultInjector`] (any device can be cut so; same cut points and crash states as [`SimRam`]).
//!
//! The harness cuts the power at every device operation (a read fails, a write tears at sector
//! granularity, once as a prefix of its sectors and once scattered) and then, besides the state
//! the medium was left in, imposes up to sixteen outcomes of the writes issued since the last
//! completed flush: any subset of them, in any order (for a block written twice, the older
//! version may land last), one of them torn; every outcome when there are at most fifteen. After each: remount (recovery), `verify`, the model (acknowledged
//! state, the in-flight operation wholly present and readable or wholly absent) and the counters
//! and free space against the reference run. A second cut sweeps every operation of every other
//! recovering mount, each with three outcomes of the recovery's own unflushed writes.
//!
//! Each harness test prints `power-cut points: N, crash states: S, violations: 0`.

use vde_embedded::harness::rig::{run_ram, run_rig, Rig};
use vde_embedded::harness::unflushed::{read_all, Choice, CrashState, Unflushed};
use vde_embedded::harness::{AddModules, Config, Names, Objects, RandomTransactions, Report};
use vde_embedded::{FaultInjector, SimRam, TearMode};
use vde_nostd::format::layout::WAL_START;
use vde_nostd::{BlockDevice, Handle, ModuleSet, Volume};
use vde_tests::Mem;

const BS: usize = 512;
const BLOCKS: usize = 768;
const WAL: u64 = 24;

fn config() -> Config {
    vde_tests::ram_crash_config(WAL)
}

fn run<W: vde_embedded::harness::Workload>(cfg: &Config, blocks: usize, w: &W) -> Report {
    let t = std::time::Instant::now();
    let r = run_ram(cfg, blocks, w).expect("harness setup");
    println!("{r}");
    println!("  ({:.1} s)", t.elapsed().as_secs_f64());
    r
}

fn assert_clean(r: &Report, min_points: u64) {
    assert!(r.points >= min_points, "only {} cut points: {r}", r.points);
    assert!(r.cut_reads > 0 && r.cut_programs > 0, "{r}");
    assert!(
        r.states > r.total_points(),
        "no unflushed-write outcome beyond the medium's own state: {r}"
    );
    assert!(r.replaying_recoveries > 0, "nothing replayed: {r}");
    assert!(r.second_points > 0, "no second cut during recovery: {r}");
    assert_eq!(r.violations, 0, "{r}");
}

#[test]
fn power_cut_at_every_operation_random_transactions() {
    let w = RandomTransactions {
        seed: 0x1234_5678,
        transactions: 80,
        max_alloc: 4,
        max_live: 24,
    };
    assert_clean(&run(&config(), BLOCKS, &w), 1000);
}

#[test]
fn power_cut_at_every_operation_add_module() {
    let w = AddModules {
        modules: &["snapshots", "xattr", "replication", "encryption"],
        now: 77,
    };
    // Without the block cache: every read the recovery makes is a cut point.
    let cfg = Config {
        cache_blocks: 0,
        ..config()
    };
    assert_clean(&run(&cfg, BLOCKS * 4, &w), 120);
}

#[test]
fn power_cut_at_every_operation_objects() {
    // 130 operations: ~560,000 power-cut points since extents have a map bit to set and clear
    // (150 took ~640,000, over the CI time budget).
    let w = Objects {
        seed: 0x000B_1EC7,
        operations: 130,
        min_len: 1,
        max_len: 3000,
        max_live_bytes: 24 * 1024,
        batches: true,
    };
    assert_clean(&run(&config(), BLOCKS, &w), 3000);
}

/// Mostly small objects, so most transactions change a few bytes of blocks already dirty in the
/// log (shared blocks, the slot-index head: byte-range records on long chains), with batches
/// that change many slot-index entries at once: a cut anywhere must leave a prefix of the
/// commits.
#[test]
fn power_cut_at_every_operation_small_objects_and_batches() {
    let w = Objects {
        seed: 0x5EED_0B1E,
        operations: 160,
        min_len: 1,
        max_len: 600,
        max_live_bytes: 16 * 1024,
        batches: true,
    };
    assert_clean(&run(&config(), BLOCKS, &w), 3000);
}

/// Named objects (issue "Objects a person can find"): stores that mostly replace a value,
/// removes and batches of both; every cut leaves each key's old value or its new one.
#[test]
fn power_cut_at_every_operation_named_objects() {
    let mut cfg = config();
    cfg.format.modules = ModuleSet::OBJECTS | ModuleSet::NAMES;
    // 30 operations: ~2,900 cut points, ~212,000 with the second cuts during recovery (45 made
    // 354,000 in 69 s: every store reads the name table's root and a leaf, and 512-byte
    // leaves split often).
    let w = Names {
        seed: 0x4A3E5,
        operations: 30,
        keys: 30,
        max_len: 2500,
    };
    // ~1,700 with the block cache (a block read again is copied from RAM, not read).
    assert_clean(&run(&cfg, BLOCKS, &w), 1400);
}

// ---------- regressions: the extent crash bug (issue "an extent put can commit without its
// data blocks") ----------

/// A formatted RAM image with the objects module.
fn image() -> Vec<u8> {
    vde_tests::fresh_image(BS, BLOCKS, WAL)
}

/// After `work` is cut at each of its operations in turn, imposes `outcome(window)` (the writes
/// since the last flush, choosing per block) and checks the remounted volume: `verify`, and the
/// in-flight put either wholly present (`expect_put` reads back exactly, one more object) or
/// wholly absent (the handle is refused, counters and free blocks as before).
fn cut_everywhere(
    before: impl Fn(&mut Volume<'_, &mut Unflushed<&mut SimRam<'_>>, 16>),
    payload: &[u8],
    outcome: impl Fn(&vde_embedded::harness::unflushed::Window, u64) -> CrashState,
) -> usize {
    let base = image();
    // The uncut run: the put's handle and the counters before and after.
    let (handle, before_stats, after_stats, ops) = {
        let mut img = base.clone();
        let mut ram = SimRam::new(&mut img, BS, 1).unwrap();
        let durable = read_all(&mut ram).unwrap();
        let mut dev = Unflushed::new(&mut ram, durable);
        let mut mem = Mem::new(BS, 16, 256);
        let mut vol = Volume::<_, 16>::mount(&mut dev, mem.bufs()).unwrap();
        before(&mut vol);
        let s0 = (vol.object_stats().unwrap(), vol.usage().free_blocks);
        let start = vol.device().inner().op_count();
        let h = vol.put(payload).unwrap();
        let ops = vol.device().inner().op_count() - start;
        let s1 = (vol.object_stats().unwrap(), vol.usage().free_blocks);
        (h, s0, s1, ops)
    };
    let mut tried = 0;
    for k in 0..ops {
        let mut img = base.clone();
        let mut ram = SimRam::new(&mut img, BS, k).unwrap();
        let durable = read_all(&mut ram).unwrap();
        let mut dev = Unflushed::new(&mut ram, durable);
        {
            let mut mem = Mem::new(BS, 16, 256);
            let mut vol = Volume::<_, 16>::mount(&mut dev, mem.bufs()).unwrap();
            before(&mut vol);
            vol.device().inner().arm_power_cut(k);
            assert!(vol.put(payload).is_err(), "cut {k} not reached");
        }
        let window = dev.window();
        drop(dev);
        ram.reboot();
        let st = outcome(&window, k);
        if st.is_keep() {
            continue;
        }
        tried += 1;
        st.apply(&window, &mut ram).unwrap();
        let mut mem = Mem::new(BS, 16, 256);
        let mut vol = Volume::<_, 16>::mount(&mut ram, mem.bufs())
            .unwrap_or_else(|e| panic!("cut {k}, {}: mount {e:?}", st.describe(&window)));
        let at = format!("cut {k}, {}", st.describe(&window));
        vol.verify()
            .unwrap_or_else(|e| panic!("{at}: verify {e:?}"));
        let mut buf = vec![0u8; payload.len() + 64];
        let now = (vol.object_stats().unwrap(), vol.usage().free_blocks);
        match vol.get(handle, &mut buf) {
            Ok(n) => {
                assert_eq!(
                    &buf[..n],
                    payload,
                    "{at}: the in-flight put reads back wrong"
                );
                assert_eq!(now, after_stats, "{at}: counters after the put");
            }
            Err(vde_nostd::Error::BadHandle { .. }) => {
                assert_eq!(now, before_stats, "{at}: counters without the put");
            }
            Err(e) => panic!("{at}: the in-flight put is neither there nor gone: {e:?}"),
        }
    }
    tried
}

/// An outcome where every write into the WAL area and the superblock and WAL-header blocks lands
/// (its newest version) and every other block is left with `data` (its choice).
fn log_lands(
    data: Choice,
) -> impl Fn(&vde_embedded::harness::unflushed::Window, u64) -> CrashState {
    let wal = wal_range();
    move |w, _| CrashState {
        choices: w
            .blocks
            .iter()
            .map(|t| {
                if wal.contains(&t.block) || t.block < WAL_START {
                    Choice::Version(t.versions.len() - 1)
                } else {
                    data
                }
            })
            .collect(),
    }
}

fn wal_range() -> std::ops::Range<u64> {
    let mut img = image();
    let mut mem = Mem::new(BS, 16, 256);
    let dev = SimRam::new(&mut img, BS, 1).unwrap();
    let vol = Volume::<_, 16>::mount(dev, mem.bufs()).unwrap();
    let l = *vol.layout();
    l.wal_start..l.wal_start + l.wal_blocks
}

fn data(n: usize, x: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(29) ^ x).collect()
}

/// The reported crash state: an extent put (20,000 bytes here: 40 blocks of 512 B is more than a
/// transaction; 5,000 bytes: 10 blocks) whose WAL writes land while its unlogged data blocks are
/// lost. Before the fix the commit record and the data shared a flush window, and the remounted
/// volume counted an extent object it could not read.
#[test]
fn regression_extent_commit_without_its_data_blocks() {
    for size in [5000usize, 2000, 600] {
        let payload = data(size, 7);
        // Every data write lost: the report's `base.img` + WAL header + WAL blocks.
        let tried = cut_everywhere(|_| {}, &payload, log_lands(Choice::Durable));
        assert!(tried > 0, "no cut left unflushed writes to drop ({size} B)");
    }
}

/// The second form: a rolled-back batch has written extent blocks unlogged; the next put takes
/// the same blocks; if the rolled-back batch's older write lands last, the committed object
/// used to fail its checksum. Here every touched block is left with its *oldest* version of the
/// window (the log's last), for a cut at every operation of the put.
#[test]
fn regression_rolled_back_extent_write_lands_last() {
    let payload = data(1500, 3);
    let before = |vol: &mut Volume<'_, &mut Unflushed<&mut SimRam<'_>>, 16>| {
        let mut b = vol.batch().unwrap();
        b.put(&data(1500, 99)).unwrap();
        b.rollback();
    };
    // Every data block left with the oldest version of the window.
    let tried = cut_everywhere(before, &payload, log_lands(Choice::Version(0)));
    assert!(tried > 0);
    // The same put after the rolled-back batch is readable when nothing is cut.
    let mut img = image();
    let mut mem = Mem::new(BS, 16, 256);
    let dev = SimRam::new(&mut img, BS, 1).unwrap();
    let mut vol = Volume::<_, 16>::mount(dev, mem.bufs()).unwrap();
    let mut b = vol.batch().unwrap();
    b.put(&data(1500, 99)).unwrap();
    b.rollback();
    let h = vol.put(&payload).unwrap();
    let mut buf = vec![0u8; 2000];
    let n = vol.get(h, &mut buf).unwrap();
    assert_eq!(&buf[..n], &payload[..]);
    assert!(matches!(h, Handle::Extent { .. }));
}

/// An extent put costs exactly one flush more than a packed put: the one that orders its
/// unlogged payload before its commit record; a packed put writes nothing unlogged.
#[test]
fn an_extent_put_flushes_its_payload_before_the_commit() {
    #[derive(Default)]
    struct Trace(Vec<char>);
    struct Tracing<'a, D>(D, &'a mut Trace);
    impl<D: BlockDevice> BlockDevice for Tracing<'_, D> {
        type Error = D::Error;
        fn block_size(&self) -> usize {
            self.0.block_size()
        }
        fn block_count(&self) -> u64 {
            self.0.block_count()
        }
        fn read_block(&mut self, b: vde_nostd::BlockNo, buf: &mut [u8]) -> Result<(), D::Error> {
            self.0.read_block(b, buf)
        }
        fn write_block(&mut self, b: vde_nostd::BlockNo, buf: &[u8]) -> Result<(), D::Error> {
            self.1 .0.push('w');
            self.0.write_block(b, buf)
        }
        fn flush(&mut self) -> Result<(), D::Error> {
            self.1 .0.push('F');
            self.0.flush()
        }
        fn append(
            &mut self,
            b: vde_nostd::BlockNo,
            offset: usize,
            data: &[u8],
        ) -> Result<(), D::Error> {
            self.1 .0.push('a');
            self.0.append(b, offset, data)
        }
    }
    let mut img = image();
    let mut mem = Mem::new(BS, 16, 256);
    let mut trace = Trace::default();
    let ram = SimRam::new(&mut img, BS, 1).unwrap();
    let mut vol = Volume::<_, 16>::mount(Tracing(ram, &mut trace), mem.bufs()).unwrap();
    vol.device().1 .0.clear();
    vol.put(&data(100, 1)).unwrap();
    let packed: String = vol.device().1 .0.iter().collect();
    vol.device().1 .0.clear();
    vol.put(&data(1500, 2)).unwrap();
    let extent: String = vol.device().1 .0.iter().collect();
    let flushes = |s: &str| s.matches('F').count();
    assert_eq!(
        flushes(&extent),
        flushes(&packed) + 1,
        "{packed} / {extent}"
    );
    // The extent's payload (4 blocks of 512 B) is written, then flushed, before any log write.
    assert!(extent.starts_with("wwwwF"), "{extent}");
}

/// The core's fault-free [`RamDevice`](vde_nostd::RamDevice) inside the library's
/// [`FaultInjector`] (a block of scratch composing the torn writes), as a [`Rig`]: what any
/// device under the wrapper needs to run under the same power-cut runner as the simulators.
struct InjectedRam<'m> {
    dev: FaultInjector<'m, vde_nostd::RamDevice<'m>>,
}

impl<'m> Rig for InjectedRam<'m> {
    type Medium = FaultInjector<'m, vde_nostd::RamDevice<'m>>;
    type Dev<'r>
        = &'r mut FaultInjector<'m, vde_nostd::RamDevice<'m>>
    where
        Self: 'r;
    fn power_up(&mut self, seed: u64, tear: TearMode, _op_count: u64) {
        self.dev.reboot();
        self.dev.set_faults(seed, tear);
    }
    fn reboot(&mut self) {
        self.dev.reboot();
    }
    fn image(&self) -> &[u8] {
        self.dev.inner().bytes()
    }
    fn image_mut(&mut self) -> &mut [u8] {
        self.dev.inner_mut().bytes_mut()
    }
    fn medium(&mut self) -> &mut Self::Medium {
        &mut self.dev
    }
    fn open(&mut self) -> Result<Self::Dev<'_>, String> {
        Ok(&mut self.dev)
    }
    fn medium_of<'a>(dev: &'a mut Self::Dev<'_>) -> &'a mut Self::Medium {
        dev
    }
}

#[test]
fn the_runner_cuts_any_device_under_the_fault_injector_as_it_cuts_sim_ram() {
    let w = RandomTransactions {
        seed: 0x5EED,
        transactions: 20,
        max_alloc: 4,
        max_live: 24,
    };
    let cfg = config();
    let sim = run(&cfg, BLOCKS, &w);
    let mut img = vec![0u8; BLOCKS * BS];
    let mut scratch = vec![0u8; BS];
    let ram = vde_nostd::RamDevice::new(&mut img, BS).unwrap();
    let dev = FaultInjector::new(ram, &mut scratch, cfg.seed).unwrap();
    let r = run_rig(&cfg, &mut InjectedRam { dev }, &w).expect("harness setup");
    println!("{r}");
    assert_clean(&r, 100);
    let key = |r: &Report| {
        (
            r.ops,
            r.points,
            r.cut_reads,
            r.cut_programs,
            r.replaying_recoveries,
            r.second_points,
            r.states,
        )
    };
    assert_eq!(key(&r), key(&sim), "{r}\n{sim}");
    assert_eq!(r.reference, sim.reference);
}
