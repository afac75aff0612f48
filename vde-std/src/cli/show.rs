//! `vde format`, `vde info`, `vde modules` and `vde add-module`: creating an image and showing
//! what is in it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{json, Value};
use vde_nostd::format::layout::Layout;
use vde_nostd::format::regions::{RegionEntry, RegionKind};
use vde_nostd::format::superblock::Superblock;
use vde_nostd::modules::{self, ModuleSet};
use vde_nostd::subblock::CLASSES;
use vde_nostd::volume::Usage;
use vde_nostd::wal::RecoveryReport;
use vde_nostd::{BlockDevice, FormatOptions, ObjectStats, Volume};
use vde_std::{FileDevice, FileVolume, OwnedBuffers, TX_BLOCKS};

use super::util::{self, core_err, date, hex, human, img_err, with_ro, with_rw, LockWait};
use super::{CliError, CliResult};

/// Everything `info` shows, gathered from a mounted volume.
pub struct Info {
    sb: Superblock,
    layout: Layout,
    regions: Vec<RegionEntry>,
    modules: ModuleSet,
    usage: Usage,
    wal_epoch: u64,
    wal_checkpoint: u64,
    wal_last: u64,
    wal_used: u64,
    wal_capacity: u64,
    recovery: RecoveryReport,
    objects: Option<ObjectStats>,
}

impl Info {
    /// Reads it from `vol`.
    pub fn gather<D: BlockDevice>(
        vol: &mut Volume<'_, D, TX_BLOCKS>,
    ) -> Result<Info, vde_nostd::Error<D::Error>> {
        let mut regions = Vec::new();
        vol.for_each_region(|e| regions.push(*e))?;
        let objects = if vol.has_objects() {
            Some(vol.object_stats()?)
        } else {
            None
        };
        let wal = vol.wal();
        Ok(Info {
            sb: *vol.superblock(),
            layout: *vol.layout(),
            regions,
            modules: vol.modules(),
            usage: vol.usage(),
            wal_epoch: wal.epoch().0,
            wal_checkpoint: wal.checkpoint_seq().0,
            wal_last: wal.last_seq().0,
            wal_used: wal.used_blocks(),
            wal_capacity: wal.capacity_blocks(),
            recovery: vol.recovery_report(),
            objects,
        })
    }

    fn region_blocks(&self) -> u64 {
        self.regions.iter().map(|r| r.extent.len).sum()
    }

