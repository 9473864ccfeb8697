//! The steps of a job on an app captured through native canister snapshots: the same phases and
//! transitions as a library app's, with the management canister answering for the app.
//!
//! A snapshot opens by stopping the app (unless it keeps running), taking a native snapshot that
//! replaces the one the vault took last, and starting the app again at once: the app is down for
//! the take alone, and the job notes how long. The vault then reads the snapshot's metadata, makes
//! the image's header of it (`vault_api::native`), reads every part in slices while the app serves
//! calls, hashes each chunk and stores it as a library app's, and deletes the native snapshot at
//! the end. A restore uploads the snapshot's metadata and data onto the target as a new native
//! snapshot (each chunk checked against its digest first), then stops the target, loads the
//! snapshot and starts it again: until the load the target is untouched. The uploaded snapshot
//! is deleted when the job ends, whatever its outcome ([`release`]).

use candid::Principal;
use ic_management_canister_types::{
    CanisterIdRecord, CanisterStatusType, DeleteCanisterSnapshotArgs, LoadCanisterSnapshotArgs, ReadCanisterSnapshotDataArgs, ReadCanisterSnapshotDataResult,
    ReadCanisterSnapshotMetadataArgs, Snapshot, SnapshotDataOffset, TakeCanisterSnapshotArgs, UploadCanisterSnapshotMetadataResult,
};
use vault_api::native::{self, Layout, NATIVE_CHUNK_SIZE};
use vault_api::protocol::{BackupError, DumpManifest, RestoreReport, StateKind};
use serde_bytes::ByteBuf;
use vault_api::ContentHash;

use super::calls::{self, Answer, Tally};
use super::job::{self, ChunkAnswer, Event};
use crate::app_client::{self, CallFailure};
use crate::state::{HashedChunk, with_state};
use crate::storable::{Building, JobRecord, NativeJob, SnapshotRecord, SnapshotStatus};

/// Management calls a phase step makes at most (a take: status, stop, take, a list and a take
/// again, and starts; a load: status, stop, load, starts), whose cycles it reserves.
pub const MAX_STEP_CALLS: u64 = 12;

/// Times the vault asks the management canister to start an app it stopped before it gives up
/// and fails the job saying the app is stopped.
const START_ATTEMPTS: u32 = 3;

/// An answer's refusal or failure as the event of a step that ends there.
fn ended<T>(answer: Answer<T>, refused: fn(BackupError) -> Event) -> Result<T, Box<Event>> {
    match answer {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(Box::new(refused(error))),
        Err(failure) => Err(Box::new(Event::CallFailed(failure))),
    }
}

fn dump_refused(error: BackupError) -> Event {
    Event::DumpBegun(Err(error))
}

fn canister(app: Principal) -> CanisterIdRecord {
    CanisterIdRecord { canister_id: app }
}

/// `upload_canister_snapshot_data`'s argument (`UploadCanisterSnapshotDataArgs`) with its bytes
/// as blobs, which candid encodes at once rather than byte by byte: the same bytes on the wire.
#[derive(candid::CandidType)]
struct UploadData {
    canister_id: Principal,
    snapshot_id: ByteBuf,
    kind: SnapshotDataOffset,
    chunk: ByteBuf,
}

/// What the vault reads of `canister_status` (a record decodes with its other fields skipped).
#[derive(candid::CandidType, serde::Deserialize)]
struct Status {
    status: CanisterStatusType,
}

/// Whether the vault stops the app around job `job`'s take or load: a running app, yes; one its
/// controllers stopped stays as they left it; one stopping is refused (someone else is stopping
/// it, and a start would undo that). One the vault stopped for this job (an earlier attempt was
/// cut short before it started it again) is the vault's to start.
async fn stops_it(tally: &mut Tally, app: Principal, job: u64, method: &str) -> Answer<bool> {
    let answer = tally.read(app_client::management::<_, Status>("canister_status", &canister(app), true).await);
    let stopped_by_vault = with_state(|s| s.native_job(job)).is_some_and(|n| n.stopped);
    answer.map(|status| match status?.status {
        CanisterStatusType::Running => Ok(true),
        CanisterStatusType::Stopped | CanisterStatusType::Stopping if stopped_by_vault => Ok(true),
        CanisterStatusType::Stopped => Ok(false),
        CanisterStatusType::Stopping => Err(BackupError::NativeRefused {
            method: method.to_string(),
            reject_code: 0,
            message: "the canister is stopping: the vault neither stops nor starts a canister someone else is stopping".into(),
        }),
    })
}

