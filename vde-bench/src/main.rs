//! `vde-bench`: prints a table of our figure, a baseline's, and the ratio, all measured in one
//! run on one machine. `--smoke` runs tiny sizes (CI); the default runs the full sizes.
//!
//! Sections: the free-space scanner on a 32 MiB bitmap (a 1 TiB volume at 4 KiB blocks) against
//! a bit-by-bit loop and against the linear-read limit; WAL cost per commit on a RAM device.

use std::hint::black_box;
use std::time::{Duration, Instant};
use vde_nostd::device::RamDevice;
use vde_nostd::scanner::{self, SliceBitmap};
use vde_nostd::{BlockDevice, BlockNo, Buffers, FormatOptions, ModuleSet, Volume};

fn time<T>(min: Duration, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut n = 0u32;
    let start = Instant::now();
    let mut out;
    loop {
        out = black_box(f());
        n += 1;
        if start.elapsed() >= min {
            break;
        }
    }
    (start.elapsed() / n, out)
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// Fills: (name, bitmap bytes).
fn fills(bytes: usize) -> Vec<(&'static str, Vec<u8>)> {
    let bits = bytes as u64 * 8;
    let mut s = 0x1234_5678_9abc_def0u64;
    let empty = vec![0u8; bytes];
    let random: Vec<u8> = (0..bytes).map(|_| xorshift(&mut s) as u8).collect();
    // fragmented: alternating allocated runs and free runs of 1..=100 (no free run ≥ 101)
    let mut frag = vec![0u8; bytes];
    let mut i = 0u64;
    while i < bits {
        let used = 1 + xorshift(&mut s) % 8;
        for b in i..(i + used).min(bits) {
            frag[(b / 8) as usize] |= 1 << (b % 8);
        }
        i += used + 1 + xorshift(&mut s) % 100;
    }
    // nearly full: everything allocated but the last 1/64
    let mut near = vec![0xFFu8; bytes];
    let tail = bytes - bytes / 64;
    near[tail..].fill(0);
    vec![
        ("empty", empty),
        ("random 50%", random),
        ("fragmented 1..100", frag),
        ("nearly full", near),
    ]
}

fn bit_by_bit_first_fit(bits: &[u8], n: u64) -> Option<u64> {
    let total = bits.len() as u64 * 8;
    let mut run = 0u64;
    for i in 0..total {
        if bits[(i / 8) as usize] & (1 << (i % 8)) == 0 {
            run += 1;
            if run == n {
                return Some(i + 1 - n);
            }
        } else {
            run = 0;
        }
    }
    None
}

fn linear_read(words: &[u64]) -> Option<usize> {
    words.iter().position(|w| *w != u64::MAX)
}

fn scanner_section(bytes: usize, min: Duration) {
    println!(
        "## Scanner: {} MiB bitmap ({} blocks), first fit",
        bytes >> 20,
        bytes as u64 * 8
    );
    println!();
    println!(
        "| fill | query | vde | GB/s | bit-by-bit | ratio | linear read (limit) | vde / limit |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let bpb = 4096 - 16; // one 4 KiB bitmap block's bit area
    let mut buf = vec![0u8; bpb];
    for (name, bits) in fills(bytes) {
        let words: Vec<u64> = bits
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0xFF; 8])))
            .collect();
        let total = bits.len() as u64 * 8;
        for n in [1u64, 64, 1000] {
            let (t_vde, r_vde) = time(min, || {
                let mut src = SliceBitmap::new(&bits, total, bpb).expect("bitmap");
                scanner::first_fit(&mut src, black_box(n), &mut buf).unwrap_or(None)
            });
            let (t_naive, r_naive) = time(min, || bit_by_bit_first_fit(black_box(&bits), n));
            assert_eq!(
                r_vde.map(|b| b.0),
                r_naive,
                "scanner disagrees with the reference"
            );
            // The limit: one pass over every word the scanner had to read.
            let upto = r_vde.map_or(words.len(), |b| {
                ((b.0 + n) / 64 + 1).min(words.len() as u64) as usize
            });
            let (t_lin, _) = time(min, || {
                let w = black_box(&words[..upto]);
                (
                    linear_read(w),
                    w.iter().map(|x| x.count_ones() as u64).sum::<u64>(),
                )
            });
            let scanned = upto as f64 * 8.0;
            println!(
                "| {name} | N={n} | {:.1} µs | {:.2} | {:.1} µs | {:.1}× faster | {:.1} µs | {:.2} |",
                t_vde.as_secs_f64() * 1e6,
                scanned / t_vde.as_secs_f64() / 1e9,
                t_naive.as_secs_f64() * 1e6,
                t_naive.as_secs_f64() / t_vde.as_secs_f64(),
                t_lin.as_secs_f64() * 1e6,
                t_vde.as_secs_f64() / t_lin.as_secs_f64(),
            );
        }
        let (t_cnt, _) = time(min, || {
            let mut src = SliceBitmap::new(&bits, total, bpb).expect("bitmap");
            scanner::count_free(&mut src, &mut buf).unwrap_or(0)
        });
        let (t_lin, _) = time(min, || {
            black_box(&words)
                .iter()
                .map(|x| x.count_zeros() as u64)
                .sum::<u64>()
        });
        println!(
            "| {name} | total free | {:.1} µs | {:.2} | — | — | {:.1} µs | {:.2} |",
            t_cnt.as_secs_f64() * 1e6,
            bits.len() as f64 / t_cnt.as_secs_f64() / 1e9,
            t_lin.as_secs_f64() * 1e6,
            t_cnt.as_secs_f64() / t_lin.as_secs_f64()
        );
    }
    println!();
}

