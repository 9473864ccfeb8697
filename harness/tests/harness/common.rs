//! Helpers shared by the test modules.

use candid::{Principal, utils::{ArgumentDecoder, ArgumentEncoder}};
use ic_harness::{CallError, Harness, IcBackend};

pub fn probe_wasm() -> Vec<u8> {
    ic_harness::build::canister_wasm("harness-test-canisters", "probe")
}

pub fn kv_wasm() -> Vec<u8> {
    ic_harness::build::canister_wasm("harness-test-canisters", "kv")
}

pub fn controller() -> Principal {
    Principal::from_slice(&[0xc0; 29])
}

pub fn stranger() -> Principal {
    Principal::from_slice(&[0x5e; 29])
}

/// A canister controlled by [`controller`] running `wasm`, installed with `arg`.
pub fn install(ic: &Harness, wasm: Vec<u8>, arg: Vec<u8>) -> Principal {
    let id = ic.create_canister_with_settings(Some(controller()), None);
    ic.install_canister(id, wasm, arg, Some(controller()));
    id
}

pub fn probe(ic: &Harness) -> Principal {
    install(ic, probe_wasm(), candid::encode_args(()).unwrap())
}

pub fn update<A: ArgumentEncoder, R: for<'a> ArgumentDecoder<'a>>(ic: &Harness, id: Principal, method: &str, args: A) -> Result<R, CallError> {
    ic.update_candid(id, controller(), method, args)
}

pub fn query<A: ArgumentEncoder, R: for<'a> ArgumentDecoder<'a>>(ic: &Harness, id: Principal, method: &str, args: A) -> Result<R, CallError> {
    ic.query_candid(id, controller(), method, args)
}
