//! The records the vault keeps in stable memory, with their byte layouts.
//!
//! Every record starts with a layout version byte (keys have none: they never change shape).
//! Integers are little endian except in keys, where they are big endian so byte order is value
//! order. A principal takes 30 bytes: its length, then its bytes zero padded to 29. Each
//! layout is pinned by a golden file in `golden/`, computed from the layout described here.

use candid::Principal;
use ic_stable_structures::storable::Bound;
use vault_api::codec::{Reader, Writer, content_hash_byte, content_hash_of};
use vault_api::{ContentHash, Sha256};
use vault_api::protocol::StateKind;
use vault_api::service::{Retention, Schedule, Trigger};

use fields::{V1, check_version, kind_byte, kind_of, opt_sha, opt_u64, read_opt_sha, read_opt_u64, storable, trigger_byte, trigger_of};

mod admin;
mod chunk;
mod fields;
mod incremental;
mod index;
mod job;
mod native;
mod retired;
mod usage;

pub use admin::{Config, MAX_ADMINISTRATORS, SuspensionRecord};
pub use chunk::{ChunkLocation, ChunkStoreHeader, DeltaRecord, FreeExtent};
pub use incremental::{AppBase, IncrementalRecord};
pub use index::IndexKey;
pub use job::{Base, Building, ChunkSet, JobRecord, Outcome, Phase, Task, Transfer};
pub use native::{MAX_SNAPSHOT_ID, NativeApp, NativeJob};
pub use retired::RetiredRecord;
pub use usage::{AppChunkKey, AppUsageRecord, Held, RegistrantUsageRecord, UsageKey, UsageRecord};

/// `HEADER`, 21 bytes: magic "CVLT" | layout version | next job id u64 | next snapshot id u64.
/// Every version is read; `migration` decides what to do with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub layout: u8,
    pub next_job: u64,
    pub next_snapshot: u64,
}

impl Header {
    const MAGIC: &'static [u8; 4] = b"CVLT";

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.bytes(Self::MAGIC).u8(self.layout).u64(self.next_job).u64(self.next_snapshot);
        w.into_vec()
    }

    fn decode(bytes: &[u8]) -> Self {
        let mut r = Reader::new(bytes);
        assert_eq!(&r.array::<4>(), Self::MAGIC, "not a vault header");
        Header { layout: r.u8(), next_job: r.u64(), next_snapshot: r.u64() }
    }
}
storable!(Header, Bound::Bounded { max_size: 21, is_fixed_size: true });

/// `APPS` values, at most 411 bytes: version | registered_by (30) | registered_at u64 |
/// state kind u8 | interval seconds u64 | keep_last u32 | keep_daily u32 | keep_weekly u32 |
/// next due u64 (0: none) | running job (present u8, u64) | module hash (present u8, 32) |
/// controller count u8 | controllers (30 each, at most 10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppRecord {
    pub registered_by: Principal,
    pub registered_at: u64,
    pub state_kind: StateKind,
    pub schedule: Schedule,
    pub retention: Retention,
    pub next_due: u64,
    pub running_job: Option<u64>,
    pub module_hash: Option<Sha256>,
    pub controllers: Vec<Principal>,
}

/// A canister has at most 10 controllers.
pub const MAX_CONTROLLERS: usize = 10;

