//! What a session costs in writes and flushes, counted at the device: a clean mount writes
//! nothing; a put that fits a slot costs one flush, an extent put two (its payload is flushed
//! before its commit record); an unmount after writes costs one flush and the completion marker;
//! a mount-put-unmount session (what one `vde put` does) costs two flushes for a packed object.

use vde_nostd::device::RamDevice;
use vde_nostd::{BlockDevice, BlockNo, Volume};
use vde_tests::{fresh_image, Mem};

const BS: usize = 4096;

#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    writes: u64,
    flushes: u64,
}

struct Counting<D> {
    inner: D,
    n: Counts,
}

impl<D: BlockDevice> BlockDevice for Counting<D> {
    type Error = D::Error;
    fn block_size(&self) -> usize {
        self.inner.block_size()
    }
    fn block_count(&self) -> u64 {
        self.inner.block_count()
    }
    fn read_block(&mut self, b: BlockNo, buf: &mut [u8]) -> Result<(), D::Error> {
        self.inner.read_block(b, buf)
    }
    fn write_block(&mut self, b: BlockNo, buf: &[u8]) -> Result<(), D::Error> {
        self.n.writes += 1;
        self.inner.write_block(b, buf)
    }
    fn flush(&mut self) -> Result<(), D::Error> {
        self.n.flushes += 1;
        self.inner.flush()
    }
    fn append(&mut self, b: BlockNo, offset: usize, data: &[u8]) -> Result<(), D::Error> {
        self.n.writes += 1;
        self.inner.append(b, offset, data)
    }
}

/// Runs one session (mount, `work`, unmount) over `img`; returns the counts of the mount, of
/// `work` and of the unmount.
fn session(
    img: &mut [u8],
    work: impl FnOnce(&mut Volume<'_, Counting<RamDevice<'_>>, 16>),
) -> (Counts, Counts, Counts) {
    let mut mem = Mem::new(BS, 16, 64);
    let dev = Counting {
        inner: RamDevice::new(img, BS).unwrap(),
        n: Counts::default(),
    };
    let mut vol = Volume::<_, 16>::mount(dev, mem.bufs()).unwrap();
    let mounted = vol.device().n;
    work(&mut vol);
    let worked = vol.device().n;
    let dev = vol.unmount().unwrap();
    let sub = |a: Counts, b: Counts| Counts {
        writes: a.writes - b.writes,
        flushes: a.flushes - b.flushes,
    };
    (mounted, sub(worked, mounted), sub(dev.n, worked))
}

#[test]
fn a_clean_mount_writes_nothing() {
    let mut img = fresh_image(BS, 256, 16);
    let (mount, _, unmount) = session(&mut img, |_| {});
    assert_eq!(mount, Counts::default(), "a clean mount");
    assert_eq!(unmount, Counts::default(), "an idle unmount");
    // After writes and a clean unmount, the next mount is clean too.
    session(&mut img, |v| {
        v.put(&[7u8; 100]).unwrap();
    });
    let (mount, _, _) = session(&mut img, |_| {});
    assert_eq!(mount, Counts::default(), "a mount after a clean unmount");
}

#[test]
fn flushes_per_put_and_per_session() {
    let mut img = fresh_image(BS, 256, 16);
    let (m, put, u) = session(&mut img, |v| {
        v.put(&[1u8; 100]).unwrap();
    });
    assert_eq!(m.flushes, 0);
    assert_eq!(put.flushes, 1, "a packed put");
    assert_eq!(u.flushes, 1, "the unmount after it");
    assert_eq!(
        m.flushes + put.flushes + u.flushes,
        2,
        "one `vde put` session"
    );
    let (_, put, _) = session(&mut img, |v| {
        v.put(&[2u8; 10_000]).unwrap();
    });
    assert_eq!(put.flushes, 2, "an extent put: payload, then the commit");
    // A second put in the same session pays the flush the first one's checkpoint owes only
    // when a checkpoint came between them.
    let (_, puts, _) = session(&mut img, |v| {
        for i in 0..5u8 {
            v.put(&[i; 100]).unwrap();
        }
    });
    assert!(puts.flushes >= 5 && puts.flushes <= 7, "{puts:?}");
}
