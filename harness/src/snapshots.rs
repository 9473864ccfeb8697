//! Native canister snapshots: `take_canister_snapshot`, `load_canister_snapshot`,
//! `list_canister_snapshots`, `delete_canister_snapshot`, `read_canister_snapshot_metadata`,
//! `read_canister_snapshot_data`, `upload_canister_snapshot_metadata` and
//! `upload_canister_snapshot_data`, as the replica's canister manager has them.
//!
//! A snapshot copies a canister's module, heap, stable memory, exported globals, certified
//! data, global timer and low-memory hook status. Its subnet keeps it beside the canister, at
//! most [`MAX_SNAPSHOTS`] a canister, and it goes with the canister. Its id is its number on the
//! canister (u64, big-endian, never reused) followed by the canister's id, shown
//! `<canister>-<number>` in messages.
//!
//! Only controllers take, load, delete and upload; listing and reading follow the canister's
//! `snapshot_visibility`. A read is a slice of at most [`MAX_SLICE_BYTES`] of the module, the
//! heap or the stable memory, charged to the snapshotted canister (5 M instructions and one a
//! byte asked for) whoever reads. An upload declares the sizes and the rest of the metadata
//! (a snapshot of zeros), then fills them in slices; only such a snapshot may be written to.
//! The harness keeps no wasm chunk store: a snapshot's is empty, and uploading a chunk of one is
//! refused.
//! Neither take nor load asks for a stopped canister (the IC leaves that to its tools). A take
//! replacing a snapshot removes it and gives the new one a new number. Loading puts back the
//! module, heap, stable memory, globals and certified data, increments the canister version and
//! records a `load_snapshot` change; the global timer and the low-memory hook stay as they are,
//! but an uploaded snapshot's are put back (so the IC does), its globals checked against its
//! module's. A canister may load a snapshot of
//! another canister on its subnet whose controllers include the caller: one of a canister on
//! another subnet is not found there. Take and load each charge the canister 2 B instructions
//! and one more per byte of the snapshot, as cycles (the harness does not meter compiling the
//! module on load, which the IC adds).

use std::collections::BTreeMap;
use std::sync::Arc;

use candid::Principal;
use ic_management_canister_types as mgmt;
use wasmtime::Val;

use crate::canister::{self, CompiledModule, Instance};
use crate::messages::Reject;
use crate::pages::StableMemory;
use crate::settings::LowMemoryHook;
use crate::types::ErrorCode;
use crate::world::World;

/// Snapshots a canister may have (`MAX_NUMBER_OF_SNAPSHOTS_PER_CANISTER`).
pub const MAX_SNAPSHOTS: usize = 10;
/// Instructions a take or a load costs besides one per byte of the snapshot.
pub const SNAPSHOT_BASELINE_INSTRUCTIONS: u64 = 2_000_000_000;
/// The most a read of snapshot data may ask for (`MAX_SLICE_SIZE_BYTES`).
pub const MAX_SLICE_BYTES: u64 = 2_000_000;
/// Instructions a read of snapshot data costs besides one per byte asked for.
pub const READ_BASELINE_INSTRUCTIONS: u64 = 5_000_000;
/// The longest module an upload may declare (the replica's `WasmModuleTooLarge` bound).
const MAX_UPLOADED_MODULE_BYTES: u64 = 100 << 20;
/// The longest snapshot id: a number and the longest principal.
const MAX_ID_BYTES: usize = 8 + 29;
/// Bytes a global counts for in a snapshot's size.
const GLOBAL_BYTES: u64 = 32;

const DOCS: &str = "http://internetcomputer.org/docs/current/references/execution-errors";

/// Bytes of a snapshot (its module, heap or stable memory) by 4 KiB page, those of zeros left
/// out: an upload declares sizes up to the stable memory's limit and writes what it writes, the
/// rest reading as zeros, so nothing is allocated for what holds nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SnapshotBytes {
    len: u64,
    /// Page index -> its bytes: `PAGE` of them, the last page's up to `len`.
    pages: BTreeMap<u64, serde_bytes::ByteBuf>,
}

const PAGE: u64 = 4096;

