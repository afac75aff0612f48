//! Durable puts from many threads at once: `T` threads each put `N` 100-byte objects, every put
//! durable before it returns and its own transaction. vde through `SharedVolume` (one worker,
//! group commit: callers that overlap share one flush) against redb (one `Database` shared by
//! the threads, a write transaction with `Durability::Immediate` per put) and SQLite (one
//! connection per thread to the same WAL database, `synchronous=FULL`, one `INSERT` per
//! transaction, a busy timeout so writers queue). Reports puts per second and flushes per put.
//! The stores run one after another on the same file system; each starts empty.

use crate::file::{sqlite_open, TABLE};
use crate::filedev::{redb_create, DiskFlushes, FileDev, IoCounters};
use crate::objects::{object, SIZE};
use crate::ratio;
use redb::Durability;
use rusqlite::{params, Connection};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vde_nostd::{FormatOptions, ModuleSet};
use vde_std::SharedVolume;

const BS: usize = 4096;
/// One store's run: elapsed time, flushes it counted itself (if it can), disk flushes.
struct Run {
    elapsed: Duration,
    fsyncs: Option<u64>,
    disk: Option<u64>,
}

fn vde(dir: &Path, threads: u64, n: u64, disk: &DiskFlushes) -> Run {
    let dev = FileDev::create(&dir.join("vde.img"), BS, 16384).expect("vde image");
    let io: Arc<IoCounters> = Arc::clone(&dev.io);
    let opts = FormatOptions {
        modules: ModuleSet::OBJECTS,
        ..FormatOptions::default()
    };
    let vol = SharedVolume::format(dev, &opts).expect("format");
    let (f0, d0) = (io.snap().flushes, disk.now());
    let t = Instant::now();
    let handles: Vec<Vec<vde_nostd::Handle>> = std::thread::scope(|s| {
        let ws: Vec<_> = (0..threads)
            .map(|k| {
                let vol = vol.clone();
                s.spawn(move || {
                    (0..n)
                        .map(|i| vol.put(&object(k << 32 | i)).expect("put"))
                        .collect()
                })
            })
            .collect();
        ws.into_iter().map(|w| w.join().expect("thread")).collect()
    });
    let elapsed = t.elapsed();
    let run = Run {
        elapsed,
        fsyncs: Some(io.snap().flushes - f0),
        disk: disk.now().zip(d0).map(|(a, b)| a - b),
    };
    for (k, hs) in handles.iter().enumerate() {
        for (i, h) in hs.iter().enumerate() {
            assert_eq!(
                vol.get(*h).expect("get"),
                object((k as u64) << 32 | i as u64),
                "vde returned a wrong object"
            );
        }
    }
    drop(vol.close().expect("close"));
    run
}

fn redb(dir: &Path, threads: u64, n: u64, disk: &DiskFlushes) -> Run {
    let io = Arc::new(IoCounters::default());
    let db = redb_create(&dir.join("redb.db"), Arc::clone(&io));
    let (f0, d0) = (io.snap().flushes, disk.now());
    let t = Instant::now();
    std::thread::scope(|s| {
        for k in 0..threads {
            let db = &db;
            s.spawn(move || {
                for i in 0..n {
                    let mut w = db.begin_write().expect("begin");
                    w.set_durability(Durability::Immediate).expect("durability");
                    {
                        let mut tb = w.open_table(TABLE).expect("table");
                        tb.insert(k << 32 | i, &object(k << 32 | i)[..])
                            .expect("insert");
                    }
                    w.commit().expect("commit");
                }
            });
        }
    });
    Run {
        elapsed: t.elapsed(),
        fsyncs: Some(io.snap().flushes - f0),
        disk: disk.now().zip(d0).map(|(a, b)| a - b),
    }
}

fn sqlite(dir: &Path, threads: u64, n: u64, disk: &DiskFlushes) -> Run {
    let path = dir.join("sqlite.db");
    drop(sqlite_open(&path));
    let d0 = disk.now();
    let t = Instant::now();
    std::thread::scope(|s| {
        for k in 0..threads {
            let path = &path;
            s.spawn(move || {
                let conn = Connection::open(path).expect("sqlite open");
                conn.pragma_update(None, "synchronous", "FULL")
                    .expect("synchronous");
                conn.busy_timeout(Duration::from_secs(60))
                    .expect("busy timeout");
                let mut st = conn
                    .prepare("INSERT INTO t(id, v) VALUES (?1, ?2)")
                    .expect("prepare");
                for i in 0..n {
                    st.execute(params![(k << 32 | i) as i64, &object(k << 32 | i)[..]])
                        .expect("insert");
                }
            });
        }
    });
    Run {
        elapsed: t.elapsed(),
        fsyncs: None,
        disk: disk.now().zip(d0).map(|(a, b)| a - b),
    }
}

/// Prints the table for `threads` threads of `n` durable puts each, with the stores' files
/// under `base`.
pub fn section(base: &Path, threads: u64, n: u64) {
    let dir = tempfile::Builder::new()
        .prefix("vde-bench-threads-")
        .tempdir_in(base)
        .expect("temporary directory");
    let disk = DiskFlushes::for_dir(dir.path());
    let d = dir.path();
    let runs = [
        (
            "vde (`SharedVolume`, group commit)",
            vde(d, threads, n, &disk),
        ),
        ("redb (Durability::Immediate)", redb(d, threads, n, &disk)),
        (
            "SQLite (WAL, synchronous=FULL)",
            sqlite(d, threads, n, &disk),
        ),
    ];
    let puts = (threads * n) as f64;
    let rate = |r: &Run| puts / r.elapsed.as_secs_f64();
    println!(
        "## Durable puts from {threads} threads: {n} × {SIZE}-byte objects each, one per transaction"
    );
    println!();
    println!("| store | puts/s | vde ÷ this | fsync / put | disk flushes / put |");
    println!("|---|---|---|---|---|");
    for (k, (name, r)) in runs.iter().enumerate() {
        let per = |v: Option<u64>| v.map_or("n/a".into(), |v| format!("{:.3}", v as f64 / puts));
        println!(
            "| {name} | {:.0} | {} | {} | {} |",
            rate(r),
            if k == 0 {
                "—".into()
            } else {
                ratio(rate(&runs[0].1), rate(r))
            },
            per(r.fsyncs),
            per(r.disk),
        );
    }
    println!();
    println!(
        "(every put is durable when it returns; the stores run one after another in `{}` (disk \
         `{}`). fsync counts come from counting wrappers (vde's device, redb's storage backend); \
         SQLite cannot be wrapped, so for it read the disk column: flush requests the disk \
         completed during its run, whole disk.)",
        base.display(),
        disk.name()
    );
    println!();
}
