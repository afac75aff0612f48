//! Argument parsing, dispatch and error reporting for the `vde` binary.

/// `println!` that returns an error instead of panicking (and stops quietly on a closed pipe).
macro_rules! outln {
    ($($t:tt)*) => {
        crate::cli::util::out(&format!("{}\n", format_args!($($t)*)))?
    };
}

/// `print!` likewise.
macro_rules! out {
    ($($t:tt)*) => {
        crate::cli::util::out(&format!($($t)*))?
    };
}

/// `eprintln!` that never panics (a closed stderr is ignored).
macro_rules! errln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

mod check;
mod map;
mod objects;
mod show;
mod util;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A failed command: one line for stderr and the exit status.
#[derive(Debug)]
pub struct CliError {
    msg: String,
    code: u8,
}

impl CliError {
    /// An error with exit status 2.
    pub fn new(msg: impl Into<String>) -> CliError {
        CliError {
            msg: msg.into(),
            code: 2,
        }
    }
}

/// What a command returns.
pub type CliResult<T = ExitCode> = Result<T, CliError>;

#[derive(Parser)]
#[command(
    name = "vde",
    version,
    about = "Create, inspect, check, fill and picture vde virtual disk images",
    long_about = "vde: a power-loss-safe virtual disk engine.\n\n\
        An image holds a volume: superblocks, a write-ahead log, an allocation bitmap, module \
        regions and objects (small ones packed into slots of shared blocks, large ones in runs \
        of whole blocks). Every change is one WAL transaction.",
    after_help = "Start with: vde format disk.img --size 64MiB"
)]
struct Cli {
    /// Fail at once if another process is using the image, instead of waiting for it.
    #[arg(long, global = true)]
    no_wait: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a new image and print its layout.
    Format {
        /// The image file to create.
        image: PathBuf,
        /// Image size: a number with an optional unit (B, KiB, MiB, GiB, TiB; KB, MB, GB, TB).
        #[arg(long, value_parser = util::parse_size)]
        size: u64,
        /// Block size in bytes: a power of two from 512 to 64KiB.
        #[arg(long, default_value = "4096", value_parser = util::parse_size)]
        block_size: u64,
        /// WAL length in blocks (default: 1/64 of the image, 8 to 256).
        #[arg(long)]
        wal_blocks: Option<u64>,
        /// Another module to add at format time (repeatable; see `vde modules`).
        #[arg(long = "module", value_name = "NAME")]
        modules: Vec<String>,
        /// Leave out the `objects` module (no put/get until it is added).
        #[arg(long)]
        no_objects: bool,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Show geometry, layout, regions, modules, WAL state, usage and object statistics.
    Info {
        /// The image.
        image: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Verify every checksum and cross-check the structures (read-only unless --repair).
    Check {
        /// The image.
        image: PathBuf,
        /// Replay committed WAL transactions and fix what can be fixed.
        #[arg(long)]
        repair: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the module catalogue.
    Modules,
    /// Add a module to an image (online, one transaction).
    AddModule {
        /// The image.
        image: PathBuf,
        /// The module name (see `vde modules`).
        name: String,
    },
    /// Store a file (or standard input) as an object and print its handle.
    Put {
        /// The image.
        image: PathBuf,
        /// The file to store; `-` or nothing for standard input.
        file: Option<PathBuf>,
        /// Also name the object KEY (1 to 64 bytes), replacing the object of that name in the
        /// same transaction. Adds the 'names' module to the image if it has none.
        #[arg(short, long, value_name = "KEY")]
        name: Option<String>,
    },
    /// Read an object, by name or by handle.
    Get {
        /// The image.
        image: PathBuf,
        /// A name given with `vde put --name`, or a handle `vde put` printed (16 hexadecimal
        /// digits); a name is looked up first.
        target: String,
        /// Write to this file instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Delete an object (and its name), by name or by handle.
    Rm {
        /// The image.
        image: PathBuf,
        /// A name or a handle, as for `vde get`.
        target: String,
    },
    /// List the objects: name, handle, size and kind; named ones first, in name order.
    Ls {
        /// The image.
        image: PathBuf,
        /// Only the names that start with PREFIX.
        prefix: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Draw the block map as a PNG or SVG picture.
    Map {
        /// The image.
        image: PathBuf,
        /// The picture to write (.png or .svg).
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// Runs the tool and returns its exit status.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return usage_error(&e),
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            errln!("vde: error: {}", e.msg);
            ExitCode::from(e.code)
        }
    }
}

fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            // clap's message runs on over indented lines until a blank one: make it one line.
            let text = e.render().to_string();
            let msg: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let msg = msg.join(" ");
            let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
            errln!("vde: error: {msg} (see 'vde --help')");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> CliResult {
    let wait = if cli.no_wait {
        util::LockWait::Fail
    } else {
        util::LockWait::Wait
    };
    match cli.cmd {
        Cmd::Format {
            image,
            size,
            block_size,
            wal_blocks,
            modules,
            no_objects,
            force,
        } => show::format(&show::FormatArgs {
            image,
            size,
            block_size,
            wal_blocks,
            modules,
            no_objects,
            force,
        }),
        Cmd::Info { image, json } => show::info(&image, json, wait),
        Cmd::Check {
            image,
            repair,
            json,
        } => check::check(&image, repair, json, wait),
        Cmd::Modules => show::modules(),
        Cmd::AddModule { image, name } => show::add_module(&image, &name, wait),
        Cmd::Put { image, file, name } => {
            objects::put(&image, file.as_deref(), name.as_deref(), wait)
        }
        Cmd::Get {
            image,
            target,
            output,
        } => objects::get(&image, &target, output.as_deref(), wait),
        Cmd::Rm { image, target } => objects::rm(&image, &target, wait),
        Cmd::Ls {
            image,
            prefix,
            json,
        } => objects::ls(&image, prefix.as_deref(), json, wait),
        Cmd::Map { image, output } => map::map(&image, &output, wait),
    }
}
