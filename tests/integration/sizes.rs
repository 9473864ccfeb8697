//! Sizes: a 256 MiB stable-memory app and a 64 MiB serde app round-trip, and the cost of a
//! snapshot grows linearly with the state.

use vault_api::service::JobPhase;
use vault_tests::cost::Cost;
use vault_tests::*;

const MIB: u64 = 1 << 20;

/// Fills an app of `kind` with `blobs` blobs, snapshots it and restores the snapshot into a
/// clone, checking the clone's state; returns the snapshot's size and the two costs.
fn round_trip(kind: AppKind, blobs: u64, blob_bytes: u64) -> (u64, Cost, Cost) {
    let env = Env::new();
    let app = env.registered(kind, manual(), keep(2));
    let client = env.app(app);
    for key in 0..blobs {
        client.put_blob(key, blob_bytes, key as u8);
    }
    let before = client.digest();
    let (snapshot, snapshot_cost) = env.measure(&[app], || env.snapshot(app));
    assert_eq!(snapshot.phase, JobPhase::Succeeded, "{snapshot:?}");
    let clone = env.registered(kind, manual(), keep(1));
    let (restore, restore_cost) = env.measure(&[clone], || env.restore(app, snapshot.snapshot_id.unwrap(), Some(clone)));
    assert_eq!(restore.phase, JobPhase::Succeeded, "{restore:?}");
    assert_eq!(env.app(clone).digest(), before);
    (snapshot.bytes_total, snapshot_cost, restore_cost)
}

/// Instructions on both sides per MiB of snapshot.
fn per_mib(cost: &Cost, bytes: u64) -> f64 {
    (cost.app_instructions + cost.vault_instructions) as f64 / (bytes as f64 / MIB as f64)
}

#[test]
fn a_256_mib_stable_memory_app_round_trips_at_the_cost_per_mib_of_a_16_mib_one() {
    let (small, small_snapshot, small_restore) = round_trip(AppKind::Ledger, 2, 8 * MIB);
    let (size, snapshot, restore) = round_trip(AppKind::Ledger, 8, 32 * MIB);
    assert!(size >= 256 * MIB, "{size}");
    assert!((16 * MIB..64 * MIB).contains(&small), "{small}");
    let ratios = [
        per_mib(&snapshot, size) / per_mib(&small_snapshot, small),
        per_mib(&restore, size) / per_mib(&small_restore, small),
    ];
    println!("instructions per MiB at 256 MiB over 16 MiB: snapshot {:.3}, restore {:.3}", ratios[0], ratios[1]);
    assert!(ratios.iter().all(|r| *r <= 1.2), "cost per MiB grew with the state: {ratios:?}");
    // The chunk calls carry nearly the whole payload limit, both ways.
    for cost in [&small_snapshot, &small_restore, &snapshot, &restore] {
        assert!(cost.mean_chunk_payload() > 2 * MIB * 9 / 10, "{cost:?}");
    }
}

#[test]
fn a_64_mib_serde_app_round_trips() {
    let (size, snapshot, _) = round_trip(AppKind::Notes, 8, 8 * MIB);
    assert!(size >= 64 * MIB, "{size}");
    assert!(snapshot.calls >= 32);
}
