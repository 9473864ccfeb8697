//! The job engine: snapshot and restore jobs as state machines in stable memory, advanced one
//! batch at a time by a single timer.
//!
//! Each timer firing releases a bounded number of chunk references of deleted snapshots,
//! starts the snapshots that are due, and for every job not already running a batch, starts
//! one: a phase step, or up to [`BATCH`] chunk calls in flight at once. A batch records what it
//! achieved after its calls return (each callback is a commit point), then re-arms the timer.
//! Every protocol call carries the job id and is idempotent, so a batch can be repeated after
//! a timeout; a job gives up after [`MAX_RETRIES`] failed batches in a row.
//!
//! A vault upgrade with calls outstanding is refused (`pre_upgrade` traps): stop the vault, which
//! lets the calls in flight return and starts no new batch, then upgrade, then start it. The
//! jobs then resume from their records, with a note saying so.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::Duration;

use candid::Principal;
use ic_cdk::api::CanisterStatusCode;
use vault_api::Sha256;
use vault_api::manifest::{chunk_count, chunk_range};
use vault_api::protocol::{BackupError, CHUNK_SIZE, RestoreBegin, RestoreChunk, StateKind, methods};
use vault_api::service::{JobError, JobKind, JobPhase, Trigger, VaultError};

use crate::app_client::{self, Answer, CallFailure};
use crate::retention;
use crate::state::HashedChunk;
use crate::storable::{JobRecord, SnapshotRecord, SnapshotStatus};
use crate::with_state;

/// Chunk calls a job keeps in flight at once.
pub const BATCH: u32 = 4;
/// Failed batches in a row after which a job fails.
pub const MAX_RETRIES: u32 = 8;
/// Times a job starts over after the app lost its dump or staging area.
pub const MAX_RESTARTS: u32 = 3;
/// Chunk references released per timer firing.
const DELETE_BUDGET: u32 = 512;
const SECOND: u64 = 1_000_000_000;
/// How often the watchdog checks that the timer is armed for the work waiting.
const WATCHDOG: Duration = Duration::from_secs(600);

thread_local! {
    /// Jobs with a batch running, and the time the timer is armed for.
    static RUNTIME: RefCell<Runtime> = RefCell::new(Runtime::default());
}

#[derive(Default)]
struct Runtime {
    in_flight: BTreeSet<u64>,
    armed: Option<(ic_cdk_timers::TimerId, u64)>,
}

fn now() -> u64 {
    ic_cdk::api::time()
}

/// Makes the timer fire at `at` (nanoseconds) unless it fires earlier already.
pub fn arm(at: u64) {
    let time = now();
    RUNTIME.with_borrow_mut(|r| {
        if let Some((id, armed_at)) = r.armed {
            // A timer still to fire is kept, or moved earlier. One whose time has passed may be
            // lost (a trap in its task rolls back the task's clearing of `armed`) or about to
            // fire in this round: a new one is set beside it, and an extra tick is harmless.
            let pending = armed_at >= time;
            if pending && armed_at <= at {
                return;
            }
            if pending {
                ic_cdk_timers::clear_timer(id);
            }
        }
        let delay = Duration::from_nanos(at.saturating_sub(time));
        let id = ic_cdk_timers::set_timer(delay, tick());
        r.armed = Some((id, at));
    });
}

/// After an install or upgrade: notes the resumption on every unfinished job and arms the
/// timer (timers do not survive upgrades).
pub fn resume_after_upgrade() {
    let time = now();
    with_state(|s| {
        for mut job in s.active_jobs() {
            job.notes.push(format!("resumed after a vault upgrade at {time} ns, in phase {:?}", job.phase));
            s.put_job(job);
        }
    });
    start_watchdog();
    arm(time);
}

/// A trap in a timer's task loses that one-shot timer, and a trap in a batch's callback
/// cancels the batch; the watchdog, an interval timer (which survives its task's traps), arms
/// the timer again for the work waiting.
pub fn start_watchdog() {
    ic_cdk_timers::set_timer_interval(WATCHDOG, || async { arm_for_waiting_work() });
}

/// Arms the timer for the waiting work unless it is armed for the future already. A trap in
/// the global timer handler leaves the system timer off while ic-cdk-timers believes it set
/// (it then never sets it again): the system timer is set directly, so the handler runs and
/// re-arms from its queue.
pub fn revive() {
    let time = now();
    if RUNTIME.with_borrow(|r| r.armed.is_none_or(|(_, at)| at < time)) {
        arm_for_waiting_work();
        ic_cdk::api::global_timer_set(time);
    }
}

