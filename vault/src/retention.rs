//! Which completed snapshots a retention policy keeps: the `keep_last` newest, plus the newest
//! of each of the most recent `keep_daily` days and `keep_weekly` ISO weeks that have
//! snapshots (UTC), as restic's `--keep-last/--keep-daily/--keep-weekly` do.

use std::collections::BTreeSet;

use candid::Principal;
use vault_api::protocol::StateKind;
use vault_api::service::{JobKind, Retention, VaultError};

use crate::state::State;
use crate::storable::{JobRecord, Phase, SnapshotStatus, Task};

const NANOS_PER_DAY: u64 = 86_400 * 1_000_000_000;

/// Bounds a policy must respect.
pub fn validate(r: &Retention) -> Result<(), VaultError> {
    let invalid = |reason: &str| Err(VaultError::InvalidRetention { reason: reason.to_string() });
    if r.keep_last == 0 {
        return invalid("keep_last must be at least 1: the newest snapshot is always kept");
    }
    if r.keep_last > 1000 || r.keep_daily > 3660 || r.keep_weekly > 520 {
        return invalid("keep at most 1000 last, 3660 daily and 520 weekly snapshots");
    }
    Ok(())
}

fn day(taken_at: u64) -> u64 {
    taken_at / NANOS_PER_DAY
}

/// ISO weeks start on Monday; 1970-01-01 was a Thursday.
fn week(taken_at: u64) -> u64 {
    (day(taken_at) + 3) / 7
}

/// Newest of each of the most recent `count` buckets.
fn newest_per_bucket(newest_first: &[(u64, u64)], count: u32, bucket: fn(u64) -> u64, keep: &mut BTreeSet<u64>) {
    let mut seen = BTreeSet::new();
    for &(id, taken_at) in newest_first {
        if seen.len() as u32 >= count {
            break;
        }
        if seen.insert(bucket(taken_at)) {
            keep.insert(id);
        }
    }
}

/// The ids of `snapshots` (id, taken at) that `policy` lets go.
pub fn to_delete(snapshots: &[(u64, u64)], policy: &Retention) -> Vec<u64> {
    let mut newest_first = snapshots.to_vec();
    newest_first.sort_by_key(|&(id, taken_at)| std::cmp::Reverse((taken_at, id)));
    let mut keep: BTreeSet<u64> = newest_first.iter().take(policy.keep_last as usize).map(|s| s.0).collect();
    newest_per_bucket(&newest_first, policy.keep_daily, day, &mut keep);
    newest_per_bucket(&newest_first, policy.keep_weekly, week, &mut keep);
    newest_first.iter().map(|s| s.0).filter(|id| !keep.contains(id)).collect()
}

/// Whether `policy` keeps `new` (id, taken at) beside `snapshots`.
pub fn keeps(snapshots: &[(u64, u64)], new: (u64, u64), policy: &Retention) -> bool {
    let mut all = snapshots.to_vec();
    all.push(new);
    !to_delete(&all, policy).contains(&new.0)
}

/// How many of `snapshots` (id, taken at) and `new` beside them `policy` keeps.
pub fn kept_with(snapshots: &[(u64, u64)], new: (u64, u64), policy: &Retention) -> usize {
    let mut all = snapshots.to_vec();
    all.push(new);
    all.len() - to_delete(&all, policy).len()
}

/// Deletes the completed snapshots of `app` its retention lets go, except those a running
/// restore reads.
pub fn apply(s: &mut State, app: Principal) {
    let Some(record) = s.app(app) else { return };
    let in_use = snapshots_in_use(s);
    let complete: Vec<(u64, u64)> = s
        .snapshots_of(app)
        .into_iter()
        .filter(|(_, r)| r.status == SnapshotStatus::Complete)
        .map(|(id, r)| (id, r.taken_at))
        .collect();
    for id in to_delete(&complete, &record.retention) {
        if !in_use.contains(&(app, id)) {
            s.schedule_deletion(app, id);
        }
    }
}

/// (source app, snapshot) pairs that running jobs read.
pub fn snapshots_in_use(s: &State) -> BTreeSet<(Principal, u64)> {
    s.active_jobs().iter().filter_map(reads).collect()
}

/// The (app, snapshot) pair a running job reads: a restore's source, the base a dump opening
/// asks for, and the base of a serde dump incremental against it, whose chunks are rebuilt from
/// it (a stable-memory dump's new snapshot references its base's chunks instead).
pub fn reads(job: &JobRecord) -> Option<(Principal, u64)> {
    match (&job.task, job.kind()) {
        (_, JobKind::Restore { source, snapshot_id }) => Some((source, snapshot_id)),
        (Task::Snapshot { phase: Phase::Starting, base: Some(base), .. }, _) => Some((job.app, base.snapshot)),
        (Task::Snapshot { phase: Phase::Transferring(building), base: Some(base), .. }, _) if building.transfer.state_kind == StateKind::Serde => {
            Some((job.app, base.snapshot))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600 * 1_000_000_000;

    fn policy(keep_last: u32, keep_daily: u32, keep_weekly: u32) -> Retention {
        Retention { keep_last, keep_daily, keep_weekly }
    }

    #[test]
    fn keep_last_keeps_the_newest() {
        let snaps: Vec<(u64, u64)> = (1..=5).map(|i| (i, i * HOUR)).collect();
        assert_eq!(to_delete(&snaps, &policy(2, 0, 0)), vec![3, 2, 1]);
    }

    #[test]
    fn daily_keeps_the_newest_of_each_recent_day() {
        // Four snapshots a day for three days (days 10, 11, 12).
        let snaps: Vec<(u64, u64)> = (0..12).map(|i| (i + 1, (10 * 24 + (i / 4) * 24 + (i % 4) * 5) * HOUR)).collect();
        let deleted = to_delete(&snaps, &policy(1, 2, 0));
        let kept: Vec<u64> = snaps.iter().map(|s| s.0).filter(|id| !deleted.contains(id)).collect();
        // The newest overall (12) is also day 12's newest; day 11's newest is 8.
        assert_eq!(kept, vec![8, 12]);
    }

    #[test]
    fn weekly_keeps_the_newest_of_each_recent_week() {
        // One snapshot a day for 21 days starting on a Monday (day 4 = 1970-01-05).
        let snaps: Vec<(u64, u64)> = (0..21).map(|d| (d + 1, (4 + d) * 24 * HOUR)).collect();
        let deleted = to_delete(&snaps, &policy(1, 0, 3));
        let kept: Vec<u64> = snaps.iter().map(|s| s.0).filter(|id| !deleted.contains(id)).collect();
        // Sundays close the weeks: days 7, 14, 21.
        assert_eq!(kept, vec![7, 14, 21]);
    }

    #[test]
    fn a_new_snapshot_counts_with_those_its_policy_keeps() {
        let snaps: Vec<(u64, u64)> = (1..=5).map(|i| (i, i * HOUR)).collect();
        assert_eq!(kept_with(&snaps, (6, 6 * HOUR), &policy(5, 0, 0)), 5);
        assert_eq!(kept_with(&snaps, (6, 6 * HOUR), &policy(9, 0, 0)), 6);
        assert_eq!(kept_with(&[], (1, HOUR), &policy(1, 0, 0)), 1);
    }

    #[test]
    fn policies_are_validated() {
        assert!(validate(&policy(0, 1, 1)).is_err());
        assert!(validate(&policy(1001, 0, 0)).is_err());
        assert!(validate(&policy(3, 7, 4)).is_ok());
    }
}