    fn module_names(&self) -> Vec<&'static str> {
        modules::CATALOGUE
            .iter()
            .filter(|m| self.modules.contains(m.flag()))
            .map(|m| m.name)
            .collect()
    }

    fn geometry_line(&self) -> String {
        let l = &self.layout;
        format!(
            "{} blocks x {} bytes = {}",
            l.block_count,
            l.block_size,
            human(l.block_count.saturating_mul(u64::from(l.block_size)))
        )
    }

    /// The layout and region table, as `format` and `info` print them.
    fn layout_text(&self, out: &mut String) {
        let l = &self.layout;
        let span = |a: u64, b: u64| {
            if b <= a + 1 {
                format!("{a}")
            } else {
                format!("{a}..{}", b - 1)
            }
        };
        let rows = [
            (span(0, 1), "superblock (primary)".to_string()),
            (span(1, 2), "superblock (mirror)".to_string()),
            (span(2, 4), "WAL headers A and B".to_string()),
            (
                span(l.wal_start, l.bitmap_start),
                format!("write-ahead log ({} blocks)", l.wal_blocks),
            ),
            (
                span(l.bitmap_start, l.regdir),
                format!("allocation bitmap ({} block(s))", l.bitmap_blocks),
            ),
            (span(l.regdir, l.rpt), "region directory".to_string()),
            (
                span(l.rpt, l.data_start),
                "region pointer table".to_string(),
            ),
            (
                span(l.data_start, l.block_count),
                format!("data area ({} blocks)", l.block_count - l.data_start),
            ),
        ];
        let _ = writeln!(out, "layout (block numbers):");
        for (r, what) in rows {
            let _ = writeln!(out, "  {r:<16} {what}");
        }
        if self.regions.is_empty() {
            let _ = writeln!(out, "regions: none");
            return;
        }
        let _ = writeln!(out, "regions:");
        let _ = writeln!(
            out,
            "  {:<12} {:<6} {:>12} {:>10}",
            "module", "kind", "start", "blocks"
        );
        for r in &self.regions {
            let name = modules::by_bit(r.module).map_or("?", |m| m.name);
            let _ = writeln!(
                out,
                "  {:<12} {:<6} {:>12} {:>10}",
                name,
                kind_name(r.kind),
                r.extent.start.0,
                r.extent.len
            );
        }
    }

    fn text(&self, image: &Path) -> String {
        let mut o = String::new();
        let sb = &self.sb;
        let names = self.module_names();
        let _ = writeln!(o, "image:      {}", image.display());
        let _ = writeln!(o, "geometry:   {}", self.geometry_line());
        let _ = writeln!(o, "volume id:  {}", hex(&sb.volume_id));
        let _ = writeln!(o, "created:    {}", date(sb.created));
        let _ = writeln!(o, "modified:   {}", date(sb.modified));
        let _ = writeln!(
            o,
            "modules:    {} (inode size {} bytes)",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            },
            sb.inode_size
        );
        self.layout_text(&mut o);
        let state = if self.recovery.replayed > 0 {
            format!(
                "{} committed transaction(s) were pending; replayed in memory only (run 'vde check --repair' to apply them)",
                self.recovery.replayed
            )
        } else {
            "clean (nothing to replay)".to_string()
        };
        let _ = writeln!(
            o,
            "WAL:        {} of {} blocks in use, epoch {}, last transaction {}, checkpointed through {}",
            self.wal_used, self.wal_capacity, self.wal_epoch, self.wal_last, self.wal_checkpoint
        );
        let _ = writeln!(o, "            {state}");
        let u = &self.usage;
        let regions = self.region_blocks();
        let data = u
            .total_blocks
            .saturating_sub(u.metadata_blocks)
            .saturating_sub(regions)
            .saturating_sub(u.free_blocks);
        let pct = |x: u64| 100.0 * x as f64 / u.total_blocks.max(1) as f64;
        let bs = u64::from(self.layout.block_size);
        let _ = writeln!(
            o,
            "usage:      {} metadata + {} in regions + {} data = {} used, {} free ({:.1}% free, {})",
            u.metadata_blocks,
            regions,
            data,
            u.total_blocks - u.free_blocks,
            u.free_blocks,
            pct(u.free_blocks),
            human(u.free_blocks.saturating_mul(bs))
        );
        match &self.objects {
            None => {
                let _ = writeln!(
                    o,
                    "objects:    no 'objects' module (vde add-module IMAGE objects)"
                );
            }
            Some(s) => {
                let c = &s.counters;
                let packed: u64 = c.per_class.iter().sum();
                let _ = writeln!(
                    o,
                    "objects:    {} object(s), {} of payload",
                    c.objects,
                    human(c.bytes)
                );
                let classes: Vec<String> = CLASSES
                    .iter()
                    .zip(c.per_class.iter())
                    .filter(|(_, n)| **n > 0)
                    .map(|(size, n)| format!("{size} B: {n}"))
                    .collect();
                let used_units = s
                    .shared_blocks
                    .saturating_mul(s.units_per_block)
                    .saturating_sub(s.free_units);
                let _ = writeln!(
                    o,
                    "  packed:   {packed} in {} shared block(s), {}/{} slot units used{}",
                    s.shared_blocks,
                    used_units,
                    s.shared_blocks.saturating_mul(s.units_per_block),
                    if classes.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", classes.join(", "))
                    }
                );
                let _ = writeln!(
                    o,
                    "  extents:  {} in {} whole block(s)",
                    c.extent_objects, c.extent_blocks
                );
                let _ = writeln!(
                    o,
                    "  index:    room for {} more shared block(s)",
                    s.index_room
                );
            }
        }
        o
    }

    fn json(&self, image: &Path) -> Value {
        let l = &self.layout;
        let sb = &self.sb;
        let regions: Vec<Value> = self
            .regions
            .iter()
            .map(|r| {
                json!({
                    "module": modules::by_bit(r.module).map_or("?", |m| m.name),
                    "bit": r.module,
                    "kind": kind_name(r.kind),
                    "index": r.index,
                    "start": r.extent.start.0,
                    "blocks": r.extent.len,
                })
            })
            .collect();
        let objects = self.objects.map(|s| {
            let c = s.counters;
            json!({
                "objects": c.objects,
                "bytes": c.bytes,
                "packed_per_class": CLASSES.iter().zip(c.per_class.iter())
                    .map(|(size, n)| json!({"class": size, "objects": n})).collect::<Vec<_>>(),
                "extent_objects": c.extent_objects,
                "extent_blocks": c.extent_blocks,
                "shared_blocks": s.shared_blocks,
                "free_units": s.free_units,
                "units_per_block": s.units_per_block,
                "index_room": s.index_room,
            })
        });
        json!({
            "image": image.display().to_string(),
            "block_size": l.block_size,
            "block_count": l.block_count,
            "bytes": l.block_count.saturating_mul(u64::from(l.block_size)),
            "volume_id": hex(&sb.volume_id),
            "created": sb.created,
            "modified": sb.modified,
            "superblock_sequence": sb.sequence,
            "inode_size": sb.inode_size,
            "modules": self.module_names(),
            "layout": {
                "superblocks": [0, 1],
                "wal_headers": [2, 3],
                "wal_start": l.wal_start,
                "wal_blocks": l.wal_blocks,
                "bitmap_start": l.bitmap_start,
                "bitmap_blocks": l.bitmap_blocks,
                "region_directory": l.regdir,
                "region_pointer_table": l.rpt,
                "data_start": l.data_start,
            },
            "regions": regions,
            "wal": {
                "epoch": self.wal_epoch,
                "checkpoint_seq": self.wal_checkpoint,
                "last_seq": self.wal_last,
                "used_blocks": self.wal_used,
                "capacity_blocks": self.wal_capacity,
                "pending_replayed_in_memory": self.recovery.replayed,
                "discarded_tail": self.recovery.discarded_tail,
            },
            "usage": {
                "total_blocks": self.usage.total_blocks,
                "metadata_blocks": self.usage.metadata_blocks,
                "region_blocks": self.region_blocks(),
                "free_blocks": self.usage.free_blocks,
                "used_blocks": self.usage.total_blocks.saturating_sub(self.usage.free_blocks),
            },
            "objects": objects,
        })
    }
}

