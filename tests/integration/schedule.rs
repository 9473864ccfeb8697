//! Schedules on a clock that walks: an app left alone for a day gets exactly the snapshots its
//! schedule asks for, each started in its hour's round, and retention keeps the newest.

use vault_api::service::{JobKind, JobPhase, Trigger};
use vault_tests::*;

#[test]
fn a_day_of_an_hourly_schedule_takes_24_snapshots_each_in_its_hour() {
    let env = Env::new();
    let app = env.registered(AppKind::Ledger, schedule(1), keep(5));
    let client = env.app(app);
    for n in 0..PREFILL {
        AppKind::Ledger.apply(&client, n);
    }
    let first = env.vault().app_info(app).unwrap().next_snapshot_at_nanos.expect("a schedule");
    let report = env.ic.advance(24 * HOUR).expect("a day passes");
    // The last snapshot starts at the day's end: a few more minutes let it finish, and start no other.
    env.ic.advance(std::time::Duration::from_secs(600)).expect("its batches run");

    let mut jobs = env.vault().list_jobs(app).unwrap();
    jobs.sort_by_key(|j| j.id);
    assert_eq!(jobs.len(), 24, "one snapshot an hour: {jobs:?}");
    let (hour, second) = (HOUR.as_nanos() as u64, 1_000_000_000);
    for (k, job) in (0..).zip(&jobs) {
        // In the round of its hour, or the next one when the vault's watchdog took that round.
        let due = first + k * hour;
        assert!((due..=due + second).contains(&job.started_at_nanos), "snapshot {k} due at {due}: {job:?}");
        assert_eq!(job.kind, JobKind::Snapshot { trigger: Trigger::Scheduled });
        assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
    }
    let newest: Vec<u64> = jobs[19..].iter().map(|j| j.snapshot_id.unwrap()).collect();
    let kept: Vec<u64> = env.vault().list_snapshots(app).unwrap().iter().map(|s| s.id).collect();
    assert_eq!(kept, newest, "retention keeps the newest 5 of 24");
    assert!(report.rounds < 24 * 3600 / 10, "rounds only where something was due: {report:?}");
}
