//! The `ic0` system API: what a canister's imports do, and where each may run.
//!
//! Host functions are named as in the interface spec's `ic0.txt`. Each checks the context it
//! runs in against the spec's table (a call outside it traps with IC0504, as on the IC),
//! charges its instructions (a fixed part plus one per byte moved,
//! rs/embedders/src/wasmtime_embedder/system_api_complexity.rs) into the same counter as the
//! wasm code, and journals every heap page it writes so a trap undoes it.

use std::collections::BTreeMap;
use std::sync::Arc;

use candid::Principal;
use wasmtime::{Caller, Linker, Memory};

use crate::config::{CostTable, Limits};
use crate::instrument::{self, PAGE_SIZE};
use crate::pages::{PageJournal, SizeMark, StableMemory, WASM_PAGE_SIZE};
use crate::types::RejectCode;

/// The kind of execution running, which decides the system calls it may make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ApiContext {
    Start,
    /// `canister_init` and `canister_post_upgrade`.
    #[default]
    Init,
    PreUpgrade,
    Update,
    /// A query method executed as an update (its changes are discarded).
    ReplicatedQuery,
    NonReplicatedQuery,
    ReplyCallback,
    RejectCallback,
    Cleanup,
    GlobalTimer,
    Heartbeat,
    InspectMessage,
    /// `canister_composite_query` methods and their reply, reject and cleanup callbacks.
    CompositeQuery,
    CompositeReplyCallback,
    CompositeRejectCallback,
    CompositeCleanup,
    /// `canister_on_low_wasm_memory`, a system task as timers and heartbeats are.
    OnLowWasmMemory,
}

impl ApiContext {
    fn bit(self) -> u32 {
        1 << self as u32
    }

    /// Whether the execution runs in replicated mode (`ic0.in_replicated_execution`): all but
    /// queries outside consensus and `canister_inspect_message`.
    pub fn is_replicated(self) -> bool {
        !matches!(
            self,
            ApiContext::NonReplicatedQuery
                | ApiContext::InspectMessage
                | ApiContext::CompositeQuery
                | ApiContext::CompositeReplyCallback
                | ApiContext::CompositeRejectCallback
                | ApiContext::CompositeCleanup
        )
    }

    /// The mode's name in the IC's contract-violation messages.
    pub fn mode_name(self) -> &'static str {
        match self {
            ApiContext::Start => "start",
            ApiContext::Init => "init",
            ApiContext::PreUpgrade => "pre upgrade",
            ApiContext::Update => "update",
            ApiContext::ReplicatedQuery => "replicated query",
            ApiContext::NonReplicatedQuery => "non replicated query",
            ApiContext::ReplyCallback => "reply callback",
            ApiContext::RejectCallback => "reject callback",
            ApiContext::Cleanup => "cleanup",
            ApiContext::GlobalTimer => "global timer",
            ApiContext::Heartbeat => "heartbeat",
            ApiContext::InspectMessage => "inspect message",
            ApiContext::CompositeQuery => "composite query",
            ApiContext::CompositeReplyCallback => "composite reply callback",
            ApiContext::CompositeRejectCallback => "composite reject callback",
            ApiContext::CompositeCleanup => "composite cleanup",
            ApiContext::OnLowWasmMemory => "on low Wasm memory",
        }
    }
}

/// Sets of contexts, as the spec's letters: I G U Q CQ Ry Rt CRy CRt C CC T F (and s for start).
mod allowed {
    use super::ApiContext::*;
    const fn b(c: super::ApiContext) -> u32 {
        1 << c as u32
    }
    pub const I: u32 = b(Init);
    pub const G: u32 = b(PreUpgrade);
    pub const U: u32 = b(Update);
    pub const RQ: u32 = b(ReplicatedQuery);
    pub const NRQ: u32 = b(NonReplicatedQuery);
    pub const Q: u32 = RQ | NRQ;
    pub const RY: u32 = b(ReplyCallback);
    pub const RT: u32 = b(RejectCallback);
    pub const C: u32 = b(Cleanup);
    pub const T: u32 = b(GlobalTimer) | b(Heartbeat) | b(OnLowWasmMemory);
    pub const F: u32 = b(InspectMessage);
    pub const S: u32 = b(Start);
    pub const CQ: u32 = b(CompositeQuery);
    pub const CRY: u32 = b(CompositeReplyCallback);
    pub const CRT: u32 = b(CompositeRejectCallback);
    pub const CC: u32 = b(CompositeCleanup);
    /// A composite query method and its reply and reject callbacks: where calls may be made.
    pub const COMPOSITE: u32 = CQ | CRY | CRT;
    /// `*`: everywhere but the start function.
    pub const ANY: u32 = I | G | U | Q | RY | RT | C | T | F | COMPOSITE | CC;
    pub const EVERYWHERE: u32 = ANY | S;
    pub const CALLS: u32 = U | RY | RT | T;
    /// Replicated executions other than start and inspect_message.
    pub const REPLICATED: u32 = I | G | U | RQ | RY | RT | C | T;
}

/// A call being assembled or performed by the running execution.
#[derive(Clone, Debug)]
pub struct OutgoingCall {
    pub callee: Principal,
    pub method: String,
    pub payload: Vec<u8>,
    pub cycles: u128,
    /// Table index and environment of the reply, reject and cleanup callbacks.
    pub on_reply: (u32, u32),
    pub on_reject: (u32, u32),
    pub on_cleanup: Option<(u32, u32)>,
    /// Seconds, for a bounded-wait call.
    pub timeout_seconds: Option<u32>,
    /// Cycles taken at `call_perform` for the call, beyond the attached ones.
    pub prepaid: u128,
}

/// How the running execution answered its call context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Reply(Vec<u8>),
    Reject(String),
}

/// Everything one execution sees and produces, besides memory.
#[derive(Debug)]
pub struct Execution {
    pub context: ApiContext,
    pub canister_id: Principal,
    pub caller: Principal,
    pub arg: Vec<u8>,
    /// `msg_method_name` in inspect_message.
    pub method_name: String,
    /// In a reject callback: the reject.
    pub reject: Option<(RejectCode, String)>,
    /// Whether the call context was answered by an earlier execution.
    pub already_responded: bool,
    pub reply_buffer: Vec<u8>,
    pub response: Option<Response>,
    pub cycles_available: u128,
    pub cycles_accepted: u128,
    pub cycles_refunded: u128,
    /// The canister's balance as this execution changes it.
    pub balance: u128,
    /// Cycles the freezing threshold keeps back from spending.
    pub freezing_reserve: u128,
    pub pending_call: Option<OutgoingCall>,
    pub calls: Vec<OutgoingCall>,
    pub time: u64,
    pub deadline: u64,
    pub controllers: Vec<Principal>,
    pub version: u64,
    /// 1 running, 2 stopping, 3 stopped.
    pub status: u32,
    pub global_timer: u64,
    pub certified_data: Option<Vec<u8>>,
    pub logs: Vec<Vec<u8>>,
    pub instruction_limit: u64,
    /// Instructions of earlier executions of the same call context.
    pub call_context_instructions: u64,
    pub message_accepted: bool,
    pub limits: Limits,
    pub costs: CostTable,
    pub subnet_id: Principal,
    /// The `wasm_memory_limit` setting in bytes, enforced on growth in updates and install
    /// hooks; `None` where the IC does not enforce it.
    pub wasm_memory_limit: Option<u64>,
    pub environment_variables: EnvironmentVariables,
}

