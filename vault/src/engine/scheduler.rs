//! The timer that drives the jobs: arming it, the watchdog that re-arms it, the firing that
//! releases deletions and starts due snapshots, and the batches: a job's steps one after the
//! other, each started as the last one's answers are read, in two lanes while it moves chunks
//! (one lane's calls travel while the other's answers stream back).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use candid::Principal;
use ic_cdk::api::CanisterStatusCode;
use vault_api::service::{JobError, JobKind, Trigger};

use super::job::{self, Event};
use super::{cycles, steps};
use crate::state::{SEAL_BUDGET, with_state};
use crate::storable::JobRecord;

/// Chunk references released per timer firing.
const DELETE_BUDGET: u32 = 512;
/// Imports expired, scheduled snapshots started, and jobs taken up, per timer firing: what is
/// left waits for the next, which follows at once.
const EXPIRE_BUDGET: usize = 64;
const DUE_BUDGET: usize = 64;
const JOB_STARTS: usize = 16;
const SECOND: u64 = 1_000_000_000;
/// How often the watchdog checks that the timer is armed for the work waiting.
const WATCHDOG: Duration = Duration::from_secs(600);
/// Calls the batches of all jobs have in flight at most: the IC guarantees a canister 50
/// callbacks in flight; the rest are for the watchdog's and the endpoints' own calls.
const MAX_CALLS_IN_FLIGHT: u32 = 44;
/// Calls a step other than a batch of chunk calls makes at most (a dump's begin asks the
/// management canister too).
const PHASE_CALLS: u32 = 2;
/// Batches a job moving chunks keeps in flight at once, over different chunks.
const LANES: u8 = 2;

thread_local! {
    /// The batches in flight, by job and lane, and the time the timer is armed for.
    static RUNTIME: RefCell<Runtime> = RefCell::new(Runtime::default());
}

#[derive(Default)]
struct Runtime {
    in_flight: BTreeMap<(u64, u8), Lane>,
    armed: Option<(ic_cdk_timers::TimerId, u64)>,
}

/// A batch in flight: the calls it holds room for, the chunks its calls move.
#[derive(Default)]
struct Lane {
    calls: u32,
    chunks: BTreeSet<u32>,
}

impl Runtime {
    fn lanes_of(&self, job: u64) -> impl Iterator<Item = (&(u64, u8), &Lane)> {
        self.in_flight.range((job, 0)..=(job, u8::MAX))
    }
}

fn now() -> u64 {
    ic_cdk::api::time()
}

/// Makes the timer fire at `at` (nanoseconds) unless it fires earlier already.
pub fn arm(at: u64) {
    let time = now();
    RUNTIME.with_borrow_mut(|r| {
        if let Some((id, armed_at)) = r.armed {
            // A timer still to fire is kept, or moved earlier. One whose time has passed may be
            // lost (a trap in its task rolls back the task's clearing of `armed`) or about to
            // fire in this round: a new one is set beside it, and an extra tick is harmless.
            let pending = armed_at >= time;
            if pending && armed_at <= at {
                return;
            }
            if pending {
                ic_cdk_timers::clear_timer(id);
            }
        }
        let delay = Duration::from_nanos(at.saturating_sub(time));
        let id = ic_cdk_timers::set_timer(delay, tick());
        r.armed = Some((id, at));
    });
}

/// After an install or upgrade: notes the resumption on every unfinished job and arms the
/// timer (timers do not survive upgrades).
pub fn resume_after_upgrade() {
    let time = now();
    with_state(|s| {
        for mut job in s.active_jobs() {
            job.notes.push(format!("resumed after a vault upgrade at {time} ns, in phase {:?}", job.phase()));
            s.put_job(job);
        }
    });
    start_watchdog();
    arm(time);
}

/// A trap in a timer's task loses that one-shot timer, and a trap in a batch's callback
/// cancels the batch; the watchdog, an interval timer (which survives its task's traps), arms
/// the timer again for the work waiting. It also refreshes the controllers of a few apps.
pub fn start_watchdog() {
    ic_cdk_timers::set_timer_interval(WATCHDOG, || async {
        arm_for_waiting_work();
        crate::access::refresh_some_controllers().await;
    });
}

/// Makes a lost timer fire now; constant work, whatever the vault holds. The timer is lost when
/// it was armed for a time that has passed and its firing did not clear that (a trap in the
/// global timer handler rolls the clearing back, and leaves the system timer off while
/// ic-cdk-timers believes it set: the system timer is set directly, so the handler runs and
/// re-arms from its queue). An unarmed timer is not lost: the last firing found nothing to wait
/// for, and whatever creates work arms it (the watchdog looks again every 10 minutes).
pub fn revive() {
    let time = now();
    if RUNTIME.with_borrow(|r| r.armed.is_some_and(|(_, at)| at < time)) {
        arm(time);
        ic_cdk::api::global_timer_set(time);
    }
}

