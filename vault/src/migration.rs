//! The stored layout's version, migrated once per upgrade (the shape of orbit's `migration.rs`).
//!
//! A build writes layout [`LAYOUT_VERSION`] and reads every layout from [`OLDEST_LAYOUT`] on:
//! `post_upgrade` runs one step per version from the stored one up, then stores the new
//! version. A stored layout newer than the build knows (an older release installed over a
//! newer layout) or older than it reads is refused before anything is touched: the upgrade
//! traps, and the IC keeps the canister as it was, on its previous module. Which steps run is
//! `vault_api::layout::steps_from`, which the client library's layout uses too.
//!
//! Layouts:
//! - 1: release 0.1.0 and since: memories 0 to 11.
//! - 2: adds APP_CHUNKS and APP_USAGE (13, 14), what each app and registrant holds; built
//!   from layout 1's snapshots, manifests and registrations by [`State::count_usage`] in the
//!   upgrade, which reads each manifest entry once: about 65,000 instructions an entry on the
//!   embedded IC, so the 300 B an upgrade may execute count some 4 million entries (130
//!   snapshots of a 64 GiB app). A layout 1 holding more fails the upgrade, and stays as it was.
//! - 3: adds INDEX (17), the apps by next due time, the imports in progress by start and the
//!   running jobs, and each app's completed snapshots in APP_USAGE; built by
//!   [`State::build_index`], which reads each app and snapshot record once.
//! - 4: adds the chunk store (18 to 22), which starts empty: the chunks of layout 3 stay where
//!   they are, so nothing runs in the upgrade.
//! - 5: a snapshot record says its content hash (bit 7 of its state kind byte, `storable`):
//!   those of layout 4 have it clear and read as SHA-256, which they are, so nothing runs in the
//!   upgrade; a build of layout 4 refuses layout 5 rather than misread a BLAKE3 record.
//! - 6: adds CHUNK_DELTAS (24), which starts empty: chunks stored before are whole, so nothing
//!   runs in the upgrade; a build of layout 5 refuses layout 6 rather than serve a delta as a
//!   chunk's bytes.
//! - 7: adds MANIFEST_PAGES and SEALING (25, 26): [`State::queue_sealing`] queues every complete
//!   snapshot (each record read once), whose entries become pages after the upgrade, in steps;
//!   a build of layout 6 refuses layout 7, whose sealed snapshots it would find no manifest of.
//! - 8: adds NATIVE_APPS and NATIVE_JOBS (27, 28), which start empty, and state kind 3 (native):
//!   nothing runs in the upgrade; a build of layout 7 refuses layout 8.
//! - 9: NATIVE_JOBS records of version 2, with a stop flag: version 1 ones read as not stopped, so
//!   nothing runs in the upgrade; a build of layout 8 refuses layout 9.

pub use vault_api::layout::LayoutError;
use vault_api::layout::steps_from;

use crate::memory::{LAYOUT_VERSION, OLDEST_LAYOUT};
use crate::state::State;

/// Takes the state from one layout version to the next.
pub type Step = fn(&mut State);

/// `STEPS[i]` migrates layout `OLDEST_LAYOUT + i` to `OLDEST_LAYOUT + i + 1`.
const STEPS: [Step; (LAYOUT_VERSION - OLDEST_LAYOUT) as usize] = [State::count_usage, State::build_index, |_| {}, |_| {}, |_| {}, State::queue_sealing, |_| {}, |_| {}];

/// Migrates the stored layout to [`LAYOUT_VERSION`]; refuses one this build cannot read.
pub fn migrate(state: &mut State) -> Result<(), LayoutError> {
    for step in steps_from(state.layout(), OLDEST_LAYOUT, LAYOUT_VERSION, &STEPS)? {
        step(state);
    }
    state.set_layout(LAYOUT_VERSION);
    Ok(())
}

#[cfg(test)]
mod tests {
    use candid::Principal;
    use ic_stable_structures::memory_manager::MemoryManager;
    use ic_stable_structures::{DefaultMemoryImpl, StableBTreeMap};
    use vault_api::protocol::StateKind;
    use vault_api::{ContentHash, Sha256};
    use vault_api::service::Trigger;

