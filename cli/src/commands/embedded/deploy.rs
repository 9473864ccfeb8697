//! `vault embedded deploy`: a canister on the embedded IC, e.g. one of the example apps.

use std::path::{Path, PathBuf};

use candid::{Encode, Principal};
use clap::ValueEnum;
use serde::Serialize;
use vault_ops::embedded::{EmbeddedTransport, InstallMode};

use super::interface::InitArgOpt;
use super::modules;
use crate::options::parse_principal;
use crate::output::{CliError, Output};

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Example {
    /// Notes: heap state serialized with serde.
    Notes,
    /// Ledger: state in stable structures.
    Ledger,
    /// Plain: entries on the heap, without the client library (back it up with `--native`).
    Plain,
}

impl Example {
    /// Its module, as this program carries it.
    fn module(self) -> &'static [u8] {
        match self {
            Example::Notes => modules::NOTES,
            Example::Ledger => modules::LEDGER,
            Example::Plain => modules::PLAIN,
        }
    }
}

/// Create a canister controlled by the caller (and `--controller`s) and install an example app
/// (given the vault, by default the embedded one) or any module.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("module").required(true).args(["example", "wasm"])))]
pub struct Args {
    /// An example app of this workspace (this program carries its module).
    #[arg(long, value_enum)]
    pub example: Option<Example>,
    /// Any canister module, plain or gzip-compressed.
    #[arg(long)]
    pub wasm: Option<PathBuf>,
    /// The init argument (for `--wasm`; examples take their vault).
    #[command(flatten)]
    pub init: InitArgOpt,
    /// The vault an example app trusts; by default the vault of `vault embedded init`.
    #[arg(long = "app-vault", value_parser = parse_principal, conflicts_with = "wasm")]
    pub app_vault: Option<Principal>,
    /// Another controller of the canister, besides the caller (repeatable).
    #[arg(long = "controller", value_name = "PRINCIPAL", value_parser = parse_principal)]
    pub controllers: Vec<Principal>,
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
            let module = modules::read(args.wasm.as_deref().expect("clap requires --example or --wasm"))?;
            let arg = args.init.encode(&module)?;
            (module, arg)
        }
    };
    let module_bytes = module.len();
    let canister = transport.create_canister(&args.controllers);
    transport
        .install_code(canister, InstallMode::Install, module, arg)
        .map_err(|r| modules::not_installed(&format!("canister {canister} was created but stays empty"), &r))?;
    Ok(Output::of(&Deployed { canister: canister.to_text(), module_bytes }))
}
