//! Durable commits on a file: an atomic update of 4 blocks of 4 KiB, durable before the call
//! returns, by vde (a volume over [`FileDev`], 4 block writes in one transaction), redb
//! (`Durability::Immediate`, four 4 KiB values in one write transaction), SQLite through
//! rusqlite (WAL mode, `synchronous=FULL`, four 4 KiB blobs per transaction) and the limit loop
//! (one 16 KiB write + `fdatasync`). All four work in files of one temporary directory.
//!
//! Each store updates the same working set of 4,000 4 KiB items (16 MiB), written once before
//! the clock starts, so every measured commit overwrites live data and no file grows.

use crate::bench::{interleave, Durable};
use crate::filedev::{preallocate, redb_create, DiskFlushes, FileDev, IoCounters, ProcIo};
use crate::ratio;
use redb::{Durability, ReadableDatabase, TableDefinition};
use rusqlite::{params, Connection};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use vde_nostd::{BlockNo, Buffers, FormatOptions, ModuleSet, Volume};

const BS: usize = 4096;
/// Items in the working set.
const WORKING: u64 = 4000;
/// Blocks of the vde volume (64 MiB: a 256-block WAL by the default 1/64 rule).
const VOL_BLOCKS: u64 = 16384;

pub(crate) const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("t");

/// The content of item `key` at commit `i`: 4 KiB that differ in every 8-byte word from any
/// other (commit, item) pair — so no store can skip writing unchanged pages (SQLite compares an
/// overflow page before journaling it) — and whose first 16 bytes say which.
fn block(buf: &mut [u8], i: u64, key: u64) {
    let mut s = (i << 20) ^ key ^ 0x9E37_79B9_7F4A_7C15;
    for w in buf.chunks_exact_mut(8) {
        w.copy_from_slice(&crate::xorshift(&mut s).to_le_bytes());
    }
    buf[..8].copy_from_slice(&i.to_le_bytes());
    buf[8..16].copy_from_slice(&key.to_le_bytes());
}

fn key(i: u64, k: u64) -> u64 {
    (i * 4 + k) % WORKING
}

struct Vde<'b> {
    vol: Volume<'b, FileDev, 16>,
    io: Arc<IoCounters>,
    start: u64,
    buf: Vec<u8>,
}

impl<'b> Vde<'b> {
    fn new(dir: &Path, scratch: &'b mut [u8], txn: &'b mut [u8]) -> Self {
        let dev = FileDev::create(&dir.join("vde.img"), BS, VOL_BLOCKS).expect("vde image");
        let io = Arc::clone(&dev.io);
        let opts = FormatOptions {
            modules: ModuleSet::empty(),
            ..FormatOptions::default()
        };
        let bufs = Buffers {
            scratch,
            txn,
            index: &mut [],
        };
        let mut vol = Volume::<_, 16>::format(dev, &opts, bufs).expect("format");
        let mut tx = vol.begin();
        // The image is zero-filled: the working set is live data from the start.
        let ext = tx.allocate(WORKING).expect("allocate the working set");
        tx.commit().expect("commit");
        Vde {
            vol,
            io,
            start: ext.start.0,
            buf: vec![0u8; BS],
        }
    }

    fn last(&mut self, i: u64) -> [u8; 8] {
        let b = BlockNo(self.start + key(i, 3));
        self.vol.read_block(b, &mut self.buf).expect("read");
        self.buf[..8].try_into().expect("8 bytes")
    }
}

impl Durable for Vde<'_> {
    fn op(&mut self, i: u64) {
        let mut tx = self.vol.begin();
        for k in 0..4 {
            block(&mut self.buf, i, key(i, k));
            tx.write(BlockNo(self.start + key(i, k)), &self.buf)
                .expect("write");
        }
        tx.commit().expect("commit");
    }
    fn io(&self) -> (Option<u64>, u64) {
        let s = self.io.snap();
        (Some(s.flushes), s.bytes)
    }
}

struct Redb {
    db: redb::Database,
    io: Arc<IoCounters>,
    buf: Vec<u8>,
}

impl Redb {
    fn new(dir: &Path) -> Self {
        let io = Arc::new(IoCounters::default());
        let db = redb_create(&dir.join("redb.db"), Arc::clone(&io));
        let mut buf = vec![0u8; BS];
        let w = db.begin_write().expect("begin");
        {
            let mut t = w.open_table(TABLE).expect("table");
            for key in 0..WORKING {
                block(&mut buf, 0, key);
                t.insert(key, &buf[..]).expect("insert");
            }
        }
        w.commit().expect("commit");
        Redb { db, io, buf }
    }

    fn last(&mut self, i: u64) -> [u8; 8] {
        let r = self.db.begin_read().expect("read");
        let t = r.open_table(TABLE).expect("table");
        let v = t.get(key(i, 3)).expect("get").expect("present");
        v.value()[..8].try_into().expect("8 bytes")
    }
}

impl Durable for Redb {
    fn op(&mut self, i: u64) {
        let mut w = self.db.begin_write().expect("begin");
        w.set_durability(Durability::Immediate).expect("durability");
        {
            let mut t = w.open_table(TABLE).expect("table");
            for k in 0..4 {
                block(&mut self.buf, i, key(i, k));
                t.insert(key(i, k), &self.buf[..]).expect("insert");
            }
        }
        w.commit().expect("commit");
    }
    fn io(&self) -> (Option<u64>, u64) {
        let s = self.io.snap();
        (Some(s.flushes), s.bytes)
    }
}

