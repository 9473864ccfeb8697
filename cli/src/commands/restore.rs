//! `vault restore APP SNAPSHOT`: put a snapshot back into its app, or into a clone.

use std::path::PathBuf;

use candid::Principal;
use serde::Serialize;
use vault_api::service::RestoreArgs;
use vault_ops::upgrade_restore;

use super::embedded::interface::InitArgOpt;
use super::embedded::modules;
use crate::context::Context;
use crate::options::parse_principal;
use crate::output::{CliError, Output};
use crate::report::{JobReport, time};

/// Restore a snapshot into its app (or, with `--into`, into another registered canister) and
/// wait for it (unless `--no-wait`). The target's state is replaced in one message at the end;
/// until then it is untouched. A serde state too large to deserialize in one update restores
/// with `--via-upgrade --wasm FILE`: the vault stages the snapshot in the target, then this
/// command upgrades the target with the module (as its controller), whose `post_upgrade` loads
/// it (`vault_client::load_after_upgrade`).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_parser = parse_principal)]
    pub app: Principal,
    /// The snapshot's id (see `vault list APP`).
    pub snapshot: u64,
    /// Restore into this canister instead: a clone, registered with the same vault.
    #[arg(long, value_parser = parse_principal)]
    pub into: Option<Principal>,
    /// Restore even if the target declares another state layout than the snapshot was taken
    /// under (see `vault list APP`): the target's module must read the snapshot's layout.
    #[arg(long)]
    pub allow_layout_change: bool,
    /// Load the snapshot (serde state) in the target's next upgrade, which this command runs with
    /// `--wasm` once the vault has staged it; if the upgrade fails or cannot load it, the target
    /// keeps its module and state.
    #[arg(long, requires = "wasm", conflicts_with = "no_wait")]
    pub via_upgrade: bool,
    /// The module the target is upgraded with (`--via-upgrade`): its own, or one that reads the
    /// snapshot's state.
    #[arg(long, requires = "via_upgrade")]
    pub wasm: Option<PathBuf>,
    /// The argument of the target's `post_upgrade`.
    #[command(flatten)]
    pub init: InitArgOpt,
    /// Print the started job and return; follow it with `vault status --job <id>`.
    #[arg(long)]
    pub no_wait: bool,
}

/// A restore the target's upgrade loaded.
#[derive(Serialize)]
struct LoadedAtUpgrade {
    job: JobReport,
    target: String,
    loaded_at: String,
}

impl std::fmt::Display for LoadedAtUpgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        writeln!(f, "{}", self.job)?;
        write!(f, "{} upgraded: its post_upgrade loaded the snapshot at {}", self.target, self.loaded_at)
    }
}

pub fn exec(context: &mut Context, args: &Args) -> Result<Output, CliError> {
    // The module and its argument are read before anything starts.
    let upgrade = match &args.wasm {
        Some(path) => {
            let module = modules::read(path)?;
            let arg = args.init.encode(&module)?;
            Some((module, arg))
        }
        None => None,
    };
    let (mut vault, progress) = context.vault_with_progress()?;
    let allow_layout_change = args.allow_layout_change.then_some(true);
    let restore = RestoreArgs { app: args.app, snapshot_id: args.snapshot, target: args.into, allow_layout_change, via_upgrade: None };
    if let Some((module, arg)) = upgrade {
        let loaded = upgrade_restore::restore(&mut vault, restore, module, arg, progress)?;
        return Ok(Output::of(&LoadedAtUpgrade {
            job: JobReport::from(loaded.job),
            target: loaded.target.to_text(),
            loaded_at: time(loaded.loaded_at),
        }));
    }
    let job = vault.restore(restore)?;
    let job = if args.no_wait { job } else { vault.wait_for_job(job.id, progress)? };
    Ok(Output::of(&JobReport::from(job)))
}
