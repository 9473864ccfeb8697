//! The vault canister: registers apps, snapshots them on timers and on request into
//! content-addressed storage, keeps versions by retention policy, and restores a chosen
//! version into the app or a clone.
//!
//! Endpoints here decode, check their guards and delegate to `ops`; the state is in `state`
//! (layout in `memory`), the jobs in `engine`.

use std::cell::RefCell;

use candid::Principal;
use ic_stable_structures::DefaultMemoryImpl;
use vault_api::protocol::Chunk;
use vault_api::Sha256;
use vault_api::service::{
    AppInfo, ChunkRef, ImportArgs, ImportChunk, ImportInfo, JobInfo, ManifestPage, RegisterArgs, RestoreArgs, SnapshotInfo,
    SnapshotRef, UnregisterArgs, UpdateScheduleArgs, VaultError,
};

mod app_client;
mod engine;
mod guards;
pub mod memory;
mod ops;
pub mod retention;
pub mod state;
pub mod storable;

thread_local! {
    static STATE: RefCell<state::State> = RefCell::new(state::State::init(DefaultMemoryImpl::default()));
}

pub(crate) fn with_state<R>(f: impl FnOnce(&mut state::State) -> R) -> R {
    STATE.with_borrow_mut(f)
}

#[ic_cdk::init]
fn init() {
    with_state(|_| ());
    engine::start_watchdog();
}

#[ic_cdk::pre_upgrade]
fn pre_upgrade() {
    if let Some(blocker) = app_client::upgrade_blocker() {
        ic_cdk::trap(format!("{blocker}: stop it (their responses arrive, no new ones start), then upgrade, then start it"));
    }
}

#[ic_cdk::post_upgrade]
fn post_upgrade() {
    engine::resume_after_upgrade();
}

/// Runs before every update. A trap in the global timer handler leaves the canister's timer
/// off until a message sets it again (an IC rule): each update re-arms it if it was lost.
fn revive_timer() -> Result<(), String> {
    engine::revive();
    Ok(())
}

/// Registers an app the caller controls; the app must have this vault set.
#[ic_cdk::update(guard = "revive_timer")]
async fn register(args: RegisterArgs) -> Result<AppInfo, VaultError> {
    let caller = guards::caller_not_anonymous()?;
    ops::register(caller, args).await
}

#[ic_cdk::update(guard = "revive_timer")]
async fn unregister(args: UnregisterArgs) -> Result<(), VaultError> {
    let caller = guards::caller_not_anonymous()?;
    ops::unregister(caller, args.app, args.delete_snapshots).await
}

#[ic_cdk::update(guard = "revive_timer")]
async fn update_schedule(args: UpdateScheduleArgs) -> Result<AppInfo, VaultError> {
    let caller = guards::caller_not_anonymous()?;
    ops::update_schedule(caller, args).await
}

#[ic_cdk::query]
fn app_info(app: Principal) -> Result<AppInfo, VaultError> {
    let caller = guards::caller_not_anonymous()?;
    let record = guards::caller_controls_registered(caller, app)?;
    Ok(ops::app_info(app, &record))
}

/// The registered apps the caller controls (as last seen).
#[ic_cdk::query]
fn list_apps() -> Result<Vec<AppInfo>, VaultError> {
    let caller = guards::caller_not_anonymous()?;
    Ok(with_state(|s| s.apps())
        .into_iter()
        .filter(|(_, r)| r.controllers.contains(&caller))
        .map(|(app, r)| ops::app_info(app, &r))
        .collect())
}

/// Starts a snapshot of `app`; follow it with `job_status`.
#[ic_cdk::update(guard = "revive_timer")]
async fn snapshot_now(app: Principal) -> Result<JobInfo, VaultError> {
    let caller = guards::caller_not_anonymous()?;
    ops::snapshot_now(caller, app).await
}

/// The completed snapshots of `app`, oldest first.
#[ic_cdk::query]
fn list_snapshots(app: Principal) -> Result<Vec<SnapshotInfo>, VaultError> {
    let caller = guards::caller_not_anonymous()?;
    guards::caller_controls_registered(caller, app)?;
    Ok(ops::list_snapshots(app))
}

#[ic_cdk::update(guard = "revive_timer")]
async fn delete_snapshot(args: SnapshotRef) -> Result<(), VaultError> {
    let caller = guards::caller_not_anonymous()?;
    ops::delete_snapshot(caller, args).await
}

/// Starts restoring a snapshot into its app, or into `target` (a clone).
#[ic_cdk::update(guard = "revive_timer")]
async fn restore(args: RestoreArgs) -> Result<JobInfo, VaultError> {
    let caller = guards::caller_not_anonymous()?;
    ops::restore(caller, args).await
}

#[ic_cdk::query]
fn job_status(job: u64) -> Result<JobInfo, VaultError> {
    let caller = guards::caller_not_anonymous()?;
    ops::job(caller, job)
}

/// The jobs of `app`, newest first: running ones and the log of finished ones.
#[ic_cdk::query]
fn list_jobs(app: Principal) -> Result<Vec<JobInfo>, VaultError> {
    let caller = guards::caller_not_anonymous()?;
    guards::caller_controls_registered(caller, app)?;
    Ok(ops::jobs(app))
}

/// A chunk of a completed snapshot, for export to a file.
#[ic_cdk::query]
fn snapshot_chunk(args: ChunkRef) -> Result<Chunk, VaultError> {
    let caller = guards::caller_not_anonymous()?;
    guards::caller_controls_registered(caller, args.app)?;
    ops::snapshot_chunk(args)
}

/// A page of a completed snapshot's chunk table (at most 10,000 SHA-256s), for export.
#[ic_cdk::query]
fn snapshot_manifest(args: ManifestPage) -> Result<Vec<Sha256>, VaultError> {
    let caller = guards::caller_not_anonymous()?;
    guards::caller_controls_registered(caller, args.app)?;
    ops::manifest_page(args)
}

/// Begins (or resumes) importing a snapshot from a file into an app's history.
#[ic_cdk::update(guard = "revive_timer")]
async fn import_begin(args: ImportArgs) -> Result<ImportInfo, VaultError> {
    let caller = guards::caller_not_anonymous()?;
    ops::import_begin(caller, args).await
}

#[ic_cdk::update(guard = "revive_timer")]
fn import_chunk(args: ImportChunk) -> Result<(), VaultError> {
    let caller = guards::caller_not_anonymous()?;
    guards::caller_controls_registered(caller, args.app)?;
    ops::import_chunk(args)
}

/// Completes an import: every chunk must be there and produce the manifest's SHA-256. The
/// snapshot is then listed and restorable like any other.
#[ic_cdk::update(guard = "revive_timer")]
fn import_commit(args: SnapshotRef) -> Result<SnapshotInfo, VaultError> {
    let caller = guards::caller_not_anonymous()?;
    guards::caller_controls_registered(caller, args.app)?;
    ops::import_commit(args)
}

#[ic_cdk::update(guard = "revive_timer")]
fn import_abort(args: SnapshotRef) -> Result<(), VaultError> {
    let caller = guards::caller_not_anonymous()?;
    guards::caller_controls_registered(caller, args.app)?;
    ops::import_abort(args)
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
