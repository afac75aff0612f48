//! `wal_recovery`: a valid image with committed, not yet checkpointed transactions in its log,
//! whose WAL headers and log area (blocks `2 .. 4 + wal_blocks`) are then damaged by a program
//! the fuzzer writes.
//!
//! Input: `setup u8 | mutation program`. The setup byte picks how many transactions (1..=6) and
//! of which kind (raw block writes, packed puts, deletes, an online module addition) are left in
//! the log. Each step of the program is an opcode byte and its operands:
//! ```text
//! 0 write     off u16, n u8, n bytes      bytes into the area
//! 1 flip      off u16, bit u8             one bit
//! 2 copy      src u8, dst u8              one area block over another
//! 3 fill      blk u8, value u8            one area block
//! 4 header    which u8, dgen u8, depoch u8, dseq u8, mode u8
//!                                         rewrite WAL header A/B with shifted fields, re-sealed
//! 5 truncate  blk u8                      zero the log from this block on
//! 6 forge     txn u8, rec u8, kind u8, x u8
//!                                         restore transaction `txn` as committed, aim record
//!                                         `rec` outside the image or into the WAL, re-seal it
//! 7 replace   off u16, rest               the rest of the input over the area
//! ```
//! Checks: no panic; no write outside the image; every block written by recovery is a WAL
//! header or the target of a genuinely committed transaction; afterwards (mount succeeded or
//! not) everything outside the area equals the state after some prefix of the committed
//! transactions (so a record whose checksum fails, or a forged one, was never applied); a
//! successful mount replayed exactly that prefix, passes verify, works, and mounts again.

use crate::common::{payload, walk_log, Cursor, ImageDevice, LogTxn, Mem, Walk};
use std::cell::RefCell;
use std::collections::HashMap;
use vde_nostd::format::layout::Layout;
use vde_nostd::format::wal_header::WalHeader;
use vde_nostd::modules::by_bit;
use vde_nostd::{BlockNo, FormatOptions, ModuleSet, Structure, Volume};

const BS: usize = 512;
const BLOCKS: usize = 128;
const WAL: u64 = 32;

type Vol<'b, D> = Volume<'b, D, 16>;

/// A prepared crash image.
#[derive(Clone)]
pub struct Setup {
    /// The image as a crash right after the last commit's flush leaves it.
    pub crash: Vec<u8>,
    /// `states[k]`: the image with the first `k` transactions applied (outside the area).
    pub states: Vec<Vec<u8>>,
    /// The committed transactions, in order.
    pub txns: Vec<LogTxn>,
    /// Geometry.
    pub layout: Layout,
    /// Every block a genuine transaction writes.
    pub targets: Vec<u64>,
}

thread_local! {
    static SETUPS: RefCell<HashMap<u8, Setup>> = RefCell::new(HashMap::new());
}

/// The setup for a setup byte (cached).
pub fn setup(c: u8) -> Setup {
    SETUPS.with(|s| s.borrow_mut().entry(c).or_insert_with(|| build(c)).clone())
}

