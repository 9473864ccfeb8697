//! The benchmark's baseline canisters: the floor pair moves stable memory both ways unchanged,
//! and the hash canister, built with wasm SIMD as the workspace builds canisters, computes the
//! digests native SHA-256 and BLAKE3 compute.

use candid::Principal;
use harness_test_canisters::hashes::{Algorithm, Hashed};
use ic_harness::Harness;
use ic_harness::build::canister_wasm;
use serde_bytes::ByteBuf;
use sha2::Digest;

use crate::common::{controller, install, no_args, query, update};

const MIB: u64 = 1 << 20;
/// The floor canister's bytes per call.
const CHUNK: u64 = 2 * MIB - 4096;

fn floor(ic: &Harness) -> Principal {
    install(ic, canister_wasm("harness-test-canisters", "floor"), no_args())
}

#[test]
fn the_floor_pair_moves_stable_memory_both_ways_unchanged() {
    let ic = Harness::new();
    let (source, middle, target) = (floor(&ic), floor(&ic), floor(&ic));
    let len = 5 * MIB + 1234;
    update::<_, ()>(&ic, source, "fill", (0u64, len, 7u64)).unwrap();

    let (pulled,): (Result<u64, String>,) = update(&ic, middle, "pull", (source, 0u64, len, 3u32)).unwrap();
    let (pushed,): (Result<u64, String>,) = update(&ic, middle, "push", (target, 0u64, len, 2u32)).unwrap();

    let calls = len.div_ceil(CHUNK);
    assert_eq!((pulled, pushed), (Ok(calls), Ok(calls)));
    let original = &ic.get_stable_memory(source)[..len as usize];
    assert!(original.iter().filter(|&&b| b == 0).count() < original.len() / 100, "the fill is pseudo-random");
    assert!(ic.get_stable_memory(middle)[..len as usize] == *original, "pulled bytes differ");
    assert!(ic.get_stable_memory(target)[..len as usize] == *original, "pushed bytes differ");
    let arg = [100u64.to_le_bytes(), 16u64.to_le_bytes()].concat();
    assert_eq!(ic.update_call(source, controller(), "read", arg).unwrap(), original[100..116]);
}


#[test]
fn the_hash_canister_is_built_with_simd_and_its_digests_are_the_native_ones() {
    let wasm = canister_wasm("harness-test-canisters", "hashes");
    let scalar = wasmparser::WasmFeatures::default() - wasmparser::WasmFeatures::SIMD - wasmparser::WasmFeatures::RELAXED_SIMD;
    assert!(wasmparser::Validator::new_with_features(scalar).validate_all(&wasm).is_err(), "the module has SIMD instructions");
    let ic = Harness::new();
    let id = install(&ic, wasm, no_args());
    assert_eq!(query::<_, (bool,)>(&ic, id, "simd128", ()).unwrap(), (true,));
    for (len, seed) in [(0u64, 1u64), (1000, 2), (MIB + 17, 3)] {
        let (data,): (ByteBuf,) = query(&ic, id, "data", (len, seed)).unwrap();
        assert_eq!(data.len() as u64, len);
        let (sha256,): (Hashed,) = update(&ic, id, "hash", (Algorithm::Sha256, len, seed)).unwrap();
        let (blake3,): (Hashed,) = update(&ic, id, "hash", (Algorithm::Blake3, len, seed)).unwrap();
        assert_eq!(sha256.digest.as_slice(), sha2::Sha256::digest(&data).as_slice(), "SHA-256 of {len} bytes");
        assert_eq!(blake3.digest.as_slice(), blake3::hash(&data).as_bytes(), "BLAKE3 of {len} bytes");
        assert!(
            sha256.instructions > len && blake3.instructions > len / 10,
            "{} and {} instructions",
            sha256.instructions,
            blake3.instructions
        );
    }
}
