//! Settings: reads its environment variables, grows its heap where it is asked to (an update,
//! a heartbeat, the global timer, a reply callback, init or post_upgrade), counts the runs of
//! `canister_on_low_wasm_memory`, and prints or traps for the log.

use std::cell::Cell;

use ic_cdk::call::Call;
use ic_cdk::{heartbeat, init, on_low_wasm_memory, post_upgrade, query, update};

thread_local! {
    static HOOK_RUNS: Cell<u64> = const { Cell::new(0) };
    /// MiB the next heartbeat, and the next global timer, grow the heap by.
    static HEARTBEAT_MIB: Cell<u64> = const { Cell::new(0) };
    static TIMER_MIB: Cell<u64> = const { Cell::new(0) };
}

#[cfg(target_arch = "wasm32")]
const WASM_PAGE: u64 = 65536;

/// Grows the heap by `mib` MiB (the harness traps past the `wasm_memory_limit` where it binds).
fn grow_heap(mib: u64) {
    #[cfg(target_arch = "wasm32")]
    if core::arch::wasm32::memory_grow(0, (mib << 20).div_ceil(WASM_PAGE) as usize) == usize::MAX {
        ic_cdk::trap("memory.grow failed");
    }
    #[cfg(not(target_arch = "wasm32"))]
    unreachable!("a canister runs on wasm32 ({mib} MiB)")
}

#[query]
fn heap_bytes() -> u64 {
    #[cfg(target_arch = "wasm32")]
    return core::arch::wasm32::memory_size(0) as u64 * WASM_PAGE;
    #[cfg(not(target_arch = "wasm32"))]
    unreachable!("a canister runs on wasm32")
}

/// Grows the heap by `grow_mib` MiB, if given.
#[init]
fn init(grow_mib: Option<u64>) {
    grow_heap(grow_mib.unwrap_or(0));
}

#[post_upgrade]
fn post_upgrade(grow_mib: Option<u64>) {
    grow_heap(grow_mib.unwrap_or(0));
}

/// Every environment variable, as `ic0.env_var_*` enumerate them.
#[query]
fn env_vars() -> Vec<(String, String)> {
    (0..ic_cdk::api::env_var_count())
        .map(|i| {
            let name = ic_cdk::api::env_var_name(i);
            let value = ic_cdk::api::env_var_value(&name);
            (name, value)
        })
        .collect()
}

/// The variable `name`, if set.
#[query]
fn env_var(name: String) -> Option<String> {
    ic_cdk::api::env_var_name_exists(&name).then(|| ic_cdk::api::env_var_value(&name))
}

/// The variable `name`, trapping if it is not set.
#[update]
fn env_var_or_trap(name: String) -> String {
    ic_cdk::api::env_var_value(&name)
}

/// Grows the heap by `mib` MiB; returns its size in bytes.
#[update]
fn grow(mib: u64) -> u64 {
    grow_heap(mib);
    heap_bytes()
}

#[update]
fn grow_in_heartbeat(mib: u64) {
    HEARTBEAT_MIB.set(mib);
}

#[heartbeat]
fn heartbeat() {
    grow_heap(HEARTBEAT_MIB.take());
}

/// Arms the global timer to grow the heap by `mib` MiB when it fires (the next round).
#[update]
fn grow_in_timer(mib: u64) {
    TIMER_MIB.set(mib);
    ic_cdk::api::global_timer_set(1);
}

#[unsafe(export_name = "canister_global_timer")]
extern "C" fn global_timer() {
    grow_heap(TIMER_MIB.take());
}

#[update]
fn noop() {}

/// Calls itself, then grows the heap by `mib` MiB in the reply callback.
#[update]
async fn grow_after_call(mib: u64) -> u64 {
    Call::unbounded_wait(ic_cdk::api::canister_self(), "noop").await.expect("the call to itself");
    grow_heap(mib);
    heap_bytes()
}

#[on_low_wasm_memory]
fn on_low_wasm_memory() {
    HOOK_RUNS.set(HOOK_RUNS.get() + 1);
    ic_cdk::println!("low on Wasm memory at {} bytes", heap_bytes());
}

#[query]
fn hook_runs() -> u64 {
    HOOK_RUNS.get()
}

#[update]
fn print(line: String) {
    ic_cdk::println!("{line}");
}

/// Prints in a query: a line the IC does not keep when the query runs outside consensus.
#[query]
fn print_in_query(line: String) {
    ic_cdk::println!("{line}");
}

#[update]
fn trap_with(message: String) {
    ic_cdk::trap(message);
}

fn main() {}
