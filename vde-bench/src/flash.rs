//! Flash: the same 64-byte objects stored on the same simulated NOR flash (1 MiB of a Winbond
//! W25Q16JV: byte programs, 256-byte pages, 4 KiB sectors, datasheet timings) by vde and by
//! `sequential-storage`'s map (u64 keys), then updated over and over. vde runs on two devices:
//! the direct NOR adapter (`NorFlashDevice<SimFlash>`: one 4 KiB block is one sector, erased on
//! every write) and the wear-levelled translation layer over the NOR-as-NAND adapter
//! (`Ftl<NorNand<SimFlash>>`), with 4 KiB and with 512-byte logical blocks. Reports bytes
//! programmed and sectors erased per stored item, the flash busy time they cost at the datasheet's
//! typical timings, and the wear spread — all counted by the simulated flash, so the translation
//! layer's garbage collection and metadata are included.
//!
//! sequential-storage is async; [`Blocking`] gives the blocking `SimFlash` its async traits and
//! [`block_on`] polls the futures, which never wait, to completion.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use sequential_storage::cache::Cache;
use sequential_storage::map::{MapConfig, MapStorage};
use vde_embedded::ftl::{Ftl, FtlConfig, FtlLayout, OwnedFtlMemory, META_LEN};
use vde_embedded::nand::{
    NandFlash, NorNand, NorNandLayout, SimNand, SimNandBlock, SimNandConfig, W25N01GV,
};
use vde_embedded::sim::parts::{W25q16jv, W25Q16JV};
use vde_embedded::{FlashStats, NorFlashDevice, WearSummary};
use vde_nostd::{BlockDevice, Buffers, FormatOptions, Handle, ModuleSet, Volume};

/// vde's block size on the direct adapter (one erase sector).
const BS: usize = 4096;
const FLASH: usize = 1 << 20;
/// The flash's erase sector.
const SECTOR: usize = 4096;
const SECTORS: usize = FLASH / SECTOR;
const SIZE: usize = 64;
/// Block updates a vde transaction may hold on the translation layer (100 puts of 64 bytes in
/// 512-byte blocks touch a few dozen blocks).
const FTL_K: usize = 64;
/// WAL size of the translation-layer volumes: what the default gives the direct volume (8 blocks
/// of 4 KiB), so a 512-byte-block volume gets 64 blocks and still holds a 100-put transaction.
const WAL_BYTES: usize = 32 * 1024;
/// The direct volume's log: a quarter of the flash. A checkpoint interval logs each block it
/// changes once whole (so a torn home rewrite can be rebuilt), and the random updates touch
/// every shared block, so the log must hold their images with room to spare.
const DIRECT_WAL_BLOCKS: u64 = 64;

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
    /// Busy time of the costliest single item (a put, an update, or a batch of puts): the
    /// longest stall a caller sees, checkpoints and erases included.
    longest_ns: u64,
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
    let names = vol
        .module_regions(8)
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
            _ if names.is_some_and(|e| e.contains(vde_nostd::BlockNo(b))) => {
                format!("name-table block {}", b - names.map_or(0, |e| e.start.0))
            }
            _ => format!("data block {b}"),
        })
        .collect()
}

fn xorshift(s: &mut u64) -> u64 {
    crate::xorshift(s)
}

/// A vde device on the simulated flash, which it lends out for the counters.
trait OnSim<'m>: BlockDevice {
    /// The simulated flash under the device.
    fn sim(&mut self) -> &mut W25q16jv<'m>;
}

impl<'m> OnSim<'m> for NorFlashDevice<W25q16jv<'m>> {
    fn sim(&mut self) -> &mut W25q16jv<'m> {
        self.flash_mut()
    }
}

impl<'m> OnSim<'m> for Ftl<'_, NorNand<W25q16jv<'m>>> {
    fn sim(&mut self) -> &mut W25q16jv<'m> {
        self.nand_mut().flash_mut()
    }
}

/// The flash cost so far of the volume's device, its sectors named by `label`.
fn cost_of<'m, D: OnSim<'m>, const K: usize>(
    vol: &mut Volume<'_, D, K>,
    ops: u64,
    longest_ns: u64,
    label: &dyn Fn(usize) -> String,
) -> Cost {
    let f = vol.device().sim();
    Cost {
        ops,
        stats: f.stats(),
        busy_ns: f.busy_time_ns(),
        longest_ns,
        wear: f.wear_summary(),
        hot: hottest(f.wear(), label),
    }
}

