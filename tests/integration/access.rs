//! Access, as a matrix: every method of the vault's and the client library's `.did` files
//! (read from the files, so a new method fails here until it has a row), called with a
//! meaningful argument as each role, answers as [`VAULT_MATRIX`] and [`APP_MATRIX`] say, and a
//! refused call changes nothing. The README's "Security model" shows the same tables.

use std::cell::Cell;

use candid::{Principal, encode_args, encode_one};
use ic_harness::{CallMatcher, IcBackend, RejectCode};
use serde_bytes::ByteBuf;
use vault_api::{ContentHash, Sha256};
use vault_api::manifest::image_hash;
use vault_api::protocol::{
    BackupError, BackupInfo, ChunkRequest, DumpBegin, DumpManifest, JobRef, RestoreBegin, RestoreChunk, StateKind, methods,
};
use vault_api::service::methods as vault_methods;
use vault_api::service::{
    AppInfo, AppUsage, ChunkRef, ImportArgs, ImportChunk, Limits, ManifestPage, RegisterArgs, Registration, RestoreArgs, SetAllowedArgs, SnapshotInfo,
    RegistrantInfo, SnapshotRef, SuspendArgs, Trigger, UnregisterArgs, UpdateScheduleArgs, VaultError,
};
use vault_tests::interface::{Answer, Interface, workspace_file};
use vault_tests::*;

/// Who calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Anonymous,
    /// On the allow-list, controls its own registered app, not the app the calls are about.
    Stranger,
    /// The stranger's registered app, calling as itself.
    StrangersApp,
    /// Controlled the app until `set_controllers` removed it, and the vault has seen that.
    FormerController,
    /// Controls the app (and registered it): not an administrator.
    Controller,
    /// Named by `set_administrators`; controls neither the vault nor the app.
    Administrator,
    /// Controls the vault (and so administers it), not the app.
    VaultController,
    /// The vault the app has set: a column of the client library's matrix only.
    Vault,
}

impl Role {
    fn heading(self) -> &'static str {
        match self {
            Role::Anonymous => "anonymous",
            Role::Stranger => "stranger",
            Role::StrangersApp => "stranger's app",
            Role::FormerController => "former controller",
            Role::Controller => "controller",
            Role::Administrator => "administrator",
            Role::VaultController => "vault controller",
            Role::Vault => "the vault",
        }
    }
}

const VAULT_ROLES: [Role; 7] = [
    Role::Anonymous,
    Role::Stranger,
    Role::StrangersApp,
    Role::FormerController,
    Role::Controller,
    Role::Administrator,
    Role::VaultController,
];

const APP_ROLES: [Role; 8] = [
    Role::Anonymous,
    Role::Stranger,
    Role::StrangersApp,
    Role::FormerController,
    Role::Controller,
    Role::Administrator,
    Role::VaultController,
    Role::Vault,
];

// What a call answers, as the matrices write it.
/// `Ok`.
const OK: &str = "✓";
/// Rejected by `canister_inspect_message`, before the vault pays for the message.
const INGRESS: &str = "ingress";
/// `Err(Anonymous)`.
const ANON: &str = "anon";
/// `Err(NotAController)`: of the app (of the vault, for `set_administrators`).
const CTL: &str = "ctl";
/// `Err(NotAnAdministrator)`.
const ADMIN: &str = "admin";
/// `Err(RegistrationClosed)`.
const CLOSED: &str = "closed";
/// `Err(NotTheVault)`.
const VAULT: &str = "vault";

