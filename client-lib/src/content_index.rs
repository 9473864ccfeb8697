//! The content index of a serde dump, so that the next dump moves only what is new.
//!
//! A dump with a content index (`DumpBegin::content_index`) cuts each chunk it is asked for into
//! pieces where its bytes say (`cdc`), each restarting at the chunk's start, and records each
//! piece's BLAKE3 digest, offset in the image and length in CONTENT_PIECES, under the chunk's
//! index (a chunk asked for again records the same). When its vault names the dump a base
//! (`DumpEnd::base`) and every chunk was read, the pieces become CONTENT_BASE, a hash table of
//! them by digest, written chunk by chunk: version u8 (2) | snapshot u64 | slots u64 (a power of
//! two, at least twice the pieces) | pieces u64, then each slot: digest [u8; 32] | offset u64 |
//! length u32, little endian, an empty slot all zeros (no piece is empty). A piece's slot is its
//! digest's first 8 bytes (little endian) modulo the slots, or the next free one after it. A dump
//! against that base answers each chunk as the ranges of its pieces found in the base's image,
//! in at most `MAX_BASE_CHUNKS` of the base's chunks (`Chunk::base_ranges`), and the bytes of the
//! others. Version 0 (or no memory) is no index.
//!
//! A digest is a piece's address only in this app's own index, for its own snapshot: a piece
//! the index finds is one the base has, byte for byte, unless BLAKE3 collides.

use ic_stable_structures::{Memory, StableBTreeMap};
use vault_api::ContentHash;
use vault_api::codec::{Reader, Writer};
use vault_api::protocol::{BaseRange, CHUNK_SIZE, MAX_BASE_CHUNKS, WASM_PAGE_SIZE};

use crate::cdc;
use crate::layout;
use crate::store::{self, Mem};

const VERSION: u8 = 2;
const INDEX_HEADER_BYTES: u64 = 1 + 8 + 8 + 8;
const PIECE_BYTES: usize = 32 + 8 + 4;

/// A piece of a dump's image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Piece {
    digest: [u8; 32],
    offset: u64,
    len: u32,
}

impl Piece {
    fn write(&self, w: &mut Writer) {
        w.bytes(&self.digest).u64(self.offset).u32(self.len);
    }

    fn read(r: &mut Reader) -> Piece {
        Piece { digest: r.array(), offset: r.u64(), len: r.u32() }
    }

    /// The chunks of the base image of [`CHUNK_SIZE`] the piece is in.
    fn base_chunks(&self) -> std::ops::RangeInclusive<u64> {
        self.offset / CHUNK_SIZE..=(self.offset + u64::from(self.len) - 1) / CHUNK_SIZE
    }
}

fn recorded() -> StableBTreeMap<u32, Vec<u8>, Mem> {
    StableBTreeMap::init(store::memory(layout::CONTENT_PIECES))
}

/// Forgets the pieces recorded for the dump before.
pub fn clear_recorded() {
    recorded().clear_new();
}

/// The answer to chunk `index` of a dump with a content index, its bytes `bytes` from `start` in
/// the image; against the base CONTENT_BASE indexes if `against_base`: the bytes not found in the
/// base and the ranges that are (none if not against the base: the bytes are the chunk's). A
/// piece found in a chunk of the base past the first `MAX_BASE_CHUNKS` the answer reads goes as
/// bytes. Records the chunk's pieces.
pub fn answer(index: u32, start: u64, bytes: Vec<u8>, against_base: bool) -> (Vec<u8>, Option<Vec<BaseRange>>) {
    let base = against_base.then(BaseIndex::open).flatten();
    let mut pieces = Writer::with_capacity(bytes.len() / cdc::MIN_PIECE * PIECE_BYTES);
    let (mut data, mut ranges) = (Vec::new(), Vec::<BaseRange>::new());
    let mut base_chunks: Vec<u64> = Vec::with_capacity(MAX_BASE_CHUNKS);
    for range in cdc::pieces(&bytes) {
        let piece = &bytes[range.clone()];
        let digest = ContentHash::Blake3.digest(piece).0;
        Piece { digest, offset: start + range.start as u64, len: piece.len() as u32 }.write(&mut pieces);
        let (at, len) = (range.start as u32, piece.len() as u32);
        let found = base.as_ref().and_then(|base| base.find(&digest)).filter(|found| {
            let new: Vec<u64> = found.base_chunks().filter(|chunk| !base_chunks.contains(chunk)).collect();
            let fits = base_chunks.len() + new.len() <= MAX_BASE_CHUNKS;
            if fits {
                base_chunks.extend(new);
            }
            fits
        });
        match found.map(|found| found.offset) {
            Some(from) => match ranges.last_mut() {
                Some(last) if last.at + last.len == at && last.from + last.len as u64 == from => last.len += len,
                _ => ranges.push(BaseRange { at, from, len }),
            },
            None if against_base => data.extend_from_slice(piece),
            None => {}
        }
    }
    recorded().insert(index, pieces.into_vec());
    if against_base { (data, Some(ranges)) } else { (bytes, None) }
}

