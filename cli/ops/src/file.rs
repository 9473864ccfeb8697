//! The snapshot file: one snapshot, self-describing and verifiable chunk by chunk.
//!
//! ```text
//! offset      size        field
//! 0           8           magic "CVLTSNAP"
//! 8           2           format version (2), u16 LE
//! 10          1           content hash (0 SHA-256, 1 BLAKE3)
//! 11          1           reserved, 0
//! 12          4           header length H, u32 LE (from offset 16)
//! 16          H           header (below)
//! 16+H        32          SHA-256 of bytes 0 .. 16+H (the header checksum)
//! 48+H        32 * n      chunk table: the digest of each of the n chunks in the content hash, in order
//! 48+H+32n    size        chunk data, the chunks back to back
//! ```
//!
//! Header, versions 1 and 2 (all integers LE; principals are 30 bytes: length, then bytes padded):
//!
//! ```text
//! app (30) | snapshot id u64 | taken at u64 (ns) | state kind u8 (1 serde, 2 stable memory)
//! | size u64 | chunk size u64 | chunks u32 | manifest hash (32) | module hash present u8
//! | module hash (32) | trigger u8 (0 scheduled, 1 manual, 2 import) | exported at u64 (ns)
//! ```
//!
//! Version 1, written before BLAKE3, is version 2 with bytes 10 and 11 reserved: it is read as
//! SHA-256, which it is. This build writes version 2.
//!
//! The manifest hash is the snapshot's (`vault_api::manifest`), in its content hash: it covers
//! the size, the chunk size and the chunk table, and the table covers the data, so a file
//! verifies without trusting anything in it but its own structure. The header checksum covers
//! the rest of the header and the content hash. A file is written to `<path>.part` (never through a symbolic link) and renamed once
//! complete, over an existing file only when asked; an interrupted export resumes from the
//! `.part` file's last chunk that verifies.
//!
//! A file is read as its author may have crafted it: the header's sizes are checked against
//! each other and against the file's real length before anything is allocated by them, every
//! offset is computed with checked arithmetic, and a bad file is a [`FileError`], never a
//! panic. A reader holds the chunk table and one buffer of a chunk, no more than the file.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use candid::Principal;
use sha2::{Digest, Sha256 as Hasher};
use vault_api::codec::{Reader, Writer, content_hash_byte, content_hash_of, state_kind_byte, state_kind_of, trigger_byte, trigger_of};
use vault_api::manifest::{ContentHash, ManifestHasher, Sha256, try_chunk_count};
use vault_api::protocol::StateKind;
use vault_api::service::{SnapshotInfo, Trigger};

