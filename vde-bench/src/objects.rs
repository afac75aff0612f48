//! Small objects on a file: N puts of 100-byte objects, durable each, first one per transaction
//! and then (in a fresh store) 100 per transaction, then a get of every one; vde (object API:
//! `put`, `batch`, `get` by handle) against redb and SQLite with u64 keys. Reports operations
//! per second, flushes and bytes written per put, and device bytes held per payload byte.

use crate::bench::{interleave, Durable};
use crate::file::{sqlite_open, TABLE};
use crate::filedev::{redb_create, DiskFlushes, FileDev, IoCounters, ProcIo};
use crate::ratio;
use redb::{Durability, ReadableDatabase};
use rusqlite::params;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vde_nostd::{Buffers, FormatOptions, Handle, ModuleSet, Volume};

const BS: usize = 4096;
pub(crate) const SIZE: usize = 100;
/// Puts per batch in batched mode.
const BATCH: u64 = 100;
/// Blocks of the vde volume (16 MiB: a 64-block WAL, a 64-block slot-index region).
const VOL_BLOCKS: u64 = 4096;

/// Object `i`'s 100 bytes: its number, then a pattern of it (also the threads section's).
pub(crate) fn object(i: u64) -> [u8; SIZE] {
    let mut o = [0u8; SIZE];
    for (k, b) in o.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(k as u8);
    }
    o[..8].copy_from_slice(&i.to_le_bytes());
    o
}

/// What the table needs beyond the interleaved tally.
trait Objects: Durable {
    /// Gets every object `0..n` back and checks it; returns the time taken.
    fn get_all(&mut self, n: u64) -> Duration;
    /// Bytes of device (or file) holding the data, and what that figure is.
    fn held(&mut self, n: u64) -> (u64, String);
}

struct Vde<'b> {
    vol: Volume<'b, FileDev, 64>,
    io: Arc<IoCounters>,
    batch: u64,
    /// Objects stored under a key (`store`, `fetch`) instead of by handle.
    named: bool,
    handles: Vec<Handle>,
    meta_blocks: u64,
}

/// Object `i`'s key in the named mode: the u64 redb and SQLite get, big-endian (so the keys
/// in numeric order are in byte order, as theirs are).
fn key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

impl<'b> Vde<'b> {
    fn new(path: &Path, batch: u64, named: bool, bufs: Buffers<'b, 64>) -> Self {
        let dev = FileDev::create(path, BS, VOL_BLOCKS).expect("vde image");
        let io = Arc::clone(&dev.io);
        let opts = FormatOptions {
            modules: if named {
                ModuleSet::OBJECTS | ModuleSet::NAMES
            } else {
                ModuleSet::OBJECTS
            },
            ..FormatOptions::default()
        };
        let vol = Volume::<_, 64>::format(dev, &opts, bufs).expect("format");
        let u = vol.usage();
        Vde {
            vol,
            io,
            batch,
            named,
            handles: Vec::new(),
            meta_blocks: u.total_blocks - u.free_blocks,
        }
    }
}

impl Durable for Vde<'_> {
    fn op(&mut self, i: u64) {
        let (lo, hi) = (i * self.batch, (i + 1) * self.batch);
        if self.named {
            for j in lo..hi {
                let h = self.vol.store(&key(j), &object(j)).expect("store");
                self.handles.push(h);
            }
        } else if self.batch == 1 {
            let h = self.vol.put(&object(lo)).expect("put");
            self.handles.push(h);
        } else {
            let mut b = self.vol.batch().expect("batch");
            for j in lo..hi {
                self.handles.push(b.put(&object(j)).expect("put"));
            }
            b.commit().expect("commit");
        }
    }
    fn io(&self) -> (Option<u64>, u64) {
        let s = self.io.snap();
        (Some(s.flushes), s.bytes)
    }
}

