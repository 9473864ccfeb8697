//! Faults: traps, rejects, lost responses, corrupted chunks, and upgrades of the vault or the
//! app in the middle of a job. After each, completed snapshots are intact and restorable, the
//! app's state is unchanged unless a restore committed, and the job says what happened.

use candid::Principal;
use ic_harness::{CallMatcher, RejectCode};
use vault_api::protocol::methods;
use vault_api::service::{JobError, JobInfo, JobPhase, VaultError};
use vault_tests::*;

/// A registered app of `kind` after `updates` scenario updates.
fn app_with_state(env: &Env, kind: AppKind, updates: u64) -> Principal {
    let app = env.registered(kind, manual(), keep(10));
    let client = env.app(app);
    for n in 0..updates {
        kind.apply(&client, n);
    }
    app
}

fn succeeded(job: &JobInfo) {
    assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
}

/// The snapshot of `job` restores into a fresh clone with `expected` as its digest.
fn restores_to(env: &Env, kind: AppKind, app: Principal, job: &JobInfo, expected: &(u64, Vec<u8>)) {
    let clone = env.registered(kind, manual(), keep(1));
    succeeded(&env.restore(app, job.snapshot_id.expect("a snapshot job"), Some(clone)));
    assert_eq!(&env.app(clone).digest(), expected);
}

/// Job `job` of `app` succeeds within `rounds` rounds, and its snapshot restores to `expected`.
fn finishes_and_restores_to(env: &Env, kind: AppKind, app: Principal, job: u64, rounds: u32, expected: &(u64, Vec<u8>)) {
    let job = env.finish_job(job, rounds);
    succeeded(&job);
    restores_to(env, kind, app, &job, expected);
}

fn to_app(app: Principal, method: &str) -> CallMatcher {
    CallMatcher::to(app).method(method)
}

#[test]
fn an_app_trapping_mid_dump_is_retried() {
    let env = Env::new();
    let app = app_with_state(&env, AppKind::Ledger, PREFILL + 3);
    let expected = env.app(app).digest();
    // The app's 3rd execution from now is a chunk read: it traps.
    env.ic.trap_at_message(app, 3);
    let job = env.snapshot(app);
    succeeded(&job);
    assert!(job.notes.iter().any(|n| n.contains("injected fault")), "{:?}", job.notes);
    restores_to(&env, AppKind::Ledger, app, &job, &expected);
}

#[test]
fn a_dump_that_keeps_failing_fails_its_job_and_keeps_earlier_snapshots() {
    let env = Env::new();
    let app = app_with_state(&env, AppKind::Notes, PREFILL + 3);
    let first = env.snapshot(app);
    succeeded(&first);
    let expected = env.app(app).digest();
    env.ic.reject_calls(to_app(app, methods::DUMP_CHUNK), RejectCode::CanisterError, "always failing", None);
    let job = env.snapshot(app);
    assert_eq!(job.phase, JobPhase::Failed);
    assert!(matches!(&job.error, Some(JobError::RetriesExhausted { last, .. }) if last.contains("always failing")), "{job:?}");
    env.ic.clear_faults();
    let listed: Vec<u64> = env.vault().list_snapshots(app).unwrap().iter().map(|s| s.id).collect();
    assert_eq!(listed, vec![first.snapshot_id.unwrap()], "the incomplete snapshot is not listed");
    assert_eq!(env.vault().list_jobs(app).unwrap()[0].id, job.id, "the failure is in the job log");
    assert_eq!(env.app(app).digest(), expected, "the app is untouched");
    restores_to(&env, AppKind::Notes, app, &first, &expected);
}

#[test]
fn rejected_chunk_calls_are_retried() {
    let env = Env::new();
    let app = app_with_state(&env, AppKind::Ledger, PREFILL);
    let expected = env.app(app).digest();
    env.ic.reject_calls(to_app(app, methods::DUMP_CHUNK), RejectCode::SysTransient, "queue full", Some(3));
    let job = env.snapshot(app);
    succeeded(&job);
    restores_to(&env, AppKind::Ledger, app, &job, &expected);
}

