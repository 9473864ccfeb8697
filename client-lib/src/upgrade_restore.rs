//! Serde restores loaded by an upgrade, for a state too large to deserialize in one update: a
//! commit with `via_upgrade` checks the staged image as any commit does, then records it here
//! instead of loading it; the next upgrade's `load_after_upgrade` loads it in place of the state
//! `pre_upgrade` saved, within [`LOAD_BUDGET`], and records how that went. A serde dump or
//! restore opened meanwhile takes the image's place in staging, and records it failed.
//!
//! UPGRADE_RESTORE (memory 12), little endian: record length u32, then the record: version 1 |
//! state u8 (1 pending, 2 loaded, 3 failed) | job u64 | size u64 | manifest hash [u8; 32] |
//! content hash u8 (`vault_api::codec`) | loaded at u64 (0 unless loaded) | reason length u32 |
//! reason (UTF-8, at most [`MAX_REASON`] bytes). An empty memory holds none.

use ic_stable_structures::Memory;
use serde::de::DeserializeOwned;
use vault_api::codec::{Reader, Writer, content_hash_byte, content_hash_of};
use vault_api::protocol::{UpgradeLoad, UpgradeRestore, WASM_PAGE_SIZE};
use vault_api::{ContentHash, Sha256};

use crate::layout;
use crate::staging::{Exceeded, StagingReader};
use crate::store;

/// Instructions the load of a staged image may take in `post_upgrade`: of the 300 B an upgrade
/// may execute (its `pre_upgrade` and `post_upgrade` together), the rest is left to the save and
/// load of the state the app had, which the app keeps if this load fails.
pub const LOAD_BUDGET: u64 = 150_000_000_000;

/// Bytes a staged image may have: more than the 4 GiB of a canister's heap cannot decode into it.
pub const MAX_IMAGE: u64 = 4 << 30;

/// Bytes of a failure's reason kept.
pub const MAX_REASON: usize = 1024;

const VERSION: u8 = 1;

/// A restore committed to load at the next upgrade, and where it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub job: u64,
    pub size: u64,
    pub sha256: Sha256,
    pub content_hash: ContentHash,
    pub state: UpgradeLoad,
}

impl Record {
    fn encode(&self) -> Vec<u8> {
        let (state, at, reason) = match &self.state {
            UpgradeLoad::Pending => (1, 0, ""),
            UpgradeLoad::Loaded { at } => (2, *at, ""),
            UpgradeLoad::Failed { reason } => (3, 0, truncated(reason)),
        };
        let mut w = Writer::with_capacity(64 + reason.len());
        w.u8(VERSION).u8(state).u64(self.job).u64(self.size).sha256(&self.sha256).u8(content_hash_byte(self.content_hash));
        w.u64(at).blob(reason.as_bytes());
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
        let state = match state {
            1 => UpgradeLoad::Pending,
            2 => UpgradeLoad::Loaded { at },
            3 => UpgradeLoad::Failed { reason },
            other => panic!("an upgrade restore record in state {other}"),
        };
        Record { job, size, sha256, content_hash, state }
    }

    pub fn report(&self) -> UpgradeRestore {
        UpgradeRestore { job: self.job, sha256: self.sha256, state: self.state.clone() }
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

/// Records the image staged for `job` as the one the next upgrade loads.
pub fn commit(job: u64, size: u64, sha256: Sha256, content_hash: ContentHash) {
    set(&Record { job, size, sha256, content_hash, state: UpgradeLoad::Pending });
}

/// Staging is about to be written for something else: a pending image is lost, and recorded so.
pub fn supersede(by: &str) {
    if let Some(record) = get().filter(|r| r.state == UpgradeLoad::Pending) {
        set(&Record { state: UpgradeLoad::Failed { reason: format!("{by} took its place in staging before an upgrade") }, ..record });
    }
}

/// In `post_upgrade`: the pending image decoded into a `T`, if there is one and it decodes
/// within [`LOAD_BUDGET`]; either way the record says how it went.
pub fn load<T: DeserializeOwned>() -> Option<T> {
    let record = get().filter(|r| r.state == UpgradeLoad::Pending)?;
    let mut reader = StagingReader::within(record.size, LOAD_BUDGET);
    let (state, value) = match rmp_serde::decode::from_read::<_, T>(&mut reader) {
        Ok(value) => (UpgradeLoad::Loaded { at: ic_cdk::api::time() }, Some(value)),
        Err(_) if reader.exceeded == Some(Exceeded::Instructions) => {
            let reason = format!("decoding {} bytes took more than the {LOAD_BUDGET} instructions an upgrade leaves it", record.size);
            (UpgradeLoad::Failed { reason }, None)
        }
        Err(e) => (UpgradeLoad::Failed { reason: format!("the staged image does not decode as this module's state: {e}") }, None),
    };
    set(&Record { state, ..record });
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_their_bytes_and_read_back() {
        let record = |state| Record { job: 7, size: 0x0102, sha256: Sha256([0xab; 32]), content_hash: ContentHash::Blake3, state };
        let pending = record(UpgradeLoad::Pending);
        let hex: String = pending.encode().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "010107000000000000000201000000000000abababababababababababababababababababababababababababababababab01000000000000000000000000",
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