impl SnapshotBytes {
    pub(crate) fn zeros(len: u64) -> Self {
        SnapshotBytes { len, pages: BTreeMap::new() }
    }

    pub(crate) fn of(bytes: &[u8]) -> Self {
        let pages = (0u64..)
            .zip(bytes.chunks(PAGE as usize))
            .filter(|(_, page)| page.iter().any(|&b| b != 0))
            .map(|(index, page)| (index, serde_bytes::ByteBuf::from(page.to_vec())))
            .collect();
        SnapshotBytes { len: bytes.len() as u64, pages }
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Whether `offset .. offset + size` is inside.
    fn holds(&self, offset: u64, size: u64) -> bool {
        offset.checked_add(size).is_some_and(|end| end <= self.len)
    }

    /// Bytes `offset .. offset + size`, inside.
    fn read(&self, offset: u64, size: u64) -> Vec<u8> {
        let mut out = vec![0; size as usize];
        self.read_into(offset, &mut out);
        out
    }

    fn read_into(&self, offset: u64, out: &mut [u8]) {
        let end = offset + out.len() as u64;
        for (&index, page) in self.pages.range(offset / PAGE..end.div_ceil(PAGE)) {
            let start = index * PAGE;
            let (from, to) = (start.max(offset), (start + page.len() as u64).min(end));
            out[(from - offset) as usize..(to - offset) as usize].copy_from_slice(&page[(from - start) as usize..(to - start) as usize]);
        }
    }

    /// Writes `data` at `offset`, inside.
    fn write(&mut self, offset: u64, data: &[u8]) {
        let end = offset + data.len() as u64;
        for index in offset / PAGE..end.div_ceil(PAGE) {
            let start = index * PAGE;
            let page = self.pages.entry(index).or_insert_with(|| serde_bytes::ByteBuf::from(vec![0; (self.len - start).min(PAGE) as usize]));
            let (from, to) = (start.max(offset), (start + page.len() as u64).min(end));
            page[(from - start) as usize..(to - start) as usize].copy_from_slice(&data[(from - offset) as usize..(to - offset) as usize]);
        }
    }

    /// All the bytes (a module's: at most [`MAX_UPLOADED_MODULE_BYTES`] if uploaded).
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        self.read(0, self.len)
    }

    /// The pages that are not zeros: (offset, bytes).
    pub(crate) fn pages(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.pages.iter().map(|(&index, page)| (index * PAGE, page.as_slice()))
    }

    /// All the bytes, in order, as a reader.
    fn reader(&self) -> impl std::io::Read + '_ {
        BytesReader { bytes: self, at: 0 }
    }

    /// Whether the pages are as this type keeps them (a saved file may not be).
    pub(crate) fn is_well_formed(&self) -> bool {
        self.pages.iter().all(|(&index, page)| {
            let start = index.checked_mul(PAGE);
            start.is_some_and(|start| start < self.len && page.len() as u64 == (self.len - start).min(PAGE))
        })
    }
}

struct BytesReader<'a> {
    bytes: &'a SnapshotBytes,
    at: u64,
}

impl std::io::Read for BytesReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.bytes.len - self.at) as usize;
        self.bytes.read_into(self.at, &mut buf[..n]);
        self.at += n as u64;
        Ok(n)
    }
}

/// A canister's state as a snapshot keeps it.
#[derive(Clone)]
pub(crate) struct CanisterSnapshot {
    /// Uploaded (its metadata, then its data) rather than taken.
    pub(crate) uploaded: bool,
    pub(crate) taken_at: u64,
    pub(crate) canister_version: u64,
    pub(crate) wasm: SnapshotBytes,
    /// A taken snapshot's module as the canister ran it; an uploaded one's is compiled on load.
    pub(crate) compiled: Option<Arc<CompiledModule>>,
    pub(crate) heap: SnapshotBytes,
    pub(crate) stable: SnapshotBytes,
    pub(crate) globals: Vec<Val>,
    pub(crate) certified_data: Vec<u8>,
    pub(crate) global_timer: u64,
    pub(crate) low_memory_hook: LowMemoryHook,
}