/// Stops `app` for job `job`, noted before the stop is sent (`NativeJob::stopped`); after any
/// answer but a success, starts it again, as a stop that timed out or failed may leave it
/// stopping.
async fn stop(tally: &mut Tally, app: Principal, job: u64) -> Answer<()> {
    let already = with_state(|s| s.native_job(job)).is_some_and(|n| n.stopped);
    with_state(|s| s.update_native_job(job, |n| n.stopped = true));
    let answer = tally.read(app_client::management("stop_canister", &canister(app), false).await);
    match answer {
        Ok(Ok(())) => {}
        // Not sent: the app is as it was, stopped by an earlier attempt or not.
        Err(CallFailure::NotSent) => with_state(|s| s.update_native_job(job, |n| n.stopped = already)),
        _ => {
            let _ = start(tally, app, job).await;
        }
    }
    answer
}

/// Starts `app`, asking again after a failure, [`START_ATTEMPTS`] times at most; once started,
/// job `job` no longer has it stopped.
async fn start(tally: &mut Tally, app: Principal, job: u64) -> Answer<()> {
    let mut answer = tally.read(app_client::management("start_canister", &canister(app), false).await);
    for _ in 1..START_ATTEMPTS {
        if matches!(answer, Ok(Ok(()))) {
            break;
        }
        answer = tally.read(app_client::management("start_canister", &canister(app), false).await);
    }
    if matches!(answer, Ok(Ok(()))) {
        with_state(|s| {
            if s.native_job(job).is_some() {
                s.update_native_job(job, |n| n.stopped = false);
            }
        });
    }
    answer
}

/// Takes a native snapshot of `app`, replacing `replace` if given; one that is gone (its
/// controllers deleted it) is not replaced.
async fn take(tally: &mut Tally, app: Principal, replace: Option<Vec<u8>>) -> Answer<Snapshot> {
    let args = |replace_snapshot| TakeCanisterSnapshotArgs {
        canister_id: app,
        replace_snapshot,
        uninstall_code: None,
        sender_canister_version: Some(ic_cdk::api::canister_version()),
    };
    let answer = tally.read(app_client::management("take_canister_snapshot", &args(replace.clone()), false).await);
    match answer {
        Ok(Err(BackupError::NativeRefused { .. })) if replace.is_some() && !still_there(tally, app, replace.as_deref()).await => {
            tally.read(app_client::management("take_canister_snapshot", &args(None), false).await)
        }
        answer => answer,
    }
}

/// Whether `app` still has native snapshot `id` (also when its snapshots cannot be listed).
async fn still_there(tally: &mut Tally, app: Principal, id: Option<&[u8]>) -> bool {
    match tally.read(app_client::management::<_, Vec<Snapshot>>("list_canister_snapshots", &canister(app), true).await) {
        Ok(Ok(snapshots)) => snapshots.iter().any(|s| Some(s.id.as_slice()) == id),
        _ => true,
    }
}

/// Opens a native snapshot: stop (unless the app keeps running), take, start, read the metadata.
/// The image it describes is the dump's manifest.
pub async fn begin(job: &JobRecord) -> Option<(JobRecord, Event)> {
    let (app, mut tally) = (job.app, Tally::default());
    let info = app_client::canister_info(app).await.ok();
    let native = with_state(|s| s.native_app(app))?;
    let (event, note) = match open(&mut tally, job, native.keep_running, native.taken).await {
        Ok((manifest, note)) => (Event::DumpBegun(Ok(manifest)), Some(note)),
        Err(event) => (*event, None),
    };
    let Some(mut job) = tally.settle(job) else { return released_if_over(app, job.id) };
    job.notes.extend(note);
    if let Some(info) = info {
        job.module_hash = info.module_hash;
        with_state(|s| s.note_canister_info(app, info.controllers, info.module_hash));
    }
    Some((job, event))
}

