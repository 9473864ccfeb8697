//! Why an operation failed: one enum for everything below the CLI's commands.

use candid::Principal;
use vault_api::service::{JobInfo, VaultError};

use crate::file::FileError;
use crate::transport::CallError;

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("calling {method}: {error}")]
    Call { method: &'static str, error: CallError },
    #[error("{method} replied with bytes that are not its candid result: {message}")]
    Decode { method: &'static str, message: String },
    #[error("the vault refused: {0}")]
    Vault(VaultError),
    #[error("{0}")]
    File(#[from] FileError),
    #[error("job {} failed: {}", .0.id, .0.error.as_ref().map(ToString::to_string).unwrap_or_else(|| "no reason given".into()))]
    JobFailed(Box<JobInfo>),
    #[error("the vault served {what} for snapshot {snapshot_id} of {app} that does not match its manifest")]
    Inconsistent { app: Principal, snapshot_id: u64, what: String },
}
