//! End to end: register, snapshot, restore, for both kinds of state.

use vault_api::service::JobPhase;
use vault_tests::*;

fn round_trip(kind: AppKind) {
    let env = Env::new();
    let app = env.registered(kind, manual(), keep(5));
    let client = env.app(app);
    for n in 0..6 {
        kind.apply(&client, n);
    }
    let before = client.digest();
    let job = env.snapshot(app);
    assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
    let snapshot = env.vault().list_snapshots(app).unwrap()[0].clone();
    for n in 6..12 {
        kind.apply(&client, n);
    }
    assert_ne!(client.digest().1, before.1);
    let job = env.restore(app, snapshot.id, None);
    assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
    assert_eq!(client.digest(), before);
}

#[test]
fn a_serde_app_round_trips() {
    round_trip(AppKind::Notes);
}

#[test]
fn a_stable_memory_app_round_trips() {
    round_trip(AppKind::Ledger);
}
