//! Flash: the same 64-byte objects stored on the same simulated NOR flash (1 MiB of a Winbond
//! W25Q16JV: byte programs, 256-byte pages, 4 KiB sectors, datasheet timings) by vde (a volume
//! over `NorFlashDevice<SimFlash>`) and by `sequential-storage`'s map (u64 keys), then updated
//! over and over. Reports bytes programmed and sectors erased per stored item, the flash busy
//! time they cost at the datasheet's typical timings, and the wear spread.
//!
//! sequential-storage is async; [`Blocking`] gives the blocking `SimFlash` its async traits and
//! [`block_on`] polls the futures, which never wait, to completion.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use sequential_storage::cache::Cache;
use sequential_storage::map::{MapConfig, MapStorage};
use vde_embedded::sim::parts::{W25q16jv, W25Q16JV};
use vde_embedded::{FlashStats, NorFlashDevice, WearSummary};
use vde_nostd::{Buffers, FormatOptions, Handle, ModuleSet, Volume};

const BS: usize = 4096;
const FLASH: usize = 1 << 20;
const SECTORS: usize = FLASH / 4096;
const SIZE: usize = 64;

/// Runs a future that never waits (every flash call completes at once) to completion.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// A blocking NOR flash seen through `embedded-storage-async`'s traits.
pub struct Blocking<F>(pub F);

impl<F: ErrorType> ErrorType for Blocking<F> {
    type Error = F::Error;
}

impl<F: ReadNorFlash> embedded_storage_async::nor_flash::ReadNorFlash for Blocking<F> {
    const READ_SIZE: usize = F::READ_SIZE;
    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), F::Error> {
        self.0.read(offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.0.capacity()
    }
}

impl<F: NorFlash> embedded_storage_async::nor_flash::NorFlash for Blocking<F> {
    const WRITE_SIZE: usize = F::WRITE_SIZE;
    const ERASE_SIZE: usize = F::ERASE_SIZE;
    async fn erase(&mut self, from: u32, to: u32) -> Result<(), F::Error> {
        self.0.erase(from, to)
    }
    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), F::Error> {
        self.0.write(offset, bytes)
    }
}

/// Item `i` at version `v`.
fn item(i: u64, v: u64) -> [u8; SIZE] {
    let mut o = [0u8; SIZE];
    for (k, b) in o.iter_mut().enumerate() {
        *b = (i as u8) ^ (v as u8).wrapping_mul(7) ^ k as u8;
    }
    o[..8].copy_from_slice(&i.to_le_bytes());
    o[8..16].copy_from_slice(&v.to_le_bytes());
    o
}

/// Flash cost of one phase of a run.
#[derive(Clone)]
struct Cost {
    ops: u64,
    stats: FlashStats,
    busy_ns: u64,
    wear: WearSummary,
    /// The most erased sector: "what (index)".
    hot: String,
}

/// The most erased sector of `wear`, named by `label`.
fn hottest(wear: &[u32], label: impl Fn(usize) -> String) -> String {
    match wear.iter().enumerate().max_by_key(|(_, w)| **w) {
        Some((i, w)) if *w > 0 => format!("{} ({w}×)", label(i)),
        _ => "none".into(),
    }
}

/// What each block of a vde volume on the flash holds (one block = one sector here).
fn vde_labels<D: vde_nostd::BlockDevice, const K: usize>(
    vol: &mut Volume<'_, D, K>,
) -> Vec<String> {
    let l = *vol.layout();
    let objects = vol
        .module_regions(0)
        .ok()
        .and_then(|r| r.first().map(|e| e.extent));
    (0..l.block_count)
        .map(|b| match b {
            0 => "superblock".into(),
            1 => "superblock mirror".into(),
            _ if (l.wal_start..l.wal_start + l.wal_blocks).contains(&b) => {
                format!("WAL block {}", b - l.wal_start)
            }
            _ if (l.bitmap_start..l.bitmap_start + l.bitmap_blocks).contains(&b) => {
                format!("bitmap block {}", b - l.bitmap_start)
            }
            _ if b == l.regdir => "region directory".into(),
            _ if b == l.rpt => "region pointer table".into(),
            _ if objects.is_some_and(|e| e.contains(vde_nostd::BlockNo(b))) => {
                format!("slot-index block {}", b - objects.map_or(0, |e| e.start.0))
            }
            _ => format!("data block {b}"),
        })
        .collect()
}

