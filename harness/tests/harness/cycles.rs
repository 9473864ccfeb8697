//! Cycles charged as a 13-node application subnet charges them.

use crate::common::*;
use ic_harness::Harness;
use std::time::Duration;

#[test]
fn an_update_costs_ingress_induction_and_execution() {
    let ic = Harness::new();
    let id = probe(&ic);
    let before = ic.cycle_balance(id);
    let metrics_before = ic.canister_metrics(id);
    update::<_, (u64,)>(&ic, id, "inc", ()).unwrap();
    let instructions = ic.canister_metrics(id).instructions - metrics_before.instructions;
    let ingress = 1_200_000 + 2_000 * ("inc".len() + no_args().len()) as u128;
    let execution = 5_000_000 + instructions as u128;
    assert_eq!(before - ic.cycle_balance(id), ingress + execution);
}

#[test]
fn cost_call_is_the_documented_amount() {
    let ic = Harness::new();
    let id = probe(&ic);
    let (cost,): (u128,) = query(&ic, id, "cost_of_call", (10u64, 1000u64)).unwrap();
    assert_eq!(cost, 42_102_412_000 + 1_000 * 1010);
}

#[test]
fn a_call_costs_its_fee_and_bytes_both_ways() {
    let ic = Harness::new();
    let (a, b) = (probe(&ic), probe(&ic));
    let before = ic.cycle_balance(a);
    let m0 = ic.canister_metrics(a);
    let CallOutcome::Reply(reply) = call_via(&ic, a, b, "noop", no_args(), None, 0) else { panic!("noop failed") };
    let m1 = ic.canister_metrics(a);
    let instructions = (m1.instructions - m0.instructions) as u128;
    let executions = (m1.executions - m0.executions) as u128;
    assert_eq!(executions, 2, "the update and its reply callback");
    let request_bytes = ("noop".len() + no_args().len()) as u128;
    let reply_bytes = reply.len() as u128;
    let arg = candid::encode_args((b, "noop".to_string(), serde_bytes::ByteBuf::from(no_args()), None::<u32>, 0u128)).unwrap();
    let ingress = 1_200_000 + 2_000 * ("call".len() + arg.len()) as u128;
    let expected = ingress + 260_000 + 1_000 * (request_bytes + reply_bytes) + executions * 5_000_000 + instructions;
    assert_eq!(before - ic.cycle_balance(a), expected);
}

#[test]
fn storage_is_charged_per_gib_second() {
    let ic = Harness::new();
    let id = probe(&ic);
    update::<_, ()>(&ic, id, "fill_stable", (0u64, 1u64 << 20, 1u8)).unwrap();
    let status = ic.canister_status(id, Some(controller())).unwrap();
    let bytes: u128 = u128::try_from(status.memory_size.0).unwrap();
    let before = ic.cycle_balance(id);
    ic.advance_time(Duration::from_secs(86_400));
    let expected = 127_000 * bytes * 86_400 / (1u128 << 30);
    assert_eq!(before - ic.cycle_balance(id), expected);
}

#[test]
fn traffic_counts_calls_between_canisters_by_method_but_not_self_calls() {
    let ic = Harness::new();
    let (a, b) = (probe(&ic), probe(&ic));
    let before = ic.traffic();
    let CallOutcome::Reply(reply) = call_via(&ic, a, b, "noop", no_args(), None, 0) else { panic!("noop failed") };
    let CallOutcome::Reply(_) = call_via(&ic, a, a, "noop", no_args(), None, 0) else { panic!("self noop failed") };
    let after = ic.traffic();
    let bytes = ("noop".len() + no_args().len() + reply.len()) as u64;
    assert_eq!(after.requests - before.requests, 1);
    assert_eq!(after.request_bytes + after.response_bytes - before.request_bytes - before.response_bytes, bytes);
    let noop = &after.by_method["noop"];
    assert_eq!((noop.requests, noop.bytes), (1, bytes));
}
