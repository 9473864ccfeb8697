//! Restores: staging an image chunk by chunk, and replacing the live state with it in one
//! message once every chunk and the manifest hash check out. Until then the live state is
//! untouched.

use ic_stable_structures::Memory;
use vault_api::manifest::{self, ChunkFault, ManifestHasher, Sha256};
use vault_api::protocol::{BackupError, CHUNK_SIZE, RestoreBegin, RestoreChunk, RestoreReport, StateKind, WASM_PAGE_SIZE};

use crate::layout::{Committed, OpenRestore};
use crate::staging::{self, Exceeded, StagingReader};
use crate::{guards, memory, serde_state, session, store};

thread_local! {
    static RELOAD: std::cell::Cell<Option<fn()>> = const { std::cell::Cell::new(None) };
}

/// Registers the function that rebuilds the app's stable structures from its memory; the
/// library calls it right after a restore replaced the memory, in the same message. Structures
/// such as `MemoryManager`, `StableCell` and `StableBTreeMap` keep parts of their state on the
/// heap, so without it they would not see the restored memory. Call it in `init` and
/// `post_upgrade`. Reloading must only read (a structure's `init` writes when its memory is
/// empty, so create every structure in the app's `init`); a write traps the commit. It opens the
/// library's memory first, so a layout this build cannot read traps the upgrade.
pub fn on_restore(reload: fn()) {
    store::open();
    RELOAD.set(Some(reload));
}

/// The largest stable-memory image a commit can put in place: its copy must stay under the
/// 2 GiB of stable memory one message may write.
pub const MAX_STABLE_RESTORE_BYTES: u64 = staging::MAX_STAGED_BYTES;

pub fn begin(args: RestoreBegin) -> Result<(), BackupError> {
    guards::caller_is_vault()?;
    if let Some(open) = session::restore(args.job)
        && open.size == args.size
        && open.chunk_size == args.chunk_size
        && open.sha256 == args.sha256
        && open.kind == args.state_kind
    {
        return Ok(());
    }
    let app = serde_state::state_kind();
    if app != args.state_kind {
        return Err(BackupError::StateKindMismatch { app, snapshot: args.state_kind });
    }
    if args.chunk_size == 0 || args.chunk_size > CHUNK_SIZE {
        return Err(BackupError::UnsupportedChunkSize { chunk_size: args.chunk_size, max: CHUNK_SIZE });
    }
    match args.state_kind {
        StateKind::StableMemory => {
            if RELOAD.get().is_none() {
                return Err(BackupError::NoReloadHook);
            }
            if !args.size.is_multiple_of(WASM_PAGE_SIZE) {
                return Err(BackupError::InvalidImage {
                    message: format!("a stable-memory image is whole 64 KiB pages; {} bytes is not", args.size),
                });
            }
            if args.size > MAX_STABLE_RESTORE_BYTES {
                return Err(BackupError::TooLarge { size: args.size, limit: MAX_STABLE_RESTORE_BYTES });
            }
        }
        StateKind::Serde => {
            if args.size > staging::MAX_STAGED_BYTES {
                return Err(BackupError::TooLarge { size: args.size, limit: staging::MAX_STAGED_BYTES });
            }
            let (bytes, instructions) = store::header().serde_cost;
            if bytes > 0 {
                let estimated = (args.size as f64 * instructions as f64 / bytes as f64) as u64;
                if estimated > staging::INSTRUCTION_BUDGET {
                    return Err(BackupError::TooLargeForOneMessage {
                        size: args.size,
                        estimated_instructions: estimated,
                        limit: staging::INSTRUCTION_BUDGET,
                    });
                }
            }
        }
    }
    if !staging::reserve(args.size) {
        return Err(BackupError::TooLarge { size: args.size, limit: staging::staging().size() * WASM_PAGE_SIZE });
    }
    session::open_restore(OpenRestore {
        job: args.job,
        kind: args.state_kind,
        size: args.size,
        chunk_size: args.chunk_size,
        sha256: args.sha256,
    });
    Ok(())
}

fn open(job: u64) -> Result<OpenRestore, BackupError> {
    session::restore(job).ok_or(BackupError::UnknownJob { job })
}

pub fn chunk(args: RestoreChunk) -> Result<(), BackupError> {
    guards::caller_is_vault()?;
    let restore = open(args.job)?;
    let index = args.index;
    let range = manifest::check_chunk(restore.size, restore.chunk_size, index, args.data.len() as u64, &args.sha256, || Sha256::of(&args.data))
        .map_err(|fault| match fault {
            ChunkFault::OutOfRange { chunks } => BackupError::ChunkOutOfRange { index, chunks },
            ChunkFault::SizeMismatch { expected, actual } => BackupError::ChunkSizeMismatch { index, expected, actual },
            ChunkFault::HashMismatch => BackupError::ChunkHashMismatch { index },
        })?;
    staging::staging().write(range.start, &args.data);
    store::with_staged(|staged| staged.insert(args.index, args.sha256.0));
    Ok(())
}

pub fn commit(job: u64) -> Result<RestoreReport, BackupError> {
    guards::caller_is_vault()?;
    let restore = match session::restore(job) {
        Some(restore) => restore,
        None => {
            return match store::header().committed.filter(|c| c.job == job) {
                Some(c) => Ok(RestoreReport { job, state_kind: c.kind, size: c.size, sha256: c.sha256 }),
                None => Err(BackupError::UnknownJob { job }),
            };
        }
    };
    let chunks = manifest::chunk_count(restore.size, restore.chunk_size);
    let mut hasher = ManifestHasher::new(restore.size, restore.chunk_size);
    let mut missing = 0u32;
    let mut first_missing = None;
    store::with_staged(|staged| {
        for index in 0..chunks {
            match staged.get(&index) {
                Some(hash) => hasher.push(&Sha256(hash)),
                None => {
                    missing += 1;
                    first_missing.get_or_insert(index);
                }
            }
        }
    });
    if let Some(first) = first_missing {
        return Err(BackupError::MissingChunks { missing, first });
    }
    let actual = hasher.finish().expect("every chunk pushed");
    if actual != restore.sha256 {
        return Err(BackupError::SnapshotHashMismatch { expected: restore.sha256, actual });
    }
    match restore.kind {
        StateKind::StableMemory => {
            let Some(reload) = RELOAD.get() else { return Err(BackupError::NoReloadHook) };
            let staging = staging::staging();
            memory::replace_contents(restore.size, |at, buf| staging.read(at, buf));
            memory::read_only(reload);
        }
        StateKind::Serde => {
            if !serde_state::registered() {
                return Err(BackupError::Deserialization { message: "the app registered no serde state".into() });
            }
            let mut reader = StagingReader::new(restore.size);
            if let Err(e) = serde_state::load(&mut reader) {
                return Err(match reader.exceeded {
                    Some(Exceeded::Instructions) => BackupError::TooLargeForOneMessage {
                        size: restore.size,
                        estimated_instructions: staging::INSTRUCTION_BUDGET * restore.size / reader.read.max(1),
                        limit: staging::INSTRUCTION_BUDGET,
                    },
                    _ => BackupError::Deserialization { message: e.to_string() },
                });
            }
        }
    }
    session::complete_restore(Committed { job, kind: restore.kind, size: restore.size, sha256: restore.sha256 });
    Ok(RestoreReport { job, state_kind: restore.kind, size: restore.size, sha256: restore.sha256 })
}

pub fn abort(job: u64) -> Result<(), BackupError> {
    guards::caller_is_vault()?;
    session::abort_restore(job);
    Ok(())
}
