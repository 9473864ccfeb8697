//! Btree, backed up by canister-vault: the map sits on a `MemoryManager` over
//! `vault_client::memory()`, and `reload` rebuilds it after a restore, as the ledger adopts the
//! client library.

use std::cell::RefCell;

use candid::Principal;
use ic_stable_structures::memory_manager::{MemoryManager, VirtualMemory};
use vault_client::VaultMemory;

thread_local! {
    static MANAGER: RefCell<MemoryManager<VaultMemory>> = RefCell::new(MemoryManager::init(vault_client::memory()));
    static MAP: RefCell<btree::Map<VirtualMemory<VaultMemory>>> =
        RefCell::new(btree::Map::init(MANAGER.with_borrow(|m| m.get(btree::MAP_MEMORY))));
}

vault_client::vault_endpoints!();
btree::workload_endpoints!(MAP);

/// Rebuilds the map from the restored memory (it caches on the heap).
fn reload() {
    MANAGER.with_borrow_mut(|m| *m = MemoryManager::init(vault_client::memory()));
    MAP.with_borrow_mut(|map| *map = btree::Map::init(MANAGER.with_borrow(|m| m.get(btree::MAP_MEMORY))));
}

#[ic_cdk::init]
fn init(vault: Option<Principal>) {
    if let Some(vault) = vault {
        vault_client::set_vault(vault);
    }
    // The map exists from the start, so a reload after a restore only reads.
    reload();
    vault_client::on_restore(reload);
}

#[ic_cdk::post_upgrade]
fn post_upgrade() {
    vault_client::on_restore(reload);
}

ic_cdk::export_candid!();

fn main() {}

#[cfg(test)]
mod interface_tests {
    #[test]
    fn did_matches_the_endpoints() {
        let did = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("btree.did");
        ic_harness::interface::assert_service_matches(&super::__export_service(), &did);
    }
}
