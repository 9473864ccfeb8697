//! Canister settings: each field of `canister_settings` is applied as the IC applies it, or
//! refused as not supported, never accepted and ignored. Environment variables reach
//! `ic0.env_var_*`; `wasm_memory_limit` binds where the IC enforces it; `wasm_memory_threshold`
//! schedules `canister_on_low_wasm_memory` once each time the heap comes that close to it.

use crate::common::*;
use candid::{Nat, Principal};
use ic_harness::{ErrorCode, Harness};
use ic_management_canister_types::{
    CanisterSettings, DefiniteCanisterSettings, EnvironmentVariable, LogVisibility, SnapshotVisibility, StatusVisibility,
};

const MIB: u64 = 1 << 20;

fn var(name: &str, value: &str) -> EnvironmentVariable {
    EnvironmentVariable { name: name.to_string(), value: value.to_string() }
}

fn env_vars(ic: &Harness, id: Principal) -> Vec<(String, String)> {
    query::<_, (Vec<(String, String)>,)>(ic, id, "env_vars", ()).unwrap().0
}

fn heap(ic: &Harness, id: Principal) -> u64 {
    query::<_, (u64,)>(ic, id, "heap_bytes", ()).unwrap().0
}

fn hook_runs(ic: &Harness, id: Principal) -> u64 {
    query::<_, (u64,)>(ic, id, "hook_runs", ()).unwrap().0
}

fn set(ic: &Harness, id: Principal, settings: CanisterSettings) -> Result<(), ic_harness::RejectResponse> {
    ic.update_canister_settings(id, Some(controller()), settings)
}

/// MiB to grow a heap of `heap` bytes by so that it passes `bytes`.
fn mib_past(heap: u64, bytes: u64) -> u64 {
    (bytes - heap) / MIB + 1
}

#[test]
fn environment_variables_reach_the_canister_in_name_order() {
    let ic = Harness::new();
    let id = settings_canister(
        &ic,
        CanisterSettings { environment_variables: Some(vec![var("ZONE", "eu"), var("API_URL", "https://a")]), ..Default::default() },
    );
    let expected = vec![("API_URL".to_string(), "https://a".to_string()), ("ZONE".to_string(), "eu".to_string())];
    assert_eq!(env_vars(&ic, id), expected);
    assert_eq!(query::<_, (Option<String>,)>(&ic, id, "env_var", ("ZONE",)).unwrap().0.as_deref(), Some("eu"));
    assert_eq!(query::<_, (Option<String>,)>(&ic, id, "env_var", ("MISSING",)).unwrap().0, None);
    let status = ic.canister_status(id, Some(controller())).unwrap();
    assert_eq!(status.settings.environment_variables, vec![var("API_URL", "https://a"), var("ZONE", "eu")]);

    set(&ic, id, CanisterSettings { environment_variables: Some(vec![var("ONLY", "1")]), ..Default::default() }).unwrap();
    assert_eq!(env_vars(&ic, id), vec![("ONLY".to_string(), "1".to_string())]);
    let r = rejected(update::<_, (String,)>(&ic, id, "env_var_or_trap", ("ZONE",)));
    assert_eq!(r.error_code, ErrorCode::CanisterContractViolation);
    assert_eq!(r.reject_message, format!("Error from Canister {id}: Environment variable ZONE not found."));
}

#[test]
fn environment_variables_are_held_to_the_ic_limits() {
    let ic = Harness::new();
    let id = settings_canister(&ic, CanisterSettings::default());
    let refused = |vars: Vec<EnvironmentVariable>| {
        let r = set(&ic, id, CanisterSettings { environment_variables: Some(vars), ..Default::default() }).unwrap_err();
        assert_eq!(r.error_code, ErrorCode::InvalidManagementPayload);
        r.reject_message
    };
    assert_eq!(refused((0..21).map(|i| var(&format!("V{i}"), "")).collect()), "Too many environment variables: 21 (max: 20)");
    assert_eq!(refused(vec![var("A", "1"), var("A", "2")]), "Duplicate environment variables are not allowed");
    let name = "N".repeat(129);
    assert_eq!(refused(vec![var(&name, "")]), format!("Environment variable name \"{name}\" exceeds the maximum allowed length of 128."));
    let value = "v".repeat(129);
    assert_eq!(
        refused(vec![var("A", &value)]),
        format!("Environment variable value \"{value}\" exceeds the maximum allowed length of 128.")
    );
    assert!(env_vars(&ic, id).is_empty(), "a refused update sets nothing");
}

