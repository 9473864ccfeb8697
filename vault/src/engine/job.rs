//! A job's transitions, pure: `apply(job, event, ctx)` returns the job's next state and the
//! effects to perform on the vault's state; `next_calls(job, batch)` says what the next step asks of
//! the app. The async steps only make the calls, turn their answers into an [`Event`] and
//! perform the [`Effect`]s, so every transition is unit-tested natively.

use std::collections::BTreeSet;

use vault_api::manifest::try_chunk_count;
use vault_api::protocol::{BackupError, CHUNK_SIZE, DumpManifest, MAX_CHUNKS, MAX_IMAGE_BYTES, RestoreReport, StateKind};
use vault_api::{ContentHash, Sha256};
use candid::Principal;
use vault_api::service::{JobError, Limits, Retention, Trigger, VaultError};

use super::{cycles, incremental};
use crate::app_client::{self, CallFailure};
use crate::retention;
use crate::storable::{AppBase, Base, Building, ChunkSet, JobRecord, Outcome, Phase, SnapshotRecord, SnapshotStatus, Task, Transfer};

/// The smallest chunks of an image of more than one chunk: the vault stores each chunk in
/// 4 KiB pages of its own and charges its length, so smaller ones would hold pages uncharged.
pub const MIN_CHUNK_SIZE: u64 = 64 * 1024;

/// Why an image of `size` bytes in chunks of `chunk_size` is refused for its small chunks:
/// more than one chunk, of fewer than [`MIN_CHUNK_SIZE`] bytes.
pub fn small_chunks(size: u64, chunk_size: u64) -> Option<String> {
    (size > chunk_size && chunk_size < MIN_CHUNK_SIZE)
        .then(|| format!("chunks of {chunk_size} bytes: an image of more than one chunk has chunks of at least {MIN_CHUNK_SIZE} bytes"))
}

/// Chunk calls a batch makes at least, when it has chunks enough to move: the cycles a job needs
/// to start count that many calls' reservations ([`cycles::batch_reserve`]).
pub const MIN_BATCH: u32 = 4;
/// Chunk calls a batch makes at most: on the IC's streams between two subnets (4 MiB a round
/// each way, a request inducted 2 rounds after it is sent, its reply 2 after that), a batch of
/// `n` calls of 2 MiB each, started as the last one returns, moves `2n` MiB every `3 + n/2`
/// rounds: 16 keep a stream at 73% of its budget.
pub const MAX_BATCH: u32 = 16;
/// Retries of a failed attempt: a job fails on its `MAX_RETRIES + 1`th failed attempt in a row.
pub const MAX_RETRIES: u32 = 8;
/// Times a job starts over after the app lost its dump or staging area.
pub const MAX_RESTARTS: u32 = 3;
/// Notes kept on a job.
const NOTES_KEPT: usize = 20;

/// What the environment tells a transition.
pub struct Ctx {
    pub now: u64,
    /// The vault's liquid cycles.
    pub cycles: u128,
    /// Cycles a batch of calls reserves while in flight.
    pub batch_reserve: u128,
    /// The id a snapshot created by this transition gets.
    pub next_snapshot: u64,
    /// Bytes of new snapshots the vault's stable memory takes before its reserve.
    pub stable_room: u64,
    pub app: Holdings,
    pub limits: Limits,
    /// The base a dump of the job's app opening now asks to build on (`incremental::base_to_ask`).
    pub base: Option<Base>,
}

/// What a job's app holds and spent, as its quotas count them.
#[derive(Clone, Debug, Default)]
pub struct Holdings {
    /// Bytes its snapshots hold, each chunk once, and those being built hold, whole.
    pub bytes: u64,
    /// Its completed snapshots, (id, taken at), and the policy that prunes them (none for an
    /// app no longer registered: nothing is pruned).
    pub snapshots: Vec<(u64, u64)>,
    pub retention: Option<Retention>,
    /// Cycles the vault spent on it this UTC day.
    pub cycles_today: u128,
    /// The principal charged for what it holds, and what that principal's apps hold together.
    pub registrant: Option<(Principal, u64)>,
}

/// Cycles a transfer of `chunks` full chunks costs, beyond the calls' reservations.
pub fn transfer_estimate(chunks: u32) -> u128 {
    chunks as u128 * (app_client::transfer_cycles(1, CHUNK_SIZE + 2 * 1024) + 100_000_000)
}

/// The calls a job's next step makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Calls {
    DumpBegin,
    /// No call: the new snapshot references the next base entries (`incremental::next_copy`).
    CopyBase,
    DumpChunks(Vec<u32>),
    DumpEnd,
    /// The snapshot read must still be complete; the performer checks it.
    RestoreBegin,
    RestoreChunks(Vec<u32>),
    RestoreCommit,
}

impl Calls {
    /// The chunks a batch of chunk calls moves; `None` for a phase's call.
    pub fn chunks(&self) -> Option<&[u32]> {
        match self {
            Calls::DumpChunks(indices) | Calls::RestoreChunks(indices) => Some(indices),
            Calls::DumpBegin | Calls::CopyBase | Calls::DumpEnd | Calls::RestoreBegin | Calls::RestoreCommit => None,
        }
    }

    /// Whether the step calls the app (one that does not runs within the message that takes it).
    pub fn calls_app(&self) -> bool {
        *self != Calls::CopyBase
    }
}

/// What the next step of `job` asks of its app: chunk calls for at most `batch` chunks.
pub fn next_calls(job: &JobRecord, batch: u32) -> Option<Calls> {
    next_calls_besides(job, batch, &BTreeSet::new())
}

/// [`next_calls`], the chunk calls for chunks not in `in_flight` (another batch's): none left
/// is an empty list.
pub fn next_calls_besides(job: &JobRecord, batch: u32, in_flight: &BTreeSet<u32>) -> Option<Calls> {
    if job.is_finished() {
        return None;
    }
    Some(match &job.task {
        Task::Snapshot { phase: Phase::Starting, .. } => Calls::DumpBegin,
        Task::Snapshot { phase: Phase::Transferring(b), base: Some(base), .. }
            if b.transfer.state_kind == StateKind::StableMemory && !incremental::next_copy(base, b.transfer.chunks).is_empty() =>
        {
            Calls::CopyBase
        }
        Task::Snapshot { phase: Phase::Transferring(b), .. } => Calls::DumpChunks(pending(&b.transfer, batch, in_flight)),
        Task::Snapshot { phase: Phase::Finishing(_), .. } => Calls::DumpEnd,
        Task::Restore { phase: Phase::Starting, .. } => Calls::RestoreBegin,
        Task::Restore { phase: Phase::Transferring(t), .. } => Calls::RestoreChunks(pending(t, batch, in_flight)),
        Task::Restore { phase: Phase::Finishing(_), .. } => Calls::RestoreCommit,
    })
}

/// Chunks not moved yet nor in flight, at most `batch` (and at least one) of them.
fn pending(transfer: &Transfer, batch: u32, in_flight: &BTreeSet<u32>) -> Vec<u32> {
    (0..transfer.chunks).filter(|&i| !transfer.done.contains(i) && !in_flight.contains(&i)).take(batch.max(1) as usize).collect()
}

/// Opens an attempt of the job's next step, before its calls go out: the attempt counts as
/// failed unless its answers are read ([`answered`]). A callback that traps while reading them
/// rolls back everything it did but not this count, so an app whose answers make the vault trap
/// runs the job out of retries instead of holding it forever. A dump's first attempt fixes the
/// base it asks for ([`Ctx::base`]): a later one asks the same, as the first may have opened it.
pub fn begin_attempt(mut job: JobRecord, ctx: &Ctx) -> Result<JobRecord, Box<Next>> {
    if job.retries > MAX_RETRIES {
        let (attempts, last) = (job.retries, "the vault trapped while reading the app's answers".to_string());
        // A commit sent whose answer the vault never read may have run.
        let maybe_committed = matches!(job.task, Task::Restore { commit_unknown: true, .. } | Task::Restore { commit_sent: true, .. });
        let error =
            if maybe_committed { JobError::CommitUnconfirmed { attempts, last } } else { JobError::RetriesExhausted { attempts, last } };
        return Err(Box::new(fail(job, error, ctx)));
    }
    job.retries += 1;
    if let Task::Snapshot { phase: Phase::Starting, base, .. } = &mut job.task
        && base.is_none()
    {
        *base = ctx.base;
    }
    let committing = matches!(job.task, Task::Restore { phase: Phase::Finishing(_), .. });
    if let Task::Restore { commit_unknown, commit_sent, .. } = &mut job.task
        && committing
    {
        // A commit sent before whose answer was never read (the vault trapped reading it) may
        // have committed.
        *commit_unknown |= *commit_sent;
        *commit_sent = true;
    }
    Ok(job)
}