/// A canister's environment variables, kept sorted by name as the IC keeps them (a map), so
/// `ic0.env_var_name_*` enumerate them in that order; each execution shares them, uncopied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvironmentVariables(Arc<BTreeMap<String, String>>);

impl EnvironmentVariables {
    pub fn new(variables: BTreeMap<String, String>) -> Self {
        EnvironmentVariables(Arc::new(variables))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The name at `index` in name order.
    pub fn name(&self, index: usize) -> Option<&str> {
        self.0.keys().nth(index).map(String::as_str)
    }

    pub fn value(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// `(name, value)` in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(name, value)| (name.as_str(), value.as_str()))
    }
}

impl serde::Serialize for EnvironmentVariables {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for EnvironmentVariables {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::deserialize(deserializer).map(EnvironmentVariables::new)
    }
}

impl Default for Execution {
    fn default() -> Self {
        Execution {
            context: ApiContext::default(),
            canister_id: Principal::anonymous(),
            caller: Principal::anonymous(),
            arg: Vec::new(),
            method_name: String::new(),
            reject: None,
            already_responded: false,
            reply_buffer: Vec::new(),
            response: None,
            cycles_available: 0,
            cycles_accepted: 0,
            cycles_refunded: 0,
            balance: 0,
            freezing_reserve: 0,
            pending_call: None,
            calls: Vec::new(),
            time: 0,
            deadline: 0,
            controllers: Vec::new(),
            version: 0,
            status: 1,
            global_timer: 0,
            certified_data: None,
            logs: Vec::new(),
            instruction_limit: 0,
            call_context_instructions: 0,
            message_accepted: false,
            limits: Limits::default(),
            costs: CostTable::default(),
            subnet_id: Principal::anonymous(),
            wasm_memory_limit: None,
            environment_variables: EnvironmentVariables::default(),
        }
    }
}

impl Execution {
    fn liquid_balance(&self) -> u128 {
        self.balance.saturating_sub(self.freezing_reserve)
    }

    fn max_reply_bytes(&self) -> usize {
        if !self.context.is_replicated() {
            self.limits.max_query_reply_bytes
        } else {
            self.limits.max_reply_bytes
        }
    }

    fn stable_dirty_limit(&self) -> u64 {
        match self.context {
            ApiContext::Init | ApiContext::PreUpgrade | ApiContext::Start => self.limits.stable_dirty_bytes_upgrade,
            ApiContext::NonReplicatedQuery
            | ApiContext::ReplicatedQuery
            | ApiContext::CompositeQuery
            | ApiContext::CompositeReplyCallback
            | ApiContext::CompositeRejectCallback
            | ApiContext::CompositeCleanup => self.limits.stable_dirty_bytes_query,
            _ => self.limits.stable_dirty_bytes_update,
        }
    }
}

/// Why an execution stopped early, besides a wasm trap. The texts are the replica's
/// (rs/interfaces/src/execution_environment/errors.rs and system_api.rs in dfinity/ic).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostTrap {
    #[error("Canister called `ic0.trap` with message: '{0}'")]
    CalledTrap(String),
    #[error("Canister violated contract: {message}")]
    ContractViolation { message: String, help: Help },
    #[error("Canister exceeded the limit of {0} instructions for single message execution.")]
    InstructionLimit(u64),
    #[error(
        "Canister exceeded memory access limits: Exceeded the limit for the number of modified pages in the stable memory in a single message execution: limit: {0} KB."
    )]
    StableDirtyLimit(u64),
    #[error("Canister trapped: stable memory out of bounds")]
    StableOutOfBounds,
    #[error("Canister trapped: 32 bit stable memory api used on a memory larger than 4GB")]
    Stable32Bit,
    #[error("Canister {0} is out of cycles")]
    OutOfCycles(Principal),
    #[error(
        "Canister exceeded its current Wasm memory limit of {limit} bytes. The peak Wasm memory usage was {peak} bytes. If the canister reaches 4GiB, then it may stop functioning and may become unrecoverable. Please reach out to the canister owner to investigate the reason for the increased memory usage. It might be necessary to move data from the Wasm memory to the stable memory. If such high Wasm memory usage is expected and safe, then the developer can increase the Wasm memory limit in the canister settings."
    )]
    WasmMemoryLimit { limit: u64, peak: u64 },
    #[error("Environment variable index {index} is out of bounds. The number of environment variables is {count}.")]
    EnvVarIndexOutOfBounds { index: usize, count: usize },
    #[error("Environment variable {0} not found.")]
    EnvVarNotFound(String),
}

/// The help line the replica appends to an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Help {
    None,
    Trapped,
    TrappedExplicitly,
    WrongMode,
    Toolchain,
    InstructionLimit,
    ReplyTooLarge,
    RequestTooLarge,
    MethodNotFound,
    WasmModuleNotFound,
    WasmMemoryLimit,
    /// A suggestion without a documentation link.
    EnvVarName,
}

const DOCS: &str = "https://internetcomputer.org/docs/current/references/execution-errors";

impl Help {
    pub fn text(self) -> String {
        let (suggestion, anchor) = match self {
            Help::None => return String::new(),
            Help::Toolchain => {
                return "This is likely an error with the compiler/CDK toolchain being used to build the canister. Please report the error to IC devs on the forum: https://forum.dfinity.org and include which language/CDK was used to create the canister.".into();
            }
            Help::Trapped => (
                "Consider gracefully handling failures from this canister or altering the canister to handle exceptions.",
                "trapped",
            ),
            Help::TrappedExplicitly => (
                "Consider gracefully handling failures from this canister or altering the canister to handle exceptions.",
                "trapped-explicitly",
            ),
            Help::WrongMode => (
                "Check the ICP documentation to make sure APIs are being called in the correct message types.",
                "calling-a-system-api-from-the-wrong-mode",
            ),
            Help::InstructionLimit => (
                "Try optimizing this method to consume fewer instructions or split the work across multiple messages.",
                "instruction-limit-exceeded",
            ),
            Help::ReplyTooLarge => (
                "Consider checking the response size and returning an error if it is too long.",
                "msg_reply_data_append-payload-too-large",
            ),
            Help::RequestTooLarge => (
                "Check the canister for errors or redesign the target API to allow shorter messages",
                "canister-made-a-call-with-too-large-payload",
            ),
            Help::MethodNotFound => (
                "Check that the method being called is exported by the target canister.",
                "method-not-found",
            ),
            Help::WasmModuleNotFound => (
                "Please install code to this canister before calling it.",
                "wasm-module-not-found",
            ),
            Help::WasmMemoryLimit => (
                "Try checking the canister for a possible memory leak or modifying it to use more stable memory instead of Wasm memory.",
                "wasm-memory-limit-exceeded",
            ),
            Help::EnvVarName => return "Provide a valid UTF-8 string for the environment variable name.".into(),
        };
        format!("{suggestion} See documentation: {DOCS}#{anchor}")
    }
}

