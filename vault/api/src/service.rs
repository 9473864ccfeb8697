//! The vault's service: what its controllers' tools (CLI, dfx, icp) call.

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};

use crate::manifest::{ContentHash, Sha256};
use crate::protocol::{BackupError, StateKind};

/// Method names of the service (`vault.did`); [`crate::client`] calls each of them.
pub mod methods {
    pub const REGISTER: &str = "register";
    pub const UNREGISTER: &str = "unregister";
    pub const UPDATE_SCHEDULE: &str = "update_schedule";
    pub const APP_INFO: &str = "app_info";
    pub const LIST_APPS: &str = "list_apps";
    pub const SNAPSHOT_NOW: &str = "snapshot_now";
    pub const LIST_SNAPSHOTS: &str = "list_snapshots";
    pub const DELETE_SNAPSHOT: &str = "delete_snapshot";
    pub const RESTORE: &str = "restore";
    pub const JOB_STATUS: &str = "job_status";
    pub const LIST_JOBS: &str = "list_jobs";
    pub const SNAPSHOT_CHUNK: &str = "snapshot_chunk";
    pub const SNAPSHOT_MANIFEST: &str = "snapshot_manifest";
    pub const IMPORT_BEGIN: &str = "import_begin";
    pub const IMPORT_CHUNK: &str = "import_chunk";
    pub const IMPORT_COMMIT: &str = "import_commit";
    pub const IMPORT_ABORT: &str = "import_abort";
    pub const CANCEL_JOB: &str = "cancel_job";
    pub const ADMIN_INFO: &str = "admin_info";
    pub const SET_ADMINISTRATORS: &str = "set_administrators";
    pub const SET_REGISTRATION: &str = "set_registration";
    pub const SET_ALLOWED: &str = "set_allowed";
    pub const LIST_REGISTRANTS: &str = "list_registrants";
    pub const SUSPEND_APP: &str = "suspend_app";
    pub const RESUME_APP: &str = "resume_app";
    pub const EVICT_APP: &str = "evict_app";
    pub const SET_LIMITS: &str = "set_limits";
    pub const REFRESH_ACCESS: &str = "refresh_access";
}

/// Who may register apps. Administrators (the vault's controllers and the principals they name)
/// may always register apps they control.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registration {
    /// Administrators only.
    Administrators,
    /// Administrators and the principals on the allow-list (the default).
    AllowList,
    /// Anyone who controls the app.
    Open,
}

/// What the vault keeps back and what each app may use: `set_limits`.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Days of storing what the vault holds that its cycles must always pay for: a job or
    /// import that would spend into them is refused before it starts.
    pub reserve_days: u32,
    /// Bytes one app's snapshots may hold, each chunk counted once however many of them share
    /// it; a new snapshot or import must fit whole beside them and beside those being built.
    pub app_bytes: u64,
    /// Completed snapshots one app may keep once its retention policy ran.
    pub app_snapshots: u32,
    /// Imports one app may have open at once.
    pub app_imports: u32,
    /// Seconds after which an unfinished import expires and releases its chunks.
    pub import_ttl_seconds: u64,
    /// Cycles the vault may spend on one app's jobs and imports in a UTC day: a job or import
    /// whose estimate would take the day past it is refused before it starts.
    pub app_cycles_per_day: u64,
    /// Apps one principal may have registered at once (administrators are not held to it).
    pub registrant_apps: u32,
    /// Bytes the apps one principal registered may hold together, counted as for `app_bytes`.
    pub registrant_bytes: u64,
}

impl Default for Limits {
    /// Limits a small team never meets. A day's cycles pay for four full snapshots of an app at
    /// its 64 GiB quota: moving a byte between canisters costs 1,000 cycles on a 13-node subnet,
    /// so one such snapshot costs about 72 T cycles with its calls.
    fn default() -> Self {
        Limits {
            reserve_days: 90,
            app_bytes: 64 << 30,
            app_snapshots: 1_000,
            app_imports: 4,
            import_ttl_seconds: 86_400,
            app_cycles_per_day: 300_000_000_000_000,
            registrant_apps: 100,
            registrant_bytes: 256 << 30,
        }
    }
}

