//! `vault admin disallow P [P ...]`: take principals off the allow-list of registrants.

use candid::Principal;
use vault_api::service::SetAllowedArgs;

use crate::context::Context;
use crate::options::parse_principal;
use crate::output::{CliError, Output};
use crate::report::{Done, principals};

/// Take principals off the allow-list (at most 100 a call): they register no more apps, and the
/// apps they registered stay (`vault admin evict` removes one).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(required = true, value_parser = parse_principal)]
    pub principals: Vec<Principal>,
}

pub fn exec(context: &mut Context, args: &Args) -> Result<Output, CliError> {
    context.vault()?.set_allowed(SetAllowedArgs { principals: args.principals.clone(), allowed: false })?;
    Ok(Output::of(&Done { done: format!("off the allow-list, their apps still registered: {}", principals(&args.principals)) }))
}
