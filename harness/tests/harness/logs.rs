//! Canister logs: `fetch_canister_logs` is a query of the management canister that
//! `log_visibility` governs; it returns the lines of replicated executions and their traps,
//! numbered, time-stamped, the newest 4 KiB, purged by a reinstall or an uninstall.

use crate::common::*;
use candid::{Decode, Encode, Principal};
use ic_harness::{ErrorCode, Harness, IcBackend, LogRecord, RejectCode};
use ic_management_canister_types::{
    CanisterIdRecord, CanisterLogFilter, CanisterSettings, FetchCanisterLogsArgs, FetchCanisterLogsResult, LogVisibility,
};

fn fetch(
    ic: &Harness,
    id: Principal,
    sender: Principal,
    filter: Option<CanisterLogFilter>,
) -> Result<FetchCanisterLogsResult, ic_harness::RejectResponse> {
    let arg = Encode!(&FetchCanisterLogsArgs { canister_id: id, filter }).unwrap();
    ic.query_call(Principal::management_canister(), sender, "fetch_canister_logs", arg)
        .map(|reply| Decode!(&reply, FetchCanisterLogsResult).unwrap())
}

fn texts(result: &FetchCanisterLogsResult) -> Vec<String> {
    result.canister_log_records.iter().map(|r| String::from_utf8_lossy(&r.content).into_owned()).collect()
}

fn print(ic: &Harness, id: Principal, line: &str) {
    update::<_, ()>(ic, id, "print", (line,)).unwrap();
}

#[test]
fn fetch_canister_logs_answers_a_query_as_log_visibility_allows() {
    let ic = Harness::new();
    let id = settings_canister(&ic, CanisterSettings::default());
    print(&ic, id, "hello");
    assert_eq!(texts(&fetch(&ic, id, controller(), None).unwrap()), ["hello"]);
    let r = fetch(&ic, id, stranger(), None).unwrap_err();
    assert_eq!((r.reject_code, r.error_code), (RejectCode::CanisterReject, ErrorCode::CanisterRejectedMessage));
    assert_eq!(r.reject_message, format!("Caller {} is not allowed to query ic00 method fetch_canister_logs", stranger()));

    let visibility = |v: LogVisibility| {
        ic.update_canister_settings(id, Some(controller()), CanisterSettings { log_visibility: Some(v), ..Default::default() }).unwrap()
    };
    visibility(LogVisibility::Public);
    assert!(fetch(&ic, id, stranger(), None).is_ok());
    visibility(LogVisibility::AllowedViewers(vec![stranger()]));
    assert!(fetch(&ic, id, stranger(), None).is_ok());
    assert!(fetch(&ic, id, controller(), None).is_ok(), "controllers may always read");
    assert!(fetch(&ic, id, Principal::anonymous(), None).is_err());
}

#[test]
fn fetch_canister_logs_is_a_query_only() {
    let ic = Harness::new();
    let id = settings_canister(&ic, CanisterSettings::default());
    let arg = Encode!(&CanisterIdRecord { canister_id: id }).unwrap();
    let r = ic.submit_call(Principal::management_canister(), controller(), "fetch_canister_logs", arg.clone()).unwrap_err();
    assert_eq!(r.error_code, ErrorCode::CanisterRejectedMessage);
    assert_eq!(r.reject_message, "fetch_canister_logs API is not accessible via ingress in replicated mode");
    // From a canister, a replicated call: refused too.
    let caller = probe(&ic);
    ic.update_canister_settings(
        id,
        Some(controller()),
        CanisterSettings { controllers: Some(vec![controller(), caller]), ..Default::default() },
    )
    .unwrap();
    let outcome = call_via(&ic, caller, Principal::management_canister(), "fetch_canister_logs", arg.clone(), None, 0);
    assert_eq!(
        outcome,
        CallOutcome::Reject {
            code: 4,
            message: "fetch_canister_logs API is only accessible to end users in non-replicated mode".to_string()
        }
    );
    // The management canister's other methods are no query methods.
    let r = ic.query_call(Principal::management_canister(), controller(), "canister_info", arg).unwrap_err();
    assert_eq!((r.error_code, r.reject_message.as_str()), (ErrorCode::CanisterMethodNotFound, "Query method canister_info not found."));
}

