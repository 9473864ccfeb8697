//! Limits: instructions per message kind, memory sizes, dirty pages; and the instruction
//! count's determinism.

use crate::common::*;
use ic_harness::{ErrorCode, ExecutedEntry, Harness, Limits};
use serde_bytes::ByteBuf;

#[test]
fn the_defaults_are_the_ic_application_subnet_limits() {
    let l = Limits::default();
    assert_eq!(l.update_instructions, 40_000_000_000);
    assert_eq!(l.query_instructions, 5_000_000_000);
    assert_eq!(l.install_instructions, 300_000_000_000);
    assert_eq!(l.max_request_bytes_cross_subnet, 2 << 20);
    assert_eq!(l.max_reply_bytes, 2 << 20);
    assert_eq!(l.stable_dirty_bytes_update, 2 << 30);
}

fn small_limits() -> Harness {
    Harness::builder()
        .with_limits(Limits {
            update_instructions: 50_000_000,
            query_instructions: 20_000_000,
            install_instructions: 500_000_000,
            ..Limits::default()
        })
        .build()
}

#[test]
fn the_instruction_limit_stops_a_message_with_the_ic_error() {
    let ic = small_limits();
    let id = probe(&ic);
    assert!(update::<_, (u64,)>(&ic, id, "burn", (100_000u64,)).is_ok());
    let r = rejected(update::<_, (u64,)>(&ic, id, "burn", (100_000_000u64,)));
    assert_eq!(r.error_code, ErrorCode::CanisterInstructionLimitExceeded);
    assert!(
        r.reject_message.contains("Canister exceeded the limit of 50000000 instructions for single message execution."),
        "{}",
        r.reject_message
    );
    let r = rejected(query::<_, (u64,)>(&ic, id, "burn_in_query", (100_000_000u64,)));
    assert_eq!(r.error_code, ErrorCode::CanisterInstructionLimitExceeded);
    assert!(r.reject_message.contains("limit of 20000000 instructions"), "{}", r.reject_message);
}

#[test]
fn instruction_counts_are_deterministic_and_grow_with_work() {
    let counts = |iterations: &[u64]| {
        let ic = Harness::new();
        let id = probe(&ic);
        iterations.iter().map(|&n| update::<_, (u64,)>(&ic, id, "burn", (n,)).unwrap().0).collect::<Vec<_>>()
    };
    let first = counts(&[10_000, 10_000, 20_000]);
    assert_eq!(first, counts(&[10_000, 10_000, 20_000]), "same inputs, same counts");
    assert!(first[2] > first[1] + 10_000 * 3, "{first:?}");
}

#[test]
fn the_heap_stops_at_the_wasm_memory_limit() {
    let ic = Harness::new();
    let id = probe(&ic);
    let settings = ic_management_canister_types::CanisterSettings {
        wasm_memory_limit: Some(candid::Nat::from(64u64 << 20)),
        ..Default::default()
    };
    ic.update_canister_settings(id, Some(controller()), settings).unwrap();
    let pages = update::<_, (u64,)>(&ic, id, "grow_heap", (16u64,)).unwrap().0;
    let r = rejected(update::<_, (u64,)>(&ic, id, "grow_heap", (80u64,)));
    assert_eq!(r.error_code, ErrorCode::CanisterWasmMemoryLimitExceeded);
    assert!(r.reject_message.contains("Canister exceeded its current Wasm memory limit of 67108864 bytes."), "{}", r.reject_message);
    let after = query::<_, (u64,)>(&ic, id, "heap_pages", ()).unwrap().0;
    assert_eq!(after, pages, "the failed growth was rolled back");
    assert!(after * 65536 <= 64 << 20);
}

#[test]
fn stable_memory_stops_at_its_limit_and_its_dirty_page_limit() {
    let ic = Harness::builder()
        .with_limits(Limits { stable_memory_bytes: 4 << 20, stable_dirty_bytes_update: 1 << 20, ..Limits::default() })
        .build();
    let id = probe(&ic);
    update::<_, ()>(&ic, id, "write_stable", (0u64, ByteBuf::from(vec![1u8; 1 << 20]))).unwrap();
    let r = rejected(update::<_, ()>(&ic, id, "write_stable", (0u64, ByteBuf::from(vec![1u8; (1 << 20) + 1]))));
    assert_eq!(r.error_code, ErrorCode::CanisterMemoryAccessLimitExceeded);
    let r = rejected(update::<_, ()>(&ic, id, "write_stable", ((4u64 << 20) - 10, ByteBuf::from(vec![1u8; 20]))));
    assert!(r.reject_message.contains("stable memory grows"), "{}", r.reject_message);
}