#[test]
fn a_lost_response_ends_in_sys_unknown_and_is_retried() {
    let env = Env::new();
    let app = app_with_state(&env, AppKind::Notes, PREFILL);
    let expected = env.app(app).digest();
    env.ic.drop_responses(to_app(app, methods::DUMP_CHUNK), Some(1));
    env.ic.drop_responses(to_app(app, methods::RESTORE_CHUNK), Some(1));
    let job = env.snapshot(app);
    succeeded(&job);
    assert!(job.notes.iter().any(|n| n.contains("reject code 6")), "{:?}", job.notes);
    restores_to(&env, AppKind::Notes, app, &job, &expected);
}

/// An app of release 0.1.0's after `updates` scenario updates: its library answers each chunk it
/// dumps with its SHA-256, which the vault checks. (This build's library sends none, the vault
/// hashing every chunk itself: a reply reaches the vault as the app sent it, which the IC ensures
/// and only the embedded IC's injected faults break.)
fn previous_app_with_state(env: &Env, kind: AppKind, updates: u64) -> Principal {
    let app = vault_tests::release::registered_previous_app(env, kind);
    let client = env.app(app);
    for n in 0..updates {
        kind.apply(&client, n);
    }
    app
}

#[test]
fn a_corrupted_chunk_is_detected_both_ways() {
    let env = Env::new();
    let app = previous_app_with_state(&env, AppKind::Ledger, PREFILL);
    let expected = env.app(app).digest();
    env.ic.corrupt_replies(to_app(app, methods::DUMP_CHUNK), Some(1));
    let job = env.snapshot(app);
    succeeded(&job);
    assert!(job.notes.iter().any(|n| n.contains("does not match its SHA-256")), "{:?}", job.notes);
    // On the way back, the app refuses the damaged chunk and the vault sends it again.
    let clone = env.registered(AppKind::Ledger, manual(), keep(1));
    env.ic.corrupt_requests(to_app(clone, methods::RESTORE_CHUNK), Some(1));
    let restore = env.restore(app, job.snapshot_id.unwrap(), Some(clone));
    succeeded(&restore);
    assert!(restore.notes.iter().any(|n| n.contains("does not match")), "{:?}", restore.notes);
    assert_eq!(env.app(clone).digest(), expected);
}

#[test]
fn a_chunk_corrupted_every_time_fails_the_job() {
    let env = Env::new();
    let app = previous_app_with_state(&env, AppKind::Ledger, PREFILL);
    env.ic.corrupt_replies(to_app(app, methods::DUMP_CHUNK), None);
    let job = env.snapshot(app);
    assert!(matches!(job.error, Some(JobError::ChunkCorrupted { .. })), "{job:?}");
    assert!(env.vault().list_snapshots(app).unwrap().is_empty());
}

fn upgrade_vault(env: &Env) {
    env.ic.stop_canister(env.vault, Some(owner())).expect("stop");
    env.ic.upgrade_canister(env.vault, vault_wasm(), candid::encode_args(()).unwrap(), Some(owner())).expect("upgrade");
    env.ic.start_canister(env.vault, Some(owner())).expect("start");
}

/// Puts 100 MB more into `app`: 48 chunks more than a job keeps in flight (two batches of 16),
/// so an upgrade of the vault comes while chunks are left to move.
fn with_more_chunks_than_in_flight(env: &Env, app: Principal) {
    for key in 0..40 {
        env.app(app).put_blob(1_000 + key, 2_500_000, 9);
    }
}

/// Runs rounds until job `id` has moved at least one chunk but not all.
fn until_transferring(env: &Env, id: u64) {
    for _ in 0..50 {
        let job = env.vault().job_status(id).unwrap();
        if job.chunks_done > 0 && job.chunks_done < job.chunks_total {
            return;
        }
        env.ic.tick();
    }
    panic!("job {id} never was mid-transfer: {:?}", env.vault().job_status(id));
}

#[test]
fn the_vault_upgraded_mid_snapshot_resumes_it() {
    let env = Env::new();
    let app = app_with_state(&env, AppKind::Ledger, PREFILL + 2);
    with_more_chunks_than_in_flight(&env, app);
    let expected = env.app(app).digest();
    let job = env.vault().snapshot_now(app).unwrap();
    until_transferring(&env, job.id);
    upgrade_vault(&env);
    let job = env.finish_job(job.id, 200);
    succeeded(&job);
    assert!(job.notes.iter().any(|n| n.contains("resumed after a vault upgrade")), "{:?}", job.notes);
    restores_to(&env, AppKind::Ledger, app, &job, &expected);
}