#[test]
fn every_setting_reads_back_from_canister_status() {
    let ic = Harness::new();
    let viewer = Principal::from_slice(&[0x77; 29]);
    let id = settings_canister(
        &ic,
        CanisterSettings {
            freezing_threshold: Some(Nat::from(1_000u64)),
            reserved_cycles_limit: Some(Nat::from(123u64)),
            wasm_memory_limit: Some(Nat::from(0u64)),
            wasm_memory_threshold: Some(Nat::from(MIB)),
            log_visibility: Some(LogVisibility::Public),
            snapshot_visibility: Some(SnapshotVisibility::AllowedViewers(vec![viewer])),
            status_visibility: Some(StatusVisibility::AllowedViewers(vec![viewer])),
            environment_variables: Some(vec![var("A", "1")]),
            compute_allocation: Some(Nat::from(0u64)),
            memory_allocation: Some(Nat::from(0u64)),
            log_memory_limit: Some(Nat::from(4096u64)),
            minimum_incoming_canister_call_cycles: Some(Nat::from(0u64)),
            ..Default::default()
        },
    );
    let status = ic.canister_status(id, Some(controller())).unwrap();
    let expected = DefiniteCanisterSettings {
        controllers: vec![controller()],
        compute_allocation: Nat::from(0u64),
        memory_allocation: Nat::from(0u64),
        freezing_threshold: Nat::from(1_000u64),
        reserved_cycles_limit: Nat::from(123u64),
        minimum_incoming_canister_call_cycles: Nat::from(0u64),
        log_visibility: LogVisibility::Public,
        log_memory_limit: Nat::from(4096u64),
        snapshot_visibility: SnapshotVisibility::AllowedViewers(vec![viewer]),
        status_visibility: StatusVisibility::AllowedViewers(vec![viewer]),
        wasm_memory_limit: Nat::from(0u64),
        wasm_memory_threshold: Nat::from(MIB),
        environment_variables: vec![var("A", "1")],
    };
    assert_eq!(status.settings, expected);
    assert_eq!(status.reserved_cycles, Nat::from(0u64), "the harness's subnet never reserves cycles");
    // The allowed viewer may read the status; anyone else still may not.
    assert!(ic.canister_status(id, Some(viewer)).is_ok());
    assert_eq!(ic.canister_status(id, Some(stranger())).unwrap_err().error_code, ErrorCode::CanisterInvalidController);
    set(&ic, id, CanisterSettings { status_visibility: Some(StatusVisibility::Public), ..Default::default() }).unwrap();
    assert!(ic.canister_status(id, Some(stranger())).is_ok());
}