/// How the vault is administered: `admin_info`.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AdminInfo {
    /// Administrators besides the vault's own controllers (who always are).
    pub administrators: Vec<Principal>,
    pub registration: Registration,
    /// Principals who may register apps in [`Registration::AllowList`] mode.
    pub allowed: Vec<Principal>,
    pub limits: Limits,
    /// Cycles kept back now: `limits.reserve_days` of storing the vault's stable memory.
    pub reserved_cycles: u128,
    pub stable_memory_bytes: u64,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SetAllowedArgs {
    pub principals: Vec<Principal>,
    /// Put them on the allow-list, or take them off it.
    pub allowed: bool,
}

/// An app an administrator suspended: no new snapshot, restore or import until resumed; its
/// snapshots stay readable and deletable by its controllers.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Suspension {
    pub by: Principal,
    pub at_nanos: u64,
    pub reason: String,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SuspendArgs {
    pub app: Principal,
    pub reason: String,
}

/// What one registered app holds in the vault.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AppUsage {
    pub app: Principal,
    pub snapshots: u32,
    /// The sizes of its completed snapshots, added up (chunks they share are stored once).
    pub snapshot_bytes: u64,
    pub running_job: Option<u64>,
    pub suspension: Option<Suspension>,
    /// Bytes of the chunks its snapshots hold, each counted once: what `Limits::app_bytes`
    /// counts.
    pub stored_bytes: u64,
    /// Cycles the vault spent on its jobs and imports this UTC day.
    pub cycles_today: u128,
}

/// A principal that registered apps, or may: `list_registrants`.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RegistrantInfo {
    pub registrant: Principal,
    /// On the allow-list.
    pub allowed: bool,
    pub apps: Vec<AppUsage>,
    /// The `stored_bytes` of the apps it registered, added up, apps unregistered since that still
    /// hold snapshots included: what `Limits::registrant_bytes` counts.
    pub stored_bytes: u64,
}

/// When the vault snapshots an app by itself.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Seconds between scheduled snapshots; 0 takes snapshots only on request.
    pub interval_seconds: u64,
}

/// Which completed snapshots the vault keeps after each new one: the `keep_last` newest, plus
/// the newest of each of the last `keep_daily` days and `keep_weekly` weeks (UTC).
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub keep_last: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
}

/// Incremental snapshots an app takes at most between two full ones when none is given
/// ([`RegisterArgs::max_incrementals`]): a daily full snapshot on an hourly schedule.
pub const DEFAULT_MAX_INCREMENTALS: u32 = 24;

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RegisterArgs {
    pub app: Principal,
    pub schedule: Schedule,
    pub retention: Retention,
    /// Incremental snapshots taken at most between two full ones (0: every snapshot is full); none
    /// is [`DEFAULT_MAX_INCREMENTALS`]. A snapshot of a stable-memory app is incremental when the
    /// app still holds the image of its last one: the app sends only the pages that changed since.
    pub max_incrementals: Option<u32>,
    /// How the vault captures the app; none is [`Capture::Library`].
    pub capture: Option<Capture>,
}

/// How the vault captures an app's state.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capture {
    /// The app compiles in the client library and serves the backup protocol to this vault.
    Library,
    /// Any canister this vault controls, through native canister snapshots: the vault stops it
    /// (unless `keep_running`), takes a snapshot, starts it again, then reads the snapshot out
    /// while the app serves calls. A running app's snapshot may catch it between the messages
    /// of a call it is making (see the README).
    Native { keep_running: bool },
}

#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnregisterArgs {
    pub app: Principal,
    /// Also delete the app's snapshots; otherwise they stay, readable by the app's controllers
    /// once it is registered again.
    pub delete_snapshots: bool,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UpdateScheduleArgs {
    pub app: Principal,
    pub schedule: Option<Schedule>,
    pub retention: Option<Retention>,
    /// As in [`RegisterArgs::max_incrementals`]; none leaves it as it is.
    pub max_incrementals: Option<u32>,
}

