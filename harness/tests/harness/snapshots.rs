//! Native canister snapshots: take, load, list, delete, read out and upload, with the IC's
//! access rules, limit, ids, errors and charges.

use crate::common::*;
use candid::{CandidType, Decode, Encode, Principal};
use ic_harness::{ErrorCode, ExecutedEntry, Harness, IcBackend, RejectResponse, SubnetId};
use ic_management_canister_types::{
    CanisterSettings, CanisterTimer, ReadCanisterSnapshotDataArgs, ReadCanisterSnapshotDataResult, ReadCanisterSnapshotMetadataArgs,
    ReadCanisterSnapshotMetadataResult, Snapshot, SnapshotDataKind, SnapshotDataOffset, SnapshotMetadataGlobal, SnapshotSource, SnapshotVisibility,
    UploadCanisterSnapshotDataArgs, UploadCanisterSnapshotMetadataArgs, UploadCanisterSnapshotMetadataResult,
};
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;

fn take(ic: &Harness, canister: Principal, replace: Option<&Snapshot>) -> Result<Snapshot, RejectResponse> {
    ic.take_canister_snapshot(canister, Some(controller()), replace.map(|s| s.id.clone()))
}

fn load(ic: &Harness, sender: Principal, canister: Principal, snapshot: &[u8]) -> Result<(), RejectResponse> {
    ic.load_canister_snapshot(canister, Some(sender), snapshot.to_vec())
}

fn list(ic: &Harness, sender: Principal, canister: Principal) -> Result<Vec<Snapshot>, RejectResponse> {
    ic.list_canister_snapshots(canister, Some(sender))
}

fn delete(ic: &Harness, canister: Principal, snapshot: &[u8]) -> Result<(), RejectResponse> {
    ic.delete_canister_snapshot(canister, Some(controller()), snapshot.to_vec())
}

fn write_stable(ic: &Harness, canister: Principal, data: &[u8]) {
    update::<_, ()>(ic, canister, "write_stable", (0u64, ByteBuf::from(data.to_vec()))).unwrap();
}

fn read_stable(ic: &Harness, canister: Principal, len: u64) -> Vec<u8> {
    query::<_, (ByteBuf,)>(ic, canister, "read_stable", (0u64, len)).unwrap().0.into_vec()
}

fn module_hash(ic: &Harness, canister: Principal) -> Option<Vec<u8>> {
    ic.canister_status(canister, Some(controller())).unwrap().module_hash
}

#[test]
fn a_loaded_snapshot_puts_back_the_heap_the_stable_memory_and_the_module() {
    let ic = Harness::new();
    let id = probe(&ic);
    for _ in 0..3 {
        update::<_, (u64,)>(&ic, id, "inc", ()).unwrap();
    }
    write_stable(&ic, id, b"before");
    let before = module_hash(&ic, id);
    let cycles = ic.cycle_balance(id);
    let snapshot = take(&ic, id, None).unwrap();
    assert_eq!((snapshot.id.len(), &snapshot.id[..8], &snapshot.id[8..]), (18, &[0u8; 8][..], id.as_slice()), "number 0, then the canister");
    assert_eq!(snapshot.taken_at_timestamp, ic.time_nanos());
    let stable = query::<_, (u64,)>(&ic, id, "stable_pages", ()).unwrap().0 * 65536;
    assert!(snapshot.total_size >= stable + probe_wasm().len() as u64, "{} holds the stable memory and the module", snapshot.total_size);
    assert!(cycles - ic.cycle_balance(id) >= 2_000_000_000 + u128::from(snapshot.total_size), "2 B instructions and one a byte");
    assert_eq!(list(&ic, controller(), id).unwrap(), vec![snapshot.clone()]);
    let status = ic.canister_status(id, Some(controller())).unwrap();
    let (memory, metrics) = (status.memory_size, status.memory_metrics);
    assert_eq!(metrics.snapshots_size, candid::Nat::from(snapshot.total_size), "a snapshot is the canister's memory, billed to it");
    assert_eq!(memory, metrics.wasm_memory_size + metrics.stable_memory_size + metrics.snapshots_size);

    // Changed since: the heap, the stable memory and the module.
    update::<_, (u64,)>(&ic, id, "inc", ()).unwrap();
    write_stable(&ic, id, b"after!");
    ic.upgrade_canister(id, kv_wasm(), candid::encode_one(None::<KvArgs>).unwrap(), Some(controller())).unwrap();
    assert_ne!(module_hash(&ic, id), before);
    load(&ic, controller(), id, &snapshot.id).unwrap();
    assert_eq!((module_hash(&ic, id), read_stable(&ic, id, 6)), (before.clone(), b"before".to_vec()));
    assert_eq!(update::<_, (u64,)>(&ic, id, "inc", ()).unwrap().0, 4, "the counter as it was, then one more");
    // The load is in the canister's history, and the snapshot stays.
    let watcher = probe(&ic);
    let (_, hash, changes): (Vec<Principal>, Option<ByteBuf>, u64) = update(&ic, watcher, "info", (id,)).unwrap();
    assert_eq!((hash.map(|h| h.into_vec()), changes), (before, 4), "creation, install, upgrade and load");
    assert_eq!(list(&ic, controller(), id).unwrap().len(), 1);
}

