//! Restores: staging an image chunk by chunk, and replacing the live state with it in one
//! message once every chunk and the manifest hash check out. Until then the live state is
//! untouched. A stable-memory image is staged into free pages of the app's memory, and its commit
//! switches the page directory (see `pages`): its cost grows with the page table, not the image. Each call is the vault's (the endpoint checked that), for the session its `key`
//! names.

use ic_stable_structures::Memory;
use vault_api::manifest::{self, ChunkFault, ContentHash, ManifestHasher, Sha256};
use vault_api::protocol::{BackupError, CHUNK_SIZE, RestoreBegin, RestoreChunk, RestoreReport, StateKind, WASM_PAGE_SIZE};

use crate::layout::{Committed, OpenRestore, SessionKey};
use crate::staging::{self, Exceeded, StagingReader};
use crate::{memory, pages, serde_state, session, store, upgrade_restore};

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

/// The content hashes this library verifies a restore in (every chunk and the manifest, before a
/// commit); it tells its vault in `BackupInfo` and `DumpManifest`.
pub const CONTENT_HASHES: [ContentHash; 2] = [ContentHash::Sha256, ContentHash::Blake3];

/// Opens `key`'s staging for the image `args` describes at `now`, or keeps the one open for it.
pub fn begin(key: SessionKey, args: RestoreBegin, now: u64) -> Result<(), BackupError> {
    if let Some(open) = session::restore(&key)
        && open.size == args.size
        && open.chunk_size == args.chunk_size
        && open.sha256 == args.sha256
        && open.content_hash == args.content_hash()
        && open.kind == args.state_kind
    {
        session::touch(now);
        return Ok(());
    }
    let app = serde_state::state_kind();
    if app != args.state_kind {
        return Err(BackupError::StateKindMismatch { app, snapshot: args.state_kind });
    }
    if args.chunk_size == 0 || args.chunk_size > CHUNK_SIZE {
        return Err(BackupError::UnsupportedChunkSize { chunk_size: args.chunk_size, max: CHUNK_SIZE });
    }
    if manifest::try_chunk_count(args.size, args.chunk_size).is_none() {
        return Err(BackupError::InvalidImage {
            message: format!("{} bytes in chunks of {} are 2^32 chunks or more", args.size, args.chunk_size),
        });
    }
    let via_upgrade = args.via_upgrade == Some(true);
    match args.state_kind {
        StateKind::Native => return Err(BackupError::StateKindMismatch { app: serde_state::state_kind(), snapshot: StateKind::Native }),
        StateKind::StableMemory if via_upgrade => {
            return Err(BackupError::InvalidImage {
                message: "a stable-memory image commits in one message at any size: only a serde image is restored through an upgrade".into(),
            });
        }
        StateKind::StableMemory => {
            if RELOAD.get().is_none() {
                return Err(BackupError::NoReloadHook);
            }
            if !args.size.is_multiple_of(WASM_PAGE_SIZE) {
                return Err(BackupError::InvalidImage {
                    message: format!("a stable-memory image is whole 64 KiB pages; {} bytes is not", args.size),
                });
            }
        }
        StateKind::Serde => {
            // Loaded in one update, or by an upgrade (`upgrade_restore`).
            // The last dump's rate estimates the image's decoding; by an upgrade, taken at twice
            // (decoding costs more than encoding), beside the save of the state as it is and its
            // load should the image not decode (the last dump's cost, and twice it).
            let (bytes, instructions) = store::header().serde_cost;
            let (limit, budget, decoding) = match via_upgrade {
                false => (staging::MAX_STAGED_BYTES, staging::INSTRUCTION_BUDGET, 1.0),
                true => (upgrade_restore::MAX_IMAGE, upgrade_restore::load_budget(instructions, instructions.saturating_mul(2)), 2.0),
            };
            if args.size > limit {
                return Err(BackupError::TooLarge { size: args.size, limit });
            }
            if bytes > 0 {
                let estimated = (decoding * args.size as f64 * instructions as f64 / bytes as f64) as u64;
                if estimated > budget {
                    return Err(BackupError::TooLargeForOneMessage { size: args.size, estimated_instructions: estimated, limit: budget });
                }
            }
        }
    }
    let restore = OpenRestore {
        key,
        kind: args.state_kind,
        size: args.size,
        chunk_size: args.chunk_size,
        sha256: args.sha256,
        touched_at_nanos: now,
        content_hash: args.content_hash(),
    };
    session::open_restore(restore, || match args.state_kind {
        StateKind::StableMemory => pages::open_staged(args.size).map_err(|room| BackupError::TooLarge { size: args.size, limit: room }),
        StateKind::Native => unreachable!("a library app's state is serde or stable memory"),
        StateKind::Serde if staging::reserve(args.size) => {
            upgrade_restore::supersede("a restore");
            Ok(())
        }
        StateKind::Serde => Err(BackupError::TooLarge { size: args.size, limit: staging::staging().size() * WASM_PAGE_SIZE }),
    })
}

