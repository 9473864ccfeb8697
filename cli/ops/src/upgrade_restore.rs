//! A restore through the target's upgrade, for a serde state too large to deserialize in one
//! update: the vault's job stages the snapshot in the target, which checks it; then the target
//! is upgraded with the module given, as its controller, and its `post_upgrade`
//! (`vault_client::load_after_upgrade`) loads the snapshot in place of the state it saved. The
//! target's backup info says whether it did.

use candid::Principal;
use vault_api::protocol::UpgradeLoad;
use vault_api::service::{JobInfo, RestoreArgs};

use crate::error::OpsError;
use crate::progress::Progress;
use crate::vault::Vault;

/// What the upgrade loaded: the job, and when (the target's time, in nanoseconds).
pub struct LoadedAtUpgrade {
    pub job: JobInfo,
    pub target: Principal,
    pub loaded_at: u64,
}

/// Restores `args` (its `via_upgrade` set) and upgrades the target with `module`, `arg` for its
/// `post_upgrade`, once the job succeeded.
pub fn restore(vault: &mut Vault, args: RestoreArgs, module: Vec<u8>, arg: Vec<u8>, progress: &mut dyn Progress) -> Result<LoadedAtUpgrade, OpsError> {
    let target = args.target.unwrap_or(args.app);
    // Only the target's controllers (and its vault) read its backup info: one that cannot would
    // not upgrade it either, and is told so before anything is staged.
    vault.backup_info(target)?;
    let job = vault.restore(RestoreArgs { via_upgrade: Some(true), ..args })?;
    let job = vault.wait_for_job(job.id, progress)?;
    vault.upgrade(target, module, arg).map_err(|error| OpsError::UpgradeFailed { target, job: job.id, error })?;
    let not_loaded = |reason: String| OpsError::NotLoaded { target, job: job.id, reason };
    match vault.backup_info(target)?.upgrade_restore {
        Some(restore) if restore.job == job.id => match restore.state {
            UpgradeLoad::Loaded { at } => Ok(LoadedAtUpgrade { job, target, loaded_at: at }),
            UpgradeLoad::Failed { reason } => Err(not_loaded(reason)),
            UpgradeLoad::Pending => Err(not_loaded("its post_upgrade does not call vault_client::load_after_upgrade".into())),
        },
        Some(other) => Err(not_loaded(format!("a restore of job {} took its place", other.job))),
        None => Err(not_loaded("its client library reports no restore staged for an upgrade (a library before such restores?)".into())),
    }
}
