//! The unflushed-write model: what a power cut may leave of the writes issued since the last
//! completed flush, on any block device.
//!
//! Owns [`Unflushed`] (a wrapper for any [`BlockDevice`] that passes every operation through and
//! records the writes since the last flush), [`Window`] (those writes, grouped by block, with
//! each block's content at the last flush) and [`CrashState`] (one outcome of a cut: which
//! content each touched block is left with).
//!
//! Model: a device with a volatile write cache may persist **any subset** of the writes issued
//! since the last completed flush, **in any order**, and tear one. For a block written several
//! times in the window, "any order" means that any one of its versions may be the one that
//! lands last, or none does. So an outcome chooses, independently for every touched block, its
//! content at the last flush or any of its versions; and in some outcomes one block is torn: a
//! prefix of tear units (an eighth of the block, at most a 512-byte sector) of one of its
//! versions over its content at the last flush. A flush that completes empties the window; one that is cut does
//! not.
//!
//! The medium under the wrapper keeps its own, physical, behaviour (NOR and the translation layer
//! write through at once and tear only the operation that is cut); the outcome that leaves every
//! block as the medium holds it ([`Choice::Keep`]) is always the first one tried, so what the
//! harness checked before this model existed is still checked. The others are stricter than the
//! physics of those media: they show that the engine orders every write it depends on with a
//! flush, whatever medium it runs on.
//!
//! Invariant: [`Window::states`] is deterministic in its seed, lists every outcome when there are
//! at most `max` of them, and otherwise the two extremes (everything as the medium holds it,
//! everything as at the last flush) plus random ones.

use std::collections::BTreeMap;
use std::format;
use std::string::String;
use std::vec;
use std::vec::Vec;

use vde_nostd::{BlockDevice, BlockNo};

use crate::sim::XorShift64;

/// A block device wrapper that records the writes issued since the last completed flush.
pub struct Unflushed<D> {
    inner: D,
    bs: usize,
    durable: Vec<u8>,
    window: Vec<(u64, Vec<u8>)>,
}

impl<D: BlockDevice> Unflushed<D> {
    /// Wraps `inner`, whose content at the last flush is `durable` (every block, in order: see
    /// [`read_all`]).
    pub fn new(inner: D, durable: Vec<u8>) -> Self {
        let bs = inner.block_size();
        Unflushed {
            inner,
            bs,
            durable,
            window: Vec::new(),
        }
    }

    /// The wrapped device.
    pub fn inner(&mut self) -> &mut D {
        &mut self.inner
    }

    /// The writes since the last completed flush, with the touched blocks' content at that flush.
    pub fn window(&self) -> Window {
        let mut blocks: BTreeMap<u64, Touched> = BTreeMap::new();
        for (b, data) in &self.window {
            let t = blocks.entry(*b).or_insert_with(|| {
                let at = (*b as usize).saturating_mul(self.bs);
                Touched {
                    block: *b,
                    durable: self
                        .durable
                        .get(at..at + self.bs)
                        .map_or_else(|| vec![0; self.bs], <[u8]>::to_vec),
                    versions: Vec::new(),
                }
            });
            t.versions.push(data.clone());
        }
        Window {
            bs: self.bs,
            blocks: blocks.into_values().collect(),
        }
    }
}

impl<D: BlockDevice> Unflushed<D> {
    /// Records a write of `data` at `offset` of `block` as a new version of the whole block:
    /// the block as the window leaves it, with the range over it.
    fn record_range(&mut self, block: BlockNo, offset: usize, data: &[u8]) {
        let at = (block.0 as usize).saturating_mul(self.bs);
        let mut v = self
            .window
            .iter()
            .rev()
            .find(|(b, _)| *b == block.0)
            .map(|(_, d)| d.clone())
            .or_else(|| self.durable.get(at..at + self.bs).map(<[u8]>::to_vec))
            .unwrap_or_else(|| vec![0; self.bs]);
        if let Some(d) = v.get_mut(offset..offset + data.len()) {
            d.copy_from_slice(data);
        }
        self.window.push((block.0, v));
    }
}