fn arm_for_waiting_work() {
    let time = now();
    let in_flight = RUNTIME.with_borrow(|r| r.in_flight.clone());
    let (work_now, next_due) = with_state(|s| {
        let idle_job = s.active_jobs().iter().any(|j| !in_flight.contains(&j.id));
        (idle_job || s.deletions_pending(), s.next_scheduled())
    });
    if work_now {
        arm(time);
    } else if let Some(due) = next_due {
        arm(due);
    }
}

/// Cycles a job needs available when it starts a batch: calls reserve their largest response
/// and callback until they return.
pub fn batch_reserve() -> u128 {
    BATCH as u128 * ic_cdk::api::cost_call(methods::RESTORE_CHUNK.len() as u64, CHUNK_SIZE + 1024) + 1_000_000_000
}

/// Cycles a transfer of `chunks` full chunks costs, beyond the calls' reservations.
pub fn transfer_estimate(chunks: u32) -> u128 {
    chunks as u128 * (app_client::transfer_cycles(CHUNK_SIZE + 1024, 1024) + 100_000_000)
}

pub fn check_cycles(required: u128) -> Result<(), VaultError> {
    let available = ic_cdk::api::canister_liquid_cycle_balance();
    if available < required {
        return Err(VaultError::InsufficientCycles { required, available });
    }
    Ok(())
}

/// Creates a job for `app` (which must have none running) and arms the timer.
pub fn start_job(app: Principal, kind: JobKind, snapshot_id: Option<u64>) -> JobRecord {
    let time = now();
    let job = with_state(|s| {
        let id = s.new_job_id();
        let job = JobRecord {
            id,
            app,
            kind,
            snapshot_id,
            phase: JobPhase::Starting,
            state_kind: StateKind::StableMemory,
            size: 0,
            chunk_size: 0,
            chunks: 0,
            retries: 0,
            restarts: 0,
            started_at: time,
            updated_at: time,
            finished_at: None,
            taken_at: 0,
            bytes_moved: 0,
            calls: 0,
            module_hash: None,
            done: Vec::new(),
            error: None,
            notes: Vec::new(),
        };
        s.put_job(job.clone());
        let mut record = s.app(app).expect("jobs start for registered apps");
        record.running_job = Some(id);
        s.put_app(app, record);
        job
    });
    arm(time);
    job
}

/// The timer's body.
async fn tick() {
    RUNTIME.with_borrow_mut(|r| r.armed = None);
    let time = now();
    if ic_cdk::api::canister_status() != CanisterStatusCode::Running {
        // A stopping vault starts nothing new; the timer fires again once it runs.
        arm(time + SECOND);
        return;
    }
    let deletions_left = with_state(|s| s.delete_step(DELETE_BUDGET));
    start_due_snapshots(time);
    let jobs = with_state(|s| s.active_jobs());
    for job in jobs {
        if let Some(batch) = Batch::start(job.id) {
            ic_cdk::futures::spawn(run_batch(batch));
        }
    }
    let next_due = with_state(|s| s.next_scheduled());
    if deletions_left {
        arm(time);
    }
    if let Some(due) = next_due {
        arm(due);
    }
}

fn start_due_snapshots(time: u64) {
    let due: Vec<Principal> = with_state(|s| {
        s.apps()
            .into_iter()
            .filter(|(_, a)| a.next_due > 0 && a.next_due <= time)
            .map(|(app, mut record)| {
                // The next slot after now: intervals missed while stopped are skipped.
                let interval = record.schedule.interval_seconds * SECOND;
                while record.next_due <= time {
                    record.next_due += interval;
                }
                let start = record.running_job.is_none();
                s.put_app(app, record);
                (app, start)
            })
            .filter(|&(_, start)| start)
            .map(|(app, _)| app)
            .collect()
    });
    for app in due {
        let job = start_job(app, JobKind::Snapshot { trigger: Trigger::Scheduled }, None);
        if let Err(VaultError::InsufficientCycles { required, available }) = check_cycles(batch_reserve()) {
            fail(job.id, JobError::InsufficientCycles { required, available });
        }
    }
}

