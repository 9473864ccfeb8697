//! The vault canister: registers apps, snapshots them on timers and on request into
//! content-addressed storage, keeps versions by retention policy, and restores a chosen
//! version into the app or a clone.
//!
//! Endpoints here decode, name their access rule in one line (`access`), and delegate to
//! `ops`; every update first revives the job timer (`engine::revive`). The state is in `state`
//! (layout in `memory`, records in `storable`), the jobs in `engine`.

use candid::Principal;
use vault_api::Sha256;
use vault_api::protocol::Chunk;
use vault_api::service::{
    AdminInfo, AppInfo, ChunkRef, Limits, ImportArgs, ImportChunk, ImportInfo, JobInfo, ManifestPage, RegisterArgs, RegistrantInfo, Registration,
    RestoreArgs, SetAllowedArgs, SnapshotInfo, SnapshotOptions, SnapshotRef, SuspendArgs, UnregisterArgs, UpdateScheduleArgs, VaultError,
};

mod access;
mod admin;
mod app_client;
mod chunk_store;
mod engine;
mod manifest_tree;
pub mod memory;
mod migration;
mod ops;
mod pages;
pub mod retention;
pub mod state;
pub mod storable;

#[ic_cdk::init]
fn init() {
    state::with_state(|s| s.fix_instance_nonce(new_instance_nonce()));
    engine::start_watchdog();
}

/// A nonce for this install: the time, plus the canister's version, which every install raises,
/// so a later install at the same principal (a reinstall, even in the same round) has a larger one.
fn new_instance_nonce() -> u64 {
    ic_cdk::api::time().wrapping_add(ic_cdk::api::canister_version())
}

#[ic_cdk::pre_upgrade]
fn pre_upgrade() {
    if let Some(blocker) = app_client::upgrade_blocker() {
        ic_cdk::trap(format!("{blocker}: stop it (their responses arrive, no new ones start), then upgrade, then start it"));
    }
}

/// Ingress the vault would refuse is refused before it is inducted and paid for
/// (`access::admit_ingress`), and so are an import's calls from anyone but its app's controllers,
/// and a chunk the vault's reserves cannot pay for.
#[ic_cdk::inspect_message]
fn inspect_message() {
    let arg = ic_cdk::api::msg_arg_data();
    let method = ic_cdk::api::msg_method_name();
    let admitted = access::admit_ingress(ic_cdk::api::msg_caller(), &method, &arg).and_then(|()| admit_import_ingress(&method, &arg).map_err(|e| e.to_string()));
    if let Err(why) = admitted {
        ic_cdk::trap(format!("refused before induction: {why}"));
    }
    ic_cdk::api::accept_message();
}

/// An import's chunk, commit or abort is inducted only from a controller of its app (as last
/// seen, as the endpoint checks) for an import in progress, and a chunk only if the vault's
/// reserves can take it: a stranger cannot make the vault pay for 2 MiB messages it refuses.
fn admit_import_ingress(method: &str, arg: &[u8]) -> Result<(), VaultError> {
    use vault_api::service::methods;
    let import = match method {
        methods::IMPORT_CHUNK => vault_api::decode::one::<ImportChunk>(arg).ok().map(|c| (c.app, c.snapshot_id)),
        methods::IMPORT_COMMIT | methods::IMPORT_ABORT => vault_api::decode::one::<SnapshotRef>(arg).ok().map(|r| (r.app, r.snapshot_id)),
        _ => None,
    };
    let Some((app, id)) = import else { return Ok(()) };
    access::seen_controller(app)?;
    ops::import_in_progress(app, id)?;
    if method == methods::IMPORT_CHUNK {
        engine::cycles::room_for_import_chunk()?;
    }
    Ok(())
}

/// Migrates the stored layout first; a layout this build cannot read fails the upgrade, which
/// leaves the vault as it was.
#[ic_cdk::post_upgrade]
fn post_upgrade() {
    if let Err(error) = state::with_state(migration::migrate) {
        ic_cdk::trap(format!("the vault cannot open its memory: {error}"));
    }
    // A vault upgraded from a release without one gets its nonce now.
    state::with_state(|s| s.fix_instance_nonce(new_instance_nonce()));
    engine::resume_after_upgrade();
}

// Every endpoint with arguments has the guard `access::bounded_args`: their decoding is bounded
// for callers that no `inspect_message` saw (other canisters).
//
// Every update starts with `engine::revive()`: a trap in the global timer handler leaves the
// canister's timer off until a message sets it again (an IC rule), so each update re-arms it
// if it was lost.

