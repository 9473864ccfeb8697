//! `vault admin suspend APP --reason TEXT`: stop an app's snapshots, restores and imports.

use candid::Principal;
use vault_api::service::SuspendArgs;

use crate::context::Context;
use crate::options::parse_principal;
use crate::output::{CliError, Output};
use crate::report::Done;

/// Suspend a registered app: no snapshot (scheduled or requested), restore into it or import
/// until it is resumed. Its snapshots stay readable and deletable by its controllers, who are
/// told the reason when refused.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_parser = parse_principal)]
    pub app: Principal,
    /// Why, for the app's controllers (the vault keeps 256 characters).
    #[arg(long)]
    pub reason: String,
}

pub fn exec(context: &mut Context, args: &Args) -> Result<Output, CliError> {
    context.vault()?.suspend_app(SuspendArgs { app: args.app, reason: args.reason.clone() })?;
    Ok(Output::of(&Done { done: format!("{} is suspended until `vault admin resume {}`", args.app, args.app) }))
}
