//! What each endpoint does once its access rule passed. Every refusal is a typed error
//! returned before anything changes.

use candid::Principal;
use vault_api::manifest::{ChunkFault, try_chunk_count};
use vault_api::{ContentHash, Sha256};
use vault_api::protocol::{CHUNK_SIZE, MAX_CHUNKS, MAX_IMAGE_BYTES, StateKind};
use vault_api::service::{
    Capture,
    AppInfo, ChunkRef, ImportArgs, ImportChunk, ImportInfo, JobInfo, JobKind, MAX_MANIFEST_PAGE, ManifestPage, RegisterArgs, RestoreArgs, Schedule, SnapshotInfo, SnapshotOptions, SnapshotRef, Trigger,
    UpdateScheduleArgs, VaultError,
};
use vault_api::protocol::{BackupError, BackupInfo, Chunk};

use crate::app_client::{self, CanisterInfo};
use crate::engine::{self, cycles};
use crate::retention;
use crate::access;
use crate::state::{HashedChunk, State, with_state};
use crate::storable::{AppRecord, JobRecord, NativeApp, RetiredRecord, SnapshotRecord, SnapshotStatus, Task};

const SECOND: u64 = 1_000_000_000;
/// Bounds of a schedule's interval, in seconds (0: manual only).
const MIN_INTERVAL: u64 = 60;
const MAX_INTERVAL: u64 = 366 * 86_400;

fn validate_schedule(schedule: &Schedule) -> Result<(), VaultError> {
    let s = schedule.interval_seconds;
    if s != 0 && !(MIN_INTERVAL..=MAX_INTERVAL).contains(&s) {
        return Err(VaultError::InvalidSchedule {
            reason: format!("the interval must be 0 (manual only) or between {MIN_INTERVAL} and {MAX_INTERVAL} seconds, not {s}"),
        });
    }
    Ok(())
}

fn next_due(schedule: &Schedule, now: u64) -> u64 {
    if schedule.interval_seconds == 0 { 0 } else { now + schedule.interval_seconds * SECOND }
}

pub fn app_info(app: Principal, record: &AppRecord) -> AppInfo {
    let (usage, incremental, native) = with_state(|s| (s.app_usage(app), s.incremental(app), s.native_app(app)));
    let snapshots = usage.completed;
    let capture = native.map_or(Capture::Library, |n| Capture::Native { keep_running: n.keep_running });
    AppInfo {
        app,
        registered_by: record.registered_by,
        registered_at_nanos: record.registered_at,
        controllers: record.controllers.clone(),
        state_kind: record.state_kind,
        schedule: record.schedule,
        retention: record.retention,
        next_snapshot_at_nanos: (record.next_due > 0).then_some(record.next_due),
        running_job: record.running_job,
        snapshots,
        stored_bytes: Some(usage.held.stored),
        cycles_today: Some(usage.cycles_today(ic_cdk::api::time())),
        max_incrementals: Some(incremental.max_incrementals),
        capture: Some(capture),
    }
}

pub fn snapshot_info(app: Principal, id: u64, r: &SnapshotRecord, state_layout: Option<u32>) -> SnapshotInfo {
    SnapshotInfo {
        id,
        app,
        taken_at_nanos: r.taken_at,
        size: r.size,
        sha256: r.sha256,
        module_hash: r.module_hash,
        state_kind: r.state_kind,
        chunks: r.chunks,
        chunk_size: r.chunk_size,
        duration_nanos: r.duration,
        transfer_cycles: r.transfer_cycles,
        trigger: r.trigger,
        state_layout,
        content_hash: Some(r.content_hash),
    }
}

pub fn job_info(job: &JobRecord) -> JobInfo {
    let transfer = job.task.transfer();
    JobInfo {
        id: job.id,
        app: job.app,
        kind: job.kind(),
        phase: job.phase(),
        snapshot_id: job.snapshot_id(),
        chunks_done: transfer.map_or(0, |t| t.done.count()),
        chunks_total: transfer.map_or(0, |t| t.chunks),
        bytes_total: transfer.map_or(0, |t| t.size),
        retries: job.retries,
        started_at_nanos: job.started_at,
        updated_at_nanos: job.updated_at,
        finished_at_nanos: job.finished_at,
        error: job.error().cloned(),
        notes: job.notes.clone(),
    }
}

