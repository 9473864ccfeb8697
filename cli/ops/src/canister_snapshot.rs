//! A canister's native snapshots, through the management canister, and the directory layout
//! `icp canister snapshot download` and `upload` use, so a snapshot moves between a canister and
//! a directory icp-cli (or dfx) reads and writes, both ways.
//!
//! ```text
//! DIR/metadata.json       read_canister_snapshot_metadata's result, as JSON (icp-cli's encoding:
//!                         the management types' serde, bytes as arrays of numbers)
//! DIR/wasm_module.bin     the module
//! DIR/wasm_memory.bin     the heap
//! DIR/stable_memory.bin   the stable memory (all three written, empty or not, as dfx reads them)
//! DIR/wasm_chunk_store/   the wasm chunk store: <hex of its hash>.bin a chunk
//! ```
//!
//! Data moves in slices of [`SLICE_BYTES`], the most a read may ask for, in order. A download
//! refuses a directory that holds one already; an upload checks that each file is as long as
//! the metadata says before it sends anything.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::Principal;
use ic_management_canister_types as mgmt;

use vault_api::native::{DATA_PARTS, Part, Span};

use crate::error::OpsError;
use crate::transport::Transport;

/// Bytes a slice of snapshot data holds at most (the IC's `MAX_SLICE_SIZE_BYTES`).
pub const SLICE_BYTES: u64 = 2_000_000;

const METADATA: &str = "metadata.json";
const CHUNK_STORE: &str = "wasm_chunk_store";

/// The file of a part of a snapshot in the directory layout (the header has none).
pub fn part_file(part: Part) -> Option<&'static str> {
    match part {
        Part::WasmModule => Some("wasm_module.bin"),
        Part::WasmMemory => Some("wasm_memory.bin"),
        Part::StableMemory => Some("stable_memory.bin"),
        Part::Header => None,
    }
}

fn file(part: Part) -> &'static str {
    part_file(part).expect("a data part has a file")
}

/// Refuses a directory that holds a snapshot, or part of one, already; makes it.
pub fn prepare_dir(dir: &Path) -> Result<(), OpsError> {
    let taken = [METADATA].into_iter().chain(DATA_PARTS.map(file)).map(|name| dir.join(name)).find(|path| path.exists());
    if let Some(path) = taken {
        return Err(dir_error(&path, "exists already: download into an empty directory"));
    }
    std::fs::create_dir_all(dir.join(CHUNK_STORE)).map_err(|e| dir_error(dir, e))
}

/// Writes the metadata, last: a directory with it holds the whole snapshot.
pub fn write_metadata(dir: &Path, metadata: &mgmt::ReadCanisterSnapshotMetadataResult) -> Result<(), OpsError> {
    let path = dir.join(METADATA);
    let json = serde_json::to_string_pretty(metadata).map_err(|e| dir_error(&path, e))?;
    std::fs::write(&path, json).map_err(|e| dir_error(&path, e))
}

/// The metadata of the snapshot in `dir`, each part's file checked to be as long as it says.
pub fn read_metadata(dir: &Path) -> Result<mgmt::ReadCanisterSnapshotMetadataResult, OpsError> {
    let path = dir.join(METADATA);
    let json = std::fs::read(&path).map_err(|e| dir_error(&path, e))?;
    let metadata: mgmt::ReadCanisterSnapshotMetadataResult = serde_json::from_slice(&json).map_err(|e| dir_error(&path, e))?;
    for part in DATA_PARTS {
        let path = dir.join(file(part));
        let len = std::fs::metadata(&path).map_err(|e| dir_error(&path, e))?.len();
        if len != part.size(&metadata) {
            return Err(dir_error(&path, format!("holds {len} bytes, the metadata says {}", part.size(&metadata))));
        }
    }
    Ok(metadata)
}

/// The read of `size` bytes of data part `part` from `offset`.
fn slice_read(part: Part, offset: u64, size: u64) -> mgmt::SnapshotDataKind {
    Span { part, offset, len: size }.read_kind().expect("a data part is read")
}

