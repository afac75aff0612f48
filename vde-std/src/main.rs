//! `vde`: create, inspect, check, fill and picture vde images from the command line.
//!
//! Every subcommand lives in a module under `cli/`; this file only parses the arguments (clap)
//! and turns any error into one line on stderr (`vde: error: ...`) and a non-zero exit status:
//! 2 for usage and I/O errors, 1 when `vde check` finds problems.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