impl AppRecord {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(V1)
            .principal(&self.registered_by)
            .u64(self.registered_at)
            .u8(kind_byte(self.state_kind))
            .u64(self.schedule.interval_seconds)
            .u32(self.retention.keep_last)
            .u32(self.retention.keep_daily)
            .u32(self.retention.keep_weekly)
            .u64(self.next_due);
        opt_u64(&mut w, self.running_job);
        opt_sha(&mut w, self.module_hash.as_ref());
        let controllers = &self.controllers[..self.controllers.len().min(MAX_CONTROLLERS)];
        w.u8(controllers.len() as u8);
        for c in controllers {
            w.principal(c);
        }
        w.into_vec()
    }

    fn decode(bytes: &[u8]) -> Self {
        let mut r = Reader::new(bytes);
        check_version(&mut r, "app record");
        let registered_by = r.principal();
        let registered_at = r.u64();
        let state_kind = kind_of(r.u8());
        let schedule = Schedule { interval_seconds: r.u64() };
        let retention = Retention { keep_last: r.u32(), keep_daily: r.u32(), keep_weekly: r.u32() };
        let next_due = r.u64();
        let running_job = read_opt_u64(&mut r);
        let module_hash = read_opt_sha(&mut r);
        let count = r.u8();
        let controllers = (0..count).map(|_| r.principal()).collect();
        AppRecord { registered_by, registered_at, state_kind, schedule, retention, next_due, running_job, module_hash, controllers }
    }
}
storable!(AppRecord, Bound::Bounded { max_size: 111 + 30 * MAX_CONTROLLERS as u32, is_fixed_size: false });

/// A principal as a map key: 30 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PrincipalKey(pub Principal);

impl PrincipalKey {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.principal(&self.0);
        w.into_vec()
    }
    fn decode(bytes: &[u8]) -> Self {
        PrincipalKey(Reader::new(bytes).principal())
    }
}
storable!(PrincipalKey, Bound::Bounded { max_size: 30, is_fixed_size: true });

/// `SNAPSHOTS` keys, 38 bytes: app (30) | snapshot id u64 BE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SnapshotKey {
    pub app: Principal,
    pub id: u64,
}

impl SnapshotKey {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.principal(&self.app).bytes(&self.id.to_be_bytes());
        w.into_vec()
    }
    fn decode(bytes: &[u8]) -> Self {
        let mut r = Reader::new(bytes);
        SnapshotKey { app: r.principal(), id: u64::from_be_bytes(r.array()) }
    }
}
storable!(SnapshotKey, Bound::Bounded { max_size: 38, is_fixed_size: true });

/// Where a snapshot is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotStatus {
    /// Its job is still moving chunks: not listed, not restorable.
    Building,
    Complete,
    /// Its chunks are being released.
    Deleting,
}

/// `SNAPSHOTS` values, 137 bytes: version | status u8 (0 building, 1 complete, 2 deleting) |
/// job u64 | taken at u64 | size u64 | manifest hash (32) | module hash (present u8, 32) |
/// state kind and content hash u8 | chunks u32 | chunk size u64 | started at u64 |
/// duration u64 | transfer cycles u128 | trigger u8.
///
/// The state kind and content hash byte: the state kind (1 serde, 2 stable memory) in its low
/// bits, the content hash's byte (`vault_api::codec`: 0 SHA-256, 1 BLAKE3) in bit 7. A record
/// written before BLAKE3 (layouts 1 to 4) has bit 7 clear: it reads as SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotRecord {
    pub status: SnapshotStatus,
    pub job: u64,
    pub taken_at: u64,
    pub size: u64,
    pub sha256: Sha256,
    pub module_hash: Option<Sha256>,
    pub state_kind: StateKind,
    pub chunks: u32,
    pub chunk_size: u64,
    pub started_at: u64,
    pub duration: u64,
    pub transfer_cycles: u128,
    pub trigger: Trigger,
    /// The hash of its chunks and manifest.
    pub content_hash: ContentHash,
}

/// Bit 7 of a snapshot record's state kind byte: its content hash.
const CONTENT_HASH_SHIFT: u8 = 7;