/// The attempt's answers arrived: whether it failed is the transition's to say.
pub fn answered(mut job: JobRecord) -> JobRecord {
    job.retries = job.retries.saturating_sub(1);
    if let Task::Restore { commit_sent, .. } = &mut job.task {
        *commit_sent = false;
    }
    job
}

/// Whether a controller may cancel the job now: not once it is over, and not while a restore
/// commits (the app may be committing: its state would be neither the snapshot's nor known).
pub fn cancellable(job: &JobRecord) -> Result<(), String> {
    match (&job.outcome, &job.task) {
        (Outcome::Succeeded | Outcome::Failed(_), _) => Err("it is over".into()),
        (Outcome::Running, Task::Restore { phase: Phase::Finishing(_), .. }) => Err("the restore is committing".into()),
        (Outcome::Running, _) => Ok(()),
    }
}

/// How one chunk call of a batch ended, as the performer read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkAnswer {
    /// Moved (and, for a snapshot, checked and stored).
    Moved(u32),
    Failed(CallFailure),
    /// The app answered the chunk in a form its dump does not take (see `JobError::InvalidChunk`).
    Invalid { index: u32, reason: String },
    /// The app answered with an error; the performer reads no answer after it.
    Refused(BackupError),
    /// The base an incremental chunk is rebuilt over is gone (deleted while the job ran).
    BaseDeleted,
}

/// What happened to a job, as its step's calls answered (or the vault decided).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A step's call got no answer.
    CallFailed(CallFailure),
    DumpBegun(Result<DumpManifest, BackupError>),
    /// The new snapshot references the base entries of `incremental::next_copy` (false: the base
    /// is no longer complete, and the new snapshot references what it could).
    BaseCopied(bool),
    Chunks(Vec<ChunkAnswer>),
    /// The dump is closed; the manifest hash of the stored chunks, `None` if one is missing, and
    /// whether the app answered its end naming the new snapshot its base.
    DumpEnded { manifest_hash: Option<Sha256>, kept_as_base: bool },
    /// The app opened its staging area for the restored snapshot (described by `snapshot`).
    RestoreBegun(Result<(), BackupError>, SnapshotRecord),
    /// The app's answer to the commit, and the SHA-256 the snapshot has.
    Committed(Result<RestoreReport, BackupError>, Sha256),
    /// The restored snapshot is no longer complete.
    SnapshotGone,
    /// The vault ends the job.
    Abort(JobError),
}

/// A change to the vault's state a transition asks for, beside saving the job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Record snapshot `id` (from [`Ctx::next_snapshot`]) as building, with the state layout its
    /// app declared.
    CreateSnapshot { id: u64, record: SnapshotRecord, state_layout: Option<u32> },
    /// Mark the job's snapshot complete.
    CompleteSnapshot { id: u64, sha256: Sha256, duration: u64, transfer_cycles: u128 },
    /// Release a snapshot that will not complete.
    DropSnapshot(u64),
    /// The job is over: the app may run another, its job log is pruned.
    FreeApp,
    /// Tell the app to release its dump or staging area (best effort).
    ReleaseApp,
    /// Delete the completed snapshots the app's retention lets go.
    ApplyRetention,
    /// The app keeps the image of this snapshot as its base.
    KeepBase(AppBase),
}

/// A transition's result: the job to save, the effects, whether it progressed.
#[derive(Debug, PartialEq, Eq)]
pub struct Next {
    pub job: JobRecord,
    pub effects: Vec<Effect>,
    pub progressed: bool,
}

impl Next {
    fn progressed(job: JobRecord, effects: Vec<Effect>) -> Self {
        Next { job, effects, progressed: true }
    }

    fn stalled(job: JobRecord) -> Self {
        Next { job, effects: Vec::new(), progressed: false }
    }
}

pub fn apply(mut job: JobRecord, event: Event, ctx: &Ctx) -> Next {
    if !answers_next_calls(&job, &event) {
        return Next::stalled(job);
    }
    job.updated_at = ctx.now;
    match (event, &job.task) {
        (Event::CallFailed(failure), _) => attempt_failed(job, &failure, ctx),
        (Event::Abort(error), _) => fail(job, error, ctx),
        (Event::SnapshotGone, _) => fail(job, JobError::SnapshotDeleted, ctx),
        (Event::DumpBegun(Err(error)) | Event::RestoreBegun(Err(error), _), _) => refuse(job, error, ctx),
        (Event::DumpBegun(Ok(manifest)), &Task::Snapshot { trigger, .. }) => dump_begun(job, trigger, manifest, ctx),
        (Event::BaseCopied(copied), _) => base_copied(job, copied, ctx),
        (Event::Chunks(answers), _) => chunks_settled(job, answers, ctx),
        (Event::DumpEnded { manifest_hash, kept_as_base }, Task::Snapshot { phase: Phase::Finishing(building), base, .. }) => {
            let snapshot = building.snapshot;
            let kept = kept_as_base.then(|| AppBase { snapshot, incrementals: base.map_or(0, |b| b.incrementals + 1) });
            dump_ended(job, snapshot, manifest_hash, kept, ctx)
        }
        (Event::RestoreBegun(Ok(()), snapshot), _) => restore_begun(job, &snapshot),
        (Event::Committed(answer, expected), _) => committed(job, answer, expected, ctx),
        // `answers_next_calls` lets no other pair through.
        (Event::DumpBegun(_) | Event::DumpEnded { .. }, _) => Next::stalled(job),
    }
}

/// Whether `event` answers the calls the job's phase makes (events of the vault's own apply
/// to every running job). Any other event changes nothing.
fn answers_next_calls(job: &JobRecord, event: &Event) -> bool {
    let Some(calls) = next_calls(job, 1) else { return false };
    match event {
        Event::CallFailed(_) | Event::Abort(_) | Event::SnapshotGone => true,
        Event::DumpBegun(_) => calls == Calls::DumpBegin,
        Event::BaseCopied(_) => calls == Calls::CopyBase,
        Event::Chunks(_) => matches!(calls, Calls::DumpChunks(_) | Calls::RestoreChunks(_)),
        Event::DumpEnded { .. } => calls == Calls::DumpEnd,
        Event::RestoreBegun(..) => calls == Calls::RestoreBegin,
        Event::Committed(..) => calls == Calls::RestoreCommit,
    }
}

pub(crate) fn note(job: &mut JobRecord, note: String) {
    job.notes.push(note);
    if job.notes.len() > NOTES_KEPT {
        job.notes.drain(..job.notes.len() - NOTES_KEPT);
    }
}

/// Ends a job as failed: frees its app, drops a snapshot it was building, and has the app
/// release its dump or staging.
fn fail(mut job: JobRecord, error: JobError, ctx: &Ctx) -> Next {
    let mut effects = Vec::new();
    if let Task::Snapshot { phase, .. } = &job.task
        && let Some(building) = phase.moving()
    {
        effects.push(Effect::DropSnapshot(building.snapshot));
    }
    effects.extend([Effect::FreeApp, Effect::ReleaseApp]);
    job.outcome = Outcome::Failed(error);
    job.finished_at = Some(ctx.now);
    Next { job, effects, progressed: false }
}

fn refuse(job: JobRecord, error: BackupError, ctx: &Ctx) -> Next {
    fail(job, JobError::AppRefused { error }, ctx)
}

/// A failed attempt: the job fails on a reject no retry can help, or once retries run out. A
/// restore that fails while committing says whether the app may have committed: it may once any
/// commit attempt ended without telling (its answer lost, or undecodable), which the job records;
/// otherwise every attempt certainly did not commit (a trap, a reject, a call never sent: a retried
/// commit after one that did answers from the app's record of it), and the error says so.
fn attempt_failed(mut job: JobRecord, failure: &CallFailure, ctx: &Ctx) -> Next {
    let committing = matches!(job.task, Task::Restore { phase: Phase::Finishing(_), .. });
    if let Task::Restore { commit_unknown, .. } = &mut job.task
        && committing
        && failure.outcome_unknown()
    {
        *commit_unknown = true;
    }
    let maybe_committed = matches!(job.task, Task::Restore { commit_unknown: true, .. });
    if !failure.retryable() {
        let error = if maybe_committed {
            JobError::CommitUnconfirmed { attempts: job.retries + 1, last: failure.to_string() }
        } else {
            JobError::AppUnreachable { reject_code: failure.reject_code(), message: failure.to_string() }
        };
        return fail(job, error, ctx);
    }
    job.retries += 1;
    let phase = job.phase();
    note(&mut job, format!("attempt failed in phase {phase:?}: {failure}"));
    if job.retries <= MAX_RETRIES {
        return Next::stalled(job);
    }
    let error = match failure {
        CallFailure::Corrupted { index } => JobError::ChunkCorrupted { index: *index, attempts: job.retries },
        other if maybe_committed => JobError::CommitUnconfirmed { attempts: job.retries, last: other.to_string() },
        other if committing => JobError::CommitFailed { attempts: job.retries, last: other.to_string() },
        other => JobError::RetriesExhausted { attempts: job.retries, last: other.to_string() },
    };
    fail(job, error, ctx)
}

