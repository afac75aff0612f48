//! `vde put`, `vde get` and `vde rm`: objects in and out of an image.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use vde_nostd::Handle;
use vde_std::error::{io_message, CoreError};

use super::util::{core_err, with_ro, with_rw, LockWait};
use super::{CliError, CliResult};

fn parse_handle(text: &str) -> CliResult<Handle> {
    Handle::parse(text.trim()).ok_or_else(|| {
        CliError::new(format!(
            "bad handle '{text}': expected 16 hexadecimal digits as printed by 'vde put'"
        ))
    })
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
pub fn put(image: &Path, file: Option<&Path>, wait: LockWait) -> CliResult {
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
        vol.put(&data).map_err(|e| match e {
            vde_nostd::Error::ObjectTooLarge => too_large(image, data.len() as u64, limit),
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
pub fn get(image: &Path, handle: &str, output: Option<&Path>, wait: LockWait) -> CliResult {
    let h = parse_handle(handle)?;
    let data = with_ro(image, wait, |vol| {
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
pub fn rm(image: &Path, handle: &str, wait: LockWait) -> CliResult {
    let h = parse_handle(handle)?;
    with_rw(image, wait, |vol| vol.delete(h).map_err(object_err(image)))?;
    outln!("removed {h}");
    Ok(ExitCode::SUCCESS)
}
