//! Serde restores loaded by an upgrade, for a state too large to deserialize in one update: a
//! commit with `via_upgrade` checks the staged image as any commit does, then records it here
//! instead of loading it; the next upgrade's `load_after_upgrade` loads it in place of the state
//! `pre_upgrade` saved, within what the upgrade leaves it ([`load_budget`]), and records how that
//! went. A serde dump or restore opened meanwhile takes the image's place in staging, and records
//! it failed; so do the vault's abort of the job, any `vault_set_vault` by a controller (a way
//! out that needs no vault), and an upgrade more than [`SESSION_TTL`] after the commit.
//!
//! UPGRADE_RESTORE (memory 12), little endian: record length u32, then the record: version 1 |
//! state u8 (1 pending, 2 loaded, 3 failed) | job u64 | size u64 | manifest hash [u8; 32] |
//! content hash u8 (`vault_api::codec`) | loaded at u64 (0 unless loaded) | reason length u32 |
//! reason (UTF-8, at most [`MAX_REASON`] bytes) | committed at u64 | the vault that committed it
//! (a principal, 30 bytes as `vault_api::codec` writes one) | its nonce (present u8, u64). An
//! empty memory holds none.

use ic_stable_structures::Memory;
use serde::de::DeserializeOwned;
use vault_api::codec::{Reader, Writer, content_hash_byte, content_hash_of};
use vault_api::protocol::{SESSION_TTL, UpgradeLoad, UpgradeRestore, WASM_PAGE_SIZE};
use vault_api::{ContentHash, Sha256};

use crate::layout::{self, SessionKey};
use crate::staging::{Exceeded, StagingReader};
use crate::store;

/// Instructions an upgrade may execute, its `pre_upgrade` and `post_upgrade` together.
const UPGRADE_INSTRUCTIONS: u64 = 300_000_000_000;

/// Instructions the load of a staged image may take in `post_upgrade` at most; a restore whose
/// image the last dump's rate predicts to take more is refused when it begins.
pub const LOAD_BUDGET: u64 = 150_000_000_000;

/// Instructions kept aside from the upgrade's for the rest of `post_upgrade`.
const MARGIN: u64 = 20_000_000_000;

/// Bytes a staged image may have: its decoding must fit in the heap (4 GiB at most) with room
/// to spare.
pub const MAX_IMAGE: u64 = 2 << 30;

/// The instructions the load of a staged image may take in a `post_upgrade` whose `pre_upgrade`
/// saved the state in `saved` instructions, and which would take `fallback` to load what it saved
/// should the image not decode: [`LOAD_BUDGET`] at most, and no more than leaves room in the
/// upgrade's for both.
pub fn load_budget(saved: u64, fallback: u64) -> u64 {
    UPGRADE_INSTRUCTIONS.saturating_sub(saved).saturating_sub(fallback).saturating_sub(MARGIN).min(LOAD_BUDGET)
}

/// Bytes of a failure's reason kept.
pub const MAX_REASON: usize = 1024;

const VERSION: u8 = 1;

/// A restore committed to load at the next upgrade, and where it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The session that committed it: its vault, that vault's nonce, and the job.
    pub key: SessionKey,
    pub size: u64,
    pub sha256: Sha256,
    pub content_hash: ContentHash,
    pub state: UpgradeLoad,
    pub committed_at: u64,
}

impl Record {
    fn encode(&self) -> Vec<u8> {
        let (state, at, reason) = match &self.state {
            UpgradeLoad::Pending => (1, 0, ""),
            UpgradeLoad::Loaded { at } => (2, *at, ""),
            UpgradeLoad::Failed { reason } => (3, 0, truncated(reason)),
        };
        let mut w = Writer::with_capacity(64 + reason.len());
        w.u8(VERSION).u8(state).u64(self.key.job).u64(self.size).sha256(&self.sha256).u8(content_hash_byte(self.content_hash));
        w.u64(at).blob(reason.as_bytes()).u64(self.committed_at);
        w.principal(&self.key.vault).u8(self.key.nonce.is_some() as u8).u64(self.key.nonce.unwrap_or(0));
        w.into_vec()
    }

    fn decode(bytes: &[u8]) -> Record {
        let mut r = Reader::new(bytes);
        assert_eq!(r.u8(), VERSION, "an upgrade restore record of another version");
        let state = r.u8();
        let (job, size, sha256) = (r.u64(), r.u64(), r.sha256());
        let content_hash = content_hash_of(r.u8()).expect("a known content hash");
        let at = r.u64();
        let reason = String::from_utf8_lossy(r.blob()).into_owned();
        let committed_at = r.u64();
        let vault = r.principal();
        let nonce = (r.u8() == 1, r.u64());
        let key = SessionKey { vault, nonce: nonce.0.then_some(nonce.1), job };
        let state = match state {
            1 => UpgradeLoad::Pending,
            2 => UpgradeLoad::Loaded { at },
            3 => UpgradeLoad::Failed { reason },
            other => panic!("an upgrade restore record in state {other}"),
        };
        Record { key, size, sha256, content_hash, state, committed_at }
    }

    pub fn report(&self) -> UpgradeRestore {
        UpgradeRestore { job: self.key.job, sha256: self.sha256, state: self.state.clone() }
    }
}