/// The vault's methods, as each of [`VAULT_ROLES`] calls them about the controller's app
/// (`register`: about another app of the controller's, not registered).
const VAULT_MATRIX: &[(&str, [&str; 7])] = &[
    (vault_methods::ADMIN_INFO, [ANON, ADMIN, ADMIN, ADMIN, ADMIN, OK, OK]),
    (vault_methods::APP_INFO, [ANON, CTL, CTL, CTL, OK, CTL, CTL]),
    (vault_methods::CANCEL_JOB, [INGRESS, CTL, CTL, CTL, OK, CTL, CTL]),
    (vault_methods::DELETE_SNAPSHOT, [INGRESS, CTL, CTL, CTL, OK, CTL, CTL]),
    (vault_methods::EVICT_APP, [INGRESS, ADMIN, ADMIN, ADMIN, ADMIN, OK, OK]),
    (vault_methods::IMPORT_ABORT, [INGRESS, INGRESS, CTL, INGRESS, OK, INGRESS, INGRESS]),
    (vault_methods::IMPORT_BEGIN, [INGRESS, CTL, CTL, CTL, OK, CTL, CTL]),
    (vault_methods::IMPORT_CHUNK, [INGRESS, INGRESS, CTL, INGRESS, OK, INGRESS, INGRESS]),
    (vault_methods::IMPORT_COMMIT, [INGRESS, INGRESS, CTL, INGRESS, OK, INGRESS, INGRESS]),
    (vault_methods::JOB_STATUS, [ANON, CTL, CTL, CTL, OK, CTL, CTL]),
    (vault_methods::LIST_APPS, [ANON, OK, OK, OK, OK, OK, OK]),
    (vault_methods::LIST_JOBS, [ANON, CTL, CTL, CTL, OK, CTL, CTL]),
    (vault_methods::LIST_REGISTRANTS, [ANON, ADMIN, ADMIN, ADMIN, ADMIN, OK, OK]),
    (vault_methods::LIST_SNAPSHOTS, [ANON, CTL, CTL, CTL, OK, CTL, CTL]),
    (vault_methods::REFRESH_ACCESS, [INGRESS, CTL, CTL, CTL, OK, CTL, CTL]),
    (vault_methods::REGISTER, [INGRESS, CTL, CLOSED, CLOSED, OK, CTL, CTL]),
    (vault_methods::RESTORE, [INGRESS, CTL, CTL, CTL, OK, CTL, CTL]),
    (vault_methods::RESUME_APP, [INGRESS, ADMIN, ADMIN, ADMIN, ADMIN, OK, OK]),
    (vault_methods::SET_ADMINISTRATORS, [INGRESS, CTL, CTL, CTL, CTL, CTL, OK]),
    (vault_methods::SET_ALLOWED, [INGRESS, ADMIN, ADMIN, ADMIN, ADMIN, OK, OK]),
    (vault_methods::SET_LIMITS, [INGRESS, ADMIN, ADMIN, ADMIN, ADMIN, OK, OK]),
    (vault_methods::SET_REGISTRATION, [INGRESS, ADMIN, ADMIN, ADMIN, ADMIN, OK, OK]),
    (vault_methods::SNAPSHOT_CHUNK, [ANON, CTL, CTL, CTL, OK, CTL, CTL]),
    (vault_methods::SNAPSHOT_MANIFEST, [ANON, CTL, CTL, CTL, OK, CTL, CTL]),
    (vault_methods::SNAPSHOT_NOW, [INGRESS, CTL, CTL, CTL, OK, CTL, CTL]),
    (vault_methods::SUSPEND_APP, [INGRESS, ADMIN, ADMIN, ADMIN, ADMIN, OK, OK]),
    (vault_methods::UNREGISTER, [INGRESS, CTL, CTL, CTL, OK, CTL, CTL]),
    (vault_methods::UPDATE_SCHEDULE, [INGRESS, CTL, CTL, CTL, OK, CTL, CTL]),
];

/// The client library's endpoints of the controller's app, as each of [`APP_ROLES`] calls them.
const APP_MATRIX: &[(&str, [&str; 8])] = &[
    (methods::INFO, [VAULT, VAULT, VAULT, VAULT, OK, VAULT, VAULT, OK]),
    (methods::DUMP_BEGIN, [VAULT, VAULT, VAULT, VAULT, VAULT, VAULT, VAULT, OK]),
    (methods::DUMP_CHUNK, [VAULT, VAULT, VAULT, VAULT, VAULT, VAULT, VAULT, OK]),
    (methods::DUMP_END, [VAULT, VAULT, VAULT, VAULT, VAULT, VAULT, VAULT, OK]),
    (methods::RESTORE_ABORT, [VAULT, VAULT, VAULT, VAULT, VAULT, VAULT, VAULT, OK]),
    (methods::RESTORE_BEGIN, [VAULT, VAULT, VAULT, VAULT, VAULT, VAULT, VAULT, OK]),
    (methods::RESTORE_CHUNK, [VAULT, VAULT, VAULT, VAULT, VAULT, VAULT, VAULT, OK]),
    (methods::RESTORE_COMMIT, [VAULT, VAULT, VAULT, VAULT, VAULT, VAULT, VAULT, OK]),
    (methods::SET_VAULT, [CTL, CTL, CTL, CTL, OK, CTL, CTL, CTL]),
];

