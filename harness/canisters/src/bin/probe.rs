//! Probe: one method per semantic of the IC that the harness tests observe — heap and stable
//! writes that trap, awaits that commit, calls that end in each reject code, timers, limits,
//! system calls made where the spec forbids them, and bulk stable-memory transfer.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use candid::{CandidType, Deserialize, Principal};
use ic_cdk::call::{Call, CallFailed};
use ic_cdk::{query, update};
use serde_bytes::ByteBuf;

thread_local! {
    static COUNTER: Cell<u64> = const { Cell::new(0) };
    static KEPT: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    static TIMER_FIRES: Cell<u64> = const { Cell::new(0) };
    static TIMER_TIMES: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    static RELAYED: RefCell<Vec<Relayed>> = const { RefCell::new(Vec::new()) };
    static CLEANUPS: Cell<u64> = const { Cell::new(0) };
}

const WASM_PAGE: u64 = 65536;

#[update]
fn inc() -> u64 {
    COUNTER.with(|c| {
        c.set(c.get() + 1);
        c.get()
    })
}

#[query]
fn get() -> u64 {
    COUNTER.get()
}

/// A query that changes the counter: the change must not outlive the query.
#[query]
fn query_inc() -> u64 {
    inc()
}

#[update]
fn print(line: String) {
    ic_cdk::println!("{line}");
}

/// Rejects the call with `message` (reject code 4).
#[update(manual_reply = true)]
fn reject(message: String) {
    ic_cdk::api::msg_reject(message);
}

/// Sets the counter, writes stable memory, grows the heap, then traps: nothing may remain.
#[update]
fn set_and_trap(value: u64, stable_bytes: ByteBuf, heap_mib: u64) {
    COUNTER.set(value);
    write_stable(0, stable_bytes);
    KEPT.with_borrow_mut(|k| k.push(vec![1u8; (heap_mib << 20) as usize]));
    ic_cdk::trap("boom");
}

#[update]
fn write_stable(offset: u64, data: ByteBuf) {
    let end = offset + data.len() as u64;
    let size = ic_cdk::stable::stable_size() * WASM_PAGE;
    if end > size {
        ic_cdk::stable::stable_grow((end - size).div_ceil(WASM_PAGE)).expect("stable memory grows");
    }
    ic_cdk::stable::stable_write(offset, &data);
}

#[query]
fn read_stable(offset: u64, len: u64) -> ByteBuf {
    let mut buf = vec![0u8; len as usize];
    ic_cdk::stable::stable_read(offset, &mut buf);
    ByteBuf::from(buf)
}

#[query]
fn stable_pages() -> u64 {
    ic_cdk::stable::stable_size()
}

/// Keeps `mib` MiB on the heap; returns the heap's size in wasm pages.
#[update]
fn grow_heap(mib: u64) -> u64 {
    KEPT.with_borrow_mut(|k| k.push(vec![7u8; (mib << 20) as usize]));
    heap_pages()
}

#[query]
fn heap_pages() -> u64 {
    #[cfg(target_arch = "wasm32")]
    return core::arch::wasm32::memory_size(0) as u64;
    #[cfg(not(target_arch = "wasm32"))]
    unreachable!("a canister runs on wasm32")
}

/// Loops `iterations` times; returns the instructions counted so far.
#[update]
fn burn(iterations: u64) -> u64 {
    let mut x = 0u64;
    for i in 0..iterations {
        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
    }
    std::hint::black_box(x);
    ic_cdk::api::performance_counter(0)
}

#[query]
fn burn_in_query(iterations: u64) -> u64 {
    burn(iterations)
}

/// Calls `target.echo` with a blob of `n` bytes made here, so the request can exceed what an
/// ingress message may carry.
#[update]
async fn send_blob(target: Principal, n: u64) -> CallOutcome {
    let arg = candid::encode_one(ByteBuf::from(vec![1u8; n as usize])).unwrap();
    call_raw(target, "echo", &arg, None, 0).await
}

/// Makes `count` calls at once to `target.write_stable(0, blob)`, each blob of `n` bytes, so
/// the requests are large and the replies small; returns how many were answered with a reply.
#[update]
async fn send_blobs(target: Principal, count: u64, n: u64) -> u64 {
    let arg = candid::encode_args((0u64, ByteBuf::from(vec![1u8; n as usize]))).unwrap();
    let calls = (0..count).map(|_| call_raw(target, "write_stable", &arg, None, 0));
    futures::future::join_all(calls).await.iter().filter(|outcome| matches!(outcome, CallOutcome::Reply(_))).count() as u64
}

#[query]
fn reply_bytes(n: u64) -> ByteBuf {
    ByteBuf::from(vec![0xab; n as usize])
}

#[update]
fn echo(data: ByteBuf) -> ByteBuf {
    data
}

#[update]
fn noop() {}

