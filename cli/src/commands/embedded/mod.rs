//! `vault embedded ...`: an IC that runs inside this program, kept in the directory given with
//! `--embedded DIR` between commands. Every other command runs on it too when `--embedded` is
//! given, so the whole tool works without dfx or a replica.

use clap::Subcommand;
use vault_ops::embedded::EmbeddedTransport;

use crate::context;
use crate::options::{IdentityOpt, NetworkOpt};
use crate::output::{CliError, Output};

pub mod advance;
pub mod call;
pub mod deploy;
pub mod init;
pub mod interface;
pub mod logs;
pub mod modules;
pub mod settings;
pub mod snapshot;
pub mod status;
pub mod upgrade;

#[derive(Subcommand, Debug)]
pub enum Command {
    Init(init::Args),
    Deploy(deploy::Args),
    Upgrade(upgrade::Args),
    Settings(settings::Args),
    Call(call::Args),
    Logs(logs::Args),
    Advance(advance::Args),
    Status(status::Args),
    /// A canister's native snapshots: create, list, restore, delete, and download and upload in
    /// the directory layout of `icp canister snapshot`.
    #[command(subcommand)]
    Snapshot(snapshot::Command),
}

/// Runs `command` on the embedded IC in `network`'s `--embedded` directory, as `who`.
pub fn exec(command: &Command, network: &NetworkOpt, who: &IdentityOpt) -> Result<Output, CliError> {
    let dir = network.embedded.clone().ok_or_else(|| CliError::Invalid("`vault embedded` needs --embedded <DIR> (or VAULT_EMBEDDED)".into()))?;
    if let Command::Init(args) = command {
        return init::exec(&dir, who, args);
    }
    EmbeddedTransport::check(&dir)?;
    let caller = context::identity(network, who)?.principal;
    let mut ic = EmbeddedTransport::open(&dir, caller)?;
    let result = match command {
        Command::Init(_) => unreachable!("handled above"),
        Command::Deploy(args) => deploy::exec(&mut ic, &dir, args),
        Command::Upgrade(args) => upgrade::exec(&mut ic, args),
        Command::Settings(args) => settings::exec(&mut ic, args),
        Command::Call(args) => call::exec(&mut ic, args),
        Command::Logs(args) => logs::exec(&ic, args),
        Command::Advance(args) => advance::exec(&mut ic, args),
        Command::Status(args) => status::exec(&ic, args),
        Command::Snapshot(command) => snapshot::exec(&mut ic, command),
    };
    let saved = vault_ops::Transport::finish(&mut ic);
    let output = result?;
    saved?;
    Ok(output)
}
