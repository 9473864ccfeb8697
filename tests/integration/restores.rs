//! Stable-memory restores into a clone that serves updates while the image stages: the commit
//! replaces what the clone wrote meanwhile with the snapshot, switching its page directory
//! rather than copying the image; a restore whose commit fails, or that is cancelled while it
//! stages, leaves the clone as its own updates made it; and an image above the former
//! 2 GiB − 64 MiB bound, too big for the suite, is begun and aborted at the protocol level.

use candid::Principal;
use vault_api::Sha256;
use vault_api::protocol::{CHUNK_SIZE, JobRef, RestoreBegin, StateKind, methods};
use vault_api::service::{JobError, JobInfo, JobPhase};
use vault_tests::ic_harness::{CallMatcher, RejectCode};
use vault_tests::cost::restore_commit;
use vault_tests::*;

/// Entries of the source app: an image of some 11 MiB, moved over several rounds.
const ENTRIES: u64 = 8_000;
/// Entries of the clone's own before the restore, at keys after the source's.
const CLONE_ENTRIES: u64 = 500;
/// Entries each update of the clone overwrites while the restore stages.
const OVERWRITES: u64 = 20;

/// A btree app with this vault set and registered.
fn registered_btree(env: &Env) -> Principal {
    let app = env.deploy_btree(Some(env.vault));
    env.vault().register(app, manual(), keep(2)).expect("register");
    app
}

/// A registered btree app of [`ENTRIES`] entries, and its snapshot's id.
fn snapshotted_btree(env: &Env) -> (Principal, u64) {
    let app = registered_btree(env);
    assert_eq!(env.btree(app).fill(0, ENTRIES), ENTRIES);
    let job = env.snapshot(app);
    assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
    assert!(job.chunks_total > 2, "the image spans several chunks: {job:?}");
    (app, job.snapshot_id.unwrap())
}

#[test]
fn a_clone_serving_updates_while_a_restore_stages_holds_the_snapshot_after_the_commit() {
    let env = Env::new();
    let (app, snapshot) = snapshotted_btree(&env);
    let digest = env.btree(app).digest();
    let clone = registered_btree(&env);
    let served_clone = env.btree(clone);
    served_clone.fill(ENTRIES, CLONE_ENTRIES);

    env.ic.log_executions(true);
    let job = env.vault().restore(app, snapshot, Some(clone)).expect("restore");
    let served = env.finish_job_serving(job.id, 2_000, |n| served_clone.update_random(n, OVERWRITES));
    let log = env.ic.take_execution_log();
    env.ic.log_executions(false);
    assert_eq!(served.job.phase, JobPhase::Succeeded, "{:?}", served.job);
    assert!(served.while_transferring > 0, "the clone served updates while the chunks moved: {served:?}");
    assert_eq!(served_clone.digest(), digest, "the snapshot's state, the updates made while it staged replaced");
    // The commit switches the directory: it dirties a few pages, not the image's.
    let commit = restore_commit(&log, clone).expect("the clone committed");
    let image_pages = served.job.bytes_total / 4096;
    assert!(commit.stable_pages_dirtied * 100 < image_pages, "the commit dirtied {} pages of an image of {image_pages}", commit.stable_pages_dirtied);

    // The clone goes on: updates, and a snapshot of it restores into another clone.
    served_clone.update_random(1_000, 200);
    assert_eq!(served_clone.append(100), ENTRIES + 100);
    let moved_on = served_clone.digest();
    assert_ne!(moved_on, digest);
    let again = env.snapshot(clone);
    assert_eq!(again.phase, JobPhase::Succeeded, "{again:?}");
    let other = registered_btree(&env);
    let restored = env.restore(clone, again.snapshot_id.unwrap(), Some(other));
    assert_eq!(restored.phase, JobPhase::Succeeded, "{restored:?}");
    assert_eq!(env.btree(other).digest(), moved_on);
}