fn build(c: u8) -> Setup {
    let n_txns = 1 + usize::from(c % 6);
    let kind = (c / 6) % 4;
    let mut mem = Mem::new(BS, 16, 64);
    let opts = FormatOptions {
        wal_blocks: Some(WAL),
        volume_id: [0x5A; 16],
        now: 1,
        modules: ModuleSet::OBJECTS,
    };
    let vol = Vol::format(
        ImageDevice::new(vec![0; BS * BLOCKS], BS),
        &opts,
        mem.bufs(),
    )
    .expect("setup: format");
    let dev = vol.unmount().expect("setup: unmount");
    let mut vol = Vol::mount(dev, mem.bufs()).expect("setup: mount");
    let layout = *vol.layout();
    let salt = vol.superblock().wal_salt();
    let base = vol.device().img.clone();
    let checkpoints = vol.wal_stats().checkpoints;
    let mut handles = Vec::new();
    for t in 0..n_txns {
        let seed = u64::from(c) * 16 + t as u64;
        match (kind, t % 3) {
            (0, _) | (2, 0) => {
                let mut tx = vol.begin();
                let e = tx.allocate(1 + (t as u64 % 2)).expect("setup: allocate");
                for k in 0..e.len {
                    tx.write(BlockNo(e.start.0 + k), &payload(seed + k, BS))
                        .expect("setup: write");
                }
                tx.commit().expect("setup: commit");
            }
            (3, 1) => {
                let m = by_bit(5).expect("xattr");
                if vol.add_module_regions(m, 9).is_err() {
                    vol.put(&payload(seed, 40)).expect("setup: put");
                }
            }
            (2, 2) if !handles.is_empty() => {
                let h = handles.remove(0);
                vol.delete(h).expect("setup: delete");
            }
            _ => {
                let len = 10 + (seed as usize * 37) % 200;
                handles.push(vol.put(&payload(seed, len)).expect("setup: put"));
            }
        }
    }
    assert_eq!(
        vol.wal_stats().checkpoints,
        checkpoints,
        "setup: the log must not wrap"
    );
    let post = vol.into_device().img;
    let area = area_range(&layout);
    let mut crash = base.clone();
    crash[area.clone()].copy_from_slice(&post[area.clone()]);
    let log = log_range(&layout);
    let txns = walk_log(&mut post[log].to_vec(), BS, salt, Walk::Check, usize::MAX);
    assert_eq!(txns.len(), n_txns, "setup: every transaction parses");
    let mut states = vec![base];
    let mut targets = Vec::new();
    for t in &txns {
        let mut s = states.last().expect("state").clone();
        t.apply(&mut s, BS);
        targets.extend(t.records.iter().map(|r| r.target));
        states.push(s);
    }
    Setup {
        crash,
        states,
        txns,
        layout,
        targets,
    }
}

/// Bytes of the damaged area: WAL headers and log.
pub fn area_range(l: &Layout) -> core::ops::Range<usize> {
    2 * BS..(l.wal_start + l.wal_blocks) as usize * BS
}

fn log_range(l: &Layout) -> core::ops::Range<usize> {
    l.wal_start as usize * BS..(l.wal_start + l.wal_blocks) as usize * BS
}

fn shift(v: u64, d: u8) -> u64 {
    v.wrapping_add(i64::from(d as i8) as u64)
}

