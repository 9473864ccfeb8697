//! Upgrades from the previous release and rollbacks to it. The vault and both example apps start
//! on release 0.1.0's modules (`tests/fixtures/release-0.1.0`), are upgraded to this build (the
//! vault first, which then serves the apps still on 0.1.0), rolled back, and upgraded again. Neither rolls back: this build migrates the vault's stable
//! memory, and the apps' client library its own, to layouts 0.1.0 does not read (5 and 3). The IC
//! keeps the vault and Notes on this build (their `post_upgrade` traps on the header); Ledger's
//! 0.1.0 `post_upgrade` does not read the library's memory, so its rollback installs, but every
//! message that reaches the library traps, changing nothing, until it goes forward again.
//! Snapshots taken on either side stay listed, restorable and exportable, and the apps' states
//! survive every step. Those the vault takes of an app on 0.1.0, whose library verifies SHA-256
//! only, are SHA-256, as are those 0.1.0's vault took; those of an app on this build are BLAKE3,
//! and a restore of one into an app on 0.1.0 is refused before it starts.

use candid::{Encode, Principal};
use vault_api::ContentHash;
use vault_api::service::VaultError;
use vault_tests::release::{previous_app, registered_previous_app, release_0_1_0};
use vault_tests::*;

/// Installs `wasm` over `canister` the way an operator does (the vault is stopped for it), and
/// starts the vault again whatever the upgrade answered.
fn try_upgrade(env: &Env, canister: Principal, wasm: Vec<u8>) -> Result<(), ic_harness::RejectResponse> {
    let stop = canister == env.vault;
    if stop {
        env.ic.stop_canister(canister, Some(owner())).expect("stop");
    }
    let upgraded = env.ic.upgrade_canister(canister, wasm, Encode!().unwrap(), Some(owner()));
    if stop {
        env.ic.start_canister(canister, Some(owner())).expect("start");
    }
    upgraded
}

fn upgrade(env: &Env, canister: Principal, wasm: Vec<u8>) {
    try_upgrade(env, canister, wasm).expect("upgrade");
}

fn module_hash(env: &Env, canister: Principal) -> Option<Vec<u8>> {
    env.ic.canister_status(canister, Some(owner())).expect("canister_status").module_hash
}

struct App {
    kind: AppKind,
    id: Principal,
    /// Updates applied so far.
    updates: u64,
}

impl App {
    fn update(&mut self, env: &Env, count: u64) {
        for _ in 0..count {
            self.kind.apply(&env.app(self.id), self.updates);
            self.updates += 1;
        }
    }
}

/// Snapshots taken of one app, oldest first, with the state each was taken of.
type Taken = Vec<(u64, Vec<u8>)>;

/// Every snapshot of `app` is listed, and each restores the state it was taken of. The newest
/// is restored last: it is the app's current state, so the app ends as it was.
fn every_snapshot_restores(env: &Env, app: &App, taken: &Taken) {
    let listed: Vec<u64> = env.vault().list_snapshots(app.id).unwrap().iter().map(|s| s.id).collect();
    assert_eq!(listed, taken.iter().map(|(id, _)| *id).collect::<Vec<_>>(), "{:?}: every snapshot is kept", app.kind);
    for (id, state) in taken {
        let job = env.restore(app.id, *id, None);
        assert_eq!(job.error, None, "{:?}: restoring snapshot {id}", app.kind);
        assert_eq!(&env.app(app.id).digest().1, state, "{:?}: snapshot {id} restores its state", app.kind);
    }
}

/// Every snapshot of `app` exports: its chunks, read back from the vault as an export reads them,
/// match their digests in the snapshot's content hash and give its manifest hash.
fn every_snapshot_exports(env: &Env, app: &App) {
    for info in env.vault().list_snapshots(app.id).unwrap() {
        let hash = info.content_hash();
        let image: Vec<u8> = (0..info.chunks)
            .flat_map(|index| {
                let chunk = env.vault().snapshot_chunk(app.id, info.id, index).unwrap();
                assert_eq!(hash.digest(&chunk.data), chunk.sha256, "{:?}: chunk {index} of snapshot {}", app.kind, info.id);
                chunk.data.into_vec()
            })
            .collect();
        assert_eq!(vault_api::manifest::image_hash(hash, &image, info.chunk_size), info.sha256, "{:?}: snapshot {}", app.kind, info.id);
    }
}

/// The content hash of each app's newest snapshot is `expected`.
fn newest_snapshots_are(env: &Env, apps: &[App], expected: ContentHash) {
    for app in apps {
        let newest = env.vault().list_snapshots(app.id).unwrap().pop().expect("a snapshot");
        assert_eq!(newest.content_hash, Some(expected), "{:?}: snapshot {}", app.kind, newest.id);
    }
}

/// Applies `updates` more updates to each app, then snapshots it.
fn snapshot_all(env: &Env, apps: &mut [App], taken: &mut [Taken], updates: u64) {
    for (app, taken) in apps.iter_mut().zip(taken.iter_mut()) {
        app.update(env, updates);
        let state = env.app(app.id).digest().1;
        let job = env.snapshot(app.id);
        assert_eq!(job.error, None, "{:?}: {job:?}", app.kind);
        taken.push((job.snapshot_id.unwrap(), state));
    }
}

fn states(env: &Env, apps: &[App]) -> Vec<Vec<u8>> {
    apps.iter().map(|a| env.app(a.id).digest().1).collect()
}

