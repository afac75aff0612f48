//! A volume with bitmap-block summaries attached allocates exactly like one without, through
//! allocations, releases, rollbacks, object puts and deletes (summaries kept current by every
//! allocation and free, voided by rollback, rebuilt on attach).

use proptest::prelude::*;
use vde_nostd::device::{RamDevice, RamError};
use vde_nostd::scanner::Summary;
use vde_nostd::{BlockDevice, BlockNo, Extent, Volume};
use vde_tests::{fresh_image, Mem};

const BS: usize = 512;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn summarized_allocation_equals_plain(ops in proptest::collection::vec((0u8..4, 1u64..40, any::<bool>()), 1..60)) {
        let mut a = fresh_image(BS, 4096, 16);
        let mut b = a.clone();
        let (mut ma, mut mb) = (Mem::new(BS, 16, 256), Mem::new(BS, 16, 256));
        let mut va = Volume::<_, 16>::mount(RamDevice::new(&mut a, BS).unwrap(), ma.bufs()).unwrap();
        let mut vb = Volume::<_, 16>::mount(RamDevice::new(&mut b, BS).unwrap(), mb.bufs()).unwrap();
        let mut sums = vec![Summary::default(); vb.layout().bitmap_blocks as usize];
        vb.attach_summaries(&mut sums).unwrap();
        let mut live: Vec<Extent> = Vec::new();
        for (kind, n, keep) in ops {
            match kind {
                0 | 1 => {
                    let mut ta = va.begin();
                    let ea = ta.allocate(n * (1 + u64::from(kind) * 20));
                    let mut tb = vb.begin();
                    let eb = tb.allocate(n * (1 + u64::from(kind) * 20));
                    prop_assert_eq!(&ea, &eb);
                    if keep {
                        ta.commit().unwrap();
                        tb.commit().unwrap();
                        if let Ok(e) = ea { live.push(e); }
                    } else {
                        ta.rollback();
                        tb.rollback();
                    }
                }
                2 if !live.is_empty() => {
                    let e = live.remove(n as usize % live.len());
                    let mut ta = va.begin();
                    ta.release(e).unwrap();
                    ta.commit().unwrap();
                    let mut tb = vb.begin();
                    tb.release(e).unwrap();
                    tb.commit().unwrap();
                }
                _ => {
                    let d = vec![7u8; (n * 37) as usize];
                    prop_assert_eq!(va.put(&d).unwrap(), vb.put(&d).unwrap());
                }
            }
            prop_assert_eq!(va.usage(), vb.usage());
        }
    }
}

/// A RAM device whose log appends fail while `fail` is set (a commit then fails part-way).
struct Flaky<'a> {
    inner: RamDevice<'a>,
    fail: std::rc::Rc<std::cell::Cell<bool>>,
}

impl BlockDevice for Flaky<'_> {
    type Error = RamError;
    fn block_size(&self) -> usize {
        self.inner.block_size()
    }
    fn block_count(&self) -> u64 {
        self.inner.block_count()
    }
    fn read_block(&mut self, b: BlockNo, buf: &mut [u8]) -> Result<(), RamError> {
        self.inner.read_block(b, buf)
    }
    fn write_block(&mut self, b: BlockNo, buf: &[u8]) -> Result<(), RamError> {
        self.inner.write_block(b, buf)
    }
    fn flush(&mut self) -> Result<(), RamError> {
        self.inner.flush()
    }
    fn append(&mut self, b: BlockNo, offset: usize, data: &[u8]) -> Result<(), RamError> {
        if self.fail.get() {
            return Err(RamError::OutOfRange);
        }
        self.inner.append(b, offset, data)
    }
}

/// A commit that fails part-way leaves the summaries of the bitmap blocks it staged void, as a
/// rollback does: the next allocations are the ones a volume without that transaction makes.
#[test]
fn a_failed_commit_voids_the_summaries_it_touched() {
    let mut a = fresh_image(BS, 4096, 16);
    let mut b = a.clone();
    let (mut ma, mut mb) = (Mem::new(BS, 16, 256), Mem::new(BS, 16, 256));
    let mut va = Volume::<_, 16>::mount(RamDevice::new(&mut a, BS).unwrap(), ma.bufs()).unwrap();
    let fail = std::rc::Rc::new(std::cell::Cell::new(false));
    let dev = Flaky {
        inner: RamDevice::new(&mut b, BS).unwrap(),
        fail: fail.clone(),
    };
    let mut vb = Volume::<_, 16>::mount(dev, mb.bufs()).unwrap();
    let mut sums = vec![Summary::default(); vb.layout().bitmap_blocks as usize];
    vb.attach_summaries(&mut sums).unwrap();
    for round in 0..6u64 {
        // Nearly every free block, in a transaction whose commit fails: the summaries must not
        // go on saying the bitmap is full.
        let free = vb.usage().free_blocks;
        let mut tb = vb.begin();
        tb.allocate(free - 8 - round).unwrap();
        fail.set(true);
        assert!(tb.commit().is_err());
        fail.set(false);
        for n in [1u64, 40, 200] {
            let mut ta = va.begin();
            let ea = ta.allocate(n).unwrap();
            ta.commit().unwrap();
            let mut tb = vb.begin();
            let eb = tb.allocate(n).unwrap();
            tb.commit().unwrap();
            assert_eq!(ea, eb, "round {round}, {n} blocks");
        }
        assert_eq!(va.usage(), vb.usage());
    }
    vb.verify().unwrap();
}
