//! The vault's service for the CLI: the typed [`ServiceClient`] over a [`Transport`], its
//! answers and failures as [`OpsError`]s, and waiting for a job to end.

use std::time::Duration;

use candid::Principal;
use vault_api::Sha256;
use vault_api::client::{ClientError, Reply, ServiceClient};
use vault_api::protocol::{BackupError, BackupInfo, Chunk, methods};
use vault_api::service::{
    AdminInfo, AppInfo, ChunkRef, ImportArgs, ImportChunk, ImportInfo, JobInfo, JobKind, JobPhase, Limits, ManifestPage, RegisterArgs, RegistrantInfo,
    Registration, RestoreArgs, SetAllowedArgs, SnapshotInfo, SnapshotOptions, SnapshotRef, SuspendArgs, UnregisterArgs, UpdateScheduleArgs, VaultError,
};

use crate::error::OpsError;
use crate::progress::Progress;
use crate::transport::{CallError, Transport};

/// How often a running job is polled.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

impl From<ClientError<CallError>> for OpsError {
    fn from(e: ClientError<CallError>) -> Self {
        match e {
            ClientError::Call { method, error } => OpsError::Call { method, error },
            ClientError::Encode { method, message } | ClientError::Decode { method, message } => OpsError::Decode { method, message },
        }
    }
}

/// The vault's answer, its refusal an error too.
fn answer<T>(reply: Reply<T, CallError>) -> Result<T, OpsError> {
    reply?.map_err(OpsError::Vault)
}

/// A vault canister reached through a transport.
pub struct Vault<'t> {
    service: ServiceClient<&'t mut dyn Transport>,
}

impl<'t> Vault<'t> {
    pub fn new(transport: &'t mut dyn Transport, id: Principal) -> Self {
        Vault { service: ServiceClient::new(transport, id) }
    }

    pub fn caller(&self) -> Principal {
        self.service.transport().caller()
    }

    pub fn register(&mut self, args: RegisterArgs) -> Result<AppInfo, OpsError> {
        answer(self.service.register(args))
    }

    pub fn unregister(&mut self, args: UnregisterArgs) -> Result<(), OpsError> {
        answer(self.service.unregister(args))
    }

    pub fn update_schedule(&mut self, args: UpdateScheduleArgs) -> Result<AppInfo, OpsError> {
        answer(self.service.update_schedule(args))
    }

    pub fn app_info(&mut self, app: Principal) -> Result<AppInfo, OpsError> {
        answer(self.service.app_info(app))
    }

    /// Has the vault check the caller's control of `app` now, for the queries that follow.
    pub fn refresh_access(&mut self, app: Principal) -> Result<AppInfo, OpsError> {
        answer(self.service.refresh_access(app))
    }

    pub fn list_apps(&mut self) -> Result<Vec<AppInfo>, OpsError> {
        answer(self.service.list_apps())
    }

    pub fn snapshot_now(&mut self, app: Principal) -> Result<JobInfo, OpsError> {
        answer(self.service.snapshot_now(app))
    }

    /// A snapshot of `app` now as `options` say: full, even where the next would be
    /// incremental; of the state its last upgrade saved.
    pub fn snapshot_now_with(&mut self, app: Principal, options: SnapshotOptions) -> Result<JobInfo, OpsError> {
        answer(self.service.snapshot_now_with(app, options))
    }

    pub fn list_snapshots(&mut self, app: Principal) -> Result<Vec<SnapshotInfo>, OpsError> {
        answer(self.service.list_snapshots(app))
    }

    /// One completed snapshot's description.
    pub fn snapshot(&mut self, app: Principal, snapshot_id: u64) -> Result<SnapshotInfo, OpsError> {
        self.list_snapshots(app)?
            .into_iter()
            .find(|s| s.id == snapshot_id)
            .ok_or(OpsError::Vault(VaultError::UnknownSnapshot { app, snapshot_id }))
    }

