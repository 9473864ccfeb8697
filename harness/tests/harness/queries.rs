//! Composite queries: a composite query method calls query and composite query methods (of
//! other canisters, of itself, of the management canister) and answers outside consensus; every
//! change in the call graph is discarded; the graph is bounded in depth and instructions; and a
//! composite query cannot run in replicated mode.

use crate::common::*;
use candid::{Encode, Principal};
use ic_harness::{ErrorCode, Harness, Limits, RejectCode};
use serde_bytes::ByteBuf;

fn composite(ic: &Harness, value: u64) -> Principal {
    let id = install(ic, composite_wasm(), no_args());
    update::<_, ()>(ic, id, "set", (value,)).unwrap();
    id
}

fn get(ic: &Harness, id: Principal) -> (u64, u64) {
    (query::<_, (u64,)>(ic, id, "get", ()).unwrap().0, query::<_, (u64,)>(ic, id, "get_stable", ()).unwrap().0)
}

/// How `via.call(target, method, arg)` saw its call end.
fn call_from_composite(ic: &Harness, via: Principal, target: Principal, method: &str, arg: Vec<u8>) -> CallOutcome {
    query::<_, (CallOutcome,)>(ic, via, "call", (target, method.to_string(), ByteBuf::from(arg))).unwrap().0
}

#[test]
fn a_composite_query_sums_the_queries_of_other_canisters() {
    let ic = Harness::new();
    let root = composite(&ic, 1);
    let (b, c) = (composite(&ic, 2), composite(&ic, 3));
    let (total,): (u64,) = query(&ic, root, "sum", (vec![b, c, b],)).unwrap();
    assert_eq!(total, 7);
    let caller = call_from_composite(&ic, root, b, "caller", no_args());
    assert_eq!(caller, CallOutcome::Reply(ByteBuf::from(Encode!(&root).unwrap())), "the callee sees the calling canister");
}

#[test]
fn composite_queries_nest_down_to_six_calls() {
    let ic = Harness::new();
    let canisters: Vec<Principal> = (0..8).map(|i| composite(&ic, i)).collect();
    let (root, rest) = canisters.split_first().unwrap();
    let (deepest,): (u64,) = query(&ic, *root, "chain", (rest[..6].to_vec(),)).unwrap();
    assert_eq!(deepest, 6, "six nested calls, the last one answering");

    let r = rejected(query::<_, (u64,)>(&ic, *root, "chain", (rest[..7].to_vec(),)));
    assert_eq!(r.error_code, ErrorCode::QueryCallGraphTooDeep);
    assert_eq!(r.reject_code, RejectCode::CanisterError);
    assert_eq!(r.reject_message, "Composite query calls exceeded the maximum call depth.");

    let (own,): (u64,) = query(&ic, *root, "chain", (vec![*root; 4],)).unwrap();
    assert_eq!(own, 0, "a canister may call itself, over and over");
}

#[test]
fn a_composite_query_calling_itself_sees_the_committed_state_and_nothing_is_kept() {
    let ic = Harness::new();
    let a = composite(&ic, 5);
    let b = composite(&ic, 40);
    let executions = ic.canister_metrics(a).executions;
    let seen: (u64, u64, u64, u64) = query(&ic, a, "bump_then_ask", (a,)).unwrap();
    assert_eq!(seen, (5, 5, 6, 6), "the call back into `a` sees the committed counter; `a`'s own call context keeps its change");
    let seen: (u64, u64, u64, u64) = query(&ic, a, "bump_then_ask", (b,)).unwrap();
    assert_eq!(seen, (40, 40, 6, 6));
    assert_eq!(get(&ic, a), (5, 5), "every change of the call graph is discarded");
    assert_eq!(get(&ic, b), (40, 40));
    assert_eq!(ic.canister_metrics(a).executions, executions, "queries are not replicated executions");
}

#[test]
fn a_trap_after_a_call_fails_the_query() {
    let ic = Harness::new();
    let (a, b) = (composite(&ic, 1), composite(&ic, 2));
    let r = rejected(query::<_, (u64,)>(&ic, a, "trap_after_call", (b,)));
    assert_eq!(r.error_code, ErrorCode::CanisterCalledTrap);
    assert!(r.reject_message.contains("trapped after the call answered 2"), "{}", r.reject_message);
    assert_eq!(get(&ic, a), (1, 1));
}

