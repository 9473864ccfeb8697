//! Serde states beyond one update. Restores through an upgrade: the vault stages the snapshot in
//! the app and the app checks it, and the app's next upgrade loads it in place of the state its
//! `pre_upgrade` saved, so a serde state restores whatever one update could deserialize; the app
//! says where such a restore stands. Snapshots of the state an upgrade saved, as of then, which
//! a later upgrade's save ends. A dump opened before the upgrade takes its place in staging, so the
//! upgrade keeps the app's state and says why; a stable-memory snapshot is refused. With updates
//! limited so that a state neither serializes nor deserializes in one, its snapshot and restore
//! in one update fail, changing nothing, and through upgrades both succeed.

use candid::{Encode, Principal, Reserved};
use vault_api::protocol::{BackupError, DumpBegin, DumpManifest, UpgradeLoad, methods};
use vault_api::service::{JobInfo, JobPhase, RestoreArgs, SnapshotOptions, UpdateScheduleArgs, VaultError};
use vault_tests::*;

/// Upgrades `app` with the notes module as its controller does.
fn upgrade_notes(env: &Env, app: Principal) {
    env.ic.upgrade_canister(app, notes_wasm(), Encode!().unwrap(), Some(owner())).expect("upgrade");
}

/// A registered notes app, its snapshot's id and the digest it was taken of, then changed.
fn snapshotted_then_changed(env: &Env) -> (Principal, u64, (u64, Vec<u8>)) {
    let app = env.registered(AppKind::Notes, manual(), keep(5));
    for n in 0..40 {
        AppKind::Notes.apply(&env.app(app), n);
    }
    let taken = env.app(app).digest();
    let snapshot = env.snapshot(app);
    assert_eq!(snapshot.phase, JobPhase::Succeeded, "{snapshot:?}");
    for n in 40..60 {
        AppKind::Notes.apply(&env.app(app), n);
    }
    assert_ne!(env.app(app).digest(), taken);
    (app, snapshot.snapshot_id.expect("a snapshot job names its snapshot"), taken)
}

fn via_upgrade(app: Principal, snapshot_id: u64) -> RestoreArgs {
    RestoreArgs { app, snapshot_id, target: None, allow_layout_change: None, via_upgrade: Some(true) }
}

#[test]
fn a_serde_snapshot_staged_for_an_upgrade_is_loaded_by_it_and_not_before() {
    let env = Env::new();
    let (app, snapshot_id, taken) = snapshotted_then_changed(&env);
    let job = env.vault().restore_with(via_upgrade(app, snapshot_id)).expect("restore");
    let job = env.finish_job(job.id, 2_000);
    assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
    assert!(job.notes.iter().any(|n| n.contains("whose next upgrade loads it")), "{:?}", job.notes);
    let now = env.app(app).digest();
    assert_ne!(now.1, taken.1, "the app's state is as it was until the upgrade");
    let info = env.app(app).backup_info().upgrade_restore.expect("a restore waits for the upgrade");
    assert_eq!((info.job, info.state), (job.id, UpgradeLoad::Pending));
    // The app serves as usual meanwhile: an update after the commit is replaced with the rest.
    AppKind::Notes.apply(&env.app(app), 60);
    upgrade_notes(&env, app);
    assert_eq!(env.app(app).digest(), taken, "the upgrade loaded the snapshot");
    let info = env.app(app).backup_info().upgrade_restore.expect("the restore is reported");
    assert!(matches!(info.state, UpgradeLoad::Loaded { .. }), "{info:?}");
    // The next upgrade keeps the state as its pre_upgrade saved it, the restore's included.
    AppKind::Notes.apply(&env.app(app), 61);
    let after = env.app(app).digest();
    upgrade_notes(&env, app);
    assert_eq!(env.app(app).digest(), after);
    // And the vault snapshots and restores the app as before.
    let snapshot = env.snapshot(app);
    assert_eq!(snapshot.phase, JobPhase::Succeeded, "{snapshot:?}");
}

