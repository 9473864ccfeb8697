//! Canisters without the client library, captured through native canister snapshots that the
//! vault, as their controller, takes, reads out, and uploads back.

use candid::{Encode, Principal};
use ic_harness::{CallMatcher, RejectCode, SubnetId};
use vault_api::protocol::{BackupError, StateKind};
use vault_api::service::{JobError, JobPhase, VaultError};
use vault_tests::*;

/// A `kv` canister on the apps' subnet the vault controls (or not), holding `keys` values of
/// 3 KiB and heap value `heap`.
fn kv(env: &Env, subnet: SubnetId, vault_controls: bool, keys: u64, heap: u64) -> Principal {
    let canister = env.deploy_without_library(kv_wasm(), Encode!(&None::<()>).unwrap(), subnet, vault_controls);
    fill(env, canister, 0..keys, 1);
    env.app(canister).update::<_, ()>("set_heap_value", (heap,));
    canister
}

fn fill(env: &Env, canister: Principal, keys: std::ops::Range<u64>, seed: u8) {
    for key in keys {
        let value = vec![seed.wrapping_add(key as u8); 3 * 1024];
        env.app(canister).update::<_, (Option<Vec<u8>>,)>("put", (key, value));
    }
}

/// Everything a load puts back: the stable memory, the heap, the module.
fn state(env: &Env, canister: Principal) -> (Vec<u8>, Vec<u8>, Option<Vec<u8>>) {
    let status = env.ic.canister_status(canister, Some(owner())).expect("canister_status");
    (env.ic.get_stable_memory(canister), env.ic.heap_memory(canister), status.module_hash)
}

fn heap_value(env: &Env, canister: Principal) -> u64 {
    env.app(canister).query::<_, (u64,)>("heap_value", ()).0
}

fn running(env: &Env, canister: Principal) -> bool {
    let status = env.ic.canister_status(canister, Some(owner())).expect("canister_status");
    status.status == ic_management_canister_types::CanisterStatusType::Running
}

fn native_snapshots(env: &Env, canister: Principal) -> usize {
    env.ic.list_canister_snapshots(canister, Some(owner())).expect("list_canister_snapshots").len()
}

fn registered(env: &Env, canister: Principal, keep_running: bool) {
    let info = env.vault().register_native(canister, manual(), keep(5), keep_running).expect("register");
    assert_eq!(info.state_kind, StateKind::Native);
}

fn refused_by_management(job: &vault_api::service::JobInfo) -> (&str, u32) {
    match &job.error {
        Some(JobError::AppRefused { error: BackupError::NativeRefused { method, reject_code, .. } }) => (method.as_str(), *reject_code),
        other => panic!("not a refusal of the management canister: {other:?} ({:?})", job.notes),
    }
}

#[test]
fn a_canister_without_the_library_is_snapshotted_on_its_schedule_broken_and_restored_byte_for_byte() {
    let env = Env::new();
    let app = kv(&env, env.app_subnet, true, 700, 42);
    env.vault().register_native(app, schedule(1), keep(5), false).expect("register");
    env.run_for(3_700);
    let snapshots = env.vault().list_snapshots(app).unwrap();
    assert_eq!(snapshots.len(), 1, "the schedule took one");
    let snapshot = &snapshots[0];
    assert_eq!((snapshot.state_kind, snapshot.chunk_size), (StateKind::Native, vault_api::native::NATIVE_CHUNK_SIZE));
    let job = env.vault().list_jobs(app).unwrap().into_iter().find(|j| j.snapshot_id == Some(snapshot.id)).unwrap();
    assert!(job.notes.iter().any(|n| n.contains("the app was stopped for")), "{:?}", job.notes);
    assert_eq!(native_snapshots(&env, app), 0, "the vault deleted its native snapshot once read out");
    assert!(running(&env, app));
    let taken = state(&env, app);
    // Broken: values overwritten and added, the heap changed.
    fill(&env, app, 300..900, 9);
    env.app(app).update::<_, ()>("set_heap_value", (7u64,));
    assert_ne!(state(&env, app), taken);
    let job = env.restore(app, snapshot.id, None);
    assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
    assert_eq!(state(&env, app), taken, "stable memory, heap and module are the snapshot's");
    assert_eq!(heap_value(&env, app), 42);
    assert!(running(&env, app), "the target is stopped for the load only");
    env.run_for(3);
    assert_eq!(native_snapshots(&env, app), 0, "the uploaded snapshot is deleted as the job ends");
    // The same state again: the next version shares every chunk but the header.
    let held = env.vault().app_info(app).unwrap().stored_bytes.unwrap();
    let second = env.snapshot(app);
    assert_eq!(second.phase, JobPhase::Succeeded, "{second:?}");
    let grown = env.vault().app_info(app).unwrap().stored_bytes.unwrap() - held;
    assert!(grown < 64 * 1024, "an unchanged canister's next snapshot adds its header only: {grown} bytes");
}

