//! Upgrades: stable memory stays, the heap goes, and a trap in either hook leaves the canister
//! exactly as it was.

use crate::common::*;
use candid::Principal;
use ic_harness::{ErrorCode, Harness};

fn fill(ic: &Harness, id: Principal, n: u64) {
    for k in 0..n {
        update::<_, (Option<Vec<u8>>,)>(ic, id, "put", (k, vec![k as u8; 100])).unwrap();
    }
}

fn upgrade(ic: &Harness, id: Principal, args: Option<KvArgs>) -> Result<(), ic_harness::RejectResponse> {
    ic.upgrade_canister(id, kv_wasm(), candid::encode_one(args).unwrap(), Some(controller()))
}

fn module_hash(ic: &Harness, id: Principal) -> Option<Vec<u8>> {
    ic.canister_status(id, Some(controller())).unwrap().module_hash
}

#[test]
fn a_stable_btreemap_survives_an_upgrade_and_the_heap_does_not() {
    let ic = Harness::new();
    let id = kv(&ic, None);
    fill(&ic, id, 50);
    update::<_, ()>(&ic, id, "set_heap_value", (99u64,)).unwrap();
    let version = ic.canister_status(id, Some(controller())).unwrap().version;
    upgrade(&ic, id, None).unwrap();
    assert_eq!(query::<_, (u64,)>(&ic, id, "len", ()).unwrap().0, 50);
    assert_eq!(query::<_, (Option<Vec<u8>>,)>(&ic, id, "get", (7u64,)).unwrap().0, Some(vec![7u8; 100]));
    assert_eq!(query::<_, (u64,)>(&ic, id, "heap_value", ()).unwrap().0, 0);
    assert_eq!(ic.canister_status(id, Some(controller())).unwrap().version, version + 1);
}

#[test]
fn a_trap_in_pre_upgrade_leaves_the_canister_as_it_was() {
    let ic = Harness::new();
    let id = kv(&ic, None);
    fill(&ic, id, 10);
    update::<_, (Option<Vec<u8>>,)>(&ic, id, "put", (u64::MAX, vec![1u8])).unwrap();
    update::<_, ()>(&ic, id, "set_heap_value", (5u64,)).unwrap();
    let stable = ic.get_stable_memory(id);
    let hash = module_hash(&ic, id);
    let r = upgrade(&ic, id, None).unwrap_err();
    assert_eq!(r.error_code, ErrorCode::CanisterCalledTrap);
    assert!(r.reject_message.contains("pre_upgrade asked to trap"), "{}", r.reject_message);
    assert_eq!(query::<_, (u64,)>(&ic, id, "heap_value", ()).unwrap().0, 5, "the old instance runs on");
    assert_eq!(ic.get_stable_memory(id), stable);
    assert_eq!(module_hash(&ic, id), hash);
}

#[test]
fn a_trap_in_post_upgrade_leaves_the_canister_as_it_was() {
    let ic = Harness::new();
    let id = kv(&ic, Some(KvArgs { timer_seconds: Some(5), trap: None }));
    fill(&ic, id, 10);
    update::<_, ()>(&ic, id, "set_heap_value", (5u64,)).unwrap();
    let stable = ic.get_stable_memory(id);
    let r = upgrade(&ic, id, Some(KvArgs { timer_seconds: None, trap: Some(true) })).unwrap_err();
    assert!(r.reject_message.contains("asked to trap"), "{}", r.reject_message);
    assert_eq!(query::<_, (u64,)>(&ic, id, "heap_value", ()).unwrap().0, 5);
    assert_eq!(ic.get_stable_memory(id), stable);
    // The old timer is still armed.
    ic.advance_time(std::time::Duration::from_secs(5));
    ic.tick();
    assert_eq!(query::<_, (u64,)>(&ic, id, "ticks", ()).unwrap().0, 1);
}

#[test]
fn raw_stable_memory_is_kept_byte_for_byte() {
    let ic = Harness::new();
    let id = probe(&ic);
    update::<_, ()>(&ic, id, "fill_stable", (0u64, 300_000u64, 3u8)).unwrap();
    let before = ic.get_stable_memory(id);
    ic.upgrade_canister(id, probe_wasm(), no_args(), Some(controller())).unwrap();
    assert_eq!(ic.get_stable_memory(id), before);
    assert_eq!(counter(&ic, id), 0);
}

#[test]
fn only_a_controller_upgrades() {
    let ic = Harness::new();
    let id = kv(&ic, None);
    let r = ic.upgrade_canister(id, kv_wasm(), candid::encode_one(None::<KvArgs>).unwrap(), Some(stranger())).unwrap_err();
    assert_eq!(r.error_code, ErrorCode::CanisterInvalidController);
    assert!(r.reject_message.starts_with(&format!("Only the controllers of the canister {id} can control it.")), "{}", r.reject_message);
}
