//! The btree example app (`examples/btree`: a `StableBTreeMap` of 1 KiB values), on the client
//! library's memory or on plain `DefaultMemoryImpl` as the baseline: a typed helper per method,
//! each looping over calls of at most `btree::MAX_BATCH` entries, as the app bounds them.

use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{Encode, Principal};
use ic_harness::{Harness, IcBackend};

pub use btree::{DigestPage, MAX_BATCH, MAX_DIGEST_PAGE, OpsCost, VALUE_SIZE, WorkloadError};

use crate::{Env, owner};

/// The app on the client library's `VaultMemory`, backed up by the vault.
pub fn btree_wasm() -> Vec<u8> {
    ic_harness::build::canister_wasm("btree", "btree")
}

/// The same workload on a `MemoryManager` over plain `DefaultMemoryImpl`, without the client
/// library.
pub fn btree_baseline_wasm() -> Vec<u8> {
    ic_harness::build::canister_wasm("btree", "btree-baseline")
}

/// A btree app's methods, called as [`owner`]; each panics if the app refuses or gives no answer.
pub struct BtreeClient<'a> {
    pub ic: &'a Harness,
    pub app: Principal,
}

/// The batches of at most [`MAX_BATCH`] that `count` entries take.
fn batches(count: u64) -> impl Iterator<Item = (u64, u64)> {
    (0..count).step_by(MAX_BATCH as usize).map(move |done| (done, MAX_BATCH.min(count - done)))
}

impl BtreeClient<'_> {
    fn update<A: ArgumentEncoder, T: candid::CandidType + for<'b> candid::Deserialize<'b>>(&self, method: &str, args: A) -> T {
        let (result,): (Result<T, WorkloadError>,) =
            self.ic.update_candid(self.app, owner(), method, args).unwrap_or_else(|e| panic!("btree.{method}: {e}"));
        result.unwrap_or_else(|e| panic!("btree.{method}: {e:?}"))
    }

    fn query<A: ArgumentEncoder, R: for<'b> ArgumentDecoder<'b>>(&self, method: &str, args: A) -> R {
        self.ic.query_candid(self.app, owner(), method, args).unwrap_or_else(|e| panic!("btree.{method}: {e}"))
    }

    /// Inserts keys `start..start + count`; the map's length after.
    pub fn fill(&self, start: u64, count: u64) -> u64 {
        batches(count).fold(self.entries(), |_, (done, n)| self.update("fill", (start + done, n)))
    }

    /// Overwrites `count` entries at pseudo-random keys, batch `i` of them drawn from seed
    /// `seed + i`.
    pub fn update_random(&self, seed: u64, count: u64) {
        for (i, (_, n)) in batches(count).enumerate() {
            let _: u64 = self.update("update_random", (seed.wrapping_add(i as u64), n));
        }
    }

    /// Inserts `count` keys after the largest; the map's length after.
    pub fn append(&self, count: u64) -> u64 {
        batches(count).fold(self.entries(), |_, (_, n)| self.update("append", (n,)))
    }

    /// The map's length (`len`).
    pub fn entries(&self) -> u64 {
        self.query::<_, (u64,)>("len", ()).0
    }

    /// The map's checksum, page by page of [`MAX_DIGEST_PAGE`] entries: equal pages, equal maps
    /// (up to the checksum's collisions).
    pub fn digest(&self) -> Vec<DigestPage> {
        let page =
            |from: u64| self.query::<_, (Result<DigestPage, WorkloadError>,)>("digest", (from, MAX_DIGEST_PAGE)).0.expect("btree.digest");
        let mut pages = vec![page(0)];
        while let Some(next) = pages.last().and_then(|p| p.next) {
            pages.push(page(next));
        }
        pages
    }

    /// What `count` fresh inserts, their gets and `count` overwrites cost, summed over the
    /// batches that take them.
    pub fn measure_ops(&self, count: u64) -> OpsCost {
        batches(count).fold(OpsCost { count: 0, insert_instructions: 0, get_instructions: 0, overwrite_instructions: 0 }, |sum, (_, n)| {
            let batch: OpsCost = self.update("measure_ops", (n,));
            OpsCost {
                count: sum.count + batch.count,
                insert_instructions: sum.insert_instructions + batch.insert_instructions,
                get_instructions: sum.get_instructions + batch.get_instructions,
                overwrite_instructions: sum.overwrite_instructions + batch.overwrite_instructions,
            }
        })
    }
}

impl Env {
    /// A btree app on the client library's memory, controlled by [`owner`], with `vault` set (or
    /// none).
    pub fn deploy_btree(&self, vault: Option<Principal>) -> Principal {
        self.deploy_module(btree_wasm(), Encode!(&vault).unwrap(), owner())
    }

    /// A btree app on plain `DefaultMemoryImpl`, controlled by [`owner`].
    pub fn deploy_btree_baseline(&self) -> Principal {
        self.deploy_module(btree_baseline_wasm(), Encode!().unwrap(), owner())
    }

    pub fn btree(&self, app: Principal) -> BtreeClient<'_> {
        BtreeClient { ic: &self.ic, app }
    }
}
