//! Snapshot files as an attacker may craft them (proptest): arbitrary bytes, and valid files
//! (SHA-256 or BLAKE3) with bytes flipped, cut short, extended, or header sizes and counts changed, the header
//! checksum sealed again or not. Parsing, `vault verify`, import's reading and an export
//! resuming from such a `.part` file end in `Ok` or a typed error, never a panic, and the heap
//! they hold stays below a bound set by the file's real length (the reader's fixed buffer, the
//! chunk table and one chunk, each no larger than the file), whatever the header claims.

use std::path::Path;

use candid::Principal;
use proptest::prelude::*;
use vault_api::ContentHash;
use vault_api::protocol::StateKind;
use vault_api::service::Trigger;
use vault_cli::CliError;
use vault_ops::OpsError;
use vault_ops::file::{self, FileReader, FileWriter, Header, Manifest};

use crate::support::peak_heap;

/// Cases per property: enough to reach every check, few enough for CI.
const CASES: u32 = 256;
/// Where the header starts, its length, and where its checksum ends (the chunk table starts).
const HEADER_AT: usize = 16;
const HEADER_BYTES: usize = 141;
const TABLE_AT: usize = HEADER_AT + HEADER_BYTES + 32;
/// The reader's buffer (`BufReader::with_capacity(1 << 20)`), and what parsing the command
/// line and reporting take besides.
const FIXED_HEAP: u64 = (1 << 20) + (64 << 10);

/// Header fields an attacker sets: (offset in the file, width).
const FIELDS: [(usize, usize); 9] = [
    (8, 2),               // format version
    (10, 1),              // content hash
    (12, 4),              // header length
    (HEADER_AT, 1),       // the app principal's length
    (HEADER_AT + 46, 1),  // state kind
    (HEADER_AT + 47, 8),  // size
    (HEADER_AT + 55, 8),  // chunk size
    (HEADER_AT + 63, 4),  // chunks
    (HEADER_AT + 132, 1), // trigger
];
const SIZE: usize = 5;
const CHUNK_SIZE: usize = 6;
const CHUNKS: usize = 7;

/// The content hashes of the valid files mutated: each a file of this build may have.
const CONTENT_HASHES: [ContentHash; 2] = [ContentHash::Sha256, ContentHash::Blake3];

/// Chunk sizes of the valid files mutated: 20 chunks of 100 bytes, the last one shorter, or one
/// chunk whose chunk size is far beyond the file (a reader needs one chunk's bytes, not more).
const CHUNK_SIZES: [u64; 2] = [100, 1 << 40];

/// A valid file's manifest and bytes, with chunks of `chunk_size`, in `content_hash`.
fn valid(dir: &Path, chunk_size: u64, content_hash: ContentHash) -> (Manifest, Vec<u8>) {
    let image: Vec<u8> = (0..1950u32).map(|i| (i * 7 % 251) as u8).collect();
    let (chunk_hashes, sha256) = file::manifest_of(content_hash, &image, chunk_size);
    let header = Header {
        app: Principal::from_slice(&[3; 29]),
        snapshot_id: 4,
        taken_at_nanos: 5,
        state_kind: StateKind::StableMemory,
        size: image.len() as u64,
        chunk_size,
        chunks: chunk_hashes.len() as u32,
        sha256,
        module_hash: None,
        trigger: Trigger::Manual,
        exported_at_nanos: 6,
        content_hash,
    };
    let manifest = Manifest { header, chunk_hashes };
    let path = dir.join("valid.cvsnap");
    let mut writer = FileWriter::open(&path, manifest.clone(), false).unwrap();
    for (index, chunk) in image.chunks(usize::try_from(chunk_size).unwrap()).enumerate() {
        writer.write_chunk(index as u32, chunk).unwrap();
    }
    writer.finish().unwrap();
    (manifest, std::fs::read(&path).unwrap())
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Truncate { to: usize },
    Extend { bytes: Vec<u8> },
    /// One header field set to `value` (its low bytes).
    Field { field: usize, value: u64 },
    /// A chunk count and chunk size with a size that gives that count: claims that agree, of
    /// any size (the size saturates where they cannot).
    Claim { chunks: u32, chunk_size: u64, last: u64 },
}

fn interesting() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), Just(1), Just(u64::from(u32::MAX)), Just(u64::MAX), Just(1 << 40), 0..5000u64, any::<u64>()]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        any::<usize>().prop_map(|to| Mutation::Truncate { to }),
        prop::collection::vec(any::<u8>(), 1..300).prop_map(|bytes| Mutation::Extend { bytes }),
        (0..FIELDS.len(), interesting()).prop_map(|(field, value)| Mutation::Field { field, value }),
        (prop_oneof![Just(u32::MAX), Just(1 << 20), 0..5000u32, any::<u32>()], interesting(), any::<u64>())
            .prop_map(|(chunks, chunk_size, last)| Mutation::Claim { chunks, chunk_size, last }),
    ]
}

