//! A canister's settings, as `create_canister` and `update_settings` set them: every field of
//! `canister_settings` is checked with the IC's limits and texts and applied all or nothing,
//! or refused as "not supported by the embedded IC" where the harness cannot honour it; none is
//! accepted and ignored.
//!
//! Sources: rs/execution_environment/src/canister_settings.rs, canister_manager.rs and
//! canister_manager/types.rs, rs/config/src/execution_environment.rs in dfinity/ic, and the
//! interface spec's `create_canister`, `update_settings` and "on low wasm memory".

use std::collections::BTreeMap;

use candid::{Nat, Principal};
use ic_management_canister_types as mgmt;
use sha2::{Digest, Sha256};

use crate::canister::ExecError;
use crate::config::{DEFAULT_FREEZING_THRESHOLD_SECONDS, DEFAULT_WASM_MEMORY_LIMIT};
use crate::logs::LOG_BUFFER_BYTES;
use crate::messages::Reject;
use crate::system_api::{ApiContext, EnvironmentVariables, HostTrap};
use crate::types::ErrorCode;

const MAX_CONTROLLERS: usize = 10;
/// Principals an `allowed_viewers` visibility may name.
const MAX_ALLOWED_VIEWERS: usize = 10;
const MAX_ENVIRONMENT_VARIABLES: usize = 20;
const MAX_ENVIRONMENT_VARIABLE_NAME_BYTES: usize = 128;
const MAX_ENVIRONMENT_VARIABLE_VALUE_BYTES: usize = 128;
/// The largest `wasm_memory_limit` and `wasm_memory_threshold`: 2^48 bytes.
const MAX_WASM_MEMORY_SETTING: u64 = 1 << 48;
const DEFAULT_RESERVED_CYCLES_LIMIT: u128 = 5_000_000_000_000;

/// Who may read a canister's logs, status or snapshots.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Visibility {
    #[default]
    Controllers,
    Public,
    /// The controllers and these principals.
    AllowedViewers(Vec<Principal>),
}

impl Visibility {
    pub fn allows(&self, caller: &Principal, controllers: &[Principal]) -> bool {
        match self {
            Visibility::Controllers => controllers.contains(caller),
            Visibility::Public => true,
            Visibility::AllowedViewers(viewers) => controllers.contains(caller) || viewers.contains(caller),
        }
    }

    fn checked(self) -> Result<Self, Reject> {
        if let Visibility::AllowedViewers(viewers) = &self
            && viewers.len() > MAX_ALLOWED_VIEWERS
        {
            return Err(invalid(format!(
                "Invalid settings: At most {MAX_ALLOWED_VIEWERS} allowed viewers can be specified, got {}.",
                viewers.len()
            )));
        }
        Ok(self)
    }
}

/// The management canister's three visibility types, one shape.
macro_rules! visibility_conversions {
    ($($kind:ident),*) => {$(
        impl From<&mgmt::$kind> for Visibility {
            fn from(visibility: &mgmt::$kind) -> Self {
                match visibility {
                    mgmt::$kind::Controllers => Visibility::Controllers,
                    mgmt::$kind::Public => Visibility::Public,
                    mgmt::$kind::AllowedViewers(viewers) => Visibility::AllowedViewers(viewers.clone()),
                }
            }
        }

        impl From<&Visibility> for mgmt::$kind {
            fn from(visibility: &Visibility) -> Self {
                match visibility {
                    Visibility::Controllers => mgmt::$kind::Controllers,
                    Visibility::Public => mgmt::$kind::Public,
                    Visibility::AllowedViewers(viewers) => mgmt::$kind::AllowedViewers(viewers.clone()),
                }
            }
        }
    )*};
}

visibility_conversions!(LogVisibility, SnapshotVisibility, StatusVisibility);

/// The settings of one canister besides its controllers.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Settings {
    pub freezing_threshold: u64,
    /// The reserved cycles never bind: the harness's subnet is never full enough for the IC to
    /// reserve cycles for storage, so the reserved balance stays 0.
    pub reserved_cycles_limit: u128,
    /// Bytes of Wasm memory; 0 for no limit.
    pub wasm_memory_limit: u64,
    /// `canister_on_low_wasm_memory` is scheduled when the Wasm memory left below
    /// `wasm_memory_limit` falls under this many bytes.
    pub wasm_memory_threshold: u64,
    pub log_visibility: Visibility,
    /// Governs `canister_status`, besides the canister itself.
    pub status_visibility: Visibility,
    /// Governs the snapshot reads, which the harness does not model; kept and shown.
    pub snapshot_visibility: Visibility,
    pub environment_variables: EnvironmentVariables,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            freezing_threshold: DEFAULT_FREEZING_THRESHOLD_SECONDS,
            reserved_cycles_limit: DEFAULT_RESERVED_CYCLES_LIMIT,
            wasm_memory_limit: DEFAULT_WASM_MEMORY_LIMIT,
            wasm_memory_threshold: 0,
            log_visibility: Visibility::default(),
            status_visibility: Visibility::default(),
            snapshot_visibility: Visibility::default(),
            environment_variables: EnvironmentVariables::default(),
        }
    }
}

