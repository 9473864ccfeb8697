//! Chunks and manifests.
//!
//! An image of `size` bytes is cut into chunks of `chunk_size` bytes (the last one shorter).
//! A snapshot has one content hash ([`ContentHash`]): each chunk's digest is that hash of its
//! bytes, and the snapshot's own (its manifest hash) is that hash of its manifest:
//!
//! ```text
//! domain | size: u64 LE | chunk_size: u64 LE | digest(chunk 0) | ... | digest(chunk n-1)
//! ```
//!
//! with domain "canister-vault/manifest/v1" for SHA-256 (every snapshot taken before BLAKE3)
//! and "canister-vault/manifest/blake3/v1" for BLAKE3.
//!
//! It identifies the content as surely as a hash of the whole image, and every party can
//! compute it chunk by chunk: the vault as chunks arrive, the app as a restore is staged, the
//! CLI as a file is written.

use candid::CandidType;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest;

/// Lowercase hex of `bytes`, as files, logs and golden tests show them.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A 32-byte digest; a 32-byte `blob` in candid. A snapshot's digests (each chunk's, its
/// manifest hash) are in its content hash ([`ContentHash`]), SHA-256 or BLAKE3: the type keeps
/// the name of SHA-256, which every digest was before BLAKE3, as the candid fields that carry
/// it keep theirs (`sha256`). A module hash is a SHA-256.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    /// The SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Sha256(sha2::Sha256::digest(bytes).into())
    }

    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

impl std::fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

impl std::fmt::Display for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

impl CandidType for Sha256 {
    fn _ty() -> candid::types::Type {
        <serde_bytes::ByteBuf as CandidType>::ty()
    }
    fn idl_serialize<S: candid::types::Serializer>(&self, serializer: S) -> Result<(), S::Error> {
        serializer.serialize_blob(&self.0)
    }
}

impl Serialize for Sha256 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(deserializer)?;
        let array: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| serde::de::Error::custom(format!("a SHA-256 has 32 bytes, not {}", bytes.len())))?;
        Ok(Sha256(array))
    }
}

/// How a snapshot's chunks and manifest are hashed.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContentHash {
    /// SHA-256: every snapshot taken before BLAKE3, and those of apps whose client library
    /// verifies no other on restore (release 0.1.0's and the builds before BLAKE3).
    Sha256,
    /// BLAKE3: in a canister about a fifth of SHA-256's instructions per byte with its wasm SIMD
    /// backend (the canisters are built with simd128).
    Blake3,
}

impl ContentHash {
    /// The digest of `bytes` in this hash.
    pub fn digest(self, bytes: &[u8]) -> Sha256 {
        match self {
            ContentHash::Sha256 => Sha256::of(bytes),
            ContentHash::Blake3 => Sha256(*blake3::hash(bytes).as_bytes()),
        }
    }

    /// Whether a client library that lists `verified` (in `BackupInfo` or `DumpManifest`) verifies
    /// this hash on restore: SHA-256 always (a library that lists none verifies it alone).
    pub fn verified_by(self, verified: Option<&[ContentHash]>) -> bool {
        self == ContentHash::Sha256 || verified.is_some_and(|hashes| hashes.contains(&self))
    }

    /// The domain a manifest in this hash starts with.
    fn manifest_domain(self) -> &'static [u8] {
        match self {
            ContentHash::Sha256 => b"canister-vault/manifest/v1",
            ContentHash::Blake3 => b"canister-vault/manifest/blake3/v1",
        }
    }
}

/// Chunks of an image of `size` bytes.
pub fn chunk_count(size: u64, chunk_size: u64) -> u32 {
    assert!(chunk_size > 0, "chunks have a size");
    u32::try_from(size.div_ceil(chunk_size)).expect("fewer than 2^32 chunks")
}

/// Chunks of an image of `size` bytes, for sizes from outside: `None` for a zero chunk size or
/// 2^32 chunks or more.
pub fn try_chunk_count(size: u64, chunk_size: u64) -> Option<u32> {
    if chunk_size == 0 {
        return None;
    }
    u32::try_from(size.div_ceil(chunk_size)).ok()
}

