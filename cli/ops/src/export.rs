//! Export: a completed snapshot, read from the vault with query calls, streamed into a file one
//! chunk at a time. Memory use is one chunk whatever the snapshot's size; an interrupted export
//! resumes from the chunks already written; every chunk and the manifest are verified.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use candid::Principal;
use vault_api::service::{ChunkRef, ManifestPage, MAX_MANIFEST_PAGE};

use crate::error::OpsError;
use crate::file::{FileError, FileWriter, Header, Manifest};
use crate::progress::Progress;
use crate::vault::Vault;

/// What an export did.
#[derive(Debug)]
pub struct Exported {
    pub path: PathBuf,
    pub manifest: Manifest,
    /// Chunks found already written by an interrupted export.
    pub resumed_chunks: u32,
    /// Bytes read from the vault by this export.
    pub downloaded: u64,
}

/// Writes snapshot `snapshot_id` of `app` to `path`; a file already there is an error unless
/// `overwrite`.
pub fn export(
    vault: &mut Vault,
    app: Principal,
    snapshot_id: u64,
    path: &Path,
    overwrite: bool,
    progress: &mut dyn Progress,
) -> Result<Exported, OpsError> {
    // Reads are queries, which check the controllers the vault saw last: have it look now.
    vault.refresh_access(app)?;
    let info = vault.snapshot(app, snapshot_id)?;
    let mut chunk_hashes = Vec::with_capacity(info.chunks as usize);
    while (chunk_hashes.len() as u32) < info.chunks {
        let start = chunk_hashes.len() as u32;
        let page = vault.snapshot_manifest(ManifestPage { app, snapshot_id, start, count: MAX_MANIFEST_PAGE.min(info.chunks - start) })?;
        if page.is_empty() {
            return Err(OpsError::Inconsistent { app, snapshot_id, what: format!("an empty chunk table page at {start}") });
        }
        chunk_hashes.extend(page);
    }
    let exported_at = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let manifest = Manifest { header: Header::of(&info, exported_at), chunk_hashes };
    manifest.check().map_err(|_| OpsError::Inconsistent { app, snapshot_id, what: "a chunk table".into() })?;
    let mut writer = FileWriter::open(path, manifest.clone(), overwrite)?;
    let resumed_chunks = writer.done;
    let chunk_size = info.chunk_size;
    let done_bytes = |chunks: u32| u64::from(chunks).saturating_mul(chunk_size).min(info.size);
    progress.begin("export");
    progress.position(done_bytes(resumed_chunks), info.size);
    for index in resumed_chunks..info.chunks {
        let chunk = vault.snapshot_chunk(ChunkRef { app, snapshot_id, index })?;
        if chunk.index != index {
            return Err(OpsError::Inconsistent { app, snapshot_id, what: format!("chunk {} when asked for chunk {index}", chunk.index) });
        }
        writer.write_chunk(index, &chunk.data).map_err(|e| match e {
            FileError::ChunkMismatch { .. } => OpsError::Inconsistent { app, snapshot_id, what: format!("chunk {index}") },
            other => other.into(),
        })?;
        progress.position(done_bytes(index + 1), info.size);
    }
    let path = writer.finish()?;
    progress.end();
    Ok(Exported { path, manifest, resumed_chunks, downloaded: info.size - done_bytes(resumed_chunks) })
}