fn xorshift(s: &mut u64) -> u64 {
    crate::xorshift(s)
}

/// vde: `n` puts (one per transaction, or `batch` per transaction), then `updates` updates of
/// random items (delete + put in one transaction each).
fn vde(n: u64, batch: usize, updates: u64) -> (Cost, Cost) {
    let mut mem = vec![0xFFu8; FLASH];
    let mut wear = vec![0u32; SECTORS];
    let sim = W25q16jv::from_part(&mut mem, &mut wear, &W25Q16JV, 1).expect("sim");
    let dev = NorFlashDevice::whole(sim, BS).expect("nor device");
    let mut scratch = vec![0u8; BS * Buffers::SCRATCH_BLOCKS];
    let mut txn = vec![0u8; BS * 16];
    let mut index = vec![0u8; 16 * 256];
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
    let labels = vde_labels(&mut vol);
    let reset = |vol: &mut Volume<'_, NorFlashDevice<W25q16jv<'_>>, 16>| {
        let f = vol.device().flash_mut();
        f.reset_stats();
        f.reset_wear();
    };
    let cost = |vol: &mut Volume<'_, NorFlashDevice<W25q16jv<'_>>, 16>, ops: u64| {
        let f = vol.device().flash();
        Cost {
            ops,
            stats: f.stats(),
            busy_ns: f.busy_time_ns(),
            wear: f.wear_summary(),
            hot: hottest(f.wear(), |i| labels[i].clone()),
        }
    };
    reset(&mut vol);
    let mut handles: Vec<Handle> = Vec::with_capacity(n as usize);
    let mut i = 0u64;
    while i < n {
        let end = (i + batch as u64).min(n);
        if batch == 1 {
            handles.push(vol.put(&item(i, 0)).expect("put"));
        } else {
            let mut b = vol.batch().expect("batch");
            for j in i..end {
                handles.push(b.put(&item(j, 0)).expect("put"));
            }
            b.commit().expect("commit");
        }
        i = end;
    }
    let load = cost(&mut vol, n);
    reset(&mut vol);
    let mut version = vec![0u64; n as usize];
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..updates {
        let k = (xorshift(&mut s) % n) as usize;
        version[k] += 1;
        let mut b = vol.batch().expect("batch");
        b.delete(handles[k]).expect("delete");
        handles[k] = b.put(&item(k as u64, version[k])).expect("put");
        b.commit().expect("commit");
    }
    let churn = cost(&mut vol, updates);
    let mut buf = [0u8; SIZE];
    for (k, h) in handles.iter().enumerate() {
        let len = vol.get(*h, &mut buf).expect("get");
        assert_eq!(buf[..len], item(k as u64, version[k]), "vde: wrong item");
    }
    (load, churn)
}

/// sequential-storage's map: `n` stores, then `updates` stores of random existing keys.
fn seq(n: u64, updates: u64) -> (Cost, Cost) {
    let mut mem = vec![0xFFu8; FLASH];
    let mut wear = vec![0u32; SECTORS];
    let sim = W25q16jv::from_part(&mut mem, &mut wear, &W25Q16JV, 1).expect("sim");
    let mut map = MapStorage::<u64, _, _>::new(
        Blocking(sim),
        const { MapConfig::new(0..FLASH as u32) },
        Cache::new_uncached(),
    );
    let mut buf = [0u8; 128];
    for i in 0..n {
        block_on(map.store_item(&mut buf, &i, &&item(i, 0)[..])).expect("store");
    }
    let (Blocking(sim), cache) = map.destroy();
    let load = Cost {
        ops: n,
        stats: sim.stats(),
        busy_ns: sim.busy_time_ns(),
        wear: sim.wear_summary(),
        hot: hottest(sim.wear(), |i| format!("page {i}")),
    };
    let mut sim = sim;
    sim.reset_stats();
    sim.reset_wear();
    let mut map = MapStorage::<u64, _, _>::new(
        Blocking(sim),
        const { MapConfig::new(0..FLASH as u32) },
        cache,
    );
    let mut version = vec![0u64; n as usize];
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..updates {
        let k = xorshift(&mut s) % n;
        version[k as usize] += 1;
        block_on(map.store_item(&mut buf, &k, &&item(k, version[k as usize])[..])).expect("store");
    }
    for k in 0..n {
        let got: Option<&[u8]> = block_on(map.fetch_item(&mut buf, &k)).expect("fetch");
        assert_eq!(
            got,
            Some(&item(k, version[k as usize])[..]),
            "sequential-storage: wrong item"
        );
    }
    let (Blocking(sim), _) = map.destroy();
    let churn = Cost {
        ops: updates,
        stats: sim.stats(),
        busy_ns: sim.busy_time_ns(),
        wear: sim.wear_summary(),
        hot: hottest(sim.wear(), |i| format!("page {i}")),
    };
    (load, churn)
}