#[test]
fn a_dump_before_the_upgrade_takes_the_staged_image_s_place_and_the_upgrade_keeps_the_state() {
    let env = Env::new();
    let (app, snapshot_id, taken) = snapshotted_then_changed(&env);
    let job = env.vault().restore_with(via_upgrade(app, snapshot_id)).expect("restore");
    assert_eq!(env.finish_job(job.id, 2_000).phase, JobPhase::Succeeded);
    let snapshot = env.snapshot(app);
    assert_eq!(snapshot.phase, JobPhase::Succeeded, "{snapshot:?}");
    let current = env.app(app).digest();
    upgrade_notes(&env, app);
    assert_eq!(env.app(app).digest(), current, "the upgrade kept the app's state");
    assert_ne!(current.1, taken.1);
    let info = env.app(app).backup_info().upgrade_restore.expect("the restore is reported");
    match info.state {
        UpgradeLoad::Failed { reason } => assert!(reason.contains("a dump took its place"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_stable_memory_snapshot_is_not_restored_through_an_upgrade() {
    let env = Env::new();
    let app = env.registered(AppKind::Ledger, manual(), keep(5));
    AppKind::Ledger.apply(&env.app(app), 1);
    let snapshot_id = env.snapshot(app).snapshot_id.expect("a snapshot");
    let before = env.observable(&[app]);
    match env.vault().restore_with(via_upgrade(app, snapshot_id)) {
        Err(VaultError::InvalidArgument { reason }) => assert!(reason.contains("only a serde snapshot"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(env.observable(&[app]), before, "a refused request changes nothing");
}

/// Starts a snapshot of the state `app`'s last upgrade saved and waits for it.
fn snapshot_of_upgrade_save(env: &Env, app: Principal) -> JobInfo {
    let options = SnapshotOptions { full: false, from_upgrade_save: Some(true) };
    let job = env.vault().service().snapshot_now_with(app, options).expect("snapshot_now").expect("started");
    env.finish_job(job.id, 2_000)
}

#[test]
fn a_snapshot_of_the_state_the_last_upgrade_saved_restores_as_it_was_then() {
    let env = Env::new();
    let app = env.registered(AppKind::Notes, manual(), keep(5));
    for n in 0..30 {
        AppKind::Notes.apply(&env.app(app), n);
    }
    // Before any upgrade under this library there is nothing saved to dump.
    let nothing = snapshot_of_upgrade_save(&env, app);
    assert_eq!(nothing.phase, JobPhase::Failed, "{nothing:?}");
    assert!(format!("{:?}", nothing.error).contains("NoUpgradeSave"), "{:?}", nothing.error);
    upgrade_notes(&env, app);
    let saved = env.app(app).digest();
    for n in 30..50 {
        AppKind::Notes.apply(&env.app(app), n);
    }
    let job = snapshot_of_upgrade_save(&env, app);
    assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
    assert!(job.notes.iter().any(|n| n.contains("last upgrade saved")), "{:?}", job.notes);
    let snapshot_id = job.snapshot_id.expect("a snapshot");
    assert_ne!(env.app(app).digest(), saved);
    assert_eq!(env.restore(app, snapshot_id, None).phase, JobPhase::Succeeded);
    assert_eq!(env.app(app).digest(), saved, "the state as the upgrade saved it");
    // A restore in one update leaves the save as it is: it is the state the app had then.
    let again = snapshot_of_upgrade_save(&env, app);
    assert_eq!(again.phase, JobPhase::Succeeded, "{again:?}");
    // The saved state is in the layout of the module that saved it, not of the one that loaded it.
    let declaring = |layout: u32| {
        env.ic.upgrade_canister(app, notes_wasm(), Encode!(&Some(layout)).unwrap(), Some(owner())).expect("upgrade");
    };
    declaring(1);
    declaring(2);
    let job = snapshot_of_upgrade_save(&env, app);
    let snapshot = env.vault().list_snapshots(app).unwrap().into_iter().find(|s| Some(s.id) == job.snapshot_id).expect("listed");
    assert_eq!(snapshot.state_layout, Some(1), "{snapshot:?}");
}

#[test]
fn a_snapshot_of_an_upgrade_s_save_builds_on_the_last_and_restores_as_saved() {
    let env = Env::new();
    let app = env.registered(AppKind::Notes, manual(), keep(5));
    assert_eq!(env.app(app).update::<_, (u64,)>("add_notes", (8_000u64, 1_000u64, 1u64)).0, 8_000);
    upgrade_notes(&env, app);
    let (first, full) = env.measure(&[app], || snapshot_of_upgrade_save(&env, app));
    assert_eq!(first.phase, JobPhase::Succeeded, "{first:?}");
    // 1% of the notes rewritten, then saved by the next upgrade: its snapshot builds on the first.
    assert_eq!(env.app(app).update::<_, (u64,)>("edit_random", (80u64, 5u64)).0, 80);
    upgrade_notes(&env, app);
    let saved = env.app(app).digest();
    let (second, incremental) = env.measure(&[app], || snapshot_of_upgrade_save(&env, app));
    assert_eq!(second.phase, JobPhase::Succeeded, "{second:?}");
    let first_id = first.snapshot_id.expect("a snapshot");
    let against = format!("incremental against snapshot {first_id}");
    assert!(second.notes.iter().any(|n| n.contains(&against)), "{:?}", second.notes);
    assert!(incremental.chunk_bytes * 100 < full.chunk_bytes * 5, "{} of {} bytes moved", incremental.chunk_bytes, full.chunk_bytes);
    env.app(app).update::<_, (u64,)>("edit_random", (10u64, 6u64));
    assert_eq!(env.restore(app, second.snapshot_id.expect("a snapshot"), None).phase, JobPhase::Succeeded);
    assert_eq!(env.app(app).digest(), saved, "the state as the second upgrade saved it");
}

#[test]
fn a_dump_of_the_saved_state_ends_when_a_later_upgrade_saves_anew() {
    let env = Env::new();
    let app = env.registered(AppKind::Notes, manual(), keep(5));
    AppKind::Notes.apply(&env.app(app), 0);
    upgrade_notes(&env, app);
    let begin = DumpBegin { job: 7, nonce: None, chunk_hashes: Some(false), base: None, from_upgrade_save: Some(true), content_index: None };
    let opened: Result<DumpManifest, BackupError> = as_vault(&env, app, methods::DUMP_BEGIN, (begin,));
    opened.expect("the saved state opens");
    assert!(env.dump_chunk_as_vault(app, 7, 0).is_ok());
    AppKind::Notes.apply(&env.app(app), 1);
    upgrade_notes(&env, app);
    match env.dump_chunk_as_vault(app, 7, 0) {
        Err(BackupError::NoUpgradeSave { reason }) => assert!(reason.contains("anew"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let stable = env.registered(AppKind::Ledger, manual(), keep(5));
    let refused: Result<DumpManifest, BackupError> = as_vault(&env, stable, methods::DUMP_BEGIN, (begin,));
    assert!(matches!(refused, Err(BackupError::NoUpgradeSave { .. })), "{refused:?}");
}

#[test]
fn a_state_too_large_to_serialize_or_deserialize_in_one_update_is_snapshotted_and_restored_through_upgrades() {
    // Updates of at most 26 M instructions: this state serializes in some 28 M and deserializes
    // in some 44 M, while an upgrade still has its 300 B.
    let limits = vault_tests::ic_harness::Limits { update_instructions: 26_000_000, ..Default::default() };
    let env = Env::with_harness(vault_tests::ic_harness::Harness::builder().with_subnets(2).with_limits(limits).build());
    let app = env.registered(AppKind::Notes, manual(), keep(5));
    // No incrementals, so no content index: cutting and hashing a chunk for it takes more than
    // these updates may (on the IC some 100 M instructions a chunk, of the 40 B).
    let no_incrementals = UpdateScheduleArgs { app, schedule: None, retention: None, max_incrementals: Some(0) };
    env.vault().service().update_schedule(no_incrementals).unwrap().expect("update_schedule");
    for n in 0..3000u64 {
        env.app(app).update::<_, (u64, u64)>("add_note", (format!("note {n}"), "x".repeat(200)));
    }
    // Its digest would serialize and hash it in one update: queries tell the states apart.
    let notes = |env: &Env| {
        let client = env.app(app);
        let later: (Option<Reserved>,) = client.query("get_note", (3000u64,));
        (client.seq(), client.query::<_, (u64,)>("count", ()).0, later.0.is_some())
    };
    let taken = notes(&env);
    let in_one_update = env.snapshot(app);
    assert_eq!(in_one_update.phase, JobPhase::Failed, "{in_one_update:?}");
    upgrade_notes(&env, app);
    let snapshot = snapshot_of_upgrade_save(&env, app);
    assert_eq!(snapshot.phase, JobPhase::Succeeded, "{snapshot:?}");
    let snapshot_id = snapshot.snapshot_id.expect("a snapshot");
    env.app(app).update::<_, (u64, u64)>("add_note", ("later".to_string(), "replaced".to_string()));
    let changed = notes(&env);
    assert_eq!((changed.1, changed.2), (3001, true));
    let in_one_update = env.restore(app, snapshot_id, None);
    assert_eq!(in_one_update.phase, JobPhase::Failed, "{in_one_update:?}");
    assert_eq!(notes(&env), changed, "the failed commit changed nothing");
    let job = env.vault().restore_with(via_upgrade(app, snapshot_id)).expect("restore");
    assert_eq!(env.finish_job(job.id, 2_000).phase, JobPhase::Succeeded);
    upgrade_notes(&env, app);
    assert_eq!(notes(&env), taken);
    assert!(matches!(env.app(app).backup_info().upgrade_restore.map(|r| r.state), Some(UpgradeLoad::Loaded { .. })));
}

#[test]
fn a_staged_restore_is_dropped_by_a_controller_setting_the_vault_and_by_an_upgrade_past_its_ttl() {
    let env = Env::new();
    let (app, snapshot_id, taken) = snapshotted_then_changed(&env);
    let staged = |env: &Env| {
        let job = env.vault().restore_with(via_upgrade(app, snapshot_id)).expect("restore");
        assert_eq!(env.finish_job(job.id, 2_000).phase, JobPhase::Succeeded);
        assert_eq!(env.app(app).backup_info().upgrade_restore.map(|r| r.state), Some(UpgradeLoad::Pending));
    };
    let failed_for = |env: &Env| match env.app(app).backup_info().upgrade_restore.map(|r| r.state) {
        Some(UpgradeLoad::Failed { reason }) => reason,
        other => panic!("{other:?}"),
    };
    // A controller needs no vault to let the app upgrade without the restore.
    staged(&env);
    let (set,): (Result<(), BackupError>,) = env.app(app).update(methods::SET_VAULT, (env.vault,));
    set.expect("a controller sets the vault");
    let current = env.app(app).digest();
    upgrade_notes(&env, app);
    assert_eq!(env.app(app).digest(), current);
    assert!(failed_for(&env).contains("a controller set"), "{}", failed_for(&env));
    // An upgrade long after the commit does not load it either.
    staged(&env);
    env.ic.advance_time(vault_api::protocol::SESSION_TTL + std::time::Duration::from_secs(60));
    let current = env.app(app).digest();
    upgrade_notes(&env, app);
    assert_eq!(env.app(app).digest(), current);
    assert_ne!(current, taken);
    assert!(failed_for(&env).contains("no upgrade loaded it within"), "{}", failed_for(&env));
}
