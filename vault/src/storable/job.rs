//! `JOBS` values: a job's typed state, per kind, and its byte layout.
//!
//! A job is a snapshot (open the app's dump, move its chunks, close it) or a restore (open the
//! app's staging, move the snapshot's chunks, commit). What a phase needs exists only in that
//! phase: a transfer's sizes and the chunks moved appear once the dump or staging is open, a
//! snapshot job's snapshot once the dump is. A finished job keeps the phase it ended in.
//! A snapshot job's base (the snapshot its dump is asked to be, or is, incremental against) is
//! written after the rest, only when it has one: a record without one has the bytes it had
//! before incremental snapshots, and a build before them reads one with it (as a full dump).

use candid::Principal;
use vault_api::Sha256;
use vault_api::codec::{Reader, Writer};
use vault_api::protocol::StateKind;
use vault_api::service::{JobError, JobKind, JobPhase, Trigger};

use super::fields::{V1, check_version, kind_byte, kind_of, opt_sha, opt_u64, read_opt_sha, read_opt_u64, storable, trigger_byte, trigger_of};

/// Where a job is: opening, moving chunks (with what it moves), or closing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase<T> {
    Starting,
    Transferring(T),
    Finishing(T),
}

impl<T> Phase<T> {
    pub fn moving(&self) -> Option<&T> {
        match self {
            Phase::Starting => None,
            Phase::Transferring(t) | Phase::Finishing(t) => Some(t),
        }
    }

    /// Transferring becomes finishing; any other phase stays.
    pub fn finish_transfer(&mut self) {
        if let Phase::Transferring(_) = self
            && let Phase::Transferring(moving) = std::mem::replace(self, Phase::Starting)
        {
            *self = Phase::Finishing(moving);
        }
    }

    fn code(&self) -> u8 {
        match self {
            Phase::Starting => 0,
            Phase::Transferring(_) => 1,
            Phase::Finishing(_) => 2,
        }
    }

    fn job_phase(&self) -> JobPhase {
        match self {
            Phase::Starting => JobPhase::Starting,
            Phase::Transferring(_) => JobPhase::Transferring,
            Phase::Finishing(_) => JobPhase::Finishing,
        }
    }
}

/// The chunks of a transfer moved so far: one bit per chunk.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ChunkSet(Vec<u8>);

impl ChunkSet {
    pub fn count(&self) -> u32 {
        self.0.iter().map(|b| b.count_ones()).sum()
    }

    pub fn contains(&self, index: u32) -> bool {
        self.0.get(index as usize / 8).is_some_and(|b| b & (1 << (index % 8)) != 0)
    }

    pub fn insert(&mut self, index: u32) {
        let byte = index as usize / 8;
        if self.0.len() <= byte {
            self.0.resize(byte + 1, 0);
        }
        self.0[byte] |= 1 << (index % 8);
    }
}

/// What a job moves, known once the dump or the staging area is open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub state_kind: StateKind,
    pub size: u64,
    pub chunk_size: u64,
    pub chunks: u32,
    /// The app's time when the image was frozen.
    pub taken_at: u64,
    pub done: ChunkSet,
}

impl Transfer {
    pub fn is_complete(&self) -> bool {
        self.done.count() == self.chunks
    }
}

/// A snapshot job's transfer, into snapshot `snapshot` (building until the job succeeds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Building {
    pub snapshot: u64,
    pub transfer: Transfer,
}

/// The snapshot a snapshot job's dump builds on: while the job starts, the one its dump is asked
/// to be incremental against (the same at every attempt, so a repeated `vault_dump_begin` asks
/// what the first did); once the dump is open, the one it is incremental against (a full dump has
/// none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Base {
    pub snapshot: u64,
    /// Its image's bytes, in chunks of `CHUNK_SIZE`.
    pub size: u64,
    /// Incremental snapshots in a row up to it (0: it is a full one).
    pub incrementals: u32,
    /// Its manifest entries the new snapshot references so far, from the first: the dump's
    /// chunks are asked for once it references all it shares with the base.
    pub copied: u32,
}