/// Registers an app the caller controls; the app must have this vault set.
#[ic_cdk::update(guard = "access::bounded_args::<(RegisterArgs,)>")]
async fn register(args: RegisterArgs) -> Result<AppInfo, VaultError> {
    engine::revive();
    let (caller, info) = access::may_register(args.app).await?;
    ops::register(caller, info, args).await
}

/// Forgets an app; a job running on it is cancelled.
#[ic_cdk::update(guard = "access::bounded_args::<(UnregisterArgs,)>")]
async fn unregister(args: UnregisterArgs) -> Result<(), VaultError> {
    engine::revive();
    let caller = access::controller(args.app).await?;
    ops::unregister(caller, args.app, args.delete_snapshots)
}

#[ic_cdk::update(guard = "access::bounded_args::<(UpdateScheduleArgs,)>")]
async fn update_schedule(args: UpdateScheduleArgs) -> Result<AppInfo, VaultError> {
    engine::revive();
    access::controller(args.app).await?;
    ops::update_schedule(args)
}

/// Refreshes the controllers the vault has seen for `app` (queries check those), for a caller
/// who controls it now; an export asks for this before it reads.
#[ic_cdk::update(guard = "access::bounded_args::<(Principal,)>")]
async fn refresh_access(app: Principal) -> Result<AppInfo, VaultError> {
    engine::revive();
    access::controller(app).await?;
    let record = state::with_state(|s| s.registered(app))?;
    Ok(ops::app_info(app, &record))
}

#[ic_cdk::query(guard = "access::bounded_args::<(Principal,)>")]
fn app_info(app: Principal) -> Result<AppInfo, VaultError> {
    let record = access::seen_controller(app)?;
    Ok(ops::app_info(app, &record))
}

/// The registered apps the caller controls (as last seen).
#[ic_cdk::query]
fn list_apps() -> Result<Vec<AppInfo>, VaultError> {
    let caller = access::authenticated()?;
    Ok(ops::apps_controlled_by(caller))
}

/// Starts a snapshot of `app` (a full one if `options` say so); follow it with `job_status`.
#[ic_cdk::update(guard = "access::bounded_args::<(Principal, Option<SnapshotOptions>)>")]
async fn snapshot_now(app: Principal, options: Option<SnapshotOptions>) -> Result<JobInfo, VaultError> {
    engine::revive();
    access::controller(app).await?;
    ops::snapshot_now(app, options)
}

/// The completed snapshots of `app` (registered, or unregistered with its snapshots kept), oldest
/// first.
#[ic_cdk::query(guard = "access::bounded_args::<(Principal,)>")]
fn list_snapshots(app: Principal) -> Result<Vec<SnapshotInfo>, VaultError> {
    access::seen_snapshot_holder(app)?;
    Ok(ops::list_snapshots(app))
}

#[ic_cdk::update(guard = "access::bounded_args::<(SnapshotRef,)>")]
async fn delete_snapshot(args: SnapshotRef) -> Result<(), VaultError> {
    engine::revive();
    access::snapshot_holder(args.app).await?;
    ops::delete_snapshot(args)
}

/// Starts restoring a snapshot into its app, or into `target` (a clone).
#[ic_cdk::update(guard = "access::bounded_args::<(RestoreArgs,)>")]
async fn restore(args: RestoreArgs) -> Result<JobInfo, VaultError> {
    engine::revive();
    access::restorer(args.app, args.target.unwrap_or(args.app)).await?;
    ops::restore(args).await
}

/// Ends a running job as cancelled (not a restore that is committing).
#[ic_cdk::update(guard = "access::bounded_args::<(u64,)>")]
async fn cancel_job(job: u64) -> Result<JobInfo, VaultError> {
    engine::revive();
    let caller = access::controller_of_job(job).await?;
    ops::cancel_job(caller, job)
}

#[ic_cdk::query(guard = "access::bounded_args::<(u64,)>")]
fn job_status(job: u64) -> Result<JobInfo, VaultError> {
    let job = access::seen_controller_of_job(job)?;
    Ok(ops::job_info(&job))
}

/// The jobs of `app`, newest first: running ones and the log of finished ones.
#[ic_cdk::query(guard = "access::bounded_args::<(Principal,)>")]
fn list_jobs(app: Principal) -> Result<Vec<JobInfo>, VaultError> {
    access::seen_controller(app)?;
    Ok(ops::jobs(app))
}

/// A chunk of a completed snapshot, for export to a file.
#[ic_cdk::query(guard = "access::bounded_args::<(ChunkRef,)>")]
fn snapshot_chunk(args: ChunkRef) -> Result<Chunk, VaultError> {
    access::seen_snapshot_holder(args.app)?;
    ops::snapshot_chunk(args)
}

