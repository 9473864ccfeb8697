//! The library's stable structures, and the header cached on the heap: read once per instance,
//! migrated to this build's layout first (see `migration`).

use std::cell::RefCell;

use ic_stable_structures::memory_manager::{MemoryManager, VirtualMemory};
use ic_stable_structures::{DefaultMemoryImpl, StableBTreeMap, StableCell};

use crate::layout::{self, Header, StoredHeader};
use crate::migration;

pub type Mem = VirtualMemory<DefaultMemoryImpl>;

thread_local! {
    static MANAGER: MemoryManager<DefaultMemoryImpl> = MemoryManager::init(DefaultMemoryImpl::default());
    static HEADER_CELL: RefCell<StableCell<StoredHeader, Mem>> =
        RefCell::new(StableCell::init(memory(layout::HEADER), Header::default().encode()));
    /// The header, read on first use and migrated first: every write goes through [`update_header`].
    static HEADER: RefCell<Header> = RefCell::new(read_header());
    static COW_INDEX: RefCell<StableBTreeMap<u64, u64, Mem>> =
        RefCell::new(StableBTreeMap::init(memory(layout::COW_INDEX)));
    static STAGED: RefCell<StableBTreeMap<u32, [u8; 32], Mem>> =
        RefCell::new(StableBTreeMap::init(memory(layout::STAGED)));
}

pub fn memory(id: ic_stable_structures::memory_manager::MemoryId) -> Mem {
    MANAGER.with(|m| m.get(id))
}

fn read_header() -> Header {
    let migrated = HEADER_CELL.with_borrow_mut(|cell| MANAGER.with(|manager| migration::migrate(cell, manager)));
    migrated.unwrap_or_else(|error| ic_cdk::trap(format!("the vault client cannot open its memory: {error}")))
}

pub fn header() -> Header {
    HEADER.with_borrow(Header::clone)
}

/// Changes the header in stable memory and in the cache.
pub fn update_header<R>(f: impl FnOnce(&mut Header) -> R) -> R {
    let mut h = header();
    let result = f(&mut h);
    HEADER_CELL.with_borrow_mut(|c| c.set(h.encode()));
    HEADER.set(h);
    result
}

pub fn with_cow_index<R>(f: impl FnOnce(&mut StableBTreeMap<u64, u64, Mem>) -> R) -> R {
    COW_INDEX.with_borrow_mut(f)
}

pub fn with_staged<R>(f: impl FnOnce(&mut StableBTreeMap<u32, [u8; 32], Mem>) -> R) -> R {
    STAGED.with_borrow_mut(f)
}