async fn open(tally: &mut Tally, job: &JobRecord, keep_running: bool, taken: Option<Vec<u8>>) -> Result<(DumpManifest, String), Box<Event>> {
    let app = job.app;
    // A repeated attempt reads the snapshot an earlier one took: one take, one downtime. It
    // starts the app first if the earlier one could not.
    let (snapshot_id, how) = match with_state(|s| s.native_job(job.id)) {
        Some(NativeJob { snapshot: Some(id), stopped, .. }) => {
            if stopped {
                ended(start(tally, app, job.id).await, dump_refused)?;
            }
            (id, "snapshotted by an earlier attempt".to_string())
        }
        _ => take_for(tally, job, keep_running, taken).await?,
    };
    let args = ReadCanisterSnapshotMetadataArgs { canister_id: app, snapshot_id: snapshot_id.clone() };
    let metadata = ended(tally.read(app_client::management::<_, native::Metadata>("read_canister_snapshot_metadata", &args, true).await), dump_refused)?;
    let header = native::encode_header(&metadata);
    let layout = Layout::new(&metadata, header.len() as u64, NATIVE_CHUNK_SIZE)
        .map_err(|message| Box::new(dump_refused(BackupError::InvalidImage { message })))?;
    with_state(|s| s.update_native_job(job.id, |n| *n = NativeJob { snapshot: Some(snapshot_id), header, stopped: n.stopped }));
    let manifest = DumpManifest {
        job: job.id,
        state_kind: StateKind::Native,
        size: layout.size(),
        chunk_size: NATIVE_CHUNK_SIZE,
        taken_at_nanos: metadata.taken_at_timestamp,
        state_layout: None,
        content_hashes: None,
        base: None,
        from_upgrade_save: None,
        content_index: None,
    };
    let note = format!(
        "native snapshot taken: module {} bytes, heap {} bytes, stable memory {} bytes; the app was {how}",
        layout.wasm_module, layout.wasm_memory, layout.stable_memory
    );
    Ok((manifest, note))
}

/// Takes job `job`'s snapshot of its app, stopped for the take unless it keeps running (or its
/// controllers stopped it); the snapshot's id, and how the app was.
async fn take_for(tally: &mut Tally, job: &JobRecord, keep_running: bool, taken: Option<Vec<u8>>) -> Result<(Vec<u8>, String), Box<Event>> {
    let app = job.app;
    let stops = !keep_running && ended(stops_it(tally, app, job.id, "take_canister_snapshot").await, dump_refused)?;
    let stopped_at = ic_cdk::api::time();
    if stops {
        ended(stop(tally, app, job.id).await, dump_refused)?;
    }
    let snapshot = take(tally, app, taken).await;
    if let Ok(Ok(snapshot)) = &snapshot {
        let id = snapshot.id.clone();
        with_state(|s| {
            s.note_native_taken(app, Some(id.clone()));
            s.update_native_job(job.id, |n| n.snapshot = Some(id));
        });
    }
    if stops {
        ended(start(tally, app, job.id).await, dump_refused)?;
    }
    let downtime = ic_cdk::api::time().saturating_sub(stopped_at);
    let snapshot = ended(snapshot, dump_refused)?;
    let how = match (keep_running, stops) {
        (true, _) => "running".to_string(),
        (false, true) => format!("stopped for {} ms (stop, take, start)", downtime / 1_000_000),
        (false, false) => "stopped already, by its controllers, and left so".to_string(),
    };
    Ok((snapshot.id, how))
}

/// The layout of the snapshot job `job` reads, and the native snapshot and header it reads from.
fn reading(job: u64, size: u64, chunk_size: u64) -> Option<(Layout, Vec<u8>, Vec<u8>)> {
    let NativeJob { snapshot, header, .. } = with_state(|s| s.native_job(job))?;
    let (layout, _) = Layout::of_image(size, chunk_size, &header).ok()?;
    Some((layout, snapshot?, header))
}

