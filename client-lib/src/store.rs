//! The library's stable structures, and the header cached on the heap.

use std::cell::RefCell;

use ic_stable_structures::memory_manager::{MemoryManager, VirtualMemory};
use ic_stable_structures::{DefaultMemoryImpl, StableBTreeMap, StableCell};

use crate::layout::{self, Header};

pub type Mem = VirtualMemory<DefaultMemoryImpl>;

thread_local! {
    static MANAGER: MemoryManager<DefaultMemoryImpl> = MemoryManager::init(DefaultMemoryImpl::default());
    static HEADER_CELL: RefCell<StableCell<Header, Mem>> =
        RefCell::new(StableCell::init(memory(layout::HEADER), Header::default()));
    /// The header, read once per instance: every write goes through [`update_header`].
    static HEADER: RefCell<Option<Header>> = const { RefCell::new(None) };
    static COW_INDEX: RefCell<StableBTreeMap<u64, u64, Mem>> =
        RefCell::new(StableBTreeMap::init(memory(layout::COW_INDEX)));
    static STAGED: RefCell<StableBTreeMap<u32, [u8; 32], Mem>> =
        RefCell::new(StableBTreeMap::init(memory(layout::STAGED)));
}

pub fn memory(id: ic_stable_structures::memory_manager::MemoryId) -> Mem {
    MANAGER.with(|m| m.get(id))
}

pub fn header() -> Header {
    HEADER.with_borrow_mut(|cached| cached.get_or_insert_with(|| HEADER_CELL.with_borrow(|c| c.get().clone())).clone())
}

/// Changes the header in stable memory and in the cache.
pub fn update_header<R>(f: impl FnOnce(&mut Header) -> R) -> R {
    let mut h = header();
    let result = f(&mut h);
    HEADER_CELL.with_borrow_mut(|c| c.set(h.clone()));
    HEADER.with_borrow_mut(|cached| *cached = Some(h));
    result
}

pub fn with_cow_index<R>(f: impl FnOnce(&mut StableBTreeMap<u64, u64, Mem>) -> R) -> R {
    COW_INDEX.with_borrow_mut(f)
}

pub fn with_staged<R>(f: impl FnOnce(&mut StableBTreeMap<u32, [u8; 32], Mem>) -> R) -> R {
    STAGED.with_borrow_mut(f)
}
