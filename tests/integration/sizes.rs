//! Sizes: a 256 MiB stable-memory app and a 64 MiB serde app round-trip.

use vault_api::service::JobPhase;
use vault_tests::*;

const MIB: u64 = 1 << 20;

/// Returns the snapshot's size and chunk count.
fn round_trip(kind: AppKind, blobs: u64, blob_bytes: u64) -> (u64, u32) {
    let env = Env::new();
    let app = env.registered(kind, manual(), keep(2));
    let client = env.app(app);
    for key in 0..blobs {
        client.put_blob(key, blob_bytes, key as u8);
    }
    let before = client.digest();
    let snapshot = env.snapshot(app);
    assert_eq!(snapshot.phase, JobPhase::Succeeded, "{snapshot:?}");
    let clone = env.registered(kind, manual(), keep(1));
    let restore = env.restore(app, snapshot.snapshot_id.unwrap(), Some(clone));
    assert_eq!(restore.phase, JobPhase::Succeeded, "{restore:?}");
    assert_eq!(env.app(clone).digest(), before);
    (snapshot.bytes_total, snapshot.chunks_total)
}

#[test]
fn a_256_mib_stable_memory_app_round_trips() {
    let (size, chunks) = round_trip(AppKind::Ledger, 8, 32 * MIB);
    assert!(size >= 256 * MIB, "{size}");
    assert!(chunks >= 128);
}

#[test]
fn a_64_mib_serde_app_round_trips() {
    let (size, chunks) = round_trip(AppKind::Notes, 8, 8 * MIB);
    assert!(size >= 64 * MIB, "{size}");
    assert!(chunks >= 32);
}
