//! `vault admin evict APP`: unregister an app for an administrator.

use candid::Principal;

use crate::context::Context;
use crate::options::parse_principal;
use crate::output::{CliError, Output};
use crate::report::Done;

/// Unregister an app, cancelling its running job. Its snapshots stay, for its controllers to
/// delete, or to restore once it is registered again.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_parser = parse_principal)]
    pub app: Principal,
}

pub fn exec(context: &mut Context, args: &Args) -> Result<Output, CliError> {
    context.vault()?.evict_app(args.app)?;
    Ok(Output::of(&Done { done: format!("{} is evicted: no longer backed up; its snapshots are kept", args.app) }))
}
