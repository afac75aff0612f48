//! `ops`: an arbitrary sequence of operations on a volume over a NOR flash (`NorFlashDevice` on
//! the simulated `SimFlash`), with power cuts; after every cut the volume is **rebuilt from the
//! medium** (a new mount, possibly cut again during recovery), and after every step the volume
//! is checked against a model.
//!
//! Input: `geometry u8 | ops...`. Geometry bit 0 picks 512-byte blocks on 512-byte sectors or
//! 4096-byte blocks on 4 KiB sectors, bit 1 the tear mode, the rest the volume size. Each op is
//! an opcode byte (mod 14) and its operands:
//! ```text
//! 0 put       len u8                   (a small, medium, class-edge or extent-sized object)
//! 1 delete    idx u8                   (an acknowledged object)
//! 2 batch     n u8, n x (kind u8, arg u8), commit u8
//! 3 add       bit u8                   (add module 1 + bit % 7 online)
//! 4 remount                            (unmount, mount)
//! 5 cut       k u16, r u8              (cut power after k more flash operations; r != 0 also
//!                                      cuts the recovery mount after r operations)
//! 6 checkpoint
//! 7 raw       n u8                     (allocate 1..=3 blocks, write them, commit)
//! 8 release   idx u8                   (release an acknowledged raw extent)
//! 9 probe     raw u64                  (get an arbitrary handle)
//! 10 pack     len u8                   (pack a small object)
//! 11 store    key u8, len u8           (store a value under one of 24 names, 1..=64 bytes;
//!                                      replaces the name's object)
//! 12 remove   key u8                   (remove a name and its object)
//! 13 gc                                (compact the shared block with the most dead slots)
//! ```
//! After a cut, one outcome of the writes issued since the last flush is imposed on the flash
//! (any subset of them, in any order, one torn; an input byte picks which, 0 = the flash as the
//! cut left it), as a disk with a write cache could leave them.
//!
//! The model: acknowledged objects (handle and bytes), acknowledged deletions, acknowledged raw
//! extents (and their bytes), the acknowledged names (name → handle; a delete by handle drops
//! the object's name), the acknowledged module set. An operation cut by a power loss is
//! resolved after recovery: it happened wholly or not at all (a batch with all its puts and
//! deletes). After every step: every acknowledged object reads back byte for byte, every deleted
//! one is gone, every raw extent is allocated and intact, the module set matches, the object
//! counter is within what the in-flight puts allow, every name looks up its object and the
//! listing is the model's names in order, and `verify` passes. A store or remove cut in flight
//! leaves the name with its old object or its new one (or none), never neither.

use crate::common::{payload, Cursor, Mem};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use vde_embedded::harness::unflushed::{read_all, Unflushed, Window};
use vde_embedded::sim::{SimConfig, SimFlash, TearMode};
use vde_embedded::NorFlashDevice;
use vde_nostd::modules::by_bit;
use vde_nostd::types::Extent;
use vde_nostd::{BlockNo, Error, FormatOptions, Handle, ModuleSet, Volume};

type Sim<'m, const E: usize> = SimFlash<'m, 1, 1, E>;
type Plain<'f, 'm, const E: usize> = NorFlashDevice<&'f mut Sim<'m, E>>;
type PlainVol<'b, 'f, 'm, const E: usize> = Volume<'b, Plain<'f, 'm, E>, 16>;
/// The device of a session: the flash, with the writes since the last flush recorded.
type Dev<'f, 'm, const E: usize> = Unflushed<Plain<'f, 'm, E>>;
type Vol<'b, 'f, 'm, const E: usize> = Volume<'b, Dev<'f, 'm, E>, 16>;
type VErr = Error<vde_embedded::NorError>;

const MAX_STEPS: usize = 48;
const INDEX_ENTRIES: usize = 64;

thread_local! {
    static IMAGES: RefCell<HashMap<(usize, usize), Vec<u8>>> = RefCell::new(HashMap::new());
}

/// The model of what the volume must hold.
#[derive(Default)]
struct Model {
    objs: Vec<(Handle, Vec<u8>)>,
    deleted: Vec<Handle>,
    raws: Vec<(Extent, Vec<Vec<u8>>)>,
    /// Acknowledged names.
    names: BTreeMap<Vec<u8>, Handle>,
    modules: ModuleSet,
    /// Objects stored by puts cut in flight that may have committed.
    orphans_max: u64,
    orphans_min: u64,
    next_seed: u64,
    /// Set by a cut op: after the cut, the recovery mount is cut too after this many operations.
    recovery_cut: Option<u64>,
}

