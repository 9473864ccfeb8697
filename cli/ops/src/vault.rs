//! The vault's service, typed: each method encodes its candid argument, calls through a
//! [`Transport`] and decodes `Result<T, VaultError>`.

use std::time::Duration;

use candid::utils::ArgumentEncoder;
use candid::{CandidType, Principal};
use serde::de::DeserializeOwned;
use vault_api::protocol::Chunk;
use vault_api::service::{
    AppInfo, ChunkRef, ImportArgs, ImportChunk, ImportInfo, JobInfo, JobKind, JobPhase, ManifestPage, RegisterArgs, RestoreArgs, SnapshotInfo,
    SnapshotRef, UnregisterArgs, UpdateScheduleArgs, VaultError,
};
use vault_api::Sha256;

use crate::error::OpsError;
use crate::progress::Progress;
use crate::transport::Transport;

/// How often a running job is polled.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone, Copy)]
enum Mode {
    Update,
    Query,
}

/// A vault canister reached through a transport.
pub struct Vault<'t> {
    transport: &'t mut dyn Transport,
    pub id: Principal,
}

impl<'t> Vault<'t> {
    pub fn new(transport: &'t mut dyn Transport, id: Principal) -> Self {
        Vault { transport, id }
    }

    pub fn caller(&self) -> Principal {
        self.transport.caller()
    }

    fn call<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(&mut self, mode: Mode, method: &'static str, args: A) -> Result<R, OpsError> {
        let arg = candid::encode_args(args).map_err(|e| OpsError::Decode { method, message: e.to_string() })?;
        let reply = match mode {
            Mode::Update => self.transport.update(self.id, method, arg),
            Mode::Query => self.transport.query(self.id, method, arg),
        }
        .map_err(|error| OpsError::Call { method, error })?;
        let (result,): (Result<R, VaultError>,) =
            candid::decode_args(&reply).map_err(|e| OpsError::Decode { method, message: e.to_string() })?;
        result.map_err(OpsError::Vault)
    }

    pub fn register(&mut self, args: RegisterArgs) -> Result<AppInfo, OpsError> {
        self.call(Mode::Update, "register", (args,))
    }

    pub fn unregister(&mut self, args: UnregisterArgs) -> Result<(), OpsError> {
        self.call(Mode::Update, "unregister", (args,))
    }

    pub fn update_schedule(&mut self, args: UpdateScheduleArgs) -> Result<AppInfo, OpsError> {
        self.call(Mode::Update, "update_schedule", (args,))
    }

    pub fn app_info(&mut self, app: Principal) -> Result<AppInfo, OpsError> {
        self.call(Mode::Query, "app_info", (app,))
    }

    pub fn list_apps(&mut self) -> Result<Vec<AppInfo>, OpsError> {
        self.call(Mode::Query, "list_apps", ())
    }

    pub fn snapshot_now(&mut self, app: Principal) -> Result<JobInfo, OpsError> {
        self.call(Mode::Update, "snapshot_now", (app,))
    }

    pub fn list_snapshots(&mut self, app: Principal) -> Result<Vec<SnapshotInfo>, OpsError> {
        self.call(Mode::Query, "list_snapshots", (app,))
    }

    /// One completed snapshot's description.
    pub fn snapshot(&mut self, app: Principal, snapshot_id: u64) -> Result<SnapshotInfo, OpsError> {
        self.list_snapshots(app)?
            .into_iter()
            .find(|s| s.id == snapshot_id)
            .ok_or(OpsError::Vault(VaultError::UnknownSnapshot { app, snapshot_id }))
    }

    pub fn delete_snapshot(&mut self, app: Principal, snapshot_id: u64) -> Result<(), OpsError> {
        self.call(Mode::Update, "delete_snapshot", (SnapshotRef { app, snapshot_id },))
    }

    pub fn restore(&mut self, args: RestoreArgs) -> Result<JobInfo, OpsError> {
        self.call(Mode::Update, "restore", (args,))
    }

    pub fn job_status(&mut self, job: u64) -> Result<JobInfo, OpsError> {
        self.call(Mode::Query, "job_status", (job,))
    }

    pub fn list_jobs(&mut self, app: Principal) -> Result<Vec<JobInfo>, OpsError> {
        self.call(Mode::Query, "list_jobs", (app,))
    }

    pub fn snapshot_chunk(&mut self, chunk: ChunkRef) -> Result<Chunk, OpsError> {
        self.call(Mode::Query, "snapshot_chunk", (chunk,))
    }

    pub fn snapshot_manifest(&mut self, page: ManifestPage) -> Result<Vec<Sha256>, OpsError> {
        self.call(Mode::Query, "snapshot_manifest", (page,))
    }

    pub fn import_begin(&mut self, args: ImportArgs) -> Result<ImportInfo, OpsError> {
        self.call(Mode::Update, "import_begin", (args,))
    }

    pub fn import_chunk(&mut self, chunk: ImportChunk) -> Result<(), OpsError> {
        self.call(Mode::Update, "import_chunk", (chunk,))
    }

    pub fn import_commit(&mut self, snapshot: SnapshotRef) -> Result<SnapshotInfo, OpsError> {
        self.call(Mode::Update, "import_commit", (snapshot,))
    }

