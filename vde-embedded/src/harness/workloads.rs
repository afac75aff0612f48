//! The standard power-cut workloads and their models.
//!
//! Owns: [`RandomTransactions`] (raw multi-block transactions: allocate, write, rewrite, release),
//! [`AddModules`] (online module addition) and [`Objects`] (put / delete / batch of mixed sizes),
//! each with the log it keeps while it runs and the check that compares a remounted volume with
//! that log. All three are generic over the block device, so they run on any device the core
//! does (the harness drives them on [`SimFlash`](crate::SimFlash)).
//!
//! Every workload is deterministic: its choices depend only on its seed and on what it has
//! logged, so a cut run makes exactly the reference run's calls up to its cut.

use std::collections::{BTreeMap, BTreeSet};
use std::format;
use std::string::String;
use std::vec;
use std::vec::Vec;

use vde_nostd::modules::{self, CATALOGUE};
use vde_nostd::types::Extent;
use vde_nostd::{BlockNo, Error, Handle, ModuleSet, ObjectStats};

if_blocking! {
    use vde_bisync::strip_async as bisync;
    use vde_nostd::{BlockDevice, Volume};
}
if_async! {
    use vde_bisync::keep_async as bisync;
    use vde_nostd::asynch::{BlockDevice, Volume};
}

use super::Workload;
use crate::sim::XorShift64;

/// Largest number of problems a check lists in one violation.
const MAX_LISTED: usize = 6;

fn join(problems: &[String]) -> String {
    let mut s = problems
        .iter()
        .take(MAX_LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if problems.len() > MAX_LISTED {
        s.push_str(&format!("; and {} more", problems.len() - MAX_LISTED));
    }
    s
}

/// A volume's counters at one point of a workload: free blocks and, with the objects module,
/// the object statistics. The reference run logs one after every acknowledged operation (and one
/// at the start); after a cut the remounted volume must show exactly the one before or the one
/// after the operation in flight, so a leaked or doubly counted block, or a counter that moved
/// without its object, is a violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Free blocks.
    pub free_blocks: u64,
    /// Object statistics (`None` without the objects module).
    pub objects: Option<ObjectStats>,
}

#[bisync]
impl Snapshot {
    /// Takes the volume's counters (RAM only after a successful operation).
    pub async fn take<D: BlockDevice, const K: usize>(vol: &mut Volume<'_, D, K>) -> Snapshot {
        Snapshot {
            free_blocks: vol.usage().free_blocks,
            objects: vol.object_stats().await.ok(),
        }
    }