#[test]
fn a_composite_query_may_call_only_query_methods() {
    let ic = Harness::new();
    let (a, b) = (composite(&ic, 1), composite(&ic, 2));
    match call_from_composite(&ic, a, b, "set", Encode!(&9u64).unwrap()) {
        CallOutcome::Reject { code, message } => {
            assert_eq!(code, RejectCode::CanisterError as u32);
            assert!(message.starts_with("IC0536: ") && message.contains("Canister has no query method 'set'"), "{message}");
        }
        other => panic!("an update method answered a composite query: {other:?}"),
    }
    assert_eq!(get(&ic, b), (2, 2));
    let nobody = Principal::from_slice(&[0x77; 10]);
    match call_from_composite(&ic, a, nobody, "get", no_args()) {
        CallOutcome::Reject { code, message } => {
            assert_eq!(code, RejectCode::DestinationInvalid as u32);
            assert_eq!(message, format!("Canister {nobody} not found"));
        }
        other => panic!("{other:?}"),
    }
    let r = rejected(query::<_, (u64,)>(&ic, a, "call_with_cycles", (b,)));
    assert_eq!(r.error_code, ErrorCode::CanisterContractViolation);
    assert!(r.reject_message.contains("\"ic0_call_cycles_add128\" cannot be executed in composite query mode"), "{}", r.reject_message);
}

#[test]
fn a_composite_query_may_read_a_canister_status_from_the_management_canister() {
    let ic = Harness::new();
    let a = composite(&ic, 1);
    let controlled = ic.create_canister_with_settings(Some(a), None);
    let arg = Encode!(&ic_management_canister_types::CanisterIdRecord { canister_id: controlled }).unwrap();
    let CallOutcome::Reply(reply) = call_from_composite(&ic, a, Principal::management_canister(), "canister_status", arg) else {
        panic!("canister_status is a query method of the management canister");
    };
    let status = candid::decode_one::<ic_management_canister_types::CanisterStatusResult>(&reply).unwrap();
    assert_eq!(status.settings.controllers, vec![a]);
    match call_from_composite(&ic, a, Principal::management_canister(), "raw_rand", no_args()) {
        CallOutcome::Reject { code, message } => {
            assert_eq!(code, RejectCode::CanisterError as u32);
            assert_eq!(message, "Query method raw_rand not found.");
        }
        other => panic!("raw_rand answered a composite query: {other:?}"),
    }
}

#[test]
fn the_call_graph_shares_one_instruction_limit() {
    let limits = Limits { composite_query_instructions: 5 * 50_000_000, ..Limits::default() };
    let ic = Harness::builder().with_limits(limits).build();
    let (a, b) = (composite(&ic, 1), composite(&ic, 2));
    let (total,): (u64,) = query(&ic, a, "sum", (vec![b; 4],)).unwrap();
    assert_eq!(total, 8);
    let r = rejected(query::<_, (u64,)>(&ic, a, "sum", (vec![b; 5],)));
    assert_eq!(r.error_code, ErrorCode::QueryCallGraphTotalInstructionLimitExceeded);
    assert_eq!(r.reject_message, "Composite query calls exceeded the instruction limit.");
}

#[test]
fn a_composite_query_cannot_run_in_replicated_mode() {
    let ic = Harness::new();
    let (a, b) = (composite(&ic, 1), composite(&ic, 2));
    let r = rejected(update::<_, (u64,)>(&ic, a, "sum", (vec![b],)));
    assert_eq!(r.error_code, ErrorCode::CompositeQueryCalledInReplicatedMode);
    assert_eq!(r.reject_code, RejectCode::CanisterError);
    assert_eq!(r.reject_message, "Composite query cannot be called in replicated mode");

    let caller = probe(&ic);
    let outcome = call_via(&ic, caller, a, "sum", Encode!(&vec![b]).unwrap(), None, 0);
    let expected = "IC0527: Composite query cannot be called in replicated mode".to_string();
    assert_eq!(outcome, CallOutcome::Reject { code: RejectCode::CanisterError as u32, message: expected });
}
