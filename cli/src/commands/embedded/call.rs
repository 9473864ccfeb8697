//! `vault embedded call`: call any canister method on the embedded IC, in candid text, typed by
//! the canister's candid interface when it has one.

use std::path::PathBuf;

use candid::Principal;
use vault_ops::Transport;
use vault_ops::embedded::EmbeddedTransport;

use super::interface::{self, CANDID_SERVICE, Interface};
use crate::options::parse_principal;
use crate::output::{CliError, Output};

/// Call a method as the caller's identity; arguments and reply are candid text. With the
/// canister's interface (its module's `candid:service` metadata, or `--candid`), arguments are
/// read with the method's types (`(1)` is a `nat64` where it takes one), the reply shows its
/// field names, and a query method is called as a query, as `dfx canister call` does.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_parser = parse_principal)]
    pub canister: Principal,
    pub method: String,
    /// The arguments, e.g. `(1, "text", opt principal "aaaaa-aa")`.
    #[arg(default_value = "()")]
    pub args: String,
    /// Call it as a query.
    #[arg(long, conflicts_with = "update")]
    pub query: bool,
    /// Call it as an update, also a query method.
    #[arg(long)]
    pub update: bool,
    /// The canister's candid interface, for one whose module carries no `candid:service`
    /// metadata (or to use another).
    #[arg(long, value_name = "FILE")]
    pub candid: Option<PathBuf>,
}

pub fn exec(transport: &mut EmbeddedTransport, args: &Args) -> Result<Output, CliError> {
    let what = "the arguments";
    // The text is read first, so that a typo is told as such whatever the canister.
    let values = interface::parse(&args.args, what)?;
    let interface = Interface::of(args.candid.as_deref(), transport.canister_metadata(args.canister, CANDID_SERVICE))?;
    let method = interface.as_ref().map(|i| i.method(&args.method)).transpose()?;
    let arg = interface::encode(values, method.as_ref().map(|m| m.args()), what)?;
    let query = args.query || (!args.update && method.as_ref().is_some_and(|m| m.is_query()));
    let reply =
        if query { transport.query(args.canister, &args.method, arg)? } else { transport.update(args.canister, &args.method, arg)? };
    let text = interface::decode(&reply, method.as_ref().map(|m| m.results()))?.to_string();
    Ok(Output { json: serde_json::json!({ "reply": text, "reply_hex": vault_api::hex(&reply) }), text })
}
