//! Hostile apps: the `hostile` test canister serves the backup protocol by hand and lies in each
//! way an app can. Every job it spoils ends within its retry budget in the typed error that
//! names the lie; the vault never traps, lists no snapshot of it, keeps at most
//! `MAX_APP_TEXT` characters of its text, spends cycles within a stated bound, and goes on
//! serving an honest app beside it.

use candid::Principal;
use vault_api::protocol::{BackupError, MAX_APP_TEXT, methods};
use vault_api::service::{JobError, JobInfo, JobPhase, VaultError};
use vault_tests::lies::{EXHAUSTED, HONEST, LIES, Lie, attempts_told};
use vault_tests::*;

/// Chunk calls in flight per attempt at most (`MAX_BATCH` in vault/src/engine/job.rs).
const BATCH: u128 = 16;

/// Bytes a protocol call moves at most: a chunk one way, within the 2 MiB message limit
/// (IC-FACTS.md), and a few bytes the other way (`CHUNK_SIZE` leaves 4 KiB for them).
const CALL_BYTES: u128 = 2 << 20;
/// Instructions of the vault's callback reading one answer, at most: hashing a 2 MiB chunk at
/// ~82 instructions a byte (IC-FACTS.md) is 172 M, and a decode within vault-api's quota
/// (10 M units) that a decode bomb runs out of took about 30 M here.
const CALLBACK_INSTRUCTIONS: u128 = 250_000_000;
/// One call at 13-node prices (IC-FACTS.md): the 260 K call fee, 1,000 per byte moved, and the
/// callback's execution (5 M plus one per instruction): 2.36 B.
const CALL_CYCLES: u128 = 260_000 + 1_000 * CALL_BYTES + 5_000_000 + CALLBACK_INSTRUCTIONS;
/// The timer's execution that makes an attempt's calls, and its call to the management canister
/// for the app's controllers (a fee, a few hundred bytes, a callback): 0.2 B is ample.
const STEP_CYCLES: u128 = 200_000_000;
/// One attempt: a batch of [`BATCH`] calls and the step that makes them: 38 B.
const ATTEMPT_CYCLES: u128 = BATCH * CALL_CYCLES + STEP_CYCLES;

/// The most a job of `attempts` attempts may cost the vault: each attempt, and one more for
/// the request that starts it and the call that releases the app's dump or staging after.
fn cycle_budget(attempts: u32) -> u128 {
    (attempts as u128 + 1) * ATTEMPT_CYCLES
}

/// Protocol calls a job of `attempts` attempts makes at most: a batch each, and the release.
fn call_budget(attempts: u32) -> u64 {
    attempts as u64 * BATCH as u64 + 1
}

/// Protocol calls made so far on the embedded IC.
fn protocol_calls(env: &Env) -> u64 {
    let traffic = env.ic.traffic();
    let methods = [
        methods::INFO,
        methods::DUMP_BEGIN,
        methods::DUMP_CHUNK,
        methods::DUMP_END,
        methods::RESTORE_BEGIN,
        methods::RESTORE_CHUNK,
        methods::RESTORE_COMMIT,
        methods::RESTORE_ABORT,
    ];
    methods.iter().filter_map(|m| traffic.by_method.get(*m)).map(|t| t.requests).sum()
}

/// Rounds (a second apart) a job of `attempts` attempts may take: a failed attempt backs off
/// at most 64 s, and its calls take a few rounds.
fn round_budget(attempts: u32) -> u32 {
    attempts * (64 + 5) + 10
}

/// The lies that spoil a job of one kind, with the attempts each costs it.
fn lies_of(attempts: fn(&Lie) -> Option<u32>) -> Vec<(&'static Lie, u32)> {
    LIES.iter().filter_map(|lie| attempts(lie).map(|a| (lie, a))).collect()
}

/// The hostile app registered with the vault (it tells the truth while registering).
fn registered_hostile(env: &Env) -> Principal {
    let hostile = env.deploy_hostile();
    env.vault().register(hostile, manual(), keep(10)).expect("register the hostile app");
    hostile
}

