//! `vault admin resume APP`: end an app's suspension.

use candid::Principal;

use crate::context::Context;
use crate::options::parse_principal;
use crate::output::{CliError, Output};
use crate::report::Done;

/// Resume a suspended app: its scheduled and requested snapshots, restores and imports run again.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_parser = parse_principal)]
    pub app: Principal,
}

pub fn exec(context: &mut Context, args: &Args) -> Result<Output, CliError> {
    context.vault()?.resume_app(args.app)?;
    Ok(Output::of(&Done { done: format!("{} is no longer suspended", args.app) }))
}