/// Restores a btree app's snapshot into a clone that serves updates while it stages, with
/// `fault` on the clone's calls and the job cancelled after `cancel_after` updates (if some): the
/// restore fails, the clone holds what its own updates made (as a btree app outside the vault
/// that took them too), and once the fault is cleared a restore of the same snapshot commits.
/// The failed job.
fn a_failed_restore_leaves_the_clone_as_its_updates_made_it(fault: CallMatcher, cancel_after: Option<u64>) -> JobInfo {
    let env = Env::new();
    let (app, snapshot) = snapshotted_btree(&env);
    let digest = env.btree(app).digest();
    let clone = registered_btree(&env);
    let reference = env.deploy_btree(None);
    let (served_clone, reference) = (env.btree(clone), env.btree(reference));
    for app in [&served_clone, &reference] {
        app.fill(ENTRIES, CLONE_ENTRIES);
    }

    env.ic.reject_calls(CallMatcher { callee: Some(clone), ..fault }, RejectCode::CanisterError, "refused", None);
    let job = env.vault().restore(app, snapshot, Some(clone)).expect("restore");
    let served = env.finish_job_serving(job.id, 2_000, |n| {
        for app in [&served_clone, &reference] {
            app.update_random(n, OVERWRITES);
        }
        if Some(n) == cancel_after {
            env.vault().cancel_job(job.id).expect("cancel_job");
        }
    });
    assert_eq!(served.job.phase, JobPhase::Failed, "{:?}", served.job);
    assert!(served.calls > cancel_after.unwrap_or(0), "the clone served updates while the restore staged: {served:?}");
    assert_eq!(served_clone.digest(), reference.digest(), "the clone's own state, none of the staged image");
    env.run_for(30);
    for app in [&served_clone, &reference] {
        app.update_random(500, 100);
    }
    assert_eq!(served_clone.digest(), reference.digest(), "late answers change nothing, and the clone goes on");

    env.ic.clear_faults();
    let restored = env.restore(app, snapshot, Some(clone));
    assert_eq!(restored.phase, JobPhase::Succeeded, "a later restore commits: {restored:?}");
    assert_eq!(served_clone.digest(), digest);
    served.job
}

#[test]
fn a_restore_whose_commit_fails_after_every_chunk_staged_leaves_the_clone_as_its_updates_made_it() {
    let job = a_failed_restore_leaves_the_clone_as_its_updates_made_it(CallMatcher::any().method(methods::RESTORE_COMMIT), None);
    assert_eq!(job.chunks_done, job.chunks_total, "every chunk was staged: {job:?}");
}

#[test]
fn a_restore_cancelled_while_it_stages_leaves_the_clone_as_its_updates_made_it() {
    let job = a_failed_restore_leaves_the_clone_as_its_updates_made_it(CallMatcher::any().method(methods::RESTORE_CHUNK), Some(3));
    assert_eq!(job.error, Some(JobError::Cancelled { by: owner() }), "{job:?}");
}

#[test]
fn a_begin_for_a_3_gib_stable_memory_image_is_accepted_and_its_abort_leaves_the_state_as_it_was() {
    let env = Env::new();
    let ledger = env.registered(AppKind::Ledger, manual(), keep(1));
    for n in 0..2 {
        AppKind::Ledger.apply(&env.app(ledger), n);
    }
    let state = env.app(ledger).digest();
    let size = 3u64 << 30;
    let begin = |job| RestoreBegin {
        job,
        state_kind: StateKind::StableMemory,
        size,
        chunk_size: CHUNK_SIZE,
        sha256: Sha256::of(b"a 3 GiB image"),
        nonce: None,
        content_hash: None,
        via_upgrade: None,
    };
    let before = env.stable_memory_bytes(ledger);
    as_vault::<_, ()>(&env, ledger, methods::RESTORE_BEGIN, (begin(1),)).expect("a 3 GiB image is not refused");
    let begun = env.stable_memory_bytes(ledger);
    as_vault::<_, ()>(&env, ledger, methods::RESTORE_ABORT, (JobRef { job: 1, nonce: None },)).expect("abort");
    let aborted = env.stable_memory_bytes(ledger);
    println!("stable memory: {before} bytes before the begin, {begun} after it, {aborted} after the abort");
    assert!(begun > size, "the begin reserved room for the image beside the live state: {before} then {begun} bytes");
    assert!(aborted >= begun, "stable memory never shrinks: {begun} then {aborted} bytes");
    assert_eq!(env.app(ledger).digest(), state, "the live state is as it was");

    // The room stays the app's: a second begin of the same image grows nothing.
    as_vault::<_, ()>(&env, ledger, methods::RESTORE_BEGIN, (begin(2),)).expect("begun again");
    assert_eq!(env.stable_memory_bytes(ledger), aborted, "the aborted restore's room is taken again");
    as_vault::<_, ()>(&env, ledger, methods::RESTORE_ABORT, (JobRef { job: 2, nonce: None },)).expect("abort");
    AppKind::Ledger.apply(&env.app(ledger), 2);
    let moved_on = env.app(ledger).digest();
    let snapshot = env.snapshot(ledger);
    assert_eq!(snapshot.phase, JobPhase::Succeeded, "{snapshot:?}");
    assert!(snapshot.bytes_total < 1 << 30, "the image is the live state, not the room: {snapshot:?}");
    AppKind::Ledger.apply(&env.app(ledger), 3);
    let restored = env.restore(ledger, snapshot.snapshot_id.unwrap(), None);
    assert_eq!(restored.phase, JobPhase::Succeeded, "{restored:?}");
    assert_eq!(env.app(ledger).digest(), moved_on);
}