/// `reason` cut to at most [`MAX_REASON`] bytes, at a character boundary.
fn truncated(reason: &str) -> &str {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// The record, if any.
pub fn get() -> Option<Record> {
    let memory = store::memory(layout::UPGRADE_RESTORE);
    if memory.size() == 0 {
        return None;
    }
    let mut len = [0; 4];
    memory.read(0, &mut len);
    let len = u32::from_le_bytes(len) as usize;
    (len > 0).then(|| {
        let mut bytes = vec![0; len];
        memory.read(4, &mut bytes);
        Record::decode(&bytes)
    })
}

fn set(record: &Record) {
    let bytes = record.encode();
    let memory = store::memory(layout::UPGRADE_RESTORE);
    let needed = (4 + bytes.len() as u64).div_ceil(WASM_PAGE_SIZE);
    if memory.size() < needed && memory.grow(needed - memory.size()) < 0 {
        ic_cdk::trap("stable memory cannot hold the library's records");
    }
    memory.write(0, &(bytes.len() as u32).to_le_bytes());
    memory.write(4, &bytes);
}

/// Records the image `key`'s restore staged at `now` as the one the next upgrade loads.
pub fn commit(key: SessionKey, size: u64, sha256: Sha256, content_hash: ContentHash, now: u64) {
    set(&Record { key, size, sha256, content_hash, state: UpgradeLoad::Pending, committed_at: now });
}

/// Staging is about to be written for something else: a pending image is lost, and recorded so.
pub fn supersede(by: &str) {
    fail_pending(|_| true, &format!("{by} took its place in staging before an upgrade"));
}

/// The pending image is not to be loaded, for `reason`, if `key`'s restore staged it (whoever's:
/// `None`).
pub fn discard(key: Option<&SessionKey>, reason: &str) {
    fail_pending(|record| key.is_none_or(|key| record.key == *key), reason);
}

/// Records the pending image, if `which` it is, failed for `reason`.
fn fail_pending(which: impl FnOnce(&Record) -> bool, reason: &str) {
    if let Some(record) = get().filter(|r| r.state == UpgradeLoad::Pending).filter(which) {
        set(&Record { state: UpgradeLoad::Failed { reason: reason.into() }, ..record });
    }
}

/// In `post_upgrade`, at `now`, after a `pre_upgrade` that saved the state in `saved`
/// instructions, which would take `fallback` to load: the pending image decoded into a `T`, if
/// there is one, committed within [`SESSION_TTL`], and it decodes within [`load_budget`]; either
/// way the record says how it went.
pub fn load<T: DeserializeOwned>(now: u64, saved: u64, fallback: u64) -> Option<T> {
    let record = get().filter(|r| r.state == UpgradeLoad::Pending)?;
    let budget = load_budget(saved, fallback);
    let ttl = SESSION_TTL.as_nanos() as u64;
    let (state, value) = if now.saturating_sub(record.committed_at) > ttl {
        (UpgradeLoad::Failed { reason: format!("no upgrade loaded it within {} s of its commit", SESSION_TTL.as_secs()) }, None)
    } else {
        let mut reader = StagingReader::within(record.size, budget);
        match rmp_serde::decode::from_read::<_, T>(&mut reader) {
            Ok(value) => (UpgradeLoad::Loaded { at: now }, Some(value)),
            Err(_) if reader.exceeded == Some(Exceeded::Instructions) => {
                let reason = format!(
                    "decoding {} bytes took more than the {budget} instructions the upgrade left it (its pre_upgrade took {saved})",
                    record.size
                );
                (UpgradeLoad::Failed { reason }, None)
            }
            Err(e) => (UpgradeLoad::Failed { reason: format!("the staged image does not decode as this module's state: {e}") }, None),
        }
    };
    set(&Record { state, ..record });
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_leaves_room_for_the_save_and_the_fallback() {
        assert_eq!(load_budget(0, 0), LOAD_BUDGET);
        assert_eq!(load_budget(50_000_000_000, 100_000_000_000), 300_000_000_000 - 150_000_000_000 - MARGIN);
        assert_eq!(load_budget(100_000_000_000, 200_000_000_000), 0, "nothing is left to try");
        assert_eq!(load_budget(u64::MAX, u64::MAX), 0);
    }

    #[test]
    fn records_keep_their_bytes_and_read_back() {
        let key = SessionKey { vault: candid::Principal::from_slice(&[3; 10]), nonce: Some(5), job: 7 };
        let record = |state| Record { key, size: 0x0102, sha256: Sha256([0xab; 32]), content_hash: ContentHash::Blake3, state, committed_at: 9 };
        let pending = record(UpgradeLoad::Pending);
        let hex: String = pending.encode().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "010107000000000000000201000000000000abababababababababababababababababababababababababababababababab0100000000000000000000000009000000000000000a0303030303030303030300000000000000000000000000000000000000010500000000000000",
            "the layout of a pending record"
        );
        for state in [UpgradeLoad::Pending, UpgradeLoad::Loaded { at: 99 }, UpgradeLoad::Failed { reason: "é".repeat(600) }] {
            let decoded = Record::decode(&record(state.clone()).encode());
            match (&decoded.state, &state) {
                (UpgradeLoad::Failed { reason: kept }, UpgradeLoad::Failed { reason }) => {
                    assert_eq!(kept.len(), MAX_REASON, "cut at a character boundary");
                    assert!(reason.starts_with(kept.as_str()));
                }
                _ => assert_eq!(decoded, record(state)),
            }
        }
    }
}