#[test]
fn settings_the_harness_does_not_model_are_refused_not_ignored() {
    let ic = Harness::new();
    let id = settings_canister(&ic, CanisterSettings::default());
    let before = ic.canister_status(id, Some(controller())).unwrap().settings;
    let refusal =
        |settings: CanisterSettings| set(&ic, id, CanisterSettings { freezing_threshold: Some(Nat::from(5u64)), ..settings }).unwrap_err();
    for (settings, setting) in [
        (CanisterSettings { compute_allocation: Some(Nat::from(10u64)), ..Default::default() }, "compute_allocation other than 0"),
        (CanisterSettings { memory_allocation: Some(Nat::from(MIB)), ..Default::default() }, "memory_allocation other than 0"),
        (
            CanisterSettings { minimum_incoming_canister_call_cycles: Some(Nat::from(1u64)), ..Default::default() },
            "minimum_incoming_canister_call_cycles other than 0",
        ),
        (CanisterSettings { log_memory_limit: Some(Nat::from(8192u64)), ..Default::default() }, "log_memory_limit other than 4096"),
    ] {
        let r = refusal(settings);
        assert_eq!(r.error_code, ErrorCode::CanisterRejectedMessage);
        assert_eq!(r.reject_message, format!("not supported by the embedded IC: {setting}"));
    }
    let r = refusal(CanisterSettings { compute_allocation: Some(Nat::from(101u64)), ..Default::default() });
    assert_eq!(
        (r.error_code, r.reject_message.as_str()),
        (ErrorCode::CanisterContractViolation, "ComputeAllocation expected to be in the range [0..100], got 101")
    );
    let r = refusal(CanisterSettings { wasm_memory_limit: Some(Nat::from((1u64 << 48) + 1)), ..Default::default() });
    assert_eq!(r.error_code, ErrorCode::CanisterContractViolation);
    assert_eq!(
        ic.canister_status(id, Some(controller())).unwrap().settings,
        before,
        "the freezing threshold beside them was not applied either"
    );
}

#[test]
fn the_wasm_memory_limit_binds_in_updates_and_install_hooks() {
    let ic = Harness::new();
    let id = settings_canister(&ic, CanisterSettings::default());
    let limit = heap(&ic, id) + 4 * MIB;
    set(&ic, id, CanisterSettings { wasm_memory_limit: Some(Nat::from(limit)), ..Default::default() }).unwrap();
    let r = rejected(update::<_, (u64,)>(&ic, id, "grow", (8u64,)));
    assert_eq!(r.error_code, ErrorCode::CanisterWasmMemoryLimitExceeded);
    assert!(
        r.reject_message.contains(&format!("Canister exceeded its current Wasm memory limit of {limit} bytes.")),
        "{}",
        r.reject_message
    );
    assert!(r.reject_message.ends_with("Try checking the canister for a possible memory leak or modifying it to use more stable memory instead of Wasm memory. See documentation: https://internetcomputer.org/docs/current/references/execution-errors#wasm-memory-limit-exceeded"), "{}", r.reject_message);
    assert!(heap(&ic, id) < limit);

    // canister_init and canister_post_upgrade are held to it too.
    let fresh = ic.create_canister_with_settings(
        Some(controller()),
        Some(CanisterSettings { wasm_memory_limit: Some(Nat::from(limit)), ..Default::default() }),
    );
    let r = ic.try_install_canister(fresh, settings_wasm(), candid::encode_one(Some(8u64)).unwrap(), Some(controller())).unwrap_err();
    assert_eq!(r.error_code, ErrorCode::CanisterWasmMemoryLimitExceeded);
    let r = ic.upgrade_canister(id, settings_wasm(), candid::encode_one(Some(8u64)).unwrap(), Some(controller())).unwrap_err();
    assert_eq!(r.error_code, ErrorCode::CanisterWasmMemoryLimitExceeded);
    assert!(heap(&ic, id) < limit, "the failed upgrade left the canister as it was");
}