/// The registered apps `caller` controls, as last seen.
pub fn apps_controlled_by(caller: Principal) -> Vec<AppInfo> {
    with_state(|s| s.apps()).into_iter().filter(|(_, r)| r.controllers.contains(&caller)).map(|(app, r)| app_info(app, &r)).collect()
}

/// Registers `args.app`, which `caller` controls (`info` says so).
pub async fn register(caller: Principal, info: CanisterInfo, args: RegisterArgs) -> Result<AppInfo, VaultError> {
    validate_schedule(&args.schedule)?;
    retention::validate(&args.retention)?;
    let app = args.app;
    if with_state(|s| s.app(app)).is_some() {
        return Err(VaultError::AlreadyRegistered { app });
    }
    let administrator = access::is_administrator(caller);
    with_state(|s| may_add_app(s, caller, administrator, app))?;
    let capture = args.capture.unwrap_or(Capture::Library);
    let state_kind = match capture {
        // The app must serve the protocol, for this vault.
        Capture::Library => backup_info(app).await?.state_kind,
        // The vault must control it (the access check has just asked the IC).
        Capture::Native { .. } => {
            let vault = ic_cdk::api::canister_self();
            if app == vault {
                return Err(VaultError::InvalidArgument { reason: "the vault does not capture itself: it would stop itself to take the snapshot".into() });
            }
            if !info.controllers.contains(&vault) {
                return Err(VaultError::VaultNotAController { app, vault });
            }
            StateKind::Native
        }
    };
    let now = ic_cdk::api::time();
    let record = AppRecord {
        registered_by: caller,
        registered_at: now,
        state_kind,
        schedule: args.schedule,
        retention: args.retention,
        next_due: next_due(&args.schedule, now),
        running_job: None,
        module_hash: info.module_hash,
        controllers: info.controllers,
    };
    // Checked again: another registration may have completed during the calls.
    with_state(|s| {
        if s.app(app).is_some() {
            return Err(VaultError::AlreadyRegistered { app });
        }
        may_add_app(s, caller, administrator, app)?;
        s.put_app(app, record.clone());
        if let Capture::Native { keep_running } = capture {
            s.put_native_app(app, NativeApp { keep_running, taken: None });
        }
        if let Some(max_incrementals) = args.max_incrementals {
            s.set_max_incrementals(app, max_incrementals);
        }
        s.unretire(app);
        Ok(())
    })?;
    if record.next_due > 0 {
        engine::arm(record.next_due);
    }
    Ok(app_info(app, &record))
}

/// What `app` tells about its backup setup, if it serves the protocol for this vault.
async fn backup_info(app: Principal) -> Result<BackupInfo, VaultError> {
    let backup = match app_client::info(app).await {
        Ok(answer) => answer.value,
        Err(f) => return Err(VaultError::AppUnreachable { app, reject_code: f.reject_code(), message: f.to_string() }),
    };
    match backup {
        Ok(backup) if backup.vault == Some(ic_cdk::api::canister_self()) => Ok(backup),
        Ok(backup) => Err(VaultError::WrongVault { app, vault: backup.vault }),
        Err(BackupError::NotTheVault { .. } | BackupError::NoVaultSet) => Err(VaultError::WrongVault { app, vault: None }),
        Err(error) => Err(VaultError::AppRefused { app, error }),
    }
}

/// Whether `registrant` may register one more app (`app`): an administrator always, others
/// within `Limits::registrant_apps`.
fn may_add_app(s: &State, registrant: Principal, administrator: bool, app: Principal) -> Result<(), VaultError> {
    let (apps, limit) = (s.registrant_usage(registrant).apps, s.config().limits.registrant_apps);
    if !administrator && apps >= limit {
        return Err(VaultError::QuotaExceeded { app, what: "apps".into(), used: apps as u64, limit: limit as u64, registrant: Some(registrant) });
    }
    Ok(())
}

fn idle(app: Principal, record: &AppRecord) -> Result<(), VaultError> {
    match record.running_job {
        Some(job) => Err(VaultError::JobRunning { app, job }),
        None => Ok(()),
    }
}

