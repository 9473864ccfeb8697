//! One step of a job: the calls its phase makes (by `job::next_calls`), the event their answers
//! make, the transition, and its effects performed on the vault's state. What the calls cost is
//! counted in the spending of the job's app for the day: at most what they may cost when they go
//! out (a batch whose answers nobody reads, cancelled or started over, stays counted so), what
//! they cost once they are answered.

use vault_api::service::JobKind;

use super::job::{self, Calls, Ctx, Effect, Event, Holdings, Next};
use super::{cycles, restore, snapshot};
use crate::state::with_state;
use crate::storable::{JobRecord, Phase, Task};
use crate::{app_client, retention};

/// Advances `job` by one step; returns whether it progressed. The attempt is counted before
/// its calls go out (`job::begin_attempt`).
pub async fn step(job: JobRecord) -> bool {
    let Some(calls) = job::next_calls(&job) else { return false };
    let ctx = ctx(job.app);
    let job = match job::begin_attempt(job, &ctx) {
        Ok(job) => job,
        Err(next) => return perform(*next),
    };
    let bound = call_bound(&calls);
    with_state(|s| {
        s.put_job(job.clone());
        s.spend_cycles(job.app, ic_cdk::api::time(), bound);
    });
    let answered = match (&job.task, calls) {
        (Task::Snapshot { .. }, Calls::DumpBegin) => snapshot::begin(&job).await,
        (Task::Snapshot { phase: Phase::Transferring(building), .. }, Calls::DumpChunks(indices)) => {
            snapshot::chunks(&job, building, indices).await
        }
        (Task::Snapshot { phase: Phase::Finishing(building), .. }, Calls::DumpEnd) => snapshot::end(&job, building).await,
        (&Task::Restore { source, snapshot_id, .. }, Calls::RestoreBegin) => restore::begin(&job, source, snapshot_id).await,
        (&Task::Restore { source, snapshot_id, .. }, Calls::RestoreChunks(indices)) => {
            restore::chunks(&job, source, snapshot_id, indices).await
        }
        (&Task::Restore { source, snapshot_id, .. }, Calls::RestoreCommit) => restore::commit(&job, source, snapshot_id).await,
        // `next_calls` makes no other pair.
        _ => None,
    };
    match answered {
        Some((answered, event)) => {
            spent(&job, &answered, bound);
            settle(answered, event)
        }
        None => false,
    }
}

/// The most `calls` may cost the vault: each request and its reply at the payload limit.
fn call_bound(calls: &Calls) -> u128 {
    let count = match calls {
        Calls::DumpChunks(indices) | Calls::RestoreChunks(indices) => indices.len() as u64,
        Calls::DumpBegin | Calls::DumpEnd | Calls::RestoreBegin | Calls::RestoreCommit => 1,
    };
    app_client::transfer_cycles(count, count.saturating_mul(2 * app_client::MAX_PAYLOAD_BYTES))
}

/// Replaces `bound`, counted when the calls that took `before` to `after` went out, by what
/// they cost, in the spending of the job's app for the day.
fn spent(before: &JobRecord, after: &JobRecord, bound: u128) {
    let calls = after.calls.saturating_sub(before.calls);
    let bytes = after.bytes_moved.saturating_sub(before.bytes_moved);
    let cost = app_client::transfer_cycles(calls, bytes);
    with_state(|s| s.refund_cycles(after.app, ic_cdk::api::time(), bound.saturating_sub(cost)));
}

/// Applies `event` to `job` and performs the transition's effects; returns whether it
/// progressed.
pub fn settle(job: JobRecord, event: Event) -> bool {
    let ctx = ctx(job.app);
    perform(job::apply(job, event, &ctx))
}

/// What the transitions of a job of `app` need to know of the vault.
fn ctx(app: candid::Principal) -> Ctx {
    let now = ic_cdk::api::time();
    let (next_snapshot, holdings, limits) = with_state(|s| {
        let usage = s.app_usage(app);
        let holdings = Holdings {
            bytes: usage.held.total(),
            snapshots: s.completed_of(app),
            retention: s.app(app).map(|record| record.retention),
            cycles_today: usage.cycles_today(now),
            registrant: usage.registrant.map(|registrant| (registrant, s.registrant_usage(registrant).held.total())),
        };
        (s.peek_snapshot_id(), holdings, s.config().limits)
    });
    Ctx {
        now,
        cycles: cycles::available(),
        batch_reserve: cycles::batch_reserve(),
        next_snapshot,
        stable_room: cycles::stable_room(),
        app: holdings,
        limits,
    }
}

fn perform(Next { job, effects, progressed }: Next) -> bool {
    let (id, app, kind) = (job.id, job.app, job.kind());
    with_state(|s| {
        s.put_job(job);
        for effect in &effects {
            match effect {
                Effect::CreateSnapshot { id, record, state_layout } => {
                    let allocated = s.new_snapshot_id();
                    assert_eq!(allocated, *id, "a transition's snapshot id is the next one");
                    s.put_snapshot(app, *id, record.clone());
                    if let Some(layout) = *state_layout {
                        s.put_snapshot_layout(app, *id, layout);
                    }
                }
                &Effect::CompleteSnapshot { id, sha256, duration, transfer_cycles } => s.complete_snapshot(app, id, sha256, duration, transfer_cycles),
                &Effect::DropSnapshot(snapshot) => s.schedule_deletion(app, snapshot),
                Effect::FreeApp => s.free_app(app, id),
                Effect::ApplyRetention => retention::apply(s, app),
                Effect::ReleaseApp => {}
            }
        }
    });
    if effects.contains(&Effect::ReleaseApp) {
        ic_cdk::futures::spawn(async move {
            let _ = match kind {
                JobKind::Snapshot { .. } => app_client::dump_end(app, id).await,
                JobKind::Restore { .. } => app_client::restore_abort(app, id).await,
            };
        });
    }
    progressed
}