fn invalid(message: impl Into<String>) -> Reject {
    Reject::system(ErrorCode::InvalidManagementPayload, message)
}

fn out_of_range(message: String) -> Reject {
    Reject::system(ErrorCode::CanisterContractViolation, message)
}

/// A setting whose effect the harness does not produce.
fn not_supported(setting: &str) -> Reject {
    Reject::system(ErrorCode::CanisterRejectedMessage, format!("not supported by the embedded IC: {setting}"))
}

fn to_u64(n: &Nat) -> Option<u64> {
    u64::try_from(n.0.clone()).ok()
}

pub fn check_controllers(controllers: &[Principal]) -> Result<(), Reject> {
    if controllers.len() > MAX_CONTROLLERS {
        return Err(invalid(format!(
            "Invalid settings: At most {MAX_CONTROLLERS} controllers can be specified, got {}.",
            controllers.len()
        )));
    }
    Ok(())
}

fn environment_variables(variables: &[mgmt::EnvironmentVariable]) -> Result<EnvironmentVariables, Reject> {
    let map: BTreeMap<String, String> = variables.iter().map(|v| (v.name.clone(), v.value.clone())).collect();
    if map.len() != variables.len() {
        return Err(invalid("Duplicate environment variables are not allowed"));
    }
    if map.len() > MAX_ENVIRONMENT_VARIABLES {
        return Err(invalid(format!("Too many environment variables: {} (max: {MAX_ENVIRONMENT_VARIABLES})", map.len())));
    }
    for (name, value) in &map {
        if name.len() > MAX_ENVIRONMENT_VARIABLE_NAME_BYTES {
            return Err(invalid(format!(
                "Environment variable name \"{name}\" exceeds the maximum allowed length of {MAX_ENVIRONMENT_VARIABLE_NAME_BYTES}."
            )));
        }
        if value.len() > MAX_ENVIRONMENT_VARIABLE_VALUE_BYTES {
            return Err(invalid(format!(
                "Environment variable value \"{value}\" exceeds the maximum allowed length of {MAX_ENVIRONMENT_VARIABLE_VALUE_BYTES}."
            )));
        }
    }
    Ok(EnvironmentVariables::new(map))
}

/// The representation-independent hash of the variables as a map of strings (the spec's
/// `hash_of_map`), which canister history keeps for a creation.
pub fn environment_variables_hash(variables: &EnvironmentVariables) -> Vec<u8> {
    let mut fields: Vec<Vec<u8>> =
        variables.iter().map(|(name, value)| [Sha256::digest(name.as_bytes()), Sha256::digest(value.as_bytes())].concat()).collect();
    fields.sort();
    Sha256::digest(fields.concat()).to_vec()
}