/// Busy time so far of the flash under the volume, in ns.
fn busy_of<'m, D: OnSim<'m>, const K: usize>(vol: &mut Volume<'_, D, K>) -> u64 {
    vol.device().sim().busy_time_ns()
}

/// The longest busy time of one item in a phase, from the flash's busy time after each.
#[derive(Default)]
struct Longest {
    ns: u64,
    last: u64,
}

impl Longest {
    /// The flash's busy time was `now` after the item (and what it was after the one before).
    fn after(&mut self, now: u64) {
        self.ns = self.ns.max(now.saturating_sub(self.last));
        self.last = now;
    }
}

/// Zeroes the flash counters under the volume.
fn reset<'m, D: OnSim<'m>, const K: usize>(vol: &mut Volume<'_, D, K>) {
    let f = vol.device().sim();
    f.reset_stats();
    f.reset_wear();
}

/// Item `i`'s key for the named rows: the same `u64` key sequential-storage's map gets, as its
/// 8 big-endian bytes (so keys in numeric order are in byte order: the load appends).
fn key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

/// Flash bytes read per fetch of one item, averaged over fetching every item once: right after
/// the updates (the log holds the blocks they changed), and after a checkpoint (as after a
/// mount: every block home).
type FetchBytes = (f64, f64);

/// The workload on a formatted volume: `n` puts (one per transaction, or `batch` per
/// transaction), then `updates` updates of random items (delete + put in one transaction each),
/// then `steady` more (the steady state, measured apart), then every item read back and
/// checked. With `named`, each item is stored under its key instead (`store`; an update is a
/// `store` that replaces the value). Returns the flash cost of each phase and the flash bytes
/// read per item read back.
#[allow(clippy::too_many_arguments)]
fn workload<'m, D: OnSim<'m>, const K: usize>(
    vol: &mut Volume<'_, D, K>,
    n: u64,
    batch: usize,
    updates: u64,
    steady: u64,
    named: bool,
    label: &dyn Fn(usize) -> String,
) -> (Cost, Cost, Cost, FetchBytes)
where
    D::Error: std::fmt::Debug,
{
    reset(vol);
    let mut handles: Vec<Handle> = Vec::with_capacity(n as usize);
    let mut i = 0u64;
    let mut longest = Longest::default();
    while i < n {
        let end = (i + batch as u64).min(n);
        if named && batch == 1 {
            handles.push(vol.store(&key(i), &item(i, 0)).expect("store"));
        } else if batch == 1 {
            handles.push(vol.put(&item(i, 0)).expect("put"));
        } else {
            let mut b = vol.batch().expect("batch");
            for j in i..end {
                handles.push(b.put(&item(j, 0)).expect("put"));
            }
            b.commit().expect("commit");
        }
        longest.after(busy_of(vol));
        i = end;
    }
    let load = cost_of(vol, n, longest.ns, label);
    let mut version = vec![0u64; n as usize];
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut phase = |vol: &mut Volume<'_, D, K>, count: u64| {
        reset(vol);
        let mut longest = Longest::default();
        for _ in 0..count {
            let k = (xorshift(&mut s) % n) as usize;
            version[k] += 1;
            if named {
                handles[k] = vol
                    .store(&key(k as u64), &item(k as u64, version[k]))
                    .expect("store");
            } else {
                let mut b = vol.batch().expect("batch");
                b.delete(handles[k]).expect("delete");
                handles[k] = b.put(&item(k as u64, version[k])).expect("put");
                b.commit().expect("commit");
            }
            longest.after(busy_of(vol));
        }
        cost_of(vol, count, longest.ns, label)
    };
    let churn = phase(vol, updates);
    let steady_cost = phase(vol, steady);
    let mut buf = [0u8; SIZE];
    let mut read_all = |vol: &mut Volume<'_, D, K>| {
        let before = vol.device().sim().stats().read_bytes;
        for (k, h) in handles.iter().enumerate() {
            let len = if named {
                vol.fetch(&key(k as u64), &mut buf).expect("fetch")
            } else {
                vol.get(*h, &mut buf).expect("get")
            };
            assert_eq!(buf[..len], item(k as u64, version[k]), "vde: wrong item");
        }
        (vol.device().sim().stats().read_bytes - before) as f64 / n.max(1) as f64
    };
    let dirty = read_all(vol);
    vol.checkpoint().expect("checkpoint");
    let home = read_all(vol);
    (load, churn, steady_cost, (dirty, home))
}

