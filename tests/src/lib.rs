//! Test support: an embedded IC with a vault and example apps, a typed helper for each canister
//! method, and the multi-step flows the tests share.

pub mod btree;
pub mod cost;
pub mod interface;
pub mod lies;
pub mod release;

use std::time::Duration;

use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{Encode, Principal};
use ic_harness::{CallError, Harness, IcBackend, RejectResponse, SubnetId};
use serde_bytes::ByteBuf;
use vault_api::client::{Reply, ServiceClient, Transport};
use vault_api::protocol::{BackupError, BackupInfo, Chunk, ChunkRequest, DumpBegin, DumpManifest, methods};
use vault_api::service::{
    AppInfo, ChunkRef, JobInfo, JobPhase, RegisterArgs, RestoreArgs, Retention, Schedule, SnapshotInfo, SnapshotRef, UnregisterArgs,
    UpdateScheduleArgs, VaultError,
};

pub use ic_harness;
pub use vault_api;

pub fn vault_wasm() -> Vec<u8> {
    ic_harness::build::canister_lib_wasm("canister-vault", "canister_vault")
}

pub fn notes_wasm() -> Vec<u8> {
    ic_harness::build::canister_lib_wasm("notes", "notes")
}

/// A canister without the client library: a `StableBTreeMap` and a heap value (the embedded IC's
/// `kv` test canister).
pub fn kv_wasm() -> Vec<u8> {
    ic_harness::build::canister_wasm("harness-test-canisters", "kv")
}

/// The `plain` example: entries on the heap, without the client library.
pub fn plain_wasm() -> Vec<u8> {
    ic_harness::build::canister_lib_wasm("plain", "plain")
}

pub fn ledger_wasm() -> Vec<u8> {
    ic_harness::build::canister_lib_wasm("ledger", "ledger")
}

/// The principal controlling the vault and the apps.
pub fn owner() -> Principal {
    Principal::from_slice(&[0x0e; 29])
}

/// A principal controlling nothing.
pub fn stranger() -> Principal {
    Principal::from_slice(&[0x5e; 29])
}

pub type VaultResult<T> = Result<T, VaultError>;

/// Calls on the embedded IC as `caller`: what the vault's typed client calls through.
pub struct HarnessTransport<'a> {
    pub ic: &'a Harness,
    pub caller: Principal,
}

impl Transport for HarnessTransport<'_> {
    type Error = RejectResponse;

    fn update(&mut self, canister: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, RejectResponse> {
        self.ic.update_call(canister, self.caller, method, arg)
    }

    fn query(&mut self, canister: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, RejectResponse> {
        self.ic.query_call(canister, self.caller, method, arg)
    }
}

/// The vault's typed service on the embedded IC.
pub type VaultService<'a> = ServiceClient<HarnessTransport<'a>>;

/// What a call of [`VaultService`] gives: the vault's answer, or the reject that came instead.
pub type VaultReply<T> = Reply<T, RejectResponse>;

/// The vault's methods, called as `caller`; each panics if the vault gives no answer.
pub struct VaultClient<'a> {
    pub ic: &'a Harness,
    pub vault: Principal,
    pub caller: Principal,
}