impl<D: BlockDevice> BlockDevice for Unflushed<D> {
    type Error = D::Error;
    fn block_size(&self) -> usize {
        self.inner.block_size()
    }
    fn block_count(&self) -> u64 {
        self.inner.block_count()
    }
    fn read_block(&mut self, block: BlockNo, buf: &mut [u8]) -> Result<(), D::Error> {
        self.inner.read_block(block, buf)
    }
    fn reads_partial(&self) -> bool {
        self.inner.reads_partial()
    }
    fn read_at(&mut self, block: BlockNo, offset: usize, buf: &mut [u8]) -> Result<(), D::Error> {
        self.inner.read_at(block, offset, buf)
    }
    fn write_block(&mut self, block: BlockNo, buf: &[u8]) -> Result<(), D::Error> {
        // Recorded before it is issued: a write that fails may still have landed, whole or torn.
        self.window.push((block.0, buf.to_vec()));
        self.inner.write_block(block, buf)
    }
    /// Recorded as a new version of the whole block: the block as the window leaves it, with
    /// the bytes appended (a file's page cache writes a page back whole).
    fn append(&mut self, block: BlockNo, offset: usize, data: &[u8]) -> Result<(), D::Error> {
        self.record_range(block, offset, data);
        self.inner.append(block, offset, data)
    }
    fn programs_in_place(&self) -> bool {
        self.inner.programs_in_place()
    }
    /// Recorded like an append: a new version of the whole block with the range over it.
    fn program(&mut self, block: BlockNo, offset: usize, data: &[u8]) -> Result<(), D::Error> {
        self.record_range(block, offset, data);
        self.inner.program(block, offset, data)
    }
    fn append_unit(&self) -> usize {
        self.inner.append_unit()
    }
    /// Passed on: the volume discards only blocks a durable transaction freed.
    fn discard(&mut self, start: BlockNo, count: u64) -> Result<(), D::Error> {
        self.inner.discard(start, count)
    }
    fn flush(&mut self) -> Result<(), D::Error> {
        self.inner.flush()?;
        for (b, data) in self.window.drain(..) {
            let at = (b as usize).saturating_mul(self.bs);
            if let Some(d) = self.durable.get_mut(at..at + self.bs) {
                d.copy_from_slice(&data);
            }
        }
        Ok(())
    }
}

/// Reads every block of `dev` (the `durable` argument of [`Unflushed::new`]).
pub fn read_all<D: BlockDevice>(dev: &mut D) -> Result<Vec<u8>, D::Error> {
    let bs = dev.block_size();
    let n = dev.block_count() as usize;
    let mut out = vec![0u8; n * bs];
    for (i, chunk) in out.chunks_mut(bs).enumerate() {
        dev.read_block(BlockNo(i as u64), chunk)?;
    }
    Ok(out)
}

/// One block written since the last flush.
#[derive(Debug, Clone)]
pub struct Touched {
    /// The block.
    pub block: u64,
    /// Its content at the last flush.
    pub durable: Vec<u8>,
    /// Every version written since, in issue order (the last one may be the write that was cut).
    pub versions: Vec<Vec<u8>>,
}

/// The writes issued since the last completed flush.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// Block size.
    pub bs: usize,
    /// The touched blocks, in block order.
    pub blocks: Vec<Touched>,
}

/// What one touched block is left with in a [`CrashState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// As the medium holds it after the cut.
    Keep,
    /// Its content at the last flush (none of its writes landed).
    Durable,
    /// Version `i` landed last.
    Version(usize),
    /// Version `version` landed torn: its first `units` tear units over the content at the last
    /// flush.
    Torn {
        /// Which version.
        version: usize,
        /// How many tear units of it landed.
        units: usize,
    },
}

/// One outcome of a power cut: a choice for every touched block of a [`Window`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashState {
    /// One choice per touched block, in the window's block order.
    pub choices: Vec<Choice>,
}

impl CrashState {
    /// Whether every block stays as the medium holds it (nothing to apply).
    pub fn is_keep(&self) -> bool {
        self.choices.iter().all(|c| *c == Choice::Keep)
    }

