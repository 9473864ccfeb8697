//! The app's memory as 4 KiB pages mapped to slots of the SLOTS memory through a page table:
//! shadow paging. A version of the memory is a directory of table pages, each table page 512
//! entries mapping a logical page to its slot (or to none: zeros). Three versions at most:
//!
//! - **live**, what the app reads and writes;
//! - **frozen**, the live version as of the message that opened a stable-memory dump: an open
//!   dump freezes the directory (a copy of 8 bytes per 2 MiB), and from then on a write to a
//!   page (or table page) the frozen version shares goes to a fresh slot, the old one left to
//!   the dump; no byte the app does not write is copied;
//! - **staged**, a restore's image written into free slots over as many messages as it needs;
//!   its commit makes it the live version by switching which directory is live, and frees the
//!   slots of the old one.
//!
//! An entry is shared with the frozen version when its generation is not newer than the frozen
//! one: each freeze starts a generation, and every slot a write takes is stamped with it. A slot
//! is free once no version maps it (the FREE bitmap); the drawing is in `layout`.

use std::cell::RefCell;

use ic_stable_structures::Memory;
use ic_stable_structures::memory_manager::MemoryId;
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

fn read_entries(memory: &Mem, offset: u64, entries: &mut [Entry]) {
    let mut bytes = vec![0u8; entries.len() * 8];
    memory.read(offset, &mut bytes);
    for (entry, raw) in entries.iter_mut().zip(bytes.chunks_exact(8)) {
        *entry = Entry(u64::from_le_bytes(raw.try_into().expect("8 bytes")));
    }
}

fn entry_bytes(entries: &[Entry]) -> Vec<u8> {
    entries.iter().flat_map(|entry| entry.to_le_bytes()).collect()
}

/// Grows `memory` to hold `bytes`; whether it could.
fn reserve(memory: &Mem, bytes: u64, step: u64) -> bool {
    let needed = bytes.div_ceil(WASM_PAGE);
    let have = memory.size();
    have >= needed || memory.grow((needed - have).max(step)) >= 0 || memory.grow(needed - have) >= 0
}

/// The slots: the SLOTS memory, and which of them no version maps. The FREE memory holds the
/// number of slots ever taken (8 bytes), then a bitmap of them, a set bit a free slot.
struct Slots {
    data: Mem,
    free_memory: Mem,
    end: u64,
    free: Vec<u64>,
    /// No word before it has a free slot.
    cursor: usize,
}

impl Slots {
    fn open(data: Mem, free_memory: Mem) -> Slots {
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
        let free = bytes.chunks_exact(8).map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes"))).collect();
        Slots { data, free_memory, end, free, cursor: 0 }
    }

    /// Records `end` slots taken, none free (a memory laid out by the migration).
    fn init(data: Mem, free_memory: Mem, end: u64) -> Slots {
        let mut slots = Slots { data, free_memory, end, free: vec![0; end.div_ceil(64) as usize], cursor: 0 };
        slots.store_end();
        slots.store_words(0, slots.free.len());
        slots
    }

    fn store_end(&mut self) {
        if !reserve(&self.free_memory, 8 + self.free.len() as u64 * 8, 1) {
            ic_cdk::trap("the vault client could not grow its free-slot bitmap");
        }
        self.free_memory.write(0, &self.end.to_le_bytes());
    }

    fn store_words(&self, from: usize, to: usize) {
        if from < to {
            let bytes: Vec<u8> = self.free[from..to].iter().flat_map(|w| w.to_le_bytes()).collect();
            self.free_memory.write(8 + from as u64 * 8, &bytes);
        }
    }

    /// A slot no version maps, taken.
    fn take(&mut self) -> u64 {
        while self.cursor < self.free.len() {
            let word = self.free[self.cursor];
            if word != 0 {
                let bit = word.trailing_zeros() as u64;
                self.free[self.cursor] = word & !(1 << bit);
                self.store_words(self.cursor, self.cursor + 1);
                return self.cursor as u64 * 64 + bit;
            }
            self.cursor += 1;
        }
        let slot = self.end;
        if !reserve(&self.data, (slot + 1) * PAGE, GROWTH_STEP) {
            ic_cdk::trap("the app's stable memory is full: the vault client could not take a page for a write");
        }
        self.end += 1;
        if self.end.div_ceil(64) as usize > self.free.len() {
            self.free.push(0);
            self.cursor = self.free.len();
        }
        self.store_end();
        slot
    }

