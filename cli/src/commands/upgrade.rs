//! `vault upgrade APP --wasm FILE`: upgrade an app with a snapshot of it taken first.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use candid::Principal;
use serde::Serialize;
use vault_api::protocol::StateKind;
use vault_api::service::RestoreArgs;
use vault_ops::{OpsError, guarded_upgrade};

use super::embedded::interface::InitArgOpt;
use super::embedded::modules;
use crate::context::Context;
use crate::options::parse_principal;
use crate::output::{CliError, Output};
use crate::report::{SnapshotReport, size};

/// Upgrade a registered app, as its controller, once a snapshot of it is complete in the vault
/// (taken as the app is captured: through its library or natively); nothing is upgraded if the
/// snapshot fails. Prints how to roll back. If the upgrade fails, the app keeps its module and
/// state (the IC rolls a failed upgrade back); the command then offers to restore the snapshot
/// anyway (asked on a terminal, done with `--restore-on-failure`, printed otherwise).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_parser = parse_principal)]
    pub app: Principal,
    /// The new module, plain or gzip-compressed.
    #[arg(long)]
    pub wasm: PathBuf,
    /// The argument of the new module's `post_upgrade`.
    #[command(flatten)]
    pub init: InitArgOpt,
    /// If the upgrade fails, restore the snapshot taken before it without asking.
    #[arg(long)]
    pub restore_on_failure: bool,
}

#[derive(Serialize)]
struct Upgraded {
    app: String,
    /// The SHA-256 of the module installed, in hex.
    module_hash: String,
    module_bytes: u64,
    /// The snapshot taken before the upgrade.
    before: SnapshotReport,
    /// Whether restoring `before` also puts the previous module back (a native snapshot holds
    /// the module; a library snapshot holds the state alone).
    restore_includes_module: bool,
    /// How to roll back.
    rollback: String,
}

impl std::fmt::Display for Upgraded {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        writeln!(f, "{} upgraded: module 0x{} ({})", self.app, self.module_hash, size(self.module_bytes))?;
        writeln!(f, "snapshot taken before: {}", self.before)?;
        write!(f, "to roll back: {}", self.rollback)
    }
}

/// How to go back to the state (and, for a native snapshot, the module) of `before`.
fn rollback(before: &SnapshotReport, native: bool) -> String {
    let restore = format!("vault restore {} {}", before.app, before.id);
    if native {
        return format!("`{restore}` (module, heap and stable memory)");
    }
    let module = before.module_hash.as_deref().map(|m| format!(" (0x{m})")).unwrap_or_default();
    format!("upgrade {} back to its previous module{module}, then `{restore}`", before.app)
}

pub fn exec(context: &mut Context, args: &Args) -> Result<Output, CliError> {
    // The module and its argument are read before anything starts.
    let module = modules::read(&args.wasm)?;
    let arg = args.init.encode(&module)?;
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let (mut vault, progress) = context.vault_with_progress()?;
    match guarded_upgrade::upgrade(&mut vault, args.app, module, arg, progress) {
        Ok(done) => {
            let native = done.before.state_kind == StateKind::Native;
            let before = SnapshotReport::from(done.before);
            Ok(Output::of(&Upgraded {
                app: args.app.to_text(),
                module_hash: vault_api::hex(&done.module_hash),
                module_bytes: done.module_bytes,
                restore_includes_module: native,
                rollback: rollback(&before, native),
                before,
            }))
        }
        Err(OpsError::UpgradeRefused { app, snapshot, error, restored: None }) => {
            let refused = OpsError::UpgradeRefused { app, snapshot, error: error.clone(), restored: None };
            if !(args.restore_on_failure || interactive && confirm(&format!("{refused}\nRestore snapshot {snapshot} into {app} now (what it did since is lost)? [y/N] "))) {
                return Err(refused.into());
            }
            let restore = RestoreArgs { app, snapshot_id: snapshot, target: None, allow_layout_change: None, via_upgrade: None };
            match vault.restore(restore).and_then(|job| vault.wait_for_job(job.id, progress)) {
                Ok(job) => Err(OpsError::UpgradeRefused { app, snapshot, error, restored: Some(job.id) }.into()),
                Err(failed) => Err(CliError::Invalid(format!("{refused}; restoring it failed: {failed}"))),
            }
        }
        Err(other) => Err(other.into()),
    }
}

/// Asks `question` on the terminal; true for an answer of `y` or `yes`.
fn confirm(question: &str) -> bool {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).is_ok() && matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}