const MAGIC: &[u8; 8] = b"CVLTSNAP";
/// The format version this build writes; it reads [`VERSION_BEFORE_BLAKE3`] too.
const VERSION: u16 = 2;
/// The format of the files written before BLAKE3: SHA-256, byte 10 reserved.
const VERSION_BEFORE_BLAKE3: u16 = 1;
const HEADER_BYTES: u32 = 30 + 8 + 8 + 1 + 8 + 8 + 4 + 32 + 1 + 32 + 1 + 8;
const PREFIX_BYTES: u64 = 16;
/// The longest principal, in the 30 bytes the header gives it (a length byte, then 29).
const MAX_PRINCIPAL_BYTES: u8 = 29;

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
    /// The manifest hash, in `content_hash`.
    pub sha256: Sha256,
    pub module_hash: Option<Sha256>,
    pub trigger: Trigger,
    pub exported_at_nanos: u64,
    /// The snapshot's content hash: the manifest hash and the chunk table are in it.
    pub content_hash: ContentHash,
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
            content_hash: info.content_hash(),
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

    /// The header in `bytes`, of a file whose prefix says `content_hash`.
    fn decode(bytes: &[u8], content_hash: ContentHash) -> Result<Self, FileError> {
        let bad = |what: &str| FileError::Malformed(what.to_string());
        if bytes.len() != HEADER_BYTES as usize {
            return Err(bad("the header has the wrong length"));
        }
        // The codec reads fixed-size fields, which the length above provides; the principal's
        // length byte is the file's to choose, so it is checked before the codec slices by it.
        if bytes.first().is_none_or(|&len| len > MAX_PRINCIPAL_BYTES) {
            return Err(bad("the app's principal is longer than 29 bytes"));
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
        let header = Header {
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
            content_hash,
        };
        header.check_sizes()?;
        Ok(header)
    }

    /// Checks that the size, the chunk size and the chunk count agree, and that every offset
    /// they give in a file fits in 64 bits.
    fn check_sizes(&self) -> Result<(), FileError> {
        if try_chunk_count(self.size, self.chunk_size) != Some(self.chunks) {
            return Err(FileError::Malformed("the chunk count does not match the size and chunk size".into()));
        }
        self.file_len()?;
        Ok(())
    }

    /// Bytes before the chunk data (at most 2^37 or so: the table has fewer than 2^32 entries).
    pub fn data_offset(&self) -> u64 {
        PREFIX_BYTES + HEADER_BYTES as u64 + 32 + 32 * self.chunks as u64
    }

    /// The file's total length.
    pub fn file_len(&self) -> Result<u64, FileError> {
        self.data_offset().checked_add(self.size).ok_or_else(sizes_out_of_range)
    }

    /// Where chunk `index` starts in the file, and its length.
    pub fn chunk_span(&self, index: u32) -> Result<(u64, usize), FileError> {
        if index >= self.chunks {
            return Err(FileError::ChunkOutOfRange { index, chunks: self.chunks });
        }
        let start = u64::from(index).checked_mul(self.chunk_size).ok_or_else(sizes_out_of_range)?;
        let end = start.checked_add(self.chunk_size).ok_or_else(sizes_out_of_range)?.min(self.size);
        let len = end.checked_sub(start).and_then(|len| usize::try_from(len).ok()).ok_or_else(sizes_out_of_range)?;
        Ok((self.data_offset().checked_add(start).ok_or_else(sizes_out_of_range)?, len))
    }

    /// The longest chunk's length: the one buffer a reader needs.
    fn max_chunk_len(&self) -> Result<usize, FileError> {
        usize::try_from(self.chunk_size.min(self.size)).map_err(|_| sizes_out_of_range())
    }
}

fn sizes_out_of_range() -> FileError {
    FileError::Malformed("the size and chunk size put chunks beyond any file".into())
}

/// Why a file is not a valid snapshot, or cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("not a canister-vault snapshot file")]
    NotASnapshot,
    #[error("snapshot file format version {0} is not supported (this build reads versions 1 and 2)")]
    UnsupportedVersion(u16),
    #[error("malformed snapshot file: {0}")]
    Malformed(String),
    #[error("the header checksum does not match: the header was altered")]
    HeaderChecksum,
    #[error("the chunk table does not hash to the snapshot's manifest hash {expected}: it was altered")]
    ManifestMismatch { expected: Sha256 },
    #[error("chunk {index} does not match its digest in the chunk table: the data was altered")]
    ChunkMismatch { index: u32 },
    #[error("the file has {actual} bytes; a complete snapshot file has {expected}")]
    Length { expected: u64, actual: u64 },
    #[error("the snapshot has {chunks} chunks: there is no chunk {index}")]
    ChunkOutOfRange { index: u32, chunks: u32 },
    #[error("chunk {index} written when chunk {expected} is next")]
    OutOfOrder { index: u32, expected: u32 },
    #[error("{written} of the snapshot's {chunks} chunks were written: the file is not complete")]
    Incomplete { written: u32, chunks: u32 },
    #[error("{} already exists: pass --force to overwrite it", .0.display())]
    Exists(PathBuf),
    #[error("{} is a symbolic link or not a regular file: refusing to write through it", .0.display())]
    NotARegularFile(PathBuf),
}

/// The header and the chunk table of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub header: Header,
    pub chunk_hashes: Vec<Sha256>,
}

impl Manifest {
    /// Checks that the header's sizes agree and the chunk table produces its manifest hash.
    pub fn check(&self) -> Result<(), FileError> {
        self.header.check_sizes()?;
        let h = &self.header;
        let computed = vault_api::manifest_hash(h.content_hash, h.size, h.chunk_size, &self.chunk_hashes);
        if computed != Some(self.header.sha256) {
            return Err(FileError::ManifestMismatch { expected: self.header.sha256 });
        }
        Ok(())
    }

    /// The digest chunk `index` must have.
    fn chunk_hash(&self, index: u32) -> Result<Sha256, FileError> {
        self.chunk_hashes.get(index as usize).copied().ok_or(FileError::ChunkOutOfRange { index, chunks: self.header.chunks })
    }