/// The app lost the job's dump or staging area (reinstalled, or a newer job superseded it):
/// start over, at most [`MAX_RESTARTS`] times.
fn start_over(mut job: JobRecord, why: BackupError, ctx: &Ctx) -> Next {
    job.restarts += 1;
    if job.restarts > MAX_RESTARTS {
        return refuse(job, why, ctx);
    }
    note(&mut job, format!("the app lost the job's state ({why}); starting over"));
    let mut effects = Vec::new();
    match &mut job.task {
        Task::Snapshot { phase, base, .. } => {
            if let Some(building) = phase.moving() {
                effects.push(Effect::DropSnapshot(building.snapshot));
            }
            *phase = Phase::Starting;
            // The next dump asks for the base as it is then.
            *base = None;
        }
        Task::Restore { phase, .. } => *phase = Phase::Starting,
    }
    Next::progressed(job, effects)
}

fn transfer_phase<T>(transfer_chunks: u32, moving: T) -> Phase<T> {
    if transfer_chunks == 0 { Phase::Finishing(moving) } else { Phase::Transferring(moving) }
}

fn dump_begun(mut job: JobRecord, trigger: Trigger, manifest: DumpManifest, ctx: &Ctx) -> Next {
    if manifest.job != job.id {
        let reason = format!("the app opened a dump for job {}, not job {}", manifest.job, job.id);
        return fail(job, JobError::InvalidManifest { reason }, ctx);
    }
    let asked = match &job.task {
        Task::Snapshot { base, .. } => *base,
        Task::Restore { .. } => None,
    };
    let base = match dump_base(&manifest, asked) {
        Ok(base) => base,
        Err(reason) => return fail(job, JobError::InvalidManifest { reason }, ctx),
    };
    let from_upgrade_save = matches!(job.task, Task::Snapshot { from_upgrade_save: true, .. });
    if from_upgrade_save && manifest.from_upgrade_save != Some(true) {
        let reason = "the app's library dumps its state as it is, not the state its last upgrade saved: upgrade its library".to_string();
        return fail(job, JobError::InvalidManifest { reason }, ctx);
    }
    // Taken when the upgrade saved it, it may be older than every snapshot retention keeps.
    if let Some(policy) = &ctx.app.retention
        && from_upgrade_save
        && !retention::keeps(&ctx.app.snapshots, (ctx.next_snapshot, manifest.taken_at_nanos), policy)
    {
        let reason = format!(
            "the state the app's last upgrade saved, at {} ns, is older than the snapshots its retention keeps: it would not be kept",
            manifest.taken_at_nanos
        );
        return fail(job, JobError::Refused { error: VaultError::InvalidArgument { reason } }, ctx);
    }
    if manifest.chunk_size == 0 || manifest.chunk_size > CHUNK_SIZE {
        return refuse(job, BackupError::UnsupportedChunkSize { chunk_size: manifest.chunk_size, max: CHUNK_SIZE }, ctx);
    }
    if let Some(reason) = small_chunks(manifest.size, manifest.chunk_size) {
        return fail(job, JobError::InvalidManifest { reason }, ctx);
    }
    let chunks = try_chunk_count(manifest.size, manifest.chunk_size).filter(|&c| c <= MAX_CHUNKS && manifest.size <= MAX_IMAGE_BYTES);
    let Some(chunks) = chunks else {
        let reason = format!(
            "{} bytes in chunks of {}: a snapshot holds at most {MAX_IMAGE_BYTES} bytes in {MAX_CHUNKS} chunks",
            manifest.size, manifest.chunk_size
        );
        return fail(job, JobError::InvalidManifest { reason }, ctx);
    };
    if let Err(error) = fits(&job, &manifest, chunks, ctx) {
        return fail(job, JobError::Refused { error }, ctx);
    }
    let required = transfer_estimate(chunks) + ctx.batch_reserve;
    if ctx.cycles < required {
        return fail(job, JobError::InsufficientCycles { required, available: ctx.cycles }, ctx);
    }
    let snapshot = ctx.next_snapshot;
    let record = SnapshotRecord {
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
        trigger,
        content_hash: manifest.content_hash(),
    };
    let transfer = Transfer {
        state_kind: manifest.state_kind,
        size: manifest.size,
        chunk_size: manifest.chunk_size,
        chunks,
        taken_at: manifest.taken_at_nanos,
        done: ChunkSet::default(),
    };
    job.task = Task::Snapshot { trigger, phase: transfer_phase(chunks, Building { snapshot, transfer }), base, from_upgrade_save };
    job.retries = 0;
    let against = base.map_or(String::new(), |base| format!(", incremental against snapshot {}", base.snapshot));
    note(&mut job, format!("dump opened at {} ns: {} bytes in {chunks} chunks{against}", ctx.now, manifest.size));
    Next::progressed(job, vec![Effect::CreateSnapshot { id: snapshot, record, state_layout: manifest.state_layout }])
}

/// The base the dump `manifest` describes is incremental against, of the one `asked` for: none
/// for a full dump. A dump on another base than asked for, and one whose chunks could not be those
/// of its base (not an image in BLAKE3 in chunks of `CHUNK_SIZE`), are refused. (The base asked
/// for is of the app's kind; a dump of another kind over it builds from the app's own snapshot
/// still.)
fn dump_base(manifest: &DumpManifest, asked: Option<Base>) -> Result<Option<Base>, String> {
    let Some(named) = manifest.base else { return Ok(None) };
    let asked = match asked {
        Some(asked) if asked.snapshot == named => asked,
        Some(asked) => return Err(format!("the dump builds on snapshot {named}, not on snapshot {} as asked", asked.snapshot)),
        None => return Err(format!("the dump builds on snapshot {named}, but a full one was asked for")),
    };
    let (kind, hash, chunk_size) = (manifest.state_kind, manifest.content_hash(), manifest.chunk_size);
    if hash != ContentHash::Blake3 || chunk_size != CHUNK_SIZE {
        return Err(format!("an incremental dump is an image in BLAKE3 in chunks of {CHUNK_SIZE}, not a {kind:?} one in {hash:?} in chunks of {chunk_size}"));
    }
    Ok(Some(asked))
}

/// Whether the new snapshot `manifest` describes, in `chunks` chunks, fits the app's quotas,
/// its registrant's, and the vault's stable memory.
///
/// The snapshots counted are those the app keeps once its retention policy ran on them and the
/// new one (it runs as the new one completes): an app whose policy keeps as many as its quota
/// allows takes snapshots forever, the oldest going as each new one completes. A snapshot a
/// running restore reads outlives the policy until the next run; it is not counted apart.
fn fits(job: &JobRecord, manifest: &DumpManifest, chunks: u32, ctx: &Ctx) -> Result<(), VaultError> {
    let (app, limits, held, size) = (job.app, &ctx.limits, &ctx.app, manifest.size);
    let new = (ctx.next_snapshot, manifest.taken_at_nanos);
    let kept = held.retention.map_or(held.snapshots.len() + 1, |policy| retention::kept_with(&held.snapshots, new, &policy));
    if kept > limits.app_snapshots as usize {
        let (used, limit) = (held.snapshots.len() as u64, limits.app_snapshots as u64);
        return Err(VaultError::QuotaExceeded { app, what: "snapshots".into(), used, limit, registrant: None });
    }
    cycles::bytes_quota(app, held.bytes, held.registrant, size, limits)?;
    cycles::day_quota(app, held.cycles_today, transfer_estimate(chunks), limits.app_cycles_per_day)?;
    if size > ctx.stable_room {
        return Err(VaultError::StorageFull { needed: size, available: ctx.stable_room, reserved: cycles::STABLE_RESERVE });
    }
    Ok(())
}

fn restore_begun(mut job: JobRecord, snapshot: &SnapshotRecord) -> Next {
    let transfer = Transfer {
        state_kind: snapshot.state_kind,
        size: snapshot.size,
        chunk_size: snapshot.chunk_size,
        chunks: snapshot.chunks,
        taken_at: snapshot.taken_at,
        done: ChunkSet::default(),
    };
    if let Task::Restore { phase, .. } = &mut job.task {
        *phase = transfer_phase(snapshot.chunks, transfer);
    }
    job.retries = 0;
    Next::progressed(job, Vec::new())
}

/// A step referencing base entries ended: the new snapshot references them, or the base went
/// (deleted while they were referenced): an incremental dump cannot be built without it.
fn base_copied(mut job: JobRecord, copied: bool, ctx: &Ctx) -> Next {
    let Task::Snapshot { phase: Phase::Transferring(building), base: Some(base), .. } = &mut job.task else { return Next::stalled(job) };
    if !copied {
        let base = base.snapshot;
        return fail(job, JobError::BaseDeleted { base }, ctx);
    }
    base.copied = incremental::next_copy(base, building.transfer.chunks).end;
    job.retries = 0;
    Next::progressed(job, Vec::new())
}

