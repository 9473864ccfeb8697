//! `vault schedule APP`: change when an app is snapshotted and which snapshots are kept.

use candid::Principal;
use vault_api::service::{Retention, Schedule, UpdateScheduleArgs};

use crate::context::Context;
use crate::options::{parse_interval, parse_principal};
use crate::report::AppReport;
use crate::output::{CliError, Output};

/// Change an app's schedule, retention or incremental snapshots; what is not given stays as it is.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_parser = parse_principal)]
    pub app: Principal,
    /// Time between scheduled snapshots (`6h`, `1d`, `never`...).
    #[arg(long, value_parser = parse_interval)]
    pub every: Option<u64>,
    #[arg(long)]
    pub keep_last: Option<u32>,
    #[arg(long)]
    pub keep_daily: Option<u32>,
    #[arg(long)]
    pub keep_weekly: Option<u32>,
    /// Take at most N incremental snapshots between two full ones (0: every one is full).
    #[arg(long)]
    pub max_incrementals: Option<u32>,
}

pub fn exec(context: &mut Context, args: &Args) -> Result<Output, CliError> {
    let mut vault = context.vault()?;
    let retention = if args.keep_last.is_some() || args.keep_daily.is_some() || args.keep_weekly.is_some() {
        let now = vault.app_info(args.app)?.retention;
        Some(Retention {
            keep_last: args.keep_last.unwrap_or(now.keep_last),
            keep_daily: args.keep_daily.unwrap_or(now.keep_daily),
            keep_weekly: args.keep_weekly.unwrap_or(now.keep_weekly),
        })
    } else {
        None
    };
    let schedule = args.every.map(|interval_seconds| Schedule { interval_seconds });
    let info = vault.update_schedule(UpdateScheduleArgs { app: args.app, schedule, retention, max_incrementals: args.max_incrementals })?;
    Ok(Output::of(&AppReport::from(info)))
}
