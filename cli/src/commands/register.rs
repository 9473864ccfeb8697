//! `vault register APP`: put an app under the vault's care.

use candid::Principal;
use vault_api::service::{Capture, RegisterArgs, Retention, Schedule};

use crate::context::Context;
use crate::options::{parse_interval, parse_principal};
use crate::report::AppReport;
use crate::output::{CliError, Output};

/// Register an app you control with the vault: one that compiles in the client library with
/// this vault set, or with `--native` any canister the vault is a controller of.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The app canister.
    #[arg(value_parser = parse_principal)]
    pub app: Principal,
    /// Capture it through native canister snapshots, without the client library (the vault must
    /// be one of its controllers).
    #[arg(long)]
    pub native: bool,
    /// With `--native`: take snapshots while the app runs instead of stopping it for the take.
    #[arg(long, requires = "native")]
    pub keep_running: bool,
    #[command(flatten)]
    pub policy: Policy,
}

/// When to take snapshots and which to keep.
#[derive(clap::Args, Debug, Clone)]
pub struct Policy {
    /// Time between scheduled snapshots (`6h`, `1d`, `never`...).
    #[arg(long, value_parser = parse_interval, default_value = "1d")]
    pub every: u64,
    /// Keep the newest N snapshots.
    #[arg(long, default_value_t = 7)]
    pub keep_last: u32,
    /// Also keep the newest snapshot of each of the last N days.
    #[arg(long, default_value_t = 0)]
    pub keep_daily: u32,
    /// Also keep the newest snapshot of each of the last N weeks.
    #[arg(long, default_value_t = 0)]
    pub keep_weekly: u32,
    /// Take at most N incremental snapshots between two full ones (0: every one is full; the
    /// vault's default if not given).
    #[arg(long)]
    pub max_incrementals: Option<u32>,
}

impl Policy {
    pub fn schedule(&self) -> Schedule {
        Schedule { interval_seconds: self.every }
    }

    pub fn retention(&self) -> Retention {
        Retention { keep_last: self.keep_last, keep_daily: self.keep_daily, keep_weekly: self.keep_weekly }
    }
}

pub fn exec(context: &mut Context, args: &Args) -> Result<Output, CliError> {
    let policy = &args.policy;
    let info = context.vault()?.register(RegisterArgs {
        app: args.app,
        schedule: policy.schedule(),
        retention: policy.retention(),
        max_incrementals: policy.max_incrementals,
        capture: args.native.then_some(Capture::Native { keep_running: args.keep_running }),
    })?;
    Ok(Output::of(&AppReport::from(info)))
}