/// An operation cut by a power loss, to be resolved after recovery.
enum Pending {
    Put,
    Delete(Handle, Vec<u8>),
    Batch {
        puts: Vec<(Handle, Vec<u8>)>,
        dels: Vec<(Handle, Vec<u8>)>,
        may_have_put: bool,
    },
    Add(ModuleSet),
    Raw(Extent, Vec<Vec<u8>>),
    Release(usize),
    /// A store of `data` under `key` (whose object was `old`).
    Store {
        key: Vec<u8>,
        data: Vec<u8>,
        old: Option<(Handle, Vec<u8>)>,
    },
    /// A remove of `key`, which named `old`.
    Remove {
        key: Vec<u8>,
        old: (Handle, Vec<u8>),
    },
}

impl Pending {
    fn name(&self) -> &'static str {
        match self {
            Pending::Put => "put",
            Pending::Delete(..) => "delete",
            Pending::Batch { .. } => "batch",
            Pending::Add(_) => "add-module",
            Pending::Raw(..) => "raw",
            Pending::Release(_) => "release",
            Pending::Store { .. } => "store",
            Pending::Remove { .. } => "remove",
        }
    }
}

enum End {
    Done,
    /// Power cut: the operation in flight, and the writes issued since the last flush.
    Cut(Option<Pending>, Window),
    Remount,
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut c = Cursor::new(data);
    let g = c.u8().unwrap_or(0);
    if g & 1 == 0 {
        run_geom::<512>(g, 96 + usize::from(g >> 2) % 160, &mut c);
    } else {
        run_geom::<4096>(g, 24 + usize::from(g >> 2) % 40, &mut c);
    }
}

fn formatted<const E: usize>(blocks: usize) -> Vec<u8> {
    IMAGES.with(|m| {
        m.borrow_mut()
            .entry((E, blocks))
            .or_insert_with(|| {
                let mut bytes = vec![0xFF; E * blocks];
                let mut wear = vec![0u32; blocks];
                let mut flash =
                    Sim::<E>::new(&mut bytes, &mut wear, SimConfig::new(1)).expect("sim geometry");
                let mut mem = Mem::new(E, 16, INDEX_ENTRIES);
                let opts = FormatOptions {
                    wal_blocks: None,
                    volume_id: [0x33; 16],
                    now: 1,
                    modules: ModuleSet::OBJECTS | ModuleSet::NAMES,
                };
                let dev = NorFlashDevice::whole(&mut flash, E).expect("nor geometry");
                let vol = PlainVol::<E>::format(dev, &opts, mem.bufs()).expect("format");
                vol.unmount().expect("unmount");
                bytes
            })
            .clone()
    })
}

fn run_geom<const E: usize>(g: u8, blocks: usize, c: &mut Cursor<'_>) {
    let mut bytes = formatted::<E>(blocks);
    let mut wear = vec![0u32; blocks];
    let mut cfg = SimConfig::new(u64::from(g) * 7919 + 1);
    cfg.tear = if g & 2 == 0 {
        TearMode::Prefix
    } else {
        TearMode::Scattered
    };
    let mut flash = Sim::<E>::new(&mut bytes, &mut wear, cfg).expect("sim");
    let mut mem = Mem::new(E, 16, INDEX_ENTRIES);
    let mut model = Model {
        modules: ModuleSet::OBJECTS | ModuleSet::NAMES,
        ..Model::default()
    };
    let mut pending: Option<Pending> = None;
    let mut recovery_cut: Option<u64> = None;
    let mut steps = 0usize;
    loop {
        let end = session::<E>(
            &mut flash,
            &mut mem,
            &mut model,
            c,
            pending.take(),
            recovery_cut.take(),
            &mut steps,
        );
        match end {
            End::Done => break,
            End::Remount => {}
            End::Cut(p, window) => {
                flash.reboot();
                // Any subset of the unflushed writes, in any order, one torn: the input picks
                // one outcome (0 = as the flash holds it).
                let pick = usize::from(c.u8().unwrap_or(0));
                let states = window.states(8, u64::from(g) ^ (steps as u64) << 8);
                if let Some(st) = states.get(pick % states.len().max(1)) {
                    crate::trace!("unflushed writes: {}", st.describe(&window));
                    let mut dev = NorFlashDevice::whole(&mut flash, E).expect("nor");
                    st.apply(&window, &mut dev).expect("impose the outcome");
                }
                pending = p;
                recovery_cut = model.recovery_cut.take();
            }
        }
    }
    // Final: no cut, a clean remount, everything still there.
    flash.reboot();
    let dev = NorFlashDevice::whole(&mut flash, E).expect("nor");
    let mut vol = Vol::<E>::mount(recorded(dev), mem.bufs()).expect("final mount");
    check::<E>(&mut vol, &model, "final mount");
    vol.unmount().expect("final unmount");
}

