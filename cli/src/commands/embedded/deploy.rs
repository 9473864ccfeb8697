//! `vault embedded deploy`: a canister on the embedded IC, e.g. one of the example apps.

use std::path::{Path, PathBuf};

use candid::{Encode, Principal};
use clap::ValueEnum;
use serde::Serialize;
use vault_ops::embedded::EmbeddedTransport;
use vault_ops::Transport;

use super::modules;
use crate::options::parse_principal;
use crate::output::{CliError, Output};

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Example {
    /// Notes: heap state serialized with serde.
    Notes,
    /// Ledger: state in stable structures.
    Ledger,
}

impl Example {
    /// Its module, as this program carries it.
    fn module(self) -> &'static [u8] {
        match self {
            Example::Notes => modules::NOTES,
            Example::Ledger => modules::LEDGER,
        }
    }
}

/// Create a canister controlled by the caller and install an example app (given the vault,
/// by default the embedded one) or any module.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("module").required(true).args(["example", "wasm"])))]
pub struct Args {
    /// An example app of this workspace (this program carries its module).
    #[arg(long, value_enum)]
    pub example: Option<Example>,
    /// Any canister module.
    #[arg(long)]
    pub wasm: Option<PathBuf>,
    /// The init argument, in candid text (for `--wasm`; examples take their vault).
    #[arg(long, requires = "wasm")]
    pub arg: Option<String>,
    /// The vault an example app trusts; by default the vault of `vault embedded init`.
    #[arg(long = "app-vault", value_parser = parse_principal, conflicts_with = "wasm")]
    pub app_vault: Option<Principal>,
}

#[derive(Serialize)]
pub struct Deployed {
    pub canister: String,
    pub module_bytes: usize,
}

impl std::fmt::Display for Deployed {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}", self.canister)
    }
}

pub fn exec(transport: &mut EmbeddedTransport, dir: &Path, args: &Args) -> Result<Output, CliError> {
    let (module, arg) = match args.example {
        Some(example) => {
            let vault = args.app_vault.or_else(|| {
                let text = std::fs::read_to_string(dir.join(crate::context::EMBEDDED_VAULT)).ok()?;
                Principal::from_text(text.trim()).ok()
            });
            (example.module().to_vec(), Encode!(&vault).expect("an optional principal encodes"))
        }
        None => {
            let path = args.wasm.as_deref().expect("clap requires --example or --wasm");
            let arg = match &args.arg {
                Some(text) => candid_parser::parse_idl_args(text)
                    .and_then(|a| Ok(a.to_bytes()?))
                    .map_err(|e| CliError::Invalid(format!("--arg is not candid: {e}")))?,
                None => Encode!().expect("empty args encode"),
            };
            (modules::read(path)?, arg)
        }
    };
    let controller = transport.caller();
    let module_bytes = module.len();
    let ic = transport.harness();
    let canister = ic.create_canister_with_settings(Some(controller), None);
    ic.try_install_canister(canister, module, arg, Some(controller))
        .map_err(|r| modules::not_installed(&format!("canister {canister} was created but stays empty"), &r))?;
    Ok(Output::of(&Deployed { canister: canister.to_text(), module_bytes }))
}
