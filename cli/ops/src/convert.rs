//! A native snapshot's file (`.cvsnap`, the vault's image of it: `vault_api::native`) and the
//! directory icp-cli's `canister snapshot download` and `upload` use, one into the other,
//! offline. Both read with bounded memory: one chunk at a time.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use candid::Principal;
use sha2::Digest;
use vault_api::native::{self, DATA_PARTS, Layout, NATIVE_CHUNK_SIZE, Part};
use vault_api::protocol::StateKind;
use vault_api::service::Trigger;
use vault_api::{ContentHash, Sha256};

use crate::canister_snapshot::{dir_error, part_file, prepare_dir, read_metadata, write_metadata};
use crate::error::OpsError;
use crate::file::{FileError, FileReader, FileWriter, Header, Manifest};

/// Writes the native snapshot in file `path` into directory `dir` in icp-cli's layout; its
/// metadata. Every chunk is checked against the file's chunk table as it is read.
pub fn file_to_dir(path: &Path, dir: &Path) -> Result<native::Metadata, OpsError> {
    let mut reader = FileReader::open(path)?;
    let header = reader.manifest().header.clone();
    if header.state_kind != StateKind::Native {
        let reason = format!("holds a {:?} snapshot: only a native snapshot is a canister snapshot", header.state_kind);
        return Err(dir_error(path, reason));
    }
    // The layout is in the last chunk: read where it is, checked when the reader reaches it.
    let last = header.chunks.checked_sub(1).ok_or_else(|| dir_error(path, "holds no chunk"))?;
    let (offset, len) = header.chunk_span(last)?;
    let mut described = vec![0; len];
    let mut file = File::open(path).map_err(|e| dir_error(path, e))?;
    file.seek(SeekFrom::Start(offset)).and_then(|_| file.read_exact(&mut described)).map_err(|e| dir_error(path, e))?;
    let (layout, metadata) = Layout::of_image(header.size, header.chunk_size, &described).map_err(|reason| dir_error(path, reason))?;
    prepare_dir(dir)?;
    let mut parts = Vec::new();
    for part in DATA_PARTS {
        let path = dir.join(part_file(part).expect("a part has a file"));
        parts.push((part, File::create(&path).map_err(|e| dir_error(&path, e))?));
    }
    while let Some(chunk) = reader.next_chunk()? {
        let span = layout.span(chunk.index).ok_or_else(|| dir_error(path, "a chunk past the image"))?;
        let bytes = &chunk.data[..span.len as usize];
        match parts.iter_mut().find(|(part, _)| *part == span.part) {
            Some((_, file)) => file.write_all(bytes).map_err(|e| dir_error(dir, e))?,
            None if bytes == described.as_slice() => {}
            None => return Err(FileError::ChunkMismatch { index: chunk.index }.into()),
        }
    }
    for (_, file) in parts {
        file.sync_all().map_err(|e| dir_error(dir, e))?;
    }
    write_metadata(dir, &metadata)?;
    Ok(metadata)
}

/// Writes the snapshot in directory `dir` (icp-cli's layout) into file `path` as a native
/// snapshot of `app`, which `vault import` then takes; its manifest. An existing file is replaced
/// only if `overwrite`.
pub fn dir_to_file(dir: &Path, app: Principal, path: &Path, overwrite: bool, now_nanos: u64) -> Result<Manifest, OpsError> {
    let metadata = read_metadata(dir)?;
    let described = native::encode_header(&metadata);
    let layout = Layout::new(&metadata, described.len() as u64, NATIVE_CHUNK_SIZE).map_err(|reason| dir_error(dir, reason))?;
    let mut image = Image { dir, layout, described, files: Vec::new() };
    let mut chunk_hashes = Vec::with_capacity(layout.chunks() as usize);
    let mut module = sha2::Sha256::new();
    for index in 0..layout.chunks() {
        let (part, data) = image.chunk(index)?;
        if part == Part::WasmModule {
            module.update(&data[..layout.span(index).map_or(0, |s| s.len as usize)]);
        }
        chunk_hashes.push(ContentHash::Sha256.digest(&data));
    }
    let sha256 = vault_api::manifest_hash(ContentHash::Sha256, layout.size(), NATIVE_CHUNK_SIZE, &chunk_hashes).expect("a chunk table of the image");
    let header = Header {
        app,
        snapshot_id: 0,
        taken_at_nanos: metadata.taken_at_timestamp,
        state_kind: StateKind::Native,
        size: layout.size(),
        chunk_size: NATIVE_CHUNK_SIZE,
        chunks: layout.chunks(),
        sha256,
        module_hash: Some(Sha256(module.finalize().into())),
        trigger: Trigger::Import,
        exported_at_nanos: now_nanos,
        content_hash: ContentHash::Sha256,
    };
    let manifest = Manifest { header, chunk_hashes };
    image.files.clear();
    let mut writer = FileWriter::open(path, manifest.clone(), overwrite)?;
    for index in writer.done..layout.chunks() {
        let (_, data) = image.chunk(index)?;
        writer.write_chunk(index, &data)?;
    }
    writer.finish()?;
    Ok(manifest)
}

/// The image of the snapshot in a directory, read chunk by chunk in order.
struct Image<'a> {
    dir: &'a Path,
    layout: Layout,
    described: Vec<u8>,
    files: Vec<(Part, File)>,
}

impl Image<'_> {
    fn chunk(&mut self, index: u32) -> Result<(Part, Vec<u8>), OpsError> {
        let span = self.layout.span(index).expect("an index of the layout");
        let Some(name) = part_file(span.part) else { return Ok((Part::Header, self.described.clone())) };
        let path = self.dir.join(name);
        if !self.files.iter().any(|(part, _)| *part == span.part) {
            self.files.push((span.part, File::open(&path).map_err(|e| dir_error(&path, e))?));
        }
        let (_, file) = self.files.iter_mut().find(|(part, _)| *part == span.part).expect("opened above");
        let mut bytes = vec![0; span.len as usize];
        file.seek(SeekFrom::Start(span.offset)).and_then(|_| file.read_exact(&mut bytes)).map_err(|e| dir_error(&path, e))?;
        Ok((span.part, self.layout.chunk(index, bytes)))
    }
}