/// A job's batch in flight. Dropped when the batch ends, or when a trap in one of its
/// callbacks cancels it (the cleanup drops the task), so the job is taken up again.
struct Batch(u64);

impl Batch {
    fn start(job: u64) -> Option<Batch> {
        // Lazily: a `Batch` built for nothing would release the running one when dropped.
        RUNTIME.with_borrow_mut(|r| r.in_flight.insert(job)).then(|| Batch(job))
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        RUNTIME.with_borrow_mut(|r| r.in_flight.remove(&self.0));
        if ic_cdk::futures::is_recovering_from_trap() {
            arm(now() + SECOND);
        }
    }
}

/// Runs one batch of the job, then re-arms the timer.
async fn run_batch(batch: Batch) {
    let id = batch.0;
    let progressed = match with_state(|s| s.job(id)) {
        Some(job) if !job.is_finished() => step(job).await,
        _ => false,
    };
    drop(batch);
    let retries = with_state(|s| s.job(id)).map_or(0, |j| j.retries);
    let backoff = if progressed || retries == 0 { 0 } else { SECOND << retries.min(6) };
    arm(now() + backoff);
}

/// Advances `job` by one phase step or one batch of chunks; returns whether it progressed.
async fn step(job: JobRecord) -> bool {
    match (job.kind, job.phase) {
        (JobKind::Snapshot { .. }, JobPhase::Starting) => snapshot_start(job).await,
        (JobKind::Snapshot { .. }, JobPhase::Transferring) => snapshot_transfer(job).await,
        (JobKind::Snapshot { .. }, JobPhase::Finishing) => snapshot_finish(job).await,
        (JobKind::Restore { .. }, JobPhase::Starting) => restore_start(job).await,
        (JobKind::Restore { .. }, JobPhase::Transferring) => restore_transfer(job).await,
        (JobKind::Restore { .. }, JobPhase::Finishing) => restore_finish(job).await,
        (_, JobPhase::Succeeded | JobPhase::Failed) => false,
    }
}

fn save(mut job: JobRecord) {
    job.updated_at = now();
    with_state(|s| s.put_job(job));
}

fn account<T>(job: &mut JobRecord, answer: &Answer<T>) {
    job.calls += 1;
    job.bytes_moved += answer.request_bytes + answer.reply_bytes;
}

/// Records a failed attempt; fails the job once retries run out. `failure` says what failed.
fn retry(mut job: JobRecord, failure: &CallFailure) -> bool {
    if !failure.retryable() {
        let error = JobError::AppUnreachable { reject_code: failure.reject_code(), message: failure.to_string() };
        save(job.clone());
        fail(job.id, error);
        return false;
    }
    job.retries += 1;
    job.notes.push(format!("attempt failed in phase {:?}: {failure}", job.phase));
    trim_notes(&mut job);
    if job.retries > MAX_RETRIES {
        let committing = job.phase == JobPhase::Finishing && matches!(job.kind, JobKind::Restore { .. });
        let error = match failure {
            CallFailure::Corrupted { index } => JobError::ChunkCorrupted { index: *index, attempts: job.retries },
            other if committing => JobError::CommitUnconfirmed { attempts: job.retries, last: other.to_string() },
            other => JobError::RetriesExhausted { attempts: job.retries, last: other.to_string() },
        };
        save(job.clone());
        fail(job.id, error);
        return false;
    }
    save(job);
    false
}

fn trim_notes(job: &mut JobRecord) {
    const KEPT: usize = 20;
    if job.notes.len() > KEPT {
        job.notes.drain(..job.notes.len() - KEPT);
    }
}

/// Ends a job as failed: frees its app, drops a partial snapshot, and tells the app to release
/// its dump or staging (best effort: the app also drops them when the next job supersedes).
pub fn fail(id: u64, error: JobError) {
    let Some(mut job) = with_state(|s| s.job(id)) else { return };
    let time = now();
    job.phase = JobPhase::Failed;
    job.error = Some(error);
    job.finished_at = Some(time);
    job.updated_at = time;
    let (app, kind, snapshot) = (job.app, job.kind, job.snapshot_id);
    with_state(|s| {
        if let (JobKind::Snapshot { .. }, Some(snapshot)) = (kind, snapshot) {
            s.schedule_deletion(app, snapshot);
        }
        s.put_job(job);
        finish_app_job(s, app, id);
    });
    let release = async move {
        let _ = match kind {
            JobKind::Snapshot { .. } => app_client::dump_end(app, id).await,
            JobKind::Restore { .. } => app_client::restore_abort(app, id).await,
        };
    };
    ic_cdk::futures::spawn(release);
}