    use super::*;
    use crate::memory::{APP_CHUNKS, APP_USAGE, INDEX, SEALING};
    use crate::state::HashedChunk;
    use crate::storable::tests::sample_app;
    use crate::storable::{
        AppChunkKey, AppRecord, AppUsageRecord, Held, IndexKey, PrincipalKey, RegistrantUsageRecord, SnapshotRecord, SnapshotStatus, UsageKey,
        UsageRecord,
    };

    fn p(byte: u8) -> Principal {
        Principal::from_slice(&[byte; 10])
    }

    /// A snapshot of `app` in chunks of 4 bytes, of which those in `stored` are stored.
    fn snapshot(s: &mut State, app: Principal, id: u64, chunks: &[&[u8]], stored: usize) {
        let record = SnapshotRecord {
            status: SnapshotStatus::Building,
            job: 1,
            taken_at: id,
            size: chunks.iter().map(|c| c.len() as u64).sum(),
            sha256: Sha256::default(),
            module_hash: None,
            state_kind: StateKind::Serde,
            chunks: chunks.len() as u32,
            chunk_size: 4,
            started_at: 0,
            duration: 0,
            transfer_cycles: 0,
            trigger: Trigger::Manual,
            content_hash: ContentHash::Sha256,
        };
        s.put_snapshot(app, id, record);
        for (index, chunk) in chunks.iter().enumerate().take(stored) {
            s.store_chunk(app, id, index as u32, &HashedChunk::new(ContentHash::Sha256, chunk));
        }
    }

    fn complete(s: &mut State, app: Principal, id: u64, chunks: &[&[u8]]) {
        snapshot(s, app, id, chunks, chunks.len());
        s.complete_snapshot(app, id, Sha256::default(), 0, 0);
    }

    #[test]
    fn layout_1_gets_what_each_app_and_registrant_holds_as_this_build_keeps_it() {
        let (a, b, c, r1, r2, r3) = (p(1), p(2), p(3), p(11), p(12), p(13));
        let memory = DefaultMemoryImpl::default();
        let mut live = State::init(memory.clone());
        for (app, registrant) in [(a, r1), (b, r2), (c, r3)] {
            live.put_app(app, AppRecord { registered_by: registrant, ..sample_app() });
        }
        // A: two snapshots sharing every chunk, one being built (one of its two chunks stored),
        // one being deleted (one of its two chunks released). B shares a chunk with A.
        complete(&mut live, a, 1, &[b"aaaa", b"bbbb", b"cc"]);
        complete(&mut live, a, 2, &[b"aaaa", b"bbbb", b"cc"]);
        snapshot(&mut live, a, 3, &[b"aaaa", b"dddd"], 1);
        complete(&mut live, a, 6, &[b"gggg", b"hhhh"]);
        live.schedule_deletion(a, 6);
        assert!(live.delete_step(1), "one chunk of snapshot 6 left");
        complete(&mut live, b, 4, &[b"aaaa", b"eeee"]);
        // C: unregistered since, its snapshot kept.
        complete(&mut live, c, 5, &[b"ffff"]);
        live.remove_app(c);
        let usage = |s: &State| [a, b, c].map(|app| s.app_usage(app));
        let registrants = |s: &State| [r1, r2, r3].map(|r| s.registrant_usage(r));
        let (apps_then, registrants_then) = (usage(&live), registrants(&live));
        let held = Held { stored: 4 + 4 + 2 + 4, building: 8 };
        assert_eq!(apps_then[0], AppUsageRecord { registrant: Some(r1), held, completed: 2, completed_bytes: 20, ..Default::default() });
        assert_eq!(apps_then[1].held, Held { stored: 8, building: 0 });
        assert_eq!(registrants_then[0], RegistrantUsageRecord { apps: 1, held: apps_then[0].held });
        assert_eq!(registrants_then[2], RegistrantUsageRecord { apps: 0, held: Held { stored: 4, building: 0 } }, "C stays charged to R3");

        // The same records in layout 1: memories 13 and 14 empty.
        live.set_layout(1);
        drop(live);
        let manager = MemoryManager::init(memory.clone());
        StableBTreeMap::<AppChunkKey, u32, _>::new(manager.get(APP_CHUNKS));
        StableBTreeMap::<UsageKey, UsageRecord, _>::new(manager.get(APP_USAGE));
        drop(manager);
        let mut migrated = State::init(memory.clone());
        assert_eq!(migrated.app_usage(a), AppUsageRecord::default(), "layout 1 knows nothing of it");
        assert_eq!(migrate(&mut migrated), Ok(()));
        assert_eq!(migrated.layout(), LAYOUT_VERSION);
        let apps_now = usage(&migrated);
        assert_eq!(apps_now[..2], apps_then[..2], "as this build keeps them");
        assert_eq!(registrants(&migrated)[..2], registrants_then[..2]);
        let unknown = AppUsageRecord { registrant: None, held: Held { stored: 4, building: 0 }, completed: 1, completed_bytes: 4, ..Default::default() };
        assert_eq!(apps_now[2], unknown, "C's registrant was not kept");
        assert_eq!(registrants(&migrated)[2], RegistrantUsageRecord::default());

        // The references counted let every byte go with the last snapshot naming it.
        for (app, id) in [(a, 1), (a, 2), (a, 3), (b, 4), (c, 5)] {
            migrated.schedule_deletion(app, id);
        }
        migrated.delete_step(100);
        assert_eq!(migrated.chunk_totals(), (0, 0));
        assert!(usage(&migrated).iter().all(|u| u.held.is_empty()), "{:?}", usage(&migrated));
        assert_eq!(registrants(&migrated)[..2].iter().map(|r| (r.apps, r.held)).collect::<Vec<_>>(), vec![(1, Held::default()); 2]);
    }

