//! The core never allocates: a counting global allocator must see zero allocations across
//! format, mount, scan, commit, recovery, region addition, and put/get/delete/pack/unpack/free,
//! in the blocking engine and in the async one (with an operation dropped half-way and the
//! recovery the next one makes).

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Waker};
use vde_nostd::device::RamDevice;
use vde_nostd::{BlockNo, Buffers, FormatOptions, ModuleSet, Volume};
use vde_tests::asynch::{block_on, Stepper};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static ARMED: AtomicBool = AtomicBool::new(false);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if ARMED.load(Ordering::SeqCst) {
            ALLOCS.fetch_add(1, Ordering::SeqCst);
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn core_operations_allocate_nothing() {
    const BS: usize = 4096;
    let mut img = vec![0u8; BS * 512];
    let mut scratch = vec![0u8; vde_nostd::Buffers::scratch_min(BS, false)];
    let mut txn = vec![0u8; BS * 16];
    let mut index = vec![0u8; 64 * 16];
    let mut out = vec![0u8; 20000];
    let small = [7u8; 100];
    let big = vec![9u8; 10000];

    ARMED.store(true, Ordering::SeqCst);
    {
        let dev = RamDevice::new(&mut img, BS).unwrap();
        let opts = FormatOptions {
            wal_blocks: Some(16),
            modules: ModuleSet::OBJECTS,
            ..FormatOptions::default()
        };
        let bufs = Buffers {
            scratch: &mut scratch,
            txn: &mut txn,
            index: &mut index,
        };
        let mut vol = Volume::<_, 16>::format(dev, &opts, bufs).unwrap();
        let _ = vol.first_fit(64).unwrap();
        let _ = vol.count_free().unwrap();
        vol.free_runs(1, |_| true).unwrap();
        let mut tx = vol.begin();
        let e = tx.allocate(2).unwrap();
        tx.write(e.start, &[1u8; BS]).unwrap();
        tx.commit().unwrap();
        vol.add_module_regions(vde_nostd::modules::by_name("xattr").unwrap(), 5)
            .unwrap();
        let h1 = vol.put(&small).unwrap();
        let h2 = vol.put(&big).unwrap();
        let h3 = vol.pack(&small).unwrap();
        assert_eq!(vol.get(h1, &mut out).unwrap(), 100);
        assert_eq!(vol.get(h2, &mut out).unwrap(), 10000);
        assert_eq!(vol.unpack(h3, &mut out).unwrap(), 100);
        vol.free(h3).unwrap();
        vol.delete(h1).unwrap();
        let mut b = vol.batch().unwrap();
        b.put(&small).unwrap();
        b.delete(h2).unwrap();
        b.commit().unwrap();
        vol.verify().unwrap();
        let _ = vol.read_block(BlockNo(0), &mut out[..BS]);
        let _ = vol.into_device(); // crash: recovery on the next mount
        let dev = RamDevice::new(&mut img, BS).unwrap();
        let bufs = Buffers {
            scratch: &mut scratch,
            txn: &mut txn,
            index: &mut index,
        };
        let vol = Volume::<_, 16>::mount(dev, bufs).unwrap();
        assert!(vol.recovery_report().replayed > 0);
        let _ = vol.unmount().unwrap();
    }
    // The async engine, the same way, through a device that is pending once per call.
    {
        // The test device counts its calls in an `Rc`: built with the count off.
        ARMED.store(false, Ordering::SeqCst);
        let (dev, _calls) = Stepper::new(RamDevice::new(&mut img, BS).unwrap());
        ARMED.store(true, Ordering::SeqCst);
        let bufs = Buffers {
            scratch: &mut scratch,
            txn: &mut txn,
            index: &mut index,
        };
        block_on(async {
            let mut vol = vde_nostd::asynch::Volume::<_, 16>::mount(dev, bufs)
                .await
                .unwrap();
            let h1 = vol.put(&small).await.unwrap();
            let h2 = vol.put(&big).await.unwrap();
            assert_eq!(vol.get(h1, &mut out).await.unwrap(), 100);
            let mut tx = vol.begin();
            let e = tx.allocate(1).await.unwrap();
            tx.write(e.start, &[2u8; BS]).await.unwrap();
            tx.commit().await.unwrap();
            let mut b = vol.batch().await.unwrap();
            b.put(&small).await.unwrap();
            b.delete(h1).await.unwrap();
            b.commit().await.unwrap();
            // A put dropped at its first pending device call; the next operation recovers.
            {
                let mut put = std::pin::pin!(vol.put(&big));
                let mut cx = Context::from_waker(Waker::noop());
                assert!(put.as_mut().poll(&mut cx).is_pending());
            }
            assert_eq!(vol.get(h2, &mut out).await.unwrap(), 10000);
            vol.verify().await.unwrap();
            let _ = vol.unmount().await.unwrap();
        });
    }
    ARMED.store(false, Ordering::SeqCst);
    let n = ALLOCS.load(Ordering::SeqCst);
    println!("heap allocations in core operations: {n}");
    assert_eq!(n, 0);
}