fn finish_app_job(s: &mut crate::state::State, app: Principal, job: u64) {
    if let Some(mut record) = s.app(app).filter(|r| r.running_job == Some(job)) {
        record.running_job = None;
        s.put_app(app, record);
    }
    s.prune_job_log(app);
}

/// The app lost the job's dump or staging area (reinstalled, or a newer job superseded it):
/// start over, at most [`MAX_RESTARTS`] times.
fn start_over(mut job: JobRecord, why: BackupError) -> bool {
    job.restarts += 1;
    if job.restarts > MAX_RESTARTS {
        save(job.clone());
        fail(job.id, JobError::AppRefused { error: why });
        return false;
    }
    job.notes.push(format!("the app lost the job's state ({why}); starting over"));
    if let (JobKind::Snapshot { .. }, Some(snapshot)) = (job.kind, job.snapshot_id) {
        with_state(|s| s.schedule_deletion(job.app, snapshot));
        job.snapshot_id = None;
    }
    job.done.clear();
    job.phase = JobPhase::Starting;
    save(job);
    true
}

fn refuse(job: JobRecord, error: BackupError) -> bool {
    save(job.clone());
    fail(job.id, JobError::AppRefused { error });
    false
}

/// Chunks of `job` not moved yet, at most [`BATCH`] of them.
fn next_chunks(job: &JobRecord) -> Vec<u32> {
    (0..job.chunks).filter(|&i| !job.is_done(i)).take(BATCH as usize).collect()
}

async fn snapshot_start(mut job: JobRecord) -> bool {
    if let Ok(info) = app_client::canister_info(job.app).await {
        job.module_hash = info.module_hash;
        with_state(|s| {
            if let Some(mut record) = s.app(job.app) {
                record.controllers = info.controllers;
                record.module_hash = info.module_hash;
                s.put_app(job.app, record);
            }
        });
    }
    let answer = match app_client::dump_begin(job.app, job.id).await {
        Ok(answer) => answer,
        Err(failure) => return retry(job, &failure),
    };
    account(&mut job, &answer);
    let manifest = match answer.value {
        Ok(manifest) => manifest,
        Err(error) => return refuse(job, error),
    };
    if manifest.job != job.id || manifest.chunk_size == 0 || manifest.chunk_size > CHUNK_SIZE {
        return refuse(job, BackupError::UnsupportedChunkSize { chunk_size: manifest.chunk_size, max: CHUNK_SIZE });
    }
    let chunks = chunk_count(manifest.size, manifest.chunk_size);
    let required = transfer_estimate(chunks) + batch_reserve();
    if let Err(VaultError::InsufficientCycles { required, available }) = check_cycles(required) {
        save(job.clone());
        fail(job.id, JobError::InsufficientCycles { required, available });
        return false;
    }
    let time = now();
    let snapshot = with_state(|s| {
        let id = s.new_snapshot_id();
        s.put_snapshot(
            job.app,
            id,
            SnapshotRecord {
                status: SnapshotStatus::Building,
                job: job.id,
                taken_at: manifest.taken_at_nanos,
                size: manifest.size,
                sha256: Sha256::default(),
                module_hash: job.module_hash,
                state_kind: manifest.state_kind,
                chunks,
                chunk_size: manifest.chunk_size,
                started_at: job.started_at,
                duration: 0,
                transfer_cycles: 0,
                trigger: match job.kind {
                    JobKind::Snapshot { trigger } => trigger,
                    JobKind::Restore { .. } => unreachable!("a snapshot job"),
                },
            },
        );
        id
    });
    job.snapshot_id = Some(snapshot);
    job.state_kind = manifest.state_kind;
    job.size = manifest.size;
    job.chunk_size = manifest.chunk_size;
    job.chunks = chunks;
    job.taken_at = manifest.taken_at_nanos;
    job.retries = 0;
    job.phase = if chunks == 0 { JobPhase::Finishing } else { JobPhase::Transferring };
    job.notes.push(format!("dump opened at {time} ns: {} bytes in {chunks} chunks", manifest.size));
    save(job);
    true
}