/// How `snapshot_now` takes its snapshot.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotOptions {
    /// A full snapshot, not an incremental one, whatever the app's `max_incrementals`.
    pub full: bool,
    /// A serde app: a snapshot of the state its last upgrade saved in `pre_upgrade`, taken when
    /// it saved it, for a state larger than one update can serialize; absent is false.
    pub from_upgrade_save: Option<bool>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AppInfo {
    pub app: Principal,
    pub registered_by: Principal,
    pub registered_at_nanos: u64,
    /// The app's controllers as the vault last saw them through `canister_info`.
    pub controllers: Vec<Principal>,
    pub state_kind: StateKind,
    pub schedule: Schedule,
    pub retention: Retention,
    pub next_snapshot_at_nanos: Option<u64>,
    pub running_job: Option<u64>,
    pub snapshots: u32,
    /// Bytes of the chunks its snapshots hold, each counted once (none from a vault that counts
    /// no such thing, release 0.1.0's).
    pub stored_bytes: Option<u64>,
    /// Cycles the vault spent on its jobs and imports this UTC day (none likewise).
    pub cycles_today: Option<u128>,
    /// Incremental snapshots taken at most between two full ones (none from a vault before
    /// incremental snapshots).
    pub max_incrementals: Option<u32>,
    /// How the vault captures it (none from a vault before native capture: the library).
    pub capture: Option<Capture>,
}

/// What started a snapshot.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Scheduled,
    Manual,
    Import,
}

/// A completed snapshot: immutable, restorable.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub id: u64,
    pub app: Principal,
    /// The app's time when its state was frozen.
    pub taken_at_nanos: u64,
    pub size: u64,
    /// The manifest hash (see `manifest`), in the snapshot's content hash.
    pub sha256: Sha256,
    /// The app's module hash (a SHA-256) when the snapshot was taken.
    pub module_hash: Option<Sha256>,
    pub state_kind: StateKind,
    pub chunks: u32,
    pub chunk_size: u64,
    /// From the job's start to the snapshot's completion.
    pub duration_nanos: u64,
    /// Cycles the vault spent on the transfer: call fees and bytes both ways.
    pub transfer_cycles: u128,
    pub trigger: Trigger,
    /// The state layout the app declared when the snapshot was taken (or its file says), if any.
    pub state_layout: Option<u32>,
    /// The snapshot's content hash: its manifest hash and chunk digests are in it. None from a
    /// vault before BLAKE3, whose snapshots are all SHA-256.
    pub content_hash: Option<ContentHash>,
}

impl SnapshotInfo {
    /// The snapshot's content hash.
    pub fn content_hash(&self) -> ContentHash {
        self.content_hash.unwrap_or(ContentHash::Sha256)
    }
}

#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotRef {
    pub app: Principal,
    pub snapshot_id: u64,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestoreArgs {
    pub app: Principal,
    pub snapshot_id: u64,
    /// Another canister to restore into (a clone); the app itself when absent.
    pub target: Option<Principal>,
    /// Restore even if the target declares another state layout than the snapshot's (when set
    /// and true; absent, as from older tools, it is false).
    pub allow_layout_change: Option<bool>,
    /// A serde snapshot too large to deserialize in one update: stage it in the target and have
    /// the target's next upgrade load it (its `post_upgrade` calls
    /// `vault_client::load_after_upgrade`), which its controller runs once the job succeeded; the
    /// target's backup info says whether that upgrade loaded it. Absent is false.
    pub via_upgrade: Option<bool>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRef {
    pub app: Principal,
    pub snapshot_id: u64,
    pub index: u32,
}

/// A page of a snapshot's chunk table: the digests (in its content hash) of chunks
/// `start .. start + count`.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManifestPage {
    pub app: Principal,
    pub snapshot_id: u64,
    pub start: u32,
    pub count: u32,
}

/// Chunk hashes a manifest page holds at most.
pub const MAX_MANIFEST_PAGE: u32 = 10_000;

/// A snapshot brought in from a file: its manifest, then its chunks, then a commit.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ImportArgs {
    pub app: Principal,
    pub state_kind: StateKind,
    pub size: u64,
    pub chunk_size: u64,
    /// The manifest hash the chunks must produce, in `content_hash`.
    pub sha256: Sha256,
    pub taken_at_nanos: u64,
    pub module_hash: Option<Sha256>,
    /// The state layout the app declared when the snapshot was taken, if any.
    pub state_layout: Option<u32>,
    /// The snapshot's content hash, in which the vault hashes every chunk imported; none (a tool
    /// before BLAKE3) is SHA-256.
    pub content_hash: Option<ContentHash>,
}

impl ImportArgs {
    /// The import's content hash.
    pub fn content_hash(&self) -> ContentHash {
        self.content_hash.unwrap_or(ContentHash::Sha256)
    }
}

