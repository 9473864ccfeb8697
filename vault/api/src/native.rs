//! The image of a native canister snapshot, as the vault stores and exports it.
//!
//! Its parts each start on a chunk boundary and are zero padded to whole chunks, so a chunk of a
//! part that did not change is the same chunk in every version, whatever the other parts' sizes
//! did. The snapshot's metadata follows in the last chunk, the only one shorter than the others:
//!
//! ```text
//! | wasm module, 0s | wasm memory (heap), 0s | stable memory, 0s | "CVNS" | 1 | candid metadata |
//! ```
//!
//! The metadata is `read_canister_snapshot_metadata`'s answer, candid encoded: it names each
//! part's size, so the image describes itself and a file of it needs nothing beside it. Zeros
//! padding a part are neither read from nor uploaded to the IC.

use candid::Principal;
use ic_management_canister_types::{ReadCanisterSnapshotMetadataResult, SnapshotDataKind, SnapshotDataOffset, SnapshotMetadataGlobal, UploadCanisterSnapshotMetadataArgs};

use crate::manifest::chunk_range;
use crate::protocol::MAX_IMAGE_BYTES;

/// A native image's chunks: the most a slice of snapshot data read or uploaded carries.
pub const NATIVE_CHUNK_SIZE: u64 = 2_000_000;

/// The header's magic and version.
const MAGIC: &[u8; 4] = b"CVNS";
const VERSION: u8 = 1;

pub type Metadata = ReadCanisterSnapshotMetadataResult;

/// A part of a canister snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    WasmModule,
    WasmMemory,
    StableMemory,
    /// The metadata, in the image's last chunk.
    Header,
}

/// The parts that hold the canister's data, in the image's order.
pub const DATA_PARTS: [Part; 3] = [Part::WasmModule, Part::WasmMemory, Part::StableMemory];

impl Part {
    /// Its bytes, as `metadata` says (the header is the vault's, not the canister's: none).
    pub fn size(self, metadata: &Metadata) -> u64 {
        match self {
            Part::WasmModule => metadata.wasm_module_size,
            Part::WasmMemory => metadata.wasm_memory_size,
            Part::StableMemory => metadata.stable_memory_size,
            Part::Header => 0,
        }
    }
}

/// What a chunk of the image holds: `len` bytes of `part` from `offset`, then zeros to the
/// chunk's end (none for the header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub part: Part,
    pub offset: u64,
    pub len: u64,
}

impl Span {
    /// The slice to read of the IC's snapshot data; `None` for the header.
    pub fn read_kind(&self) -> Option<SnapshotDataKind> {
        let (offset, size) = (self.offset, self.len);
        match self.part {
            Part::WasmModule => Some(SnapshotDataKind::WasmModule { offset, size }),
            Part::WasmMemory => Some(SnapshotDataKind::WasmMemory { offset, size }),
            Part::StableMemory => Some(SnapshotDataKind::StableMemory { offset, size }),
            Part::Header => None,
        }
    }

    /// Where an upload of the span's bytes goes; `None` for the header.
    pub fn upload_kind(&self) -> Option<SnapshotDataOffset> {
        let offset = self.offset;
        match self.part {
            Part::WasmModule => Some(SnapshotDataOffset::WasmModule { offset }),
            Part::WasmMemory => Some(SnapshotDataOffset::WasmMemory { offset }),
            Part::StableMemory => Some(SnapshotDataOffset::StableMemory { offset }),
            Part::Header => None,
        }
    }
}

/// The header: magic, version, the metadata.
pub fn encode_header(metadata: &Metadata) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    bytes.push(VERSION);
    bytes.extend(candid::encode_one(metadata).expect("snapshot metadata encodes"));
    bytes
}

/// The metadata of a header; bytes from anyone (a file, a stored chunk) are decoded within quotas.
pub fn decode_header(bytes: &[u8]) -> Result<Metadata, String> {
    let Some(rest) = bytes.strip_prefix(MAGIC) else { return Err("not a native snapshot's header (no CVNS magic)".into()) };
    match rest.split_first() {
        Some((&VERSION, candid)) => crate::decode::one(candid).map_err(|e| format!("the native snapshot's metadata does not decode: {e}")),
        Some((version, _)) => Err(format!("a native snapshot header of version {version}; this build reads version {VERSION}")),
        None => Err("a native snapshot header with no version".into()),
    }
}