impl HostTrap {
    pub fn error_code(&self) -> crate::types::ErrorCode {
        use crate::types::ErrorCode::*;
        match self {
            HostTrap::CalledTrap(_) => CanisterCalledTrap,
            HostTrap::ContractViolation { .. }
            | HostTrap::OutOfCycles(_)
            | HostTrap::EnvVarIndexOutOfBounds { .. }
            | HostTrap::EnvVarNotFound(_) => CanisterContractViolation,
            HostTrap::InstructionLimit(_) => CanisterInstructionLimitExceeded,
            HostTrap::StableDirtyLimit(_) => CanisterMemoryAccessLimitExceeded,
            HostTrap::StableOutOfBounds | HostTrap::Stable32Bit => CanisterTrapped,
            HostTrap::WasmMemoryLimit { .. } => CanisterWasmMemoryLimitExceeded,
        }
    }

    pub fn help(&self) -> Help {
        match self {
            HostTrap::CalledTrap(_) => Help::TrappedExplicitly,
            HostTrap::ContractViolation { help, .. } => *help,
            HostTrap::InstructionLimit(_) => Help::InstructionLimit,
            HostTrap::StableOutOfBounds | HostTrap::Stable32Bit => Help::Trapped,
            HostTrap::WasmMemoryLimit { .. } => Help::WasmMemoryLimit,
            HostTrap::StableDirtyLimit(_)
            | HostTrap::OutOfCycles(_)
            | HostTrap::EnvVarIndexOutOfBounds { .. }
            | HostTrap::EnvVarNotFound(_) => Help::None,
        }
    }
}

/// Heap bookkeeping of an instance: the logical size (wasm pages) and the message's journal.
#[derive(Default)]
pub struct Heap {
    pub logical_pages: u64,
    /// The largest size a wasm32 memory may grow to, in wasm pages.
    pub limit_pages: u64,
    pub journal: PageJournal,
    pub mark: SizeMark,
}

/// Handles into the instance that host functions use.
#[derive(Clone, Copy)]
pub struct Handles {
    pub memory: Option<Memory>,
    pub bitmap: Memory,
    pub counter: wasmtime::Global,
}

/// The data of a canister's wasmtime store.
pub struct SysApi {
    pub stable: StableMemory,
    pub heap: Heap,
    pub handles: Option<Handles>,
    pub exec: Execution,
}

type HostResult<T> = wasmtime::Result<T>;

fn violation(msg: impl Into<String>) -> wasmtime::Error {
    violation_with(msg, Help::Toolchain)
}

fn violation_with(msg: impl Into<String>, help: Help) -> wasmtime::Error {
    wasmtime::Error::new(HostTrap::ContractViolation { message: msg.into(), help })
}

fn handles(c: &Caller<'_, SysApi>) -> Handles {
    c.data().handles.expect("handles are set right after instantiation")
}

/// Checks that `name` may run in the current context, then charges `instructions`.
fn enter(c: &mut Caller<'_, SysApi>, name: &str, allowed: u32, instructions: u64) -> HostResult<()> {
    let context = c.data().exec.context;
    if context.bit() & allowed == 0 {
        return Err(violation_with(
            format!("\"ic0_{name}\" cannot be executed in {} mode", context.mode_name()),
            Help::WrongMode,
        ));
    }
    charge(c, instructions)
}

/// Subtracts `instructions` from the counter; traps past the limit.
pub fn charge(c: &mut Caller<'_, SysApi>, instructions: u64) -> HostResult<()> {
    let counter = handles(c).counter;
    let left = counter.get(&mut *c).unwrap_i64().saturating_sub(instructions.min(i64::MAX as u64) as i64);
    counter.set(&mut *c, wasmtime::Val::I64(left))?;
    if left < 0 {
        return Err(wasmtime::Error::new(HostTrap::InstructionLimit(c.data().exec.instruction_limit)));
    }
    Ok(())
}

/// Instructions used so far by the running execution.
fn instructions_used(c: &mut Caller<'_, SysApi>) -> u64 {
    let left = handles(c).counter.get(&mut *c).unwrap_i64();
    c.data().exec.instruction_limit.saturating_sub(left.max(0) as u64)
}

/// Checks that `[start, start+len)` lies in `size` bytes, as the replica's `valid_subslice`.
fn check_slice(what: &str, start: u64, len: u64, size: u64) -> HostResult<()> {
    match start.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(violation(format!("{what}: src={start} + length={len} exceeds the slice size={size}"))),
    }
}

/// Bytes `[src, src+len)` of the heap (logical size).
fn read_heap(c: &mut Caller<'_, SysApi>, name: &str, src: u64, len: u64) -> HostResult<Vec<u8>> {
    let size = c.data().heap.logical_pages * WASM_PAGE_SIZE;
    check_slice(&format!("{name} heap"), src, len, size)?;
    let Some(memory) = handles(c).memory else { return Ok(Vec::new()) };
    Ok(memory.data(&*c)[src as usize..(src + len) as usize].to_vec())
}

/// Writes `data` to the heap at `dst`, journaling the pages first.
fn write_heap(c: &mut Caller<'_, SysApi>, name: &str, dst: u64, data: &[u8]) -> HostResult<()> {
    let size = c.data().heap.logical_pages * WASM_PAGE_SIZE;
    check_slice(&format!("{name} heap"), dst, data.len() as u64, size)?;
    if data.is_empty() {
        return Ok(());
    }
    journal_heap_range(c, dst, data.len() as u64);
    let memory = handles(c).memory.expect("checked by the size above");
    memory.data_mut(&mut *c)[dst as usize..dst as usize + data.len()].copy_from_slice(data);
    Ok(())
}

/// Journals the heap pages of `[start, start+len)`, which the caller checked to be in bounds.
fn journal_heap_range(c: &mut Caller<'_, SysApi>, start: u64, len: u64) {
    let first = start / PAGE_SIZE as u64;
    let last = (start + len - 1) / PAGE_SIZE as u64;
    for page in first..=last {
        journal_heap_page(c, page);
    }
}

/// Saves heap page `page` and the next one before their first write in this message, and marks
/// `page` in the bitmap the instrumented code checks.
pub fn journal_heap_page(c: &mut Caller<'_, SysApi>, page: u64) {
    let h = handles(c);
    let Some(memory) = h.memory else { return };
    let physical_pages = (memory.data_size(&*c) / PAGE_SIZE) as u64;
    if page >= physical_pages {
        return; // the access traps
    }
    let bitmap_ptr = h.bitmap.data_ptr(&*c);
    let (bytes, api) = memory.data_and_store_mut(&mut *c);
    let fresh_from = api.heap.mark.fresh_from();
    api.heap.journal.touch(page, bytes, fresh_from);
    if page + 1 < physical_pages {
        api.heap.journal.touch(page + 1, bytes, fresh_from);
    }
    // SAFETY: the bitmap memory holds MAX_HEAP_PAGES + 1 bytes and `page` is below the number
    // of pages of a 4 GiB memory; it is a different memory from `bytes`.
    unsafe { *bitmap_ptr.add(page as usize) = 1 };
}

