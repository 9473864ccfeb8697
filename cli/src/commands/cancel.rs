//! `vault cancel JOB`: end a running job.

use crate::context::Context;
use crate::output::{CliError, Output};
use crate::report::JobReport;

/// Cancel a running snapshot or restore job (not a restore already committing); what it moved
/// is released. Any controller of the job's app may.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The job's id, as `vault status APP` lists it or `--no-wait` prints it.
    pub job: u64,
}

pub fn exec(context: &mut Context, args: &Args) -> Result<Output, CliError> {
    Ok(Output::of(&JobReport::from(context.vault()?.cancel_job(args.job)?)))
}
