//! The library's stable structures, and the header cached on the heap: read once per instance,
//! migrated to this build's layout first (see `migration`).

use std::cell::RefCell;

use ic_stable_structures::memory_manager::{MemoryManager, VirtualMemory};
use ic_stable_structures::{DefaultMemoryImpl, Memory, StableBTreeMap, StableCell};

use crate::layout::{self, Header, Staged, StoredHeader};
use crate::migration;

pub type Mem = VirtualMemory<DefaultMemoryImpl>;

thread_local! {
    /// Off the IC, the vector the manager divides.
    #[cfg(not(target_arch = "wasm32"))]
    static RAW: DefaultMemoryImpl = DefaultMemoryImpl::default();
    static MANAGER: MemoryManager<DefaultMemoryImpl> = MemoryManager::init(raw());
    static HEADER_CELL: RefCell<StableCell<StoredHeader, Mem>> =
        RefCell::new(StableCell::init(memory(layout::HEADER), Header::default().encode()));
    /// The header, read on first use (see [`open`]): every write goes through [`update_header`].
    static HEADER: RefCell<Header> = RefCell::new(read_header());
    static STAGED: RefCell<Staged<Mem>> = RefCell::new(StableBTreeMap::init(memory(layout::STAGED)));
}

/// The raw stable memory the library's `MemoryManager` divides.
#[cfg(target_arch = "wasm32")]
#[inline]
pub fn raw() -> DefaultMemoryImpl {
    DefaultMemoryImpl::default()
}

/// The raw stable memory the library's `MemoryManager` divides.
#[cfg(not(target_arch = "wasm32"))]
pub fn raw() -> DefaultMemoryImpl {
    RAW.with(DefaultMemoryImpl::clone)
}

pub fn memory(id: ic_stable_structures::memory_manager::MemoryId) -> Mem {
    MANAGER.with(|m| m.get(id))
}

/// Reads the header and migrates the library's memory to this build's layout, if this instance
/// has not yet; a layout this build cannot read traps, with nothing touched. The entry points an
/// app calls in `post_upgrade` call it first, so that such a layout fails the upgrade.
pub fn open() {
    HEADER.with(|_| ());
}

fn read_header() -> Header {
    let migrated = HEADER_CELL.with_borrow_mut(|cell| MANAGER.with(|manager| migration::migrate(cell, manager)));
    migrated.unwrap_or_else(|error| ic_cdk::trap(format!("the vault client cannot open its memory: {error}")))
}

/// A buffer filled from the library's memories in order, without zeroing it first (a chunk's
/// 2 MiB would cost an instruction a byte more).
pub struct ReadBuffer(Vec<u8>);

