//! `vault embedded snapshot restore`: a native snapshot loaded into a canister.

use candid::Principal;
use serde::Serialize;
use vault_ops::canister_snapshot;
use vault_ops::embedded::EmbeddedTransport;

use super::{SnapshotId, parse_snapshot_id};
use crate::options::parse_principal;
use crate::output::{CliError, Output};

/// Load a snapshot into a canister: its module, heap, stable memory, globals and certified data
/// as they were. The snapshot may be another canister's on the same subnet whose controllers
/// include you. Stop the canister first, as `icp canister snapshot restore` asks.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_parser = parse_principal)]
    pub canister: Principal,
    #[arg(value_parser = parse_snapshot_id)]
    pub snapshot: SnapshotId,
}

#[derive(Serialize)]
pub struct Restored {
    pub canister: Principal,
    pub snapshot: String,
}

impl std::fmt::Display for Restored {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{} now runs snapshot {}", self.canister, self.snapshot)
    }
}

pub fn exec(transport: &mut EmbeddedTransport, args: &Args) -> Result<Output, CliError> {
    canister_snapshot::load(transport, args.canister, args.snapshot.0.clone())?;
    Ok(Output::of(&Restored { canister: args.canister, snapshot: vault_api::hex(&args.snapshot.0) }))
}
