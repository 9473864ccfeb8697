//! The one operation open at a time, a dump or a restore, bound to the vault instance that
//! opened it: a call whose [`SessionKey`] differs (another vault, another instance of it, another
//! job) finds nothing open. Opening one supersedes the other, and closing one releases what it
//! holds (a dump's frozen pages, a restore's staged chunks); so does a change of vault, and
//! so does the library, the next time it runs, for one no vault call touched for
//! [`SESSION_TTL`]. The base of incremental dumps (`Header::base`) is dropped likewise: by a
//! restore (the live state is replaced), a change of vault, and past the TTL.

use vault_api::protocol::{BackupError, SESSION_TTL};

use crate::layout::{Base, Committed, OpenDump, OpenRestore, Session, SessionKey};
use crate::{pages, store};
use vault_api::protocol::StateKind;

/// The open dump, if it is `key`'s.
pub fn dump(key: &SessionKey) -> Option<OpenDump> {
    match store::header().session {
        Session::Dumping(dump) if dump.key == *key => Some(dump),
        _ => None,
    }
}

/// The restore being staged, if it is `key`'s.
pub fn restore(key: &SessionKey) -> Option<OpenRestore> {
    match store::header().session {
        Session::Restoring(restore) if restore.key == *key => Some(restore),
        _ => None,
    }
}

/// The last restore committed, if it was `key`'s.
pub fn committed(key: &SessionKey) -> Option<Committed> {
    store::header().committed.filter(|committed| committed.key == *key)
}

/// Opens the dump `freeze` makes, superseding a stale dump or a staged restore. What was open is
/// released before `freeze` runs (a serde dump serializes into the staging memory a restore's
/// chunks occupy), so if `freeze` fails nothing stays open.
pub fn open_dump(freeze: impl FnOnce() -> Result<OpenDump, BackupError>) -> Result<OpenDump, BackupError> {
    release();
    let dump = freeze()?;
    store::update_header(|h| h.session = Session::Dumping(dump.clone()));
    Ok(dump)
}

/// Opens `restore` with no chunk staged once `make_room` made room for it, superseding an open
/// dump or an older staging, which are released first; if `make_room` fails nothing stays open.
pub fn open_restore(restore: OpenRestore, make_room: impl FnOnce() -> Result<(), BackupError>) -> Result<(), BackupError> {
    release();
    drop_base();
    make_room()?;
    store::update_header(|h| h.session = Session::Restoring(restore));
    Ok(())
}

/// Records that a vault call touched the open operation at `now` (and the base, which an
/// incremental dump reads).
pub fn touch(now: u64) {
    store::update_header(|h| match &mut h.session {
        Session::Idle => {}
        Session::Dumping(dump) => {
            dump.touched_at_nanos = now;
            if let Some(base) = h.base.as_mut().filter(|_| dump.incremental) {
                base.touched_at_nanos = now;
            }
        }
        Session::Restoring(restore) => restore.touched_at_nanos = now,
    });
}

/// Closes `key`'s dump, if it is the one open.
pub fn end_dump(key: &SessionKey) {
    if dump(key).is_some() {
        release();
    }
}

/// Closes `key`'s dump, if it is the one open, keeping its image as `base` in place of the base
/// held before: a stable-memory image as the paged memory's base version, a serde one by its
/// content index (already kept).
pub fn end_dump_as_base(key: &SessionKey, base: Base) {
    let Some(dump) = dump(key) else { return };
    match dump.kind {
        StateKind::StableMemory => {
            pages::keep_frozen_as_base();
        }
        // The new index is kept already, in place of any before; a stable-memory base's pages go.
        StateKind::Serde if store::header().base.is_some_and(|base| base.kind == StateKind::StableMemory) => pages::release_base(),
        StateKind::Serde => {}
        StateKind::Native => unreachable!("a library app's state is serde or stable memory"),
    }
    store::update_header(|h| {
        h.session = Session::Idle;
        h.base = Some(base);
    });
}

/// The base, if `key`'s vault instance named it `snapshot`.
pub fn base(key: &SessionKey, snapshot: u64) -> Option<Base> {
    store::header().base.filter(|base| base.vault == key.vault && base.nonce == key.nonce && base.snapshot == snapshot)
}

/// Drops the base of incremental dumps, freeing the pages only it holds.
pub fn drop_base() {
    if let Some(base) = store::header().base {
        match base.kind {
            StateKind::StableMemory => pages::release_base(),
            StateKind::Serde => crate::content_index::forget_base(),
            StateKind::Native => unreachable!("a library app's state is serde or stable memory"),
        }
        store::update_header(|h| h.base = None);
    }
}