/// Where each part of a native image is, in chunks of `chunk_size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub chunk_size: u64,
    pub wasm_module: u64,
    pub wasm_memory: u64,
    pub stable_memory: u64,
    pub header: u64,
}

impl Layout {
    /// The layout of an image of `metadata` whose header is `header` bytes long. Refused: a
    /// snapshot with a wasm chunk store (not captured), a header longer than a chunk, an image
    /// larger than a snapshot holds.
    pub fn new(metadata: &Metadata, header: u64, chunk_size: u64) -> Result<Layout, String> {
        if !metadata.wasm_chunk_store.is_empty() {
            return Err(format!(
                "the canister's wasm chunk store holds {} chunks, which native snapshots do not capture yet: clear it (clear_chunk_store) first",
                metadata.wasm_chunk_store.len()
            ));
        }
        if chunk_size == 0 || header == 0 || header > chunk_size {
            return Err(format!("a header of {header} bytes in chunks of {chunk_size}"));
        }
        let layout = Layout {
            chunk_size,
            wasm_module: metadata.wasm_module_size,
            wasm_memory: metadata.wasm_memory_size,
            stable_memory: metadata.stable_memory_size,
            header,
        };
        match layout.checked_size() {
            Some(size) if size <= MAX_IMAGE_BYTES => Ok(layout),
            _ => Err(format!(
                "a canister of {} + {} + {} bytes is larger than a snapshot holds ({MAX_IMAGE_BYTES} bytes)",
                layout.wasm_module, layout.wasm_memory, layout.stable_memory
            )),
        }
    }

    /// The layout of the image of `size` bytes in chunks of `chunk_size` whose last chunk is
    /// `last`, with the metadata it holds: refused unless the metadata's sizes make that image.
    pub fn of_image(size: u64, chunk_size: u64, last: &[u8]) -> Result<(Layout, Metadata), String> {
        let metadata = decode_header(last)?;
        let layout = Layout::new(&metadata, last.len() as u64, chunk_size)?;
        if layout.size() != size {
            return Err(format!("the header describes an image of {} bytes, not {size}", layout.size()));
        }
        Ok((layout, metadata))
    }

    fn part_chunks(&self) -> [(Part, u64); 3] {
        let len = |part| match part {
            Part::WasmModule => self.wasm_module,
            Part::WasmMemory => self.wasm_memory,
            Part::StableMemory => self.stable_memory,
            Part::Header => self.header,
        };
        DATA_PARTS.map(|part| (part, len(part)))
    }

    fn checked_size(&self) -> Option<u64> {
        self.part_chunks().iter().try_fold(self.header, |size, (_, len)| len.div_ceil(self.chunk_size).checked_mul(self.chunk_size)?.checked_add(size))
    }

    /// The image's bytes (checked by [`Layout::new`]).
    pub fn size(&self) -> u64 {
        self.checked_size().expect("a layout's size was checked")
    }

    pub fn chunks(&self) -> u32 {
        crate::manifest::chunk_count(self.size(), self.chunk_size)
    }

    /// The index of the header's chunk: the last.
    pub fn header_chunk(&self) -> u32 {
        self.chunks() - 1
    }

    /// What chunk `index` holds; `None` past the image.
    pub fn span(&self, index: u32) -> Option<Span> {
        let mut first = 0u64;
        for (part, len) in self.part_chunks() {
            let chunks = len.div_ceil(self.chunk_size);
            if u64::from(index) < first + chunks {
                let offset = (u64::from(index) - first) * self.chunk_size;
                return Some(Span { part, offset, len: (len - offset).min(self.chunk_size) });
            }
            first += chunks;
        }
        (u64::from(index) == first).then_some(Span { part: Part::Header, offset: 0, len: self.header })
    }

    /// Chunk `index` of the image, from the `bytes` of its span.
    pub fn chunk(&self, index: u32, mut bytes: Vec<u8>) -> Vec<u8> {
        let range = chunk_range(self.size(), self.chunk_size, index);
        bytes.resize((range.end - range.start) as usize, 0);
        bytes
    }
}