/// What a job does, with its kind's own state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Task {
    /// `from_upgrade_save`: the dump reads the serde state the app's last upgrade saved.
    Snapshot { trigger: Trigger, phase: Phase<Building>, base: Option<Base>, from_upgrade_save: bool },
    /// Restores `snapshot_id` of `source` into the job's app. `commit_unknown`: an attempt to
    /// commit ended without telling whether the app committed (its answer was lost, did not
    /// decode, or was never read: the vault trapped reading it), so the app may have.
    /// `commit_sent`: a commit call went out whose answer is not read yet. `check_layout`: the
    /// commit asks the app to refuse unless it still declares the snapshot's state layout.
    /// `via_upgrade`: the app stages a serde image for its next upgrade to load.
    Restore {
        source: Principal,
        snapshot_id: u64,
        phase: Phase<Transfer>,
        commit_unknown: bool,
        commit_sent: bool,
        check_layout: bool,
        via_upgrade: bool,
    },
}

impl Task {
    pub fn transfer(&self) -> Option<&Transfer> {
        match self {
            Task::Snapshot { phase, .. } => phase.moving().map(|b| &b.transfer),
            Task::Restore { phase, .. } => phase.moving(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Running,
    Succeeded,
    Failed(JobError),
}

/// A job: its task, its outcome, and what it spent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRecord {
    pub id: u64,
    pub app: Principal,
    pub task: Task,
    pub outcome: Outcome,
    /// Failed attempts in a row.
    pub retries: u32,
    /// Times the job started over because the app lost its dump or staging area.
    pub restarts: u32,
    pub started_at: u64,
    pub updated_at: u64,
    pub finished_at: Option<u64>,
    pub bytes_moved: u64,
    pub calls: u64,
    pub module_hash: Option<Sha256>,
    pub notes: Vec<String>,
}

impl JobRecord {
    /// A new job, in its first phase.
    pub fn new(id: u64, app: Principal, kind: JobKind, now: u64) -> Self {
        let task = match kind {
            JobKind::Snapshot { trigger } => Task::Snapshot { trigger, phase: Phase::Starting, base: None, from_upgrade_save: false },
            JobKind::Restore { source, snapshot_id } => {
                let phase = Phase::Starting;
                Task::Restore { source, snapshot_id, phase, commit_unknown: false, commit_sent: false, check_layout: false, via_upgrade: false }
            }
        };
        JobRecord {
            id,
            app,
            task,
            outcome: Outcome::Running,
            retries: 0,
            restarts: 0,
            started_at: now,
            updated_at: now,
            finished_at: None,
            bytes_moved: 0,
            calls: 0,
            module_hash: None,
            notes: Vec::new(),
        }
    }

    pub fn kind(&self) -> JobKind {
        match self.task {
            Task::Snapshot { trigger, .. } => JobKind::Snapshot { trigger },
            Task::Restore { source, snapshot_id, .. } => JobKind::Restore { source, snapshot_id },
        }
    }

    /// The phase as the service reports it.
    pub fn phase(&self) -> JobPhase {
        match (&self.outcome, &self.task) {
            (Outcome::Succeeded, _) => JobPhase::Succeeded,
            (Outcome::Failed(_), _) => JobPhase::Failed,
            (Outcome::Running, Task::Snapshot { phase, .. }) => phase.job_phase(),
            (Outcome::Running, Task::Restore { phase, .. }) => phase.job_phase(),
        }
    }

    /// The snapshot the job builds or restores.
    pub fn snapshot_id(&self) -> Option<u64> {
        match &self.task {
            Task::Snapshot { phase, .. } => phase.moving().map(|b| b.snapshot),
            Task::Restore { snapshot_id, .. } => Some(*snapshot_id),
        }
    }

    pub fn error(&self) -> Option<&JobError> {
        match &self.outcome {
            Outcome::Failed(error) => Some(error),
            _ => None,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.outcome != Outcome::Running
    }

    /// The byte after the kind is a snapshot's trigger (bit 6 `from_upgrade_save`), and a restore's flags: bit 0
    /// `commit_unknown`, bit 1 `commit_sent`, bit 2 `check_layout`, bit 3 `via_upgrade` (it was
    /// always 0 before restores had flags, so older records read as without them). After the notes, a snapshot
    /// job's base if it has one: snapshot u64 | size u64 | incrementals u32 | copied u32.
    pub(super) fn encode(&self) -> Vec<u8> {
        let (kind, trigger, source, phase_code) = match &self.task {
            Task::Snapshot { trigger, phase, from_upgrade_save, .. } => (0, trigger_byte(*trigger) | (*from_upgrade_save as u8) << 6, None, phase.code()),
            Task::Restore { source, phase, commit_unknown, commit_sent, check_layout, via_upgrade, .. } => {
                let flags = *commit_unknown as u8 | (*commit_sent as u8) << 1 | (*check_layout as u8) << 2 | (*via_upgrade as u8) << 3;
                (1, flags, Some(*source), phase.code())
            }
        };
        let phase_code = match self.outcome {
            Outcome::Running => phase_code,
            Outcome::Succeeded => 3,
            Outcome::Failed(_) => 4,
        };
        let transfer = self.task.transfer();
        let mut w = Writer::default();
        w.u8(V1).u64(self.id).principal(&self.app).u8(kind).u8(trigger).opt_principal(source.as_ref());
        opt_u64(&mut w, self.snapshot_id());
        w.u8(phase_code)
            .u8(kind_byte(transfer.map_or(StateKind::StableMemory, |t| t.state_kind)))
            .u64(transfer.map_or(0, |t| t.size))
            .u64(transfer.map_or(0, |t| t.chunk_size))
            .u32(transfer.map_or(0, |t| t.chunks))
            .u32(self.retries)
            .u32(self.restarts)
            .u64(self.started_at)
            .u64(self.updated_at);
        opt_u64(&mut w, self.finished_at);
        w.u64(transfer.map_or(0, |t| t.taken_at)).u64(self.bytes_moved).u64(self.calls);
        opt_sha(&mut w, self.module_hash.as_ref());
        w.blob(transfer.map_or(&[][..], |t| &t.done.0))
            .blob(&candid::encode_one(self.error()).expect("a job error encodes"))
            .blob(&candid::encode_one(&self.notes).expect("notes encode"));
        if let Task::Snapshot { base: Some(base), .. } = &self.task {
            w.u64(base.snapshot).u64(base.size).u32(base.incrementals).u32(base.copied);
        }
        w.into_vec()
    }

    pub(super) fn decode(bytes: &[u8]) -> Self {
        let mut r = Reader::new(bytes);
        check_version(&mut r, "job record");
        let id = r.u64();
        let app = r.principal();
        let kind = r.u8();
        let trigger_or_flag = r.u8();
        let source = r.opt_principal();
        let snapshot_id = read_opt_u64(&mut r);
        let phase_code = r.u8();
        let (state_kind, size, chunk_size, chunks) = (kind_of(r.u8()), r.u64(), r.u64(), r.u32());
        let (retries, restarts, started_at, updated_at) = (r.u32(), r.u32(), r.u64(), r.u64());
        let finished_at = read_opt_u64(&mut r);
        let (taken_at, bytes_moved, calls) = (r.u64(), r.u64(), r.u64());
        let module_hash = read_opt_sha(&mut r);
        let done = ChunkSet(r.blob().to_vec());
        let error: Option<JobError> = candid::decode_one(r.blob()).expect("a stored job error decodes");
        let notes = candid::decode_one(r.blob()).expect("stored notes decode");
        let rest = r.rest();
        assert!(rest.is_empty() || rest.len() == BASE_BYTES, "a job record ends in {} bytes after its notes", rest.len());
        let base = (!rest.is_empty()).then(|| {
            let mut r = Reader::new(rest);
            Base { snapshot: r.u64(), size: r.u64(), incrementals: r.u32(), copied: r.u32() }
        });
        let transfer = Transfer { state_kind, size, chunk_size, chunks, taken_at, done };
        // A transfer's chunk size is never 0 (dumps and imports with one are refused): 0 says
        // none is open. A finished job ended in the phase its transfer shows.
        let opened = chunk_size > 0;
        let phase = |transfer: Transfer| match phase_code {
            0 => Phase::Starting,
            1 => Phase::Transferring(transfer),
            2 => Phase::Finishing(transfer),
            3 | 4 if !opened => Phase::Starting,
            3 | 4 if transfer.is_complete() => Phase::Finishing(transfer),
            3 | 4 => Phase::Transferring(transfer),
            other => panic!("unknown job phase {other}"),
        };
        let snapshot_trigger = || (trigger_of(trigger_or_flag & !SNAPSHOT_FROM_UPGRADE_SAVE), trigger_or_flag & SNAPSHOT_FROM_UPGRADE_SAVE != 0);
        let task = match kind {
            0 => match (snapshot_id, snapshot_trigger()) {
                (Some(snapshot), (trigger, from_upgrade_save)) => {
                    Task::Snapshot { trigger, phase: phase(transfer).map(|transfer| Building { snapshot, transfer }), base, from_upgrade_save }
                }
                (None, (trigger, from_upgrade_save)) => Task::Snapshot { trigger, phase: Phase::Starting, base, from_upgrade_save },
            },
            1 => Task::Restore {
                source: source.expect("a restore has a source"),
                snapshot_id: snapshot_id.expect("a restore has a snapshot"),
                phase: phase(transfer),
                commit_unknown: restore_flag(trigger_or_flag, 0),
                commit_sent: restore_flag(trigger_or_flag, 1),
                check_layout: restore_flag(trigger_or_flag, 2),
                via_upgrade: restore_flag(trigger_or_flag, 3),
            },
            other => panic!("unknown job kind {other}"),
        };
        let outcome = match (phase_code, error) {
            (3, _) => Outcome::Succeeded,
            (4, Some(error)) => Outcome::Failed(error),
            (4, None) => panic!("a failed job without its error"),
            _ => Outcome::Running,
        };
        JobRecord { id, app, task, outcome, retries, restarts, started_at, updated_at, finished_at, bytes_moved, calls, module_hash, notes }
    }
}

/// Bytes of a snapshot job's base at the end of its record.
const BASE_BYTES: usize = 24;

/// The bit of a snapshot's trigger byte that says it dumps the state the last upgrade saved.
const SNAPSHOT_FROM_UPGRADE_SAVE: u8 = 1 << 6;

/// Bit `bit` of a restore's flags byte; a bit this build does not know is a broken invariant.
fn restore_flag(flags: u8, bit: u8) -> bool {
    assert!(flags < 16, "unknown restore flags {flags:#04x}");
    flags & (1 << bit) != 0
}

impl<T> Phase<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Phase<U> {
        match self {
            Phase::Starting => Phase::Starting,
            Phase::Transferring(t) => Phase::Transferring(f(t)),
            Phase::Finishing(t) => Phase::Finishing(f(t)),
        }
    }
}

storable!(JobRecord, ::ic_stable_structures::storable::Bound::Unbounded);

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use ic_stable_structures::Storable;
    use vault_api::protocol::BackupError;

    use super::*;

    fn p(byte: u8, len: usize) -> Principal {
        Principal::from_slice(&vec![byte; len])
    }

    fn transfer(chunks: u32, done: &[u32]) -> Transfer {
        let mut set = ChunkSet::default();
        for &i in done {
            set.insert(i);
        }
        Transfer { state_kind: StateKind::Serde, size: chunks as u64 * 10, chunk_size: 10, chunks, taken_at: 8, done: set }
    }

    fn restore(phase: Phase<Transfer>, outcome: Outcome) -> JobRecord {
        let mut job = JobRecord::new(3, p(5, 10), JobKind::Restore { source: p(6, 10), snapshot_id: 4 }, 5);
        job.task =
            Task::Restore { source: p(6, 10), snapshot_id: 4, phase, commit_unknown: false, commit_sent: false, check_layout: false, via_upgrade: false };
        job.outcome = outcome;
        job.retries = 2;
        job.restarts = 1;
        job.updated_at = 6;
        job.finished_at = Some(7);
        job.bytes_moved = 90;
        job.calls = 12;
        job.notes = vec!["resumed after a vault upgrade".into()];
        job
    }

    fn round_trip(job: &JobRecord) -> Vec<u8> {
        let bytes = job.to_bytes().into_owned();
        assert_eq!(&JobRecord::from_bytes(Cow::Owned(bytes.clone())), job);
        bytes
    }

    #[test]
    fn job_records_round_trip_with_errors_and_notes() {
        let failed = Outcome::Failed(JobError::AppRefused { error: BackupError::UnknownJob { job: 3 } });
        let job = restore(Phase::Transferring(transfer(10, &[0, 9])), failed);
        let done = &job.task.transfer().unwrap().done;
        assert!(done.contains(9) && !done.contains(8));
        assert_eq!(done.count(), 2);
        let bytes = round_trip(&job);
        // The fixed part is pinned; the tail carries candid.
        let hex = vault_api::hex(&bytes[..50]);
        let golden = format!("{}/golden/job_record_head.hex", env!("CARGO_MANIFEST_DIR"));
        assert_eq!(hex, std::fs::read_to_string(golden).unwrap().trim());
    }

    #[test]
    fn every_phase_and_outcome_round_trips() {
        let building = |t| Building { snapshot: 11, transfer: t };
        let snapshot = |phase, outcome| {
            let mut job = JobRecord::new(1, p(5, 10), JobKind::Snapshot { trigger: Trigger::Scheduled }, 5);
            job.task = Task::Snapshot { trigger: Trigger::Manual, phase, base: None, from_upgrade_save: true };
            job.outcome = outcome;
            job
        };
        let failed = || Outcome::Failed(JobError::SnapshotDeleted);
        for outcome in [Outcome::Running, failed()] {
            round_trip(&snapshot(Phase::Starting, outcome.clone()));
            round_trip(&with_base(snapshot(Phase::Starting, outcome.clone())));
            round_trip(&snapshot(Phase::Transferring(building(transfer(3, &[1]))), outcome.clone()));
            round_trip(&with_base(snapshot(Phase::Transferring(building(transfer(3, &[1]))), outcome.clone())));
            round_trip(&restore(Phase::Starting, outcome.clone()));
            round_trip(&restore(Phase::Transferring(transfer(3, &[])), outcome.clone()));
        }
        for outcome in [Outcome::Running, Outcome::Succeeded, failed()] {
            round_trip(&snapshot(Phase::Finishing(building(transfer(2, &[0, 1]))), outcome.clone()));
            round_trip(&with_base(snapshot(Phase::Finishing(building(transfer(2, &[0, 1]))), outcome.clone())));
            round_trip(&restore(Phase::Finishing(transfer(0, &[])), outcome.clone()));
            let mut unknown = restore(Phase::Finishing(transfer(1, &[0])), outcome.clone());
            unknown.task = Task::Restore {
                source: p(6, 10),
                snapshot_id: 4,
                phase: Phase::Finishing(transfer(1, &[0])),
                commit_unknown: true,
                commit_sent: true,
                check_layout: true,
                via_upgrade: true,
            };
            round_trip(&unknown);
        }
    }

    /// `job`, a snapshot job, with a base.
    fn with_base(mut job: JobRecord) -> JobRecord {
        if let Task::Snapshot { base, .. } = &mut job.task {
            *base = Some(Base { snapshot: 0x0102, size: 0x0304, incrementals: 5, copied: 6 });
        }
        job
    }

    #[test]
    fn a_snapshot_jobs_base_follows_the_record_it_had_before_incremental_snapshots() {
        let job = JobRecord::new(1, p(5, 10), JobKind::Snapshot { trigger: Trigger::Manual }, 5);
        let without = round_trip(&job);
        let with = round_trip(&with_base(job));
        assert_eq!(&with[..without.len()], &without[..], "the record without its base is the record it was");
        let golden = format!("{}/golden/job_record_base.hex", env!("CARGO_MANIFEST_DIR"));
        assert_eq!(vault_api::hex(&with[without.len()..]), std::fs::read_to_string(golden).unwrap().trim());
    }

    #[test]
    fn the_service_view_follows_the_task() {
        let job = restore(Phase::Finishing(transfer(1, &[0])), Outcome::Running);
        assert_eq!(job.phase(), JobPhase::Finishing);
        assert_eq!(job.snapshot_id(), Some(4));
        assert_eq!(job.kind(), JobKind::Restore { source: p(6, 10), snapshot_id: 4 });
        let fresh = JobRecord::new(2, p(5, 10), JobKind::Snapshot { trigger: Trigger::Manual }, 1);
        assert_eq!((fresh.phase(), fresh.snapshot_id(), fresh.task.transfer()), (JobPhase::Starting, None, None));
    }
}