/// An honest app beside the hostile one, with a little state.
fn honest_app(env: &Env) -> Principal {
    let app = env.registered(AppKind::Ledger, manual(), keep(1));
    env.app(app).put_blob(1, 10_000, 7);
    app
}

/// Every text the vault shows of a job: its error and its notes.
fn texts(job: &JobInfo) -> Vec<String> {
    job.error.iter().map(ToString::to_string).chain(job.notes.iter().cloned()).collect()
}

/// Characters of the vault's own words around an app's text in an error or a note.
const VAULT_WORDS: usize = 200;

/// The hostile app's long texts are made of this character.
const FILLER: char = 'é';

/// Each text holds at most [`MAX_APP_TEXT`] characters of the app's text, marked where it was
/// cut, within the vault's own words.
fn assert_bounded(what: &str, texts: &[String]) {
    for text in texts {
        let app_chars = text.chars().filter(|&c| c == FILLER).count();
        assert!(app_chars <= MAX_APP_TEXT, "{what}: {app_chars} characters of the app's text kept");
        assert!(text.chars().count() <= MAX_APP_TEXT + 3 + VAULT_WORDS, "{what}: {} characters", text.chars().count());
    }
}

/// Log lines of the vault from line `seen` on that say it trapped.
fn vault_traps(env: &Env, seen: usize) -> Vec<String> {
    let logs = env.ic.canister_logs(env.vault);
    logs[seen.min(logs.len())..]
        .iter()
        .map(|l| String::from_utf8_lossy(&l.content).into_owned())
        .filter(|l| l.starts_with("[TRAP]"))
        .collect()
}

/// Has the hostile app tell `lie`, starts a job with `start` and runs it to its end; checks that
/// it ends in the lie's error within its budgets of rounds and cycles, that the vault never
/// trapped, and that what it keeps of the app's text is bounded. Returns the ended job.
fn spoiled(env: &Env, hostile: Principal, (lie, attempts): (&Lie, u32), start: impl FnOnce() -> VaultResult<JobInfo>) -> JobInfo {
    let name = lie.name;
    env.hostile(hostile).set_lie(name);
    let logs_seen = env.ic.canister_logs(env.vault).len();
    let (balance, calls) = (env.ic.cycle_balance(env.vault), protocol_calls(env));
    let job = start().unwrap_or_else(|e| panic!("{name}: the job did not start: {e}"));
    let job = env.finish_job(job.id, round_budget(attempts));
    // The call that releases the app's dump or staging returns.
    env.run_for(5);
    let (spent, calls) = (balance - env.ic.cycle_balance(env.vault), protocol_calls(env) - calls);
    assert_eq!(job.phase, JobPhase::Failed, "{name}: {job:?}");
    let error = job.error.as_ref().expect("a failed job says why");
    assert!((lie.ends_in)(error), "{name}: ended in {error:?}");
    assert!(attempts_told(error).is_none_or(|told| told == EXHAUSTED), "{name}: ended before its retries ran out: {error:?}");
    let traps = vault_traps(env, logs_seen);
    assert!(traps.is_empty(), "{name}: the vault trapped: {traps:?}");
    let budget = cycle_budget(attempts);
    assert!(spent <= budget, "{name}: the vault spent {spent} cycles, over the {budget} of {attempts} attempts");
    assert!(calls <= call_budget(attempts), "{name}: {calls} protocol calls in {attempts} attempts");
    let stored = env.vault().list_jobs(hostile).unwrap().into_iter().find(|j| j.id == job.id).expect("the job is in the app's log");
    assert_eq!(stored, job, "{name}: the log keeps the job as it ended");
    assert_bounded(name, &texts(&job));
    job
}

/// The honest app is snapshotted as ever.
fn serves_the_honest_app(env: &Env, honest: Principal, after: &str) {
    let job = env.snapshot(honest);
    assert_eq!(job.phase, JobPhase::Succeeded, "after {after}: {job:?}");
}

