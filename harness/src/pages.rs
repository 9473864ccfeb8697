//! Memory regions and the page journal that makes a message's writes undoable.
//!
//! Both memories of a canister keep the same per-message record: the set of 4 KiB pages the
//! message wrote, with the old contents of those that existed when it started. Committing
//! forgets the record; rolling back copies the saved pages back and zeroes the pages the
//! message added, so both cost about what the message touched, whatever the memory's size.

use crate::instrument::PAGE_SIZE;

/// A reserved range of address space, made accessible as it grows. Unix only (Linux, macOS).
pub struct Region {
    base: *mut u8,
    reserved: usize,
    accessible: usize,
}

// The region is plain memory owned by one canister; access goes through `&mut`.
unsafe impl Send for Region {}

impl Region {
    /// Reserves `bytes` of address space; nothing is accessible yet.
    pub fn reserve(bytes: usize) -> std::io::Result<Self> {
        let reserved = bytes.next_multiple_of(PAGE_SIZE).max(PAGE_SIZE);
        // SAFETY: a fresh anonymous mapping at an address the kernel picks.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                reserved,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANON | map_noreserve(),
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Region { base: base.cast(), reserved, accessible: 0 })
    }

    pub fn reserved(&self) -> usize {
        self.reserved
    }

    /// Makes the first `bytes` accessible (zero-filled where new). Never shrinks.
    pub fn make_accessible(&mut self, bytes: usize) -> std::io::Result<()> {
        let bytes = bytes.next_multiple_of(PAGE_SIZE);
        assert!(bytes <= self.reserved, "region grown past its reservation");
        if bytes <= self.accessible {
            return Ok(());
        }
        // SAFETY: the range lies inside our reservation.
        let rc = unsafe {
            libc::mprotect(
                self.base.add(self.accessible).cast(),
                bytes - self.accessible,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        self.accessible = bytes;
        Ok(())
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `accessible` bytes from `base` are mapped read-write and owned by us.
        unsafe { std::slice::from_raw_parts(self.base, self.accessible) }
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.base, self.accessible) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `reserve`.
        unsafe { libc::munmap(self.base.cast(), self.reserved) };
    }
}

#[cfg(target_os = "linux")]
fn map_noreserve() -> libc::c_int {
    libc::MAP_NORESERVE
}

#[cfg(not(target_os = "linux"))]
fn map_noreserve() -> libc::c_int {
    0
}

/// Below this, zeroing is a `memset`; above, the pages are replaced by fresh zero pages, which
/// also returns their memory to the system.
const REMAP_THRESHOLD: usize = 1 << 20;