impl VaultClient<'_> {
    /// The vault's service, whose calls may fail before the vault answers (an injected trap, a
    /// stopped vault).
    pub fn service(&self) -> VaultService<'_> {
        ServiceClient::new(HarnessTransport { ic: self.ic, caller: self.caller }, self.vault)
    }

    fn expect<T>(reply: VaultReply<T>) -> VaultResult<T> {
        reply.unwrap_or_else(|e| panic!("vault: {e}"))
    }

    pub fn register(&self, app: Principal, schedule: Schedule, retention: Retention) -> VaultResult<AppInfo> {
        Self::expect(self.service().register(RegisterArgs { app, schedule, retention, max_incrementals: None, capture: None }))
    }

    /// Registers `app` for capture through native snapshots.
    pub fn register_native(&self, app: Principal, schedule: Schedule, retention: Retention, keep_running: bool) -> VaultResult<AppInfo> {
        let capture = Some(vault_api::service::Capture::Native { keep_running });
        Self::expect(self.service().register(RegisterArgs { app, schedule, retention, max_incrementals: None, capture }))
    }

    pub fn unregister(&self, app: Principal, delete_snapshots: bool) -> VaultResult<()> {
        Self::expect(self.service().unregister(UnregisterArgs { app, delete_snapshots }))
    }

    pub fn update_schedule(&self, app: Principal, schedule: Option<Schedule>, retention: Option<Retention>) -> VaultResult<AppInfo> {
        Self::expect(self.service().update_schedule(UpdateScheduleArgs { app, schedule, retention, max_incrementals: None }))
    }

    pub fn app_info(&self, app: Principal) -> VaultResult<AppInfo> {
        Self::expect(self.service().app_info(app))
    }

    pub fn list_apps(&self) -> VaultResult<Vec<AppInfo>> {
        Self::expect(self.service().list_apps())
    }

    pub fn snapshot_now(&self, app: Principal) -> VaultResult<JobInfo> {
        Self::expect(self.service().snapshot_now(app))
    }

    pub fn list_snapshots(&self, app: Principal) -> VaultResult<Vec<SnapshotInfo>> {
        Self::expect(self.service().list_snapshots(app))
    }

    pub fn delete_snapshot(&self, app: Principal, snapshot_id: u64) -> VaultResult<()> {
        Self::expect(self.service().delete_snapshot(SnapshotRef { app, snapshot_id }))
    }

    pub fn restore(&self, app: Principal, snapshot_id: u64, target: Option<Principal>) -> VaultResult<JobInfo> {
        self.restore_with(RestoreArgs { app, snapshot_id, target, allow_layout_change: None, via_upgrade: None })
    }

    pub fn restore_with(&self, args: RestoreArgs) -> VaultResult<JobInfo> {
        Self::expect(self.service().restore(args))
    }

    pub fn job_status(&self, job: u64) -> VaultResult<JobInfo> {
        Self::expect(self.service().job_status(job))
    }

    pub fn cancel_job(&self, job: u64) -> VaultResult<JobInfo> {
        Self::expect(self.service().cancel_job(job))
    }

    pub fn list_jobs(&self, app: Principal) -> VaultResult<Vec<JobInfo>> {
        Self::expect(self.service().list_jobs(app))
    }

    pub fn snapshot_chunk(&self, app: Principal, snapshot_id: u64, index: u32) -> VaultResult<Chunk> {
        Self::expect(self.service().snapshot_chunk(ChunkRef { app, snapshot_id, index }))
    }
}

/// Calls backup endpoint `method` of `app` as its vault; the app's answer (panics on a reject).
pub fn as_vault<A: ArgumentEncoder, T: candid::CandidType + for<'a> serde::Deserialize<'a>>(
    env: &Env,
    app: Principal,
    method: &str,
    args: A,
) -> Result<T, BackupError> {
    env.ic
        .update_candid::<A, (Result<T, BackupError>,)>(app, env.vault, method, args)
        .unwrap_or_else(|e| panic!("{method}: {e}"))
        .0
}

/// An example app's methods (the notes and ledger apps share `seq`, `digest` and `put_blob`).
pub struct AppClient<'a> {
    pub ic: &'a Harness,
    pub app: Principal,
}

impl AppClient<'_> {
    pub fn update<A: ArgumentEncoder, R: for<'b> ArgumentDecoder<'b>>(&self, method: &str, args: A) -> R {
        self.try_update(method, args).unwrap_or_else(|e| panic!("app.{method}: {e}"))
    }

    /// An update that may fail (an injected trap, a stopped app).
    pub fn try_update<A: ArgumentEncoder, R: for<'b> ArgumentDecoder<'b>>(&self, method: &str, args: A) -> Result<R, CallError> {
        self.ic.update_candid(self.app, owner(), method, args)
    }

    pub fn query<A: ArgumentEncoder, R: for<'b> ArgumentDecoder<'b>>(&self, method: &str, args: A) -> R {
        self.ic.query_candid(self.app, owner(), method, args).unwrap_or_else(|e| panic!("app.{method}: {e}"))
    }

    /// The update count and the SHA-256 of the app's state.
    pub fn digest(&self) -> (u64, Vec<u8>) {
        let (seq, hash): (u64, ByteBuf) = self.update("digest", ());
        (seq, hash.into_vec())
    }

    pub fn seq(&self) -> u64 {
        self.query::<_, (u64,)>("seq", ()).0
    }

    /// The app's backup info, as its controller asks for it.
    pub fn backup_info(&self) -> BackupInfo {
        self.query::<_, (Result<BackupInfo, BackupError>,)>(methods::INFO, ()).0.expect("a controller may ask")
    }

    pub fn put_blob(&self, key: u64, size: u64, seed: u8) -> u64 {
        self.update::<_, (u64,)>("put_blob", (key, size, seed)).0
    }
}

