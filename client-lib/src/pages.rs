//! The app's memory as 4 KiB pages mapped to slots of the SLOTS memory through a page table:
//! shadow paging. A version of the memory is a directory of table pages, each table page 512
//! entries mapping a logical page to its slot (or to none: zeros). Three versions at most:
//!
//! - **live**, what the app reads and writes;
//! - **frozen**, the live version as of the message that opened a stable-memory dump: an open
//!   dump freezes the directory (a copy of 8 bytes per 2 MiB), and from then on a write to a
//!   page (or table page) the frozen version shares goes to a fresh slot, the old one left to
//!   the dump; no byte the app does not write is copied;
//! - **base**, a frozen version its dump's vault stored whole and named as the base of its next
//!   incremental dump: kept when that dump ends, until the next one's end replaces it; an
//!   incremental dump answers the pages of the frozen version that differ from it;
//! - **staged**, a restore's image written into free slots over as many messages as it needs;
//!   its commit makes it the live version by switching which directory is live, and frees the
//!   slots of the old one.
//!
//! Versions form a chain, base, frozen, live, each frozen from the next, so a slot one maps is
//! mapped by all those between it and any other that maps it. An entry is shared with a held
//! (frozen or base) version when its generation is not newer than the newest held one: each
//! freeze starts a generation, and every slot a write takes is stamped with it. A slot is free
//! once no version maps it (the FREE bitmap); the drawing is in `layout`.
//!
//! A page is read and written in the raw stable memory, where the slot is: the SLOTS memory's
//! buckets are read from the library's `MemoryManager` header (its layout 1, which
//! ic-stable-structures documents), so an access costs one system call and a table lookup.

use std::cell::{Cell, RefCell};

use ic_stable_structures::memory_manager::MemoryId;
use ic_stable_structures::{DefaultMemoryImpl, Memory};
use vault_api::protocol::{StateKind, WASM_PAGE_SIZE as WASM_PAGE};

use crate::layout::{self, LiveDir, Session};
use crate::store::{self, Mem, ReadBuffer};

/// A page and a slot.
pub const PAGE: u64 = 4096;
/// Entries of a table page.
const ENTRIES: u64 = PAGE / 8;
/// Logical pages per wasm page.
const PAGES_PER_WASM_PAGE: u64 = WASM_PAGE / PAGE;
/// Table pages the heap keeps of one version; past it the cache starts again.
const CACHED_TABLES: usize = 16_384;
/// The SLOTS memory grows by at least this much (one bucket of a `MemoryManager`).
const GROWTH_STEP: u64 = 128;

/// A page table or directory entry: 0 for none, else the slot + 1 in the low 32 bits and the
/// generation the slot was taken in above.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entry(u64);

impl Entry {
    const NONE: Entry = Entry(0);

    fn new(slot: u64, generation: u32) -> Entry {
        assert!(slot < u32::MAX as u64, "slot {slot} is past the page table's reach");
        Entry(((generation as u64) << 32) | (slot + 1))
    }

    fn slot(self) -> Option<u64> {
        (self.0 as u32).checked_sub(1).map(u64::from)
    }

    fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }

    fn to_le_bytes(self) -> [u8; 8] {
        self.0.to_le_bytes()
    }
}

/// Whether a version of `wasm_pages` can be mapped: every slot number fits an entry.
pub fn fits(wasm_pages: u64) -> bool {
    wasm_pages.checked_mul(WASM_PAGE).is_some_and(|bytes| bytes.div_ceil(PAGE) + tables_for(bytes) < u32::MAX as u64)
}

/// Table pages needed for `bytes` of logical memory.
pub fn tables_for(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE).div_ceil(ENTRIES)
}

fn parse_entries(bytes: &[u8], entries: &mut [Entry]) {
    for (entry, raw) in entries.iter_mut().zip(bytes.chunks_exact(8)) {
        *entry = Entry(u64::from_le_bytes(raw.try_into().expect("8 bytes")));
    }
}

fn entry_bytes(entries: &[Entry]) -> Vec<u8> {
    entries.iter().flat_map(|entry| entry.to_le_bytes()).collect()
}

/// Grows `memory` to hold `bytes`, by at least `step` wasm pages; whether it could.
fn reserve(memory: &Mem, bytes: u64, step: u64) -> bool {
    let needed = bytes.div_ceil(WASM_PAGE);
    let have = memory.size();
    have >= needed || memory.grow((needed - have).max(step)) >= 0 || memory.grow(needed - have) >= 0
}

/// The `MemoryManager` header fields this module reads (layout 1): the bucket size in wasm pages
/// (u16 at 6), the owner of each bucket (a byte per bucket from 2080), the buckets from 64 KiB.
const MANAGER_MAGIC: &[u8; 4] = b"MGR\x01";
const BUCKET_SIZE_AT: u64 = 6;
const BUCKET_OWNERS_AT: u64 = 2080;
const BUCKETS: usize = 32_768;
const BUCKETS_AT: u64 = WASM_PAGE;

/// The SLOTS memory, addressed in the raw stable memory: a slot's bytes are in the bucket of
/// the SLOTS memory it falls in.
struct SlotMemory {
    /// The SLOTS memory, through the manager: for its size and growth.
    memory: Mem,
    raw: DefaultMemoryImpl,
    bucket_bytes: u64,
    /// Where each bucket of the SLOTS memory starts, in its order.
    buckets: Vec<u64>,
    /// log2 of the bucket size in bytes.
    bucket_shift: u32,
}

impl SlotMemory {
    fn open(memory: Mem, raw: DefaultMemoryImpl) -> SlotMemory {
        let mut slots = SlotMemory { memory, raw, bucket_bytes: 0, buckets: Vec::new(), bucket_shift: 0 };
        slots.locate_buckets();
        slots
    }

    /// Reads where the manager put the SLOTS memory's buckets.
    fn locate_buckets(&mut self) {
        let mut header = [0u8; 8];
        self.raw.read(0, &mut header);
        assert_eq!(&header[..4], MANAGER_MAGIC, "the library's memory manager is of layout 1");
        self.bucket_bytes = u16::from_le_bytes([header[BUCKET_SIZE_AT as usize], header[BUCKET_SIZE_AT as usize + 1]]) as u64 * WASM_PAGE;
        assert!(self.bucket_bytes.is_power_of_two(), "the memory manager's buckets are a power of two bytes");
        self.bucket_shift = self.bucket_bytes.trailing_zeros();
        let mut owners = vec![0u8; BUCKETS];
        self.raw.read(BUCKET_OWNERS_AT, &mut owners);
        let id = layout::SLOTS_ID;
        self.buckets = owners.iter().enumerate().filter(|(_, owner)| **owner == id).map(|(bucket, _)| BUCKETS_AT + bucket as u64 * self.bucket_bytes).collect();
    }