impl Objects for Vde<'_> {
    fn get_all(&mut self, n: u64) -> Duration {
        assert_eq!(self.handles.len() as u64, n);
        let mut buf = [0u8; 256];
        let t = Instant::now();
        for (i, h) in self.handles.iter().enumerate() {
            let len = if self.named {
                self.vol.fetch(&key(i as u64), &mut buf).expect("fetch")
            } else {
                self.vol.get(*h, &mut buf).expect("get")
            };
            assert_eq!(buf[..len], object(i as u64), "vde returned a wrong object");
        }
        t.elapsed()
    }
    fn held(&mut self, n: u64) -> (u64, String) {
        let u = self.vol.usage();
        let used = u.total_blocks - u.free_blocks;
        let st = self.vol.object_stats().expect("stats");
        let data = used - self.meta_blocks;
        (
            used * BS as u64,
            format!(
                "blocks in use, incl. {} of fixed metadata (WAL, bitmap, slot-index region); \
                 the objects alone: {data} blocks ({} shared) = {:.2}",
                self.meta_blocks,
                st.shared_blocks,
                (data * BS as u64) as f64 / (n * SIZE as u64) as f64
            ),
        )
    }
}

struct Redb {
    db: Option<redb::Database>,
    io: Arc<IoCounters>,
    batch: u64,
    path: PathBuf,
}

impl Redb {
    fn new(path: &Path, batch: u64) -> Self {
        let io = Arc::new(IoCounters::default());
        let db = redb_create(path, Arc::clone(&io));
        Redb {
            db: Some(db),
            io,
            batch,
            path: path.to_owned(),
        }
    }
}

impl Durable for Redb {
    fn op(&mut self, i: u64) {
        let db = self.db.as_ref().expect("open");
        let mut w = db.begin_write().expect("begin");
        w.set_durability(Durability::Immediate).expect("durability");
        {
            let mut t = w.open_table(TABLE).expect("table");
            for j in i * self.batch..(i + 1) * self.batch {
                t.insert(j, &object(j)[..]).expect("insert");
            }
        }
        w.commit().expect("commit");
    }
    fn io(&self) -> (Option<u64>, u64) {
        let s = self.io.snap();
        (Some(s.flushes), s.bytes)
    }
}

impl Objects for Redb {
    fn get_all(&mut self, n: u64) -> Duration {
        let db = self.db.as_ref().expect("open");
        let t = Instant::now();
        let r = db.begin_read().expect("read");
        let tb = r.open_table(TABLE).expect("table");
        for j in 0..n {
            let v = tb.get(j).expect("get").expect("present");
            assert_eq!(v.value(), &object(j)[..], "redb returned a wrong object");
        }
        t.elapsed()
    }
    fn held(&mut self, _n: u64) -> (u64, String) {
        drop(self.db.take());
        (
            std::fs::metadata(&self.path).map_or(0, |m| m.len()),
            "file size".into(),
        )
    }
}

struct Sqlite {
    conn: Connection,
    batch: u64,
    path: PathBuf,
}

