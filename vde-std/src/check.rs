//! The image checker behind `vde check`, and its repair.
//!
//! [`check_device`] verifies an image without writing to it (give it an
//! [`OverlayDevice`]): both superblock copies and both WAL headers as they are on disk, then a
//! mount (which replays any committed WAL transaction into the overlay, so the rest is checked
//! as the next real mount would see it), then the full [`scan`](crate::scan::scan) of every
//! structure and cross-check, and finally the mounted volume's own figures against the scan's.
//!
//! [`repair_path`] fixes what can be fixed safely: it mounts the image for real (replaying
//! committed transactions and rewriting a damaged WAL header copy), unmounts it, rewrites a
//! damaged or stale superblock copy from the good one, and then repairs the objects
//! ([`crate::repair`]): damaged objects are dropped, the object counters recomputed from what
//! is found, and leaked blocks freed. It never guesses at lost metadata: a damaged bitmap,
//! region directory or slot index is reported, not rebuilt.

use std::io;
use std::path::Path;

use vde_nostd::format::layout::{WAL_HDR_A, WAL_HDR_B};
use vde_nostd::verifier::{self, Flow};
use vde_nostd::wal::RecoveryReport;
use vde_nostd::{BlockDevice, Volume};

use crate::error::{engine_message, Result};
use crate::scan::{
    self, best_superblock, read_superblocks, superblock_problem, Depth, Finding, Scan,
};
use crate::{FileDevice, OverlayDevice, OwnedBuffers, TX_BLOCKS};

/// The outcome of a check.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Problems found.
    pub findings: Vec<Finding>,
    /// Observations that are not problems.
    pub notes: Vec<String>,
    /// What WAL recovery did (in the overlay), if the volume mounted.
    pub recovery: Option<RecoveryReport>,
    /// Whether the volume mounted.
    pub mounted: bool,
    /// The scan (structures, counts, objects found).
    pub scan: Scan,
}