/// Forgets an app: its schedule, its job log and, with `delete_snapshots`, its snapshots. A job
/// running on it is cancelled (by `caller`) first: a stuck job never holds an app. Refused while
/// a restore commits into it, and, with `delete_snapshots`, while a restore reads one of them.
/// Snapshots kept stay listed, exportable, restorable and deletable for the app's controllers
/// (a retired app, until it is registered again or keeps no snapshot).
pub fn unregister(caller: Principal, app: Principal, delete_snapshots: bool) -> Result<(), VaultError> {
    let record = with_state(|s| s.registered(app))?;
    if delete_snapshots
        && let Some(reader) = with_state(|s| s.active_jobs()).into_iter().find(|j| j.app != app && reads_snapshot_of(j, app))
    {
        return Err(VaultError::JobRunning { app: reader.app, job: reader.id });
    }
    if let Some(job) = record.running_job.and_then(|id| with_state(|s| s.job(id))).filter(|j| !j.is_finished()) {
        engine::cancel(job, caller)?;
    }
    let now = ic_cdk::api::time();
    with_state(|s| {
        if delete_snapshots {
            for (id, _) in s.snapshots_of(app) {
                s.schedule_deletion(app, id);
            }
        } else if !s.completed_of(app).is_empty() {
            s.retire(app, RetiredRecord { by: caller, at: now, controllers: record.controllers.clone() });
        }
        s.remove_jobs_of(app);
        s.remove_app(app);
    });
    engine::arm(ic_cdk::api::time());
    Ok(())
}

fn reads_snapshot_of(job: &JobRecord, app: Principal) -> bool {
    matches!(job.kind(), JobKind::Restore { source, .. } if source == app)
}

/// Cancels running job `id` (the caller controls its app: `access` checked it).
pub fn cancel_job(caller: Principal, id: u64) -> Result<JobInfo, VaultError> {
    let job = with_state(|s| s.job(id)).ok_or(VaultError::UnknownJob { job: id })?;
    Ok(job_info(&engine::cancel(job, caller)?))
}

pub fn update_schedule(args: UpdateScheduleArgs) -> Result<AppInfo, VaultError> {
    let app = args.app;
    if let Some(schedule) = &args.schedule {
        validate_schedule(schedule)?;
    }
    if let Some(retention) = &args.retention {
        retention::validate(retention)?;
    }
    let now = ic_cdk::api::time();
    let record = with_state(|s| {
        let mut record = s.app(app)?;
        if let Some(schedule) = args.schedule {
            record.schedule = schedule;
            record.next_due = next_due(&schedule, now);
        }
        if let Some(retention) = args.retention {
            record.retention = retention;
        }
        s.put_app(app, record.clone());
        if let Some(max_incrementals) = args.max_incrementals {
            s.set_max_incrementals(app, max_incrementals);
        }
        if args.retention.is_some() {
            retention::apply(s, app);
        }
        Some(record)
    })
    .ok_or(VaultError::UnknownApp { app })?;
    engine::arm(if record.next_due > 0 { record.next_due } else { now });
    Ok(app_info(app, &record))
}

// These run after the access check's `canister_info` call: they read the state as it is then.

/// Starts a snapshot of `app`; a full one if `options` say so (the app's base is forgotten, so the
/// dump asks for none), or one of the state its last upgrade saved.
pub fn snapshot_now(app: Principal, options: Option<SnapshotOptions>) -> Result<JobInfo, VaultError> {
    idle(app, &with_state(|s| s.registered(app))?)?;
    with_state(|s| s.not_suspended(app))?;
    cycles::check(cycles::batch_reserve())?;
    if options.is_some_and(|o| o.full) {
        with_state(|s| s.forget_base(app));
    }
    let mut job = engine::start_job(app, JobKind::Snapshot { trigger: Trigger::Manual });
    if options.is_some_and(|o| o.from_upgrade_save == Some(true)) {
        if let Task::Snapshot { from_upgrade_save, .. } = &mut job.task {
            *from_upgrade_save = true;
        }
        job.notes.push("of the state the app's last upgrade saved".into());
        with_state(|s| s.put_job(job.clone()));
    }
    Ok(job_info(&job))
}

