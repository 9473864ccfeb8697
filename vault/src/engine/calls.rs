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
    let (id, phase) = (job.id, job.phase());
    let results = futures::future::join_all(calls).await;
    let mut job = job::answered(with_state(|s| s.job(id)).filter(|j| j.phase() == phase)?);
    let answers = results
        .into_iter()
        .map(|result| {
            result.map(|answer| {
                job.calls += 1;
                job.bytes_moved += answer.request_bytes + answer.reply_bytes;
                answer.value
            })
        })
        .collect();
    Some((job, answers))
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
