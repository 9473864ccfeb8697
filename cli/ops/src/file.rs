//! The snapshot file: one snapshot, self-describing and verifiable chunk by chunk.
//!
//! ```text
//! offset      size        field
//! 0           8           magic "CVLTSNAP"
//! 8           2           format version (1), u16 LE
//! 10          2           reserved, 0
//! 12          4           header length H, u32 LE (from offset 16)
//! 16          H           header (below)
//! 16+H        32          SHA-256 of bytes 0 .. 16+H (the header checksum)
//! 48+H        32 * n      chunk table: SHA-256 of each of the n chunks, in order
//! 48+H+32n    size        chunk data, the chunks back to back
//! ```
//!
//! Header, version 1 (all integers LE; principals are 30 bytes: length, then bytes padded):
//!
//! ```text
//! app (30) | snapshot id u64 | taken at u64 (ns) | state kind u8 (1 serde, 2 stable memory)
//! | size u64 | chunk size u64 | chunks u32 | snapshot SHA-256 (32) | module hash present u8
//! | module hash (32) | trigger u8 (0 scheduled, 1 manual, 2 import) | exported at u64 (ns)
//! ```
//!
//! The snapshot SHA-256 is the manifest hash (`vault_api::manifest`): it covers the size, the
//! chunk size and the chunk table, and the table covers the data, so a file verifies without
//! trusting anything in it but its own structure. The header checksum covers the rest of the
//! header. A file is written to `<path>.part` and renamed once complete; an interrupted export
//! resumes from the `.part` file's last chunk that verifies.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use candid::Principal;
use sha2::{Digest, Sha256 as Hasher};
use vault_api::codec::{Reader, Writer, state_kind_byte, state_kind_of, trigger_byte, trigger_of};
use vault_api::manifest::{ManifestHasher, Sha256, chunk_count, chunk_range};
use vault_api::protocol::StateKind;
use vault_api::service::{SnapshotInfo, Trigger};

const MAGIC: &[u8; 8] = b"CVLTSNAP";
const VERSION: u16 = 1;
const HEADER_BYTES: u32 = 30 + 8 + 8 + 1 + 8 + 8 + 4 + 32 + 1 + 32 + 1 + 8;
const PREFIX_BYTES: u64 = 16;

/// What a snapshot file says about its snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub app: Principal,
    pub snapshot_id: u64,
    pub taken_at_nanos: u64,
    pub state_kind: StateKind,
    pub size: u64,
    pub chunk_size: u64,
    pub chunks: u32,
    pub sha256: Sha256,
    pub module_hash: Option<Sha256>,
    pub trigger: Trigger,
    pub exported_at_nanos: u64,
}

impl Header {
    pub fn of(info: &SnapshotInfo, exported_at_nanos: u64) -> Self {
        Header {
            app: info.app,
            snapshot_id: info.id,
            taken_at_nanos: info.taken_at_nanos,
            state_kind: info.state_kind,
            size: info.size,
            chunk_size: info.chunk_size,
            chunks: info.chunks,
            sha256: info.sha256,
            module_hash: info.module_hash,
            trigger: info.trigger,
            exported_at_nanos,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.principal(&self.app)
            .u64(self.snapshot_id)
            .u64(self.taken_at_nanos)
            .u8(state_kind_byte(self.state_kind))
            .u64(self.size)
            .u64(self.chunk_size)
            .u32(self.chunks)
            .sha256(&self.sha256)
            .u8(self.module_hash.is_some() as u8)
            .sha256(&self.module_hash.unwrap_or_default())
            .u8(trigger_byte(self.trigger))
            .u64(self.exported_at_nanos);
        w.into_vec()
    }

    fn decode(bytes: &[u8]) -> Result<Self, FileError> {
        let bad = |what: &str| FileError::Malformed(what.to_string());
        if bytes.len() != HEADER_BYTES as usize {
            return Err(bad("the header has the wrong length"));
        }
        let mut r = Reader::new(bytes);
        let app = r.opt_principal().ok_or_else(|| bad("the header names no app"))?;
        let snapshot_id = r.u64();
        let taken_at_nanos = r.u64();
        let state_kind = state_kind_of(r.u8()).ok_or_else(|| bad("unknown state kind"))?;
        let (size, chunk_size, chunks, sha256) = (r.u64(), r.u64(), r.u32(), r.sha256());
        let has_module = r.u8();
        let module = r.sha256();
        let trigger = trigger_of(r.u8()).ok_or_else(|| bad("unknown trigger"))?;
        let exported_at_nanos = r.u64();
        if chunk_size == 0 || chunk_count(size, chunk_size) != chunks {
            return Err(bad("the chunk count does not match the size and chunk size"));
        }
        Ok(Header {
            app,
            snapshot_id,
            taken_at_nanos,
            state_kind,
            size,
            chunk_size,
            chunks,
            sha256,
            module_hash: (has_module == 1).then_some(module),
            trigger,
            exported_at_nanos,
        })
    }

    /// Bytes before the chunk data.
    pub fn data_offset(&self) -> u64 {
        PREFIX_BYTES + HEADER_BYTES as u64 + 32 + 32 * self.chunks as u64
    }

    /// The file's total length.
    pub fn file_len(&self) -> u64 {
        self.data_offset() + self.size
    }
}

/// Why a file is not a valid snapshot.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("not a canister-vault snapshot file")]
    NotASnapshot,
    #[error("snapshot file format version {0} is not supported (this build reads version 1)")]
    UnsupportedVersion(u16),
    #[error("malformed snapshot file: {0}")]
    Malformed(String),
    #[error("the header checksum does not match: the header was altered")]
    HeaderChecksum,
    #[error("the chunk table does not hash to the snapshot's SHA-256 {expected}: it was altered")]
    ManifestMismatch { expected: Sha256 },
    #[error("chunk {index} does not match its SHA-256: the data was altered")]
    ChunkMismatch { index: u32 },
    #[error("the file has {actual} bytes; a complete snapshot file has {expected}")]
    Length { expected: u64, actual: u64 },
}