/// Byte range of chunk `index`.
pub fn chunk_range(size: u64, chunk_size: u64, index: u32) -> std::ops::Range<u64> {
    let start = index as u64 * chunk_size;
    start..(start + chunk_size).min(size)
}

/// Why a chunk does not belong to its image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkFault {
    OutOfRange { chunks: u32 },
    SizeMismatch { expected: u64, actual: u64 },
    HashMismatch,
}

/// A chunk that belongs to its image: its byte range in it and its digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedChunk {
    pub range: std::ops::Range<u64>,
    pub digest: Sha256,
}

/// Checks chunk `index`, `data`, against an image of `size` bytes in chunks of `chunk_size`:
/// in range and of its exact length, then (only once those hold) hashes it with `hash` and, if
/// a digest is `claimed`, checks it is the chunk's.
pub fn check_chunk(
    hash: ContentHash,
    size: u64,
    chunk_size: u64,
    index: u32,
    data: &[u8],
    claimed: Option<&Sha256>,
) -> Result<CheckedChunk, ChunkFault> {
    let chunks = chunk_count(size, chunk_size);
    if index >= chunks {
        return Err(ChunkFault::OutOfRange { chunks });
    }
    let range = chunk_range(size, chunk_size, index);
    let expected = range.end - range.start;
    if data.len() as u64 != expected {
        return Err(ChunkFault::SizeMismatch { expected, actual: data.len() as u64 });
    }
    let digest = hash.digest(data);
    if claimed.is_some_and(|claimed| *claimed != digest) {
        return Err(ChunkFault::HashMismatch);
    }
    Ok(CheckedChunk { range, digest })
}

/// Computes a manifest hash chunk by chunk.
#[derive(Clone)]
pub struct ManifestHasher {
    hasher: Hasher,
    expected: u32,
    pushed: u32,
}

/// A running hash of either content hash.
#[derive(Clone)]
enum Hasher {
    Sha256(sha2::Sha256),
    Blake3(Box<blake3::Hasher>),
}

impl Hasher {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(hasher) => hasher.update(bytes),
            Hasher::Blake3(hasher) => {
                hasher.update(bytes);
            }
        }
    }

    fn finalize(self) -> Sha256 {
        match self {
            Hasher::Sha256(hasher) => Sha256(hasher.finalize().into()),
            Hasher::Blake3(hasher) => Sha256(*hasher.finalize().as_bytes()),
        }
    }
}

impl ManifestHasher {
    /// A manifest hash in `hash` of an image of `size` bytes in chunks of `chunk_size`.
    pub fn new(hash: ContentHash, size: u64, chunk_size: u64) -> Self {
        let mut hasher = match hash {
            ContentHash::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            ContentHash::Blake3 => Hasher::Blake3(Box::default()),
        };
        hasher.update(hash.manifest_domain());
        hasher.update(&size.to_le_bytes());
        hasher.update(&chunk_size.to_le_bytes());
        ManifestHasher { hasher, expected: chunk_count(size, chunk_size), pushed: 0 }
    }

    /// Adds the digest of the next chunk.
    pub fn push(&mut self, chunk_hash: &Sha256) {
        self.hasher.update(&chunk_hash.0);
        self.pushed += 1;
    }

    /// The manifest hash; `None` unless every chunk was pushed.
    pub fn finish(self) -> Option<Sha256> {
        (self.pushed == self.expected).then(|| self.hasher.finalize())
    }
}

/// The manifest hash in `hash` of an image whose chunks' digests are `chunk_hashes`, in order.
pub fn manifest_hash<'a>(
    hash: ContentHash,
    size: u64,
    chunk_size: u64,
    chunk_hashes: impl IntoIterator<Item = &'a Sha256>,
) -> Option<Sha256> {
    let mut hasher = ManifestHasher::new(hash, size, chunk_size);
    for chunk_hash in chunk_hashes {
        hasher.push(chunk_hash);
    }
    hasher.finish()
}

