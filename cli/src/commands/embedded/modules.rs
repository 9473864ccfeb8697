//! The canister modules this program carries: the vault and the example apps, built for wasm32
//! by `build.rs` when this program was built, so `vault embedded` deploys them from anywhere.

use std::path::Path;

use crate::CliError;

pub const VAULT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/canister_vault.wasm"));
pub const NOTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/notes.wasm"));
pub const LEDGER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ledger.wasm"));

/// A module from a file (`--wasm`).
pub fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| CliError::Invalid(format!("reading {}: {e}", path.display())))
}