    #[test]
    fn layout_2_gets_the_index_and_each_apps_completed_snapshots() {
        let (a, b) = (p(1), p(2));
        let memory = DefaultMemoryImpl::default();
        let mut live = State::init(memory.clone());
        live.put_app(a, AppRecord { next_due: 50, running_job: Some(3), ..sample_app() });
        live.put_app(b, AppRecord { next_due: 20, running_job: None, ..sample_app() });
        complete(&mut live, a, 1, &[b"aaaa", b"bb"]);
        complete(&mut live, a, 2, &[b"cccc"]);
        snapshot(&mut live, b, 3, &[b"dddd"], 0);
        let mut import = live.snapshot(b, 3).unwrap();
        import.trigger = Trigger::Import;
        import.started_at = 7;
        live.put_snapshot(b, 3, import);
        let seen = |s: &State| (s.next_scheduled(), s.due_apps(60, 10), s.next_import_expiry(1), s.app_usage(a), s.app_usage(b));
        let then = seen(&live);
        assert_eq!((then.0, then.2, then.3.completed, then.3.completed_bytes), (Some(20), Some(8), 2, 10));

        // The same records in layout 2: memory 17 empty, the app usage records of version 1.
        live.set_layout(2);
        drop(live);
        let manager = MemoryManager::init(memory.clone());
        StableBTreeMap::<IndexKey, (), _>::new(manager.get(INDEX));
        let mut usage = StableBTreeMap::<UsageKey, UsageRecord, _>::init(manager.get(APP_USAGE));
        for app in [a, b] {
            let UsageRecord::App(record) = usage.get(&UsageKey::App(app)).unwrap() else { unreachable!() };
            usage.insert(UsageKey::App(app), UsageRecord::App(AppUsageRecord { completed: 0, completed_bytes: 0, ..record }));
        }
        drop((usage, manager));
        let mut migrated = State::init(memory);
        assert_eq!((migrated.next_scheduled(), migrated.app_usage(a).completed), (None, 0), "layout 2 knows nothing of it");
        assert_eq!(migrate(&mut migrated), Ok(()));
        assert_eq!(migrated.layout(), LAYOUT_VERSION);
        assert_eq!(seen(&migrated), then);
    }