/// Reads chunks `indices` of the native snapshot and stores each one, hashed by the vault.
pub async fn chunks(job: &JobRecord, building: &Building, indices: Vec<u32>) -> Option<(JobRecord, Event)> {
    let transfer = &building.transfer;
    let Some((layout, snapshot_id, header)) = reading(job.id, transfer.size, transfer.chunk_size) else { return lost(job) };
    // The header is the vault's own: stored without a call.
    let (header_chunks, reads): (Vec<u32>, Vec<u32>) = indices.into_iter().partition(|&i| i == layout.header_chunk());
    let store = |index: u32, bytes: Vec<u8>| {
        let span = layout.span(index).expect("a transfer's chunks are the layout's");
        if bytes.len() as u64 != span.len {
            return ChunkAnswer::Failed(CallFailure::Corrupted { index });
        }
        let chunk = layout.chunk(index, bytes);
        match HashedChunk::check(ContentHash::Sha256, transfer.size, transfer.chunk_size, index, &chunk, None) {
            Ok(hashed) => {
                with_state(|s| s.store_chunk(job.app, building.snapshot, index, &hashed));
                ChunkAnswer::Moved(index)
            }
            Err(_) => ChunkAnswer::Failed(CallFailure::Corrupted { index }),
        }
    };
    let stored: Vec<ChunkAnswer> = header_chunks.into_iter().map(|index| store(index, header.clone())).collect();
    let calls = reads.iter().map(|&index| {
        let kind = layout.span(index).and_then(|span| span.read_kind()).expect("a part's chunk is read");
        let args = ReadCanisterSnapshotDataArgs { canister_id: job.app, snapshot_id: snapshot_id.clone(), kind };
        async move {
            let answer = app_client::management::<_, ReadCanisterSnapshotDataResult>("read_canister_snapshot_data", &args, true).await?;
            Ok(app_client::Answer { value: answer.value.map(|r| r.chunk), request_bytes: answer.request_bytes, reply_bytes: answer.reply_bytes })
        }
    });
    let (job, answers) = calls::make(job, calls.collect()).await?;
    let Event::Chunks(mut moved) = calls::chunks_event(reads, answers, store) else { unreachable!("chunk answers make a chunks event") };
    moved.extend(stored);
    Some((job, Event::Chunks(moved)))
}

/// Closes a native snapshot: its hash from the chunks stored, and the native snapshot deleted
/// (one that cannot be is noted, and replaced by the app's next snapshot).
pub async fn end(job: &JobRecord, building: &Building) -> Option<(JobRecord, Event)> {
    let (size, chunk_size) = (building.transfer.size, building.transfer.chunk_size);
    let manifest_hash = with_state(|s| s.manifest_hash(building.snapshot, ContentHash::Sha256, size, chunk_size));
    let mut tally = Tally::default();
    let note = delete(&mut tally, job.app, job.id).await;
    let mut job = tally.settle(job)?;
    job.notes.extend(note);
    Some((job, Event::DumpEnded { manifest_hash, kept_as_base: false }))
}

/// Deletes job `job`'s native snapshot on `app`, if it has one, and forgets it once it is gone;
/// the note says why one could not be deleted.
async fn delete(tally: &mut Tally, app: Principal, job: u64) -> Option<String> {
    let snapshot_id = with_state(|s| s.native_job(job))?.snapshot?;
    let args = DeleteCanisterSnapshotArgs { canister_id: app, snapshot_id: snapshot_id.clone() };
    let answer = tally.read(app_client::management::<_, ()>("delete_canister_snapshot", &args, false).await);
    let gone = match &answer {
        Ok(Ok(())) => true,
        // Deleted already (a repeated delete, or by the app's controllers).
        Ok(Err(BackupError::NativeRefused { .. })) => !still_there(tally, app, Some(&snapshot_id)).await,
        _ => false,
    };
    if !gone {
        let why = unanswered(answer).expect("a deleted snapshot is gone");
        // Kept as the vault's snapshot of the app, unless it holds one: the next take replaces it.
        with_state(|s| {
            if s.native_app(app).is_some_and(|n| n.taken.is_none()) {
                s.note_native_taken(app, Some(snapshot_id.clone()));
            }
        });
        return Some(format!("native snapshot {} could not be deleted ({why}): the next one replaces it", vault_api::hex(&snapshot_id)));
    }
    with_state(|s| {
        if s.native_app(app).and_then(|n| n.taken) == Some(snapshot_id) {
            s.note_native_taken(app, None);
        }
        s.remove_native_job(job);
    });
    None
}

/// Releases what job `job` left on `app`, its job over: starts the app if the job left it
/// stopped, and deletes the snapshot it took or uploaded. Best effort: a snapshot left is
/// replaced by the app's next one, or shows in its snapshot list.
pub async fn release(app: Principal, job: u64) {
    let mut tally = Tally::default();
    if with_state(|s| s.native_job(job)).is_some_and(|n| n.stopped) {
        let why = unanswered(start(&mut tally, app, job).await);
        // The job is over: its record says what the caller must do.
        if let Some(why) = why {
            with_state(|s| {
                if let Some(mut record) = s.job(job) {
                    job::note(&mut record, format!("the app, stopped for this job, could not be started again ({why}): start it"));
                    s.put_job(record);
                }
            });
        }
    }
    let _ = delete(&mut tally, app, job).await;
    with_state(|s| s.remove_native_job(job));
}