/// Whether CONTENT_BASE indexes the image of `snapshot`.
pub fn indexes(snapshot: u64) -> bool {
    BaseIndex::open().is_some_and(|base| base.snapshot == snapshot)
}

/// Makes the pieces recorded for chunks `0..chunks` the index of the base, `snapshot`, read and
/// written a chunk's pieces at a time; false, changing nothing, unless each of them was recorded
/// and the memory grows to hold the table.
pub fn keep_as_base(snapshot: u64, chunks: u32) -> bool {
    let recorded = recorded();
    if recorded.len() != chunks as u64 || recorded.last_key_value().is_some_and(|(last, _)| last + 1 != chunks) {
        return false;
    }
    let pieces: u64 = recorded.iter().map(|entry| (entry.value().len() / PIECE_BYTES) as u64).sum();
    let slots = (pieces * 2).next_power_of_two().max(2);
    let memory = store::memory(layout::CONTENT_BASE);
    let bytes = INDEX_HEADER_BYTES + slots * PIECE_BYTES as u64;
    let needed = bytes.div_ceil(WASM_PAGE_SIZE);
    if memory.size() < needed && memory.grow(needed - memory.size()) < 0 {
        return false;
    }
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < bytes {
        let len = (bytes - at).min(zeros.len() as u64);
        memory.write(at, &zeros[..len as usize]);
        at += len;
    }
    let index = BaseIndex { memory, snapshot, slots };
    let mut kept = 0;
    for entry in recorded.iter() {
        let blob = entry.value();
        let mut r = Reader::new(&blob);
        for _ in 0..blob.len() / PIECE_BYTES {
            kept += index.insert(&Piece::read(&mut r)) as u64;
        }
    }
    let mut header = Writer::with_capacity(INDEX_HEADER_BYTES as usize);
    header.u8(VERSION).u64(snapshot).u64(slots).u64(kept);
    index.memory.write(0, &header.into_vec());
    clear_recorded();
    true
}

/// Forgets the index: no dump builds on it.
pub fn forget_base() {
    let memory = store::memory(layout::CONTENT_BASE);
    if memory.size() > 0 {
        memory.write(0, &[0]);
    }
}

/// CONTENT_BASE, if it holds an index.
struct BaseIndex {
    memory: Mem,
    snapshot: u64,
    slots: u64,
}

impl BaseIndex {
    fn open() -> Option<BaseIndex> {
        let memory = store::memory(layout::CONTENT_BASE);
        if memory.size() == 0 {
            return None;
        }
        let mut header = [0; INDEX_HEADER_BYTES as usize];
        memory.read(0, &mut header);
        let mut r = Reader::new(&header);
        (r.u8() == VERSION).then(|| BaseIndex { snapshot: r.u64(), slots: r.u64(), memory })
    }

    fn slot(&self, at: u64) -> Piece {
        let mut bytes = [0; PIECE_BYTES];
        self.memory.read(INDEX_HEADER_BYTES + at * PIECE_BYTES as u64, &mut bytes);
        Piece::read(&mut Reader::new(&bytes))
    }