/// Updates at the start of every scenario that give the state its bulk.
pub const PREFILL: u64 = 5;

/// Which example app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppKind {
    /// Notes: serde heap state.
    Notes,
    /// Ledger: stable structures.
    Ledger,
}

impl AppKind {
    pub fn wasm(self) -> Vec<u8> {
        match self {
            AppKind::Notes => notes_wasm(),
            AppKind::Ledger => ledger_wasm(),
        }
    }

    /// The update with sequence number `n`, as each scenario applies it: deterministic, so a
    /// state after `n` updates can be rebuilt on another canister. The first [`PREFILL`]
    /// updates store 2.5 MiB each, so snapshots span several chunks.
    pub fn apply(self, app: &AppClient, n: u64) -> u64 {
        self.try_apply(app, n).unwrap_or_else(|e| panic!("update {n}: {e}"))
    }

    /// [`AppKind::apply`], returning the app's refusal instead of panicking; the app's update
    /// count after it.
    pub fn try_apply(self, app: &AppClient, n: u64) -> Result<u64, CallError> {
        let blob = |key: u64, size: u64| app.try_update::<_, (u64,)>("put_blob", (key, size, n as u8)).map(|r| r.0);
        if n < PREFILL {
            return blob(1_000_000 + n, 2_500_000);
        }
        match self {
            AppKind::Notes => match n % 3 {
                0 => app.try_update::<_, (u64, u64)>("add_note", (format!("note {n}"), format!("body {n}"))).map(|r| r.1),
                1 => app.try_update::<_, (bool, u64)>("edit_note", (n / 3, format!("edited {n}"))).map(|r| r.1),
                _ => blob(n % 7, 1000 + n * 10),
            },
            AppKind::Ledger => match n % 3 {
                0 => app.try_update::<_, (u64,)>("mint", (n % 5, 100 + n)).map(|r| r.0),
                1 => match app.try_update::<_, (Result<u64, String>,)>("transfer", (n % 5, (n + 1) % 5, 1u64))?.0 {
                    Ok(seq) => Ok(seq),
                    Err(_) => blob(n, 64),
                },
                _ => blob(n % 7, 1000 + n * 10),
            },
        }
    }
}

/// An embedded IC with a vault controlled by [`owner`]: on subnet 0, and the apps it deploys on
/// subnet 1 if the IC has two (as [`Env::new`]'s has), as a vault serves apps of other subnets.
pub struct Env {
    pub ic: Harness,
    pub vault: Principal,
    pub app_subnet: SubnetId,
}

pub const HOUR: Duration = Duration::from_secs(3600);

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

impl Env {
    pub fn new() -> Self {
        Self::with_harness(Harness::builder().with_subnets(2).build())
    }

    pub fn with_harness(ic: Harness) -> Self {
        Self::with_vault_cycles(ic, 100_000_000_000_000)
    }

    /// An environment whose vault starts with `cycles`.
    pub fn with_vault_cycles(ic: Harness, cycles: u128) -> Self {
        let vault = ic.create_canister_with_cycles(Some(owner()), None, cycles);
        ic.install_canister(vault, vault_wasm(), Encode!().unwrap(), Some(owner()));
        let app_subnet = SubnetId(ic.subnet_count().min(2) - 1);
        Env { ic, vault, app_subnet }
    }

