//! `CONFIG` and `SUSPENDED` values: how the vault is administered, and the apps suspended.

use candid::Principal;
use vault_api::codec::{Reader, Writer};
use vault_api::protocol::bounded_text;
use vault_api::service::{Limits, Registration, Suspension};

use super::fields::{V1, check_version, storable};

/// `CONFIG`'s layout since the limits of cycles and of registrants.
const V2: u8 = 2;

/// At most this many administrators besides the vault's controllers.
pub const MAX_ADMINISTRATORS: usize = 10;

/// `CONFIG`, at most 351 bytes: version (2) | registration u8 (0 administrators, 1 allow-list,
/// 2 open) | reserve days u32 | app bytes u64 | app snapshots u32 | app imports u32 |
/// import TTL seconds u64 | app cycles per day u64 | registrant apps u32 | registrant bytes
/// u64 | administrator count u8 | administrators (30 each, at most 10).
///
/// Version 1 has no app cycles per day, registrant apps or registrant bytes: read, it gets
/// their defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub registration: Registration,
    pub limits: Limits,
    pub administrators: Vec<Principal>,
}

impl Default for Config {
    /// A new vault registers apps of its administrators and of the principals they allow,
    /// within limits a small team never meets.
    fn default() -> Self {
        Config { registration: Registration::AllowList, limits: Limits::default(), administrators: Vec::new() }
    }
}

impl Config {
    pub(super) fn encode(&self) -> Vec<u8> {
        let registration = match self.registration {
            Registration::Administrators => 0,
            Registration::AllowList => 1,
            Registration::Open => 2,
        };
        let administrators = &self.administrators[..self.administrators.len().min(MAX_ADMINISTRATORS)];
        let mut w = Writer::default();
        let l = &self.limits;
        w.u8(V2).u8(registration).u32(l.reserve_days).u64(l.app_bytes).u32(l.app_snapshots).u32(l.app_imports).u64(l.import_ttl_seconds);
        w.u64(l.app_cycles_per_day).u32(l.registrant_apps).u64(l.registrant_bytes);
        w.u8(administrators.len() as u8);
        for a in administrators {
            w.principal(a);
        }
        w.into_vec()
    }

    pub(super) fn decode(bytes: &[u8]) -> Self {
        let mut r = Reader::new(bytes);
        let version = r.u8();
        assert!(version == V1 || version == V2, "config layout version {version} is not supported");
        let registration = match r.u8() {
            0 => Registration::Administrators,
            1 => Registration::AllowList,
            2 => Registration::Open,
            other => panic!("unknown registration mode {other}"),
        };
        let mut limits = Limits {
            reserve_days: r.u32(),
            app_bytes: r.u64(),
            app_snapshots: r.u32(),
            app_imports: r.u32(),
            import_ttl_seconds: r.u64(),
            ..Limits::default()
        };
        if version == V2 {
            (limits.app_cycles_per_day, limits.registrant_apps, limits.registrant_bytes) = (r.u64(), r.u32(), r.u64());
        }
        let count = r.u8();
        Config { registration, limits, administrators: (0..count).map(|_| r.principal()).collect() }
    }
}
storable!(Config, ::ic_stable_structures::storable::Bound::Bounded { max_size: 51 + 30 * MAX_ADMINISTRATORS as u32, is_fixed_size: false });

/// Bytes a suspension's reason keeps at most: `MAX_APP_TEXT` characters of up to 4 bytes,
/// and the mark of a cut.
const MAX_REASON_BYTES: u32 = vault_api::protocol::MAX_APP_TEXT as u32 * 4 + 3;

/// `SUSPENDED` values, at most 1,070 bytes: version | by (30) | at u64 | reason (u32 length,
/// UTF-8, at most 1,027 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuspensionRecord {
    pub by: Principal,
    pub at: u64,
    pub reason: String,
}

impl SuspensionRecord {
    /// A suspension whose reason is cut to `MAX_APP_TEXT` characters.
    pub fn new(by: Principal, at: u64, reason: &str) -> Self {
        SuspensionRecord { by, at, reason: bounded_text(reason) }
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(V1).principal(&self.by).u64(self.at).blob(self.reason.as_bytes());
        w.into_vec()
    }

    pub(super) fn decode(bytes: &[u8]) -> Self {
        let mut r = Reader::new(bytes);
        check_version(&mut r, "suspension");
        let (by, at) = (r.principal(), r.u64());
        let reason = String::from_utf8(r.blob().to_vec()).expect("a stored reason is UTF-8");
        SuspensionRecord { by, at, reason }
    }
}
impl From<SuspensionRecord> for Suspension {
    fn from(record: SuspensionRecord) -> Self {
        Suspension { by: record.by, at_nanos: record.at, reason: record.reason }
    }
}

storable!(SuspensionRecord, ::ic_stable_structures::storable::Bound::Bounded { max_size: 1 + 30 + 8 + 4 + MAX_REASON_BYTES, is_fixed_size: false });
