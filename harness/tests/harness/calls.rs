//! Inter-canister calls: replies, every reject code, ordering, payload limits, cycles.

use crate::common::*;
use ic_harness::{CallMatcher, ErrorCode, Harness, RejectCode};
use std::time::Duration;

fn reject_code(outcome: &CallOutcome) -> (u32, &str) {
    match outcome {
        CallOutcome::Reject { code, message } => (*code, message.as_str()),
        other => panic!("expected a reject, got {other:?}"),
    }
}

#[test]
fn a_call_gets_the_callee_reply() {
    let ic = Harness::new();
    let (a, b) = (probe(&ic), probe(&ic));
    let outcome = call_via(&ic, a, b, "inc", no_args(), None, 0);
    assert_eq!(outcome, CallOutcome::Reply(serde_bytes::ByteBuf::from(candid::encode_one(1u64).unwrap())));
    assert_eq!(counter(&ic, b), 1);
}

#[test]
fn sys_fatal_and_sys_transient_reach_the_caller() {
    let ic = Harness::new();
    let (a, b) = (probe(&ic), probe(&ic));
    ic.reject_calls(CallMatcher::to(b).method("inc"), RejectCode::SysFatal, "injected fatal", Some(1));
    assert_eq!(reject_code(&call_via(&ic, a, b, "inc", no_args(), None, 0)), (1, "injected fatal"));
    // A frozen callee refuses with SYS_TRANSIENT.
    let settings = ic_management_canister_types::CanisterSettings {
        freezing_threshold: Some(candid::Nat::from(u64::MAX / 4)),
        ..Default::default()
    };
    ic.update_canister_settings(b, Some(controller()), settings).unwrap();
    let outcome = call_via(&ic, a, b, "inc", no_args(), None, 0);
    assert_eq!(reject_code(&outcome), (2, format!("Canister {b} is out of cycles").as_str()));
    assert_eq!(counter(&ic, b), 0);
}

#[test]
fn destination_invalid_canister_reject_and_canister_error() {
    let ic = Harness::new();
    let (a, b) = (probe(&ic), probe(&ic));
    let missing = ic_harness::types::canister_id_from_index(777);
    let outcome = call_via(&ic, a, missing, "inc", no_args(), None, 0);
    assert_eq!(reject_code(&outcome), (3, format!("Canister {missing} not found").as_str()));

    let outcome = call_via(&ic, a, b, "reject", candid::encode_one("no thanks").unwrap(), None, 0);
    assert_eq!(reject_code(&outcome), (4, "no thanks"));

    let arg = candid::encode_args((5u64, serde_bytes::ByteBuf::new(), 0u64)).unwrap();
    let outcome = call_via(&ic, a, b, "set_and_trap", arg, None, 0);
    let (code, message) = reject_code(&outcome);
    assert_eq!(code, 5);
    assert!(message.starts_with(&format!("IC0503: Error from Canister {b}: Canister called `ic0.trap` with message: 'boom'")), "{message}");

    let outcome = call_via(&ic, a, b, "no_such_method", no_args(), None, 0);
    let (code, message) = reject_code(&outcome);
    assert_eq!(code, 5);
    assert!(message.starts_with("IC0536: "), "{message}");
}

#[test]
fn sys_unknown_when_a_bounded_wait_response_is_lost() {
    let ic = Harness::new();
    let (a, b) = (probe(&ic), probe(&ic));
    ic.drop_responses(CallMatcher::to(b).method("inc"), Some(1));
    let arg = candid::encode_args((b, "inc".to_string(), serde_bytes::ByteBuf::from(no_args()), Some(10u32), 0u128)).unwrap();
    let msg = ic.submit_call(a, controller(), "call", arg).unwrap();
    for _ in 0..5 {
        ic.tick();
    }
    assert!(ic.ingress_status(msg).is_none(), "waiting for the deadline");
    assert_eq!(counter(&ic, b), 1, "the callee ran: SYS_UNKNOWN means maybe executed");
    ic.advance_time(Duration::from_secs(11));
    ic.tick();
    ic.tick();
    let reply = ic.ingress_status(msg).expect("done").unwrap();
    let outcome: CallOutcome = candid::decode_one(&reply).unwrap();
    assert_eq!(reject_code(&outcome), (6, "Call deadline has expired."));
}

