//! Ledger: an app whose state lives in stable structures. Adopting canister-vault takes the
//! marked lines: the `MemoryManager` sits on `vault_client::memory()`, and `reload` rebuilds
//! the structures after a restore.

use std::cell::RefCell;

use candid::Principal;
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ic_stable_structures::{Memory, StableBTreeMap, StableCell};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use vault_client::VaultMemory;

type Mem = VirtualMemory<VaultMemory>;

thread_local! {
    // canister-vault: the app's memory comes from the client library.
    static MANAGER: RefCell<MemoryManager<VaultMemory>> = RefCell::new(MemoryManager::init(vault_client::memory()));
    static BALANCES: RefCell<StableBTreeMap<u64, u64, Mem>> =
        RefCell::new(StableBTreeMap::init(MANAGER.with_borrow(|m| m.get(MemoryId::new(0)))));
    static SEQ: RefCell<StableCell<u64, Mem>> =
        RefCell::new(StableCell::init(MANAGER.with_borrow(|m| m.get(MemoryId::new(1))), 0));
    static BLOBS: RefCell<StableBTreeMap<u64, Vec<u8>, Mem>> =
        RefCell::new(StableBTreeMap::init(MANAGER.with_borrow(|m| m.get(MemoryId::new(2)))));
}

vault_client::vault_endpoints!(); // canister-vault: the backup endpoints

/// canister-vault: rebuilds the structures from the restored memory (they cache on the heap).
fn reload() {
    MANAGER.with_borrow_mut(|m| *m = MemoryManager::init(vault_client::memory()));
    let memory = |id| MANAGER.with_borrow(|m| m.get(MemoryId::new(id)));
    BALANCES.with_borrow_mut(|b| *b = StableBTreeMap::init(memory(0)));
    SEQ.with_borrow_mut(|s| *s = StableCell::init(memory(1), 0));
    BLOBS.with_borrow_mut(|b| *b = StableBTreeMap::init(memory(2)));
}

#[ic_cdk::init]
fn init(vault: Option<Principal>) {
    if let Some(vault) = vault {
        vault_client::set_vault(vault); // canister-vault: who may back up and restore
    }
    // Every structure exists from the start, so a reload after a restore only reads.
    reload();
    vault_client::on_restore(reload);
}

#[ic_cdk::post_upgrade]
fn post_upgrade() {
    vault_client::on_restore(reload);
}

fn next_seq() -> u64 {
    SEQ.with_borrow_mut(|s| {
        let next = *s.get() + 1;
        s.set(next);
        next
    })
}

/// Credits `amount` to `account`; returns the update's sequence number.
#[ic_cdk::update]
fn mint(account: u64, amount: u64) -> u64 {
    BALANCES.with_borrow_mut(|b| {
        let balance = b.get(&account).unwrap_or(0);
        b.insert(account, balance + amount);
    });
    next_seq()
}

#[ic_cdk::update]
fn transfer(from: u64, to: u64, amount: u64) -> Result<u64, String> {
    BALANCES.with_borrow_mut(|b| {
        let have = b.get(&from).unwrap_or(0);
        if have < amount {
            return Err(format!("account {from} has {have}, not {amount}"));
        }
        b.insert(from, have - amount);
        let to_balance = b.get(&to).unwrap_or(0);
        b.insert(to, to_balance + amount);
        Ok(())
    })?;
    Ok(next_seq())
}

/// Stores `size` bytes derived from `seed` under `key`.
#[ic_cdk::update]
fn put_blob(key: u64, size: u64, seed: u8) -> u64 {
    let data = example_blobs::pseudo_random(seed, size);
    BLOBS.with_borrow_mut(|b| b.insert(key, data));
    next_seq()
}

#[ic_cdk::query]
fn balance(account: u64) -> u64 {
    BALANCES.with_borrow(|b| b.get(&account).unwrap_or(0))
}

#[ic_cdk::query]
fn total() -> u64 {
    BALANCES.with_borrow(|b| b.iter().map(|e| e.value()).sum())
}

#[ic_cdk::query]
fn seq() -> u64 {
    SEQ.with_borrow(|s| *s.get())
}

/// The sequence number and the SHA-256 of the app's whole memory image: equal digests, equal
/// bytes.
#[ic_cdk::update]
fn digest() -> (u64, ByteBuf) {
    let memory = vault_client::memory();
    let size = memory.size() * 65536;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < size {
        let n = (size - at).min(buf.len() as u64) as usize;
        memory.read(at, &mut buf[..n]);
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    (seq(), ByteBuf::from(hasher.finalize().to_vec()))
}

ic_cdk::export_candid!();

#[cfg(test)]
mod interface_tests {
    #[test]
    fn did_matches_the_endpoints() {
        let did = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ledger.did");
        ic_harness::interface::assert_service_matches(&super::__export_service(), &did);
    }
}
