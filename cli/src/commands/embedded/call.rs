//! `vault embedded call`: call any canister method on the embedded IC, in candid text.

use candid::{IDLArgs, Principal};
use vault_ops::embedded::EmbeddedTransport;
use vault_ops::Transport;

use crate::options::parse_principal;
use crate::output::{CliError, Output};

/// Call a method as the caller's identity; arguments and reply are candid text.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_parser = parse_principal)]
    pub canister: Principal,
    pub method: String,
    /// The arguments, e.g. `(1, "text", opt principal "aaaaa-aa")`.
    #[arg(default_value = "()")]
    pub args: String,
    /// Call it as a query.
    #[arg(long)]
    pub query: bool,
}

pub fn exec(transport: &mut EmbeddedTransport, args: &Args) -> Result<Output, CliError> {
    let arg = candid_parser::parse_idl_args(&args.args)
        .map_err(|e| CliError::Invalid(format!("the arguments are not candid: {e}")))?
        .to_bytes()
        .map_err(|e| CliError::Invalid(format!("the arguments do not encode: {e}")))?;
    let reply = if args.query {
        transport.query(args.canister, &args.method, arg)?
    } else {
        transport.update(args.canister, &args.method, arg)?
    };
    let decoded = IDLArgs::from_bytes(&reply).map_err(|e| CliError::Invalid(format!("the reply is not candid: {e}")))?;
    let text = decoded.to_string();
    Ok(Output { json: serde_json::json!({ "reply": text, "reply_hex": vault_api::hex(&reply) }), text })
}