/// Wraps a device to record its unflushed writes (its content now is the durable one).
fn recorded<'f, 'm, const E: usize>(mut dev: Plain<'f, 'm, E>) -> Dev<'f, 'm, E> {
    let durable = read_all(&mut dev).expect("read the flash");
    Unflushed::new(dev, durable)
}

fn lost<const E: usize>(vol: &mut Vol<'_, '_, '_, E>) -> bool {
    vol.device().inner().flash().power_lost()
}

fn expected_refusal(e: &VErr) -> bool {
    matches!(
        e,
        Error::NoSpace
            | Error::IndexFull
            | Error::TxCapacity
            | Error::TxTooLarge
            | Error::DirectoryFull
            | Error::ModuleAlreadyPresent
            | Error::ObjectTooLarge
            | Error::BatchAborted
            | Error::NamesFull
    )
}

/// Mounts (after a cut: first a recovery mount that may itself be cut), resolves the operation
/// cut in flight, then runs operations until the input ends, a cut, or a remount.
fn session<const E: usize>(
    flash: &mut Sim<'_, E>,
    mem: &mut Mem,
    m: &mut Model,
    c: &mut Cursor<'_>,
    pending: Option<Pending>,
    recovery_cut: Option<u64>,
    steps: &mut usize,
) -> End {
    if let Some(k) = recovery_cut {
        flash.arm_power_cut(k);
        let r = PlainVol::<E>::mount(
            NorFlashDevice::whole(&mut *flash, E).expect("nor"),
            mem.bufs(),
        )
        .map(drop);
        if let Err(e) = r {
            assert!(
                flash.power_lost(),
                "mount after a power cut failed without a second cut: {e:?}"
            );
        }
        flash.reboot();
    }
    flash.disarm_power_cut();
    let dev = recorded(NorFlashDevice::whole(&mut *flash, E).expect("nor"));
    let mut vol = match Vol::<E>::mount(dev, mem.bufs()) {
        Ok(v) => v,
        Err(e) => panic!("mount after a power cut or remount failed: {e:?}"),
    };
    crate::trace!("mounted: {:?}", vol.recovery_report());
    if let Some(p) = pending {
        resolve::<E>(&mut vol, m, p);
    }
    check::<E>(&mut vol, m, "after mount");
    loop {
        if *steps >= MAX_STEPS {
            return End::Done;
        }
        let Some(op) = c.u8() else {
            return End::Done;
        };
        *steps += 1;
        let out = step::<E>(&mut vol, m, c, op % 14);
        crate::trace!(
            "op {} -> {}",
            op % 14,
            match &out {
                Step::Ok => "ok".to_string(),
                Step::Remount => "remount".to_string(),
                Step::Failed(e, p) =>
                    format!("{e:?} pending={} lost={}", p.is_some(), lost::<E>(&mut vol)),
            }
        );
        match out {
            Step::Ok => {
                assert!(
                    !lost::<E>(&mut vol),
                    "operation {} reported success although power was cut during it",
                    op % 14
                );
            }
            Step::Remount => {
                // Checkpoint first, so a cut in it still has the volume's unflushed writes.
                if let Err(e) = vol.checkpoint() {
                    assert!(
                        lost::<E>(&mut vol),
                        "checkpoint failed without a cut: {e:?}"
                    );
                    return End::Cut(None, vol.device().window());
                }
                let r = vol.unmount().map(drop);
                return match r {
                    Ok(()) => End::Remount,
                    Err(e) => {
                        assert!(flash.power_lost(), "unmount failed without a cut: {e:?}");
                        End::Cut(None, Window::default())
                    }
                };
            }
            Step::Failed(e, p) => {
                if lost::<E>(&mut vol) {
                    return End::Cut(p, vol.device().window());
                }
                assert!(
                    expected_refusal(&e),
                    "operation failed without a cut: {e:?}"
                );
            }
        }
        // Check with the cut held back (so that it lands inside operations, not checks).
        let armed = vol.device().inner().flash().power_cut_armed();
        vol.device().inner().flash_mut().disarm_power_cut();
        check::<E>(&mut vol, m, "after a step");
        if let Some(k) = armed {
            vol.device().inner().flash_mut().arm_power_cut(k);
        }
    }
}

