//! Snapshots: freezing the state, serving it in chunks, releasing it. Each call is the vault's
//! (the endpoint checked that), for the session its `key` names. A chunk carries its SHA-256
//! only for a vault that asks for it (one before BLAKE3): the vault hashes every chunk itself.

use vault_api::manifest::{self, Sha256};
use vault_api::protocol::DumpBegin;
use vault_api::protocol::{BackupError, CHUNK_SIZE, Chunk, DumpManifest, StateKind, WASM_PAGE_SIZE};

use crate::layout::{OpenDump, SessionKey};
use crate::staging::{self, Exceeded, StagingWriter};
use crate::store::ReadBuffer;
use crate::{pages, serde_state, session, store};

/// Opens `key`'s dump at `now` as `args` asks, or answers the one open for it again; its
/// manifest says the app declares `state_layout`.
pub fn begin(key: SessionKey, args: &DumpBegin, now: u64, state_layout: Option<u32>) -> Result<DumpManifest, BackupError> {
    if let Some(dump) = session::dump(&key) {
        session::touch(now);
        return Ok(manifest_of(&dump, state_layout));
    }
    let dump = session::open_dump(|| {
        let (kind, size, frozen_generation) = match serde_state::state_kind() {
            StateKind::StableMemory => {
                let size = store::header().app_pages * WASM_PAGE_SIZE;
                (StateKind::StableMemory, size, pages::freeze())
            }
            StateKind::Serde => (StateKind::Serde, serialize()?, 0),
        };
        let chunk_hashes = args.chunk_hashes != Some(false);
        Ok(OpenDump { key, kind, size, chunk_size: CHUNK_SIZE, taken_at_nanos: now, frozen_generation, touched_at_nanos: now, chunk_hashes })
    })?;
    Ok(manifest_of(&dump, state_layout))
}

/// Serializes the registered state into staging; returns its size.
fn serialize() -> Result<u64, BackupError> {
    if !serde_state::registered() {
        return Err(BackupError::Serialization {
            message: "the app registered no serde state: call vault_client::use_serde_state in init and post_upgrade".into(),
        });
    }
    let (last_bytes, last_instructions) = store::header().serde_cost;
    let start = ic_cdk::api::performance_counter(0);
    let mut writer = StagingWriter::default();
    let result = serde_state::dump(&mut writer);
    let used = ic_cdk::api::performance_counter(0) - start;
    match (result, writer.exceeded) {
        (Ok(()), _) => {
            store::update_header(|h| h.serde_cost = (writer.written, used));
            Ok(writer.written)
        }
        (Err(_), Some(Exceeded::Instructions)) => {
            // Estimate the whole from the last complete dump's rate, or from this partial one.
            let per_byte = if last_bytes > 0 { last_instructions as f64 / last_bytes as f64 } else { used as f64 / writer.written.max(1) as f64 };
            let size = last_bytes.max(writer.written);
            Err(BackupError::TooLargeForOneMessage {
                size,
                estimated_instructions: (size as f64 * per_byte) as u64,
                limit: staging::INSTRUCTION_BUDGET,
            })
        }
        (Err(_), Some(Exceeded::Bytes)) => {
            Err(BackupError::TooLarge { size: writer.written, limit: staging::MAX_STAGED_BYTES })
        }
        (Err(e), None) => Err(BackupError::Serialization { message: e.to_string() }),
    }
}

fn manifest_of(dump: &OpenDump, state_layout: Option<u32>) -> DumpManifest {
    DumpManifest {
        job: dump.key.job,
        state_kind: dump.kind,
        size: dump.size,
        chunk_size: dump.chunk_size,
        taken_at_nanos: dump.taken_at_nanos,
        state_layout,
        content_hashes: Some(crate::restore::CONTENT_HASHES.to_vec()),
    }
}