/// Applies the mutation program to `img`; returns the index of the forged transaction, if any.
fn mutate(s: &Setup, img: &mut [u8], c: &mut Cursor<'_>) -> Option<usize> {
    let l = &s.layout;
    let area = area_range(l);
    let alen = area.len();
    let ablocks = alen / BS;
    let mut forged: Option<usize> = None;
    let mut steps = 0;
    while let Some(op) = c.u8() {
        steps += 1;
        if steps > 64 {
            break;
        }
        let a = &mut img[area.clone()];
        match op % 8 {
            0 => {
                let off = usize::from(c.u16().unwrap_or(0)) % alen;
                let n = usize::from(c.u8().unwrap_or(0) % 64) + 1;
                let src = c.bytes(n);
                let end = (off + src.len()).min(alen);
                a[off..end].copy_from_slice(&src[..end - off]);
            }
            1 => {
                let off = usize::from(c.u16().unwrap_or(0)) % alen;
                a[off] ^= 1 << (c.u8().unwrap_or(0) % 8);
            }
            2 => {
                let src = usize::from(c.u8().unwrap_or(0)) % ablocks;
                let dst = usize::from(c.u8().unwrap_or(0)) % ablocks;
                a.copy_within(src * BS..(src + 1) * BS, dst * BS);
            }
            3 => {
                let b = usize::from(c.u8().unwrap_or(0)) % ablocks;
                let v = c.u8().unwrap_or(0);
                a[b * BS..(b + 1) * BS].fill(v);
            }
            4 => {
                let which = usize::from(c.u8().unwrap_or(0) & 1);
                let (dg, de, ds, mode) = (
                    c.u8().unwrap_or(0),
                    c.u8().unwrap_or(0),
                    c.u8().unwrap_or(0),
                    c.u8().unwrap_or(0),
                );
                let mut blk = a[which * BS..(which + 1) * BS].to_vec();
                crate::common::reseal_wal_header(&mut blk);
                let mut h = WalHeader::decode(&blk).unwrap_or(WalHeader {
                    generation: 1,
                    epoch: 1,
                    checkpoint_seq: 0,
                    wal_start: l.wal_start,
                    wal_blocks: l.wal_blocks,
                    counters: Default::default(),
                });
                h.generation = shift(h.generation, dg);
                h.epoch = shift(h.epoch, de);
                h.checkpoint_seq = shift(h.checkpoint_seq, ds);
                if mode & 1 != 0 {
                    h.wal_blocks = shift(h.wal_blocks, mode);
                }
                if mode & 2 != 0 {
                    h.wal_start = shift(h.wal_start, mode);
                }
                h.encode(&mut a[which * BS..(which + 1) * BS])
                    .expect("header fits a block");
            }
            5 => {
                let b = 2 + usize::from(c.u8().unwrap_or(0)) % (ablocks - 2);
                a[b * BS..].fill(0);
            }
            6 => {
                let t = usize::from(c.u8().unwrap_or(0)) % s.txns.len();
                let txn = &s.txns[t];
                let r = usize::from(c.u8().unwrap_or(0)) % txn.records.len().max(1);
                let kind = c.u8().unwrap_or(0);
                let x = u64::from(c.u8().unwrap_or(0));
                let target = match kind % 5 {
                    0 => l.block_count + x,
                    1 => u64::MAX - x,
                    2 => 2 + (x & 1),
                    3 => l.wal_start + x % l.wal_blocks,
                    _ => (1u64 << 36) + x,
                };
                // Restore the genuine transaction, then forge one target and re-seal it.
                let start = 2 * BS + txn.at;
                let next = (start + txn.span).min(alen);
                a[start..next].copy_from_slice(&s.crash[area.start + start..area.start + next]);
                let Some(rec) = txn.records.get(r) else {
                    continue;
                };
                let rec = 2 * BS + rec.at;
                let target = target.min((1 << 48) - 1);
                a[rec + 6..rec + 12].copy_from_slice(&target.to_le_bytes()[..6]);
                let salt = salt_of(s);
                walk_log(&mut a[start..], BS, salt, Walk::Reseal, 1);
                forged = Some(forged.map_or(t, |f: usize| f.min(t)));
            }
            _ => {
                let off = usize::from(c.u16().unwrap_or(0)) % alen;
                let src = c.rest();
                let end = (off + src.len()).min(alen);
                a[off..end].copy_from_slice(&src[..end - off]);
                break;
            }
        }
    }
    forged
}

fn salt_of(s: &Setup) -> u64 {
    crate::common::sb_unchecked(&s.crash, BS, BlockNo(0))
        .expect("setup superblock")
        .wal_salt()
}

/// Which prefixes of the committed transactions the image outside the area equals.
fn matching_prefixes(s: &Setup, img: &[u8]) -> Vec<usize> {
    let area = area_range(&s.layout);
    (0..s.states.len())
        .filter(|k| {
            let st = &s.states[*k];
            img[..area.start] == st[..area.start] && img[area.end..] == st[area.end..]
        })
        .collect()
}

/// The two WAL header copies of `img` that the engine accepts: they decode, describe this log,
/// and carry an epoch below 2^63 (higher ones are forged).
fn headers(s: &Setup, img: &[u8]) -> [Option<WalHeader>; 2] {
    let l = &s.layout;
    [2usize, 3].map(|b| {
        WalHeader::decode(&img[b * BS..(b + 1) * BS])
            .ok()
            .filter(|h| {
                h.wal_start == l.wal_start && h.wal_blocks == l.wal_blocks && h.epoch < 1 << 63
            })
    })
}

fn rank(h: &WalHeader) -> (u64, u64) {
    (h.generation, h.epoch)
}

fn headers_tied(s: &Setup, img: &[u8]) -> bool {
    matches!(headers(s, img), [Some(a), Some(b)] if rank(&a) == rank(&b))
}

