//! A typed client of the vault's service, over any [`Transport`] that carries candid bytes
//! (ic-agent, an embedded IC, a test double). Each method encodes its argument, calls the
//! method named in [`methods`] as the query or update `vault.did` declares, and decodes the
//! vault's `Result`. Replies are decoded within candid's decoding and skipping quotas: they
//! come from a canister the caller may not trust, and a few crafted bytes must not cost seconds.

use candid::utils::ArgumentEncoder;
use candid::{CandidType, Principal};
use serde::de::DeserializeOwned;

use crate::manifest::Sha256;
use crate::protocol::Chunk;
use crate::service::{
    AdminInfo, AppInfo, ChunkRef, Limits, ImportArgs, ImportChunk, ImportInfo, JobInfo, ManifestPage, RegisterArgs, RegistrantInfo, Registration,
    RestoreArgs, SetAllowedArgs, SnapshotInfo, SnapshotOptions, SnapshotRef, SuspendArgs, UnregisterArgs, UpdateScheduleArgs, VaultError, methods,
};

/// Carries a call's candid argument to a canister and its reply back.
pub trait Transport {
    /// Why a call produced no reply: a reject, a lost connection.
    type Error;

    fn update(&mut self, canister: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, Self::Error>;

    fn query(&mut self, canister: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, Self::Error>;
}

impl<T: Transport + ?Sized> Transport for &mut T {
    type Error = T::Error;

    fn update(&mut self, canister: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, Self::Error> {
        (**self).update(canister, method, arg)
    }

    fn query(&mut self, canister: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, Self::Error> {
        (**self).query(canister, method, arg)
    }
}

/// Why a call got no answer from the vault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError<E> {
    #[error("calling {method}: {error}")]
    Call { method: &'static str, error: E },
    #[error("the argument of {method} does not encode: {message}")]
    Encode { method: &'static str, message: String },
    #[error("{method} replied with bytes that are not its candid result: {message}")]
    Decode { method: &'static str, message: String },
}

/// What a call gives: the vault's answer (a value or its refusal), or why there is none.
pub type Reply<T, E> = Result<Result<T, VaultError>, ClientError<E>>;

/// Decoding work a reply may cost, in candid's units (see `DecoderConfig::set_decoding_quota`).
/// A reply is at most 3 MiB (a non-replicated query's); the vault's replies cost at most about
/// 9 units a byte (a list of apps whose principals are short), so 3 MiB of any of them fits.
const REPLY_DECODING_QUOTA: usize = 50_000_000;

#[derive(Clone, Copy)]
enum Mode {
    Update,
    Query,
}

/// The vault canister `canister`, reached through `transport`.
pub struct ServiceClient<T> {
    transport: T,
    canister: Principal,
}

impl<T: Transport> ServiceClient<T> {
    pub fn new(transport: T, canister: Principal) -> Self {
        ServiceClient { transport, canister }
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }

    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    fn call<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        mode: Mode,
        method: &'static str,
        args: A,
    ) -> Reply<R, T::Error> {
        let arg = candid::encode_args(args).map_err(|e| ClientError::Encode { method, message: e.to_string() })?;
        let reply = match mode {
            Mode::Update => self.transport.update(self.canister, method, arg),
            Mode::Query => self.transport.query(self.canister, method, arg),
        }
        .map_err(|error| ClientError::Call { method, error })?;
        let (result,): (Result<R, VaultError>,) = candid::decode_args_with_config(&reply, &crate::decode::config(REPLY_DECODING_QUOTA))
            .map_err(|e| ClientError::Decode { method, message: format!("{e:#}") })?;
        Ok(result)
    }

    /// Registers an app the caller controls; the app must have this vault set.
    pub fn register(&mut self, args: RegisterArgs) -> Reply<AppInfo, T::Error> {
        self.call(Mode::Update, methods::REGISTER, (args,))
    }

    pub fn unregister(&mut self, args: UnregisterArgs) -> Reply<(), T::Error> {
        self.call(Mode::Update, methods::UNREGISTER, (args,))
    }

    pub fn update_schedule(&mut self, args: UpdateScheduleArgs) -> Reply<AppInfo, T::Error> {
        self.call(Mode::Update, methods::UPDATE_SCHEDULE, (args,))
    }

    pub fn app_info(&mut self, app: Principal) -> Reply<AppInfo, T::Error> {
        self.call(Mode::Query, methods::APP_INFO, (app,))
    }

    /// The registered apps the caller controls (as last seen).
    pub fn list_apps(&mut self) -> Reply<Vec<AppInfo>, T::Error> {
        self.call(Mode::Query, methods::LIST_APPS, ())
    }

    /// Starts a snapshot of `app`; follow it with [`ServiceClient::job_status`].
    pub fn snapshot_now(&mut self, app: Principal) -> Reply<JobInfo, T::Error> {
        self.call(Mode::Update, methods::SNAPSHOT_NOW, (app,))
    }

    /// [`ServiceClient::snapshot_now`] as `options` say (a full snapshot, say).
    pub fn snapshot_now_with(&mut self, app: Principal, options: SnapshotOptions) -> Reply<JobInfo, T::Error> {
        self.call(Mode::Update, methods::SNAPSHOT_NOW, (app, Some(options)))
    }

    /// The completed snapshots of `app`, oldest first.
    pub fn list_snapshots(&mut self, app: Principal) -> Reply<Vec<SnapshotInfo>, T::Error> {
        self.call(Mode::Query, methods::LIST_SNAPSHOTS, (app,))
    }

    pub fn delete_snapshot(&mut self, snapshot: SnapshotRef) -> Reply<(), T::Error> {
        self.call(Mode::Update, methods::DELETE_SNAPSHOT, (snapshot,))
    }

    /// Starts restoring a snapshot into its app, or into `target` (a clone).
    pub fn restore(&mut self, args: RestoreArgs) -> Reply<JobInfo, T::Error> {
        self.call(Mode::Update, methods::RESTORE, (args,))
    }

    pub fn job_status(&mut self, job: u64) -> Reply<JobInfo, T::Error> {
        self.call(Mode::Query, methods::JOB_STATUS, (job,))
    }

    /// The jobs of `app`, newest first: running ones and the log of finished ones.
    pub fn list_jobs(&mut self, app: Principal) -> Reply<Vec<JobInfo>, T::Error> {
        self.call(Mode::Query, methods::LIST_JOBS, (app,))
    }

    /// A chunk of a completed snapshot, for export to a file.
    pub fn snapshot_chunk(&mut self, chunk: ChunkRef) -> Reply<Chunk, T::Error> {
        self.call(Mode::Query, methods::SNAPSHOT_CHUNK, (chunk,))
    }

    /// A page of a completed snapshot's chunk table, for export.
    pub fn snapshot_manifest(&mut self, page: ManifestPage) -> Reply<Vec<Sha256>, T::Error> {
        self.call(Mode::Query, methods::SNAPSHOT_MANIFEST, (page,))
    }

    /// Begins (or resumes) importing a snapshot from a file into an app's history.
    pub fn import_begin(&mut self, args: ImportArgs) -> Reply<ImportInfo, T::Error> {
        self.call(Mode::Update, methods::IMPORT_BEGIN, (args,))
    }

    pub fn import_chunk(&mut self, chunk: ImportChunk) -> Reply<(), T::Error> {
        self.call(Mode::Update, methods::IMPORT_CHUNK, (chunk,))
    }

    /// Completes an import: the snapshot is then listed and restorable like any other.
    pub fn import_commit(&mut self, snapshot: SnapshotRef) -> Reply<SnapshotInfo, T::Error> {
        self.call(Mode::Update, methods::IMPORT_COMMIT, (snapshot,))
    }

    pub fn import_abort(&mut self, snapshot: SnapshotRef) -> Reply<(), T::Error> {
        self.call(Mode::Update, methods::IMPORT_ABORT, (snapshot,))
    }

    /// Has the vault ask the management canister for `app`'s controllers now (queries check the
    /// controllers last seen): the caller must be one of them.
    pub fn refresh_access(&mut self, app: Principal) -> Reply<AppInfo, T::Error> {
        self.call(Mode::Update, methods::REFRESH_ACCESS, (app,))
    }

    /// Ends a running job as cancelled; what it had done is released.
    pub fn cancel_job(&mut self, job: u64) -> Reply<JobInfo, T::Error> {
        self.call(Mode::Update, methods::CANCEL_JOB, (job,))
    }

    // Administration.

    pub fn admin_info(&mut self) -> Reply<AdminInfo, T::Error> {
        self.call(Mode::Query, methods::ADMIN_INFO, ())
    }

    /// Replaces the list of administrators (the vault's controllers only).
    pub fn set_administrators(&mut self, administrators: Vec<Principal>) -> Reply<(), T::Error> {
        self.call(Mode::Update, methods::SET_ADMINISTRATORS, (administrators,))
    }

    pub fn set_registration(&mut self, registration: Registration) -> Reply<(), T::Error> {
        self.call(Mode::Update, methods::SET_REGISTRATION, (registration,))
    }

    pub fn set_allowed(&mut self, args: SetAllowedArgs) -> Reply<(), T::Error> {
        self.call(Mode::Update, methods::SET_ALLOWED, (args,))
    }

    pub fn list_registrants(&mut self) -> Reply<Vec<RegistrantInfo>, T::Error> {
        self.call(Mode::Query, methods::LIST_REGISTRANTS, ())
    }

    pub fn suspend_app(&mut self, args: SuspendArgs) -> Reply<(), T::Error> {
        self.call(Mode::Update, methods::SUSPEND_APP, (args,))
    }

    pub fn resume_app(&mut self, app: Principal) -> Reply<(), T::Error> {
        self.call(Mode::Update, methods::RESUME_APP, (app,))
    }

    pub fn set_limits(&mut self, limits: Limits) -> Reply<(), T::Error> {
        self.call(Mode::Update, methods::SET_LIMITS, (limits,))
    }

    /// Unregisters an app, cancelling its job; its snapshots stay until deleted.
    pub fn evict_app(&mut self, app: Principal) -> Reply<(), T::Error> {
        self.call(Mode::Update, methods::EVICT_APP, (app,))
    }
}

#[cfg(test)]
mod tests {
    use serde_bytes::ByteBuf;

    use super::*;
    use crate::manifest::ContentHash;
    use crate::protocol::StateKind;
    use crate::service::Capture;
    use crate::service::{JobError, JobKind, JobPhase, Retention, Schedule, Trigger};

    /// The largest reply the IC carries: a non-replicated query's.
    const MAX_REPLY: usize = 3 << 20;

    /// Answers every call with the same bytes.
    struct Replies(Vec<u8>);

    impl Transport for Replies {
        type Error = String;

        fn update(&mut self, _: Principal, _: &str, _: Vec<u8>) -> Result<Vec<u8>, String> {
            Ok(self.0.clone())
        }

        fn query(&mut self, _: Principal, _: &str, _: Vec<u8>) -> Result<Vec<u8>, String> {
            Ok(self.0.clone())
        }
    }

    fn client(reply: Vec<u8>) -> ServiceClient<Replies> {
        ServiceClient::new(Replies(reply), Principal::from_slice(&[1; 10]))
    }

    /// `Ok` with as many copies of `item` as fit in [`MAX_REPLY`], encoded.
    fn full_reply<T: CandidType + Clone>(item: T) -> Vec<u8> {
        let one = candid::encode_one(Ok::<_, VaultError>(vec![item.clone()])).unwrap().len();
        let two = candid::encode_one(Ok::<_, VaultError>(vec![item.clone(); 2])).unwrap().len();
        let bytes = candid::encode_one(Ok::<_, VaultError>(vec![item; (MAX_REPLY - one) / (two - one)])).unwrap();
        assert!(bytes.len() <= MAX_REPLY && bytes.len() > MAX_REPLY - 200, "{}", bytes.len());
        bytes
    }

    #[test]
    fn the_largest_replies_of_every_kind_decode_within_the_quotas() {
        let (short, app) = (Principal::anonymous(), Principal::from_slice(&[2; 10]));
        let info = AppInfo {
            app: short,
            registered_by: short,
            registered_at_nanos: 0,
            controllers: vec![],
            state_kind: StateKind::Serde,
            schedule: Schedule { interval_seconds: 0 },
            retention: Retention { keep_last: 0, keep_daily: 0, keep_weekly: 0 },
            next_snapshot_at_nanos: None,
            running_job: None,
            snapshots: 0,
            stored_bytes: None,
            cycles_today: None,
            max_incrementals: None,
            capture: Some(Capture::Native { keep_running: true }),
        };
        let apps = client(full_reply(info.clone())).list_apps().unwrap().unwrap();
        assert!(apps.len() > 30_000 && apps.iter().all(|a| *a == info), "{}", apps.len());

        let snapshot = SnapshotInfo {
            id: 0,
            app,
            taken_at_nanos: 0,
            size: 0,
            sha256: Sha256([0; 32]),
            module_hash: None,
            state_kind: StateKind::StableMemory,
            chunks: 0,
            chunk_size: 0,
            duration_nanos: 0,
            transfer_cycles: 0,
            trigger: Trigger::Manual,
            state_layout: Some(u32::MAX),
            content_hash: Some(ContentHash::Blake3),
        };
        assert!(client(full_reply(snapshot)).list_snapshots(app).unwrap().unwrap().len() > 20_000);

        let job = JobInfo {
            id: 0,
            app: short,
            kind: JobKind::Snapshot { trigger: Trigger::Manual },
            phase: JobPhase::Failed,
            snapshot_id: None,
            chunks_done: 0,
            chunks_total: 0,
            bytes_total: 0,
            retries: 0,
            started_at_nanos: 0,
            updated_at_nanos: 0,
            finished_at_nanos: None,
            error: Some(JobError::SnapshotDeleted),
            notes: vec![String::new()],
        };
        assert!(client(full_reply(job)).list_jobs(app).unwrap().unwrap().len() > 40_000);

        let hashes = client(full_reply(Sha256([7; 32]))).snapshot_manifest(ManifestPage { app, snapshot_id: 0, start: 0, count: 0 });
        assert!(hashes.unwrap().unwrap().len() > 90_000);

        let chunk = Chunk { index: 0, data: ByteBuf::from(vec![5; MAX_REPLY - 100]), sha256: Sha256([0; 32]), changed_pages: None, base_ranges: None };
        let encoded = candid::encode_one(Ok::<_, VaultError>(chunk.clone())).unwrap();
        assert_eq!(client(encoded).snapshot_chunk(ChunkRef { app, snapshot_id: 0, index: 0 }), Ok(Ok(chunk)));
    }

    #[test]
    fn a_reply_that_would_take_long_to_skip_is_refused() {
        // `Ok(())`, then an extra argument: a `vec null` of 10^9 elements, five bytes of length.
        let mut bytes = candid::encode_args((Ok::<(), VaultError>(()), vec![(); 3])).unwrap();
        assert_eq!(bytes.pop(), Some(3));
        bytes.extend_from_slice(&[0x80, 0x94, 0xeb, 0xdc, 0x03]);
        let started = std::time::Instant::now();
        let reply = client(bytes).import_abort(SnapshotRef { app: Principal::anonymous(), snapshot_id: 0 });
        assert!(
            matches!(&reply, Err(ClientError::Decode { method: methods::IMPORT_ABORT, message }) if message.contains("Skipping cost")),
            "{reply:?}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn replies_a_newer_vault_extends_still_decode() {
        // `Ok(())` and an extra argument the client does not know: skipped.
        let bytes = candid::encode_args((Ok::<(), VaultError>(()), "a newer vault's extra", 7u64)).unwrap();
        assert_eq!(client(bytes).unregister(UnregisterArgs { app: Principal::anonymous(), delete_snapshots: false }), Ok(Ok(())));
    }
}