/// The job the protocol calls of [`APP_MATRIX`] name: none of the vault's.
const PROTOCOL_JOB: u64 = 1 << 40;

fn controller() -> Principal {
    Principal::from_slice(&[0xc0; 29])
}

fn former_controller() -> Principal {
    Principal::from_slice(&[0xf0; 29])
}

fn administrator() -> Principal {
    Principal::from_slice(&[0xad; 29])
}

/// How a call's answer is written in the matrices.
fn written(answer: Answer) -> String {
    match answer {
        Answer::Ok => OK.into(),
        Answer::Err(error) => match error.as_str() {
            "Anonymous" => ANON.into(),
            "NotAController" => CTL.into(),
            "NotAnAdministrator" => ADMIN.into(),
            "RegistrationClosed" => CLOSED.into(),
            "NotTheVault" => VAULT.into(),
            _ => format!("Err({error})"),
        },
    }
}

/// One vault, the app the calls are about, and a principal or canister for each role.
struct Fixture {
    env: Env,
    vault: Interface,
    backup: Interface,
    /// The controller's registered app: what the calls are about.
    app: Principal,
    /// Another app of the controller's, with the vault set, not registered: what `register` asks for.
    unregistered: Principal,
    /// Registered by the stranger, then reinstalled with a module that forwards calls.
    strangers_app: Principal,
    /// An import into `app` with its one chunk stored, not committed.
    import: Cell<u64>,
    /// Imports begun so far: each imports other bytes.
    imports: Cell<u8>,
}

fn answer<T>(reply: VaultReply<T>) -> VaultResult<T> {
    reply.unwrap_or_else(|e| panic!("vault: {e}"))
}

impl Fixture {
    fn new() -> Fixture {
        let env = Env::new();
        answer(env.vault().service().set_administrators(vec![administrator()])).unwrap();
        answer(env.vault().service().set_allowed(SetAllowedArgs { principals: vec![controller(), stranger()], allowed: true })).unwrap();
        let app = env.deploy_controlled_by(AppKind::Notes, Some(env.vault), controller());
        env.ic.set_controllers(app, Some(controller()), vec![controller(), former_controller()]).unwrap();
        env.vault_as(controller()).register(app, manual(), keep(10)).expect("the controller registers its app");
        AppKind::Notes.apply(&env.app(app), PREFILL);
        let unregistered = env.deploy_controlled_by(AppKind::Notes, Some(env.vault), controller());
        let strangers_app = env.deploy_controlled_by(AppKind::Notes, Some(env.vault), stranger());
        env.vault_as(stranger()).register(strangers_app, manual(), keep(1)).expect("the stranger is allowed");
        let forwarder = ic_harness::build::canister_wasm("harness-test-canisters", "probe");
        env.ic.reinstall_canister(strangers_app, forwarder, encode_args(()).unwrap(), Some(stranger())).unwrap();
        let fixture = Fixture {
            env,
            vault: Interface::vault(),
            backup: Interface::backup(),
            app,
            unregistered,
            strangers_app,
            import: Cell::new(0),
            imports: Cell::new(0),
        };
        fixture.snapshot();
        fixture.open_import();
        fixture
    }

    fn principal(&self, role: Role) -> Principal {
        match role {
            Role::Anonymous => Principal::anonymous(),
            Role::Stranger => stranger(),
            Role::StrangersApp => self.strangers_app,
            Role::FormerController => former_controller(),
            Role::Controller => controller(),
            Role::Administrator => administrator(),
            Role::VaultController => owner(),
            Role::Vault => self.env.vault,
        }
    }