#[test]
fn a_running_capture_and_a_restore_into_a_canister_on_another_subnet() {
    let env = Env::new();
    let app = kv(&env, env.app_subnet, true, 200, 5);
    registered(&env, app, true);
    let job = env.snapshot(app);
    assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
    assert!(job.notes.iter().any(|n| n.contains("the app was running")), "{:?}", job.notes);
    let snapshot = env.vault().list_snapshots(app).unwrap()[0].id;
    let taken = state(&env, app);
    let elsewhere = SubnetId(0);
    let clone = kv(&env, elsewhere, true, 20, 99);
    registered(&env, clone, false);
    let job = env.restore(app, snapshot, Some(clone));
    assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
    assert_eq!(state(&env, clone), taken, "the clone on the vault's subnet holds the app's state");
    assert_eq!(heap_value(&env, clone), 5);
    assert_eq!(state(&env, app), taken, "the source is untouched");
}

#[test]
fn registration_refuses_a_canister_the_vault_does_not_control() {
    let env = Env::new();
    let app = kv(&env, env.app_subnet, false, 1, 1);
    let refused = env.vault().register_native(app, manual(), keep(5), false);
    assert_eq!(refused, Err(VaultError::VaultNotAController { app, vault: env.vault }));
    assert!(env.vault().app_info(app).is_err(), "nothing registered");
}

#[test]
fn a_snapshot_fails_with_a_typed_error_and_leaves_the_app_running_when_the_ic_refuses() {
    let env = Env::new();
    // Its snapshot slots full: the take is refused, and the app is started again.
    let full = kv(&env, env.app_subnet, true, 10, 3);
    registered(&env, full, false);
    for _ in 0..10 {
        env.ic.take_canister_snapshot(full, Some(owner()), None).expect("take");
    }
    let job = env.snapshot(full);
    assert_eq!(refused_by_management(&job).0, "take_canister_snapshot");
    assert!(running(&env, full), "started again after the refused take");
    assert!(env.vault().list_snapshots(full).unwrap().is_empty());
    // The vault removed from its controllers.
    let dropped = kv(&env, env.app_subnet, true, 10, 3);
    registered(&env, dropped, false);
    env.ic.set_controllers(dropped, Some(owner()), vec![owner()]).unwrap();
    let job = env.snapshot(dropped);
    assert_eq!(refused_by_management(&job).0, "canister_status");
    assert!(running(&env, dropped));
    // Deleted: a snapshot asked for is refused, one due fails.
    let deleted = kv(&env, env.app_subnet, true, 10, 3);
    env.vault().register_native(deleted, schedule(1), keep(5), false).expect("register");
    env.ic.stop_canister(deleted, Some(owner())).unwrap();
    env.ic.delete_canister(deleted, Some(owner())).unwrap();
    assert!(matches!(env.vault().snapshot_now(deleted), Err(VaultError::AppUnreachable { reject_code: 3, .. })));
    env.run_for(3_700);
    let job = env.vault().list_jobs(deleted).unwrap().into_iter().next().expect("the scheduled job");
    assert_eq!(job.phase, JobPhase::Failed, "{job:?}");
    assert!(env.vault().list_snapshots(deleted).unwrap().is_empty());
}