fn set(bytes: &mut [u8], field: usize, value: u64) {
    let (at, width) = FIELDS[field];
    if let Some(slot) = bytes.get_mut(at..at + width) {
        slot.copy_from_slice(&value.to_le_bytes()[..width]);
    }
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    match mutation {
        Mutation::Flip { at, mask } => {
            let len = bytes.len();
            if let Some(byte) = bytes.get_mut(at % len.max(1)) {
                *byte ^= mask;
            }
        }
        Mutation::Truncate { to } => bytes.truncate(to % (bytes.len() + 1)),
        Mutation::Extend { bytes: more } => bytes.extend_from_slice(more),
        Mutation::Field { field, value } => set(bytes, *field, *value),
        Mutation::Claim { chunks, chunk_size, last } => {
            let full = u64::from(chunks.saturating_sub(1)).checked_mul(*chunk_size);
            let size = match (chunks, last.checked_rem(*chunk_size)) {
                (0, _) => 0,
                (_, Some(tail)) => full.and_then(|full| full.checked_add(tail + 1)).unwrap_or(u64::MAX),
                (_, None) => u64::MAX,
            };
            set(bytes, SIZE, size);
            set(bytes, CHUNK_SIZE, *chunk_size);
            set(bytes, CHUNKS, u64::from(*chunks));
        }
    }
}

/// Seals the header checksum over whatever the header now says, as an attacker can.
fn reseal(bytes: &mut [u8]) {
    if bytes.len() >= TABLE_AT {
        let checksum = vault_api::Sha256::of(&bytes[..TABLE_AT - 32]);
        bytes[TABLE_AT - 32..TABLE_AT].copy_from_slice(&checksum.0);
    }
}

/// Reads `bytes` as a snapshot file every way the CLI does; returns the most heap held.
fn read_every_way(dir: &Path, bytes: &[u8], manifest: &Manifest) -> u64 {
    let path = dir.join("crafted.cvsnap");
    std::fs::write(&path, bytes).unwrap();
    let resumed = dir.join("resumed.cvsnap");
    let _ = std::fs::remove_file(&resumed);
    std::fs::write(FileWriter::part_path(&resumed), bytes).unwrap();
    let path_arg = path.to_str().unwrap();
    let ((), peak) = peak_heap(|| {
        let _ = Manifest::read(&mut &bytes[..], bytes.len() as u64);
        let _ = file::verify(&path, |_| {});
        if let Ok(mut reader) = FileReader::open(&path) {
            while let Ok(Some(_)) = reader.next_chunk() {}
        }
        let _ = vault_ops::import::verify(&path, &mut vault_ops::progress::Silent);
        match vault_cli::run(["vault", "--json", "verify", path_arg]) {
            Ok(_) | Err(CliError::Ops(OpsError::File(_))) => {}
            Err(other) => panic!("verify failed with an error of another kind: {other:?}"),
        }
        // An export resuming from a crafted `.part` file keeps only the chunks that verify.
        if let Ok(writer) = FileWriter::open(&resumed, manifest.clone(), false) {
            assert!(writer.done <= manifest.header.chunks);
        }
    });
    peak
}

fn bound(bytes: &[u8]) -> u64 {
    FIXED_HEAP + 3 * bytes.len() as u64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn arbitrary_bytes_are_refused_with_bounded_memory(
        mut bytes in prop::collection::vec(any::<u8>(), 0..600),
        prefixed in any::<bool>(),
        content_hash in prop::sample::select(&CONTENT_HASHES[..]),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (manifest, valid) = valid(dir.path(), CHUNK_SIZES[0], content_hash);
        if prefixed {
            // A valid magic, version and header length, and a sealed checksum: the header's
            // fields are reached.
            bytes.splice(0..bytes.len().min(HEADER_AT), valid[..HEADER_AT].iter().copied());
            reseal(&mut bytes);
        }
        let peak = read_every_way(dir.path(), &bytes, &manifest);
        prop_assert!(peak <= bound(&bytes), "held {peak} bytes reading a file of {}", bytes.len());
    }

    #[test]
    fn mutated_files_are_read_or_refused_with_bounded_memory(
        chunk_size in prop::sample::select(&CHUNK_SIZES[..]),
        content_hash in prop::sample::select(&CONTENT_HASHES[..]),
        mutations in prop::collection::vec(mutation(), 1..5),
        sealed in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (manifest, mut bytes) = valid(dir.path(), chunk_size, content_hash);
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        if sealed {
            reseal(&mut bytes);
        }
        let peak = read_every_way(dir.path(), &bytes, &manifest);
        prop_assert!(peak <= bound(&bytes), "held {peak} bytes reading a file of {}", bytes.len());
    }
}

#[test]
fn the_valid_files_read_every_way() {
    for (chunk_size, content_hash) in CHUNK_SIZES.into_iter().flat_map(|size| CONTENT_HASHES.map(|hash| (size, hash))) {
        let dir = tempfile::tempdir().unwrap();
        let (manifest, bytes) = valid(dir.path(), chunk_size, content_hash);
        let path = dir.path().join("valid.cvsnap");
        assert_eq!(file::verify(&path, |_| {}).unwrap(), manifest);
        let peak = read_every_way(dir.path(), &bytes, &manifest);
        println!("reading a {}-byte file in chunks of {chunk_size} every way held at most {peak} bytes of heap", bytes.len());
        assert!(peak <= bound(&bytes), "{peak}");
    }
}