impl Durable for Sqlite {
    fn op(&mut self, i: u64) {
        let tx = self.conn.transaction().expect("tx");
        {
            let mut st = tx
                .prepare_cached("INSERT INTO t(id, v) VALUES (?1, ?2)")
                .expect("prepare");
            for j in i * self.batch..(i + 1) * self.batch {
                st.execute(params![j as i64, &object(j)[..]])
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    fn io(&self) -> (Option<u64>, u64) {
        (None, ProcIo::read().wchar)
    }
}

impl Objects for Sqlite {
    fn get_all(&mut self, n: u64) -> Duration {
        let t = Instant::now();
        let mut st = self
            .conn
            .prepare_cached("SELECT v FROM t WHERE id = ?1")
            .expect("prepare");
        for j in 0..n {
            let v: Vec<u8> = st.query_row([j as i64], |r| r.get(0)).expect("select");
            assert_eq!(v, &object(j)[..], "SQLite returned a wrong object");
        }
        t.elapsed()
    }
    fn held(&mut self, _n: u64) -> (u64, String) {
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .expect("checkpoint");
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        (
            size(&self.path) + size(&self.path.with_extension("db-wal")),
            "db file after a checkpoint (WAL truncated)".into(),
        )
    }
}

/// Prints the small-object table for `n` objects, with the stores' files under `base`.
pub fn section(base: &Path, n: u64, rounds: u64) {
    let dir = tempfile::Builder::new()
        .prefix("vde-bench-objects-")
        .tempdir_in(base)
        .expect("temporary directory");
    let disk = DiskFlushes::for_dir(dir.path());
    println!("## Small objects on a file: {n} × {SIZE}-byte objects, durable puts, then get all");
    println!();
    println!("Puts interleaved in {rounds} rounds across the stores; every store starts empty.");
    println!();
    println!(
        "| mode | store | puts/s | vde ÷ this | gets/s | vde ÷ this | fsync / put | \
         disk flushes / put | bytes written / put | device bytes / payload byte | held = |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (batch, named) in [(1u64, false), (BATCH, false), (1, true)] {
        let d = dir.path();
        let mut scratch =
            vec![0u8; Buffers::scratch_with_cache(BS, vde_std::buffers::CACHE_BLOCKS)];
        let mut txn = vec![0u8; BS * 64];
        // 16 bytes per shared block tracked: room for 4,096 shared blocks.
        let mut index = vec![0u8; 16 * 4096];
        let bufs = Buffers {
            scratch: &mut scratch,
            txn: &mut txn,
            index: &mut index,
        };
        let tag = format!("{batch}{}", if named { "-named" } else { "" });
        let mut vde = Vde::new(&d.join(format!("vde-{tag}.img")), batch, named, bufs);
        let mut redb = Redb::new(&d.join(format!("redb-{tag}.db")), batch);
        let path = d.join(format!("sqlite-{tag}.db"));
        let mut sqlite = Sqlite {
            conn: sqlite_open(&path),
            batch,
            path,
        };
        let txs = n / batch;
        let t = interleave(&mut [&mut vde, &mut redb, &mut sqlite], txs, rounds, &disk);
        let stores: [(&str, &mut dyn Objects); 3] = [
            ("vde", &mut vde),
            ("redb", &mut redb),
            ("SQLite", &mut sqlite),
        ];
        let mode = if named {
            "1 put / transaction, vde by name (`store`/`fetch`)".to_string()
        } else if batch == 1 {
            "1 put / transaction".to_string()
        } else {
            format!("{batch} puts / transaction")
        };
        let puts = |k: usize| (txs * batch) as f64 / t[k].elapsed.as_secs_f64();
        let mut our_gets = 0.0;
        for (k, (name, s)) in stores.into_iter().enumerate() {
            let gets = n as f64 / s.get_all(n).as_secs_f64();
            if k == 0 {
                our_gets = gets;
            }
            let (held, note) = s.held(n);
            let r = &t[k];
            let per = |v: Option<u64>| {
                v.map_or("n/a".into(), |v| {
                    format!("{:.3}", v as f64 / (txs * batch) as f64)
                })
            };
            println!(
                "| {mode} | {name} | {:.0} | {} | {:.0} | {} | {} | {} | {:.0} | {:.2} | {note} |",
                puts(k),
                if k == 0 {
                    "—".into()
                } else {
                    ratio(puts(0), puts(k))
                },
                gets,
                if k == 0 {
                    "—".into()
                } else {
                    ratio(our_gets, gets)
                },
                per(r.fsyncs),
                per(r.disk),
                r.bytes as f64 / (txs * batch) as f64,
                held as f64 / (n * SIZE as u64) as f64,
            );
        }
    }
    println!();
    println!(
        "(payload = {n} × {SIZE} bytes; keys are u64 for redb and SQLite, handles for vde \
         (in the by-name rows: the same u64 as an 8-byte name). \
         Bytes written: vde device counter, redb backend counter, SQLite `/proc/self/io` wchar.)"
    );
    println!();
}