/// The header and the chunk table of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub header: Header,
    pub chunk_hashes: Vec<Sha256>,
}

impl Manifest {
    /// Checks that the chunk table produces the header's snapshot SHA-256.
    pub fn check(&self) -> Result<(), FileError> {
        let computed = vault_api::manifest_hash(self.header.size, self.header.chunk_size, &self.chunk_hashes);
        if computed != Some(self.header.sha256) {
            return Err(FileError::ManifestMismatch { expected: self.header.sha256 });
        }
        Ok(())
    }

    fn prefix_bytes(&self) -> Vec<u8> {
        let header = self.header.encode();
        let mut out = Vec::with_capacity(self.header.data_offset() as usize);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        let checksum = Hasher::digest(&out);
        out.extend_from_slice(&checksum);
        for hash in &self.chunk_hashes {
            out.extend_from_slice(&hash.0);
        }
        out
    }

    /// Reads and checks the header and chunk table of `reader`.
    pub fn read(reader: &mut impl Read) -> Result<Self, FileError> {
        let mut prefix = [0u8; PREFIX_BYTES as usize];
        reader.read_exact(&mut prefix).map_err(|_| FileError::NotASnapshot)?;
        if &prefix[..8] != MAGIC {
            return Err(FileError::NotASnapshot);
        }
        let version = u16::from_le_bytes([prefix[8], prefix[9]]);
        if version != VERSION {
            return Err(FileError::UnsupportedVersion(version));
        }
        let len = u32::from_le_bytes(prefix[12..16].try_into().expect("4 bytes"));
        if len != HEADER_BYTES {
            return Err(FileError::Malformed(format!("a version 1 header has {HEADER_BYTES} bytes, not {len}")));
        }
        let mut header = vec![0u8; len as usize];
        reader.read_exact(&mut header)?;
        let mut checksum = [0u8; 32];
        reader.read_exact(&mut checksum)?;
        let mut hasher = Hasher::new();
        hasher.update(prefix);
        hasher.update(&header);
        if hasher.finalize().as_slice() != checksum {
            return Err(FileError::HeaderChecksum);
        }
        let header = Header::decode(&header)?;
        let mut table = vec![0u8; 32 * header.chunks as usize];
        reader.read_exact(&mut table)?;
        let chunk_hashes = table.chunks(32).map(|h| Sha256(h.try_into().expect("32 bytes"))).collect();
        let manifest = Manifest { header, chunk_hashes };
        manifest.check()?;
        Ok(manifest)
    }
}

/// Writes a snapshot file chunk by chunk into `<path>.part`, resuming an interrupted one.
pub struct FileWriter {
    manifest: Manifest,
    file: File,
    part: PathBuf,
    path: PathBuf,
    /// Chunks already in the file and verified.
    pub done: u32,
}