/// `ic0.*_copy`: `size` bytes from `offset` of what `source` picks out of the execution, to
/// the heap at `dst`, without copying the source first.
fn copy_out(
    c: &mut Caller<'_, SysApi>,
    name: &str,
    dst: u64,
    offset: u64,
    size: u64,
    source: impl Fn(&Execution) -> &[u8],
) -> HostResult<()> {
    let source_len = source(&c.data().exec).len() as u64;
    check_slice(&format!("{name} payload"), offset, size, source_len)?;
    let heap_size = c.data().heap.logical_pages * WASM_PAGE_SIZE;
    check_slice(&format!("{name} heap"), dst, size, heap_size)?;
    let Some(memory) = handles(c).memory.filter(|_| size > 0) else { return Ok(()) };
    journal_heap_range(c, dst, size);
    let (heap, api) = memory.data_and_store_mut(&mut *c);
    heap[dst as usize..(dst + size) as usize].copy_from_slice(&source(&api.exec)[offset as usize..(offset + size) as usize]);
    Ok(())
}

fn write_u128(c: &mut Caller<'_, SysApi>, name: &str, dst: u64, value: u128) -> HostResult<()> {
    write_heap(c, name, dst, &value.to_le_bytes())
}

fn read_principal(c: &mut Caller<'_, SysApi>, name: &str, src: u64, size: u64) -> HostResult<Principal> {
    let bytes = read_heap(c, name, src, size)?;
    Principal::try_from_slice(&bytes).map_err(|e| violation(format!("{name}: invalid principal: {e}")))
}

fn read_utf8(c: &mut Caller<'_, SysApi>, name: &str, src: u64, size: u64) -> HostResult<String> {
    String::from_utf8(read_heap(c, name, src, size)?)
        .map_err(|_| violation(format!("{name}: invalid UTF-8 string provided")))
}

fn pending_call<'a>(c: &'a mut Caller<'_, SysApi>, name: &str) -> HostResult<&'a mut OutgoingCall> {
    c.data_mut()
        .exec
        .pending_call
        .as_mut()
        .ok_or_else(|| violation(format!("{name} called when no call is under construction.")))
}

fn respond(c: &mut Caller<'_, SysApi>, name: &str, response: Response) -> HostResult<()> {
    let exec = &mut c.data_mut().exec;
    if exec.already_responded || exec.response.is_some() {
        return Err(violation(format!("{name}: the call is already replied")));
    }
    exec.response = Some(response);
    Ok(())
}

/// An `i32` address or length of the wasm32 API as the unsigned value it stands for.
fn u(x: i32) -> u64 {
    x as u32 as u64
}

fn u128_of(high: i64, low: i64) -> u128 {
    ((high as u64 as u128) << 64) | low as u64 as u128
}

fn stable_write(c: &mut Caller<'_, SysApi>, name: &str, offset: u64, src: u64, size: u64) -> HostResult<()> {
    if !c.data().stable.in_bounds(offset, size) {
        return Err(wasmtime::Error::new(HostTrap::StableOutOfBounds));
    }
    let heap_size = c.data().heap.logical_pages * WASM_PAGE_SIZE;
    check_slice(&format!("{name} heap"), src, size, heap_size)?;
    let new_pages = match handles(c).memory {
        Some(memory) if size > 0 => {
            // Straight from the heap into stable memory, without an intermediate copy.
            let (heap, api) = memory.data_and_store_mut(&mut *c);
            let new_pages = api.stable.journal_range(offset, size);
            api.stable.write_journaled(offset, &heap[src as usize..(src + size) as usize]);
            new_pages
        }
        _ => 0,
    };
    let api = c.data();
    let limit = api.exec.stable_dirty_limit();
    if api.stable.dirty_pages() as u64 * PAGE_SIZE as u64 > limit {
        return Err(wasmtime::Error::new(HostTrap::StableDirtyLimit(limit / 1024)));
    }
    charge(c, 1000 * new_pages)
}

fn stable_read(c: &mut Caller<'_, SysApi>, name: &str, dst: u64, offset: u64, size: u64) -> HostResult<()> {
    if !c.data().stable.in_bounds(offset, size) {
        return Err(wasmtime::Error::new(HostTrap::StableOutOfBounds));
    }
    let heap_size = c.data().heap.logical_pages * WASM_PAGE_SIZE;
    check_slice(&format!("{name} heap"), dst, size, heap_size)?;
    let Some(memory) = handles(c).memory.filter(|_| size > 0) else { return Ok(()) };
    journal_heap_range(c, dst, size);
    // Straight from stable memory into the heap, without an intermediate copy.
    let (heap, api) = memory.data_and_store_mut(&mut *c);
    heap[dst as usize..(dst + size) as usize].copy_from_slice(api.stable.read(offset, size));
    Ok(())
}

/// Pages the 32-bit stable memory API can address: 4 GiB.
const MAX_32BIT_STABLE_PAGES: u64 = 65536;

fn stable_grow(c: &mut Caller<'_, SysApi>, pages: u64, max_pages: u64) -> Option<u64> {
    let stable = &mut c.data_mut().stable;
    if stable.size().saturating_add(pages) > max_pages {
        return None;
    }
    stable.grow(pages)
}

fn check_32bit_stable(c: &Caller<'_, SysApi>) -> HostResult<()> {
    if c.data().stable.size() > MAX_32BIT_STABLE_PAGES {
        return Err(wasmtime::Error::new(HostTrap::Stable32Bit));
    }
    Ok(())
}

