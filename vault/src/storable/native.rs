//! `NATIVE_APPS` and `NATIVE_JOBS` values: what the vault keeps of an app it captures through
//! native canister snapshots, and of a job's native snapshot on the IC.

use ic_stable_structures::storable::Bound;
use vault_api::codec::{Reader, Writer};
use vault_api::native::NATIVE_CHUNK_SIZE;

use super::fields::{V1, check_version, storable};

/// `NATIVE_JOBS` records of layout 9 on: the stop flag appended.
const NATIVE_JOB_V2: u8 = 2;

/// The longest native snapshot id kept: the IC's are 8 bytes and a canister id (at most 29).
pub const MAX_SNAPSHOT_ID: usize = 64;

/// `NATIVE_APPS` values, at most 68 bytes: version | keep running u8 | taken (length u8, 0: none;
/// the id's bytes, at most [`MAX_SNAPSHOT_ID`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NativeApp {
    /// Snapshots are taken while the app runs (not stopped first).
    pub keep_running: bool,
    /// The native snapshot the vault took of it last and has not deleted: the next take replaces
    /// it, so the vault holds at most one of the app's snapshot slots.
    pub taken: Option<Vec<u8>>,
}

impl NativeApp {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        let taken = self.taken.as_deref().unwrap_or_default();
        assert!(taken.len() <= MAX_SNAPSHOT_ID, "a snapshot id of {} bytes", taken.len());
        w.u8(V1).u8(self.keep_running as u8).u8(taken.len() as u8).bytes(taken);
        w.into_vec()
    }

    fn decode(bytes: &[u8]) -> Self {
        let mut r = Reader::new(bytes);
        check_version(&mut r, "native app record");
        let keep_running = r.u8() == 1;
        let len = r.u8() as usize;
        let taken = r.bytes(len).to_vec();
        NativeApp { keep_running, taken: (!taken.is_empty()).then_some(taken) }
    }
}
storable!(NativeApp, Bound::Bounded { max_size: 3 + MAX_SNAPSHOT_ID as u32, is_fixed_size: false });

/// `NATIVE_JOBS` values, at most 2,000,071 bytes: version 2 | snapshot (length u8, 0: none; its
/// bytes) | header (length u32; its bytes, at most one native chunk) | stopped u8 (version 1,
/// of layout 8, has no stop flag: not stopped). A running job's native
/// snapshot on the IC: the one a snapshot job reads out, with the header the vault made of its
/// metadata; the one a restore uploads into.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NativeJob {
    pub snapshot: Option<Vec<u8>>,
    pub header: Vec<u8>,
    /// The vault stopped the app for this job and has not started it since: set before the
    /// stop is sent, cleared once the app is started, so an attempt after a trap or a job's end
    /// starts an app the vault left stopped, and does not take it for stopped by its controllers.
    pub stopped: bool,
}

impl NativeJob {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        let snapshot = self.snapshot.as_deref().unwrap_or_default();
        assert!(snapshot.len() <= MAX_SNAPSHOT_ID && self.header.len() as u64 <= NATIVE_CHUNK_SIZE, "a native job record past its bounds");
        w.u8(NATIVE_JOB_V2).u8(snapshot.len() as u8).bytes(snapshot).blob(&self.header).u8(self.stopped as u8);
        w.into_vec()
    }

    fn decode(bytes: &[u8]) -> Self {
        let mut r = Reader::new(bytes);
        let version = r.u8();
        assert!(version == V1 || version == NATIVE_JOB_V2, "native job record layout version {version} is not supported");
        let len = r.u8() as usize;
        let snapshot = r.bytes(len).to_vec();
        let header = r.blob().to_vec();
        let stopped = version == NATIVE_JOB_V2 && r.u8() == 1;
        NativeJob { snapshot: (!snapshot.is_empty()).then_some(snapshot), header, stopped }
    }
}
// Unbounded: the map's nodes hold small values in place and a long header in overflow pages,
// not every entry in nodes sized for the longest.
storable!(NativeJob, Bound::Unbounded);

#[cfg(test)]
mod tests {
    use ic_stable_structures::Storable;

    use super::*;
    use crate::storable::tests::check;

    #[test]
    fn golden_layouts() {
        check("native_app", NativeApp { keep_running: true, taken: Some(vec![0, 0, 0, 0, 0, 0, 0, 1, 0xab, 0xcd]) });
        check("native_app_none_taken", NativeApp { keep_running: false, taken: None });
        check("native_job", NativeJob { snapshot: Some(vec![7; 18]), header: b"CVNS\x01DIDL".to_vec(), stopped: true });
        check("native_job_empty", NativeJob::default());
    }

    #[test]
    fn a_native_job_record_of_layout_8_reads_as_not_stopped() {
        let v1 = NativeJob::from_bytes(std::borrow::Cow::Owned(crate::storable::tests::golden_bytes("native_job_v1")));
        assert_eq!(v1, NativeJob { snapshot: Some(vec![7; 18]), header: b"CVNS\x01DIDL".to_vec(), stopped: false });
    }
}
