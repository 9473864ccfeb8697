//! Content-addressed chunks with their bytes apart from their index: a chunk's bytes are written
//! once, into 4 KiB pages of a data memory of their own, and a `StableBTreeMap` keeps one small
//! record per chunk (a map whose values are the bytes rewrites every value of a node it saves).
//! A chunk close to one stored already (an incremental snapshot's, rebuilt over its base's) may
//! be stored as a delta over it: only the pages that differ (`pages::delta`).
//!
//! ```text
//! memory                structure                                  key -> value
//! CHUNK_HEADER          StableCell<ChunkStoreHeader>               bump end, totals, migration cursor
//! CHUNK_BYTES           raw Memory                                 the bytes, in 4 KiB pages (below)
//! CHUNK_LOCATIONS       StableBTreeMap<[u8; 32], ChunkLocation>    chunk digest -> offset, length, references
//! CHUNK_FREE_BY_SIZE    StableBTreeMap<FreeExtent, ()>             (pages, offset) of each free extent
//! CHUNK_FREE_BY_OFFSET  StableBTreeMap<u64, u32>                   offset -> pages of each free extent
//! CHUNK_DELTAS          StableBTreeMap<[u8; 32], DeltaRecord>      chunk stored as a delta -> the chunk it is
//!                                                                  over, its length, its chain's bytes and depth
//! legacy CHUNK_DATA     StableBTreeMap<[u8; 32], Vec<u8>>          the chunks stored before this store, served
//! legacy CHUNK_REFS     StableBTreeMap<[u8; 32], u32>              and released where they are
//!
//! CHUNK_BYTES          0                                        bump end        size() (64 KiB pages)
//!                      | a: 3 pages | free: 2 | b: 1 | c: 512 | ...  |  unallocated  |
//! ```
//!
//! A chunk of `len` bytes takes `max(1, ceil(len / 4096))` pages at a page-aligned offset, so its
//! write dirties its own pages only (the rest of its last page is unspecified). The chunks and the
//! free extents tile `0 .. bump end`; no two free extents touch (a freed extent merges with its
//! free neighbours on both sides) and none ends at the bump end (it moves the bump end down
//! instead). A new chunk takes the smallest free extent that fits, lowest offset first, and
//! gives back the rest; with none it takes pages at the bump end, growing the data memory.
//!
//! A delta is stored in pages as a chunk is (its location's length is the delta's) and holds one
//! reference to the chunk it is over, released when the delta goes. A chunk is stored as a
//! delta only if that takes fewer bytes than the chunk, and its chain (the first chunk stored
//! whole under it and the deltas up to it) takes at most twice the chunk's length and has at
//! most [`MAX_DELTA_DEPTH`] deltas: reading a chunk back reads at most twice its length, in at
//! most `MAX_DELTA_DEPTH + 1` parts. The bytes stored (totals, [`ChunkStore::stored_len`]) are those
//! the pages hold: a delta's, not its chunk's length.
//!
//! Bounds: a call is O(log n) in the chunks and free extents and reads or writes one chunk's
//! bytes at most, once (a delta's chain: its parts, each once; a release frees at most the
//! chain); a chunk has at most `u32::MAX` bytes (the vault's at most `CHUNK_SIZE`)
//! and references; extents count pages in a u32, so the data memory stays under 16 TiB (stable
//! memory is at most 500 GiB).
//!
//! The chunks stored before this store (layouts up to 3) are not moved: a copy would write
//! every byte again and keep both copies, since a `MemoryManager` never gives a memory's pages
//! back. They stay in the legacy maps, served, referenced and released there (at zero only
//! the count goes: removing a 2 MiB value rewrites a node of such values, the cost this store
//! exists to avoid, and frees nothing another memory could use). Every call here looks in the
//! right place itself.

use std::fmt;

use ic_stable_structures::{Memory, StableBTreeMap, StableCell};
use vault_api::protocol::WASM_PAGE_SIZE;

use crate::pages;
use crate::storable::{ChunkLocation, ChunkStoreHeader, DeltaRecord, FreeExtent};

/// Allocation unit of the data memory, in bytes.
pub const PAGE: u64 = 4096;

/// Deltas at most between a chunk stored as one and the first chunk stored whole under it.
pub const MAX_DELTA_DEPTH: u8 = 64;

/// The memories a [`ChunkStore`] lives in, each its own (see the module doc).
pub struct ChunkStoreMemories<M> {
    pub header: M,
    pub data: M,
    pub locations: M,
    pub free_by_size: M,
    pub free_by_offset: M,
    /// `CHUNK_DATA` of the layouts before this store: hash -> bytes.
    pub legacy_data: M,
    /// `CHUNK_REFS` of the layouts before this store: hash -> references.
    pub legacy_refs: M,
    pub deltas: M,
}

/// What [`ChunkStore::put`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// A new chunk: its bytes are written, with one reference.
    Written,
    /// The chunk was stored already: one more reference, its bytes not written again.
    Shared { refs: u32 },
}

/// What [`ChunkStore::release`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Released {
    /// References are left.
    Kept {
        refs: u32,
    },
    /// That was the last reference: the chunk is gone and its pages are free.
    Freed,
    NotStored,
}

/// The store's usage, for the vault's reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkTotals {
    /// Chunks in the store (legacy ones not moved yet are in `legacy_chunks`).
    pub chunks: u64,
    /// Their lengths, summed.
    pub stored_bytes: u64,
    /// Bytes of the data memory's used region: the chunks' pages and the free extents among them.
    pub allocated_bytes: u64,
    /// Bytes of the free extents.
    pub free_bytes: u64,
    /// Chunks still in the legacy maps.
    pub legacy_chunks: u64,
    /// Chunks stored as deltas (among `chunks`).
    pub delta_chunks: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkStoreError {
    /// The data memory could not grow by the bytes a new chunk needs: the stable memory is full.
    OutOfMemory {
        needed: u64,
    },
    /// A chunk of more than `u32::MAX` bytes.
    TooLong {
        len: usize,
    },
    /// The hash is stored with another length: it is not these bytes' hash.
    LengthMismatch {
        stored: u32,
        given: usize,
    },
    /// The chunk has `u32::MAX` references already.
    TooManyRefs,
    /// No chunk is stored under the hash.
    NotStored,
}

