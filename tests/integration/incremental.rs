//! Incremental snapshots: after a full snapshot of a stable-memory app, the next ones move only
//! the pages that changed and restore and export as the state they were taken of, also once the
//! snapshot they were built on is deleted; a restore into the app makes its next snapshot full,
//! and so does `max_incrementals` after that many; and every lie of an incremental dump ends its
//! snapshot in a typed error, storing nothing. A serde app's snapshots after the first move only
//! the pieces of its serialization its base lacks, wherever the rest moved to, and each restores
//! and exports as taken, its base deleted or not (while a dump is rebuilt from it, it is not).

use candid::Principal;
use vault_api::protocol::{CHUNK_SIZE, PAGE_SIZE};
use vault_api::service::{JobInfo, JobPhase, SnapshotOptions, UpdateScheduleArgs};
use vault_tests::btree::DigestPage;
use vault_tests::cost::Cost;
use vault_tests::lies::INCREMENTAL_LIES;
use vault_tests::*;

/// Entries of the btree app: an image of a few MiB, in a few chunks.
const ENTRIES: u64 = 3_000;

/// A btree app with this vault set, registered, filled with [`ENTRIES`] entries.
fn filled_btree(env: &Env) -> Principal {
    let app = env.deploy_btree(Some(env.vault));
    env.vault().register(app, manual(), keep(10)).expect("register");
    assert_eq!(env.btree(app).fill(0, ENTRIES), ENTRIES);
    app
}

/// A snapshot of `app` taken now, succeeded, with what it cost.
fn measured_snapshot(env: &Env, app: Principal) -> (JobInfo, Cost) {
    let (job, cost) = env.measure(&[app], || env.snapshot(app));
    assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
    (job, cost)
}

/// The snapshot a job the incremental dump of which built on, as its notes say.
fn built_on(job: &JobInfo) -> Option<u64> {
    job.notes.iter().find_map(|note| note.rsplit_once("incremental against snapshot ").and_then(|(_, id)| id.parse().ok()))
}

/// Restores snapshot `snapshot_id` of `app` into a fresh btree clone; the clone's digest.
fn restored_digest(env: &Env, app: Principal, snapshot_id: u64) -> Vec<DigestPage> {
    let clone = env.deploy_btree(Some(env.vault));
    env.vault().register(clone, manual(), keep(1)).expect("register the clone");
    let restored = env.restore(app, snapshot_id, Some(clone));
    assert_eq!(restored.phase, JobPhase::Succeeded, "{restored:?}");
    env.btree(clone).digest()
}

/// Reads snapshot `snapshot_id` of `app` back as an export does: each chunk matches its digest,
/// and together they give the manifest hash.
fn exports(env: &Env, app: Principal, snapshot_id: u64) {
    let info = env.vault().list_snapshots(app).unwrap().into_iter().find(|s| s.id == snapshot_id).expect("the snapshot is listed");
    let image: Vec<u8> = (0..info.chunks)
        .flat_map(|index| {
            let chunk = env.vault().snapshot_chunk(app, snapshot_id, index).unwrap();
            assert_eq!(info.content_hash().digest(&chunk.data), chunk.sha256, "chunk {index} of snapshot {snapshot_id}");
            chunk.data.into_vec()
        })
        .collect();
    assert_eq!(image.len() as u64, info.size);
    assert_eq!(vault_api::manifest::image_hash(info.content_hash(), &image, info.chunk_size), info.sha256, "snapshot {snapshot_id}");
}

/// A notes app with this vault set, registered, holding `notes` notes of 1,000 letters.
fn filled_notes(env: &Env, notes: u64) -> Principal {
    let app = env.registered(AppKind::Notes, manual(), keep(10));
    assert_eq!(env.app(app).update::<_, (u64,)>("add_notes", (notes, 1_000u64, 1u64)).0, notes);
    app
}

/// Rewrites `count` notes of a notes app at pseudo-random ids, each a little longer or shorter.
fn edit_notes(env: &Env, app: Principal, count: u64, seed: u64) {
    assert_eq!(env.app(app).update::<_, (u64,)>("edit_random", (count, seed)).0, count);
}

/// Restores snapshot `snapshot_id` of `app` into a fresh notes clone; the clone's digest.
fn restored_notes(env: &Env, app: Principal, snapshot_id: u64) -> (u64, Vec<u8>) {
    let clone = env.registered(AppKind::Notes, manual(), keep(1));
    let restored = env.restore(app, snapshot_id, Some(clone));
    assert_eq!(restored.phase, JobPhase::Succeeded, "{restored:?}");
    env.app(clone).digest()
}

fn snapshot_id(job: &JobInfo) -> u64 {
    job.snapshot_id.expect("a snapshot job names its snapshot")
}

