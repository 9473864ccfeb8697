//! Native canister snapshots: `take_canister_snapshot`, `load_canister_snapshot`,
//! `list_canister_snapshots` and `delete_canister_snapshot`, as the replica's canister manager
//! has them.
//!
//! A snapshot copies a canister's module, heap, stable memory, exported globals and certified
//! data. Its subnet keeps it beside the canister, at most [`MAX_SNAPSHOTS`] a canister, and it
//! goes with the canister. Its id is its number on the canister (u64, big-endian, never reused)
//! followed by the canister's id, shown `<canister>-<number>` in messages.
//!
//! Only controllers take, load and delete; listing follows the canister's `snapshot_visibility`.
//! Neither take nor load asks for a stopped canister (the IC leaves that to its tools). A take
//! replacing a snapshot removes it and gives the new one a new number. Loading puts back the
//! module, heap, stable memory, globals and certified data, increments the canister version and
//! records a `load_snapshot` change; the global timer and the low-memory hook stay as they are
//! (the IC restores them only from uploaded snapshots). A canister may load a snapshot of
//! another canister on its subnet whose controllers include the caller: one of a canister on
//! another subnet is not found there. Take and load each charge the canister 2 B instructions
//! and one more per byte of the snapshot, as cycles (the harness does not meter compiling the
//! module on load, which the IC adds).

use std::sync::Arc;

use candid::Principal;
use ic_management_canister_types as mgmt;
use wasmtime::Val;

use crate::canister::{CompiledModule, Instance};
use crate::messages::Reject;
use crate::pages::StableMemory;
use crate::types::ErrorCode;
use crate::world::World;

/// Snapshots a canister may have (`MAX_NUMBER_OF_SNAPSHOTS_PER_CANISTER`).
pub const MAX_SNAPSHOTS: usize = 10;
/// Instructions a take or a load costs besides one per byte of the snapshot.
pub const SNAPSHOT_BASELINE_INSTRUCTIONS: u64 = 2_000_000_000;
/// The longest snapshot id: a number and the longest principal.
const MAX_ID_BYTES: usize = 8 + 29;
/// Bytes a global counts for in a snapshot's size.
const GLOBAL_BYTES: u64 = 32;

const DOCS: &str = "http://internetcomputer.org/docs/current/references/execution-errors";

/// A canister's state as a snapshot keeps it.
#[derive(Clone)]
pub(crate) struct CanisterSnapshot {
    pub(crate) taken_at: u64,
    pub(crate) canister_version: u64,
    pub(crate) module: Arc<CompiledModule>,
    pub(crate) heap: Vec<u8>,
    pub(crate) stable: Vec<u8>,
    pub(crate) globals: Vec<Val>,
    pub(crate) certified_data: Vec<u8>,
}

