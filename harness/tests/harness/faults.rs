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
fn cleared_faults_stop_firing() {
    let ic = Harness::new();
    let (a, b) = (probe(&ic), probe(&ic));
    ic.reject_calls(CallMatcher::any(), RejectCode::SysFatal, "down", None);
    ic.clear_faults();
    assert!(matches!(call_via(&ic, a, b, "inc", no_args(), None, 0), CallOutcome::Reply(_)));
}
