//! `vault embedded snapshot upload`: a directory's snapshot uploaded as a canister's.

use std::path::PathBuf;

use candid::Principal;
use serde::Serialize;
use vault_ops::canister_snapshot;
use vault_ops::embedded::EmbeddedTransport;

use super::{SnapshotId, parse_snapshot_id};
use crate::options::parse_principal;
use crate::output::{CliError, Output};

/// Upload a snapshot from a directory in the layout `icp canister snapshot download` writes as
/// a new snapshot of a canister (load it with `vault embedded snapshot restore`); as a
/// controller. Each file must be as long as `metadata.json` says.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_parser = parse_principal)]
    pub canister: Principal,
    #[arg(short = 'i', long)]
    pub input: PathBuf,
    /// Replace this snapshot (hex id) with the uploaded one.
    #[arg(long, value_parser = parse_snapshot_id)]
    pub replace: Option<SnapshotId>,
}

#[derive(Serialize)]
pub struct Uploaded {
    pub snapshot_id: String,
}

impl std::fmt::Display for Uploaded {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}", self.snapshot_id)
    }
}

pub fn exec(transport: &mut EmbeddedTransport, args: &Args) -> Result<Output, CliError> {
    let id = canister_snapshot::upload(transport, args.canister, &args.input, args.replace.clone().map(|id| id.0))?;
    Ok(Output::of(&Uploaded { snapshot_id: vault_api::hex(&id) }))
}
