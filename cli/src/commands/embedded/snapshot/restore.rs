//! `vault embedded snapshot restore`: a native snapshot loaded into a canister.

use vault_ops::canister_snapshot;
use vault_ops::embedded::EmbeddedTransport;

use super::{Done, SnapshotArgs};
use crate::output::{CliError, Output};

/// Load a snapshot into a canister: its module, heap, stable memory, globals and certified data
/// as they were. The snapshot may be another canister's on the same subnet whose controllers
/// include you. Stop the canister first, as `icp canister snapshot restore` asks.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub target: SnapshotArgs,
}

pub fn exec(transport: &mut EmbeddedTransport, args: &Args) -> Result<Output, CliError> {
    let SnapshotArgs { canister, snapshot } = &args.target;
    canister_snapshot::load(transport, *canister, snapshot.0.clone())?;
    let snapshot = vault_api::hex(&snapshot.0);
    Ok(Output::of(&Done { canister: *canister, text: format!("{canister} now runs snapshot {snapshot}"), snapshot }))
}
