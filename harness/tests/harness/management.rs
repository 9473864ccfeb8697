//! The management canister: canister_info, status, controllers, stop and start, and the
//! encoding of every reply.

use crate::common::*;
use candid::{CandidType, Decode, Encode, Nat, Principal};
use ic_harness::{ErrorCode, Harness, RejectCode};
use ic_management_canister_types::{
    CanisterIdRecord, CanisterInfoArgs, CanisterInfoResult, CanisterInstallMode, CanisterSettings, CanisterStatusResult, CanisterStatusType,
    CreateCanisterArgs, CreateCanisterResult, InstallCodeArgs, ProvisionalCreateCanisterWithCyclesArgs,
    ProvisionalCreateCanisterWithCyclesResult, ProvisionalTopUpCanisterArgs, RawRandResult, UninstallCodeArgs, UpdateSettingsArgs,
};
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;
use sha2::Digest;

#[test]
fn canister_info_gives_a_canister_the_controllers_and_module_hash() {
    let ic = Harness::new();
    let (a, b) = (probe(&ic), probe(&ic));
    let (controllers, hash, changes): (Vec<Principal>, Option<ByteBuf>, u64) = update(&ic, a, "info", (b,)).unwrap();
    assert_eq!(controllers, vec![controller()]);
    assert_eq!(hash.unwrap().into_vec(), sha2::Sha256::digest(probe_wasm()).to_vec());
    assert_eq!(changes, 2, "creation and installation");

    ic.set_controllers(b, Some(controller()), vec![controller(), stranger()]).unwrap();
    let (controllers, _, changes): (Vec<Principal>, Option<ByteBuf>, u64) = update(&ic, a, "info", (b,)).unwrap();
    assert_eq!(controllers, vec![controller(), stranger()]);
    assert_eq!(changes, 3);
}

#[test]
fn canister_info_is_refused_to_ingress() {
    let ic = Harness::new();
    let b = probe(&ic);
    let arg = Encode!(&CanisterInfoArgs { canister_id: b, num_requested_changes: None }).unwrap();
    let r = ic.update_call(Principal::management_canister(), controller(), "canister_info", arg).unwrap_err();
    assert_eq!((r.reject_code, r.error_code), (RejectCode::CanisterReject, ErrorCode::CanisterRejectedMessage));
    assert_eq!(r.reject_message, "Only canisters can call ic00 method canister_info");
}

#[test]
fn only_controllers_see_status_and_change_settings() {
    let ic = Harness::new();
    let id = probe(&ic);
    assert_eq!(ic.canister_status(id, Some(stranger())).unwrap_err().error_code, ErrorCode::CanisterInvalidController);
    assert_eq!(ic.set_controllers(id, Some(stranger()), vec![stranger()]).unwrap_err().error_code, ErrorCode::CanisterInvalidController);
    let status = ic.canister_status(id, Some(controller())).unwrap();
    assert_eq!(status.status, CanisterStatusType::Running);
    assert_eq!(status.settings.controllers, vec![controller()]);
    assert_eq!(status.module_hash.unwrap(), sha2::Sha256::digest(probe_wasm()).to_vec());
}

#[test]
fn a_stopped_canister_refuses_calls_until_started() {
    let ic = Harness::new();
    let id = probe(&ic);
    ic.stop_canister(id, Some(controller())).unwrap();
    assert_eq!(ic.canister_status(id, Some(controller())).unwrap().status, CanisterStatusType::Stopped);
    let r = rejected(update::<_, (u64,)>(&ic, id, "inc", ()));
    assert_eq!(r.error_code, ErrorCode::CanisterStopped);
    assert_eq!(r.reject_message, format!("Canister {id} is stopped"));
    ic.start_canister(id, Some(controller())).unwrap();
    assert_eq!(update::<_, (u64,)>(&ic, id, "inc", ()).unwrap().0, 1);
}

#[test]
fn stopping_waits_for_open_calls() {
    let ic = Harness::new();
    let (a, b) = (probe(&ic), probe(&ic));
    // `a` has a call in flight to `b` when the stop request arrives.
    let arg = candid::encode_args((b, "inc".to_string(), ByteBuf::from(no_args()), None::<u32>, 0u128)).unwrap();
    let call = ic.submit_call(a, controller(), "call", arg).unwrap();
    let stop = ic
        .submit_call(Principal::management_canister(), controller(), "stop_canister", Encode!(&CanisterIdRecord { canister_id: a }).unwrap())
        .unwrap();
    ic.await_call(stop).unwrap();
    assert!(ic.ingress_status(call).expect("the open call completed first").is_ok());
    assert_eq!(ic.canister_status(a, Some(controller())).unwrap().status, CanisterStatusType::Stopped);
}