#[test]
fn an_interrupted_upload_or_a_refused_load_leaves_the_target_as_it_was_and_no_snapshot_on_it() {
    let env = Env::new();
    let app = kv(&env, env.app_subnet, true, 400, 11);
    registered(&env, app, false);
    assert_eq!(env.snapshot(app).phase, JobPhase::Succeeded);
    let snapshot = env.vault().list_snapshots(app).unwrap()[0].id;
    fill(&env, app, 0..50, 4);
    let broken = state(&env, app);
    let management = || CallMatcher::to(Principal::management_canister()).from(env.vault);
    env.ic.reject_calls(management().method("upload_canister_snapshot_data"), RejectCode::CanisterError, "upload refused", None);
    let job = env.restore(app, snapshot, None);
    assert_eq!(refused_by_management(&job).0, "upload_canister_snapshot_data");
    env.ic.clear_faults();
    env.run_for(5);
    assert_eq!(state(&env, app), broken, "nothing was loaded");
    assert_eq!(native_snapshots(&env, app), 0, "the partial upload is deleted");
    env.ic.reject_calls(management().method("load_canister_snapshot"), RejectCode::CanisterError, "load refused", None);
    let job = env.restore(app, snapshot, None);
    assert_eq!(refused_by_management(&job).0, "load_canister_snapshot");
    env.ic.clear_faults();
    env.run_for(5);
    assert_eq!(state(&env, app), broken);
    assert!(running(&env, app), "started again after the refused load");
    assert_eq!(native_snapshots(&env, app), 0);
    // And then it works.
    let job = env.restore(app, snapshot, None);
    assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
    assert_eq!(heap_value(&env, app), 11);
}

#[test]
fn a_stopped_app_is_snapshotted_as_it_is_and_left_stopped() {
    let env = Env::new();
    let app = kv(&env, env.app_subnet, true, 50, 8);
    registered(&env, app, false);
    env.ic.stop_canister(app, Some(owner())).unwrap();
    let job = env.snapshot(app);
    assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
    assert!(job.notes.iter().any(|n| n.contains("stopped already")), "{:?}", job.notes);
    assert!(!running(&env, app), "the vault does not start what its controllers stopped");
}

#[test]
fn a_repeated_attempt_reads_the_snapshot_the_first_took_and_a_load_that_cannot_start_the_target_says_so() {
    let env = Env::new();
    let app = kv(&env, env.app_subnet, true, 50, 8);
    registered(&env, app, false);
    let management = || CallMatcher::to(Principal::management_canister()).from(env.vault);
    env.ic.reject_calls(management().method("read_canister_snapshot_metadata"), RejectCode::SysTransient, "busy", Some(1));
    let job = env.snapshot(app);
    assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
    assert!(job.notes.iter().any(|n| n.contains("snapshotted by an earlier attempt")), "one take, one downtime: {:?}", job.notes);
    let snapshot = env.vault().list_snapshots(app).unwrap()[0].id;
    env.app(app).update::<_, ()>("set_heap_value", (1u64,));
    // The load stands; the target is left stopped, and the job says so.
    env.ic.reject_calls(management().method("start_canister"), RejectCode::CanisterError, "not now", Some(3));
    let job = env.restore(app, snapshot, None);
    assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
    assert!(job.notes.iter().any(|n| n.contains("could not be started again")), "{:?}", job.notes);
    env.ic.start_canister(app, Some(owner())).unwrap();
    assert_eq!(heap_value(&env, app), 8);
}

#[test]
fn the_vault_refuses_to_capture_itself_and_an_import_that_is_no_native_image() {
    let env = Env::new();
    let refused = env.vault().register_native(env.vault, manual(), keep(5), false);
    assert!(matches!(refused, Err(VaultError::InvalidArgument { .. })), "{refused:?}");
    let app = kv(&env, env.app_subnet, true, 1, 1);
    registered(&env, app, false);
    let args = vault_api::service::ImportArgs {
        app,
        state_kind: StateKind::Native,
        size: 3 * 2_093_056,
        chunk_size: 2_093_056,
        sha256: vault_api::Sha256([1; 32]),
        taken_at_nanos: 1,
        module_hash: None,
        state_layout: None,
        content_hash: None,
    };
    let refused = env.vault().service().import_begin(args).unwrap();
    assert!(matches!(refused, Err(VaultError::InvalidManifest { .. })), "{refused:?}");
}