enum Step {
    Ok,
    Remount,
    Failed(VErr, Option<Pending>),
}

fn step<const E: usize>(
    vol: &mut Vol<'_, '_, '_, E>,
    m: &mut Model,
    c: &mut Cursor<'_>,
    op: u8,
) -> Step {
    let bs = E;
    match op {
        0 | 10 => {
            let l = usize::from(c.u8().unwrap_or(0));
            let len = if op == 10 {
                l % (bs / 2 - 8)
            } else {
                match l % 4 {
                    0 => l % 50,
                    1 => 50 + (l * 3) % 200,
                    2 => bs / 2 - 12 + l % 8,
                    _ => bs / 2 + (l * 17) % (2 * bs),
                }
            };
            m.next_seed += 1;
            let d = payload(m.next_seed, len);
            let r = if op == 10 { vol.pack(&d) } else { vol.put(&d) };
            match r {
                Ok(h) => {
                    ack_put(m, h, d);
                    Step::Ok
                }
                Err(e) => Step::Failed(e, Some(Pending::Put)),
            }
        }
        1 => {
            let i = usize::from(c.u8().unwrap_or(0));
            if m.objs.is_empty() {
                return Step::Ok;
            }
            let (h, d) = m.objs[i % m.objs.len()].clone();
            match vol.delete(h) {
                Ok(()) => {
                    ack_delete(m, h);
                    Step::Ok
                }
                Err(e) => Step::Failed(e, Some(Pending::Delete(h, d))),
            }
        }
        2 => {
            let n = 1 + usize::from(c.u8().unwrap_or(0)) % 4;
            let mut puts = Vec::new();
            let mut dels: Vec<(Handle, Vec<u8>)> = Vec::new();
            let mut plan = Vec::new();
            for _ in 0..n {
                plan.push((c.u8().unwrap_or(0), usize::from(c.u8().unwrap_or(0))));
            }
            let commit = c.u8().unwrap_or(1) & 7 != 0;
            let mut seeds = Vec::new();
            for _ in 0..n {
                m.next_seed += 1;
                seeds.push(m.next_seed);
            }
            let mut b = match vol.batch() {
                Ok(b) => b,
                Err(e) => return Step::Failed(e, None),
            };
            let mut err = None;
            for ((kind, arg), seed) in plan.into_iter().zip(seeds) {
                let r = if kind & 1 == 0 || m.objs.is_empty() {
                    let len = if kind & 2 == 0 {
                        arg % 200
                    } else {
                        bs / 2 + arg * 9
                    };
                    let d = payload(seed, len);
                    b.put(&d).map(|h| puts.push((h, d)))
                } else {
                    let (h, d) = m.objs[arg % m.objs.len()].clone();
                    if dels.iter().any(|(x, _)| *x == h) {
                        Ok(())
                    } else {
                        b.delete(h).map(|()| dels.push((h, d)))
                    }
                };
                if let Err(e) = r {
                    err = Some(e);
                    break;
                }
            }
            if let Some(e) = err {
                drop(b);
                // Nothing of the batch was committed.
                return Step::Failed(e, None);
            }
            if !commit {
                b.rollback();
                return Step::Ok;
            }
            match b.commit() {
                Ok(_) => {
                    for (h, d) in puts {
                        ack_put(m, h, d);
                    }
                    for (h, _) in dels {
                        ack_delete(m, h);
                    }
                    Step::Ok
                }
                Err(e) => Step::Failed(
                    e,
                    Some(Pending::Batch {
                        puts,
                        dels,
                        may_have_put: true,
                    }),
                ),
            }
        }
        3 => {
            let bit = 1 + c.u8().unwrap_or(0) % 7;
            let module = by_bit(bit).expect("catalogue");
            match vol.add_module_regions(module, 5) {
                Ok(_) => {
                    m.modules |= module.flag();
                    Step::Ok
                }
                Err(e) => Step::Failed(e, Some(Pending::Add(module.flag()))),
            }
        }
        4 => Step::Remount,
        5 => {
            let k = u64::from(c.u16().unwrap_or(0) % 768);
            let r = c.u8().unwrap_or(0);
            m.recovery_cut = (r != 0).then_some(u64::from(r) * 2);
            vol.device().inner().flash_mut().arm_power_cut(k);
            Step::Ok
        }
        6 => match vol.checkpoint() {
            Ok(()) => Step::Ok,
            Err(e) => Step::Failed(e, None),
        },
        7 => {
            let n = 1 + u64::from(c.u8().unwrap_or(0) % 3);
            let mut tx = vol.begin();
            let e = match tx.allocate(n) {
                Ok(e) => e,
                Err(err) => return Step::Failed(err, None),
            };
            let mut data = Vec::new();
            for k in 0..n {
                m.next_seed += 1;
                let d = payload(m.next_seed, bs);
                if let Err(err) = tx.write(BlockNo(e.start.0 + k), &d) {
                    return Step::Failed(err, None);
                }
                data.push(d);
            }
            match tx.commit() {
                Ok(_) => {
                    m.raws.push((e, data));
                    Step::Ok
                }
                Err(err) => Step::Failed(err, Some(Pending::Raw(e, data))),
            }
        }
        8 => {
            let i = usize::from(c.u8().unwrap_or(0));
            if m.raws.is_empty() {
                return Step::Ok;
            }
            let i = i % m.raws.len();
            let e = m.raws[i].0;
            let mut tx = vol.begin();
            if let Err(err) = tx.release(e) {
                return Step::Failed(err, None);
            }
            match tx.commit() {
                Ok(_) => {
                    m.raws.remove(i);
                    Step::Ok
                }
                Err(err) => Step::Failed(err, Some(Pending::Release(i))),
            }
        }
        9 => {
            let raw = c.u64().unwrap_or(0);
            let h = Handle::from_raw(raw);
            let mut buf = vec![0u8; 16 * bs];
            let r = vol.get(h, &mut buf);
            if let Some((_, d)) = m.objs.iter().find(|(x, _)| *x == h) {
                match r {
                    Ok(n) => assert_eq!(&buf[..n], &d[..], "probe of a live handle: other bytes"),
                    Err(e) => return Step::Failed(e, None),
                }
            } else if m.deleted.contains(&h) {
                assert!(r.is_err(), "probe of a deleted handle succeeded");
            }
            match r {
                Err(e) if lost::<E>(vol) => Step::Failed(e, None),
                _ => Step::Ok,
            }
        }
        11 => {
            let key = name(c.u8().unwrap_or(0));
            let l = usize::from(c.u8().unwrap_or(0));
            let len = if l % 5 == 4 { bs / 2 + l * 9 } else { l % 150 };
            m.next_seed += 1;
            let data = payload(m.next_seed, len);
            let old = m.names.get(&key).map(|h| {
                let d = m.objs.iter().find(|(x, _)| x == h).map(|o| o.1.clone());
                (*h, d.unwrap_or_default())
            });
            match vol.store(&key, &data) {
                Ok(h) => {
                    if let Some((o, _)) = old {
                        ack_delete(m, o);
                    }
                    ack_put(m, h, data);
                    m.names.insert(key, h);
                    Step::Ok
                }
                Err(e) => Step::Failed(e, Some(Pending::Store { key, data, old })),
            }
        }
        12 => {
            let key = name(c.u8().unwrap_or(0));
            let Some(&h) = m.names.get(&key) else {
                return match vol.remove(&key) {
                    Err(Error::NameNotFound) => Step::Ok,
                    Ok(h) => panic!("removed the absent name {key:?} (object {h})"),
                    Err(e) => Step::Failed(e, None),
                };
            };
            let d = m.objs.iter().find(|(x, _)| *x == h).map(|o| o.1.clone());
            match vol.remove(&key) {
                Ok(got) => {
                    assert_eq!(got, h, "remove returned another object");
                    ack_delete(m, h);
                    Step::Ok
                }
                Err(e) => Step::Failed(
                    e,
                    Some(Pending::Remove {
                        key,
                        old: (h, d.unwrap_or_default()),
                    }),
                ),
            }
        }
        13 => match vol.gc() {
            Ok(_) => Step::Ok,
            Err(e) => Step::Failed(e, None),
        },
        _ => match vol.checkpoint() {
            Ok(()) => Step::Ok,
            Err(e) => Step::Failed(e, None),
        },
    }
}

