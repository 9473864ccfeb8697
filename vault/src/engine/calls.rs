//! The one way a step calls its app: make the calls, then read every answer into the job as it
//! is when they return, counting calls and bytes both ways.

use std::future::Future;

use vault_api::protocol::BackupError;

use super::job::{self, ChunkAnswer, Event};
use crate::app_client::{CallFailure, Protocol};
use crate::state::with_state;
use crate::storable::JobRecord;

/// One call's outcome: the app's answer, or why there was none.
pub type Answer<T> = Result<Result<T, BackupError>, CallFailure>;

/// Makes `calls` for `job`'s current step. `None` when the job moved on meanwhile (it
/// finished, failed or started over): answers that arrive after that change nothing.
pub async fn make<T, F: Future<Output = Protocol<T>>>(job: &JobRecord, calls: Vec<F>) -> Option<(JobRecord, Vec<Answer<T>>)> {
    let results = futures::future::join_all(calls).await;
    let mut tally = Tally::default();
    let answers = results.into_iter().map(|result| tally.read(result)).collect();
    Some((tally.settle(job)?, answers))
}

/// The calls a step made and the bytes they moved both ways, for a step of calls made one after
/// another (a native capture's stop, take and start).
#[derive(Default)]
pub struct Tally {
    calls: u64,
    bytes: u64,
}

impl Tally {
    /// One call's outcome, counted if it was answered.
    pub fn read<T>(&mut self, result: Protocol<T>) -> Answer<T> {
        result.map(|answer| {
            self.calls += 1;
            self.bytes += answer.request_bytes + answer.reply_bytes;
            answer.value
        })
    }

    /// The job as it is now, its attempt answered and the calls counted; `None` when it moved on
    /// meanwhile.
    pub fn settle(self, job: &JobRecord) -> Option<JobRecord> {
        let (id, phase) = (job.id, job.phase());
        let mut job = job::answered(with_state(|s| s.job(id)).filter(|j| j.phase() == phase)?);
        job.calls += self.calls;
        job.bytes_moved += self.bytes;
        Some(job)
    }
}

/// [`make`] for a step of one call; the event its answer makes (no answer: a failed attempt).
pub async fn make_one<T, F: Future<Output = Protocol<T>>>(
    job: &JobRecord,
    call: F,
    answered: impl FnOnce(Result<T, BackupError>) -> Event,
) -> Option<(JobRecord, Event)> {
    let (job, mut answers) = make(job, vec![call]).await?;
    let event = match answers.pop().expect("one call, one answer") {
        Ok(value) => answered(value),
        Err(failure) => Event::CallFailed(failure),
    };
    Some((job, event))
}

/// The event a batch of chunk calls makes: `answered` reads each chunk the app answered.
pub fn chunks_event<T>(indices: Vec<u32>, answers: Vec<Answer<T>>, mut answered: impl FnMut(u32, T) -> ChunkAnswer) -> Event {
    let answers = indices
        .into_iter()
        .zip(answers)
        .map(|(index, answer)| match answer {
            Ok(Ok(value)) => answered(index, value),
            Ok(Err(error)) => ChunkAnswer::Refused(error),
            Err(failure) => ChunkAnswer::Failed(failure),
        })
        .collect();
    Event::Chunks(answers)
}
