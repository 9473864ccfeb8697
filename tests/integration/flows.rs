//! End to end, for both kinds of state: scheduled snapshots taken while updates keep coming,
//! retention, restoring an older version, and restoring into a clone.
//!
//! Point in time is checked by replay: every update is deterministic and numbered, so a
//! restored state that says it has seen `k` updates must equal, digest for digest, a fresh
//! canister that applied the first `k`. A snapshot mixing states from before and after an
//! update would match no such prefix.

use std::collections::BTreeMap;

use vault_api::service::{JobError, JobPhase, RestoreArgs, Retention, Trigger, VaultError};
use vault_tests::*;

fn assert_restored_state_is_a_prefix(env: &Env, kind: AppKind, canister: candid::Principal) {
    let (seq, digest) = env.app(canister).digest();
    assert_eq!(digest, env.reference_digest(kind, seq), "the state after {seq} updates, and nothing else");
}

fn scheduled_snapshots_are_point_in_time(kind: AppKind) {
    let env = Env::new();
    let app = env.registered(kind, schedule(1), keep(3));
    let client = env.app(app);
    let mut n = 0;
    while n < PREFILL {
        kind.apply(&client, n);
        n += 1;
    }
    let mut jobs = Vec::new();
    for _ in 0..5 {
        env.ic.advance_time(HOUR);
        env.ic.tick();
        let job = env.vault().app_info(app).unwrap().running_job.expect("the timer started a snapshot");
        let mut during = 0;
        while !matches!(env.vault().job_status(job).unwrap().phase, JobPhase::Succeeded | JobPhase::Failed) {
            kind.apply(&client, n);
            n += 1;
            during += 1;
        }
        assert!(during > 0, "updates ran while the snapshot moved its chunks");
        let job = env.vault().job_status(job).unwrap();
        assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
        assert_eq!(job.kind, vault_api::service::JobKind::Snapshot { trigger: Trigger::Scheduled });
        assert!(job.chunks_total >= 5, "the snapshot spans several chunks: {job:?}");
        jobs.push(job);
    }

    let snapshots = env.vault().list_snapshots(app).unwrap();
    let kept: Vec<u64> = snapshots.iter().map(|s| s.id).collect();
    let newest: Vec<u64> = jobs[2..].iter().map(|j| j.snapshot_id.unwrap()).collect();
    assert_eq!(kept, newest, "retention keeps the 3 newest of 5");

    // Each kept snapshot, restored into a clone, is the state after some prefix of updates.
    let clone = env.registered(kind, manual(), keep(1));
    for snapshot in &snapshots {
        let job = env.restore(app, snapshot.id, Some(clone));
        assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
        assert_restored_state_is_a_prefix(&env, kind, clone);
    }

    // Restoring the oldest kept version into the app itself takes it back there.
    let before = client.seq();
    let job = env.restore(app, snapshots[0].id, None);
    assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
    assert!(client.seq() < before);
    assert_restored_state_is_a_prefix(&env, kind, app);
}

#[test]
fn a_serde_app_is_snapshotted_point_in_time_on_schedule() {
    scheduled_snapshots_are_point_in_time(AppKind::Notes);
}

#[test]
fn a_stable_memory_app_is_snapshotted_point_in_time_on_schedule() {
    scheduled_snapshots_are_point_in_time(AppKind::Ledger);
}

fn restore_into_a_clone(kind: AppKind) {
    let env = Env::new();
    let app = env.registered(kind, manual(), keep(5));
    let client = env.app(app);
    for n in 0..PREFILL + 6 {
        kind.apply(&client, n);
    }
    let original = client.digest();
    let job = env.snapshot(app);
    assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
    let clone = env.registered(kind, manual(), keep(5));
    let job = env.restore(app, job.snapshot_id.unwrap(), Some(clone));
    assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
    assert_eq!(env.app(clone).digest(), original);
    assert_eq!(client.digest(), original, "the source is untouched");
}

#[test]
fn a_serde_app_restores_into_a_clone() {
    restore_into_a_clone(AppKind::Notes);
}

#[test]
fn a_stable_memory_app_restores_into_a_clone() {
    restore_into_a_clone(AppKind::Ledger);
}

#[test]
fn retention_keeps_the_newest_and_one_per_recent_day() {
    let env = Env::new();
    let retention = Retention { keep_last: 2, keep_daily: 3, keep_weekly: 0 };
    let app = env.registered(AppKind::Notes, schedule(6), retention);
    let client = env.app(app);
    let mut taken = BTreeMap::new();
    for n in 0..16u64 {
        AppKind::Notes.apply(&client, PREFILL + n);
        env.ic.advance_time(6 * HOUR);
        env.ic.tick();
        let job = env.vault().app_info(app).unwrap().running_job.expect("a scheduled snapshot");
        let job = env.finish_job(job, 100);
        assert_eq!(job.phase, JobPhase::Succeeded);
        let snapshot = job.snapshot_id.unwrap();
        let info = env.vault().list_snapshots(app).unwrap().into_iter().find(|s| s.id == snapshot).expect("listed");
        taken.insert(snapshot, info.taken_at_nanos);
    }
    // The newest two, and the newest of each of the three most recent days.
    let day = |t: u64| t / (86_400 * 1_000_000_000);
    let mut expected: Vec<u64> = taken.keys().rev().take(2).copied().collect();
    let mut days = Vec::new();
    for (&id, &t) in taken.iter().rev() {
        if !days.contains(&day(t)) && days.len() < 3 {
            days.push(day(t));
            expected.push(id);
        }
    }
    expected.sort();
    expected.dedup();
    let kept: Vec<u64> = env.vault().list_snapshots(app).unwrap().iter().map(|s| s.id).collect();
    assert_eq!(kept, expected);
}