#[test]
fn a_snapshot_after_the_first_moves_only_the_changed_pages_and_each_restores_as_taken() {
    let env = Env::new();
    let app = filled_btree(&env);
    let client = env.btree(app);
    let first_digest = client.digest();
    let (first, full) = measured_snapshot(&env, app);
    assert_eq!(built_on(&first), None, "the first snapshot is full: {first:?}");
    assert!(first.chunks_total > 1, "{first:?}");
    let held = |env: &Env| env.vault().app_info(app).unwrap().stored_bytes.expect("this vault counts them");
    let held_by_first = held(&env);
    client.update_random(1, 20);
    let second_digest = client.digest();
    assert_ne!(second_digest, first_digest);
    let (second, incremental) = measured_snapshot(&env, app);
    assert_eq!(built_on(&second), Some(snapshot_id(&first)), "{second:?}");
    println!(
        "chunk bytes: full {} in {} calls, incremental {} in {} calls; held {} then {}",
        full.chunk_bytes,
        full.chunk_calls,
        incremental.chunk_bytes,
        incremental.chunk_calls,
        held_by_first,
        held(&env)
    );
    assert!(incremental.chunk_bytes * 10 < full.chunk_bytes, "{} of {} bytes moved", incremental.chunk_bytes, full.chunk_bytes);
    let grown = held(&env) - held_by_first;
    assert!(grown > 0 && grown <= incremental.chunk_bytes, "the vault stores the changed pages, {grown} bytes, not their chunks whole");
    let listed = env.vault().list_snapshots(app).unwrap();
    assert_eq!(listed.iter().map(|s| (s.size, s.chunk_size)).collect::<Vec<_>>(), vec![(listed[0].size, CHUNK_SIZE); 2]);

    assert_eq!(restored_digest(&env, app, snapshot_id(&second)), second_digest);
    assert_eq!(restored_digest(&env, app, snapshot_id(&first)), first_digest, "the base is as it was");
    // An incremental snapshot of an unchanged state is the same snapshot, moving no page.
    let (third, unchanged) = measured_snapshot(&env, app);
    assert_eq!(built_on(&third), Some(snapshot_id(&second)));
    let listed = env.vault().list_snapshots(app).unwrap();
    assert_eq!(listed[2].sha256, listed[1].sha256);
    assert!(unchanged.chunk_bytes < 1_000 * first.chunks_total as u64, "{} bytes for no page changed", unchanged.chunk_bytes);
}

#[test]
fn an_incremental_snapshot_outlives_its_base_and_restores_and_exports_without_it() {
    let env = Env::new();
    let app = filled_btree(&env);
    let client = env.btree(app);
    let first = env.snapshot(app);
    client.update_random(2, 30);
    assert_eq!(client.append(100), ENTRIES + 100, "the image grows past the base's");
    let digest = client.digest();
    let second = env.snapshot(app);
    assert_eq!((second.phase, built_on(&second)), (JobPhase::Succeeded, Some(snapshot_id(&first))), "{second:?}");
    env.vault().delete_snapshot(app, snapshot_id(&first)).expect("delete the base");
    env.run_for(5);
    assert_eq!(env.vault().list_snapshots(app).unwrap().iter().map(|s| s.id).collect::<Vec<_>>(), vec![snapshot_id(&second)]);
    exports(&env, app, snapshot_id(&second));
    assert_eq!(restored_digest(&env, app, snapshot_id(&second)), digest);
    // The app's base is the second snapshot, not the one deleted: the next builds on it.
    client.update_random(3, 10);
    let third = env.snapshot(app);
    assert_eq!((third.phase, built_on(&third)), (JobPhase::Succeeded, Some(snapshot_id(&second))), "{third:?}");
    assert_eq!(restored_digest(&env, app, snapshot_id(&third)), client.digest());
}