fn kind_name(k: RegionKind) -> &'static str {
    match k {
        RegionKind::Small => "small",
        RegionKind::Large => "large",
    }
}

/// Arguments of `vde format`.
pub struct FormatArgs {
    pub image: PathBuf,
    pub size: u64,
    pub block_size: u64,
    pub wal_blocks: Option<u64>,
    pub modules: Vec<String>,
    pub no_objects: bool,
    pub force: bool,
}

fn lookup_module(name: &str) -> CliResult<&'static modules::Module> {
    modules::by_name(name).ok_or_else(|| {
        let known: Vec<&str> = modules::CATALOGUE.iter().map(|m| m.name).collect();
        CliError::new(format!(
            "unknown module '{name}' (known: {})",
            known.join(", ")
        ))
    })
}

/// `vde format`.
pub fn format(a: &FormatArgs) -> CliResult {
    let image = a.image.as_path();
    let mut set = if a.no_objects {
        ModuleSet::empty()
    } else {
        ModuleSet::OBJECTS
    };
    for name in &a.modules {
        set |= lookup_module(name)?.flag();
    }
    let bs = usize::try_from(a.block_size).unwrap_or(0);
    let existed = image.exists();
    let dev = FileDevice::create(image, a.size, bs, a.force).map_err(img_err(image))?;
    let g = dev.geometry();
    if let Some(w) = a.wal_blocks {
        let fits = Layout::compute(g.block_size, g.block_count, w)
            .is_some_and(|l| l.wal_blocks <= l.block_count / 2);
        if !fits {
            drop(dev);
            cleanup(image, existed);
            return Err(CliError::new(format!(
                "--wal-blocks {w} does not fit an image of {} blocks (at least 4, at most half the image)",
                g.block_count
            )));
        }
    }
    let pb = util::spinner(format!("formatting {}", image.display()));
    let opts = FormatOptions {
        wal_blocks: a.wal_blocks,
        volume_id: vde_std::new_volume_id(image),
        now: vde_std::now(),
        modules: set,
    };
    let mut mem = OwnedBuffers::for_device(&dev);
    let result = FileVolume::format(dev, &opts, mem.bufs()).and_then(|mut vol| {
        let info = Info::gather(&mut vol)?;
        vol.unmount()?;
        Ok(info)
    });
    pb.finish_and_clear();
    let info = match result {
        Ok(i) => i,
        Err(e) => {
            cleanup(image, existed);
            return Err(core_err(image)(e));
        }
    };
    let mut o = String::new();
    let _ = writeln!(o, "formatted {}: {}", image.display(), info.geometry_line());
    let names = info.module_names();
    let _ = writeln!(
        o,
        "modules: {}",
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    );
    info.layout_text(&mut o);
    let _ = writeln!(
        o,
        "free: {} blocks ({})",
        info.usage.free_blocks,
        human(info.usage.free_blocks.saturating_mul(g.block_size as u64))
    );
    out!("{o}");
    Ok(ExitCode::SUCCESS)
}