#[test]
fn a_snapshot_records_what_it_is() {
    let env = Env::new();
    let app = env.registered(AppKind::Ledger, manual(), keep(5));
    let client = env.app(app);
    for n in 0..PREFILL {
        AppKind::Ledger.apply(&client, n);
    }
    let job = env.snapshot(app);
    let info = env.vault().list_snapshots(app).unwrap().pop().unwrap();
    assert_eq!(Some(info.id), job.snapshot_id);
    assert_eq!(info.trigger, Trigger::Manual);
    assert_eq!(info.state_kind, vault_api::protocol::StateKind::StableMemory);
    assert_eq!(info.chunks, vault_api::chunk_count(info.size, info.chunk_size));
    assert_eq!(info.chunk_size, vault_api::protocol::CHUNK_SIZE);
    assert_eq!(info.content_hash, Some(vault_api::ContentHash::Blake3), "its app's library verifies BLAKE3");
    assert!(info.size >= PREFILL * 2_500_000 && info.size.is_multiple_of(65536), "{info:?}");
    use sha2::Digest;
    let module_hash: [u8; 32] = sha2::Sha256::digest(ledger_wasm()).into();
    assert_eq!(info.module_hash.map(|h| h.0), Some(module_hash));
    assert!(info.transfer_cycles > 1_000 * info.size as u128, "bytes are paid: {info:?}");
    assert!(info.duration_nanos > 0);
    // The chunks reassemble into the image the manifest hash names.
    let image: Vec<u8> = (0..info.chunks)
        .flat_map(|i| {
            let chunk = env.vault().snapshot_chunk(app, info.id, i).unwrap();
            assert_eq!(info.content_hash().digest(&chunk.data), chunk.sha256);
            chunk.data.into_vec()
        })
        .collect();
    assert_eq!(vault_api::manifest::image_hash(info.content_hash(), &image, info.chunk_size), info.sha256);
}

#[test]
fn unchanged_state_gives_equal_snapshots() {
    let env = Env::new();
    let app = env.registered(AppKind::Ledger, manual(), keep(5));
    let client = env.app(app);
    for n in 0..PREFILL {
        AppKind::Ledger.apply(&client, n);
    }
    env.snapshot(app);
    env.snapshot(app);
    let list = env.vault().list_snapshots(app).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].sha256, list[1].sha256, "the same content, the same manifest hash");
    assert_ne!(list[0].id, list[1].id);
}

#[test]
fn an_unregistered_apps_snapshots_stay_with_its_controllers_even_once_its_canister_is_gone() {
    let env = Env::new();
    let app = env.registered(AppKind::Notes, manual(), keep(5));
    let client = env.app(app);
    for n in 0..PREFILL + 3 {
        AppKind::Notes.apply(&client, n);
    }
    let original = client.digest();
    let [first, second] = [(); 2].map(|_| env.snapshot(app).snapshot_id.unwrap());
    let (v, stranger) = (env.vault(), env.vault_as(stranger()));
    v.unregister(app, false).unwrap();
    assert!(v.app_info(app).is_err(), "no longer registered");
    let ids = |listed: Vec<vault_api::service::SnapshotInfo>| listed.iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(ids(v.list_snapshots(app).unwrap()), [first, second], "listed for its controller");
    assert!(v.snapshot_chunk(app, first, 0).is_ok(), "exportable");
    assert!(matches!(stranger.list_snapshots(app), Err(vault_api::service::VaultError::NotAController { .. })));
    assert!(matches!(stranger.delete_snapshot(app, first), Err(vault_api::service::VaultError::NotAController { .. })));

    // The canister is deleted: its last controllers restore its state into a new one.
    env.ic.stop_canister(app, Some(owner())).unwrap();
    env.ic.delete_canister(app, Some(owner())).unwrap();
    let new_home = env.registered(AppKind::Notes, manual(), keep(5));
    let job = env.restore(app, second, Some(new_home));
    assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
    assert_eq!(env.app(new_home).digest(), original);

    // Deleting its last snapshot forgets the app.
    v.delete_snapshot(app, first).unwrap();
    assert_eq!(ids(v.list_snapshots(app).unwrap()), [second]);
    v.delete_snapshot(app, second).unwrap();
    assert_eq!(v.list_snapshots(app), Err(vault_api::service::VaultError::UnknownApp { app }));
}

