//! `INDEX` keys: what the timer looks for, in the order it needs it, so each firing reads the
//! first entries of a range instead of every app and snapshot.

use candid::Principal;
use vault_api::codec::{Reader, Writer};

use super::SnapshotKey;
use super::fields::storable;

/// `INDEX` keys (the values are `()`), at most 47 bytes: kind u8, then
/// - 0, an app's next scheduled snapshot: due at u64 BE | app (30);
/// - 1, an import in progress: started at u64 BE | app (30) | snapshot id u64 BE;
/// - 2, an app's unfinished job: job id u64 BE | app (30).
///
/// Each entry mirrors a record (the app's `next_due` and `running_job`, the snapshot's status and
/// trigger) and is written with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum IndexKey {
    Due { at: u64, app: Principal },
    Import { started_at: u64, snapshot: SnapshotKey },
    Running { job: u64, app: Principal },
}

impl IndexKey {
    /// The smallest key of each kind, where a range scan of that kind starts.
    pub const FIRST_DUE: IndexKey = IndexKey::Due { at: 0, app: Principal::management_canister() };
    pub const FIRST_IMPORT: IndexKey =
        IndexKey::Import { started_at: 0, snapshot: SnapshotKey { app: Principal::management_canister(), id: 0 } };
    pub const FIRST_RUNNING: IndexKey = IndexKey::Running { job: 0, app: Principal::management_canister() };

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            IndexKey::Due { at, app } => w.u8(0).bytes(&at.to_be_bytes()).principal(app),
            IndexKey::Import { started_at, snapshot } => {
                w.u8(1).bytes(&started_at.to_be_bytes()).principal(&snapshot.app).bytes(&snapshot.id.to_be_bytes())
            }
            IndexKey::Running { job, app } => w.u8(2).bytes(&job.to_be_bytes()).principal(app),
        };
        w.into_vec()
    }

    fn decode(bytes: &[u8]) -> Self {
        let mut r = Reader::new(bytes);
        let kind = r.u8();
        let time_or_job = u64::from_be_bytes(r.array());
        let app = r.principal();
        match kind {
            0 => IndexKey::Due { at: time_or_job, app },
            1 => IndexKey::Import { started_at: time_or_job, snapshot: SnapshotKey { app, id: u64::from_be_bytes(r.array()) } },
            2 => IndexKey::Running { job: time_or_job, app },
            other => panic!("unknown index key kind {other}"),
        }
    }
}
storable!(IndexKey, ::ic_stable_structures::storable::Bound::Bounded { max_size: 47, is_fixed_size: false });

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storable::tests::{check, p};

    #[test]
    fn golden_layouts() {
        check("index_due", IndexKey::Due { at: 0x0102, app: p(4, 10) });
        check("index_import", IndexKey::Import { started_at: 3, snapshot: SnapshotKey { app: p(4, 29), id: 5 } });
        check("index_running", IndexKey::Running { job: 6, app: p(4, 10) });
    }

    #[test]
    fn keys_of_a_kind_sort_by_time_or_job_then_after_every_key_of_an_earlier_kind() {
        let mut keys = [
            IndexKey::Running { job: 1, app: p(1, 10) },
            IndexKey::Import { started_at: 9, snapshot: SnapshotKey { app: p(1, 10), id: 1 } },
            IndexKey::Due { at: u64::MAX, app: p(1, 29) },
            IndexKey::Due { at: 2, app: p(9, 29) },
            IndexKey::Import { started_at: 1, snapshot: SnapshotKey { app: p(9, 29), id: 7 } },
            IndexKey::FIRST_RUNNING,
        ];
        keys.sort();
        assert_eq!(keys[0], IndexKey::Due { at: 2, app: p(9, 29) });
        assert_eq!(keys[2], IndexKey::Import { started_at: 1, snapshot: SnapshotKey { app: p(9, 29), id: 7 } });
        assert_eq!(keys[4], IndexKey::FIRST_RUNNING);
        assert!(IndexKey::FIRST_DUE < keys[0] && IndexKey::FIRST_IMPORT < keys[2]);
    }
}
