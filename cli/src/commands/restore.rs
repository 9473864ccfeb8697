//! `vault restore APP SNAPSHOT`: put a snapshot back into its app, or into a clone.

use candid::Principal;
use vault_api::service::RestoreArgs;

use crate::context::Context;
use crate::options::parse_principal;
use crate::report::JobReport;
use crate::output::{CliError, Output};

/// Restore a snapshot into its app (or, with `--into`, into another registered canister) and
/// wait for it (unless `--no-wait`). The target's state is replaced in one message at the end;
/// until then it is untouched.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_parser = parse_principal)]
    pub app: Principal,
    /// The snapshot's id (see `vault list APP`).
    pub snapshot: u64,
    /// Restore into this canister instead: a clone, registered with the same vault.
    #[arg(long, value_parser = parse_principal)]
    pub into: Option<Principal>,
    /// Restore even if the target declares another state layout than the snapshot was taken
    /// under (see `vault list APP`): the target's module must read the snapshot's layout.
    #[arg(long)]
    pub allow_layout_change: bool,
    /// Print the started job and return; follow it with `vault status --job <id>`.
    #[arg(long)]
    pub no_wait: bool,
}

pub fn exec(context: &mut Context, args: &Args) -> Result<Output, CliError> {
    let (mut vault, progress) = context.vault_with_progress()?;
    let allow_layout_change = args.allow_layout_change.then_some(true);
    let job = vault.restore(RestoreArgs { app: args.app, snapshot_id: args.snapshot, target: args.into, allow_layout_change, via_upgrade: None })?;
    let job = if args.no_wait { job } else { vault.wait_for_job(job.id, progress)? };
    Ok(Output::of(&JobReport::from(job)))
}
