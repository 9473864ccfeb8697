//! The calls tests make of an IC, behind a trait: implemented by the embedded [`Harness`] and,
//! with the `pocket-ic` feature, by `pocket_ic::PocketIc`, so one test runs on both.

use std::time::Duration;

use candid::Principal;
use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use ic_management_canister_types::{CanisterSettings, Snapshot};

use crate::harness::{Harness, MessageId};
use crate::subnets::SubnetId;
use crate::types::{CallResult, LogRecord, RejectResponse};

/// Why a typed call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("rejected: {0}")]
    Reject(RejectResponse),
    #[error("candid: {0}")]
    Candid(String),
}

impl CallError {
    pub fn reject(&self) -> Option<&RejectResponse> {
        match self {
            CallError::Reject(r) => Some(r),
            CallError::Candid(_) => None,
        }
    }
}

pub trait IcBackend {
    type MessageId;
    /// A subnet: the harness's [`SubnetId`], PocketIC's subnet principal.
    type SubnetId: Copy + Eq + std::fmt::Debug;

    fn create_canister_with_settings(&self, sender: Option<Principal>, settings: Option<CanisterSettings>) -> Principal;
    fn create_canister_on_subnet(&self, sender: Option<Principal>, settings: Option<CanisterSettings>, subnet: Self::SubnetId) -> Principal;
    /// The subnet `canister` is on, if it exists.
    fn subnet_of(&self, canister: Principal) -> Option<Self::SubnetId>;
    fn add_cycles(&self, canister: Principal, amount: u128) -> u128;
    fn cycle_balance(&self, canister: Principal) -> u128;
    /// Installs `wasm` on an empty canister; panics on failure.
    fn install_canister(&self, canister: Principal, wasm: Vec<u8>, arg: Vec<u8>, sender: Option<Principal>);
    /// Installs `wasm` on an empty canister; an invalid module or a trapping init is an error.
    fn try_install_canister(&self, canister: Principal, wasm: Vec<u8>, arg: Vec<u8>, sender: Option<Principal>) -> Result<(), RejectResponse>;
    fn upgrade_canister(&self, canister: Principal, wasm: Vec<u8>, arg: Vec<u8>, sender: Option<Principal>) -> Result<(), RejectResponse>;
    fn reinstall_canister(&self, canister: Principal, wasm: Vec<u8>, arg: Vec<u8>, sender: Option<Principal>) -> Result<(), RejectResponse>;
    fn update_call(&self, canister: Principal, sender: Principal, method: &str, payload: Vec<u8>) -> CallResult;
    fn query_call(&self, canister: Principal, sender: Principal, method: &str, payload: Vec<u8>) -> CallResult;
    fn submit_call(&self, canister: Principal, sender: Principal, method: &str, payload: Vec<u8>) -> Result<Self::MessageId, RejectResponse>;
    fn await_call(&self, id: Self::MessageId) -> CallResult;
    fn tick(&self);
    fn advance_time(&self, duration: Duration);
    fn time_nanos(&self) -> u64;
    fn set_controllers(&self, canister: Principal, sender: Option<Principal>, controllers: Vec<Principal>) -> Result<(), RejectResponse>;
    fn stop_canister(&self, canister: Principal, sender: Option<Principal>) -> Result<(), RejectResponse>;
    fn start_canister(&self, canister: Principal, sender: Option<Principal>) -> Result<(), RejectResponse>;
    fn get_stable_memory(&self, canister: Principal) -> Vec<u8>;
    /// The canister's log as `sender` may read it (`fetch_canister_logs`, a query call).
    fn fetch_canister_logs(&self, canister: Principal, sender: Principal) -> Result<Vec<LogRecord>, RejectResponse>;
    /// A native snapshot of `canister`, in place of snapshot `replace` if given.
    fn take_canister_snapshot(&self, canister: Principal, sender: Option<Principal>, replace: Option<Vec<u8>>) -> Result<Snapshot, RejectResponse>;
    fn load_canister_snapshot(&self, canister: Principal, sender: Option<Principal>, snapshot: Vec<u8>) -> Result<(), RejectResponse>;
    fn list_canister_snapshots(&self, canister: Principal, sender: Option<Principal>) -> Result<Vec<Snapshot>, RejectResponse>;
    fn delete_canister_snapshot(&self, canister: Principal, sender: Option<Principal>, snapshot: Vec<u8>) -> Result<(), RejectResponse>;

    fn create_canister(&self) -> Principal {
        self.create_canister_with_settings(None, None)
    }

