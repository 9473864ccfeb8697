//! `vault unregister APP`: stop backing an app up.

use candid::Principal;
use vault_api::service::UnregisterArgs;

use crate::context::Context;
use crate::options::parse_principal;
use crate::report::Done;
use crate::output::{CliError, Output};

/// Stop backing an app up. Its snapshots stay unless `--delete-snapshots` is given.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_parser = parse_principal)]
    pub app: Principal,
    /// Also delete every snapshot of the app.
    #[arg(long)]
    pub delete_snapshots: bool,
}

pub fn exec(context: &mut Context, args: &Args) -> Result<Output, CliError> {
    context.vault()?.unregister(UnregisterArgs { app: args.app, delete_snapshots: args.delete_snapshots })?;
    let kept = if args.delete_snapshots { "its snapshots are being deleted" } else { "its snapshots are kept" };
    Ok(Output::of(&Done { done: format!("{} is no longer backed up; {kept}", args.app) }))
}