/// A batch of chunk calls settled: chunks moved are marked; a lost dump or staging area starts
/// the job over, any other refusal fails it; a batch in which nothing moved is a failed
/// attempt, and a failure beside progress is noted (its chunks are asked for again).
fn chunks_settled(mut job: JobRecord, answers: Vec<ChunkAnswer>, ctx: &Ctx) -> Next {
    let mut progressed = false;
    let mut failure = None;
    for answer in answers {
        match answer {
            ChunkAnswer::Moved(index) => {
                if let Some(transfer) = transfer_mut(&mut job) {
                    transfer.done.insert(index);
                    progressed = true;
                }
            }
            ChunkAnswer::Failed(f) => failure = Some(f),
            // The chunk was damaged on its way to the app: send it again.
            ChunkAnswer::Refused(BackupError::ChunkHashMismatch { index }) => failure = Some(CallFailure::Corrupted { index }),
            ChunkAnswer::Refused(error @ BackupError::UnknownJob { .. }) => return start_over(job, error, ctx),
            ChunkAnswer::Invalid { index, reason } => return fail(job, JobError::InvalidChunk { index, reason }, ctx),
            ChunkAnswer::BaseDeleted => {
                let Task::Snapshot { base: Some(base), .. } = &job.task else { unreachable!("a chunk is rebuilt over the base of its job") };
                let base = base.snapshot;
                return fail(job, JobError::BaseDeleted { base }, ctx);
            }
            ChunkAnswer::Refused(error) => return refuse(job, error, ctx),
        }
    }
    finish_transfer_if_complete(&mut job);
    match failure {
        Some(f) if !progressed => attempt_failed(job, &f, ctx),
        failure => {
            if let Some(f) = failure {
                note(&mut job, format!("a chunk call failed and will be repeated: {f}"));
            }
            job.retries = 0;
            Next::progressed(job, Vec::new())
        }
    }
}

fn transfer_mut(job: &mut JobRecord) -> Option<&mut Transfer> {
    match &mut job.task {
        Task::Snapshot { phase: Phase::Transferring(b), .. } => Some(&mut b.transfer),
        Task::Restore { phase: Phase::Transferring(t), .. } => Some(t),
        _ => None,
    }
}

/// Moves a transferring job whose every chunk moved to its finishing phase.
fn finish_transfer_if_complete(job: &mut JobRecord) {
    if !job.task.transfer().is_some_and(Transfer::is_complete) {
        return;
    }
    match &mut job.task {
        Task::Snapshot { phase, .. } => phase.finish_transfer(),
        Task::Restore { phase, .. } => phase.finish_transfer(),
    }
}

fn succeed(mut job: JobRecord, effects: Vec<Effect>, ctx: &Ctx) -> Next {
    job.outcome = Outcome::Succeeded;
    job.finished_at = Some(ctx.now);
    job.retries = 0;
    Next::progressed(job, effects)
}

/// The dump is closed: the snapshot completes with the manifest hash of its chunks (a chunk
/// missing starts the job over), and the app keeps its image as its base if it said so (`kept`).
fn dump_ended(job: JobRecord, snapshot: u64, manifest_hash: Option<Sha256>, kept: Option<AppBase>, ctx: &Ctx) -> Next {
    let Some(sha256) = manifest_hash else {
        return start_over(job, BackupError::MissingChunks { missing: 1, first: 0 }, ctx);
    };
    let transfer_cycles = app_client::transfer_cycles(job.calls, job.bytes_moved);
    let complete = Effect::CompleteSnapshot { id: snapshot, sha256, duration: ctx.now - job.started_at, transfer_cycles };
    let effects = [complete].into_iter().chain(kept.map(Effect::KeepBase)).chain([Effect::FreeApp, Effect::ApplyRetention]).collect();
    succeed(job, effects, ctx)
}

fn committed(mut job: JobRecord, answer: Result<RestoreReport, BackupError>, expected: Sha256, ctx: &Ctx) -> Next {
    let report = match answer {
        Ok(report) => report,
        Err(error @ (BackupError::UnknownJob { .. } | BackupError::MissingChunks { .. })) => return start_over(job, error, ctx),
        Err(error) => return refuse(job, error, ctx),
    };
    if report.sha256 != expected {
        return refuse(job, BackupError::SnapshotHashMismatch { expected, actual: report.sha256 }, ctx);
    }
    match report.loads_at_upgrade {
        Some(true) => note(
            &mut job,
            format!("committed at {} ns: staged and checked in the app, whose next upgrade loads it (load_after_upgrade)", ctx.now),
        ),
        _ => note(&mut job, format!("committed at {} ns: the app's state is the snapshot's", ctx.now)),
    }
    succeed(job, vec![Effect::FreeApp], ctx)
}

#[cfg(test)]
mod tests {
    use candid::Principal;
    use vault_api::service::{JobKind, JobPhase};

    use super::*;

    const NOW: u64 = 1_000;

    fn ctx() -> Ctx {
        let limits = Limits { app_bytes: u64::MAX, app_cycles_per_day: u64::MAX, registrant_bytes: u64::MAX, ..Limits::default() };
        Ctx { now: NOW, cycles: u128::MAX, batch_reserve: 10, next_snapshot: 7, stable_room: u64::MAX, app: Holdings::default(), limits, base: None }
    }

    fn app() -> Principal {
        Principal::from_slice(&[1; 10])
    }

    fn snapshot_job() -> JobRecord {
        JobRecord::new(3, app(), JobKind::Snapshot { trigger: Trigger::Manual }, 10)
    }

    fn restore_job() -> JobRecord {
        JobRecord::new(4, app(), JobKind::Restore { source: app(), snapshot_id: 2 }, 10)
    }

    /// Test sizes count in units of [`KIB`] bytes, chunks of 100 units: as small as a chunk may be.
    const KIB: u64 = 1024;

    /// A dump of `size` units.
    fn manifest(size: u64) -> DumpManifest {
        DumpManifest {
            job: 3,
            state_kind: StateKind::Serde,
            size: size * KIB,
            chunk_size: 100 * KIB,
            taken_at_nanos: 5,
            state_layout: Some(2),
            content_hashes: None,
            base: None,
            from_upgrade_save: None,
            content_index: None,
        }
    }

    fn stored(chunks: u32) -> SnapshotRecord {
        SnapshotRecord {
            status: SnapshotStatus::Complete,
            job: 1,
            taken_at: 5,
            size: chunks as u64 * 100 * KIB,
            sha256: Sha256([9; 32]),
            module_hash: None,
            state_kind: StateKind::Serde,
            chunks,
            chunk_size: 100 * KIB,
            started_at: 0,
            duration: 0,
            transfer_cycles: 0,
            trigger: Trigger::Manual,
            content_hash: vault_api::ContentHash::Sha256,
        }
    }

    fn step(job: JobRecord, event: Event) -> Next {
        apply(job, event, &ctx())
    }

    /// A snapshot job whose dump is open with `chunks` chunks.
    fn transferring_snapshot(chunks: u32) -> JobRecord {
        step(snapshot_job(), Event::DumpBegun(Ok(manifest(chunks as u64 * 100)))).job
    }

    fn transferring_restore(chunks: u32) -> JobRecord {
        step(restore_job(), Event::RestoreBegun(Ok(()), stored(chunks))).job
    }

    fn moved(indices: &[u32]) -> Event {
        Event::Chunks(indices.iter().map(|&i| ChunkAnswer::Moved(i)).collect())
    }

    fn transient() -> CallFailure {
        CallFailure::Rejected { code: 2, message: "busy".into() }
    }

    fn failed_with(next: &Next) -> &JobError {
        next.job.error().expect("the job failed")
    }

    #[test]
    fn a_snapshot_job_opens_moves_in_batches_and_completes() {
        let job = snapshot_job();
        assert_eq!(next_calls(&job, MIN_BATCH), Some(Calls::DumpBegin));
        let next = step(job, Event::DumpBegun(Ok(manifest(550))));
        assert!(next.progressed);
        let Effect::CreateSnapshot { id: 7, record, state_layout: Some(2) } = &next.effects[0] else { panic!("{:?}", next.effects) };
        assert_eq!((record.status, record.chunks, record.trigger), (SnapshotStatus::Building, 6, Trigger::Manual));
        assert_eq!((next.job.phase(), next.job.snapshot_id()), (JobPhase::Transferring, Some(7)));
        assert_eq!(next_calls(&next.job, MIN_BATCH), Some(Calls::DumpChunks(vec![0, 1, 2, 3])));
        let next = step(next.job, moved(&[0, 1, 2, 3]));
        assert_eq!(next_calls(&next.job, MIN_BATCH), Some(Calls::DumpChunks(vec![4, 5])));
        let next = step(next.job, moved(&[4, 5]));
        assert_eq!((next.job.phase(), next_calls(&next.job, MIN_BATCH)), (JobPhase::Finishing, Some(Calls::DumpEnd)));
        let mut job = next.job;
        job.calls = 2;
        job.bytes_moved = 1_000;
        let next = step(job, Event::DumpEnded { manifest_hash: Some(Sha256([4; 32])), kept_as_base: false });
        let complete = Effect::CompleteSnapshot { id: 7, sha256: Sha256([4; 32]), duration: NOW - 10, transfer_cycles: 2 * 260_000 + 1_000_000 };
        assert_eq!(next.effects, vec![complete, Effect::FreeApp, Effect::ApplyRetention]);
        assert_eq!((next.job.phase(), next.job.finished_at, next_calls(&next.job, MIN_BATCH)), (JobPhase::Succeeded, Some(NOW), None));
    }

