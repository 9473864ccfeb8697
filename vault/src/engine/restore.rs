//! A restore job's steps: open the app's staging area for the snapshot, send its chunks,
//! commit. Each step first checks that the snapshot is still complete.

use vault_api::protocol::{RestoreBegin, RestoreChunk};

use super::calls;
use super::job::{self, ChunkAnswer, Event};
use crate::app_client;
use crate::state::with_state;
use crate::storable::{JobRecord, SnapshotRecord, SnapshotStatus, Task};

/// The snapshot `snapshot_id` of `source`, if it is still complete.
fn snapshot(source: candid::Principal, snapshot_id: u64) -> Option<SnapshotRecord> {
    with_state(|s| s.snapshot(source, snapshot_id)).filter(|r| r.status == SnapshotStatus::Complete)
}

/// Whether the job stages a serde image for the target's next upgrade to load.
fn via_upgrade(job: &JobRecord) -> bool {
    matches!(job.task, Task::Restore { via_upgrade: true, .. })
}

/// `Some((job, event))` without a call: the snapshot is gone.
fn gone(job: &JobRecord) -> Option<(JobRecord, Event)> {
    Some((job::answered(job.clone()), Event::SnapshotGone))
}

pub async fn begin(job: &JobRecord, source: candid::Principal, snapshot_id: u64) -> Option<(JobRecord, Event)> {
    let Some(record) = snapshot(source, snapshot_id) else { return gone(job) };
    let args = RestoreBegin {
        job: job.id,
        state_kind: record.state_kind,
        size: record.size,
        chunk_size: record.chunk_size,
        sha256: record.sha256,
        nonce: app_client::nonce(),
        content_hash: Some(record.content_hash),
        via_upgrade: via_upgrade(job).then_some(true),
    };
    calls::make_one(job, app_client::restore_begin(job.app, args), |answer| Event::RestoreBegun(answer, record)).await
}

pub async fn chunks(job: &JobRecord, source: candid::Principal, snapshot_id: u64, indices: Vec<u32>) -> Option<(JobRecord, Event)> {
    if snapshot(source, snapshot_id).is_none() {
        return gone(job);
    }
    let requests = indices
        .iter()
        .map(|&index| {
            let (sha256, data) = with_state(|s| s.chunk(snapshot_id, index)).expect("a complete snapshot has every chunk");
            let args = RestoreChunk { job: job.id, index, data: serde_bytes::ByteBuf::from(data), sha256, nonce: app_client::nonce() };
            app_client::restore_chunk(job.app, args)
        })
        .collect();
    let (job, answers) = calls::make(job, requests).await?;
    Some((job, calls::chunks_event(indices, answers, |index, ()| ChunkAnswer::Moved(index))))
}

pub async fn commit(job: &JobRecord, source: candid::Principal, snapshot_id: u64) -> Option<(JobRecord, Event)> {
    let Some(record) = snapshot(source, snapshot_id) else { return gone(job) };
    let checked = matches!(job.task, Task::Restore { check_layout: true, .. });
    let state_layout = if checked { with_state(|s| s.snapshot_layout(source, snapshot_id)) } else { None };
    let commit = app_client::restore_commit(job.app, job.id, state_layout, via_upgrade(job));
    calls::make_one(job, commit, |answer| Event::Committed(answer, record.sha256)).await
}