#[test]
fn a_restore_into_the_app_and_max_incrementals_make_the_next_snapshot_full() {
    let env = Env::new();
    let app = filled_btree(&env);
    let client = env.btree(app);
    let max = |n| UpdateScheduleArgs { app, schedule: None, retention: None, max_incrementals: Some(n) };
    let info = env.vault().service().update_schedule(max(2)).unwrap().expect("update_schedule");
    assert_eq!(info.max_incrementals, Some(2));
    // Full, then two incrementals, then full again.
    let mut taken = Vec::new();
    for seed in 0..5 {
        client.update_random(10 + seed, 5);
        let job = env.snapshot(app);
        assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
        taken.push((built_on(&job), snapshot_id(&job), client.digest()));
    }
    let ids: Vec<u64> = taken.iter().map(|t| t.1).collect();
    let chain: Vec<Option<u64>> = taken.iter().map(|t| t.0).collect();
    assert_eq!(chain, vec![None, Some(ids[0]), Some(ids[1]), None, Some(ids[3])]);
    // Restored into the app, which drops its base: the next snapshot is full, and holds the
    // restored state.
    let (_, restored_id, restored_digest_then) = taken[2].clone();
    let job = env.restore(app, restored_id, None);
    assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
    assert_eq!(client.digest(), restored_digest_then);
    let after = env.snapshot(app);
    assert_eq!((after.phase, built_on(&after)), (JobPhase::Succeeded, None), "{after:?}");
    client.update_random(20, 5);
    let next = env.snapshot(app);
    assert_eq!(built_on(&next), Some(snapshot_id(&after)), "incremental again after the full one");
    assert_eq!(restored_digest(&env, app, snapshot_id(&next)), client.digest());
    // Asked for, a snapshot is full; with max_incrementals 0, every one is.
    let full = env.vault().service().snapshot_now_with(app, SnapshotOptions { full: true, from_upgrade_save: None }).unwrap().expect("snapshot_now");
    let full = env.finish_job(full.id, 2_000);
    assert_eq!((full.phase, built_on(&full)), (JobPhase::Succeeded, None), "{full:?}");
    env.vault().service().update_schedule(max(0)).unwrap().expect("update_schedule");
    let never = env.snapshot(app);
    assert_eq!((never.phase, built_on(&never)), (JobPhase::Succeeded, None), "{never:?}");
    for (_, id, digest) in &taken {
        assert_eq!(&restored_digest(&env, app, *id), digest, "snapshot {id}");
    }
}

#[test]
fn every_lie_of_an_incremental_dump_ends_its_snapshot_in_a_typed_error_and_stores_nothing() {
    let env = Env::new();
    let hostile = env.deploy_hostile();
    env.vault().register(hostile, manual(), keep(20)).expect("register the hostile app");
    let client = env.hostile(hostile);
    client.set_incremental_lie("honest");
    let first = env.snapshot(hostile);
    assert_eq!((first.phase, built_on(&first)), (JobPhase::Succeeded, None), "{first:?}");
    // A page of the second chunk changes: the honest incremental dump sends it alone.
    client.write_incremental_page(CHUNK_SIZE / PAGE_SIZE + 9, 7);
    let second = env.snapshot(hostile);
    assert_eq!((second.phase, built_on(&second)), (JobPhase::Succeeded, Some(snapshot_id(&first))), "{second:?}");
    let listed = env.vault().list_snapshots(hostile).unwrap();
    assert_eq!(listed.last().map(|s| s.sha256), Some(client.incremental_image_hash()), "the vault rebuilt the image the app holds");
    exports(&env, hostile, snapshot_id(&second));
    for lie in &INCREMENTAL_LIES {
        let name = lie.name;
        // The truth first, so that the app holds a base its lie may spoil.
        client.set_incremental_lie("honest");
        let honest = env.snapshot(hostile);
        assert_eq!(honest.phase, JobPhase::Succeeded, "before {name}: {honest:?}");
        let (snapshots, stored) = (env.vault().list_snapshots(hostile).unwrap(), env.vault().app_info(hostile).unwrap().stored_bytes);
        client.set_incremental_lie(name);
        let started = if lie.full_dump {
            env.vault().service().snapshot_now_with(hostile, SnapshotOptions { full: true, from_upgrade_save: None }).unwrap()
        } else {
            env.vault().snapshot_now(hostile)
        };
        let job = env.finish_job(started.unwrap_or_else(|e| panic!("{name}: {e}")).id, 100);
        env.run_for(5);
        assert_eq!(job.phase, JobPhase::Failed, "{name}: {job:?}");
        let error = job.error.as_ref().expect("a failed job says why");
        assert!((lie.ends_in)(error), "{name}: ended in {error:?}");
        assert_eq!(job.retries, 0, "{name}: a lie is not retried: {job:?}");
        assert_eq!(env.vault().list_snapshots(hostile).unwrap(), snapshots, "{name}: a spoiled snapshot is listed");
        let info = env.vault().app_info(hostile).unwrap();
        assert_eq!((info.running_job, info.stored_bytes), (None, stored), "{name}: the app is free and holds what it held");
    }
    client.set_incremental_lie("off");
    let plain = env.snapshot(hostile);
    assert_eq!(plain.phase, JobPhase::Succeeded, "out of its incremental mode: {plain:?}");
}

