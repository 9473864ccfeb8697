//! The canister-vault command line. [`run`] parses a command line and runs it, returning what
//! it has to say both as text and as JSON (`--json`); the `vault` binary prints one of them.
//! Every command is a module of [`commands`]; what they do lies below them, in `vault-ops`.
//!
//! Each module uses only the ones below it; the crate root only parses and hands over to
//! `commands`, and re-exports the vocabulary:
//!
//! ```text
//! commands     the command line (Cli), one module per command, dispatch
//!   admin        the vault's administration
//!   demo         the whole story, run through the command line dispatch passes it
//!   embedded     the embedded IC's commands
//! context      what a command runs with: the transport, the vault's id, the progress bars
//! report       what commands print             options   the flags every command shares
//! progress     the progress bars
//! output       CliError and Output, what every command returns
//! ```
pub mod commands;
mod context;
mod options;
mod output;
mod progress;
pub mod report;

use std::ffi::OsString;

use clap::Parser;

pub use commands::Cli;
pub use context::Context;
pub use output::{CliError, Output};

/// Runs the command line `args` (the program name first).
pub fn run<I, T>(args: I) -> Result<Output, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    execute(Cli::try_parse_from(args).map_err(CliError::Usage)?)
}

/// Runs a parsed command line.
pub fn execute(cli: Cli) -> Result<Output, CliError> {
    commands::dispatch(cli)
}
