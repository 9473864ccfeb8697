//! Saving an IC to a directory and loading it in another `Harness`: memories, globals,
//! timers, controllers, history, cycles and canister snapshots carry over, and the canisters
//! run on.

use crate::common::*;
use ic_harness::{CallMatcher, Harness};
use serde_bytes::ByteBuf;
use std::time::Duration;

#[test]
fn a_saved_ic_loads_and_runs_on() {
    let dir = tempfile::tempdir().unwrap();
    let (probe_id, kv_id, time, cycles) = {
        let ic = Harness::new();
        let probe = probe(&ic);
        let kv = kv(&ic, Some(KvArgs { timer_seconds: Some(10), trap: None }));
        for _ in 0..3 {
            update::<_, (u64,)>(&ic, probe, "inc", ()).unwrap();
        }
        update::<_, ()>(&ic, probe, "write_stable", (1000u64, ByteBuf::from(b"kept".to_vec()))).unwrap();
        for k in 0..20u64 {
            update::<_, (Option<Vec<u8>>,)>(&ic, kv, "put", (k, vec![k as u8; 50])).unwrap();
        }
        ic.set_controllers(probe, Some(controller()), vec![controller(), stranger()]).unwrap();
        ic.save(dir.path(), 10).unwrap();
        (probe, kv, ic.get_time(), ic.cycle_balance(probe))
    };
    let ic = Harness::load(dir.path()).unwrap();
    assert_eq!(ic.get_time(), time);
    assert_eq!(ic.cycle_balance(probe_id), cycles);
    assert_eq!(counter(&ic, probe_id), 3, "the heap came back");
    assert_eq!(update::<_, (u64,)>(&ic, probe_id, "inc", ()).unwrap().0, 4, "and runs on");
    assert_eq!(query::<_, (ByteBuf,)>(&ic, probe_id, "read_stable", (1000u64, 4u64)).unwrap().0.as_slice(), b"kept");
    assert_eq!(query::<_, (u64,)>(&ic, kv_id, "len", ()).unwrap().0, 20, "a StableBTreeMap came back");
    assert_eq!(ic.get_controllers(probe_id), vec![controller(), stranger()]);
    let info: (Vec<candid::Principal>, Option<ByteBuf>, u64) = update(&ic, probe_id, "info", (probe_id,)).unwrap();
    assert_eq!(info.2, 3, "the history came back");
    // The timer armed before the save still fires.
    ic.advance_time(Duration::from_secs(10));
    ic.tick();
    assert_eq!(query::<_, (u64,)>(&ic, kv_id, "ticks", ()).unwrap().0, 1);
    // New canisters get new ids.
    let another = probe(&ic);
    assert!(another != probe_id && another != kv_id);
}

#[test]
fn canister_snapshots_are_saved_and_load_after_the_ic_does() {
    let dir = tempfile::tempdir().unwrap();
    let (id, kept) = {
        let ic = Harness::new();
        let id = probe(&ic);
        update::<_, (u64,)>(&ic, id, "inc", ()).unwrap();
        update::<_, ()>(&ic, id, "write_stable", (0u64, ByteBuf::from(b"then".to_vec()))).unwrap();
        let gone = ic.take_canister_snapshot(id, Some(controller()), None).unwrap();
        ic.save(dir.path(), 10).unwrap();
        let kept = ic.take_canister_snapshot(id, Some(controller()), None).unwrap();
        ic.delete_canister_snapshot(id, Some(controller()), gone.id).unwrap();
        update::<_, (u64,)>(&ic, id, "inc", ()).unwrap();
        ic.save(dir.path(), 10).unwrap();
        (id, kept)
    };
    assert_eq!(std::fs::read_dir(dir.path().join("snapshots")).unwrap().count(), 3, "one snapshot's module and memories: the deleted one's went");
    let ic = Harness::load(dir.path()).unwrap();
    assert_eq!(ic.list_canister_snapshots(id, Some(controller())).unwrap(), vec![kept.clone()]);
    assert_eq!(counter(&ic, id), 2);
    ic.load_canister_snapshot(id, Some(controller()), kept.id).unwrap();
    assert_eq!(counter(&ic, id), 1, "the snapshot's heap");
    assert_eq!(query::<_, (ByteBuf,)>(&ic, id, "read_stable", (0u64, 4u64)).unwrap().0.as_slice(), b"then");
    let next = ic.take_canister_snapshot(id, Some(controller()), None).unwrap();
    assert_eq!(&next.id[..8], &2u64.to_be_bytes(), "numbers go on from the saved one");
}

#[test]
fn a_busy_ic_is_not_saved() {
    let dir = tempfile::tempdir().unwrap();
    let ic = Harness::new();
    let (a, b) = (probe(&ic), probe(&ic));
    ic.drop_responses(CallMatcher::to(b), Some(1));
    let arg = candid::encode_args((b, "inc".to_string(), ByteBuf::from(no_args()), Some(60u32), 0u128)).unwrap();
    ic.submit_call(a, controller(), "call", arg).unwrap();
    let err = ic.save(dir.path(), 3).unwrap_err();
    assert!(err.to_string().contains("in flight"), "{err}");
    assert!(!dir.path().join("world.msgpack").exists());
}