impl FileWriter {
    pub fn part_path(path: &Path) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(".part");
        PathBuf::from(name)
    }

    /// Opens `<path>.part` for `manifest`: resumes it if it holds the same snapshot (keeping
    /// the chunks that verify, up to the first that does not), else starts it over.
    pub fn open(path: &Path, manifest: Manifest) -> Result<Self, FileError> {
        manifest.check()?;
        let part = Self::part_path(path);
        let mut done = 0;
        let resumable = File::open(&part).ok().and_then(|f| Manifest::read(&mut BufReader::new(f)).ok()).is_some_and(|m| {
            m.header.sha256 == manifest.header.sha256 && m.header.app == manifest.header.app && m.header.snapshot_id == manifest.header.snapshot_id
        });
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(!resumable).open(&part)?;
        if resumable {
            done = verified_prefix(&mut file, &manifest)?;
        } else {
            file.write_all(&manifest.prefix_bytes())?;
        }
        Ok(FileWriter { manifest, file, part, path: path.to_path_buf(), done })
    }

    /// Appends chunk `index`, which must be the next one and match its SHA-256.
    pub fn write_chunk(&mut self, index: u32, data: &[u8]) -> Result<(), FileError> {
        assert_eq!(index, self.done, "chunks are written in order");
        if Sha256::of(data) != self.manifest.chunk_hashes[index as usize] {
            return Err(FileError::ChunkMismatch { index });
        }
        let h = &self.manifest.header;
        let range = chunk_range(h.size, h.chunk_size, index);
        if data.len() as u64 != range.end - range.start {
            return Err(FileError::ChunkMismatch { index });
        }
        self.file.seek(SeekFrom::Start(h.data_offset() + range.start))?;
        self.file.write_all(data)?;
        self.done += 1;
        Ok(())
    }

    /// Flushes the file to disk and moves it to its final name.
    pub fn finish(self) -> Result<PathBuf, FileError> {
        assert_eq!(self.done, self.manifest.header.chunks, "every chunk written");
        self.file.set_len(self.manifest.header.file_len())?;
        self.file.sync_all()?;
        std::fs::rename(&self.part, &self.path)?;
        Ok(self.path)
    }
}

/// Chunks at the start of `file`'s data that match `manifest`, read one at a time.
fn verified_prefix(file: &mut File, manifest: &Manifest) -> Result<u32, FileError> {
    let h = &manifest.header;
    let mut buf = vec![0u8; h.chunk_size as usize];
    for index in 0..h.chunks {
        let range = chunk_range(h.size, h.chunk_size, index);
        let chunk = &mut buf[..(range.end - range.start) as usize];
        file.seek(SeekFrom::Start(h.data_offset() + range.start))?;
        if file.read_exact(chunk).is_err() || Sha256::of(chunk) != manifest.chunk_hashes[index as usize] {
            return Ok(index);
        }
    }
    Ok(h.chunks)
}

/// Reads a snapshot file chunk by chunk, checking each against the chunk table.
pub struct FileReader {
    pub manifest: Manifest,
    reader: BufReader<File>,
    next: u32,
    buf: Vec<u8>,
}

impl FileReader {
    pub fn open(path: &Path) -> Result<Self, FileError> {
        let file = File::open(path)?;
        let actual = file.metadata()?.len();
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let manifest = Manifest::read(&mut reader)?;
        let expected = manifest.header.file_len();
        if actual != expected {
            return Err(FileError::Length { expected, actual });
        }
        let buf = vec![0u8; manifest.header.chunk_size as usize];
        Ok(FileReader { manifest, reader, next: 0, buf })
    }

    /// The next chunk, verified, or `None` after the last.
    pub fn next_chunk(&mut self) -> Result<Option<(u32, &[u8])>, FileError> {
        let h = &self.manifest.header;
        if self.next >= h.chunks {
            return Ok(None);
        }
        let index = self.next;
        let range = chunk_range(h.size, h.chunk_size, index);
        let chunk = &mut self.buf[..(range.end - range.start) as usize];
        self.reader.read_exact(chunk)?;
        if Sha256::of(chunk) != self.manifest.chunk_hashes[index as usize] {
            return Err(FileError::ChunkMismatch { index });
        }
        self.next += 1;
        Ok(Some((index, chunk)))
    }
}

/// Verifies a whole file with bounded memory; returns its manifest.
pub fn verify(path: &Path, mut progress: impl FnMut(u64)) -> Result<Manifest, FileError> {
    let mut reader = FileReader::open(path)?;
    while let Some((_, chunk)) = reader.next_chunk()? {
        progress(chunk.len() as u64);
    }
    Ok(reader.manifest)
}