    fn as_controller(&self) -> VaultClient<'_> {
        self.env.vault_as(controller())
    }

    /// Takes a snapshot of the app and waits for it.
    fn snapshot(&self) {
        let job = self.as_controller().snapshot_now(self.app).expect("snapshot_now");
        assert_eq!(self.env.finish_job_as(controller(), job.id, 500).error, None, "the snapshot");
    }

    /// The app's newest snapshot the vault took.
    fn snapshot_info(&self) -> SnapshotInfo {
        let snapshots = self.as_controller().list_snapshots(self.app).expect("list_snapshots");
        snapshots.into_iter().rev().find(|s| s.trigger != Trigger::Import).expect("a snapshot")
    }

    fn latest_job(&self) -> u64 {
        self.as_controller().list_jobs(self.app).expect("list_jobs")[0].id
    }

    fn import_data(&self) -> Vec<u8> {
        vec![self.imports.get(); 1000]
    }

    fn import_args(&self) -> ImportArgs {
        let data = self.import_data();
        ImportArgs {
            app: self.app,
            state_kind: StateKind::Serde,
            size: data.len() as u64,
            chunk_size: data.len() as u64,
            sha256: image_hash(ContentHash::Sha256, &data, data.len() as u64),
            taken_at_nanos: 0,
            module_hash: None,
            state_layout: None,
            content_hash: None,
        }
    }

    fn import_chunk(&self) -> ImportChunk {
        let data = self.import_data();
        ImportChunk { app: self.app, snapshot_id: self.import.get(), index: 0, sha256: Sha256::of(&data), data: ByteBuf::from(data) }
    }

    /// Begins an import of new bytes and stores its chunk.
    fn open_import(&self) {
        self.imports.set(self.imports.get() + 1);
        let begun = answer(self.as_controller().service().import_begin(self.import_args())).expect("import_begin");
        self.import.set(begun.snapshot_id);
        answer(self.as_controller().service().import_chunk(self.import_chunk())).expect("import_chunk");
    }

    fn import_ref(&self) -> SnapshotRef {
        SnapshotRef { app: self.app, snapshot_id: self.import.get() }
    }

    fn register_app(&self) {
        self.as_controller().register(self.app, manual(), keep(10)).expect("register");
    }

    fn running_job(&self) -> Option<u64> {
        self.as_controller().app_info(self.app).expect("app_info").running_job
    }

    /// A vault method's argument, meaningful for the rightful caller.
    fn vault_argument(&self, method: &str) -> Option<Vec<u8>> {
        let app = self.app;
        let snapshot = || self.snapshot_info().id;
        Some(
            match method {
                vault_methods::ADMIN_INFO | vault_methods::LIST_APPS | vault_methods::LIST_REGISTRANTS => encode_args(()),
                vault_methods::APP_INFO
                | vault_methods::LIST_JOBS
                | vault_methods::LIST_SNAPSHOTS
                | vault_methods::REFRESH_ACCESS
                | vault_methods::SNAPSHOT_NOW
                | vault_methods::EVICT_APP
                | vault_methods::RESUME_APP => encode_one(app),
                vault_methods::CANCEL_JOB => encode_one(self.running_job().expect("a running job")),
                vault_methods::JOB_STATUS => encode_one(self.latest_job()),
                vault_methods::DELETE_SNAPSHOT => encode_one(SnapshotRef { app, snapshot_id: snapshot() }),
                vault_methods::IMPORT_BEGIN => encode_one(self.import_args()),
                vault_methods::IMPORT_CHUNK => encode_one(self.import_chunk()),
                vault_methods::IMPORT_COMMIT | vault_methods::IMPORT_ABORT => encode_one(self.import_ref()),
                vault_methods::REGISTER => encode_one(RegisterArgs { app: self.unregistered, schedule: manual(), retention: keep(3), max_incrementals: None, capture: None }),
                vault_methods::RESTORE => encode_one(RestoreArgs { app, snapshot_id: snapshot(), target: None, allow_layout_change: None, via_upgrade: None }),
                vault_methods::SET_ADMINISTRATORS => encode_one(vec![administrator()]),
                vault_methods::SET_ALLOWED => encode_one(SetAllowedArgs { principals: vec![controller(), stranger()], allowed: true }),
                vault_methods::SET_LIMITS => encode_one(Limits::default()),
                vault_methods::SET_REGISTRATION => encode_one(Registration::AllowList),
                vault_methods::SNAPSHOT_CHUNK => encode_one(ChunkRef { app, snapshot_id: snapshot(), index: 0 }),
                vault_methods::SNAPSHOT_MANIFEST => encode_one(ManifestPage { app, snapshot_id: snapshot(), start: 0, count: 10 }),
                vault_methods::SUSPEND_APP => encode_one(SuspendArgs { app, reason: "access matrix".into() }),
                vault_methods::UNREGISTER => encode_one(UnregisterArgs { app, delete_snapshots: false }),
                vault_methods::UPDATE_SCHEDULE => {
                    encode_one(UpdateScheduleArgs { app, schedule: Some(manual()), retention: Some(keep(10)), max_incrementals: None })
                }
                _ => return None,
            }
            .expect("an argument encodes"),
        )
    }

    /// What a call of the vault's `method` needs in place first.
    fn prepare_vault_call(&self, method: &str) {
        match method {
            // A snapshot that stays running: the app's dump is refused as busy.
            vault_methods::CANCEL_JOB => {
                let busy = CallMatcher::to(self.app).method(methods::DUMP_BEGIN);
                self.env.ic.reject_calls(busy, RejectCode::SysTransient, "busy", None);
                self.as_controller().snapshot_now(self.app).expect("snapshot_now");
            }
            vault_methods::JOB_STATUS if self.as_controller().list_jobs(self.app).expect("list_jobs").is_empty() => self.snapshot(),
            vault_methods::RESUME_APP => {
                answer(self.env.vault().service().suspend_app(SuspendArgs { app: self.app, reason: "to resume".into() })).unwrap();
            }
            _ => {}
        }
    }

    /// Puts back what a call of the vault's `method` changed (or its preparation did).
    fn put_back_vault_call(&self, method: &str, went_through: bool) {
        match method {
            vault_methods::CANCEL_JOB => {
                if let Some(job) = self.running_job() {
                    self.as_controller().cancel_job(job).expect("cancel_job");
                }
                self.env.ic.clear_faults();
            }
            vault_methods::DELETE_SNAPSHOT if went_through => self.snapshot(),
            vault_methods::EVICT_APP | vault_methods::UNREGISTER if went_through => self.register_app(),
            vault_methods::IMPORT_ABORT if went_through => self.open_import(),
            vault_methods::IMPORT_COMMIT if went_through => {
                self.as_controller().delete_snapshot(self.app, self.import.get()).expect("delete the imported snapshot");
                self.open_import();
            }
            vault_methods::REGISTER if went_through => self.as_controller().unregister(self.unregistered, false).expect("unregister"),
            vault_methods::RESTORE | vault_methods::SNAPSHOT_NOW if went_through => {
                let job = self.latest_job();
                assert_eq!(self.env.finish_job_as(controller(), job, 500).error, None, "{method}'s job");
            }
            vault_methods::RESUME_APP | vault_methods::SUSPEND_APP => answer(self.env.vault().service().resume_app(self.app)).unwrap(),
            _ => {}
        }
    }

    /// The app's newest snapshot as the vault restores it: the manifest, and its chunks.
    fn restore_of_snapshot(&self) -> (RestoreBegin, Vec<RestoreChunk>) {
        let snapshot = self.snapshot_info();
        let begin = RestoreBegin {
            job: PROTOCOL_JOB,
            state_kind: snapshot.state_kind,
            size: snapshot.size,
            chunk_size: snapshot.chunk_size,
            sha256: snapshot.sha256,
            nonce: None,
            content_hash: snapshot.content_hash,
            via_upgrade: None,
        };
        let chunks = (0..snapshot.chunks)
            .map(|index| {
                let chunk = self.as_controller().snapshot_chunk(self.app, snapshot.id, index).expect("snapshot_chunk");
                RestoreChunk { job: PROTOCOL_JOB, index, sha256: chunk.sha256, data: chunk.data, nonce: None }
            })
            .collect();
        (begin, chunks)
    }

    /// A call of the app's protocol as the vault makes it.
    fn as_vault<T: for<'a> candid::Deserialize<'a> + candid::CandidType>(
        &self,
        method: &str,
        arg: impl candid::utils::ArgumentEncoder,
    ) -> T {
        let (answer,): (T,) = self.env.ic.update_candid(self.app, self.env.vault, method, arg).unwrap_or_else(|e| panic!("{method}: {e}"));
        answer
    }

    /// A client-library endpoint's argument, meaningful for the rightful caller: the app's own
    /// newest snapshot is what a restore stages and commits.
    fn app_argument(&self, method: &str) -> Option<Vec<u8>> {
        let job = JobRef { job: PROTOCOL_JOB, nonce: None };
        Some(
            match method {
                methods::INFO => encode_args(()),
                methods::DUMP_BEGIN => encode_one(DumpBegin { job: PROTOCOL_JOB, nonce: None, chunk_hashes: None, base: None, from_upgrade_save: None, content_index: None }),
                methods::DUMP_CHUNK => encode_one(ChunkRequest { job: PROTOCOL_JOB, index: 0, nonce: None }),
                methods::DUMP_END | methods::RESTORE_ABORT | methods::RESTORE_COMMIT => encode_one(job),
                methods::RESTORE_BEGIN => encode_one(self.restore_of_snapshot().0),
                methods::RESTORE_CHUNK => encode_one(&self.restore_of_snapshot().1[0]),
                methods::SET_VAULT => encode_one(self.env.vault),
                _ => return None,
            }
            .expect("an argument encodes"),
        )
    }

    fn prepare_app_call(&self, method: &str) {
        match method {
            methods::DUMP_CHUNK | methods::DUMP_END => {
                let opened: Result<DumpManifest, BackupError> = self.as_vault(methods::DUMP_BEGIN, (DumpBegin { job: PROTOCOL_JOB, nonce: None, chunk_hashes: None, base: None, from_upgrade_save: None, content_index: None },));
                opened.expect("the dump opens");
            }
            methods::RESTORE_CHUNK | methods::RESTORE_ABORT | methods::RESTORE_COMMIT => {
                let (begin, chunks) = self.restore_of_snapshot();
                let begun: Result<(), BackupError> = self.as_vault(methods::RESTORE_BEGIN, (begin,));
                begun.expect("the restore begins");
                if method == methods::RESTORE_COMMIT {
                    for chunk in chunks {
                        let staged: Result<(), BackupError> = self.as_vault(methods::RESTORE_CHUNK, (chunk,));
                        staged.expect("the chunk is staged");
                    }
                }
            }
            _ => {}
        }
    }

    fn put_back_app_call(&self, method: &str) {
        match method {
            methods::DUMP_BEGIN | methods::DUMP_CHUNK | methods::DUMP_END => {
                let ended: Result<(), BackupError> = self.as_vault(methods::DUMP_END, (JobRef { job: PROTOCOL_JOB, nonce: None },));
                ended.expect("the dump ends");
            }
            methods::RESTORE_BEGIN | methods::RESTORE_CHUNK | methods::RESTORE_ABORT | methods::RESTORE_COMMIT => {
                let aborted: Result<(), BackupError> = self.as_vault(methods::RESTORE_ABORT, (JobRef { job: PROTOCOL_JOB, nonce: None },));
                aborted.expect("the restore aborts");
            }
            _ => {}
        }
    }

    /// `method` of `canister` called by the stranger's app: the reply, or the reject's text.
    fn forwarded(&self, canister: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, String> {
        let request = encode_args((canister, method.to_string(), ByteBuf::from(arg), None::<u32>, 0u128)).unwrap();
        let outcome = self.env.ic.update_call(self.strangers_app, stranger(), "call", request).expect("the stranger's app forwards");
        match candid::decode_one::<Forwarded>(&outcome).expect("a forwarding outcome") {
            Forwarded::Reply(bytes) => Ok(bytes.into_vec()),
            Forwarded::Reject { code, message } => Err(format!("{code}: {message}")),
            Forwarded::PerformFailed => Err("the call was not made".into()),
        }
    }

    /// What `role` got from `method` of `canister`, as the matrices write it.
    fn call(&self, interface: &Interface, canister: Principal, role: Role, method: &str, arg: Vec<u8>) -> String {
        let func = interface.method(method).expect("a method of the interface");
        let reply = match role {
            Role::StrangersApp => self.forwarded(canister, method, arg),
            _ if Interface::is_query(func) => {
                self.env.ic.query_call(canister, self.principal(role), method, arg).map_err(|r| r.to_string())
            }
            _ => self.env.ic.update_call(canister, self.principal(role), method, arg).map_err(|r| r.to_string()),
        };
        match reply {
            Err(rejected) if rejected.contains("refused before induction") => INGRESS.into(),
            Err(rejected) => format!("rejected: {rejected}"),
            Ok(bytes) => written(interface.answer(method, &bytes).unwrap_or_else(|e| panic!("{e}"))),
        }
    }

    /// Everything a refused call could have changed: the app's registration, snapshots, jobs
    /// and suspension, the vault's administration, and the app's state and backup setup (the
    /// cycles a running job spends meanwhile are its own, not the call's).
    fn observed(&self) -> impl PartialEq + std::fmt::Debug + use<> {
        let controller = self.as_controller();
        let app_info = |app| controller.app_info(app).map(|info| AppInfo { cycles_today: None, ..info });
        let registrants = answer(self.env.vault().service().list_registrants()).map(|registrants| {
            let unspent = |apps: Vec<AppUsage>| apps.into_iter().map(|a| AppUsage { cycles_today: 0, ..a }).collect();
            registrants.into_iter().map(|r| RegistrantInfo { apps: unspent(r.apps), ..r }).collect::<Vec<_>>()
        });
        let jobs = controller.list_jobs(self.app).map(|jobs| jobs.iter().map(|j| j.id).collect::<Vec<_>>());
        let admin = answer(self.env.vault().service().admin_info()).map(|i| (i.administrators, i.registration, i.allowed, i.limits));
        let (info,): (Result<BackupInfo, BackupError>,) =
            self.env.ic.query_candid(self.app, self.env.vault, methods::INFO, ()).expect("the app answers");
        (
            (app_info(self.app), controller.list_snapshots(self.app), jobs, app_info(self.unregistered)),
            (admin, registrants),
            (self.env.app(self.app).digest(), info),
        )
    }
}