/// vde on the direct adapter (`NorFlashDevice`, one 4 KiB block per sector): the workload of
/// [`workload`] (with `named`, on a volume with the `names` module).
/// `cache` blocks of the volume's scratch cache committed blocks.
fn vde(
    n: u64,
    batch: usize,
    updates: u64,
    steady: u64,
    named: bool,
    cache: usize,
) -> (Cost, Cost, Cost, FetchBytes) {
    let mut mem = vec![0xFFu8; FLASH];
    let mut wear = vec![0u32; SECTORS];
    let sim = W25q16jv::from_part(&mut mem, &mut wear, &W25Q16JV, 1).expect("sim");
    let dev = NorFlashDevice::whole(sim, BS).expect("nor device");
    let mut scratch = vec![0u8; Buffers::scratch_with_cache(BS, cache)];
    let mut txn = vec![0u8; BS * 16];
    let mut index = vec![0u8; 16 * 256];
    let opts = FormatOptions {
        modules: if named {
            ModuleSet::OBJECTS | ModuleSet::NAMES
        } else {
            ModuleSet::OBJECTS
        },
        wal_blocks: Some(DIRECT_WAL_BLOCKS),
        ..FormatOptions::default()
    };
    let bufs = Buffers {
        scratch: &mut scratch,
        txn: &mut txn,
        index: &mut index,
    };
    let mut vol = Volume::<_, 16>::format(dev, &opts, bufs).expect("format");
    let labels = vde_labels(&mut vol);
    workload(&mut vol, n, batch, updates, steady, named, &|i| {
        labels[i].clone()
    })
}

/// How the translation layer carves the flash for logical blocks of `bs` bytes: emulated pages
/// of `bs` bytes (one page per logical block) with a [`META_LEN`]-byte spare area each, in
/// emulated erase blocks of 64 KiB (16 sectors) for 4 KiB blocks — 15 slots each, against 3 in
/// 16 KiB — and of 16 KiB (4 sectors) for smaller ones — 30 slots of 512 bytes each, 64 blocks
/// for finer garbage collection.
fn ftl_layout(bs: usize) -> NorNandLayout {
    NorNandLayout {
        base_offset: 0,
        sectors_per_block: if bs >= 4096 { 16 } else { 4 },
        page_size: bs,
        spare_size: META_LEN,
        block_count: None,
    }
}

/// The shape of the translation layer with `bs`-byte logical blocks on the benchmark's flash.
fn ftl_shape(bs: usize) -> FtlLayout {
    let mut mem = vec![0xFFu8; FLASH];
    let mut wear = vec![0u32; SECTORS];
    let sim = W25q16jv::from_part(&mut mem, &mut wear, &W25Q16JV, 1).expect("sim");
    let nand = NorNand::new(sim, ftl_layout(bs)).expect("nor as nand");
    let geo = nand.geometry();
    FtlLayout::compute(&geo, &FtlConfig::new(&geo, bs)).expect("ftl layout")
}

/// vde on the wear-levelled translation layer (`Ftl<NorNand>`, default reserve and wear spread)
/// with `bs`-byte logical blocks: the workload of [`workload`].
fn vde_ftl(bs: usize, n: u64, batch: usize, updates: u64) -> (Cost, Cost) {
    let mut mem = vec![0xFFu8; FLASH];
    let mut wear = vec![0u32; SECTORS];
    let sim = W25q16jv::from_part(&mut mem, &mut wear, &W25Q16JV, 1).expect("sim");
    let layout = ftl_layout(bs);
    let nand = NorNand::new(sim, layout).expect("nor as nand");
    let config = FtlConfig::new(&nand.geometry(), bs);
    let l = FtlLayout::compute(&nand.geometry(), &config).expect("ftl layout");
    let mut ram = OwnedFtlMemory::new(&l);
    let ftl = Ftl::format(nand, ram.mem(), &config).expect("ftl format");
    let mut scratch = vec![0u8; Buffers::scratch_min(bs, false)];
    let mut txn = vec![0u8; bs * FTL_K];
    let mut index = vec![0u8; 16 * 256];
    let opts = FormatOptions {
        modules: ModuleSet::OBJECTS,
        wal_blocks: Some((WAL_BYTES / bs) as u64),
        ..FormatOptions::default()
    };
    let bufs = Buffers {
        scratch: &mut scratch,
        txn: &mut txn,
        index: &mut index,
    };
    let mut vol = Volume::<_, FTL_K>::format(ftl, &opts, bufs).expect("format");
    let spb = layout.sectors_per_block as usize;
    let (load, churn, _, _) = workload(&mut vol, n, batch, updates, 0, false, &|i| {
        format!("sector {i} (FTL block {})", i / spb)
    });
    (load, churn)
}

