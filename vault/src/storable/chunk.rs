//! The chunk store's records (`chunk_store`): where a chunk's bytes are, what a chunk stored as
//! a delta is over, the free extents of its data memory, and its header.

use ic_stable_structures::storable::Bound;
use vault_api::codec::{Reader, Writer};

use super::fields::{V1, check_version, storable};

/// `CHUNK_LOCATIONS` values, 17 bytes: version | offset u64 (4 KiB aligned, in the data memory) |
/// length u32 | references u32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLocation {
    pub offset: u64,
    pub len: u32,
    pub refs: u32,
}

impl ChunkLocation {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(17);
        w.u8(V1).u64(self.offset).u32(self.len).u32(self.refs);
        w.into_vec()
    }
    fn decode(bytes: &[u8]) -> Self {
        let mut r = Reader::new(bytes);
        check_version(&mut r, "chunk location");
        ChunkLocation { offset: r.u64(), len: r.u32(), refs: r.u32() }
    }
}
storable!(ChunkLocation, Bound::Bounded { max_size: 17, is_fixed_size: true });

/// `CHUNK_DELTAS` values, 42 bytes: version | base digest [u8; 32] | length u32 | chain bytes
/// u32 | depth u8. A chunk stored as a delta over another (`chunk_store`): the chunk it is over,
/// its own length, what reading it back reads (the first chunk stored whole under it and the
/// deltas up to this one), and how many deltas that is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeltaRecord {
    pub base: [u8; 32],
    pub len: u32,
    pub chain_bytes: u32,
    pub depth: u8,
}

impl DeltaRecord {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(42);
        w.u8(V1).bytes(&self.base).u32(self.len).u32(self.chain_bytes).u8(self.depth);
        w.into_vec()
    }
    fn decode(bytes: &[u8]) -> Self {
        let mut r = Reader::new(bytes);
        check_version(&mut r, "chunk delta");
        DeltaRecord { base: r.array(), len: r.u32(), chain_bytes: r.u32(), depth: r.u8() }
    }
}
storable!(DeltaRecord, Bound::Bounded { max_size: 42, is_fixed_size: true });

/// `CHUNK_FREE_BY_SIZE` keys, 12 bytes: pages u32 BE | offset u64 BE, so the first key at or
/// after `(n, 0)` is the smallest free extent of at least `n` pages (lowest offset among equals).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FreeExtent {
    pub pages: u32,
    pub offset: u64,
}

impl FreeExtent {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(12);
        w.bytes(&self.pages.to_be_bytes()).bytes(&self.offset.to_be_bytes());
        w.into_vec()
    }
    fn decode(bytes: &[u8]) -> Self {
        let mut r = Reader::new(bytes);
        FreeExtent { pages: u32::from_be_bytes(r.array()), offset: u64::from_be_bytes(r.array()) }
    }
}
storable!(FreeExtent, Bound::Bounded { max_size: 12, is_fixed_size: true });

/// `CHUNK_HEADER`, 33 bytes: version | bump end u64 | chunks u64 | stored bytes u64 | free
/// bytes u64.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkStoreHeader {
    /// End of the data memory's used region: every byte from here on is unallocated.
    pub bump_end: u64,
    pub chunks: u64,
    /// The chunks' lengths, summed.
    pub stored_bytes: u64,
    /// Bytes of the free extents below `bump_end`.
    pub free_bytes: u64,
}

impl ChunkStoreHeader {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(33);
        w.u8(V1).u64(self.bump_end).u64(self.chunks).u64(self.stored_bytes).u64(self.free_bytes);
        w.into_vec()
    }
    fn decode(bytes: &[u8]) -> Self {
        let mut r = Reader::new(bytes);
        check_version(&mut r, "chunk store header");
        ChunkStoreHeader { bump_end: r.u64(), chunks: r.u64(), stored_bytes: r.u64(), free_bytes: r.u64() }
    }
}
storable!(ChunkStoreHeader, Bound::Bounded { max_size: 33, is_fixed_size: true });

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storable::tests::check;

    #[test]
    fn golden_layouts() {
        check("chunk_location", ChunkLocation { offset: 0x0102_0304_0506_0000, len: 0x0001_f000, refs: 3 });
        let delta = DeltaRecord { base: [0xab; 32], len: 0x0020_0000, chain_bytes: 0x0001_1040, depth: 3 };
        check("chunk_delta", delta);
        check("free_extent", FreeExtent { pages: 0x0102, offset: 0x0003_0000 });
        let header = ChunkStoreHeader { bump_end: 0x0004_0000, chunks: 2, stored_bytes: 0x0002_1000, free_bytes: 0x1000 };
        check("chunk_store_header", header);
        check("chunk_store_header_fresh", ChunkStoreHeader::default());
    }
}