impl CheckReport {
    /// Whether no problem was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Checks the image on `dev` (see the module documentation). `dev` is written to by WAL
/// recovery, so pass an [`OverlayDevice`] to leave the image untouched.
pub fn check_device<D: BlockDevice<Error = io::Error>>(
    dev: &mut D,
    progress: &mut dyn FnMut(u64, u64),
) -> io::Result<CheckReport> {
    let bs = dev.block_size();
    let n = dev.block_count();
    let mut r = CheckReport::default();
    // 1. Superblocks and WAL headers as they are on disk.
    let copies = read_superblocks(dev)?;
    let best = best_superblock(&copies, bs, n);
    let names = [
        "primary superblock (block 0)",
        "mirror superblock (block 1)",
    ];
    for (c, name) in copies.iter().zip(names) {
        if let Some(why) = superblock_problem(c, bs, n) {
            let f = Finding::new("superblock", format!("{name}: {why}"));
            r.findings
                .push(if best.is_some() { f.repairable() } else { f });
        }
    }
    if let [Ok(a), Ok(b)] = &copies {
        if a != b
            && superblock_problem(&copies[0], bs, n).is_none()
            && superblock_problem(&copies[1], bs, n).is_none()
        {
            let f = Finding::new(
                "superblock",
                format!(
                    "the copies differ (sequence {} and {})",
                    a.sequence, b.sequence
                ),
            );
            r.findings.push(f.repairable());
        }
    }
    if let Some((_, layout)) = best {
        // The rules are the core's (`vde_nostd::verifier`), every broken one reported; a copy
        // mount may not use is repairable while the other one is usable. Neither usable is
        // told by the mount.
        let mut buf = vec![0u8; bs];
        let mut found = Vec::new();
        let mut usable = [None, None];
        for (h, (blk, b)) in usable
            .iter_mut()
            .zip([(WAL_HDR_A, false), (WAL_HDR_B, true)])
        {
            dev.read_block(blk, &mut buf)?;
            *h = verifier::wal_header(&buf, b, &layout, &mut |f| {
                found.push(f);
                Flow::Continue
            });
        }
        let chosen = verifier::wal_choice(usable[0], usable[1], &mut |_| Flow::Continue);
        for f in found {
            let f = Finding::new("wal", f.to_string());
            r.findings
                .push(if chosen.is_some() { f.repairable() } else { f });
        }
    }
    // 2. Mount: WAL recovery into `dev`, and the engine's own validation.
    let mut mounted_figures = None;
    {
        let mut mem = OwnedBuffers::for_device(dev);
        match Volume::<&mut D, TX_BLOCKS>::mount(&mut *dev, mem.bufs()) {
            Ok(mut vol) => {
                r.mounted = true;
                let rep = vol.recovery_report();
                r.recovery = Some(rep);
                if rep.replayed > 0 {
                    r.findings.push(
                        Finding::new(
                            "wal",
                            format!(
                                "{} committed transaction(s) not yet applied in place (replayed in memory for this check)",
                                rep.replayed
                            ),
                        )
                        .repairable(),
                    );
                }
                if rep.discarded_tail {
                    r.notes.push(
                        "the log ends in a torn or uncommitted transaction, which is ignored"
                            .into(),
                    );
                }
                if let Err(e) = vol.verify_names() {
                    r.findings.push(Finding::new(
                        "names",
                        format!("the name table is damaged: {}", engine_message(&e)),
                    ));
                }
                let free = vol.usage().free_blocks;
                let shared = vol.object_stats().ok().map(|s| s.shared_blocks);
                mounted_figures = Some((free, shared));
            }
            Err(e) => {
                r.findings.push(Finding::new(
                    "mount",
                    format!("the volume does not mount: {}", engine_message(&e.into())),
                ));
            }
        }
    }
    // 3. Every structure, post-recovery. The object repair needs a volume that mounts.
    r.scan = scan::scan(dev, Depth::Payloads, progress)?;
    let first = r.findings.len();
    r.findings.extend(r.scan.findings.iter().cloned());
    if !r.mounted {
        scan::unfixable(r.findings.get_mut(first..).unwrap_or_default());
    }
    r.notes.extend(r.scan.notes.iter().cloned());
    // 4. The engine's figures against the scan's.
    if let Some((free, shared)) = mounted_figures {
        if r.scan.bitmap.all_valid() && free != r.scan.free_blocks {
            r.findings.push(Finding::new(
                "bitmap",
                format!(
                    "the volume counts {free} free blocks, the bitmap holds {}",
                    r.scan.free_blocks
                ),
            ));
        }
        if let Some(s) = shared {
            if s != r.scan.shared.len() as u64 {
                r.findings.push(Finding::new(
                    "slot-index",
                    format!(
                        "the volume tracks {s} shared blocks, the scan accepted {}",
                        r.scan.shared.len()
                    ),
                ));
            }
        }
    }
    // The same structure may be reported by the scan and by an earlier step.
    let mut seen = std::collections::HashSet::new();
    r.findings
        .retain(|f| seen.insert((f.area, f.message.clone())));
    Ok(r)
}

/// Checks the image at `path` without modifying it (read-only, shared lock, overlay).
pub fn check_path(path: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<CheckReport> {
    let mut dev = OverlayDevice::open(path)?;
    Ok(check_device(&mut dev, progress)?)
}

/// The outcome of a repair.
#[derive(Debug, Clone, Default)]
pub struct RepairReport {
    /// The check before repairing.
    pub before: CheckReport,
    /// What was done, one line each.
    pub actions: Vec<String>,
    /// The check after repairing.
    pub after: CheckReport,
}

/// Repairs the image at `path` (see the module documentation): exclusive lock, check, WAL
/// replay through a real mount, superblock copy rewrite, check again.
pub fn repair_path(path: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<RepairReport> {
    let dev = FileDevice::open(path)?;
    let mut ov = OverlayDevice::new(dev);
    let before = check_device(&mut ov, progress)?;
    let mut dev = ov.into_inner();
    let mut actions = Vec::new();
    if !before.is_clean() && before.findings.iter().any(|f| f.repairable) {
        let wal_damaged = before
            .findings
            .iter()
            .any(|f| f.area == "wal" && f.message.starts_with("WAL header"));
        repair_device(&mut dev, wal_damaged, &mut actions)?;
        // The check ran after WAL recovery (into its overlay), so its scan is what the image
        // now holds: the WAL replay and the superblock rewrite change no object structure.
        let plan = if before.mounted {
            crate::repair::plan(&before.scan, |b, buf| {
                dev.read_block(vde_nostd::BlockNo(b), buf)
            })?
        } else {
            None
        };
        if let Some(plan) = plan {
            crate::repair::apply(&mut dev, &plan, &mut actions)?;
        }
    }
    let mut ov = OverlayDevice::new(dev);
    let after = check_device(&mut ov, &mut |_, _| {})?;
    Ok(RepairReport {
        before,
        actions,
        after,
    })
}

fn repair_device(dev: &mut FileDevice, wal_damaged: bool, actions: &mut Vec<String>) -> Result<()> {
    let bs = dev.block_size();
    let n = dev.block_count();
    let before = read_superblocks(dev)?;
    {
        let mut mem = OwnedBuffers::for_device(dev);
        let vol = match Volume::<&mut FileDevice, TX_BLOCKS>::mount(&mut *dev, mem.bufs()) {
            Ok(v) => v,
            Err(e) => {
                actions.push(format!(
                    "nothing repaired: the volume does not mount ({})",
                    engine_message(&e.into())
                ));
                return Ok(());
            }
        };
        let rep = vol.recovery_report();
        if rep.replayed > 0 {
            actions.push(format!(
                "replayed {} committed WAL transaction(s) in place",
                rep.replayed
            ));
        }
        vol.unmount()?;
        if wal_damaged {
            // Recovery's checkpoint writes the copy that is not the newest valid one.
            actions.push("rewrote the damaged WAL header copy".into());
        }
    }
    // The mount may have rewritten a damaged copy itself; rewrite whatever is still damaged or
    // stale from the newest good copy, one copy per flush.
    let copies = read_superblocks(dev)?;
    let Some((sb, _)) = best_superblock(&copies, bs, n) else {
        return Ok(());
    };
    let mut buf = vec![0u8; bs];
    if sb.encode(&mut buf).is_none() {
        return Ok(());
    }
    let names = ["primary", "mirror"];
    for (i, ((now, was), name)) in copies.iter().zip(before.iter()).zip(names).enumerate() {
        let good_before = was.as_ref().ok() == Some(&sb);
        if now.as_ref().ok() != Some(&sb) {
            dev.write_block(vde_nostd::BlockNo(i as u64), &buf)?;
            dev.flush()?;
        } else if good_before {
            continue;
        }
        actions.push(format!("rewrote the {name} superblock from the good copy"));
    }
    Ok(())
}