/// Stages a chunk of `key`'s restore at `now`, checked against its digest in the restore's
/// content hash.
pub fn chunk(key: SessionKey, args: RestoreChunk, now: u64) -> Result<(), BackupError> {
    let restore = session::restore(&key).ok_or(BackupError::UnknownJob { job: key.job })?;
    let index = args.index;
    let checked = manifest::check_chunk(restore.content_hash, restore.size, restore.chunk_size, index, &args.data, Some(&args.sha256))
        .map_err(|fault| match fault {
            ChunkFault::OutOfRange { chunks } => BackupError::ChunkOutOfRange { index, chunks },
            ChunkFault::SizeMismatch { expected, actual } => BackupError::ChunkSizeMismatch { index, expected, actual },
            ChunkFault::HashMismatch => BackupError::ChunkHashMismatch { index },
        })?;
    match restore.kind {
        StateKind::StableMemory => pages::write_staged(checked.range.start, &args.data),
        StateKind::Native => unreachable!("a library app's state is serde or stable memory"),
        StateKind::Serde => staging::staging().write(checked.range.start, &args.data),
    }
    store::with_staged(|staged| staged.insert(args.index, args.sha256.0));
    session::touch(now);
    Ok(())
}

/// Commits `key`'s staged image, or answers again the commit it made. `layout`: the snapshot's
/// state layout with the one the app declares now; they must agree where both are known.
/// `via_upgrade`: a serde image is checked and left staged for the next upgrade to load
/// (`upgrade_restore`).
pub fn commit(key: SessionKey, layout: Option<(u32, Option<u32>)>, via_upgrade: bool) -> Result<RestoreReport, BackupError> {
    let job = key.job;
    let restore = match session::restore(&key) {
        Some(restore) => restore,
        None => {
            return match session::committed(&key) {
                Some(c) => Ok(report(job, c.kind, c.size, c.sha256)),
                None => Err(BackupError::UnknownJob { job }),
            };
        }
    };
    if let Some((snapshot, Some(app))) = layout
        && snapshot != app
    {
        return Err(BackupError::StateLayoutMismatch { snapshot, app });
    }
    let chunks = manifest::chunk_count(restore.size, restore.chunk_size);
    let mut hasher = ManifestHasher::new(restore.content_hash, restore.size, restore.chunk_size);
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
            pages::commit_staged(restore.size);
            memory::read_only(reload);
        }
        StateKind::Native => unreachable!("a library app's state is serde or stable memory"),
        StateKind::Serde if via_upgrade => upgrade_restore::commit(key, restore.size, restore.sha256, restore.content_hash, ic_cdk::api::time()),
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
    session::complete_restore(Committed { key, kind: restore.kind, size: restore.size, sha256: restore.sha256 });
    Ok(report(job, restore.kind, restore.size, restore.sha256))
}

/// The report of job `job`'s commit, which put an image of `size` bytes hashing to `sha256` in
/// place, or staged it for the next upgrade (`upgrade_restore` records it for the job).
fn report(job: u64, state_kind: StateKind, size: u64, sha256: Sha256) -> RestoreReport {
    let loads_at_upgrade = upgrade_restore::get().is_some_and(|record| record.key.job == job && record.sha256 == sha256);
    RestoreReport { job, state_kind, size, sha256, loads_at_upgrade: loads_at_upgrade.then_some(true) }
}

pub fn abort(key: SessionKey) -> Result<(), BackupError> {
    upgrade_restore::discard(Some(&key), "its vault aborted the restore");
    session::abort_restore(&key);
    Ok(())
}

#[cfg(test)]
mod tests {
    use candid::Principal;
    use serde_bytes::ByteBuf;

    use super::*;
    use crate::layout::Session;

    const SIZE: u64 = WASM_PAGE_SIZE;
    const CHUNK: u64 = SIZE / 2;

    fn key(nonce: Option<u64>, job: u64) -> SessionKey {
        SessionKey { vault: Principal::from_slice(&[9; 10]), nonce, job }
    }

    fn image() -> Vec<u8> {
        (0..SIZE).map(|i| (i % 251) as u8).collect()
    }

    /// Chunk `index` of the image with its digest in `hash`.
    fn chunk_in(hash: ContentHash, key: SessionKey, index: u32) -> RestoreChunk {
        let data = image()[(index as u64 * CHUNK) as usize..((index as u64 + 1) * CHUNK) as usize].to_vec();
        RestoreChunk { job: key.job, index, sha256: hash.digest(&data), data: ByteBuf::from(data), nonce: key.nonce }
    }

    fn chunk_args(key: SessionKey, index: u32) -> RestoreChunk {
        chunk_in(ContentHash::Sha256, key, index)
    }

