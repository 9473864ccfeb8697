//! `vault embedded upgrade`: a new module for a canister on the embedded IC.

use std::path::PathBuf;

use candid::Principal;
use clap::ValueEnum;
use serde::Serialize;
use vault_ops::embedded::{EmbeddedTransport, InstallMode};

use super::interface::InitArgOpt;
use super::modules;
use crate::options::parse_principal;
use crate::output::{CliError, Output};
use crate::report::size;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Keep the canister's stable memory: its `pre_upgrade` runs in the old module, then its
    /// `post_upgrade` in the new one, with the argument.
    Upgrade,
    /// Start afresh: the new module's `init` runs on empty memories, with the argument.
    Reinstall,
}

/// Install a module from a file over a canister's, as a controller of it (as on the IC). If a
/// hook traps, or the module is not valid, the canister is left as it was.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_parser = parse_principal)]
    pub canister: Principal,
    /// The new module, plain or gzip-compressed.
    #[arg(long)]
    pub wasm: PathBuf,
    /// The argument of `post_upgrade` (or of `init`, with `--mode reinstall`).
    #[command(flatten)]
    pub init: InitArgOpt,
    #[arg(long, value_enum, default_value = "upgrade")]
    pub mode: Mode,
}

#[derive(Serialize)]
pub struct Upgraded {
    pub canister: String,
    pub mode: Mode,
    /// The SHA-256 of the module now installed, in hex.
    pub module_hash: String,
    pub module_bytes: usize,
}

impl std::fmt::Display for Upgraded {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let done = match self.mode {
            Mode::Upgrade => "upgraded",
            Mode::Reinstall => "reinstalled",
        };
        write!(f, "{} {done}: module 0x{} ({})", self.canister, self.module_hash, size(self.module_bytes as u64))
    }
}

pub fn exec(transport: &mut EmbeddedTransport, args: &Args) -> Result<Output, CliError> {
    let module = modules::read(&args.wasm)?;
    let arg = args.init.encode(&module)?;
    let module_bytes = module.len();
    let mode = match args.mode {
        Mode::Upgrade => InstallMode::Upgrade,
        Mode::Reinstall => InstallMode::Reinstall,
    };
    transport
        .install_code(args.canister, mode, module, arg)
        .map_err(|r| modules::not_installed(&format!("canister {} keeps its module and state", args.canister), &r))?;
    let status = transport.canister_status(args.canister)?;
    Ok(Output::of(&Upgraded {
        canister: args.canister.to_text(),
        mode: args.mode,
        module_hash: status.module_hash.as_deref().map(vault_api::hex).unwrap_or_default(),
        module_bytes,
    }))
}
