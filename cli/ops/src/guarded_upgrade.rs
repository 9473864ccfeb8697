//! An upgrade with a safety net: a snapshot of the app (through its own capture, library or
//! native), complete in the vault, before its module changes. Nothing is upgraded unless the
//! snapshot succeeded; a refused upgrade names the snapshot that holds the state before it.

use candid::Principal;
use sha2::{Digest, Sha256};
use vault_api::service::SnapshotInfo;

use crate::error::OpsError;
use crate::transport::CallError;
use crate::progress::Progress;
use crate::vault::Vault;

/// An upgrade done: the snapshot taken before it, and the module installed.
pub struct Upgraded {
    pub before: SnapshotInfo,
    /// The SHA-256 of the module as installed (the IC's `module_hash`).
    pub module_hash: [u8; 32],
    pub module_bytes: u64,
}

/// Snapshots `app`, waits until the snapshot is complete in the vault, then upgrades `app` to
/// `module` (its `post_upgrade` given `arg`) as its controller. A refused upgrade is
/// [`OpsError::UpgradeRefused`], which names the snapshot; one with no answer is
/// [`OpsError::UpgradeUnknown`].
pub fn upgrade(vault: &mut Vault, app: Principal, module: Vec<u8>, arg: Vec<u8>, progress: &mut dyn Progress) -> Result<Upgraded, OpsError> {
    let job = vault.snapshot_now(app)?;
    let job = vault.wait_for_job(job.id, progress)?;
    let id = job.snapshot_id.ok_or(OpsError::Unnamed { job: job.id })?;
    let before = vault.snapshot(app, id)?;
    let module_hash = Sha256::digest(&module).into();
    let module_bytes = module.len() as u64;
    match vault.upgrade(app, module, arg) {
        Ok(()) => Ok(Upgraded { before, module_hash, module_bytes }),
        Err(error @ CallError::Rejected { .. }) => Err(OpsError::UpgradeRefused { app, snapshot: before.id, error: Box::new(error), restored: None }),
        // No answer: the upgrade may still run, so nothing is restored over it.
        Err(CallError::Transport(error)) => Err(OpsError::UpgradeUnknown { app, snapshot: before.id, error }),
    }
}