/// Chunk `index` of `key`'s dump, with its SHA-256 if the dump's vault asked for it, else zeros.
/// (A query: it records nothing.)
pub fn chunk(key: SessionKey, index: u32) -> Result<Chunk, BackupError> {
    let dump = session::dump(&key).ok_or(BackupError::UnknownJob { job: key.job })?;
    let chunks = manifest::chunk_count(dump.size, dump.chunk_size);
    if index >= chunks {
        return Err(BackupError::ChunkOutOfRange { index, chunks });
    }
    let range = manifest::chunk_range(dump.size, dump.chunk_size, index);
    let len = (range.end - range.start) as usize;
    let data = match dump.kind {
        StateKind::StableMemory => pages::read_frozen(range.start, len),
        StateKind::Serde => {
            let mut buf = ReadBuffer::with_capacity(len);
            buf.read(&staging::staging(), range.start, len);
            buf.into_vec()
        }
    };
    let sha256 = if dump.chunk_hashes { Sha256::of(&data) } else { Sha256::default() };
    Ok(Chunk { index, data: serde_bytes::ByteBuf::from(data), sha256 })
}

pub fn end(key: SessionKey) -> Result<(), BackupError> {
    session::end_dump(&key);
    Ok(())
}

#[cfg(test)]
mod tests {
    use candid::Principal;
    use ic_stable_structures::Memory;

    use vault_api::ContentHash;

    use super::*;
    use crate::layout::Session;
    use crate::memory;

    fn key(nonce: Option<u64>, job: u64) -> SessionKey {
        SessionKey { vault: Principal::from_slice(&[9; 10]), nonce, job }
    }

    /// The `DumpBegin` of `key`, from a vault that hashes every chunk itself (`chunk_hashes`
    /// `Some(false)`) or one before BLAKE3 (`None`).
    fn args(key: SessionKey, chunk_hashes: Option<bool>) -> DumpBegin {
        DumpBegin { job: key.job, nonce: key.nonce, chunk_hashes }
    }

    #[test]
    fn only_the_vault_instance_that_opened_a_dump_reads_and_ends_it() {
        memory::memory().grow(1);
        let opened = key(Some(7), 1);
        let manifest = begin(opened, &args(opened, Some(false)), 100, Some(3)).expect("a stable-memory dump opens");
        let reinstalled = key(Some(8), 1);
        let other_vault = SessionKey { vault: Principal::from_slice(&[8; 10]), ..opened };
        for other in [reinstalled, other_vault, key(None, 1), key(Some(7), 2)] {
            assert_eq!(chunk(other, 0), Err(BackupError::UnknownJob { job: other.job }), "{other:?}");
            assert_eq!(end(other), Ok(()));
        }
        assert_eq!(chunk(opened, 0).map(|c| c.data.len() as u64), Ok(WASM_PAGE_SIZE));
        assert_eq!(manifest.state_layout, Some(3));
        assert_eq!(begin(opened, &args(opened, Some(false)), 200, Some(3)), Ok(manifest), "a repeated begin answers the same");
        assert!(matches!(store::header().session, Session::Dumping(OpenDump { touched_at_nanos: 200, taken_at_nanos: 100, .. })));
        end(opened).unwrap();
        assert_eq!(chunk(opened, 0), Err(BackupError::UnknownJob { job: 1 }));
    }

    #[test]
    fn a_chunk_carries_its_sha256_only_for_a_vault_that_asks_for_it() {
        memory::memory().grow(1);
        memory::memory().write(0, b"the app's state");
        for (job, chunk_hashes) in [(1, Some(false)), (2, None), (3, Some(true))] {
            let opened = key(Some(7), job);
            let manifest = begin(opened, &args(opened, chunk_hashes), 100, None).expect("a stable-memory dump opens");
            assert_eq!(manifest.content_hashes, Some(vec![ContentHash::Sha256, ContentHash::Blake3]), "this library verifies both");
            let answered = chunk(opened, 0).expect("chunk 0");
            let expected = if chunk_hashes == Some(false) { Sha256::default() } else { Sha256::of(&answered.data) };
            assert_eq!(answered.sha256, expected, "{chunk_hashes:?}");
            assert_ne!(Sha256::of(&answered.data), Sha256::default());
            end(opened).unwrap();
        }
    }
}
