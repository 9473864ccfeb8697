//! Hashes: what a content hash costs per byte in a canister, SHA-256 (sha2) and BLAKE3 (blake3:
//! its wasm SIMD backend in a module built with simd128, its portable one otherwise), with the
//! digest to check each against a native one.

use harness_test_canisters::hashes::{Algorithm, Hashed};
use harness_test_canisters::pseudo_random_fill;
use ic_cdk::{query, update};
use serde_bytes::ByteBuf;
use sha2::Digest;

/// The `len` bytes [`hash`] hashes for `seed`.
fn input(len: u64, seed: u64) -> Vec<u8> {
    let len = usize::try_from(len).unwrap_or_else(|_| ic_cdk::trap("len exceeds a wasm32 heap"));
    let mut data = vec![0; len];
    pseudo_random_fill(&mut data, seed);
    data
}

/// Hashes `len` pseudo-random bytes (those [`data`] returns for `seed`) held on the heap.
#[update]
fn hash(algorithm: Algorithm, len: u64, seed: u64) -> Hashed {
    let data = std::hint::black_box(input(len, seed));
    let before = ic_cdk::api::performance_counter(0);
    let digest: Vec<u8> = match algorithm {
        Algorithm::Sha256 => sha2::Sha256::digest(&data).to_vec(),
        Algorithm::Blake3 => blake3::hash(&data).as_bytes().to_vec(),
    };
    let digest = std::hint::black_box(digest);
    let instructions = ic_cdk::api::performance_counter(0) - before;
    Hashed { digest: ByteBuf::from(digest), instructions }
}

/// The bytes [`hash`] hashes for `len` and `seed` (at most a reply's 2 MiB).
#[query]
fn data(len: u64, seed: u64) -> ByteBuf {
    ByteBuf::from(input(len, seed))
}

/// Whether this module was built with wasm SIMD, and so BLAKE3 runs its SIMD backend.
#[query]
fn simd128() -> bool {
    cfg!(target_feature = "simd128")
}

fn main() {}