/// Adds the harness's host functions to `linker`: the `ic0` API and the imports the module
/// rewrite added.
pub fn link(linker: &mut Linker<SysApi>) -> wasmtime::Result<()> {
    use allowed::*;
    link_messages(linker)?;
    link_cycles(linker)?;
    link_canister_info(linker)?;
    link_environment_variables(linker)?;
    link_calls(linker)?;
    link_stable_memory(linker)?;

    linker.func_wrap("ic0", "global_timer_set", |mut c: Caller<'_, SysApi>, timestamp: i64| -> HostResult<i64> {
        enter(&mut c, "global_timer_set", I | G | U | RY | RT | C | T, 500)?;
        let exec = &mut c.data_mut().exec;
        Ok(std::mem::replace(&mut exec.global_timer, timestamp as u64) as i64)
    })?;
    linker.func_wrap("ic0", "certified_data_set", |mut c: Caller<'_, SysApi>, src: i32, size: i32| {
        enter(&mut c, "certified_data_set", I | G | U | RY | RT | T, 500 + u(size))?;
        let max = c.data().exec.limits.max_certified_data_bytes;
        if u(size) as usize > max {
            return Err(violation(format!(
                "ic0_certified_data_set failed because the passed data must be no larger than {max} bytes. Found {} bytes.",
                u(size)
            )));
        }
        let data = read_heap(&mut c, "ic0.certified_data_set", u(src), u(size))?;
        c.data_mut().exec.certified_data = Some(data);
        Ok(())
    })?;
    // The harness certifies nothing: there is never a certificate to read.
    linker.func_wrap("ic0", "data_certificate_present", |mut c: Caller<'_, SysApi>| -> HostResult<i32> {
        enter(&mut c, "data_certificate_present", ANY, 500)?;
        Ok(0)
    })?;
    linker.func_wrap("ic0", "data_certificate_size", |mut c: Caller<'_, SysApi>| -> HostResult<i32> {
        enter(&mut c, "data_certificate_size", NRQ | CQ, 500)?;
        Err(violation("ic0.data_certificate_size: no certificate is present"))
    })?;
    linker.func_wrap("ic0", "data_certificate_copy", |mut c: Caller<'_, SysApi>, _dst: i32, _off: i32, _size: i32| -> HostResult<()> {
        enter(&mut c, "data_certificate_copy", NRQ | CQ, 500)?;
        Err(violation("ic0.data_certificate_copy: no certificate is present"))
    })?;
    linker.func_wrap("ic0", "debug_print", |mut c: Caller<'_, SysApi>, src: i32, size: i32| {
        enter(&mut c, "debug_print", EVERYWHERE, 100 + u(size))?;
        let data = read_heap(&mut c, "ic0.debug_print", u(src), u(size))?;
        c.data_mut().exec.logs.push(data);
        Ok(())
    })?;
    linker.func_wrap("ic0", "trap", |mut c: Caller<'_, SysApi>, src: i32, size: i32| -> HostResult<()> {
        enter(&mut c, "trap", EVERYWHERE, 500 + u(size))?;
        let message = match read_heap(&mut c, "ic0.trap", u(src), u(size).min(32 << 10)) {
            Ok(data) => String::from_utf8_lossy(&data).into_owned(),
            Err(_) => "(trap message out of memory bounds)".to_string(),
        };
        Err(wasmtime::Error::new(HostTrap::CalledTrap(message)))
    })?;

    // The imports of the module rewrite.
    linker.func_wrap(instrument::HOST_MODULE, instrument::JOURNAL_PAGE, |mut c: Caller<'_, SysApi>, page: i32| {
        journal_heap_page(&mut c, u(page));
    })?;
    linker.func_wrap(instrument::HOST_MODULE, instrument::OUT_OF_INSTRUCTIONS, |c: Caller<'_, SysApi>| -> HostResult<()> {
        Err(wasmtime::Error::new(HostTrap::InstructionLimit(c.data().exec.instruction_limit)))
    })?;
    linker.func_wrap(instrument::HOST_MODULE, instrument::MEMORY_GROW, |mut c: Caller<'_, SysApi>, delta: i32| -> HostResult<i32> {
        let heap = &c.data().heap;
        let old = heap.logical_pages;
        let new = old + u(delta);
        if new > heap.limit_pages {
            return Ok(-1);
        }
        if let Some(limit) = c.data().exec.wasm_memory_limit
            && new * WASM_PAGE_SIZE > limit
        {
            let peak = new * WASM_PAGE_SIZE;
            return Err(wasmtime::Error::new(HostTrap::WasmMemoryLimit { limit, peak }));
        }
        let memory = handles(&c).memory.expect("memory.grow implies a memory");
        let physical = memory.size(&c);
        if new > physical && memory.grow(&mut c, new - physical).is_err() {
            return Ok(-1);
        }
        let heap = &mut c.data_mut().heap;
        heap.logical_pages = new;
        heap.mark.peak = heap.mark.peak.max(new);
        Ok(old as i32)
    })?;
    linker.func_wrap(instrument::HOST_MODULE, instrument::MEMORY_SIZE, |c: Caller<'_, SysApi>| -> i32 {
        c.data().heap.logical_pages as i32
    })?;
    Ok(())
}

/// A `*_size` / `*_copy` pair over bytes the execution can see.
fn link_blob(
    linker: &mut Linker<SysApi>,
    name: &'static str,
    allowed: u32,
    bytes: fn(&Execution) -> &[u8],
) -> wasmtime::Result<()> {
    let size_name: &'static str = Box::leak(format!("{name}_size").into_boxed_str());
    let copy_name: &'static str = Box::leak(format!("{name}_copy").into_boxed_str());
    linker.func_wrap("ic0", size_name, move |mut c: Caller<'_, SysApi>| -> HostResult<i32> {
        enter(&mut c, size_name, allowed, 500)?;
        Ok(bytes(&c.data().exec).len() as i32)
    })?;
    linker.func_wrap("ic0", copy_name, move |mut c: Caller<'_, SysApi>, dst: i32, off: i32, size: i32| {
        enter(&mut c, copy_name, allowed, 500 + u(size))?;
        copy_out(&mut c, &format!("ic0.{copy_name}"), u(dst), u(off), u(size), bytes)
    })?;
    Ok(())
}

fn link_messages(linker: &mut Linker<SysApi>) -> wasmtime::Result<()> {
    use allowed::*;
    link_blob(linker, "msg_arg_data", I | U | Q | RY | F | CQ | CRY, |e| &e.arg)?;
    link_blob(linker, "msg_caller", ANY, |e| e.caller.as_slice())?;
    link_blob(linker, "msg_caller_info_data", ANY, |_| &[])?;
    link_blob(linker, "msg_caller_info_signer", ANY, |_| &[])?;
    link_blob(linker, "msg_method_name", F, |e| e.method_name.as_bytes())?;
    link_blob(linker, "msg_reject_msg", RT | CRT, |e| e.reject.as_ref().map_or(&[][..], |(_, m)| m.as_bytes()))?;
    linker.func_wrap("ic0", "accept_message", |mut c: Caller<'_, SysApi>| {
        enter(&mut c, "accept_message", F, 500)?;
        let exec = &mut c.data_mut().exec;
        if exec.message_accepted {
            return Err(violation("ic0.accept_message: the function was already called."));
        }
        exec.message_accepted = true;
        Ok(())
    })?;
    linker.func_wrap("ic0", "msg_reject_code", |mut c: Caller<'_, SysApi>| -> HostResult<i32> {
        enter(&mut c, "msg_reject_code", RY | RT | CRY | CRT, 500)?;
        Ok(c.data().exec.reject.as_ref().map_or(0, |(code, _)| *code as i32))
    })?;
    linker.func_wrap("ic0", "msg_deadline", |mut c: Caller<'_, SysApi>| -> HostResult<i64> {
        enter(&mut c, "msg_deadline", U | Q | RY | RT | COMPOSITE, 500)?;
        Ok(c.data().exec.deadline as i64)
    })?;
    linker.func_wrap("ic0", "msg_reply_data_append", |mut c: Caller<'_, SysApi>, src: i32, size: i32| {
        enter(&mut c, "msg_reply_data_append", U | Q | RY | RT | COMPOSITE, 500 + u(size))?;
        let exec = &c.data().exec;
        if exec.already_responded || exec.response.is_some() {
            return Err(violation("ic0.msg_reply_data_append: the call is already replied."));
        }
        let total = exec.reply_buffer.len() + u(size) as usize;
        let max = exec.max_reply_bytes();
        if total > max {
            return Err(violation_with(
                format!("ic0.msg_reply_data_append: application payload size ({total}) cannot be larger than {max}."),
                Help::ReplyTooLarge,
            ));
        }
        let data = read_heap(&mut c, "ic0.msg_reply_data_append", u(src), u(size))?;
        c.data_mut().exec.reply_buffer.extend_from_slice(&data);
        Ok(())
    })?;
    linker.func_wrap("ic0", "msg_reply", |mut c: Caller<'_, SysApi>| {
        enter(&mut c, "msg_reply", U | Q | RY | RT | COMPOSITE, 500)?;
        let data = std::mem::take(&mut c.data_mut().exec.reply_buffer);
        respond(&mut c, "ic0.msg_reply", Response::Reply(data))
    })?;
    linker.func_wrap("ic0", "msg_reject", |mut c: Caller<'_, SysApi>, src: i32, size: i32| {
        enter(&mut c, "msg_reject", U | Q | RY | RT | COMPOSITE, 500 + u(size))?;
        let max = c.data().exec.max_reply_bytes();
        if u(size) as usize > max {
            return Err(violation(format!(
                "ic0.msg_reject: application payload size ({}) cannot be larger than {max}.",
                u(size)
            )));
        }
        let msg = read_utf8(&mut c, "ic0.msg_reject", u(src), u(size))?;
        respond(&mut c, "ic0.msg_reject", Response::Reject(msg))
    })?;
    Ok(())
}

