//! `INCREMENTAL` values: how an app's snapshots may be incremental, and the snapshot it holds the
//! image of, so that its next dump may send only the pages that changed since.

use ic_stable_structures::storable::Bound;
use vault_api::codec::{Reader, Writer};
use vault_api::service::DEFAULT_MAX_INCREMENTALS;

use super::fields::{V1, check_version, opt_u64, read_opt_u64, storable};

/// The snapshot an app confirmed it keeps the image of (it answered a `vault_dump_end` naming it):
/// its next dump may be incremental against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppBase {
    pub snapshot: u64,
    /// Incremental snapshots in a row up to it: 0 if it is a full one.
    pub incrementals: u32,
}

/// `INCREMENTAL` values, 18 bytes: version | max incrementals u32 | base snapshot (present u8,
/// u64) | incrementals up to the base u32 (0 without one). An app without a record has the
/// default: [`DEFAULT_MAX_INCREMENTALS`], no base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IncrementalRecord {
    /// Incremental snapshots taken at most between two full ones (0: every snapshot is full).
    pub max_incrementals: u32,
    pub base: Option<AppBase>,
}

impl Default for IncrementalRecord {
    fn default() -> Self {
        IncrementalRecord { max_incrementals: DEFAULT_MAX_INCREMENTALS, base: None }
    }
}

impl IncrementalRecord {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(V1).u32(self.max_incrementals);
        opt_u64(&mut w, self.base.map(|b| b.snapshot));
        w.u32(self.base.map_or(0, |b| b.incrementals));
        w.into_vec()
    }

    pub(super) fn decode(bytes: &[u8]) -> Self {
        let mut r = Reader::new(bytes);
        check_version(&mut r, "incremental record");
        let max_incrementals = r.u32();
        let snapshot = read_opt_u64(&mut r);
        let incrementals = r.u32();
        IncrementalRecord { max_incrementals, base: snapshot.map(|snapshot| AppBase { snapshot, incrementals }) }
    }
}
storable!(IncrementalRecord, Bound::Bounded { max_size: 18, is_fixed_size: true });

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storable::tests::check;

    #[test]
    fn golden_layouts() {
        check("incremental", IncrementalRecord { max_incrementals: 24, base: Some(AppBase { snapshot: 0x0102, incrementals: 3 }) });
        check("incremental_without_base", IncrementalRecord { max_incrementals: 0, base: None });
    }
}