#[test]
fn install_hooks_share_the_install_instruction_limit() {
    let ic = Harness::builder().with_limits(Limits { install_instructions: 1_000, ..Limits::default() }).build();
    let id = ic.create_canister_with_settings(Some(controller()), None);
    let r = ic.reinstall_canister(id, kv_wasm(), candid::encode_one(None::<KvArgs>).unwrap(), Some(controller())).unwrap_err();
    assert_eq!(r.error_code, ErrorCode::CanisterInstructionLimitExceeded);
    assert!(r.reject_message.contains("limit of 1000 instructions"), "{}", r.reject_message);
    assert_eq!(ic.canister_status(id, Some(controller())).unwrap().module_hash, None, "nothing was installed");
}

#[test]
fn a_canister_starts_no_message_in_a_round_once_it_executed_the_rounds_instructions() {
    assert_eq!(Limits::default().round_instructions, 4_000_000_000);
    let ic = Harness::builder().with_limits(Limits { round_instructions: 10_000_000, ..Limits::default() }).build();
    let id = probe(&ic);
    let (per_burn,) = update::<_, (u64,)>(&ic, id, "burn", (300_000u64,)).unwrap();
    assert!((3_000_000..5_000_000).contains(&per_burn), "{per_burn}");
    let burns: Vec<_> = (0..6).map(|_| ic.submit_call(id, controller(), "burn", candid::encode_one(300_000u64).unwrap()).unwrap()).collect();
    let done = || burns.iter().filter(|&&m| ic.ingress_status(m).is_some()).count();
    ic.tick();
    // The third message starts below 10 M and runs to its end; the fourth waits.
    assert_eq!(done(), 3);
    ic.tick();
    assert_eq!(done(), 6);
}

#[test]
fn the_execution_log_gives_each_executions_instructions_and_the_stable_pages_it_dirtied() {
    let ic = Harness::builder().with_limits(Limits { stable_dirty_bytes_update: 1 << 20, ..Limits::default() }).build();
    let (a, b) = (probe(&ic), probe(&ic));
    update::<_, ()>(&ic, a, "write_stable", (0u64, ByteBuf::from(vec![1u8; 10]))).unwrap();
    assert!(ic.take_execution_log().is_empty(), "nothing is logged before logging starts");

    ic.log_executions(true);
    // Bytes 4000..12193: pages 0, 1 and 2.
    update::<_, ()>(&ic, a, "write_stable", (4000u64, ByteBuf::from(vec![2u8; 8193]))).unwrap();
    let (counted,) = update::<_, (u64,)>(&ic, a, "burn", (10_000u64,)).unwrap();
    rejected(update::<_, ()>(&ic, a, "write_stable", (0u64, ByteBuf::from(vec![3u8; (1 << 20) + 1]))));
    let arg = candid::encode_args((0u64, ByteBuf::from(vec![4u8; 5000]))).unwrap();
    let (forwarded,): (CallOutcome,) = update(&ic, a, "call", (b, "write_stable", ByteBuf::from(arg), None::<u32>, 0u128)).unwrap();
    assert!(matches!(forwarded, CallOutcome::Reply(_)), "{forwarded:?}");
    let log = ic.take_execution_log();

    let entries: Vec<_> = log.iter().map(|r| (r.canister, r.entry.clone(), r.stable_pages_dirtied, r.succeeded)).collect();
    let method = |m: &str| ExecutedEntry::Method(m.into());
    assert_eq!(
        entries,
        [
            (a, method("write_stable"), 3, true),
            (a, method("burn"), 0, true),
            (a, method("write_stable"), 257, false),
            (a, method("call"), 0, true),
            (b, method("write_stable"), 2, true),
            (a, ExecutedEntry::Callback("write_stable".into()), 0, true),
        ]
    );
    assert!(log[1].instructions >= counted && log[1].instructions < counted + 10_000, "burn counted {counted}, the log {}", log[1].instructions);
    assert!(ic.take_execution_log().is_empty(), "a take empties the log");
    ic.log_executions(false);
    update::<_, (u64,)>(&ic, a, "burn", (10u64,)).unwrap();
    assert!(ic.take_execution_log().is_empty(), "nothing is logged once logging stops");
}