    pub fn import_abort(&mut self, snapshot: SnapshotRef) -> Result<(), OpsError> {
        self.call(Mode::Update, "import_abort", (snapshot,))
    }

    /// Polls job `id` until it ends, reporting its bytes moved; a failed job is an error.
    pub fn wait_for_job(&mut self, id: u64, progress: &mut dyn Progress) -> Result<JobInfo, OpsError> {
        let mut job = self.job_status(id)?;
        progress.begin(match job.kind {
            JobKind::Snapshot { .. } => "snapshot",
            JobKind::Restore { .. } => "restore",
        });
        loop {
            progress.position(transferred(&job), job.bytes_total);
            match job.phase {
                JobPhase::Succeeded => break,
                JobPhase::Failed => {
                    progress.end();
                    return Err(OpsError::JobFailed(Box::new(job)));
                }
                JobPhase::Starting | JobPhase::Transferring | JobPhase::Finishing => {}
            }
            self.transport.wait(POLL_INTERVAL);
            job = self.job_status(id)?;
        }
        progress.end();
        Ok(job)
    }
}

/// A job's bytes moved so far, as far as its chunk counts tell.
fn transferred(job: &JobInfo) -> u64 {
    match job.phase {
        JobPhase::Succeeded => job.bytes_total,
        _ if job.chunks_total == 0 => 0,
        _ => (job.bytes_total as u128 * job.chunks_done as u128 / job.chunks_total as u128) as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::CallError;
    use candid::Encode;
    use vault_api::service::{Retention, Schedule};

    /// Records requests and answers each with the next prepared reply.
    struct Recorder {
        requests: Vec<(&'static str, Principal, String, Vec<u8>)>,
        replies: Vec<Result<Vec<u8>, CallError>>,
    }

    impl Transport for Recorder {
        fn caller(&self) -> Principal {
            Principal::anonymous()
        }

        fn update(&mut self, canister: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError> {
            self.requests.push(("update", canister, method.to_string(), arg));
            self.replies.remove(0)
        }

        fn query(&mut self, canister: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError> {
            self.requests.push(("query", canister, method.to_string(), arg));
            self.replies.remove(0)
        }

        fn wait(&mut self, _: Duration) {}
    }

    fn vault_id() -> Principal {
        Principal::from_slice(&[1; 10])
    }

    #[test]
    fn requests_carry_the_method_mode_and_candid_argument() {
        let app = Principal::from_slice(&[7; 29]);
        let ok: Result<(), VaultError> = Ok(());
        let mut recorder = Recorder { requests: vec![], replies: vec![Ok(Encode!(&ok).unwrap()), Ok(Encode!(&ok).unwrap())] };
        let mut vault = Vault::new(&mut recorder, vault_id());
        vault.delete_snapshot(app, 3).unwrap();
        vault.unregister(UnregisterArgs { app, delete_snapshots: true }).unwrap();
        let (mode, canister, method, arg) = &recorder.requests[0];
        assert_eq!((*mode, *canister, method.as_str()), ("update", vault_id(), "delete_snapshot"));
        assert_eq!(candid::decode_one::<SnapshotRef>(arg).unwrap(), SnapshotRef { app, snapshot_id: 3 });
        assert_eq!(candid::decode_one::<UnregisterArgs>(&recorder.requests[1].3).unwrap(), UnregisterArgs { app, delete_snapshots: true });
    }

    #[test]
    fn replies_decode_into_values_vault_errors_or_decode_errors() {
        let app = Principal::from_slice(&[7; 29]);
        let refused: Result<Vec<SnapshotInfo>, VaultError> = Err(VaultError::UnknownApp { app });
        let mut recorder = Recorder {
            requests: vec![],
            replies: vec![
                Ok(Encode!(&Ok::<Vec<SnapshotInfo>, VaultError>(vec![])).unwrap()),
                Ok(Encode!(&refused).unwrap()),
                Ok(b"DIDLgarbage".to_vec()),
                Ok(Encode!(&"a text, not a result").unwrap()),
                Err(CallError::Rejected { code: 5, error_code: Some("IC0503".into()), message: "trapped".into() }),
            ],
        };
        let mut vault = Vault::new(&mut recorder, vault_id());
        assert_eq!(vault.list_snapshots(app).unwrap(), vec![]);
        assert!(matches!(vault.list_snapshots(app), Err(OpsError::Vault(VaultError::UnknownApp { .. }))));
        assert!(matches!(vault.list_snapshots(app), Err(OpsError::Decode { method: "list_snapshots", .. })));
        assert!(matches!(vault.list_snapshots(app), Err(OpsError::Decode { .. })));
        let e = vault.register(RegisterArgs { app, schedule: Schedule { interval_seconds: 0 }, retention: Retention { keep_last: 1, keep_daily: 0, keep_weekly: 0 } });
        assert!(matches!(e, Err(OpsError::Call { method: "register", error: CallError::Rejected { code: 5, .. } })));
        let modes: Vec<_> = recorder.requests.iter().map(|r| r.0).collect();
        assert_eq!(modes, ["query", "query", "query", "query", "update"]);
    }
}
