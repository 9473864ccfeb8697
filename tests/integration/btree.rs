//! The btree app (a `StableBTreeMap` of 1 KiB values on the client library's memory): a
//! snapshot restores into a clone with the map's digest as it was, also when the app kept
//! writing while the vault moved the snapshot's chunks.

use vault_api::service::JobPhase;
use vault_tests::btree::DigestPage;
use vault_tests::*;

/// Entries that make an image of several chunks (about 40 MiB), moved over several rounds.
const ENTRIES: u64 = 30_000;

/// A btree app with this vault set and registered, filled with [`ENTRIES`] entries and some of
/// them overwritten.
fn filled_btree(env: &Env) -> candid::Principal {
    let app = env.deploy_btree(Some(env.vault));
    env.vault().register(app, manual(), keep(2)).expect("register");
    let client = env.btree(app);
    assert_eq!(client.fill(0, ENTRIES), ENTRIES);
    client.update_random(1, 2_000);
    assert_eq!(client.append(500), ENTRIES + 500);
    app
}

/// Restores snapshot `snapshot_id` of `app` into a fresh btree clone; the clone's digest.
fn restored_digest(env: &Env, app: candid::Principal, snapshot_id: u64) -> Vec<DigestPage> {
    let clone = env.deploy_btree(Some(env.vault));
    env.vault().register(clone, manual(), keep(1)).expect("register the clone");
    let restored = env.restore(app, snapshot_id, Some(clone));
    assert_eq!(restored.phase, JobPhase::Succeeded, "{restored:?}");
    env.btree(clone).digest()
}

#[test]
fn a_btree_app_restores_into_a_clone_with_its_digest() {
    let env = Env::new();
    let app = filled_btree(&env);
    let client = env.btree(app);
    let digest = client.digest();
    assert_eq!(digest.iter().map(|page| page.entries).sum::<u64>(), ENTRIES + 500);
    let job = env.snapshot(app);
    assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
    assert!(job.chunks_total > 1, "the image spans several chunks: {job:?}");
    client.update_random(2, 100);
    assert_ne!(client.digest(), digest, "the app moved on after the snapshot");

    assert_eq!(restored_digest(&env, app, job.snapshot_id.unwrap()), digest);
}

#[test]
fn a_btree_app_written_while_its_dump_is_read_restores_to_a_state_it_had() {
    let env = Env::new();
    let app = filled_btree(&env);
    let client = env.btree(app);
    // The snapshot is the state as of the message that opened the dump: the digest before some
    // update of those below, or after the last.
    let mut states = vec![client.digest()];
    let job = env.vault().snapshot_now(app).expect("snapshot_now");
    let mut seed = 10;
    while !matches!(env.vault().job_status(job.id).unwrap().phase, JobPhase::Succeeded | JobPhase::Failed) {
        client.update_random(seed, 200);
        seed += 1;
        states.push(client.digest());
    }
    let job = env.vault().job_status(job.id).unwrap();
    assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
    assert!(states.len() > 2, "updates ran while the snapshot moved its chunks: {}", states.len() - 1);

    let restored = restored_digest(&env, app, job.snapshot_id.unwrap());
    assert!(states.contains(&restored), "the clone holds none of the {} states the app had", states.len());
    assert_ne!(restored, *states.last().unwrap(), "the updates after the dump opened are not in the snapshot");
}