impl CanisterSnapshot {
    /// The snapshot's size as the IC counts it: memories, globals, module and certified data.
    pub(crate) fn total_size(&self) -> u64 {
        let globals = self.globals.len() as u64 * GLOBAL_BYTES;
        self.heap.len() + self.stable.len() + self.wasm.len() + self.certified_data.len() as u64 + globals
    }

    fn record(&self, canister: Principal, number: u64) -> mgmt::Snapshot {
        mgmt::Snapshot { id: snapshot_id(canister, number), taken_at_timestamp: self.taken_at, total_size: self.total_size() }
    }

    fn source(&self) -> mgmt::SnapshotSource {
        if self.uploaded { mgmt::SnapshotSource::MetadataUpload(candid::Reserved) } else { mgmt::SnapshotSource::TakenFromCanister(candid::Reserved) }
    }

    /// The part of the snapshot a read or an upload names, and what the IC calls it.
    fn part(&mut self, kind: Part) -> (&mut SnapshotBytes, &'static str) {
        match kind {
            Part::Module => (&mut self.wasm, "wasm module"),
            Part::Heap => (&mut self.heap, "main memory"),
            Part::Stable => (&mut self.stable, "stable memory"),
        }
    }
}

/// A snapshot's parts that are read and uploaded by offset.
#[derive(Clone, Copy)]
enum Part {
    Module,
    Heap,
    Stable,
}

fn invalid_slice(what: &str, offset: u64, size: u64) -> Reject {
    Reject::system(ErrorCode::InvalidManagementPayload, format!("Invalid subslice into {what}: offset: {offset}, size: {size}"))
}

fn metadata_global(value: &Val) -> Option<mgmt::SnapshotMetadataGlobal> {
    Some(match *value {
        Val::I32(x) => mgmt::SnapshotMetadataGlobal::I32(x),
        Val::I64(x) => mgmt::SnapshotMetadataGlobal::I64(x),
        Val::F32(x) => mgmt::SnapshotMetadataGlobal::F32(f32::from_bits(x)),
        Val::F64(x) => mgmt::SnapshotMetadataGlobal::F64(f64::from_bits(x)),
        Val::V128(x) => mgmt::SnapshotMetadataGlobal::V128(candid::Nat::from(x.as_u128())),
        _ => return None,
    })
}

fn global_value(global: &mgmt::SnapshotMetadataGlobal) -> Option<Val> {
    Some(match global {
        mgmt::SnapshotMetadataGlobal::I32(x) => Val::I32(*x),
        mgmt::SnapshotMetadataGlobal::I64(x) => Val::I64(*x),
        mgmt::SnapshotMetadataGlobal::F32(x) => Val::F32(x.to_bits()),
        mgmt::SnapshotMetadataGlobal::F64(x) => Val::F64(x.to_bits()),
        mgmt::SnapshotMetadataGlobal::V128(x) => Val::V128(u128::try_from(x.0.clone()).ok()?.into()),
    })
}

fn hook_status(hook: LowMemoryHook) -> mgmt::OnLowWasmMemoryHookStatus {
    match hook {
        LowMemoryHook::ConditionNotSatisfied => mgmt::OnLowWasmMemoryHookStatus::ConditionNotSatisfied,
        LowMemoryHook::Ready => mgmt::OnLowWasmMemoryHookStatus::Ready,
        LowMemoryHook::Executed => mgmt::OnLowWasmMemoryHookStatus::Executed,
    }
}

fn hook_of(status: &mgmt::OnLowWasmMemoryHookStatus) -> LowMemoryHook {
    match status {
        mgmt::OnLowWasmMemoryHookStatus::ConditionNotSatisfied => LowMemoryHook::ConditionNotSatisfied,
        mgmt::OnLowWasmMemoryHookStatus::Ready => LowMemoryHook::Ready,
        mgmt::OnLowWasmMemoryHookStatus::Executed => LowMemoryHook::Executed,
    }
}

/// The id of snapshot `number` of `canister`.
pub fn snapshot_id(canister: Principal, number: u64) -> Vec<u8> {
    [&number.to_be_bytes()[..], canister.as_slice()].concat()
}