/// Name `i` of the 24 the fuzzer uses: short ones with shared prefixes, and 64-byte ones.
fn name(i: u8) -> Vec<u8> {
    let i = i % 24;
    let mut k = format!("n/{}/{i}", i % 3).into_bytes();
    if i % 6 == 5 {
        k.resize(64, b'~');
    }
    k
}

/// The object `key` names now (`None`: no such name); another error panics.
fn named<const E: usize>(vol: &mut Vol<'_, '_, '_, E>, key: &[u8], what: &str) -> Option<Handle> {
    match vol.lookup(key) {
        Ok(h) => h,
        Err(e) => panic!("{what}: lookup {key:?}: {e:?}"),
    }
}

fn ack_put(m: &mut Model, h: Handle, d: Vec<u8>) {
    assert!(
        !m.objs.iter().any(|(x, _)| *x == h),
        "put returned the handle of a live object: {h}"
    );
    m.deleted.retain(|x| *x != h);
    m.objs.push((h, d));
}

fn ack_delete(m: &mut Model, h: Handle) {
    m.objs.retain(|(x, _)| *x != h);
    m.deleted.push(h);
    m.names.retain(|_, x| *x != h);
}

/// Whether `h` is present with bytes `d` (true), absent (false); other bytes or another error
/// than a bad handle panics.
fn present<const E: usize>(vol: &mut Vol<'_, '_, '_, E>, h: Handle, d: &[u8], what: &str) -> bool {
    let mut buf = vec![0u8; 16 * E];
    match vol.get(h, &mut buf) {
        Ok(n) => {
            assert_eq!(&buf[..n], d, "{what}: handle {h} returned other bytes");
            true
        }
        Err(Error::BadHandle { .. }) => false,
        Err(e) => panic!("{what}: handle {h}: {e:?}"),
    }
}