    /// The vault as its owner calls it.
    pub fn vault(&self) -> VaultClient<'_> {
        self.vault_as(owner())
    }

    pub fn vault_as(&self, caller: Principal) -> VaultClient<'_> {
        VaultClient { ic: &self.ic, vault: self.vault, caller }
    }

    pub fn app(&self, app: Principal) -> AppClient<'_> {
        AppClient { ic: &self.ic, app }
    }

    /// An example app controlled by [`owner`], with this vault set (or none).
    pub fn deploy(&self, kind: AppKind, vault: Option<Principal>) -> Principal {
        self.deploy_controlled_by(kind, vault, owner())
    }

    /// An example app controlled by `controller` alone, with this vault set (or none).
    pub fn deploy_controlled_by(&self, kind: AppKind, vault: Option<Principal>, controller: Principal) -> Principal {
        self.deploy_module(kind.wasm(), Encode!(&vault).unwrap(), controller)
    }

    /// A canister on the apps' subnet controlled by `controller`, running `wasm` installed with
    /// `init_arg`.
    pub fn deploy_module(&self, wasm: Vec<u8>, init_arg: Vec<u8>, controller: Principal) -> Principal {
        let app = self.ic.create_canister_on_subnet(Some(controller), None, self.app_subnet);
        self.ic.install_canister(app, wasm, init_arg, Some(controller));
        app
    }

    /// Opens a dump of `app` for `job` as the vault calls `vault_dump_begin` (without a nonce, as
    /// release 0.1.0's vault does), with no job of the vault's own: the dump stays open until it
    /// is ended or its session's TTL passes.
    pub fn open_dump_as_vault(&self, app: Principal, job: u64) -> Result<DumpManifest, BackupError> {
        let begin = DumpBegin { job, nonce: None, chunk_hashes: None, base: None, from_upgrade_save: None, content_index: None };
        let (opened,): (Result<DumpManifest, BackupError>,) =
            self.ic.update_candid(app, self.vault, methods::DUMP_BEGIN, (begin,)).unwrap_or_else(|e| panic!("{}: {e}", methods::DUMP_BEGIN));
        opened
    }

    /// Chunk `index` of `job`'s dump of `app` (opened by [`Env::open_dump_as_vault`]), asked for as
    /// the vault.
    pub fn dump_chunk_as_vault(&self, app: Principal, job: u64, index: u32) -> Result<Chunk, BackupError> {
        let request = ChunkRequest { job, index, nonce: None };
        let (chunk,): (Result<Chunk, BackupError>,) =
            self.ic.update_candid(app, self.vault, methods::DUMP_CHUNK, (request,)).unwrap_or_else(|e| panic!("{}: {e}", methods::DUMP_CHUNK));
        chunk
    }

    /// The bytes of `canister`'s stable memory (as `canister_status` gives them to its
    /// controller, [`owner`]).
    pub fn stable_memory_bytes(&self, canister: Principal) -> u64 {
        let status = self.ic.canister_status(canister, Some(owner())).unwrap_or_else(|e| panic!("canister_status: {e}"));
        u64::try_from(status.memory_metrics.stable_memory_size.0).expect("a stable memory size fits 64 bits")
    }

    /// A canister without the client library running `wasm`, on `subnet`, controlled by [`owner`]
    /// and, if `vault_controls`, by the vault.
    pub fn deploy_without_library(&self, wasm: Vec<u8>, init_arg: Vec<u8>, subnet: SubnetId, vault_controls: bool) -> Principal {
        let controllers = if vault_controls { vec![owner(), self.vault] } else { vec![owner()] };
        let settings = ic_management_canister_types::CanisterSettings { controllers: Some(controllers), ..Default::default() };
        let canister = self.ic.create_canister_on_subnet(Some(owner()), Some(settings), subnet);
        self.ic.install_canister(canister, wasm, init_arg, Some(owner()));
        canister
    }

    /// An example app with this vault set, registered with `schedule` and `retention`.
    pub fn registered(&self, kind: AppKind, schedule: Schedule, retention: Retention) -> Principal {
        let app = self.deploy(kind, Some(self.vault));
        self.vault().register(app, schedule, retention).expect("register");
        app
    }

    /// Runs rounds a second apart for `seconds` seconds.
    pub fn run_for(&self, seconds: u64) {
        for _ in 0..seconds {
            self.ic.advance_time(Duration::from_secs(1));
            self.ic.tick();
        }
    }

    /// Runs rounds, a second apart, until job `id` is in `phase`; panics after `max_rounds`.
    pub fn until_phase(&self, id: u64, phase: JobPhase, max_rounds: u32) {
        for _ in 0..max_rounds {
            if self.vault().job_status(id).expect("job_status").phase == phase {
                return;
            }
            self.ic.advance_time(Duration::from_secs(1));
            self.ic.tick();
        }
        panic!("job {id} was not {phase:?} in {max_rounds} rounds: {:?}", self.vault().job_status(id));
    }

    /// Runs rounds, a second apart, until job `id` finishes; panics after `max_rounds`.
    pub fn finish_job(&self, id: u64, max_rounds: u32) -> JobInfo {
        self.finish_job_as(owner(), id, max_rounds)
    }

    /// [`Env::finish_job`], following the job as `caller` (a controller of its app).
    pub fn finish_job_as(&self, caller: Principal, id: u64, max_rounds: u32) -> JobInfo {
        let vault = self.vault_as(caller);
        for _ in 0..max_rounds {
            let job = vault.job_status(id).expect("job_status");
            if matches!(job.phase, JobPhase::Succeeded | JobPhase::Failed) {
                return job;
            }
            self.ic.advance_time(Duration::from_secs(1));
            self.ic.tick();
        }
        panic!("job {id} did not finish in {max_rounds} rounds: {:?}", vault.job_status(id));
    }

    /// Runs rounds, a second apart, until job `id` finishes, calling `serve(n)` (`n` from 0)
    /// before each round while the job stages (is `Starting` or `Transferring`), as an app goes on
    /// serving its users while the vault moves chunks into it; panics after `max_rounds`.
    pub fn finish_job_serving(&self, id: u64, max_rounds: u32, mut serve: impl FnMut(u64)) -> Served {
        let (started, rounds) = (std::time::Instant::now(), self.ic.rounds());
        let (mut calls, mut while_transferring, mut staged) = (0, 0, None);
        for _ in 0..max_rounds {
            let job = self.vault().job_status(id).expect("job_status");
            match job.phase {
                JobPhase::Starting | JobPhase::Transferring => {
                    serve(calls);
                    calls += 1;
                    while_transferring += u64::from(job.phase == JobPhase::Transferring);
                }
                _ => {
                    staged.get_or_insert((started.elapsed(), self.ic.rounds() - rounds));
                }
            }
            if let (JobPhase::Succeeded | JobPhase::Failed, Some((staging_wall, staging_rounds))) = (job.phase, staged) {
                return Served { job, calls, while_transferring, staging_wall, staging_rounds };
            }
            self.ic.advance_time(Duration::from_secs(1));
            self.ic.tick();
        }
        panic!("job {id} did not finish in {max_rounds} rounds: {:?}", self.vault().job_status(id));
    }

    /// Takes a snapshot now and waits for it; returns the finished job.
    pub fn snapshot(&self, app: Principal) -> JobInfo {
        let job = self.vault().snapshot_now(app).expect("snapshot_now");
        self.finish_job(job.id, 2_000)
    }

    /// Restores and waits; returns the finished job.
    pub fn restore(&self, app: Principal, snapshot: u64, target: Option<Principal>) -> JobInfo {
        let job = self.vault().restore(app, snapshot, target).expect("restore");
        self.finish_job(job.id, 2_000)
    }

    /// What a refused request could have changed: registrations, snapshots, which jobs exist,
    /// and the apps' states. (A running job's own progress is not a change a request made, nor
    /// are the bytes and cycles it uses.)
    pub fn observable(&self, apps: &[Principal]) -> impl PartialEq + std::fmt::Debug + use<> {
        let vault = self.vault();
        let without_usage = |info: AppInfo| AppInfo { stored_bytes: None, cycles_today: None, ..info };
        let per_app: Vec<_> = apps
            .iter()
            .map(|&app| {
                let jobs: Vec<u64> = vault.list_jobs(app).map(|j| j.iter().map(|j| j.id).collect()).unwrap_or_default();
                (vault.app_info(app).ok().map(without_usage), vault.list_snapshots(app).ok(), jobs, self.app(app).digest())
            })
            .collect();
        (per_app, vault.list_apps().unwrap().into_iter().map(without_usage).collect::<Vec<_>>())
    }

    /// The digest a fresh canister of `kind` has after the first `n` scenario updates.
    pub fn reference_digest(&self, kind: AppKind, n: u64) -> Vec<u8> {
        let reference = self.deploy(kind, None);
        let app = self.app(reference);
        for i in 0..n {
            kind.apply(&app, i);
        }
        app.digest().1
    }
}