    /// Where byte `within` of `slot` is in the raw stable memory.
    fn address(&self, slot: u64, within: u64) -> u64 {
        let at = slot * PAGE + within;
        self.buckets[(at >> self.bucket_shift) as usize] + (at & (self.bucket_bytes - 1))
    }

    fn read(&self, slot: u64, dst: &mut [u8]) {
        self.raw.read(self.address(slot, 0), dst);
    }

    fn write(&self, slot: u64, within: u64, src: &[u8]) {
        self.raw.write(self.address(slot, within), src);
    }

    fn size(&self) -> u64 {
        self.memory.size() * WASM_PAGE
    }

    /// Grows the SLOTS memory to hold `bytes`, by at least `step` wasm pages; whether it could.
    fn reserve(&mut self, bytes: u64, step: u64) -> bool {
        if bytes <= self.size() {
            return true;
        }
        let grown = reserve(&self.memory, bytes, step);
        self.locate_buckets();
        grown
    }
}

/// Stores the count of slots ever taken, `end`, in the FREE memory, grown to hold it and a bitmap
/// of `words` words.
fn store_end(free_memory: &Mem, end: u64, words: usize) {
    if !reserve(free_memory, 8 + words as u64 * 8, 1) {
        ic_cdk::trap("the vault client could not grow its free-slot bitmap");
    }
    free_memory.write(0, &end.to_le_bytes());
}

/// Bitmap words as the FREE memory stores them, little endian.
fn word_bytes(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|word| word.to_le_bytes()).collect()
}

/// The slots: their memory, and which of them no version maps. The FREE memory holds the number
/// of slots ever taken (8 bytes), then a bitmap of them, a set bit a free slot.
struct Slots {
    data: SlotMemory,
    free_memory: Mem,
    end: u64,
    free: Vec<u64>,
    /// The set bits of `free`.
    free_count: u64,
    /// No word before it has a free slot.
    cursor: usize,
}

impl Slots {
    fn open(data: SlotMemory, free_memory: Mem) -> Slots {
        let end = if free_memory.size() == 0 {
            0
        } else {
            let mut bytes = [0; 8];
            free_memory.read(0, &mut bytes);
            u64::from_le_bytes(bytes)
        };
        let words = end.div_ceil(64) as usize;
        let mut bytes = vec![0u8; words * 8];
        if words > 0 {
            free_memory.read(8, &mut bytes);
        }
        let free: Vec<u64> = bytes.chunks_exact(8).map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes"))).collect();
        let free_count = free.iter().map(|w| w.count_ones() as u64).sum();
        Slots { data, free_memory, end, free, free_count, cursor: 0 }
    }

    /// Records `end` slots taken, those from `free_from` free (a memory laid out by the
    /// migration).
    fn init(free_memory: Mem, free_from: u64, end: u64) {
        let mut free = vec![0u64; end.div_ceil(64) as usize];
        for slot in free_from..end {
            free[(slot / 64) as usize] |= 1 << (slot % 64);
        }
        store_end(&free_memory, end, free.len());
        free_memory.write(8, &word_bytes(&free));
    }

    fn store_end(&mut self) {
        store_end(&self.free_memory, self.end, self.free.len());
    }

    fn store_words(&self, from: usize, to: usize) {
        if from < to {
            self.free_memory.write(8 + from as u64 * 8, &word_bytes(&self.free[from..to]));
        }
    }

    /// A slot no version maps, taken, and whether it was never written (all zeros): the
    /// slots past the last ever taken are, as the SLOTS memory grows zeroed.
    fn take(&mut self) -> (u64, bool) {
        while self.cursor < self.free.len() {
            let word = self.free[self.cursor];
            if word != 0 {
                let bit = word.trailing_zeros() as u64;
                self.free[self.cursor] = word & !(1 << bit);
                self.free_count -= 1;
                self.store_words(self.cursor, self.cursor + 1);
                return (self.cursor as u64 * 64 + bit, false);
            }
            self.cursor += 1;
        }
        let slot = self.end;
        if !self.data.reserve((slot + 1) * PAGE, GROWTH_STEP) {
            ic_cdk::trap("the app's stable memory is full: the vault client could not take a page for a write");
        }
        self.end += 1;
        if self.end.div_ceil(64) as usize > self.free.len() {
            self.free.push(0);
            self.cursor = self.free.len();
        }
        self.store_end();
        (slot, true)
    }

    /// Frees `slots`, which no version maps any more.
    fn release(&mut self, slots: impl IntoIterator<Item = u64>) {
        let mut changed: Option<(usize, usize)> = None;
        for slot in slots {
            let word = (slot / 64) as usize;
            debug_assert!(self.free[word] & (1 << (slot % 64)) == 0, "slot {slot} is freed twice");
            self.free[word] |= 1 << (slot % 64);
            self.free_count += 1;
            changed = Some(changed.map_or((word, word + 1), |(from, to)| (from.min(word), to.max(word + 1))));
        }
        if let Some((from, to)) = changed {
            self.store_words(from, to);
            self.cursor = self.cursor.min(from);
        }
    }

    /// Whether `count` more slots can be taken, growing the SLOTS memory for them; if not, how
    /// many can.
    fn reserve(&mut self, count: u64) -> Result<(), u64> {
        let free = self.free_count;
        let beyond = count.saturating_sub(free);
        match self.end.checked_add(beyond) {
            Some(end) if end < u32::MAX as u64 && self.data.reserve(end * PAGE, GROWTH_STEP) => Ok(()),
            _ => Err(free + (self.data.size() / PAGE).saturating_sub(self.end)),
        }
    }

    #[cfg(test)]
    fn in_use(&self) -> u64 {
        self.end - self.free_count
    }
}

/// One version of the memory: its directory (on the heap, and in its DIR memory) and the table
/// pages read so far.
struct Version {
    dir_memory: Mem,
    dir: Vec<Entry>,
    tables: Vec<Option<Box<[Entry; ENTRIES as usize]>>>,
    cached: usize,
}

impl Version {
    /// The version whose directory of `tables` entries is in `dir`.
    fn open(dir: MemoryId, tables: u64) -> Version {
        let dir_memory = store::memory(dir);
        let mut entries = vec![Entry::NONE; tables as usize];
        if tables > 0 {
            let mut bytes = vec![0u8; tables as usize * 8];
            dir_memory.read(0, &mut bytes);
            parse_entries(&bytes, &mut entries);
        }
        Version::with_dir(dir_memory, entries)
    }

