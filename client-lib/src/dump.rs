//! Snapshots: freezing the state, serving it in chunks, releasing it.

use ic_stable_structures::Memory;
use vault_api::manifest::{self, Sha256};
use vault_api::protocol::{BackupError, CHUNK_SIZE, Chunk, ChunkRequest, DumpBegin, DumpManifest, StateKind, WASM_PAGE_SIZE};

use crate::layout::OpenDump;
use crate::staging::{self, Exceeded, StagingWriter};
use crate::{guards, memory, serde_state, session, store};

pub fn begin(args: DumpBegin) -> Result<DumpManifest, BackupError> {
    guards::caller_is_vault()?;
    if let Some(dump) = session::dump(args.job) {
        return Ok(manifest_of(&dump));
    }
    let dump = session::open_dump(|| {
        let now = ic_cdk::api::time();
        Ok(match serde_state::state_kind() {
            StateKind::StableMemory => OpenDump {
                job: args.job,
                kind: StateKind::StableMemory,
                size: store::header().app_pages * WASM_PAGE_SIZE,
                chunk_size: CHUNK_SIZE,
                taken_at_nanos: now,
                cow_slots: 0,
            },
            StateKind::Serde => {
                let size = serialize()?;
                OpenDump { job: args.job, kind: StateKind::Serde, size, chunk_size: CHUNK_SIZE, taken_at_nanos: now, cow_slots: 0 }
            }
        })
    })?;
    Ok(manifest_of(&dump))
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

fn manifest_of(dump: &OpenDump) -> DumpManifest {
    DumpManifest {
        job: dump.job,
        state_kind: dump.kind,
        size: dump.size,
        chunk_size: dump.chunk_size,
        taken_at_nanos: dump.taken_at_nanos,
    }
}

pub fn chunk(args: ChunkRequest) -> Result<Chunk, BackupError> {
    guards::caller_is_vault()?;
    let dump = session::dump(args.job).ok_or(BackupError::UnknownJob { job: args.job })?;
    let chunks = manifest::chunk_count(dump.size, dump.chunk_size);
    if args.index >= chunks {
        return Err(BackupError::ChunkOutOfRange { index: args.index, chunks });
    }
    let range = manifest::chunk_range(dump.size, dump.chunk_size, args.index);
    let mut data = vec![0u8; (range.end - range.start) as usize];
    match dump.kind {
        StateKind::StableMemory => memory::read_frozen(range.start, &mut data),
        StateKind::Serde => staging::staging().read(range.start, &mut data),
    }
    let sha256 = Sha256::of(&data);
    Ok(Chunk { index: args.index, data: serde_bytes::ByteBuf::from(data), sha256 })
}

pub fn end(job: u64) -> Result<(), BackupError> {
    guards::caller_is_vault()?;
    session::end_dump(job);
    Ok(())
}
