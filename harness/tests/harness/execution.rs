//! Entry points, arguments and replies, and the system API's context rules.

use crate::common::*;
use ic_harness::{ErrorCode, Harness, IcBackend, RejectCode};

#[test]
fn updates_persist_and_queries_read() {
    let ic = Harness::new();
    let id = probe(&ic);
    assert_eq!(update::<_, (u64,)>(&ic, id, "inc", ()).unwrap().0, 1);
    assert_eq!(update::<_, (u64,)>(&ic, id, "inc", ()).unwrap().0, 2);
    assert_eq!(counter(&ic, id), 2);
}

#[test]
fn a_query_changes_nothing() {
    let ic = Harness::new();
    let id = probe(&ic);
    assert_eq!(query::<_, (u64,)>(&ic, id, "query_inc", ()).unwrap().0, 1);
    assert_eq!(query::<_, (u64,)>(&ic, id, "query_inc", ()).unwrap().0, 1);
    // Called as an update, a query still changes nothing.
    assert_eq!(update::<_, (u64,)>(&ic, id, "query_inc", ()).unwrap().0, 1);
    assert_eq!(counter(&ic, id), 0);
}

#[test]
fn the_caller_is_the_sender() {
    let ic = Harness::new();
    let id = probe(&ic);
    let (caller,): (candid::Principal,) = ic.query_candid(id, stranger(), "caller", ()).unwrap();
    assert_eq!(caller, stranger());
}

#[test]
fn a_missing_method_is_refused_with_the_ic_error() {
    let ic = Harness::new();
    let id = probe(&ic);
    let r = rejected(update::<_, ()>(&ic, id, "no_such_method", ()));
    assert_eq!(r.reject_code, RejectCode::CanisterError);
    assert_eq!(r.error_code, ErrorCode::CanisterMethodNotFound);
    assert!(r.reject_message.starts_with(&format!("Error from Canister {id}: Canister has no update method 'no_such_method'.")), "{}", r.reject_message);
    let r = rejected(query::<_, ()>(&ic, id, "inc", ()));
    assert_eq!(r.error_code, ErrorCode::CanisterMethodNotFound);
    assert!(r.reject_message.contains("has no query method 'inc'"), "{}", r.reject_message);
}

#[test]
fn empty_and_missing_canisters_are_refused() {
    let ic = Harness::new();
    let empty = ic.create_canister();
    let r = rejected(update::<_, ()>(&ic, empty, "inc", ()));
    assert_eq!(r.error_code, ErrorCode::CanisterWasmModuleNotFound);
    let missing = ic_harness::types::canister_id_from_index(999);
    let r = rejected(update::<_, ()>(&ic, missing, "inc", ()));
    assert_eq!((r.reject_code, r.error_code), (RejectCode::DestinationInvalid, ErrorCode::CanisterNotFound));
}

#[test]
fn a_second_reply_traps() {
    let ic = Harness::new();
    let id = probe(&ic);
    let r = rejected(update::<_, ()>(&ic, id, "reply_twice", ()));
    assert_eq!(r.error_code, ErrorCode::CanisterContractViolation);
    // ic-cdk appends the data before replying, so the append is what traps.
    assert!(r.reject_message.contains("ic0.msg_reply_data_append: the call is already replied"), "{}", r.reject_message);
}

#[test]
fn system_calls_outside_their_context_trap_as_on_the_ic() {
    let ic = Harness::new();
    let id = probe(&ic);
    let r = rejected(query::<_, ()>(&ic, id, "call_from_query", (id,)));
    assert_eq!(r.error_code, ErrorCode::CanisterContractViolation);
    assert!(
        r.reject_message.contains("\"ic0_call_new\" cannot be executed in non replicated query mode"),
        "{}",
        r.reject_message
    );
    let r = rejected(query::<_, ()>(&ic, id, "timer_from_query", ()));
    assert!(
        r.reject_message.contains("\"ic0_global_timer_set\" cannot be executed in non replicated query mode"),
        "{}",
        r.reject_message
    );
    // As an update, the same query method runs in replicated query mode.
    let r = rejected(update::<_, ()>(&ic, id, "call_from_query", (id,)));
    assert!(r.reject_message.contains("cannot be executed in replicated query mode"), "{}", r.reject_message);
}

#[test]
fn logs_keep_prints_and_traps() {
    let ic = Harness::new();
    let id = probe(&ic);
    update::<_, ()>(&ic, id, "print", ("hello from the probe",)).unwrap();
    rejected(update::<_, ()>(&ic, id, "set_and_trap", (1u64, serde_bytes::ByteBuf::new(), 0u64)));
    let lines: Vec<String> = ic.canister_logs(id).iter().map(|l| l.text()).collect();
    assert!(lines.contains(&"hello from the probe".to_string()), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("[TRAP]: Canister called `ic0.trap` with message: 'boom'")), "{lines:?}");
    let fetched = ic.fetch_canister_logs(id, controller()).unwrap();
    assert_eq!(fetched.len(), lines.len());
    assert!(ic.fetch_canister_logs(id, stranger()).is_err());
}

#[test]
fn ingress_and_submit_await_agree() {
    let ic = Harness::new();
    let id = probe(&ic);
    let a = ic.submit_call(id, controller(), "inc", no_args()).unwrap();
    let b = ic.submit_call(id, controller(), "inc", no_args()).unwrap();
    assert!(ic.ingress_status(a).is_none(), "nothing runs before a round");
    let b = ic.await_call(b).unwrap();
    let a = ic.await_call(a).unwrap();
    // Messages to one canister run in the order they were submitted.
    assert_eq!(candid::decode_one::<u64>(&a).unwrap(), 1);
    assert_eq!(candid::decode_one::<u64>(&b).unwrap(), 2);
}

#[test]
fn time_is_pocket_ic_genesis_and_moves_with_rounds() {
    let ic = Harness::new();
    let t0 = ic.get_time().as_nanos_since_unix_epoch();
    assert_eq!(t0, 1_620_328_630_000_000_000);
    ic.tick();
    assert_eq!(ic.get_time().as_nanos_since_unix_epoch(), t0 + 1, "a round moves time by 1 ns");
    ic.advance_time(std::time::Duration::from_secs(5));
    ic.tick();
    assert_eq!(ic.get_time().as_nanos_since_unix_epoch(), t0 + 1 + 5_000_000_000, "after advance_time, the round keeps the time");
}
