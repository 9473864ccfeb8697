//! `vault embedded snapshot delete`: a native snapshot removed.

use candid::Principal;
use serde::Serialize;
use vault_ops::canister_snapshot;
use vault_ops::embedded::EmbeddedTransport;

use super::{SnapshotId, parse_snapshot_id};
use crate::options::parse_principal;
use crate::output::{CliError, Output};

/// Delete one of a canister's snapshots, as a controller.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_parser = parse_principal)]
    pub canister: Principal,
    #[arg(value_parser = parse_snapshot_id)]
    pub snapshot: SnapshotId,
}

#[derive(Serialize)]
pub struct Deleted {
    pub canister: Principal,
    pub snapshot: String,
}

impl std::fmt::Display for Deleted {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "deleted snapshot {} of {}", self.snapshot, self.canister)
    }
}

pub fn exec(transport: &mut EmbeddedTransport, args: &Args) -> Result<Output, CliError> {
    canister_snapshot::delete(transport, args.canister, args.snapshot.0.clone())?;
    Ok(Output::of(&Deleted { canister: args.canister, snapshot: vault_api::hex(&args.snapshot.0) }))
}
