//! Btree: an app whose state is one `StableBTreeMap<u64, [u8; 1024]>`, sized for benchmarks.
//! This library is its workload over any memory, and [`workload_endpoints!`] exports it. Two
//! canisters run it: `btree` on the client library's `VaultMemory`, backed up by canister-vault,
//! and `btree-baseline` on plain `DefaultMemoryImpl`, the reference `btree` is measured against.
//!
//! Every call is bounded: an update touches at most [`MAX_BATCH`] entries, a digest page covers
//! at most [`MAX_DIGEST_PAGE`]; the caller loops.

use std::ops::{Range, RangeInclusive};

use candid::{CandidType, Deserialize};
use ic_stable_structures::memory_manager::MemoryId;
use ic_stable_structures::{Memory, StableBTreeMap};

/// Bytes of a value.
pub const VALUE_SIZE: usize = 1024;

/// A value: `[u8; N]` is `Storable` with a fixed-size bound of `N` bytes.
pub type Value = [u8; VALUE_SIZE];

/// The app's state.
pub type Map<M> = StableBTreeMap<u64, Value, M>;

/// The map's memory under the app's `MemoryManager`.
pub const MAP_MEMORY: MemoryId = MemoryId::new(0);

/// Entries an update inserts or overwrites at most (`measure_ops` does each of its three phases
/// on this many): some 5 billion instructions for `measure_ops` on `VaultMemory` (about 200,000
/// an insert, 100,000 a get, 120,000 an overwrite), well under an update's 40 billion.
pub const MAX_BATCH: u64 = 10_000;

/// Entries a digest page covers at most: well under a query's 5 billion instructions.
pub const MAX_DIGEST_PAGE: u64 = 10_000;

/// Why the app refused a call; the map is unchanged by a refused call.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum WorkloadError {
    /// More entries than one message may touch.
    BatchTooLarge { count: u64, max: u64 },
    /// The keys `start..start + count` would not all be below `u64::MAX`, a key no call writes.
    KeysExhausted { start: u64, count: u64 },
    /// The map has no entry to overwrite.
    NoEntries,
}

/// Instructions that `measure_ops` counted, each phase over `count` operations.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct OpsCost {
    pub count: u64,
    /// Inserting `count` fresh keys after the largest.
    pub insert_instructions: u64,
    /// Getting them back.
    pub get_instructions: u64,
    /// Overwriting `count` entries at pseudo-random keys among those present before the call
    /// (among the fresh ones if there were none).
    pub overwrite_instructions: u64,
}

/// A page of the map's checksum.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DigestPage {
    /// Entries the page covers, from the key it was asked for.
    pub entries: u64,
    /// A checksum of their keys and values in key order (not cryptographic).
    pub checksum: u64,
    /// The key the next page starts at; none after the last entry.
    pub next: Option<u64>,
}

/// SplitMix64: a deterministic stream of words from a seed, the same on every platform.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn word(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The value of `key` at `version` (`fill` writes version 0): pseudo-random bytes, the same for
/// the same arguments.
pub fn value(key: u64, version: u64) -> Value {
    let mut words = SplitMix(key ^ version.wrapping_mul(0xd1b5_4a32_d192_ed03));
    let mut value = [0u8; VALUE_SIZE];
    for word in value.as_chunks_mut::<8>().0 {
        *word = words.word().to_le_bytes();
    }
    value
}

/// The keys `start..start + count`, if one message may touch that many.
fn batch(start: u64, count: u64) -> Result<Range<u64>, WorkloadError> {
    if count > MAX_BATCH {
        return Err(WorkloadError::BatchTooLarge { count, max: MAX_BATCH });
    }
    let end = start.checked_add(count).ok_or(WorkloadError::KeysExhausted { start, count })?;
    Ok(start..end)
}

/// The key after the largest (0 in an empty map), where `count` appended keys start.
fn append_start<M: Memory>(map: &Map<M>, count: u64) -> Result<u64, WorkloadError> {
    match map.keys().next_back() {
        None => Ok(0),
        Some(last) => last.checked_add(1).ok_or(WorkloadError::KeysExhausted { start: last, count }),
    }
}