#[test]
fn a_serde_snapshot_after_the_first_moves_what_its_base_lacks_and_each_restores_as_taken() {
    let env = Env::new();
    let app = filled_notes(&env, 8_000);
    let first_digest = env.app(app).digest();
    let (first, full) = measured_snapshot(&env, app);
    assert_eq!(built_on(&first), None, "the first snapshot is full: {first:?}");
    assert!(first.chunks_total >= 4, "{first:?}");
    edit_notes(&env, app, 80, 7);
    let second_digest = env.app(app).digest();
    let (second, incremental) = measured_snapshot(&env, app);
    assert_eq!(built_on(&second), Some(snapshot_id(&first)), "{second:?}");
    println!("chunk bytes: full {}, after 1% of the notes rewritten {}", full.chunk_bytes, incremental.chunk_bytes);
    assert!(incremental.chunk_bytes * 100 < full.chunk_bytes * 5, "{} of {} bytes moved", incremental.chunk_bytes, full.chunk_bytes);
    exports(&env, app, snapshot_id(&second));
    assert_eq!(restored_notes(&env, app, snapshot_id(&second)), second_digest);
    assert_eq!(restored_notes(&env, app, snapshot_id(&first)), first_digest, "the base is as it was");

    // Unchanged, the next one is the same snapshot; then the chain outlives its bases.
    let third = env.snapshot(app);
    assert_eq!(built_on(&third), Some(snapshot_id(&second)));
    let listed = env.vault().list_snapshots(app).unwrap();
    assert_eq!(listed[2].sha256, listed[1].sha256);
    edit_notes(&env, app, 40, 8);
    assert_eq!(env.app(app).update::<_, (u64,)>("add_notes", (100u64, 1_000u64, 2u64)).0, 8_100, "the serialization grows");
    let fourth_digest = env.app(app).digest();
    let fourth = env.snapshot(app);
    assert_eq!((fourth.phase, built_on(&fourth)), (JobPhase::Succeeded, Some(snapshot_id(&third))), "{fourth:?}");
    for base in [&first, &second, &third] {
        env.vault().delete_snapshot(app, snapshot_id(base)).expect("delete a base");
    }
    env.run_for(5);
    assert_eq!(env.vault().list_snapshots(app).unwrap().iter().map(|s| s.id).collect::<Vec<_>>(), vec![snapshot_id(&fourth)]);
    exports(&env, app, snapshot_id(&fourth));
    assert_eq!(restored_notes(&env, app, snapshot_id(&fourth)), fourth_digest);
    // The base went: the next snapshot is full.
    edit_notes(&env, app, 10, 9);
    let fifth = env.snapshot(app);
    assert_eq!((fifth.phase, built_on(&fifth)), (JobPhase::Succeeded, Some(snapshot_id(&fourth))), "{fifth:?}");
}

#[test]
fn a_serde_base_is_kept_while_a_dump_is_rebuilt_from_it_and_a_restore_makes_the_next_full() {
    let env = Env::new();
    let app = filled_notes(&env, 8_000);
    let first = env.snapshot(app);
    edit_notes(&env, app, 80, 3);
    let job = env.vault().snapshot_now(app).expect("snapshot_now");
    env.until_phase(job.id, JobPhase::Transferring, 60);
    // Stopped, the app answers no chunk: the job waits, transferring.
    env.ic.stop_canister(app, Some(owner())).expect("stop");
    env.run_for(3);
    let waiting = env.vault().job_status(job.id).expect("job_status");
    assert_eq!((waiting.phase, waiting.chunks_done), (JobPhase::Transferring, 0), "{waiting:?}");
    let refused = env.vault().delete_snapshot(app, snapshot_id(&first));
    assert!(matches!(refused, Err(vault_api::service::VaultError::JobRunning { job: running, .. }) if running == job.id), "{refused:?}");
    env.ic.start_canister(app, Some(owner())).expect("start");
    let second = env.finish_job(job.id, 2_000);
    assert_eq!((second.phase, built_on(&second)), (JobPhase::Succeeded, Some(snapshot_id(&first))), "{second:?}");
    env.vault().delete_snapshot(app, snapshot_id(&first)).expect("deleted once the dump is done");
    // Restored into the app, which drops its base: the next snapshot is full.
    let restored = env.restore(app, snapshot_id(&second), None);
    assert_eq!(restored.phase, JobPhase::Succeeded, "{restored:?}");
    let after = env.snapshot(app);
    assert_eq!((after.phase, built_on(&after)), (JobPhase::Succeeded, None), "{after:?}");
    edit_notes(&env, app, 5, 4);
    let next = env.snapshot(app);
    assert_eq!(built_on(&next), Some(snapshot_id(&after)), "incremental again after the full one");
    assert_eq!(restored_notes(&env, app, snapshot_id(&next)), env.app(app).digest());
}