    #[test]
    fn an_empty_dump_goes_straight_to_finishing() {
        let job = transferring_snapshot(0);
        assert_eq!(next_calls(&job, MIN_BATCH), Some(Calls::DumpEnd));
        let job = transferring_restore(0);
        assert_eq!(next_calls(&job, MIN_BATCH), Some(Calls::RestoreCommit));
    }

    #[test]
    fn a_dump_manifest_is_checked_before_anything_is_created() {
        let mut bad = manifest(10);
        bad.chunk_size = 0;
        let next = step(snapshot_job(), Event::DumpBegun(Ok(bad)));
        assert_eq!(failed_with(&next), &JobError::AppRefused { error: BackupError::UnsupportedChunkSize { chunk_size: 0, max: CHUNK_SIZE } });
        assert_eq!(next.effects, vec![Effect::FreeApp, Effect::ReleaseApp], "no snapshot is created");
        let mut other_job = manifest(10);
        other_job.job = 99;
        assert!(step(snapshot_job(), Event::DumpBegun(Ok(other_job))).job.is_finished());
        let mut huge = manifest(10);
        huge.chunk_size = CHUNK_SIZE + 1;
        assert!(step(snapshot_job(), Event::DumpBegun(Ok(huge))).job.is_finished());
    }

    #[test]
    fn a_dump_the_vault_cannot_pay_for_fails_up_front() {
        let poor = Ctx { cycles: 5, ..ctx() };
        let next = apply(snapshot_job(), Event::DumpBegun(Ok(manifest(1_000))), &poor);
        let required = transfer_estimate(10) + 10;
        assert_eq!(failed_with(&next), &JobError::InsufficientCycles { required, available: 5 });
        assert!(!next.effects.iter().any(|e| matches!(e, Effect::CreateSnapshot { .. })));
    }

    #[test]
    fn a_refused_dump_fails_and_releases() {
        let next = step(snapshot_job(), Event::DumpBegun(Err(BackupError::NoVaultSet)));
        assert_eq!(failed_with(&next), &JobError::AppRefused { error: BackupError::NoVaultSet });
        assert_eq!(next.effects, vec![Effect::FreeApp, Effect::ReleaseApp]);
        assert_eq!(next.job.finished_at, Some(NOW));
    }

    #[test]
    fn failing_a_building_snapshot_drops_it() {
        let next = step(transferring_snapshot(3), Event::Abort(JobError::SnapshotDeleted));
        assert_eq!(next.effects, vec![Effect::DropSnapshot(7), Effect::FreeApp, Effect::ReleaseApp]);
        assert_eq!(next.job.phase(), JobPhase::Failed);
        assert_eq!(next.job.task.transfer().map(|t| t.chunks), Some(3), "a failed job keeps what it moved");
    }

    #[test]
    fn transient_failures_are_retried_until_the_budget_runs_out() {
        let mut job = transferring_snapshot(3);
        for attempt in 1..=MAX_RETRIES {
            let next = step(job, Event::CallFailed(transient()));
            assert!(!next.progressed && next.effects.is_empty() && !next.job.is_finished());
            assert_eq!(next.job.retries, attempt);
            job = next.job;
        }
        let next = step(job, Event::CallFailed(transient()));
        let JobError::RetriesExhausted { attempts, .. } = failed_with(&next) else { panic!("{:?}", next.job.outcome) };
        assert_eq!(*attempts, MAX_RETRIES + 1);
        assert!(next.effects.contains(&Effect::DropSnapshot(7)));
    }

    #[test]
    fn a_reject_no_retry_can_help_fails_at_once() {
        let destination_invalid = CallFailure::Rejected { code: 3, message: "no such canister".into() };
        let next = step(snapshot_job(), Event::CallFailed(destination_invalid));
        assert!(matches!(failed_with(&next), JobError::AppUnreachable { reject_code: 3, .. }));
    }

    #[test]
    fn corrupted_chunks_end_as_chunk_corrupted() {
        let mut job = transferring_snapshot(2);
        for _ in 0..=MAX_RETRIES {
            job = step(job, Event::Chunks(vec![ChunkAnswer::Failed(CallFailure::Corrupted { index: 1 })])).job;
        }
        assert_eq!(job.error(), Some(&JobError::ChunkCorrupted { index: 1, attempts: MAX_RETRIES + 1 }));
    }

    /// A committing restore whose every attempt failed, the last one with `last`.
    fn commit_out_of_retries(earlier: CallFailure, last: CallFailure) -> JobError {
        let mut job = transferring_restore(0);
        for _ in 0..MAX_RETRIES {
            job = step(job, Event::CallFailed(earlier.clone())).job;
        }
        let next = step(job, Event::CallFailed(last));
        assert_eq!(next.effects, vec![Effect::FreeApp, Effect::ReleaseApp]);
        failed_with(&next).clone()
    }

    fn lost() -> CallFailure {
        CallFailure::Rejected { code: 6, message: "the response was dropped".into() }
    }

    #[test]
    fn lost_commit_answers_end_as_commit_unconfirmed() {
        let mut job = transferring_restore(0);
        for _ in 0..=MAX_RETRIES {
            job = step(job, Event::CallFailed(lost())).job;
        }
        assert!(matches!(job.error(), Some(JobError::CommitUnconfirmed { attempts, .. }) if *attempts == MAX_RETRIES + 1));
    }

    #[test]
    fn a_commit_whose_last_answer_is_lost_or_undecodable_is_unconfirmed() {
        for last in [lost(), CallFailure::Undecodable("not candid".into())] {
            let error = commit_out_of_retries(transient(), last.clone());
            assert_eq!(error, JobError::CommitUnconfirmed { attempts: MAX_RETRIES + 1, last: last.to_string() });
        }
    }

    #[test]
    fn a_commit_whose_every_attempt_certainly_failed_is_reported_failed() {
        let trapped = CallFailure::Rejected { code: 5, message: "the app trapped".into() };
        for last in [trapped.clone(), transient(), CallFailure::NotSent] {
            for earlier in [trapped.clone(), transient()] {
                let error = commit_out_of_retries(earlier, last.clone());
                assert_eq!(error, JobError::CommitFailed { attempts: MAX_RETRIES + 1, last: last.to_string() });
            }
        }
        let text = JobError::CommitFailed { attempts: 9, last: "reject code 5: trapped".into() }.to_string();
        assert!(text.contains("did not commit") && text.contains("unchanged"), "{text}");
    }

    #[test]
    fn a_commit_that_may_have_run_once_stays_unconfirmed_whatever_fails_after() {
        // An earlier commit may have run although later attempts are refused without running
        // (the app stopping, out of cycles): the job cannot say the app is unchanged.
        let trapped = CallFailure::Rejected { code: 5, message: "the app trapped".into() };
        for last in [trapped, transient(), CallFailure::NotSent] {
            let error = commit_out_of_retries(lost(), last.clone());
            assert_eq!(error, JobError::CommitUnconfirmed { attempts: MAX_RETRIES + 1, last: last.to_string() });
        }
        let mut job = step(transferring_restore(0), Event::CallFailed(lost())).job;
        let gone = CallFailure::Rejected { code: 3, message: "the app is gone".into() };
        job = step(job, Event::CallFailed(gone.clone())).job;
        assert_eq!(job.error(), Some(&JobError::CommitUnconfirmed { attempts: 2, last: gone.to_string() }));
    }

    #[test]
    fn a_commit_whose_answer_the_vault_never_read_may_have_run() {
        // The vault trapped reading the first commit's answer: the attempt it recorded before the
        // call stays, what it read is rolled back, and the job is taken up again.
        let sent = begin_attempt(transferring_restore(0), &ctx()).unwrap();
        assert!(matches!(sent.task, Task::Restore { commit_unknown: false, commit_sent: true, .. }));
        let mut job = answered(begin_attempt(sent, &ctx()).unwrap());
        assert!(matches!(job.task, Task::Restore { commit_unknown: true, commit_sent: false, .. }));
        let trapped = CallFailure::Rejected { code: 5, message: "the app trapped".into() };
        while !job.is_finished() {
            job = step(job, Event::CallFailed(trapped.clone())).job;
        }
        assert!(matches!(job.error(), Some(JobError::CommitUnconfirmed { .. })), "{:?}", job.error());
        // Every commit's answer trapping the vault: out of attempts, the commit may have run.
        let mut job = transferring_restore(0);
        let exhausted = loop {
            match begin_attempt(job, &ctx()) {
                Ok(sent) => job = sent,
                Err(next) => break next,
            }
        };
        assert!(matches!(failed_with(&exhausted), JobError::CommitUnconfirmed { .. }), "{:?}", exhausted.job.outcome);
        // A commit whose answer was read leaves no doubt behind.
        let read = answered(begin_attempt(transferring_restore(0), &ctx()).unwrap());
        let again = begin_attempt(read, &ctx()).unwrap();
        assert!(matches!(again.task, Task::Restore { commit_unknown: false, commit_sent: true, .. }));
    }

