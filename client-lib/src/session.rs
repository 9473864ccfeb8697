//! The one operation open at a time, a dump or a restore: opening one supersedes the other, and
//! closing one releases what it holds (a dump's copied-aside pages, a restore's staged chunks).

use vault_api::protocol::BackupError;

use crate::layout::{Committed, OpenDump, OpenRestore, Session};
use crate::{memory, store};

/// The open dump, if it is `job`'s.
pub fn dump(job: u64) -> Option<OpenDump> {
    match store::header().session {
        Session::Dumping(dump) if dump.job == job => Some(dump),
        _ => None,
    }
}

/// The restore being staged, if it is `job`'s.
pub fn restore(job: u64) -> Option<OpenRestore> {
    match store::header().session {
        Session::Restoring(restore) if restore.job == job => Some(restore),
        _ => None,
    }
}

/// Opens the dump `freeze` makes, superseding a stale dump or a staged restore. What was open is
/// released before `freeze` runs (a serde dump serializes into the staging memory a restore's
/// chunks occupy), so if `freeze` fails nothing stays open.
pub fn open_dump(freeze: impl FnOnce() -> Result<OpenDump, BackupError>) -> Result<OpenDump, BackupError> {
    close();
    let dump = freeze()?;
    store::update_header(|h| h.session = Session::Dumping(dump.clone()));
    Ok(dump)
}

/// Opens `restore` with no chunk staged, superseding an open dump or an older staging.
pub fn open_restore(restore: OpenRestore) {
    if matches!(store::header().session, Session::Dumping(_)) {
        memory::clear_saved();
    }
    store::with_staged(|staged| staged.clear_new());
    store::update_header(|h| h.session = Session::Restoring(restore));
}

/// Closes `job`'s dump, if it is the one open.
pub fn end_dump(job: u64) {
    if dump(job).is_some() {
        close();
    }
}

/// Drops `job`'s staged restore, if it is the one open.
pub fn abort_restore(job: u64) {
    if restore(job).is_some() {
        close();
    }
}

/// Closes the restore whose image replaced the live state, recording it as `committed`.
pub fn complete_restore(committed: Committed) {
    store::with_staged(|staged| staged.clear_new());
    store::update_header(|h| {
        h.session = Session::Idle;
        h.committed = Some(committed);
    });
}

/// Closes whatever is open, releasing what it holds.
fn close() {
    match store::header().session {
        Session::Idle => return,
        Session::Dumping(_) => memory::clear_saved(),
        Session::Restoring(_) => store::with_staged(|staged| staged.clear_new()),
    }
    store::update_header(|h| h.session = Session::Idle);
}

#[cfg(test)]
mod tests {
    use vault_api::Sha256;
    use vault_api::protocol::StateKind;

    use super::*;

    fn a_dump(job: u64) -> OpenDump {
        OpenDump { job, kind: StateKind::StableMemory, size: 65536, chunk_size: 1024, taken_at_nanos: 7, cow_slots: 0 }
    }

    fn a_restore(job: u64) -> OpenRestore {
        OpenRestore { job, kind: StateKind::StableMemory, size: 65536, chunk_size: 1024, sha256: Sha256([job as u8; 32]) }
    }

    fn session() -> Session {
        store::header().session
    }

    /// Records `page` as copied aside by the open dump.
    fn copy_aside(page: u64) {
        store::with_cow_index(|index| index.insert(page, page));
    }

    fn pages_copied_aside() -> u64 {
        store::with_cow_index(|index| index.len())
    }

    fn stage(index: u32) {
        store::with_staged(|staged| staged.insert(index, [index as u8; 32]));
    }

    fn chunks_staged() -> u64 {
        store::with_staged(|staged| staged.len())
    }

    fn open(dump: OpenDump) {
        open_dump(|| Ok(dump)).expect("freezing cannot fail here");
    }

    #[test]
    fn a_dump_opens_and_only_its_job_ends_it() {
        open(a_dump(1));
        assert_eq!(session(), Session::Dumping(a_dump(1)));
        assert_eq!(dump(1), Some(a_dump(1)));
        assert_eq!((dump(2), restore(1)), (None, None));
        copy_aside(3);
        end_dump(2);
        abort_restore(1);
        assert_eq!((session(), pages_copied_aside()), (Session::Dumping(a_dump(1)), 1));
        end_dump(1);
        assert_eq!((session(), pages_copied_aside()), (Session::Idle, 0));
    }

    #[test]
    fn a_new_dump_supersedes_a_stale_one() {
        open(a_dump(1));
        copy_aside(3);
        open(a_dump(2));
        assert_eq!((session(), pages_copied_aside()), (Session::Dumping(a_dump(2)), 0));
    }

    #[test]
    fn a_dump_supersedes_a_staged_restore_before_it_freezes() {
        open_restore(a_restore(1));
        stage(0);
        let frozen = open_dump(|| {
            assert_eq!((session(), chunks_staged()), (Session::Idle, 0), "the restore is released first");
            Ok(a_dump(2))
        });
        assert_eq!(frozen, Ok(a_dump(2)));
        assert_eq!((session(), restore(1)), (Session::Dumping(a_dump(2)), None));
    }

    #[test]
    fn a_dump_that_fails_to_freeze_leaves_nothing_open() {
        open_restore(a_restore(1));
        stage(0);
        let failed = open_dump(|| Err(BackupError::Serialization { message: "no state".into() }));
        assert!(matches!(failed, Err(BackupError::Serialization { .. })));
        assert_eq!((session(), chunks_staged()), (Session::Idle, 0));
    }

    #[test]
    fn a_restore_supersedes_an_open_dump_and_an_older_staging() {
        open(a_dump(1));
        copy_aside(3);
        open_restore(a_restore(2));
        assert_eq!((session(), pages_copied_aside()), (Session::Restoring(a_restore(2)), 0));
        assert_eq!(dump(1), None);
        stage(0);
        open_restore(a_restore(3));
        assert_eq!((session(), chunks_staged()), (Session::Restoring(a_restore(3)), 0));
    }

    #[test]
    fn only_its_job_aborts_a_restore() {
        open_restore(a_restore(1));
        stage(0);
        abort_restore(2);
        end_dump(1);
        assert_eq!((session(), chunks_staged()), (Session::Restoring(a_restore(1)), 1));
        abort_restore(1);
        assert_eq!((session(), chunks_staged()), (Session::Idle, 0));
    }

    #[test]
    fn a_completed_restore_closes_and_is_recorded() {
        open_restore(a_restore(1));
        stage(0);
        let committed = Committed { job: 1, kind: StateKind::StableMemory, size: 65536, sha256: Sha256([1; 32]) };
        complete_restore(committed.clone());
        assert_eq!((session(), chunks_staged()), (Session::Idle, 0));
        assert_eq!(store::header().committed, Some(committed));
    }
}