/// The smallest and the largest key.
fn key_span<M: Memory>(map: &Map<M>) -> Option<RangeInclusive<u64>> {
    Some(map.keys().next()?..=map.keys().next_back()?)
}

/// `count` new values for entries of `span`, pseudo-random from `seed`: each for the first key
/// present at or after a uniform draw over the span, whose ends are present.
fn random_overwrites<M: Memory>(map: &Map<M>, span: RangeInclusive<u64>, seed: u64, count: u64) -> Vec<(u64, Value)> {
    let mut draws = SplitMix(seed);
    let (first, last) = (*span.start(), *span.end());
    (0..count)
        .map(|_| {
            let draw = first + draws.word() % (last - first).saturating_add(1);
            let key = map.keys_range(draw..=last).next().unwrap_or(last);
            (key, value(key, draws.word()))
        })
        .collect()
}

/// Inserts keys `start..start + count` with their values at version 0; the map's length after.
pub fn fill<M: Memory>(map: &mut Map<M>, start: u64, count: u64) -> Result<u64, WorkloadError> {
    for key in batch(start, count)? {
        map.insert(key, value(key, 0));
    }
    Ok(map.len())
}

/// Inserts `count` keys after the largest; the map's length after.
pub fn append<M: Memory>(map: &mut Map<M>, count: u64) -> Result<u64, WorkloadError> {
    let start = append_start(map, count)?;
    fill(map, start, count)
}

/// Overwrites `count` entries at pseudo-random keys (the same for the same map and `seed`) with
/// new values; how many were written.
pub fn update_random<M: Memory>(map: &mut Map<M>, seed: u64, count: u64) -> Result<u64, WorkloadError> {
    batch(0, count)?;
    let span = key_span(map).ok_or(WorkloadError::NoEntries)?;
    for (key, value) in random_overwrites(map, span, seed, count) {
        map.insert(key, value);
    }
    Ok(count)
}