#[test]
fn a_bounded_wait_call_sees_its_deadline_in_whole_seconds() {
    let ic = Harness::new();
    let (a, b) = (probe(&ic), probe(&ic));
    let now = ic.get_time().as_nanos_since_unix_epoch();
    let outcome = call_via(&ic, a, b, "deadline", no_args(), Some(20), 0);
    let CallOutcome::Reply(bytes) = outcome else { panic!("{outcome:?}") };
    let deadline: u64 = candid::decode_one(&bytes).unwrap();
    assert_eq!(deadline % 1_000_000_000, 0);
    assert!(deadline > now + 19_000_000_000 && deadline <= now + 20_000_000_000, "{deadline} vs {now}");
    let CallOutcome::Reply(bytes) = call_via(&ic, a, b, "deadline", no_args(), None, 0) else { panic!() };
    assert_eq!(candid::decode_one::<u64>(&bytes).unwrap(), 0, "no deadline without a timeout");
}

#[test]
fn calls_between_two_canisters_arrive_in_order() {
    let ic = Harness::new();
    let (a, b) = (probe(&ic), probe(&ic));
    let (values,): (Vec<u64>,) = update(&ic, a, "fan_out", (b, 20u64)).unwrap();
    assert_eq!(values, (1..=20).collect::<Vec<u64>>());
}

#[test]
fn requests_over_two_mib_are_refused_across_subnets() {
    let ic = Harness::new();
    let (a, b) = (probe(&ic), probe(&ic));
    let send = |n: u64| update::<_, (CallOutcome,)>(&ic, a, "send_blob", (b, n)).unwrap().0;
    let n = 2u64 << 20;
    let size = "echo".len() + candid::encode_one(serde_bytes::ByteBuf::from(vec![1u8; n as usize])).unwrap().len();
    let outcome = send(n);
    let (code, message) = reject_code(&outcome);
    assert_eq!(code, 5);
    assert!(message.contains(&format!("attempted to send a message of size {size} exceeding the limit 2097152")), "{message}");
    // Just under the limit goes through.
    assert!(matches!(send(n - 100), CallOutcome::Reply(_)));
    // Past 10 MiB, `call_data_append` traps in the caller.
    let r = rejected(update::<_, (CallOutcome,)>(&ic, a, "send_blob", (b, 11u64 << 20)));
    assert_eq!(r.error_code, ErrorCode::CanisterContractViolation);
    assert!(r.reject_message.contains("which exceeds the allowed limit of 10485760"), "{}", r.reject_message);
}

#[test]
fn replies_over_the_limit_trap() {
    let ic = Harness::new();
    let id = probe(&ic);
    let r = rejected(update::<_, (serde_bytes::ByteBuf,)>(&ic, id, "reply_bytes", (3u64 << 20,)));
    assert_eq!(r.error_code, ErrorCode::CanisterContractViolation);
    assert!(r.reject_message.contains("cannot be larger than 2097152"), "{}", r.reject_message);
    // A non-replicated query may reply up to 3 MiB.
    let (bytes,): (serde_bytes::ByteBuf,) = query(&ic, id, "reply_bytes", ((3u64 << 20) - 64,)).unwrap();
    assert_eq!(bytes.len(), (3 << 20) - 64);
    let r = rejected(query::<_, (serde_bytes::ByteBuf,)>(&ic, id, "reply_bytes", (3u64 << 20,)));
    assert!(r.reject_message.contains("cannot be larger than 3145728"), "{}", r.reject_message);
}

#[test]
fn ingress_over_two_mib_is_refused() {
    let ic = Harness::new();
    let id = probe(&ic);
    let big = candid::encode_one(serde_bytes::ByteBuf::from(vec![0u8; 2 << 20])).unwrap();
    assert!(ic.submit_call(id, controller(), "echo", big).is_err());
}

#[test]
fn unaccepted_cycles_come_back() {
    let ic = Harness::new();
    let (a, b) = (probe(&ic), probe(&ic));
    let before_b = ic.cycle_balance(b);
    let attached = 1_000_000_000_000u128;
    let before_a = ic.cycle_balance(a);
    assert!(matches!(call_via(&ic, a, b, "noop", no_args(), None, attached), CallOutcome::Reply(_)));
    let spent = before_a - ic.cycle_balance(a);
    assert!(spent < attached / 10, "the caller got its cycles back, paying only fees: {spent}");
    assert!(ic.cycle_balance(b) < before_b, "the callee accepted nothing and paid its execution");
}