fn arm_for_waiting_work() {
    let time = now();
    let (work_now, next_due) = with_state(|s| {
        let idle_job = !idle_jobs(s, 1).is_empty();
        (idle_job || s.deletions_pending() || s.sealing_pending(), next_wakeup(s))
    });
    if work_now {
        arm(time);
    } else if let Some(due) = next_due {
        arm(due);
    }
}

/// Creates a job for `app` (which must have none running) and arms the timer.
pub fn start_job(app: Principal, kind: JobKind) -> JobRecord {
    let time = now();
    let job = with_state(|s| {
        let job = JobRecord::new(s.new_job_id(), app, kind, time);
        s.put_job(job.clone());
        s.set_running_job(app, job.id);
        job
    });
    arm(time);
    job
}

/// The timer's body.
async fn tick() {
    RUNTIME.with_borrow_mut(|r| r.armed = None);
    let time = now();
    if ic_cdk::api::canister_status() != CanisterStatusCode::Running {
        // A stopping vault starts nothing new; the timer fires again once it runs.
        arm(time + SECOND);
        return;
    }
    let expired = with_state(|s| s.expire_imports(time, s.config().limits.import_ttl_seconds.saturating_mul(SECOND), EXPIRE_BUDGET));
    let deletions_left = with_state(|s| s.delete_step(DELETE_BUDGET)) || expired > 0;
    let sealing_left = with_state(|s| s.seal_step(None, SEAL_BUDGET));
    start_due_snapshots(time);
    let idle = with_state(|s| idle_jobs(s, JOB_STARTS + 1));
    for &job in idle.iter().take(JOB_STARTS) {
        if let Some(batch) = Batch::start(job) {
            ic_cdk::futures::spawn(run_batch(batch));
        }
    }
    let next_due = with_state(next_wakeup);
    if deletions_left || sealing_left || idle.len() > JOB_STARTS {
        arm(time);
    }
    if let Some(due) = next_due {
        arm(due);
    }
}

/// Up to `n` running jobs with no batch in flight (their ids from the index; no job is read).
fn idle_jobs(s: &crate::state::State, n: usize) -> Vec<u64> {
    let in_flight: BTreeSet<u64> = RUNTIME.with_borrow(|r| r.in_flight.keys().map(|&(job, _)| job).collect());
    s.running_job_ids().into_iter().filter(|id| !in_flight.contains(id)).take(n).collect()
}

/// When the timer must fire next without other work: the next scheduled snapshot, or the
/// first import to expire.
fn next_wakeup(s: &mut crate::state::State) -> Option<u64> {
    let ttl = s.config().limits.import_ttl_seconds.saturating_mul(SECOND);
    [s.next_scheduled(), s.next_import_expiry(ttl)].into_iter().flatten().min()
}

/// Starts the snapshots due at `time` (at most [`DUE_BUDGET`]; the next due time is then now,
/// so the timer fires again at once for the rest).
fn start_due_snapshots(time: u64) {
    let due: Vec<Principal> = with_state(|s| {
        let due: Vec<(Principal, crate::storable::AppRecord)> = s.due_apps(time, DUE_BUDGET).into_iter().filter_map(|app| s.app(app).map(|r| (app, r))).collect();
        due.into_iter()
            .map(|(app, mut record)| {
                // The next slot after now: intervals missed while stopped are skipped.
                let interval = record.schedule.interval_seconds * SECOND;
                while record.next_due <= time {
                    record.next_due += interval;
                }
                // A suspended app's slots pass without a snapshot.
                let start = record.running_job.is_none() && s.suspension(app).is_none();
                s.put_app(app, record);
                (app, start)
            })
            .filter(|&(_, start)| start)
            .map(|(app, _)| app)
            .collect()
    });
    for app in due {
        let job = start_job(app, JobKind::Snapshot { trigger: Trigger::Scheduled });
        if let Err(error) = cycles::check(cycles::batch_reserve()) {
            steps::settle(job, Event::Abort(JobError::from(error)));
        }
    }
}

/// A lane of a job's batches in flight, one batch at a time. Dropped when they end, or when a
/// trap in one of their callbacks cancels them (the cleanup drops the task), so the job is
/// taken up again.
struct Batch {
    job: u64,
    lane: u8,
}