impl SnapshotRecord {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        let status = match self.status {
            SnapshotStatus::Building => 0,
            SnapshotStatus::Complete => 1,
            SnapshotStatus::Deleting => 2,
        };
        w.u8(V1).u8(status).u64(self.job).u64(self.taken_at).u64(self.size).sha256(&self.sha256);
        opt_sha(&mut w, self.module_hash.as_ref());
        w.u8(kind_byte(self.state_kind) | content_hash_byte(self.content_hash) << CONTENT_HASH_SHIFT)
            .u32(self.chunks)
            .u64(self.chunk_size)
            .u64(self.started_at)
            .u64(self.duration)
            .u128(self.transfer_cycles)
            .u8(trigger_byte(self.trigger));
        w.into_vec()
    }

    fn decode(bytes: &[u8]) -> Self {
        let mut r = Reader::new(bytes);
        check_version(&mut r, "snapshot record");
        let status = match r.u8() {
            0 => SnapshotStatus::Building,
            1 => SnapshotStatus::Complete,
            2 => SnapshotStatus::Deleting,
            other => panic!("unknown snapshot status {other}"),
        };
        let (job, taken_at, size, sha256, module_hash) = (r.u64(), r.u64(), r.u64(), r.sha256(), read_opt_sha(&mut r));
        let kind_and_hash = r.u8();
        let content_hash = content_hash_of(kind_and_hash >> CONTENT_HASH_SHIFT).expect("one bit is a content hash");
        SnapshotRecord {
            status,
            job,
            taken_at,
            size,
            sha256,
            module_hash,
            state_kind: kind_of(kind_and_hash & !(1 << CONTENT_HASH_SHIFT)),
            content_hash,
            chunks: r.u32(),
            chunk_size: r.u64(),
            started_at: r.u64(),
            duration: r.u64(),
            transfer_cycles: r.u128(),
            trigger: trigger_of(r.u8()),
        }
    }
}
storable!(SnapshotRecord, Bound::Bounded { max_size: 137, is_fixed_size: true });

/// `MANIFESTS` keys, 12 bytes: snapshot id u64 BE | chunk index u32 BE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ManifestKey {
    pub snapshot: u64,
    pub index: u32,
}

impl ManifestKey {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.bytes(&self.snapshot.to_be_bytes()).bytes(&self.index.to_be_bytes());
        w.into_vec()
    }
    fn decode(bytes: &[u8]) -> Self {
        let mut r = Reader::new(bytes);
        ManifestKey { snapshot: u64::from_be_bytes(r.array()), index: u32::from_be_bytes(r.array()) }
    }
}
storable!(ManifestKey, Bound::Bounded { max_size: 12, is_fixed_size: true });

/// `APP_JOBS` keys, 38 bytes: app (30) | job id u64 BE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AppJobKey {
    pub app: Principal,
    pub job: u64,
}

impl AppJobKey {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.principal(&self.app).bytes(&self.job.to_be_bytes());
        w.into_vec()
    }
    fn decode(bytes: &[u8]) -> Self {
        let mut r = Reader::new(bytes);
        AppJobKey { app: r.principal(), job: u64::from_be_bytes(r.array()) }
    }
}
storable!(AppJobKey, Bound::Bounded { max_size: 38, is_fixed_size: true });

/// `DELETIONS` values, 39 bytes: version | app (30) | next chunk index u32 | chunks u32.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deletion {
    pub app: Principal,
    pub next_index: u32,
    pub chunks: u32,
}

impl Deletion {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(V1).principal(&self.app).u32(self.next_index).u32(self.chunks);
        w.into_vec()
    }
    fn decode(bytes: &[u8]) -> Self {
        let mut r = Reader::new(bytes);
        check_version(&mut r, "deletion");
        Deletion { app: r.principal(), next_index: r.u32(), chunks: r.u32() }
    }
}
storable!(Deletion, Bound::Bounded { max_size: 39, is_fixed_size: true });

#[cfg(test)]
pub(crate) mod tests {
    use std::borrow::Cow;

    use ic_stable_structures::Storable;
    use vault_api::hex;

    use super::*;

    pub(crate) fn p(byte: u8, len: usize) -> Principal {
        Principal::from_slice(&vec![byte; len])
    }