    /// Frees `slots`, which no version maps any more.
    fn release(&mut self, slots: impl IntoIterator<Item = u64>) {
        let mut changed: Option<(usize, usize)> = None;
        for slot in slots {
            let word = (slot / 64) as usize;
            self.free[word] |= 1 << (slot % 64);
            changed = Some(changed.map_or((word, word + 1), |(from, to)| (from.min(word), to.max(word + 1))));
        }
        if let Some((from, to)) = changed {
            self.store_words(from, to);
            self.cursor = self.cursor.min(from);
        }
    }

    fn free_count(&self) -> u64 {
        self.free.iter().map(|w| w.count_ones() as u64).sum()
    }

    /// Whether `count` more slots can be taken, growing the SLOTS memory for them; if not, how
    /// many can.
    fn reserve(&self, count: u64) -> Result<(), u64> {
        let free = self.free_count();
        let beyond = count.saturating_sub(free);
        if self.end.checked_add(beyond).is_some_and(|end| end < u32::MAX as u64 && reserve(&self.data, end * PAGE, GROWTH_STEP)) {
            return Ok(());
        }
        Err(free + (self.data.size() * WASM_PAGE / PAGE).saturating_sub(self.end))
    }

    #[cfg(test)]
    fn in_use(&self) -> u64 {
        self.end - self.free_count()
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

/// Where a run of bytes of a version is.
enum Run {
    /// In the SLOTS memory from this offset.
    Slots(u64),
    /// Nowhere: zeros.
    Zeros,
}

impl Version {
    /// The version whose directory of `tables` entries is in `dir`.
    fn open(dir: MemoryId, tables: u64) -> Version {
        let dir_memory = store::memory(dir);
        let mut entries = vec![Entry::NONE; tables as usize];
        if tables > 0 {
            read_entries(&dir_memory, 0, &mut entries);
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

    /// The table page `table` of this version (none if it maps nothing).
    fn table(&mut self, data: &Mem, table: u64) -> Option<&mut [Entry; ENTRIES as usize]> {
        let slot = self.dir.get(table as usize)?.slot()?;
        let index = table as usize;
        if self.tables[index].is_none() {
            if self.cached == CACHED_TABLES {
                self.tables.iter_mut().for_each(|cached| *cached = None);
                self.cached = 0;
            }
            let mut entries = Box::new([Entry::NONE; ENTRIES as usize]);
            read_entries(data, slot * PAGE, &mut entries[..]);
            self.tables[index] = Some(entries);
            self.cached += 1;
        }
        self.tables[index].as_deref_mut()
    }

    fn entry(&mut self, data: &Mem, page: u64) -> Entry {
        self.table(data, page / ENTRIES).map_or(Entry::NONE, |table| table[(page % ENTRIES) as usize])
    }

    /// Calls `f` for each run of `[offset, offset + len)`, in order: its length and where it is.
    fn runs(&mut self, data: &Mem, offset: u64, len: u64, mut f: impl FnMut(u64, Run)) {
        let end = offset + len;
        let mut at = offset;
        while at < end {
            let page = at / PAGE;
            let slot = self.entry(data, page).slot();
            let mut run_end = ((page + 1) * PAGE).min(end);
            // Extend over the following pages that continue it: the next slot, or zeros again.
            while run_end < end {
                let next = self.entry(data, run_end / PAGE).slot();
                let continues = match (slot, next) {
                    (Some(first), Some(next)) => next == first + (run_end / PAGE - page),
                    (None, None) => true,
                    _ => false,
                };
                if !continues {
                    break;
                }
                run_end = (run_end + PAGE).min(end);
            }
            let run = slot.map_or(Run::Zeros, |slot| Run::Slots(slot * PAGE + at % PAGE));
            f(run_end - at, run);
            at = run_end;
        }
    }

    /// Every slot this version maps, its table pages' included.
    fn slots(&mut self, data: &Mem) -> Vec<u64> {
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
    live_dir: LiveDir,
    /// The frozen version, with its generation.
    frozen: Option<(Version, u32)>,
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
        let bytes = &src[(at - offset) as usize..(at - offset + n) as usize];
        let entry = version.entry(&slots.data, page);
        match entry.slot() {
            Some(slot) if !shared.holds(entry) => {
                // Extend over the following pages in the next slots, also changed in place.
                let mut run_end = at + n;
                while run_end < end {
                    let next = version.entry(&slots.data, run_end / PAGE);
                    if shared.holds(next) || next.slot() != Some(slot + (run_end / PAGE - page)) {
                        break;
                    }
                    run_end = (run_end + PAGE).min(end);
                }
                slots.data.write(slot * PAGE + within, &src[(at - offset) as usize..(run_end - offset) as usize]);
                at = run_end;
                continue;
            }
            old => {
                let fresh = slots.take();
                if n == PAGE {
                    slots.data.write(fresh * PAGE, bytes);
                } else {
                    let mut page_bytes = [0u8; PAGE as usize];
                    if let Some(old) = old {
                        slots.data.read(old * PAGE, &mut page_bytes);
                    }
                    page_bytes[within as usize..(within + n) as usize].copy_from_slice(bytes);
                    slots.data.write(fresh * PAGE, &page_bytes);
                }
                set_entry(version, slots, generation, shared, page, Entry::new(fresh, generation));
            }
        }
        at += n;
    }
}

/// Maps `page` of `version` to `entry`, in a fresh table page if its own is not mapped or
/// `shared` holds it.
fn set_entry(version: &mut Version, slots: &mut Slots, generation: u32, shared: Shared, page: u64, entry: Entry) {
    let table = page / ENTRIES;
    let index = (page % ENTRIES) as usize;
    let dir_entry = version.dir[table as usize];
    match dir_entry.slot() {
        Some(slot) if !shared.holds(dir_entry) => {
            version.table(&slots.data, table).expect("a mapped table page")[index] = entry;
            slots.data.write(slot * PAGE + index as u64 * 8, &entry.to_le_bytes());
        }
        _ => {
            let mut entries = version.table(&slots.data, table).map_or([Entry::NONE; ENTRIES as usize], |entries| *entries);
            entries[index] = entry;
            let fresh = slots.take();
            slots.data.write(fresh * PAGE, &entry_bytes(&entries));
            let fresh_entry = Entry::new(fresh, generation);
            version.dir[table as usize] = fresh_entry;
            store_dir(&version.dir_memory, table, &[fresh_entry]);
            if version.tables[table as usize].replace(Box::new(entries)).is_none() {
                version.cached += 1;
            }
        }
    }
}

impl Paged {
    fn open() -> Paged {
        let header = store::header();
        let slots = Slots::open(store::memory(layout::SLOTS), store::memory(layout::FREE));
        let live_dir = header.live_dir;
        let live = Version::open(dir_memory(live_dir), tables_for(header.app_pages * WASM_PAGE));
        let (frozen, staged) = match &header.session {
            Session::Dumping(dump) if dump.kind == StateKind::StableMemory => {
                (Some((Version::open(layout::DIR_FROZEN, tables_for(dump.size)), dump.frozen_generation)), None)
            }
            Session::Restoring(restore) if restore.kind == StateKind::StableMemory => {
                (None, Some(Version::open(dir_memory(live_dir.other()), tables_for(restore.size))))
            }
            _ => (None, None),
        };
        Paged { slots, live, live_dir, frozen, staged, generation: header.generation }
    }

    fn shared(&self) -> Shared {
        Shared(self.frozen.as_ref().map(|(_, generation)| *generation))
    }
}

thread_local! {
    static PAGED: RefCell<Option<Paged>> = const { RefCell::new(None) };
}

fn with_paged<R>(f: impl FnOnce(&mut Paged) -> R) -> R {
    PAGED.with_borrow_mut(|paged| f(paged.get_or_insert_with(Paged::open)))
}

/// Reads `len` bytes of the live version at `offset` into `dst`, which must have room for them.
///
/// # Safety
/// `dst` must be valid for `len` bytes of writes; all of them are written.
pub unsafe fn read_live(offset: u64, dst: *mut u8, len: usize) {
    with_paged(|paged| {
        let data = paged.slots.data.clone();
        let mut done = 0usize;
        paged.live.runs(&data, offset, len as u64, |n, run| {
            // SAFETY: `done + n <= len`, within the destination the caller vouches for.
            unsafe {
                let at = dst.add(done);
                match run {
                    Run::Slots(from) => data.read_unsafe(from, at, n as usize),
                    Run::Zeros => std::ptr::write_bytes(at, 0, n as usize),
                }
            }
            done += n as usize;
        });
    })
}

/// Writes `src` at `offset` of the live version; pages the frozen version shares go to fresh
/// slots.
pub fn write_live(offset: u64, src: &[u8]) {
    with_paged(|paged| {
        let shared = paged.shared();
        write_version(&mut paged.live, &mut paged.slots, paged.generation, shared, offset, src);
    })
}

/// Grows the live version to `pages` wasm pages from `old`: the new pages read as zeros, and the
/// SLOTS memory grows to back them. Whether it could.
pub fn grow_live(old: u64, pages: u64) -> bool {
    with_paged(|paged| {
        let added = (pages - old) * PAGES_PER_WASM_PAGE;
        let (before, after) = (tables_for(old * WASM_PAGE), tables_for(pages * WASM_PAGE));
        let slots = &paged.slots;
        let room = (slots.data.size() * WASM_PAGE).saturating_add((added + after - before) * PAGE);
        if !reserve(&slots.data, room, 1) {
            return false;
        }
        // A directory used by an older version may hold entries past this one's end.
        let fresh = vec![Entry::NONE; (after - before) as usize];
        store_dir(&paged.live.dir_memory, before, &fresh);
        paged.live.dir.extend(&fresh);
        paged.live.tables.extend(fresh.iter().map(|_| None));
        true
    })
}

/// Freezes the first `size` bytes of the live version for a dump; returns the frozen generation.
pub fn freeze(size: u64) -> u32 {
    with_paged(|paged| {
        assert!(paged.frozen.is_none() && paged.staged.is_none(), "a version is frozen or staged already");
        let tables = tables_for(size) as usize;
        let frozen = Version::create(layout::DIR_FROZEN, paged.live.dir[..tables].to_vec());
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
        let data = paged.slots.data.clone();
        let (frozen, _) = paged.frozen.as_mut().expect("a frozen version");
        let mut buf = ReadBuffer::with_capacity(len);
        frozen.runs(&data, offset, len as u64, |n, run| match run {
            Run::Slots(from) => buf.read(&data, from, n as usize),
            Run::Zeros => buf.zeros(n as usize),
        });
        buf.into_vec()
    })
}

/// Drops the frozen version, freeing the slots only it maps.
pub fn release_frozen() {
    with_paged(|paged| {
        if let Some((mut frozen, _)) = paged.frozen.take() {
            let freed = frozen_only(&mut frozen, paged);
            paged.slots.release(freed);
        }
    })
}

/// The slots `frozen` maps and the live version does not: those of its table pages the live
/// version took fresh slots for, and of their entries those it did.
fn frozen_only(frozen: &mut Version, paged: &mut Paged) -> Vec<u64> {
    let data = paged.slots.data.clone();
        let mut freed = Vec::new();
        for table in 0..frozen.dir.len() as u64 {
            let Some(frozen_slot) = frozen.dir[table as usize].slot() else { continue };
            if paged.live.dir.get(table as usize).and_then(|entry| entry.slot()) == Some(frozen_slot) {
                continue;
            }
            let old = *frozen.table(&data, table).expect("a mapped table page");
            let live = paged.live.table(&data, table).map(|entries| *entries);
            for (index, entry) in old.iter().enumerate() {
                if let Some(slot) = entry.slot()
                    && live.is_none_or(|live| live[index].slot() != Some(slot))
                {
                    freed.push(slot);
                }
            }
            freed.push(frozen_slot);
        }
        freed
}

/// Opens a staged version of `size` bytes, its pages all zeros, if the slots for it can be
/// taken (a staged version shares none, so that is one per page and table page); if not, the
/// bytes the slots that can be taken would hold.
pub fn open_staged(size: u64) -> Result<(), u64> {
    with_paged(|paged| {
        assert!(paged.frozen.is_none() && paged.staged.is_none(), "a version is frozen or staged already");
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
        let mut old = std::mem::replace(&mut paged.live, staged);
        paged.live_dir = paged.live_dir.other();
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
    Slots::init(data, free_memory, logical + tables);
}

/// Forgets what the heap holds of the versions, as a new instance of the app would (tests).
#[cfg(test)]
pub fn forget() {
    PAGED.set(None);
}

/// Slots mapped by some version.
#[cfg(test)]
pub fn slots_in_use() -> u64 {
    with_paged(|paged| paged.slots.in_use())
}

/// Slots only the frozen version maps.
#[cfg(test)]
pub fn frozen_only_slots() -> usize {
    with_paged(|paged| match paged.frozen.take() {
        Some((mut frozen, generation)) => {
            let count = frozen_only(&mut frozen, paged).len();
            paged.frozen = Some((frozen, generation));
            count
        }
        None => 0,
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

    /// The slots some version maps, each once.
    fn mapped_slots() -> BTreeSet<u64> {
        with_paged(|paged| {
            let data = paged.slots.data.clone();
            let mut slots: BTreeSet<u64> = paged.live.slots(&data).into_iter().collect();
            if let Some((frozen, _)) = paged.frozen.as_mut() {
                slots.extend(frozen.slots(&data));
            }
            if let Some(staged) = paged.staged.as_mut() {
                slots.extend(staged.slots(&data));
            }
            slots
        })
    }

    fn live_bytes() -> Vec<u8> {
        let len = store::header().app_pages * WASM_PAGE;
        let mut bytes = vec![0xee; len as usize];
        // SAFETY: `bytes` has room for `len` bytes.
        unsafe { read_live(0, bytes.as_mut_ptr(), len as usize) };
        bytes
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
        Freeze,
        ReleaseFrozen,
        Stage(u64),
        WriteStaged { at: u64, len: u64, byte: u8 },
        Commit,
        ReleaseStaged,
        Restart,
    }

    fn op() -> impl Strategy<Value = Op> {
        let write = (0..1u64 << 21, 1..3 * PAGE, any::<u8>());
        prop_oneof![
            1 => (0..12u64).prop_map(Op::Grow),
            3 => write.clone().prop_map(|(at, len, byte)| Op::Write { at, len, byte }),
            1 => Just(Op::Freeze),
            1 => Just(Op::ReleaseFrozen),
            1 => (0..40u64).prop_map(Op::Stage),
            3 => write.prop_map(|(at, len, byte)| Op::WriteStaged { at, len, byte }),
            1 => Just(Op::Commit),
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
                let mut staged: Option<Vec<u8>> = None;
                for op in ops {
                    match op {
                        Op::Grow(pages) => {
                            let old = store::header().app_pages;
                            prop_assert!(grow_live(old, old + pages));
                            store::update_header(|h| h.app_pages = old + pages);
                            live.resize(((old + pages) * WASM_PAGE) as usize, 0);
                        }
                        Op::Write { at, len, byte } => {
                            if let Some((at, len)) = within(at, len, live.len() as u64) {
                                let bytes = vec![byte; len as usize];
                                write_live(at, &bytes);
                                live[at as usize..(at + len) as usize].copy_from_slice(&bytes);
                            }
                        }
                        Op::Freeze if frozen.is_none() && staged.is_none() => {
                            let size = live.len() as u64;
                            let frozen_generation = freeze(size);
                            record(Session::Dumping(OpenDump {
                                key: key(), kind: StateKind::StableMemory, size, chunk_size: PAGE, taken_at_nanos: 0,
                                frozen_generation, touched_at_nanos: 0, chunk_hashes: false,
                            }));
                            frozen = Some(live.clone());
                        }
                        Op::ReleaseFrozen if frozen.is_some() => {
                            release_frozen();
                            record(Session::Idle);
                            frozen = None;
                        }
                        Op::Stage(pages) if frozen.is_none() && staged.is_none() => {
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
                    }
                    if let Some(image) = &staged {
                        let staged_bytes = with_paged(|paged| {
                            let data = paged.slots.data.clone();
                            let version = paged.staged.as_mut().expect("a staged version");
                            let mut buf = ReadBuffer::with_capacity(image.len());
                            version.runs(&data, 0, image.len() as u64, |n, run| match run {
                                Run::Slots(from) => buf.read(&data, from, n as usize),
                                Run::Zeros => buf.zeros(n as usize),
                            });
                            buf.into_vec()
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
