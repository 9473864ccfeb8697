//! Composite: composite query methods that call query and composite query methods (of other
//! canisters, of itself, of the management canister), change state on the way, trap after a
//! call or make calls a composite query may not; and a counter in the heap and in stable
//! memory that those changes must leave as it was.

use std::cell::Cell;

use candid::{CandidType, Deserialize, Principal};
use ic_cdk::call::{Call, CallFailed};
use ic_cdk::{query, update};
use serde_bytes::ByteBuf;

thread_local! {
    static COUNTER: Cell<u64> = const { Cell::new(0) };
}

/// What a call ended in, as the calling canister saw it.
#[derive(CandidType, Deserialize, Debug, PartialEq, Eq)]
enum CallOutcome {
    Reply(ByteBuf),
    Reject { code: u32, message: String },
    PerformFailed,
}

/// Sets the counter, in the heap and in the first 8 bytes of stable memory.
#[update]
fn set(value: u64) {
    COUNTER.set(value);
    write_stable_counter(value);
}

#[query]
fn get() -> u64 {
    COUNTER.get()
}

/// The counter as stable memory holds it.
#[query]
fn get_stable() -> u64 {
    read_stable_counter()
}

#[query]
fn caller() -> Principal {
    ic_cdk::api::msg_caller()
}

fn write_stable_counter(value: u64) {
    if ic_cdk::stable::stable_size() == 0 {
        ic_cdk::stable::stable_grow(1).expect("one page of stable memory");
    }
    ic_cdk::stable::stable_write(0, &value.to_le_bytes());
}

fn read_stable_counter() -> u64 {
    if ic_cdk::stable::stable_size() == 0 {
        return 0;
    }
    let mut bytes = [0u8; 8];
    ic_cdk::stable::stable_read(0, &mut bytes);
    u64::from_le_bytes(bytes)
}

async fn call_raw(target: Principal, method: &str, arg: &[u8]) -> CallOutcome {
    match Call::unbounded_wait(target, method).with_raw_args(arg).await {
        Ok(response) => CallOutcome::Reply(ByteBuf::from(response.into_bytes())),
        Err(CallFailed::CallRejected(r)) => CallOutcome::Reject { code: r.raw_reject_code(), message: r.reject_message().to_string() },
        Err(_) => CallOutcome::PerformFailed,
    }
}

async fn get_of(target: Principal, method: &str) -> u64 {
    Call::unbounded_wait(target, method).await.expect("the call is answered").candid::<u64>().expect("a u64")
}

/// Calls `target.method(arg)` and tells how it ended.
#[query(composite = true)]
async fn call(target: Principal, method: String, arg: ByteBuf) -> CallOutcome {
    call_raw(target, &method, &arg).await
}

/// The sum of `get` of each target, called one after the other.
#[query(composite = true)]
async fn sum(targets: Vec<Principal>) -> u64 {
    let mut total = 0;
    for target in targets {
        total += get_of(target, "get").await;
    }
    total
}

/// `targets[0].chain(targets[1..])`, nesting one call per target; the last one answers with
/// its counter.
#[query(composite = true)]
async fn chain(targets: Vec<Principal>) -> u64 {
    let Some((first, rest)) = targets.split_first() else {
        return COUNTER.get();
    };
    let arg = candid::encode_one(rest.to_vec()).expect("a vec encodes");
    let reply = Call::unbounded_wait(*first, "chain").with_raw_args(&arg).await.expect("the call is answered");
    reply.candid::<u64>().expect("a u64")
}

/// Adds one to the counter (heap and stable memory), then asks `target` for both: called on
/// itself, the call sees the counter as committed. Returns what the call saw, and the
/// counter (heap, stable) as this call context sees it after the call.
#[query(composite = true)]
async fn bump_then_ask(target: Principal) -> (u64, u64, u64, u64) {
    let bumped = COUNTER.get() + 1;
    COUNTER.set(bumped);
    write_stable_counter(bumped);
    let seen = get_of(target, "get").await;
    let seen_stable = get_of(target, "get_stable").await;
    (seen, seen_stable, COUNTER.get(), read_stable_counter())
}

/// Sets the counter, calls `target.get`, then traps.
#[query(composite = true)]
async fn trap_after_call(target: Principal) -> u64 {
    COUNTER.set(777);
    let seen = get_of(target, "get").await;
    ic_cdk::trap(format!("trapped after the call answered {seen}"));
}

/// Attaches cycles to a call, which a composite query may not.
#[query(composite = true)]
async fn call_with_cycles(target: Principal) -> u64 {
    let reply = Call::unbounded_wait(target, "get").with_cycles(1).await.expect("the call is answered");
    reply.candid::<u64>().expect("a u64")
}

fn main() {}