impl Batch {
    /// The job's first lane, if it has none in flight.
    fn start(job: u64) -> Option<Batch> {
        // Lazily: a `Batch` built for nothing would release the running one when dropped.
        RUNTIME.with_borrow_mut(|r| {
            if r.lanes_of(job).next().is_some() {
                return None;
            }
            r.in_flight.insert((job, 0), Lane::default());
            Some(Batch { job, lane: 0 })
        })
    }

    /// Another lane of the job, if it has fewer than [`LANES`].
    fn another_lane(&self) -> Option<Batch> {
        RUNTIME.with_borrow_mut(|r| {
            let lane = (0..LANES).find(|&lane| !r.in_flight.contains_key(&(self.job, lane)))?;
            r.in_flight.insert((self.job, lane), Lane::default());
            Some(Batch { job: self.job, lane })
        })
    }

    /// Calls this lane may have in flight: what the other batches leave.
    fn room(&self) -> u32 {
        RUNTIME.with_borrow(|r| {
            let others: u32 = r.in_flight.iter().filter(|&(&key, _)| key != (self.job, self.lane)).map(|(_, lane)| lane.calls).sum();
            MAX_CALLS_IN_FLIGHT.saturating_sub(others)
        })
    }

    /// Holds room for `calls` calls of the next step (at most [`Self::room`]).
    fn hold(&self, calls: u32) {
        RUNTIME.with_borrow_mut(|r| r.in_flight.entry((self.job, self.lane)).or_default().calls = calls);
    }

    /// The chunks the job's other lanes move.
    fn others_chunks(&self) -> BTreeSet<u32> {
        RUNTIME.with_borrow(|r| {
            r.lanes_of(self.job).filter(|&(&(_, lane), _)| lane != self.lane).flat_map(|(_, l)| l.chunks.iter().copied()).collect()
        })
    }

    fn others_in_flight(&self) -> bool {
        RUNTIME.with_borrow(|r| r.lanes_of(self.job).any(|(&(_, lane), _)| lane != self.lane))
    }

    /// Notes the chunks this lane's calls move now.
    fn moves(&self, chunks: BTreeSet<u32>) {
        RUNTIME.with_borrow_mut(|r| r.in_flight.entry((self.job, self.lane)).or_default().chunks = chunks);
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        RUNTIME.with_borrow_mut(|r| r.in_flight.remove(&(self.job, self.lane)));
        if ic_cdk::futures::is_recovering_from_trap() {
            arm(now() + SECOND);
        }
    }
}

/// Runs the job's steps one after the other, each started as the last one's answers are read
/// (no timer between them), while they progress and the vault runs, up to a step that calls
/// nothing (it ran in this message; the timer takes the next); then re-arms the timer,
/// backing off after a failed attempt. A step of chunk calls makes as many as the vault's
/// cycles and the calls other jobs have in flight allow ([`cycles::batch_size`]).
async fn run_batch(batch: Batch) {
    let id = batch.job;
    let mut progressed = false;
    while let Some(job) = with_state(|s| s.job(id)) {
        let moving = job::next_calls(&job, 1).is_some_and(|calls| calls.chunks().is_some());
        if !moving && batch.others_in_flight() {
            // A phase step is one lane's: the other makes it.
            break;
        }
        let room = batch.room();
        let size = if moving { cycles::batch_size(room) } else { room.min(PHASE_CALLS) };
        let Some(calls) = job::next_calls_besides(&job, size, &batch.others_chunks()) else { break };
        let chunks: BTreeSet<u32> = calls.chunks().unwrap_or_default().iter().copied().collect();
        if size == 0 || (moving && chunks.is_empty()) {
            // The other batches hold every call the vault may have in flight, or move every
            // chunk left.
            break;
        }
        batch.hold(size);
        batch.moves(chunks);
        // A second lane while the transfer goes well: failed attempts are retried one at a time.
        if moving && job.retries == 0 && let Some(lane) = batch.another_lane() {
            ic_cdk::futures::spawn(run_batch(lane));
        }
        let calls_app = calls.calls_app();
        progressed = steps::step(job, calls).await;
        batch.moves(BTreeSet::new());
        // A step without calls ran within this message: the next runs in the timer's next one,
        // so that steps without calls are bounded a message each.
        if !progressed || !calls_app || ic_cdk::api::canister_status() != CanisterStatusCode::Running {
            break;
        }
    }
    drop(batch);
    let retries = with_state(|s| s.job(id)).map_or(0, |j| j.retries);
    let backoff = if progressed || retries == 0 { 0 } else { SECOND << retries.min(6) };
    arm(now() + backoff);
}