impl Settings {
    /// Applies the fields `update` sets, each checked first: if one is refused, nothing
    /// changes. `heap_bytes` is the canister's Wasm memory, which a new `wasm_memory_limit`
    /// may not be below (the spec's condition of `update_settings`).
    pub fn apply(&mut self, update: &mgmt::CanisterSettings, heap_bytes: u64) -> Result<(), Reject> {
        let mut next = self.clone();
        if let Some(controllers) = &update.controllers {
            check_controllers(controllers)?;
        }
        if let Some(allocation) = &update.compute_allocation {
            match to_u64(allocation) {
                Some(0) => {}
                Some(1..=100) => return Err(not_supported("compute_allocation other than 0")),
                _ => return Err(out_of_range(format!("ComputeAllocation expected to be in the range [0..100], got {allocation}"))),
            }
        }
        if update.memory_allocation.as_ref().is_some_and(|a| *a != 0u64) {
            return Err(not_supported("memory_allocation other than 0"));
        }
        if update.minimum_incoming_canister_call_cycles.as_ref().is_some_and(|c| *c != 0u64) {
            return Err(not_supported("minimum_incoming_canister_call_cycles other than 0"));
        }
        if update.log_memory_limit.as_ref().is_some_and(|l| *l != LOG_BUFFER_BYTES as u64) {
            return Err(not_supported(&format!("log_memory_limit other than {LOG_BUFFER_BYTES}")));
        }
        if let Some(threshold) = &update.freezing_threshold {
            next.freezing_threshold = to_u64(threshold)
                .ok_or_else(|| out_of_range(format!("Freezing threshold expected to be in the range of [0..2^64-1], got {threshold}")))?;
        }
        if let Some(limit) = &update.reserved_cycles_limit {
            next.reserved_cycles_limit = u128::try_from(limit.0.clone())
                .map_err(|_| out_of_range(format!("Reserved cycles limit expected to be in the range of [0..2^128-1], got {limit}")))?;
        }
        if let Some(limit) = &update.wasm_memory_limit {
            let bytes = to_u64(limit)
                .filter(|&l| l <= MAX_WASM_MEMORY_SETTING)
                .ok_or_else(|| out_of_range(format!("Wasm memory limit expected to be in the range of [0..2^64-1], got {limit}")))?;
            if bytes != 0 && heap_bytes > bytes {
                return Err(invalid(format!(
                    "Invalid settings: wasm_memory_limit {bytes} is below the canister's Wasm memory usage of {heap_bytes} bytes."
                )));
            }
            next.wasm_memory_limit = bytes;
        }
        if let Some(threshold) = &update.wasm_memory_threshold {
            next.wasm_memory_threshold = to_u64(threshold).filter(|&t| t <= MAX_WASM_MEMORY_SETTING).ok_or_else(|| {
                out_of_range(format!("Wasm memory threshold expected to be in the range of [0..2^64-1], got {threshold}"))
            })?;
        }
        if let Some(visibility) = &update.log_visibility {
            next.log_visibility = Visibility::from(visibility).checked()?;
        }
        if let Some(visibility) = &update.status_visibility {
            next.status_visibility = Visibility::from(visibility).checked()?;
        }
        if let Some(visibility) = &update.snapshot_visibility {
            next.snapshot_visibility = Visibility::from(visibility).checked()?;
        }
        if let Some(variables) = &update.environment_variables {
            next.environment_variables = environment_variables(variables)?;
        }
        *self = next;
        Ok(())
    }

    /// The `wasm_memory_limit` an execution in `context` is held to. The IC enforces it in
    /// updates, `canister_init` and `canister_post_upgrade` only: not in queries, reply and
    /// reject callbacks, cleanups, timers, heartbeats, the low-memory hook or pre_upgrade
    /// (`effective_wasm_memory_limit` in rs/embedders system_api.rs).
    pub fn wasm_memory_limit_in(&self, context: ApiContext) -> Option<u64> {
        (matches!(context, ApiContext::Update | ApiContext::Init) && self.wasm_memory_limit != 0).then_some(self.wasm_memory_limit)
    }

    /// Why a call or an install is refused once the heap exceeds the limit: it can grow past it
    /// where the limit is not enforced, and the IC then refuses every update before running it
    /// and fails an install or upgrade that ends above it.
    pub fn heap_over_limit(&self, heap_bytes: u64) -> Option<ExecError> {
        let limit = self.wasm_memory_limit;
        (limit != 0 && heap_bytes > limit).then(|| {
            let trap = HostTrap::WasmMemoryLimit { limit, peak: heap_bytes };
            ExecError { code: trap.error_code(), display: trap.to_string(), help: trap.help() }
        })
    }

    /// The condition of `canister_on_low_wasm_memory`: less than `wasm_memory_threshold` bytes
    /// left below `wasm_memory_limit` (a limit of 0 counts as 0 bytes, as on the IC).
    pub fn low_wasm_memory(&self, heap_bytes: u64) -> bool {
        self.wasm_memory_limit < heap_bytes.saturating_add(self.wasm_memory_threshold)
    }

    /// The settings as `canister_status` shows them.
    pub fn definite(&self, controllers: &[Principal]) -> mgmt::DefiniteCanisterSettings {
        mgmt::DefiniteCanisterSettings {
            controllers: controllers.to_vec(),
            compute_allocation: Nat::from(0u64),
            memory_allocation: Nat::from(0u64),
            freezing_threshold: Nat::from(self.freezing_threshold),
            reserved_cycles_limit: Nat::from(self.reserved_cycles_limit),
            minimum_incoming_canister_call_cycles: Nat::from(0u64),
            log_visibility: (&self.log_visibility).into(),
            log_memory_limit: Nat::from(LOG_BUFFER_BYTES),
            snapshot_visibility: (&self.snapshot_visibility).into(),
            status_visibility: (&self.status_visibility).into(),
            wasm_memory_limit: Nat::from(self.wasm_memory_limit),
            wasm_memory_threshold: Nat::from(self.wasm_memory_threshold),
            environment_variables: self
                .environment_variables
                .iter()
                .map(|(name, value)| mgmt::EnvironmentVariable { name: name.to_string(), value: value.to_string() })
                .collect(),
        }
    }
}

