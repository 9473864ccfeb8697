//! What every command returns: its [`Output`], as JSON and as text, or a [`CliError`].

use std::io::{self, Write};

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

    /// Writes it to `out`: its JSON (`--json`) or its text, if it has any.
    pub fn write(&self, json: bool, out: &mut impl Write) -> io::Result<()> {
        if json {
            writeln!(out, "{}", serde_json::to_string_pretty(&self.json).expect("JSON values serialize"))?;
        } else if !self.text.is_empty() {
            writeln!(out, "{}", self.text)?;
        }
        out.flush()
    }
}

impl CliError {
    /// Writes it to `out` as JSON (`--json`): `{"error": "..."}`.
    pub fn write_json(&self, out: &mut impl Write) -> io::Result<()> {
        writeln!(out, "{}", serde_json::json!({ "error": self.to_string() }))?;
        out.flush()
    }
}