fn raw_state<const E: usize>(
    vol: &mut Vol<'_, '_, '_, E>,
    e: Extent,
    data: &[Vec<u8>],
) -> Option<bool> {
    let mut alloc = 0;
    let mut same = 0;
    let mut buf = vec![0u8; E];
    for (k, d) in data.iter().enumerate() {
        let b = BlockNo(e.start.0 + k as u64);
        if vol.is_allocated(b).expect("bitmap") {
            alloc += 1;
        }
        vol.read_block(b, &mut buf).expect("read");
        if buf == *d {
            same += 1;
        }
    }
    let n = data.len();
    if alloc == n && same == n {
        Some(true)
    } else if alloc == 0 {
        Some(false)
    } else {
        None
    }
}

fn resolve<const E: usize>(vol: &mut Vol<'_, '_, '_, E>, m: &mut Model, p: Pending) {
    crate::trace!("resolving {}", p.name());
    match p {
        Pending::Put => m.orphans_max += 1,
        Pending::Delete(h, d) => {
            if !present::<E>(vol, h, &d, "delete cut in flight") {
                ack_delete(m, h);
            }
        }
        Pending::Batch {
            puts,
            dels,
            may_have_put,
        } => {
            let p: Vec<bool> = puts
                .iter()
                .map(|(h, d)| present::<E>(vol, *h, d, "batch put cut in flight"))
                .collect();
            let d: Vec<bool> = dels
                .iter()
                .map(|(h, d)| !present::<E>(vol, *h, d, "batch delete cut in flight"))
                .collect();
            let all: Vec<bool> = p.iter().chain(d.iter()).copied().collect();
            let done = all.first().copied().unwrap_or(false);
            assert!(
                all.iter().all(|x| *x == done),
                "batch cut in flight is half applied: puts {p:?}, deletes {d:?}"
            );
            if done {
                for (h, d) in puts {
                    ack_put(m, h, d);
                }
                for (h, _) in dels {
                    ack_delete(m, h);
                }
            }
            let _ = may_have_put;
        }
        Pending::Add(f) => {
            if vol.modules().contains(f) {
                m.modules |= f;
            }
        }
        Pending::Raw(e, data) => match raw_state::<E>(vol, e, &data) {
            Some(true) => m.raws.push((e, data)),
            Some(false) => {}
            None => panic!("raw transaction cut in flight is half applied at {e:?}"),
        },
        Pending::Store { key, data, old } => {
            let now = named::<E>(vol, &key, "store cut in flight");
            let old_h = old.as_ref().map(|o| o.0);
            if now == old_h {
                // Not applied: the old object (if any) is intact.
                if let Some((h, d)) = &old {
                    assert!(present::<E>(vol, *h, d, "store cut in flight: old value"));
                }
            } else {
                let h = now.expect("store cut in flight: the name vanished");
                assert!(
                    present::<E>(vol, h, &data, "store cut in flight: new value"),
                    "store cut in flight: the name points at a missing object"
                );
                if let Some((o, d)) = &old {
                    assert!(
                        !present::<E>(vol, *o, d, "store cut in flight: old value"),
                        "store cut in flight: the replaced object survived"
                    );
                    ack_delete(m, *o);
                }
                ack_put(m, h, data);
                m.names.insert(key, h);
            }
        }
        Pending::Remove { key, old: (h, d) } => {
            match named::<E>(vol, &key, "remove cut in flight") {
                Some(x) => {
                    assert_eq!(x, h, "remove cut in flight: the name points elsewhere");
                    assert!(present::<E>(vol, h, &d, "remove cut in flight"));
                }
                None => {
                    assert!(
                        !present::<E>(vol, h, &d, "remove cut in flight"),
                        "remove cut in flight: the name went, its object stayed"
                    );
                    ack_delete(m, h);
                }
            }
        }
        Pending::Release(i) => {
            let (e, data) = m.raws[i].clone();
            match raw_state::<E>(vol, e, &data) {
                Some(true) => {}
                Some(false) => {
                    m.raws.remove(i);
                }
                None => panic!("release cut in flight is half applied at {e:?}"),
            }
        }
    }
    // Orphans from cut puts are now known exactly.
    let stats = vol.object_stats().expect("stats after recovery");
    let live = m.objs.len() as u64;
    let count = stats.counters.objects;
    assert!(
        count >= live + m.orphans_min && count <= live + m.orphans_max,
        "object counter {count} outside {}..={} after recovery",
        live + m.orphans_min,
        live + m.orphans_max
    );
    m.orphans_min = count - live;
    m.orphans_max = count - live;
}