/// Whether the first transaction in the log validates under the active WAL header of `img`
/// (the accepted copy with the higher generation, then epoch).
fn stale_log_validates(s: &Setup, img: &[u8]) -> bool {
    let active = match headers(s, img) {
        [Some(a), Some(b)] => Some(if rank(&b) > rank(&a) { b } else { a }),
        [a, b] => a.or(b),
    };
    let Some(h) = active else {
        return false;
    };
    let mut log = img[log_range(&s.layout)].to_vec();
    walk_log(&mut log, BS, salt_of(s), Walk::Check, 1)
        .first()
        .is_some_and(|t| t.epoch == h.epoch && t.seq == h.checkpoint_seq.wrapping_add(1))
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut c = Cursor::new(data);
    let s = setup(c.u8().unwrap_or(0));
    let mut img = s.crash.clone();
    let forged = mutate(&s, &mut img, &mut c);
    let mut dev = ImageDevice::new(img, BS);
    dev.record = true;
    let mut mem = Mem::new(BS, 16, 64);
    let r = Vol::mount(&mut dev, mem.bufs())
        .map(|mut v| (v.recovery_report(), v.verify(), v.wal().epoch().0));
    let log_blocks = s.layout.wal_start..s.layout.wal_start + s.layout.wal_blocks;
    for w in &dev.writes {
        assert!(
            *w == 2 || *w == 3 || log_blocks.contains(w) || s.targets.contains(w),
            "recovery wrote block {w}, which no committed transaction targets"
        );
    }
    let prefixes = matching_prefixes(&s, &dev.img);
    assert!(
        !prefixes.is_empty(),
        "recovery left a state that is no prefix of the committed transactions ({r:?})"
    );
    let (report, verified, epoch) = match r {
        Ok(x) => x,
        Err(e) => {
            if let Some(t) = forged {
                // A forged transaction is refused, whatever lies before it, and recovery
                // validates the whole log before it writes: nothing past the forgery (and, in
                // format 2, nothing at all) is applied.
                if e == vde_nostd::MountError::Corrupt(Structure::WalRecord) {
                    assert!(
                        prefixes.iter().any(|p| *p <= t),
                        "refused, but applied past the forgery"
                    );
                }
            }
            return;
        }
    };
    assert!(
        prefixes.contains(&(report.replayed as usize)),
        "replayed {} transactions, state matches prefixes {prefixes:?}",
        report.replayed
    );
    if let Some(t) = forged {
        assert!(
            (report.replayed as usize) <= t,
            "a forged transaction was replayed"
        );
    }
    if let Err(e) = verified {
        panic!("recovered to a committed prefix, yet verify fails: {e:?}");
    }
    // A session starts below 2^62, so the epochs it writes stay readable (below 2^63).
    assert!(
        epoch <= 1 << 62,
        "recovery moved to epoch {epoch:#x}, too near the end of the range"
    );
    // Nothing left in the log may validate under the header recovery wrote.
    // Two valid header copies that rank equal: the next mount could not tell the newer
    // (hostile_regressions.rs, wal_generation_saturates_and_the_older_header_wins).
    assert!(
        !headers_tied(&s, &dev.img),
        "after recovery both WAL headers carry the same generation and epoch"
    );
    // (hostile_regressions.rs, wal_epoch_reused_after_newest_header_is_lost)
    assert!(
        !stale_log_validates(&s, &dev.img),
        "after recovery, stale log content validates under the new WAL header"
    );
    // The recovered volume works and mounts again with nothing left to replay.
    dev.record = false;
    let mut vol = Vol::mount(&mut dev, mem.bufs()).expect("second mount after recovery");
    assert_eq!(vol.recovery_report().replayed, 0, "log replayed twice");
    let d = payload(99, 77);
    let h = vol.put(&d).expect("put after recovery");
    let mut buf = vec![0u8; BS];
    let n = vol.get(h, &mut buf).expect("get after recovery");
    assert_eq!(&buf[..n], &d[..]);
    vol.unmount().expect("unmount after recovery");
    let mut vol = Vol::mount(&mut dev, mem.bufs()).expect("mount after recovery and put");
    vol.verify().expect("verify after recovery and put");
    let n = vol.get(h, &mut buf).expect("get after remount");
    assert_eq!(&buf[..n], &d[..]);
}