#[test]
fn only_controllers_take_load_and_delete_and_the_snapshot_visibility_says_who_lists() {
    let ic = Harness::new();
    let id = probe(&ic);
    let snapshot = take(&ic, id, None).unwrap();
    let refused = ic.take_canister_snapshot(id, Some(stranger()), None).unwrap_err();
    assert_eq!(refused.error_code, ErrorCode::CanisterInvalidController);
    assert_eq!(load(&ic, stranger(), id, &snapshot.id).unwrap_err().error_code, ErrorCode::CanisterInvalidController);
    let refused = ic.delete_canister_snapshot(id, Some(stranger()), snapshot.id.clone()).unwrap_err();
    assert_eq!(refused.error_code, ErrorCode::CanisterInvalidController);
    assert_eq!(list(&ic, stranger(), id).unwrap_err().error_code, ErrorCode::CanisterInvalidController);
    let settings = CanisterSettings { snapshot_visibility: Some(SnapshotVisibility::AllowedViewers(vec![stranger()])), ..Default::default() };
    ic.update_canister_settings(id, Some(controller()), settings).unwrap();
    assert_eq!(list(&ic, stranger(), id).unwrap(), vec![snapshot]);
    assert_eq!(load(&ic, stranger(), id, &list(&ic, controller(), id).unwrap()[0].id).unwrap_err().error_code, ErrorCode::CanisterInvalidController);
}

#[test]
fn a_canister_holds_ten_snapshots_and_a_take_may_replace_one() {
    let ic = Harness::new();
    let id = probe(&ic);
    let taken: Vec<Snapshot> = (0..10).map(|_| take(&ic, id, None).unwrap()).collect();
    let full = take(&ic, id, None).unwrap_err();
    assert_eq!(full.error_code, ErrorCode::CanisterRejectedMessage);
    assert!(full.reject_message.starts_with(&format!("Canister {id} has reached the maximum number of snapshots allowed: 10.")), "{}", full.reject_message);
    let replacing = take(&ic, id, Some(&taken[3])).unwrap();
    assert_eq!(&replacing.id[..8], &10u64.to_be_bytes(), "a new number, never one used before");
    let listed: Vec<Vec<u8>> = list(&ic, controller(), id).unwrap().into_iter().map(|s| s.id).collect();
    let expected: Vec<Vec<u8>> = taken.iter().filter(|s| s.id != taken[3].id).map(|s| s.id.clone()).chain([replacing.id.clone()]).collect();
    assert_eq!(listed, expected, "in order of their numbers");
    delete(&ic, id, &taken[0].id).unwrap();
    assert_eq!(list(&ic, controller(), id).unwrap().len(), 9);
    take(&ic, id, None).unwrap();
}