/// The upload of bytes of data part `part` at `offset`.
fn slice_upload(part: Part, offset: u64) -> mgmt::SnapshotDataOffset {
    Span { part, offset, len: 0 }.upload_kind().expect("a data part is uploaded")
}

/// Management method `method` about `canister`, its reply decoded.
fn call<A: ArgumentEncoder, R: for<'a> ArgumentDecoder<'a>>(t: &mut dyn Transport, canister: Principal, method: &'static str, args: A) -> Result<R, OpsError> {
    let arg = candid::encode_args(args).map_err(|e| OpsError::Decode { method, message: e.to_string() })?;
    let reply = t.management(canister, method, arg).map_err(|error| OpsError::Call { method, error })?;
    candid::decode_args(&reply).map_err(|e| OpsError::Decode { method, message: e.to_string() })
}

pub(crate) fn dir_error(path: &Path, reason: impl std::fmt::Display) -> OpsError {
    OpsError::SnapshotDir { path: path.to_path_buf(), reason: reason.to_string() }
}

/// A snapshot of `canister`, in place of snapshot `replace` if given.
pub fn take(t: &mut dyn Transport, canister: Principal, replace: Option<Vec<u8>>) -> Result<mgmt::Snapshot, OpsError> {
    let args = mgmt::TakeCanisterSnapshotArgs { canister_id: canister, replace_snapshot: replace, uninstall_code: None, sender_canister_version: None };
    call(t, canister, "take_canister_snapshot", (args,)).map(|(snapshot,)| snapshot)
}

pub fn list(t: &mut dyn Transport, canister: Principal) -> Result<Vec<mgmt::Snapshot>, OpsError> {
    call(t, canister, "list_canister_snapshots", (mgmt::CanisterIdRecord { canister_id: canister },)).map(|(all,)| all)
}

/// Loads snapshot `id` into `canister` (the canister's own, or one of a canister of its subnet).
pub fn load(t: &mut dyn Transport, canister: Principal, id: Vec<u8>) -> Result<(), OpsError> {
    let args = mgmt::LoadCanisterSnapshotArgs { canister_id: canister, snapshot_id: id, sender_canister_version: None };
    call(t, canister, "load_canister_snapshot", (args,))
}

pub fn delete(t: &mut dyn Transport, canister: Principal, id: Vec<u8>) -> Result<(), OpsError> {
    call(t, canister, "delete_canister_snapshot", (mgmt::DeleteCanisterSnapshotArgs { canister_id: canister, snapshot_id: id },))
}

/// Writes snapshot `id` of `canister` into `dir` (created if missing; one that holds a
/// snapshot already is refused); its metadata.
pub fn download(t: &mut dyn Transport, canister: Principal, id: Vec<u8>, dir: &Path) -> Result<mgmt::ReadCanisterSnapshotMetadataResult, OpsError> {
    prepare_dir(dir)?;
    let args = mgmt::ReadCanisterSnapshotMetadataArgs { canister_id: canister, snapshot_id: id.clone() };
    let (metadata,): (mgmt::ReadCanisterSnapshotMetadataResult,) = call(t, canister, "read_canister_snapshot_metadata", (args,))?;
    for part in DATA_PARTS {
        let path = dir.join(file(part));
        let mut file = std::fs::File::create(&path).map_err(|e| dir_error(&path, e))?;
        let size = part.size(&metadata);
        for offset in (0..size).step_by(SLICE_BYTES as usize) {
            let args = mgmt::ReadCanisterSnapshotDataArgs { canister_id: canister, snapshot_id: id.clone(), kind: slice_read(part, offset, SLICE_BYTES.min(size - offset)) };
            let (slice,): (mgmt::ReadCanisterSnapshotDataResult,) = call(t, canister, "read_canister_snapshot_data", (args,))?;
            file.write_all(&slice.chunk).map_err(|e| dir_error(&path, e))?;
        }
        file.sync_all().map_err(|e| dir_error(&path, e))?;
    }
    for chunk in &metadata.wasm_chunk_store {
        let kind = mgmt::SnapshotDataKind::WasmChunk { hash: chunk.hash.clone() };
        let (data,): (mgmt::ReadCanisterSnapshotDataResult,) =
            call(t, canister, "read_canister_snapshot_data", (mgmt::ReadCanisterSnapshotDataArgs { canister_id: canister, snapshot_id: id.clone(), kind },))?;
        let path = chunk_path(dir, &chunk.hash);
        std::fs::write(&path, &data.chunk).map_err(|e| dir_error(&path, e))?;
    }
    write_metadata(dir, &metadata)?;
    Ok(metadata)
}

