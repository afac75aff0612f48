//! `vde-bench`: prints a table of our figure, a baseline's, and the ratio, all measured in one
//! run on one machine. `--smoke` runs tiny sizes (CI); the default runs the full sizes.
//!
//! Sections, one module each:
//! - [`scanner`]: the free-space scanner on a 32 MiB bitmap against a bit-by-bit loop and the
//!   linear-read limit, with and without per-block summaries;
//! - [`wal`]: WAL cost per commit on a RAM device;
//! - [`file`]: durable 4-block commits on a file against redb, SQLite and `fdatasync`;
//! - [`objects`]: small objects on a file against redb and SQLite;
//! - [`threads`]: durable puts from eight threads at once against redb and SQLite;
//! - [`flash`]: objects on simulated NOR flash (direct adapter and wear-levelled translation
//!   layer) against sequential-storage;
//! - [`footprint`]: code size beside littlefs.
//!
//! Options: `--smoke`; `--dir PATH` (where the file benchmarks make their temporary directory;
//! default `$VDE_BENCH_DIR`, else the system temporary directory); `--only NAME[,NAME]` to run
//! some sections. The peers (redb, rusqlite, sequential-storage) are dependencies of this binary
//! only.

mod bench;
mod file;
mod filedev;
mod flash;
mod footprint;
mod objects;
mod scanner;
mod threads;
mod wal;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Runs `f` until `min` has passed (at least once); returns the mean time per call and the last
/// result.
pub(crate) fn time<T>(min: Duration, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut n = 0u32;
    let start = Instant::now();
    let mut out;
    loop {
        out = black_box(f());
        n += 1;
        if start.elapsed() >= min {
            break;
        }
    }
    (start.elapsed() / n, out)
}

pub(crate) fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// `ours / theirs` as a ratio cell.
pub(crate) fn ratio(ours: f64, theirs: f64) -> String {
    if theirs == 0.0 {
        "∞".into()
    } else {
        format!("{:.2}×", ours / theirs)
    }
}

struct Args {
    smoke: bool,
    dir: PathBuf,
    only: Option<Vec<String>>,
}

fn args() -> Args {
    let mut a = Args {
        smoke: false,
        dir: std::env::var_os("VDE_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from),
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--smoke" => a.smoke = true,
            "--dir" => a.dir = it.next().expect("--dir PATH").into(),
            "--only" => {
                a.only = Some(
                    it.next()
                        .expect("--only NAME[,NAME]")
                        .split(',')
                        .map(str::to_owned)
                        .collect(),
                )
            }
            "-h" | "--help" => {
                println!(
                    "vde-bench [--smoke] [--dir PATH] [--only scanner,wal,commits,objects,threads,flash,footprint]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other:?} (try --help)"),
        }
    }
    a
}

fn main() {
    let a = args();
    let run = |name: &str| a.only.as_ref().is_none_or(|o| o.iter().any(|x| x == name));
    println!(
        "# vde-bench ({} mode)",
        if a.smoke { "smoke" } else { "full" }
    );
    println!();
    if run("scanner") {
        if a.smoke {
            scanner::section(1 << 16, Duration::from_millis(1));
        } else {
            scanner::section(32 << 20, Duration::from_millis(300));
        }
    }
    if run("wal") {
        wal::section(if a.smoke { 200 } else { 20_000 });
    }
    if run("commits") {
        if a.smoke {
            file::section(&a.dir, 20, 2);
        } else {
            file::section(&a.dir, 2_000, 20);
        }
    }
    if run("objects") {
        if a.smoke {
            objects::section(&a.dir, 200, 2);
        } else {
            objects::section(&a.dir, 10_000, 20);
        }
    }
    if run("threads") {
        if a.smoke {
            threads::section(&a.dir, 8, 20);
        } else {
            threads::section(&a.dir, 8, 1_000);
        }
    }
    if run("flash") {
        if a.smoke {
            flash::section(100, 500, 500);
        } else {
            flash::section(1_000, 20_000, 60_000);
        }
    }
    if run("footprint") {
        footprint::section();
    }
}