/// Starts restoring a snapshot. One whose app declared a state layout restores only into a target
/// that answers its own and declares the same one, or none, unless `allow_layout_change` is
/// `Some(true)`; one of another content hash than SHA-256 only into a target whose client library
/// verifies it. The target is asked first when either applies, then everything is checked as it
/// is after the call.
pub async fn restore(args: RestoreArgs) -> Result<JobInfo, VaultError> {
    let (source, target) = (args.app, args.target.unwrap_or(args.app));
    let asked = restorable(&args)?.0;
    let (content_hash, via_upgrade) = (asked.content_hash, args.via_upgrade == Some(true));
    if via_upgrade && asked.state_kind != StateKind::Serde {
        return Err(VaultError::InvalidArgument {
            reason: "only a serde snapshot is restored through an upgrade: a stable-memory one commits at any size in one message".into(),
        });
    }
    let snapshot_layout = with_state(|s| s.snapshot_layout(source, args.snapshot_id));
    let target_info = match (snapshot_layout, content_hash, via_upgrade) {
        (None, ContentHash::Sha256, false) => None,
        _ => Some(backup_info(target).await?),
    };
    if via_upgrade && target_info.as_ref().is_some_and(|info| info.upgrade_paths != Some(true)) {
        return Err(VaultError::InvalidArgument {
            reason: format!("{target}'s client library does not restore through an upgrade: upgrade its library first"),
        });
    }
    if let Some(info) = &target_info
        && !info.verifies(content_hash)
    {
        return Err(VaultError::ContentHashNotVerified { target, content_hash });
    }
    let target_layout = target_info.and_then(|info| info.state_layout);
    let (snapshot, target_record) = restorable(&args)?;
    let layout_note = layout_change(target, target_layout, snapshot_layout, args.allow_layout_change == Some(true))?;
    let (today, limit) = with_state(|s| (s.app_usage(target).cycles_today(ic_cdk::api::time()), s.config().limits.app_cycles_per_day));
    cycles::day_quota(target, today, engine::transfer_estimate(snapshot.chunks), limit)?;
    cycles::check(cycles::batch_reserve() + engine::transfer_estimate(snapshot.chunks))?;
    let mut job = engine::start_job(target, JobKind::Restore { source, snapshot_id: args.snapshot_id });
    // The target drops its base as the restore begins: its next snapshot is full.
    with_state(|s| s.forget_base(target));
    // The access check has just seen the target's module: say so if it is not the snapshot's.
    let notes: Vec<String> = module_change(target_record.module_hash, snapshot.module_hash).into_iter().chain(layout_note).collect();
    // The target may change its layout (an upgrade) while the restore runs: the commit checks again.
    let check_layout = snapshot_layout.is_some() && args.allow_layout_change != Some(true);
    if let Task::Restore { check_layout: checked, via_upgrade, .. } = &mut job.task {
        *checked = check_layout;
        *via_upgrade = args.via_upgrade == Some(true);
    }
    job.notes.extend(notes);
    with_state(|s| s.put_job(job.clone()));
    Ok(job_info(&job))
}

/// The snapshot `args` names and its target's record, if the snapshot may be restored into the
/// target now (the layouts aside).
fn restorable(args: &RestoreArgs) -> Result<(SnapshotRecord, AppRecord), VaultError> {
    let (source, target) = (args.app, args.target.unwrap_or(args.app));
    let snapshot = with_state(|s| s.snapshot(source, args.snapshot_id))
        .filter(|r| r.status == SnapshotStatus::Complete)
        .ok_or(VaultError::UnknownSnapshot { app: source, snapshot_id: args.snapshot_id })?;
    let target_record = with_state(|s| s.app(target)).ok_or(VaultError::TargetNotRegistered { target })?;
    if target_record.state_kind != snapshot.state_kind {
        return Err(VaultError::StateKindMismatch { target, target_kind: target_record.state_kind, snapshot: snapshot.state_kind });
    }
    idle(target, &target_record)?;
    with_state(|s| s.not_suspended(target))?;
    Ok((snapshot, target_record))
}

/// Whether a snapshot taken under state layout `then` may be restored into `target`, which
/// declares layout `now`: when both declare one and they differ, only if the change is
/// `allowed`, and then with a note saying so. A side that declares none restores as before.
fn layout_change(target: Principal, now: Option<u32>, then: Option<u32>, allowed: bool) -> Result<Option<String>, VaultError> {
    match (now, then) {
        (Some(target_layout), Some(snapshot_layout)) if target_layout != snapshot_layout => {
            if !allowed {
                return Err(VaultError::StateLayoutMismatch { target, target_layout, snapshot_layout });
            }
            Ok(Some(format!(
                "layout change allowed: the app declares state layout {target_layout} but the snapshot was taken under layout {snapshot_layout}"
            )))
        }
        _ => Ok(None),
    }
}

/// A note for a restore into an app running module `now` of a snapshot taken under `then`.
fn module_change(now: Option<Sha256>, then: Option<Sha256>) -> Option<String> {
    let hex = |h: Option<Sha256>| h.map_or("none".to_string(), |h| h.to_hex());
    (now != then).then(|| {
        format!(
            "the app runs module {} but the snapshot was taken under module {}: the restored state must be one this module reads",
            hex(now),
            hex(then)
        )
    })
}

