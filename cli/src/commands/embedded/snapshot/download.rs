//! `vault embedded snapshot download`: a native snapshot written into a directory.

use std::path::PathBuf;

use serde::Serialize;
use vault_ops::canister_snapshot;
use vault_ops::embedded::EmbeddedTransport;

use super::SnapshotArgs;
use crate::output::{CliError, Output};

/// Write a snapshot into a directory in the layout `icp canister snapshot download` writes
/// (`metadata.json`, `wasm_module.bin`, `wasm_memory.bin`, `stable_memory.bin`,
/// `wasm_chunk_store/`), so `icp canister snapshot upload` (or `vault embedded snapshot
/// upload`) takes it. A directory that holds a snapshot already is refused.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub target: SnapshotArgs,
    #[arg(short = 'o', long)]
    pub output: PathBuf,
}

#[derive(Serialize)]
pub struct Downloaded {
    pub directory: PathBuf,
    pub wasm_module_size: u64,
    pub wasm_memory_size: u64,
    pub stable_memory_size: u64,
}

impl std::fmt::Display for Downloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "wrote {}: module {} bytes, heap {} bytes, stable memory {} bytes",
            self.directory.display(),
            self.wasm_module_size,
            self.wasm_memory_size,
            self.stable_memory_size
        )
    }
}

pub fn exec(transport: &mut EmbeddedTransport, args: &Args) -> Result<Output, CliError> {
    let metadata = canister_snapshot::download(transport, args.target.canister, args.target.snapshot.0.clone(), &args.output)?;
    Ok(Output::of(&Downloaded {
        directory: args.output.clone(),
        wasm_module_size: metadata.wasm_module_size,
        wasm_memory_size: metadata.wasm_memory_size,
        stable_memory_size: metadata.stable_memory_size,
    }))
}