/// Where `canister_on_low_wasm_memory` stands (the IC's `OnLowWasmMemoryHookStatus`): the
/// condition turning true makes it ready, running it marks it executed, and only the condition
/// turning false in between lets it run again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LowMemoryHook {
    #[default]
    ConditionNotSatisfied,
    Ready,
    Executed,
}

impl LowMemoryHook {
    pub fn update(&mut self, condition: bool) {
        *self = match (*self, condition) {
            (_, false) => LowMemoryHook::ConditionNotSatisfied,
            (LowMemoryHook::ConditionNotSatisfied, true) => LowMemoryHook::Ready,
            (status, true) => status,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(update: mgmt::CanisterSettings) -> Result<Settings, Reject> {
        let mut settings = Settings::default();
        settings.apply(&update, 0).map(|()| settings)
    }

    #[test]
    fn a_refused_update_changes_nothing() {
        let mut settings = Settings::default();
        let update = mgmt::CanisterSettings {
            freezing_threshold: Some(Nat::from(7u64)),
            compute_allocation: Some(Nat::from(5u64)),
            ..Default::default()
        };
        let reject = settings.apply(&update, 0).unwrap_err();
        assert_eq!(reject.user_message, "not supported by the embedded IC: compute_allocation other than 0");
        assert_eq!(settings, Settings::default());
    }

    #[test]
    fn environment_variables_are_checked_and_sorted() {
        let var = |name: &str, value: &str| mgmt::EnvironmentVariable { name: name.into(), value: value.into() };
        let settings =
            with(mgmt::CanisterSettings { environment_variables: Some(vec![var("b", "2"), var("a", "1")]), ..Default::default() }).unwrap();
        assert_eq!(settings.environment_variables.iter().collect::<Vec<_>>(), [("a", "1"), ("b", "2")]);
        let duplicate =
            with(mgmt::CanisterSettings { environment_variables: Some(vec![var("a", "1"), var("a", "2")]), ..Default::default() });
        assert_eq!(duplicate.unwrap_err().user_message, "Duplicate environment variables are not allowed");
        let many = (0..21).map(|i| var(&format!("v{i}"), "")).collect();
        let too_many = with(mgmt::CanisterSettings { environment_variables: Some(many), ..Default::default() });
        assert_eq!(too_many.unwrap_err().user_message, "Too many environment variables: 21 (max: 20)");
        let long = with(mgmt::CanisterSettings { environment_variables: Some(vec![var("a", &"x".repeat(129))]), ..Default::default() });
        assert!(long.unwrap_err().user_message.ends_with("exceeds the maximum allowed length of 128."));
    }

    #[test]
    fn the_hash_of_the_variables_is_the_hash_of_a_map() {
        // H(concat(sort [H(name) · H(value)])), the spec's hash_of_map.
        let variables = EnvironmentVariables::new(BTreeMap::from([("a".to_string(), "1".to_string())]));
        let expected = Sha256::digest([Sha256::digest(b"a"), Sha256::digest(b"1")].concat()).to_vec();
        assert_eq!(environment_variables_hash(&variables), expected);
    }

    #[test]
    fn the_hook_runs_once_each_time_its_condition_turns_true() {
        let mut hook = LowMemoryHook::default();
        hook.update(true);
        assert_eq!(hook, LowMemoryHook::Ready);
        hook = LowMemoryHook::Executed;
        hook.update(true);
        assert_eq!(hook, LowMemoryHook::Executed, "still low: it does not run again");
        hook.update(false);
        hook.update(true);
        assert_eq!(hook, LowMemoryHook::Ready);
    }

    #[test]
    fn the_limit_binds_in_updates_and_install_hooks_only() {
        let settings = Settings { wasm_memory_limit: 1 << 20, ..Settings::default() };
        assert_eq!(settings.wasm_memory_limit_in(ApiContext::Update), Some(1 << 20));
        assert_eq!(settings.wasm_memory_limit_in(ApiContext::Init), Some(1 << 20));
        for context in
            [ApiContext::Heartbeat, ApiContext::GlobalTimer, ApiContext::ReplyCallback, ApiContext::PreUpgrade, ApiContext::ReplicatedQuery]
        {
            assert_eq!(settings.wasm_memory_limit_in(context), None, "{context:?}");
        }
        let unlimited = Settings { wasm_memory_limit: 0, ..Settings::default() };
        assert_eq!(unlimited.wasm_memory_limit_in(ApiContext::Update), None);
    }
}