/// The NAND row's limit: one page program per durable put (a program into one 512-byte ECC
/// sector of a page costs a whole tPROG) plus a 256th of a block erase (four sectors per 2 KiB
/// page, 64 pages per block: a block takes 256 puts).
fn part_limit_ns() -> u64 {
    W25N01GV.timing.program_typ_ns + W25N01GV.timing.erase_typ_ns / 256
}

/// What `n` durable puts cost on NAND.
struct NandCost {
    busy_ns: u64,
    reads: u64,
    programs: u64,
    erases: u64,
    longest_ns: u64,
    n: u64,
}

/// Committed blocks the cached named-fetch row's volume caches (12 KiB of its scratch).
const FETCH_CACHE_BLOCKS: usize = 3;

/// Committed blocks the NAND row's volume caches (8 KiB of its scratch).
const NAND_CACHE_BLOCKS: usize = 4;

/// Erase blocks of the W25N01GV slice the NAND row uses (8 MiB).
const NAND_BLOCKS: u32 = 64;

/// vde on the translation layer over a W25N01GV slice, 2 KiB logical blocks (one page per
/// version): `n` 64-byte puts, one durable transaction each (the default WAL), with `cache`
/// blocks of block cache, the log's commits programmed a 512-byte sector at a time if
/// `sectors` (else each commit rewrites its log block as a new page version).
fn vde_nand(n: u64, cache: usize, sectors: bool) -> NandCost {
    let part = &if sectors {
        W25N01GV
    } else {
        W25N01GV.with_partial_programs(W25N01GV.page_size, 1)
    };
    let bs = part.page_size;
    let mut mem = vec![0u8; part.raw_bytes(NAND_BLOCKS)];
    SimNand::factory_init(&mut mem, part, 0, 5);
    let mut st = vec![SimNandBlock::NEW; NAND_BLOCKS as usize];
    let mut sim = SimNand::new(&mut mem, &mut st, part, SimNandConfig::new(1)).expect("nand");
    let config = FtlConfig::new(&sim.geometry(), bs);
    let l = FtlLayout::compute(&sim.geometry(), &config).expect("ftl layout");
    let mut ram = OwnedFtlMemory::new(&l);
    let ftl = Ftl::format(&mut sim, ram.mem(), &config).expect("ftl format");
    let mut scratch = vec![0u8; Buffers::scratch_with_cache(bs, cache)];
    let mut txn = vec![0u8; bs * 16];
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
    let mut vol = Volume::<_, 16>::format(ftl, &opts, bufs).expect("format");
    let busy = |vol: &mut Volume<'_, Ftl<'_, &mut SimNand<'_>>, 16>| {
        part.timing.busy_time_ns(&vol.device().nand().stats())
    };
    let before = vol.device().nand().stats();
    let start = busy(&mut vol);
    let mut last = start;
    let mut longest = 0u64;
    for i in 0..n {
        vol.put(&item(i, 0)).expect("put");
        let now = busy(&mut vol);
        longest = longest.max(now - last);
        last = now;
    }
    let after = vol.device().nand().stats();
    NandCost {
        busy_ns: last - start,
        reads: after.reads - before.reads,
        programs: after.program_units - before.program_units,
        erases: after.erases - before.erases,
        longest_ns: longest,
        n,
    }
}

