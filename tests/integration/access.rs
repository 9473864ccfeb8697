//! Access, table-driven: every vault and client-library endpoint called as anonymous, as a
//! stranger, as another canister and as the rightful caller. Only the rightful caller gets
//! through; the others get a typed refusal, and nothing changes.

use candid::utils::ArgumentEncoder;
use candid::{Principal, Reserved};
use serde_bytes::ByteBuf;
use vault_api::Sha256;
use vault_api::protocol::{BackupError, ChunkRequest, DumpBegin, JobRef, RestoreBegin, RestoreChunk, StateKind, methods};
use vault_api::service::{ChunkRef, RegisterArgs, RestoreArgs, SnapshotRef, UnregisterArgs, UpdateScheduleArgs, VaultError};
use vault_api::service::methods as vault_methods;
use vault_tests::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    Anonymous,
    Stranger,
    OtherCanister,
    Rightful,
}

const CALLERS: [Caller; 4] = [Caller::Anonymous, Caller::Stranger, Caller::OtherCanister, Caller::Rightful];

struct Setup {
    env: Env,
    app: Principal,
    spare: Principal,
    registered_spare: Principal,
    snapshots: Vec<u64>,
    job: u64,
    proxy: Principal,
}

fn setup() -> Setup {
    let env = Env::new();
    let app = env.registered(AppKind::Ledger, manual(), keep(10));
    for n in 0..3 {
        AppKind::Ledger.apply(&env.app(app), n);
    }
    let first = env.snapshot(app);
    let second = env.snapshot(app);
    let spare = env.deploy(AppKind::Ledger, Some(env.vault));
    let registered_spare = env.registered(AppKind::Ledger, manual(), keep(1));
    let proxy = env.ic.create_canister();
    env.ic.install_canister(proxy, ic_harness::build::canister_wasm("harness-test-canisters", "probe"), candid::encode_args(()).unwrap(), None);
    Setup { env, app, spare, registered_spare, snapshots: vec![first.snapshot_id.unwrap(), second.snapshot_id.unwrap()], job: first.id, proxy }
}

/// What a call returned: `Ok` with any value, or the endpoint's typed error.
fn call<E: candid::CandidType + for<'a> serde::Deserialize<'a>>(
    s: &Setup,
    target: Principal,
    rightful: Principal,
    caller: Caller,
    method: &str,
    query: bool,
    args: impl ArgumentEncoder,
) -> Result<(), E> {
    admitted(s, target, rightful, caller, method, query, args).unwrap_or_else(|r| panic!("{method} as {caller:?} was rejected: {r}"))
}

/// [`call`], where the ingress may be refused before it reaches the endpoint (the message's
/// inspection): `Err` with the reject's message then.
fn admitted<E: candid::CandidType + for<'a> serde::Deserialize<'a>>(
    s: &Setup,
    target: Principal,
    rightful: Principal,
    caller: Caller,
    method: &str,
    query: bool,
    args: impl ArgumentEncoder,
) -> Result<Result<(), E>, String> {
    let payload = candid::encode_args(args).unwrap();
    let reply = match caller {
        Caller::OtherCanister => {
            let arg = candid::encode_args((target, method.to_string(), ByteBuf::from(payload), None::<u32>, 0u128)).unwrap();
            let reply = s.env.ic.update_call(s.proxy, owner(), "call", arg).expect("the proxy answers");
            #[derive(candid::Deserialize, candid::CandidType, Debug)]
            enum CallOutcome {
                Reply(ByteBuf),
                Reject { code: u32, message: String },
                PerformFailed,
            }
            match candid::decode_one::<CallOutcome>(&reply).unwrap() {
                CallOutcome::Reply(bytes) => bytes.into_vec(),
                other => panic!("{method} from a canister: {other:?}"),
            }
        }
        _ => {
            let sender = match caller {
                Caller::Anonymous => Principal::anonymous(),
                Caller::Stranger => stranger(),
                _ => rightful,
            };
            let result = if query {
                s.env.ic.query_call(target, sender, method, payload)
            } else {
                s.env.ic.update_call(target, sender, method, payload)
            };
            result.map_err(|r| r.to_string())?
        }
    };
    Ok(candid::decode_one::<Result<Reserved, E>>(&reply).unwrap_or_else(|e| panic!("{method}: {e}")).map(|_| ()))
}

/// Everything a refused call could have changed.
fn observable(s: &Setup) -> impl PartialEq + std::fmt::Debug {
    let vault = s.env.vault();
    (
        vault.list_snapshots(s.app).unwrap(),
        vault.list_jobs(s.app).unwrap(),
        vault.list_apps().unwrap(),
        s.env.app(s.app).digest(),
        s.env.app(s.spare).digest(),
    )
}