    /// A version of `entries`, stored into `dir`.
    fn create(dir: MemoryId, entries: Vec<Entry>) -> Version {
        let dir_memory = store::memory(dir);
        store_dir(&dir_memory, 0, &entries);
        Version::with_dir(dir_memory, entries)
    }

    fn with_dir(dir_memory: Mem, dir: Vec<Entry>) -> Version {
        let tables = (0..dir.len()).map(|_| None).collect();
        Version { dir_memory, dir, tables, cached: 0 }
    }

    /// Bytes this version maps.
    fn len(&self) -> u64 {
        self.dir.len() as u64 * ENTRIES * PAGE
    }

    /// The table page `table` of this version (none if it maps nothing).
    fn table(&mut self, data: &SlotMemory, table: u64) -> Option<&mut [Entry; ENTRIES as usize]> {
        let index = table as usize;
        let slot = self.dir.get(index)?.slot()?;
        if self.tables[index].is_none() {
            let mut bytes = vec![0u8; PAGE as usize];
            data.read(slot, &mut bytes);
            let mut entries = Box::new([Entry::NONE; ENTRIES as usize]);
            parse_entries(&bytes, &mut entries[..]);
            self.cache(index, entries);
        }
        self.tables[index].as_deref_mut()
    }

    /// Keeps `entries` as table page `index` on the heap, the cache started again if it is full.
    fn cache(&mut self, index: usize, entries: Box<[Entry; ENTRIES as usize]>) {
        if self.tables[index].is_none() {
            if self.cached == CACHED_TABLES {
                self.tables.iter_mut().for_each(|cached| *cached = None);
                self.cached = 0;
            }
            self.cached += 1;
        }
        self.tables[index] = Some(entries);
    }

    fn entry(&mut self, data: &SlotMemory, page: u64) -> Entry {
        self.table(data, page / ENTRIES).map_or(Entry::NONE, |table| table[(page % ENTRIES) as usize])
    }

    /// Where byte `at` of this version is in the raw stable memory; none if it is a zero.
    fn address(&mut self, data: &SlotMemory, at: u64) -> Option<u64> {
        self.entry(data, at / PAGE).slot().map(|slot| data.address(slot, at % PAGE))
    }

    /// Calls `f` for each run of `[offset, offset + len)`, in order: its length and where it is in
    /// the raw stable memory (none: zeros).
    fn runs(&mut self, data: &SlotMemory, offset: u64, len: u64, mut f: impl FnMut(u64, Option<u64>)) {
        let end = offset + len;
        let mut at = offset;
        while at < end {
            let start = self.address(data, at);
            let mut run_end = ((at / PAGE + 1) * PAGE).min(end);
            // Extend over the following pages that continue it: the next bytes, or zeros again.
            while run_end < end {
                let next = self.address(data, run_end);
                if next != start.map(|start| start + (run_end - at)) {
                    break;
                }
                run_end = (run_end + PAGE).min(end);
            }
            f(run_end - at, start);
            at = run_end;
        }
    }

    /// Every slot this version maps, its table pages' included.
    fn slots(&mut self, data: &SlotMemory) -> Vec<u64> {
        let mut slots = Vec::new();
        for table in 0..self.dir.len() as u64 {
            if let Some(slot) = self.dir[table as usize].slot() {
                slots.push(slot);
                let entries = self.table(data, table).expect("a mapped table page");
                slots.extend(entries.iter().filter_map(|entry| entry.slot()));
            }
        }
        slots
    }

    /// Reads `len` bytes from `offset` into a new buffer.
    fn read_to_vec(&mut self, data: &SlotMemory, offset: u64, len: usize) -> Vec<u8> {
        let mut buf = ReadBuffer::with_capacity(len);
        self.runs(data, offset, len as u64, |n, at| match at {
            Some(at) => buf.read(&data.raw, at, n as usize),
            None => buf.zeros(n as usize),
        });
        buf.into_vec()
    }
}

fn store_dir(dir_memory: &Mem, from: u64, entries: &[Entry]) {
    if entries.is_empty() {
        return;
    }
    if !reserve(dir_memory, (from + entries.len() as u64) * 8, 1) {
        ic_cdk::trap("the vault client could not grow its page directory");
    }
    dir_memory.write(from * 8, &entry_bytes(entries));
}

/// The memory's versions, their slots, and the generation writes take slots in.
struct Paged {
    slots: Slots,
    live: Version,
    /// Bytes of the live version the app sees.
    live_size: u64,
    live_dir: LiveDir,
    /// The frozen version, with its generation.
    frozen: Option<(Version, u32)>,
    /// The base of the next incremental dump, with its generation (older than the frozen one).
    base: Option<(Version, u32)>,
    staged: Option<Version>,
    generation: u32,
}

/// What a write may not change in place: slots of the frozen version, if one is held.
#[derive(Clone, Copy)]
struct Shared(Option<u32>);

impl Shared {
    fn holds(self, entry: Entry) -> bool {
        self.0.is_some_and(|frozen| entry.generation() <= frozen)
    }
}

fn dir_memory(dir: LiveDir) -> MemoryId {
    match dir {
        LiveDir::A => layout::DIR_A,
        LiveDir::B => layout::DIR_B,
    }
}

/// Writes `src` at `offset` of `version`, taking fresh slots for pages and table pages not
/// mapped or that `shared` holds.
fn write_version(version: &mut Version, slots: &mut Slots, generation: u32, shared: Shared, offset: u64, src: &[u8]) {
    let end = offset + src.len() as u64;
    let mut at = offset;
    while at < end {
        let page = at / PAGE;
        let within = at % PAGE;
        let n = (PAGE - within).min(end - at);
        let entry = version.entry(&slots.data, page);
        match entry.slot() {
            Some(slot) if !shared.holds(entry) => {
                // Extend over the following pages in the next bytes, also changed in place.
                let start = slots.data.address(slot, within);
                let mut run_end = at + n;
                while run_end < end {
                    let next = version.entry(&slots.data, run_end / PAGE);
                    let continues = next.slot().map(|next| slots.data.address(next, 0)) == Some(start + (run_end - at));
                    if shared.holds(next) || !continues {
                        break;
                    }
                    run_end = (run_end + PAGE).min(end);
                }
                slots.data.raw.write(start, &src[(at - offset) as usize..(run_end - offset) as usize]);
                at = run_end;
            }
            old => {
                let bytes = &src[(at - offset) as usize..(at - offset + n) as usize];
                let (fresh, zeros) = slots.take();
                if n == PAGE || (zeros && old.is_none()) {
                    slots.data.write(fresh, within, bytes);
                } else {
                    let mut page_bytes = [0u8; PAGE as usize];
                    if let Some(old) = old {
                        slots.data.read(old, &mut page_bytes);
                    }
                    page_bytes[within as usize..(within + n) as usize].copy_from_slice(bytes);
                    slots.data.write(fresh, 0, &page_bytes);
                }
                set_entry(version, slots, generation, shared, page, Entry::new(fresh, generation));
                at += n;
            }
        }
    }
}