#[test]
fn every_lie_of_a_dump_ends_its_snapshot_in_a_typed_error() {
    let env = Env::new();
    let honest = honest_app(&env);
    let hostile = registered_hostile(&env);
    for lie in lies_of(|lie| lie.snapshot_attempts) {
        let job = spoiled(&env, hostile, lie, || env.vault().snapshot_now(hostile));
        let name = lie.0.name;
        assert_eq!(env.vault().list_snapshots(hostile).unwrap(), vec![], "{name}: a spoiled snapshot is listed: {job:?}");
        assert_eq!(env.vault().app_info(hostile).unwrap().running_job, None, "{name}: the app is free");
        serves_the_honest_app(&env, honest, name);
    }
    // Told to be honest, the hostile app is snapshotted, as it holds its image.
    env.hostile(hostile).set_lie(HONEST);
    let job = env.snapshot(hostile);
    assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
    let listed = env.vault().list_snapshots(hostile).unwrap();
    assert_eq!(listed.iter().map(|s| (s.chunks, s.sha256)).collect::<Vec<_>>(), vec![(3, env.hostile(hostile).image_sha256())]);
    // The honest app's last snapshot restores.
    let expected = env.app(honest).digest();
    let last = env.vault().list_snapshots(honest).unwrap().pop().expect("the honest app has a snapshot");
    let clone = env.registered(AppKind::Ledger, manual(), keep(1));
    assert_eq!(env.restore(honest, last.id, Some(clone)).phase, JobPhase::Succeeded);
    assert_eq!(env.app(clone).digest(), expected);
}

#[test]
fn every_lie_of_a_restore_ends_it_in_a_typed_error_and_commits_nothing() {
    let env = Env::new();
    let honest = honest_app(&env);
    let hostile = registered_hostile(&env);
    let snapshot = env.snapshot(hostile);
    assert_eq!(snapshot.phase, JobPhase::Succeeded, "{snapshot:?}");
    let snapshot_id = snapshot.snapshot_id.expect("a snapshot job");
    let listed = env.vault().list_snapshots(hostile).unwrap();
    for lie in lies_of(|lie| lie.restore_attempts) {
        let job = spoiled(&env, hostile, lie, || env.vault().restore(hostile, snapshot_id, None));
        if let Some(JobError::AppRefused { error: BackupError::SnapshotHashMismatch { expected, .. } }) = &job.error {
            assert_eq!(*expected, listed[0].sha256, "the vault expects the snapshot's hash");
        }
        let name = lie.0.name;
        assert_eq!(env.hostile(hostile).commits(), 0, "{name}: committed");
        assert_eq!(env.vault().list_snapshots(hostile).unwrap(), listed, "{name}: the snapshots changed: {job:?}");
        serves_the_honest_app(&env, honest, name);
    }
    // Told to be honest, the hostile app takes the restore.
    env.hostile(hostile).set_lie(HONEST);
    let job = env.restore(hostile, snapshot_id, None);
    assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
    assert_eq!((env.hostile(hostile).commits(), env.hostile(hostile).image_sha256()), (1, listed[0].sha256));
}

#[test]
fn an_app_that_lies_when_registered_is_refused_with_a_bounded_reason() {
    let env = Env::new();
    let hostile = env.deploy_hostile();
    let logs_seen = env.ic.canister_logs(env.vault).len();
    for name in ["megabyte-error", "long-reject", "trap"] {
        env.hostile(hostile).set_lie(name);
        let refused = env.vault().register(hostile, manual(), keep(1)).expect_err(name);
        let bounded = match &refused {
            VaultError::AppRefused { error: BackupError::InvalidImage { message }, .. } => {
                name == "megabyte-error" && message.chars().count() <= MAX_APP_TEXT + 3
            }
            VaultError::AppUnreachable { reject_code: 4, .. } => name == "long-reject",
            VaultError::AppUnreachable { reject_code: 5, .. } => name == "trap",
            _ => false,
        };
        assert!(bounded, "{name}: refused with {refused:?}");
        assert_bounded(name, &[refused.to_string()]);
    }
    assert_eq!(env.vault().list_apps().unwrap(), vec![], "nothing is registered");
    let traps = vault_traps(&env, logs_seen);
    assert!(traps.is_empty(), "the vault trapped: {traps:?}");
}
