//! Helpers shared by the test modules.

use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{CandidType, Deserialize, Principal};
use ic_harness::{CallError, Harness, IcBackend, RejectResponse};
use serde_bytes::ByteBuf;

pub fn probe_wasm() -> Vec<u8> {
    ic_harness::build::canister_wasm("harness-test-canisters", "probe")
}

pub fn kv_wasm() -> Vec<u8> {
    ic_harness::build::canister_wasm("harness-test-canisters", "kv")
}

pub fn heartbeat_wasm() -> Vec<u8> {
    ic_harness::build::canister_wasm("harness-test-canisters", "heartbeat")
}

pub fn composite_wasm() -> Vec<u8> {
    ic_harness::build::canister_wasm("harness-test-canisters", "composite")
}

pub fn settings_wasm() -> Vec<u8> {
    ic_harness::build::canister_wasm("harness-test-canisters", "settings")
}

/// A settings canister controlled by [`controller`], created with `settings` besides.
pub fn settings_canister(ic: &impl IcBackend, settings: ic_management_canister_types::CanisterSettings) -> Principal {
    let settings = ic_management_canister_types::CanisterSettings { controllers: Some(vec![controller()]), ..settings };
    let id = ic.create_canister_with_settings(Some(controller()), Some(settings));
    ic.install_canister(id, settings_wasm(), candid::encode_one(None::<u64>).unwrap(), Some(controller()));
    id
}

pub fn controller() -> Principal {
    Principal::from_slice(&[0xc0; 29])
}

pub fn stranger() -> Principal {
    Principal::from_slice(&[0x5e; 29])
}

/// A canister controlled by [`controller`] running `wasm`, installed with `arg`.
pub fn install(ic: &impl IcBackend, wasm: Vec<u8>, arg: Vec<u8>) -> Principal {
    let id = ic.create_canister_with_settings(Some(controller()), None);
    ic.install_canister(id, wasm, arg, Some(controller()));
    id
}

pub fn probe(ic: &impl IcBackend) -> Principal {
    install(ic, probe_wasm(), candid::encode_args(()).unwrap())
}

/// A KV canister installed with `KvArgs`.
pub fn kv(ic: &impl IcBackend, args: Option<KvArgs>) -> Principal {
    install(ic, kv_wasm(), candid::encode_one(args).unwrap())
}

#[derive(CandidType, Deserialize, Default, Clone)]
pub struct KvArgs {
    pub timer_seconds: Option<u64>,
    pub trap: Option<bool>,
}

pub fn update<A: ArgumentEncoder, R: for<'a> ArgumentDecoder<'a>>(
    ic: &impl IcBackend,
    id: Principal,
    method: &str,
    args: A,
) -> Result<R, CallError> {
    ic.update_candid(id, controller(), method, args)
}

pub fn query<A: ArgumentEncoder, R: for<'a> ArgumentDecoder<'a>>(
    ic: &impl IcBackend,
    id: Principal,
    method: &str,
    args: A,
) -> Result<R, CallError> {
    ic.query_candid(id, controller(), method, args)
}

/// The rejection of a call that must fail.
pub fn rejected<T: std::fmt::Debug>(result: Result<T, CallError>) -> RejectResponse {
    match result {
        Err(CallError::Reject(r)) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

pub fn counter(ic: &impl IcBackend, id: Principal) -> u64 {
    query::<_, (u64,)>(ic, id, "get", ()).unwrap().0
}

/// How a call made by the probe canister ended, as it saw it.
#[derive(CandidType, Deserialize, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    Reply(ByteBuf),
    Reject { code: u32, message: String },
    PerformFailed,
}

/// Has `caller` call `target.method(args)` and returns what it saw.
pub fn call_via(
    ic: &Harness,
    caller: Principal,
    target: Principal,
    method: &str,
    arg: Vec<u8>,
    timeout: Option<u32>,
    cycles: u128,
) -> CallOutcome {
    let (outcome,): (CallOutcome,) =
        update(ic, caller, "call", (target, method.to_string(), ByteBuf::from(arg), timeout, cycles)).unwrap();
    outcome
}

pub fn no_args() -> Vec<u8> {
    candid::encode_args(()).unwrap()
}