/// A page of a completed snapshot's chunk table (at most 10,000 digests), for export.
#[ic_cdk::query(guard = "access::bounded_args::<(ManifestPage,)>")]
fn snapshot_manifest(args: ManifestPage) -> Result<Vec<Sha256>, VaultError> {
    access::seen_snapshot_holder(args.app)?;
    ops::manifest_page(args)
}

/// Begins (or resumes) importing a snapshot from a file into an app's history.
#[ic_cdk::update(guard = "access::bounded_args::<(ImportArgs,)>")]
async fn import_begin(args: ImportArgs) -> Result<ImportInfo, VaultError> {
    engine::revive();
    access::controller(args.app).await?;
    ops::import_begin(args)
}

#[ic_cdk::update(guard = "access::bounded_args::<(ImportChunk,)>")]
fn import_chunk(args: ImportChunk) -> Result<(), VaultError> {
    engine::revive();
    access::seen_controller(args.app)?;
    engine::cycles::room_for_import_chunk()?;
    ops::import_chunk(args)
}

/// Completes an import: every chunk must be there and produce the manifest hash. The
/// snapshot is then listed and restorable like any other.
/// A controller of the app as it is now (asked of the IC): one removed since the import began
/// cannot complete it.
#[ic_cdk::update(guard = "access::bounded_args::<(SnapshotRef,)>")]
async fn import_commit(args: SnapshotRef) -> Result<SnapshotInfo, VaultError> {
    engine::revive();
    access::controller(args.app).await?;
    ops::import_commit(args)
}

#[ic_cdk::update(guard = "access::bounded_args::<(SnapshotRef,)>")]
fn import_abort(args: SnapshotRef) -> Result<(), VaultError> {
    engine::revive();
    access::seen_controller(args.app)?;
    ops::import_abort(args)
}

// Administration.

#[ic_cdk::query]
fn admin_info() -> Result<AdminInfo, VaultError> {
    access::administrator()?;
    Ok(admin::info())
}

/// Names the vault's administrators besides its controllers (at most 10).
#[ic_cdk::update(guard = "access::bounded_args::<(Vec<Principal>,)>")]
fn set_administrators(administrators: Vec<Principal>) -> Result<(), VaultError> {
    engine::revive();
    access::vault_controller()?;
    admin::set_administrators(administrators)
}

/// Who may register apps: administrators only, also the allow-list, or anyone.
#[ic_cdk::update(guard = "access::bounded_args::<(Registration,)>")]
fn set_registration(registration: Registration) -> Result<(), VaultError> {
    engine::revive();
    access::administrator()?;
    admin::set_registration(registration);
    Ok(())
}

/// Puts principals on the allow-list of registrants, or takes them off (at most 100 a call).
#[ic_cdk::update(guard = "access::bounded_args::<(SetAllowedArgs,)>")]
fn set_allowed(args: SetAllowedArgs) -> Result<(), VaultError> {
    engine::revive();
    access::administrator()?;
    admin::set_allowed(args)
}

/// Every registrant and allowed principal, with what its apps hold.
#[ic_cdk::query]
fn list_registrants() -> Result<Vec<RegistrantInfo>, VaultError> {
    access::administrator()?;
    Ok(admin::registrants())
}

/// Sets the cycles reserve (in days of storage) and the quotas per app and per registrant.
#[ic_cdk::update(guard = "access::bounded_args::<(Limits,)>")]
fn set_limits(limits: Limits) -> Result<(), VaultError> {
    engine::revive();
    access::administrator()?;
    admin::set_limits(limits)
}

/// Suspends an app: no new snapshot, restore into it or import until it is resumed.
#[ic_cdk::update(guard = "access::bounded_args::<(SuspendArgs,)>")]
fn suspend_app(args: SuspendArgs) -> Result<(), VaultError> {
    engine::revive();
    let caller = access::administrator()?;
    admin::suspend(caller, args.app, &args.reason, ic_cdk::api::time())
}

#[ic_cdk::update(guard = "access::bounded_args::<(Principal,)>")]
fn resume_app(app: Principal) -> Result<(), VaultError> {
    engine::revive();
    access::administrator()?;
    admin::resume(app)
}

/// Unregisters an app, cancelling its job; its snapshots stay until its controllers delete them.
#[ic_cdk::update(guard = "access::bounded_args::<(Principal,)>")]
fn evict_app(app: Principal) -> Result<(), VaultError> {
    engine::revive();
    let caller = access::administrator()?;
    admin::evict(caller, app)
}

ic_cdk::export_candid!();

#[cfg(test)]
mod interface_tests {
    #[test]
    fn vault_did_matches_the_endpoints() {
        let did = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("vault.did");
        ic_harness::interface::assert_service_matches(&super::__export_service(), &did);
    }
}