async fn snapshot_transfer(job: JobRecord) -> bool {
    let snapshot = job.snapshot_id.expect("a transferring snapshot job has its snapshot");
    let indices = next_chunks(&job);
    let calls = indices.iter().map(|&i| app_client::dump_chunk(job.app, job.id, i)).collect();
    transfer_batch(job, indices, calls, |job, index, chunk| {
        let range = chunk_range(job.size, job.chunk_size, index);
        let hashed = HashedChunk::new(&chunk.data);
        let intact = chunk.index == index && chunk.data.len() as u64 == range.end - range.start && hashed.hash() == chunk.sha256;
        if !intact {
            return Err(CallFailure::Corrupted { index });
        }
        with_state(|s| s.store_chunk(snapshot, index, &hashed));
        Ok(())
    })
    .await
}

/// Runs one batch of chunk `calls` (for chunks `indices`) of `job` and settles it: `store`
/// takes each chunk the app answered; a lost dump or staging area starts the job over, any
/// other refusal fails it.
async fn transfer_batch<T>(
    job: JobRecord,
    indices: Vec<u32>,
    calls: Vec<impl std::future::Future<Output = app_client::Protocol<T>>>,
    mut store: impl FnMut(&JobRecord, u32, T) -> Result<(), CallFailure>,
) -> bool {
    let phase = job.phase;
    let results = futures::future::join_all(calls).await;
    // Answers that arrive after the job moved on (it finished, failed or started over) change
    // nothing.
    let Some(mut job) = with_state(|s| s.job(job.id)).filter(|j| j.phase == phase) else { return false };
    let mut progressed = false;
    let mut failure = None;
    for (&index, result) in indices.iter().zip(results) {
        let answer = match result {
            Ok(answer) => answer,
            Err(f) => {
                failure = Some(f);
                continue;
            }
        };
        account(&mut job, &answer);
        match answer.value {
            Ok(value) => match store(&job, index, value) {
                Ok(()) => {
                    job.mark_done(index);
                    progressed = true;
                }
                Err(f) => failure = Some(f),
            },
            // The chunk was damaged on its way to the app: send it again.
            Err(BackupError::ChunkHashMismatch { index }) => failure = Some(CallFailure::Corrupted { index }),
            Err(error @ BackupError::UnknownJob { .. }) => return start_over(job, error),
            Err(error) => return refuse(job, error),
        }
    }
    if job.chunks_done() == job.chunks {
        job.phase = JobPhase::Finishing;
    }
    settle_batch(job, progressed, failure)
}

/// Saves a batch's outcome: a batch in which nothing moved counts as a failed attempt; a
/// failure beside progress is noted, and its chunks are asked for again by the next batch.
fn settle_batch(mut job: JobRecord, progressed: bool, failure: Option<CallFailure>) -> bool {
    match failure {
        Some(f) if !progressed => retry(job, &f),
        failure => {
            if let Some(f) = failure {
                job.notes.push(format!("a chunk call failed and will be repeated: {f}"));
                trim_notes(&mut job);
            }
            job.retries = 0;
            save(job);
            true
        }
    }
}

async fn snapshot_finish(mut job: JobRecord) -> bool {
    match app_client::dump_end(job.app, job.id).await {
        Ok(answer) => account(&mut job, &answer),
        Err(f) => return retry(job, &f),
    }
    let snapshot = job.snapshot_id.expect("a finishing snapshot job has its snapshot");
    let time = now();
    let Some(sha256) = with_state(|s| s.manifest_hash(snapshot, job.size, job.chunk_size)) else {
        return start_over(job, BackupError::MissingChunks { missing: 1, first: 0 });
    };
    let transfer_cycles = job.calls as u128 * 260_000 + job.bytes_moved as u128 * 1_000;
    let app = job.app;
    job.phase = JobPhase::Succeeded;
    job.finished_at = Some(time);
    job.retries = 0;
    with_state(|s| {
        if let Some(mut record) = s.snapshot(app, snapshot) {
            record.status = SnapshotStatus::Complete;
            record.sha256 = sha256;
            record.duration = time - job.started_at;
            record.transfer_cycles = transfer_cycles;
            s.put_snapshot(app, snapshot, record);
        }
        s.put_job(job.clone());
        finish_app_job(s, app, job.id);
        apply_retention(s, app);
    });
    true
}

