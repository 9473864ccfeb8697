//! `APP_CHUNKS` and `APP_USAGE`: which chunks each app's snapshots hold, and what each app and
//! each registrant holds and spends, kept as chunks are stored and released so that a quota is
//! checked by reading a record, not by a scan.

use candid::Principal;
use vault_api::codec::{Reader, Writer};

use super::fields::{V1, storable};

const V2: u8 = 2;

const NANOS_PER_DAY: u64 = 86_400 * 1_000_000_000;

/// `APP_CHUNKS` keys, 62 bytes: app (30) | chunk SHA-256 (32). The values (u32) count the
/// manifest entries of the app's snapshots that name the chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AppChunkKey {
    pub app: Principal,
    pub hash: [u8; 32],
}

impl AppChunkKey {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.principal(&self.app).bytes(&self.hash);
        w.into_vec()
    }
    fn decode(bytes: &[u8]) -> Self {
        let mut r = Reader::new(bytes);
        AppChunkKey { app: r.principal(), hash: r.array() }
    }
}
storable!(AppChunkKey, ::ic_stable_structures::storable::Bound::Bounded { max_size: 62, is_fixed_size: true });

/// `APP_USAGE` keys, 31 bytes: kind u8 (0 an app, 1 a registrant) | principal (30). A
/// canister may be both an app and a registrant: its two records have two keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum UsageKey {
    App(Principal),
    Registrant(Principal),
}

impl UsageKey {
    fn encode(&self) -> Vec<u8> {
        let (kind, principal) = match self {
            UsageKey::App(p) => (0, p),
            UsageKey::Registrant(p) => (1, p),
        };
        let mut w = Writer::default();
        w.u8(kind).principal(principal);
        w.into_vec()
    }
    fn decode(bytes: &[u8]) -> Self {
        let mut r = Reader::new(bytes);
        match r.u8() {
            0 => UsageKey::App(r.principal()),
            1 => UsageKey::Registrant(r.principal()),
            other => panic!("unknown usage key kind {other}"),
        }
    }
}
storable!(UsageKey, ::ic_stable_structures::storable::Bound::Bounded { max_size: 31, is_fixed_size: true });

/// Bytes held: the chunks stored, each counted once, and the whole sizes of the snapshots being
/// built (a dump or an import may yet store that much beside the chunks it stored already).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Held {
    pub stored: u64,
    pub building: u64,
}

impl Held {
    /// What a new snapshot must fit beside.
    pub fn total(&self) -> u64 {
        self.stored.saturating_add(self.building)
    }

    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    pub fn add(&mut self, other: Held) {
        self.stored = self.stored.saturating_add(other.stored);
        self.building = self.building.saturating_add(other.building);
    }

    pub fn remove(&mut self, other: Held) {
        self.stored = self.stored.saturating_sub(other.stored);
        self.building = self.building.saturating_sub(other.building);
    }
}

/// What an app's snapshots hold, the principal charged for them (the one that registered the
/// app last; none when the vault does not know it), the cycles the vault spent on the app in one
/// UTC day, and its completed snapshots with their sizes added up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppUsageRecord {
    pub registrant: Option<Principal>,
    pub held: Held,
    /// Days since 1970-01-01 (UTC) of `cycles_spent`.
    pub cycles_day: u64,
    pub cycles_spent: u128,
    pub completed: u32,
    pub completed_bytes: u64,
}

impl AppUsageRecord {
    /// Cycles spent on the app on the UTC day of `now` (nanoseconds).
    pub fn cycles_today(&self, now: u64) -> u128 {
        if self.cycles_day == now / NANOS_PER_DAY { self.cycles_spent } else { 0 }
    }

    /// Nothing to keep for an app no longer registered.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty() && self.completed == 0 && self.cycles_spent == 0
    }

    /// Takes `cycles` counted at `spent_at` back from that day's spending (none once another
    /// day's is counted).
    pub fn refund(&mut self, spent_at: u64, cycles: u128) {
        if self.cycles_day == spent_at / NANOS_PER_DAY {
            self.cycles_spent = self.cycles_spent.saturating_sub(cycles);
        }
    }

    /// Adds `cycles` to the spending of the day of `now`; a new day starts from zero.
    pub fn spend(&mut self, now: u64, cycles: u128) {
        self.cycles_spent = self.cycles_today(now).saturating_add(cycles);
        self.cycles_day = now / NANOS_PER_DAY;
    }
}

/// The apps a principal has registered now, and what the apps charged to it hold together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistrantUsageRecord {
    pub apps: u32,
    pub held: Held,
}

