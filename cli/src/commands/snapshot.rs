//! `vault snapshot APP`: take a snapshot now.

use candid::Principal;

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
}

pub fn exec(context: &mut Context, args: &Args) -> Result<Output, CliError> {
    let (mut vault, progress) = context.vault_with_progress()?;
    let job = if args.full { vault.snapshot_now_full(args.app)? } else { vault.snapshot_now(args.app)? };
    if args.no_wait {
        return Ok(Output::of(&JobReport::from(job)));
    }
    let job = vault.wait_for_job(job.id, progress)?;
    let id = job.snapshot_id.ok_or_else(|| CliError::Invalid(format!("job {} succeeded without naming its snapshot", job.id)))?;
    Ok(Output::of(&SnapshotReport::from(vault.snapshot(args.app, id)?)))
}