/// After a step whose job ended meanwhile (cancelled while its app was snapshotted, say): what the
/// step made on the app is released now, as the job's end released what it knew of. `None`.
fn released_if_over(app: Principal, job: u64) -> Option<(JobRecord, Event)> {
    if with_state(|s| s.job(job)).is_none_or(|j| j.is_finished()) {
        ic_cdk::futures::spawn(release(app, job));
    }
    None
}

/// The snapshot `snapshot_id` of `source` if it is still complete, with its layout and metadata
/// (from its last chunk).
/// A native image's layout and metadata, as its header tells them, or why it does not.
type Described = Result<(Layout, native::Metadata), String>;

fn restorable(source: Principal, snapshot_id: u64) -> Option<(SnapshotRecord, Described)> {
    with_state(|s| {
        let record = s.snapshot(source, snapshot_id).filter(|r| r.status == SnapshotStatus::Complete)?;
        let (_, last) = s.chunk(snapshot_id, record.chunks.checked_sub(1)?)?;
        let layout = Layout::of_image(record.size, record.chunk_size, &last);
        Some((record, layout))
    })
}

/// Without a call, for a chunk step: the vault lost the job's native snapshot on the IC (a record
/// of a build before it), so the job starts over, as when an app loses a dump.
fn lost(job: &JobRecord) -> Option<(JobRecord, Event)> {
    Some((job::answered(job.clone()), Event::Chunks(vec![ChunkAnswer::Refused(BackupError::UnknownJob { job: job.id })])))
}

fn gone(job: &JobRecord) -> Option<(JobRecord, Event)> {
    Some((job::answered(job.clone()), Event::SnapshotGone))
}

/// Uploads the snapshot's metadata onto the target, a new native snapshot of it (once: a repeated
/// attempt finds the one uploaded).
pub async fn restore_begin(job: &JobRecord, source: Principal, snapshot_id: u64) -> Option<(JobRecord, Event)> {
    let Some((record, layout)) = restorable(source, snapshot_id) else { return gone(job) };
    let metadata = match layout.and_then(|(_, metadata)| native::upload_args(&metadata, job.app, None)) {
        Ok(args) => args,
        Err(message) => return Some((job::answered(job.clone()), Event::RestoreBegun(Err(BackupError::InvalidImage { message }), record))),
    };
    if with_state(|s| s.native_job(job.id)).is_some_and(|n| n.snapshot.is_some()) {
        return Some((job::answered(job.clone()), Event::RestoreBegun(Ok(()), record)));
    }
    let mut tally = Tally::default();
    let answer = tally.read(app_client::management::<_, UploadCanisterSnapshotMetadataResult>("upload_canister_snapshot_metadata", &metadata, false).await);
    if let Ok(Ok(uploaded)) = &answer {
        with_state(|s| s.update_native_job(job.id, |n| n.snapshot = Some(uploaded.snapshot_id.clone())));
    }
    let Some(job) = tally.settle(job) else { return released_if_over(job.app, job.id) };
    let event = match answer {
        Ok(answer) => Event::RestoreBegun(answer.map(|_| ()), record),
        Err(failure) => Event::CallFailed(failure),
    };
    Some((job, event))
}

