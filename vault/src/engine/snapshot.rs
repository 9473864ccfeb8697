//! A snapshot job's steps: open the app's dump, move its chunks into the vault's store (each
//! hashed by the vault in the snapshot's content hash), close it.

use vault_api::{ContentHash, Sha256};

use super::calls;
use super::job::{ChunkAnswer, Event};
use crate::app_client::{self, CallFailure};
use crate::state::{HashedChunk, with_state};
use crate::storable::{Building, JobRecord};

/// Opens the dump; notes the app's controllers and module hash as they are now.
pub async fn begin(job: &JobRecord) -> Option<(JobRecord, Event)> {
    let info = app_client::canister_info(job.app).await.ok();
    let (mut job, event) = calls::make_one(job, app_client::dump_begin(job.app, job.id), Event::DumpBegun).await?;
    if let Some(info) = info {
        job.module_hash = info.module_hash;
        with_state(|s| s.note_canister_info(job.app, info.controllers, info.module_hash));
    }
    Some((job, event))
}

/// Fetches chunks `indices` and stores each one that is intact.
pub async fn chunks(job: &JobRecord, building: &Building, indices: Vec<u32>) -> Option<(JobRecord, Event)> {
    let requests = indices.iter().map(|&i| app_client::dump_chunk(job.app, job.id, i)).collect();
    let (job, answers) = calls::make(job, requests).await?;
    let transfer = &building.transfer;
    let content_hash = with_state(|s| s.snapshot(job.app, building.snapshot)).expect("a snapshot being built has its record").content_hash;
    let event = calls::chunks_event(indices, answers, |index, chunk| {
        // The vault's own digest addresses the chunk. An app's is checked only when it claims one
        // (its library hashes on dump: release 0.1.0's, a build before BLAKE3) in the hash the
        // vault computes anyway: its SHA-256 for a SHA-256 snapshot.
        let claimed = Some(&chunk.sha256).filter(|claim| content_hash == ContentHash::Sha256 && **claim != Sha256::default());
        match HashedChunk::check(content_hash, transfer.size, transfer.chunk_size, index, &chunk.data, claimed) {
            Ok(hashed) if chunk.index == index => {
                with_state(|s| s.store_chunk(job.app, building.snapshot, index, &hashed));
                ChunkAnswer::Moved(index)
            }
            _ => ChunkAnswer::Failed(CallFailure::Corrupted { index }),
        }
    });
    Some((job, event))
}

/// Closes the dump; the snapshot's hash comes from the chunks stored.
pub async fn end(job: &JobRecord, building: &Building) -> Option<(JobRecord, Event)> {
    let (snapshot, size, chunk_size) = (building.snapshot, building.transfer.size, building.transfer.chunk_size);
    calls::make_one(job, app_client::dump_end(job.app, job.id), |_| {
        Event::DumpEnded(with_state(|s| {
            let content_hash = s.snapshot(job.app, snapshot)?.content_hash;
            s.manifest_hash(snapshot, content_hash, size, chunk_size)
        }))
    })
    .await
}