#[test]
fn the_wasm_memory_limit_does_not_bind_in_heartbeats_timers_or_callbacks_and_then_refuses_updates() {
    let ic = Harness::new();
    let id = settings_canister(&ic, CanisterSettings::default());
    let limit = heap(&ic, id) + 4 * MIB;
    set(&ic, id, CanisterSettings { wasm_memory_limit: Some(Nat::from(limit)), ..Default::default() }).unwrap();
    // As on the IC (effective_wasm_memory_limit: none for system tasks and responses), a
    // heartbeat, the global timer and a reply callback may grow the heap past the limit.
    update::<_, ()>(&ic, id, "grow_in_heartbeat", (2u64,)).unwrap();
    ic.tick();
    update::<_, ()>(&ic, id, "grow_in_timer", (2u64,)).unwrap();
    ic.tick();
    let (after_callback,): (u64,) = update(&ic, id, "grow_after_call", (2u64,)).unwrap();
    assert!(after_callback > limit, "{after_callback} bytes, limit {limit}");
    // With the heap above the limit, the IC refuses every update before it runs; queries run.
    let r = rejected(update::<_, ()>(&ic, id, "noop", ()));
    assert_eq!(r.error_code, ErrorCode::CanisterWasmMemoryLimitExceeded);
    assert!(r.reject_message.contains(&format!("The peak Wasm memory usage was {after_callback} bytes.")), "{}", r.reject_message);
    assert_eq!(heap(&ic, id), after_callback);
    // A limit below the heap is refused; 0 lifts the limit.
    let r = set(&ic, id, CanisterSettings { wasm_memory_limit: Some(Nat::from(limit)), ..Default::default() }).unwrap_err();
    assert_eq!(r.error_code, ErrorCode::InvalidManagementPayload);
    set(&ic, id, CanisterSettings { wasm_memory_limit: Some(Nat::from(0u64)), ..Default::default() }).unwrap();
    assert_eq!(ic.canister_status(id, Some(controller())).unwrap().settings.wasm_memory_limit, Nat::from(0u64));
    update::<_, ()>(&ic, id, "noop", ()).unwrap();
}

#[test]
fn the_low_memory_hook_runs_once_each_time_the_heap_comes_within_the_threshold() {
    let ic = Harness::new();
    let (limit, threshold) = (32 * MIB, 8 * MIB);
    let id = settings_canister(
        &ic,
        CanisterSettings {
            wasm_memory_limit: Some(Nat::from(limit)),
            wasm_memory_threshold: Some(Nat::from(threshold)),
            ..Default::default()
        },
    );
    assert_eq!(ic.canister_status(id, Some(controller())).unwrap().settings.wasm_memory_threshold, Nat::from(threshold));
    assert_eq!(hook_runs(&ic, id), 0);
    let grow = mib_past(heap(&ic, id), limit - threshold);
    update::<_, (u64,)>(&ic, id, "grow", (grow,)).unwrap();
    assert_eq!(hook_runs(&ic, id), 1, "the hook ran right after the update that grew the heap");
    assert!(ic.canister_logs(id).iter().any(|l| l.text().starts_with("low on Wasm memory")));
    update::<_, (u64,)>(&ic, id, "grow", (1u64,)).unwrap();
    ic.tick();
    assert_eq!(hook_runs(&ic, id), 1, "still low: it does not run again");

    // Raising the limit ends the condition; lowering it again starts it anew.
    set(&ic, id, CanisterSettings { wasm_memory_limit: Some(Nat::from(4 * limit)), ..Default::default() }).unwrap();
    assert_eq!(hook_runs(&ic, id), 1);
    set(&ic, id, CanisterSettings { wasm_memory_limit: Some(Nat::from(heap(&ic, id) + MIB)), ..Default::default() }).unwrap();
    assert_eq!(hook_runs(&ic, id), 2);
}

#[test]
fn the_low_memory_hook_waits_for_a_stopped_canister_to_start() {
    let ic = Harness::new();
    let id = settings_canister(&ic, CanisterSettings::default());
    let limit = heap(&ic, id) + MIB;
    ic.stop_canister(id, Some(controller())).unwrap();
    set(
        &ic,
        id,
        CanisterSettings {
            wasm_memory_limit: Some(Nat::from(limit)),
            wasm_memory_threshold: Some(Nat::from(2 * MIB)),
            ..Default::default()
        },
    )
    .unwrap();
    ic.tick();
    ic.start_canister(id, Some(controller())).unwrap();
    assert_eq!(hook_runs(&ic, id), 0, "a stopped canister runs no system task");
    ic.tick();
    assert_eq!(hook_runs(&ic, id), 1, "it runs in the first round the canister is running");
}