/// Uploads chunks `indices` of the snapshot into the target's uploaded snapshot, each checked
/// against its digest first, without the zeros padding its part (the header is no data).
pub async fn restore_chunks(job: &JobRecord, source: Principal, snapshot_id: u64, indices: Vec<u32>) -> Option<(JobRecord, Event)> {
    let Some((_, Ok((layout, _)))) = restorable(source, snapshot_id) else { return gone(job) };
    let Some(uploaded) = with_state(|s| s.native_job(job.id)).and_then(|n| n.snapshot) else { return lost(job) };
    let (header_chunks, uploads): (Vec<u32>, Vec<u32>) = indices.into_iter().partition(|&i| i == layout.header_chunk());
    let calls = uploads.iter().map(|&index| {
        let kind = layout.span(index).and_then(|span| span.upload_kind()).expect("a part's chunk is uploaded");
        let len = layout.span(index).map_or(0, |span| span.len as usize);
        let stored = with_state(|s| s.chunk(snapshot_id, index)).expect("a complete snapshot has every chunk");
        let (app, snapshot_id) = (job.app, uploaded.clone());
        async move {
            let (digest, mut data) = stored;
            if HashedChunk::new(ContentHash::Sha256, &data).hash() != digest {
                return Err(CallFailure::Corrupted { index });
            }
            data.truncate(len);
            let args = UploadData { canister_id: app, snapshot_id: ByteBuf::from(snapshot_id), kind, chunk: ByteBuf::from(data) };
            app_client::management::<_, ()>("upload_canister_snapshot_data", &args, true).await
        }
    });
    let (job, answers) = calls::make(job, calls.collect()).await?;
    let Event::Chunks(mut moved) = calls::chunks_event(uploads, answers, |index, ()| ChunkAnswer::Moved(index)) else {
        unreachable!("chunk answers make a chunks event")
    };
    // The header is no data: the metadata upload carried it.
    moved.extend(header_chunks.into_iter().map(ChunkAnswer::Moved));
    Some((job, Event::Chunks(moved)))
}

/// Loads the uploaded snapshot onto the target, stopped for the load only. The report's hash is
/// the snapshot's manifest hash from the digests its chunks were checked against.
pub async fn restore_commit(job: &JobRecord, source: Principal, snapshot_id: u64) -> Option<(JobRecord, Event)> {
    let Some((record, _)) = restorable(source, snapshot_id) else { return gone(job) };
    let Some(uploaded) = with_state(|s| s.native_job(job.id)).and_then(|n| n.snapshot) else {
        return Some((job::answered(job.clone()), Event::Committed(Err(BackupError::UnknownJob { job: job.id }), record.sha256)));
    };
    let sha256 = with_state(|s| s.manifest_hash(snapshot_id, record.content_hash, record.size, record.chunk_size)).unwrap_or_default();
    let report = RestoreReport { job: job.id, state_kind: StateKind::Native, size: record.size, sha256, loads_at_upgrade: None };
    if sha256 != record.sha256 {
        // The transition refuses the mismatch: nothing is stopped or loaded.
        return Some((job::answered(job.clone()), Event::Committed(Ok(report), record.sha256)));
    }
    let (app, mut tally) = (job.app, Tally::default());
    let (loaded, unstarted) = load(&mut tally, app, job.id, uploaded).await;
    let mut job = tally.settle(job)?;
    if let Some(why) = unstarted {
        let loaded = if matches!(loaded, Ok(Ok(()))) { "the snapshot is loaded, but " } else { "" };
        job.notes.push(format!("{loaded}the target could not be started again ({why}): start it"));
    }
    let event = match loaded {
        Ok(answer) => Event::Committed(answer.map(|()| report), record.sha256),
        Err(failure) => Event::CallFailed(failure),
    };
    Some((job, event))
}

/// Loads `snapshot` onto `app`, stopped for the load if it runs; the load's answer, and why the
/// app could not be started again after it if it could not (a load that succeeded stands: it is
/// not repeated).
async fn load(tally: &mut Tally, app: Principal, job: u64, snapshot: Vec<u8>) -> (Answer<()>, Option<String>) {
    let stops = match stops_it(tally, app, job, "load_canister_snapshot").await {
        Ok(Ok(stops)) => stops,
        Ok(Err(error)) => return (Ok(Err(error)), None),
        Err(failure) => return (Err(failure), None),
    };
    if stops && let answer @ (Ok(Err(_)) | Err(_)) = stop(tally, app, job).await {
        return (answer, None);
    }
    let args = LoadCanisterSnapshotArgs { canister_id: app, snapshot_id: snapshot, sender_canister_version: Some(ic_cdk::api::canister_version()) };
    let loaded = tally.read(app_client::management::<_, ()>("load_canister_snapshot", &args, false).await);
    if !stops {
        return (loaded, None);
    }
    let unstarted = unanswered(start(tally, app, job).await);
    (loaded, unstarted)
}

/// Why a call that must succeed did not: its refusal or its failure; `None` on success.
fn unanswered(answer: Answer<()>) -> Option<String> {
    match answer {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(error.to_string()),
        Err(failure) => Some(failure.to_string()),
    }
}
