//! Chunks and manifests.
//!
//! An image of `size` bytes is cut into chunks of `chunk_size` bytes (the last one shorter).
//! Each chunk carries the SHA-256 of its bytes. A snapshot's SHA-256 is the SHA-256 of its
//! manifest:
//!
//! ```text
//! "canister-vault/manifest/v1" | size: u64 LE | chunk_size: u64 LE | sha256(chunk 0) | ... | sha256(chunk n-1)
//! ```
//!
//! It identifies the content as surely as a hash of the whole image, and every party can
//! compute it chunk by chunk: the vault as chunks arrive, the app as a restore is staged, the
//! CLI as a file is written.

use candid::CandidType;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256 as Hasher};

/// A SHA-256 digest; a 32-byte `blob` in candid.
/// Lowercase hex of `bytes`, as files, logs and golden tests show them.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    pub fn of(bytes: &[u8]) -> Self {
        Sha256(Hasher::digest(bytes).into())
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

const MANIFEST_DOMAIN: &[u8] = b"canister-vault/manifest/v1";

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

/// Checks chunk `index` of `len` bytes against an image of `size` bytes in chunks of
/// `chunk_size`: in range, of its exact length, and with SHA-256 `claimed` (`hash` computes
/// the chunk's own, only once the rest holds). Returns the chunk's byte range.
pub fn check_chunk(
    size: u64,
    chunk_size: u64,
    index: u32,
    len: u64,
    claimed: &Sha256,
    hash: impl FnOnce() -> Sha256,
) -> Result<std::ops::Range<u64>, ChunkFault> {
    let chunks = chunk_count(size, chunk_size);
    if index >= chunks {
        return Err(ChunkFault::OutOfRange { chunks });
    }
    let range = chunk_range(size, chunk_size, index);
    let expected = range.end - range.start;
    if len != expected {
        return Err(ChunkFault::SizeMismatch { expected, actual: len });
    }
    if hash() != *claimed {
        return Err(ChunkFault::HashMismatch);
    }
    Ok(range)
}

/// Computes a manifest hash chunk by chunk.
#[derive(Clone)]
pub struct ManifestHasher {
    hasher: Hasher,
    expected: u32,
    pushed: u32,
}

impl ManifestHasher {
    pub fn new(size: u64, chunk_size: u64) -> Self {
        let mut hasher = Hasher::new();
        hasher.update(MANIFEST_DOMAIN);
        hasher.update(size.to_le_bytes());
        hasher.update(chunk_size.to_le_bytes());
        ManifestHasher { hasher, expected: chunk_count(size, chunk_size), pushed: 0 }
    }

    /// Adds the hash of the next chunk.
    pub fn push(&mut self, chunk_hash: &Sha256) {
        self.hasher.update(chunk_hash.0);
        self.pushed += 1;
    }

    /// The manifest hash; `None` unless every chunk was pushed.
    pub fn finish(self) -> Option<Sha256> {
        (self.pushed == self.expected).then(|| Sha256(self.hasher.finalize().into()))
    }
}

/// The manifest hash of an image whose chunks hash to `chunk_hashes`, in order.
pub fn manifest_hash<'a>(size: u64, chunk_size: u64, chunk_hashes: impl IntoIterator<Item = &'a Sha256>) -> Option<Sha256> {
    let mut hasher = ManifestHasher::new(size, chunk_size);
    for hash in chunk_hashes {
        hasher.push(hash);
    }
    hasher.finish()
}

/// The manifest hash of `image`, cut into chunks of `chunk_size`.
pub fn image_hash(image: &[u8], chunk_size: u64) -> Sha256 {
    let hashes: Vec<Sha256> = image.chunks(chunk_size as usize).map(Sha256::of).collect();
    manifest_hash(image.len() as u64, chunk_size, &hashes).expect("every chunk hashed")
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
        let sha = Sha256::of(&data);
        let unhashed = || -> Sha256 { panic!("hashed before its length was checked") };
        assert_eq!(check_chunk(25, 10, 2, 5, &sha, || Sha256::of(&data)), Ok(20..25));
        assert_eq!(check_chunk(25, 10, 3, 5, &sha, unhashed), Err(ChunkFault::OutOfRange { chunks: 3 }));
        assert_eq!(check_chunk(25, 10, 1, 5, &sha, unhashed), Err(ChunkFault::SizeMismatch { expected: 10, actual: 5 }));
        assert_eq!(check_chunk(25, 10, 2, 5, &Sha256::default(), || Sha256::of(&data)), Err(ChunkFault::HashMismatch));
    }

    #[test]
    fn manifest_hash_golden() {
        // Pins the manifest format (value computed independently from the documented layout):
        // a change here breaks every stored snapshot's hash.
        let image: Vec<u8> = (0..25u8).collect();
        assert_eq!(image_hash(&image, 10).to_hex(), "893c505007e089a141054b6207e7030e6ba3a05c9dbd6f537c8258b105025e91");
    }

    #[test]
    fn a_missing_chunk_gives_no_hash() {
        assert!(manifest_hash(25, 10, &[Sha256::of(b"a")]).is_none());
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
