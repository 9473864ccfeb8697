//! What the vault's cycles and stable memory allow: a job starts a batch only with the cycles
//! its calls reserve, and nothing spends into the reserves that keep the vault alive: cycles to
//! store what it holds for `Limits::reserve_days` days, and stable memory for its records. And
//! what the quotas allow an app and its registrant to hold and spend.

use candid::Principal;
use vault_api::protocol::{CHUNK_SIZE, WASM_PAGE_SIZE, methods};

use crate::state::with_state;
use vault_api::service::{JobError, Limits, VaultError};

use super::job::{MAX_BATCH, MIN_BATCH};

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

/// Cycles one chunk call reserves until it returns: its largest response and its callback.
fn call_reserve() -> u128 {
    ic_cdk::api::cost_call(methods::RESTORE_CHUNK.len() as u64, CHUNK_SIZE + 1024)
}

/// Cycles a job needs available when it starts a batch: [`MIN_BATCH`] calls' reservations.
pub fn batch_reserve() -> u128 {
    MIN_BATCH as u128 * call_reserve() + 1_000_000_000
}

/// Chunk calls the next batch may make: [`MIN_BATCH`], and one more for each further call's
/// reservation the vault has to spare beyond its reserve, up to [`MAX_BATCH`], and no more than
/// `room` (calls the vault may still have in flight besides those of its other batches).
pub fn batch_size(room: u32) -> u32 {
    let spare = available().saturating_sub(batch_reserve()) / call_reserve().max(1);
    let affordable = MIN_BATCH.saturating_add(u32::try_from(spare).unwrap_or(u32::MAX));
    affordable.min(MAX_BATCH).min(room)
}

/// Storage fee at 13-node application subnet prices: cycles per GiB per second.
const STORAGE_FEE_PER_GIB_SECOND: u128 = 127_000;

/// Stable memory the vault's `MemoryManager` hands out at most, to all its memories together:
/// 32,768 buckets of 128 wasm pages (ic-stable-structures 0.7), 256 GiB, under the IC's limit.
const MEMORY_MANAGER_CAPACITY: u64 = 32_768 * 128 * WASM_PAGE_SIZE;

/// Stable memory the vault leaves free, for its records and the bookkeeping of the jobs running.
pub const STABLE_RESERVE: u64 = 4 << 30;

/// Cycles that store `stable_bytes` for `days` days.
pub fn storage_reserve(stable_bytes: u64, days: u32) -> u128 {
    stable_bytes as u128 * STORAGE_FEE_PER_GIB_SECOND * 86_400 * days as u128 / (1 << 30)
}

pub fn stable_bytes() -> u64 {
    ic_cdk::api::stable_size() * WASM_PAGE_SIZE
}

/// The cycles reserve now.
pub fn reserved() -> u128 {
    storage_reserve(stable_bytes(), with_state(|s| s.config().limits.reserve_days))
}

/// Cycles a job or import may spend: the liquid balance less the reserve.
pub fn available() -> u128 {
    ic_cdk::api::canister_liquid_cycle_balance().saturating_sub(reserved())
}

/// Bytes of new snapshots the vault's stable memory takes before its reserve.
pub fn stable_room() -> u64 {
    MEMORY_MANAGER_CAPACITY.saturating_sub(STABLE_RESERVE).saturating_sub(stable_bytes())
}

/// Cycles an import of `chunks` chunks costs the vault: it pays each chunk's ingress and
/// execution.
pub fn import_estimate(chunks: u32) -> u128 {
    chunks as u128 * import_chunk_cost(CHUNK_SIZE)
}

/// Cycles the vault pays for an import's chunk of `bytes` bytes: its ingress and execution
/// (13-node prices: 1.2 M per message and 2,000 per byte of it, its candid framing counted as
/// 1 KiB, an update's 5 M, and 100 M for hashing and storing).
pub fn import_chunk_cost(bytes: u64) -> u128 {
    1_200_000 + 2_000 * (bytes as u128 + 1024) + 5_000_000 + 100_000_000
}

/// Refuses a new snapshot of `size` bytes that would take what `app` holds (`held`) past its
/// quota of bytes, or what the apps of the principal charged for it hold (`registrant`) past
/// that principal's.
pub fn bytes_quota(app: Principal, held: u64, registrant: Option<(Principal, u64)>, size: u64, limits: &Limits) -> Result<(), VaultError> {
    if held.saturating_add(size) > limits.app_bytes {
        return Err(VaultError::QuotaExceeded { app, what: "bytes".into(), used: held, limit: limits.app_bytes, registrant: None });
    }
    if let Some((registrant, used)) = registrant
        && used.saturating_add(size) > limits.registrant_bytes
    {
        return Err(VaultError::QuotaExceeded { app, what: "bytes".into(), used, limit: limits.registrant_bytes, registrant: Some(registrant) });
    }
    Ok(())
}

/// Refuses work estimated at `estimate` cycles that would take what the vault spent on `app`
/// this UTC day, `today`, past `limit`.
pub fn day_quota(app: Principal, today: u128, estimate: u128, limit: u64) -> Result<(), VaultError> {
    if today.saturating_add(estimate) > limit as u128 {
        let used = u64::try_from(today).unwrap_or(u64::MAX);
        return Err(VaultError::QuotaExceeded { app, what: "cycles per day".into(), used, limit, registrant: None });
    }
    Ok(())
}

/// Whether the vault may take one more chunk of an import now: it pays the chunk's ingress and
/// stores it, neither of which may eat into its reserves (begun imports are checked again per
/// chunk, before the ingress is paid: other apps may have spent since they began).
pub fn room_for_import_chunk() -> Result<(), VaultError> {
    check(import_estimate(1))?;
    let room = stable_room();
    if room < CHUNK_SIZE {
        return Err(VaultError::StorageFull { needed: CHUNK_SIZE, available: room, reserved: STABLE_RESERVE });
    }
    Ok(())
}

pub fn check(required: u128) -> Result<(), Shortfall> {
    let available = available();
    if available < required {
        return Err(Shortfall { required, available });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_pays_for_storing_the_memory_for_its_days() {
        // 1 GiB for 90 days: 127,000 cycles a second (IC-FACTS), about 0.99 T.
        assert_eq!(storage_reserve(1 << 30, 90), 127_000 * 86_400 * 90);
        assert_eq!(storage_reserve(1 << 30, 0), 0);
        assert_eq!(storage_reserve(512 << 20, 2), 127_000 * 86_400);
    }
}