fn link_cycles(linker: &mut Linker<SysApi>) -> wasmtime::Result<()> {
    use allowed::*;
    // Amounts the execution can read: (name, allowed, value).
    type Amount = fn(&Execution) -> u128;
    let readers: [(&'static str, u32, Amount); 4] = [
        ("msg_cycles_available128", U | RQ | RY | RT, |e| e.cycles_available - e.cycles_accepted),
        ("msg_cycles_refunded128", RY | RT, |e| e.cycles_refunded),
        ("canister_cycle_balance128", ANY, |e| e.balance),
        ("canister_liquid_cycle_balance128", ANY, |e| e.liquid_balance()),
    ];
    for (name, allowed, value) in readers {
        linker.func_wrap("ic0", name, move |mut c: Caller<'_, SysApi>, dst: i32| {
            enter(&mut c, name, allowed, 500)?;
            let amount = value(&c.data().exec);
            write_u128(&mut c, &format!("ic0.{name}"), u(dst), amount)
        })?;
    }
    linker.func_wrap("ic0", "msg_cycles_accept128", |mut c: Caller<'_, SysApi>, high: i64, low: i64, dst: i32| {
        enter(&mut c, "msg_cycles_accept128", U | RQ | RY | RT, 500)?;
        let exec = &mut c.data_mut().exec;
        let amount = u128_of(high, low).min(exec.cycles_available - exec.cycles_accepted);
        exec.cycles_accepted += amount;
        exec.balance += amount;
        write_u128(&mut c, "ic0.msg_cycles_accept128", u(dst), amount)
    })?;
    linker.func_wrap("ic0", "cycles_burn128", |mut c: Caller<'_, SysApi>, high: i64, low: i64, dst: i32| {
        enter(&mut c, "cycles_burn128", REPLICATED, 500)?;
        let exec = &mut c.data_mut().exec;
        let burnt = u128_of(high, low).min(exec.liquid_balance());
        exec.balance -= burnt;
        write_u128(&mut c, "ic0.cycles_burn128", u(dst), burnt)
    })?;
    linker.func_wrap("ic0", "cost_call", |mut c: Caller<'_, SysApi>, name_size: i64, payload_size: i64, dst: i32| {
        enter(&mut c, "cost_call", EVERYWHERE, 500)?;
        let exec = &c.data().exec;
        let cost = exec.costs.call(&exec.limits, name_size as u64, payload_size as u64);
        write_u128(&mut c, "ic0.cost_call", u(dst), cost)
    })?;
    linker.func_wrap("ic0", "cost_create_canister", |mut c: Caller<'_, SysApi>, dst: i32| {
        enter(&mut c, "cost_create_canister", EVERYWHERE, 500)?;
        let cost = c.data().exec.costs.canister_creation;
        write_u128(&mut c, "ic0.cost_create_canister", u(dst), cost)
    })?;
    linker.func_wrap("ic0", "cost_http_request", |mut c: Caller<'_, SysApi>, request_size: i64, max_response: i64, dst: i32| {
        enter(&mut c, "cost_http_request", EVERYWHERE, 500)?;
        let cost = c.data().exec.costs.http_request(request_size as u64, max_response as u64);
        write_u128(&mut c, "ic0.cost_http_request", u(dst), cost)
    })?;
    linker.func_wrap("ic0", "cost_http_request_v2", |mut c: Caller<'_, SysApi>, _src: i32, size: i32, dst: i32| {
        enter(&mut c, "cost_http_request_v2", EVERYWHERE, 500 + u(size))?;
        let cost = c.data().exec.costs.http_request(u(size), c.data().exec.limits.max_reply_bytes as u64);
        write_u128(&mut c, "ic0.cost_http_request_v2", u(dst), cost)
    })?;
    // The harness has no threshold keys: every key name is unknown (return code 2).
    for name in ["cost_sign_with_ecdsa", "cost_sign_with_schnorr", "cost_vetkd_derive_key"] {
        linker.func_wrap("ic0", name, move |mut c: Caller<'_, SysApi>, src: i32, size: i32, _curve: i32, dst: i32| -> HostResult<i32> {
            enter(&mut c, name, EVERYWHERE, 500 + u(size))?;
            let what = format!("ic0.{name}");
            read_utf8(&mut c, &what, u(src), u(size))?;
            write_u128(&mut c, &what, u(dst), 0)?;
            Ok(2)
        })?;
    }
    Ok(())
}

