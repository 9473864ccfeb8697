//! Subnets: where canisters are placed, and calls between subnets, which wait in streams for
//! the rounds the IC's message routing takes and keep to each stream's bytes per round.

use crate::common::*;
use candid::Principal;
use ic_harness::{Harness, MessageId, SubnetId, XNet};
use serde_bytes::ByteBuf;
use std::time::Duration;

/// Rounds a message takes from one subnet to another by default.
fn latency() -> u64 {
    XNet::default().latency_rounds
}

fn two_subnets() -> Harness {
    Harness::builder().with_subnets(2).build()
}

/// A probe canister on `subnet`, controlled by [`controller`].
fn probe_on(ic: &Harness, subnet: u32) -> Principal {
    let id = ic.create_canister_on_subnet(Some(controller()), None, SubnetId(subnet));
    ic.install_canister(id, probe_wasm(), no_args(), Some(controller()));
    id
}

/// Has `caller` call `target.method(arg)` as an ingress message, without running it.
fn submit_call_via(ic: &Harness, caller: Principal, target: Principal, method: &str, arg: Vec<u8>, timeout: Option<u32>) -> MessageId {
    let arg = candid::encode_args((target, method.to_string(), ByteBuf::from(arg), timeout, 0u128)).unwrap();
    ic.submit_call(caller, controller(), "call", arg).unwrap()
}

/// Runs `f` and returns what it returned and how many rounds it ran.
fn counting_rounds<T>(ic: &Harness, f: impl FnOnce() -> T) -> (T, u64) {
    let before = ic.rounds();
    let value = f();
    (value, ic.rounds() - before)
}

#[test]
fn canisters_are_on_subnet_zero_unless_placed() {
    let ic = two_subnets();
    let (a, b) = (probe(&ic), probe_on(&ic, 1));
    assert_eq!(ic.subnet_of(a), Some(SubnetId(0)));
    assert_eq!(ic.subnet_of(b), Some(SubnetId(1)));
    assert_eq!(ic.subnet_of(ic_harness::types::canister_id_from_index(99)), None);
}

#[test]
#[should_panic(expected = "Subnet 2 not found")]
fn a_canister_is_not_created_on_a_subnet_that_does_not_exist() {
    two_subnets().create_canister_on_subnet(None, None, SubnetId(2));
}

#[test]
fn a_call_across_subnets_arrives_latency_rounds_later_and_its_reply_as_many_after() {
    for latency in [latency(), 3] {
        let ic = Harness::builder().with_subnets(2).with_xnet(XNet { latency_rounds: latency, ..XNet::default() }).build();
        let (a, b) = (probe_on(&ic, 0), probe_on(&ic, 1));
        let start = ic.rounds();
        let msg = submit_call_via(&ic, a, b, "inc", no_args(), None);
        let mut executed_in = None;
        while ic.ingress_status(msg).is_none() {
            assert!(ic.rounds() - start < 20, "the call never completed");
            ic.tick();
            if executed_in.is_none() && counter(&ic, b) == 1 {
                executed_in = Some(ic.rounds() - start);
            }
        }
        // The caller runs in the first round and sends; the callee runs `latency` rounds later,
        // and the caller gets its reply `latency` rounds after that.
        assert_eq!(executed_in, Some(1 + latency), "latency {latency}");
        assert_eq!(ic.rounds() - start, 1 + 2 * latency, "latency {latency}");
        let reply = ic.ingress_status(msg).unwrap().unwrap();
        assert_eq!(
            candid::decode_one::<CallOutcome>(&reply).unwrap(),
            CallOutcome::Reply(ByteBuf::from(candid::encode_one(1u64).unwrap()))
        );
    }
}

#[test]
fn a_call_within_a_subnet_is_answered_in_its_round() {
    let ic = two_subnets();
    for subnet in [0, 1] {
        let (a, b) = (probe_on(&ic, subnet), probe_on(&ic, subnet));
        let (outcome, rounds) = counting_rounds(&ic, || call_via(&ic, a, b, "inc", no_args(), None, 0));
        assert!(matches!(outcome, CallOutcome::Reply(_)), "{outcome:?}");
        assert_eq!(rounds, 1, "subnet {subnet}");
    }
}

#[test]
fn the_byte_budget_paces_a_stream_of_large_requests() {
    let ic = two_subnets();
    let (a, b) = (probe_on(&ic, 0), probe_on(&ic, 1));
    assert_eq!(XNet::default().bytes_per_round, 4 << 20);
    // Two requests of 1.9 MiB fit in a round's 4 MiB, a third does not: ten take five rounds
    // to go through; their small replies come back in the same rhythm.
    let blob = 19 * (1u64 << 20) / 10;
    let ((answered,), rounds) = counting_rounds(&ic, || update::<_, (u64,)>(&ic, a, "send_blobs", (b, 10u64, blob)).unwrap());
    assert_eq!(answered, 10);
    assert_eq!(rounds, 1 + 2 * latency() + 4);
    // Within a subnet there is no budget.
    let c = probe_on(&ic, 0);
    let ((answered,), rounds) = counting_rounds(&ic, || update::<_, (u64,)>(&ic, a, "send_blobs", (c, 10u64, blob)).unwrap());
    assert_eq!((answered, rounds), (10, 1));
}

