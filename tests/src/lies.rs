//! The lies of the harness's `hostile` test canister, as its `set_lie` names them: the protocol
//! calls each spoils, the error a job it spoils ends in, and the attempts it costs a job of
//! each kind when the app tells it every time. `hostile.rs` tells each in turn; the fault
//! campaign tells them at random, among other faults, so there a lie may cost any number of
//! attempts: `ends_in` does not look at them. The lies of its incremental mode
//! ([`INCREMENTAL_LIES`], `set_incremental_lie`) are told by `incremental.rs`.

use ic_harness::IcBackend;
use vault_api::protocol::{BackupError, CHUNK_SIZE, MAX_APP_TEXT, methods};
use vault_api::service::JobError;

// The vault's retry budget (vault/src/engine/job.rs): failed attempts in a row that end a job
// (one more than this), and times a job starts over.
pub const MAX_RETRIES: u32 = 8;
pub const MAX_RESTARTS: u32 = 3;
/// Attempts of a phase that fails until the budget runs out.
pub const EXHAUSTED: u32 = MAX_RETRIES + 1;

/// The truth.
pub const HONEST: &str = "honest";

pub const DUMP_CALLS: &[&str] = &[methods::DUMP_BEGIN, methods::DUMP_CHUNK, methods::DUMP_END];
pub const RESTORE_CALLS: &[&str] = &[methods::RESTORE_BEGIN, methods::RESTORE_CHUNK, methods::RESTORE_COMMIT];
const EVERY_CALL: &[&str] =
    &[methods::DUMP_BEGIN, methods::DUMP_CHUNK, methods::DUMP_END, methods::RESTORE_BEGIN, methods::RESTORE_CHUNK, methods::RESTORE_COMMIT];

/// A way the hostile app lies.
pub struct Lie {
    pub name: &'static str,
    pub spoils: &'static [&'static str],
    /// Whether a job it spoiled may end in this error.
    pub ends_in: fn(&JobError) -> bool,
    /// Attempts it costs a snapshot, and a restore, told every time (`None`: it spoils no call of
    /// that kind). A snapshot opens its dump in one attempt and moves its three chunks in one
    /// batch; a restore opens the staging in one, sends the chunks in one and commits in one.
    pub snapshot_attempts: Option<u32>,
    pub restore_attempts: Option<u32>,
}

const fn lie(name: &'static str, spoils: &'static [&'static str], ends_in: fn(&JobError) -> bool, attempts: (Option<u32>, Option<u32>)) -> Lie {
    Lie { name, spoils, ends_in, snapshot_attempts: attempts.0, restore_attempts: attempts.1 }
}

const fn snapshot(attempts: u32) -> (Option<u32>, Option<u32>) {
    (Some(attempts), None)
}

const fn restore(attempts: u32) -> (Option<u32>, Option<u32>) {
    (None, Some(attempts))
}

pub static LIES: [Lie; 17] = [
    lie("huge-size", &[methods::DUMP_BEGIN], |e| matches!(e, JobError::InvalidManifest { .. }), snapshot(1)),
    lie("zero-chunk-size", &[methods::DUMP_BEGIN], |e| app_refused(e, |r| matches!(r, BackupError::UnsupportedChunkSize { chunk_size: 0, .. })), snapshot(1)),
    lie(
        "oversized-chunks",
        &[methods::DUMP_BEGIN],
        |e| app_refused(e, |r| matches!(r, BackupError::UnsupportedChunkSize { chunk_size, max: CHUNK_SIZE } if *chunk_size == CHUNK_SIZE + 1)),
        snapshot(1),
    ),
    lie("other-job", &[methods::DUMP_BEGIN], |e| matches!(e, JobError::InvalidManifest { reason } if reason.contains("for job")), snapshot(1)),
    lie("wrong-sha256", &[methods::DUMP_CHUNK], |e| matches!(e, JobError::ChunkCorrupted { .. }), snapshot(1 + EXHAUSTED)),
    lie("wrong-index", &[methods::DUMP_CHUNK], |e| matches!(e, JobError::ChunkCorrupted { .. }), snapshot(1 + EXHAUSTED)),
    lie("wrong-length", &[methods::DUMP_CHUNK], |e| matches!(e, JobError::ChunkCorrupted { .. }), snapshot(1 + EXHAUSTED)),
    lie("decode-bomb", &[methods::DUMP_CHUNK], |e| gave_up(e, "did not decode"), snapshot(1 + EXHAUSTED)),
    lie("not-candid", &[methods::DUMP_CHUNK], |e| gave_up(e, "did not decode"), snapshot(1 + EXHAUSTED)),
    // Each start opens the dump and asks for its chunks.
    lie("endless-dump", &[methods::DUMP_CHUNK], |e| app_refused(e, |r| matches!(r, BackupError::UnknownJob { .. })), snapshot(2 * (MAX_RESTARTS + 1))),
    lie(
        "megabyte-error",
        EVERY_CALL,
        |e| app_refused(e, |r| matches!(r, BackupError::InvalidImage { message } if message.chars().count() <= MAX_APP_TEXT + 3)),
        (Some(1), Some(1)),
    ),
    lie("long-reject", EVERY_CALL, |e| matches!(e, JobError::AppUnreachable { reject_code: 4, .. }), (Some(1), Some(1))),
    // A trap while committing rolls the commit back: it did not run.
    lie("trap", EVERY_CALL, |e| gave_up(e, "reject code 5") || commit_failed(e, "reject code 5"), (Some(EXHAUSTED), Some(EXHAUSTED))),
    lie("refuse-restore-chunks", &[methods::RESTORE_CHUNK], |e| matches!(e, JobError::ChunkCorrupted { .. }), restore(1 + EXHAUSTED)),
    lie("wrong-commit-hash", &[methods::RESTORE_COMMIT], |e| app_refused(e, |r| matches!(r, BackupError::SnapshotHashMismatch { .. })), restore(3)),
    lie(
        "commit-unknown-job",
        &[methods::RESTORE_COMMIT],
        |e| app_refused(e, |r| matches!(r, BackupError::UnknownJob { .. })),
        restore(3 * (MAX_RESTARTS + 1)),
    ),
    lie("trap-on-commit", &[methods::RESTORE_COMMIT], |e| commit_failed(e, "reject code 5"), restore(2 + EXHAUSTED)),
];

pub fn lie_named(name: &str) -> Option<&'static Lie> {
    LIES.iter().find(|lie| lie.name == name)
}