/// sequential-storage's map: `n` stores, then `updates` stores of random existing keys, then
/// every key fetched (the flash bytes read per fetch returned too).
fn seq(n: u64, updates: u64, steady: u64) -> (Cost, Cost, Cost, FetchBytes) {
    let mut mem = vec![0xFFu8; FLASH];
    let mut wear = vec![0u32; SECTORS];
    let sim = W25q16jv::from_part(&mut mem, &mut wear, &W25Q16JV, 1).expect("sim");
    let mut map = MapStorage::<u64, _, _>::new(
        Blocking(sim),
        const { MapConfig::new(0..FLASH as u32) },
        Cache::new_uncached(),
    );
    let mut buf = [0u8; 128];
    let mut longest = Longest::default();
    for i in 0..n {
        block_on(map.store_item(&mut buf, &i, &&item(i, 0)[..])).expect("store");
        longest.after(map.flash().0.busy_time_ns());
    }
    let (Blocking(sim), cache) = map.destroy();
    let load = Cost {
        ops: n,
        stats: sim.stats(),
        busy_ns: sim.busy_time_ns(),
        longest_ns: longest.ns,
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
    let mut costs = Vec::new();
    for count in [updates, steady] {
        let mut longest = Longest::default();
        map.flash().0.reset_stats();
        map.flash().0.reset_wear();
        for _ in 0..count {
            let k = xorshift(&mut s) % n;
            version[k as usize] += 1;
            block_on(map.store_item(&mut buf, &k, &&item(k, version[k as usize])[..]))
                .expect("store");
            longest.after(map.flash().0.busy_time_ns());
        }
        let sim = &map.flash().0;
        costs.push(Cost {
            ops: count,
            stats: sim.stats(),
            busy_ns: sim.busy_time_ns(),
            longest_ns: longest.ns,
            wear: sim.wear_summary(),
            hot: hottest(sim.wear(), |i| format!("page {i}")),
        });
    }
    let steady_cost = costs.pop().expect("steady");
    let churn = costs.pop().expect("churn");
    let before = map.flash().0.stats().read_bytes;
    for k in 0..n {
        let got: Option<&[u8]> = block_on(map.fetch_item(&mut buf, &k)).expect("fetch");
        assert_eq!(
            got,
            Some(&item(k, version[k as usize])[..]),
            "sequential-storage: wrong item"
        );
    }
    let fetch = (map.flash().0.stats().read_bytes - before) as f64 / n.max(1) as f64;
    let fetch = (fetch, fetch);
    (load, churn, steady_cost, fetch)
}

/// Logical block sizes of the translation-layer rows: vde's block size on the direct adapter,
/// and vde's smallest block size (fewer bytes programmed per block write).
const FTL_BLOCK_SIZES: [usize; 2] = [4096, 512];

/// `bs` bytes as "4 KiB" or "512 B".
fn size(bs: usize) -> String {
    if bs >= 1024 && bs.is_multiple_of(1024) {
        format!("{} KiB", bs / 1024)
    } else {
        format!("{bs} B")
    }
}

/// Prints the flash table for `n` items and `updates` updates.
/// `steady` more updates after them are measured apart (the steady state) for vde direct and
/// sequential-storage.
pub fn section(n: u64, updates: u64, steady: u64) {
    let (v1_load, v1_churn, v1_steady, v1_fetch) = vde(n, 1, updates, steady, false, 0);
    let (vb_load, _, _, _) = vde(n, 100, 0, 0, false, 0);
    let (vn_load, vn_churn, _, vn_fetch) = vde(n, 1, updates, 0, true, 0);
    let (_, _, _, vc_fetch) = vde(n, 1, updates, 0, true, FETCH_CACHE_BLOCKS);
    let ftl: Vec<(usize, Cost, Cost, Cost)> = FTL_BLOCK_SIZES
        .iter()
        .map(|&bs| {
            let (load, churn) = vde_ftl(bs, n, 1, updates);
            let (batched, _) = vde_ftl(bs, n, 100, 0);
            (bs, load, batched, churn)
        })
        .collect();
    let (s_load, s_churn, s_steady, s_fetch) = seq(n, updates, steady);
    println!(
        "## Flash: {n} × {SIZE}-byte items on 1 MiB of {} (4 KiB sectors), then {updates} updates \
         and {steady} more (steady state)",
        W25Q16JV.name
    );
    println!();
    println!(
        "| phase | store | bytes programmed / item | erases / item | busy ms / item \
         (typ. timings) | vde busy ÷ sequential-storage | longest item, busy ms | busy total s | \
         wear max / min per sector | most erased sector |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let row = |phase: &str, name: &str, c: &Cost, peer: Option<&Cost>| {
        let busy = |c: &Cost| c.busy_ns as f64 / c.ops.max(1) as f64;
        println!(
            "| {phase} | {name} | {:.1} | {:.3} | {:.3} | {} | {:.1} | {:.2} | {} / {} | {} |",
            c.stats.program_bytes as f64 / c.ops.max(1) as f64,
            c.stats.erases as f64 / c.ops.max(1) as f64,
            busy(c) / 1e6,
            peer.map_or("—".into(), |p| crate::ratio(busy(c), busy(p))),
            c.longest_ns as f64 / 1e6,
            c.busy_ns as f64 / 1e9,
            c.wear.max,
            c.wear.min,
            c.hot,
        );
    };
    let on_ftl = |bs: usize| format!("vde on FTL, {} blocks", size(bs));
    row(
        "store",
        "vde direct, 1 put / transaction",
        &v1_load,
        Some(&s_load),
    );
    row(
        "store",
        "vde direct, 100 puts / transaction",
        &vb_load,
        Some(&s_load),
    );
    row(
        "store",
        "vde direct, named (`store` by key), 1 / transaction",
        &vn_load,
        Some(&s_load),
    );
    for (bs, load, batched, _) in &ftl {
        let name = on_ftl(*bs);
        row(
            "store",
            &format!("{name}, 1 put / transaction"),
            load,
            Some(&s_load),
        );
        row(
            "store",
            &format!("{name}, 100 puts / transaction"),
            batched,
            Some(&s_load),
        );
    }
    row("store", "sequential-storage map", &s_load, None);
    row(
        "update",
        "vde direct, delete + put / transaction",
        &v1_churn,
        Some(&s_churn),
    );
    row(
        "update",
        "vde direct, named (`store` replaces the key's value) / transaction",
        &vn_churn,
        Some(&s_churn),
    );
    for (bs, _, _, churn) in &ftl {
        row(
            "update",
            &format!("{}, delete + put / transaction", on_ftl(*bs)),
            churn,
            Some(&s_churn),
        );
    }
    row("update", "sequential-storage map", &s_churn, None);
    let later = format!("steady: updates {}–{}", updates + 1, updates + steady);
    row(
        &later,
        "vde direct, delete + put / transaction",
        &v1_steady,
        Some(&s_steady),
    );
    row(&later, "sequential-storage map", &s_steady, None);
    println!();
    let shapes: Vec<String> = FTL_BLOCK_SIZES
        .iter()
        .map(|&bs| {
            let l = ftl_shape(bs);
            let lay = ftl_layout(bs);
            format!(
                "{} blocks: {} erase blocks of {} KiB, {} slots each, {} reserve, {} logical \
                 blocks",
                size(bs),
                l.erase_blocks,
                lay.sectors_per_block as usize * SECTOR / 1024,
                l.slots_per_block,
                l.reserve_blocks,
                l.logical_blocks
            )
        })
        .collect();
    println!(
        "(vde direct = `NorFlashDevice`, one 4 KiB block per sector, bytes stored inverted: a \
         new slot is programmed into its shared block's erased bytes at the checkpoint (no \
         erase), a delete leaves the slot dead until its block is compacted (one erase), a \
         block the checkpoint rewrites whole is erased, a log append programs erased bytes (a \
         log block is erased when the log reaches it); a {} KiB WAL (a quarter of the flash). \
         vde on FTL = the wear-levelled translation layer `Ftl<NorNand>` over the same flash \
         ({}; default reserve and wear spread; a {} KiB WAL, the default for this size), its \
         garbage collection and metadata included. \
         busy time = program pages × tPP + sectors erased × tSE at the datasheet's typical 0.4 ms \
         and 45 ms; the ratio compares busy time per item in the same phase: above 1 means vde keeps \
         the flash busy longer. The longest item is the costliest single put, update or batch of \
         100 puts (the stall a caller sees: checkpoints, garbage collection and erases included). \
         Wear counts the sectors erased during the phase.)",
        DIRECT_WAL_BLOCKS as usize * BS / 1024,
        shapes.join("; "),
        WAL_BYTES / 1024
    );
    println!();
    let limit_ns = part_limit_ns();
    println!(
        "### NAND: {n} durable {SIZE}-byte puts on {} (through the translation layer)",
        W25N01GV.name
    );
    println!();
    println!(
        "| store | busy ms / put (typ.) | ÷ the limit | page programs / put | block erases / put | \
         page reads / put | longest put, ms |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (label, cache, sectors) in [
        ("whole-page versions, no block cache", 0, false),
        ("whole-page versions, block cache", NAND_CACHE_BLOCKS, false),
        ("sector programs, no block cache", 0, true),
        (
            "**sector programs, block cache (default)**",
            NAND_CACHE_BLOCKS,
            true,
        ),
    ] {
        let nand = vde_nand(n, cache, sectors);
        let per = |x: u64| x as f64 / nand.n.max(1) as f64;
        println!(
            "| vde on FTL, {label} | {:.3} | {:.2}× | {:.2} | {:.4} | {:.1} | {:.1} |",
            per(nand.busy_ns) / 1e6,
            per(nand.busy_ns) / limit_ns as f64,
            per(nand.programs),
            per(nand.erases),
            per(nand.reads),
            nand.longest_ns as f64 / 1e6
        );
    }
    println!();
    println!(
        "(a {NAND_BLOCKS}-block slice (8 MiB) of the part, the translation layer with its default \
         reserve, 2 KiB vde blocks (one page per version), the default WAL, 1 put per durable \
         transaction. Sector programs: the log pads each commit to the part's 512-byte ECC \
         sector and the layer programs only the new sectors into the log block's open version \
         (up to the part's 4 programs per page) instead of a new page version per commit. Block \
         cache: {NAND_CACHE_BLOCKS} blocks of the volume's scratch hold committed blocks, so the \
         shared block and slot index a put changes are not rebuilt from log pages each time. \
         busy time = page reads \
         × tRD + page programs × tPROG + block erases × tBERS at the datasheet's typical 25 µs, \
         250 µs and 2 ms. The limit is one page program per durable put plus its share of an \
         erase ({:.3} ms): what a log that appends each put into a 512-byte ECC sector of a page \
         would cost.)",
        limit_ns as f64 / 1e6
    );
    println!();
    println!("### Reading one item back after the updates: flash bytes read per item");
    println!();
    println!(
        "| store | bytes read / fetch, after the updates | ÷ sequential-storage | after a \
         checkpoint | ÷ sequential-storage |"
    );
    println!("|---|---|---|---|---|");
    let cached = format!(
        "vde direct, `fetch` by key, {FETCH_CACHE_BLOCKS}-block cache ({} KiB more RAM)",
        FETCH_CACHE_BLOCKS * BS / 1024
    );
    for (name, b) in [
        ("vde direct, `fetch` by key (named)", vn_fetch),
        (cached.as_str(), vc_fetch),
        ("vde direct, `get` by handle", v1_fetch),
        ("sequential-storage map, `fetch_item`", s_fetch),
    ] {
        println!(
            "| {name} | {:.0} | {:.3} | {:.0} | {:.3} |",
            b.0,
            b.0 / s_fetch.0.max(1.0),
            b.1,
            b.1 / s_fetch.1.max(1.0)
        );
    }
    println!();
    println!(
        "(each of the {n} items fetched once, in key order: right after the update phase, when \
         the log holds the blocks the updates changed and a read rebuilds them from their \
         records, and again after a checkpoint, as after a mount, when every block is home; a \
         named fetch reads the name table's root (the part its entries use), one leaf block and \
         the object's slot; with a block cache, the root, the leaf and the shared block stay in \
         RAM from one fetch to the next (keys in order share them); sequential-storage has no \
         checkpoint, its two figures are one run, without its optional caches)"
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
    fn vde_on_the_translation_layer_counts_its_flash_operations() {
        for bs in FTL_BLOCK_SIZES {
            let l = ftl_shape(bs);
            assert!(l.logical_blocks > 0, "{bs}");
            let (load, churn) = vde_ftl(bs, 50, 1, 50);
            assert_eq!((load.ops, churn.ops), (50, 50));
            assert!(churn.stats.program_bytes >= 50 * SIZE as u64, "{bs}");
            let (batched, _) = vde_ftl(bs, 150, 100, 0);
            assert!(
                batched.stats.program_bytes < load.stats.program_bytes * 3,
                "{bs}"
            );
        }
        assert_eq!(size(4096), "4 KiB");
        assert_eq!(size(512), "512 B");
    }

    #[test]
    fn hottest_names_the_most_erased_sector() {
        assert_eq!(hottest(&[0, 3, 1], |i| format!("s{i}")), "s1 (3×)");
        assert_eq!(hottest(&[0, 0], |i| format!("s{i}")), "none");
    }
}