impl fmt::Display for ChunkStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkStoreError::OutOfMemory { needed } => write!(f, "the chunk store cannot grow by {needed} bytes: stable memory is full"),
            ChunkStoreError::TooLong { len } => write!(f, "a chunk of {len} bytes is longer than a chunk may be"),
            ChunkStoreError::LengthMismatch { stored, given } => {
                write!(f, "the chunk is stored with {stored} bytes, not {given}: the hash is not of these bytes")
            }
            ChunkStoreError::TooManyRefs => write!(f, "the chunk has as many references as it may have"),
            ChunkStoreError::NotStored => write!(f, "no chunk is stored under the hash"),
        }
    }
}

impl std::error::Error for ChunkStoreError {}

pub struct ChunkStore<M: Memory> {
    header: StableCell<ChunkStoreHeader, M>,
    data: M,
    locations: StableBTreeMap<[u8; 32], ChunkLocation, M>,
    free_by_size: StableBTreeMap<FreeExtent, (), M>,
    free_by_offset: StableBTreeMap<u64, u32, M>,
    legacy_data: StableBTreeMap<[u8; 32], Vec<u8>, M>,
    legacy_refs: StableBTreeMap<[u8; 32], u32, M>,
    deltas: StableBTreeMap<[u8; 32], DeltaRecord, M>,
}

impl<M: Memory> ChunkStore<M> {
    /// The store in `memories`: a new one in empty memories, else the one they hold.
    pub fn init(memories: ChunkStoreMemories<M>) -> Self {
        let store = ChunkStore {
            header: StableCell::init(memories.header, ChunkStoreHeader::default()),
            data: memories.data,
            locations: StableBTreeMap::init(memories.locations),
            free_by_size: StableBTreeMap::init(memories.free_by_size),
            free_by_offset: StableBTreeMap::init(memories.free_by_offset),
            legacy_data: StableBTreeMap::init(memories.legacy_data),
            legacy_refs: StableBTreeMap::init(memories.legacy_refs),
            deltas: StableBTreeMap::init(memories.deltas),
        };
        assert!(store.header().bump_end <= store.data.size() * WASM_PAGE_SIZE, "the chunk store's used region ends past its data memory");
        store
    }

    /// Stores chunk `hash` (the caller's digest of `bytes`) with one more reference; its bytes
    /// are written only if it is new. (A legacy chunk's length is not compared: that would read it.)
    pub fn put(&mut self, hash: [u8; 32], bytes: &[u8]) -> Result<PutOutcome, ChunkStoreError> {
        if let Some(refs) = self.legacy_refs_of(&hash) {
            return self.add_legacy_ref(hash, refs).map(|refs| PutOutcome::Shared { refs });
        }
        if let Some(location) = self.locations.get(&hash) {
            let len = self.delta_of(&hash).map_or(location.len, |delta| delta.len);
            if len as usize != bytes.len() {
                return Err(ChunkStoreError::LengthMismatch { stored: len, given: bytes.len() });
            }
            return self.add_ref_at(hash, location).map(|refs| PutOutcome::Shared { refs });
        }
        let mut header = self.header();
        self.write_new(&mut header, hash, bytes, 1)?;
        self.header.set(header);
        Ok(PutOutcome::Written)
    }

    /// [`Self::put`], where `base` is a stored chunk and `base_bytes` its bytes: a new chunk is
    /// stored as a delta over `base` if the module doc's bounds allow, else whole.
    pub fn put_over(&mut self, hash: [u8; 32], bytes: &[u8], base: &[u8; 32], base_bytes: &[u8]) -> Result<PutOutcome, ChunkStoreError> {
        let stored = self.legacy_refs_of(&hash).is_some() || self.locations.contains_key(&hash);
        let Some((delta, record)) = (!stored).then(|| self.delta_over(base, base_bytes, bytes)).flatten() else {
            return self.put(hash, bytes);
        };
        let mut header = self.header();
        self.write_new(&mut header, hash, &delta, 1)?;
        self.header.set(header);
        self.deltas.insert(hash, record);
        self.add_ref(base).expect("a delta's base has fewer than u32::MAX references (checked)");
        Ok(PutOutcome::Written)
    }

    /// `bytes` as a delta over stored chunk `base` (of bytes `base_bytes`) and its record, if the
    /// bounds of the module doc allow one.
    fn delta_over(&self, base: &[u8; 32], base_bytes: &[u8], bytes: &[u8]) -> Option<(Vec<u8>, DeltaRecord)> {
        let len = u32::try_from(bytes.len()).ok()?;
        self.locations.get(base).filter(|location| location.refs < u32::MAX)?;
        let (depth, chain_bytes) = match self.delta_of(base) {
            Some(under) => (under.depth.checked_add(1)?, under.chain_bytes),
            None => (1, self.stored_len(base)?),
        };
        let delta = pages::delta(base_bytes, bytes);
        let chain_bytes = chain_bytes.checked_add(u32::try_from(delta.len()).ok()?)?;
        let within = depth <= MAX_DELTA_DEPTH && delta.len() < bytes.len() && u64::from(chain_bytes) <= 2 * u64::from(len);
        within.then_some((delta, DeltaRecord { base: *base, len, chain_bytes, depth }))
    }

    /// The record of chunk `hash` if it is stored as a delta.
    fn delta_of(&self, hash: &[u8; 32]) -> Option<DeltaRecord> {
        if self.deltas.is_empty() {
            return None;
        }
        self.deltas.get(hash)
    }

    /// The chunk that chunk `hash`, stored as a delta, is over.
    pub fn delta_base(&self, hash: &[u8; 32]) -> Option<[u8; 32]> {
        self.delta_of(hash).map(|delta| delta.base)
    }

    /// One more reference to chunk `hash`, which is stored (its bytes are not read); its references.
    pub fn add_ref(&mut self, hash: &[u8; 32]) -> Result<u32, ChunkStoreError> {
        if let Some(refs) = self.legacy_refs_of(hash) {
            return self.add_legacy_ref(*hash, refs);
        }
        let location = self.locations.get(hash).ok_or(ChunkStoreError::NotStored)?;
        self.add_ref_at(*hash, location)
    }