fn check<const E: usize>(vol: &mut Vol<'_, '_, '_, E>, m: &Model, when: &str) {
    let mut buf = vec![0u8; 16 * E];
    for (h, d) in &m.objs {
        match vol.get(*h, &mut buf) {
            Ok(n) => assert_eq!(&buf[..n], &d[..], "{when}: object {h} returned other bytes"),
            Err(e) => panic!("{when}: acknowledged object {h} lost: {e:?}"),
        }
    }
    for h in &m.deleted {
        assert!(
            vol.get(*h, &mut buf).is_err(),
            "{when}: deleted object {h} is back"
        );
    }
    for (e, data) in &m.raws {
        assert_eq!(
            raw_state::<E>(vol, *e, data),
            Some(true),
            "{when}: acknowledged raw extent {e:?} lost"
        );
    }
    assert_eq!(vol.modules(), m.modules, "{when}: module set");
    for (k, h) in &m.names {
        assert_eq!(
            named::<E>(vol, k, when),
            Some(*h),
            "{when}: name {k:?} lost its object"
        );
    }
    let mut listed = Vec::new();
    vol.for_each_name(b"", |k, h| {
        listed.push((k.to_vec(), h));
        true
    })
    .expect("list names");
    let want: Vec<(Vec<u8>, Handle)> = m.names.iter().map(|(k, h)| (k.clone(), *h)).collect();
    assert_eq!(listed, want, "{when}: the listing of names");
    let stats = vol.object_stats().expect("stats");
    let live = m.objs.len() as u64;
    assert!(
        stats.counters.objects >= live + m.orphans_min
            && stats.counters.objects <= live + m.orphans_max,
        "{when}: object counter {} for {live} live objects",
        stats.counters.objects
    );
    if let Err(e) = vol.verify() {
        panic!("{when}: verify: {e:?}");
    }
}