#[test]
fn unknown_foreign_and_malformed_snapshot_ids_are_refused_as_the_ic_refuses_them() {
    let ic = Harness::new();
    let (a, b) = (probe(&ic), probe(&ic));
    let of_b = take(&ic, b, None).unwrap();
    let mut unknown = of_b.id.clone();
    unknown[7] = 9;
    let missing = delete(&ic, b, &unknown).unwrap_err();
    assert_eq!(missing.error_code, ErrorCode::CanisterSnapshotNotFound);
    assert!(missing.reject_message.starts_with(&format!("Could not find the snapshot ID {b}-9 for canister {b}.")), "{}", missing.reject_message);
    let foreign = delete(&ic, a, &of_b.id).unwrap_err();
    assert_eq!(foreign.error_code, ErrorCode::CanisterRejectedMessage);
    assert!(foreign.reject_message.starts_with(&format!("The snapshot {b}-0 does not belong to canister {a}.")), "{}", foreign.reject_message);
    assert_eq!(take(&ic, a, Some(&of_b)).unwrap_err().error_code, ErrorCode::CanisterRejectedMessage, "nor is it replaced");
    let malformed = delete(&ic, b, &[1, 2, 3]).unwrap_err();
    assert_eq!(malformed.error_code, ErrorCode::InvalidManagementPayload);
    assert!(malformed.reject_message.contains("Invalid snapshot ID length: provided 3"), "{}", malformed.reject_message);
    assert_eq!(list(&ic, controller(), b).unwrap(), vec![of_b], "nothing changed");
    let empty = ic.create_canister_with_settings(Some(controller()), None);
    let nothing = take(&ic, empty, None).unwrap_err();
    assert_eq!((nothing.error_code, nothing.reject_message), (ErrorCode::CanisterRejectedMessage, format!("Failed to create snapshot for empty canister {empty}:")));
}

#[test]
fn a_snapshot_loads_onto_another_canister_of_its_subnet_whose_caller_controls_both() {
    let ic = Harness::builder().with_subnets(2).build();
    let on = |subnet| {
        let id = ic.create_canister_on_subnet(Some(controller()), None, SubnetId(subnet));
        ic.install_canister(id, probe_wasm(), candid::encode_args(()).unwrap(), Some(controller()));
        id
    };
    let (a, b, far) = (on(0), on(0), on(1));
    for _ in 0..2 {
        update::<_, (u64,)>(&ic, a, "inc", ()).unwrap();
    }
    let snapshot = take(&ic, a, None).unwrap();
    load(&ic, controller(), b, &snapshot.id).unwrap();
    assert_eq!(query::<_, (u64,)>(&ic, b, "get", ()).unwrap().0, 2, "b now holds a's state");
    let across = load(&ic, controller(), far, &snapshot.id).unwrap_err();
    assert_eq!(across.error_code, ErrorCode::CanisterSnapshotNotFound, "a snapshot is kept on its subnet");
    // A caller controlling b but not a may not load a's snapshot onto b.
    ic.set_controllers(b, Some(controller()), vec![controller(), stranger()]).unwrap();
    let foreign = load(&ic, stranger(), b, &snapshot.id).unwrap_err();
    assert_eq!(foreign.error_code, ErrorCode::CanisterRejectedMessage);
    assert_eq!(
        foreign.reject_message,
        format!("Only a controller of the canister that snapshot {a}-0 belongs to can load it on canister {b}. Sender: {}.", stranger())
    );
}

/// Management method `method` as `sender`, its one result decoded.
fn manage<A: CandidType, R: CandidType + DeserializeOwned>(ic: &Harness, sender: Principal, method: &str, args: A) -> Result<R, RejectResponse> {
    let reply = ic.update_call(Principal::management_canister(), sender, method, Encode!(&args).unwrap())?;
    Ok(Decode!(&reply, R).unwrap())
}