    /// The content block `t` is left with, or `None` for [`Choice::Keep`].
    fn content(t: &Touched, c: Choice, bs: usize) -> Option<Vec<u8>> {
        match c {
            Choice::Keep => None,
            Choice::Durable => Some(t.durable.clone()),
            Choice::Version(i) => t.versions.get(i).cloned(),
            Choice::Torn { version, units } => {
                let mut d = t.durable.clone();
                let n = (units * tear_unit(bs)).min(bs);
                if let (Some(dst), Some(src)) = (d.get_mut(..n), t.versions.get(version)) {
                    dst.copy_from_slice(src.get(..n).unwrap_or(&[]));
                }
                Some(d)
            }
        }
    }

    /// The `(block, content)` writes that turn the medium's state into this outcome.
    pub fn writes(&self, w: &Window) -> Vec<(u64, Vec<u8>)> {
        w.blocks
            .iter()
            .zip(&self.choices)
            .filter_map(|(t, c)| Self::content(t, *c, w.bs).map(|d| (t.block, d)))
            .collect()
    }

    /// Imposes this outcome on `dev` (block writes and a flush). The device must be powered.
    pub fn apply<D: BlockDevice>(&self, w: &Window, dev: &mut D) -> Result<(), D::Error> {
        let writes = self.writes(w);
        for (b, d) in &writes {
            dev.write_block(BlockNo(*b), d)?;
        }
        if !writes.is_empty() {
            dev.flush()?;
        }
        Ok(())
    }

    /// Imposes this outcome on a raw image of whole blocks (block `b` at `b * bs`).
    pub fn apply_to_image(&self, w: &Window, image: &mut [u8]) {
        for (b, d) in self.writes(w) {
            let at = (b as usize).saturating_mul(w.bs);
            if let Some(dst) = image.get_mut(at..at + w.bs) {
                dst.copy_from_slice(&d);
            }
        }
    }

    /// A short description for violation reports, e.g. `12:durable 13:v1 40:torn(v0,3)`.
    pub fn describe(&self, w: &Window) -> String {
        if self.is_keep() {
            return String::from("as the medium holds it");
        }
        let parts: Vec<String> = w
            .blocks
            .iter()
            .zip(&self.choices)
            .filter(|(_, c)| **c != Choice::Keep)
            .map(|(t, c)| match c {
                Choice::Keep => format!("{}:keep", t.block),
                Choice::Durable => format!("{}:durable", t.block),
                Choice::Version(i) => format!("{}:v{i}", t.block),
                Choice::Torn { version, units } => {
                    format!("{}:torn(v{version},{units})", t.block)
                }
            })
            .collect();
        parts.join(" ")
    }
}

/// The tear granularity for blocks of `bs` bytes: an eighth of the block, at most a 512-byte
/// sector (a file's atomic unit; flash tears at any program, finer still).
fn tear_unit(bs: usize) -> usize {
    (bs / 8).clamp(1, 512)
}

impl Window {
    /// Whether no write is outstanding.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Number of untorn outcomes (saturating): the product over touched blocks of
    /// versions + 1 (the content at the last flush).
    pub fn outcomes(&self) -> u64 {
        self.blocks.iter().fold(1u64, |acc, t| {
            acc.saturating_mul(t.versions.len() as u64 + 1)
        })
    }

    /// Up to `max` outcomes (at least one: everything as the medium holds it). When the untorn
    /// outcomes number at most `max - 1`, all of them are listed plus one torn outcome; else the
    /// two extremes, then random outcomes, every other one with one block torn. `seed` makes the
    /// random choices.
    pub fn states(&self, max: usize, seed: u64) -> Vec<CrashState> {
        let n = self.blocks.len();
        let keep = CrashState {
            choices: vec![Choice::Keep; n],
        };
        let mut out = vec![keep];
        if n == 0 || max <= 1 {
            return out;
        }
        let mut rng = XorShift64::new(seed | 1);
        let total = self.outcomes();
        if total < max as u64 {
            // Every untorn outcome, in mixed radix: digit 0 = durable, d = version d - 1.
            for mut code in 0..total {
                let mut choices = Vec::with_capacity(n);
                for t in &self.blocks {
                    let radix = t.versions.len() as u64 + 1;
                    let d = (code % radix) as usize;
                    code /= radix;
                    choices.push(if d == 0 {
                        Choice::Durable
                    } else {
                        Choice::Version(d - 1)
                    });
                }
                out.push(CrashState { choices });
            }
            out.push(self.random(&mut rng, true));
        } else {
            out.push(CrashState {
                choices: vec![Choice::Durable; n],
            });
            let mut i = 0usize;
            while out.len() < max {
                out.push(self.random(&mut rng, i % 2 == 1));
                i += 1;
            }
        }
        out.truncate(max.max(1));
        out
    }