/// Maps `page` of `version` to `entry`, in a fresh table page if its own is not mapped or
/// `shared` holds it.
fn set_entry(version: &mut Version, slots: &mut Slots, generation: u32, shared: Shared, page: u64, entry: Entry) {
    cool_page(page);
    let table = page / ENTRIES;
    let index = (page % ENTRIES) as usize;
    let dir_entry = version.dir[table as usize];
    match dir_entry.slot() {
        Some(slot) if !shared.holds(dir_entry) => {
            version.table(&slots.data, table).expect("a mapped table page")[index] = entry;
            slots.data.write(slot, index as u64 * 8, &entry.to_le_bytes());
        }
        _ => {
            let mut entries = version.table(&slots.data, table).map_or([Entry::NONE; ENTRIES as usize], |entries| *entries);
            entries[index] = entry;
            let (fresh, _) = slots.take();
            slots.data.write(fresh, 0, &entry_bytes(&entries));
            let fresh_entry = Entry::new(fresh, generation);
            version.dir[table as usize] = fresh_entry;
            store_dir(&version.dir_memory, table, &[fresh_entry]);
            version.cache(table as usize, Box::new(entries));
        }
    }
}

impl Paged {
    fn open() -> Paged {
        let header = store::header();
        let data = SlotMemory::open(store::memory(layout::SLOTS), store::raw());
        let slots = Slots::open(data, store::memory(layout::FREE));
        let live_dir = header.live_dir;
        let live_size = header.app_pages * WASM_PAGE;
        let live = Version::open(dir_memory(live_dir), tables_for(live_size));
        let (frozen, staged) = match &header.session {
            Session::Dumping(dump) if dump.kind == StateKind::StableMemory => {
                (Some((Version::open(layout::DIR_FROZEN, tables_for(dump.size)), dump.frozen_generation)), None)
            }
            Session::Restoring(restore) if restore.kind == StateKind::StableMemory => {
                (None, Some(Version::open(dir_memory(live_dir.other()), tables_for(restore.size))))
            }
            _ => (None, None),
        };
        // A serde base is a content index, not a version of the app's memory.
        let base = header.base.as_ref().filter(|base| base.kind == StateKind::StableMemory);
        let base = base.map(|base| (Version::open(layout::DIR_BASE, tables_for(base.size)), base.generation));
        Paged { slots, live, live_size, live_dir, frozen, base, staged, generation: header.generation }
    }

    /// What writes to the live version may not change in place: the newest held version's slots.
    fn shared(&self) -> Shared {
        Shared(self.frozen.as_ref().or(self.base.as_ref()).map(|(_, generation)| *generation))
    }

    fn check_bounds(&self, offset: u64, len: usize) {
        if offset.checked_add(len as u64).is_none_or(|end| end > self.live_size) {
            ic_cdk::trap(format!("stable memory out of bounds: {offset} + {len} > {}", self.live_size));
        }
    }
}

/// Pages of the live version the app accessed lately (the last of each of [`HOT_PAGES`] sets),
/// where each is in the raw stable memory, and whether a write may change it in place: most
/// accesses of a stable structure fall in a page of one shortly before, and then cost one system
/// call. A page is cooled when its mapping changes, all of them when a version is frozen or
/// made live.
#[derive(Clone, Copy)]
struct Hot {
    page: u64,
    /// [`ZEROS`] for a page no slot backs.
    address: u64,
    writable: bool,
}

/// The hot page's address when it is all zeros (no slot backs it).
const ZEROS: u64 = u64::MAX;

const COLD: Hot = Hot { page: u64::MAX, address: ZEROS, writable: false };

thread_local! {
    static PAGED: RefCell<Option<Paged>> = const { RefCell::new(None) };
    static HOT: [Cell<Hot>; HOT_PAGES] = const { [const { Cell::new(COLD) }; HOT_PAGES] };
}

/// Hot pages, one per set of pages with the same remainder.
const HOT_PAGES: usize = 16;

fn hot(page: u64) -> Hot {
    HOT.with(|hot| hot[page as usize % HOT_PAGES].get())
}

fn cool() {
    HOT.with(|hot| hot.iter().for_each(|page| page.set(COLD)));
}

fn cool_page(page: u64) {
    HOT.with(|hot| hot[page as usize % HOT_PAGES].set(COLD));
}

/// Makes `page` of the live version the hot one. A page past the end (an empty access at the
/// end reaches it) is not kept: the hot paths check no bounds.
fn heat(paged: &mut Paged, page: u64) -> Hot {
    let shared = paged.shared();
    let Paged { slots: Slots { data, .. }, live, live_size, .. } = paged;
    let entry = live.entry(data, page);
    let hot = match entry.slot() {
        Some(slot) => Hot { page, address: data.address(slot, 0), writable: !shared.holds(entry) },
        None => Hot { page, address: ZEROS, writable: false },
    };
    if page < *live_size / PAGE {
        HOT.with(|cells| cells[page as usize % HOT_PAGES].set(hot));
    }
    hot
}

/// Reads `len` bytes at `within` of the page `hot` into `dst`.
///
/// # Safety
/// As for [`read_live`].
#[inline]
unsafe fn read_hot(hot: Hot, within: u64, dst: *mut u8, len: usize) {
    // SAFETY: the caller vouches for `dst`.
    unsafe {
        match hot.address {
            ZEROS => std::ptr::write_bytes(dst, 0, len),
            address => store::raw().read_unsafe(address + within, dst, len),
        }
    }
}

fn with_paged<R>(f: impl FnOnce(&mut Paged) -> R) -> R {
    PAGED.with_borrow_mut(|paged| f(paged.get_or_insert_with(Paged::open)))
}

