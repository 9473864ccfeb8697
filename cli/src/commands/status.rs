//! `vault status APP` / `vault status --job ID`: an app's registration and jobs, or one job.

use candid::Principal;
use serde::Serialize;

use crate::context::Context;
use crate::options::parse_principal;
use crate::report::{AppReport, JobReport};
use crate::output::{CliError, Output};

/// Show an app's schedule and its recent jobs, or one job.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["app", "job"])))]
pub struct Args {
    #[arg(value_parser = parse_principal)]
    pub app: Option<Principal>,
    /// A job's id, as `snapshot --no-wait` or `restore --no-wait` print it.
    #[arg(long)]
    pub job: Option<u64>,
    /// How many of the app's jobs to show, newest first.
    #[arg(long, default_value_t = 5)]
    pub jobs: usize,
}

#[derive(Serialize)]
struct AppStatus {
    app: AppReport,
    jobs: Vec<JobReport>,
}

impl std::fmt::Display for AppStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}", self.app)?;
        for job in &self.jobs {
            write!(f, "\n  {job}")?;
        }
        Ok(())
    }
}

pub fn exec(context: &mut Context, args: &Args) -> Result<Output, CliError> {
    let mut vault = context.vault()?;
    if let Some(job) = args.job {
        return Ok(Output::of(&JobReport::from(vault.job_status(job)?)));
    }
    let app = args.app.expect("clap requires an app or a job");
    let info = vault.app_info(app)?;
    let jobs = vault.list_jobs(app)?.into_iter().take(args.jobs).map(JobReport::from).collect();
    Ok(Output::of(&AppStatus { app: info.into(), jobs }))
}