#[test]
fn the_log_keeps_replicated_lines_and_the_ic_form_of_traps() {
    let ic = Harness::new();
    let id = settings_canister(&ic, CanisterSettings::default());
    print(&ic, id, "in an update");
    let printed_at = ic.get_time().as_nanos_since_unix_epoch();
    query::<_, ()>(&ic, id, "print_in_query", ("in a query",)).unwrap();
    update::<_, ()>(&ic, id, "print_in_query", ("in a replicated query",)).unwrap();
    rejected(update::<_, ()>(&ic, id, "trap_with", ("boom",)));
    rejected(update::<_, ()>(&ic, id, "trap_with", ("",)));
    rejected(update::<_, (String,)>(&ic, id, "env_var_or_trap", ("MISSING",)));
    let fetched = fetch(&ic, id, controller(), None).unwrap();
    // No line of the query outside consensus; a contract violation leaves no record.
    assert_eq!(texts(&fetched), ["in an update", "in a replicated query", "[TRAP]: boom", "[TRAP]: (no message)"]);
    let records = &fetched.canister_log_records;
    assert_eq!(records.iter().map(|r| r.idx).collect::<Vec<_>>(), [0, 1, 2, 3]);
    assert_eq!(records[0].timestamp_nanos, printed_at, "the time of the round it ran in");
    assert!(records.windows(2).all(|w| w[0].timestamp_nanos < w[1].timestamp_nanos));
    // The harness's own record of every line keeps the query's line and every error.
    let all: Vec<String> = ic.canister_logs(id).iter().map(LogRecord::text).collect();
    assert!(all.contains(&"in a query".to_string()), "{all:?}");
    assert!(all.iter().any(|l| l.contains("Environment variable MISSING not found.")), "{all:?}");
}

#[test]
fn the_log_keeps_the_newest_4_kib() {
    let ic = Harness::new();
    let id = settings_canister(&ic, CanisterSettings::default());
    for i in 0..10u8 {
        print(&ic, id, &char::from(b'a' + i).to_string().repeat(1000));
    }
    let records = fetch(&ic, id, controller(), None).unwrap().canister_log_records;
    // A record takes 40 bytes besides its content: three of 1,040 bytes fit in 4,096.
    assert_eq!(records.iter().map(|r| r.idx).collect::<Vec<_>>(), [7, 8, 9]);
    assert_eq!(records[0].content, b"h".repeat(1000));
    assert_eq!(ic.canister_logs(id).len(), 10, "the harness's own record keeps them all");
}

#[test]
fn a_filter_selects_records_by_index_or_time() {
    let ic = Harness::new();
    let id = settings_canister(&ic, CanisterSettings::default());
    for line in ["zero", "one", "two", "three"] {
        print(&ic, id, line);
    }
    let all = fetch(&ic, id, controller(), None).unwrap().canister_log_records;
    let by_idx = fetch(&ic, id, controller(), Some(CanisterLogFilter::ByIdx { start: 1, end: 3 })).unwrap();
    assert_eq!(texts(&by_idx), ["one", "two"]);
    let from = all[2].timestamp_nanos;
    let by_time = fetch(&ic, id, controller(), Some(CanisterLogFilter::ByTimestampNanos { start: from, end: u64::MAX })).unwrap();
    assert_eq!(texts(&by_time), ["two", "three"]);
}

#[test]
fn upgrades_keep_the_log_and_a_reinstall_or_an_uninstall_purges_it() {
    let ic = Harness::new();
    let id = settings_canister(&ic, CanisterSettings::default());
    print(&ic, id, "first");
    print(&ic, id, "second");
    let none = candid::encode_one(None::<u64>).unwrap();
    ic.upgrade_canister(id, settings_wasm(), none.clone(), Some(controller())).unwrap();
    assert_eq!(texts(&fetch(&ic, id, controller(), None).unwrap()), ["first", "second"]);
    ic.reinstall_canister(id, settings_wasm(), none, Some(controller())).unwrap();
    assert!(fetch(&ic, id, controller(), None).unwrap().canister_log_records.is_empty());
    print(&ic, id, "third");
    let records = fetch(&ic, id, controller(), None).unwrap().canister_log_records;
    assert_eq!(records.iter().map(|r| r.idx).collect::<Vec<_>>(), [2], "the numbering goes on");
    ic.uninstall_canister(id, Some(controller())).unwrap();
    assert!(fetch(&ic, id, controller(), None).unwrap().canister_log_records.is_empty());
}

/// Through [`IcBackend`], as a test that also runs on PocketIC reads logs.
fn log_texts(ic: &impl IcBackend, id: Principal) -> Vec<String> {
    ic.fetch_canister_logs(id, controller()).unwrap().iter().map(LogRecord::text).collect()
}

#[test]
fn the_backend_trait_fetches_logs() {
    let ic = Harness::new();
    let id = probe(&ic);
    update::<_, ()>(&ic, id, "print", ("through the trait",)).unwrap();
    assert_eq!(log_texts(&ic, id), ["through the trait"]);
}
