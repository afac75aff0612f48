//! Interleaved timing of durable stores. fsync latency on a shared disk drifts by an order of
//! magnitude within minutes, so stores are not run one after the other: the operations are cut
//! into rounds and every round runs a slice of each store, starting with a different store each
//! round. Each store's tally adds up only its own slices.

use crate::filedev::DiskFlushes;
use std::time::{Duration, Instant};

/// A store that does numbered durable operations.
pub trait Durable {
    /// Does operation `i` (durable when it returns).
    fn op(&mut self, i: u64);
    /// (flush calls, bytes written) so far; flushes `None` where they cannot be counted.
    fn io(&self) -> (Option<u64>, u64);
}

/// What one store did over a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    /// Time spent in the store's operations.
    pub elapsed: Duration,
    /// Operations done.
    pub ops: u64,
    /// Counted flush calls.
    pub fsyncs: Option<u64>,
    /// Disk flush requests completed during the store's slices.
    pub disk: Option<u64>,
    /// Bytes written.
    pub bytes: u64,
}

impl Tally {
    /// Operations per second.
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
    /// `v / ops` formatted, or `n/a`.
    pub fn per(&self, v: Option<u64>, decimals: usize) -> String {
        v.map_or("n/a".into(), |v| {
            format!("{:.*}", decimals, v as f64 / self.ops.max(1) as f64)
        })
    }
}

/// Runs operations `0..ops` on every store in `rounds` interleaved rounds.
pub fn interleave(
    stores: &mut [&mut dyn Durable],
    ops: u64,
    rounds: u64,
    disk: &DiskFlushes,
) -> Vec<Tally> {
    let mut t = vec![Tally::default(); stores.len()];
    let rounds = rounds.clamp(1, ops.max(1));
    for r in 0..rounds {
        let (lo, hi) = (ops * r / rounds, ops * (r + 1) / rounds);
        for k in 0..stores.len() {
            let s = (k + r as usize) % stores.len();
            let store = &mut *stores[s];
            let (f0, b0) = store.io();
            let d0 = disk.now();
            let start = Instant::now();
            for i in lo..hi {
                store.op(i);
            }
            let el = start.elapsed();
            let (f1, b1) = store.io();
            let d1 = disk.now();
            let tl = &mut t[s];
            tl.elapsed += el;
            tl.ops += hi - lo;
            tl.bytes += b1 - b0;
            tl.fsyncs = f0.zip(f1).map(|(a, b)| tl.fsyncs.unwrap_or(0) + b - a);
            tl.disk = d0.zip(d1).map(|(a, b)| tl.disk.unwrap_or(0) + b - a);
        }
    }
    t
}
