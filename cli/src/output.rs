//! What every command returns: its [`Output`], as JSON and as text, or a [`CliError`].

use serde::Serialize;

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
