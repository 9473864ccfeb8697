//! The canister modules this program carries: the vault and the example apps, built for wasm32
//! by `build.rs` when this program was built, so `vault embedded` deploys them from anywhere;
//! modules read from files, and the error for one the IC refuses to install.

use std::path::Path;

use ic_harness::RejectResponse;

use crate::output::CliError;

pub const VAULT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/canister_vault.wasm"));
pub const NOTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/notes.wasm"));
pub const LEDGER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ledger.wasm"));
pub const PLAIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/plain.wasm"));

/// A module from a file (`--wasm`).
pub fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| CliError::Invalid(format!("reading {}: {e}", path.display())))
}

/// A module the IC refused to install (not valid wasm, or its init trapped), and what that left.
pub fn not_installed(outcome: &str, reject: &RejectResponse) -> CliError {
    CliError::Invalid(format!("the module did not install ({outcome}): {}: {}", reject.error_code, reject.reject_message))
}