/// What a call ended in, as the calling canister saw it.
#[derive(CandidType, Deserialize, Debug, PartialEq, Eq)]
enum CallOutcome {
    Reply(ByteBuf),
    Reject { code: u32, message: String },
    PerformFailed,
}

async fn call_raw(target: Principal, method: &str, arg: &[u8], timeout: Option<u32>, cycles: u128) -> CallOutcome {
    let call = match timeout {
        Some(seconds) => Call::bounded_wait(target, method).change_timeout(seconds),
        None => Call::unbounded_wait(target, method),
    };
    match call.with_raw_args(arg).with_cycles(cycles).await {
        Ok(response) => CallOutcome::Reply(ByteBuf::from(response.into_bytes())),
        Err(CallFailed::CallRejected(r)) => {
            CallOutcome::Reject { code: r.raw_reject_code(), message: r.reject_message().to_string() }
        }
        Err(_) => CallOutcome::PerformFailed,
    }
}

/// Calls `target.method(arg)` and tells how it ended; `timeout` makes it a bounded-wait call.
#[update]
async fn call(target: Principal, method: String, arg: ByteBuf, timeout: Option<u32>, cycles: u128) -> CallOutcome {
    call_raw(target, &method, &arg, timeout, cycles).await
}

/// Makes `n` calls to `target.inc` at once; returns the values in the order the calls were
/// made, which FIFO delivery makes increasing.
#[update]
async fn fan_out(target: Principal, n: u64) -> Vec<u64> {
    let calls = (0..n).map(|_| async move {
        Call::unbounded_wait(target, "inc").await.expect("inc").candid::<u64>().expect("u64")
    });
    futures::future::join_all(calls).await
}

/// Sets the counter, awaits a call, then traps: the write before the await stays.
#[update]
async fn set_await_trap(value: u64, target: Principal) {
    COUNTER.set(value);
    let _ = call_raw(target, "noop", &candid::encode_args(()).unwrap(), None, 0).await;
    COUNTER.set(value + 1000);
    ic_cdk::trap("trap after await");
}

/// Makes a call whose reply callback traps; its cleanup callback counts itself. Replies at
/// once, so the callback runs in a later message.
#[update(manual_reply = true)]
fn call_with_failing_callback(target: Principal) {
    // SAFETY: the callbacks are `extern "C" fn(usize)` entry points that ignore their env.
    unsafe {
        ic0::call_new(target.as_slice(), "noop", reply_then_trap, 0, reject_then_trap, 0);
        ic0::call_on_cleanup(count_cleanup, 0);
    }
    ic0::call_data_append(&candid::encode_args(()).unwrap());
    assert_eq!(ic0::call_perform(), 0, "call_perform");
    ic_cdk::api::msg_reply(candid::encode_args(()).unwrap());
}

unsafe extern "C" fn reply_then_trap(_env: usize) {
    COUNTER.set(999);
    ic0::trap(b"trap in reply callback");
}

unsafe extern "C" fn reject_then_trap(_env: usize) {
    ic0::trap(b"trap in reject callback");
}

unsafe extern "C" fn count_cleanup(_env: usize) {
    CLEANUPS.set(CLEANUPS.get() + 1);
}

#[query]
fn cleanups() -> u64 {
    CLEANUPS.get()
}

#[update]
fn start_timer(delay_seconds: u64) {
    ic_cdk_timers::set_timer(Duration::from_secs(delay_seconds), async {
        TIMER_FIRES.set(TIMER_FIRES.get() + 1);
    });
}

#[update]
fn start_interval(interval_seconds: u64) {
    ic_cdk_timers::set_timer_interval(Duration::from_secs(interval_seconds), || async {
        TIMER_FIRES.set(TIMER_FIRES.get() + 1);
        TIMER_TIMES.with_borrow_mut(|times| times.push(ic_cdk::api::time()));
    });
}

#[query]
fn timer_fires() -> u64 {
    TIMER_FIRES.get()
}

/// A one-shot timer that, when it fires, sets another for now: a timer re-armed at once, for
/// ever. Each firing counts in `timer_fires`.
#[update]
fn rearm_forever() {
    ic_cdk_timers::set_timer(Duration::ZERO, async {
        TIMER_FIRES.set(TIMER_FIRES.get() + 1);
        rearm_forever();
    });
}

/// The time of each firing of the interval timers, in nanoseconds.
#[query]
fn timer_times() -> Vec<u64> {
    TIMER_TIMES.with_borrow(|times| times.clone())
}

/// One firing of a relay timer: when it fired, how many of the earlier firings' calls had
/// been answered by then, and the answer to its own call and when it came.
#[derive(CandidType, Deserialize, Clone, Debug)]
struct Relayed {
    fired_at: u64,
    answered_before: u64,
    answer: Option<u64>,
    answered_at: Option<u64>,
}