/// The canister and number an id names; why the bytes are no snapshot id.
fn parse_id(id: &[u8]) -> Result<(Principal, u64), Reject> {
    let refused = |reason: String| Reject::system(ErrorCode::InvalidManagementPayload, format!("Payload deserialization error: {reason}"));
    if id.len() > MAX_ID_BYTES {
        return Err(refused(format!("Invalid snapshot ID length: provided {}, maximum length expected {MAX_ID_BYTES}.", id.len())));
    }
    let (number, canister) = id.split_at_checked(8).ok_or_else(|| {
        // The replica's text, its misspelling and its bound included.
        refused(format!("Invalid snapshot ID length: provided {}, minumum length expected {MAX_ID_BYTES}.", id.len()))
    })?;
    let canister = Principal::try_from_slice(canister)
        .map_err(|_| refused("Failed to create a Snapshot ID. Input could not be parsed into a Snapshot ID.".into()))?;
    Ok((canister, u64::from_be_bytes(number.try_into().expect("8 bytes"))))
}

fn shown(canister: Principal, number: u64) -> String {
    format!("{canister}-{number}")
}

fn not_found(canister: Principal, of: Principal, number: u64) -> Reject {
    Reject::system(
        ErrorCode::CanisterSnapshotNotFound,
        format!(
            "Could not find the snapshot ID {} for canister {canister}.\nUse the `list_canister_snapshot` API to see which snapshots are present. See documentation: {DOCS}#canister-snapshot-not-found",
            shown(of, number)
        ),
    )
}

fn not_owned(canister: Principal, of: Principal, number: u64) -> Reject {
    Reject::system(
        ErrorCode::CanisterRejectedMessage,
        format!(
            "The snapshot {} does not belong to canister {canister}.\nUse the `list_canister_snapshot` API to see which snapshots are present. See documentation: {DOCS}#canister-snapshot-invalid-ownership",
            shown(of, number)
        ),
    )
}

impl World {
    /// The number of `canister`'s own snapshot `id`: the id must parse and name one it has.
    fn own_snapshot(&self, canister: Principal, id: &[u8]) -> Result<u64, Reject> {
        let (of, number) = parse_id(id)?;
        let subnet = self.canisters[&canister].subnet;
        let exists = self.canisters.get(&of).is_some_and(|c| c.subnet == subnet && c.snapshots.contains_key(&number));
        match (exists, of == canister) {
            (false, _) => Err(not_found(canister, of, number)),
            (true, false) => Err(not_owned(canister, of, number)),
            (true, true) => Ok(number),
        }
    }

    /// Charges `canister` for `instructions` of snapshot work, up front: one that cannot pay is
    /// refused.
    fn charge_snapshot(&mut self, canister: Principal, instructions: u64) -> Result<(), Reject> {
        let fee = self.costs.execution(instructions);
        let c = self.canisters.get_mut(&canister).expect("exists");
        if c.cycles < fee {
            return Err(Reject::system(
                ErrorCode::CanisterOutOfCycles,
                format!(
                    "Canister snapshotting failed with: `Canister {canister} is out of cycles: please top up the canister with at least {} additional cycles`",
                    fee - c.cycles
                ),
            ));
        }
        c.cycles -= fee;
        c.metrics.cycles_consumed += fee;
        Ok(())
    }

    /// The snapshot a take or an upload replaces, if any: `canister` must have room for one more
    /// without.
    fn room_for_snapshot(&self, canister: Principal, replace: Option<&[u8]>) -> Result<Option<u64>, Reject> {
        let replaced = replace.map(|snapshot| self.own_snapshot(canister, snapshot)).transpose()?;
        if replaced.is_none() && self.canisters[&canister].snapshots.len() >= MAX_SNAPSHOTS {
            return Err(Reject::system(
                ErrorCode::CanisterRejectedMessage,
                format!(
                    "Canister {canister} has reached the maximum number of snapshots allowed: {MAX_SNAPSHOTS}.\nConsider deleting an unnecessary snapshot of the specified canister before creating a new one. See documentation: canister-snapshot-limit-exceeded"
                ),
            ));
        }
        Ok(replaced)
    }