    #[test]
    fn a_failure_out_of_retries_outside_a_commit_is_retries_exhausted() {
        let mut job = transferring_snapshot(3);
        for _ in 0..=MAX_RETRIES {
            job = step(job, Event::CallFailed(lost())).job;
        }
        assert!(matches!(job.error(), Some(JobError::RetriesExhausted { attempts, .. }) if *attempts == MAX_RETRIES + 1));
    }

    #[test]
    fn progress_beside_a_failure_resets_retries_and_notes_it() {
        let mut job = transferring_snapshot(4);
        job.retries = 3;
        let next = step(job, Event::Chunks(vec![ChunkAnswer::Moved(0), ChunkAnswer::Failed(transient())]));
        assert!(next.progressed);
        assert_eq!(next.job.retries, 0);
        assert!(next.job.notes.last().unwrap().contains("will be repeated"));
        assert_eq!(next_calls(&next.job, MIN_BATCH), Some(Calls::DumpChunks(vec![1, 2, 3])));
    }

    #[test]
    fn a_chunk_damaged_on_its_way_to_the_app_is_sent_again() {
        let job = transferring_restore(2);
        let next = step(job, Event::Chunks(vec![ChunkAnswer::Moved(0), ChunkAnswer::Refused(BackupError::ChunkHashMismatch { index: 1 })]));
        assert!(next.progressed && !next.job.is_finished());
        assert_eq!(next_calls(&next.job, MIN_BATCH), Some(Calls::RestoreChunks(vec![1])));
    }

    #[test]
    fn a_lost_dump_starts_over_a_bounded_number_of_times() {
        let mut job = transferring_snapshot(3);
        for restart in 1..=MAX_RESTARTS {
            let next = step(job, Event::Chunks(vec![ChunkAnswer::Refused(BackupError::UnknownJob { job: 3 })]));
            assert!(next.progressed);
            assert_eq!(next.effects, vec![Effect::DropSnapshot(7)]);
            assert_eq!((next.job.phase(), next.job.snapshot_id(), next.job.restarts), (JobPhase::Starting, None, restart));
            job = step(next.job, Event::DumpBegun(Ok(manifest(300)))).job;
        }
        let next = step(job, Event::Chunks(vec![ChunkAnswer::Refused(BackupError::UnknownJob { job: 3 })]));
        assert_eq!(failed_with(&next), &JobError::AppRefused { error: BackupError::UnknownJob { job: 3 } });
    }

    #[test]
    fn a_refused_chunk_fails_the_job() {
        let next = step(transferring_restore(2), Event::Chunks(vec![ChunkAnswer::Refused(BackupError::NoVaultSet)]));
        assert_eq!(failed_with(&next), &JobError::AppRefused { error: BackupError::NoVaultSet });
        assert_eq!(next.effects, vec![Effect::FreeApp, Effect::ReleaseApp]);
    }

    #[test]
    fn a_dump_missing_a_chunk_at_the_end_starts_over() {
        let job = step(transferring_snapshot(1), moved(&[0])).job;
        let next = step(job, Event::DumpEnded { manifest_hash: None, kept_as_base: false });
        assert_eq!((next.job.phase(), next.job.restarts), (JobPhase::Starting, 1));
        assert_eq!(next.effects, vec![Effect::DropSnapshot(7)]);
    }

    #[test]
    fn a_restore_begins_moves_and_commits() {
        let job = restore_job();
        assert_eq!(next_calls(&job, MIN_BATCH), Some(Calls::RestoreBegin));
        let next = step(job, Event::RestoreBegun(Ok(()), stored(5)));
        assert_eq!((next.job.phase(), next.effects.clone()), (JobPhase::Transferring, vec![]));
        let next = step(next.job, moved(&[0, 1, 2, 3]));
        let next = step(next.job, moved(&[4]));
        assert_eq!(next_calls(&next.job, MIN_BATCH), Some(Calls::RestoreCommit));
        let report = RestoreReport { job: 4, state_kind: StateKind::Serde, size: 500, sha256: Sha256([9; 32]), loads_at_upgrade: None };
        let next = step(next.job, Event::Committed(Ok(report), Sha256([9; 32])));
        assert_eq!((next.job.phase(), next.effects), (JobPhase::Succeeded, vec![Effect::FreeApp]));
        assert!(next.job.notes.last().unwrap().starts_with("committed"));
    }

    #[test]
    fn a_commit_reporting_another_hash_fails() {
        let report = RestoreReport { job: 4, state_kind: StateKind::Serde, size: 0, sha256: Sha256([1; 32]), loads_at_upgrade: None };
        let next = step(transferring_restore(0), Event::Committed(Ok(report), Sha256([9; 32])));
        let error = BackupError::SnapshotHashMismatch { expected: Sha256([9; 32]), actual: Sha256([1; 32]) };
        assert_eq!(failed_with(&next), &JobError::AppRefused { error });
    }

    #[test]
    fn a_commit_of_lost_staging_starts_over_and_other_refusals_fail() {
        for lost in [BackupError::UnknownJob { job: 4 }, BackupError::MissingChunks { missing: 1, first: 0 }] {
            let next = step(transferring_restore(0), Event::Committed(Err(lost), Sha256([9; 32])));
            assert_eq!((next.job.phase(), next.job.restarts), (JobPhase::Starting, 1));
            assert!(next.effects.is_empty(), "a restore has no snapshot of its own to drop");
        }
        let next = step(transferring_restore(0), Event::Committed(Err(BackupError::NoVaultSet), Sha256([9; 32])));
        assert!(next.job.is_finished());
    }

    #[test]
    fn a_restore_whose_snapshot_went_fails() {
        let next = step(transferring_restore(3), Event::SnapshotGone);
        assert_eq!(failed_with(&next), &JobError::SnapshotDeleted);
        assert_eq!(next.effects, vec![Effect::FreeApp, Effect::ReleaseApp]);
    }

    #[test]
    fn a_refused_restore_begin_fails() {
        let next = step(restore_job(), Event::RestoreBegun(Err(BackupError::NoVaultSet), stored(1)));
        assert!(next.job.is_finished());
    }

    #[test]
    fn events_of_the_other_kind_change_nothing() {
        let job = restore_job();
        let next = step(job.clone(), Event::DumpBegun(Ok(manifest(10))));
        assert_eq!((next.job.task, next.effects, next.progressed), (job.task.clone(), vec![], false));
        let next = step(snapshot_job(), Event::RestoreBegun(Ok(()), stored(1)));
        assert_eq!((next.job.phase(), next.progressed), (JobPhase::Starting, false));
        let next = step(restore_job(), Event::DumpEnded { manifest_hash: Some(Sha256([0; 32])), kept_as_base: false });
        assert!(!next.progressed);
        let done = step(snapshot_job(), Event::DumpBegun(Err(BackupError::NoVaultSet))).job;
        let next = step(done.clone(), Event::CallFailed(transient()));
        assert_eq!(next.job, done, "a finished job takes no event");
        let next = step(transferring_snapshot(2), Event::Committed(Err(BackupError::NoVaultSet), Sha256([0; 32])));
        assert!(!next.job.is_finished());
    }

    #[test]
    fn a_dump_claiming_more_than_a_snapshot_holds_fails_with_a_typed_error() {
        let smallest = MIN_CHUNK_SIZE;
        for (size, chunk_size) in [(u64::MAX, smallest), (MAX_IMAGE_BYTES + 1, CHUNK_SIZE), (MAX_CHUNKS as u64 * smallest + 1, smallest), (200, 100)] {
            let next = step(snapshot_job(), Event::DumpBegun(Ok(DumpManifest { chunk_size, size, ..manifest(0) })));
            assert!(matches!(failed_with(&next), JobError::InvalidManifest { .. }), "{size} in {chunk_size}: {:?}", next.job.outcome);
            assert!(!next.effects.iter().any(|e| matches!(e, Effect::CreateSnapshot { .. })));
        }
        let largest = DumpManifest { chunk_size: CHUNK_SIZE, size: MAX_IMAGE_BYTES, ..manifest(0) };
        assert_eq!(step(snapshot_job(), Event::DumpBegun(Ok(largest))).job.phase(), JobPhase::Transferring);
    }