    /// Checks `vol` against `reference[at]`, the reference run's counters after `at`
    /// acknowledged operations.
    pub async fn expect<D: BlockDevice, const K: usize>(
        vol: &mut Volume<'_, D, K>,
        reference: &[Snapshot],
        at: usize,
    ) -> Result<(), String> {
        let want = reference
            .get(at)
            .ok_or_else(|| format!("the reference run has no counters after {at} operations"))?;
        let got = Snapshot::take(vol).await;
        if got == *want {
            return Ok(());
        }
        let fresh = vol
            .count_free()
            .await
            .map_err(|e| format!("count_free: {e:?}"))?;
        Err(format!(
            "counters after {at} operations: {got:?} (bitmap scan: {fresh} free), the reference \
             run had {want:?}"
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// (a) random multi-block transactions

/// Random multi-block transactions through [`Volume::begin`]: each allocates a run of blocks and
/// writes them, rewrites live blocks, and sometimes releases a run, then commits. Each written
/// block carries its block number and the transaction's stamp, so the check can tell for every
/// block whether it is old, new or torn.
///
/// Model: after a cut, the blocks (content and allocation bit) equal the state after the last
/// acknowledged transaction, or the state after the one in flight; nothing in between.
#[derive(Debug, Clone, Copy)]
pub struct RandomTransactions {
    /// Seed of the workload's choices.
    pub seed: u64,
    /// Transactions to commit.
    pub transactions: usize,
    /// Most blocks one allocation takes.
    pub max_alloc: u64,
    /// Live blocks above which transactions release instead of allocating.
    pub max_live: usize,
}

/// What [`RandomTransactions`] logged.
#[derive(Debug, Clone, Default)]
pub struct TxLog {
    /// `states[i]`: block → stamp of every live block after `i` committed transactions; one more
    /// entry (the next state) while a transaction is in flight.
    pub states: Vec<BTreeMap<u64, u32>>,
    /// Transactions acknowledged.
    pub acked: usize,
    /// Every block any transaction allocated.
    pub touched: BTreeSet<u64>,
    /// Counters at the start and after every acknowledged transaction.
    pub snapshots: Vec<Snapshot>,
}

/// The content [`RandomTransactions`] writes to `block` with `stamp`: block number, stamp, a magic
/// word, then bytes derived from both.
pub fn block_image(block: u64, stamp: u32, out: &mut [u8]) {
    let mut rng = XorShift64::new(block.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(stamp));
    rng.fill_bytes(out);
    let mut hdr = [0u8; 16];
    hdr[..8].copy_from_slice(&block.to_le_bytes());
    hdr[8..12].copy_from_slice(&stamp.to_le_bytes());
    hdr[12..].copy_from_slice(b"vdeT");
    for (o, h) in out.iter_mut().zip(hdr) {
        *o = h;
    }
}

/// The stamp of a block written by [`block_image`] for `block`, or `None` if the content is not
/// exactly such an image (torn, foreign or never written).
pub fn stamp_of(block: u64, data: &[u8]) -> Option<u32> {
    let b = u64::from_le_bytes(data.get(..8)?.try_into().ok()?);
    let stamp = u32::from_le_bytes(data.get(8..12)?.try_into().ok()?);
    if b != block || data.get(12..16)? != b"vdeT" {
        return None;
    }
    let mut want = vec![0u8; data.len()];
    block_image(block, stamp, &mut want);
    (want == data).then_some(stamp)
}

/// What a block looks like on the volume: allocated, and the stamp of its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    allocated: bool,
    stamp: Option<u32>,
}

fn matches_state(seen: &BTreeMap<u64, Seen>, state: &BTreeMap<u64, u32>) -> bool {
    seen.iter().all(|(b, s)| match state.get(b) {
        Some(stamp) => s.allocated && s.stamp == Some(*stamp),
        None => !s.allocated,
    })
}

fn pick(rng: &mut XorShift64, n: usize) -> usize {
    usize::try_from(rng.below(n as u64)).unwrap_or(0)
}

#[bisync]
impl Workload for RandomTransactions {
    type Log = TxLog;

    fn name(&self) -> String {
        format!("random transactions ({})", self.transactions)
    }

    async fn run<D: BlockDevice, const K: usize>(
        &self,
        vol: &mut Volume<'_, D, K>,
        log: &mut TxLog,
    ) -> Result<(), Error<D::Error>> {
        let mut rng = XorShift64::new(self.seed);
        let mut buf = vec![0u8; vol.block_size()];
        let mut live: BTreeMap<u64, u32> = BTreeMap::new();
        let mut runs: Vec<Extent> = Vec::new();
        log.states.push(live.clone());
        log.snapshots.push(Snapshot::take(vol).await);
        for t in 0..self.transactions {
            let stamp = u32::try_from(t + 1).unwrap_or(u32::MAX);
            let mut next = live.clone();
            let mut next_runs = runs.clone();
            let mut tx = vol.begin();
            if !next_runs.is_empty() && (live.len() >= self.max_live || rng.below(4) == 0) {
                let e = next_runs.swap_remove(pick(&mut rng, next_runs.len()));
                tx.release(e).await?;
                for b in e.start.0..e.start.0 + e.len {
                    next.remove(&b);
                }
            }
            if next.len() < self.max_live && (next_runs.is_empty() || rng.below(3) != 0) {
                let e = tx.allocate(1 + rng.below(self.max_alloc.max(1))).await?;
                next_runs.push(e);
                for b in e.start.0..e.start.0 + e.len {
                    next.insert(b, stamp);
                }
            }
            for _ in 0..rng.below(3) {
                let old: Vec<u64> = next.keys().copied().collect();
                if let Some(&b) = old.get(pick(&mut rng, old.len())) {
                    next.insert(b, stamp);
                }
            }
            for (&b, &s) in &next {
                if s == stamp {
                    block_image(b, stamp, &mut buf);
                    tx.write(BlockNo(b), &buf).await?;
                }
            }
            log.touched.extend(next.keys());
            log.states.push(next.clone());
            tx.commit().await?;
            log.snapshots.push(Snapshot::take(vol).await);
            log.acked += 1;
            live = next;
            runs = next_runs;
        }
        Ok(())
    }

    async fn check<D: BlockDevice, const K: usize>(
        &self,
        vol: &mut Volume<'_, D, K>,
        log: &TxLog,
        reference: &TxLog,
    ) -> Result<(), String> {
        let acked = log
            .states
            .get(log.acked)
            .ok_or("log has no acknowledged state")?;
        let inflight = log.states.get(log.acked + 1);
        let mut seen = BTreeMap::new();
        let mut buf = vec![0u8; vol.block_size()];
        for &b in &log.touched {
            let allocated = vol
                .is_allocated(BlockNo(b))
                .await
                .map_err(|e| format!("bitmap of block {b}: {e:?}"))?;
            vol.read_block(BlockNo(b), &mut buf)
                .await
                .map_err(|e| format!("read block {b}: {e:?}"))?;
            let stamp = stamp_of(b, &buf);
            seen.insert(b, Seen { allocated, stamp });
        }
        if matches_state(&seen, acked) {
            return Snapshot::expect(vol, &reference.snapshots, log.acked).await;
        }
        if inflight.is_some_and(|s| matches_state(&seen, s)) {
            return Snapshot::expect(vol, &reference.snapshots, log.acked + 1).await;
        }
        let mut problems = Vec::new();
        for (b, s) in &seen {
            let want = acked.get(b);
            let next = inflight.and_then(|st| st.get(b));
            let fine = match want {
                Some(w) => s.allocated && s.stamp == Some(*w),
                None => !s.allocated,
            };
            if !fine {
                problems.push(format!(
                    "block {b}: allocated {} stamp {:?}, acked wants {want:?}, in flight {next:?}",
                    s.allocated, s.stamp
                ));
            }
        }
        Err(format!(
            "{} transactions acknowledged{}; state is neither the acknowledged one nor the one in \
             flight: {}",
            log.acked,
            if inflight.is_some() {
                ", one in flight"
            } else {
                ""
            },
            join(&problems)
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// (b) online module addition

/// Adds modules online with [`Volume::add_module_regions`], one after another.
///
/// Model: after a cut, the modules present are those acknowledged, or those plus the one in
/// flight; every present module has exactly its catalogue regions at their catalogue sizes, no
/// absent module has any, the free count equals the blocks outside metadata and regions, and the
/// inode size matches the manifest. The check then adds the remaining modules (the volume is
/// usable after recovery).
#[derive(Debug, Clone, Copy)]
pub struct AddModules {
    /// Module names (from [`CATALOGUE`]), in the order they are added.
    pub modules: &'static [&'static str],
    /// The caller's clock for the additions.
    pub now: u64,
}

/// What [`AddModules`] logged.
#[derive(Debug, Clone, Default)]
pub struct ModulesLog {
    /// Modules present when the workload started.
    pub start: ModuleSet,
    /// Modules present or acknowledged.
    pub acked: ModuleSet,
    /// The module whose addition is in flight.
    pub inflight: Option<ModuleSet>,
    /// Counters at the start and after every acknowledged addition.
    pub snapshots: Vec<Snapshot>,
}

#[bisync]
impl Workload for AddModules {
    type Log = ModulesLog;

    fn name(&self) -> String {
        format!("add_module_regions ({})", self.modules.join(", "))
    }

    async fn run<D: BlockDevice, const K: usize>(
        &self,
        vol: &mut Volume<'_, D, K>,
        log: &mut ModulesLog,
    ) -> Result<(), Error<D::Error>> {
        log.start = vol.modules();
        log.acked = log.start;
        log.snapshots.push(Snapshot::take(vol).await);
        for name in self.modules {
            let m = modules::by_name(name).ok_or(Error::UnknownModule)?;
            log.inflight = Some(m.flag());
            vol.add_module_regions(m, self.now).await?;
            log.snapshots.push(Snapshot::take(vol).await);
            log.acked |= m.flag();
            log.inflight = None;
        }
        Ok(())
    }

    async fn check<D: BlockDevice, const K: usize>(
        &self,
        vol: &mut Volume<'_, D, K>,
        log: &ModulesLog,
        reference: &ModulesLog,
    ) -> Result<(), String> {
        let got = vol.modules();
        let with_inflight = log.inflight.map(|f| log.acked | f);
        if got != log.acked && Some(got) != with_inflight {
            return Err(format!(
                "modules {got:?}; acknowledged {:?}, in flight {:?}",
                log.acked, log.inflight
            ));
        }
        let done = log.snapshots.len().saturating_sub(1) + usize::from(got != log.acked);
        Snapshot::expect(vol, &reference.snapshots, done).await?;
        let mut problems = Vec::new();
        let total = vol.layout().block_count;
        let bs = vol.layout().bs();
        let mut region_blocks = 0u64;
        for m in CATALOGUE {
            let regions = vol
                .module_regions(m.bit)
                .await
                .map_err(|e| format!("regions of {}: {e:?}", m.name))?;
            region_blocks += regions.iter().map(|r| r.extent.len).sum::<u64>();
            if !got.contains(m.flag()) {
                if !regions.is_empty() {
                    problems.push(format!("absent module {} has regions", m.name));
                }
                continue;
            }
            let want: Vec<_> = m
                .regions
                .iter()
                .enumerate()
                .map(|(i, k)| (*k, modules::module_region_blocks(m, i, bs, total)))
                .collect();
            let have: Vec<_> = regions.iter().map(|r| (r.kind, r.extent.len)).collect();
            if want != have {
                problems.push(format!(
                    "module {}: regions {have:?}, want {want:?}",
                    m.name
                ));
            }
        }
        let u = vol.usage();
        if u.free_blocks + u.metadata_blocks + region_blocks != u.total_blocks {
            problems.push(format!(
                "free count {u:?} with {region_blocks} region blocks"
            ));
        }
        let sb = *vol.superblock();
        if sb.inode_size != modules::inode_size(got) {
            problems.push(format!("inode size {} for {got:?}", sb.inode_size));
        }
        if got != log.start && sb.modified != self.now {
            problems.push(format!("modified time {} after an addition", sb.modified));
        }
        if !problems.is_empty() {
            return Err(join(&problems));
        }
        // Usable after recovery: the remaining additions go through.
        for name in self.modules {
            let m = modules::by_name(name).ok_or("unknown module")?;
            if !vol.modules().contains(m.flag()) {
                vol.add_module_regions(m, self.now + 1)
                    .await
                    .map_err(|e| format!("adding {name} after recovery: {e:?}"))?;
            }
        }
        vol.verify()
            .await
            .map_err(|e| format!("verify after the remaining additions: {e:?}"))
    }
}

// ---------------------------------------------------------------------------------------------
// (c) objects: put / delete / batch

/// Puts, deletes and batches of objects of mixed sizes (packed into slots and in whole-block
/// extents), and every sixth operation a compaction ([`Volume::gc`]). Payloads are unique (each
/// starts with its operation and position numbers). Half the batches are preceded by a batch of
/// other payloads that is rolled back.
///
/// Model: after a cut, every acknowledged object reads back exactly, every acknowledged delete
/// is gone (its handle is rejected), the in-flight operation (a put, a delete or a whole batch)
/// is wholly applied or wholly absent (its puts' handles are those the reference run got), no
/// handle returns another object's bytes, and the object and byte counters agree. The check then
/// stores, reads back and deletes one more object (the volume is usable after recovery).
#[derive(Debug, Clone, Copy)]
pub struct Objects {
    /// Seed of the workload's choices and payloads.
    pub seed: u64,
    /// Operations (put, delete or batch).
    pub operations: usize,
    /// Smallest object.
    pub min_len: usize,
    /// Largest object.
    pub max_len: usize,
    /// Live payload bytes above which the workload deletes instead of putting.
    pub max_live_bytes: usize,
    /// Whether batches are among the operations (off for a log too small for a batch's blocks:
    /// a 64 KiB flash's 16 KiB log refuses more than three whole blocks in one transaction).
    pub batches: bool,
}

/// The operation [`Objects`] has in flight.
#[derive(Debug, Clone, Default)]
pub struct InFlight {
    /// Operation number.
    pub op: usize,
    /// Payloads being put.
    pub puts: Vec<Vec<u8>>,
    /// Handles being deleted.
    pub deletes: Vec<u64>,
}

/// What [`Objects`] logged.
#[derive(Debug, Clone, Default)]
pub struct ObjectsLog {
    /// Acknowledged live objects (raw handle, payload), oldest first.
    pub live: Vec<(u64, Vec<u8>)>,
    /// Handles of acknowledged deletes.
    pub dead: Vec<u64>,
    /// Per completed operation, the handles its puts returned.
    pub handles: Vec<Vec<u64>>,
    /// The operation in flight, if any.
    pub inflight: Option<InFlight>,
    /// Counters at the start and after every acknowledged operation.
    pub snapshots: Vec<Snapshot>,
}

impl Objects {
    fn length(&self, rng: &mut XorShift64) -> usize {
        let lo = self.min_len.max(1);
        let hi = self.max_len.max(lo);
        let (a, b) = match rng.below(100) {
            0..=54 => (lo, 256),
            55..=84 => (257, 2040),
            _ => (2041, hi),
        };
        let (a, b) = (a.clamp(lo, hi), b.clamp(lo, hi));
        a + pick(rng, b - a + 1)
    }

    fn payload(&self, op: usize, j: usize, len: usize) -> Vec<u8> {
        let mut d = vec![0u8; len];
        let id = (op as u64) << 8 | j as u64;
        XorShift64::new(self.seed ^ id.wrapping_mul(0x2545_F491_4F6C_DD1D)).fill_bytes(&mut d);
        for (o, b) in d.iter_mut().zip(id.to_le_bytes()) {
            *o = b;
        }
        d
    }
}

#[bisync]
impl Workload for Objects {
    type Log = ObjectsLog;

    fn name(&self) -> String {
        format!(
            "objects put/delete/batch ({} ops, {}..{} B)",
            self.operations, self.min_len, self.max_len
        )
    }

    async fn run<D: BlockDevice, const K: usize>(
        &self,
        vol: &mut Volume<'_, D, K>,
        log: &mut ObjectsLog,
    ) -> Result<(), Error<D::Error>> {
        let mut rng = XorShift64::new(self.seed);
        log.snapshots.push(Snapshot::take(vol).await);
        for op in 0..self.operations {
            let live_bytes: usize = log.live.iter().map(|(_, d)| d.len()).sum();
            let choice = match rng.below(8) {
                // Every sixth operation compacts a shared block (nothing, where no slot is
                // dead), so cuts land inside compactions too.
                _ if op % 6 == 5 => 3,
                _ if log.live.is_empty() => 0,
                _ if live_bytes > self.max_live_bytes => 1,
                0..=3 => 0,
                4 | 5 => 1,
                _ if !self.batches => 0,
                _ => 2,
            };
            let mut f = InFlight {
                op,
                ..InFlight::default()
            };
            match choice {
                3 => {}
                0 => f.puts.push(self.payload(op, 0, self.length(&mut rng))),
                1 => {
                    let i = pick(&mut rng, log.live.len());
                    f.deletes.extend(log.live.get(i).map(|x| x.0));
                }
                _ => {
                    for j in 0..1 + rng.below(3) as usize {
                        f.puts.push(self.payload(op, j, self.length(&mut rng)));
                    }
                    for _ in 0..rng.below(3) {
                        let i = pick(&mut rng, log.live.len());
                        if let Some(&(h, _)) = log.live.get(i) {
                            if !f.deletes.contains(&h) {
                                f.deletes.push(h);
                            }
                        }
                    }
                }
            }
            log.inflight = Some(f.clone());
            let mut got = Vec::new();
            match (choice, f.puts.as_slice(), f.deletes.as_slice()) {
                (3, [], []) => {
                    vol.gc().await?;
                }
                (0, [d], []) => got.push(vol.put(d).await?.raw()),
                (1, [], [h]) => vol.delete(Handle::from_raw(*h)).await?,
                _ => {
                    if rng.below(2) == 0 {
                        // A batch rolled back first: its extent payload was written unlogged to
                        // blocks the real batch then takes again, and must leave no trace.
                        let mut b = vol.batch().await?;
                        for (j, d) in f.puts.iter().enumerate() {
                            b.put(&self.payload(op, 128 + j, d.len())).await?;
                        }
                        b.rollback();
                    }
                    let mut b = vol.batch().await?;
                    for d in &f.puts {
                        got.push(b.put(d).await?.raw());
                    }
                    for h in &f.deletes {
                        b.delete(Handle::from_raw(*h)).await?;
                    }
                    b.commit().await?;
                }
            }
            log.live.retain(|(h, _)| !f.deletes.contains(h));
            log.dead.extend(&f.deletes);
            log.live.extend(got.iter().copied().zip(f.puts));
            log.handles.push(got);
            log.snapshots.push(Snapshot::take(vol).await);
            log.inflight = None;
        }
        Ok(())
    }

    async fn check<D: BlockDevice, const K: usize>(
        &self,
        vol: &mut Volume<'_, D, K>,
        log: &ObjectsLog,
        reference: &ObjectsLog,
    ) -> Result<(), String> {
        let mut problems = Vec::new();
        let mut buf = vec![0u8; self.max_len.max(64)];
        let none = InFlight::default();
        let f = log.inflight.as_ref().unwrap_or(&none);
        let put_handles = match (&log.inflight, reference.handles.get(f.op)) {
            (None, _) => Vec::new(),
            (Some(_), Some(hs)) if hs.len() == f.puts.len() => hs.clone(),
            (Some(_), _) => {
                return Err(format!(
                    "operation {} has no handles in the reference run",
                    f.op
                ))
            }
        };
        // Whether the in-flight operation is applied, as each of its parts says.
        let mut applied: Vec<(bool, String)> = Vec::new();
        for (h, d) in &log.live {
            let r = vol.get(Handle::from_raw(*h), &mut buf).await;
            let exact = matches!(&r, Ok(n) if buf.get(..*n) == Some(d.as_slice()));
            let pending = f.deletes.contains(h);
            match r {
                _ if exact => {
                    if pending {
                        applied.push((false, format!("deleted {h:016x} still there")));
                    }
                }
                Err(Error::BadHandle { .. }) if pending => {
                    applied.push((true, format!("deleted {h:016x} gone")));
                }
                Ok(n) => problems.push(format!("{h:016x} returned {n} other bytes")),
                Err(e) => problems.push(format!("acknowledged {h:016x} ({} B): {e:?}", d.len())),
            }
        }
        for (h, d) in put_handles.iter().zip(&f.puts) {
            let r = vol.get(Handle::from_raw(*h), &mut buf).await;
            let exact = matches!(&r, Ok(n) if buf.get(..*n) == Some(d.as_slice()));
            match r {
                _ if exact => applied.push((true, format!("put {h:016x} there"))),
                Err(Error::BadHandle { .. }) => {
                    applied.push((false, format!("put {h:016x} absent")));
                }
                Ok(n) => problems.push(format!("in-flight {h:016x} returned {n} other bytes")),
                Err(e) => problems.push(format!("in-flight {h:016x}: {e:?}")),
            }
        }
        if applied.iter().any(|a| a.0) && applied.iter().any(|a| !a.0) {
            let parts: Vec<String> = applied.iter().map(|a| a.1.clone()).collect();
            problems.push(format!(
                "operation {} half applied: {}",
                f.op,
                parts.join(", ")
            ));
        }
        for h in &log.dead {
            match vol.get(Handle::from_raw(*h), &mut buf).await {
                Err(Error::BadHandle { .. }) => {}
                Ok(n) => problems.push(format!("deleted {h:016x} returned {n} bytes")),
                Err(e) => problems.push(format!("deleted {h:016x}: {e:?}")),
            }
        }
        let is_applied = applied.first().is_some_and(|a| a.0);
        let mut objects = log.live.len() as u64;
        let mut bytes: u64 = log.live.iter().map(|(_, d)| d.len() as u64).sum();
        if is_applied {
            objects += f.puts.len() as u64;
            objects -= f.deletes.len() as u64;
            bytes += f.puts.iter().map(|d| d.len() as u64).sum::<u64>();
            let gone = log.live.iter().filter(|(h, _)| f.deletes.contains(h));
            bytes -= gone.map(|(_, d)| d.len() as u64).sum::<u64>();
        }
        let stats = vol
            .object_stats()
            .await
            .map_err(|e| format!("object_stats: {e:?}"))?;
        if (stats.counters.objects, stats.counters.bytes) != (objects, bytes) {
            problems.push(format!(
                "counters say {} objects / {} B, model {objects} / {bytes}",
                stats.counters.objects, stats.counters.bytes
            ));
        }
        let done = log.handles.len() + usize::from(is_applied && log.inflight.is_some());
        // An in-flight compaction changes no object: only the space counters tell whether it
        // landed, and either state (before it or after it) is whole.
        let compacting = log.inflight.is_some() && f.puts.is_empty() && f.deletes.is_empty();
        if let Err(e) = Snapshot::expect(vol, &reference.snapshots, done).await {
            if !(compacting
                && Snapshot::expect(vol, &reference.snapshots, done + 1)
                    .await
                    .is_ok())
            {
                problems.push(e);
            }
        }
        if !problems.is_empty() {
            return Err(join(&problems));
        }
        // Usable after recovery.
        let probe = self.payload(usize::MAX >> 8, 255, 100);
        let h = vol
            .put(&probe)
            .await
            .map_err(|e| format!("put after recovery: {e:?}"))?;
        let n = vol
            .get(h, &mut buf)
            .await
            .map_err(|e| format!("get after recovery: {e:?}"))?;
        if buf.get(..n) != Some(probe.as_slice()) {
            return Err(String::from("object put after recovery reads back wrong"));
        }
        vol.delete(h)
            .await
            .map_err(|e| format!("delete after recovery: {e:?}"))
    }
}

// ---------------------------------------------------------------------------------------------
// (d) named objects

/// Named objects: stores (new keys and replacements), removes, and batches of both, over a
/// small set of keys, so most stores replace a value. The check after a cut: every key the cut
/// run did not touch in flight fetches its acknowledged value (or `NameNotFound` if it had
/// none); the in-flight operation's keys all fetch their old values or all their new ones (a
/// replace is never "neither"); the listing is exactly the keys that should exist, in order;
/// the object counter equals the number of names; counters and free space match the reference
/// run. Then one more store, fetch and remove (usable after recovery).
#[derive(Debug, Clone, Copy)]
pub struct Names {
    /// Seed of the workload's choices and payloads.
    pub seed: u64,
    /// Operations (store, remove or batch).
    pub operations: usize,
    /// Distinct keys used.
    pub keys: usize,
    /// Largest value (values up to a few blocks become extent objects).
    pub max_len: usize,
}

/// A key and its new value (`None`: removed).
pub type NameChange = (Vec<u8>, Option<Vec<u8>>);

/// What [`Names`] logged.
#[derive(Debug, Clone, Default)]
pub struct NamesLog {
    /// Acknowledged names and values.
    pub map: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The operation in flight: its number and each key's new value (`None`: removed).
    pub inflight: Option<(usize, Vec<NameChange>)>,
    /// Operations acknowledged.
    pub done: usize,
    /// Counters at the start and after every acknowledged operation.
    pub snapshots: Vec<Snapshot>,
}

impl Names {
    fn key(&self, i: u64) -> Vec<u8> {
        // Keys of 3..=40 bytes with shared prefixes.
        let mut k = format!("cfg/{}/{i}", i % 3).into_bytes();
        k.resize(k.len() + (i as usize * 7) % 30, b'.');
        k
    }

    fn value(&self, op: usize, j: usize, rng: &mut XorShift64) -> Vec<u8> {
        let len = match rng.below(10) {
            0 => 1 + rng.below(self.max_len.max(2) as u64) as usize,
            _ => 1 + rng.below(200) as usize,
        };
        (0..len)
            .map(|i| (i as u8) ^ (op as u8).wrapping_mul(31) ^ (j as u8).wrapping_mul(7))
            .collect()
    }
}

#[bisync]
impl Workload for Names {
    type Log = NamesLog;

    fn name(&self) -> String {
        format!(
            "named objects store/remove/batch ({} ops, {} keys, ≤ {} B)",
            self.operations, self.keys, self.max_len
        )
    }

    async fn run<D: BlockDevice, const K: usize>(
        &self,
        vol: &mut Volume<'_, D, K>,
        log: &mut NamesLog,
    ) -> Result<(), Error<D::Error>> {
        let mut rng = XorShift64::new(self.seed);
        log.snapshots.push(Snapshot::take(vol).await);
        for op in 0..self.operations {
            let mut changes: Vec<NameChange> = Vec::new();
            let kind = rng.below(6);
            let n = if kind == 5 { 2 + rng.below(2) } else { 1 };
            for j in 0..n as usize {
                let k = self.key(rng.below(self.keys.max(1) as u64));
                if changes.iter().any(|c| c.0 == k) {
                    continue;
                }
                let exists = log.map.contains_key(&k);
                let remove = exists && (kind == 4 || (kind == 5 && rng.below(3) == 0));
                let v = (!remove).then(|| self.value(op, j, &mut rng));
                changes.push((k, v));
            }
            log.inflight = Some((op, changes.clone()));
            if kind == 5 {
                let mut b = vol.batch().await?;
                for (k, v) in &changes {
                    match v {
                        Some(v) => b.store(k, v).await.map(|_| ())?,
                        None => b.remove(k).await.map(|_| ())?,
                    }
                }
                b.commit().await?;
            } else if let Some((k, v)) = changes.first() {
                match v {
                    Some(v) => vol.store(k, v).await.map(|_| ())?,
                    None => vol.remove(k).await.map(|_| ())?,
                }
            }
            for (k, v) in changes {
                match v {
                    Some(v) => log.map.insert(k, v),
                    None => log.map.remove(&k),
                };
            }
            log.inflight = None;
            log.done += 1;
            log.snapshots.push(Snapshot::take(vol).await);
        }
        Ok(())
    }

    async fn check<D: BlockDevice, const K: usize>(
        &self,
        vol: &mut Volume<'_, D, K>,
        log: &NamesLog,
        reference: &NamesLog,
    ) -> Result<(), String> {
        let mut problems = Vec::new();
        let mut buf = vec![0u8; self.max_len.max(256)];
        let empty = Vec::new();
        let inflight = log.inflight.as_ref().map_or(&empty, |f| &f.1);
        let mut fetch =
            async |vol: &mut Volume<'_, D, K>, k: &[u8]| match vol.fetch(k, &mut buf).await {
                Ok(n) => Ok(Some(buf.get(..n).unwrap_or(&[]).to_vec())),
                Err(Error::NameNotFound) => Ok(None),
                Err(e) => Err(format!("fetch {:?}: {e:?}", String::from_utf8_lossy(k))),
            };
        // Keys outside the in-flight operation hold their acknowledged values.
        for i in 0..self.keys as u64 {
            let k = self.key(i);
            if inflight.iter().any(|c| c.0 == k) {
                continue;
            }
            match fetch(vol, &k).await {
                Ok(got) if got.as_ref() == log.map.get(&k) => {}
                Ok(got) => problems.push(format!(
                    "{:?}: {:?} bytes, acknowledged {:?}",
                    String::from_utf8_lossy(&k),
                    got.map(|g| g.len()),
                    log.map.get(&k).map(|v| v.len())
                )),
                Err(e) => problems.push(e),
            }
        }
        // The in-flight operation: all old or all new.
        let mut old = 0;
        let mut new = 0;
        for (k, v) in inflight {
            match fetch(vol, k).await {
                Ok(got) => {
                    let was = log.map.get(k);
                    if got.as_ref() == v.as_ref() {
                        new += 1;
                    }
                    if got.as_ref() == was {
                        old += 1;
                    }
                    if got.as_ref() != v.as_ref() && got.as_ref() != was {
                        problems.push(format!(
                            "in-flight {:?} holds neither its old nor its new value",
                            String::from_utf8_lossy(k)
                        ));
                    }
                }
                Err(e) => problems.push(e),
            }
        }
        let applied = !inflight.is_empty() && new == inflight.len();
        if !inflight.is_empty() && !applied && old != inflight.len() {
            problems.push(format!(
                "operation {:?} half applied ({new} of {} keys new)",
                log.inflight.as_ref().map(|f| f.0),
                inflight.len()
            ));
        }
        // The listing and the object counter.
        let mut want = log.map.clone();
        if applied {
            for (k, v) in inflight {
                match v {
                    Some(v) => want.insert(k.clone(), v.clone()),
                    None => want.remove(k),
                };
            }
        }
        let mut listed = Vec::new();
        if let Err(e) = vol
            .for_each_name(b"", |k, _| {
                listed.push(k.to_vec());
                true
            })
            .await
        {
            problems.push(format!("listing: {e:?}"));
        }
        if listed != want.keys().cloned().collect::<Vec<_>>() {
            problems.push(format!(
                "listing has {} names, want {}",
                listed.len(),
                want.len()
            ));
        }
        match vol.object_stats().await {
            Ok(s) if s.counters.objects == want.len() as u64 => {}
            Ok(s) => problems.push(format!(
                "{} objects for {} names",
                s.counters.objects,
                want.len()
            )),
            Err(e) => problems.push(format!("object_stats: {e:?}")),
        }
        let done = log.done + usize::from(applied);
        if let Err(e) = Snapshot::expect(vol, &reference.snapshots, done).await {
            problems.push(e);
        }
        if !problems.is_empty() {
            return Err(join(&problems));
        }
        // Usable after recovery.
        let key = b"probe/after-recovery";
        vol.store(key, b"ok")
            .await
            .map_err(|e| format!("store after recovery: {e:?}"))?;
        match vol.fetch(key, &mut buf).await {
            Ok(2) if buf.get(..2) == Some(&b"ok"[..]) => {}
            r => return Err(format!("fetch after recovery: {r:?}")),
        }
        vol.remove(key)
            .await
            .map(|_| ())
            .map_err(|e| format!("remove after recovery: {e:?}"))
    }
}