/// Prints the flash table for `n` items and `updates` updates.
pub fn section(n: u64, updates: u64) {
    let (v1_load, v1_churn) = vde(n, 1, updates);
    let (vb_load, _) = vde(n, 100, 0);
    let (s_load, s_churn) = seq(n, updates);
    println!(
        "## Flash: {n} × {SIZE}-byte items on 1 MiB of {} (4 KiB sectors), then {updates} updates",
        W25Q16JV.name
    );
    println!();
    println!(
        "| phase | store | bytes programmed / item | erases / item | busy ms / item \
         (typ. timings) | vde busy ÷ sequential-storage | busy total s | wear max / min per sector | \
         most erased sector |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let row = |phase: &str, name: &str, c: &Cost, peer: Option<&Cost>| {
        let busy = |c: &Cost| c.busy_ns as f64 / c.ops.max(1) as f64;
        println!(
            "| {phase} | {name} | {:.1} | {:.3} | {:.3} | {} | {:.2} | {} / {} | {} |",
            c.stats.program_bytes as f64 / c.ops.max(1) as f64,
            c.stats.erases as f64 / c.ops.max(1) as f64,
            busy(c) / 1e6,
            peer.map_or("—".into(), |p| crate::ratio(busy(c), busy(p))),
            c.busy_ns as f64 / 1e9,
            c.wear.max,
            c.wear.min,
            c.hot,
        );
    };
    row("store", "vde, 1 put / transaction", &v1_load, Some(&s_load));
    row(
        "store",
        "vde, 100 puts / transaction",
        &vb_load,
        Some(&s_load),
    );
    row("store", "sequential-storage map", &s_load, None);
    row(
        "update",
        "vde, delete + put / transaction",
        &v1_churn,
        Some(&s_churn),
    );
    row("update", "sequential-storage map", &s_churn, None);
    println!();
    println!(
        "(busy time = program pages × tPP + sectors erased × tSE at the datasheet's typical 0.4 ms \
         and 45 ms; the ratio compares busy time per item in the same phase: above 1 means vde keeps \
         the flash busy longer. Wear counts the sectors erased during the phase.)"
    );
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_async_shim_stores_and_fetches_through_sequential_storage() {
        let mut mem = vec![0xFFu8; 4 * 4096];
        let mut wear = vec![0u32; 4];
        let sim = W25q16jv::from_part(&mut mem, &mut wear, &W25Q16JV, 1).expect("sim");
        let mut map = MapStorage::<u64, _, _>::new(
            Blocking(sim),
            const { MapConfig::new(0..4 * 4096) },
            Cache::new_uncached(),
        );
        let mut buf = [0u8; 128];
        for k in 0..10u64 {
            block_on(map.store_item(&mut buf, &k, &&item(k, 1)[..])).expect("store");
        }
        let got: Option<&[u8]> = block_on(map.fetch_item(&mut buf, &3)).expect("fetch");
        assert_eq!(got, Some(&item(3, 1)[..]));
        let (Blocking(sim), _) = map.destroy();
        assert!(sim.stats().program_bytes >= 10 * 80);
    }

    #[test]
    fn hottest_names_the_most_erased_sector() {
        assert_eq!(hottest(&[0, 3, 1], |i| format!("s{i}")), "s1 (3×)");
        assert_eq!(hottest(&[0, 0], |i| format!("s{i}")), "none");
    }
}