/// Reads `len` bytes of the live version at `offset` into `dst`; traps if they are not all in it.
///
/// # Safety
/// `dst` must be valid for `len` bytes of writes; all of them are written.
#[inline]
pub unsafe fn read_live(offset: u64, dst: *mut u8, len: usize) {
    let hot = hot(offset / PAGE);
    let within = offset % PAGE;
    if offset / PAGE == hot.page && within + len as u64 <= PAGE {
        // SAFETY: the caller vouches for `dst`; the hot page is in the live version.
        unsafe { read_hot(hot, within, dst, len) };
        return;
    }
    // SAFETY: as for this function.
    unsafe { read_live_cold(offset, dst, len) }
}

/// [`read_live`] away from the hot page.
///
/// # Safety
/// As for [`read_live`].
#[inline(never)]
unsafe fn read_live_cold(offset: u64, dst: *mut u8, len: usize) {
    with_paged(|paged| {
        paged.check_bounds(offset, len);
        let within = offset % PAGE;
        if within + len as u64 <= PAGE {
            // SAFETY: the caller vouches for `dst`.
            unsafe { read_hot(heat(paged, offset / PAGE), within, dst, len) };
            return;
        }
        let Paged { slots: Slots { data, .. }, live, .. } = paged;
        let mut done = 0usize;
        live.runs(data, offset, len as u64, |n, at| {
            // SAFETY: `done + n <= len`, within the destination the caller vouches for.
            unsafe {
                let to = dst.add(done);
                match at {
                    Some(at) => data.raw.read_unsafe(at, to, n as usize),
                    None => std::ptr::write_bytes(to, 0, n as usize),
                }
            }
            done += n as usize;
        });
    })
}

/// Writes `src` at `offset` of the live version, first calling `held` if a frozen version, the
/// base or a staged version holds pages (it may release them) and the write takes the cold path;
/// traps if the bytes are not all in the live version.
/// Pages a held version shares go to fresh slots.
#[inline]
pub fn write_live(offset: u64, src: &[u8], held: impl FnOnce()) {
    let hot = hot(offset / PAGE);
    let within = offset % PAGE;
    if offset / PAGE == hot.page && hot.writable && within + src.len() as u64 <= PAGE {
        store::raw().write(hot.address + within, src);
        return;
    }
    write_live_cold(offset, src, held)
}

/// [`write_live`] away from the hot page.
#[inline(never)]
fn write_live_cold(offset: u64, src: &[u8], held: impl FnOnce()) {
    if with_paged(|paged| {
        paged.check_bounds(offset, src.len());
        paged.shared().0.is_some() || paged.staged.is_some()
    }) {
        held();
    }
    with_paged(|paged| {
        let within = offset % PAGE;
        if within + src.len() as u64 <= PAGE {
            let hot = heat(paged, offset / PAGE);
            if hot.writable {
                paged.slots.data.raw.write(hot.address + within, src);
                return;
            }
        }
        let shared = paged.shared();
        write_version(&mut paged.live, &mut paged.slots, paged.generation, shared, offset, src);
        heat(paged, offset / PAGE);
    })
}

/// Bytes of the live version the app sees.
pub fn live_size() -> u64 {
    with_paged(|paged| paged.live_size)
}

/// Grows the live version to `pages` wasm pages: the new pages read as zeros, and the SLOTS
/// memory grows to back them where its free slots do not. Whether it could.
pub fn grow_live(pages: u64) -> bool {
    with_paged(|paged| {
        let (old, new) = (paged.live_size, pages * WASM_PAGE);
        let (before, after) = (tables_for(old), tables_for(new));
        if paged.slots.reserve((new - old) / PAGE + after - before).is_err() {
            return false;
        }
        // A directory used by an older version may hold entries past this one's end.
        let fresh = vec![Entry::NONE; (after - before) as usize];
        store_dir(&paged.live.dir_memory, before, &fresh);
        paged.live.dir.extend(&fresh);
        paged.live.tables.extend(fresh.iter().map(|_| None));
        paged.live_size = new;
        store::update_header(|h| h.app_pages = pages);
        true
    })
}

/// Freezes the live version for a dump; returns the frozen generation.
pub fn freeze() -> u32 {
    with_paged(|paged| {
        assert!(paged.frozen.is_none() && paged.staged.is_none(), "a version is frozen or staged already");
        cool();
        let frozen = Version::create(layout::DIR_FROZEN, paged.live.dir.clone());
        let generation = paged.generation;
        paged.generation = generation.checked_add(1).expect("fewer than 2^32 freezes");
        paged.frozen = Some((frozen, generation));
        store::update_header(|h| h.generation = paged.generation);
        generation
    })
}

/// `len` bytes of the frozen version from `offset`.
pub fn read_frozen(offset: u64, len: usize) -> Vec<u8> {
    with_paged(|paged| {
        let (frozen, _) = paged.frozen.as_mut().expect("a frozen version");
        frozen.read_to_vec(&paged.slots.data, offset, len)
    })
}

/// Drops the frozen version, freeing the slots only it maps.
pub fn release_frozen() {
    with_paged(|paged| {
        if let Some((mut frozen, _)) = paged.frozen.take() {
            let Paged { slots, live, base, .. } = paged;
            let mut neighbours = vec![live];
            neighbours.extend(base.as_mut().map(|(base, _)| base));
            let freed = only_in(&mut frozen, &mut neighbours, &slots.data);
            slots.release(freed);
        }
    })
}

/// Drops the base, freeing the slots only it maps.
pub fn release_base() {
    with_paged(|paged| {
        if let Some((mut base, _)) = paged.base.take() {
            let Paged { slots, live, frozen, .. } = paged;
            // The next version of the chain: any slot of the base another maps, it maps.
            let next = match frozen.as_mut() {
                Some((frozen, _)) => frozen,
                None => live,
            };
            let freed = only_in(&mut base, &mut [next], &slots.data);
            slots.release(freed);
        }
    })
}

/// Keeps the frozen version as the base, in place of the base held before (released); returns
/// the base's generation.
pub fn keep_frozen_as_base() -> u32 {
    release_base();
    with_paged(|paged| {
        let (frozen, generation) = paged.frozen.take().expect("a frozen version");
        paged.base = Some((Version::create(layout::DIR_BASE, frozen.dir), generation));
        generation
    })
}