    #[test]
    fn an_attempt_whose_answers_are_never_read_counts_as_failed() {
        let mut job = transferring_snapshot(2);
        // The vault trapped reading the answers of every attempt: each count stays.
        for attempt in 1..=MAX_RETRIES + 1 {
            job = begin_attempt(job, &ctx()).expect("retries left");
            assert_eq!(job.retries, attempt);
        }
        let Err(next) = begin_attempt(job, &ctx()) else { panic!("the budget is spent") };
        assert!(matches!(failed_with(&next), JobError::RetriesExhausted { attempts, .. } if *attempts == MAX_RETRIES + 1));
        assert!(next.effects.contains(&Effect::DropSnapshot(7)) && next.effects.contains(&Effect::ReleaseApp));
    }

    #[test]
    fn an_attempt_whose_answers_are_read_counts_as_the_transition_says() {
        let job = answered(begin_attempt(transferring_snapshot(2), &ctx()).unwrap());
        assert_eq!(job.retries, 0);
        let failed = step(answered(begin_attempt(job, &ctx()).unwrap()), Event::CallFailed(transient()));
        assert_eq!(failed.job.retries, 1, "one failed attempt, counted once");
        let moved = step(answered(begin_attempt(failed.job, &ctx()).unwrap()), moved(&[0]));
        assert_eq!(moved.job.retries, 0);
    }

    #[test]
    fn running_jobs_cancel_except_a_committing_restore() {
        assert_eq!(cancellable(&snapshot_job()), Ok(()));
        assert_eq!(cancellable(&transferring_snapshot(3)), Ok(()));
        assert_eq!(cancellable(&transferring_restore(3)), Ok(()));
        assert!(cancellable(&transferring_restore(0)).is_err(), "committing");
        let done = step(snapshot_job(), Event::DumpBegun(Err(BackupError::NoVaultSet))).job;
        assert!(cancellable(&done).is_err());
        let by = Principal::from_slice(&[2; 10]);
        let next = step(transferring_snapshot(3), Event::Abort(JobError::Cancelled { by }));
        assert_eq!(next.effects, vec![Effect::DropSnapshot(7), Effect::FreeApp, Effect::ReleaseApp]);
    }

    #[test]
    fn a_dump_past_a_quota_or_the_stable_reserve_fails_before_anything_is_created() {
        let app = app();
        let full = |ctx: Ctx, size| {
            let next = apply(snapshot_job(), Event::DumpBegun(Ok(manifest(size))), &ctx);
            assert!(!next.effects.iter().any(|e| matches!(e, Effect::CreateSnapshot { .. })));
            let JobError::Refused { error } = failed_with(&next).clone() else { panic!("{:?}", next.job.outcome) };
            error
        };
        let limits = Limits { app_bytes: 1_000 * KIB, app_snapshots: 2, ..Limits::default() };
        let holding = |units| Holdings { bytes: units * KIB, ..Holdings::default() };
        let over = full(Ctx { app: holding(600), limits, ..ctx() }, 500);
        assert_eq!(over, VaultError::QuotaExceeded { app, what: "bytes".into(), used: 600 * KIB, limit: 1_000 * KIB, registrant: None });
        let keeping_3 = Some(Retention { keep_last: 3, keep_daily: 0, keep_weekly: 0 });
        let two = Holdings { snapshots: vec![(1, 1), (2, 2)], retention: keeping_3, ..Holdings::default() };
        let many = full(Ctx { app: two, limits, ..ctx() }, 10);
        assert_eq!(many, VaultError::QuotaExceeded { app, what: "snapshots".into(), used: 2, limit: 2, registrant: None });
        let room = full(Ctx { stable_room: 99 * KIB, ..ctx() }, 100);
        assert_eq!(room, VaultError::StorageFull { needed: 100 * KIB, available: 99 * KIB, reserved: super::super::cycles::STABLE_RESERVE });
        let fits = apply(snapshot_job(), Event::DumpBegun(Ok(manifest(400))), &Ctx { app: holding(600), stable_room: 400 * KIB, limits, ..ctx() });
        assert_eq!(fits.job.phase(), JobPhase::Transferring, "exactly at the limits");
    }

    fn refusal(next: &Next) -> Option<&VaultError> {
        match next.job.error() {
            Some(JobError::Refused { error }) => Some(error),
            _ => None,
        }
    }

    #[test]
    fn the_snapshot_quota_counts_what_retention_keeps_with_the_new_one() {
        let limits = Limits { app_snapshots: 2, ..ctx().limits };
        let keeping = |keep_last| Holdings {
            snapshots: vec![(1, 1), (2, 2)],
            retention: Some(Retention { keep_last, keep_daily: 0, keep_weekly: 0 }),
            ..Holdings::default()
        };
        let kept_as_many = apply(snapshot_job(), Event::DumpBegun(Ok(manifest(10))), &Ctx { app: keeping(2), limits, ..ctx() });
        assert_eq!(kept_as_many.job.phase(), JobPhase::Transferring, "retention lets the oldest go: still 2");
        let kept_more = apply(snapshot_job(), Event::DumpBegun(Ok(manifest(10))), &Ctx { app: keeping(3), limits, ..ctx() });
        assert!(matches!(refusal(&kept_more), Some(VaultError::QuotaExceeded { what, used: 2, limit: 2, .. }) if what == "snapshots"));
    }

    #[test]
    fn a_dump_past_its_registrants_bytes_or_the_days_cycles_is_refused() {
        let (app, registrant) = (app(), Principal::from_slice(&[9; 10]));
        let limits = Limits { registrant_bytes: 1_000 * KIB, app_cycles_per_day: 1_000_000_000_000, ..ctx().limits };
        let theirs = |used: u64| Holdings { registrant: Some((registrant, used * KIB)), ..Holdings::default() };
        let over = apply(snapshot_job(), Event::DumpBegun(Ok(manifest(500))), &Ctx { app: theirs(600), limits, ..ctx() });
        let expected = VaultError::QuotaExceeded { app, what: "bytes".into(), used: 600 * KIB, limit: 1_000 * KIB, registrant: Some(registrant) };
        assert_eq!(refusal(&over), Some(&expected));
        let at = apply(snapshot_job(), Event::DumpBegun(Ok(manifest(400))), &Ctx { app: theirs(600), limits, ..ctx() });
        assert_eq!(at.job.phase(), JobPhase::Transferring);
        // A dump of 10 chunks is estimated at `transfer_estimate(10)`.
        let spent = |cycles_today| Holdings { cycles_today, ..Holdings::default() };
        let left = 1_000_000_000_000 - transfer_estimate(10);
        let past = apply(snapshot_job(), Event::DumpBegun(Ok(manifest(1_000))), &Ctx { app: spent(left + 1), limits, ..ctx() });
        let (used, limit) = (left as u64 + 1, 1_000_000_000_000);
        let expected = VaultError::QuotaExceeded { app, what: "cycles per day".into(), used, limit, registrant: None };
        assert_eq!(refusal(&past), Some(&expected));
        assert!(!past.effects.iter().any(|e| matches!(e, Effect::CreateSnapshot { .. })));
        let within = apply(snapshot_job(), Event::DumpBegun(Ok(manifest(1_000))), &Ctx { app: spent(left), limits, ..ctx() });
        assert_eq!(within.job.phase(), JobPhase::Transferring);
    }

    #[test]
    fn notes_are_bounded() {
        let mut job = transferring_snapshot(3);
        for _ in 0..3 * NOTES_KEPT {
            job.retries = 0;
            job = step(job, Event::CallFailed(transient())).job;
        }
        assert_eq!(job.notes.len(), NOTES_KEPT);
    }

    /// Base 5, of `chunks` full chunks, with 2 incremental snapshots up to it.
    fn base(chunks: u32) -> Base {
        Base { snapshot: 5, size: chunks as u64 * CHUNK_SIZE, incrementals: 2, copied: 0 }
    }

    /// A dump of a stable-memory app whose library verifies BLAKE3, of `chunks` full chunks,
    /// incremental against `base` (none: a full one).
    fn stable_manifest(chunks: u32, base: Option<u64>) -> DumpManifest {
        let content_hashes = Some(vec![ContentHash::Sha256, ContentHash::Blake3]);
        DumpManifest { state_kind: StateKind::StableMemory, size: chunks as u64 * CHUNK_SIZE, chunk_size: CHUNK_SIZE, content_hashes, base, ..manifest(0) }
    }

