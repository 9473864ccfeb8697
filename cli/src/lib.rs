//! The canister-vault command line. [`run`] parses a command line and runs it, returning what
//! it has to say both as text and as JSON (`--json`); the `vault` binary prints one of them.
//! Every command is a module of [`commands`]; what they do lies below them, in `vault-ops`.

pub mod commands;
mod context;
mod options;
mod progress;
pub mod report;

use std::ffi::OsString;

use clap::Parser;
use serde::Serialize;

pub use commands::Cli;
pub use context::Context;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A malformed command line, or `--help` / `--version`.
    #[error("{0}")]
    Usage(clap::Error),
    #[error("{0}")]
    Ops(#[from] vault_ops::OpsError),
    #[error("{0}")]
    Identity(#[from] vault_ops::identity::IdentityError),
    #[error("{0}")]
    Transport(#[from] vault_ops::CallError),
    #[error("{0}")]
    Invalid(String),
    /// A check of the demo failed.
    #[error("check failed: {0}")]
    Check(String),
}

/// What a command has to say.
#[derive(Debug, Clone)]
pub struct Output {
    pub json: serde_json::Value,
    pub text: String,
}

impl Output {
    pub fn of<R: Serialize + std::fmt::Display>(report: &R) -> Self {
        Output { json: serde_json::to_value(report).expect("reports serialize"), text: report.to_string() }
    }
}

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
