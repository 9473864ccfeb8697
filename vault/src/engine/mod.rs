//! The job engine: snapshot and restore jobs as state machines in stable memory, advanced one
//! step at a time by a single timer.
//!
//! ```text
//! scheduler   the timer, the watchdog, due snapshots, one batch per job at a time, chained
//!   steps     a job's next calls -> their answers as an event -> transition -> effects
//!     snapshot, restore   the calls of each kind's phases
//!       calls   make calls, read answers into the job, count calls and bytes
//!     job       the pure transition function (unit-tested): (job, event) -> (job, effects)
//!       incremental  a dump's base, and its chunks' changed pages, checked and put in (pure)
//! cycles      what a batch reserves; checks before a job starts
//! ```
//!
//! Each timer firing releases a bounded number of chunk references of deleted snapshots, seals
//! a bounded number of manifest pages of completed ones (`manifest_tree`), starts the snapshots
//! that are due, and for every job not already running a batch, starts one: a phase step, or up
//! to [`job::MAX_BATCH`] chunk calls in flight at once (as many as the vault's cycles can
//! reserve, and 44 for all jobs together). A batch records what it achieved
//! after its calls return (each callback is a commit point) and starts the job's next step from
//! there, without waiting for the timer; a step that made no progress re-arms the timer, after a
//! back-off. Every protocol call carries the job id and is idempotent, so a batch can be repeated
//! after a timeout; a job gives up after [`job::MAX_RETRIES`] failed attempts in a row.
//!
//! A stable-memory app's snapshot is incremental when the app holds the image of one it took
//! before (its base: a `vault_dump_end` naming it was answered) and fewer than its
//! `max_incrementals` lead up to it: the dump asks for that base, and an app that still holds it
//! answers each chunk with the pages that changed. The new snapshot then first references the
//! base's chunks, [`incremental::COPY_BUDGET`] entries a step (a step without calls, one message
//! each; a sealed page of the base's is referenced whole), so that the base may go at any time
//! after; each chunk with no page changed keeps the base's, any other is rebuilt over it and
//! hashed by the vault. A base deleted before its chunks are referenced fails the job; every
//! answer that does not add up fails it with a typed error.
//!
//! A vault upgrade with calls outstanding is refused (`pre_upgrade` traps): stop the vault, which
//! lets the calls in flight return and starts no new batch, then upgrade, then start it. The
//! jobs then resume from their records, with a note saying so.

mod calls;
pub mod cycles;
mod incremental;
mod job;
mod native;
mod restore;
mod scheduler;
mod snapshot;
mod steps;

pub use job::{small_chunks, transfer_estimate};
pub use scheduler::{arm, resume_after_upgrade, revive, start_job, start_watchdog};

use candid::Principal;
use vault_api::service::{JobError, VaultError};

use crate::storable::JobRecord;

/// Ends running job `job` as cancelled by `by`, releasing what it built and the app's dump or
/// staging; answers still in flight then change nothing. Refused once the job is over, and
/// while a restore commits.
pub fn cancel(job: JobRecord, by: Principal) -> Result<JobRecord, VaultError> {
    job::cancellable(&job).map_err(|reason| VaultError::NotCancellable { job: job.id, reason })?;
    let id = job.id;
    steps::settle(job, job::Event::Abort(JobError::Cancelled { by }));
    Ok(crate::state::with_state(|s| s.job(id)).expect("a cancelled job is kept in its app's log"))
}