    /// Charges for `snapshot` of `canister` and keeps it under a new number, in place of `replaced`.
    fn keep_snapshot(&mut self, canister: Principal, replaced: Option<u64>, snapshot: CanisterSnapshot) -> Result<mgmt::Snapshot, Reject> {
        self.charge_snapshot(canister, SNAPSHOT_BASELINE_INSTRUCTIONS.saturating_add(snapshot.total_size()))?;
        let c = self.canisters.get_mut(&canister).expect("exists");
        if let Some(replaced) = replaced {
            c.snapshots.remove(&replaced);
        }
        let number = c.next_snapshot;
        c.next_snapshot += 1;
        let kept = snapshot.record(canister, number);
        c.snapshots.insert(number, snapshot);
        Ok(kept)
    }

    /// Takes a snapshot, then uninstalls the canister's code if `args` say so.
    pub(crate) fn take_canister_snapshot(&mut self, sender: Principal, from_canister: bool, args: &mgmt::TakeCanisterSnapshotArgs) -> Result<mgmt::Snapshot, Reject> {
        let id = args.canister_id;
        self.controlled(id, sender)?;
        let replaced = self.room_for_snapshot(id, args.replace_snapshot.as_deref())?;
        let c = self.canisters.get_mut(&id).expect("controlled");
        let Some(instance) = c.instance.as_mut() else {
            return Err(Reject::system(ErrorCode::CanisterRejectedMessage, format!("Failed to create snapshot for empty canister {id}:")));
        };
        let snapshot = CanisterSnapshot {
            uploaded: false,
            taken_at: self.time,
            canister_version: c.version,
            wasm: SnapshotBytes::of(&instance.module().wasm),
            compiled: Some(instance.module().clone()),
            heap: SnapshotBytes::of(instance.heap()),
            stable: SnapshotBytes::of(instance.stable().contents()),
            globals: instance.globals(),
            certified_data: c.certified_data.clone(),
            global_timer: c.global_timer,
            low_memory_hook: c.low_memory_hook,
        };
        let taken = self.keep_snapshot(id, replaced, snapshot)?;
        if args.uninstall_code == Some(true) {
            self.uninstall_code(sender, from_canister, id)?;
        }
        Ok(taken)
    }

    pub(crate) fn load_canister_snapshot(&mut self, sender: Principal, from_canister: bool, args: &mgmt::LoadCanisterSnapshotArgs) -> Result<(), Reject> {
        let id = args.canister_id;
        self.controlled(id, sender)?;
        let (of, number) = parse_id(&args.snapshot_id)?;
        let subnet = self.canisters[&id].subnet;
        let Some(owner) = self.canisters.get(&of).filter(|c| c.subnet == subnet && c.snapshots.contains_key(&number)) else {
            return Err(not_found(id, of, number));
        };
        if of != id && !owner.controllers.contains(&sender) {
            return Err(Reject::system(
                ErrorCode::CanisterRejectedMessage,
                format!("Only a controller of the canister that snapshot {} belongs to can load it on canister {id}. Sender: {sender}.", shown(of, number)),
            ));
        }
        let snapshot = &owner.snapshots[&number];
        let loaded = self.instance_of(id, snapshot)?;
        let restored = snapshot.uploaded.then_some((snapshot.global_timer, snapshot.low_memory_hook));
        let certified_data = snapshot.certified_data.clone();
        let record = mgmt::LoadSnapshotRecord {
            from_canister_id: (of != id).then_some(of),
            snapshot_id: args.snapshot_id.clone(),
            canister_version: snapshot.canister_version,
            taken_at_timestamp: snapshot.taken_at,
            source: snapshot.source(),
        };
        self.charge_snapshot(id, SNAPSHOT_BASELINE_INSTRUCTIONS.saturating_add(snapshot.total_size()))?;
        let (origin, time) = (self.origin_of(sender, from_canister), self.time);
        let c = self.canisters.get_mut(&id).expect("controlled");
        c.instance = Some(loaded);
        c.certified_data = certified_data;
        if let Some((timer, hook)) = restored {
            c.global_timer = timer;
            c.low_memory_hook = hook;
        }
        c.version += 1;
        c.record_change(time, origin, mgmt::ChangeDetails::LoadSnapshot(record));
        self.wasm_memory_changed(id);
        Ok(())
    }