/// What [`Env::finish_job_serving`] saw of a job.
#[derive(Clone, Debug)]
pub struct Served {
    /// The finished job.
    pub job: JobInfo,
    /// Calls of `serve`, and those of them made while the job moved chunks (`Transferring`).
    pub calls: u64,
    pub while_transferring: u64,
    /// Wall time and rounds from the call until the job was first seen past its staging
    /// (`Finishing`, or finished), the calls of `serve` included.
    pub staging_wall: Duration,
    pub staging_rounds: u64,
}

pub fn schedule(hours: u64) -> Schedule {
    Schedule { interval_seconds: hours * 3600 }
}

pub fn manual() -> Schedule {
    Schedule { interval_seconds: 0 }
}

pub fn keep(last: u32) -> Retention {
    Retention { keep_last: last, keep_daily: 0, keep_weekly: 0 }
}

pub fn hostile_wasm() -> Vec<u8> {
    ic_harness::build::canister_wasm("harness-test-canisters", "hostile")
}

/// The hostile test app's own methods: it serves the backup protocol by hand and lies as told.
pub struct HostileClient<'a> {
    pub ic: &'a Harness,
    pub app: Principal,
}

impl HostileClient<'_> {
    /// Makes the app lie as `name` says (`honest` to stop); panics on a name it does not know.
    pub fn set_lie(&self, name: &str) {
        let (set,): (Result<(), String>,) =
            self.ic.update_candid(self.app, owner(), "set_lie", (name,)).unwrap_or_else(|e| panic!("hostile.set_lie: {e}"));
        set.unwrap_or_else(|e| panic!("hostile.set_lie: {e}"));
    }

    /// The manifest hash of the image the app holds now.
    pub fn image_sha256(&self) -> vault_api::Sha256 {
        let (sha256,) = self.ic.query_candid(self.app, owner(), "image_sha256", ()).unwrap_or_else(|e| panic!("hostile.image_sha256: {e}"));
        sha256
    }

    /// How many restores the app has committed.
    pub fn commits(&self) -> u64 {
        let (commits,) = self.ic.query_candid(self.app, owner(), "commits", ()).unwrap_or_else(|e| panic!("hostile.commits: {e}"));
        commits
    }

    /// The names `set_lie` takes, `honest` among them, as the app lists them when it refuses a
    /// name it does not know.
    pub fn lies(&self) -> Vec<String> {
        let (set,): (Result<(), String>,) =
            self.ic.update_candid(self.app, owner(), "set_lie", ("",)).unwrap_or_else(|e| panic!("hostile.set_lie: {e}"));
        let refusal = set.expect_err("no lie has an empty name");
        let (_, names) = refusal.rsplit_once("the lies are ").unwrap_or_else(|| panic!("hostile.set_lie listed no lies: {refusal}"));
        names.split(", ").map(String::from).collect()
    }
}

impl Env {
    /// A hostile app controlled by [`owner`], honest until told to lie. It tells any caller that
    /// it is its vault, so it registers with any vault.
    pub fn deploy_hostile(&self) -> Principal {
        let app = self.ic.create_canister_with_settings(Some(owner()), None);
        self.ic.install_canister(app, hostile_wasm(), Encode!().unwrap(), Some(owner()));
        app
    }

    pub fn hostile(&self, app: Principal) -> HostileClient<'_> {
        HostileClient { ic: &self.ic, app }
    }
}

/// What the harness's probe canister answers when asked to forward a call (its `call`).
#[derive(candid::CandidType, candid::Deserialize, Debug)]
pub enum Forwarded {
    Reply(serde_bytes::ByteBuf),
    Reject { code: u32, message: String },
    PerformFailed,
}
