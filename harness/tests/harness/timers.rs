//! The global timer through ic-cdk-timers: one-shot and interval timers fire as time advances,
//! and an upgrade clears them until the new code arms them again.

use crate::common::*;
use ic_harness::Harness;
use std::time::Duration;

fn fires(ic: &Harness, id: candid::Principal) -> u64 {
    query::<_, (u64,)>(ic, id, "timer_fires", ()).unwrap().0
}

#[test]
fn a_one_shot_timer_fires_once_when_due() {
    let ic = Harness::new();
    let id = probe(&ic);
    update::<_, ()>(&ic, id, "start_timer", (10u64,)).unwrap();
    ic.advance_time(Duration::from_secs(5));
    ic.tick();
    assert_eq!(fires(&ic, id), 0);
    ic.advance_time(Duration::from_secs(6));
    ic.tick();
    assert_eq!(fires(&ic, id), 1);
    ic.advance_time(Duration::from_secs(60));
    ic.tick();
    assert_eq!(fires(&ic, id), 1);
}

#[test]
fn an_interval_timer_fires_every_interval() {
    let ic = Harness::new();
    let id = probe(&ic);
    update::<_, ()>(&ic, id, "start_interval", (10u64,)).unwrap();
    for expected in 1..=3 {
        ic.advance_time(Duration::from_secs(10));
        ic.tick();
        assert_eq!(fires(&ic, id), expected);
    }
}

#[test]
fn timers_are_gone_after_an_upgrade_until_re_armed() {
    let ic = Harness::new();
    let id = kv(&ic, Some(KvArgs { timer_seconds: Some(5), trap: None }));
    let ticks = |ic: &Harness| query::<_, (u64,)>(ic, id, "ticks", ()).unwrap().0;
    for _ in 0..2 {
        ic.advance_time(Duration::from_secs(5));
        ic.tick();
    }
    assert_eq!(ticks(&ic), 2);

    ic.upgrade_canister(id, kv_wasm(), candid::encode_one(None::<KvArgs>).unwrap(), Some(controller())).unwrap();
    for _ in 0..3 {
        ic.advance_time(Duration::from_secs(5));
        ic.tick();
    }
    assert_eq!(ticks(&ic), 0, "no timer survived the upgrade");

    let rearm = Some(KvArgs { timer_seconds: Some(5), trap: None });
    ic.upgrade_canister(id, kv_wasm(), candid::encode_one(rearm).unwrap(), Some(controller())).unwrap();
    ic.advance_time(Duration::from_secs(5));
    ic.tick();
    assert_eq!(ticks(&ic), 1, "post_upgrade armed it again");
}
