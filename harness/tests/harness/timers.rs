//! The global timer through ic-cdk-timers: one-shot and interval timers fire as time advances,
//! and an upgrade clears them until the new code arms them again. An advance walks the clock
//! through every due timer and heartbeat in time order, with rounds only where something is
//! due, and stops at its round limit.

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

const HOUR: Duration = Duration::from_secs(3600);
const SECOND_NANOS: u64 = 1_000_000_000;

fn timer_times(ic: &Harness, id: candid::Principal) -> Vec<u64> {
    query::<_, (Vec<u64>,)>(ic, id, "timer_times", ()).unwrap().0
}

fn now(ic: &Harness) -> u64 {
    ic.get_time().as_nanos_since_unix_epoch()
}

#[test]
fn an_advance_fires_an_hourly_timer_at_each_hour() {
    let ic = Harness::new();
    let id = probe(&ic);
    update::<_, ()>(&ic, id, "start_interval", (3600u64,)).unwrap();
    let armed_at = now(&ic);
    let report = ic.advance(6 * HOUR).unwrap();
    let expected: Vec<u64> = (1..=6).map(|hour| armed_at + hour * 3600 * SECOND_NANOS).collect();
    assert_eq!(timer_times(&ic, id), expected, "six firings, each seeing its own hour");
    assert_eq!(report.rounds, 6, "a round only where the timer is due");
    assert_eq!(now(&ic), armed_at + 6 * 3600 * SECOND_NANOS);
}

#[test]
fn an_hour_of_a_five_second_timer_is_720_firings_in_720_rounds() {
    let ic = Harness::new();
    let id = probe(&ic);
    update::<_, ()>(&ic, id, "start_interval", (5u64,)).unwrap();
    let armed_at = now(&ic);
    let report = ic.advance(HOUR).unwrap();
    let times = timer_times(&ic, id);
    assert_eq!(times.len(), 720);
    assert!(times.iter().enumerate().all(|(i, &t)| t == armed_at + 5 * (i as u64 + 1) * SECOND_NANOS));
    assert_eq!(report.rounds, 720, "not 3,600 rounds a second apart");
    assert!(report.executions >= 720, "{report:?}");
}

#[test]
fn a_heartbeat_runs_once_per_round_interval() {
    let ic = Harness::new();
    let id = install(&ic, heartbeat_wasm(), no_args());
    let beats = |ic: &Harness| query::<_, (Vec<u64>,)>(ic, id, "beats", ()).unwrap().0;
    let start = now(&ic);
    let report = ic.advance(Duration::from_secs(10)).unwrap();
    let expected: Vec<u64> = (1..=10).map(|s| start + s * SECOND_NANOS).collect();
    assert_eq!(beats(&ic), expected);
    assert_eq!(report.rounds, 10);

    let slower = Harness::builder().with_round_interval(Duration::from_secs(2)).build();
    let id = install(&slower, heartbeat_wasm(), no_args());
    slower.advance(Duration::from_secs(10)).unwrap();
    assert_eq!(query::<_, (Vec<u64>,)>(&slower, id, "beats", ()).unwrap().0.len(), 5, "one per 2 s round");
}

#[test]
fn the_messages_a_timer_sends_complete_before_the_next_timer() {
    #[derive(candid::CandidType, candid::Deserialize, Debug)]
    struct Relayed {
        fired_at: u64,
        answered_before: u64,
        answer: Option<u64>,
        answered_at: Option<u64>,
    }
    let ic = Harness::new();
    let relay = probe(&ic);
    let target = probe(&ic);
    update::<_, ()>(&ic, relay, "start_relay", (10u64, target)).unwrap();
    let armed_at = now(&ic);
    ic.advance(Duration::from_secs(60)).unwrap();
    let relayed = query::<_, (Vec<Relayed>,)>(&ic, relay, "relayed", ()).unwrap().0;
    assert_eq!(relayed.len(), 6);
    for (k, r) in relayed.iter().enumerate() {
        let k = k as u64;
        assert_eq!(r.fired_at, armed_at + 10 * (k + 1) * SECOND_NANOS, "{r:?}");
        assert_eq!(r.answered_before, k, "every earlier call was answered before this firing: {r:?}");
        assert_eq!(r.answer, Some(k + 1), "{r:?}");
        assert_eq!(r.answered_at, Some(r.fired_at), "answered in the round the timer fired: {r:?}");
    }
    assert_eq!(counter(&ic, target), 6);
}

#[test]
fn an_advance_with_nothing_due_runs_no_round_and_advance_rounds_runs_every_round() {
    let ic = Harness::new();
    let id = probe(&ic);
    let start = now(&ic);
    let report = ic.advance(HOUR).unwrap();
    assert_eq!((report.rounds, report.executions), (0, 0));
    assert_eq!(now(&ic), start + 3600 * SECOND_NANOS);

    update::<_, ()>(&ic, id, "start_interval", (5u64,)).unwrap();
    let report = ic.advance_rounds(Duration::from_millis(30_500)).unwrap();
    assert_eq!(report.rounds, 30, "a round every second, due or not");
    assert_eq!(fires(&ic, id), 6);
}

#[test]
fn a_timer_re_armed_at_once_fires_once_per_round_and_the_round_limit_stops_it() {
    let ic = Harness::new();
    let id = probe(&ic);
    update::<_, ()>(&ic, id, "rearm_forever", ()).unwrap();
    let report = ic.advance(Duration::from_secs(60)).unwrap();
    assert_eq!((report.rounds, fires(&ic, id)), (60, 60), "once per round interval, not without end");

    let ic = Harness::builder().with_max_rounds_per_advance(10).build();
    let id = probe(&ic);
    update::<_, ()>(&ic, id, "rearm_forever", ()).unwrap();
    let start = now(&ic);
    let err = ic.advance(Duration::from_secs(60)).unwrap_err();
    let ic_harness::AdvanceError::TooManyRounds { limit, so_far, stopped_at_nanos, end_nanos } = err.clone();
    assert_eq!((limit, so_far.rounds), (10, 10));
    assert_eq!((stopped_at_nanos, end_nanos), (start + 10 * SECOND_NANOS, start + 60 * SECOND_NANOS));
    assert_eq!(now(&ic), stopped_at_nanos, "the clock stays where the last round left it");
    assert!(err.to_string().contains("re-armed at once"), "{err}");
    assert_eq!(fires(&ic, id), 10);
    assert!(ic.advance_rounds(Duration::from_secs(11)).is_err(), "refused up front");
    assert_eq!(now(&ic), stopped_at_nanos);
}

#[test]
fn an_advance_charges_storage_as_advance_time_does() {
    let walked = Harness::new();
    let jumped = Harness::new();
    let (a, b) = (probe(&walked), probe(&jumped));
    update::<_, (u64,)>(&walked, a, "grow_heap", (8u64,)).unwrap();
    update::<_, (u64,)>(&jumped, b, "grow_heap", (8u64,)).unwrap();
    let before = walked.cycle_balance(a);
    assert_eq!(before, jumped.cycle_balance(b));
    walked.advance(24 * HOUR).unwrap();
    jumped.advance_time(24 * HOUR);
    assert!(walked.cycle_balance(a) < before, "storage was charged");
    assert_eq!(walked.cycle_balance(a), jumped.cycle_balance(b));
}