/// An import in progress: the snapshot it builds and the chunks it still needs. Beginning the
/// same import again (same app, manifest hash and content hash) resumes it.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ImportInfo {
    pub snapshot_id: u64,
    pub chunks: u32,
    pub missing: Vec<u32>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ImportChunk {
    pub app: Principal,
    pub snapshot_id: u64,
    pub index: u32,
    pub data: serde_bytes::ByteBuf,
    /// The chunk's digest in the import's content hash.
    pub sha256: Sha256,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobKind {
    Snapshot { trigger: Trigger },
    /// Restores `snapshot_id` of `source` into the job's app.
    Restore { source: Principal, snapshot_id: u64 },
}

#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobPhase {
    /// Opening the dump, or the staging area.
    Starting,
    /// Moving chunks.
    Transferring,
    /// Closing the dump, or committing the restore.
    Finishing,
    Succeeded,
    Failed,
}

/// Why a job failed.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("the app refused: {error}")]
    AppRefused { error: BackupError },
    #[error("the app could not be reached (reject code {reject_code}): {message}")]
    AppUnreachable { reject_code: u32, message: String },
    #[error("chunk {index} arrived corrupted {attempts} times")]
    ChunkCorrupted { index: u32, attempts: u32 },
    #[error("gave up after {attempts} failed attempts; the last: {last}")]
    RetriesExhausted { attempts: u32, last: String },
    /// The commit of a restore got no answer that tells whether it ran (a lost response leaves
    /// that open): the app's state is either as it was or the snapshot's.
    #[error("the app may have committed the restore (its state is as it was or the snapshot's); no answer after {attempts} attempts, the last: {last}")]
    CommitUnconfirmed { attempts: u32, last: String },
    /// Every attempt of a restore's commit failed, the last one certainly without committing (a
    /// trap, a reject, a call never delivered): the app's state is as it was.
    #[error("the restore did not commit (the app's state is unchanged): gave up after {attempts} failed attempts; the last: {last}")]
    CommitFailed { attempts: u32, last: String },
    #[error("the vault needs {required} cycles for this job but has {available} to spend")]
    InsufficientCycles { required: u128, available: u128 },
    #[error("the snapshot being restored was deleted")]
    SnapshotDeleted,
    #[error("the app described an image the vault does not take: {reason}")]
    InvalidManifest { reason: String },
    #[error("cancelled by {by}")]
    Cancelled { by: Principal },
    /// The app answered a chunk in a form its dump does not take (pages of an incremental dump
    /// that do not add up, a full chunk in an incremental dump or the other way round): nothing
    /// of the snapshot is kept.
    #[error("the app answered chunk {index} in a form the dump does not take: {reason}")]
    InvalidChunk { index: u32, reason: String },
    /// The snapshot an incremental dump builds on went before the new one referenced its chunks.
    #[error("snapshot {base}, which the incremental snapshot builds on, was deleted before the new one referenced its chunks")]
    BaseDeleted { base: u64 },
    /// The dump would take the app past its quota, or the vault into its stable-memory reserve.
    #[error("refused before any chunk moved: {error}")]
    Refused { error: VaultError },
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct JobInfo {
    pub id: u64,
    /// The app the job snapshots, or restores into.
    pub app: Principal,
    pub kind: JobKind,
    pub phase: JobPhase,
    /// The snapshot a snapshot job creates (set once the dump is open), or restores.
    pub snapshot_id: Option<u64>,
    pub chunks_done: u32,
    pub chunks_total: u32,
    pub bytes_total: u64,
    pub retries: u32,
    pub started_at_nanos: u64,
    pub updated_at_nanos: u64,
    pub finished_at_nanos: Option<u64>,
    pub error: Option<JobError>,
    /// What happened along the way, e.g. a resumption after a vault upgrade.
    pub notes: Vec<String>,
}

