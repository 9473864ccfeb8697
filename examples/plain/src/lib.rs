//! Plain: a canister that knows nothing of canister-vault, as most canisters are. Its entries
//! live on the heap only: an upgrade or a bad migration loses them. The vault backs it up as one
//! of its controllers, through native canister snapshots (`vault register APP --native`).

use std::cell::RefCell;

use sha2::{Digest, Sha256};

thread_local! {
    static ENTRIES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Appends an entry; the number of entries.
#[ic_cdk::update]
fn add(entry: String) -> u64 {
    ENTRIES.with_borrow_mut(|entries| {
        entries.push(entry);
        entries.len() as u64
    })
}

/// Drops every entry.
#[ic_cdk::update]
fn clear() {
    ENTRIES.with_borrow_mut(Vec::clear);
}

#[ic_cdk::query]
fn count() -> u64 {
    ENTRIES.with_borrow(|entries| entries.len() as u64)
}

/// The entries' SHA-256 (each length-prefixed), in hex: two canisters with the same digest hold
/// the same entries.
#[ic_cdk::query]
fn digest() -> String {
    ENTRIES.with_borrow(|entries| {
        let mut hash = Sha256::new();
        for entry in entries {
            hash.update((entry.len() as u64).to_le_bytes());
            hash.update(entry.as_bytes());
        }
        hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
    })
}

ic_cdk::export_candid!();

#[cfg(test)]
mod interface_tests {
    #[test]
    fn did_matches_the_endpoints() {
        let did = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plain.did");
        ic_harness::interface::assert_service_matches(&super::__export_service(), &did);
    }
}