impl CanisterSnapshot {
    /// The snapshot's size as the IC counts it: memories, globals, module and certified data.
    pub(crate) fn total_size(&self) -> u64 {
        let globals = self.globals.len() as u64 * GLOBAL_BYTES;
        (self.heap.len() + self.stable.len() + self.module.wasm.len() + self.certified_data.len()) as u64 + globals
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

    /// Charges `canister` for a take or a load of a snapshot of `bytes`.
    fn charge_snapshot(&mut self, canister: Principal, bytes: u64) {
        let instructions = SNAPSHOT_BASELINE_INSTRUCTIONS.saturating_add(bytes);
        let fee = self.costs.execution(instructions);
        let c = self.canisters.get_mut(&canister).expect("exists");
        c.cycles = c.cycles.saturating_sub(fee);
        c.metrics.cycles_consumed += fee;
    }

    pub(crate) fn take_canister_snapshot(&mut self, sender: Principal, args: &mgmt::TakeCanisterSnapshotArgs) -> Result<mgmt::Snapshot, Reject> {
        let id = args.canister_id;
        self.controlled(id, sender)?;
        let replaced = args.replace_snapshot.as_deref().map(|snapshot| self.own_snapshot(id, snapshot)).transpose()?;
        let c = self.canisters.get_mut(&id).expect("controlled");
        if replaced.is_none() && c.snapshots.len() >= MAX_SNAPSHOTS {
            return Err(Reject::system(
                ErrorCode::CanisterRejectedMessage,
                format!(
                    "Canister {id} has reached the maximum number of snapshots allowed: {MAX_SNAPSHOTS}.\nConsider deleting an unnecessary snapshot of the specified canister before creating a new one. See documentation: canister-snapshot-limit-exceeded"
                ),
            ));
        }
        let Some(instance) = c.instance.as_mut() else {
            return Err(Reject::system(ErrorCode::CanisterRejectedMessage, format!("Failed to create snapshot for empty canister {id}:")));
        };
        let snapshot = CanisterSnapshot {
            taken_at: self.time,
            canister_version: c.version,
            module: instance.module().clone(),
            heap: instance.heap().to_vec(),
            stable: instance.stable().contents().to_vec(),
            globals: instance.globals(),
            certified_data: c.certified_data.clone(),
        };
        if let Some(replaced) = replaced {
            c.snapshots.remove(&replaced);
        }
        let number = c.next_snapshot;
        c.next_snapshot += 1;
        let taken = mgmt::Snapshot { id: snapshot_id(id, number), taken_at_timestamp: snapshot.taken_at, total_size: snapshot.total_size() };
        c.snapshots.insert(number, snapshot);
        self.charge_snapshot(id, taken.total_size);
        Ok(taken)
    }

    pub(crate) fn load_canister_snapshot(&mut self, sender: Principal, from_canister: bool, args: &mgmt::LoadCanisterSnapshotArgs) -> Result<(), Reject> {
        let id = args.canister_id;
        self.controlled(id, sender)?;
        let (of, number) = parse_id(&args.snapshot_id)?;
        let subnet = self.canisters[&id].subnet;
        let source = self.canisters.get(&of).filter(|c| c.subnet == subnet).and_then(|c| c.snapshots.get(&number).map(|s| (s.clone(), c)));
        let Some((snapshot, owner)) = source else { return Err(not_found(id, of, number)) };
        if of != id && !owner.controllers.contains(&sender) {
            return Err(Reject::system(
                ErrorCode::CanisterRejectedMessage,
                format!("Only a controller of the canister that snapshot {} belongs to can load it on canister {id}. Sender: {sender}.", shown(of, number)),
            ));
        }
        let mut stable = StableMemory::new(self.limits.stable_memory_bytes).expect("reserving stable memory address space");
        stable.set_contents(&snapshot.stable).map_err(|e| Reject::system(ErrorCode::CanisterContractViolation, e))?;
        let loaded = Instance::new(snapshot.module.clone(), stable).map_err(|failed| Reject::failed(&id, &failed.0)).and_then(|mut instance| {
            let mut heap = snapshot.heap.as_slice();
            instance.restore(&mut heap, snapshot.heap.len() as u64, &snapshot.globals).map_err(|e| Reject::system(ErrorCode::CanisterContractViolation, e))?;
            Ok(instance)
        })?;
        let origin = self.origin_of(sender, from_canister);
        let (time, total_size) = (self.time, snapshot.total_size());
        let c = self.canisters.get_mut(&id).expect("controlled");
        c.instance = Some(loaded);
        c.certified_data = snapshot.certified_data;
        c.version += 1;
        let record = mgmt::LoadSnapshotRecord {
            from_canister_id: (of != id).then_some(of),
            snapshot_id: args.snapshot_id.clone(),
            canister_version: snapshot.canister_version,
            taken_at_timestamp: snapshot.taken_at,
            source: mgmt::SnapshotSource::TakenFromCanister(candid::Reserved),
        };
        c.record_change(time, origin, mgmt::ChangeDetails::LoadSnapshot(record));
        self.charge_snapshot(id, total_size);
        self.wasm_memory_changed(id);
        Ok(())
    }

    pub(crate) fn list_canister_snapshots(&self, sender: Principal, canister: Principal) -> Result<Vec<mgmt::Snapshot>, Reject> {
        let c = self.existing(canister)?;
        if !c.settings.snapshot_visibility.allows(&sender, &c.controllers) {
            self.controlled(canister, sender)?;
        }
        Ok(c.snapshots
            .iter()
            .map(|(&number, s)| mgmt::Snapshot { id: snapshot_id(canister, number), taken_at_timestamp: s.taken_at, total_size: s.total_size() })
            .collect())
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
}
