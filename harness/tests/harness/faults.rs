//! Fault injection: traps at the n-th message and rejected calls.

use crate::common::*;
use ic_harness::{CallMatcher, ErrorCode, Harness, RejectCode};

#[test]
fn a_canister_traps_at_its_nth_message_and_its_changes_are_undone() {
    let ic = Harness::new();
    let id = probe(&ic);
    ic.trap_at_message(id, 2);
    assert_eq!(update::<_, (u64,)>(&ic, id, "inc", ()).unwrap().0, 1);
    let r = rejected(update::<_, (u64,)>(&ic, id, "inc", ()));
    assert_eq!(r.error_code, ErrorCode::CanisterCalledTrap);
    assert!(r.reject_message.contains("injected fault"), "{}", r.reject_message);
    assert_eq!(counter(&ic, id), 1);
    assert_eq!(update::<_, (u64,)>(&ic, id, "inc", ()).unwrap().0, 2);
    assert_eq!(ic.faults_fired(), 1);
}

#[test]
fn rejected_calls_never_reach_the_callee() {
    let ic = Harness::new();
    let (a, b) = (probe(&ic), probe(&ic));
    ic.reject_calls(CallMatcher::to(b).from(a), RejectCode::SysTransient, "queue full", Some(2));
    for _ in 0..2 {
        assert_eq!(call_via(&ic, a, b, "inc", no_args(), None, 0), CallOutcome::Reject { code: 2, message: "queue full".into() });
    }
    assert_eq!(counter(&ic, b), 0);
    assert!(matches!(call_via(&ic, a, b, "inc", no_args(), None, 0), CallOutcome::Reply(_)));
    assert_eq!(counter(&ic, b), 1);
}

#[test]
fn a_corrupted_reply_arrives_changed() {
    let ic = Harness::new();
    let (a, b) = (probe(&ic), probe(&ic));
    let arg = candid::encode_one(serde_bytes::ByteBuf::from(vec![0u8; 64])).unwrap();
    let clean = call_via(&ic, a, b, "echo", arg.clone(), None, 0);
    ic.corrupt_replies(CallMatcher::to(b).method("echo"), Some(1));
    let corrupted = call_via(&ic, a, b, "echo", arg.clone(), None, 0);
    let (CallOutcome::Reply(clean), CallOutcome::Reply(corrupted)) = (clean, corrupted) else { panic!() };
    assert_eq!(clean.len(), corrupted.len());
    assert_eq!(clean.iter().zip(corrupted.iter()).filter(|(x, y)| x != y).count(), 1);
    assert_eq!(call_via(&ic, a, b, "echo", arg, None, 0), CallOutcome::Reply(clean), "only once");
}

#[test]
fn cleared_faults_stop_firing() {
    let ic = Harness::new();
    let (a, b) = (probe(&ic), probe(&ic));
    ic.reject_calls(CallMatcher::any(), RejectCode::SysFatal, "down", None);
    ic.clear_faults();
    assert!(matches!(call_via(&ic, a, b, "inc", no_args(), None, 0), CallOutcome::Reply(_)));
}