fn app_refused(error: &JobError, refusal: fn(&BackupError) -> bool) -> bool {
    matches!(error, JobError::AppRefused { error } if refusal(error))
}

fn gave_up(error: &JobError, why: &str) -> bool {
    matches!(error, JobError::RetriesExhausted { last, .. } if last.contains(why))
}

fn commit_failed(error: &JobError, why: &str) -> bool {
    matches!(error, JobError::CommitFailed { last, .. } if last.contains(why))
}

/// The attempts a job that failed with `error` says it made, for the errors that count them.
pub fn attempts_told(error: &JobError) -> Option<u32> {
    match error {
        JobError::RetriesExhausted { attempts, .. }
        | JobError::ChunkCorrupted { attempts, .. }
        | JobError::CommitFailed { attempts, .. }
        | JobError::CommitUnconfirmed { attempts, .. } => Some(*attempts),
        _ => None,
    }
}

/// A way the hostile app lies in its incremental mode (`set_incremental_lie`: it dumps a
/// two-chunk BLAKE3 image in chunks of `CHUNK_SIZE` and keeps the image a dump's end names as
/// its base; the `serde-` lies say it is a serde state and answer ranges of the base), and the
/// error a snapshot it spoils ends in at its first answer.
pub struct IncrementalLie {
    pub name: &'static str,
    /// Whether it spoils a full dump (the vault asks for no base), not an incremental one.
    pub full_dump: bool,
    pub ends_in: fn(&JobError) -> bool,
}

const fn incremental_lie(name: &'static str, full_dump: bool, ends_in: fn(&JobError) -> bool) -> IncrementalLie {
    IncrementalLie { name, full_dump, ends_in }
}

pub static INCREMENTAL_LIES: [IncrementalLie; 10] = [
    incremental_lie("unasked-base", true, |e| matches!(e, JobError::InvalidManifest { reason } if reason.contains("a full one was asked for"))),
    incremental_lie("other-base", false, |e| matches!(e, JobError::InvalidManifest { reason } if reason.contains("as asked"))),
    incremental_lie("short-bitmap", false, |e| matches!(e, JobError::InvalidChunk { reason, .. } if reason.contains("bitmap"))),
    incremental_lie("bits-past-pages", false, |e| matches!(e, JobError::InvalidChunk { reason, .. } if reason.contains("past"))),
    incremental_lie("short-pages", false, |e| matches!(e, JobError::InvalidChunk { reason, .. } if reason.contains("bytes of pages"))),
    incremental_lie("full-chunks", false, |e| matches!(e, JobError::InvalidChunk { reason, .. } if reason.contains("no changed pages"))),
    incremental_lie("pages-in-full-dump", true, |e| matches!(e, JobError::InvalidChunk { reason, .. } if reason.contains("full dump"))),
    incremental_lie("serde-ranges-past-base", false, |e| matches!(e, JobError::InvalidChunk { reason, .. } if reason.contains("past its"))),
    incremental_lie("serde-ranges-overlapping", false, |e| matches!(e, JobError::InvalidChunk { reason, .. } if reason.contains("before the end"))),
    incremental_lie("serde-ranges-in-full-dump", true, |e| matches!(e, JobError::InvalidChunk { reason, .. } if reason.contains("full dump"))),
];

impl crate::HostileClient<'_> {
    /// Puts the app in its incremental mode, lying as `name` says (`honest` for the truth), or
    /// takes it out (`off`); panics on a name it does not know.
    pub fn set_incremental_lie(&self, name: &str) {
        let (set,): (Result<(), String>,) = self
            .ic
            .update_candid(self.app, crate::owner(), "set_incremental_lie", (name,))
            .unwrap_or_else(|e| panic!("hostile.set_incremental_lie: {e}"));
        set.unwrap_or_else(|e| panic!("hostile.set_incremental_lie: {e}"));
    }

    /// Writes `byte` over page `page` of the incremental mode's image.
    pub fn write_incremental_page(&self, page: u64, byte: u8) {
        let () = self
            .ic
            .update_candid(self.app, crate::owner(), "write_incremental_page", (page, byte))
            .unwrap_or_else(|e| panic!("hostile.write_incremental_page: {e}"));
    }

    /// The BLAKE3 manifest hash of the incremental mode's image as the app holds it now.
    pub fn incremental_image_hash(&self) -> vault_api::Sha256 {
        let (hash,) = self
            .ic
            .query_candid(self.app, crate::owner(), "incremental_image_hash", ())
            .unwrap_or_else(|e| panic!("hostile.incremental_image_hash: {e}"));
        hash
    }
}