fn read(ic: &Harness, sender: Principal, canister: Principal, snapshot: &[u8], kind: SnapshotDataKind) -> Result<Vec<u8>, RejectResponse> {
    let args = ReadCanisterSnapshotDataArgs { canister_id: canister, snapshot_id: snapshot.to_vec(), kind };
    manage::<_, ReadCanisterSnapshotDataResult>(ic, sender, "read_canister_snapshot_data", args).map(|r| r.chunk)
}

/// A part of a snapshot read out in slices of the most a read may ask for.
fn read_all(ic: &Harness, canister: Principal, snapshot: &[u8], len: u64, kind: fn(u64, u64) -> SnapshotDataKind) -> Vec<u8> {
    let mut bytes = Vec::new();
    while (bytes.len() as u64) < len {
        let size = (len - bytes.len() as u64).min(2_000_000);
        bytes.extend(read(ic, controller(), canister, snapshot, kind(bytes.len() as u64, size)).unwrap());
    }
    bytes
}

fn upload(ic: &Harness, canister: Principal, snapshot: &[u8], kind: SnapshotDataOffset, chunk: &[u8]) -> Result<(), RejectResponse> {
    let args = UploadCanisterSnapshotDataArgs { canister_id: canister, snapshot_id: snapshot.to_vec(), kind, chunk: chunk.to_vec() };
    manage(ic, controller(), "upload_canister_snapshot_data", args)
}

fn metadata(ic: &Harness, canister: Principal, snapshot: &[u8]) -> ReadCanisterSnapshotMetadataResult {
    let args = ReadCanisterSnapshotMetadataArgs { canister_id: canister, snapshot_id: snapshot.to_vec() };
    manage(ic, controller(), "read_canister_snapshot_metadata", args).unwrap()
}

/// Upload metadata for `canister` copying `from`'s, with the timer `timer`.
fn upload_metadata(ic: &Harness, canister: Principal, from: &ReadCanisterSnapshotMetadataResult, timer: CanisterTimer) -> Result<Vec<u8>, RejectResponse> {
    let args = UploadCanisterSnapshotMetadataArgs {
        canister_id: canister,
        replace_snapshot: None,
        wasm_module_size: from.wasm_module_size,
        globals: from.globals.iter().map(|g| g.clone().unwrap()).collect(),
        wasm_memory_size: from.wasm_memory_size,
        stable_memory_size: from.stable_memory_size,
        certified_data: from.certified_data.clone(),
        global_timer: Some(timer),
        on_low_wasm_memory_hook_status: None,
    };
    manage::<_, UploadCanisterSnapshotMetadataResult>(ic, controller(), "upload_canister_snapshot_metadata", args).map(|r| r.snapshot_id)
}

