//! A trap undoes exactly its own execution; an await commits what came before it.

use crate::common::*;
use ic_harness::{ErrorCode, Harness};
use serde_bytes::ByteBuf;

#[test]
fn a_trap_rolls_back_heap_stable_memory_and_growth() {
    let ic = Harness::new();
    let id = probe(&ic);
    update::<_, ()>(&ic, id, "write_stable", (0u64, ByteBuf::from(b"before".to_vec()))).unwrap();
    let heap_before = query::<_, (u64,)>(&ic, id, "heap_pages", ()).unwrap().0;
    let heap_bytes_before = ic.heap_memory(id);
    let stable_before = ic.get_stable_memory(id);

    let r = rejected(update::<_, ()>(&ic, id, "set_and_trap", (42u64, ByteBuf::from(vec![9u8; 300_000]), 16u64)));
    assert_eq!(r.error_code, ErrorCode::CanisterCalledTrap);
    assert!(r.reject_message.contains("'boom'"), "{}", r.reject_message);

    assert_eq!(counter(&ic, id), 0);
    assert_eq!(query::<_, (u64,)>(&ic, id, "heap_pages", ()).unwrap().0, heap_before);
    assert_eq!(ic.get_stable_memory(id), stable_before, "stable memory, size included, is as before");
    assert_eq!(ic.heap_memory(id), heap_bytes_before, "the heap is byte for byte as before");
    // The canister works on: its allocator and stack pointer were restored too.
    assert!(update::<_, (u64,)>(&ic, id, "grow_heap", (4u64,)).unwrap().0 >= heap_before);
    assert_eq!(update::<_, (u64,)>(&ic, id, "inc", ()).unwrap().0, 1);
}

#[test]
fn memory_added_by_a_trapped_message_comes_back_zeroed() {
    let ic = Harness::new();
    let id = probe(&ic);
    rejected(update::<_, ()>(&ic, id, "set_and_trap", (1u64, ByteBuf::from(vec![0xffu8; 200_000]), 0u64)));
    // Growing again exposes the pages the trapped message wrote: they must read as zeros.
    update::<_, ()>(&ic, id, "write_stable", (300_000u64, ByteBuf::from(vec![1u8]))).unwrap();
    let (bytes,): (ByteBuf,) = query(&ic, id, "read_stable", (0u64, 200_000u64)).unwrap();
    assert!(bytes.iter().all(|&b| b == 0));
}

#[test]
fn an_await_commits_the_state_before_it() {
    let ic = Harness::new();
    let id = probe(&ic);
    let other = probe(&ic);
    let r = rejected(update::<_, ()>(&ic, id, "set_await_trap", (7u64, other)));
    assert!(r.reject_message.contains("trap after await"), "{}", r.reject_message);
    assert_eq!(counter(&ic, id), 7, "the write before the await stays; the one after is undone");
}

#[test]
fn a_trapping_callback_is_undone_and_its_cleanup_runs() {
    let ic = Harness::new();
    let id = probe(&ic);
    let other = probe(&ic);
    update::<_, ()>(&ic, id, "call_with_failing_callback", (other,)).unwrap();
    for _ in 0..3 {
        ic.tick();
    }
    assert_eq!(counter(&ic, id), 0, "the callback's write was rolled back");
    assert_eq!(query::<_, (u64,)>(&ic, id, "cleanups", ()).unwrap().0, 1);
    let lines: Vec<String> = ic.canister_logs(id).iter().map(|l| l.text()).collect();
    assert!(lines.iter().any(|l| l.contains("trap in reply callback")), "{lines:?}");
}