/// A RAM device that counts writes and flushes.
struct Counting<'a> {
    inner: RamDevice<'a>,
    writes: u64,
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
        self.inner.write_block(b, buf)
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        self.flushes += 1;
        self.inner.flush()
    }
}

fn wal_section(commits: u64) {
    const BS: usize = 4096;
    let mut img = vec![0u8; BS * 8192];
    let mut scratch = vec![0u8; BS * 2];
    let mut txn = vec![0u8; BS * 16];
    let mut index = vec![0u8; 16 * 4096];
    let dev = Counting {
        inner: RamDevice::new(&mut img, BS).expect("ram"),
        writes: 0,
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
    let (w0, f0) = (vol.device().writes, vol.device().flushes);
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
    let (w1, f1) = (vol.device().writes, vol.device().flushes);
    let (w2, f2) = (w1, f1);
    let mut puts = 0u64;
    let start_p = Instant::now();
    for i in 0..commits {
        vol.put(&[i as u8; 100]).expect("put");
        puts += 1;
    }
    let tp = start_p.elapsed();
    let (w3, f3) = (vol.device().writes, vol.device().flushes);
    println!("## WAL cost on a RAM device (4 KiB blocks)");
    println!();
    println!("| workload | commits | block writes / commit | flushes / commit | commits/s (RAM) |");
    println!("|---|---|---|---|---|");
    println!(
        "| 4-block transaction | {commits} | {:.2} | {:.3} | {:.0} |",
        (w1 - w0) as f64 / commits as f64,
        (f1 - f0) as f64 / commits as f64,
        commits as f64 / t.as_secs_f64()
    );
    println!(
        "| put of a 100-byte object | {puts} | {:.2} | {:.3} | {:.0} |",
        (w3 - w2) as f64 / puts as f64,
        (f3 - f2) as f64 / puts as f64,
        puts as f64 / tp.as_secs_f64()
    );
    println!();
    println!(
        "(flushes per commit include the amortised checkpoints: 2 flushes each time the log wraps)"
    );
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    if smoke {
        scanner_section(1 << 16, Duration::from_millis(1));
        wal_section(200);
    } else {
        scanner_section(32 << 20, Duration::from_millis(300));
        wal_section(20_000);
    }
}