#[test]
fn the_vault_upgraded_mid_restore_resumes_it_and_the_app_changes_only_at_commit() {
    let env = Env::new();
    let app = app_with_state(&env, AppKind::Notes, PREFILL + 2);
    with_more_chunks_than_in_flight(&env, app);
    let snapshot_state = env.app(app).digest();
    let snapshot = env.snapshot(app);
    env.app(app).put_blob(99, 10, 1);
    let changed = env.app(app).digest();
    let job = env.vault().restore(app, snapshot.snapshot_id.unwrap(), None).unwrap();
    until_transferring(&env, job.id);
    assert_eq!(env.app(app).digest(), changed, "untouched while the restore is staged");
    upgrade_vault(&env);
    let staged = env.vault().job_status(job.id).unwrap();
    assert_eq!(staged.finished_at_nanos, None, "the upgrade came before the commit: {staged:?}");
    assert_eq!(env.app(app).digest(), changed);
    let job = env.finish_job(job.id, 200);
    succeeded(&job);
    assert!(job.notes.iter().any(|n| n.contains("resumed after a vault upgrade")), "{:?}", job.notes);
    assert_eq!(env.app(app).digest(), snapshot_state);
}

#[test]
fn a_vault_upgrade_with_calls_outstanding_is_refused() {
    let env = Env::new();
    let app = app_with_state(&env, AppKind::Ledger, PREFILL);
    let expected = env.app(app).digest();
    // A lost response keeps a chunk call outstanding until its deadline.
    env.ic.drop_responses(to_app(app, methods::DUMP_CHUNK), Some(1));
    let job = env.vault().snapshot_now(app).unwrap();
    for _ in 0..3 {
        env.ic.tick();
    }
    let refused = env.ic.upgrade_canister(env.vault, vault_wasm(), candid::encode_args(()).unwrap(), Some(owner())).unwrap_err();
    assert!(refused.reject_message.contains("calls outstanding: stop it"), "{}", refused.reject_message);
    finishes_and_restores_to(&env, AppKind::Ledger, app, job.id, 200, &expected);
}

fn upgrade_app(env: &Env, kind: AppKind, app: Principal) {
    env.ic.upgrade_canister(app, kind.wasm(), candid::encode_args(()).unwrap(), Some(owner())).expect("app upgrade");
}

fn app_upgraded_between_snapshot_and_restore(kind: AppKind) {
    let env = Env::new();
    let app = app_with_state(&env, kind, PREFILL + 4);
    let expected = env.app(app).digest();
    let job = env.snapshot(app);
    AppKind::apply(kind, &env.app(app), PREFILL + 4);
    upgrade_app(&env, kind, app);
    succeeded(&env.restore(app, job.snapshot_id.unwrap(), None));
    assert_eq!(env.app(app).digest(), expected);
}

#[test]
fn a_serde_app_upgraded_between_snapshot_and_restore() {
    app_upgraded_between_snapshot_and_restore(AppKind::Notes);
}

#[test]
fn a_stable_memory_app_upgraded_between_snapshot_and_restore() {
    app_upgraded_between_snapshot_and_restore(AppKind::Ledger);
}

#[test]
fn an_app_upgraded_mid_dump_still_gives_the_state_of_the_dump() {
    let env = Env::new();
    let kind = AppKind::Ledger;
    let app = app_with_state(&env, kind, PREFILL + 2);
    let at_dump = env.app(app).digest();
    let job = env.vault().snapshot_now(app).unwrap();
    until_transferring(&env, job.id);
    upgrade_app(&env, kind, app);
    for n in PREFILL + 2..PREFILL + 6 {
        kind.apply(&env.app(app), n);
    }
    finishes_and_restores_to(&env, kind, app, job.id, 200, &at_dump);
}

#[test]
fn a_restore_that_cannot_commit_leaves_the_app_as_it_was() {
    let env = Env::new();
    let app = app_with_state(&env, AppKind::Ledger, PREFILL);
    let snapshot = env.snapshot(app);
    AppKind::Ledger.apply(&env.app(app), PREFILL);
    let before = env.app(app).digest();
    env.ic.reject_calls(to_app(app, methods::RESTORE_COMMIT), RejectCode::CanisterError, "commit keeps failing", None);
    let job = env.restore(app, snapshot.snapshot_id.unwrap(), None);
    assert_eq!(job.phase, JobPhase::Failed);
    env.ic.clear_faults();
    assert_eq!(env.app(app).digest(), before);
    // The failed job freed the app: a new restore works.
    succeeded(&env.restore(app, snapshot.snapshot_id.unwrap(), None));
}