/// The upload of `metadata` onto `canister`'s snapshots, replacing `replace` if given. A global
/// the metadata could not tell (a type the IC added since) makes it impossible.
pub fn upload_args(metadata: &Metadata, canister: Principal, replace: Option<Vec<u8>>) -> Result<UploadCanisterSnapshotMetadataArgs, String> {
    let globals: Option<Vec<SnapshotMetadataGlobal>> = metadata.globals.iter().cloned().collect();
    let globals = globals.ok_or("the snapshot has a global of a type this build does not know: it cannot be uploaded")?;
    Ok(UploadCanisterSnapshotMetadataArgs {
        canister_id: canister,
        replace_snapshot: replace,
        wasm_module_size: metadata.wasm_module_size,
        globals,
        wasm_memory_size: metadata.wasm_memory_size,
        stable_memory_size: metadata.stable_memory_size,
        certified_data: metadata.certified_data.clone(),
        global_timer: metadata.global_timer.clone(),
        on_low_wasm_memory_hook_status: metadata.on_low_wasm_memory_hook_status.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(module: u64, heap: u64, stable: u64) -> Metadata {
        Metadata {
            source: None,
            taken_at_timestamp: 7,
            wasm_module_size: module,
            globals: vec![Some(SnapshotMetadataGlobal::I32(3)), Some(SnapshotMetadataGlobal::I64(-1))],
            wasm_memory_size: heap,
            stable_memory_size: stable,
            wasm_chunk_store: vec![],
            canister_version: 4,
            certified_data: vec![1, 2, 3],
            global_timer: None,
            on_low_wasm_memory_hook_status: None,
        }
    }

    #[test]
    fn each_part_starts_on_a_chunk_and_the_header_ends_the_image() {
        let meta = metadata(10, 2 * 65536, 0);
        let header = encode_header(&meta);
        let layout = Layout::new(&meta, header.len() as u64, 100_000).unwrap();
        assert_eq!(layout.size(), 100_000 + 200_000 + header.len() as u64);
        assert_eq!(layout.chunks(), 4);
        assert_eq!(layout.span(0), Some(Span { part: Part::WasmModule, offset: 0, len: 10 }));
        assert_eq!(layout.span(1), Some(Span { part: Part::WasmMemory, offset: 0, len: 100_000 }));
        assert_eq!(layout.span(2), Some(Span { part: Part::WasmMemory, offset: 100_000, len: 31_072 }));
        assert_eq!(layout.span(3), Some(Span { part: Part::Header, offset: 0, len: header.len() as u64 }));
        assert_eq!(layout.span(4), None);
        assert_eq!(layout.header_chunk(), 3);
        assert_eq!(layout.chunk(0, vec![9; 10]).len(), 100_000, "a part's last chunk is zero padded");
        assert_eq!(layout.chunk(3, header.clone()), header, "the header is the short last chunk");
        let _ = &meta;
        let (read, decoded) = Layout::of_image(layout.size(), 100_000, &header).unwrap();
        assert_eq!((read, encode_header(&decoded)), (layout, header));
    }

    #[test]
    fn a_header_that_is_not_one_or_does_not_make_its_image_is_refused() {
        let meta = metadata(10, 0, 0);
        let header = encode_header(&meta);
        assert!(decode_header(b"CVLT\x01").unwrap_err().contains("magic"));
        let mut newer = header.clone();
        newer[4] = 2;
        assert!(decode_header(&newer).unwrap_err().contains("version 2"));
        assert!(decode_header(&header[..header.len() - 1]).is_err());
        assert!(Layout::of_image(100_000 + header.len() as u64 + 1, 100_000, &header).unwrap_err().contains("not"));
        let huge = metadata(u64::MAX, u64::MAX, 1);
        assert!(Layout::new(&huge, 10, 100_000).unwrap_err().contains("larger"));
        let chunked = Metadata { wasm_chunk_store: vec![ic_management_canister_types::ChunkHash { hash: vec![0; 32] }], ..meta.clone() };
        assert!(Layout::new(&chunked, 10, 100_000).unwrap_err().contains("chunk store"));
        assert!(Layout::new(&meta, 100_001, 100_000).is_err(), "a header longer than a chunk");
    }

    #[test]
    fn the_upload_carries_the_metadata_and_refuses_an_unknown_global() {
        let meta = metadata(10, 65536, 65536);
        let args = upload_args(&meta, Principal::anonymous(), None).unwrap();
        assert_eq!((args.wasm_module_size, args.globals.len(), args.certified_data), (10, 2, vec![1, 2, 3]));
        let unknown = Metadata { globals: vec![None], ..meta };
        assert!(upload_args(&unknown, Principal::anonymous(), None).is_err());
    }
}
