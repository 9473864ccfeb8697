//! Notes: an app whose state lives on the heap and is saved across upgrades with serde, the
//! way many teams write canisters. Adopting canister-vault takes the four marked lines; a fifth
//! declares the layout of the state.

use std::cell::RefCell;
use std::collections::BTreeMap;

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

#[derive(Serialize, Deserialize, CandidType, Clone, Debug, Default, PartialEq, Eq)]
pub struct Note {
    pub title: String,
    pub body: String,
}

#[derive(Serialize, Deserialize, Default)]
struct Notes {
    /// Updates applied so far.
    seq: u64,
    next_id: u64,
    notes: BTreeMap<u64, Note>,
    /// Attachments, to give the state any size.
    blobs: BTreeMap<u64, ByteBuf>,
}

thread_local! {
    static STATE: RefCell<Notes> = RefCell::default();
}

vault_client::vault_endpoints!(); // canister-vault: the backup endpoints

#[ic_cdk::init]
fn init(vault: Option<Principal>) {
    if let Some(vault) = vault {
        vault_client::set_vault(vault); // canister-vault: who may back up and restore
    }
    vault_client::use_serde_state(&STATE); // canister-vault: what to back up
}

#[ic_cdk::pre_upgrade]
fn pre_upgrade() {
    vault_client::save_for_upgrade(&STATE);
}

/// `state_layout`: the version of its state's layout the upgraded module declares to its vault.
/// An app whose code changes the layout declares the new version as a constant; this example
/// takes it from the upgrade's argument so that one build stands for both (none declares none).
#[ic_cdk::post_upgrade]
fn post_upgrade(state_layout: Option<u32>) {
    vault_client::load_after_upgrade(&STATE); // canister-vault: reload and register the state
    if let Some(layout) = state_layout {
        vault_client::set_state_layout(layout); // canister-vault: which layout this module reads
    }
}

fn applied<R>(f: impl FnOnce(&mut Notes) -> R) -> (R, u64) {
    STATE.with_borrow_mut(|s| {
        let r = f(s);
        s.seq += 1;
        (r, s.seq)
    })
}

/// Adds a note; returns its id and the update's sequence number.
#[ic_cdk::update]
fn add_note(title: String, body: String) -> (u64, u64) {
    applied(|s| {
        let id = s.next_id;
        s.next_id += 1;
        s.notes.insert(id, Note { title, body });
        id
    })
}

#[ic_cdk::update]
fn edit_note(id: u64, body: String) -> (bool, u64) {
    applied(|s| s.notes.get_mut(&id).map(|n| n.body = body).is_some())
}

#[ic_cdk::update]
fn delete_note(id: u64) -> (bool, u64) {
    applied(|s| s.notes.remove(&id).is_some())
}

/// Stores `size` bytes derived from `seed` under `key`.
#[ic_cdk::update]
fn put_blob(key: u64, size: u64, seed: u8) -> u64 {
    let data = example_blobs::pseudo_random(seed, size);
    applied(|s| s.blobs.insert(key, ByteBuf::from(data))).1
}

/// Adds `count` notes, each body `body_len` letters derived from its id and `seed`, to give the
/// state many records; returns the notes held.
#[ic_cdk::update]
fn add_notes(count: u64, body_len: u64, seed: u64) -> u64 {
    applied(|s| {
        for _ in 0..count {
            let id = s.next_id;
            s.next_id += 1;
            s.notes.insert(id, Note { title: format!("note {id}"), body: letters(id ^ seed << 40, body_len) });
        }
        s.notes.len() as u64
    })
    .0
}

/// Rewrites the bodies of `count` notes at pseudo-random ids from `seed` with new letters, each
/// up to 32 longer or shorter; returns how many it rewrote (an id drawn twice counts twice).
#[ic_cdk::update]
fn edit_random(count: u64, seed: u64) -> u64 {
    applied(|s| {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut edited = 0;
        for _ in 0..count {
            x = xorshift(x);
            let Some(id) = s.notes.range(x % s.next_id.max(1)..).next().map(|(id, _)| *id) else {
                continue;
            };
            let note = s.notes.get_mut(&id).expect("a note just found");
            let len = (note.body.len() as u64 + x % 65).saturating_sub(32);
            note.body = letters(x, len);
            edited += 1;
        }
        edited
    })
    .0
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^ (x << 17)
}

/// `len` pseudo-random letters from `key`.
fn letters(key: u64, len: u64) -> String {
    let mut x = key.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x = xorshift(x);
            (b'a' + (x % 26) as u8) as char
        })
        .collect()
}

#[ic_cdk::query]
fn get_note(id: u64) -> Option<Note> {
    STATE.with_borrow(|s| s.notes.get(&id).cloned())
}

#[ic_cdk::query]
fn count() -> u64 {
    STATE.with_borrow(|s| s.notes.len() as u64)
}

#[ic_cdk::query]
fn seq() -> u64 {
    STATE.with_borrow(|s| s.seq)
}

/// The sequence number and the SHA-256 of the state's serialization: equal digests, equal
/// states.
#[ic_cdk::update]
fn digest() -> (u64, ByteBuf) {
    STATE.with_borrow(|s| {
        let bytes = rmp_serde::to_vec_named(s).expect("the state serializes");
        (s.seq, ByteBuf::from(Sha256::digest(&bytes).to_vec()))
    })
}

ic_cdk::export_candid!();

#[cfg(test)]
mod interface_tests {
    #[test]
    fn did_matches_the_endpoints() {
        let did = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("notes.did");
        ic_harness::interface::assert_service_matches(&super::__export_service(), &did);
    }
}