#[test]
fn the_vault_and_its_apps_upgrade_from_the_previous_release_and_roll_back() {
    let ic = ic_harness::Harness::new();
    let vault = ic.create_canister_with_cycles(Some(owner()), None, 100_000_000_000_000);
    ic.install_canister(vault, release_0_1_0("canister_vault"), Encode!().unwrap(), Some(owner()));
    let env = Env { ic, vault, app_subnet: ic_harness::SubnetId(0) };
    let mut apps: Vec<App> = [AppKind::Notes, AppKind::Ledger]
        .into_iter()
        .map(|kind| {
            let id = env.ic.create_canister_with_settings(Some(owner()), None);
            env.ic.install_canister(id, previous_app(kind), Encode!(&Some(env.vault)).unwrap(), Some(owner()));
            env.vault().register(id, manual(), keep(10)).expect("register");
            App { kind, id, updates: 0 }
        })
        .collect();
    let mut taken: Vec<Taken> = vec![Vec::new(); apps.len()];

    // On 0.1.0.
    snapshot_all(&env, &mut apps, &mut taken, PREFILL + 2);

    // The vault upgraded to this build first: what 0.1.0 stored is read, SHA-256, and the apps,
    // still on 0.1.0 (they ignore the vault's nonce and hash every chunk they dump), are
    // snapshotted, in SHA-256, and restored by it.
    upgrade(&env, env.vault, vault_wasm());
    newest_snapshots_are(&env, &apps, ContentHash::Sha256);
    for (app, taken) in apps.iter().zip(&taken) {
        every_snapshot_restores(&env, app, taken);
        every_snapshot_exports(&env, app);
    }
    snapshot_all(&env, &mut apps, &mut taken, 2);
    newest_snapshots_are(&env, &apps, ContentHash::Sha256);

    // Then the apps: this build adds its own snapshots.
    let before = states(&env, &apps);
    for app in &apps {
        upgrade(&env, app.id, app.kind.wasm());
    }
    assert_eq!(states(&env, &apps), before, "the apps' states survive the upgrade");
    for (app, taken) in apps.iter().zip(&taken) {
        every_snapshot_restores(&env, app, taken);
    }
    snapshot_all(&env, &mut apps, &mut taken, 3);
    newest_snapshots_are(&env, &apps, ContentHash::Blake3);

    // Rolled back to 0.1.0: the vault's upgrade is refused by 0.1.0, which does not read layout 9
    // (the client library's, 6), and the vault runs on this build as before, its snapshots intact. So do the apps (see above).
    let before = states(&env, &apps);
    let this_build = module_hash(&env, env.vault);
    let refused = try_upgrade(&env, env.vault, release_0_1_0("canister_vault")).expect_err("0.1.0 refuses layout 9");
    assert!(refused.reject_message.contains("vault layout 9 is not supported by this build"), "{refused:?}");
    assert_eq!(module_hash(&env, env.vault), this_build, "the IC keeps the vault's module");
    for app in &apps {
        let rolled_back = try_upgrade(&env, app.id, previous_app(app.kind));
        match app.kind {
            AppKind::Notes => {
                let refused = rolled_back.expect_err("0.1.0's client library refuses layout 6");
                assert!(refused.reject_message.contains("layout 6 is not supported"), "{refused:?}");
            }
            AppKind::Ledger => {
                rolled_back.expect("0.1.0's post_upgrade does not read the library's memory");
                let trapped = env.app(app.id).try_update::<_, (u64, serde_bytes::ByteBuf)>("digest", ()).expect_err("the library traps");
                assert!(trapped.to_string().contains("layout 6 is not supported"), "{trapped}");
                upgrade(&env, app.id, app.kind.wasm());
            }
        }
    }
    assert_eq!(states(&env, &apps), before, "the apps' states survive the rollback");
    for (app, taken) in apps.iter().zip(&taken) {
        every_snapshot_restores(&env, app, taken);
    }
    snapshot_all(&env, &mut apps, &mut taken, 3);

    // And forward again: SHA-256 and BLAKE3 snapshots side by side, each restores and exports.
    upgrade(&env, env.vault, vault_wasm());
    for app in &apps {
        upgrade(&env, app.id, app.kind.wasm());
    }
    for (app, taken) in apps.iter().zip(&taken) {
        every_snapshot_restores(&env, app, taken);
        every_snapshot_exports(&env, app);
    }
}

#[test]
fn a_blake3_snapshot_is_not_restored_into_an_app_of_the_previous_release() {
    for kind in [AppKind::Notes, AppKind::Ledger] {
        let env = Env::new();
        let app = env.registered(kind, manual(), keep(3));
        kind.apply(&env.app(app), 0);
        let snapshot = env.snapshot(app).snapshot_id.expect("a snapshot");
        let previous = registered_previous_app(&env, kind);
        let before = env.app(previous).digest();
        let refused = env.vault().restore(app, snapshot, Some(previous));
        assert_eq!(refused.map(|job| job.id), Err(VaultError::ContentHashNotVerified { target: previous, content_hash: ContentHash::Blake3 }), "{kind:?}");
        assert_eq!(env.vault().list_jobs(previous).unwrap().len(), 0, "{kind:?}: no job started");
        assert_eq!(env.app(previous).digest(), before, "{kind:?}");
        // The previous release's own snapshots, SHA-256, restore into it.
        previous_snapshot_restores(&env, kind, previous);
    }
}

/// A snapshot of `app`, of the previous release, is SHA-256 and restores its state.
fn previous_snapshot_restores(env: &Env, kind: AppKind, app: Principal) {
    let state = env.app(app).digest();
    let job = env.snapshot(app);
    let info = env.vault().list_snapshots(app).unwrap().pop().expect("a snapshot");
    assert_eq!((Some(info.id), info.content_hash), (job.snapshot_id, Some(ContentHash::Sha256)), "{kind:?}");
    kind.apply(&env.app(app), 1);
    assert_eq!(env.restore(app, info.id, None).error, None, "{kind:?}");
    assert_eq!(env.app(app).digest(), state, "{kind:?}");
}