    fn golden(name: &str) -> String {
        let path = format!("{}/golden/{name}.hex", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")).trim().to_string()
    }

    pub(crate) fn check<T: Storable + PartialEq + std::fmt::Debug + Clone>(name: &str, value: T) {
        let bytes = value.to_bytes().into_owned();
        assert_eq!(hex(&bytes), golden(name), "{name} bytes changed");
        assert_eq!(T::from_bytes(Cow::Owned(bytes.clone())), value, "{name} round trip");
        if let Bound::Bounded { max_size, is_fixed_size } = T::BOUND {
            assert!(bytes.len() <= max_size as usize, "{name}: {} > {max_size}", bytes.len());
            if is_fixed_size {
                assert_eq!(bytes.len(), max_size as usize, "{name} is fixed size");
            }
        }
    }

    pub fn sample_app() -> AppRecord {
        AppRecord {
            registered_by: p(1, 29),
            registered_at: 2,
            state_kind: StateKind::StableMemory,
            schedule: Schedule { interval_seconds: 3600 },
            retention: Retention { keep_last: 5, keep_daily: 7, keep_weekly: 4 },
            next_due: 9,
            running_job: Some(10),
            module_hash: Some(Sha256([0xaa; 32])),
            controllers: vec![p(2, 10), p(3, 29)],
        }
    }

    pub(crate) fn sample_snapshot() -> SnapshotRecord {
        SnapshotRecord {
            status: SnapshotStatus::Complete,
            job: 1,
            taken_at: 2,
            size: 3,
            sha256: Sha256([0x11; 32]),
            module_hash: None,
            state_kind: StateKind::Serde,
            chunks: 4,
            chunk_size: 5,
            started_at: 6,
            duration: 7,
            transfer_cycles: 8,
            trigger: Trigger::Manual,
            content_hash: ContentHash::Sha256,
        }
    }

    #[test]
    fn golden_layouts() {
        check("header", Header { layout: crate::memory::LAYOUT_VERSION, next_job: 7, next_snapshot: 8 });
        check("app_record", sample_app());
        check("principal_key", PrincipalKey(p(4, 10)));
        check("snapshot_key", SnapshotKey { app: p(4, 10), id: 0x0102 });
        // A record of layouts 1 to 4 (their golden bytes): it reads as SHA-256.
        check("snapshot_record", sample_snapshot());
        check("snapshot_record_blake3", SnapshotRecord { content_hash: ContentHash::Blake3, ..sample_snapshot() });
        check("manifest_key", ManifestKey { snapshot: 0x0102, index: 3 });
        check("app_job_key", AppJobKey { app: p(4, 10), job: 9 });
        check("deletion", Deletion { app: p(4, 10), next_index: 1, chunks: 2 });
        let limits = vault_api::service::Limits {
            reserve_days: 1,
            app_bytes: 2,
            app_snapshots: 3,
            app_imports: 4,
            import_ttl_seconds: 5,
            app_cycles_per_day: 6,
            registrant_apps: 7,
            registrant_bytes: 8,
        };
        check("config", Config { registration: vault_api::service::Registration::Open, limits, administrators: vec![p(5, 10), p(6, 29)] });
        check("suspension", SuspensionRecord::new(p(7, 10), 11, "abuse"));
    }

    /// The bytes of golden file `name`.
    pub(crate) fn golden_bytes(name: &str) -> Vec<u8> {
        let hex = golden(name);
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")).collect()
    }

    #[test]
    fn config_version_1_reads_with_the_default_limits_of_cycles_and_registrants() {
        let config = Config::from_bytes(Cow::Owned(golden_bytes("config_v1")));
        let limits = vault_api::service::Limits {
            reserve_days: 1,
            app_bytes: 2,
            app_snapshots: 3,
            app_imports: 4,
            import_ttl_seconds: 5,
            ..vault_api::service::Limits::default()
        };
        assert_eq!(config, Config { registration: vault_api::service::Registration::Open, limits, administrators: vec![p(5, 10), p(6, 29)] });
        assert_eq!(config.to_bytes()[0], 2, "written back as version 2");
    }
}