/// A snapshot job whose vault traps at its `nth` execution from now.
fn snapshot_with_a_vault_trap(nth: u64) -> (Env, Principal, u64, (u64, Vec<u8>)) {
    let env = Env::new();
    let app = app_with_state(&env, AppKind::Notes, PREFILL);
    let expected = env.app(app).digest();
    let job = env.vault().snapshot_now(app).unwrap();
    env.ic.trap_at_message(env.vault, nth);
    (env, app, job.id, expected)
}

/// The vault's executions from `snapshot_now` until the snapshot [`snapshot_with_a_vault_trap`]
/// starts is taken, with no trap.
fn executions_of_a_snapshot() -> u64 {
    let env = Env::new();
    let app = app_with_state(&env, AppKind::Notes, PREFILL);
    let job = env.vault().snapshot_now(app).unwrap();
    let before = env.ic.canister_metrics(env.vault).executions;
    succeeded(&env.finish_job(job.id, 2_000));
    env.ic.canister_metrics(env.vault).executions - before
}

#[test]
fn a_trap_in_any_of_the_vaults_next_executions_loses_no_job() {
    // Executions after `snapshot_now`: global timer handlers, the timers' tasks, the callbacks
    // of the calls to the app (a trap there cancels the batch; the calls still in flight then
    // trap when answered) and of the timers' self-calls. Only a trap in a global timer handler
    // needs an update call to wake the vault (see the next test).
    for nth in 1..=executions_of_a_snapshot() {
        let (env, app, job, expected) = snapshot_with_a_vault_trap(nth);
        env.run_for(100);
        let executions = env.ic.canister_metrics(env.vault).executions;
        // Past the watchdog's period.
        env.run_for(1_100);
        if env.vault().job_status(job).unwrap().finished_at_nanos.is_none() {
            assert_eq!(env.ic.canister_metrics(env.vault).executions, executions, "stalled at {nth} with the timer alive");
            // A refused update call.
            assert!(matches!(env.vault().snapshot_now(app), Err(vault_api::service::VaultError::JobRunning { .. })));
        }
        finishes_and_restores_to(&env, AppKind::Notes, app, job, 100, &expected);
    }
}

#[test]
fn a_trap_in_the_global_timer_handler_stops_the_timer_until_the_next_update() {
    let (env, app, job, expected) = snapshot_with_a_vault_trap(1);
    env.run_for(1_200);
    assert_eq!(env.vault().job_status(job).unwrap().phase, JobPhase::Starting, "the IC does not fire a timer whose handler trapped");
    // Any update call, even a refused one, sets the timer again.
    assert!(matches!(env.vault().snapshot_now(app), Err(vault_api::service::VaultError::JobRunning { .. })));
    finishes_and_restores_to(&env, AppKind::Notes, app, job, 100, &expected);
}

/// Instructions the vault executes for one update that revives its timer and is then refused.
fn instructions_of_an_update(env: &Env) -> u64 {
    let before = env.ic.canister_metrics(env.vault);
    let refused = env.vault_as(stranger()).service().set_registration(vault_api::service::Registration::Open).unwrap();
    assert!(matches!(refused, Err(vault_api::service::VaultError::NotAnAdministrator { .. })), "{refused:?}");
    let after = env.ic.canister_metrics(env.vault);
    after.instructions - before.instructions
}

#[test]
fn reviving_the_timer_costs_an_update_the_same_whatever_the_vault_holds() {
    // Two vaults with the same history of messages, one holding 30 apps more at the end.
    let cost_with = |keep_apps: bool| {
        let env = Env::new();
        for _ in 0..30 {
            let app = env.registered(AppKind::Notes, manual(), keep(1));
            let unregistered = env.vault().unregister(if keep_apps { stranger() } else { app }, true);
            assert_eq!(unregistered.is_ok(), !keep_apps);
        }
        env.run_for(5);
        instructions_of_an_update(&env)
    };
    let (with_none, with_many) = (cost_with(false), cost_with(true));
    assert!(with_many < with_none + 50_000, "an update costs {with_none} instructions with no app, {with_many} with 30");
}