    /// An instance of `snapshot`'s module over its memories and globals, for canister `id`; an
    /// uploaded snapshot's globals must be its module's.
    fn instance_of(&self, id: Principal, snapshot: &CanisterSnapshot) -> Result<Instance, Reject> {
        let module = match &snapshot.compiled {
            Some(module) => module.clone(),
            None => canister::compile(&snapshot.wasm.to_vec()).map_err(|e| {
                Reject::system(ErrorCode::CanisterInvalidWasm, format!("Error from Canister {id}: Canister's Wasm module is not valid: {e}"))
            })?,
        };
        let fault = |e: String| Reject::system(ErrorCode::CanisterContractViolation, e);
        let mut stable = StableMemory::new(self.limits.stable_memory_bytes).expect("reserving stable memory address space");
        stable.load_sparse(snapshot.stable.len(), snapshot.stable.pages()).map_err(fault)?;
        let mut loaded = Instance::new(module, stable).map_err(|failed| Reject::failed(&id, &failed.0))?;
        let kinds = |values: &[Val]| values.iter().map(std::mem::discriminant).collect::<Vec<_>>();
        if kinds(&loaded.globals()) != kinds(&snapshot.globals) {
            return Err(Reject::system(ErrorCode::InvalidManagementPayload, "Wasm exported globals of canister module and snapshot metadata do not match."));
        }
        loaded.restore(&mut snapshot.heap.reader(), snapshot.heap.len(), &snapshot.globals).map_err(fault)?;
        Ok(loaded)
    }

    /// Whether `sender` may list and read `canister`'s snapshots (its `snapshot_visibility`).
    fn may_see_snapshots(&self, sender: Principal, canister: Principal) -> Result<(), Reject> {
        let c = self.existing(canister)?;
        if !c.settings.snapshot_visibility.allows(&sender, &c.controllers) {
            self.controlled(canister, sender)?;
        }
        Ok(())
    }

    pub(crate) fn list_canister_snapshots(&self, sender: Principal, canister: Principal) -> Result<Vec<mgmt::Snapshot>, Reject> {
        self.may_see_snapshots(sender, canister)?;
        Ok(self.canisters[&canister].snapshots.iter().map(|(&number, s)| s.record(canister, number)).collect())
    }

    pub(crate) fn read_canister_snapshot_metadata(
        &self,
        sender: Principal,
        args: &mgmt::ReadCanisterSnapshotMetadataArgs,
    ) -> Result<mgmt::ReadCanisterSnapshotMetadataResult, Reject> {
        self.may_see_snapshots(sender, args.canister_id)?;
        let number = self.own_snapshot(args.canister_id, &args.snapshot_id)?;
        let s = &self.canisters[&args.canister_id].snapshots[&number];
        Ok(mgmt::ReadCanisterSnapshotMetadataResult {
            source: Some(s.source()),
            taken_at_timestamp: s.taken_at,
            wasm_module_size: s.wasm.len(),
            globals: s.globals.iter().map(metadata_global).collect(),
            wasm_memory_size: s.heap.len(),
            stable_memory_size: s.stable.len(),
            wasm_chunk_store: Vec::new(),
            canister_version: s.canister_version,
            certified_data: s.certified_data.clone(),
            global_timer: Some(if s.global_timer == 0 { mgmt::CanisterTimer::Inactive } else { mgmt::CanisterTimer::Active(s.global_timer) }),
            on_low_wasm_memory_hook_status: Some(hook_status(s.low_memory_hook)),
        })
    }