fn link_canister_info(linker: &mut Linker<SysApi>) -> wasmtime::Result<()> {
    use allowed::*;
    link_blob(linker, "canister_self", ANY, |e| e.canister_id.as_slice())?;
    link_blob(linker, "subnet_self", ANY, |e| e.subnet_id.as_slice())?;
    // The harness certifies nothing, so it has no root key to give.
    link_blob(linker, "root_key", REPLICATED, |_| &[])?;
    type Number = fn(&Execution) -> i64;
    let numbers: [(&'static str, u32, Number); 4] = [
        ("canister_version", ANY, |e| e.version as i64),
        ("time", ANY, |e| e.time as i64),
        ("canister_status", ANY, |e| e.status as i64),
        ("subnet_self_node_count", ANY, |e| e.costs.subnet_size as i64),
    ];
    for (name, allowed, value) in numbers {
        // canister_status and subnet_self_node_count return i32, the others i64.
        if matches!(name, "canister_status" | "subnet_self_node_count") {
            linker.func_wrap("ic0", name, move |mut c: Caller<'_, SysApi>| -> HostResult<i32> {
                enter(&mut c, name, allowed, 500)?;
                Ok(value(&c.data().exec) as i32)
            })?;
        } else {
            linker.func_wrap("ic0", name, move |mut c: Caller<'_, SysApi>| -> HostResult<i64> {
                enter(&mut c, name, allowed, 500)?;
                Ok(value(&c.data().exec))
            })?;
        }
    }
    linker.func_wrap("ic0", "is_controller", |mut c: Caller<'_, SysApi>, src: i32, size: i32| -> HostResult<i32> {
        enter(&mut c, "is_controller", ANY, 1000 + u(size))?;
        let principal = read_principal(&mut c, "ic0.is_controller", u(src), u(size))?;
        Ok(c.data().exec.controllers.contains(&principal) as i32)
    })?;
    linker.func_wrap("ic0", "in_replicated_execution", |mut c: Caller<'_, SysApi>| -> HostResult<i32> {
        enter(&mut c, "in_replicated_execution", EVERYWHERE, 500)?;
        Ok(c.data().exec.context.is_replicated() as i32)
    })?;
    linker.func_wrap("ic0", "performance_counter", |mut c: Caller<'_, SysApi>, kind: i32| -> HostResult<i64> {
        enter(&mut c, "performance_counter", EVERYWHERE, 200)?;
        let used = instructions_used(&mut c);
        match kind {
            0 => Ok(used as i64),
            1 => Ok((c.data().exec.call_context_instructions + used) as i64),
            other => Err(violation(format!("ic0.performance_counter: unknown counter type {other}"))),
        }
    })?;
    Ok(())
}

/// Bytes of a name `ic0.env_var_name_exists` and `ic0.env_var_value_*` take
/// (`MAX_ENV_VAR_NAME_SIZE` in rs/embedders system_api.rs).
const MAX_ENV_VAR_NAME_BYTES: u64 = 100;

/// The variable name a canister passed at `[src, src+size)`, checked as the replica checks it.
fn env_var_name(c: &mut Caller<'_, SysApi>, function: &str, src: u64, size: u64) -> HostResult<String> {
    if size > MAX_ENV_VAR_NAME_BYTES {
        return Err(violation_with(format!("{function}: Variable name is too large."), Help::None));
    }
    String::from_utf8(read_heap(c, function, src, size)?)
        .map_err(|_| violation_with(format!("{function}: Variable name is not a valid UTF-8 string."), Help::EnvVarName))
}

/// `ic0.env_var_*_copy`: `size` bytes from `offset` of `bytes` (a name or a value, `what`) to
/// the heap at `dst`.
fn copy_env_var_bytes(c: &mut Caller<'_, SysApi>, function: &str, what: &str, dst: u64, offset: u64, size: u64, bytes: &[u8]) -> HostResult<()> {
    let heap_size = c.data().heap.logical_pages * WASM_PAGE_SIZE;
    check_slice(&format!("{function} heap"), dst, size, heap_size)?;
    check_slice(&format!("{function} {what}"), offset, size, bytes.len() as u64)?;
    write_heap(c, function, dst, &bytes[offset as usize..(offset + size) as usize])
}

fn link_environment_variables(linker: &mut Linker<SysApi>) -> wasmtime::Result<()> {
    use allowed::*;
    fn variable_name(c: &Caller<'_, SysApi>, index: i32) -> HostResult<String> {
        let variables = &c.data().exec.environment_variables;
        let index = u(index) as usize;
        variables
            .name(index)
            .map(str::to_string)
            .ok_or_else(|| wasmtime::Error::new(HostTrap::EnvVarIndexOutOfBounds { index, count: variables.len() }))
    }
    fn variable_value(c: &Caller<'_, SysApi>, name: &str) -> HostResult<String> {
        c.data()
            .exec
            .environment_variables
            .value(name)
            .map(str::to_string)
            .ok_or_else(|| wasmtime::Error::new(HostTrap::EnvVarNotFound(name.to_string())))
    }
    linker.func_wrap("ic0", "env_var_count", |mut c: Caller<'_, SysApi>| -> HostResult<i32> {
        enter(&mut c, "env_var_count", ANY, 500)?;
        Ok(c.data().exec.environment_variables.len() as i32)
    })?;
    linker.func_wrap("ic0", "env_var_name_size", |mut c: Caller<'_, SysApi>, index: i32| -> HostResult<i32> {
        enter(&mut c, "env_var_name_size", ANY, 500)?;
        Ok(variable_name(&c, index)?.len() as i32)
    })?;
    linker.func_wrap("ic0", "env_var_name_copy", |mut c: Caller<'_, SysApi>, index: i32, dst: i32, offset: i32, size: i32| -> HostResult<()> {
        enter(&mut c, "env_var_name_copy", ANY, 500 + u(size))?;
        let name = variable_name(&c, index)?;
        copy_env_var_bytes(&mut c, "ic0.env_var_name_copy", "name", u(dst), u(offset), u(size), name.as_bytes())
    })?;
    linker.func_wrap("ic0", "env_var_name_exists", |mut c: Caller<'_, SysApi>, src: i32, size: i32| -> HostResult<i32> {
        enter(&mut c, "env_var_name_exists", ANY, 500)?;
        let name = env_var_name(&mut c, "ic0.env_var_name_exists", u(src), u(size))?;
        Ok(c.data().exec.environment_variables.value(&name).is_some() as i32)
    })?;
    linker.func_wrap("ic0", "env_var_value_size", |mut c: Caller<'_, SysApi>, src: i32, size: i32| -> HostResult<i32> {
        enter(&mut c, "env_var_value_size", ANY, 500)?;
        let name = env_var_name(&mut c, "ic0.env_var_value_size", u(src), u(size))?;
        Ok(variable_value(&c, &name)?.len() as i32)
    })?;
    linker.func_wrap(
        "ic0",
        "env_var_value_copy",
        |mut c: Caller<'_, SysApi>, src: i32, name_size: i32, dst: i32, offset: i32, size: i32| -> HostResult<()> {
            enter(&mut c, "env_var_value_copy", ANY, 500 + u(size))?;
            let name = env_var_name(&mut c, "ic0.env_var_value_copy", u(src), u(name_size))?;
            let value = variable_value(&c, &name)?;
            copy_env_var_bytes(&mut c, "ic0.env_var_value_copy", "value", u(dst), u(offset), u(size), value.as_bytes())
        },
    )?;
    Ok(())
}