    /// The slots a piece of digest `digest` may be in, in order.
    fn probe(&self, digest: &[u8; 32]) -> impl Iterator<Item = u64> + '_ {
        let first = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
        (0..self.slots).map(move |i| first.wrapping_add(i) & (self.slots - 1))
    }

    /// Puts `piece` in its slot; false if a piece of its digest is there already.
    fn insert(&self, piece: &Piece) -> bool {
        for at in self.probe(&piece.digest) {
            let slot = self.slot(at);
            if slot.len == 0 {
                let mut w = Writer::with_capacity(PIECE_BYTES);
                piece.write(&mut w);
                self.memory.write(INDEX_HEADER_BYTES + at * PIECE_BYTES as u64, &w.into_vec());
                return true;
            }
            if slot.digest == piece.digest {
                return false;
            }
        }
        unreachable!("the table has twice the slots of its pieces")
    }

    /// The piece of the base's image of digest `digest`.
    fn find(&self, digest: &[u8; 32]) -> Option<Piece> {
        self.probe(digest).map(|at| self.slot(at)).take_while(|slot| slot.len != 0).find(|slot| slot.digest == *digest)
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::cdc::tests::noise;

    /// A chunk rebuilt from its answer (`data` and `ranges`) over `base`, as the vault does.
    pub fn rebuild(base: &[u8], data: &[u8], ranges: &[BaseRange]) -> Vec<u8> {
        let len = data.len() as u64 + ranges.iter().map(|range| u64::from(range.len)).sum::<u64>();
        let read = |from: u64, len: u32, out: &mut Vec<u8>| {
            out.extend_from_slice(base.get(from as usize..from as usize + len as usize)?);
            Some(())
        };
        vault_api::protocol::rebuild_from_ranges(len, ranges, data, read).expect("the base holds every range")
    }

    /// Dumps `image` in chunks of `chunk_size`, against the base index if `against_base`; the
    /// answers.
    fn dump(image: &[u8], chunk_size: usize, against_base: bool) -> Vec<(Vec<u8>, Option<Vec<BaseRange>>)> {
        clear_recorded();
        image.chunks(chunk_size).enumerate().map(|(i, chunk)| answer(i as u32, (i * chunk_size) as u64, chunk.to_vec(), against_base)).collect()
    }

    #[test]
    fn a_dump_against_its_base_moves_what_is_new_and_rebuilds_byte_for_byte() {
        let chunk_size = 256 * 1024;
        let base = noise(1 << 20, 1);
        let full = dump(&base, chunk_size, true);
        let whole = |(data, ranges): &(Vec<u8>, Option<Vec<BaseRange>>), chunk: &[u8]| ranges.as_deref() == Some(&[]) && data == chunk;
        assert!(full.iter().zip(base.chunks(chunk_size)).all(|(answer, chunk)| whole(answer, chunk)), "no base held: all the bytes");
        assert!(!indexes(41));
        assert!(!keep_as_base(41, 5), "a chunk too many");
        assert!(keep_as_base(41, 4));
        assert!(indexes(41) && !indexes(40));
        let mut image = base.clone();
        image.splice(300_000..300_010, noise(100, 2));
        image[900_000] ^= 1;
        let answers = dump(&image, chunk_size, true);
        let mut moved = 0;
        for ((data, ranges), chunk) in answers.iter().zip(image.chunks(chunk_size)) {
            let ranges = ranges.as_ref().expect("against the base");
            assert!(rebuild(&base, data, ranges) == chunk);
            moved += data.len();
        }
        // The pieces around two changes, and the first of each chunk after the first change.
        assert!(moved < 40 * 1024, "{moved} bytes moved for 101 changed");
        let chunks = image.len().div_ceil(chunk_size) as u32;
        assert!(keep_as_base(42, chunks) && indexes(42), "the new image becomes the base");
    }

    #[test]
    fn an_answer_reads_at_most_four_chunks_of_the_base() {
        // A base of six chunks, and an image of pieces of each of them in turn: its first chunk
        // names ranges in four of them and carries the rest as bytes.
        let chunk = CHUNK_SIZE as usize;
        let base = noise(6 * chunk, 5);
        dump(&base, chunk, false);
        assert!(keep_as_base(1, 6));
        let image: Vec<u8> = (0..6).flat_map(|c| base[c * chunk + 100_000..c * chunk + 150_000].to_vec()).collect();
        let (data, ranges) = answer(0, 0, image.clone(), true);
        let ranges = ranges.expect("against the base");
        let read: std::collections::BTreeSet<u64> = ranges.iter().flat_map(|r| r.from / CHUNK_SIZE..=(r.from + r.len as u64 - 1) / CHUNK_SIZE).collect();
        assert_eq!(read.len(), MAX_BASE_CHUNKS, "{read:?}");
        assert!(data.len() >= 2 * 50_000 - 2 * cdc::MAX_PIECE, "the pieces of the last two go as bytes: {}", data.len());
        assert!(rebuild(&base, &data, &ranges) == image);
        forget_base();
        assert!(!indexes(1), "forgotten");
    }

    #[test]
    fn a_base_needs_every_chunk_recorded() {
        let image = noise(40_000, 3);
        clear_recorded();
        answer(0, 0, image[..20_000].to_vec(), false);
        assert!(!keep_as_base(7, 2), "chunk 1 was never read");
        answer(1, 20_000, image[20_000..].to_vec(), false);
        answer(1, 20_000, image[20_000..].to_vec(), false);
        assert!(keep_as_base(7, 2), "a chunk read twice records its pieces once");
        assert!(!keep_as_base(8, 2), "kept: nothing is recorded for another");
        assert!(indexes(7));
    }
}