pub fn delete_snapshot(args: SnapshotRef) -> Result<(), VaultError> {
    let (app, id) = (args.app, args.snapshot_id);
    with_state(|s| {
        if s.snapshot(app, id).is_none_or(|r| r.status != SnapshotStatus::Complete) {
            return Err(VaultError::UnknownSnapshot { app, snapshot_id: id });
        }
        if let Some(job) = s.active_jobs().into_iter().find(|j| crate::retention::reads(j) == Some((app, id))) {
            return Err(VaultError::JobRunning { app: job.app, job: job.id });
        }
        s.schedule_deletion(app, id);
        if s.retired(app).is_some() && s.completed_of(app).is_empty() {
            s.unretire(app);
        }
        Ok(())
    })?;
    engine::arm(ic_cdk::api::time());
    Ok(())
}

pub fn list_snapshots(app: Principal) -> Vec<SnapshotInfo> {
    with_state(|s| s.snapshots_of(app))
        .into_iter()
        .filter(|(_, r)| r.status == SnapshotStatus::Complete)
        .map(|(id, r)| snapshot_info(app, id, &r, with_state(|s| s.snapshot_layout(app, id))))
        .collect()
}

pub fn jobs(app: Principal) -> Vec<JobInfo> {
    with_state(|s| s.jobs_of(app)).iter().map(job_info).collect()
}

/// A chunk of a completed snapshot, for export.
pub fn snapshot_chunk(args: ChunkRef) -> Result<Chunk, VaultError> {
    let (app, id) = (args.app, args.snapshot_id);
    let snapshot = with_state(|s| s.snapshot(app, id))
        .filter(|r| r.status == SnapshotStatus::Complete)
        .ok_or(VaultError::UnknownSnapshot { app, snapshot_id: id })?;
    if args.index >= snapshot.chunks {
        return Err(VaultError::ChunkOutOfRange { snapshot_id: id, index: args.index, chunks: snapshot.chunks });
    }
    let (sha256, data) = with_state(|s| s.chunk(id, args.index)).expect("a complete snapshot has every chunk");
    Ok(Chunk { index: args.index, data: serde_bytes::ByteBuf::from(data), sha256, changed_pages: None, base_ranges: None })
}

/// A page of the chunk table of a completed snapshot, for export.
pub fn manifest_page(args: ManifestPage) -> Result<Vec<Sha256>, VaultError> {
    let snapshot = with_state(|s| s.snapshot(args.app, args.snapshot_id))
        .filter(|r| r.status == SnapshotStatus::Complete)
        .ok_or(VaultError::UnknownSnapshot { app: args.app, snapshot_id: args.snapshot_id })?;
    if args.start > snapshot.chunks {
        return Err(VaultError::ChunkOutOfRange { snapshot_id: args.snapshot_id, index: args.start, chunks: snapshot.chunks });
    }
    Ok(with_state(|s| s.chunk_hashes(args.snapshot_id, args.start, args.count.min(MAX_MANIFEST_PAGE))))
}

/// The snapshot `id` of `app` if it is an import in progress.
pub fn import_in_progress(app: Principal, id: u64) -> Result<SnapshotRecord, VaultError> {
    with_state(|s| s.snapshot(app, id))
        .filter(|r| r.status == SnapshotStatus::Building && r.trigger == Trigger::Import)
        .ok_or(VaultError::NotAnImport { app, snapshot_id: id })
}