/// The slots `version` maps and none of `neighbours` (its neighbours in the chain of versions)
/// does: a slot maps the same page (or table page) in every version that maps it, so only its
/// place in each neighbour is looked at, and a table page a neighbour shares is skipped whole.
fn only_in(version: &mut Version, neighbours: &mut [&mut Version], data: &SlotMemory) -> Vec<u64> {
    let mut freed = Vec::new();
    for table in 0..version.dir.len() as u64 {
        let Some(table_slot) = version.dir[table as usize].slot() else { continue };
        if neighbours.iter().any(|other| other.dir.get(table as usize).and_then(|entry| entry.slot()) == Some(table_slot)) {
            continue;
        }
        let entries = *version.table(data, table).expect("a mapped table page");
        let theirs: Vec<Option<[Entry; ENTRIES as usize]>> =
            neighbours.iter_mut().map(|other| other.table(data, table).map(|entries| *entries)).collect();
        for (index, entry) in entries.iter().enumerate() {
            if let Some(slot) = entry.slot()
                && theirs.iter().all(|other| other.is_none_or(|other| other[index].slot() != Some(slot)))
            {
                freed.push(slot);
            }
        }
        freed.push(table_slot);
    }
    freed
}

/// Bytes `range` of the frozen version, which must be whole pages but for the last: the pages
/// that differ from the base's (a page past the base's end differs unless it is zeros), in order,
/// and a bitmap of them (bit `j % 8` of byte `j / 8` for the range's page `j`). A page whose slot
/// is the base's is the same; one written again with the same bytes is too.
pub fn changed_pages(range: std::ops::Range<u64>) -> (Vec<u8>, Vec<u8>) {
    with_paged(|paged| {
        let Paged { slots: Slots { data, .. }, frozen, base, .. } = paged;
        let (frozen, _) = frozen.as_mut().expect("a frozen version");
        let (base, _) = base.as_mut().expect("a base");
        let pages = (range.end - range.start).div_ceil(PAGE);
        let mut bitmap = vec![0u8; pages.div_ceil(8) as usize];
        let mut changed = Vec::new();
        let (mut mine, mut theirs) = (vec![0u8; PAGE as usize], vec![0u8; PAGE as usize]);
        for j in 0..pages {
            let at = range.start + j * PAGE;
            let page = at / PAGE;
            let len = (range.end - at).min(PAGE) as usize;
            let (new, old) = (frozen.entry(data, page), base.entry(data, page));
            if new.slot() == old.slot() {
                continue;
            }
            for (entry, bytes) in [(new, &mut mine), (old, &mut theirs)] {
                match entry.slot() {
                    Some(slot) => data.read(slot, &mut bytes[..len]),
                    None => bytes[..len].fill(0),
                }
            }
            if !vault_api::codec::same_bytes(&mine[..len], &theirs[..len]) {
                bitmap[(j / 8) as usize] |= 1 << (j % 8);
                changed.extend_from_slice(&mine[..len]);
            }
        }
        (changed, bitmap)
    })
}

/// Opens a staged version of `size` bytes, its pages all zeros, if the slots for it can be
/// taken (a staged version shares none, so that is one per page and table page); if not, the
/// bytes the slots that can be taken would hold.
pub fn open_staged(size: u64) -> Result<(), u64> {
    with_paged(|paged| {
        assert!(paged.frozen.is_none() && paged.base.is_none() && paged.staged.is_none(), "a version is held or staged already");
        let tables = tables_for(size);
        paged.slots.reserve(size.div_ceil(PAGE) + tables).map_err(|slots| slots.saturating_sub(tables) * PAGE)?;
        paged.staged = Some(Version::create(dir_memory(paged.live_dir.other()), vec![Entry::NONE; tables as usize]));
        Ok(())
    })
}

/// Writes `src` at `offset` of the staged version.
pub fn write_staged(offset: u64, src: &[u8]) {
    with_paged(|paged| {
        let staged = paged.staged.as_mut().expect("a staged version");
        write_version(staged, &mut paged.slots, paged.generation, Shared(None), offset, src);
    })
}

/// Drops the staged version, freeing its slots.
pub fn release_staged() {
    with_paged(|paged| {
        if let Some(mut staged) = paged.staged.take() {
            let slots = staged.slots(&paged.slots.data);
            paged.slots.release(slots);
        }
    })
}

/// Makes the staged version of `size` bytes the live one, freeing the old live version's slots.
pub fn commit_staged(size: u64) {
    with_paged(|paged| {
        let staged = paged.staged.take().expect("a staged version");
        assert!(paged.frozen.is_none(), "no version is frozen while one is staged");
        debug_assert!(staged.len() >= size);
        cool();
        let mut old = std::mem::replace(&mut paged.live, staged);
        paged.live_dir = paged.live_dir.other();
        paged.live_size = size;
        let slots = old.slots(&paged.slots.data);
        paged.slots.release(slots);
        store::update_header(|h| {
            h.live_dir = paged.live_dir;
            h.app_pages = size / WASM_PAGE;
        });
    })
}

/// Lays out a memory of layout 3 as pages: its APP memory (now SLOTS) of `pages` wasm pages
/// becomes the live version's slots in order, behind table pages that map each page to itself.
/// The slots after them up to the memory's size (a restore of layout 3 may have left bytes past
/// the app's size) are free, and not all zeros: all the slots up to there count as taken once.
pub fn lay_out_in_place(data: Mem, free_memory: Mem, dir: Mem, pages: u64) {
    let logical = pages * PAGES_PER_WASM_PAGE;
    let tables = tables_for(pages * WASM_PAGE);
    if !reserve(&data, (logical + tables) * PAGE, 1) {
        ic_cdk::trap("the vault client could not grow the app's memory for its page table");
    }
    let mut dir_entries = Vec::with_capacity(tables as usize);
    for table in 0..tables {
        let entries: Vec<Entry> = (table * ENTRIES..(table + 1) * ENTRIES)
            .map(|page| if page < logical { Entry::new(page, 0) } else { Entry::NONE })
            .collect();
        let slot = logical + table;
        data.write(slot * PAGE, &entry_bytes(&entries));
        dir_entries.push(Entry::new(slot, 0));
    }
    store_dir(&dir, 0, &dir_entries);
    let used = logical + tables;
    Slots::init(free_memory, used, used.max(data.size() * WASM_PAGE / PAGE));
}

/// Forgets what the heap holds of the versions, as a new instance of the app would (tests).
#[cfg(test)]
pub fn forget() {
    PAGED.set(None);
    cool();
}

/// Slots mapped by some version.
#[cfg(test)]
pub fn slots_in_use() -> u64 {
    with_paged(|paged| paged.slots.in_use())
}