    pub fn delete_snapshot(&mut self, app: Principal, snapshot_id: u64) -> Result<(), OpsError> {
        answer(self.service.delete_snapshot(SnapshotRef { app, snapshot_id }))
    }

    pub fn restore(&mut self, args: RestoreArgs) -> Result<JobInfo, OpsError> {
        answer(self.service.restore(args))
    }

    /// Upgrades `canister` (a restore's target) through this vault's transport, as its controller.
    pub fn upgrade(&mut self, canister: Principal, module: Vec<u8>, arg: Vec<u8>) -> Result<(), CallError> {
        self.service.transport_mut().upgrade(canister, module, arg)
    }

    /// `app`'s own backup info (`vault_backup_info`), which its controllers may read.
    pub fn backup_info(&mut self, app: Principal) -> Result<BackupInfo, OpsError> {
        let method = methods::INFO;
        let reply = self.service.transport_mut().query(app, method, candid::encode_args(()).expect("no argument encodes"));
        let bytes = reply.map_err(|error| OpsError::Call { method, error })?;
        let (answer,): (Result<BackupInfo, BackupError>,) =
            candid::decode_args(&bytes).map_err(|e| OpsError::Decode { method, message: e.to_string() })?;
        answer.map_err(|error| OpsError::App { app, error })
    }

    pub fn job_status(&mut self, job: u64) -> Result<JobInfo, OpsError> {
        answer(self.service.job_status(job))
    }

    pub fn list_jobs(&mut self, app: Principal) -> Result<Vec<JobInfo>, OpsError> {
        answer(self.service.list_jobs(app))
    }

    pub fn snapshot_chunk(&mut self, chunk: ChunkRef) -> Result<Chunk, OpsError> {
        answer(self.service.snapshot_chunk(chunk))
    }

    pub fn snapshot_manifest(&mut self, page: ManifestPage) -> Result<Vec<Sha256>, OpsError> {
        answer(self.service.snapshot_manifest(page))
    }

    pub fn import_begin(&mut self, args: ImportArgs) -> Result<ImportInfo, OpsError> {
        answer(self.service.import_begin(args))
    }

    pub fn import_chunk(&mut self, chunk: ImportChunk) -> Result<(), OpsError> {
        answer(self.service.import_chunk(chunk))
    }

    pub fn import_commit(&mut self, snapshot: SnapshotRef) -> Result<SnapshotInfo, OpsError> {
        answer(self.service.import_commit(snapshot))
    }

    pub fn import_abort(&mut self, snapshot: SnapshotRef) -> Result<(), OpsError> {
        answer(self.service.import_abort(snapshot))
    }

    /// Ends running job `job` as cancelled; returns it as it ended.
    pub fn cancel_job(&mut self, job: u64) -> Result<JobInfo, OpsError> {
        answer(self.service.cancel_job(job))
    }

    pub fn admin_info(&mut self) -> Result<AdminInfo, OpsError> {
        answer(self.service.admin_info())
    }

    /// Replaces the administrators the vault's controllers name.
    pub fn set_administrators(&mut self, administrators: Vec<Principal>) -> Result<(), OpsError> {
        answer(self.service.set_administrators(administrators))
    }

    pub fn set_registration(&mut self, registration: Registration) -> Result<(), OpsError> {
        answer(self.service.set_registration(registration))
    }

    pub fn set_allowed(&mut self, args: SetAllowedArgs) -> Result<(), OpsError> {
        answer(self.service.set_allowed(args))
    }

    /// Replaces the cycles reserve and the quotas.
    pub fn set_limits(&mut self, limits: Limits) -> Result<(), OpsError> {
        answer(self.service.set_limits(limits))
    }

    pub fn list_registrants(&mut self) -> Result<Vec<RegistrantInfo>, OpsError> {
        answer(self.service.list_registrants())
    }

