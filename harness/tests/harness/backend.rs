//! One scenario written against `IcBackend`, run on the harness, and on PocketIC when built
//! with the `pocket-ic` feature and `POCKET_IC_BIN` names a server binary.

use crate::common::*;
use ic_harness::IcBackend;

fn counter_upgrade_scenario(ic: &impl IcBackend) {
    let id = kv(ic, None);
    for k in 0..5u64 {
        update::<_, (Option<Vec<u8>>,)>(ic, id, "put", (k, vec![1u8; 10])).unwrap();
    }
    ic.upgrade_canister(id, kv_wasm(), candid::encode_one(None::<KvArgs>).unwrap(), Some(controller())).unwrap();
    assert_eq!(query::<_, (u64,)>(ic, id, "len", ()).unwrap().0, 5);
    let probe = probe(ic);
    assert_eq!(update::<_, (u64,)>(ic, probe, "inc", ()).unwrap().0, 1);
    ic.stop_canister(probe, Some(controller())).unwrap();
    assert!(update::<_, (u64,)>(ic, probe, "inc", ()).is_err());
    ic.start_canister(probe, Some(controller())).unwrap();
    assert_eq!(update::<_, (u64,)>(ic, probe, "inc", ()).unwrap().0, 2);
}

#[test]
fn scenario_on_the_harness() {
    counter_upgrade_scenario(&ic_harness::Harness::new());
}

#[cfg(feature = "pocket-ic")]
#[test]
fn scenario_on_pocket_ic() {
    if std::env::var_os("POCKET_IC_BIN").is_none() {
        eprintln!("POCKET_IC_BIN is not set: the PocketIC run is skipped");
        return;
    }
    counter_upgrade_scenario(&pocket_ic::PocketIc::new());
}