/// Deletes the completed snapshots of `app` its retention lets go, except those a running
/// restore reads.
pub fn apply_retention(s: &mut crate::state::State, app: Principal) {
    let Some(record) = s.app(app) else { return };
    let in_use = snapshots_in_use(s);
    let complete: Vec<(u64, u64)> = s
        .snapshots_of(app)
        .into_iter()
        .filter(|(_, r)| r.status == SnapshotStatus::Complete)
        .map(|(id, r)| (id, r.taken_at))
        .collect();
    for id in retention::to_delete(&complete, &record.retention) {
        if !in_use.contains(&(app, id)) {
            s.schedule_deletion(app, id);
        }
    }
}

/// (source app, snapshot) pairs that running restores read.
pub fn snapshots_in_use(s: &crate::state::State) -> BTreeSet<(Principal, u64)> {
    s.active_jobs()
        .into_iter()
        .filter_map(|j| match j.kind {
            JobKind::Restore { source, snapshot_id } => Some((source, snapshot_id)),
            JobKind::Snapshot { .. } => None,
        })
        .collect()
}

fn restored_snapshot(job: &JobRecord) -> Option<SnapshotRecord> {
    let JobKind::Restore { source, snapshot_id } = job.kind else { unreachable!("a restore job") };
    with_state(|s| s.snapshot(source, snapshot_id)).filter(|r| r.status == SnapshotStatus::Complete)
}

fn snapshot_gone(job: JobRecord) -> bool {
    save(job.clone());
    fail(job.id, JobError::SnapshotDeleted);
    false
}

async fn restore_start(mut job: JobRecord) -> bool {
    let Some(snapshot) = restored_snapshot(&job) else { return snapshot_gone(job) };
    let args = RestoreBegin {
        job: job.id,
        state_kind: snapshot.state_kind,
        size: snapshot.size,
        chunk_size: snapshot.chunk_size,
        sha256: snapshot.sha256,
    };
    let answer = match app_client::restore_begin(job.app, args).await {
        Ok(answer) => answer,
        Err(f) => return retry(job, &f),
    };
    account(&mut job, &answer);
    if let Err(error) = answer.value {
        return refuse(job, error);
    }
    job.state_kind = snapshot.state_kind;
    job.size = snapshot.size;
    job.chunk_size = snapshot.chunk_size;
    job.chunks = snapshot.chunks;
    job.taken_at = snapshot.taken_at;
    job.retries = 0;
    job.phase = if snapshot.chunks == 0 { JobPhase::Finishing } else { JobPhase::Transferring };
    save(job);
    true
}

async fn restore_transfer(job: JobRecord) -> bool {
    let JobKind::Restore { source: _, snapshot_id } = job.kind else { unreachable!("a restore job") };
    if restored_snapshot(&job).is_none() {
        return snapshot_gone(job);
    }
    let indices = next_chunks(&job);
    let calls = indices
        .iter()
        .map(|&index| {
            let (sha256, data) = with_state(|s| s.chunk(snapshot_id, index)).expect("a complete snapshot has every chunk");
            let args = RestoreChunk { job: job.id, index, data: serde_bytes::ByteBuf::from(data), sha256 };
            app_client::restore_chunk(job.app, args)
        })
        .collect();
    transfer_batch(job, indices, calls, |_, _, ()| Ok(())).await
}

async fn restore_finish(mut job: JobRecord) -> bool {
    let Some(snapshot) = restored_snapshot(&job) else { return snapshot_gone(job) };
    let answer = match app_client::restore_commit(job.app, job.id).await {
        Ok(answer) => answer,
        Err(f) => return retry(job, &f),
    };
    account(&mut job, &answer);
    let report = match answer.value {
        Ok(report) => report,
        Err(error @ (BackupError::UnknownJob { .. } | BackupError::MissingChunks { .. })) => return start_over(job, error),
        Err(error) => return refuse(job, error),
    };
    if report.sha256 != snapshot.sha256 {
        return refuse(job, BackupError::SnapshotHashMismatch { expected: snapshot.sha256, actual: report.sha256 });
    }
    let time = now();
    job.phase = JobPhase::Succeeded;
    job.finished_at = Some(time);
    job.retries = 0;
    job.notes.push(format!("committed at {time} ns: the app's state is the snapshot's"));
    let app = job.app;
    with_state(|s| {
        s.put_job(job.clone());
        finish_app_job(s, app, job.id);
    });
    true
}