/// Removes a half-made image that did not exist before.
fn cleanup(image: &Path, existed: bool) {
    if !existed {
        let _ = std::fs::remove_file(image);
    }
}

/// `vde info`.
pub fn info(image: &Path, json: bool, wait: LockWait) -> CliResult {
    let info = with_ro(image, wait, |vol| {
        Info::gather(vol).map_err(core_err(image))
    })?;
    if json {
        outln!("{:#}", info.json(image));
    } else {
        out!("{}", info.text(image));
    }
    Ok(ExitCode::SUCCESS)
}

/// `vde modules`.
pub fn modules() -> CliResult {
    outln!(
        "{:<4} {:<12} {:<13} {:>6}  description",
        "bit",
        "name",
        "regions",
        "inode"
    );
    for m in modules::CATALOGUE {
        let regions: Vec<&str> = m.regions.iter().map(|k| kind_name(*k)).collect();
        outln!(
            "{:<4} {:<12} {:<13} {:>6}  {}",
            m.bit,
            m.name,
            regions.join("+"),
            format!("+{}", m.inode_bytes),
            m.description
        );
    }
    outln!("region sizes: small = max(64, blocks/1024), large = max(256, blocks/256), each at most blocks/16; objects adds its extent map (one bit per block)");
    Ok(ExitCode::SUCCESS)
}

/// `vde add-module`.
pub fn add_module(image: &Path, name: &str, wait: LockWait) -> CliResult {
    let m = lookup_module(name)?;
    let plan = with_rw(image, wait, |vol| {
        let err = |e| {
            let line = match e {
                vde_nostd::Error::ModuleAlreadyPresent => {
                    format!("{}: module '{name}' is already present", image.display())
                }
                vde_nostd::Error::NoSpace => format!(
                    "{}: image full: no room for the regions of module '{name}'",
                    image.display()
                ),
                other => return core_err(image)(other),
            };
            CliError::new(line)
        };
        vol.can_add_module(m).map_err(err)?;
        vol.add_module_regions(m, vde_std::now()).map_err(err)
    })?;
    outln!(
        "added module {} (one transaction); inode size now {} bytes",
        m.name,
        plan.inode_size
    );
    for (kind, e) in m.regions.iter().zip(plan.regions.iter()) {
        outln!(
            "  {} region: blocks {}..{} ({} blocks)",
            kind_name(*kind),
            e.start.0,
            e.start.0 + e.len.saturating_sub(1),
            e.len
        );
    }
    Ok(ExitCode::SUCCESS)
}