/// The checksum of up to `limit` entries from key `from` on.
pub fn digest<M: Memory>(map: &Map<M>, from: u64, limit: u64) -> Result<DigestPage, WorkloadError> {
    if limit > MAX_DIGEST_PAGE {
        return Err(WorkloadError::BatchTooLarge { count: limit, max: MAX_DIGEST_PAGE });
    }
    let mix = |checksum: u64, word: u64| (checksum.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    let mut entries = map.range(from..);
    let (mut checksum, mut covered) = (0, 0);
    for entry in entries.by_ref().take(limit as usize) {
        let (key, value) = entry.into_pair();
        checksum = value.as_chunks::<8>().0.iter().fold(mix(checksum, key), |c, word| mix(c, u64::from_le_bytes(*word)));
        covered += 1;
    }
    Ok(DigestPage { entries: covered, checksum, next: entries.next().map(|entry| *entry.key()) })
}

/// Inserts `count` fresh keys after the largest, gets them, and overwrites `count` entries at
/// pseudo-random keys among those present before, counting each phase's instructions with
/// `instructions` (the message's counter). The values are made before each phase starts.
pub fn measure_ops<M: Memory>(map: &mut Map<M>, count: u64, instructions: impl Fn() -> u64) -> Result<OpsCost, WorkloadError> {
    let fresh = batch(append_start(map, count)?, count)?;
    let before = key_span(map);
    let values: Vec<(u64, Value)> = fresh.clone().map(|key| (key, value(key, 0))).collect();
    let phase = |map: &mut Map<M>, run: &dyn Fn(&mut Map<M>)| {
        let start = instructions();
        run(map);
        instructions().saturating_sub(start)
    };
    let insert_instructions = phase(map, &|map| {
        for &(key, value) in &values {
            map.insert(key, value);
        }
    });
    let get_instructions = phase(map, &|map| {
        for key in fresh.clone() {
            std::hint::black_box(map.get(&key));
        }
    });
    let overwrite_instructions = match before.or_else(|| key_span(map)) {
        Some(span) => {
            let overwrites = random_overwrites(map, span, fresh.start, count);
            phase(map, &|map| {
                for &(key, value) in &overwrites {
                    map.insert(key, value);
                }
            })
        }
        None => 0,
    };
    Ok(OpsCost { count, insert_instructions, get_instructions, overwrite_instructions })
}

/// Defines the app's endpoints over `$map`, a `thread_local!` `RefCell<btree::Map<_>>` of the
/// app crate, which depends on `ic-cdk`, `candid` and this crate. (The paths are absolute, as
/// `ic_cdk::export_candid!` re-parses the types as written.)
#[macro_export]
macro_rules! workload_endpoints {
    ($map:ident) => {
        /// Inserts keys `start..start + count` with deterministic pseudo-random 1 KiB values; the
        /// map's length after.
        #[::ic_cdk::update]
        fn fill(start: u64, count: u64) -> ::core::result::Result<u64, ::btree::WorkloadError> {
            $map.with_borrow_mut(|map| ::btree::fill(map, start, count))
        }

        /// Overwrites `count` entries at pseudo-random keys (deterministic in `seed`) with new
        /// values; how many were written.
        #[::ic_cdk::update]
        fn update_random(seed: u64, count: u64) -> ::core::result::Result<u64, ::btree::WorkloadError> {
            $map.with_borrow_mut(|map| ::btree::update_random(map, seed, count))
        }

        /// Inserts `count` keys after the largest; the map's length after.
        #[::ic_cdk::update]
        fn append(count: u64) -> ::core::result::Result<u64, ::btree::WorkloadError> {
            $map.with_borrow_mut(|map| ::btree::append(map, count))
        }

        #[::ic_cdk::query]
        fn len() -> u64 {
            $map.with_borrow(|map| map.len())
        }

        /// A checksum of up to `limit` entries from key `from` on, and where the next page starts.
        #[::ic_cdk::query]
        fn digest(from: u64, limit: u64) -> ::core::result::Result<::btree::DigestPage, ::btree::WorkloadError> {
            $map.with_borrow(|map| ::btree::digest(map, from, limit))
        }

        /// Inserts `count` fresh keys after the largest, gets them, and overwrites `count`
        /// entries present before, returning the instructions each phase took.
        #[::ic_cdk::update]
        fn measure_ops(count: u64) -> ::core::result::Result<::btree::OpsCost, ::btree::WorkloadError> {
            $map.with_borrow_mut(|map| ::btree::measure_ops(map, count, || ::ic_cdk::api::performance_counter(0)))
        }
    };
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use ic_stable_structures::storable::Bound;
    use ic_stable_structures::{DefaultMemoryImpl, Storable};

    use super::*;

    fn map() -> Map<DefaultMemoryImpl> {
        Map::init(DefaultMemoryImpl::default())
    }

    /// Every page of the map's checksum, `limit` entries each.
    fn pages(map: &Map<DefaultMemoryImpl>, limit: u64) -> Vec<DigestPage> {
        let mut pages = vec![digest(map, 0, limit).unwrap()];
        while let Some(next) = pages.last().unwrap().next {
            pages.push(digest(map, next, limit).unwrap());
        }
        pages
    }

    #[test]
    fn a_value_is_a_fixed_kibibyte_reproducible_by_key_and_version() {
        assert_eq!(Value::BOUND, Bound::Bounded { max_size: 1024, is_fixed_size: true });
        assert_eq!(value(3, 0), value(3, 0));
        assert_ne!(value(3, 0), value(4, 0));
        assert_ne!(value(3, 0), value(3, 1));
        assert_ne!(value(3, 0)[..512], value(3, 0)[512..]);
    }

    #[test]
    fn fill_append_and_digest_pages() {
        let mut map = map();
        assert_eq!(append(&mut map, 5), Ok(5));
        assert_eq!(fill(&mut map, 100, 3), Ok(8));
        assert_eq!(append(&mut map, 2), Ok(10));
        assert_eq!(map.keys().collect::<Vec<_>>(), [0, 1, 2, 3, 4, 100, 101, 102, 103, 104]);
        assert_eq!(map.get(&103), Some(value(103, 0)));
        let by_three = pages(&map, 3);
        assert_eq!(
            by_three.iter().map(|p| (p.entries, p.next)).collect::<Vec<_>>(),
            [(3, Some(3)), (3, Some(101)), (3, Some(104)), (1, None)]
        );
        let whole = digest(&map, 0, 10).unwrap();
        assert_eq!((whole.entries, whole.next), (10, None));
        assert_eq!(digest(&map, 105, 10).unwrap(), DigestPage { entries: 0, checksum: 0, next: None });
    }

    #[test]
    fn update_random_overwrites_existing_entries_deterministically() {
        let (mut a, mut b) = (map(), map());
        for map in [&mut a, &mut b] {
            fill(map, 10, 50).unwrap();
            fill(map, 1_000, 50).unwrap();
        }
        let before = pages(&a, 100);
        assert_eq!(update_random(&mut a, 7, 20), Ok(20));
        assert_eq!(update_random(&mut b, 7, 20), Ok(20));
        assert_eq!(a.len(), 100, "no key is added");
        assert_ne!(pages(&a, 100), before);
        assert_eq!(pages(&a, 100), pages(&b, 100));
        assert_eq!(update_random(&mut map(), 7, 1), Err(WorkloadError::NoEntries));
    }

    #[test]
    fn calls_are_bounded_and_keys_do_not_wrap() {
        let mut map = map();
        let too_many = WorkloadError::BatchTooLarge { count: MAX_BATCH + 1, max: MAX_BATCH };
        assert_eq!(fill(&mut map, 0, MAX_BATCH + 1), Err(too_many.clone()));
        assert_eq!(measure_ops(&mut map, MAX_BATCH + 1, || 0), Err(too_many));
        assert_eq!(
            digest(&map, 0, MAX_DIGEST_PAGE + 1),
            Err(WorkloadError::BatchTooLarge { count: MAX_DIGEST_PAGE + 1, max: MAX_DIGEST_PAGE })
        );
        assert_eq!(fill(&mut map, u64::MAX - 1, 2), Err(WorkloadError::KeysExhausted { start: u64::MAX - 1, count: 2 }));
        assert_eq!(fill(&mut map, u64::MAX, 1), Err(WorkloadError::KeysExhausted { start: u64::MAX, count: 1 }));
        fill(&mut map, 0, 1).unwrap();
        fill(&mut map, u64::MAX - 2, 1).unwrap();
        assert_eq!(append(&mut map, 1), Ok(3), "the largest key is u64::MAX - 1");
        assert_eq!(append(&mut map, 1), Err(WorkloadError::KeysExhausted { start: u64::MAX, count: 1 }));
        assert_eq!(update_random(&mut map, 1, 5), Ok(5), "a span of all keys");
        assert_eq!(map.len(), 3);
    }

    #[test]
    fn measure_ops_inserts_gets_and_overwrites_counting_each_phase() {
        let mut map = map();
        fill(&mut map, 0, 20).unwrap();
        let counter = Cell::new(0);
        let tick = || {
            counter.set(counter.get() + 1);
            counter.get() * 100
        };
        let cost = measure_ops(&mut map, 8, tick).unwrap();
        assert_eq!(cost, OpsCost { count: 8, insert_instructions: 100, get_instructions: 100, overwrite_instructions: 100 });
        assert_eq!(map.len(), 28);
        assert_eq!(map.get(&27), Some(value(27, 0)), "the fresh keys follow the largest");
        for key in 20..28 {
            assert_eq!(map.get(&key), Some(value(key, 0)), "only entries present before are overwritten");
        }
        let mut empty = self::map();
        assert_eq!(measure_ops(&mut empty, 4, || 0).unwrap().count, 4);
        assert_eq!(empty.len(), 4);
    }
}
