//! `vde put`, `vde get`, `vde rm` and `vde ls`: objects in and out of an image, by handle or by
//! name.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use vde_nostd::format::names::key_ok;
use vde_nostd::{BlockDevice, Handle, Volume};
use vde_std::error::{io_message, CoreError};

use super::util::{core_err, with_ro, with_rw, LockWait};
use super::{CliError, CliResult};

/// The object a command-line target names: a name (looked up first, when the image has the
/// 'names' module), else a handle. Returns the handle and the name, if it was one.
fn resolve<D: BlockDevice<Error = std::io::Error>, const K: usize>(
    vol: &mut Volume<'_, D, K>,
    image: &Path,
    text: &str,
) -> CliResult<(Handle, Option<String>)> {
    let key = text.as_bytes();
    let is_key = key_ok(key);
    if vol.has_names() && is_key {
        if let Some(h) = vol.lookup(key).map_err(object_err(image))? {
            return Ok((h, Some(text.to_string())));
        }
    }
    if let Some(h) = Handle::parse(text.trim()) {
        return Ok((h, None));
    }
    Err(CliError::new(if !vol.has_names() {
        format!(
            "bad handle '{text}': expected 16 hexadecimal digits as printed by 'vde put' \
             (the image has no names: it has no 'names' module)"
        )
    } else if !is_key {
        format!("'{text}' is neither a handle nor a name (a name is 1 to 64 bytes)")
    } else {
        format!(
            "{}: no object is named '{text}' (and it is not a handle)",
            image.display()
        )
    }))
}

/// Adds a hint to the errors a user can act on.
fn object_err(image: &Path) -> impl Fn(CoreError) -> CliError + '_ {
    move |e| match e {
        vde_nostd::Error::ModuleMissing => CliError::new(format!(
            "{}: the image has no 'objects' module (add it with 'vde add-module {} objects')",
            image.display(),
            image.display()
        )),
        other => core_err(image)(other),
    }
}

/// `vde put`.
pub fn put(image: &Path, file: Option<&Path>, name: Option<&str>, wait: LockWait) -> CliResult {
    if let Some(n) = name {
        if !key_ok(n.as_bytes()) {
            return Err(CliError::new(format!(
                "bad name '{n}': a name is 1 to 64 bytes (this one is {})",
                n.len()
            )));
        }
    }
    let from_stdin = file.is_none_or(|p| p.as_os_str() == "-");
    let h = with_rw(image, wait, |vol| {
        // No object can be larger than the free space: never read more than that (the input
        // may be endless, like /dev/zero).
        let bs = vol.block_size() as u64;
        let limit = vol.usage().free_blocks.saturating_mul(bs);
        let data = match file {
            _ if from_stdin => {
                read_limited(std::io::stdin().lock(), image, "standard input", limit)?
            }
            Some(p) => {
                let name = p.display().to_string();
                let f = std::fs::File::open(p)
                    .map_err(|e| CliError::new(format!("{name}: {}", io_message(&e))))?;
                read_limited(f, image, &name, limit)?
            }
            None => Vec::new(),
        };
        let stored = match name {
            Some(n) => {
                if !vol.has_names() {
                    vol.enable_names(vde_std::now())
                        .map_err(object_err(image))?;
                    errln!("{}: added the 'names' module", image.display());
                }
                vol.store(n.as_bytes(), &data)
            }
            None => vol.put(&data),
        };
        stored.map_err(|e| match e {
            vde_nostd::Error::ObjectTooLarge => too_large(image, data.len() as u64, limit),
            vde_nostd::Error::NamesFull => CliError::new(format!(
                "{}: the name table is full: remove names ('vde rm') or store unnamed objects",
                image.display()
            )),
            other => object_err(image)(other),
        })
    })?;
    outln!("{h}");
    Ok(ExitCode::SUCCESS)
}

fn too_large(image: &Path, len: u64, limit: u64) -> CliError {
    CliError::new(format!(
        "{}: object too large: {len} bytes (the image has {limit} free bytes)",
        image.display()
    ))
}

