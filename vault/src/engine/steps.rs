//! One step of a job: the calls its phase makes (by `job::next_calls`), the event their answers
//! make, the transition, and its effects performed on the vault's state. What the calls cost is
//! counted in the spending of the job's app for the day: at most what they may cost when they go
//! out (a batch whose answers nobody reads, cancelled or started over, stays counted so), what
//! they cost once they are answered.

use candid::Principal;
use vault_api::service::JobKind;

use super::job::{self, Calls, Ctx, Effect, Event, Holdings, Next};
use super::{cycles, incremental, native, restore, snapshot};
use crate::state::{SEAL_BUDGET, with_state};
use crate::storable::{JobRecord, Phase, Task};
use crate::{app_client, retention};

/// Advances `job` by one step, the `calls` its phase makes (`job::next_calls`); returns whether
/// it progressed. The attempt is counted before its calls go out (`job::begin_attempt`).
pub async fn step(job: JobRecord, calls: Calls) -> bool {
    let ctx = ctx(&job);
    let job = match job::begin_attempt(job, &ctx) {
        Ok(job) => job,
        Err(next) => return perform(*next),
    };
    let sent_at = ic_cdk::api::time();
    let native = with_state(|s| s.native_app(job.app).is_some());
    let reserved = call_count(&calls, native);
    with_state(|s| {
        s.put_job(job.clone());
        s.spend_cycles(job.app, sent_at, CALL_BOUND * reserved as u128);
    });
    let answered = match (&job.task, calls) {
        (Task::Snapshot { .. }, Calls::DumpBegin) if native => native::begin(&job).await,
        (Task::Snapshot { phase: Phase::Transferring(building), .. }, Calls::DumpChunks(indices)) if native => native::chunks(&job, building, indices).await,
        (Task::Snapshot { phase: Phase::Finishing(building), .. }, Calls::DumpEnd) if native => native::end(&job, building).await,
        (&Task::Restore { source, snapshot_id, .. }, Calls::RestoreBegin) if native => native::restore_begin(&job, source, snapshot_id).await,
        (&Task::Restore { source, snapshot_id, .. }, Calls::RestoreChunks(indices)) if native => {
            native::restore_chunks(&job, source, snapshot_id, indices).await
        }
        (&Task::Restore { source, snapshot_id, .. }, Calls::RestoreCommit) if native => native::restore_commit(&job, source, snapshot_id).await,
        (Task::Snapshot { base, .. }, Calls::DumpBegin) => snapshot::begin(&job, base.map(|b| b.snapshot)).await,
        (Task::Snapshot { phase: Phase::Transferring(building), base: Some(base), .. }, Calls::CopyBase) => snapshot::copy_base(&job, building, base),
        (Task::Snapshot { phase: Phase::Transferring(building), base, .. }, Calls::DumpChunks(indices)) => {
            snapshot::chunks(&job, building, *base, indices).await
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
            spent(&job, &answered, sent_at, reserved);
            settle(answered, event)
        }
        None => false,
    }
}

/// The most a call may cost the vault: its request and its reply at the payload limit.
const CALL_BOUND: u128 = 260_000 + 1_000 * 2 * app_client::MAX_PAYLOAD_BYTES as u128;

/// Calls a step makes at most: one a chunk, one for a library app's phase, and the management
/// calls of a native one's ([`native::MAX_STEP_CALLS`]).
fn call_count(calls: &Calls, native: bool) -> u64 {
    if !calls.calls_app() {
        return 0;
    }
    calls.chunks().map_or(if native { native::MAX_STEP_CALLS } else { 1 }, |chunks| chunks.len() as u64)
}

/// Replaces the bound counted at `sent_at` for each call the app answered, of those that took
/// `before` to `after`, by what it cost, in the spending of the job's app for that day. A call
/// without an answer (rejected, lost, undecodable) stays counted at its bound: what it cost
/// the vault is not known.
fn spent(before: &JobRecord, after: &JobRecord, sent_at: u64, reserved: u64) {
    let answered = after.calls.saturating_sub(before.calls).min(reserved);
    let bytes = after.bytes_moved.saturating_sub(before.bytes_moved);
    let refund = (CALL_BOUND * answered as u128).saturating_sub(app_client::transfer_cycles(answered, bytes));
    with_state(|s| s.refund_cycles(after.app, sent_at, refund));
}

/// Applies `event` to `job` and performs the transition's effects; returns whether it
/// progressed.
pub fn settle(job: JobRecord, event: Event) -> bool {
    let ctx = ctx(&job);
    perform(job::apply(job, event, &ctx))
}

/// What the transitions of `job` need to know of the vault (its app's snapshots only where a
/// dump may open: they are read, one record each, for the snapshot quota; and there the base the
/// dump may ask for).
fn ctx(job: &JobRecord) -> Ctx {
    let (now, app) = (ic_cdk::api::time(), job.app);
    let opening = matches!(job.task, Task::Snapshot { phase: Phase::Starting, .. });
    let (next_snapshot, holdings, limits, base) = with_state(|s| {
        let usage = s.app_usage(app);
        let holdings = Holdings {
            bytes: usage.held.total(),
            snapshots: if opening { s.completed_of(app) } else { Vec::new() },
            retention: s.app(app).map(|record| record.retention),
            cycles_today: usage.cycles_today(now),
            registrant: usage.registrant.map(|registrant| (registrant, s.registrant_usage(registrant).held.total())),
        };
        let base = if opening { base_to_ask(s, app) } else { None };
        (s.peek_snapshot_id(), holdings, s.config().limits, base)
    });
    Ctx {
        now,
        cycles: cycles::available(),
        batch_reserve: cycles::batch_reserve(),
        next_snapshot,
        stable_room: cycles::stable_room(),
        app: holdings,
        limits,
        base,
    }
}

/// The base a dump of `app` asks to build on now (`incremental::base_to_ask`).
fn base_to_ask(s: &crate::state::State, app: Principal) -> Option<crate::storable::Base> {
    let (record, kind) = (s.incremental(app), s.app(app)?.state_kind);
    let snapshot = record.base.and_then(|base| s.snapshot(app, base.snapshot));
    incremental::base_to_ask(kind, &record, snapshot.as_ref())
}

fn perform(Next { job, effects, progressed }: Next) -> bool {
    let (id, app, kind, finished) = (job.id, job.app, job.kind(), job.is_finished());
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
                &Effect::CompleteSnapshot { id, sha256, duration, transfer_cycles } => {
                    s.complete_snapshot(app, id, sha256, duration, transfer_cycles);
                    s.seal_step(Some(id), SEAL_BUDGET);
                }
                &Effect::DropSnapshot(snapshot) => s.schedule_deletion(app, snapshot),
                Effect::FreeApp => s.free_app(app, id),
                Effect::ApplyRetention => retention::apply(s, app),
                &Effect::KeepBase(base) => s.keep_base(app, base),
                Effect::ReleaseApp => {}
            }
        }
    });
    // A native job leaves a snapshot on its app until it is over, whatever its outcome.
    if finished && with_state(|s| s.native_job(id).is_some()) {
        ic_cdk::futures::spawn(native::release(app, id));
    } else if effects.contains(&Effect::ReleaseApp) && with_state(|s| s.native_app(app).is_none()) {
        ic_cdk::futures::spawn(async move {
            let _ = match kind {
                JobKind::Snapshot { .. } => app_client::dump_end(app, id, None).await,
                JobKind::Restore { .. } => app_client::restore_abort(app, id).await,
            };
        });
    }
    progressed
}
