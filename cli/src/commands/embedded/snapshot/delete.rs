//! `vault embedded snapshot delete`: a native snapshot removed.

use vault_ops::canister_snapshot;
use vault_ops::embedded::EmbeddedTransport;

use super::{Done, SnapshotArgs};
use crate::output::{CliError, Output};

/// Delete one of a canister's snapshots, as a controller.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub target: SnapshotArgs,
}

pub fn exec(transport: &mut EmbeddedTransport, args: &Args) -> Result<Output, CliError> {
    let SnapshotArgs { canister, snapshot } = &args.target;
    canister_snapshot::delete(transport, *canister, snapshot.0.clone())?;
    let snapshot = vault_api::hex(&snapshot.0);
    Ok(Output::of(&Done { canister: *canister, text: format!("deleted snapshot {snapshot} of {canister}"), snapshot }))
}