/// Calls every method of `interface` as each of `roles`, in the `.did` file's order; returns the
/// matrix of answers. A method without an argument builder fails.
fn answers<const N: usize>(
    f: &Fixture,
    interface: &Interface,
    canister: Principal,
    roles: [Role; N],
    argument: impl Fn(&str) -> Option<Vec<u8>>,
    prepare: impl Fn(&str),
    put_back: impl Fn(&str, bool),
) -> Vec<(String, [String; N])> {
    interface
        .methods
        .iter()
        .map(|(method, _)| {
            let row = roles.map(|role| {
                prepare(method);
                let arg = argument(method).unwrap_or_else(|| panic!("{method} has no argument in the access matrix: add one"));
                let before = f.observed();
                let got = f.call(interface, canister, role, method, arg);
                if got != OK {
                    assert_eq!(f.observed(), before, "{method} refused to the {} changed nothing", role.heading());
                }
                put_back(method, got == OK);
                got
            });
            (method.clone(), row)
        })
        .collect()
}

/// The expected matrix, checked against the interface: a row for every method, and no other.
fn expected<const N: usize>(interface: &Interface, matrix: &[(&str, [&str; N])]) -> Vec<(String, [String; N])> {
    let declared: Vec<&str> = interface.methods.iter().map(|(m, _)| m.as_str()).collect();
    let missing: Vec<_> = declared.iter().filter(|m| !matrix.iter().any(|(r, _)| r == *m)).collect();
    assert!(missing.is_empty(), "methods without a row in the access matrix: {missing:?}");
    let unknown: Vec<_> = matrix.iter().map(|(r, _)| r).filter(|r| !declared.contains(r)).collect();
    assert!(unknown.is_empty(), "rows of the access matrix for no method: {unknown:?}");
    declared
        .iter()
        .map(|m| {
            let (_, cells) = matrix.iter().find(|(r, _)| r == m).expect("checked above");
            (m.to_string(), cells.map(String::from))
        })
        .collect()
}

