//! `vault delete APP SNAPSHOT`: delete a snapshot.

use candid::Principal;

use crate::context::Context;
use crate::options::parse_principal;
use crate::report::Done;
use crate::output::{CliError, Output};

/// Delete a snapshot. Its chunks are released in the background; chunks other snapshots share
/// stay.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_parser = parse_principal)]
    pub app: Principal,
    pub snapshot: u64,
}

pub fn exec(context: &mut Context, args: &Args) -> Result<Output, CliError> {
    context.vault()?.delete_snapshot(args.app, args.snapshot)?;
    Ok(Output::of(&Done { done: format!("snapshot #{} of {} deleted", args.snapshot, args.app) }))
}
