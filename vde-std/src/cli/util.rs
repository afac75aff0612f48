//! Helpers shared by the subcommands: opening and mounting images, error lines, sizes, dates and
//! progress bars.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use vde_nostd::Volume;
use vde_std::error::CoreError;
use vde_std::{Error, FileDevice, FileVolume, OverlayDevice, OwnedBuffers, TX_BLOCKS};

use super::{CliError, CliResult};

/// A volume mounted read-only through an overlay.
pub type ReadVolume<'b> = Volume<'b, OverlayDevice, TX_BLOCKS>;

/// Turns a library error about `image` into an error line.
pub fn img_err(image: &Path) -> impl Fn(Error) -> CliError + '_ {
    move |e| match e {
        Error::Open { .. } => CliError::new(e.to_string()),
        Error::Exists(p) => CliError::new(format!(
            "{} already exists (use --force to overwrite it)",
            p.display()
        )),
        other => CliError::new(format!("{}: {other}", image.display())),
    }
}

/// Turns a core error about `image` (the umbrella one, or a mount's) into an error line.
pub fn core_err<T: Into<CoreError>>(image: &Path) -> impl Fn(T) -> CliError + '_ {
    move |e| img_err(image)(Error::from(e.into()))
}

/// What a command does when another process holds the image's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Wait for the lock, saying so once on standard error (the default).
    Wait,
    /// Fail at once with "image is in use by another process" (`--no-wait`).
    Fail,
}

/// The longest pause between two tries for a held lock.
const LOCK_POLL_MAX: Duration = Duration::from_millis(100);

/// Runs `open` (which opens `image`, taking its lock, and does nothing before that) until it
/// does not fail with [`Error::Locked`]: at once with [`LockWait::Fail`], otherwise after
/// printing `waiting for the lock on IMAGE` once and trying again every few milliseconds (up to
/// [`LOCK_POLL_MAX`] apart), as long as the lock is held.
pub fn opening<T>(
    image: &Path,
    wait: LockWait,
    mut open: impl FnMut() -> Result<T, Error>,
) -> Result<T, Error> {
    let mut pause = Duration::from_millis(2);
    let mut said = false;
    loop {
        match open() {
            Err(Error::Locked) if wait == LockWait::Wait => {
                if !said {
                    eprintln!(
                        "waiting for the lock on {} (another process is using it; --no-wait \
                         fails instead)",
                        image.display()
                    );
                    said = true;
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(LOCK_POLL_MAX);
            }
            r => return r,
        }
    }
}

/// Opens `image` for writing (exclusive lock, waiting for it as `wait` says), mounts it (WAL
/// recovery), runs `f`, unmounts.
pub fn with_rw<R>(
    image: &Path,
    wait: LockWait,
    f: impl FnOnce(&mut FileVolume<'_>) -> CliResult<R>,
) -> CliResult<R> {
    let dev = opening(image, wait, || FileDevice::open(image)).map_err(img_err(image))?;
    let mut mem = OwnedBuffers::for_device(&dev);
    let mut vol = FileVolume::mount(dev, mem.bufs()).map_err(core_err(image))?;
    let r = f(&mut vol);
    let u = vol.unmount().map_err(core_err(image));
    let r = r?;
    u?;
    Ok(r)
}

/// Opens `image` read-only (shared lock, waiting for it as `wait` says) under an overlay, mounts
/// it (recovery happens in memory only), runs `f`. The file is never written.
pub fn with_ro<R>(
    image: &Path,
    wait: LockWait,
    f: impl FnOnce(&mut ReadVolume<'_>) -> CliResult<R>,
) -> CliResult<R> {
    let dev = opening(image, wait, || OverlayDevice::open(image)).map_err(img_err(image))?;
    let mut mem = OwnedBuffers::for_device(&dev);
    let mut vol = ReadVolume::mount(dev, mem.bufs()).map_err(core_err(image))?;
    f(&mut vol)
}

/// Parses a size: a number (decimals allowed) with an optional unit. Binary units: K, KiB, M,
/// MiB, G, GiB, T, TiB; decimal: KB, MB, GB, TB; B or nothing for bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u128 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "unknown unit '{}' (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)",
                unit.trim()
            ))
        }
    };
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    if whole.is_empty() && frac.is_empty() {
        return Err(format!("'{s}' is not a size (e.g. 64MiB)"));
    }
    let parse = |x: &str| -> Result<u128, String> {
        if x.is_empty() {
            Ok(0)
        } else {
            x.parse::<u128>()
                .map_err(|_| format!("'{s}' is not a size (e.g. 64MiB)"))
        }
    };
    let frac = frac.get(..frac.len().min(18)).unwrap_or("");
    let scale = 10u128.pow(frac.len() as u32);
    let value = parse(whole)?
        .checked_mul(scale)
        .and_then(|v| v.checked_add(parse(frac).ok()?))
        .and_then(|v| v.checked_mul(mult))
        .map(|v| v / scale)
        .ok_or_else(|| format!("'{s}' is too large"))?;
    u64::try_from(value).map_err(|_| format!("'{s}' is too large"))
}

/// `bytes` in binary units with one decimal ("64.0 MiB").
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    let unit = UNITS.get(u).copied().unwrap_or("B");
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {unit}")
    }
}

/// A UNIX time as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (H. Hinnant), valid for the whole u64 range divided into days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// A progress bar over `len` blocks on stderr, or a hidden one when stderr is not a terminal.
pub fn bar(len: u64, msg: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:10} [{bar:40}] {pos}/{len} blocks ({eta})")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(msg);
    pb
}

/// A spinner on stderr for work of unknown length, or a hidden one off a terminal.
pub fn spinner(msg: String) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    pb.set_message(msg);
    pb.enable_steady_tick(std::time::Duration::from_millis(100));
    pb
}

/// Writes `text` to standard output. A closed pipe (`vde info IMAGE | head`) ends the output
/// quietly, as for any Unix tool; other write errors are errors.
pub fn out(text: &str) -> CliResult<()> {
    out_bytes(text.as_bytes())
}

/// [`out()`] for bytes.
pub fn out_bytes(data: &[u8]) -> CliResult<()> {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    match o.write_all(data).and_then(|()| o.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::new(format!(
            "writing standard output: {}",
            vde_std::error::io_message(&e)
        ))),
    }
}

/// The 16-digit hex form of a volume id.
pub fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("2 KB"), Ok(2000));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("12XB").is_err());
        assert!(parse_size("99999999999999999999TiB").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size(".").is_err());
    }

    #[test]
    fn dates_and_sizes_print() {
        assert_eq!(date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(date(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(date(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(human(512), "512 B");
        assert_eq!(human(64 << 20), "64.0 MiB");
        let _ = date(u64::MAX);
    }
}
