//! A snapshot job's steps: open the app's dump, move its chunks into the vault's store (each
//! checked against its SHA-256), close it.

use vault_api::manifest::check_chunk;

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
    let event = calls::chunks_event(indices, answers, |index, chunk| {
        let mut hashed = None;
        let checked = check_chunk(transfer.size, transfer.chunk_size, index, chunk.data.len() as u64, &chunk.sha256, || {
            hashed.insert(HashedChunk::new(&chunk.data)).hash()
        });
        match hashed {
            Some(hashed) if checked.is_ok() && chunk.index == index => {
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
        Event::DumpEnded(with_state(|s| s.manifest_hash(snapshot, size, chunk_size)))
    })
    .await
}