/// Begins importing a snapshot into `app`'s history, or resumes the import of the same one.
pub fn import_begin(args: ImportArgs) -> Result<ImportInfo, VaultError> {
    let app = args.app;
    with_state(|s| s.not_suspended(app))?;
    // A snapshot the app could never restore is refused now, not at restore time.
    let app_kind = with_state(|s| s.registered(app))?.state_kind;
    if args.state_kind != app_kind {
        return Err(VaultError::StateKindMismatch { target: app, target_kind: app_kind, snapshot: args.state_kind });
    }
    if args.chunk_size == 0 || args.chunk_size > CHUNK_SIZE {
        return Err(VaultError::InvalidManifest {
            reason: format!("the chunk size must be between 1 and {CHUNK_SIZE}, not {}", args.chunk_size),
        });
    }
    // A native image is the vault's own form: SHA-256, in slices, no layout (its header is checked
    // at the commit).
    let native = (vault_api::native::NATIVE_CHUNK_SIZE, ContentHash::Sha256, None);
    if args.state_kind == StateKind::Native && (args.chunk_size, args.content_hash(), args.state_layout) != native {
        return Err(VaultError::InvalidManifest {
            reason: format!("a native snapshot is in SHA-256, in chunks of {}, with no state layout", vault_api::native::NATIVE_CHUNK_SIZE),
        });
    }
    if let Some(reason) = engine::small_chunks(args.size, args.chunk_size) {
        return Err(VaultError::InvalidManifest { reason });
    }
    let chunks = try_chunk_count(args.size, args.chunk_size).filter(|&c| c <= MAX_CHUNKS && args.size <= MAX_IMAGE_BYTES).ok_or_else(|| {
        VaultError::InvalidManifest {
            reason: format!(
                "{} bytes in chunks of {}: a snapshot holds at most {MAX_IMAGE_BYTES} bytes in {MAX_CHUNKS} chunks",
                args.size, args.chunk_size
            ),
        }
    })?;
    let now = ic_cdk::api::time();
    let resumed = with_state(|s| s.open_imports_of(app))
        .into_iter()
        .find(|(_, r)| r.sha256 == args.sha256 && r.content_hash == args.content_hash() && r.size == args.size && r.chunk_size == args.chunk_size);
    if resumed.is_none() {
        import_fits(app, args.size, chunks, now)?;
    }
    let id = with_state(|s| {
        if let Some((id, _)) = resumed {
            return id;
        }
        let id = s.new_snapshot_id();
        s.put_snapshot(
            app,
            id,
            SnapshotRecord {
                status: SnapshotStatus::Building,
                job: 0,
                // A file's word: never later than now, so retention cannot take an import for
                // newer than the snapshots the vault took itself.
                taken_at: args.taken_at_nanos.min(now),
                size: args.size,
                sha256: args.sha256,
                module_hash: args.module_hash,
                state_kind: args.state_kind,
                chunks,
                chunk_size: args.chunk_size,
                started_at: now,
                duration: 0,
                transfer_cycles: 0,
                trigger: Trigger::Import,
                content_hash: args.content_hash(),
            },
        );
        if let Some(layout) = args.state_layout {
            s.put_snapshot_layout(app, id, layout);
        }
        id
    });
    if resumed.is_none() {
        // Unfinished, it expires: the timer wakes for that.
        let ttl = with_state(|s| s.config().limits.import_ttl_seconds).saturating_mul(SECOND);
        engine::arm(now.saturating_add(ttl));
    }
    let missing = with_state(|s| s.missing_chunks(id, chunks));
    Ok(ImportInfo { snapshot_id: id, chunks, missing })
}

/// Whether a new import of `size` bytes in `chunks` chunks fits `app`'s quotas and its
/// registrant's, the vault's stable memory before its reserve, and the cycles it may spend (it
/// pays each chunk's ingress).
fn import_fits(app: Principal, size: u64, chunks: u32, now: u64) -> Result<(), VaultError> {
    let (limits, open, completed, usage, registrant) = with_state(|s| {
        let usage = s.app_usage(app);
        let registrant = usage.registrant.map(|r| (r, s.registrant_usage(r).held.total()));
        (s.config().limits, s.open_imports_of(app).len() as u64, s.completed_of(app).len() as u64, usage, registrant)
    });
    if open >= limits.app_imports as u64 {
        let limit = limits.app_imports as u64;
        return Err(VaultError::QuotaExceeded { app, what: "imports open".into(), used: open, limit, registrant: None });
    }
    // No retention runs on an import: it counts whole, as do the imports still open.
    let (held, limit) = (completed + open, limits.app_snapshots as u64);
    if held >= limit {
        return Err(VaultError::QuotaExceeded { app, what: "snapshots".into(), used: held, limit, registrant: None });
    }
    cycles::bytes_quota(app, usage.held.total(), registrant, size, &limits)?;
    let room = cycles::stable_room();
    if size > room {
        return Err(VaultError::StorageFull { needed: size, available: room, reserved: cycles::STABLE_RESERVE });
    }
    let estimate = cycles::import_estimate(chunks);
    cycles::day_quota(app, usage.cycles_today(now), estimate, limits.app_cycles_per_day)?;
    cycles::check(estimate)?;
    Ok(())
}

