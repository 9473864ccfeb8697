//! The commands, one module each. A command parses its arguments, calls the operation below
//! it, and returns a report; [`dispatch`] gives it its context and saves an embedded IC after
//! (and gives the demo itself, to run the command lines it tells its story with).

use clap::{Parser, Subcommand};

use crate::context::Context;
use crate::options::{IdentityOpt, NetworkOpt, OutputOpt, VaultOpt};
use crate::output::{CliError, Output};

pub mod admin;
pub mod cancel;
pub mod convert;
pub mod delete;
pub mod demo;
pub mod embedded;
pub mod export;
pub mod import;
pub mod list;
pub mod register;
pub mod restore;
pub mod schedule;
pub mod snapshot;
pub mod status;
pub mod unregister;
pub mod upgrade;
pub mod verify;

/// Back up Internet Computer canisters into a vault canister: register apps, take snapshots on
/// a schedule or on request, restore them, and move them to and from files.
#[derive(Parser, Debug)]
#[command(name = "vault", version)]
pub struct Cli {
    #[command(flatten)]
    pub network: NetworkOpt,
    #[command(flatten)]
    pub identity: IdentityOpt,
    #[command(flatten)]
    pub vault: VaultOpt,
    #[command(flatten)]
    pub output: OutputOpt,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    Register(register::Args),
    Schedule(schedule::Args),
    Unregister(unregister::Args),
    Snapshot(snapshot::Args),
    List(list::Args),
    Status(status::Args),
    Restore(restore::Args),
    Cancel(cancel::Args),
    Delete(delete::Args),
    Export(export::Args),
    Import(import::Args),
    Verify(verify::Args),
    Convert(convert::Args),
    Upgrade(upgrade::Args),
    /// Administer the vault: who registers apps, what each holds, suspending and evicting apps.
    #[command(subcommand)]
    Admin(admin::Command),
    #[command(subcommand)]
    Embedded(embedded::Command),
    Demo(demo::Args),
}

pub fn dispatch(cli: Cli) -> Result<Output, CliError> {
    let with_vault = |run: &dyn Fn(&mut Context) -> Result<Output, CliError>| {
        let mut context = Context::open(&cli.network, &cli.identity, &cli.vault, &cli.output)?;
        let result = run(&mut context);
        // Save what changed even when the command failed half way: the IC keeps it too.
        let saved = context.finish();
        let output = result?;
        saved?;
        Ok(output)
    };
    match &cli.command {
        Command::Register(args) => with_vault(&|c| register::exec(c, args)),
        Command::Schedule(args) => with_vault(&|c| schedule::exec(c, args)),
        Command::Unregister(args) => with_vault(&|c| unregister::exec(c, args)),
        Command::Snapshot(args) => with_vault(&|c| snapshot::exec(c, args)),
        Command::List(args) => with_vault(&|c| list::exec(c, args)),
        Command::Status(args) => with_vault(&|c| status::exec(c, args)),
        Command::Restore(args) => with_vault(&|c| restore::exec(c, args)),
        Command::Cancel(args) => with_vault(&|c| cancel::exec(c, args)),
        Command::Delete(args) => with_vault(&|c| delete::exec(c, args)),
        Command::Export(args) => with_vault(&|c| export::exec(c, args)),
        Command::Import(args) => with_vault(&|c| import::exec(c, args)),
        Command::Verify(args) => verify::exec(args, &cli.output),
        Command::Convert(args) => convert::exec(args),
        Command::Upgrade(args) => with_vault(&|c| upgrade::exec(c, args)),
        Command::Admin(command) => with_vault(&|c| admin::exec(c, command)),
        Command::Embedded(command) => embedded::exec(command, &cli.network, &cli.identity),
        // The demo tells its story with this tool's own command lines, run through this dispatch.
        Command::Demo(args) => demo::exec(args, &|argv| dispatch(Cli::try_parse_from(argv).map_err(CliError::Usage)?)),
    }
}