/// Why the vault refused a request. A refused request changes nothing.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error("anonymous callers are refused")]
    Anonymous,
    #[error("{caller} is not a controller of {app}")]
    NotAController { app: Principal, caller: Principal },
    #[error("{app} is not registered")]
    UnknownApp { app: Principal },
    #[error("{app} is already registered")]
    AlreadyRegistered { app: Principal },
    #[error("{app} has no snapshot {snapshot_id}")]
    UnknownSnapshot { app: Principal, snapshot_id: u64 },
    #[error("there is no job {job}")]
    UnknownJob { job: u64 },
    #[error("job {job} is already running for {app}")]
    JobRunning { app: Principal, job: u64 },
    #[error("invalid schedule: {reason}")]
    InvalidSchedule { reason: String },
    #[error("invalid retention: {reason}")]
    InvalidRetention { reason: String },
    #[error("the vault needs {required} cycles for this but has {available} to spend")]
    InsufficientCycles { required: u128, available: u128 },
    #[error("{app} could not be reached (reject code {reject_code}): {message}")]
    AppUnreachable { app: Principal, reject_code: u32, message: String },
    #[error("{app} refused: {error}")]
    AppRefused { app: Principal, error: BackupError },
    #[error("{app} serves the backup protocol for vault {vault:?}, not this one")]
    WrongVault { app: Principal, vault: Option<Principal> },
    /// The target's client library does not verify the snapshot's content hash on restore (a
    /// BLAKE3 snapshot and release 0.1.0's library, or a build before BLAKE3): upgrade the target.
    #[error("{target}'s client library does not verify {content_hash:?}, the snapshot's content hash: upgrade its client library to restore it")]
    ContentHashNotVerified { target: Principal, content_hash: ContentHash },
    /// A native capture needs the vault among the app's controllers.
    #[error("this vault ({vault}) is not a controller of {app}: add it as one (icp canister settings update {app} --add-controller {vault}) to capture it through native snapshots")]
    VaultNotAController { app: Principal, vault: Principal },
    #[error("{target} is not registered with this vault; register it before restoring into it")]
    TargetNotRegistered { target: Principal },
    #[error("a {snapshot:?} snapshot cannot be restored into {target}, which holds {target_kind:?} state")]
    StateKindMismatch { target: Principal, target_kind: StateKind, snapshot: StateKind },
    /// Both declare a state layout and they differ; `RestoreArgs::allow_layout_change` allows it.
    #[error("{target} declares state layout {target_layout} but the snapshot was taken under layout {snapshot_layout}: restore with the layout change allowed if {target} reads it")]
    StateLayoutMismatch { target: Principal, target_layout: u32, snapshot_layout: u32 },
    #[error("chunk {index} is out of range: snapshot {snapshot_id} has {chunks} chunks")]
    ChunkOutOfRange { snapshot_id: u64, index: u32, chunks: u32 },
    #[error("chunk {index} does not match its digest")]
    ChunkHashMismatch { index: u32 },
    #[error("chunk {index} has {actual} bytes, not {expected}")]
    ChunkSizeMismatch { index: u32, expected: u64, actual: u64 },
    #[error("invalid manifest: {reason}")]
    InvalidManifest { reason: String },
    #[error("{missing} chunks are missing, the first is {first}")]
    MissingChunks { missing: u32, first: u32 },
    #[error("the chunks hash to {actual}, not to the manifest's {expected}")]
    SnapshotHashMismatch { expected: Sha256, actual: Sha256 },
    #[error("snapshot {snapshot_id} of {app} is not an import in progress")]
    NotAnImport { app: Principal, snapshot_id: u64 },
    #[error("the vault is stopping")]
    VaultStopping,
    #[error("job {job} cannot be cancelled: {reason}")]
    NotCancellable { job: u64, reason: String },
    #[error("{caller} is not an administrator of this vault")]
    NotAnAdministrator { caller: Principal },
    #[error("{caller} may not register apps: registration is {mode:?} (ask an administrator)")]
    RegistrationClosed { caller: Principal, mode: Registration },
    #[error("app {app} is suspended by {}: {}", suspension.by, suspension.reason)]
    Suspended { app: Principal, suspension: Suspension },
    #[error("at most {max} {what}")]
    TooMany { what: String, max: u32 },
    #[error("invalid argument: {reason}")]
    InvalidArgument { reason: String },
    /// A quota of the app's, or of `registrant`'s when set: the principal that registered it.
    #[error("app {app} would exceed {} quota of {what}: {used} used, {limit} allowed", quota_holder(registrant))]
    QuotaExceeded { app: Principal, what: String, used: u64, limit: u64, registrant: Option<Principal> },
    #[error("the vault keeps {reserved} bytes of stable memory free; {needed} more do not fit in the {available} left")]
    StorageFull { needed: u64, available: u64, reserved: u64 },
}

/// Whose quota a [`VaultError::QuotaExceeded`] names.
fn quota_holder(registrant: &Option<Principal>) -> String {
    match registrant {
        Some(registrant) => format!("registrant {registrant}'s"),
        None => "its".to_string(),
    }
}