/// Reads all of `r`, but at most `limit` bytes: more is an "image full" error.
fn read_limited(r: impl Read, image: &Path, name: &str, limit: u64) -> CliResult<Vec<u8>> {
    let mut data = Vec::new();
    r.take(limit.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(|e| CliError::new(format!("{name}: {}", io_message(&e))))?;
    if data.len() as u64 > limit {
        return Err(CliError::new(format!(
            "{}: image full: {name} holds more than the {limit} free bytes of the image",
            image.display()
        )));
    }
    Ok(data)
}

/// `vde get`.
pub fn get(image: &Path, target: &str, output: Option<&Path>, wait: LockWait) -> CliResult {
    let data = with_ro(image, wait, |vol| {
        let (h, _) = resolve(vol, image, target)?;
        let len = vol.object_len(h).map_err(object_err(image))?;
        let len = usize::try_from(len).map_err(|_| too_big(len))?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(len)
            .map_err(|_| too_big(len as u64))?;
        buf.resize(len, 0);
        let n = vol.get(h, &mut buf).map_err(object_err(image))?;
        buf.truncate(n);
        Ok(buf)
    })?;
    match output {
        Some(p) if p.as_os_str() != "-" => std::fs::write(p, &data)
            .map_err(|e| CliError::new(format!("{}: {}", p.display(), io_message(&e))))?,
        _ => super::util::out_bytes(&data)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn too_big(len: u64) -> CliError {
    CliError::new(format!("object of {len} bytes does not fit in memory"))
}

/// `vde rm`.
pub fn rm(image: &Path, target: &str, wait: LockWait) -> CliResult {
    let (h, name) = with_rw(image, wait, |vol| {
        let (h, name) = resolve(vol, image, target)?;
        vol.delete(h).map_err(object_err(image))?;
        Ok((h, name))
    })?;
    match name {
        Some(n) => outln!("removed {h} ({n})"),
        None => outln!("removed {h}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// One row of `vde ls`.
struct Row {
    name: Option<String>,
    info: vde_nostd::ObjectInfo,
}

/// `vde ls`.
pub fn ls(image: &Path, prefix: Option<&str>, json: bool, wait: LockWait) -> CliResult {
    let rows = with_ro(image, wait, |vol| {
        let mut named: Vec<(String, Handle)> = Vec::new();
        if vol.has_names() {
            vol.for_each_name(prefix.unwrap_or("").as_bytes(), |k, h| {
                named.push((String::from_utf8_lossy(k).into_owned(), h));
                true
            })
            .map_err(object_err(image))?;
        } else if prefix.is_some() {
            return Err(CliError::new(format!(
                "{}: the image has no names (no 'names' module), so no name has that prefix",
                image.display()
            )));
        }
        let mut all = std::collections::HashMap::new();
        vol.for_each_object(|o| {
            all.insert(o.handle.raw(), o);
            true
        })
        .map_err(object_err(image))?;
        let mut rows = Vec::new();
        for (name, h) in &named {
            let info = all.remove(&h.raw()).ok_or_else(|| {
                CliError::new(format!(
                    "{}: the name '{name}' points at {h}, which is not a live object \
                     (run 'vde check')",
                    image.display()
                ))
            })?;
            rows.push(Row {
                name: Some(name.clone()),
                info,
            });
        }
        if prefix.is_none() {
            let mut rest: Vec<vde_nostd::ObjectInfo> = all.into_values().collect();
            rest.sort_by_key(|o| o.handle.raw());
            rows.extend(rest.into_iter().map(|info| Row { name: None, info }));
        }
        Ok(rows)
    })?;
    let kind = |r: &Row| if r.info.packed { "packed" } else { "extent" };
    if json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.name,
                    "handle": r.info.handle.to_string(),
                    "size": r.info.len,
                    "kind": kind(r),
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    let width = rows
        .iter()
        .filter_map(|r| r.name.as_ref().map(|n| n.chars().count()))
        .max()
        .unwrap_or(0)
        .max(4);
    outln!("{:width$}  {:16}  {:>10}  KIND", "NAME", "HANDLE", "SIZE");
    for r in &rows {
        outln!(
            "{:width$}  {}  {:>10}  {}",
            r.name.as_deref().unwrap_or("-"),
            r.info.handle,
            r.info.len,
            kind(r)
        );
    }
    Ok(ExitCode::SUCCESS)
}