    #[test]
    fn layout_4_reads_its_snapshots_as_sha256_and_keeps_them_as_they_are() {
        let (a, memory) = (p(1), DefaultMemoryImpl::default());
        let mut live = State::init(memory.clone());
        live.put_app(a, sample_app());
        complete(&mut live, a, 1, &[b"aaaa", b"bb"]);
        let manifest = live.manifest_hash(1, ContentHash::Sha256, 6, 4);
        // The same records in layout 4: its snapshot record's bytes are this build's of SHA-256.
        live.set_layout(4);
        drop(live);
        let mut migrated = State::init(memory);
        let before = migrated.snapshot(a, 1).expect("the snapshot");
        assert_eq!(migrate(&mut migrated), Ok(()));
        assert_eq!(migrated.layout(), LAYOUT_VERSION);
        let after = migrated.snapshot(a, 1).expect("the snapshot");
        assert_eq!((after.content_hash, &after), (ContentHash::Sha256, &before));
        assert_eq!(migrated.manifest_hash(1, after.content_hash, after.size, after.chunk_size), manifest);
        assert_eq!(migrated.chunk(1, 1), Some((Sha256::of(b"bb"), b"bb".to_vec())));
    }

    #[test]
    fn layout_6_queues_its_snapshots_whose_manifests_become_pages_after_the_upgrade() {
        let (a, memory) = (p(1), DefaultMemoryImpl::default());
        let mut live = State::init(memory.clone());
        live.put_app(a, sample_app());
        let chunks: Vec<Vec<u8>> = (0..200u32).map(|i| format!("{i:04}").into_bytes()).collect();
        let chunks: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        complete(&mut live, a, 1, &chunks);
        snapshot(&mut live, a, 2, &chunks, 100);
        let read = |s: &State| (s.manifest_hash(1, ContentHash::Sha256, 800, 4), s.chunk_hashes(1, 0, 1000), s.chunk(1, 150), s.missing_chunks(2, 200));
        let (before, held) = (read(&live), live.app_usage(a).held);
        // The same records in layout 6: memories 25 and 26 empty.
        live.set_layout(6);
        drop(live);
        let manager = MemoryManager::init(memory.clone());
        StableBTreeMap::<u64, PrincipalKey, _>::new(manager.get(SEALING));
        drop(manager);
        let mut migrated = State::init(memory);
        assert!(!migrated.sealing_pending(), "layout 6 seals nothing");
        assert_eq!(migrate(&mut migrated), Ok(()));
        assert!(migrated.sealing_pending(), "its complete snapshot is queued");
        assert_eq!(read(&migrated), before, "read where it is until sealed");
        let mut steps = 0;
        while migrated.seal_step(None, 1) {
            steps += 1;
            assert_eq!(read(&migrated), before, "and at every step");
        }
        assert_eq!((steps, read(&migrated)), (1, before), "two pages, the snapshot being built left as it is");
        assert_eq!(migrated.app_usage(a).held.stored, held.stored + 200 * 32, "its pages are held as its chunks");
        for id in [1, 2] {
            migrated.schedule_deletion(a, id);
        }
        while migrated.delete_step(100) {}
        assert_eq!(migrated.chunk_totals(), (0, 0));
    }

    #[test]
    fn a_newer_layout_is_refused_and_left_as_it_is() {
        let memory = DefaultMemoryImpl::default();
        let mut state = State::init(memory.clone());
        assert_eq!(migrate(&mut state), Ok(()), "a fresh state is current");
        state.set_layout(LAYOUT_VERSION + 1);
        let id = state.new_job_id();
        let mut reopened = State::init(memory);
        assert_eq!(migrate(&mut reopened), Err(LayoutError::Newer { stored: LAYOUT_VERSION + 1, known: LAYOUT_VERSION }));
        assert_eq!((reopened.layout(), reopened.new_job_id()), (LAYOUT_VERSION + 1, id + 1), "nothing was touched");
    }
}