/// The manifest hash of an image, for building a manifest from data at hand.
pub fn manifest_of(image: &[u8], chunk_size: u64) -> (Vec<Sha256>, Sha256) {
    let hashes: Vec<Sha256> = image.chunks(chunk_size as usize).map(Sha256::of).collect();
    let mut hasher = ManifestHasher::new(image.len() as u64, chunk_size);
    hashes.iter().for_each(|h| hasher.push(h));
    (hashes, hasher.finish().expect("every chunk hashed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(image: &[u8], chunk_size: u64) -> Manifest {
        let (chunk_hashes, sha256) = manifest_of(image, chunk_size);
        Manifest {
            header: Header {
                app: Principal::from_slice(&[1; 10]),
                snapshot_id: 7,
                taken_at_nanos: 8,
                state_kind: StateKind::StableMemory,
                size: image.len() as u64,
                chunk_size,
                chunks: chunk_hashes.len() as u32,
                sha256,
                module_hash: Some(Sha256([9; 32])),
                trigger: Trigger::Scheduled,
                exported_at_nanos: 10,
            },
            chunk_hashes,
        }
    }

    fn write(dir: &Path, image: &[u8], chunk_size: u64) -> PathBuf {
        let path = dir.join("snap.cvsnap");
        let mut w = FileWriter::open(&path, sample(image, chunk_size)).unwrap();
        for (i, chunk) in image.chunks(chunk_size as usize).enumerate() {
            w.write_chunk(i as u32, chunk).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn golden_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), b"abcdefghij", 4);
        let hex = vault_api::hex(&std::fs::read(&path).unwrap());
        assert_eq!(hex, include_str!("../golden/snapshot_v1.hex").trim());
    }

    #[test]
    fn a_written_file_verifies_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let image: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let path = write(dir.path(), &image, 1000);
        let manifest = verify(&path, |_| {}).unwrap();
        assert_eq!(manifest, sample(&image, 1000));
        let mut reader = FileReader::open(&path).unwrap();
        let mut back = Vec::new();
        while let Some((_, chunk)) = reader.next_chunk().unwrap() {
            back.extend_from_slice(chunk);
        }
        assert_eq!(back, image);
    }

    #[test]
    fn tampering_anywhere_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let image = vec![5u8; 3000];
        let path = write(dir.path(), &image, 1000);
        let clean = std::fs::read(&path).unwrap();
        let header_len = HEADER_BYTES as usize;
        let data_offset = sample(&image, 1000).header.data_offset() as usize;
        type Expect = fn(&FileError) -> bool;
        let cases: [(usize, Expect); 5] = [
            (0, |e| matches!(e, FileError::NotASnapshot)),
            (20, |e| matches!(e, FileError::HeaderChecksum)),
            (16 + header_len + 3, |e| matches!(e, FileError::HeaderChecksum)),
            (16 + header_len + 40, |e| matches!(e, FileError::ManifestMismatch { .. })),
            (data_offset + 1500, |e| matches!(e, FileError::ChunkMismatch { index: 1 })),
        ];
        for (offset, expected) in cases {
            let mut bytes = clean.clone();
            bytes[offset] ^= 1;
            std::fs::write(&path, &bytes).unwrap();
            let err = verify(&path, |_| {}).unwrap_err();
            assert!(expected(&err), "byte {offset}: {err}");
        }
        std::fs::write(&path, &clean[..clean.len() - 1]).unwrap();
        assert!(matches!(verify(&path, |_| {}).unwrap_err(), FileError::Length { .. }));
    }

    #[test]
    fn an_interrupted_write_resumes_after_its_last_good_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let image: Vec<u8> = (0..5000u32).map(|i| (i % 7) as u8).collect();
        let path = dir.path().join("snap.cvsnap");
        let mut w = FileWriter::open(&path, sample(&image, 1000)).unwrap();
        for i in 0..3u32 {
            w.write_chunk(i, &image[i as usize * 1000..(i as usize + 1) * 1000]).unwrap();
        }
        drop(w);
        // Damage chunk 2 in the partial file: the resumption keeps chunks 0 and 1 only.
        let part = FileWriter::part_path(&path);
        let mut bytes = std::fs::read(&part).unwrap();
        let offset = sample(&image, 1000).header.data_offset() as usize + 2500;
        bytes[offset] ^= 1;
        std::fs::write(&part, bytes).unwrap();
        let mut w = FileWriter::open(&path, sample(&image, 1000)).unwrap();
        assert_eq!(w.done, 2);
        for i in 2..5u32 {
            w.write_chunk(i, &image[i as usize * 1000..(i as usize + 1) * 1000]).unwrap();
        }
        w.finish().unwrap();
        assert!(!part.exists());
        verify(&path, |_| {}).unwrap();
    }

    #[test]
    fn a_chunk_that_does_not_match_the_table_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let image = vec![1u8; 2000];
        let mut w = FileWriter::open(&dir.path().join("x"), sample(&image, 1000)).unwrap();
        assert!(matches!(w.write_chunk(0, &[2u8; 1000]), Err(FileError::ChunkMismatch { index: 0 })));
    }
}