    /// One reference fewer to chunk `hash`; at none it is removed and its pages freed (a delta
    /// then releases the chunk it is over).
    pub fn release(&mut self, hash: &[u8; 32]) -> Released {
        if let Some(refs) = self.legacy_refs_of(hash) {
            return match refs {
                0 | 1 => {
                    self.legacy_refs.remove(hash);
                    Released::Freed
                }
                _ => {
                    self.legacy_refs.insert(*hash, refs - 1);
                    Released::Kept { refs: refs - 1 }
                }
            };
        }
        let Some(mut location) = self.locations.get(hash) else { return Released::NotStored };
        if location.refs > 1 {
            location.refs -= 1;
            self.locations.insert(*hash, location);
            return Released::Kept { refs: location.refs };
        }
        self.locations.remove(hash);
        let mut header = self.header();
        self.free(&mut header, FreeExtent { pages: pages_for(location.len), offset: location.offset });
        header.chunks -= 1;
        header.stored_bytes -= location.len as u64;
        self.header.set(header);
        if let Some(delta) = self.delta_of(hash) {
            self.deltas.remove(hash);
            self.release(&delta.base);
        }
        Released::Freed
    }

    #[cfg(test)]
    pub fn contains(&self, hash: &[u8; 32]) -> bool {
        self.legacy_refs_of(hash).is_some() || self.locations.contains_key(hash)
    }

    #[cfg(test)]
    /// Chunk `hash`'s length (a legacy chunk's is read with its bytes).
    pub fn chunk_len(&self, hash: &[u8; 32]) -> Option<u32> {
        match (self.legacy_refs_of(hash), self.delta_of(hash)) {
            (Some(_), _) => self.legacy_data.get(hash).map(|bytes| bytes.len() as u32),
            (None, Some(delta)) => Some(delta.len),
            (None, None) => self.stored_len(hash),
        }
    }

    /// The bytes chunk `hash` takes in this store's pages (a delta's own, not its chunk's
    /// length), from its record; `None` for a legacy chunk and one not stored.
    pub fn stored_len(&self, hash: &[u8; 32]) -> Option<u32> {
        self.locations.get(hash).map(|location| location.len)
    }

    /// Chunk `hash`'s references.
    pub fn refs(&self, hash: &[u8; 32]) -> Option<u32> {
        self.legacy_refs_of(hash).or_else(|| self.locations.get(hash).map(|location| location.refs))
    }

    /// Chunk `hash`'s bytes: one read, or for a delta one read of each part of its chain, the
    /// chunk stored whole first.
    pub fn get(&self, hash: &[u8; 32]) -> Option<Vec<u8>> {
        if self.legacy_refs_of(hash).is_some() {
            return self.legacy_data.get(hash);
        }
        let location = self.locations.get(hash)?;
        let Some(delta) = self.delta_of(hash) else { return Some(self.stored(location)) };
        let mut chain = vec![(location, delta)];
        let whole = loop {
            let base = chain.last().expect("the chain starts with the chunk").1.base;
            let location = self.locations.get(&base).expect("a delta's base is stored");
            match self.delta_of(&base) {
                Some(under) => chain.push((location, under)),
                None => break location,
            }
        };
        let mut bytes = self.stored(whole);
        for (location, delta) in chain.into_iter().rev() {
            pages::put_delta_in(&mut bytes, delta.len as u64, &self.stored(location));
        }
        Some(bytes)
    }

    /// The bytes stored at `location`.
    fn stored(&self, location: ChunkLocation) -> Vec<u8> {
        let mut bytes = vec![0; location.len as usize];
        self.data.read(location.offset, &mut bytes);
        bytes
    }

    /// Reads chunk `hash`'s bytes from `offset` into `buf`, as many as both have; how many. A
    /// chunk stored whole here is read where its bytes are, those alone; another is got whole.
    pub fn read(&self, hash: &[u8; 32], offset: u32, buf: &mut [u8]) -> Option<usize> {
        if self.legacy_refs_of(hash).is_none() && self.delta_of(hash).is_none() {
            let location = self.locations.get(hash)?;
            let n = (location.len.saturating_sub(offset) as usize).min(buf.len());
            if n > 0 {
                self.data.read(location.offset + u64::from(offset), &mut buf[..n]);
            }
            return Some(n);
        }
        let bytes = self.get(hash)?;
        let from = bytes.get(offset as usize..).unwrap_or_default();
        let n = from.len().min(buf.len());
        buf[..n].copy_from_slice(&from[..n]);
        Some(n)
    }

    pub fn totals(&self) -> ChunkTotals {
        let header = self.header();
        ChunkTotals {
            chunks: header.chunks,
            stored_bytes: header.stored_bytes,
            allocated_bytes: header.bump_end,
            free_bytes: header.free_bytes,
            legacy_chunks: self.legacy_refs.len(),
            delta_chunks: self.deltas.len(),
        }
    }

    fn header(&self) -> ChunkStoreHeader {
        *self.header.get()
    }

    /// The references of chunk `hash` if it is in the legacy maps.
    fn legacy_refs_of(&self, hash: &[u8; 32]) -> Option<u32> {
        if self.legacy_refs.is_empty() {
            return None;
        }
        self.legacy_refs.get(hash)
    }

    fn add_legacy_ref(&mut self, hash: [u8; 32], refs: u32) -> Result<u32, ChunkStoreError> {
        let refs = refs.checked_add(1).ok_or(ChunkStoreError::TooManyRefs)?;
        self.legacy_refs.insert(hash, refs);
        Ok(refs)
    }

    fn add_ref_at(&mut self, hash: [u8; 32], mut location: ChunkLocation) -> Result<u32, ChunkStoreError> {
        location.refs = location.refs.checked_add(1).ok_or(ChunkStoreError::TooManyRefs)?;
        self.locations.insert(hash, location);
        Ok(location.refs)
    }

    /// Writes new chunk `hash` into pages of its own and records it, with `refs` references.
    fn write_new(&mut self, header: &mut ChunkStoreHeader, hash: [u8; 32], bytes: &[u8], refs: u32) -> Result<(), ChunkStoreError> {
        let len = u32::try_from(bytes.len()).map_err(|_| ChunkStoreError::TooLong { len: bytes.len() })?;
        let offset = self.allocate(header, pages_for(len))?;
        self.data.write(offset, bytes);
        let previous = self.locations.insert(hash, ChunkLocation { offset, len, refs });
        assert!(previous.is_none(), "a chunk is written once");
        header.chunks += 1;
        header.stored_bytes += len as u64;
        Ok(())
    }

