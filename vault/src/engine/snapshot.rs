//! A snapshot job's steps: open the app's dump, move its chunks into the vault's store (each
//! hashed by the vault in the snapshot's content hash), close it. A dump incremental against a
//! stable-memory base first has the new snapshot reference the base's chunks, in bounded steps;
//! then each chunk the app answers with no page changed keeps the base's, and any other is rebuilt
//! over it. A serde dump incremental against a base has each chunk rebuilt from the ranges of the
//! base's image it names and the bytes it carries, the base read where it is kept.

use vault_api::manifest::chunk_range;
use vault_api::protocol::{BackupError, CHUNK_SIZE, Chunk, StateKind};
use vault_api::{ContentHash, Sha256};

use super::calls;
use super::incremental;
use super::job::{self, ChunkAnswer, Event};
use crate::app_client::{self, CallFailure};
use crate::pages;
use crate::state::{HashedChunk, State, with_state};
use crate::storable::{Base, Building, JobRecord, SnapshotStatus, Task, Transfer};

/// Opens the dump, incremental against snapshot `base` if given, with a content index if the app
/// takes incremental snapshots (a serde dump's may become the next one's base); notes the app's
/// controllers and module hash as they are now. An app that says the vault is not its vault (any
/// more) holds no base of the vault's: it is forgotten.
pub async fn begin(job: &JobRecord, base: Option<u64>) -> Option<(JobRecord, Event)> {
    let info = app_client::canister_info(job.app).await.ok();
    let from_upgrade_save = matches!(job.task, Task::Snapshot { from_upgrade_save: true, .. });
    let content_index = with_state(|s| s.incremental(job.app).max_incrementals > 0);
    let dump_begin = app_client::dump_begin(job.app, job.id, base, from_upgrade_save, content_index);
    let (mut job, event) = calls::make_one(job, dump_begin, Event::DumpBegun).await?;
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
        Some(base) if transfer.state_kind == StateKind::Serde => serde_chunk(&job, snapshot, transfer, &base, content_hash, index, chunk),
        // A chunk moved already references what it is: rebuilding it again would build over itself.
        Some(_) if moved.contains(index) => ChunkAnswer::Moved(index),
        Some(base) => incremental_chunk(&job, snapshot, transfer, &base, content_hash, index, chunk),
    });
    Some((job, event))
}

/// Chunk `index` of a full dump, checked and stored.
fn full_chunk(job: &JobRecord, snapshot: u64, transfer: &Transfer, content_hash: ContentHash, index: u32, chunk: Chunk) -> ChunkAnswer {
    if chunk.changed_pages.is_some() || chunk.base_ranges.as_ref().is_some_and(|ranges| !ranges.is_empty()) {
        return ChunkAnswer::Invalid { index, reason: "a chunk of a full dump carries changed pages or ranges of a base".into() };
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
    let (Some(bitmap), None) = (&chunk.changed_pages, &chunk.base_ranges) else {
        return ChunkAnswer::Invalid { index, reason: "a chunk of an incremental stable-memory dump carries no changed pages, or ranges".into() };
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

/// Chunk `index` of a serde dump incremental against `base`, its ranges checked: rebuilt from them
/// and its bytes, the base's bytes read from the base snapshot (each of its chunks the ranges are
/// in once, at most `MAX_BASE_CHUNKS`), and stored whole: a serialization's bytes move with every
/// record before them that grows or shrinks, so the chunk is no page delta of the base's at its
/// index. The base is read while it is complete: one deleted meanwhile fails the job.
fn serde_chunk(job: &JobRecord, snapshot: u64, transfer: &Transfer, base: &Base, content_hash: ContentHash, index: u32, chunk: Chunk) -> ChunkAnswer {
    let (None, Some(ranges)) = (&chunk.changed_pages, &chunk.base_ranges) else {
        return ChunkAnswer::Invalid { index, reason: "a chunk of an incremental serde dump carries no ranges of its base, or changed pages".into() };
    };
    if chunk.index != index {
        return ChunkAnswer::Failed(CallFailure::Corrupted { index });
    }
    let range = chunk_range(transfer.size, CHUNK_SIZE, index);
    let len = range.end - range.start;
    if let Err(reason) = incremental::check_ranges(len, base.size, ranges, &chunk.data) {
        return ChunkAnswer::Invalid { index, reason };
    }
    with_state(|s| {
        let complete = s.snapshot(job.app, base.snapshot).is_some_and(|r| r.status == SnapshotStatus::Complete && r.size == base.size);
        if !complete {
            return ChunkAnswer::BaseDeleted;
        }
        let mut reader = BaseReader { snapshot: base.snapshot, read: Vec::new() };
        let rebuilt = vault_api::protocol::rebuild_from_ranges(len, ranges, &chunk.data, |from, len, out| reader.read(s, from, len, out))
            .expect("a complete snapshot has every chunk of its size");
        s.store_chunk(job.app, snapshot, index, &HashedChunk::new(content_hash, &rebuilt));
        ChunkAnswer::Moved(index)
    })
}

/// Reads a base snapshot's image by offset, each of its chunks once (the ranges of one answer are
/// in at most `MAX_BASE_CHUNKS` of them, checked).
struct BaseReader {
    snapshot: u64,
    read: Vec<(u32, Vec<u8>)>,
}

impl BaseReader {
    /// Appends the `len` bytes from `from` in the image.
    fn read(&mut self, s: &State, mut from: u64, len: u32, out: &mut Vec<u8>) -> Option<()> {
        let end = from + u64::from(len);
        while from < end {
            let index = u32::try_from(from / CHUNK_SIZE).ok()?;
            let start = (from % CHUNK_SIZE) as usize;
            let take = ((end - from) as usize).min(CHUNK_SIZE as usize - start);
            if !self.read.iter().any(|(i, _)| *i == index) {
                self.read.push((index, s.chunk(self.snapshot, index)?.1));
            }
            let (_, bytes) = self.read.iter().find(|(i, _)| *i == index)?;
            out.extend_from_slice(bytes.get(start..start + take)?);
            from += take as u64;
        }
        Some(())
    }
}

/// Closes the dump, naming the snapshot the app's next base if it is complete and may be one
/// (`incremental::may_be_base`), at the first attempt only: an app that failed to keep it (its
/// index too large for one message, say) still closes the dump when asked again without, and
/// the snapshot completes, the next one full. The snapshot's hash comes from the chunks stored.
pub async fn end(job: &JobRecord, building: &Building) -> Option<(JobRecord, Event)> {
    let (snapshot, size, chunk_size) = (building.snapshot, building.transfer.size, building.transfer.chunk_size);
    let (manifest_hash, may_be_base) = with_state(|s| {
        let record = s.snapshot(job.app, snapshot)?;
        Some((s.manifest_hash(snapshot, record.content_hash, size, chunk_size), incremental::may_be_base(&record)))
    })
    .unwrap_or((None, false));
    // `begin_attempt` counted this attempt: more than one is a repeat.
    let base = (manifest_hash.is_some() && may_be_base && job.retries <= 1).then_some(snapshot);
    calls::make_one(job, app_client::dump_end(job.app, job.id, base), |answer| Event::DumpEnded {
        manifest_hash,
        kept_as_base: base.is_some() && answer.is_ok(),
    })
    .await
}