    /// An update call with candid arguments and results.
    fn update_candid<A: ArgumentEncoder, R: for<'a> ArgumentDecoder<'a>>(
        &self,
        canister: Principal,
        sender: Principal,
        method: &str,
        args: A,
    ) -> Result<R, CallError> {
        let payload = candid::encode_args(args).map_err(|e| CallError::Candid(e.to_string()))?;
        let reply = self.update_call(canister, sender, method, payload).map_err(CallError::Reject)?;
        candid::decode_args(&reply).map_err(|e| CallError::Candid(e.to_string()))
    }

    /// A query call with candid arguments and results.
    fn query_candid<A: ArgumentEncoder, R: for<'a> ArgumentDecoder<'a>>(
        &self,
        canister: Principal,
        sender: Principal,
        method: &str,
        args: A,
    ) -> Result<R, CallError> {
        let payload = candid::encode_args(args).map_err(|e| CallError::Candid(e.to_string()))?;
        let reply = self.query_call(canister, sender, method, payload).map_err(CallError::Reject)?;
        candid::decode_args(&reply).map_err(|e| CallError::Candid(e.to_string()))
    }
}

impl IcBackend for Harness {
    type MessageId = MessageId;
    type SubnetId = SubnetId;

    fn create_canister_with_settings(&self, sender: Option<Principal>, settings: Option<CanisterSettings>) -> Principal {
        Harness::create_canister_with_settings(self, sender, settings)
    }
    fn create_canister_on_subnet(&self, sender: Option<Principal>, settings: Option<CanisterSettings>, subnet: SubnetId) -> Principal {
        Harness::create_canister_on_subnet(self, sender, settings, subnet)
    }
    fn subnet_of(&self, canister: Principal) -> Option<SubnetId> {
        Harness::subnet_of(self, canister)
    }
    fn add_cycles(&self, canister: Principal, amount: u128) -> u128 {
        Harness::add_cycles(self, canister, amount)
    }
    fn cycle_balance(&self, canister: Principal) -> u128 {
        Harness::cycle_balance(self, canister)
    }
    fn install_canister(&self, canister: Principal, wasm: Vec<u8>, arg: Vec<u8>, sender: Option<Principal>) {
        Harness::install_canister(self, canister, wasm, arg, sender)
    }
    fn try_install_canister(&self, canister: Principal, wasm: Vec<u8>, arg: Vec<u8>, sender: Option<Principal>) -> Result<(), RejectResponse> {
        Harness::try_install_canister(self, canister, wasm, arg, sender)
    }
    fn upgrade_canister(&self, canister: Principal, wasm: Vec<u8>, arg: Vec<u8>, sender: Option<Principal>) -> Result<(), RejectResponse> {
        Harness::upgrade_canister(self, canister, wasm, arg, sender)
    }
    fn reinstall_canister(&self, canister: Principal, wasm: Vec<u8>, arg: Vec<u8>, sender: Option<Principal>) -> Result<(), RejectResponse> {
        Harness::reinstall_canister(self, canister, wasm, arg, sender)
    }
    fn update_call(&self, canister: Principal, sender: Principal, method: &str, payload: Vec<u8>) -> CallResult {
        Harness::update_call(self, canister, sender, method, payload)
    }
    fn query_call(&self, canister: Principal, sender: Principal, method: &str, payload: Vec<u8>) -> CallResult {
        Harness::query_call(self, canister, sender, method, payload)
    }
    fn submit_call(&self, canister: Principal, sender: Principal, method: &str, payload: Vec<u8>) -> Result<MessageId, RejectResponse> {
        Harness::submit_call(self, canister, sender, method, payload)
    }
    fn await_call(&self, id: MessageId) -> CallResult {
        Harness::await_call(self, id)
    }
    fn tick(&self) {
        Harness::tick(self)
    }
    fn advance_time(&self, duration: Duration) {
        Harness::advance_time(self, duration)
    }
    fn time_nanos(&self) -> u64 {
        self.get_time().as_nanos_since_unix_epoch()
    }
    fn set_controllers(&self, canister: Principal, sender: Option<Principal>, controllers: Vec<Principal>) -> Result<(), RejectResponse> {
        Harness::set_controllers(self, canister, sender, controllers)
    }
    fn stop_canister(&self, canister: Principal, sender: Option<Principal>) -> Result<(), RejectResponse> {
        Harness::stop_canister(self, canister, sender)
    }
    fn start_canister(&self, canister: Principal, sender: Option<Principal>) -> Result<(), RejectResponse> {
        Harness::start_canister(self, canister, sender)
    }
    fn get_stable_memory(&self, canister: Principal) -> Vec<u8> {
        Harness::get_stable_memory(self, canister)
    }
    fn fetch_canister_logs(&self, canister: Principal, sender: Principal) -> Result<Vec<LogRecord>, RejectResponse> {
        Harness::fetch_canister_logs(self, canister, sender)
    }
    fn take_canister_snapshot(&self, canister: Principal, sender: Option<Principal>, replace: Option<Vec<u8>>) -> Result<Snapshot, RejectResponse> {
        Harness::take_canister_snapshot(self, canister, sender, replace)
    }
    fn load_canister_snapshot(&self, canister: Principal, sender: Option<Principal>, snapshot: Vec<u8>) -> Result<(), RejectResponse> {
        Harness::load_canister_snapshot(self, canister, sender, snapshot)
    }
    fn list_canister_snapshots(&self, canister: Principal, sender: Option<Principal>) -> Result<Vec<Snapshot>, RejectResponse> {
        Harness::list_canister_snapshots(self, canister, sender)
    }
    fn delete_canister_snapshot(&self, canister: Principal, sender: Option<Principal>, snapshot: Vec<u8>) -> Result<(), RejectResponse> {
        Harness::delete_canister_snapshot(self, canister, sender, snapshot)
    }
}

