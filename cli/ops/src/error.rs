//! Why an operation failed: one enum for everything below the CLI's commands.

use candid::Principal;
use vault_api::protocol::BackupError;
use vault_api::service::{JobInfo, Registration, VaultError};

use crate::file::FileError;
use crate::transport::CallError;

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("calling {method}: {error}")]
    Call { method: &'static str, error: CallError },
    #[error("{method} replied with bytes that are not its candid result: {message}")]
    Decode { method: &'static str, message: String },
    #[error("the vault refused: {}", refusal(.0))]
    Vault(VaultError),
    #[error("{0}")]
    File(#[from] FileError),
    #[error("job {} failed: {}", .0.id, .0.error.as_ref().map(ToString::to_string).unwrap_or_else(|| "no reason given".into()))]
    JobFailed(Box<JobInfo>),
    #[error("the vault served {what} for snapshot {snapshot_id} of {app} that does not match its manifest")]
    Inconsistent { app: Principal, snapshot_id: u64, what: String },
    #[error("{app} refused: {error}")]
    App { app: Principal, error: BackupError },
    #[error("upgrading {target} failed, so it keeps its module and state; job {job}'s snapshot stays staged for its next upgrade: {error}")]
    UpgradeFailed { target: Principal, job: u64, error: CallError },
    #[error("the upgrade of {target} did not load job {job}'s snapshot, and {target} keeps the state it had: {reason}")]
    NotLoaded { target: Principal, job: u64, reason: String },
    #[error("job {job} succeeded without naming its snapshot")]
    Unnamed { job: u64 },
    #[error(
        "upgrading {app} failed: {error}. A rejected upgrade leaves a canister as it was; snapshot {snapshot}, taken just before, holds its state{}",
        .restored.map(|job| format!(", and job {job} restored it")).unwrap_or_else(|| format!(": `vault restore {app} {snapshot}` puts it back"))
    )]
    UpgradeRefused { app: Principal, snapshot: u64, error: Box<CallError>, restored: Option<u64> },
    #[error(
        "upgrading {app} got no answer ({error}): the upgrade may have run or may still run; check the app before anything else. Snapshot {snapshot}, taken just before, holds its state: `vault restore {app} {snapshot}` puts it back"
    )]
    UpgradeUnknown { app: Principal, snapshot: u64, error: String },
    #[error("{}: {reason}", .path.display())]
    SnapshotDir { path: std::path::PathBuf, reason: String },
}

/// The vault's refusal in the command line's words: the refusals of its administration also
/// say which command would let the request through.
fn refusal(error: &VaultError) -> String {
    match error {
        VaultError::NotAnAdministrator { caller } => format!(
            "{caller} is not an administrator of this vault (its controllers are, and the principals they name with `vault admin administrators`)"
        ),
        VaultError::RegistrationClosed { caller, mode: Registration::AllowList } => format!(
            "{caller} may not register apps: it is not on this vault's allow-list (an administrator adds it with `vault admin allow {caller}`)"
        ),
        VaultError::RegistrationClosed { caller, mode: Registration::Administrators } => format!(
            "{caller} may not register apps: only administrators do on this vault (an administrator opens it to an allow-list with `vault admin registration allow-list`)"
        ),
        VaultError::Suspended { app, suspension } => format!(
            "{app} is suspended by {} ({:?}): it takes no new snapshot, restore or import until an administrator runs `vault admin resume {app}`",
            suspension.by, suspension.reason
        ),
        VaultError::TooMany { what, max } => format!("too many {what}: the vault takes at most {max}"),
        VaultError::NotCancellable { job, reason } => format!("job {job} cannot be cancelled: {reason} (see `vault status --job {job}`)"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use vault_api::service::Suspension;

    use super::*;

    fn refused(error: VaultError) -> String {
        OpsError::Vault(error).to_string()
    }

    #[test]
    fn administration_refusals_name_the_command_that_lets_the_request_through() {
        let caller = Principal::from_slice(&[3; 29]);
        let app = Principal::from_slice(&[7; 29]);
        let closed = refused(VaultError::RegistrationClosed { caller, mode: Registration::AllowList });
        assert!(closed.contains(&format!("`vault admin allow {caller}`")), "{closed}");
        let closed = refused(VaultError::RegistrationClosed { caller, mode: Registration::Administrators });
        assert!(closed.contains("only administrators") && closed.contains("`vault admin registration allow-list`"), "{closed}");
        let suspension = Suspension { by: caller, at_nanos: 0, reason: "over quota\n\u{1b}[2J".into() };
        let suspended = refused(VaultError::Suspended { app, suspension });
        assert!(suspended.contains(r#"("over quota\n\u{1b}[2J")"#) && suspended.contains(&format!("`vault admin resume {app}`")), "{suspended}");
        assert!(!suspended.contains('\n'), "the reason's control characters are escaped: {suspended}");
        assert!(refused(VaultError::NotAnAdministrator { caller }).contains("is not an administrator of this vault"));
        assert_eq!(
            refused(VaultError::TooMany { what: "administrators".into(), max: 10 }),
            "the vault refused: too many administrators: the vault takes at most 10"
        );
        let over = refused(VaultError::NotCancellable { job: 4, reason: "it is over".into() });
        assert_eq!(over, "the vault refused: job 4 cannot be cancelled: it is over (see `vault status --job 4`)");
        assert_eq!(refused(VaultError::UnknownJob { job: 4 }), "the vault refused: there is no job 4");
    }
}