#[test]
fn a_timer_firing_costs_the_same_whatever_number_of_snapshots_the_vault_holds() {
    // Two vaults with the same history: 31 snapshots of one app, of which one vault keeps 1, the
    // other all. Then another app's schedule changes, which makes the timer fire once.
    let cost_with = |kept: u32| {
        let env = Env::new();
        let app = env.registered(AppKind::Notes, manual(), keep(kept));
        for _ in 0..31 {
            assert_eq!(env.snapshot(app).phase, JobPhase::Succeeded);
        }
        let other = env.registered(AppKind::Notes, manual(), keep(1));
        env.run_for(5);
        assert_eq!(env.vault().list_snapshots(app).unwrap().len(), kept.min(31) as usize);
        let before = env.ic.canister_metrics(env.vault);
        env.vault().update_schedule(other, Some(manual()), None).expect("update_schedule");
        env.run_for(1);
        let after = env.ic.canister_metrics(env.vault);
        (after.executions - before.executions, after.instructions - before.instructions)
    };
    let ((runs_few, few), (runs_many, many)) = (cost_with(1), cost_with(40));
    assert_eq!(runs_few, runs_many, "the same messages");
    assert!(many < few + 50_000, "an update and a timer firing cost {few} instructions with 1 snapshot, {many} with 31");
}

#[test]
fn calls_a_trap_cancelled_block_a_vault_upgrade_until_the_vault_is_stopped() {
    // The vault's 9th execution from here is the first answer of a batch of chunk calls.
    let (env, app, job, expected) = snapshot_with_a_vault_trap(9);
    let cancelled = |env: &Env| env.ic.canister_logs(env.vault).iter().any(|l| String::from_utf8_lossy(&l.content).contains("Call already trapped"));
    for _ in 0..50 {
        if cancelled(&env) {
            break;
        }
        env.ic.tick();
    }
    assert!(cancelled(&env), "the trap cancelled a batch with calls in flight");
    let refused = env.ic.upgrade_canister(env.vault, vault_wasm(), candid::encode_args(()).unwrap(), Some(owner())).unwrap_err();
    assert!(refused.reject_message.contains("cancelled by a trap"), "{}", refused.reject_message);
    upgrade_vault(&env);
    finishes_and_restores_to(&env, AppKind::Notes, app, job, 200, &expected);
}

#[test]
fn a_batch_waiting_for_a_lost_response_is_not_run_twice() {
    let env = Env::new();
    let app = app_with_state(&env, AppKind::Notes, PREFILL);
    let other = app_with_state(&env, AppKind::Notes, 1);
    let expected = env.app(app).digest();
    env.ic.drop_responses(to_app(app, methods::DUMP_CHUNK), Some(1));
    let job = env.vault().snapshot_now(app).unwrap();
    for _ in 0..10 {
        env.ic.tick();
    }
    let chunk_calls = |env: &Env| env.ic.traffic().by_method.get(methods::DUMP_CHUNK).map_or(0, |t| t.requests);
    let sent = chunk_calls(&env);
    assert!(sent > 0);
    // Another app's job keeps the vault's timer firing while the batch waits.
    succeeded(&env.snapshot(other));
    let other_calls = env.vault().list_snapshots(other).unwrap()[0].chunks as u64;
    assert_eq!(chunk_calls(&env), sent + other_calls, "a second batch of the first job started");
    finishes_and_restores_to(&env, AppKind::Notes, app, job.id, 200, &expected);
}

#[test]
fn a_restore_whose_commit_answers_are_all_lost_says_it_may_have_committed() {
    let env = Env::new();
    let app = app_with_state(&env, AppKind::Notes, PREFILL);
    let at_snapshot = env.app(app).digest();
    let snapshot = env.snapshot(app);
    AppKind::Notes.apply(&env.app(app), PREFILL);
    env.ic.drop_responses(to_app(app, methods::RESTORE_COMMIT), None);
    let job = env.restore(app, snapshot.snapshot_id.unwrap(), None);
    assert!(matches!(job.error, Some(JobError::CommitUnconfirmed { .. })), "{job:?}");
    // It did commit: the first attempt ran, the later ones answered with the same report.
    assert_eq!(env.app(app).digest(), at_snapshot);
}