#[cfg(feature = "pocket-ic")]
mod pocket {
    use super::*;
    use crate::types::{ErrorCode, RejectCode};
    use pocket_ic::{CanisterInstallMode, PocketIc};
    use sha2::{Digest, Sha256};

    /// The largest chunk the management canister's chunk store takes.
    const INSTALL_CHUNK_BYTES: usize = 1 << 20;

    /// PocketIC's snapshot record (of its own management types' version) as the harness's.
    fn snapshot(s: pocket_ic::Snapshot) -> Snapshot {
        Snapshot { id: s.id, taken_at_timestamp: s.taken_at_timestamp, total_size: s.total_size }
    }

    fn reject(r: pocket_ic::RejectResponse) -> RejectResponse {
        RejectResponse {
            reject_code: RejectCode::from_u32(r.reject_code as u32).unwrap_or(RejectCode::SysFatal),
            error_code: ErrorCode::from_u16(r.error_code as u16).unwrap_or(ErrorCode::CanisterTrapped),
            reject_message: r.reject_message,
            certified: r.certified,
        }
    }

    fn settings(s: CanisterSettings) -> pocket_ic::CanisterSettings {
        pocket_ic::CanisterSettings {
            controllers: s.controllers,
            compute_allocation: s.compute_allocation,
            memory_allocation: s.memory_allocation,
            freezing_threshold: s.freezing_threshold,
            reserved_cycles_limit: s.reserved_cycles_limit,
            wasm_memory_limit: s.wasm_memory_limit,
            wasm_memory_threshold: s.wasm_memory_threshold,
            // pocket-ic names its own version of the type, which it does not export: the same
            // candid value carries it over.
            log_visibility: s.log_visibility.map(|v| {
                candid::decode_one(&candid::encode_one(v).expect("a log visibility encodes")).expect("the same candid type decodes")
            }),
            environment_variables: s.environment_variables.map(|variables| {
                variables.into_iter().map(|v| pocket_ic::EnvironmentVariable { name: v.name, value: v.value }).collect()
            }),
        }
    }

    impl IcBackend for PocketIc {
        type MessageId = pocket_ic::common::rest::RawMessageId;
        type SubnetId = Principal;

