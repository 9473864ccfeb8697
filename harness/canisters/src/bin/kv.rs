//! KV: a `StableBTreeMap` under a `MemoryManager`, with upgrade hooks that can be told to trap
//! and an interval timer that does not survive an upgrade unless re-armed.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use candid::{CandidType, Deserialize};
use ic_cdk::{init, post_upgrade, pre_upgrade, query, update};
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ic_stable_structures::{DefaultMemoryImpl, StableBTreeMap};

type Memory = VirtualMemory<DefaultMemoryImpl>;

thread_local! {
    static MANAGER: RefCell<MemoryManager<DefaultMemoryImpl>> =
        RefCell::new(MemoryManager::init(DefaultMemoryImpl::default()));
    static MAP: RefCell<StableBTreeMap<u64, Vec<u8>, Memory>> =
        RefCell::new(StableBTreeMap::init(MANAGER.with_borrow(|m| m.get(MemoryId::new(0)))));
    static HEAP_VALUE: Cell<u64> = const { Cell::new(0) };
    static TICKS: Cell<u64> = const { Cell::new(0) };
}

/// Key that makes `pre_upgrade` trap while present.
const TRAP_IN_PRE_UPGRADE: u64 = u64::MAX;

#[derive(CandidType, Deserialize, Default)]
struct Args {
    /// Arm an interval timer of this many seconds.
    timer_seconds: Option<u64>,
    /// Trap in the hook that receives these arguments.
    trap: Option<bool>,
}

fn apply(args: Option<Args>) {
    let args = args.unwrap_or_default();
    if args.trap == Some(true) {
        ic_cdk::trap("asked to trap");
    }
    if let Some(seconds) = args.timer_seconds {
        ic_cdk_timers::set_timer_interval(Duration::from_secs(seconds), || async {
            TICKS.set(TICKS.get() + 1);
        });
    }
}

#[init]
fn init(args: Option<Args>) {
    apply(args);
}

#[pre_upgrade]
fn pre_upgrade() {
    if MAP.with_borrow(|m| m.contains_key(&TRAP_IN_PRE_UPGRADE)) {
        ic_cdk::trap("pre_upgrade asked to trap");
    }
}

#[post_upgrade]
fn post_upgrade(args: Option<Args>) {
    apply(args);
}

#[update]
fn put(key: u64, value: Vec<u8>) -> Option<Vec<u8>> {
    MAP.with_borrow_mut(|m| m.insert(key, value))
}

#[update]
fn remove(key: u64) -> Option<Vec<u8>> {
    MAP.with_borrow_mut(|m| m.remove(&key))
}

#[query]
fn get(key: u64) -> Option<Vec<u8>> {
    MAP.with_borrow(|m| m.get(&key))
}

#[query]
fn len() -> u64 {
    MAP.with_borrow(|m| m.len())
}

#[update]
fn set_heap_value(v: u64) {
    HEAP_VALUE.set(v);
}

#[query]
fn heap_value() -> u64 {
    HEAP_VALUE.get()
}

#[query]
fn ticks() -> u64 {
    TICKS.get()
}

fn main() {}
