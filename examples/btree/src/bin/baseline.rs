//! Btree on plain stable memory, the baseline `btree` is measured against: the same workload on
//! a `MemoryManager` over `DefaultMemoryImpl`, without the client library.

use std::cell::RefCell;

use ic_stable_structures::DefaultMemoryImpl;
use ic_stable_structures::memory_manager::{MemoryManager, VirtualMemory};

thread_local! {
    static MAP: RefCell<btree::Map<VirtualMemory<DefaultMemoryImpl>>> =
        RefCell::new(btree::Map::init(MemoryManager::init(DefaultMemoryImpl::default()).get(btree::MAP_MEMORY)));
}

btree::workload_endpoints!(MAP);

fn main() {}