/// Slots only the frozen version maps.
#[cfg(test)]
pub fn frozen_only_slots() -> usize {
    with_paged(|paged| {
        let Paged { slots, live, frozen, base, .. } = paged;
        let Some((frozen, _)) = frozen.as_mut() else { return 0 };
        let mut neighbours = vec![live];
        neighbours.extend(base.as_mut().map(|(base, _)| base));
        only_in(frozen, &mut neighbours, &slots.data).len()
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::layout::{OpenDump, OpenRestore, SessionKey};

    #[test]
    fn an_entry_holds_its_slot_and_generation() {
        let entry = Entry::new(7, 3);
        assert_eq!((entry.slot(), entry.generation()), (Some(7), 3));
        assert_eq!(Entry::NONE.slot(), None);
        assert_eq!(Entry::new(0, 0).slot(), Some(0));
        assert_eq!(Entry::new(5, 1).to_le_bytes(), [6, 0, 0, 0, 1, 0, 0, 0], "golden bytes");
    }

    #[test]
    fn a_write_after_the_dump_kept_as_base_leaves_the_base_and_shows_as_changed() {
        grow_live(1);
        write_live(0, &[1; WASM_PAGE as usize], || ());
        freeze();
        let generation = keep_frozen_as_base();
        store::update_header(|h| {
            h.base = Some(layout::Base { kind: StateKind::StableMemory, vault: key().vault, nonce: key().nonce, snapshot: 1, size: WASM_PAGE, generation, touched_at_nanos: 0 })
        });
        write_live(PAGE + 5, b"new", || ());
        write_live(3 * PAGE, &[1; 8], || ());
        let base = with_paged(|paged| paged.base.as_mut().expect("a base").0.read_to_vec(&paged.slots.data, 0, WASM_PAGE as usize));
        assert!(base == vec![1; WASM_PAGE as usize], "the base is as it was kept");
        freeze();
        let (data, bitmap) = changed_pages(0..WASM_PAGE);
        assert_eq!(bitmap, vec![0b10, 0], "page 1 changed; page 3 was written with the bytes it had");
        assert_eq!(&data[5..8], b"new");
        assert_eq!(data.len(), PAGE as usize);
    }

    #[test]
    fn a_grow_that_free_slots_back_leaves_the_slots_memory_as_it_is() {
        let image = vec![1; 2 * WASM_PAGE as usize];
        grow_live(2);
        write_live(0, &image, || ());
        assert_eq!(open_staged(2 * WASM_PAGE), Ok(()));
        write_staged(0, &image);
        commit_staged(2 * WASM_PAGE);
        let slots_memory = || store::memory(layout::SLOTS).size();
        let before = slots_memory();
        assert!(slots_in_use() + 33 <= before * PAGES_PER_WASM_PAGE, "the old live version's 33 slots are free");
        assert!(grow_live(4));
        assert_eq!(slots_memory(), before, "32 pages and a table page more fit in the free slots");
        write_live(2 * WASM_PAGE, &image, || ());
        assert_eq!(live_size(), 4 * WASM_PAGE);
    }

    #[test]
    fn a_version_keeps_no_more_table_pages_on_the_heap_than_its_cache_holds() {
        with_paged(|paged| {
            // A version of more tables than the cache holds, each table's first page written.
            let tables = CACHED_TABLES as u64 + 2;
            let mut version = Version::create(layout::DIR_B, vec![Entry::NONE; tables as usize]);
            for table in 0..tables {
                write_version(&mut version, &mut paged.slots, 0, Shared(None), table * ENTRIES * PAGE, &[1]);
                assert!(version.cached <= CACHED_TABLES, "{} table pages cached after {} written", version.cached, table + 1);
            }
            assert_eq!(version.tables.iter().filter(|cached| cached.is_some()).count(), version.cached);
            assert_eq!(version.read_to_vec(&paged.slots.data, (tables - 1) * ENTRIES * PAGE, 2), [1, 0]);
        })
    }

    /// `len` bytes of the live version at `offset`, read as the app reads them.
    fn read(offset: u64, len: usize) -> Vec<u8> {
        let mut bytes = vec![0xee; len];
        // SAFETY: `bytes` has room for `len` bytes.
        unsafe { read_live(offset, bytes.as_mut_ptr(), len) };
        bytes
    }

    #[test]
    fn a_write_across_pages_that_maps_a_hot_page_anew_reads_as_written() {
        grow_live(1);
        assert_eq!(read(PAGE, 2), [0, 0], "page 1 is hot, no slot backing it");
        write_live(PAGE - 2, b"abcd", || ());
        assert_eq!(read(PAGE, 2), b"cd");
        freeze();
        assert_eq!(read(PAGE, 2), b"cd", "page 1 is hot, its slot the frozen version's");
        write_live(PAGE - 2, b"wxyz", || ());
        assert_eq!((read(PAGE, 2), read_frozen(PAGE, 2)), (b"yz".to_vec(), b"cd".to_vec()));
    }

    /// The slots some version maps, each once.
    fn mapped_slots() -> BTreeSet<u64> {
        with_paged(|paged| {
            let Paged { slots: Slots { data, .. }, live, frozen, base, staged, .. } = paged;
            let mut slots: BTreeSet<u64> = live.slots(data).into_iter().collect();
            for (held, _) in frozen.iter_mut().chain(base.iter_mut()) {
                slots.extend(held.slots(data));
            }
            if let Some(staged) = staged.as_mut() {
                slots.extend(staged.slots(data));
            }
            slots
        })
    }

    fn live_bytes() -> Vec<u8> {
        read(0, (store::header().app_pages * WASM_PAGE) as usize)
    }

    fn key() -> SessionKey {
        SessionKey { vault: candid::Principal::from_slice(&[9; 10]), nonce: Some(1), job: 1 }
    }

    /// What the header says is open, as the session module records it.
    fn record(session: Session) {
        store::update_header(|h| h.session = session);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Grow(u64),
        Write { at: u64, len: u64, byte: u8 },
        Read { at: u64, len: u64 },
        Freeze,
        ReleaseFrozen,
        KeepAsBase,
        ReleaseBase,
        Stage(u64),
        WriteStaged { at: u64, len: u64, byte: u8 },
        Commit,
        ReleaseStaged,
        Restart,
    }

    fn op() -> impl Strategy<Value = Op> {
        let write = (0..1u64 << 21, 1..3 * PAGE, any::<u8>());
        // Short accesses, most within a page, to the first 16 pages (one of each hot set): the
        // hot pages' paths.
        let short = (0..16 * PAGE, 1..64u64, any::<u8>());
        prop_oneof![
            1 => (0..12u64).prop_map(Op::Grow),
            3 => write.clone().prop_map(|(at, len, byte)| Op::Write { at, len, byte }),
            2 => short.clone().prop_map(|(at, len, byte)| Op::Write { at, len, byte }),
            2 => short.prop_map(|(at, len, _)| Op::Read { at, len }),
            1 => Just(Op::Freeze),
            1 => Just(Op::ReleaseFrozen),
            1 => Just(Op::KeepAsBase),
            1 => Just(Op::ReleaseBase),
            1 => (0..40u64).prop_map(Op::Stage),
            3 => write.prop_map(|(at, len, byte)| Op::WriteStaged { at, len, byte }),
            2 => Just(Op::Commit),
            1 => Just(Op::ReleaseStaged),
            1 => Just(Op::Restart),
        ]
    }

    /// Clamps a write of `len` bytes at `at` into `size` bytes.
    fn within(at: u64, len: u64, size: u64) -> Option<(u64, u64)> {
        (size > 0).then(|| (at % size, len.min(size - at % size)))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Every version reads as a model of it, across restarts of the instance, and the slots
        /// in use are exactly those some version maps: nothing leaks, nothing mapped is free.
        #[test]
        fn versions_match_a_model_and_no_slot_leaks(ops in proptest::collection::vec(op(), 1..40)) {
            std::thread::spawn(move || -> Result<(), TestCaseError> {
                let mut live: Vec<u8> = Vec::new();
                let mut frozen: Option<Vec<u8>> = None;
                let mut base: Option<Vec<u8>> = None;
                let mut staged: Option<Vec<u8>> = None;
                for op in ops {
                    match op {
                        Op::Grow(pages) => {
                            let old = store::header().app_pages;
                            prop_assert!(grow_live(old + pages));
                            prop_assert_eq!(store::header().app_pages, old + pages);
                            live.resize(((old + pages) * WASM_PAGE) as usize, 0);
                        }
                        Op::Write { at, len, byte } => {
                            if let Some((at, len)) = within(at, len, live.len() as u64) {
                                let bytes = vec![byte; len as usize];
                                write_live(at, &bytes, || ());
                                live[at as usize..(at + len) as usize].copy_from_slice(&bytes);
                            }
                        }
                        Op::Read { at, len } => {
                            if let Some((at, len)) = within(at, len, live.len() as u64) {
                                prop_assert!(read(at, len as usize) == live[at as usize..(at + len) as usize], "a short read of the live version reads as its model");
                            }
                        }
                        Op::Freeze if frozen.is_none() && staged.is_none() => {
                            let size = live.len() as u64;
                            let frozen_generation = freeze();
                            record(Session::Dumping(OpenDump {
                                key: key(), kind: StateKind::StableMemory, size, chunk_size: PAGE, taken_at_nanos: 0,
                                frozen_generation, touched_at_nanos: 0, chunk_hashes: false, incremental: false, from_upgrade_save: false, content_index: false,
                            }));
                            frozen = Some(live.clone());
                        }
                        Op::ReleaseFrozen if frozen.is_some() => {
                            release_frozen();
                            record(Session::Idle);
                            frozen = None;
                        }
                        Op::KeepAsBase if frozen.is_some() => {
                            let image = frozen.take().expect("frozen");
                            let generation = keep_frozen_as_base();
                            store::update_header(|h| {
                                h.session = Session::Idle;
                                h.base = Some(layout::Base {
                                    kind: StateKind::StableMemory, vault: key().vault, nonce: key().nonce, snapshot: 1, size: image.len() as u64, generation, touched_at_nanos: 0,
                                });
                            });
                            base = Some(image);
                        }
                        Op::ReleaseBase if base.is_some() => {
                            release_base();
                            store::update_header(|h| h.base = None);
                            base = None;
                        }
                        Op::Stage(pages) if frozen.is_none() && staged.is_none() => {
                            release_base();
                            store::update_header(|h| h.base = None);
                            base = None;
                            let size = pages * WASM_PAGE;
                            prop_assert_eq!(open_staged(size), Ok(()));
                            record(Session::Restoring(OpenRestore {
                                key: key(), kind: StateKind::StableMemory, size, chunk_size: PAGE, sha256: Default::default(),
                                touched_at_nanos: 0, content_hash: vault_api::ContentHash::Blake3,
                            }));
                            staged = Some(vec![0; size as usize]);
                        }
                        Op::WriteStaged { at, len, byte } => {
                            if let Some(image) = staged.as_mut()
                                && let Some((at, len)) = within(at, len, image.len() as u64)
                            {
                                let bytes = vec![byte; len as usize];
                                write_staged(at, &bytes);
                                image[at as usize..(at + len) as usize].copy_from_slice(&bytes);
                            }
                        }
                        Op::Commit if staged.is_some() => {
                            let image = staged.take().expect("staged");
                            commit_staged(image.len() as u64);
                            record(Session::Idle);
                            live = image;
                        }
                        Op::ReleaseStaged if staged.is_some() => {
                            release_staged();
                            record(Session::Idle);
                            staged = None;
                        }
                        Op::Restart => forget(),
                        _ => {}
                    }
                    prop_assert!(live_bytes() == live, "the live version reads as its model");
                    if let Some(image) = &frozen {
                        prop_assert!(read_frozen(0, image.len()) == *image, "the frozen version reads as its model");
                        if let Some(old) = &base {
                            // Whole pages: the range's last page is whole in an image of wasm pages.
                            let (data, bitmap) = changed_pages(0..image.len() as u64);
                            let (mut want_data, mut want_bitmap) = (Vec::new(), vec![0u8; (image.len() as u64 / PAGE).div_ceil(8) as usize]);
                            for (j, page) in image.chunks(PAGE as usize).enumerate() {
                                let was = old.get(j * PAGE as usize..(j + 1) * PAGE as usize).unwrap_or(&[0; PAGE as usize]);
                                if page != was {
                                    want_bitmap[j / 8] |= 1 << (j % 8);
                                    want_data.extend_from_slice(page);
                                }
                            }
                            prop_assert!(bitmap == want_bitmap && data == want_data, "the changed pages are those that differ from the base");
                        }
                    }
                    if let Some(image) = &base {
                        let base_bytes = with_paged(|paged| paged.base.as_mut().expect("a base").0.read_to_vec(&paged.slots.data, 0, image.len()));
                        prop_assert!(base_bytes == *image, "the base reads as its model");
                    }
                    if let Some(image) = &staged {
                        let staged_bytes = with_paged(|paged| {
                            paged.staged.as_mut().expect("a staged version").read_to_vec(&paged.slots.data, 0, image.len())
                        });
                        prop_assert!(staged_bytes == *image, "the staged version reads as its model");
                    }
                    prop_assert_eq!(slots_in_use(), mapped_slots().len() as u64, "slots in use are those mapped");
                }
                Ok(())
            })
            .join()
            .expect("the instance's thread")?;
        }
    }
}