fn link_calls(linker: &mut Linker<SysApi>) -> wasmtime::Result<()> {
    use allowed::*;
    linker.func_wrap(
        "ic0",
        "call_new",
        |mut c: Caller<'_, SysApi>, callee_src: i32, callee_size: i32, name_src: i32, name_size: i32, reply_fun: i32, reply_env: i32, reject_fun: i32, reject_env: i32| {
            enter(&mut c, "call_new", CALLS | COMPOSITE, 1500 + u(callee_size) + u(name_size))?;
            let callee = read_principal(&mut c, "ic0.call_new", u(callee_src), u(callee_size))?;
            let method = read_utf8(&mut c, "ic0.call_new", u(name_src), u(name_size))?;
            c.data_mut().exec.pending_call = Some(OutgoingCall {
                callee,
                method,
                payload: Vec::new(),
                cycles: 0,
                on_reply: (reply_fun as u32, reply_env as u32),
                on_reject: (reject_fun as u32, reject_env as u32),
                on_cleanup: None,
                timeout_seconds: None,
                prepaid: 0,
            });
            Ok(())
        },
    )?;
    linker.func_wrap("ic0", "call_on_cleanup", |mut c: Caller<'_, SysApi>, fun: i32, env: i32| {
        enter(&mut c, "call_on_cleanup", CALLS | COMPOSITE, 500)?;
        let call = pending_call(&mut c, "ic0.call_on_cleanup")?;
        if call.on_cleanup.is_some() {
            return Err(violation(
                "ic0.call_on_cleanup can be called at most once between `ic0.call_new` and `ic0.call_perform`",
            ));
        }
        call.on_cleanup = Some((fun as u32, env as u32));
        Ok(())
    })?;
    linker.func_wrap("ic0", "call_data_append", |mut c: Caller<'_, SysApi>, src: i32, size: i32| {
        enter(&mut c, "call_data_append", CALLS | COMPOSITE, 500 + u(size))?;
        let max = c.data().exec.limits.max_request_bytes_same_subnet;
        let call = pending_call(&mut c, "ic0.call_data_append")?;
        let total = call.method.len() + call.payload.len() + u(size) as usize;
        if total > max {
            let (callee, method) = (call.callee, call.method.clone());
            return Err(violation_with(
                format!("Request to {callee}:{method} has a payload size of {total}, which exceeds the allowed limit of {max}."),
                Help::RequestTooLarge,
            ));
        }
        let data = read_heap(&mut c, "ic0.call_data_append", u(src), u(size))?;
        pending_call(&mut c, "ic0.call_data_append")?.payload.extend_from_slice(&data);
        Ok(())
    })?;
    linker.func_wrap("ic0", "call_with_best_effort_response", |mut c: Caller<'_, SysApi>, timeout: i32| {
        enter(&mut c, "call_with_best_effort_response", CALLS | COMPOSITE, 500)?;
        let max = c.data().exec.limits.max_call_timeout_seconds;
        let call = pending_call(&mut c, "ic0.call_with_best_effort_response")?;
        if call.timeout_seconds.is_some() {
            return Err(violation(
                "ic0_call_with_best_effort_response failed because a timeout is already set.",
            ));
        }
        call.timeout_seconds = Some((timeout as u32).min(max));
        Ok(())
    })?;
    linker.func_wrap("ic0", "call_cycles_add128", |mut c: Caller<'_, SysApi>, high: i64, low: i64| {
        enter(&mut c, "call_cycles_add128", CALLS, 500)?;
        if c.data().exec.pending_call.is_none() {
            return Err(violation("ic0_call_cycles_add128 called when no call is under construction."));
        }
        let amount = u128_of(high, low);
        let exec = &mut c.data_mut().exec;
        if exec.liquid_balance() < amount {
            return Err(wasmtime::Error::new(HostTrap::OutOfCycles(exec.canister_id)));
        }
        exec.balance -= amount;
        exec.pending_call.as_mut().expect("checked above").cycles += amount;
        Ok(())
    })?;
    linker.func_wrap("ic0", "call_perform", |mut c: Caller<'_, SysApi>| -> HostResult<i32> {
        enter(&mut c, "call_perform", CALLS | COMPOSITE, 5000)?;
        let exec = &mut c.data_mut().exec;
        let mut call = exec
            .pending_call
            .take()
            .ok_or_else(|| violation("ic0.call_perform called when no call is under construction."))?;
        let cost = exec.costs.call(&exec.limits, call.method.len() as u64, call.payload.len() as u64);
        if exec.liquid_balance() < cost {
            // The attached cycles go back to the balance; no callback will run.
            exec.balance += call.cycles;
            return Ok(RejectCode::SysTransient as i32);
        }
        exec.balance -= cost;
        call.prepaid = cost;
        exec.calls.push(call);
        Ok(0)
    })?;
    Ok(())
}

fn link_stable_memory(linker: &mut Linker<SysApi>) -> wasmtime::Result<()> {
    use allowed::*;
    linker.func_wrap("ic0", "stable64_size", |mut c: Caller<'_, SysApi>| -> HostResult<i64> {
        enter(&mut c, "stable64_size", EVERYWHERE, 20)?;
        Ok(c.data().stable.size() as i64)
    })?;
    linker.func_wrap("ic0", "stable64_grow", |mut c: Caller<'_, SysApi>, pages: i64| -> HostResult<i64> {
        enter(&mut c, "stable64_grow", EVERYWHERE, 500)?;
        Ok(stable_grow(&mut c, pages as u64, u64::MAX).map_or(-1, |old| old as i64))
    })?;
    linker.func_wrap("ic0", "stable64_write", |mut c: Caller<'_, SysApi>, offset: i64, src: i64, size: i64| {
        enter(&mut c, "stable64_write", EVERYWHERE, 20 + size as u64)?;
        stable_write(&mut c, "ic0.stable64_write", offset as u64, src as u64, size as u64)
    })?;
    linker.func_wrap("ic0", "stable64_read", |mut c: Caller<'_, SysApi>, dst: i64, offset: i64, size: i64| {
        enter(&mut c, "stable64_read", EVERYWHERE, 20 + size as u64)?;
        stable_read(&mut c, "ic0.stable64_read", dst as u64, offset as u64, size as u64)
    })?;
    linker.func_wrap("ic0", "stable_size", |mut c: Caller<'_, SysApi>| -> HostResult<i32> {
        enter(&mut c, "stable_size", EVERYWHERE, 20)?;
        check_32bit_stable(&c)?;
        Ok(c.data().stable.size() as i32)
    })?;
    linker.func_wrap("ic0", "stable_grow", |mut c: Caller<'_, SysApi>, pages: i32| -> HostResult<i32> {
        enter(&mut c, "stable_grow", EVERYWHERE, 500)?;
        check_32bit_stable(&c)?;
        Ok(stable_grow(&mut c, u(pages), MAX_32BIT_STABLE_PAGES).map_or(-1, |old| old as i32))
    })?;
    linker.func_wrap("ic0", "stable_write", |mut c: Caller<'_, SysApi>, offset: i32, src: i32, size: i32| {
        enter(&mut c, "stable_write", EVERYWHERE, 20 + u(size))?;
        check_32bit_stable(&c)?;
        stable_write(&mut c, "ic0.stable_write", u(offset), u(src), u(size))
    })?;
    linker.func_wrap("ic0", "stable_read", |mut c: Caller<'_, SysApi>, dst: i32, offset: i32, size: i32| {
        enter(&mut c, "stable_read", EVERYWHERE, 20 + u(size))?;
        check_32bit_stable(&c)?;
        stable_read(&mut c, "ic0.stable_read", u(dst), u(offset), u(size))
    })?;
    Ok(())
}