    /// The offset of `pages` pages taken for a new chunk: the smallest free extent that fits,
    /// else the bump end (growing the data memory as needed).
    fn allocate(&mut self, header: &mut ChunkStoreHeader, pages: u32) -> Result<u64, ChunkStoreError> {
        if let Some(extent) = self.free_by_size.keys_range(FreeExtent { pages, offset: 0 }..).next() {
            self.take_free(header, extent);
            if extent.pages > pages {
                self.add_free(header, FreeExtent { pages: extent.pages - pages, offset: extent.offset + pages as u64 * PAGE });
            }
            return Ok(extent.offset);
        }
        let offset = header.bump_end;
        let end = offset + pages as u64 * PAGE;
        let size = self.data.size() * WASM_PAGE_SIZE;
        if end > size && self.data.grow((end - size).div_ceil(WASM_PAGE_SIZE)) < 0 {
            return Err(ChunkStoreError::OutOfMemory { needed: end - size });
        }
        header.bump_end = end;
        Ok(offset)
    }

    /// Frees `extent`, merged with its free neighbours; at the bump end it moves the bump end.
    fn free(&mut self, header: &mut ChunkStoreHeader, mut extent: FreeExtent) {
        let left = self.free_by_offset.range(..extent.offset).next_back().map(|e| FreeExtent { pages: e.value(), offset: *e.key() });
        if let Some(left) = left.filter(|left| end_of(left) == extent.offset) {
            self.take_free(header, left);
            extent = FreeExtent { pages: merged_pages(left.pages, extent.pages), offset: left.offset };
        }
        if let Some(pages) = self.free_by_offset.get(&end_of(&extent)) {
            self.take_free(header, FreeExtent { pages, offset: end_of(&extent) });
            extent.pages = merged_pages(extent.pages, pages);
        }
        if end_of(&extent) == header.bump_end {
            header.bump_end = extent.offset;
        } else {
            self.add_free(header, extent);
        }
    }

    fn take_free(&mut self, header: &mut ChunkStoreHeader, extent: FreeExtent) {
        self.free_by_size.remove(&extent);
        self.free_by_offset.remove(&extent.offset);
        header.free_bytes -= extent.pages as u64 * PAGE;
    }

    fn add_free(&mut self, header: &mut ChunkStoreHeader, extent: FreeExtent) {
        self.free_by_size.insert(extent, ());
        self.free_by_offset.insert(extent.offset, extent.pages);
        header.free_bytes += extent.pages as u64 * PAGE;
    }
}

/// Pages a chunk of `len` bytes takes: at least one.
fn pages_for(len: u32) -> u32 {
    len.div_ceil(PAGE as u32).max(1)
}

fn end_of(extent: &FreeExtent) -> u64 {
    extent.offset + extent.pages as u64 * PAGE
}

