//! WAL cost per commit on a RAM device: device writes (log appends and block writes), bytes
//! written and flushes per 4-block transaction and per small-object put, with no file system in
//! the way.

use std::time::Instant;
use vde_nostd::device::RamDevice;
use vde_nostd::{BlockDevice, BlockNo, Buffers, FormatOptions, ModuleSet, Volume};

/// A RAM device that counts writes (log appends and block writes), bytes written and flushes.
struct Counting<'a> {
    inner: RamDevice<'a>,
    writes: u64,
    bytes: u64,
    flushes: u64,
}

impl BlockDevice for Counting<'_> {
    type Error = vde_nostd::device::RamError;
    fn block_size(&self) -> usize {
        self.inner.block_size()
    }
    fn block_count(&self) -> u64 {
        self.inner.block_count()
    }
    fn read_block(&mut self, b: BlockNo, buf: &mut [u8]) -> Result<(), Self::Error> {
        self.inner.read_block(b, buf)
    }
    fn write_block(&mut self, b: BlockNo, buf: &[u8]) -> Result<(), Self::Error> {
        self.writes += 1;
        self.bytes += buf.len() as u64;
        self.inner.write_block(b, buf)
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        self.flushes += 1;
        self.inner.flush()
    }
    fn append(&mut self, b: BlockNo, offset: usize, data: &[u8]) -> Result<(), Self::Error> {
        self.writes += 1;
        self.bytes += data.len() as u64;
        self.inner.append(b, offset, data)
    }
}

/// Prints the WAL-cost table for `commits` commits of each kind.
pub fn section(commits: u64) {
    const BS: usize = 4096;
    let mut img = vec![0u8; BS * 8192];
    let mut scratch = vec![0u8; vde_nostd::Buffers::scratch_min(BS, false)];
    let mut txn = vec![0u8; BS * 16];
    let mut index = vec![0u8; 16 * 4096];
    let dev = Counting {
        inner: RamDevice::new(&mut img, BS).expect("ram"),
        writes: 0,
        bytes: 0,
        flushes: 0,
    };
    let opts = FormatOptions {
        modules: ModuleSet::OBJECTS,
        ..FormatOptions::default()
    };
    let bufs = Buffers {
        scratch: &mut scratch,
        txn: &mut txn,
        index: &mut index,
    };
    let mut vol = Volume::<_, 16>::format(dev, &opts, bufs).expect("format");
    let ds = vol.layout().data_start + 1000;
    let (w0, f0, b0) = (
        vol.device().writes,
        vol.device().flushes,
        vol.device().bytes,
    );
    let start = Instant::now();
    for i in 0..commits {
        let mut tx = vol.begin();
        for k in 0..4 {
            tx.write(BlockNo(ds + (i * 4 + k) % 4000), &[i as u8; BS])
                .expect("write");
        }
        tx.commit().expect("commit");
    }
    let t = start.elapsed();
    let (w1, f1, b1) = (
        vol.device().writes,
        vol.device().flushes,
        vol.device().bytes,
    );
    let (w2, f2, b2) = (w1, f1, b1);
    let mut puts = 0u64;
    let start_p = Instant::now();
    for i in 0..commits {
        vol.put(&[i as u8; 100]).expect("put");
        puts += 1;
    }
    let tp = start_p.elapsed();
    let (w3, f3, b3) = (
        vol.device().writes,
        vol.device().flushes,
        vol.device().bytes,
    );
    println!("## WAL cost on a RAM device (4 KiB blocks)");
    println!();
    println!(
        "| workload | commits | device writes / commit | bytes written / commit | flushes / commit | commits/s (RAM) |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| 4-block transaction | {commits} | {:.2} | {:.0} | {:.3} | {:.0} |",
        (w1 - w0) as f64 / commits as f64,
        (b1 - b0) as f64 / commits as f64,
        (f1 - f0) as f64 / commits as f64,
        commits as f64 / t.as_secs_f64()
    );
    println!(
        "| put of a 100-byte object | {puts} | {:.2} | {:.0} | {:.3} | {:.0} |",
        (w3 - w2) as f64 / puts as f64,
        (b3 - b2) as f64 / puts as f64,
        (f3 - f2) as f64 / puts as f64,
        puts as f64 / tp.as_secs_f64()
    );
    println!();
    println!(
        "(device writes are log appends (one per 256-byte piece of a transaction) and block \
         writes; writes, bytes and flushes per commit include the amortised checkpoints: each \
         changed block written home once, one flush for them, and the flush the next commit \
         owes the checkpoint's marker)"
    );
    println!();
    let dev = vol.unmount().expect("unmount");
    sessions(dev, commits.min(100), &mut scratch, &mut txn, &mut index);
}

/// What one `vde put` does: mount, put, unmount. Flushes and writes per session, beside the
/// limit (a durable put needs one flush), and what a clean mount writes.
fn sessions(mut dev: Counting<'_>, n: u64, scratch: &mut [u8], txn: &mut [u8], index: &mut [u8]) {
    println!("## Sessions: mount, one durable put, unmount (what one `vde put` does)");
    println!();
    println!(
        "| session | sessions | flushes / session | device writes / session | limit: flushes |"
    );
    println!("|---|---|---|---|---|");
    for (what, len) in [
        ("put of a 100-byte object", 100usize),
        ("put of a 20,000-byte object", 20_000),
    ] {
        let (w0, f0) = (dev.writes, dev.flushes);
        let data = vec![7u8; len];
        for _ in 0..n {
            let bufs = Buffers {
                scratch: &mut *scratch,
                txn: &mut *txn,
                index: &mut *index,
            };
            let mut vol = Volume::<_, 16>::mount(dev, bufs).expect("mount");
            vol.put(&data).expect("put");
            dev = vol.unmount().expect("unmount");
        }
        println!(
            "| {what} | {n} | {:.2} | {:.2} | 1 |",
            (dev.flushes - f0) as f64 / n as f64,
            (dev.writes - w0) as f64 / n as f64
        );
    }
    let (w0, f0) = (dev.writes, dev.flushes);
    let bufs = Buffers {
        scratch: &mut *scratch,
        txn: &mut *txn,
        index: &mut *index,
    };
    let vol = Volume::<_, 16>::mount(dev, bufs).expect("mount");
    let dev = vol.unmount().expect("unmount");
    println!(
        "| clean mount and unmount, no put | 1 | {} | {} | 0 |",
        dev.flushes - f0,
        dev.writes - w0
    );
    println!();
}
