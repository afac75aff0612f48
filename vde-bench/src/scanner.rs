//! The free-space scanner on a large bitmap (a 1 TiB volume at 4 KiB blocks has a 32 MiB
//! bitmap) against a bit-by-bit loop and against the linear-read limit: one pass over the same
//! words with `position` and `count_ones`.

use crate::{time, xorshift};
use std::hint::black_box;
use std::time::Duration;
use vde_nostd::scanner::{self, SliceBitmap, Summary};

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

/// Every maximal free run of at least `m` bits, bit by bit: (count, total length).
fn bit_by_bit_runs(bits: &[u8], m: u64) -> (u64, u64) {
    let total = bits.len() as u64 * 8;
    let (mut count, mut sum, mut run) = (0u64, 0u64, 0u64);
    for i in 0..total {
        if bits[(i / 8) as usize] & (1 << (i % 8)) == 0 {
            run += 1;
        } else {
            if run >= m {
                count += 1;
                sum += run;
            }
            run = 0;
        }
    }
    if run >= m {
        count += 1;
        sum += run;
    }
    (count, sum)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Prints the scanner table for a bitmap of `bytes` bytes, timing each figure for at least `min`.
pub fn section(bytes: usize, min: Duration) {
    println!(
        "## Scanner: {} MiB bitmap ({} blocks), first fit",
        bytes >> 20,
        bytes as u64 * 8
    );
    println!();
    println!(
        "| fill | query | vde | GB/s | bit-by-bit | bit-by-bit ÷ vde | linear read (limit) | vde / limit \
         | vde + summaries | summaries / limit |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let bpb = 4096 - 16; // one 4 KiB bitmap block's bit area
    let mut buf = vec![0u8; bpb];
    for (name, bits) in fills(bytes) {
        let words: Vec<u64> = bits
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0xFF; 8])))
            .collect();
        let total = bits.len() as u64 * 8;
        let mut sums = vec![Summary::UNKNOWN; (total as usize).div_ceil(bpb * 8)];
        {
            let mut src = SliceBitmap::new(&bits, total, bpb).expect("bitmap");
            scanner::summarize_all(&mut src, &mut sums, &mut buf).expect("summaries");
        }
        for n in [1u64, 64, 1000] {
            let (t_vde, r_vde) = time(min, || {
                let mut src = SliceBitmap::new(&bits, total, bpb).expect("bitmap");
                scanner::first_fit(&mut src, black_box(n), &mut buf).unwrap_or(None)
            });
            let (t_sum, r_sum) = time(min, || {
                let mut src = SliceBitmap::new(&bits, total, bpb).expect("bitmap");
                scanner::first_fit_summarized(&mut src, &sums, black_box(n), &mut buf)
                    .unwrap_or(None)
            });
            let (t_naive, r_naive) = time(min, || bit_by_bit_first_fit(black_box(&bits), n));
            assert_eq!(
                r_vde.map(|b| b.0),
                r_naive,
                "scanner disagrees with the reference"
            );
            assert_eq!(r_sum, r_vde, "summarized scanner disagrees");
            // The limit: one pass over every word up to the answer.
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
                "| {name} | N={n} | {:.1} µs | {:.2} | {:.1} µs | {:.1}× | {:.1} µs | {:.2} \
                 | {:.2} µs | {:.3} |",
                us(t_vde),
                scanned / t_vde.as_secs_f64() / 1e9,
                us(t_naive),
                t_naive.as_secs_f64() / t_vde.as_secs_f64(),
                us(t_lin),
                t_vde.as_secs_f64() / t_lin.as_secs_f64(),
                us(t_sum),
                t_sum.as_secs_f64() / t_lin.as_secs_f64(),
            );
        }
        // Every free run of at least 64 blocks.
        let (t_runs, r_runs) = time(min, || {
            let mut src = SliceBitmap::new(&bits, total, bpb).expect("bitmap");
            let (mut c, mut s) = (0u64, 0u64);
            scanner::free_runs(&mut src, black_box(64), &mut buf, |e| {
                c += 1;
                s += e.len;
                true
            })
            .expect("runs");
            (c, s)
        });
        let (t_naive, r_naive) = time(min, || bit_by_bit_runs(black_box(&bits), 64));
        assert_eq!(r_runs, r_naive, "free_runs disagrees with the reference");
        let (t_lin, _) = time(min, || {
            black_box(&words)
                .iter()
                .map(|x| x.count_ones() as u64)
                .sum::<u64>()
        });
        println!(
            "| {name} | all runs ≥ 64 ({}) | {:.1} µs | {:.2} | {:.1} µs | {:.1}× | {:.1} µs | {:.2} | — | — |",
            r_runs.0,
            us(t_runs),
            bits.len() as f64 / t_runs.as_secs_f64() / 1e9,
            us(t_naive),
            t_naive.as_secs_f64() / t_runs.as_secs_f64(),
            us(t_lin),
            t_runs.as_secs_f64() / t_lin.as_secs_f64(),
        );
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
            "| {name} | total free | {:.1} µs | {:.2} | — | — | {:.1} µs | {:.2} | — | — |",
            us(t_cnt),
            bits.len() as f64 / t_cnt.as_secs_f64() / 1e9,
            us(t_lin),
            t_cnt.as_secs_f64() / t_lin.as_secs_f64()
        );
    }
    println!();
    println!(
        "(limit = one pass over the words up to the answer with `position` and `count_ones`; \
         summaries = one caller-held summary per bitmap block, Go page-allocator style)"
    );
    println!();
}
