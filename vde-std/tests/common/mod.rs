//! Helpers for the integration tests: run the built `vde` binary and read what it said.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The output of one run.
pub struct Run {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    /// Asserts success and returns stdout.
    pub fn ok(&self) -> String {
        assert_eq!(
            self.code,
            0,
            "stderr: {}\nstdout: {}",
            self.stderr,
            self.out()
        );
        self.out()
    }
    /// Asserts failure with `code`, a single `vde: error:` line containing `needle`.
    pub fn fails(&self, code: i32, needle: &str) {
        assert_eq!(
            self.code,
            code,
            "stderr: {}\nstdout: {}",
            self.stderr,
            self.out()
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line expected, got: {:?}", self.stderr);
        assert!(
            lines[0].starts_with("vde: error: ") && lines[0].contains(needle),
            "expected '{needle}' in {:?}",
            self.stderr
        );
    }
}

fn finish(o: Output) -> Run {
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: o.stdout,
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Runs `vde ARGS` in `dir`.
pub fn vde(dir: &Path, args: &[&str]) -> Run {
    vde_in(dir, args, None)
}

/// Runs `vde ARGS` in `dir` with `input` on stdin.
pub fn vde_in(dir: &Path, args: &[&str], input: Option<&[u8]>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vde"));
    cmd.args(args)
        .current_dir(dir)
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().expect("spawn vde");
    if let Some(data) = input {
        let mut stdin = child.stdin.take().expect("stdin");
        // The tool may exit before reading its input (an error): ignore a broken pipe.
        let _ = stdin.write_all(data);
    }
    finish(child.wait_with_output().expect("wait"))
}

/// A deterministic pseudo-random byte string.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// Overwrites the superblock fields at `offset` of both copies and reseals their checksums.
pub fn patch_superblocks(img: &Path, bs: usize, f: impl Fn(&mut [u8])) {
    let mut data = std::fs::read(img).unwrap();
    for at in [0, bs] {
        let sb = &mut data[at..at + 112];
        f(sb);
        let sum = xxhash_rust::xxh64::xxh64(&sb[..104], 0);
        sb[104..112].copy_from_slice(&sum.to_le_bytes());
    }
    std::fs::write(img, data).unwrap();
}

/// Opens an image in this process, retrying while it is `Locked` (for up to 5 s). A test that
/// spawns `vde` shares the process with tests that open images in-process: a child forked by
/// another test holds a copy of every descriptor until it execs, and with it any lock on them,
/// so a lock just released can look held for a moment.
pub fn open_retry<T>(mut open: impl FnMut() -> vde_std::Result<T>) -> T {
    let t = std::time::Instant::now();
    loop {
        match open() {
            Err(vde_std::Error::Locked) if t.elapsed() < std::time::Duration::from_secs(5) => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            r => return r.expect("open the image"),
        }
    }
}
