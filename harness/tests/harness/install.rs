//! Installing: a module that is not wasm, or an init that traps, fails the install with the
//! IC's error code and leaves the canister empty, so a module that works installs after it.

use crate::common::*;
use ic_harness::{ErrorCode, Harness, IcBackend};

const NOT_WASM: &[u8] = b"this is not a wasm module";

fn trapping_init() -> Vec<u8> {
    candid::encode_one(Some(KvArgs { timer_seconds: None, trap: Some(true) })).unwrap()
}

/// Both failures on one canister, then an install that works: in `Install` mode the IC takes
/// only an empty canister, so it succeeding shows the failures left nothing behind.
fn failed_installs_leave_the_canister_empty(ic: &impl IcBackend) {
    let id = ic.create_canister_with_settings(Some(controller()), None);
    let r = ic.try_install_canister(id, NOT_WASM.to_vec(), no_args(), Some(controller())).unwrap_err();
    assert_eq!(r.error_code, ErrorCode::CanisterInvalidWasm, "{}", r.reject_message);
    let r = ic.try_install_canister(id, kv_wasm(), trapping_init(), Some(controller())).unwrap_err();
    assert_eq!(r.error_code, ErrorCode::CanisterCalledTrap, "{}", r.reject_message);
    assert!(r.reject_message.contains("asked to trap"), "{}", r.reject_message);
    ic.try_install_canister(id, kv_wasm(), candid::encode_one(None::<KvArgs>).unwrap(), Some(controller())).unwrap();
    assert_eq!(query::<_, (u64,)>(ic, id, "len", ()).unwrap().0, 0);
}

#[test]
fn a_failed_install_leaves_no_module_and_no_memory_and_logs_the_trap() {
    let ic = Harness::new();
    let id = ic.create_canister_with_settings(Some(controller()), None);
    let r = ic.try_install_canister(id, NOT_WASM.to_vec(), no_args(), Some(controller())).unwrap_err();
    assert!(r.reject_message.contains("Wasm module is not valid"), "{}", r.reject_message);
    ic.try_install_canister(id, kv_wasm(), trapping_init(), Some(controller())).unwrap_err();
    let status = ic.canister_status(id, Some(controller())).unwrap();
    assert_eq!(status.module_hash, None, "no module");
    assert!(ic.get_stable_memory(id).is_empty(), "no stable memory");
    assert!(ic.canister_logs(id).iter().any(|l| l.text().contains("asked to trap")), "the trap is in the log");
}

#[test]
fn failed_installs_leave_the_canister_empty_on_the_harness() {
    failed_installs_leave_the_canister_empty(&Harness::new());
}

#[cfg(feature = "pocket-ic")]
#[test]
fn failed_installs_leave_the_canister_empty_on_pocket_ic() {
    if std::env::var_os("POCKET_IC_BIN").is_none() {
        eprintln!("POCKET_IC_BIN is not set: the PocketIC run is skipped");
        return;
    }
    failed_installs_leave_the_canister_empty(&pocket_ic::PocketIc::new());
}

#[test]
#[should_panic(expected = "install_canister failed")]
fn install_canister_panics_on_what_try_install_canister_returns() {
    let ic = Harness::new();
    let id = ic.create_canister_with_settings(Some(controller()), None);
    ic.install_canister(id, NOT_WASM.to_vec(), no_args(), Some(controller()));
}