impl ReadBuffer {
    /// An empty buffer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        ReadBuffer(Vec::with_capacity(capacity))
    }

    /// Appends `len` bytes of `memory` from `offset`; traps if they do not fit in the room left.
    pub fn read(&mut self, memory: &impl Memory, offset: u64, len: usize) {
        let room = self.0.spare_capacity_mut();
        if len > room.len() {
            ic_cdk::trap(format!("a read of {len} bytes into a buffer with room for {}", room.len()));
        }
        // SAFETY: the `len` bytes at `room` are the vector's own, unused and not in `memory`;
        // `read_unsafe` initializes all of them (or traps), so they are part of it afterwards.
        unsafe {
            memory.read_unsafe(offset, room.as_mut_ptr().cast(), len);
            self.0.set_len(self.0.len() + len);
        }
    }

    /// Appends `len` zeros.
    pub fn zeros(&mut self, len: usize) {
        self.0.resize(self.0.len() + len, 0);
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

pub fn header() -> Header {
    HEADER.with_borrow(Header::clone)
}

/// Reads the header without copying it.
pub fn with_header<R>(f: impl FnOnce(&Header) -> R) -> R {
    HEADER.with_borrow(f)
}

/// Changes the header in stable memory and in the cache.
pub fn update_header<R>(f: impl FnOnce(&mut Header) -> R) -> R {
    let mut h = header();
    let result = f(&mut h);
    HEADER_CELL.with_borrow_mut(|c| c.set(h.encode()));
    HEADER.set(h);
    result
}

pub fn with_staged<R>(f: impl FnOnce(&mut Staged<Mem>) -> R) -> R {
    STAGED.with_borrow_mut(f)
}

#[cfg(test)]
mod tests {
    use candid::Principal;

    use super::*;

    thread_local! {
        static APP_STATE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }

    /// Runs `entry` on a fresh instance whose stored header has a layout newer than this build's:
    /// whether it trapped, the header stored before, and after.
    fn run_on_a_newer_layout(entry: fn()) -> (bool, StoredHeader, StoredHeader) {
        std::thread::spawn(move || {
            let newer = StoredHeader { layout: layout::LAYOUT_VERSION + 1, fields: vec![0xab; 300] };
            StableCell::new(memory(layout::HEADER), newer.clone());
            // Off the IC, `ic_cdk::trap` panics with this message.
            let trapped = std::panic::catch_unwind(entry)
                .is_err_and(|panic| panic.downcast_ref::<&str>().is_some_and(|message| message.starts_with("trap should only be called")));
            (trapped, newer, StableCell::init(memory(layout::HEADER), Header::default().encode()).get().clone())
        })
        .join()
        .expect("the instance's thread")
    }

    /// The raw memory in `golden/memory_v3.pages.gz`: its size (u64), then each page holding a
    /// byte other than zero as its index (u64) and its 4 KiB. The client library of layout 3
    /// (release at commit 5470448) wrote it natively: `set_vault` with principal [9; 10], a
    /// `MemoryManager` on `memory()` whose memory 0 holds a `StableBTreeMap<u64, Vec<u8>>` of
    /// keys 0..300 (key k: 40 + k % 7 bytes of k % 251), a dump opened (job 3, nonce 5), then key
    /// 1000 (40 sevens) inserted, its pages copied aside.
    fn layout_3_image() -> Vec<u8> {
        let mut packed = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&include_bytes!("../golden/memory_v3.pages.gz")[..]), &mut packed)
            .expect("the image decompresses");
        let size = u64::from_le_bytes(packed[..8].try_into().expect("8 bytes")) as usize;
        let mut image = vec![0u8; size];
        for page in packed[8..].chunks_exact(8 + 4096) {
            let at = u64::from_le_bytes(page[..8].try_into().expect("8 bytes")) as usize * 4096;
            image[at..at + 4096].copy_from_slice(&page[8..]);
        }
        image
    }

    fn map_value(key: u64) -> Vec<u8> {
        vec![(key % 251) as u8; 40 + (key % 7) as usize]
    }

    #[test]
    fn a_memory_of_layout_3_opens_paged_with_the_state_it_held() {
        std::thread::spawn(|| {
            RAW.with(|raw| *raw.borrow_mut() = layout_3_image());
            let opened = header();
            assert_eq!(HEADER_CELL.with_borrow(|cell| cell.get().layout), layout::LAYOUT_VERSION, "migrated and stored");
            assert_eq!((opened.session, opened.vault), (layout::Session::Idle, Some(Principal::from_slice(&[9; 10]))), "the dump closed");
            let manager = MemoryManager::init(crate::memory());
            let map = || StableBTreeMap::<u64, Vec<u8>, _>::init(manager.get(ic_stable_structures::memory_manager::MemoryId::new(0)));
            let mut live = map();
            assert_eq!(live.len(), 301);
            assert!((0..300).all(|key| live.get(&key) == Some(map_value(key))), "every entry as written");
            assert_eq!(live.get(&1000), Some(vec![7; 40]), "with the one written while the dump was open");
            // A dump of it now reads the app's memory as it is.
            let key = layout::SessionKey { vault: Principal::from_slice(&[9; 10]), nonce: Some(6), job: 4 };
            let args = vault_api::protocol::DumpBegin { job: 4, nonce: Some(6), chunk_hashes: Some(false), base: None, from_upgrade_save: None, content_index: None };
            let manifest = crate::dump::begin(key, &args, 10, None).expect("a dump opens");
            let chunk = crate::dump::chunk(key, 0).expect("chunk 0");
            let mut bytes = vec![0; chunk.data.len()];
            crate::memory().read(0, &mut bytes);
            assert_eq!((chunk.data.into_vec(), manifest.size), (bytes, crate::memory().size() * 65536));
            crate::dump::end(key, None, 20).expect("the dump ends");
            // And it keeps working as a paged memory: what is written reads back, also anew.
            for key in 2000..2300 {
                live.insert(key, map_value(key));
            }
            crate::pages::forget();
            let reopened = map();
            assert_eq!(reopened.len(), 601);
            assert!((0..300).chain(2000..2300).all(|key| reopened.get(&key) == Some(map_value(key))));
        })
        .join()
        .expect("the instance's thread");
    }

    #[test]
    fn bytes_a_layout_3_restore_left_past_the_app_memory_read_as_zeros_once_it_grows_over_them() {
        std::thread::spawn(|| {
            // The image of layout 3, with 2 wasm pages of old bytes past the app's memory.
            let raw = DefaultMemoryImpl::default();
            *raw.borrow_mut() = layout_3_image();
            let app = MemoryManager::init(raw.clone()).get(layout::SLOTS);
            let pages = app.size();
            app.grow(2);
            app.write(pages * 65536, &[0xaa; 2 * 65536]);
            RAW.with(|mine| *mine.borrow_mut() = raw.borrow().clone());
            let memory = crate::memory();
            let mut state = vec![0; (pages * 65536) as usize];
            memory.read(0, &mut state);
            assert_eq!((memory.size(), memory.grow(2)), (pages, pages as i64));
            let mut grown = vec![0xee; 2 * 65536];
            memory.read(pages * 65536, &mut grown);
            assert!(grown.iter().all(|&b| b == 0), "grown pages read as zeros");
            for page in pages * 16..(pages + 2) * 16 {
                memory.write(page * 4096 + 7, &[1]);
            }
            memory.read(pages * 65536, &mut grown);
            assert!(grown.chunks(4096).all(|page| page.iter().enumerate().all(|(at, &b)| b == (at == 7) as u8)), "a partial write leaves zeros");
            let mut after = vec![0; state.len()];
            memory.read(0, &mut after);
            assert!(after == state, "the app's state as it was");
        })
        .join()
        .expect("the instance's thread");
    }

    #[test]
    fn the_post_upgrade_entry_points_trap_on_a_layout_this_build_cannot_read() {
        let entries: [(&str, fn()); 6] = [
            ("open", open),
            ("on_restore", || crate::on_restore(|| ())),
            ("load_after_upgrade", || crate::load_after_upgrade(&APP_STATE)),
            ("use_serde_state", || crate::use_serde_state(&APP_STATE)),
            ("set_vault", || crate::set_vault(Principal::anonymous())),
            ("memory", || {
                ic_stable_structures::Memory::size(&crate::memory());
            }),
        ];
        for (name, entry) in entries {
            let (trapped, newer, after) = run_on_a_newer_layout(entry);
            assert!(trapped, "{name} did not trap");
            assert_eq!(after, newer, "{name} left the header as it was");
        }
    }
}