fn merged_pages(a: u32, b: u32) -> u32 {
    a.checked_add(b).expect("the data memory is under 16 TiB")
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::collections::HashMap;
    use std::rc::Rc;

    use ic_stable_structures::VectorMemory;
    use proptest::prelude::*;

    use super::*;

    /// A vector memory that counts the bytes written to it and grows to `max_pages` at most.
    #[derive(Clone, Default)]
    struct TestMemory {
        inner: VectorMemory,
        written: Rc<Cell<u64>>,
        max_pages: Option<u64>,
    }

    impl Memory for TestMemory {
        fn size(&self) -> u64 {
            self.inner.size()
        }
        fn grow(&self, pages: u64) -> i64 {
            match self.max_pages {
                Some(max) if self.size() + pages > max => -1,
                _ => self.inner.grow(pages),
            }
        }
        fn read(&self, offset: u64, dst: &mut [u8]) {
            self.inner.read(offset, dst)
        }
        fn write(&self, offset: u64, src: &[u8]) {
            self.written.set(self.written.get() + src.len() as u64);
            self.inner.write(offset, src)
        }
    }

    type LegacyData = StableBTreeMap<[u8; 32], Vec<u8>, TestMemory>;
    type LegacyRefs = StableBTreeMap<[u8; 32], u32, TestMemory>;

    /// The memories of one store, kept to open it again (as after an upgrade).
    #[derive(Clone, Default)]
    struct Memories([TestMemory; 8]);

    impl Memories {
        fn with_data_limit(max_pages: u64) -> Self {
            let mut memories = Memories::default();
            memories.0[1].max_pages = Some(max_pages);
            memories
        }
        fn data(&self) -> &TestMemory {
            &self.0[1]
        }
        fn open(&self) -> ChunkStore<TestMemory> {
            let [header, data, locations, free_by_size, free_by_offset, legacy_data, legacy_refs, deltas] = self.0.clone();
            ChunkStore::init(ChunkStoreMemories { header, data, locations, free_by_size, free_by_offset, legacy_data, legacy_refs, deltas })
        }
        fn legacy(&self) -> (LegacyData, LegacyRefs) {
            (StableBTreeMap::init(self.0[5].clone()), StableBTreeMap::init(self.0[6].clone()))
        }
    }

    fn hash(n: u8) -> [u8; 32] {
        [n; 32]
    }

    fn bytes(n: u8, len: usize) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(n)).collect()
    }

    /// The store's extents tile its used region, its free indexes agree, and its totals add up.
    fn check_invariants(store: &ChunkStore<TestMemory>) {
        let header = store.header();
        let free: Vec<FreeExtent> = store.free_by_offset.iter().map(|e| FreeExtent { pages: e.value(), offset: *e.key() }).collect();
        assert_eq!(
            store.free_by_size.keys().collect::<std::collections::BTreeSet<_>>(),
            free.iter().copied().collect(),
            "the free indexes agree"
        );
        let mut extents: Vec<(FreeExtent, bool)> = free.iter().map(|&e| (e, true)).collect();
        extents.extend(store.locations.values().map(|l| (FreeExtent { pages: pages_for(l.len), offset: l.offset }, false)));
        extents.sort_by_key(|(e, _)| e.offset);
        let mut at = 0;
        for pair in extents.windows(2) {
            assert!(!(pair[0].1 && pair[1].1 && end_of(&pair[0].0) == pair[1].0.offset), "free extents touch: {pair:?}");
        }
        for (extent, _) in &extents {
            assert_eq!(extent.offset, at, "extents tile the used region without overlap: {extents:?}");
            at = end_of(extent);
        }
        assert_eq!(at, header.bump_end, "the extents end at the bump end");
        assert!(extents.last().is_none_or(|(_, free)| !free), "no free extent ends at the bump end");
        assert!(header.bump_end <= store.data.size() * WASM_PAGE_SIZE);
        assert_eq!(header.free_bytes, free.iter().map(|e| e.pages as u64 * PAGE).sum::<u64>());
        assert_eq!(header.chunks, store.locations.len());
        assert_eq!(header.stored_bytes, store.locations.values().map(|l| l.len as u64).sum::<u64>());
        for entry in store.deltas.iter() {
            let (hash, delta) = (entry.key(), entry.value());
            let own = store.locations.get(hash).expect("a delta is stored").len;
            let base = store.locations.get(&delta.base).expect("a delta's base is stored in pages");
            let (depth, chain) = store.delta_of(&delta.base).map_or((1, base.len), |under| (under.depth + 1, under.chain_bytes));
            assert_eq!((delta.depth, delta.chain_bytes), (depth, chain + own), "a delta's chain is its base's and its own");
            assert!(delta.depth <= MAX_DELTA_DEPTH && delta.chain_bytes as u64 <= 2 * delta.len as u64 && own < delta.len);
        }
    }

    #[test]
    fn chunks_read_back_as_written() {
        let memories = Memories::default();
        let mut store = memories.open();
        let sizes = [0, 1, 4095, 4096, 4097, 2 * 1024 * 1024 - 4096, 300];
        for (n, &len) in sizes.iter().enumerate() {
            assert_eq!(store.put(hash(n as u8), &bytes(n as u8, len)), Ok(PutOutcome::Written));
        }
        let store = memories.open();
        for (n, &len) in sizes.iter().enumerate() {
            let (h, want) = (hash(n as u8), bytes(n as u8, len));
            assert_eq!(store.get(&h).as_deref(), Some(&want[..]), "chunk {n}");
            assert_eq!((store.chunk_len(&h), store.refs(&h), store.contains(&h)), (Some(len as u32), Some(1), true));
            let mut buf = [0; 10];
            let from = len.saturating_sub(4).min(len) as u32;
            let n = store.read(&h, from, &mut buf).expect("stored");
            assert_eq!(&buf[..n], &want[from as usize..], "a read stops at the chunk's end");
            assert_eq!(store.read(&h, len as u32 + 5, &mut buf), Some(0));
        }
        let pages: u32 = sizes.iter().map(|&len| pages_for(len as u32)).sum();
        let sum: u64 = sizes.iter().map(|&len| len as u64).sum();
        assert_eq!(
            store.totals(),
            ChunkTotals { chunks: 7, stored_bytes: sum, allocated_bytes: pages as u64 * PAGE, free_bytes: 0, legacy_chunks: 0, delta_chunks: 0 }
        );
        check_invariants(&store);
    }

    #[test]
    fn a_read_past_a_chunk_that_ends_the_data_memory_reads_nothing() {
        let memories = Memories::default();
        let mut store = memories.open();
        store.put(hash(1), &bytes(1, 64 * 1024)).unwrap();
        assert_eq!(memories.data().size() * WASM_PAGE_SIZE, 64 * 1024, "the chunk ends the memory");
        assert_eq!(store.read(&hash(1), 64 * 1024 + 1, &mut [0; 8]), Some(0));
    }

    #[test]
    fn a_missing_chunk_is_an_answer_not_a_trap() {
        let mut store = Memories::default().open();
        let mut buf = [0; 4];
        assert_eq!(
            (store.get(&hash(1)), store.read(&hash(1), 0, &mut buf), store.chunk_len(&hash(1)), store.refs(&hash(1))),
            (None, None, None, None)
        );
        assert!(!store.contains(&hash(1)));
        assert_eq!(store.release(&hash(1)), Released::NotStored);
        assert_eq!(store.add_ref(&hash(1)), Err(ChunkStoreError::NotStored));
    }

    #[test]
    fn a_chunk_stored_again_is_not_written_again() {
        let memories = Memories::default();
        let mut store = memories.open();
        let chunk = bytes(1, 10_000);
        assert_eq!(store.put(hash(1), &chunk), Ok(PutOutcome::Written));
        assert_eq!(memories.data().written.get(), 10_000);
        assert_eq!(store.put(hash(1), &chunk), Ok(PutOutcome::Shared { refs: 2 }));
        assert_eq!(store.put(hash(1), &chunk), Ok(PutOutcome::Shared { refs: 3 }));
        assert_eq!(memories.data().written.get(), 10_000, "written once");
        assert_eq!(store.put(hash(1), &chunk[1..]), Err(ChunkStoreError::LengthMismatch { stored: 10_000, given: 9_999 }));
        assert_eq!((store.totals().chunks, store.totals().stored_bytes, store.refs(&hash(1))), (1, 10_000, Some(3)));
        assert_eq!(store.add_ref(&hash(1)), Ok(4), "a reference taken without the bytes");
        assert_eq!(memories.data().written.get(), 10_000);
        assert_eq!(store.release(&hash(1)), Released::Kept { refs: 3 });
        assert_eq!(store.release(&hash(1)), Released::Kept { refs: 2 });
        assert_eq!(store.release(&hash(1)), Released::Kept { refs: 1 });
        assert_eq!(store.get(&hash(1)), Some(chunk));
        assert_eq!(store.release(&hash(1)), Released::Freed);
        assert_eq!((store.contains(&hash(1)), store.totals()), (false, ChunkTotals::default()));
    }

    #[test]
    fn freed_pages_are_reused_by_the_smallest_fitting_extent_without_growing() {
        let memories = Memories::default();
        let mut store = memories.open();
        store.put(hash(1), &bytes(1, 3 * 4096)).unwrap();
        store.put(hash(2), &bytes(2, 100)).unwrap();
        store.put(hash(3), &bytes(3, 4096)).unwrap();
        store.put(hash(4), &bytes(4, 1)).unwrap();
        assert_eq!(store.release(&hash(1)), Released::Freed);
        assert_eq!(store.release(&hash(3)), Released::Freed);
        let (size, bump) = (memories.data().size(), store.totals().allocated_bytes);
        assert_eq!(store.totals().free_bytes, 4 * PAGE);
        store.put(hash(5), &bytes(5, 10)).unwrap();
        assert_eq!(store.locations.get(&hash(5)).unwrap().offset, 4 * PAGE, "the one-page extent fits best");
        store.put(hash(6), &bytes(6, 2 * 4096 - 1)).unwrap();
        assert_eq!(store.locations.get(&hash(6)).unwrap().offset, 0);
        assert_eq!(
            store.free_by_offset.iter().map(|e| (*e.key(), e.value())).collect::<Vec<_>>(),
            vec![(2 * PAGE, 1)],
            "the rest goes back"
        );
        assert_eq!((memories.data().size(), store.totals().allocated_bytes), (size, bump), "no growth");
        for n in [2, 4, 5, 6] {
            assert_eq!(store.get(&hash(n)).unwrap(), bytes(n, store.chunk_len(&hash(n)).unwrap() as usize));
        }
        check_invariants(&store);
    }

    #[test]
    fn a_freed_extent_merges_with_free_neighbours_on_both_sides() {
        let mut store = Memories::default().open();
        for (n, pages) in [(1, 2), (2, 1), (3, 3), (4, 1)] {
            store.put(hash(n), &bytes(n, pages * 4096)).unwrap();
        }
        store.release(&hash(1));
        store.release(&hash(3));
        assert_eq!(store.free_by_offset.len(), 2);
        store.release(&hash(2));
        assert_eq!(store.free_by_offset.iter().map(|e| (*e.key(), e.value())).collect::<Vec<_>>(), vec![(0, 6)]);
        assert_eq!(store.free_by_size.keys().collect::<Vec<_>>(), vec![FreeExtent { pages: 6, offset: 0 }]);
        assert_eq!(store.totals().free_bytes, 6 * PAGE);
        check_invariants(&store);
    }

    #[test]
    fn free_pages_at_the_end_move_the_bump_end_back() {
        let memories = Memories::default();
        let mut store = memories.open();
        for n in 1..=3 {
            store.put(hash(n), &bytes(n, 5000)).unwrap();
        }
        store.release(&hash(3));
        assert_eq!((store.totals().allocated_bytes, store.totals().free_bytes), (4 * PAGE, 0));
        store.release(&hash(1));
        assert_eq!(store.totals().free_bytes, 2 * PAGE);
        store.release(&hash(2));
        assert_eq!(store.totals(), ChunkTotals::default(), "merged with the free extent before it, then folded");
        assert!(store.free_by_offset.is_empty() && store.free_by_size.is_empty());
        let size = memories.data().size();
        store.put(hash(4), &bytes(4, 6 * 4096)).unwrap();
        assert_eq!((store.locations.get(&hash(4)).unwrap().offset, memories.data().size()), (0, size));
        check_invariants(&store);
    }

    #[test]
    fn a_full_stable_memory_refuses_a_new_chunk_and_changes_nothing() {
        let memories = Memories::with_data_limit(1);
        let mut store = memories.open();
        store.put(hash(1), &bytes(1, 40_000)).unwrap();
        let before = store.totals();
        assert_eq!(store.put(hash(2), &bytes(2, 40_000)), Err(ChunkStoreError::OutOfMemory { needed: 80 * 1024 - 64 * 1024 }));
        assert_eq!((store.totals(), store.contains(&hash(2))), (before, false));
        store.put(hash(3), &bytes(3, 20_000)).unwrap();
        check_invariants(&store);
    }

    /// A chunk of `len` bytes most of whose pages it shares with the others of its `n % 3`: page
    /// `j` is its own when `(j + n) % 3 == 0`, else that of every chunk.
    fn similar(n: u8, len: usize) -> Vec<u8> {
        let mut chunk = bytes(0, len);
        for (j, page) in chunk.chunks_mut(PAGE as usize).enumerate() {
            if (j + n as usize).is_multiple_of(3) {
                page.copy_from_slice(&bytes(n.wrapping_add(1), page.len()));
            }
        }
        chunk
    }

    #[derive(Clone, Debug)]
    enum Op {
        Put(u8),
        PutOver(u8, u8),
        Release(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![(0..12u8).prop_map(Op::Put), (0..12u8, 0..12u8).prop_map(|(n, m)| Op::PutOver(n, m)), (0..12u8).prop_map(Op::Release)]
    }

    /// What the store should hold: the references each chunk was given by puts, and which chunks
    /// are deltas over which.
    #[derive(Default)]
    struct Model {
        puts: HashMap<u8, u32>,
        over: HashMap<u8, u8>,
    }

    impl Model {
        /// Chunk `n`'s references: its puts' and one for each delta over it.
        fn refs(&self, n: u8) -> u32 {
            self.puts.get(&n).copied().unwrap_or(0) + self.over.values().filter(|&&m| m == n).count() as u32
        }
        fn stored(&self) -> Vec<u8> {
            (0..12).filter(|&n| self.refs(n) > 0).collect()
        }
        /// Releases a reference of chunk `n`'s; at none its delta's base loses one too.
        fn release(&mut self, n: u8, from_put: bool) -> Released {
            if from_put {
                *self.puts.get_mut(&n).expect("put") -= 1;
            }
            match self.refs(n) {
                0 => {
                    if let Some(m) = self.over.remove(&n) {
                        self.release(m, false);
                    }
                    Released::Freed
                }
                refs => Released::Kept { refs },
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn puts_deltas_and_releases_match_a_model(lens in proptest::collection::vec(0..6 * 4096usize, 12), ops in proptest::collection::vec(op(), 1..80)) {
            let memories = Memories::default();
            let mut store = memories.open();
            let mut model = Model::default();
            let chunk = |n: u8| similar(n, lens[n as usize]);
            for op in ops {
                match op {
                    Op::Put(n) | Op::PutOver(n, _) => {
                        let written = memories.data().written.get();
                        let base = match op {
                            Op::PutOver(_, m) if model.refs(m) > 0 => Some(m),
                            _ => None,
                        };
                        let outcome = match base {
                            Some(m) => store.put_over(hash(n), &chunk(n), &hash(m), &chunk(m)).unwrap(),
                            None => store.put(hash(n), &chunk(n)).unwrap(),
                        };
                        let new = model.refs(n) == 0;
                        *model.puts.entry(n).or_default() += 1;
                        let expected = if new { PutOutcome::Written } else { PutOutcome::Shared { refs: model.refs(n) } };
                        prop_assert_eq!(outcome, expected);
                        if new && let Some(delta_base) = store.delta_base(&hash(n)) {
                            prop_assert_eq!(Some(delta_base), base.map(hash), "a delta is over the base it was given");
                            model.over.insert(n, base.unwrap());
                            prop_assert!(store.stored_len(&hash(n)).unwrap() < lens[n as usize] as u32);
                        }
                        let bytes_written = if new { store.stored_len(&hash(n)).unwrap() as u64 } else { 0 };
                        prop_assert_eq!(memories.data().written.get() - written, bytes_written);
                    }
                    Op::Release(n) => {
                        let expected = match model.puts.get(&n).copied().unwrap_or(0) {
                            0 if model.refs(n) > 0 => continue,
                            0 => Released::NotStored,
                            _ => model.release(n, true),
                        };
                        prop_assert_eq!(store.release(&hash(n)), expected);
                    }
                }
                check_invariants(&store);
            }
            let store = memories.open();
            for n in 0..12u8 {
                let want = (model.refs(n) > 0).then(|| chunk(n));
                prop_assert_eq!(store.get(&hash(n)), want);
                prop_assert_eq!(store.refs(&hash(n)), Some(model.refs(n)).filter(|&r| r > 0));
                prop_assert_eq!(store.delta_base(&hash(n)), model.over.get(&n).map(|&m| hash(m)));
            }
            let totals = store.totals();
            let stored = model.stored();
            prop_assert_eq!((totals.chunks, totals.delta_chunks), (stored.len() as u64, model.over.len() as u64));
            let pages: u64 = stored.iter().map(|n| pages_for(store.stored_len(&hash(*n)).unwrap()) as u64).sum();
            prop_assert_eq!(totals.allocated_bytes, pages * PAGE + totals.free_bytes);
        }
    }

    /// Chunk `n` of a chain of 2 MiB chunks, each one page changed from the one before.
    fn chain_chunk(n: usize, pages: usize) -> Vec<u8> {
        let mut chunk = bytes(0, pages * PAGE as usize);
        for j in 1..=n {
            chunk[(j % pages) * PAGE as usize] = j as u8;
            chunk[(j % pages) * PAGE as usize + 1] = (j >> 8) as u8;
        }
        chunk
    }

    fn long(n: usize) -> [u8; 32] {
        let mut hash = [0xcc; 32];
        hash[..8].copy_from_slice(&(n as u64).to_le_bytes());
        hash
    }

    #[test]
    fn a_chunk_close_to_its_base_is_stored_as_the_pages_that_differ_and_read_back_whole() {
        let memories = Memories::default();
        let mut store = memories.open();
        let base = bytes(1, 10 * PAGE as usize + 100);
        let mut close = base.clone();
        close[3 * PAGE as usize + 1] ^= 1;
        close.extend_from_slice(&[7; 5000]);
        store.put(hash(1), &base).unwrap();
        let written = memories.data().written.get();
        assert_eq!(store.put_over(hash(2), &close, &hash(1), &base), Ok(PutOutcome::Written));
        let delta = bitmap_bytes(close.len()) + PAGE as usize + (close.len() - 10 * PAGE as usize);
        assert_eq!(store.stored_len(&hash(2)), Some(delta as u32), "page 3, and the last two (grown) pages");
        assert_eq!(memories.data().written.get() - written, delta as u64);
        assert_eq!((store.refs(&hash(1)), store.refs(&hash(2)), store.delta_base(&hash(2))), (Some(2), Some(1), Some(hash(1))));
        assert_eq!((store.chunk_len(&hash(2)), store.totals().delta_chunks), (Some(close.len() as u32), 1));
        assert_eq!(store.put_over(hash(2), &close, &hash(1), &base), Ok(PutOutcome::Shared { refs: 2 }), "stored already");
        store.release(&hash(2));
        check_invariants(&store);
        assert_eq!(store.release(&hash(1)), Released::Kept { refs: 1 }, "the delta holds its base");
        let store = memories.open();
        assert!(store.get(&hash(2)).unwrap() == close, "read over a base no put holds");
        let mut store = memories.open();
        assert_eq!(store.release(&hash(2)), Released::Freed);
        assert_eq!((store.contains(&hash(1)), store.totals()), (false, ChunkTotals::default()), "the base went with it");
    }

    fn bitmap_bytes(len: usize) -> usize {
        pages::bitmap_len(len as u64)
    }

    #[test]
    fn a_chunk_is_stored_whole_when_a_delta_would_not_be_smaller_or_its_base_is_no_delta_base() {
        let memories = with_legacy(Memories::default(), 1, |_| 8 * PAGE as usize);
        let mut store = memories.open();
        let base = bytes(2, 8 * PAGE as usize);
        store.put(hash(2), &base).unwrap();
        let mut other = bytes(3, 8 * PAGE as usize);
        other[..PAGE as usize].copy_from_slice(&base[..PAGE as usize]);
        let legacy = bytes(1, 8 * PAGE as usize);
        let mut near_legacy = legacy.clone();
        near_legacy[0] ^= 1;
        store.put_over(hash(3), &other, &hash(2), &base).unwrap();
        assert_eq!(store.delta_base(&hash(3)), Some(hash(2)), "7 pages of 8 differ: smaller still");
        let mut all = bytes(4, 8 * PAGE as usize);
        all[0] = base[0].wrapping_add(1);
        store.put_over(hash(4), &all, &hash(2), &base).unwrap();
        store.put_over(hash(5), &near_legacy, &hash(1), &legacy).unwrap();
        store.put_over(hash(6), &near_legacy[..100], &hash(9), &legacy).unwrap();
        let mut shrunk = base[..3 * PAGE as usize].to_vec();
        shrunk[0] ^= 1;
        store.put_over(hash(8), &shrunk, &hash(2), &base).unwrap();
        store.locations.insert(hash(2), ChunkLocation { refs: u32::MAX, ..store.locations.get(&hash(2)).unwrap() });
        let mut near = base.clone();
        near[0] ^= 1;
        store.put_over(hash(7), &near, &hash(2), &base).unwrap();
        for (n, why) in [
            (4, "every page differs"),
            (5, "a legacy base"),
            (6, "a base not stored"),
            (7, "a base with all the references it may have"),
            (8, "a chunk of 3 pages would be read over a base of 8"),
        ] {
            assert_eq!((store.delta_base(&hash(n)), store.stored_len(&hash(n)).is_some()), (None, true), "{why}");
        }
        assert!(store.get(&hash(5)).unwrap() == near_legacy && store.get(&hash(7)).unwrap() == near);
    }

    #[test]
    fn chains_of_deltas_end_at_their_depth_or_at_a_chunk_of_their_bytes_and_read_back() {
        // 2 MiB chunks, one page changed each: the depth ends the chain.
        let memories = Memories::default();
        let mut store = memories.open();
        store.put(long(0), &chain_chunk(0, 512)).unwrap();
        for n in 1..=MAX_DELTA_DEPTH as usize + 1 {
            store.put_over(long(n), &chain_chunk(n, 512), &long(n - 1), &chain_chunk(n - 1, 512)).unwrap();
        }
        let depth = |store: &ChunkStore<TestMemory>, n| store.delta_of(&long(n)).map(|d| d.depth);
        assert_eq!((depth(&store, 1), depth(&store, 64), depth(&store, 65)), (Some(1), Some(64), None));
        assert_eq!(store.stored_len(&long(64)), Some(64 + 4096));
        assert!(store.get(&long(64)).unwrap() == chain_chunk(64, 512), "read through 64 deltas");
        check_invariants(&store);
        for n in 0..64 {
            assert_eq!(store.release(&long(n)), Released::Kept { refs: 1 }, "held by the delta over it");
        }
        assert_eq!(store.release(&long(64)), Released::Freed);
        assert_eq!(store.totals().chunks, 1, "the chain went from its end; the chunk stored whole after it stays");
        assert_eq!(store.release(&long(65)), Released::Freed);
        assert_eq!(store.totals(), ChunkTotals::default());
        // 64 KiB chunks: the chain's bytes end it.
        let mut store = Memories::default().open();
        store.put(long(0), &chain_chunk(0, 16)).unwrap();
        for n in 1..=16 {
            store.put_over(long(n), &chain_chunk(n, 16), &long(n - 1), &chain_chunk(n - 1, 16)).unwrap();
        }
        let chain = |n| store.delta_of(&long(n)).map(|d| d.chain_bytes);
        let whole = 16 * 4096;
        assert_eq!((chain(1), chain(15), chain(16)), (Some(whole + 2 + 4096), Some(whole + 15 * (2 + 4096)), None), "16 pages of deltas: the chain would read more than twice the chunk");
        assert!(store.get(&long(15)).unwrap() == chain_chunk(15, 16));
        check_invariants(&store);
    }

    #[test]
    fn a_delta_that_finds_no_room_changes_nothing() {
        let memories = Memories::with_data_limit(1);
        let mut store = memories.open();
        let base = bytes(1, 60_000);
        store.put(hash(1), &base).unwrap();
        let mut near = base.clone();
        near[0] ^= 1;
        near[8 * PAGE as usize] ^= 1;
        let before = store.totals();
        assert!(matches!(store.put_over(hash(2), &near, &hash(1), &base), Err(ChunkStoreError::OutOfMemory { .. })));
        assert_eq!((store.totals(), store.refs(&hash(1)), store.contains(&hash(2))), (before, Some(1), false));
        check_invariants(&store);
    }

    /// `memories` with chunks 1 to `count` in the legacy maps, chunk n of `len(n)` bytes with n references.
    fn with_legacy(memories: Memories, count: u8, len: fn(u8) -> usize) -> Memories {
        let (mut data, mut refs) = memories.legacy();
        for n in 1..=count {
            data.insert(hash(n), bytes(n, len(n)));
            refs.insert(hash(n), n as u32);
        }
        memories
    }

    fn legacy_store(count: u8) -> Memories {
        with_legacy(Memories::default(), count, |n| n as usize * 1000)
    }

    #[test]
    fn legacy_chunks_are_served_referenced_and_released_where_they_are() {
        let memories = legacy_store(4);
        let mut store = memories.open();
        assert_eq!(store.totals().legacy_chunks, 4);
        for n in 1..=4 {
            assert_eq!(store.get(&hash(n)), Some(bytes(n, n as usize * 1000)), "chunk {n}");
            assert_eq!((store.refs(&hash(n)), store.chunk_len(&hash(n))), (Some(n as u32), Some(n as u32 * 1000)));
        }
        assert_eq!(store.put(hash(3), &bytes(3, 3000)), Ok(PutOutcome::Shared { refs: 4 }));
        assert_eq!(store.put(hash(4), &bytes(4, 4000)), Ok(PutOutcome::Shared { refs: 5 }));
        assert_eq!(store.add_ref(&hash(4)), Ok(6));
        store.release(&hash(4));
        assert_eq!(store.release(&hash(1)), Released::Freed);
        for _ in 0..3 {
            store.release(&hash(3));
        }
        assert_eq!(store.release(&hash(3)), Released::Freed, "its count goes from the legacy map");
        assert!(!store.contains(&hash(3)) && store.get(&hash(3)).is_none());
        assert_eq!(store.put(hash(9), &bytes(9, 50)), Ok(PutOutcome::Written), "a new chunk goes to the store");
        assert_eq!(store.put(hash(3), &bytes(3, 3000)), Ok(PutOutcome::Written), "so does a released legacy one stored again");
        assert_eq!(memories.data().written.get(), 3050, "nothing legacy was written again");
        let store = memories.open();
        let live: Vec<_> = [2, 3, 4, 9].iter().map(|&n| (store.refs(&hash(n)), store.get(&hash(n)).map(|b| b.len()))).collect();
        assert_eq!(live, vec![(Some(2), Some(2000)), (Some(1), Some(3000)), (Some(5), Some(4000)), (Some(1), Some(50))]);
        assert_eq!((store.totals().chunks, store.totals().legacy_chunks), (2, 2));
        check_invariants(&store);
    }
}