/// The manifest hash in `hash` of `image`, cut into chunks of `chunk_size`.
pub fn image_hash(hash: ContentHash, image: &[u8], chunk_size: u64) -> Sha256 {
    let digests: Vec<Sha256> = image.chunks(chunk_size as usize).map(|chunk| hash.digest(chunk)).collect();
    manifest_hash(hash, image.len() as u64, chunk_size, &digests).expect("every chunk hashed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_image() {
        assert_eq!(chunk_count(0, 10), 0);
        assert_eq!(chunk_count(10, 10), 1);
        assert_eq!(chunk_count(11, 10), 2);
        assert_eq!(chunk_range(25, 10, 2), 20..25);
    }

    #[test]
    fn chunk_counts_from_outside_are_checked() {
        assert_eq!(try_chunk_count(25, 10), Some(3));
        assert_eq!(try_chunk_count(25, 0), None);
        assert_eq!(try_chunk_count(u64::MAX, 1), None);
        assert_eq!(try_chunk_count(u64::MAX, 1 << 32), None, "2^32 chunks");
        assert_eq!(try_chunk_count(u64::MAX, 1 << 33), Some(1 << 31));
    }

    #[test]
    fn a_chunk_is_checked_for_range_length_and_hash_in_that_order() {
        let data = [7u8; 5];
        for hash in [ContentHash::Sha256, ContentHash::Blake3] {
            let digest = hash.digest(&data);
            let checked = CheckedChunk { range: 20..25, digest };
            assert_eq!(check_chunk(hash, 25, 10, 2, &data, Some(&digest)), Ok(checked.clone()));
            assert_eq!(check_chunk(hash, 25, 10, 2, &data, None), Ok(checked), "no claim: its digest is computed");
            assert_eq!(check_chunk(hash, 25, 10, 3, &data, Some(&digest)), Err(ChunkFault::OutOfRange { chunks: 3 }));
            assert_eq!(check_chunk(hash, 25, 10, 1, &data, Some(&digest)), Err(ChunkFault::SizeMismatch { expected: 10, actual: 5 }));
            assert_eq!(check_chunk(hash, 25, 10, 2, &data, Some(&Sha256::default())), Err(ChunkFault::HashMismatch));
        }
        let other = ContentHash::Blake3.digest(&data);
        assert_eq!(check_chunk(ContentHash::Sha256, 25, 10, 2, &data, Some(&other)), Err(ChunkFault::HashMismatch), "another hash's digest");
    }

    #[test]
    fn manifest_hash_golden() {
        // Pins the manifest format (values computed independently from the documented layout):
        // a change here breaks every stored snapshot's hash.
        let image: Vec<u8> = (0..25u8).collect();
        assert_eq!(image_hash(ContentHash::Sha256, &image, 10).to_hex(), "893c505007e089a141054b6207e7030e6ba3a05c9dbd6f537c8258b105025e91");
        assert_eq!(image_hash(ContentHash::Blake3, &image, 10).to_hex(), "5ac7d9432c6ad933fe0582f7ef583993416ea7094765c3329720a0841b9d2594");
    }

    #[test]
    fn chunk_digests_golden() {
        assert_eq!(ContentHash::Sha256.digest(b"abc").to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(ContentHash::Blake3.digest(b"abc").to_hex(), "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
    }

    #[test]
    fn a_missing_chunk_gives_no_hash() {
        for hash in [ContentHash::Sha256, ContentHash::Blake3] {
            assert!(manifest_hash(hash, 25, 10, &[hash.digest(b"a")]).is_none());
        }
    }

    #[test]
    fn sha256_is_verified_by_every_library_and_blake3_by_those_that_list_it() {
        let (sha256, blake3) = (ContentHash::Sha256, ContentHash::Blake3);
        assert!(sha256.verified_by(None) && sha256.verified_by(Some(&[])) && sha256.verified_by(Some(&[blake3])));
        assert!(!blake3.verified_by(None) && !blake3.verified_by(Some(&[sha256])));
        assert!(blake3.verified_by(Some(&[sha256, blake3])));
    }

    #[test]
    fn sha256_is_a_32_byte_blob_in_candid() {
        let h = Sha256::of(b"x");
        let bytes = candid::encode_one(h).unwrap();
        assert_eq!(candid::decode_one::<serde_bytes::ByteBuf>(&bytes).unwrap().as_slice(), &h.0);
        assert_eq!(candid::decode_one::<Sha256>(&bytes).unwrap(), h);
        let short = candid::encode_one(serde_bytes::ByteBuf::from(vec![1u8; 31])).unwrap();
        assert!(candid::decode_one::<Sha256>(&short).is_err());
    }
}