fn finish_running_jobs(s: &Setup) {
    for app in [s.app, s.registered_spare] {
        if let Ok(info) = s.env.vault().app_info(app)
            && let Some(job) = info.running_job
        {
            s.env.finish_job(job, 500);
        }
    }
}

#[test]
fn vault_endpoints_admit_only_controllers_of_the_app() {
    use vault_methods::{APP_INFO, JOB_STATUS, LIST_JOBS, LIST_SNAPSHOTS, SNAPSHOT_CHUNK};
    let s = setup();
    let (app, snap) = (s.app, s.snapshots[0]);
    type Endpoint<'a> = (&'a str, Box<dyn Fn(Caller) -> Result<Result<(), VaultError>, String> + 'a>);
    let endpoints: Vec<Endpoint> = vec![
        (vault_methods::REGISTER, Box::new(|c| admitted(&s, s.env.vault, owner(), c, vault_methods::REGISTER, false, (RegisterArgs { app: s.spare, schedule: manual(), retention: keep(2) },)))),
        (vault_methods::UPDATE_SCHEDULE, Box::new(|c| admitted(&s, s.env.vault, owner(), c, vault_methods::UPDATE_SCHEDULE, false, (UpdateScheduleArgs { app, schedule: None, retention: Some(keep(10)) },)))),
        (vault_methods::APP_INFO, Box::new(|c| admitted(&s, s.env.vault, owner(), c, vault_methods::APP_INFO, true, (app,)))),
        (vault_methods::LIST_SNAPSHOTS, Box::new(|c| admitted(&s, s.env.vault, owner(), c, vault_methods::LIST_SNAPSHOTS, true, (app,)))),
        (vault_methods::LIST_JOBS, Box::new(|c| admitted(&s, s.env.vault, owner(), c, vault_methods::LIST_JOBS, true, (app,)))),
        (vault_methods::JOB_STATUS, Box::new(|c| admitted(&s, s.env.vault, owner(), c, vault_methods::JOB_STATUS, true, (s.job,)))),
        (vault_methods::SNAPSHOT_CHUNK, Box::new(|c| admitted(&s, s.env.vault, owner(), c, vault_methods::SNAPSHOT_CHUNK, true, (ChunkRef { app, snapshot_id: snap, index: 0 },)))),
        (vault_methods::SNAPSHOT_NOW, Box::new(|c| admitted(&s, s.env.vault, owner(), c, vault_methods::SNAPSHOT_NOW, false, (app,)))),
        (vault_methods::RESTORE, Box::new(|c| admitted(&s, s.env.vault, owner(), c, vault_methods::RESTORE, false, (RestoreArgs { app, snapshot_id: snap, target: Some(s.registered_spare) },)))),
        (vault_methods::DELETE_SNAPSHOT, Box::new(|c| admitted(&s, s.env.vault, owner(), c, vault_methods::DELETE_SNAPSHOT, false, (SnapshotRef { app, snapshot_id: s.snapshots[1] },)))),
        (vault_methods::UNREGISTER, Box::new(|c| admitted(&s, s.env.vault, owner(), c, vault_methods::UNREGISTER, false, (UnregisterArgs { app: s.registered_spare, delete_snapshots: false },)))),
    ];
    for (name, endpoint) in &endpoints {
        for caller in CALLERS {
            let before = observable(&s);
            let query = [APP_INFO, LIST_SNAPSHOTS, LIST_JOBS, JOB_STATUS, SNAPSHOT_CHUNK].contains(name);
            let result = match (caller, endpoint(caller)) {
                // Anonymous update calls are refused before they reach the vault (and cost it
                // nothing); queries answer.
                (Caller::Anonymous, Err(rejected)) if !query => {
                    assert!(rejected.contains("no anonymous update calls"), "{name} as {caller:?}: {rejected}");
                    assert_eq!(observable(&s), before, "{name} as {caller:?} changed nothing");
                    continue;
                }
                (Caller::Anonymous, answered) if !query => panic!("{name}: anonymous ingress reached the vault: {answered:?}"),
                (_, answered) => answered.unwrap_or_else(|r| panic!("{name} as {caller:?} was rejected: {r}")),
            };
            match caller {
                Caller::Anonymous => assert_eq!(result, Err(VaultError::Anonymous), "{name} as {caller:?}"),
                // Registration is closed to them before their control of the app is asked.
                Caller::Stranger | Caller::OtherCanister if *name == vault_methods::REGISTER => {
                    assert!(matches!(result, Err(VaultError::RegistrationClosed { .. })), "{name} as {caller:?}: {result:?}");
                }
                Caller::Stranger | Caller::OtherCanister => {
                    assert!(matches!(result, Err(VaultError::NotAController { .. })), "{name} as {caller:?}: {result:?}");
                }
                Caller::Rightful => {
                    assert_eq!(result, Ok(()), "{name} as the owner");
                    finish_running_jobs(&s);
                    continue;
                }
            }
            assert_eq!(observable(&s), before, "{name} as {caller:?} changed nothing");
        }
    }
    // Listing apps refuses anonymous callers and shows others only the apps they control.
    assert_eq!(s.env.vault_as(Principal::anonymous()).list_apps(), Err(VaultError::Anonymous));
    assert_eq!(s.env.vault_as(stranger()).list_apps(), Ok(vec![]));
    assert!(s.env.vault().list_apps().unwrap().iter().any(|a| a.app == app));
}