/// A matrix as a markdown table, as the README shows it.
fn table<const N: usize>(service: &str, interface: &Interface, roles: [Role; N], rows: &[(String, [String; N])]) -> String {
    let mut out = format!("| `{service}` | | {} |\n", roles.map(Role::heading).join(" | "));
    out += &format!("|---|---|{}\n", "---|".repeat(N));
    for (method, cells) in rows {
        let kind = if Interface::is_query(interface.method(method).expect("a method")) { "query" } else { "update" };
        out += &format!("| `{method}` | {kind} | {} |\n", cells.join(" | "));
    }
    out
}

#[test]
fn every_method_answers_each_role_as_the_matrix_says() {
    let f = Fixture::new();
    let vault = f.env.vault;

    // Removed from the app's controllers, the former controller still reads what the vault
    // keeps of the app, and still adds to the app's open import, until an update about the app
    // (here `refresh_access`; or the watchdog's sweep) shows the vault the change.
    f.env.ic.set_controllers(f.app, Some(controller()), vec![controller()]).unwrap();
    let stale = [
        vault_methods::APP_INFO,
        vault_methods::LIST_SNAPSHOTS,
        vault_methods::LIST_JOBS,
        vault_methods::JOB_STATUS,
        vault_methods::SNAPSHOT_CHUNK,
        vault_methods::SNAPSHOT_MANIFEST,
        vault_methods::IMPORT_CHUNK,
    ];
    for method in stale {
        let arg = f.vault_argument(method).expect("an argument");
        assert_eq!(f.call(&f.vault, vault, Role::FormerController, method, arg), OK, "{method}, before the vault saw the change");
    }
    let listed = |role: Role| f.env.vault_as(f.principal(role)).list_apps().map(|apps| apps.iter().map(|a| a.app).collect::<Vec<_>>());
    assert_eq!(listed(Role::FormerController), Ok(vec![f.app]));
    answer(f.as_controller().service().refresh_access(f.app)).expect("the controller refreshes");
    assert_eq!(listed(Role::FormerController), Ok(vec![]));

    let vault_answers = answers(
        &f,
        &f.vault,
        vault,
        VAULT_ROLES,
        |m| f.vault_argument(m),
        |m| f.prepare_vault_call(m),
        |m, ok| f.put_back_vault_call(m, ok),
    );
    let app_digest = f.env.app(f.app).digest();
    let app_answers =
        answers(&f, &f.backup, f.app, APP_ROLES, |m| f.app_argument(m), |m| f.prepare_app_call(m), |m, _| f.put_back_app_call(m));
    assert_eq!(
        f.env.app(f.app).digest(),
        app_digest,
        "no call of the protocol changed the app's state (a commit put back its own snapshot)"
    );

    let vault_table = table("vault.did", &f.vault, VAULT_ROLES, &vault_answers);
    let app_table = table("backup.did", &f.backup, APP_ROLES, &app_answers);
    assert_eq!(vault_answers, expected(&f.vault, VAULT_MATRIX), "the vault's access matrix; as answered:\n{vault_table}");
    assert_eq!(app_answers, expected(&f.backup, APP_MATRIX), "the client library's access matrix; as answered:\n{app_table}");
    let readme = std::fs::read_to_string(workspace_file("README.md")).expect("the README");
    for table in [vault_table, app_table] {
        assert!(readme.contains(&table), "the README's \"Security model\" shows the matrix the vault answers:\n{table}");
    }

    // Listing apps shows each caller the registered apps it controls, as last seen.
    assert_eq!(f.env.vault_as(Principal::anonymous()).list_apps(), Err(VaultError::Anonymous));
    for (role, apps) in [
        (Role::Controller, vec![f.app]),
        (Role::Stranger, vec![f.strangers_app]),
        (Role::Administrator, vec![]),
        (Role::VaultController, vec![]),
    ] {
        assert_eq!(listed(role), Ok(apps), "{}", role.heading());
    }
    // A refusal names the caller it refused.
    let reply = f.forwarded(f.app, methods::DUMP_BEGIN, encode_one(DumpBegin { job: PROTOCOL_JOB, nonce: None, chunk_hashes: None, base: None, from_upgrade_save: None, content_index: None }).unwrap()).expect("the app answers");
    let (refused,): (Result<DumpManifest, BackupError>,) = candid::decode_args(&reply).unwrap();
    assert_eq!(refused.map(drop), Err(BackupError::NotTheVault { caller: f.strangers_app }));
}