/// A snapshot job of a fresh app that cannot move a chunk: every chunk call is rejected.
fn stuck_snapshot(env: &Env) -> (Principal, JobInfo) {
    let app = app_with_state(env, AppKind::Ledger, PREFILL);
    env.ic.reject_calls(to_app(app, methods::DUMP_CHUNK), RejectCode::SysTransient, "busy", None);
    let job = env.vault().snapshot_now(app).unwrap();
    until_phase(env, job.id, JobPhase::Transferring);
    (app, job)
}

fn until_phase(env: &Env, id: u64, phase: JobPhase) {
    for _ in 0..50 {
        if env.vault().job_status(id).unwrap().phase == phase {
            return;
        }
        env.ic.tick();
    }
    panic!("job {id} never reached {phase:?}: {:?}", env.vault().job_status(id));
}

#[test]
fn a_controller_cancels_a_stuck_job_and_the_app_is_free_again() {
    let env = Env::new();
    let (app, job) = stuck_snapshot(&env);
    assert!(matches!(env.vault_as(stranger()).cancel_job(job.id), Err(VaultError::NotAController { .. })));
    let cancelled = env.vault().cancel_job(job.id).unwrap();
    assert_eq!((cancelled.phase, cancelled.error), (JobPhase::Failed, Some(JobError::Cancelled { by: owner() })));
    assert!(matches!(env.vault().cancel_job(job.id), Err(VaultError::NotCancellable { .. })), "over");
    env.run_for(20);
    assert!(env.vault().list_snapshots(app).unwrap().is_empty(), "the cancelled snapshot is never listed");
    assert_eq!(env.vault().job_status(job.id).unwrap().error, Some(JobError::Cancelled { by: owner() }), "late answers change nothing");
    env.ic.clear_faults();
    let expected = env.app(app).digest();
    let next = env.snapshot(app);
    restores_to(&env, AppKind::Ledger, app, &next, &expected);
}

#[test]
fn unregistering_an_app_cancels_its_stuck_job() {
    let env = Env::new();
    let (app, job) = stuck_snapshot(&env);
    env.vault().unregister(app, false).expect("a stuck job does not hold the app");
    assert_eq!(env.vault().job_status(job.id), Err(VaultError::UnknownJob { job: job.id }), "its log went with it");
    env.ic.clear_faults();
    env.run_for(20);
    env.vault().register(app, manual(), keep(1)).expect("registered again");
    let expected = env.app(app).digest();
    let next = env.snapshot(app);
    restores_to(&env, AppKind::Ledger, app, &next, &expected);
}

#[test]
fn a_restore_that_is_committing_is_not_cancelled() {
    let env = Env::new();
    let app = app_with_state(&env, AppKind::Notes, PREFILL);
    let snapshot = env.snapshot(app);
    env.ic.reject_calls(to_app(app, methods::RESTORE_COMMIT), RejectCode::SysTransient, "busy", None);
    let job = env.vault().restore(app, snapshot.snapshot_id.unwrap(), None).unwrap();
    until_phase(&env, job.id, JobPhase::Finishing);
    assert!(matches!(env.vault().cancel_job(job.id), Err(VaultError::NotCancellable { .. })));
    assert!(matches!(env.vault().unregister(app, false), Err(VaultError::NotCancellable { .. })));
    env.ic.clear_faults();
    succeeded(&env.finish_job(job.id, 200));
}

#[test]
fn a_restore_under_another_module_than_the_snapshots_says_so() {
    let env = Env::new();
    let app = app_with_state(&env, AppKind::Notes, PREFILL);
    let expected = env.app(app).digest();
    let job = env.snapshot(app);
    // The same code with one more custom section: another module hash.
    let mut wasm = AppKind::Notes.wasm();
    wasm.extend_from_slice(&[0, 3, 2, b'v', b'2']);
    env.ic.upgrade_canister(app, wasm, candid::encode_args(()).unwrap(), Some(owner())).expect("upgrade");
    let restore = env.restore(app, job.snapshot_id.unwrap(), None);
    succeeded(&restore);
    assert!(restore.notes.iter().any(|n| n.contains("was taken under module")), "{:?}", restore.notes);
    assert_eq!(env.app(app).digest(), expected);
    // Under its own module, nothing to say.
    let again = env.restore(app, env.snapshot(app).snapshot_id.unwrap(), None);
    assert!(!again.notes.iter().any(|n| n.contains("was taken under module")), "{:?}", again.notes);
}
