//! `vault admin administrators P [P ...]` / `--none`: name the vault's administrators.

use candid::Principal;

use crate::context::Context;
use crate::options::parse_principal;
use crate::output::{CliError, Output};
use crate::report::{Done, principals};

/// Replace the administrators the vault's controllers name (at most 10). The vault's controllers
/// are administrators anyway, and only they may name others.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["principals", "none"])))]
pub struct Args {
    /// The administrators, in place of those named before.
    #[arg(value_parser = parse_principal)]
    pub principals: Vec<Principal>,
    /// Name none: only the vault's controllers administer it.
    #[arg(long)]
    pub none: bool,
}

pub fn exec(context: &mut Context, args: &Args) -> Result<Output, CliError> {
    context.vault()?.set_administrators(args.principals.clone())?;
    let done = match args.principals.as_slice() {
        [] => "the vault's controllers are its only administrators".to_string(),
        named => format!("the vault's administrators are its controllers and {}", principals(named)),
    };
    Ok(Output::of(&Done { done }))
}
