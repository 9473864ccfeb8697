//! Import: a snapshot file, verified in full, uploaded into an app's history in the vault. The
//! vault hashes every chunk again in the file's content hash and commits the snapshot only when
//! all of them produce the manifest's hash. An interrupted import resumes: the vault reports the chunks it still needs.

use std::collections::BTreeSet;
use std::path::Path;

use candid::Principal;
use serde_bytes::ByteBuf;
use vault_api::service::{ImportArgs, ImportChunk, SnapshotInfo, SnapshotRef};

use crate::error::OpsError;
use crate::file::{self, Chunk, FileReader};
use crate::progress::Progress;
use crate::vault::Vault;

/// What an import did.
#[derive(Debug)]
pub struct Imported {
    pub snapshot: SnapshotInfo,
    /// Bytes uploaded by this import (less than the snapshot's size when it resumed one).
    pub uploaded: u64,
}

/// Verifies `path` with bounded memory, reporting progress.
pub fn verify(path: &Path, progress: &mut dyn Progress) -> Result<file::Manifest, OpsError> {
    progress.begin("verify");
    let mut done = 0;
    let reader = FileReader::open(path)?;
    let total = reader.manifest().header.size;
    let manifest = reader.verify(|bytes| {
        done += bytes;
        progress.position(done, total);
    })?;
    progress.end();
    Ok(manifest)
}

/// Imports the snapshot in `path` into `app`'s history.
pub fn import(vault: &mut Vault, path: &Path, app: Principal, progress: &mut dyn Progress) -> Result<Imported, OpsError> {
    let header = verify(path, progress)?.header;
    let begun = vault.import_begin(ImportArgs {
        app,
        state_kind: header.state_kind,
        size: header.size,
        chunk_size: header.chunk_size,
        sha256: header.sha256,
        taken_at_nanos: header.taken_at_nanos,
        module_hash: header.module_hash,
        // A file has no room for it.
        state_layout: None,
        content_hash: Some(header.content_hash),
    })?;
    let snapshot_id = begun.snapshot_id;
    if begun.chunks != header.chunks {
        return Err(OpsError::Inconsistent { app, snapshot_id, what: format!("{} chunks for a file of {}", begun.chunks, header.chunks) });
    }
    let missing: BTreeSet<u32> = begun.missing.into_iter().collect();
    let mut reader = FileReader::open(path)?;
    let total = (missing.len() as u64).saturating_mul(header.chunk_size);
    let mut uploaded = 0u64;
    progress.begin("import");
    progress.position(0, total);
    while let Some(Chunk { index, sha256, data }) = reader.next_chunk()? {
        if !missing.contains(&index) {
            continue;
        }
        vault.import_chunk(ImportChunk { app, snapshot_id, index, data: ByteBuf::from(data), sha256 })?;
        uploaded += data.len() as u64;
        progress.position(uploaded, total.max(uploaded));
    }
    let snapshot = vault.import_commit(SnapshotRef { app, snapshot_id })?;
    progress.end();
    Ok(Imported { snapshot, uploaded })
}