#[test]
fn a_snapshot_read_out_in_slices_and_uploaded_elsewhere_loads_as_the_original() {
    let ic = Harness::new();
    let (a, b, c) = (probe(&ic), probe(&ic), probe(&ic));
    for _ in 0..2 {
        update::<_, (u64,)>(&ic, a, "inc", ()).unwrap();
    }
    write_stable(&ic, a, b"hello");
    update::<_, (u64,)>(&ic, a, "grow_heap", (3u64,)).unwrap();
    update::<_, ()>(&ic, a, "start_timer", (3u64,)).unwrap();
    let snapshot = take(&ic, a, None).unwrap();
    let meta = metadata(&ic, a, &snapshot.id);
    assert!(matches!(meta.source, Some(SnapshotSource::TakenFromCanister(_))));
    assert_eq!((meta.wasm_module_size, meta.taken_at_timestamp, meta.wasm_chunk_store.len()), (probe_wasm().len() as u64, snapshot.taken_at_timestamp, 0));
    assert!(meta.wasm_memory_size > 3 << 20, "the heap as it grew: {}", meta.wasm_memory_size);
    let cycles = ic.cycle_balance(a);
    let module = read_all(&ic, a, &snapshot.id, meta.wasm_module_size, |offset, size| SnapshotDataKind::WasmModule { offset, size });
    let heap = read_all(&ic, a, &snapshot.id, meta.wasm_memory_size, |offset, size| SnapshotDataKind::WasmMemory { offset, size });
    let stable = read_all(&ic, a, &snapshot.id, meta.stable_memory_size, |offset, size| SnapshotDataKind::StableMemory { offset, size });
    assert_eq!((module, &stable[..5]), (probe_wasm(), &b"hello"[..]));
    let reads = (meta.wasm_module_size + meta.wasm_memory_size + meta.stable_memory_size).div_ceil(2_000_000);
    assert!(cycles - ic.cycle_balance(a) >= u128::from(reads * 5_000_000 + meta.wasm_memory_size), "the reads are charged to the snapshotted canister");

    // Uploaded into b, slice by slice, then loaded: b runs a's state, and its timer is the upload's.
    let uploaded = upload_metadata(&ic, b, &meta, CanisterTimer::Active(ic.time_nanos() + 5_000_000_000)).unwrap();
    for (kind, bytes) in [(0, probe_wasm()), (1, heap), (2, stable)] {
        for (n, slice) in bytes.chunks(1 << 20).enumerate() {
            let offset = (n << 20) as u64;
            let at = [SnapshotDataOffset::WasmModule { offset }, SnapshotDataOffset::WasmMemory { offset }, SnapshotDataOffset::StableMemory { offset }];
            upload(&ic, b, &uploaded, at[kind].clone(), slice).unwrap();
        }
    }
    assert!(matches!(metadata(&ic, b, &uploaded).source, Some(SnapshotSource::MetadataUpload(_))));
    load(&ic, controller(), b, &uploaded).unwrap();
    assert_eq!((counter(&ic, b), read_stable(&ic, b, 5)), (2, b"hello".to_vec()));
    // The taken snapshot, its timer armed, loaded into c: c's timer stays as it was (unset).
    load(&ic, controller(), c, &snapshot.id).unwrap();
    ic.log_executions(true);
    ic.advance_time(std::time::Duration::from_secs(6));
    ic.tick();
    let mut fired: Vec<Principal> = ic.take_execution_log().into_iter().filter(|r| r.entry == ExecutedEntry::System("canister_global_timer".into())).map(|r| r.canister).collect();
    fired.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(fired, expected, "a's own timer and the uploaded snapshot's, put back in b; not the taken one's in c");
}

#[test]
fn reads_and_uploads_outside_what_a_snapshot_is_are_refused_and_change_nothing() {
    let ic = Harness::new();
    let id = probe(&ic);
    write_stable(&ic, id, b"x");
    let snapshot = take(&ic, id, None).unwrap();
    let meta = metadata(&ic, id, &snapshot.id);
    let large = read(&ic, controller(), id, &snapshot.id, SnapshotDataKind::WasmModule { offset: 0, size: 2_000_001 }).unwrap_err();
    assert_eq!((large.error_code, large.reject_message.as_str()), (ErrorCode::InvalidManagementPayload, "Requested slice too large: 2000001 > 2000000"));
    let past = read(&ic, controller(), id, &snapshot.id, SnapshotDataKind::StableMemory { offset: meta.stable_memory_size, size: 1 }).unwrap_err();
    assert_eq!(past.reject_message, format!("Invalid subslice into stable memory: offset: {}, size: 1", meta.stable_memory_size));
    let taken = upload(&ic, id, &snapshot.id, SnapshotDataOffset::StableMemory { offset: 0 }, b"y").unwrap_err();
    assert_eq!((taken.error_code, taken.reject_message.as_str()), (ErrorCode::CanisterSnapshotImmutable, "Only canister snapshots created by metadata upload can be mutated."));
    assert_eq!(read(&ic, controller(), id, &snapshot.id, SnapshotDataKind::StableMemory { offset: 0, size: 1 }).unwrap(), b"x");
    assert_eq!(read(&ic, stranger(), id, &snapshot.id, SnapshotDataKind::StableMemory { offset: 0, size: 1 }).unwrap_err().error_code, ErrorCode::CanisterInvalidController);

    let uploaded = upload_metadata(&ic, id, &meta, CanisterTimer::Inactive).unwrap();
    let beyond = upload(&ic, id, &uploaded, SnapshotDataOffset::WasmMemory { offset: meta.wasm_memory_size - 1 }, b"ab").unwrap_err();
    assert_eq!(beyond.reject_message, format!("Invalid subslice into main memory: offset: {}, size: 2", meta.wasm_memory_size - 1));
    let unaligned = ReadCanisterSnapshotMetadataResult { wasm_memory_size: meta.wasm_memory_size + 1, ..meta.clone() };
    let refused = upload_metadata(&ic, id, &unaligned, CanisterTimer::Inactive).unwrap_err();
    assert_eq!(refused.reject_message, "Snapshot Metadata contains invalid data: WasmMemoryNotPageAligned");
    // An upload whose globals are not the module's is not loaded.
    let extra = ReadCanisterSnapshotMetadataResult { globals: [meta.globals.clone(), vec![Some(SnapshotMetadataGlobal::I64(7))]].concat(), ..meta.clone() };
    let mismatched = upload_metadata(&ic, id, &extra, CanisterTimer::Inactive).unwrap();
    upload(&ic, id, &mismatched, SnapshotDataOffset::WasmModule { offset: 0 }, &probe_wasm()).unwrap();
    let inconsistent = load(&ic, controller(), id, &mismatched).unwrap_err();
    assert_eq!(inconsistent.reject_message, "Wasm exported globals of canister module and snapshot metadata do not match.");
    assert_eq!(read_stable(&ic, id, 1), b"x", "the canister runs as it was");
}