    pub fn suspend_app(&mut self, args: SuspendArgs) -> Result<(), OpsError> {
        answer(self.service.suspend_app(args))
    }

    pub fn resume_app(&mut self, app: Principal) -> Result<(), OpsError> {
        answer(self.service.resume_app(app))
    }

    /// Unregisters an app for an administrator; its snapshots stay.
    pub fn evict_app(&mut self, app: Principal) -> Result<(), OpsError> {
        answer(self.service.evict_app(app))
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
            self.service.transport_mut().wait(POLL_INTERVAL);
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

        fn upgrade(&mut self, canister: Principal, module: Vec<u8>, arg: Vec<u8>) -> Result<(), CallError> {
            self.requests.push(("upgrade", canister, String::from_utf8_lossy(&module).into_owned(), arg));
            self.replies.remove(0).map(|_| ())
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
        let e = vault.register(RegisterArgs {
            app,
            schedule: Schedule { interval_seconds: 0 },
            retention: Retention { keep_last: 1, keep_daily: 0, keep_weekly: 0 },
            max_incrementals: None,
            capture: None,
        });
        assert!(matches!(e, Err(OpsError::Call { method: "register", error: CallError::Rejected { code: 5, .. } })));
        let modes: Vec<_> = recorder.requests.iter().map(|r| r.0).collect();
        assert_eq!(modes, ["query", "query", "query", "query", "update"]);
    }

    #[test]
    fn administration_and_cancellation_call_the_service_as_it_declares() {
        let app = Principal::from_slice(&[7; 29]);
        let done = || Ok(Encode!(&Ok::<(), VaultError>(())).unwrap());
        let caller = Principal::from_slice(&[3; 29]);
        let not_cancellable = VaultError::NotCancellable { job: 4, reason: "it is over".into() };
        let mut recorder = Recorder {
            requests: vec![],
            replies: vec![
                Ok(Encode!(&Err::<AdminInfo, _>(VaultError::NotAnAdministrator { caller })).unwrap()),
                done(),
                done(),
                done(),
                Ok(Encode!(&Ok::<Vec<RegistrantInfo>, VaultError>(vec![])).unwrap()),
                done(),
                done(),
                done(),
                Ok(Encode!(&Err::<JobInfo, _>(not_cancellable.clone())).unwrap()),
            ],
        };
        let mut vault = Vault::new(&mut recorder, vault_id());
        assert!(matches!(vault.admin_info(), Err(OpsError::Vault(VaultError::NotAnAdministrator { caller: c })) if c == caller));
        vault.set_administrators(vec![app]).unwrap();
        vault.set_registration(Registration::Open).unwrap();
        vault.set_allowed(SetAllowedArgs { principals: vec![app], allowed: false }).unwrap();
        assert_eq!(vault.list_registrants().unwrap(), vec![]);
        vault.suspend_app(SuspendArgs { app, reason: "over quota".into() }).unwrap();
        vault.resume_app(app).unwrap();
        vault.evict_app(app).unwrap();
        assert!(matches!(vault.cancel_job(4), Err(OpsError::Vault(e)) if e == not_cancellable));
        let calls: Vec<_> = recorder.requests.iter().map(|r| (r.0, r.2.as_str())).collect();
        assert_eq!(
            calls,
            [
                ("query", "admin_info"),
                ("update", "set_administrators"),
                ("update", "set_registration"),
                ("update", "set_allowed"),
                ("query", "list_registrants"),
                ("update", "suspend_app"),
                ("update", "resume_app"),
                ("update", "evict_app"),
                ("update", "cancel_job"),
            ]
        );
        assert_eq!(candid::decode_one::<Registration>(&recorder.requests[2].3).unwrap(), Registration::Open);
        assert_eq!(candid::decode_one::<SuspendArgs>(&recorder.requests[5].3).unwrap().reason, "over quota");
        assert_eq!(candid::decode_one::<u64>(&recorder.requests[8].3).unwrap(), 4);
    }
}
