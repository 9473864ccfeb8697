//! The typed client matches `vault.did`: it calls every method of the service, each as the
//! query or update the file declares, with an argument of the declared types, and decodes a
//! reply of the declared result type.

use std::collections::BTreeMap;
use std::path::Path;

use candid::types::{FuncMode, Function, TypeEnv};
use candid::{IDLArgs, Principal};
use candid_parser::utils::CandidSource;
use serde_bytes::ByteBuf;
use vault_api::{ContentHash, Sha256};
use vault_api::client::{Reply, ServiceClient, Transport};
use vault_api::protocol::StateKind;
use vault_api::service::{
    ChunkRef, ImportArgs, Limits, ImportChunk, ManifestPage, RegisterArgs, Registration, RestoreArgs, Retention, Schedule, SetAllowedArgs, SnapshotOptions, SnapshotRef,
    SuspendArgs, UnregisterArgs, UpdateScheduleArgs, VaultError,
};

/// Checks each call against the service's types, records it, and answers with the vault's
/// refusal of anonymous callers, encoded as the method's declared result.
struct Declared {
    env: TypeEnv,
    methods: BTreeMap<String, Function>,
    /// Each call's method, and whether it was sent as a query.
    calls: Vec<(String, bool)>,
}

impl Declared {
    fn load() -> Declared {
        let did = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vault.did");
        let (env, actor) = CandidSource::File(&did).load().unwrap_or_else(|e| panic!("{}: {e}", did.display()));
        let service = env.as_service(&actor.expect("a service")).expect("a service type").to_vec();
        let methods = service.iter().map(|(name, ty)| (name.clone(), env.as_func(ty).expect("a method").clone())).collect();
        Declared { env, methods, calls: vec![] }
    }

    fn answer(&mut self, method: &str, query: bool, arg: Vec<u8>) -> Result<Vec<u8>, String> {
        let func = self.methods.get(method).ok_or_else(|| format!("{method} is not in vault.did"))?;
        IDLArgs::from_bytes_with_types(&arg, &self.env, &func.args).map_err(|e| format!("the argument of {method}: {e}"))?;
        self.calls.push((method.to_string(), query));
        let refusal = candid_parser::parse_idl_args("(variant { Err = variant { Anonymous } })").expect("a candid value");
        refusal.to_bytes_with_types(&self.env, &func.rets).map_err(|e| format!("the result of {method}: {e}"))
    }
}

impl Transport for Declared {
    type Error = String;

    fn update(&mut self, _: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, String> {
        self.answer(method, false, arg)
    }

    fn query(&mut self, _: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, String> {
        self.answer(method, true, arg)
    }
}

/// The declared result decodes, and is the refusal it was.
fn refused<T: std::fmt::Debug>(reply: Reply<T, String>) {
    assert!(matches!(reply, Ok(Err(VaultError::Anonymous))), "{reply:?}");
}

#[test]
fn the_client_calls_every_method_of_vault_did_as_declared() {
    let (app, snapshot_id) = (Principal::from_slice(&[7; 29]), 3);
    let snapshot = SnapshotRef { app, snapshot_id };
    let (schedule, retention) = (Schedule { interval_seconds: 3600 }, Retention { keep_last: 2, keep_daily: 1, keep_weekly: 1 });
    let mut vault = ServiceClient::new(Declared::load(), Principal::from_slice(&[1; 10]));
    refused(vault.register(RegisterArgs { app, schedule, retention, max_incrementals: Some(0), capture: None }));
    refused(vault.unregister(UnregisterArgs { app, delete_snapshots: true }));
    refused(vault.update_schedule(UpdateScheduleArgs { app, schedule: Some(schedule), retention: None, max_incrementals: Some(3) }));
    refused(vault.app_info(app));
    refused(vault.list_apps());
    refused(vault.snapshot_now(app));
    refused(vault.list_snapshots(app));
    refused(vault.delete_snapshot(snapshot));
    refused(vault.restore(RestoreArgs { app, snapshot_id, target: Some(app), allow_layout_change: Some(true), via_upgrade: None }));
    refused(vault.job_status(9));
    refused(vault.list_jobs(app));
    refused(vault.snapshot_chunk(ChunkRef { app, snapshot_id, index: 0 }));
    refused(vault.snapshot_manifest(ManifestPage { app, snapshot_id, start: 0, count: 10 }));
    let sha256 = Sha256::of(b"chunk");
    let import = ImportArgs { app, state_kind: StateKind::Serde, size: 5, chunk_size: 5, sha256, taken_at_nanos: 1, module_hash: None, state_layout: Some(2), content_hash: Some(ContentHash::Blake3) };
    refused(vault.import_begin(import));
    refused(vault.import_chunk(ImportChunk { app, snapshot_id, index: 0, data: ByteBuf::from(b"chunk".to_vec()), sha256 }));
    refused(vault.import_commit(snapshot));
    refused(vault.import_abort(snapshot));
    refused(vault.cancel_job(9));
    refused(vault.admin_info());
    refused(vault.set_administrators(vec![app]));
    refused(vault.set_registration(Registration::Open));
    refused(vault.set_allowed(SetAllowedArgs { principals: vec![app], allowed: true }));
    refused(vault.list_registrants());
    refused(vault.suspend_app(SuspendArgs { app, reason: "abuse".into() }));
    refused(vault.resume_app(app));
    refused(vault.evict_app(app));
    refused(vault.set_limits(Limits::default()));
    refused(vault.refresh_access(app));

    let declared = vault.transport();
    let calls: BTreeMap<String, bool> = declared.calls.iter().cloned().collect();
    assert_eq!(calls.len(), declared.calls.len(), "each method is called once: {:?}", declared.calls);
    let modes: BTreeMap<String, bool> =
        declared.methods.iter().map(|(name, func)| (name.clone(), func.modes.iter().any(|m| matches!(m, FuncMode::Query)))).collect();
    assert_eq!(calls, modes, "every method of vault.did, each as the query or update it is declared");
    // `snapshot_now` with its options, and without them (as older tools call it).
    refused(vault.snapshot_now_with(app, SnapshotOptions { full: true, from_upgrade_save: None }));
}