#[test]
fn calls_between_two_canisters_on_two_subnets_arrive_in_order() {
    // A budget of 20 bytes lets two `inc` requests (9 bytes each) through per round, and one
    // reply (15 bytes): the calls spread over many rounds.
    let ic = Harness::builder().with_subnets(2).with_xnet(XNet { bytes_per_round: 20, ..XNet::default() }).build();
    let (a, b) = (probe_on(&ic, 0), probe_on(&ic, 1));
    let ((values,), rounds) = counting_rounds(&ic, || update::<_, (Vec<u64>,)>(&ic, a, "fan_out", (b, 20u64)).unwrap());
    assert_eq!(values, (1..=20).collect::<Vec<u64>>());
    assert!(rounds >= 2 * latency() + 20, "one reply a round: {rounds}");
}

#[test]
fn a_deadline_that_passes_while_the_request_waits_in_a_stream_gives_sys_unknown() {
    let ic = two_subnets();
    let (a, b) = (probe_on(&ic, 0), probe_on(&ic, 1));
    let msg = submit_call_via(&ic, a, b, "inc", no_args(), Some(1));
    ic.tick(); // the request leaves, with a deadline 1 s away
    ic.advance_time(Duration::from_secs(2));
    ic.tick(); // the deadline has passed; the request is still on its way
    let reply = ic.ingress_status(msg).expect("the caller was told at once").unwrap();
    let outcome: CallOutcome = candid::decode_one(&reply).unwrap();
    assert_eq!(outcome, CallOutcome::Reject { code: 6, message: "Call deadline has expired.".to_string() });
    assert_eq!(counter(&ic, b), 0, "the request had not arrived");
    // It arrives later and runs (SYS_UNKNOWN: maybe executed); its reply is dropped.
    for _ in 0..2 * latency() {
        ic.tick();
    }
    assert_eq!(counter(&ic, b), 1);
    assert!(ic.with_world(|w| w.is_quiet()).is_ok());
}

#[test]
fn a_canister_created_by_a_canister_is_on_its_creators_subnet() {
    let ic = two_subnets();
    let parent = probe_on(&ic, 1);
    let (child,): (Principal,) = update(&ic, parent, "spawn", (ByteBuf::from(probe_wasm()), 1_000_000_000_000u128)).unwrap();
    assert_eq!(ic.subnet_of(child), Some(SubnetId(1)));
    assert_eq!(ic.get_controllers(child), vec![parent]);
}

#[test]
fn a_management_call_about_a_canister_goes_to_that_canisters_subnet() {
    let ic = two_subnets();
    let (a, b) = (probe_on(&ic, 0), probe_on(&ic, 1));
    let info = |target: Principal| update::<_, (Vec<Principal>, Option<ByteBuf>, u64)>(&ic, a, "info", (target,)).unwrap();
    let ((controllers, _, _), rounds) = counting_rounds(&ic, || info(b));
    assert_eq!(controllers, vec![controller()]);
    assert_eq!(rounds, 1 + 2 * latency());
    let (_, rounds) = counting_rounds(&ic, || info(a));
    assert_eq!(rounds, 1);
}

#[test]
fn an_advance_runs_the_rounds_a_stream_needs() {
    let ic = two_subnets();
    let (a, b) = (probe_on(&ic, 0), probe_on(&ic, 1));
    let msg = submit_call_via(&ic, a, b, "inc", no_args(), None);
    let report = ic.advance(Duration::from_secs(60)).unwrap();
    assert!(ic.ingress_status(msg).is_some(), "the call completed");
    assert_eq!(report.rounds, 1 + 2 * latency(), "one round per interval while messages wait, then none");
}

#[test]
fn rounds_spent_waiting_on_streams_do_not_count_against_a_calls_round_limit() {
    let ic = Harness::builder().with_subnets(2).with_max_rounds_per_call(1).build();
    let (a, b) = (probe_on(&ic, 0), probe_on(&ic, 1));
    let (outcome, rounds) = counting_rounds(&ic, || call_via(&ic, a, b, "inc", no_args(), None, 0));
    assert!(matches!(outcome, CallOutcome::Reply(_)), "{outcome:?}");
    assert_eq!(rounds, 1 + 2 * latency());
}

#[test]
fn a_saved_ic_keeps_its_subnets_and_where_each_canister_is() {
    let dir = tempfile::tempdir().unwrap();
    let xnet = XNet { latency_rounds: 3, ..XNet::default() };
    let (a, b) = {
        let ic = Harness::builder().with_subnets(3).with_xnet(xnet).build();
        let (a, b) = (probe_on(&ic, 0), probe_on(&ic, 2));
        ic.save(dir.path(), 10).unwrap();
        (a, b)
    };
    let ic = Harness::load(dir.path()).unwrap();
    assert_eq!((ic.subnet_of(a), ic.subnet_of(b)), (Some(SubnetId(0)), Some(SubnetId(2))));
    let (_, rounds) = counting_rounds(&ic, || call_via(&ic, a, b, "inc", no_args(), None, 0));
    assert_eq!(rounds, 1 + 2 * xnet.latency_rounds, "the latency came back too");
    let c = probe_on(&ic, 2);
    assert_eq!(ic.subnet_of(c), Some(SubnetId(2)));
}