    #[test]
    fn a_snapshot_of_an_upgrades_save_older_than_what_retention_keeps_is_refused_before_it_moves_a_byte() {
        let mut job = snapshot_job();
        if let Task::Snapshot { from_upgrade_save, .. } = &mut job.task {
            *from_upgrade_save = true;
        }
        let saved = DumpManifest { from_upgrade_save: Some(true), taken_at_nanos: 5, ..manifest(10) };
        let app = |taken_at| Holdings { snapshots: vec![(1, taken_at)], retention: Some(Retention { keep_last: 1, keep_daily: 0, keep_weekly: 0 }), ..Holdings::default() };
        let next = apply(job.clone(), Event::DumpBegun(Ok(saved.clone())), &Ctx { app: app(9), ..ctx() });
        assert!(matches!(next.job.error(), Some(JobError::Refused { error: VaultError::InvalidArgument { .. } })), "{:?}", next.job);
        assert!(next.effects.iter().all(|e| !matches!(e, Effect::CreateSnapshot { .. })), "no snapshot is made");
        let next = apply(job.clone(), Event::DumpBegun(Ok(saved)), &Ctx { app: app(1), ..ctx() });
        assert!(next.effects.iter().any(|e| matches!(e, Effect::CreateSnapshot { .. })), "newer than what is kept: {:?}", next.job);
        let live = DumpManifest { taken_at_nanos: 5, ..manifest(10) };
        let next = apply(job, Event::DumpBegun(Ok(live)), &ctx());
        assert!(matches!(next.job.error(), Some(JobError::InvalidManifest { .. })), "a dump of the state as it is: {:?}", next.job);
    }

    /// A snapshot job whose dump asked for base `base(base_chunks)`.
    fn asking(base_chunks: u32) -> JobRecord {
        answered(begin_attempt(snapshot_job(), &Ctx { base: Some(base(base_chunks)), ..ctx() }).unwrap())
    }

    fn base_of(job: &JobRecord) -> Option<Base> {
        match &job.task {
            Task::Snapshot { base, .. } => *base,
            Task::Restore { .. } => None,
        }
    }

    #[test]
    fn a_dump_asks_for_the_base_its_first_attempt_fixed_and_a_restart_asks_again() {
        let job = asking(3);
        assert_eq!(base_of(&job), Some(base(3)));
        let other = Ctx { base: Some(Base { snapshot: 6, ..base(3) }), ..ctx() };
        let retried = answered(begin_attempt(step(job, Event::CallFailed(transient())).job, &other).unwrap());
        assert_eq!(base_of(&retried), Some(base(3)), "the first attempt may have opened the dump: the same base again");
        let unasked = answered(begin_attempt(snapshot_job(), &ctx()).unwrap());
        assert_eq!(base_of(&unasked), None);
        let opened = step(step(retried, Event::DumpBegun(Ok(stable_manifest(2, Some(5))))).job, Event::BaseCopied(true)).job;
        let lost = step(opened, Event::Chunks(vec![ChunkAnswer::Refused(BackupError::UnknownJob { job: 3 })])).job;
        assert_eq!((lost.phase(), base_of(&lost)), (JobPhase::Starting, None), "a restart asks for the base as it is then");
    }

    #[test]
    fn an_incremental_dump_references_its_base_in_bounded_steps_then_moves_its_chunks() {
        let chunks = 2 * incremental::COPY_BUDGET + 5;
        let next = step(asking(chunks - 2), Event::DumpBegun(Ok(stable_manifest(chunks, Some(5)))));
        assert!(matches!(&next.effects[..], [Effect::CreateSnapshot { id: 7, .. }]));
        assert!(next.job.notes.last().unwrap().ends_with("incremental against snapshot 5"));
        let mut job = next.job;
        let mut steps = 0;
        while next_calls(&job, MIN_BATCH) == Some(Calls::CopyBase) {
            let next = step(job, Event::BaseCopied(true));
            assert!(next.progressed && next.effects.is_empty());
            job = next.job;
            steps += 1;
        }
        assert_eq!(steps, 3, "{} entries shared, {} a step", chunks - 2, incremental::COPY_BUDGET);
        assert_eq!(base_of(&job).map(|b| b.copied), Some(chunks - 2));
        assert_eq!(next_calls(&job, MIN_BATCH), Some(Calls::DumpChunks(vec![0, 1, 2, 3])));
        assert!(!Calls::CopyBase.calls_app() && Calls::DumpEnd.calls_app());
        let next = step(job.clone(), Event::BaseCopied(true));
        assert_eq!(next.job, job, "an event its step does not make changes nothing");
    }

    #[test]
    fn a_base_gone_before_it_is_referenced_fails_the_job_and_drops_the_snapshot() {
        let job = step(asking(4), Event::DumpBegun(Ok(stable_manifest(4, Some(5))))).job;
        let next = step(job, Event::BaseCopied(false));
        assert_eq!(failed_with(&next), &JobError::BaseDeleted { base: 5 });
        assert_eq!(next.effects, vec![Effect::DropSnapshot(7), Effect::FreeApp, Effect::ReleaseApp]);
    }

    #[test]
    fn a_full_answer_to_an_incremental_request_is_a_full_dump() {
        let job = step(asking(4), Event::DumpBegun(Ok(stable_manifest(4, None)))).job;
        assert_eq!((base_of(&job), next_calls(&job, MIN_BATCH)), (None, Some(Calls::DumpChunks(vec![0, 1, 2, 3]))));
    }

    #[test]
    fn a_dump_on_a_base_not_asked_for_or_that_cannot_be_one_is_refused_before_anything_is_created() {
        let sha256_only = DumpManifest { content_hashes: None, ..stable_manifest(2, Some(5)) };
        let small_chunks = DumpManifest { chunk_size: 64 * KIB, size: 2 * 64 * KIB, ..stable_manifest(2, Some(5)) };
        for (job, manifest) in [
            (asking(2), stable_manifest(2, Some(6))),
            (snapshot_job(), stable_manifest(2, Some(5))),
            (asking(2), sha256_only),
            (asking(2), small_chunks),
        ] {
            let next = step(job, Event::DumpBegun(Ok(manifest.clone())));
            assert!(matches!(failed_with(&next), JobError::InvalidManifest { .. }), "{manifest:?}: {:?}", next.job.outcome);
            assert_eq!(next.effects, vec![Effect::FreeApp, Effect::ReleaseApp]);
        }
    }

    #[test]
    fn a_serde_dump_on_its_base_asks_for_its_chunks_at_once_and_fails_if_the_base_goes() {
        let serde = DumpManifest { state_kind: StateKind::Serde, ..stable_manifest(3, Some(5)) };
        let next = step(asking(2), Event::DumpBegun(Ok(serde)));
        assert!(matches!(&next.job.task, Task::Snapshot { base: Some(Base { snapshot: 5, .. }), .. }));
        assert_eq!(next_calls(&next.job, 4), Some(Calls::DumpChunks(vec![0, 1, 2])), "no base entries are referenced first");
        let next = step(next.job, Event::Chunks(vec![ChunkAnswer::Moved(0), ChunkAnswer::BaseDeleted]));
        assert_eq!(failed_with(&next), &JobError::BaseDeleted { base: 5 });
        assert_eq!(next.effects, vec![Effect::DropSnapshot(7), Effect::FreeApp, Effect::ReleaseApp]);
    }

    #[test]
    fn a_chunk_in_a_form_its_dump_does_not_take_fails_the_job() {
        let job = step(asking(2), Event::DumpBegun(Ok(stable_manifest(2, Some(5))))).job;
        let job = step(job, Event::BaseCopied(true)).job;
        let invalid = ChunkAnswer::Invalid { index: 1, reason: "a bitmap of 3 bytes".into() };
        let next = step(job, Event::Chunks(vec![ChunkAnswer::Moved(0), invalid]));
        assert_eq!(failed_with(&next), &JobError::InvalidChunk { index: 1, reason: "a bitmap of 3 bytes".into() });
        assert_eq!(next.effects, vec![Effect::DropSnapshot(7), Effect::FreeApp, Effect::ReleaseApp]);
    }

    #[test]
    fn a_dump_the_app_keeps_is_its_base_counting_the_incrementals_up_to_it() {
        let finishing = |job: JobRecord, manifest| {
            let job = step(job, Event::DumpBegun(Ok(manifest))).job;
            let job = step(job, Event::BaseCopied(true)).job;
            step(job, moved(&[0])).job
        };
        let incremental = finishing(asking(1), stable_manifest(1, Some(5)));
        let full = finishing(asking(1), stable_manifest(1, None));
        for (job, incrementals) in [(incremental, 3), (full, 0)] {
            let next = step(job.clone(), Event::DumpEnded { manifest_hash: Some(Sha256([4; 32])), kept_as_base: true });
            assert_eq!(next.job.phase(), JobPhase::Succeeded);
            assert!(matches!(&next.effects[..], [Effect::CompleteSnapshot { id: 7, .. }, Effect::KeepBase(AppBase { snapshot: 7, incrementals: i }), Effect::FreeApp, Effect::ApplyRetention] if *i == incrementals), "{:?}", next.effects);
            let next = step(job, Event::DumpEnded { manifest_hash: Some(Sha256([4; 32])), kept_as_base: false });
            assert!(!next.effects.iter().any(|e| matches!(e, Effect::KeepBase(_))), "an end the app did not answer Ok keeps no base");
        }
    }
}