    /// A slice of a snapshot, charged to its canister before the bounds are checked (so the IC does).
    pub(crate) fn read_canister_snapshot_data(&mut self, sender: Principal, args: &mgmt::ReadCanisterSnapshotDataArgs) -> Result<Vec<u8>, Reject> {
        let id = args.canister_id;
        self.may_see_snapshots(sender, id)?;
        let number = self.own_snapshot(id, &args.snapshot_id)?;
        let (part, offset, size) = match &args.kind {
            mgmt::SnapshotDataKind::WasmModule { offset, size } => (Part::Module, *offset, *size),
            mgmt::SnapshotDataKind::WasmMemory { offset, size } => (Part::Heap, *offset, *size),
            mgmt::SnapshotDataKind::StableMemory { offset, size } => (Part::Stable, *offset, *size),
            mgmt::SnapshotDataKind::WasmChunk { hash } => {
                return Err(Reject::system(
                    ErrorCode::CanisterContractViolation,
                    format!("Error from Wasm chunk store: WasmChunkHash {hash:02x?} not found."),
                ));
            }
        };
        if size > MAX_SLICE_BYTES {
            return Err(Reject::system(ErrorCode::InvalidManagementPayload, format!("Requested slice too large: {size} > {MAX_SLICE_BYTES}")));
        }
        self.charge_snapshot(id, READ_BASELINE_INSTRUCTIONS.saturating_add(size))?;
        let snapshot = self.canisters.get_mut(&id).expect("exists").snapshots.get_mut(&number).expect("found");
        let (bytes, what) = snapshot.part(part);
        if !bytes.holds(offset, size) {
            return Err(invalid_slice(what, offset, size));
        }
        Ok(bytes.read(offset, size))
    }

    /// A snapshot of zeros of the sizes `args` declares, with its metadata, to be filled in by
    /// [`Self::upload_canister_snapshot_data`].
    pub(crate) fn upload_canister_snapshot_metadata(
        &mut self,
        sender: Principal,
        args: &mgmt::UploadCanisterSnapshotMetadataArgs,
    ) -> Result<mgmt::UploadCanisterSnapshotMetadataResult, Reject> {
        let id = args.canister_id;
        self.controlled(id, sender)?;
        let replaced = self.room_for_snapshot(id, args.replace_snapshot.as_deref())?;
        let page = crate::pages::WASM_PAGE_SIZE;
        let invalid = match () {
            _ if args.wasm_module_size == 0 => Some("WasmModuleEmpty"),
            _ if args.wasm_module_size > MAX_UPLOADED_MODULE_BYTES => Some("WasmModuleTooLarge"),
            _ if !args.wasm_memory_size.is_multiple_of(page) => Some("WasmMemoryNotPageAligned"),
            _ if args.wasm_memory_size > crate::config::MAX_WASM_MEMORY => Some("WasmMemoryTooLarge"),
            _ if !args.stable_memory_size.is_multiple_of(page) => Some("StableMemoryNotPageAligned"),
            _ if args.stable_memory_size > self.limits.stable_memory_bytes => Some("StableMemoryTooLarge"),
            _ if args.certified_data.len() > 32 => Some("CertifiedDataTooLarge"),
            _ => None,
        };
        let globals: Option<Vec<Val>> = args.globals.iter().map(global_value).collect();
        let invalid = invalid.or(globals.is_none().then_some("ExportedGlobalsInvalid"));
        if let Some(reason) = invalid {
            return Err(Reject::system(ErrorCode::InvalidManagementPayload, format!("Snapshot Metadata contains invalid data: {reason}")));
        }
        let c = &self.canisters[&id];
        let snapshot = CanisterSnapshot {
            uploaded: true,
            taken_at: self.time,
            canister_version: c.version,
            wasm: SnapshotBytes::zeros(args.wasm_module_size),
            compiled: None,
            heap: SnapshotBytes::zeros(args.wasm_memory_size),
            stable: SnapshotBytes::zeros(args.stable_memory_size),
            globals: globals.expect("checked"),
            certified_data: args.certified_data.clone(),
            global_timer: match args.global_timer {
                Some(mgmt::CanisterTimer::Active(at)) => at,
                _ => 0,
            },
            low_memory_hook: args.on_low_wasm_memory_hook_status.as_ref().map_or(c.low_memory_hook, hook_of),
        };
        let kept = self.keep_snapshot(id, replaced, snapshot)?;
        Ok(mgmt::UploadCanisterSnapshotMetadataResult { snapshot_id: kept.id })
    }