    fn prefix_bytes(&self) -> Vec<u8> {
        let header = self.header.encode();
        let mut out = Vec::with_capacity(PREFIX_BYTES as usize + header.len() + 32 + 32 * self.chunk_hashes.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&[content_hash_byte(self.header.content_hash), 0]);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        let checksum = Hasher::digest(&out);
        out.extend_from_slice(&checksum);
        for hash in &self.chunk_hashes {
            out.extend_from_slice(&hash.0);
        }
        out
    }

    /// Reads and checks the header and chunk table of `reader`, which holds `len` bytes in all
    /// (the file's length): the chunk table is read only once it is known to fit in them, so
    /// what this allocates is bounded by the file, whatever its header claims.
    pub fn read(reader: &mut impl Read, len: u64) -> Result<Self, FileError> {
        let mut prefix = [0u8; PREFIX_BYTES as usize];
        reader.read_exact(&mut prefix).map_err(|_| FileError::NotASnapshot)?;
        let [m0, m1, m2, m3, m4, m5, m6, m7, v0, v1, hash, _, l0, l1, l2, l3] = prefix;
        if [m0, m1, m2, m3, m4, m5, m6, m7] != *MAGIC {
            return Err(FileError::NotASnapshot);
        }
        let version = u16::from_le_bytes([v0, v1]);
        let content_hash = match version {
            VERSION => content_hash_of(hash).ok_or_else(|| FileError::Malformed(format!("unknown content hash {hash}")))?,
            VERSION_BEFORE_BLAKE3 => ContentHash::Sha256,
            _ => return Err(FileError::UnsupportedVersion(version)),
        };
        let header_len = u32::from_le_bytes([l0, l1, l2, l3]);
        if header_len != HEADER_BYTES {
            return Err(FileError::Malformed(format!("a version {version} header has {HEADER_BYTES} bytes, not {header_len}")));
        }
        let mut header = [0u8; HEADER_BYTES as usize];
        reader.read_exact(&mut header)?;
        let mut checksum = [0u8; 32];
        reader.read_exact(&mut checksum)?;
        let mut hasher = Hasher::new();
        hasher.update(prefix);
        hasher.update(header);
        if hasher.finalize().as_slice() != checksum {
            return Err(FileError::HeaderChecksum);
        }
        let header = Header::decode(&header, content_hash)?;
        if header.data_offset() > len {
            return Err(FileError::Length { expected: header.file_len()?, actual: len });
        }
        let mut chunk_hashes = Vec::with_capacity(header.chunks as usize);
        for _ in 0..header.chunks {
            let mut hash = [0u8; 32];
            reader.read_exact(&mut hash)?;
            chunk_hashes.push(Sha256(hash));
        }
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
    overwrite: bool,
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
    /// the chunks that verify, up to the first that does not), else starts it over. Refuses
    /// when `path` exists, unless `overwrite`, and when `<path>.part` is a symbolic link or
    /// not a regular file.
    pub fn open(path: &Path, manifest: Manifest, overwrite: bool) -> Result<Self, FileError> {
        manifest.check()?;
        if !overwrite {
            refuse_existing(path)?;
        }
        let part = Self::part_path(path);
        let mut file = open_part(&part)?;
        let len = file.metadata()?.len();
        let resumable = Manifest::read(&mut BufReader::new(&file), len).is_ok_and(|m| {
            m.header.sha256 == manifest.header.sha256
                && m.header.app == manifest.header.app
                && m.header.snapshot_id == manifest.header.snapshot_id
        });
        let done = if resumable {
            verified_prefix(&mut file, &manifest)?
        } else {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(&manifest.prefix_bytes())?;
            0
        };
        Ok(FileWriter { manifest, file, part, path: path.to_path_buf(), overwrite, done })
    }

    /// Appends chunk `index`, which must be the next one and match its digest.
    pub fn write_chunk(&mut self, index: u32, data: &[u8]) -> Result<(), FileError> {
        if index != self.done {
            return Err(FileError::OutOfOrder { index, expected: self.done });
        }
        let (offset, len) = self.manifest.header.chunk_span(index)?;
        if data.len() != len || self.manifest.header.content_hash.digest(data) != self.manifest.chunk_hash(index)? {
            return Err(FileError::ChunkMismatch { index });
        }
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.write_all(data)?;
        self.done += 1;
        Ok(())
    }

    /// Flushes the file to disk and moves it to its final name.
    pub fn finish(self) -> Result<PathBuf, FileError> {
        let header = &self.manifest.header;
        if self.done != header.chunks {
            return Err(FileError::Incomplete { written: self.done, chunks: header.chunks });
        }
        self.file.set_len(header.file_len()?)?;
        self.file.sync_all()?;
        if !self.overwrite {
            refuse_existing(&self.path)?;
        }
        std::fs::rename(&self.part, &self.path)?;
        Ok(self.path)
    }
}

/// Refuses a path where anything is, even a dangling symbolic link.
fn refuse_existing(path: &Path) -> Result<(), FileError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Err(FileError::Exists(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Opens (or creates) a regular file to read and write, never through a symbolic link.
fn open_part(part: &Path) -> Result<File, FileError> {
    let refused = || FileError::NotARegularFile(part.to_path_buf());
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(part)
        .map_err(|e| if e.raw_os_error() == Some(libc::ELOOP) { refused() } else { e.into() })?;
    if !file.metadata()?.is_file() {
        return Err(refused());
    }
    Ok(file)
}

/// Chunks at the start of `file`'s data that match `manifest`, read one at a time.
fn verified_prefix(file: &mut File, manifest: &Manifest) -> Result<u32, FileError> {
    let h = &manifest.header;
    let mut buf = vec![0u8; h.max_chunk_len()?];
    for index in 0..h.chunks {
        let (offset, len) = h.chunk_span(index)?;
        let chunk = buf.get_mut(..len).ok_or_else(sizes_out_of_range)?;
        file.seek(SeekFrom::Start(offset))?;
        if file.read_exact(chunk).is_err() || h.content_hash.digest(chunk) != manifest.chunk_hash(index)? {
            return Ok(index);
        }
    }
    Ok(h.chunks)
}

/// A chunk read from a file, verified.
pub struct Chunk<'a> {
    pub index: u32,
    /// Its digest in the file's content hash.
    pub sha256: Sha256,
    pub data: &'a [u8],
}

/// Reads a snapshot file chunk by chunk, checking each against the chunk table. It holds the
/// chunk table and one buffer of the longest chunk's length, both allocated only once the
/// file's length is checked, so no more than the file holds.
pub struct FileReader {
    manifest: Manifest,
    reader: BufReader<File>,
    next: u32,
    buf: Vec<u8>,
}

impl FileReader {
    pub fn open(path: &Path) -> Result<Self, FileError> {
        let file = File::open(path)?;
        let actual = file.metadata()?.len();
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let manifest = Manifest::read(&mut reader, actual)?;
        let expected = manifest.header.file_len()?;
        if actual != expected {
            return Err(FileError::Length { expected, actual });
        }
        let buf = vec![0u8; manifest.header.max_chunk_len()?];
        Ok(FileReader { manifest, reader, next: 0, buf })
    }

    /// The file's header and chunk table.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The next chunk, verified, or `None` after the last.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk<'_>>, FileError> {
        let index = self.next;
        if index >= self.manifest.header.chunks {
            return Ok(None);
        }
        let (_, len) = self.manifest.header.chunk_span(index)?;
        let data = self.buf.get_mut(..len).ok_or_else(sizes_out_of_range)?;
        self.reader.read_exact(data)?;
        let sha256 = self.manifest.chunk_hash(index)?;
        if self.manifest.header.content_hash.digest(data) != sha256 {
            return Err(FileError::ChunkMismatch { index });
        }
        self.next += 1;
        Ok(Some(Chunk { index, sha256, data }))
    }

    /// Reads every chunk, verifying each; returns the manifest.
    pub fn verify(mut self, mut progress: impl FnMut(u64)) -> Result<Manifest, FileError> {
        while let Some(chunk) = self.next_chunk()? {
            progress(chunk.data.len() as u64);
        }
        Ok(self.manifest)
    }
}

/// Verifies a whole file with bounded memory; returns its manifest.
pub fn verify(path: &Path, progress: impl FnMut(u64)) -> Result<Manifest, FileError> {
    FileReader::open(path)?.verify(progress)
}

/// The chunk digests and manifest hash in `hash` of an image, for building a manifest from data
/// at hand.
pub fn manifest_of(hash: ContentHash, image: &[u8], chunk_size: u64) -> (Vec<Sha256>, Sha256) {
    let hashes: Vec<Sha256> = image.chunks(chunk_size as usize).map(|chunk| hash.digest(chunk)).collect();
    let mut hasher = ManifestHasher::new(hash, image.len() as u64, chunk_size);
    hashes.iter().for_each(|h| hasher.push(h));
    (hashes, hasher.finish().expect("every chunk hashed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manifest of `image` in chunks of `chunk_size`, in BLAKE3, as files are written now.
    fn sample(image: &[u8], chunk_size: u64) -> Manifest {
        sample_in(ContentHash::Blake3, image, chunk_size)
    }

    fn sample_in(content_hash: ContentHash, image: &[u8], chunk_size: u64) -> Manifest {
        let (chunk_hashes, sha256) = manifest_of(content_hash, image, chunk_size);
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
                content_hash,
            },
            chunk_hashes,
        }
    }

    fn write(dir: &Path, image: &[u8], chunk_size: u64) -> PathBuf {
        let path = dir.join("snap.cvsnap");
        let mut w = FileWriter::open(&path, sample(image, chunk_size), false).unwrap();
        for (i, chunk) in image.chunks(chunk_size as usize).enumerate() {
            w.write_chunk(i as u32, chunk).unwrap();
        }
        w.finish().unwrap()
    }

    fn unhex(hex: &str) -> Vec<u8> {
        let hex = hex.trim();
        (0..hex.len()).step_by(2).map(|at| u8::from_str_radix(&hex[at..at + 2], 16).expect("hex")).collect()
    }

    #[test]
    fn golden_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), b"abcdefghij", 4);
        let hex = vault_api::hex(&std::fs::read(&path).unwrap());
        assert_eq!(hex, include_str!("../golden/snapshot_v2.hex").trim());
    }

    #[test]
    fn a_file_written_before_blake3_reads_as_sha256_and_verifies() {
        // `golden/snapshot_v1.hex` is what the writer of format version 1 wrote for this sample.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.cvsnap");
        std::fs::write(&path, unhex(include_str!("../golden/snapshot_v1.hex"))).unwrap();
        let manifest = verify(&path, |_| {}).unwrap();
        assert_eq!(manifest, sample_in(ContentHash::Sha256, b"abcdefghij", 4));
        let mut reader = FileReader::open(&path).unwrap();
        let mut back = Vec::new();
        while let Some(chunk) = reader.next_chunk().unwrap() {
            assert_eq!(chunk.sha256, Sha256::of(chunk.data));
            back.extend_from_slice(chunk.data);
        }
        assert_eq!(back, b"abcdefghij");
    }

    #[test]
    fn a_file_of_either_hash_is_written_in_its_hash() {
        for hash in [ContentHash::Sha256, ContentHash::Blake3] {
            let dir = tempfile::tempdir().unwrap();
            let image: Vec<u8> = (0..3000u32).map(|i| (i % 13) as u8).collect();
            let path = dir.path().join("snap.cvsnap");
            let mut w = FileWriter::open(&path, sample_in(hash, &image, 1000), false).unwrap();
            for (i, chunk) in image.chunks(1000).enumerate() {
                w.write_chunk(i as u32, chunk).unwrap();
            }
            w.finish().unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!((bytes[8], bytes[10]), (2, content_hash_byte(hash)));
            assert_eq!(verify(&path, |_| {}).unwrap(), sample_in(hash, &image, 1000));
        }
    }

    #[test]
    fn an_unknown_content_hash_is_refused() {
        let mut bytes = crafted(sample(b"abcdefghij", 4).header);
        bytes[10] = 7;
        reseal(&mut bytes);
        assert!(matches!(read(&bytes), Err(FileError::Malformed(m)) if m.contains("content hash")));
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
        while let Some(chunk) = reader.next_chunk().unwrap() {
            back.extend_from_slice(chunk.data);
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
        let mut w = FileWriter::open(&path, sample(&image, 1000), false).unwrap();
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
        let mut w = FileWriter::open(&path, sample(&image, 1000), false).unwrap();
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
        let mut w = FileWriter::open(&dir.path().join("x"), sample(&image, 1000), false).unwrap();
        assert!(matches!(w.write_chunk(0, &[2u8; 1000]), Err(FileError::ChunkMismatch { index: 0 })));
    }

    #[test]
    fn chunks_out_of_order_and_an_unfinished_file_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let image = vec![1u8; 2000];
        let path = dir.path().join("x");
        let mut w = FileWriter::open(&path, sample(&image, 1000), false).unwrap();
        assert!(matches!(w.write_chunk(1, &image[1000..]), Err(FileError::OutOfOrder { index: 1, expected: 0 })));
        w.write_chunk(0, &image[..1000]).unwrap();
        assert!(matches!(w.finish(), Err(FileError::Incomplete { written: 1, chunks: 2 })));
        assert!(!path.exists());
    }

    #[test]
    fn an_existing_file_is_replaced_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let image = vec![3u8; 2500];
        let path = dir.path().join("snap.cvsnap");
        std::fs::write(&path, b"keep me").unwrap();
        let e = FileWriter::open(&path, sample(&image, 1000), false).err().expect("the file exists");
        assert!(matches!(&e, FileError::Exists(p) if *p == path), "{e}");
        assert!(e.to_string().contains("--force"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");

        // A symbolic link counts as a file there, even one that leads nowhere.
        let link = dir.path().join("link.cvsnap");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
        assert!(matches!(FileWriter::open(&link, sample(&image, 1000), false), Err(FileError::Exists(_))));

        let mut w = FileWriter::open(&path, sample(&image, 1000), true).unwrap();
        for (i, chunk) in image.chunks(1000).enumerate() {
            w.write_chunk(i as u32, chunk).unwrap();
        }
        w.finish().unwrap();
        assert_eq!(verify(&path, |_| {}).unwrap(), sample(&image, 1000));
    }

    #[test]
    fn the_part_file_is_never_written_through_a_symbolic_link() {
        let dir = tempfile::tempdir().unwrap();
        let image = vec![4u8; 1000];
        let path = dir.path().join("snap.cvsnap");
        let target = dir.path().join("precious");
        std::fs::write(&target, b"not a snapshot").unwrap();
        std::os::unix::fs::symlink(&target, FileWriter::part_path(&path)).unwrap();
        for overwrite in [false, true] {
            let e = FileWriter::open(&path, sample(&image, 1000), overwrite).err().expect("a symbolic link");
            assert!(matches!(e, FileError::NotARegularFile(_)), "{e}");
        }
        assert_eq!(std::fs::read(&target).unwrap(), b"not a snapshot");

        std::fs::remove_file(FileWriter::part_path(&path)).unwrap();
        std::fs::create_dir(FileWriter::part_path(&path)).unwrap();
        assert!(FileWriter::open(&path, sample(&image, 1000), false).is_err(), "a directory is no part file");
    }

    /// The prefix of a file whose header says `header`, its checksum sealed over whatever it says.
    fn crafted(header: Header) -> Vec<u8> {
        Manifest { header, chunk_hashes: Vec::new() }.prefix_bytes()
    }

    fn read(bytes: &[u8]) -> Result<Manifest, FileError> {
        Manifest::read(&mut &bytes[..], bytes.len() as u64)
    }

    #[test]
    fn header_sizes_that_disagree_or_overflow_are_refused() {
        let header = sample(b"abcdefghij", 4).header;
        let cases = [
            Header { chunk_size: 0, ..header.clone() },
            Header { chunks: 2, ..header.clone() },
            Header { size: u64::MAX, chunk_size: u64::MAX, chunks: 1, ..header.clone() },
            Header { size: u64::MAX, chunk_size: 1, chunks: u32::MAX, ..header.clone() },
        ];
        for case in cases {
            let e = read(&crafted(case.clone())).unwrap_err();
            assert!(matches!(e, FileError::Malformed(_)), "{case:?}: {e}");
        }
    }

    #[test]
    fn a_chunk_table_longer_than_the_file_is_refused_before_it_is_read() {
        let header = Header { size: u64::from(u32::MAX), chunk_size: 1, chunks: u32::MAX, ..sample(b"abcdefghij", 4).header };
        let bytes = crafted(header.clone());
        let e = read(&bytes).unwrap_err();
        let (file_len, actual_len) = (header.file_len().unwrap(), bytes.len() as u64);
        assert!(matches!(e, FileError::Length { expected, actual } if expected == file_len && actual == actual_len), "{e}");
    }

    /// Seals the header checksum over whatever the prefix and header of `bytes` say.
    fn reseal(bytes: &mut [u8]) {
        let end = 16 + HEADER_BYTES as usize;
        let checksum = Hasher::digest(&bytes[..end]);
        bytes[end..end + 32].copy_from_slice(&checksum);
    }

    #[test]
    fn a_principal_longer_than_its_field_is_refused() {
        let mut bytes = crafted(sample(b"abcdefghij", 4).header);
        bytes[16] = 200;
        reseal(&mut bytes);
        assert!(matches!(read(&bytes), Err(FileError::Malformed(m)) if m.contains("principal")));
    }
}