/// Stores one chunk of an import, hashed by the vault in the import's content hash and checked
/// against the digest the file gives it; what the vault paid for it counts in the app's spending
/// of the day.
pub fn import_chunk(args: ImportChunk) -> Result<(), VaultError> {
    with_state(|s| s.not_suspended(args.app))?;
    let record = import_in_progress(args.app, args.snapshot_id)?;
    let index = args.index;
    let hashed = HashedChunk::check(record.content_hash, record.size, record.chunk_size, index, &args.data, Some(&args.sha256)).map_err(
        |fault| match fault {
            ChunkFault::OutOfRange { chunks } => VaultError::ChunkOutOfRange { snapshot_id: args.snapshot_id, index, chunks },
            ChunkFault::SizeMismatch { expected, actual } => VaultError::ChunkSizeMismatch { index, expected, actual },
            ChunkFault::HashMismatch => VaultError::ChunkHashMismatch { index },
        },
    )?;
    let cost = cycles::import_chunk_cost(args.data.len() as u64);
    with_state(|s| {
        s.store_chunk(args.app, args.snapshot_id, args.index, &hashed);
        s.spend_cycles(args.app, ic_cdk::api::time(), cost);
    });
    Ok(())
}

/// Completes an import once every chunk is stored and they produce the manifest's hash.
pub fn import_commit(args: SnapshotRef) -> Result<SnapshotInfo, VaultError> {
    let (app, id) = (args.app, args.snapshot_id);
    with_state(|s| s.not_suspended(app))?;
    let mut record = import_in_progress(app, id)?;
    let missing = with_state(|s| s.missing_chunks(id, record.chunks));
    if let Some(&first) = missing.first() {
        return Err(VaultError::MissingChunks { missing: missing.len() as u32, first });
    }
    let actual = with_state(|s| s.manifest_hash(id, record.content_hash, record.size, record.chunk_size)).expect("every chunk stored");
    if actual != record.sha256 {
        return Err(VaultError::SnapshotHashMismatch { expected: record.sha256, actual });
    }
    if record.state_kind == StateKind::Native {
        native_image_restorable(id, &record)?;
    }
    record.status = SnapshotStatus::Complete;
    record.duration = ic_cdk::api::time() - record.started_at;
    with_state(|s| {
        s.put_snapshot(app, id, record.clone());
        s.seal_step(Some(id), crate::state::SEAL_BUDGET);
    });
    Ok(snapshot_info(app, id, &record, with_state(|s| s.snapshot_layout(app, id))))
}

/// Whether the native image of snapshot `id` describes itself as one the IC can take back: its
/// header (its last chunk) makes its size, and its metadata uploads.
fn native_image_restorable(id: u64, record: &SnapshotRecord) -> Result<(), VaultError> {
    let last = record.chunks.checked_sub(1).and_then(|index| with_state(|s| s.chunk(id, index))).map(|(_, bytes)| bytes).unwrap_or_default();
    vault_api::native::Layout::of_image(record.size, record.chunk_size, &last)
        .and_then(|(_, metadata)| vault_api::native::upload_args(&metadata, Principal::anonymous(), None))
        .map(|_| ())
        .map_err(|reason| VaultError::InvalidManifest { reason: format!("not a native snapshot's image: {reason}") })
}

/// Drops an import in progress and its chunks.
pub fn import_abort(args: SnapshotRef) -> Result<(), VaultError> {
    import_in_progress(args.app, args.snapshot_id)?;
    with_state(|s| s.schedule_deletion(args.app, args.snapshot_id));
    engine::arm(ic_cdk::api::time());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restore_across_declared_state_layouts_needs_the_change_allowed() {
        let target = Principal::from_slice(&[3; 10]);
        for (now, then) in [(None, None), (Some(1), None), (None, Some(1)), (Some(2), Some(2))] {
            for allowed in [false, true] {
                assert_eq!(layout_change(target, now, then, allowed), Ok(None), "{now:?} {then:?} {allowed}");
            }
        }
        assert_eq!(
            layout_change(target, Some(2), Some(1), false),
            Err(VaultError::StateLayoutMismatch { target, target_layout: 2, snapshot_layout: 1 })
        );
        let note = layout_change(target, Some(2), Some(1), true).unwrap().expect("an allowed change is noted");
        assert!(note.contains("layout 2") && note.contains("layout 1"), "{note}");
    }
}