/// Drops `key`'s staged restore, if it is the one open.
pub fn abort_restore(key: &SessionKey) {
    if restore(key).is_some() {
        release();
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

/// Releases the open operation if no vault call touched it for [`SESSION_TTL`] as of `now`;
/// whether it did. Cheap when nothing is open: the header is cached on the heap.
pub fn release_stale(now: u64) -> bool {
    let ttl = SESSION_TTL.as_nanos() as u64;
    let past_ttl = |touched: u64| now.saturating_sub(touched) > ttl;
    let (stale, stale_base) =
        store::with_header(|h| (h.session.touched_at_nanos().is_some_and(past_ttl), h.base.as_ref().is_some_and(|base| past_ttl(base.touched_at_nanos))));
    if stale {
        release();
    }
    if stale_base && !matches!(store::header().session, Session::Dumping(OpenDump { incremental: true, .. })) {
        drop_base();
    }
    stale
}

/// Closes whatever is open, releasing what it holds.
pub fn release() {
    match store::header().session {
        Session::Idle => return,
        Session::Dumping(dump) => {
            if dump.kind == StateKind::StableMemory {
                pages::release_frozen();
            }
        }
        Session::Restoring(restore) => {
            store::with_staged(|staged| staged.clear_new());
            if restore.kind == StateKind::StableMemory {
                pages::release_staged();
            }
        }
    }
    store::update_header(|h| h.session = Session::Idle);
}

#[cfg(test)]
mod tests {
    use candid::Principal;
    use vault_api::protocol::StateKind;
    use vault_api::{ContentHash, Sha256};

    use super::*;

    const TTL: u64 = SESSION_TTL.as_nanos() as u64;

    fn vault() -> Principal {
        Principal::from_slice(&[9; 10])
    }

    fn key(job: u64) -> SessionKey {
        SessionKey { vault: vault(), nonce: Some(77), job }
    }

    fn a_dump(job: u64) -> OpenDump {
        OpenDump {
            key: key(job),
            kind: StateKind::StableMemory,
            size: 65536,
            chunk_size: 1024,
            taken_at_nanos: 7,
            frozen_generation: 0,
            touched_at_nanos: 7,
            chunk_hashes: false,
            incremental: false,
            from_upgrade_save: false,
            content_index: false,
        }
    }

    fn a_restore(job: u64) -> OpenRestore {
        OpenRestore {
            key: key(job),
            kind: StateKind::StableMemory,
            size: 65536,
            chunk_size: 1024,
            sha256: Sha256([job as u8; 32]),
            touched_at_nanos: 7,
            content_hash: ContentHash::Blake3,
        }
    }

    fn session() -> Session {
        store::header().session
    }

    /// Writes `page` of the app's memory: the open dump keeps its frozen contents.
    fn copy_aside(page: u64) {
        pages::write_live(page * pages::PAGE, b"written", || ());
    }

    /// Whether the open dump holds pages the live memory no longer maps.
    fn dump_holds_pages() -> bool {
        pages::frozen_only_slots() > 0
    }

    /// The session of `job`'s dump, opened by [`open`].
    fn dumping(job: u64) -> Session {
        let frozen_generation = match session() {
            Session::Dumping(open) => open.frozen_generation,
            _ => 0,
        };
        Session::Dumping(OpenDump { frozen_generation, ..a_dump(job) })
    }

    fn stage(index: u32) {
        store::with_staged(|staged| staged.insert(index, [index as u8; 32]));
    }

    fn chunks_staged() -> u64 {
        store::with_staged(|staged| staged.len())
    }

    /// Opens `dump`, of the app's memory of one wasm page, all of it written.
    fn open(dump: OpenDump) {
        let memory = crate::memory::memory();
        if ic_stable_structures::Memory::size(&memory) == 0 {
            ic_stable_structures::Memory::grow(&memory, 1);
            pages::write_live(0, &[1; 65536], || ());
        }
        open_dump(|| Ok(OpenDump { frozen_generation: pages::freeze(), ..dump })).expect("freezing cannot fail here");
    }

    fn open_staging(restore: OpenRestore) {
        let size = restore.size;
        let make_room = || {
            pages::open_staged(size).expect("room for one wasm page");
            Ok(())
        };
        open_restore(restore, make_room).expect("room was made");
    }

    #[test]
    fn a_dump_opens_and_only_its_job_ends_it() {
        open(a_dump(1));
        assert_eq!(session(), dumping(1));
        assert_eq!(dump(&key(1)).map(Session::Dumping), Some(dumping(1)));
        assert_eq!((dump(&key(2)), restore(&key(1))), (None, None));
        copy_aside(3);
        end_dump(&key(2));
        abort_restore(&key(1));
        assert_eq!((session(), dump_holds_pages()), (dumping(1), true));
        end_dump(&key(1));
        assert_eq!((session(), dump_holds_pages()), (Session::Idle, false));
    }

    #[test]
    fn only_the_vault_instance_that_opened_a_dump_reads_or_ends_it() {
        open(a_dump(1));
        copy_aside(3);
        let reinstalled = SessionKey { nonce: Some(78), ..key(1) };
        let other_vault = SessionKey { vault: Principal::from_slice(&[8; 10]), ..key(1) };
        let no_nonce = SessionKey { nonce: None, ..key(1) };
        for stranger in [reinstalled, other_vault, no_nonce] {
            assert_eq!(dump(&stranger), None, "{stranger:?}");
            end_dump(&stranger);
        }
        assert_eq!((session(), dump_holds_pages()), (dumping(1), true));
    }

    #[test]
    fn a_dump_of_a_vault_without_a_nonce_is_bound_to_its_principal_and_job() {
        let old_vault = SessionKey { nonce: None, ..key(1) };
        open(OpenDump { key: old_vault, ..a_dump(1) });
        assert!(dump(&old_vault).is_some());
        assert_eq!(dump(&key(1)), None, "a vault with a nonce is another instance");
    }

    #[test]
    fn only_the_vault_instance_that_committed_a_restore_reads_its_report() {
        let committed = Committed { key: key(1), kind: StateKind::StableMemory, size: 65536, sha256: Sha256([1; 32]) };
        complete_restore(committed.clone());
        assert_eq!(self::committed(&key(1)), Some(committed));
        assert_eq!(self::committed(&SessionKey { nonce: Some(78), ..key(1) }), None);
        assert_eq!(self::committed(&key(2)), None);
    }

    #[test]
    fn a_new_dump_supersedes_a_stale_one() {
        open(a_dump(1));
        copy_aside(3);
        open(a_dump(2));
        assert_eq!((session(), dump_holds_pages()), (dumping(2), false));
    }

    #[test]
    fn a_dump_supersedes_a_staged_restore_before_it_freezes() {
        open_staging(a_restore(1));
        stage(0);
        let frozen = open_dump(|| {
            assert_eq!((session(), chunks_staged()), (Session::Idle, 0), "the restore is released first");
            Ok(a_dump(2))
        });
        assert_eq!(frozen, Ok(a_dump(2)));
        assert_eq!((session(), restore(&key(1))), (Session::Dumping(a_dump(2)), None));
    }

    #[test]
    fn a_dump_that_fails_to_freeze_leaves_nothing_open() {
        open_staging(a_restore(1));
        stage(0);
        let failed = open_dump(|| Err(BackupError::Serialization { message: "no state".into() }));
        assert!(matches!(failed, Err(BackupError::Serialization { .. })));
        assert_eq!((session(), chunks_staged()), (Session::Idle, 0));
    }

    #[test]
    fn a_restore_supersedes_an_open_dump_and_an_older_staging() {
        open(a_dump(1));
        copy_aside(3);
        open_staging(a_restore(2));
        assert_eq!((session(), dump_holds_pages()), (Session::Restoring(a_restore(2)), false));
        assert_eq!(dump(&key(1)), None);
        stage(0);
        open_staging(a_restore(3));
        assert_eq!((session(), chunks_staged()), (Session::Restoring(a_restore(3)), 0));
    }

    #[test]
    fn only_its_job_aborts_a_restore() {
        open_staging(a_restore(1));
        stage(0);
        abort_restore(&key(2));
        abort_restore(&SessionKey { nonce: Some(78), ..key(1) });
        end_dump(&key(1));
        assert_eq!((session(), chunks_staged()), (Session::Restoring(a_restore(1)), 1));
        abort_restore(&key(1));
        assert_eq!((session(), chunks_staged()), (Session::Idle, 0));
    }

    #[test]
    fn a_completed_restore_closes_and_is_recorded() {
        open_staging(a_restore(1));
        stage(0);
        let committed = Committed { key: key(1), kind: StateKind::StableMemory, size: 65536, sha256: Sha256([1; 32]) };
        complete_restore(committed.clone());
        assert_eq!((session(), chunks_staged()), (Session::Idle, 0));
        assert_eq!(store::header().committed, Some(committed));
    }

    #[test]
    fn a_dump_no_vault_call_touched_for_the_ttl_is_released() {
        open(a_dump(1));
        copy_aside(3);
        assert!(!release_stale(7 + TTL), "exactly the TTL is not past it");
        assert_eq!((session(), dump_holds_pages()), (dumping(1), true));
        touch(100);
        assert!(!release_stale(7 + TTL + 1), "a touch restarts the TTL");
        assert!(release_stale(100 + TTL + 1));
        assert_eq!((session(), dump_holds_pages()), (Session::Idle, false));
        assert!(!release_stale(u64::MAX), "nothing is open");
    }

    #[test]
    fn a_staged_restore_no_vault_call_touched_for_the_ttl_is_released() {
        open_staging(a_restore(1));
        stage(0);
        touch(50);
        assert_eq!(restore(&key(1)).map(|r| r.touched_at_nanos), Some(50));
        assert!(!release_stale(50 + TTL));
        assert!(release_stale(50 + TTL + 1));
        assert_eq!((session(), chunks_staged()), (Session::Idle, 0));
    }

    #[test]
    fn the_last_commit_outlives_the_ttl() {
        let committed = Committed { key: key(1), kind: StateKind::Serde, size: 1, sha256: Sha256([1; 32]) };
        complete_restore(committed.clone());
        assert!(!release_stale(u64::MAX));
        assert_eq!(self::committed(&key(1)), Some(committed));
    }
}