#[test]
fn an_upload_may_declare_all_the_stable_memory_a_canister_may_have_and_holds_what_it_wrote() {
    let ic = Harness::new();
    let id = probe(&ic);
    let meta = metadata(&ic, id, &take(&ic, id, None).unwrap().id);
    let limit = ic_harness::Limits::default().stable_memory_bytes;
    let whole = ReadCanisterSnapshotMetadataResult { stable_memory_size: limit, ..meta };
    let uploaded = upload_metadata(&ic, id, &whole, CanisterTimer::Inactive).unwrap();
    upload(&ic, id, &uploaded, SnapshotDataOffset::StableMemory { offset: limit - 3 }, b"end").unwrap();
    let tail = read(&ic, controller(), id, &uploaded, SnapshotDataKind::StableMemory { offset: limit - 4, size: 4 }).unwrap();
    assert_eq!(tail, b"\0end");
    let over = ReadCanisterSnapshotMetadataResult { stable_memory_size: limit + 65536, ..whole };
    assert_eq!(upload_metadata(&ic, id, &over, CanisterTimer::Inactive).unwrap_err().reject_message, "Snapshot Metadata contains invalid data: StableMemoryTooLarge");
}

#[test]
fn snapshot_work_is_charged_up_front_and_a_canister_that_cannot_pay_is_refused() {
    let ic = Harness::new();
    let id = probe(&ic);
    let snapshot = take(&ic, id, None).unwrap();
    let before = ic.cycle_balance(id);
    let past = SnapshotDataKind::StableMemory { offset: u64::MAX, size: 10 };
    assert_eq!(read(&ic, controller(), id, &snapshot.id, past).unwrap_err().error_code, ErrorCode::InvalidManagementPayload);
    assert!(before - ic.cycle_balance(id) >= 5_000_000, "a read outside the snapshot is charged all the same");
    // Drained below what a take costs (2 B instructions), the canister is refused and keeps its snapshots.
    let poor = ic.create_canister_with_cycles(Some(controller()), None, 1_000_000_000);
    ic.install_canister(poor, probe_wasm(), candid::encode_args(()).unwrap(), Some(controller()));
    let refused = take(&ic, poor, None).unwrap_err();
    assert_eq!(refused.error_code, ErrorCode::CanisterOutOfCycles);
    assert!(refused.reject_message.starts_with("Canister snapshotting failed with: `Canister"), "{}", refused.reject_message);
    assert!(list(&ic, controller(), poor).unwrap().is_empty());
}