#[test]
fn backup_endpoints_admit_only_the_vault() {
    let s = setup();
    let (app, vault) = (s.spare, s.env.vault);
    type App = Result<(), BackupError>;
    type Endpoint<'a> = (&'a str, Box<dyn Fn(Caller) -> App + 'a>);
    let job = 9_999;
    let endpoints: Vec<Endpoint> = vec![
        (methods::INFO, Box::new(|c| call(&s, app, vault, c, methods::INFO, true, ()))),
        (methods::DUMP_BEGIN, Box::new(|c| call(&s, app, vault, c, methods::DUMP_BEGIN, false, (DumpBegin { job },)))),
        (methods::DUMP_CHUNK, Box::new(|c| call(&s, app, vault, c, methods::DUMP_CHUNK, true, (ChunkRequest { job, index: 0 },)))),
        (methods::DUMP_END, Box::new(|c| call(&s, app, vault, c, methods::DUMP_END, false, (JobRef { job },)))),
        (
            methods::RESTORE_BEGIN,
            Box::new(|c| {
                let args = RestoreBegin { job, state_kind: StateKind::StableMemory, size: 65536, chunk_size: 65536, sha256: vault_api::manifest::image_hash(&[0u8; 65536], 65536) };
                call(&s, app, vault, c, methods::RESTORE_BEGIN, false, (args,))
            }),
        ),
        (
            methods::RESTORE_CHUNK,
            Box::new(|c| {
                let data = vec![0u8; 65536];
                let args = RestoreChunk { job, index: 0, sha256: Sha256::of(&data), data: ByteBuf::from(data) };
                call(&s, app, vault, c, methods::RESTORE_CHUNK, false, (args,))
            }),
        ),
        (methods::RESTORE_ABORT, Box::new(|c| call(&s, app, vault, c, methods::RESTORE_ABORT, false, (JobRef { job },)))),
    ];
    for (name, endpoint) in &endpoints {
        for caller in CALLERS {
            let before = s.env.app(app).digest();
            let result = endpoint(caller);
            match caller {
                Caller::Rightful => assert_eq!(result, Ok(()), "{name} as the vault"),
                Caller::OtherCanister => {
                    assert_eq!(result, Err(BackupError::NotTheVault { caller: s.proxy }), "{name} as another canister");
                }
                Caller::Anonymous | Caller::Stranger => {
                    assert!(matches!(result, Err(BackupError::NotTheVault { .. })), "{name} as {caller:?}: {result:?}");
                }
            }
            assert_eq!(s.env.app(app).digest(), before, "{name} as {caller:?} left the app's state as it was");
        }
    }
    // The commit is refused to others; the vault gets a protocol answer, not an access error.
    for caller in CALLERS {
        let result: App = call(&s, app, vault, caller, methods::RESTORE_COMMIT, false, (JobRef { job },));
        match caller {
            Caller::Rightful => assert_eq!(result, Err(BackupError::UnknownJob { job }), "aborted above"),
            _ => assert!(matches!(result, Err(BackupError::NotTheVault { .. })), "commit as {caller:?}: {result:?}"),
        }
    }
    // Only a controller sets the vault.
    for caller in CALLERS {
        let result: App = call(&s, app, owner(), caller, methods::SET_VAULT, false, (vault,));
        match caller {
            Caller::Rightful => assert_eq!(result, Ok(())),
            _ => assert!(matches!(result, Err(BackupError::NotAController { .. })), "set_vault as {caller:?}: {result:?}"),
        }
    }
    // The vault itself may not set it.
    assert!(matches!(call::<BackupError>(&s, app, vault, Caller::Rightful, methods::SET_VAULT, false, (stranger(),)), Err(BackupError::NotAController { .. })));
}
