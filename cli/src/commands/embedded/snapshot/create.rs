//! `vault embedded snapshot create`: a native snapshot of a canister.

use candid::Principal;
use vault_ops::canister_snapshot;
use vault_ops::embedded::EmbeddedTransport;

use super::{Snapshot, SnapshotId, parse_snapshot_id};
use crate::options::parse_principal;
use crate::output::{CliError, Output};

/// Take a snapshot of a canister (its module, heap, stable memory, globals and certified data),
/// kept on its subnet, at most 10 a canister; as a controller. Stop the canister first for a
/// state no message is halfway through (`icp canister snapshot create` asks for that).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_parser = parse_principal)]
    pub canister: Principal,
    /// Replace this snapshot (hex id) with the new one.
    #[arg(long, value_parser = parse_snapshot_id)]
    pub replace: Option<SnapshotId>,
}

pub fn exec(transport: &mut EmbeddedTransport, args: &Args) -> Result<Output, CliError> {
    let taken = canister_snapshot::take(transport, args.canister, args.replace.clone().map(|id| id.0))?;
    Ok(Output::of(&Snapshot::of(&taken)))
}