#[test]
fn a_canister_creates_and_installs_another() {
    let ic = Harness::new();
    let parent = probe(&ic);
    let before = ic.cycle_balance(parent);
    let extra = 2_000_000_000_000u128;
    let (child,): (Principal,) = update(&ic, parent, "spawn", (ByteBuf::from(probe_wasm()), extra)).unwrap();
    assert_eq!(ic.get_controllers(child), vec![parent], "the creator controls the new canister");
    assert_eq!(update::<_, (u64,)>(&ic, child, "inc", ()).unwrap().0, 1);
    let spent = before - ic.cycle_balance(parent);
    assert!(spent > 500_000_000_000 + extra, "the creation fee and the new canister's cycles: {spent}");
    assert!(ic.cycle_balance(child) <= extra);
    let (_, hash, changes): (Vec<Principal>, Option<ByteBuf>, u64) = update(&ic, parent, "info", (child,)).unwrap();
    assert_eq!(hash.unwrap().into_vec(), sha2::Sha256::digest(probe_wasm()).to_vec());
    assert_eq!(changes, 2);
}

/// The reply of a method whose result is `()`: a message with no value.
const NO_VALUE: &[u8] = b"DIDL\x00\x00";

/// Checks that `reply` is a `T` encoded as the IC encodes it: decoded as the management
/// canister's result type and encoded again, it gives the same bytes.
fn assert_encodes_as<T: CandidType + DeserializeOwned>(method: &str, reply: &[u8]) {
    let value = Decode!(reply, T).unwrap_or_else(|e| panic!("{method}: {e}"));
    assert_eq!(Encode!(&value).unwrap(), reply, "{method}");
}

#[test]
fn every_management_reply_is_encoded_as_the_ic_encodes_it() {
    let ic = Harness::new();
    let management = Principal::management_canister();
    let call = |method: &str, arg: Vec<u8>| ic.update_call(management, controller(), method, arg).unwrap_or_else(|r| panic!("{method}: {r}"));
    let settings = CanisterSettings { controllers: Some(vec![controller()]), ..Default::default() };
    let create = ProvisionalCreateCanisterWithCyclesArgs { amount: None, settings: Some(settings), specified_id: None, sender_canister_version: None };
    let reply = call("provisional_create_canister_with_cycles", Encode!(&create).unwrap());
    assert_encodes_as::<ProvisionalCreateCanisterWithCyclesResult>("provisional_create_canister_with_cycles", &reply);
    let id = Decode!(&reply, CanisterIdRecord).unwrap().canister_id;
    let record = Encode!(&CanisterIdRecord { canister_id: id }).unwrap();
    let update = UpdateSettingsArgs {
        canister_id: id,
        settings: CanisterSettings { freezing_threshold: Some(Nat::from(1_000u64)), ..Default::default() },
        sender_canister_version: None,
    };
    let install = InstallCodeArgs { mode: CanisterInstallMode::Install, canister_id: id, wasm_module: probe_wasm(), arg: no_args(), sender_canister_version: None };
    let top_up = ProvisionalTopUpCanisterArgs { canister_id: id, amount: Nat::from(1_000u64) };
    for (method, arg) in [
        ("update_settings", Encode!(&update).unwrap()),
        ("install_code", Encode!(&install).unwrap()),
        ("provisional_top_up_canister", Encode!(&top_up).unwrap()),
        ("stop_canister", record.clone()),
        ("start_canister", record.clone()),
        ("uninstall_code", Encode!(&UninstallCodeArgs { canister_id: id, sender_canister_version: None }).unwrap()),
        ("stop_canister", record.clone()),
    ] {
        assert_eq!(call(method, arg), NO_VALUE, "{method}");
    }
    assert_encodes_as::<CanisterStatusResult>("canister_status", &call("canister_status", record.clone()));
    assert_eq!(call("delete_canister", record), NO_VALUE, "delete_canister");

    // The methods only canisters may call.
    let caller = probe(&ic);
    let via = |method: &str, arg: Vec<u8>, cycles: u128| match call_via(&ic, caller, management, method, arg, None, cycles) {
        CallOutcome::Reply(bytes) => bytes.into_vec(),
        other => panic!("{method}: {other:?}"),
    };
    let create = CreateCanisterArgs { settings: None, sender_canister_version: None };
    let reply = via("create_canister", Encode!(&create).unwrap(), 1_000_000_000_000);
    assert_encodes_as::<CreateCanisterResult>("create_canister", &reply);
    let child = Decode!(&reply, CanisterIdRecord).unwrap().canister_id;
    assert_eq!(via("deposit_cycles", Encode!(&CanisterIdRecord { canister_id: child }).unwrap(), 1_000), NO_VALUE, "deposit_cycles");
    assert_encodes_as::<RawRandResult>("raw_rand", &via("raw_rand", no_args(), 0));
    let info = CanisterInfoArgs { canister_id: child, num_requested_changes: Some(5) };
    assert_encodes_as::<CanisterInfoResult>("canister_info", &via("canister_info", Encode!(&info).unwrap(), 0));
}
