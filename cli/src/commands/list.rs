//! `vault list [APP]`: the apps you registered, or an app's snapshots.

use candid::Principal;

use crate::context::Context;
use crate::options::parse_principal;
use crate::report::{AppReport, Listing, SnapshotReport};
use crate::output::{CliError, Output};

/// List the registered apps you control, or with APP its snapshots, oldest first.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_parser = parse_principal)]
    pub app: Option<Principal>,
}

pub fn exec(context: &mut Context, args: &Args) -> Result<Output, CliError> {
    let mut vault = context.vault()?;
    Ok(match args.app {
        Some(app) => {
            let items = vault.list_snapshots(app)?.into_iter().map(SnapshotReport::from).collect();
            Output::of(&Listing { items, empty: "no snapshots yet" })
        }
        None => {
            let items = vault.list_apps()?.into_iter().map(AppReport::from).collect();
            Output::of(&Listing { items, empty: "no registered apps you control" })
        }
    })
}