    fn random(&self, rng: &mut XorShift64, torn: bool) -> CrashState {
        let n = self.blocks.len();
        let mut choices: Vec<Choice> = self
            .blocks
            .iter()
            .map(|t| {
                let d = rng.below(t.versions.len() as u64 + 1) as usize;
                if d == 0 {
                    Choice::Durable
                } else {
                    Choice::Version(d - 1)
                }
            })
            .collect();
        if torn && n > 0 {
            let i = rng.below(n as u64) as usize;
            if let (Some(t), Some(c)) = (self.blocks.get(i), choices.get_mut(i)) {
                let units = self.bs / tear_unit(self.bs);
                *c = Choice::Torn {
                    version: rng.below(t.versions.len() as u64) as usize,
                    units: 1 + rng.below(units.saturating_sub(1).max(1) as u64) as usize,
                };
            }
        }
        CrashState { choices }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> Window {
        Window {
            bs: 512,
            blocks: vec![
                Touched {
                    block: 3,
                    durable: vec![0; 512],
                    versions: vec![vec![1; 512], vec![2; 512]],
                },
                Touched {
                    block: 9,
                    durable: vec![0; 512],
                    versions: vec![vec![7; 512]],
                },
            ],
        }
    }

    #[test]
    fn small_windows_list_every_outcome() {
        let w = window();
        assert_eq!(w.outcomes(), 6);
        let s = w.states(16, 1);
        // keep + 6 untorn + 1 torn
        assert_eq!(s.len(), 8);
        assert!(s[0].is_keep());
        let mut seen: Vec<(u8, u8)> = Vec::new();
        for st in &s[1..7] {
            let mut img = vec![0xEEu8; 512 * 10];
            st.apply_to_image(&w, &mut img);
            seen.push((img[3 * 512], img[9 * 512]));
        }
        seen.sort();
        assert_eq!(seen, vec![(0, 0), (0, 7), (1, 0), (1, 7), (2, 0), (2, 7)]);
        assert!(s[7]
            .choices
            .iter()
            .any(|c| matches!(c, Choice::Torn { .. })));
    }

    #[test]
    fn an_older_version_may_land_last() {
        let w = window();
        let s = w.states(16, 1);
        assert!(s
            .iter()
            .any(|st| st.choices.first() == Some(&Choice::Version(0))));
    }

    #[test]
    fn large_windows_are_sampled_with_both_extremes() {
        let w = Window {
            bs: 512,
            blocks: (0..20)
                .map(|b| Touched {
                    block: b,
                    durable: vec![0; 512],
                    versions: vec![vec![1; 512]],
                })
                .collect(),
        };
        let s = w.states(6, 5);
        assert_eq!(s.len(), 6);
        assert!(s[0].is_keep());
        assert!(s[1].choices.iter().all(|c| *c == Choice::Durable));
        assert_eq!(s, w.states(6, 5), "deterministic");
    }

    #[test]
    fn a_torn_block_mixes_version_and_durable_at_sector_granularity() {
        let w = window();
        let st = CrashState {
            choices: vec![
                Choice::Torn {
                    version: 1,
                    units: 1,
                },
                Choice::Keep,
            ],
        };
        let writes = st.writes(&w);
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].0, 3);
        let u = tear_unit(512);
        assert!(writes[0].1[..u].iter().all(|b| *b == 2));
        assert!(writes[0].1[u..].iter().all(|b| *b == 0));
        let w2 = Window {
            bs: 1024,
            blocks: vec![Touched {
                block: 0,
                durable: vec![0; 1024],
                versions: vec![vec![5; 1024]],
            }],
        };
        let st = CrashState {
            choices: vec![Choice::Torn {
                version: 0,
                units: 1,
            }],
        };
        let d = &st.writes(&w2)[0].1;
        let u = tear_unit(1024);
        assert!(u < 1024);
        assert!(d[..u].iter().all(|b| *b == 5) && d[u..].iter().all(|b| *b == 0));
    }
}
