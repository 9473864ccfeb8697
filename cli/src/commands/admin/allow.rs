//! `vault admin allow P [P ...]`: put principals on the allow-list of registrants.

use candid::Principal;
use vault_api::service::SetAllowedArgs;

use crate::context::Context;
use crate::options::parse_principal;
use crate::output::{CliError, Output};
use crate::report::{Done, principals};

/// Let principals register the apps they control while registration is `allow-list` (at most
/// 100 a call).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(required = true, value_parser = parse_principal)]
    pub principals: Vec<Principal>,
}

pub fn exec(context: &mut Context, args: &Args) -> Result<Output, CliError> {
    context.vault()?.set_allowed(SetAllowedArgs { principals: args.principals.clone(), allowed: true })?;
    Ok(Output::of(&Done { done: format!("on the allow-list: {}", principals(&args.principals)) }))
}