/// A SQLite connection in WAL mode with `synchronous=FULL` and table `t(id, v)`.
pub(crate) fn sqlite_open(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("sqlite open");
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode.to_ascii_lowercase(), "wal");
    conn.pragma_update(None, "synchronous", "FULL")
        .expect("synchronous");
    conn.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
        .expect("create");
    conn
}

struct Sqlite {
    conn: Connection,
    buf: Vec<u8>,
}

impl Sqlite {
    fn new(dir: &Path) -> Self {
        let mut conn = sqlite_open(&dir.join("sqlite.db"));
        let mut buf = vec![0u8; BS];
        let tx = conn.transaction().expect("tx");
        {
            let mut st = tx
                .prepare_cached("INSERT INTO t(id, v) VALUES (?1, ?2)")
                .expect("prepare");
            for key in 0..WORKING {
                block(&mut buf, 0, key);
                st.execute(params![key as i64, &buf[..]]).expect("insert");
            }
        }
        tx.commit().expect("commit");
        Sqlite { conn, buf }
    }

    fn last(&mut self, i: u64) -> [u8; 8] {
        let v: Vec<u8> = self
            .conn
            .query_row("SELECT v FROM t WHERE id = ?1", [key(i, 3) as i64], |r| {
                r.get(0)
            })
            .expect("select");
        v[..8].try_into().expect("8 bytes")
    }
}

impl Durable for Sqlite {
    fn op(&mut self, i: u64) {
        let tx = self.conn.transaction().expect("tx");
        {
            let mut st = tx
                .prepare_cached("UPDATE t SET v = ?1 WHERE id = ?2")
                .expect("prepare");
            for k in 0..4 {
                block(&mut self.buf, i, key(i, k));
                st.execute(params![&self.buf[..], key(i, k) as i64])
                    .expect("update");
            }
        }
        tx.commit().expect("commit");
    }
    fn io(&self) -> (Option<u64>, u64) {
        (None, ProcIo::read().wchar)
    }
}

/// The limit: one 16 KiB write and one `fdatasync` per commit, in place in a preallocated file.
struct Limit {
    file: std::fs::File,
    buf: Vec<u8>,
    n: u64,
}

impl Limit {
    const SLOTS: u64 = WORKING / 4;
    fn new(dir: &Path) -> Self {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join("limit.bin"))
            .expect("limit file");
        preallocate(&file, Self::SLOTS * 4 * BS as u64).expect("preallocate");
        Limit {
            file,
            buf: vec![0u8; 4 * BS],
            n: 0,
        }
    }
}

impl Durable for Limit {
    fn op(&mut self, i: u64) {
        block(&mut self.buf, i, i % Self::SLOTS);
        self.file
            .write_all_at(&self.buf, (i % Self::SLOTS) * 4 * BS as u64)
            .expect("write");
        self.file.sync_data().expect("fdatasync");
        self.n += 1;
    }
    fn io(&self) -> (Option<u64>, u64) {
        (Some(self.n), self.n * 4 * BS as u64)
    }
}

/// Prints the durable-commit table, with every store's files in a new directory under `base`.
pub fn section(base: &Path, commits: u64, rounds: u64) {
    let dir = tempfile::Builder::new()
        .prefix("vde-bench-commits-")
        .tempdir_in(base)
        .expect("temporary directory");
    let disk = DiskFlushes::for_dir(dir.path());
    let (mut scratch, mut txn) = (
        vec![0u8; Buffers::scratch_min(BS, false)],
        vec![0u8; BS * 16],
    );
    let mut vde = Vde::new(dir.path(), &mut scratch, &mut txn);
    let mut redb = Redb::new(dir.path());
    let mut sqlite = Sqlite::new(dir.path());
    let mut limit = Limit::new(dir.path());
    let t = interleave(
        &mut [&mut vde, &mut redb, &mut sqlite, &mut limit],
        commits,
        rounds,
        &disk,
    );
    let want = (commits - 1).to_le_bytes();
    assert_eq!(vde.last(commits - 1), want, "vde lost a commit");
    assert_eq!(redb.last(commits - 1), want, "redb lost a commit");
    assert_eq!(sqlite.last(commits - 1), want, "SQLite lost a commit");
    let names = [
        ("vde (4 block writes, 1 transaction)", "device counter"),
        ("redb (Durability::Immediate)", "backend counter"),
        ("SQLite (WAL, synchronous=FULL)", "/proc/self/io wchar"),
        ("limit: write 16 KiB + fdatasync", "by construction"),
    ];
    println!("## Durable commits on a file: 4 × 4 KiB updated atomically, durable on return");
    println!();
    println!(
        "{commits} commits per store in {rounds} interleaved rounds, over a 4,000-item (16 MiB) \
         working set, in `{}` (disk `{}`).",
        base.display(),
        disk.name()
    );
    println!();
    println!(
        "| store | commits/s | vde ÷ this | fsync / commit | disk flushes / commit | \
         bytes written / commit | bytes counted by |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (k, (r, (name, src))) in t.iter().zip(names).enumerate() {
        println!(
            "| {name} | {:.0} | {} | {} | {} | {:.0} | {src} |",
            r.rate(),
            if k == 0 {
                "—".to_string()
            } else {
                ratio(t[0].rate(), r.rate())
            },
            r.per(r.fsyncs, 2),
            r.per(r.disk, 2),
            r.bytes as f64 / r.ops as f64,
        );
    }
    println!();
    println!(
        "(fsync counts come from counting wrappers: vde's device, redb's storage backend; SQLite \
         cannot be wrapped without a VFS, so for it read the disk column. Disk flushes are the \
         flush requests the disk completed during the store's slices, whole disk and \
         system-wide, so another process's flushes can add to them.)"
    );
    println!();
}