fn chunk_path(dir: &Path, hash: &[u8]) -> PathBuf {
    dir.join(CHUNK_STORE).join(format!("{}.bin", vault_api::hex(hash)))
}

/// Uploads the snapshot in `dir` as a new snapshot of `canister` (in place of `replace` if
/// given); its id. Each file must be as long as the metadata says.
pub fn upload(t: &mut dyn Transport, canister: Principal, dir: &Path, replace: Option<Vec<u8>>) -> Result<Vec<u8>, OpsError> {
    let metadata = read_metadata(dir)?;
    let args = vault_api::native::upload_args(&metadata, canister, replace).map_err(|reason| dir_error(&dir.join(METADATA), reason))?;
    let chunks: Vec<PathBuf> = metadata.wasm_chunk_store.iter().map(|chunk| chunk_path(dir, &chunk.hash)).collect();
    if let Some(missing) = chunks.iter().find(|path| !path.exists()) {
        return Err(dir_error(missing, "is missing: the metadata names the chunk"));
    }
    let (uploaded,): (mgmt::UploadCanisterSnapshotMetadataResult,) = call(t, canister, "upload_canister_snapshot_metadata", (args,))?;
    let id = uploaded.snapshot_id;
    // An upload that fails part way leaves no half-written snapshot behind (as far as the IC
    // still answers).
    upload_data(t, canister, dir, &metadata, &id, chunks).inspect_err(|_| {
        let _ = delete(t, canister, id.clone());
    })?;
    Ok(id)
}

/// The data of the snapshot in `dir`, `metadata`'s, into uploaded snapshot `id`.
fn upload_data(t: &mut dyn Transport, canister: Principal, dir: &Path, metadata: &mgmt::ReadCanisterSnapshotMetadataResult, id: &[u8], chunks: Vec<PathBuf>) -> Result<(), OpsError> {
    let mut slice = vec![0; SLICE_BYTES as usize];
    for part in DATA_PARTS {
        let path = dir.join(file(part));
        let mut file = std::fs::File::open(&path).map_err(|e| dir_error(&path, e))?;
        let size = part.size(metadata);
        for offset in (0..size).step_by(SLICE_BYTES as usize) {
            let len = SLICE_BYTES.min(size - offset) as usize;
            file.read_exact(&mut slice[..len]).map_err(|e| dir_error(&path, e))?;
            let args = mgmt::UploadCanisterSnapshotDataArgs { canister_id: canister, snapshot_id: id.to_vec(), kind: slice_upload(part, offset), chunk: slice[..len].to_vec() };
            call::<_, ()>(t, canister, "upload_canister_snapshot_data", (args,))?;
        }
    }
    for path in chunks {
        let chunk = std::fs::read(&path).map_err(|e| dir_error(&path, e))?;
        let args = mgmt::UploadCanisterSnapshotDataArgs { canister_id: canister, snapshot_id: id.to_vec(), kind: mgmt::SnapshotDataOffset::WasmChunk, chunk };
        call::<_, ()>(t, canister, "upload_canister_snapshot_data", (args,))?;
    }
    Ok(())
}
