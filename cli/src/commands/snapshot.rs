//! `vault snapshot APP`: take a snapshot now.

use candid::Principal;
use vault_api::service::SnapshotOptions;
use vault_ops::OpsError;

use crate::context::Context;
use crate::options::parse_principal;
use crate::report::{JobReport, SnapshotReport};
use crate::output::{CliError, Output};

/// Take a snapshot of an app now and wait for it (unless `--no-wait`).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_parser = parse_principal)]
    pub app: Principal,
    /// Print the started job and return; follow it with `vault status --job <id>`.
    #[arg(long)]
    pub no_wait: bool,
    /// A full snapshot, even where the next would be incremental.
    #[arg(long)]
    pub full: bool,
    /// A serde app: a snapshot of the state its last upgrade saved (`pre_upgrade`), taken when it
    /// saved it, for a state larger than one update can serialize.
    #[arg(long)]
    pub from_upgrade_save: bool,
}

pub fn exec(context: &mut Context, args: &Args) -> Result<Output, CliError> {
    let (mut vault, progress) = context.vault_with_progress()?;
    let job = match (args.full, args.from_upgrade_save) {
        (false, false) => vault.snapshot_now(args.app)?,
        (full, from_upgrade_save) => {
            vault.snapshot_now_with(args.app, SnapshotOptions { full, from_upgrade_save: from_upgrade_save.then_some(true) })?
        }
    };
    if args.no_wait {
        return Ok(Output::of(&JobReport::from(job)));
    }
    let job = vault.wait_for_job(job.id, progress)?;
    let id = job.snapshot_id.ok_or(OpsError::Unnamed { job: job.id })?;
    Ok(Output::of(&SnapshotReport::from(vault.snapshot(args.app, id)?)))
}