#[test]
fn an_app_registered_again_has_its_kept_snapshots_back_and_unregistered_with_them_keeps_none() {
    let env = Env::new();
    let app = env.registered(AppKind::Ledger, manual(), keep(5));
    let snapshot = env.snapshot(app).snapshot_id.unwrap();
    let v = env.vault();
    v.unregister(app, false).unwrap();
    v.register(app, manual(), keep(5)).unwrap();
    assert_eq!(v.list_snapshots(app).unwrap().iter().map(|s| s.id).collect::<Vec<_>>(), [snapshot]);
    v.unregister(app, true).unwrap();
    assert_eq!(v.list_snapshots(app), Err(vault_api::service::VaultError::UnknownApp { app }));
}

/// Upgrades a notes app to this build declaring `state_layout` (its upgrade argument; none
/// declares none), as a build of another state layout would.
fn upgrade_notes_declaring(env: &Env, app: candid::Principal, state_layout: Option<u32>) {
    env.ic.upgrade_canister(app, notes_wasm(), candid::encode_one(state_layout).unwrap(), Some(owner())).expect("upgrade");
}

#[test]
fn a_restore_whose_target_changes_its_layout_before_the_commit_commits_nothing() {
    let env = Env::new();
    let app = env.registered(AppKind::Notes, manual(), keep(5));
    upgrade_notes_declaring(&env, app, Some(1));
    AppKind::Notes.apply(&env.app(app), 0);
    let snapshot = env.snapshot(app).snapshot_id.unwrap();
    AppKind::Notes.apply(&env.app(app), 1);
    let commit = ic_harness::CallMatcher::to(app).method(vault_api::protocol::methods::RESTORE_COMMIT);
    env.ic.reject_calls(commit, ic_harness::RejectCode::SysTransient, "busy", None);
    let args = RestoreArgs { app, snapshot_id: snapshot, target: None, allow_layout_change: None, via_upgrade: None };
    let job = env.vault().service().restore(args).expect("the vault answers").expect("the same layout");
    while env.vault().job_status(job.id).unwrap().phase != JobPhase::Finishing {
        env.run_for(1);
    }
    // Upgraded to another layout while the restore waits to commit.
    upgrade_notes_declaring(&env, app, Some(2));
    let before = env.app(app).digest();
    env.ic.clear_faults();
    let done = env.finish_job(job.id, 2_000);
    let refused = vault_api::protocol::BackupError::StateLayoutMismatch { snapshot: 1, app: 2 };
    assert!(matches!(&done.error, Some(JobError::AppRefused { error }) if *error == refused), "{:?}", done.error);
    assert_eq!(env.app(app).digest(), before, "nothing committed");
}

#[test]
fn a_restore_across_declared_state_layouts_needs_the_change_allowed() {
    let env = Env::new();
    let app = env.registered(AppKind::Notes, manual(), keep(5));
    upgrade_notes_declaring(&env, app, Some(1));
    for n in 0..2 {
        AppKind::Notes.apply(&env.app(app), n);
    }
    let under_layout_1 = env.app(app).digest();
    let snapshot = env.snapshot(app).snapshot_id.unwrap();
    let listed = env.vault().list_snapshots(app).unwrap();
    assert_eq!(listed.iter().find(|s| s.id == snapshot).map(|s| s.state_layout), Some(Some(1)), "{listed:?}");
    AppKind::Notes.apply(&env.app(app), 2);
    upgrade_notes_declaring(&env, app, Some(2));

    let restore = |allow_layout_change| {
        let args = RestoreArgs { app, snapshot_id: snapshot, target: None, allow_layout_change, via_upgrade: None };
        env.vault().service().restore(args).expect("the vault answers")
    };
    let before = env.observable(&[app]);
    for allow in [None, Some(false)] {
        let refused = restore(allow);
        assert_eq!(refused, Err(VaultError::StateLayoutMismatch { target: app, target_layout: 2, snapshot_layout: 1 }), "{allow:?}");
    }
    assert_eq!(env.observable(&[app]), before, "a refused restore changes nothing");

    let job = env.finish_job(restore(Some(true)).expect("allowed").id, 2_000);
    assert_eq!(job.error, None);
    assert!(job.notes.iter().any(|n| n.contains("layout change allowed")), "{:?}", job.notes);
    assert_eq!(env.app(app).digest(), under_layout_1);

    // A module that declares no layout takes the snapshot as before, and its snapshots have none.
    AppKind::Notes.apply(&env.app(app), 2);
    upgrade_notes_declaring(&env, app, None);
    let job = env.finish_job(restore(None).expect("no layout to compare").id, 2_000);
    assert_eq!(job.error, None);
    assert!(!job.notes.iter().any(|n| n.contains("layout")), "{:?}", job.notes);
    assert_eq!(env.app(app).digest(), under_layout_1);
    let undeclared = env.snapshot(app).snapshot_id.unwrap();
    let listed = env.vault().list_snapshots(app).unwrap();
    assert_eq!(listed.iter().find(|s| s.id == undeclared).map(|s| s.state_layout), Some(None));
}