    /// Writes a slice into an uploaded snapshot, within the sizes its metadata declared.
    pub(crate) fn upload_canister_snapshot_data(&mut self, sender: Principal, args: &mgmt::UploadCanisterSnapshotDataArgs) -> Result<(), Reject> {
        let id = args.canister_id;
        self.controlled(id, sender)?;
        let number = self.own_snapshot(id, &args.snapshot_id)?;
        let (part, offset) = match args.kind {
            mgmt::SnapshotDataOffset::WasmModule { offset } => (Part::Module, offset),
            mgmt::SnapshotDataOffset::WasmMemory { offset } => (Part::Heap, offset),
            mgmt::SnapshotDataOffset::StableMemory { offset } => (Part::Stable, offset),
            mgmt::SnapshotDataOffset::WasmChunk => {
                return Err(Reject::system(ErrorCode::CanisterContractViolation, "The embedded IC keeps no wasm chunk store."));
            }
        };
        let snapshot = self.canisters.get_mut(&id).expect("exists").snapshots.get_mut(&number).expect("found");
        if !snapshot.uploaded {
            return Err(Reject::system(ErrorCode::CanisterSnapshotImmutable, "Only canister snapshots created by metadata upload can be mutated."));
        }
        let size = args.chunk.len() as u64;
        let (bytes, what) = snapshot.part(part);
        if !bytes.holds(offset, size) {
            return Err(invalid_slice(what, offset, size));
        }
        self.charge_snapshot(id, size)?;
        let snapshot = self.canisters.get_mut(&id).expect("exists").snapshots.get_mut(&number).expect("found");
        snapshot.part(part).0.write(offset, &args.chunk);
        Ok(())
    }

    pub(crate) fn delete_canister_snapshot(&mut self, sender: Principal, args: &mgmt::DeleteCanisterSnapshotArgs) -> Result<(), Reject> {
        self.controlled(args.canister_id, sender)?;
        let number = self.own_snapshot(args.canister_id, &args.snapshot_id)?;
        self.canisters.get_mut(&args.canister_id).expect("controlled").snapshots.remove(&number);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_the_number_then_the_canister() {
        let canister = Principal::from_slice(&[1; 10]);
        let id = snapshot_id(canister, 258);
        assert_eq!(id.len(), 18);
        assert_eq!(&id[..8], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(parse_id(&id).unwrap(), (canister, 258));
        assert!(parse_id(&id[..7]).unwrap_err().user_message.contains("Invalid snapshot ID length: provided 7"));
        assert!(parse_id(&[0; 38]).unwrap_err().user_message.contains("maximum length expected 37"));
        assert_eq!(parse_id(&id[..7]).unwrap_err().error_code, ErrorCode::InvalidManagementPayload);
    }

    #[test]
    fn snapshot_bytes_keep_only_pages_that_are_not_zeros_and_read_as_written() {
        let mut image = vec![0u8; 3 * 4096 + 100];
        image[5000] = 7;
        image[3 * 4096 + 99] = 9;
        let bytes = SnapshotBytes::of(&image);
        assert_eq!((bytes.len(), bytes.pages().map(|(offset, page)| (offset, page.len())).collect::<Vec<_>>()), (12388, vec![(4096, 4096), (12288, 100)]));
        assert_eq!((bytes.to_vec(), bytes.read(4999, 2)), (image.clone(), vec![0, 7]));
        let mut read = Vec::new();
        std::io::Read::read_to_end(&mut bytes.reader(), &mut read).unwrap();
        assert_eq!(read, image);

        let mut written = SnapshotBytes::zeros(1 << 40);
        assert!(written.holds((1 << 40) - 3, 3) && !written.holds((1 << 40) - 3, 4) && !written.holds(u64::MAX, 2));
        written.write(4090, &[1; 10]);
        written.write((1 << 40) - 3, b"end");
        assert_eq!((written.read(4089, 12), written.read((1 << 40) - 4, 4)), ([&[0][..], &[1; 10], &[0]].concat(), b"\0end".to_vec()));
        assert_eq!(written.pages().count(), 3, "a terabyte declared, three pages held");
        assert!(written.is_well_formed());
        let mut stray = SnapshotBytes::zeros(10);
        stray.pages.insert(1, serde_bytes::ByteBuf::from(vec![1; 4096]));
        assert!(!stray.is_well_formed());
    }
}
