//! A snapshot job's steps: open the app's dump, move its chunks into the vault's store (each
//! hashed by the vault in the snapshot's content hash), close it. A dump incremental against a
//! base first has the new snapshot reference the base's chunks, in bounded steps; then each chunk
//! the app answers with no page changed keeps the base's, and any other is rebuilt over it.

use vault_api::manifest::chunk_range;
use vault_api::protocol::{BackupError, CHUNK_SIZE, Chunk};
use vault_api::{ContentHash, Sha256};

use super::calls;
use super::incremental;
use super::job::{self, ChunkAnswer, Event};
use crate::app_client::{self, CallFailure};
use crate::pages;
use crate::state::{HashedChunk, with_state};
use crate::storable::{Base, Building, JobRecord, Task, Transfer};

/// Opens the dump, incremental against snapshot `base` if given; notes the app's controllers
/// and module hash as they are now. An app that says the vault is not its vault (any more) holds
/// no base of the vault's: it is forgotten.
pub async fn begin(job: &JobRecord, base: Option<u64>) -> Option<(JobRecord, Event)> {
    let info = app_client::canister_info(job.app).await.ok();
    let from_upgrade_save = matches!(job.task, Task::Snapshot { from_upgrade_save: true, .. });
    let (mut job, event) = calls::make_one(job, app_client::dump_begin(job.app, job.id, base, from_upgrade_save), Event::DumpBegun).await?;
    if let Event::DumpBegun(Err(BackupError::NotTheVault { .. } | BackupError::NoVaultSet)) = event {
        with_state(|s| s.forget_base(job.app));
    }
    if let Some(info) = info {
        job.module_hash = info.module_hash;
        with_state(|s| s.note_canister_info(job.app, info.controllers, info.module_hash));
    }
    Some((job, event))
}

/// Has the new snapshot reference the next entries of its base (`incremental::next_copy`), within
/// this message: no call.
pub fn copy_base(job: &JobRecord, building: &Building, base: &Base) -> Option<(JobRecord, Event)> {
    let entries = incremental::next_copy(base, building.transfer.chunks);
    let copied = with_state(|s| s.copy_entries(job.app, base.snapshot, building.snapshot, entries));
    Some((job::answered(job.clone()), Event::BaseCopied(copied)))
}

/// Fetches chunks `indices` and stores each one that is intact: in a full dump, as the app
/// answered it; in one incremental against `base`, rebuilt over the base's.
pub async fn chunks(job: &JobRecord, building: &Building, base: Option<Base>, indices: Vec<u32>) -> Option<(JobRecord, Event)> {
    let requests = indices.iter().map(|&i| app_client::dump_chunk(job.app, job.id, i)).collect();
    let (job, answers) = calls::make(job, requests).await?;
    let (snapshot, transfer) = (building.snapshot, &building.transfer);
    let content_hash = with_state(|s| s.snapshot(job.app, snapshot)).expect("a snapshot being built has its record").content_hash;
    let moved = job.task.transfer().map(|t| t.done.clone()).unwrap_or_default();
    let event = calls::chunks_event(indices, answers, |index, chunk| match base {
        None => full_chunk(&job, snapshot, transfer, content_hash, index, chunk),
        // A chunk moved already references what it is: rebuilding it again would build over itself.
        Some(_) if moved.contains(index) => ChunkAnswer::Moved(index),
        Some(base) => incremental_chunk(&job, snapshot, transfer, &base, content_hash, index, chunk),
    });
    Some((job, event))
}

/// Chunk `index` of a full dump, checked and stored.
fn full_chunk(job: &JobRecord, snapshot: u64, transfer: &Transfer, content_hash: ContentHash, index: u32, chunk: Chunk) -> ChunkAnswer {
    if chunk.changed_pages.is_some() {
        return ChunkAnswer::Invalid { index, reason: "a chunk of a full dump carries changed pages".into() };
    }
    // The vault's own digest addresses the chunk. An app's is checked only when it claims one
    // (its library hashes on dump: release 0.1.0's, a build before BLAKE3) in the hash the
    // vault computes anyway: its SHA-256 for a SHA-256 snapshot.
    let claimed = Some(&chunk.sha256).filter(|claim| content_hash == ContentHash::Sha256 && **claim != Sha256::default());
    match HashedChunk::check(content_hash, transfer.size, transfer.chunk_size, index, &chunk.data, claimed) {
        Ok(hashed) if chunk.index == index => {
            with_state(|s| s.store_chunk(job.app, snapshot, index, &hashed));
            ChunkAnswer::Moved(index)
        }
        _ => ChunkAnswer::Failed(CallFailure::Corrupted { index }),
    }
}

/// Chunk `index` of a dump incremental against `base`, its changed pages checked: with none and
/// the base's chunk as long, the new snapshot keeps referencing the base's (no bytes are read);
/// any other is the base's chunk (the new snapshot's reference to it, zeros past the base's end)
/// with the pages put in, hashed and stored in its place (a delta over the base's where the chunk
/// store allows).
fn incremental_chunk(
    job: &JobRecord,
    snapshot: u64,
    transfer: &Transfer,
    base: &Base,
    content_hash: ContentHash,
    index: u32,
    chunk: Chunk,
) -> ChunkAnswer {
    let Some(bitmap) = &chunk.changed_pages else {
        return ChunkAnswer::Invalid { index, reason: "a chunk of an incremental dump carries no changed pages".into() };
    };
    if chunk.index != index {
        return ChunkAnswer::Failed(CallFailure::Corrupted { index });
    }
    let range = chunk_range(transfer.size, CHUNK_SIZE, index);
    let len = range.end - range.start;
    let changed = match incremental::check_pages(len, bitmap, &chunk.data) {
        Ok(changed) => changed,
        Err(reason) => return ChunkAnswer::Invalid { index, reason },
    };
    let shared = index < incremental::shared_chunks(base, transfer.chunks);
    if !changed && shared && incremental::base_chunk_len(base, index) == len {
        return ChunkAnswer::Moved(index);
    }
    with_state(|s| match shared.then(|| s.chunk(snapshot, index).expect("the new snapshot references its base's chunks")) {
        Some((base_hash, base_chunk)) => {
            let rebuilt = pages::apply(&base_chunk, len, bitmap, &chunk.data);
            s.store_rebuilt_chunk(job.app, snapshot, index, &HashedChunk::new(content_hash, &rebuilt), (base_hash, &base_chunk));
        }
        None => s.store_chunk(job.app, snapshot, index, &HashedChunk::new(content_hash, &pages::apply(&[], len, bitmap, &chunk.data))),
    });
    ChunkAnswer::Moved(index)
}

/// Closes the dump, naming the snapshot the app's next base if it is complete and may be one
/// (`incremental::may_be_base`); the snapshot's hash comes from the chunks stored.
pub async fn end(job: &JobRecord, building: &Building) -> Option<(JobRecord, Event)> {
    let (snapshot, size, chunk_size) = (building.snapshot, building.transfer.size, building.transfer.chunk_size);
    let (manifest_hash, may_be_base) = with_state(|s| {
        let record = s.snapshot(job.app, snapshot)?;
        Some((s.manifest_hash(snapshot, record.content_hash, size, chunk_size), incremental::may_be_base(&record)))
    })
    .unwrap_or((None, false));
    let base = (manifest_hash.is_some() && may_be_base).then_some(snapshot);
    calls::make_one(job, app_client::dump_end(job.app, job.id, base), |answer| Event::DumpEnded {
        manifest_hash,
        kept_as_base: base.is_some() && answer.is_ok(),
    })
    .await
}
