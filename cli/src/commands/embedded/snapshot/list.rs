//! `vault embedded snapshot list`: a canister's native snapshots.

use candid::Principal;
use serde::Serialize;
use vault_ops::canister_snapshot;
use vault_ops::embedded::EmbeddedTransport;

use super::Snapshot;
use crate::options::parse_principal;
use crate::output::{CliError, Output};

/// List a canister's snapshots, oldest first: id, time taken, size (as its controllers, or
/// whoever its `snapshot_visibility` lets).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_parser = parse_principal)]
    pub canister: Principal,
}

#[derive(Serialize)]
#[serde(transparent)]
pub struct Snapshots(Vec<Snapshot>);

impl std::fmt::Display for Snapshots {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "{}", lines.join("\n"))
    }
}

pub fn exec(transport: &mut EmbeddedTransport, args: &Args) -> Result<Output, CliError> {
    let all = canister_snapshot::list(transport, args.canister)?;
    Ok(Output::of(&Snapshots(all.iter().map(Snapshot::of).collect())))
}
