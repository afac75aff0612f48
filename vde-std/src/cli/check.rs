//! `vde check [--repair]`: print what the checker found, exit 1 when there are problems.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use serde_json::{json, Value};
use vde_nostd::modules;
use vde_std::check::{check_path, repair_path, CheckReport, RepairReport};
use vde_std::scan::Finding;
use vde_std::Error;

use super::util::{bar, img_err, opening, LockWait};
use super::CliResult;

/// `vde check`.
pub fn check(image: &Path, repair: bool, json: bool, wait: LockWait) -> CliResult {
    let geometry_blocks = vde_std::FileDevice::probe(image)
        .map(|g| g.block_count)
        .unwrap_or(0);
    let pb = bar(
        geometry_blocks,
        if repair { "repairing" } else { "checking" },
    );
    let mut progress = |done: u64, _total: u64| pb.set_position(done);
    // Both open the image first and do nothing before: a held lock is simply tried again.
    let result = opening(image, wait, || {
        if repair {
            repair_path(image, &mut progress).map(|r| Outcome::Repair(Box::new(r)))
        } else {
            check_path(image, &mut progress).map(|r| Outcome::Check(Box::new(r)))
        }
    });
    pb.finish_and_clear();
    let outcome = match result {
        Ok(o) => o,
        // Damage that stops the image from opening at all is a finding, not a usage error.
        Err(e @ (Error::Truncated { .. } | Error::Engine(_))) => {
            let f = Finding {
                area: "image",
                message: e.to_string(),
                repairable: false,
            };
            Outcome::Fatal(f)
        }
        Err(e) => return Err(img_err(image)(e)),
    };
    let clean = outcome.clean();
    if json {
        outln!("{:#}", outcome.json(image));
    } else {
        out!("{}", outcome.text(image));
    }
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

enum Outcome {
    Check(Box<CheckReport>),
    Repair(Box<RepairReport>),
    Fatal(Finding),
}

impl Outcome {
    fn final_report(&self) -> Option<&CheckReport> {
        match self {
            Outcome::Check(r) => Some(r),
            Outcome::Repair(r) => Some(&r.after),
            Outcome::Fatal(_) => None,
        }
    }

    fn clean(&self) -> bool {
        self.final_report().is_some_and(|r| r.is_clean())
    }

    fn text(&self, image: &Path) -> String {
        let mut o = String::new();
        match self {
            Outcome::Fatal(f) => {
                let _ = writeln!(o, "{}: cannot be opened", image.display());
                let _ = writeln!(o, "problem: {f}");
                let _ = writeln!(o, "1 problem found");
                return o;
            }
            Outcome::Repair(r) => {
                let _ = writeln!(o, "before repair: {} problem(s)", r.before.findings.len());
                for f in &r.before.findings {
                    let _ = writeln!(o, "  problem: {f}");
                }
                if r.actions.is_empty() {
                    if r.before.is_clean() {
                        let _ = writeln!(o, "nothing to repair");
                    } else {
                        let _ = writeln!(
                            o,
                            "nothing can be repaired safely: these problems need a backup"
                        );
                    }
                }
                for a in &r.actions {
                    let _ = writeln!(o, "repaired: {a}");
                }
                let _ = writeln!(o, "after repair:");
            }
            Outcome::Check(_) => {}
        }
        let Some(r) = self.final_report() else {
            return o;
        };
        summary(&mut o, image, r);
        for n in &r.notes {
            let _ = writeln!(o, "note: {n}");
        }
        for f in &r.findings {
            let _ = writeln!(o, "problem: {f}");
        }
        if r.is_clean() {
            let _ = writeln!(o, "clean: no problems found");
        } else {
            let fixable = r.findings.iter().filter(|f| f.repairable).count();
            let _ = write!(o, "{} problem(s) found", r.findings.len());
            if fixable > 0 && matches!(self, Outcome::Check(_)) {
                let _ = write!(
                    o,
                    "; {fixable} can be fixed with 'vde check --repair {}'",
                    image.display()
                );
            }
            let _ = writeln!(o);
        }
        o
    }

    fn json(&self, image: &Path) -> Value {
        let findings = |fs: &[Finding]| -> Vec<Value> {
            fs.iter()
                .map(|f| json!({"area": f.area, "message": f.message, "repairable": f.repairable}))
                .collect()
        };
        let mut v = match self.final_report() {
            Some(r) => report_json(r, &findings(&r.findings)),
            None => serde_json::Map::new(),
        };
        v.insert("image".into(), json!(image.display().to_string()));
        v.insert("clean".into(), json!(self.clean()));
        match self {
            Outcome::Fatal(f) => {
                v.insert("problems".into(), json!(findings(std::slice::from_ref(f))));
            }
            Outcome::Repair(r) => {
                let repair = json!({
                    "before": findings(&r.before.findings),
                    "actions": r.actions,
                });
                v.insert("repair".into(), repair);
            }
            Outcome::Check(_) => {}
        }
        Value::Object(v)
    }
}

fn report_json(r: &CheckReport, problems: &[Value]) -> serde_json::Map<String, Value> {
    let s = &r.scan;
    let l = s.layout;
    let v = json!({
        "mounted": r.mounted,
        "replayed_in_memory": r.recovery.map(|x| x.replayed),
        "problems": problems,
        "notes": r.notes,
        "stats": {
            "block_size": l.map(|l| l.block_size),
            "block_count": l.map(|l| l.block_count),
            "metadata_blocks": l.map(|l| l.data_start),
            "bitmap_blocks": l.map(|l| l.bitmap_blocks),
            "regions": s.regions.len(),
            "region_blocks": s.regions.iter().map(|e| e.extent.len).sum::<u64>(),
            "shared_blocks": s.shared.len(),
            "packed_objects": s.packed.objects,
            "extent_objects": s.extents.len(),
            "extent_blocks": s.extents.iter().map(|e| e.blocks).sum::<u64>(),
            "unaccounted_blocks": s.unaccounted.len(),
            "free_blocks": s.free_blocks,
            "unknown_blocks": s.unknown_blocks,
        },
    });
    match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

fn summary(o: &mut String, image: &Path, r: &CheckReport) {
    let s = &r.scan;
    let Some(l) = s.layout else {
        let _ = writeln!(o, "{}: no usable superblock", image.display());
        return;
    };
    let mods: Vec<&str> = modules::CATALOGUE
        .iter()
        .filter(|m| {
            s.superblock
                .is_some_and(|sb| sb.manifest & m.flag().bits() != 0)
        })
        .map(|m| m.name)
        .collect();
    let _ = writeln!(
        o,
        "{}: {} blocks x {} bytes, modules: {}",
        image.display(),
        l.block_count,
        l.block_size,
        if mods.is_empty() {
            "none".into()
        } else {
            mods.join(", ")
        }
    );
    let ext_blocks: u64 = s.extents.iter().map(|e| e.blocks).sum();
    let _ = writeln!(
        o,
        "checked: 2 superblocks, 2 WAL headers, {} bitmap block(s), region directory and pointer table ({} region(s)), slot index ({} shared block(s))",
        l.bitmap_blocks,
        s.regions.len(),
        s.shared.len()
    );
    let _ = writeln!(
        o,
        "objects: {} packed and {} in extents found, their checksums verified",
        s.packed.objects,
        s.extents.len()
    );
    let region_blocks: u64 = s.regions.iter().map(|e| e.extent.len).sum();
    let _ = write!(
        o,
        "blocks:  {} metadata, {} regions, {} shared, {} extents, {} other, {} free",
        l.data_start,
        region_blocks,
        s.shared.len(),
        ext_blocks,
        s.unaccounted.len(),
        s.free_blocks
    );
    if s.unknown_blocks > 0 {
        let _ = write!(o, ", {} unknown (bitmap damaged)", s.unknown_blocks);
    }
    let _ = writeln!(o);
    match r.recovery {
        Some(rep) if rep.replayed > 0 => {}
        Some(_) => {
            let _ = writeln!(o, "WAL:     clean");
        }
        None => {}
    }
}