/// An interval timer that calls `target.inc` at each firing.
#[update]
fn start_relay(interval_seconds: u64, target: Principal) {
    ic_cdk_timers::set_timer_interval(Duration::from_secs(interval_seconds), move || async move {
        let firing = RELAYED.with_borrow_mut(|relayed| {
            let answered_before = relayed.iter().filter(|r| r.answer.is_some()).count() as u64;
            relayed.push(Relayed { fired_at: ic_cdk::api::time(), answered_before, answer: None, answered_at: None });
            relayed.len() - 1
        });
        let answer = Call::unbounded_wait(target, "inc").await.expect("inc").candid::<u64>().expect("u64");
        RELAYED.with_borrow_mut(|relayed| {
            relayed[firing].answer = Some(answer);
            relayed[firing].answered_at = Some(ic_cdk::api::time());
        });
    });
}

#[query]
fn relayed() -> Vec<Relayed> {
    RELAYED.with_borrow(|relayed| relayed.clone())
}

/// Controllers and module hash of `target`, through `canister_info`.
#[update]
async fn info(target: Principal) -> (Vec<Principal>, Option<ByteBuf>, u64) {
    let args = ic_cdk_management_canister::CanisterInfoArgs { canister_id: target, num_requested_changes: Some(10) };
    let info = ic_cdk_management_canister::canister_info(&args).await.expect("canister_info");
    (info.controllers, info.module_hash.map(ByteBuf::from), info.total_num_changes)
}

/// Creates a canister with `extra_cycles` beyond the creation fee, installs `wasm` in it and
/// returns its id: the management canister called by a canister.
#[update]
async fn spawn(wasm: ByteBuf, extra_cycles: u128) -> Principal {
    use ic_cdk_management_canister as mgmt;
    let created = mgmt::create_canister_with_extra_cycles(&mgmt::CreateCanisterArgs { settings: None }, extra_cycles)
        .await
        .expect("create_canister");
    let install = mgmt::InstallCodeArgs {
        mode: mgmt::CanisterInstallMode::Install,
        canister_id: created.canister_id,
        wasm_module: wasm.into_vec(),
        arg: candid::encode_args(()).unwrap(),
    };
    mgmt::install_code(&install).await.expect("install_code");
    created.canister_id
}

/// A query that tries to make a call: the IC refuses `call_new` in a query.
#[query]
fn call_from_query(target: Principal) {
    let _ = Call::unbounded_wait(target, "noop").oneway();
}

/// Replies twice: the second reply traps.
#[update(manual_reply = true)]
fn reply_twice() {
    ic_cdk::api::msg_reply(candid::encode_args(()).unwrap());
    ic_cdk::api::msg_reply(candid::encode_args(()).unwrap());
}

/// Sets the global timer from a query, which the IC refuses.
#[query]
fn timer_from_query() {
    ic_cdk::api::global_timer_set(1);
}

#[update]
fn deadline() -> u64 {
    ic_cdk::api::msg_deadline().map_or(0, |d| d.get())
}

#[update]
fn balance() -> (u128, u128) {
    (ic_cdk::api::canister_cycle_balance(), ic_cdk::api::canister_liquid_cycle_balance())
}

#[query]
fn cost_of_call(method_name_len: u64, payload_len: u64) -> u128 {
    ic_cdk::api::cost_call(method_name_len, payload_len)
}

#[query]
fn caller() -> Principal {
    ic_cdk::api::msg_caller()
}

#[update]
fn version() -> u64 {
    ic_cdk::api::canister_version()
}

/// Writes `bytes` of a pattern derived from `seed` into stable memory from offset 0, in
/// messages of at most `step` bytes each (the caller calls repeatedly with `offset`).
#[update]
fn fill_stable(offset: u64, len: u64, seed: u8) {
    let data: Vec<u8> = (0..len).map(|i| seed.wrapping_add(((offset + i) % 251) as u8)).collect();
    write_stable(offset, ByteBuf::from(data));
}

/// A chunk of stable memory, for another canister to pull.
#[query]
fn read_chunk(offset: u64, len: u64) -> ByteBuf {
    read_stable(offset, len)
}

/// Pulls `total` bytes of `from`'s stable memory into this canister's, `chunk` bytes per
/// call; returns the number of calls made.
#[update]
async fn pull(from: Principal, total: u64, chunk: u64) -> u64 {
    let mut offset = 0;
    let mut calls = 0;
    while offset < total {
        let len = chunk.min(total - offset);
        let bytes: ByteBuf = Call::unbounded_wait(from, "read_chunk")
            .with_args(&(offset, len))
            .await
            .expect("read_chunk call")
            .candid()
            .expect("read_chunk reply");
        write_stable(offset, bytes);
        offset += len;
        calls += 1;
    }
    calls
}

fn main() {}