/// Zeroes `bytes`, whose start and length are multiples of the page size.
pub fn zero_pages(bytes: &mut [u8]) {
    debug_assert_eq!(bytes.as_ptr() as usize % PAGE_SIZE, 0);
    debug_assert_eq!(bytes.len() % PAGE_SIZE, 0);
    if bytes.len() < REMAP_THRESHOLD {
        bytes.fill(0);
        return;
    }
    // SAFETY: replaces pages of a private read-write mapping we hold `&mut` to by fresh
    // anonymous zero pages with the same protection.
    let rc = unsafe {
        libc::mmap(
            bytes.as_mut_ptr().cast(),
            bytes.len(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANON | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if rc == libc::MAP_FAILED {
        bytes.fill(0);
    }
}

/// A set of page numbers with O(1) insert and a clear that costs what was inserted.
#[derive(Default)]
pub struct PageSet {
    bits: Vec<u64>,
    members: Vec<u64>,
}

impl PageSet {
    /// Inserts `page`; returns whether it was new.
    pub fn insert(&mut self, page: u64) -> bool {
        let word = (page / 64) as usize;
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        let bit = 1 << (page % 64);
        if self.bits[word] & bit != 0 {
            return false;
        }
        self.bits[word] |= bit;
        self.members.push(page);
        true
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn members(&self) -> &[u64] {
        &self.members
    }

    pub fn clear(&mut self) {
        for &page in &self.members {
            self.bits[(page / 64) as usize] = 0;
        }
        self.members.clear();
    }
}

/// Journal capacity kept between messages; a message that saved more gives the rest back.
const RETAINED_JOURNAL_BYTES: usize = 64 << 20;

/// The pages one message wrote, with the old contents of those below its starting size.
#[derive(Default)]
pub struct PageJournal {
    touched: PageSet,
    saved_pages: Vec<u64>,
    saved_data: Vec<u8>,
}

impl PageJournal {
    /// Records a write to `page` of `memory`, saving its contents first if the page existed at
    /// the start of the message (`page < fresh_from`). Returns whether the page was new to
    /// this message.
    pub fn touch(&mut self, page: u64, memory: &[u8], fresh_from: u64) -> bool {
        if !self.touched.insert(page) {
            return false;
        }
        if page < fresh_from {
            let start = page as usize * PAGE_SIZE;
            self.saved_pages.push(page);
            self.saved_data.extend_from_slice(&memory[start..start + PAGE_SIZE]);
        }
        true
    }

    /// Distinct pages written in this message.
    pub fn touched_count(&self) -> usize {
        self.touched.len()
    }

    pub fn touched(&self) -> &[u64] {
        self.touched.members()
    }

    /// Puts back every saved page; the caller zeroes the pages above the starting size.
    pub fn roll_back(&mut self, memory: &mut [u8]) {
        for (i, &page) in self.saved_pages.iter().enumerate() {
            let start = page as usize * PAGE_SIZE;
            memory[start..start + PAGE_SIZE]
                .copy_from_slice(&self.saved_data[i * PAGE_SIZE..(i + 1) * PAGE_SIZE]);
        }
        self.forget();
    }

    /// Keeps the writes.
    pub fn forget(&mut self) {
        self.touched.clear();
        self.saved_pages.clear();
        self.saved_data.clear();
        if self.saved_data.capacity() > RETAINED_JOURNAL_BYTES {
            self.saved_data.shrink_to(RETAINED_JOURNAL_BYTES);
        }
    }
}

/// Wasm pages of 64 KiB, the unit of `stable64_grow` and `memory.grow`.
pub const WASM_PAGE_SIZE: u64 = 65536;
const SMALL_PER_WASM_PAGE: u64 = WASM_PAGE_SIZE / PAGE_SIZE as u64;

/// Size bookkeeping shared by both memories: the size at the start of the message and the
/// largest size it reached, so a rollback knows which pages to zero.
#[derive(Clone, Copy, Debug, Default)]
pub struct SizeMark {
    pub at_start: u64,
    pub peak: u64,
}

impl SizeMark {
    pub fn new(pages: u64) -> Self {
        SizeMark { at_start: pages, peak: pages }
    }

    /// First 4 KiB page that did not exist when the message started.
    pub fn fresh_from(&self) -> u64 {
        self.at_start * SMALL_PER_WASM_PAGE
    }

    /// Byte range the message added, to zero on rollback.
    pub fn added_bytes(&self) -> std::ops::Range<usize> {
        (self.at_start * WASM_PAGE_SIZE) as usize..(self.peak * WASM_PAGE_SIZE) as usize
    }
}

/// Stable memory: host-owned, so it outlives module instances across upgrades.
pub struct StableMemory {
    region: Region,
    /// Current size in wasm pages.
    size: u64,
    journal: PageJournal,
    mark: SizeMark,
}

impl StableMemory {
    /// A stable memory of size 0 that can grow to `limit_bytes`.
    pub fn new(limit_bytes: u64) -> std::io::Result<Self> {
        Ok(StableMemory {
            region: Region::reserve(limit_bytes as usize)?,
            size: 0,
            journal: PageJournal::default(),
            mark: SizeMark::new(0),
        })
    }

    /// Size in wasm pages.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn size_bytes(&self) -> u64 {
        self.size * WASM_PAGE_SIZE
    }

    /// Grows by `pages`; returns the old size, or `None` past the limit.
    pub fn grow(&mut self, pages: u64) -> Option<u64> {
        let old = self.size;
        let new = old.checked_add(pages)?;
        let bytes = new.checked_mul(WASM_PAGE_SIZE)?;
        if bytes > self.region.reserved() as u64 {
            return None;
        }
        self.region.make_accessible(bytes as usize).ok()?;
        self.size = new;
        self.mark.peak = self.mark.peak.max(new);
        Some(old)
    }

    /// Whether `offset..offset+len` is inside the memory.
    pub fn in_bounds(&self, offset: u64, len: u64) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= self.size_bytes())
    }

    /// Bytes `offset..offset+len`; the caller checked the bounds.
    pub fn read(&self, offset: u64, len: u64) -> &[u8] {
        &self.region.bytes()[offset as usize..(offset + len) as usize]
    }

    /// Journals the pages of `offset..offset+len` and returns how many were new to this
    /// message. The caller checked the bounds and writes afterwards with [`Self::write_journaled`].
    pub fn journal_range(&mut self, offset: u64, len: u64) -> u64 {
        if len == 0 {
            return 0;
        }
        let first = offset / PAGE_SIZE as u64;
        let last = (offset + len - 1) / PAGE_SIZE as u64;
        let fresh_from = self.mark.fresh_from();
        let bytes = self.region.bytes();
        (first..=last).filter(|&p| self.journal.touch(p, bytes, fresh_from)).count() as u64
    }

    /// Writes `data` at `offset` after [`Self::journal_range`] covered it.
    pub fn write_journaled(&mut self, offset: u64, data: &[u8]) {
        self.region.bytes_mut()[offset as usize..offset as usize + data.len()].copy_from_slice(data);
    }

    /// Distinct pages written in this message.
    pub fn dirty_pages(&self) -> usize {
        self.journal.touched_count()
    }

    /// The 4 KiB pages written in this message.
    pub fn touched_pages(&self) -> &[u64] {
        self.journal.touched()
    }

    /// Keeps this message's writes.
    pub fn commit(&mut self) {
        self.journal.forget();
        self.mark = SizeMark::new(self.size);
    }

    /// Undoes this message's writes and growth.
    pub fn roll_back(&mut self) {
        let bytes = self.region.bytes_mut();
        self.journal.roll_back(bytes);
        zero_pages(&mut bytes[self.mark.added_bytes()]);
        self.size = self.mark.at_start;
        self.mark = SizeMark::new(self.size);
    }

    /// The whole memory, as `get_stable_memory` returns it.
    pub fn contents(&self) -> &[u8] {
        &self.region.bytes()[..self.size_bytes() as usize]
    }

    /// Replaces the contents, growing to fit (outside any message).
    pub fn set_contents(&mut self, data: &[u8]) -> Result<(), String> {
        self.load_contents(&mut &data[..], data.len() as u64)
    }

    /// Fills a new (empty) memory with `len` bytes, zeros but for `pages` (offset, bytes, inside
    /// `len`), growing to fit (outside any message); only those pages are written.
    pub fn load_sparse<'a>(&mut self, len: u64, pages: impl Iterator<Item = (u64, &'a [u8])>) -> Result<(), String> {
        assert_eq!(self.size, 0, "a sparse load fills a new memory");
        if self.grow(len.div_ceil(WASM_PAGE_SIZE)).is_none() {
            return Err(format!("{len} bytes exceed the stable memory limit"));
        }
        let bytes = self.region.bytes_mut();
        for (offset, data) in pages {
            bytes[offset as usize..offset as usize + data.len()].copy_from_slice(data);
        }
        self.commit();
        Ok(())
    }

    /// Replaces the contents with `len` bytes read from `reader` straight into the memory,
    /// growing to fit (outside any message).
    pub fn load_contents(&mut self, reader: &mut impl std::io::Read, len: u64) -> Result<(), String> {
        let pages = len.div_ceil(WASM_PAGE_SIZE);
        if pages > self.size && self.grow(pages - self.size).is_none() {
            return Err(format!("{len} bytes exceed the stable memory limit"));
        }
        let size = self.size_bytes() as usize;
        let bytes = self.region.bytes_mut();
        reader.read_exact(&mut bytes[..len as usize]).map_err(|e| format!("reading stable memory: {e}"))?;
        bytes[len as usize..size].fill(0);
        self.commit();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_restores_written_pages_and_drops_growth() {
        let mut m = StableMemory::new(1 << 30).unwrap();
        m.grow(1).unwrap();
        m.journal_range(0, 8);
        m.write_journaled(0, b"original");
        m.commit();

        assert_eq!(m.grow(2), Some(1));
        let off = WASM_PAGE_SIZE * 2 + 5;
        assert_eq!(m.journal_range(0, 4), 1);
        m.write_journaled(0, b"XXXX");
        assert_eq!(m.journal_range(off, 3), 1);
        m.write_journaled(off, b"new");
        assert_eq!(m.dirty_pages(), 2);
        m.roll_back();

        assert_eq!(m.size(), 1);
        assert_eq!(m.read(0, 8), b"original");
        // The dropped pages come back zeroed when grown again.
        m.grow(2).unwrap();
        assert_eq!(m.read(off, 3), [0, 0, 0]);
    }

    #[test]
    fn journal_counts_each_page_once_per_message() {
        let mut m = StableMemory::new(1 << 20).unwrap();
        m.grow(1).unwrap();
        assert_eq!(m.journal_range(0, PAGE_SIZE as u64 + 1), 2);
        assert_eq!(m.journal_range(10, 10), 0);
        m.commit();
        assert_eq!(m.journal_range(10, 10), 1);
    }

    #[test]
    fn large_zeroing_remaps_fresh_pages() {
        let mut region = Region::reserve(8 << 20).unwrap();
        region.make_accessible(4 << 20).unwrap();
        region.bytes_mut().fill(7);
        zero_pages(&mut region.bytes_mut()[PAGE_SIZE..(3 << 20)]);
        let b = region.bytes();
        assert_eq!(b[PAGE_SIZE - 1], 7);
        assert!(b[PAGE_SIZE..(3 << 20)].iter().all(|&x| x == 0));
        assert_eq!(b[3 << 20], 7);
    }

    #[test]
    fn growth_past_the_limit_fails_without_change() {
        let mut m = StableMemory::new(2 * WASM_PAGE_SIZE).unwrap();
        assert_eq!(m.grow(3), None);
        assert_eq!(m.grow(2), Some(0));
        assert_eq!(m.grow(1), None);
        assert_eq!(m.size(), 2);
    }
}