    /// The restore of the image in `content_hash` (none: as a vault before BLAKE3 sends it).
    fn begin_in(content_hash: Option<ContentHash>, key: SessionKey) -> RestoreBegin {
        let hash = content_hash.unwrap_or(ContentHash::Sha256);
        let mut hasher = ManifestHasher::new(hash, SIZE, CHUNK);
        for index in 0..2 {
            hasher.push(&chunk_in(hash, key, index).sha256);
        }
        let sha256 = hasher.finish().expect("every chunk pushed");
        RestoreBegin { job: key.job, state_kind: StateKind::StableMemory, size: SIZE, chunk_size: CHUNK, sha256, nonce: key.nonce, content_hash, via_upgrade: None }
    }

    fn begin_args(key: SessionKey) -> RestoreBegin {
        begin_in(None, key)
    }

    #[test]
    fn only_the_vault_instance_that_opened_a_restore_stages_commits_and_reads_its_report() {
        on_restore(|| ());
        let opened = key(Some(7), 1);
        begin(opened, begin_args(opened), 10).expect("the staging opens");
        let others = [key(Some(8), 1), SessionKey { vault: Principal::from_slice(&[8; 10]), ..opened }, key(None, 1), key(Some(7), 2)];
        for other in others {
            assert_eq!(chunk(other, chunk_args(opened, 0), 20), Err(BackupError::UnknownJob { job: other.job }), "{other:?}");
            assert_eq!(commit(other, None, false), Err(BackupError::UnknownJob { job: other.job }), "{other:?}");
            assert_eq!(abort(other), Ok(()));
        }
        chunk(opened, chunk_args(opened, 0), 20).unwrap();
        chunk(opened, chunk_args(opened, 1), 30).unwrap();
        assert!(matches!(store::header().session, Session::Restoring(OpenRestore { touched_at_nanos: 30, .. })));
        let mismatch = commit(opened, Some((1, Some(2))), false);
        assert_eq!(mismatch, Err(BackupError::StateLayoutMismatch { snapshot: 1, app: 2 }), "the app declares another layout now");
        assert!(matches!(store::header().session, Session::Restoring(_)), "still staged");
        let report = commit(opened, Some((1, Some(1))), false).expect("every chunk is staged, the layout is the snapshot's");
        let mut restored = vec![0; SIZE as usize];
        memory::memory().read(0, &mut restored);
        assert_eq!(restored, image());
        assert_eq!(commit(opened, Some((1, Some(2))), false), Ok(report), "a repeated commit answers the same");
        for other in others {
            assert_eq!(commit(other, None, false), Err(BackupError::UnknownJob { job: other.job }), "{other:?}");
        }
    }

    #[test]
    fn an_image_of_2_to_the_32_chunks_is_refused_before_room_is_made_for_it() {
        on_restore(|| ());
        let opened = key(Some(7), 5);
        // 4 GiB in chunks of a byte: each chunk and the commit would count its chunks, and trap.
        let args = RestoreBegin { size: 1 << 32, chunk_size: 1, ..begin_args(opened) };
        assert!(matches!(begin(opened, args, 10), Err(BackupError::InvalidImage { .. })));
        assert_eq!(store::header().session, Session::Idle);
        assert_eq!(store::memory(crate::layout::SLOTS).size(), 0, "no room was made");
    }

    #[test]
    fn a_blake3_restore_checks_every_chunk_and_the_manifest_in_blake3() {
        on_restore(|| ());
        let opened = key(Some(7), 3);
        let blake3 = ContentHash::Blake3;
        begin(opened, begin_in(Some(blake3), opened), 10).expect("the staging opens");
        assert_eq!(chunk(opened, chunk_in(ContentHash::Sha256, opened, 0), 20), Err(BackupError::ChunkHashMismatch { index: 0 }), "a SHA-256 digest");
        chunk(opened, chunk_in(blake3, opened, 0), 20).unwrap();
        chunk(opened, chunk_in(blake3, opened, 1), 30).unwrap();
        let sha256 = begin_in(Some(blake3), opened).sha256;
        assert_eq!(commit(opened, None, false).map(|report| report.sha256), Ok(sha256));
        let mut restored = vec![0; SIZE as usize];
        memory::memory().read(0, &mut restored);
        assert_eq!(restored, image());
    }

    #[test]
    fn a_begin_in_another_content_hash_opens_the_staging_again() {
        on_restore(|| ());
        let opened = key(Some(7), 4);
        begin(opened, begin_args(opened), 10).unwrap();
        chunk(opened, chunk_args(opened, 0), 20).unwrap();
        begin(opened, RestoreBegin { content_hash: Some(ContentHash::Blake3), ..begin_args(opened) }, 30).unwrap();
        assert_eq!(commit(opened, None, false), Err(BackupError::MissingChunks { missing: 2, first: 0 }), "the SHA-256 chunk was dropped");
    }
}