/// `APP_USAGE` values: version (an app's 2, in 1 without its completed snapshots; a registrant's
/// 1) | kind u8 (the key's), then
/// - an app's, 84 bytes: registrant (30, length 0: none) | stored u64 | building u64 |
///   cycles day u64 | cycles spent u128 | completed u32 | completed bytes u64;
/// - a registrant's, 22 bytes: apps u32 | stored u64 | building u64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageRecord {
    App(AppUsageRecord),
    Registrant(RegistrantUsageRecord),
}

impl UsageRecord {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        // An app's record grew in version 2; a registrant's is as in version 1.
        w.u8(match self {
            UsageRecord::App(_) => V2,
            UsageRecord::Registrant(_) => V1,
        });
        match self {
            UsageRecord::App(a) => {
                w.u8(0).opt_principal(a.registrant.as_ref()).u64(a.held.stored).u64(a.held.building).u64(a.cycles_day).u128(a.cycles_spent);
                w.u32(a.completed).u64(a.completed_bytes);
            }
            UsageRecord::Registrant(r) => {
                w.u8(1).u32(r.apps).u64(r.held.stored).u64(r.held.building);
            }
        }
        w.into_vec()
    }

    fn decode(bytes: &[u8]) -> Self {
        let mut r = Reader::new(bytes);
        let version = r.u8();
        assert!(version == V1 || version == V2, "usage record layout version {version} is not supported");
        match r.u8() {
            0 => {
                let registrant = r.opt_principal();
                let held = Held { stored: r.u64(), building: r.u64() };
                let (cycles_day, cycles_spent) = (r.u64(), r.u128());
                let (completed, completed_bytes) = if version == V2 { (r.u32(), r.u64()) } else { (0, 0) };
                UsageRecord::App(AppUsageRecord { registrant, held, cycles_day, cycles_spent, completed, completed_bytes })
            }
            1 => UsageRecord::Registrant(RegistrantUsageRecord { apps: r.u32(), held: Held { stored: r.u64(), building: r.u64() } }),
            other => panic!("unknown usage record kind {other}"),
        }
    }
}
storable!(UsageRecord, ::ic_stable_structures::storable::Bound::Bounded { max_size: 84, is_fixed_size: false });

#[cfg(test)]
mod tests {
    use ic_stable_structures::Storable;

    use super::*;
    use crate::storable::tests::{check, p};

    #[test]
    fn golden_layouts() {
        check("app_chunk_key", AppChunkKey { app: p(4, 10), hash: [0x22; 32] });
        check("usage_key_app", UsageKey::App(p(4, 10)));
        check("usage_key_registrant", UsageKey::Registrant(p(4, 10)));
        let app = AppUsageRecord {
            registrant: Some(p(5, 29)),
            held: Held { stored: 1, building: 2 },
            cycles_day: 3,
            cycles_spent: 4,
            completed: 5,
            completed_bytes: 6,
        };
        check("app_usage", UsageRecord::App(app));
        check("app_usage_of_no_known_registrant", UsageRecord::App(AppUsageRecord { registrant: None, ..app }));
        check("registrant_usage", UsageRecord::Registrant(RegistrantUsageRecord { apps: 1, held: Held { stored: 2, building: 3 } }));
    }

    #[test]
    fn an_app_usage_of_version_1_reads_with_no_completed_snapshot_counted() {
        let v1 = crate::storable::tests::golden_bytes("app_usage_v1");
        let usage = UsageRecord::from_bytes(std::borrow::Cow::Owned(v1));
        let app = AppUsageRecord { registrant: Some(p(5, 29)), held: Held { stored: 1, building: 2 }, cycles_day: 3, cycles_spent: 4, ..Default::default() };
        assert_eq!(usage, UsageRecord::App(app));
        assert_eq!(usage.to_bytes()[0], 2, "written back as version 2");
    }

    #[test]
    fn a_day_of_cycles_starts_from_zero() {
        let mut usage = AppUsageRecord::default();
        usage.spend(NANOS_PER_DAY + 5, 10);
        usage.spend(2 * NANOS_PER_DAY - 1, 7);
        assert_eq!((usage.cycles_today(2 * NANOS_PER_DAY - 1), usage.cycles_day), (17, 1));
        assert_eq!(usage.cycles_today(2 * NANOS_PER_DAY), 0, "the next day");
        usage.spend(2 * NANOS_PER_DAY, 3);
        assert_eq!((usage.cycles_today(2 * NANOS_PER_DAY), usage.cycles_day), (3, 2));
        usage.refund(2 * NANOS_PER_DAY - 1, 3);
        assert_eq!(usage.cycles_today(2 * NANOS_PER_DAY), 3, "what was counted the day before is not taken from today's");
        usage.refund(2 * NANOS_PER_DAY + 1, 2);
        assert_eq!(usage.cycles_today(2 * NANOS_PER_DAY), 1);
    }
}
