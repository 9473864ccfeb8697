//! What the vault's cycles allow: a job starts a batch only with the cycles its calls reserve.

use vault_api::protocol::{CHUNK_SIZE, methods};
use vault_api::service::{JobError, VaultError};

use super::job::BATCH;

/// The vault has fewer cycles than a step needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shortfall {
    pub required: u128,
    pub available: u128,
}

impl From<Shortfall> for VaultError {
    fn from(Shortfall { required, available }: Shortfall) -> Self {
        VaultError::InsufficientCycles { required, available }
    }
}

impl From<Shortfall> for JobError {
    fn from(Shortfall { required, available }: Shortfall) -> Self {
        JobError::InsufficientCycles { required, available }
    }
}

/// Cycles a job needs available when it starts a batch: calls reserve their largest response
/// and callback until they return.
pub fn batch_reserve() -> u128 {
    BATCH as u128 * ic_cdk::api::cost_call(methods::RESTORE_CHUNK.len() as u64, CHUNK_SIZE + 1024) + 1_000_000_000
}

pub fn available() -> u128 {
    ic_cdk::api::canister_liquid_cycle_balance()
}

pub fn check(required: u128) -> Result<(), Shortfall> {
    let available = available();
    if available < required {
        return Err(Shortfall { required, available });
    }
    Ok(())
}