        fn create_canister_with_settings(&self, sender: Option<Principal>, s: Option<CanisterSettings>) -> Principal {
            PocketIc::create_canister_with_settings(self, sender, s.map(settings))
        }
        fn create_canister_on_subnet(&self, sender: Option<Principal>, s: Option<CanisterSettings>, subnet: Principal) -> Principal {
            PocketIc::create_canister_on_subnet(self, sender, s.map(settings), subnet)
        }
        fn subnet_of(&self, canister: Principal) -> Option<Principal> {
            PocketIc::get_subnet(self, canister)
        }
        fn add_cycles(&self, canister: Principal, amount: u128) -> u128 {
            PocketIc::add_cycles(self, canister, amount)
        }
        fn cycle_balance(&self, canister: Principal) -> u128 {
            PocketIc::cycle_balance(self, canister)
        }
        fn install_canister(&self, canister: Principal, wasm: Vec<u8>, arg: Vec<u8>, sender: Option<Principal>) {
            PocketIc::install_canister(self, canister, wasm, arg, sender)
        }
        /// PocketIC's own install panics on failure; this is its fallible form, through the
        /// chunk store so that a module of any size fits.
        fn try_install_canister(&self, canister: Principal, wasm: Vec<u8>, arg: Vec<u8>, sender: Option<Principal>) -> Result<(), RejectResponse> {
            self.clear_chunk_store(canister, sender).map_err(reject)?;
            let chunk_hashes = wasm
                .chunks(INSTALL_CHUNK_BYTES)
                .map(|chunk| self.upload_chunk(canister, sender, chunk.to_vec()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(reject)?;
            let module_hash = Sha256::digest(&wasm).to_vec();
            PocketIc::install_chunked_canister(self, canister, sender, CanisterInstallMode::Install, canister, chunk_hashes, module_hash, arg)
                .map_err(reject)
        }
        fn upgrade_canister(&self, canister: Principal, wasm: Vec<u8>, arg: Vec<u8>, sender: Option<Principal>) -> Result<(), RejectResponse> {
            PocketIc::upgrade_canister(self, canister, wasm, arg, sender).map_err(reject)
        }
        fn reinstall_canister(&self, canister: Principal, wasm: Vec<u8>, arg: Vec<u8>, sender: Option<Principal>) -> Result<(), RejectResponse> {
            PocketIc::reinstall_canister(self, canister, wasm, arg, sender).map_err(reject)
        }
        fn update_call(&self, canister: Principal, sender: Principal, method: &str, payload: Vec<u8>) -> CallResult {
            PocketIc::update_call(self, canister, sender, method, payload).map_err(reject)
        }
        fn query_call(&self, canister: Principal, sender: Principal, method: &str, payload: Vec<u8>) -> CallResult {
            PocketIc::query_call(self, canister, sender, method, payload).map_err(reject)
        }
        fn submit_call(&self, canister: Principal, sender: Principal, method: &str, payload: Vec<u8>) -> Result<Self::MessageId, RejectResponse> {
            PocketIc::submit_call(self, canister, sender, method, payload).map_err(reject)
        }
        fn await_call(&self, id: Self::MessageId) -> CallResult {
            PocketIc::await_call(self, id).map_err(reject)
        }
        fn tick(&self) {
            PocketIc::tick(self)
        }
        fn advance_time(&self, duration: Duration) {
            PocketIc::advance_time(self, duration)
        }
        fn time_nanos(&self) -> u64 {
            self.get_time().as_nanos_since_unix_epoch()
        }
        fn set_controllers(&self, canister: Principal, sender: Option<Principal>, controllers: Vec<Principal>) -> Result<(), RejectResponse> {
            PocketIc::set_controllers(self, canister, sender, controllers).map_err(reject)
        }
        fn stop_canister(&self, canister: Principal, sender: Option<Principal>) -> Result<(), RejectResponse> {
            PocketIc::stop_canister(self, canister, sender).map_err(reject)
        }
        fn start_canister(&self, canister: Principal, sender: Option<Principal>) -> Result<(), RejectResponse> {
            PocketIc::start_canister(self, canister, sender).map_err(reject)
        }
        fn get_stable_memory(&self, canister: Principal) -> Vec<u8> {
            PocketIc::get_stable_memory(self, canister)
        }
        fn fetch_canister_logs(&self, canister: Principal, sender: Principal) -> Result<Vec<LogRecord>, RejectResponse> {
            let records = PocketIc::fetch_canister_logs(self, canister, sender).map_err(reject)?;
            Ok(records.into_iter().map(|r| LogRecord { idx: r.idx, timestamp_nanos: r.timestamp_nanos, content: r.content }).collect())
        }
        fn take_canister_snapshot(&self, canister: Principal, sender: Option<Principal>, replace: Option<Vec<u8>>) -> Result<Snapshot, RejectResponse> {
            PocketIc::take_canister_snapshot(self, canister, sender, replace).map(snapshot).map_err(reject)
        }
        fn load_canister_snapshot(&self, canister: Principal, sender: Option<Principal>, snapshot: Vec<u8>) -> Result<(), RejectResponse> {
            PocketIc::load_canister_snapshot(self, canister, sender, snapshot).map_err(reject)
        }
        fn list_canister_snapshots(&self, canister: Principal, sender: Option<Principal>) -> Result<Vec<Snapshot>, RejectResponse> {
            PocketIc::list_canister_snapshots(self, canister, sender).map(|all| all.into_iter().map(snapshot).collect()).map_err(reject)
        }
        fn delete_canister_snapshot(&self, canister: Principal, sender: Option<Principal>, snapshot: Vec<u8>) -> Result<(), RejectResponse> {
            PocketIc::delete_canister_snapshot(self, canister, sender, snapshot).map_err(reject)
        }
    }
}
