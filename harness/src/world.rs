//! The state of the embedded IC and its rounds: canisters, input queues, call contexts,
//! callbacks, timers, cycles, and the routing of requests and responses.
//!
//! Messages between canisters are queued per receiver in arrival order, so requests (and
//! responses) between a pair of canisters stay in order. A round ([`World::tick`]) inducts
//! what the streams from other subnets deliver, fires due timers, then runs every queued
//! message, and keeps running the messages those produce in inner rounds until the queues are
//! empty or `max_inner_rounds` is reached; a canister that executed `Limits::round_instructions`
//! in the round starts no other message until the next. A message to a canister on another
//! subnet waits in a stream for a later round (see `subnets`).
//!
//! [`World::advance`] lets time pass as the IC would: it moves the clock to the next moment
//! something is due (a global timer, a heartbeat's next round, messages in flight or in a
//! stream, a call's deadline), runs a round there, and repeats until the end.

use std::collections::{BTreeMap, HashMap, VecDeque};

use candid::Principal;

use crate::canister::{Entry, ExecError, Instance, Outcome};
use crate::config::{Clock, CostTable, Limits};
use crate::faults::Faults;
use crate::logs::CanisterLog;
use crate::messages::{Input, Origin, Output, Reject, Request, ResponseMessage};
use crate::settings::{LowMemoryHook, Settings};
use crate::snapshots::CanisterSnapshot;
use crate::subnets::{Streams, SubnetId, XNet, XNetMessage};
use crate::system_api::{ApiContext, Execution, Help, OutgoingCall, Response};
use crate::types::{CallResult, ErrorCode, LogRecord, MANAGEMENT_CANISTER, RejectCode, RejectResponse};

#[derive(Clone, Debug)]
pub struct CallContext {
    pub origin: Origin,
    pub caller: Principal,
    pub responded: bool,
    /// Attached cycles not yet accepted.
    pub available: u128,
    pub outstanding: u32,
    pub instructions: u64,
    pub deadline: u64,
}

#[derive(Clone, Debug)]
pub struct Callback {
    pub context: u64,
    pub call: OutgoingCall,
    pub deadline: u64,
    /// Set when the deadline passed and the caller was told SYS_UNKNOWN: a late response is
    /// dropped.
    pub expired: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Running,
    /// Waiting for its call contexts to close; the stop requests to answer then.
    Stopping(Vec<Origin>),
    Stopped,
}

/// What a canister did, for benchmarks and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CanisterMetrics {
    /// Replicated executions: updates, callbacks, cleanups, timers, heartbeats, installs.
    pub executions: u64,
    pub instructions: u64,
    pub cycles_consumed: u128,
    pub requests_sent: u64,
    pub request_bytes_sent: u64,
    pub responses_sent: u64,
    pub response_bytes_sent: u64,
    /// Executions rolled back, the pages they had written, and the time the rollbacks took.
    pub rollbacks: u64,
    pub rolled_back_pages: u64,
    pub rollback_nanos: u64,
}

impl CanisterMetrics {
    fn record_rollback(&mut self, rollback: crate::canister::Rollback) {
        self.rollbacks += 1;
        self.rolled_back_pages += rollback.pages as u64;
        self.rollback_nanos += rollback.nanos;
    }
}

/// One entry of a canister's history, as `canister_info` reports it.
pub type Change = ic_management_canister_types::Change;

/// One canister's state. Other crates see its cycles, global timer, metrics and memory size.
pub struct CanisterState {
    pub(crate) id: Principal,
    pub(crate) subnet: SubnetId,
    pub(crate) controllers: Vec<Principal>,
    pub(crate) status: Status,
    pub cycles: u128,
    pub(crate) settings: Settings,
    pub(crate) instance: Option<Instance>,
    pub(crate) call_contexts: BTreeMap<u64, CallContext>,
    pub(crate) callbacks: BTreeMap<u64, Callback>,
    pub(crate) next_id: u64,
    pub global_timer: u64,
    pub(crate) version: u64,
    pub(crate) certified_data: Vec<u8>,
    /// Every line the canister printed and every error that ended an execution, for tests.
    pub(crate) logs: Vec<LogRecord>,
    pub(crate) next_log: u64,
    /// The log as the IC keeps it, for `fetch_canister_logs`.
    pub(crate) log_buffer: CanisterLog,
    pub(crate) low_memory_hook: LowMemoryHook,
    pub(crate) history: Vec<Change>,
    pub(crate) total_changes: u64,
    pub(crate) queue: VecDeque<Input>,
    pub metrics: CanisterMetrics,
    /// Its snapshots by number, and the next number.
    pub(crate) snapshots: BTreeMap<u64, CanisterSnapshot>,
    pub(crate) next_snapshot: u64,
}

impl CanisterState {
    pub(crate) fn new(id: Principal, subnet: SubnetId, controllers: Vec<Principal>, cycles: u128, settings: Settings) -> Self {
        CanisterState {
            id,
            subnet,
            controllers,
            status: Status::Running,
            cycles,
            settings,
            instance: None,
            call_contexts: BTreeMap::new(),
            callbacks: BTreeMap::new(),
            next_id: 0,
            global_timer: 0,
            version: 0,
            certified_data: Vec::new(),
            logs: Vec::new(),
            next_log: 0,
            log_buffer: CanisterLog::default(),
            low_memory_hook: LowMemoryHook::default(),
            history: Vec::new(),
            total_changes: 0,
            queue: VecDeque::new(),
            metrics: CanisterMetrics::default(),
            snapshots: BTreeMap::new(),
            next_snapshot: 0,
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Bytes the canister is billed for: its heap, its stable memory and its snapshots.
    pub fn memory_bytes(&self) -> u64 {
        self.instance.as_ref().map_or(0, |i| i.heap_bytes() + i.stable().size_bytes()) + self.snapshots_bytes()
    }

    /// Bytes of its snapshots, each as the IC counts it.
    pub(crate) fn snapshots_bytes(&self) -> u64 {
        self.snapshots.values().map(CanisterSnapshot::total_size).sum()
    }

    pub(crate) fn freezing_reserve(&self, costs: &CostTable) -> u128 {
        costs.idle_burn_per_day(self.memory_bytes()) * self.settings.freezing_threshold as u128 / 86_400
    }

    pub(crate) fn liquid_cycles(&self, costs: &CostTable) -> u128 {
        self.cycles.saturating_sub(self.freezing_reserve(costs))
    }

    /// Takes the condition of `canister_on_low_wasm_memory` on the heap as it is now (the
    /// IC's `update_on_low_wasm_memory_hook_condition`).
    pub(crate) fn update_low_wasm_memory_hook_condition(&mut self) {
        let heap = self.instance.as_ref().map_or(0, |i| i.heap_bytes());
        self.low_memory_hook.update(self.settings.low_wasm_memory(heap));
    }

    pub(crate) fn status_code(&self) -> u32 {
        match self.status {
            Status::Running => 1,
            Status::Stopping(_) => 2,
            Status::Stopped => 3,
        }
    }

    pub(crate) fn log(&mut self, time: u64, content: Vec<u8>, to_stderr: bool) {
        if to_stderr {
            eprintln!("[{}] {}", self.id, String::from_utf8_lossy(&content));
        }
        self.logs.push(LogRecord { idx: self.next_log, timestamp_nanos: time, content });
        self.next_log += 1;
    }

    pub(crate) fn record_change(&mut self, time: u64, origin: ic_management_canister_types::ChangeOrigin, details: ic_management_canister_types::ChangeDetails) {
        self.total_changes += 1;
        self.history.push(Change { timestamp_nanos: time, canister_version: self.version, origin, details: Some(details) });
        const KEPT_CHANGES: usize = 20;
        if self.history.len() > KEPT_CHANGES {
            self.history.remove(0);
        }
    }
}

/// Counts of what crossed between canisters, for benchmarks.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Traffic {
    pub requests: u64,
    pub request_bytes: u64,
    pub responses: u64,
    pub response_bytes: u64,
    /// The same counts for each method called.
    #[serde(default)]
    pub by_method: BTreeMap<String, MethodTraffic>,
}

/// What crossed between canisters for the calls of one method.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MethodTraffic {
    pub requests: u64,
    /// Bytes of the requests and of their responses.
    pub bytes: u64,
}

/// One replicated execution of a message, as [`crate::Harness::take_execution_log`] gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionRecord {
    pub canister: Principal,
    pub entry: ExecutedEntry,
    /// Instructions the execution ran (a cleanup after it is not counted).
    pub instructions: u64,
    /// 4 KiB pages of stable memory the execution wrote: what the per-message limit counts
    /// (`Limits::stable_dirty_bytes_update`), a trapped execution's too, though rolled back.
    pub stable_pages_dirtied: u64,
    /// Whether its changes were kept: false after a trap, an injected one included.
    pub succeeded: bool,
}

/// What an execution ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecutedEntry {
    /// A method called by a request (ingress or a canister's).
    Method(String),
    /// The reply or reject callback of the canister's call of this method.
    Callback(String),
    /// A system task, by its export (`canister_global_timer`, `canister_heartbeat`, ...).
    System(String),
}

/// What an advance ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdvanceReport {
    pub rounds: u64,
    /// Replicated executions in those rounds (timers, heartbeats, messages, callbacks,
    /// installs), counted over the canisters that exist at its end.
    pub executions: u64,
}

/// Why an advance stopped before its end.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdvanceError {
    /// Something was due in every round (a timer re-armed at once, messages that never end),
    /// so the advance would have run more rounds than allowed; the clock stays where the last
    /// round left it.
    #[error(
        "the advance stopped after {limit} rounds at {stopped_at_nanos} ns, {} ns short of its end: something was due in every round (a timer re-armed at once, or messages that never end); advance less at a time or allow more rounds (`HarnessBuilder::with_max_rounds_per_advance`)",
        end_nanos - stopped_at_nanos
    )]
    TooManyRounds { limit: u64, so_far: AdvanceReport, stopped_at_nanos: u64, end_nanos: u64 },
}

/// The embedded IC's state. Other crates reach it through [`crate::Harness::with_world`] and see
/// its time, rounds, canisters and [`World::is_quiet`].
pub struct World {
    pub time: u64,
    pub(crate) last_round_time: u64,
    pub canisters: BTreeMap<Principal, CanisterState>,
    pub(crate) next_canister_index: u64,
    pub(crate) ingress: HashMap<u64, Option<CallResult>>,
    pub(crate) next_message: u64,
    pub(crate) limits: Limits,
    pub(crate) costs: CostTable,
    /// How many subnets there are: `SubnetId(0)` up to this, exclusive.
    pub(crate) subnets: u32,
    pub(crate) xnet: XNet,
    pub(crate) streams: Streams,
    pub(crate) faults: Faults,
    pub(crate) traffic: Traffic,
    pub(crate) log_to_stderr: bool,
    pub(crate) max_inner_rounds: u32,
    pub rounds: u64,
    /// Requests to the management canister, with the subnet that handles each.
    pub(crate) management_queue: VecDeque<(SubnetId, Request)>,
    /// Every replicated execution of a message since the last take, while logging is on.
    pub(crate) execution_log: Option<Vec<ExecutionRecord>>,
}

/// How a canister's execution starts and what its call context is.
enum Work {
    Request { context: u64, method: String, query: bool },
    Callback { context: u64, callback: Box<Callback>, result: Result<Vec<u8>, Reject>, refund: u128 },
    System { context: u64, export: &'static str, kind: ApiContext },
}

/// An execution that ran, for [`World::settle`] to apply: where it ran, how it ended, and how
/// the cleanup after a trapped callback ended.
struct Executed {
    canister: Principal,
    context_id: u64,
    kind: ApiContext,
    outcome: Outcome,
    cleanup: Option<Outcome>,
    /// Why the execution (and its cleanup) failed; the call context's answer if it closes unanswered.
    error: Option<ExecError>,
}

impl World {
    pub(crate) fn new(limits: Limits, costs: CostTable, initial_time: u64) -> Self {
        World {
            time: initial_time,
            last_round_time: initial_time,
            canisters: BTreeMap::new(),
            next_canister_index: 0,
            ingress: HashMap::new(),
            next_message: 0,
            limits,
            costs,
            subnets: 1,
            xnet: XNet::default(),
            streams: Streams::default(),
            faults: Faults::default(),
            traffic: Traffic::default(),
            log_to_stderr: false,
            max_inner_rounds: 64,
            rounds: 0,
            management_queue: VecDeque::new(),
            execution_log: None,
        }
    }

    pub(crate) fn canister(&self, id: &Principal) -> Option<&CanisterState> {
        self.canisters.get(id)
    }

    /// The subnet canister `id` is on, if it exists.
    pub fn subnet_of(&self, id: &Principal) -> Option<SubnetId> {
        self.canisters.get(id).map(|c| c.subnet)
    }

    /// Whether a message is waiting in a stream between subnets.
    pub fn streams_busy(&self) -> bool {
        !self.streams.is_empty()
    }

    /// A fresh execution record for canister `c` in `context`.
    pub(crate) fn execution(&self, c: &CanisterState, context: ApiContext, caller: Principal) -> Execution {
        Execution {
            context,
            canister_id: c.id,
            caller,
            balance: c.cycles,
            freezing_reserve: c.freezing_reserve(&self.costs),
            time: self.time,
            controllers: c.controllers.clone(),
            version: c.version,
            status: c.status_code(),
            global_timer: c.global_timer,
            limits: self.limits.clone(),
            costs: self.costs.clone(),
            subnet_id: c.subnet.principal(),
            wasm_memory_limit: c.settings.wasm_memory_limit_in(context),
            environment_variables: c.settings.environment_variables.clone(),
            ..Execution::default()
        }
    }

    /// Submits an ingress update; the caller polls `ingress` for the result.
    pub(crate) fn submit_ingress(&mut self, receiver: Principal, sender: Principal, method: &str, payload: Vec<u8>) -> Result<u64, RejectResponse> {
        if payload.len() > self.limits.max_ingress_bytes {
            return Err(RejectResponse::new(
                ErrorCode::CanisterRejectedMessage,
                format!("Request {} bytes exceeds the maximum ingress payload of {} bytes", payload.len(), self.limits.max_ingress_bytes),
            ));
        }
        if receiver == MANAGEMENT_CANISTER {
            if let Some(refusal) = self.management_ingress_refusal(method) {
                return Err(refusal);
            }
            let id = self.new_message_id();
            self.ingress.insert(id, None);
            let request = Request { sender, receiver, method: method.to_string(), payload, cycles: 0, origin: Origin::Ingress(id), deadline: 0 };
            self.route_request(request);
            return Ok(id);
        }
        let Some(c) = self.canisters.get(&receiver) else {
            return Err(RejectResponse::new(ErrorCode::CanisterNotFound, format!("Canister {receiver} not found")));
        };
        let Some(instance) = &c.instance else {
            return Err(RejectResponse::new(ErrorCode::CanisterWasmModuleNotFound, "Requested canister has no wasm module"));
        };
        if c.liquid_cycles(&self.costs) < self.costs.ingress(method.len() + payload.len()) {
            return Err(RejectResponse::new(ErrorCode::CanisterOutOfCycles, format!("Canister {receiver} is out of cycles")));
        }
        if instance.exports("canister_inspect_message") {
            self.inspect_message(receiver, sender, method, &payload)?;
        }
        let c = self.canisters.get_mut(&receiver).expect("checked above");
        let fee = self.costs.ingress(method.len() + payload.len());
        c.cycles -= fee;
        c.metrics.cycles_consumed += fee;
        let id = self.new_message_id();
        self.ingress.insert(id, None);
        let request = Request {
            sender,
            receiver,
            method: method.to_string(),
            payload,
            cycles: 0,
            origin: Origin::Ingress(id),
            deadline: 0,
        };
        self.route_request(request);
        Ok(id)
    }

    fn new_message_id(&mut self) -> u64 {
        self.next_message += 1;
        self.next_message
    }

    fn inspect_message(&mut self, receiver: Principal, sender: Principal, method: &str, payload: &[u8]) -> Result<(), RejectResponse> {
        let c = &self.canisters[&receiver];
        let mut exec = self.execution(c, ApiContext::InspectMessage, sender);
        exec.arg = payload.to_vec();
        exec.method_name = method.to_string();
        exec.instruction_limit = self.limits.inspect_instructions;
        let budget = self.limits.inspect_instructions;
        let c = self.canisters.get_mut(&receiver).expect("checked by the caller");
        let instance = c.instance.as_mut().expect("checked by the caller");
        let outcome = instance.run_uncommitted(Entry::Export("canister_inspect_message"), exec, budget);
        instance.roll_back();
        let time = self.time;
        for line in &outcome.exec.logs {
            c.log(time, line.clone(), self.log_to_stderr);
        }
        match outcome.result {
            Err(e) => Err(Reject::failed(&receiver, &e).to_user()),
            Ok(()) if !outcome.exec.message_accepted => Err(RejectResponse::new(
                ErrorCode::CanisterRejectedMessage,
                format!("Error from Canister {receiver}: Canister rejected the message"),
            )),
            Ok(()) => Ok(()),
        }
    }

    /// Sends a request: into the receiver's queue, or into the stream to the receiver's subnet,
    /// or answered at once where the IC would refuse it before it leaves.
    pub(crate) fn route_request(&mut self, mut request: Request) {
        self.faults.corrupt_request(&mut request);
        let size = request.method.len() + request.payload.len();
        if let Some(sender) = self.canisters.get_mut(&request.sender) {
            sender.metrics.requests_sent += 1;
            sender.metrics.request_bytes_sent += size as u64;
        }
        if request.receiver != request.sender && matches!(request.origin, Origin::Canister { .. }) {
            self.traffic.requests += 1;
            self.traffic.request_bytes += size as u64;
            let method = self.traffic.by_method.entry(request.method.clone()).or_default();
            method.requests += 1;
            method.bytes += size as u64;
        }
        let to = self.destination_subnet(&request);
        // An ingress message is inducted on the receiver's subnet itself.
        let from = match request.origin {
            Origin::Canister { caller, .. } => self.subnet_of(&caller).unwrap_or(to),
            Origin::Ingress(_) | Origin::System => to,
        };
        let refuse = |world: &mut World, request: Request, reject: Reject| {
            let refund = request.cycles;
            world.deliver_response(request.origin, request.receiver, Err(reject), refund, from);
        };
        if let Some(reject) = self.faults.reject_for(&request) {
            return refuse(self, request, reject);
        }
        let cross_subnet = from != to || (request.sender != request.receiver && !self.limits.single_subnet);
        if matches!(request.origin, Origin::Canister { .. }) && cross_subnet && size > self.limits.max_request_bytes_cross_subnet {
            let reject = Reject::system(
                ErrorCode::CanisterContractViolation,
                format!(
                    "Canister {} violated contract: attempted to send a message of size {size} exceeding the limit {}",
                    request.sender, self.limits.max_request_bytes_cross_subnet
                ),
            );
            return refuse(self, request, reject);
        }
        if from != to {
            self.streams.push(from, to, self.rounds, size as u64, XNetMessage::Request(request));
            return;
        }
        self.induct_request(to, request);
    }

    /// The subnet a request goes to: its receiver's; for the management canister, the subnet
    /// of the canister the request is about. A request to a canister that does not exist is
    /// refused where it is sent.
    fn destination_subnet(&self, request: &Request) -> SubnetId {
        let sender = self.subnet_of(&request.sender).unwrap_or_default();
        if request.receiver == MANAGEMENT_CANISTER {
            return self.management_subnet(request).unwrap_or(sender);
        }
        self.subnet_of(&request.receiver).unwrap_or(sender)
    }

    /// Puts a request that reached subnet `at` into its receiver's queue, or answers it where
    /// the IC refuses it on induction.
    fn induct_request(&mut self, at: SubnetId, request: Request) {
        let refuse = |world: &mut World, request: Request, reject: Reject| {
            let refund = request.cycles;
            world.deliver_response(request.origin, request.receiver, Err(reject), refund, at);
        };
        if request.receiver == MANAGEMENT_CANISTER {
            self.management_queue.push_back((at, request));
            return;
        }
        let Some(receiver) = self.canisters.get_mut(&request.receiver) else {
            let reject = Reject::system(ErrorCode::CanisterNotFound, format!("Canister {} not found", request.receiver));
            return refuse(self, request, reject);
        };
        match receiver.status {
            Status::Running => receiver.queue.push_back(Input::Request(request)),
            Status::Stopping(_) => {
                let reject = Reject::system(ErrorCode::CanisterStopping, format!("Canister {} is stopping", request.receiver));
                refuse(self, request, reject)
            }
            Status::Stopped => {
                let reject = Reject::system(ErrorCode::CanisterStopped, format!("Canister {} is stopped", request.receiver));
                refuse(self, request, reject)
            }
        }
    }

    /// Sends the answer of a call context, given on subnet `at`, to whoever waits for it: an
    /// ingress caller at once, a calling canister on another subnet through the stream to it.
    pub(crate) fn deliver_response(&mut self, origin: Origin, from: Principal, mut result: Result<Vec<u8>, Reject>, refund: u128, at: SubnetId) {
        match origin {
            Origin::Ingress(id) => {
                self.ingress.insert(id, Some(result.map_err(|r| r.to_user())));
            }
            Origin::System => {}
            Origin::Canister { caller, callback } => {
                let bytes = match &result {
                    Ok(b) => b.len(),
                    Err(r) => r.canister_message.len(),
                };
                if let Some(responder) = self.canisters.get_mut(&from) {
                    responder.metrics.responses_sent += 1;
                    responder.metrics.response_bytes_sent += bytes as u64;
                }
                if from != caller {
                    self.traffic.responses += 1;
                    self.traffic.response_bytes += bytes as u64;
                    let method = self.canisters.get(&caller).and_then(|c| c.callbacks.get(&callback)).map(|cb| cb.call.method.clone());
                    if let Some(method) = method {
                        self.traffic.by_method.entry(method).or_default().bytes += bytes as u64;
                    }
                }
                let Some(c) = self.canisters.get_mut(&caller) else { return };
                let method = c.callbacks.get(&callback).map(|cb| cb.call.method.as_str());
                let bounded = c.callbacks.get(&callback).is_some_and(|cb| cb.deadline != 0);
                if bounded && self.faults.drop_response(caller, from, method) {
                    return; // the caller's deadline will expire
                }
                if let Ok(reply) = &mut result {
                    self.faults.corrupt_reply(caller, from, method, reply);
                }
                let response = ResponseMessage { callback, result, refund };
                if c.subnet == at {
                    c.queue.push_back(Input::Response(response));
                } else {
                    let to = c.subnet;
                    self.streams.push(at, to, self.rounds, bytes as u64, XNetMessage::Response { caller, response });
                }
            }
        }
    }

    /// Inducts what the streams deliver this round.
    fn induct_streams(&mut self) {
        for (at, message) in self.streams.induct(self.rounds, &self.xnet) {
            match message {
                XNetMessage::Request(request) => self.induct_request(at, request),
                XNetMessage::Response { caller, response } => {
                    if let Some(c) = self.canisters.get_mut(&caller) {
                        c.queue.push_back(Input::Response(response));
                    }
                }
            }
        }
    }

    fn route(&mut self, from: Principal, outputs: Vec<Output>) {
        let at = self.subnet_of(&from).unwrap_or_default();
        for output in outputs {
            match output {
                Output::Request(request) => self.route_request(request),
                Output::Respond { origin, from: responder, result, refund } => {
                    debug_assert_eq!(responder, from);
                    self.deliver_response(origin, responder, result, refund, at)
                }
            }
        }
    }

    /// Moves time forward and charges storage for the elapsed time.
    pub(crate) fn advance_time(&mut self, nanos: u64) {
        for c in self.canisters.values_mut() {
            let fee = self.costs.storage(c.memory_bytes(), nanos);
            c.cycles = c.cycles.saturating_sub(fee);
            c.metrics.cycles_consumed += fee;
        }
        self.time += nanos;
    }

    /// Lets `nanos` pass: a round at each moment something is due up to the end (inclusive),
    /// in time order, each seeing the clock at that moment; then the clock moves to the end.
    /// Canisters pay storage for the time as it passes.
    pub(crate) fn advance(&mut self, nanos: u64, clock: &Clock) -> Result<AdvanceReport, AdvanceError> {
        let end = self.time.saturating_add(nanos);
        let (rounds, executions) = (self.rounds, self.executions());
        let interval = clock.round_interval_nanos.max(1);
        while let Some(due) = self.next_due(interval).filter(|&due| due <= end) {
            if self.rounds - rounds >= clock.max_rounds_per_advance {
                let so_far = AdvanceReport { rounds: self.rounds - rounds, executions: self.executions().saturating_sub(executions) };
                return Err(AdvanceError::TooManyRounds { limit: clock.max_rounds_per_advance, so_far, stopped_at_nanos: self.time, end_nanos: end });
            }
            self.advance_time(due - self.time);
            self.tick();
        }
        self.advance_time(end - self.time);
        Ok(AdvanceReport { rounds: self.rounds - rounds, executions: self.executions().saturating_sub(executions) })
    }

    /// Lets `nanos` pass round by round: a round every round interval whether or not anything
    /// is due, then the clock moves to the end. Refused up front past the round limit.
    pub(crate) fn advance_rounds(&mut self, nanos: u64, clock: &Clock) -> Result<AdvanceReport, AdvanceError> {
        let interval = clock.round_interval_nanos.max(1);
        let count = nanos / interval;
        if count > clock.max_rounds_per_advance {
            let end_nanos = self.time.saturating_add(nanos);
            return Err(AdvanceError::TooManyRounds { limit: clock.max_rounds_per_advance, so_far: AdvanceReport::default(), stopped_at_nanos: self.time, end_nanos });
        }
        let executions = self.executions();
        for _ in 0..count {
            self.advance_time(interval);
            self.tick();
        }
        self.advance_time(nanos % interval);
        Ok(AdvanceReport { rounds: count, executions: self.executions().saturating_sub(executions) })
    }

    fn executions(&self) -> u64 {
        self.canisters.values().map(|c| c.metrics.executions).sum()
    }

    /// When the next round is due, never sooner than one round interval after the last: at
    /// once for messages in flight (in a queue or in a stream between subnets) or a canister
    /// with a heartbeat, at a running canister's global timer, or just past a bounded-wait
    /// call's deadline. `None` when nothing is.
    fn next_due(&self, interval: u64) -> Option<u64> {
        let next_round = self.last_round_time.saturating_add(interval).max(self.time);
        let mut due = (!self.management_queue.is_empty() || !self.streams.is_empty()).then_some(next_round);
        let mut at = |time: u64| due = Some(due.map_or(time.max(next_round), |d| d.min(time.max(next_round))));
        for c in self.canisters.values() {
            if !c.queue.is_empty() {
                at(next_round);
            }
            if let (Status::Running, Some(instance)) = (&c.status, &c.instance) {
                if c.global_timer != 0 {
                    at(c.global_timer);
                }
                if instance.exports("canister_heartbeat") {
                    at(next_round);
                }
            }
            for cb in c.callbacks.values().filter(|cb| cb.deadline != 0 && !cb.expired) {
                at(cb.deadline.saturating_add(1));
            }
        }
        due
    }

    /// One round: what the streams deliver, due timers and heartbeats, then queued messages in
    /// inner rounds.
    pub(crate) fn tick(&mut self) {
        if self.time == self.last_round_time {
            self.time += 1;
        }
        self.last_round_time = self.time;
        self.rounds += 1;
        self.induct_streams();
        self.expire_deadlines();
        // What each canister executed before this round, against the round's instruction limit.
        let before: HashMap<Principal, u64> = self.canisters.iter().map(|(id, c)| (*id, c.metrics.instructions)).collect();
        let ids: Vec<Principal> = self.canisters.keys().copied().collect();
        for id in &ids {
            self.run_system_tasks(*id);
        }
        for _ in 0..self.max_inner_rounds {
            let mut progressed = false;
            let ids: Vec<Principal> = self.canisters.keys().copied().collect();
            for id in ids {
                let queued = self.canisters.get(&id).map_or(0, |c| c.queue.len());
                for _ in 0..queued {
                    if self.round_instructions_spent(id, &before) {
                        break;
                    }
                    let Some(input) = self.canisters.get_mut(&id).and_then(|c| c.queue.pop_front()) else { break };
                    progressed = true;
                    self.process(id, input);
                }
            }
            let management = std::mem::take(&mut self.management_queue);
            for (at, request) in management {
                progressed = true;
                self.process_management_request(at, request);
            }
            self.finish_stopping();
            if !progressed {
                break;
            }
        }
    }

    /// Whether canister `id` executed the round's instructions since `before` (what each had
    /// executed when the round began; a canister created in the round had none).
    fn round_instructions_spent(&self, id: Principal, before: &HashMap<Principal, u64>) -> bool {
        let executed = self.canisters.get(&id).map_or(0, |c| c.metrics.instructions);
        executed.saturating_sub(before.get(&id).copied().unwrap_or(0)) >= self.limits.round_instructions
    }

    /// Bounded-wait calls past their deadline get SYS_UNKNOWN.
    fn expire_deadlines(&mut self) {
        let now = self.time;
        for c in self.canisters.values_mut() {
            for (&id, cb) in c.callbacks.iter_mut() {
                if cb.deadline != 0 && cb.deadline < now && !cb.expired {
                    cb.expired = true;
                    let reject = Reject::system(ErrorCode::DeadlineExpired, "Call deadline has expired.");
                    c.queue.push_back(Input::Response(ResponseMessage { callback: id, result: Err(reject), refund: 0 }));
                }
            }
        }
    }

    fn run_system_tasks(&mut self, id: Principal) {
        let c = &self.canisters[&id];
        if c.status != Status::Running || c.instance.is_none() {
            return;
        }
        // A ready low-memory hook comes before the canister's other tasks.
        self.run_low_wasm_memory_hook(id);
        let c = &self.canisters[&id];
        if c.global_timer != 0 && self.time >= c.global_timer {
            self.canisters.get_mut(&id).expect("exists").global_timer = 0;
            if self.exports(id, "canister_global_timer") {
                self.run_system_task(id, "canister_global_timer", ApiContext::GlobalTimer);
            }
        }
        if self.exports(id, "canister_heartbeat") {
            self.run_system_task(id, "canister_heartbeat", ApiContext::Heartbeat);
        }
    }

    fn exports(&self, id: Principal, name: &str) -> bool {
        self.canisters[&id].instance.as_ref().is_some_and(|i| i.exports(name))
    }

    /// Runs `canister_on_low_wasm_memory` if its condition made it ready, the canister is running
    /// and not frozen (the spec's "call context creation: on low wasm memory"); the hook is
    /// then executed, whether or not the module exports it.
    pub(crate) fn run_low_wasm_memory_hook(&mut self, id: Principal) {
        let Some(c) = self.canisters.get_mut(&id) else { return };
        if c.low_memory_hook != LowMemoryHook::Ready || c.status != Status::Running || c.instance.is_none() {
            return;
        }
        c.low_memory_hook = LowMemoryHook::Executed;
        if !self.exports(id, "canister_on_low_wasm_memory") {
            return;
        }
        if !self.run_system_task(id, "canister_on_low_wasm_memory", ApiContext::OnLowWasmMemory) {
            self.canisters.get_mut(&id).expect("exists").low_memory_hook = LowMemoryHook::Ready;
        }
    }

    /// Runs a system task; returns whether it ran (a frozen canister runs none).
    fn run_system_task(&mut self, id: Principal, export: &'static str, kind: ApiContext) -> bool {
        let c = self.canisters.get_mut(&id).expect("exists");
        if c.liquid_cycles(&self.costs) < self.costs.execution(self.limits.update_instructions) {
            return false;
        }
        let context = c.next_id();
        c.call_contexts.insert(
            context,
            CallContext { origin: Origin::System, caller: MANAGEMENT_CANISTER, responded: true, available: 0, outstanding: 0, instructions: 0, deadline: 0 },
        );
        self.execute(id, Work::System { context, export, kind });
        true
    }

    fn process(&mut self, id: Principal, input: Input) {
        match input {
            Input::Request(request) => self.process_request(id, request),
            Input::Response(response) => self.process_response(id, response),
        }
    }

    fn process_request(&mut self, id: Principal, request: Request) {
        let c = self.canisters.get_mut(&id).expect("queued for an existing canister");
        let refuse = |reject: Reject| Output::Respond { origin: request.origin, from: id, result: Err(reject), refund: request.cycles };
        let refusal = match (&c.status, &c.instance) {
            (Status::Stopped, _) => Some(Reject::system(ErrorCode::CanisterStopped, format!("Canister {id} is stopped"))),
            (Status::Stopping(_), _) => Some(Reject::system(ErrorCode::CanisterStopping, format!("Canister {id} is stopping"))),
            (_, None) => Some(Reject::failed(&id, &no_wasm_module())),
            (_, Some(instance)) => {
                let update = instance.exports(&format!("canister_update {}", request.method));
                let query = instance.exports(&format!("canister_query {}", request.method));
                let composite = instance.exports(&format!("canister_composite_query {}", request.method));
                if !update && !query && !composite {
                    Some(Reject::failed(&id, &method_not_found("update", &request.method)))
                } else if c.liquid_cycles(&self.costs) < self.costs.execution(self.limits.update_instructions) {
                    Some(Reject::system(ErrorCode::CanisterOutOfCycles, format!("Canister {id} is out of cycles")))
                } else if !update && !query {
                    Some(composite_query_in_replicated_mode())
                } else {
                    // An update is refused before it runs while the heap exceeds the limit.
                    c.settings.heap_over_limit(instance.heap_bytes()).filter(|_| update).map(|error| Reject::failed(&id, &error))
                }
            }
        };
        if let Some(reject) = refusal {
            let output = refuse(reject);
            return self.route(id, vec![output]);
        }
        let query = !c.instance.as_ref().expect("checked").exports(&format!("canister_update {}", request.method));
        let context = c.next_id();
        c.call_contexts.insert(
            context,
            CallContext {
                origin: request.origin,
                caller: request.sender,
                responded: false,
                available: request.cycles,
                outstanding: 0,
                instructions: 0,
                deadline: request.deadline,
            },
        );
        let method = request.method.clone();
        self.execute_with_arg(id, Work::Request { context, method, query }, request.payload);
    }

    fn process_response(&mut self, id: Principal, response: ResponseMessage) {
        let c = self.canisters.get_mut(&id).expect("queued for an existing canister");
        let Some(callback) = c.callbacks.get(&response.callback) else { return };
        // A late response to an expired call is dropped; the expiry itself is delivered once.
        let is_expiry = matches!(&response.result, Err(r) if r.error_code == ErrorCode::DeadlineExpired);
        if callback.expired && !is_expiry {
            return;
        }
        let callback = c.callbacks.remove(&response.callback).expect("checked above");
        // What the call prepaid beyond its fee and bytes comes back, down to the response's size.
        let bytes = match &response.result {
            Ok(b) => b.len(),
            Err(r) => r.canister_message.len(),
        };
        let reservation = self.costs.response_reservation(&self.limits);
        let response_fee = self.costs.per_byte_sent * bytes as u128;
        c.cycles += response.refund + reservation.saturating_sub(response_fee);
        c.metrics.cycles_consumed += response_fee + (callback.call.prepaid - reservation);
        if c.instance.is_none() {
            return;
        }
        let context = callback.context;
        self.execute(id, Work::Callback { context, callback: Box::new(callback), result: response.result, refund: response.refund });
    }

    fn execute(&mut self, id: Principal, work: Work) {
        self.execute_with_arg(id, work, Vec::new())
    }

    /// Runs `work` on canister `id` and settles its call context.
    fn execute_with_arg(&mut self, id: Principal, work: Work, arg: Vec<u8>) {
        let injected = self.faults.take_trap(id);
        let c = &self.canisters[&id];
        let context_id = match &work {
            Work::Request { context, .. } | Work::Callback { context, .. } | Work::System { context, .. } => *context,
        };
        let ctx = c.call_contexts[&context_id].clone();
        let (kind, caller) = match &work {
            Work::Request { query: true, .. } => (ApiContext::ReplicatedQuery, ctx.caller),
            Work::Request { .. } => (ApiContext::Update, ctx.caller),
            Work::Callback { result: Ok(_), .. } => (ApiContext::ReplyCallback, ctx.caller),
            Work::Callback { .. } => (ApiContext::RejectCallback, ctx.caller),
            Work::System { kind, .. } => (*kind, MANAGEMENT_CANISTER),
        };
        let mut exec = self.execution(c, kind, caller);
        exec.already_responded = ctx.responded;
        exec.cycles_available = ctx.available;
        exec.deadline = ctx.deadline;
        exec.call_context_instructions = ctx.instructions;
        exec.instruction_limit = self.limits.update_instructions;
        exec.arg = arg;
        let budget = self.limits.update_instructions;
        let (entry_name, callback) = match &work {
            Work::Request { method, query, .. } => {
                (format!("canister_{} {method}", if *query { "query" } else { "update" }), None)
            }
            Work::Callback { callback, result, refund, .. } => {
                exec.cycles_refunded = *refund;
                match result {
                    Ok(bytes) => exec.arg = bytes.clone(),
                    Err(r) => exec.reject = Some((r.code, r.canister_message.clone())),
                }
                (String::new(), Some(callback.clone()))
            }
            Work::System { export, .. } => (export.to_string(), None),
        };
        let entry = match &callback {
            Some(cb) if kind == ApiContext::ReplyCallback => Entry::Callback { fun: cb.call.on_reply.0, env: cb.call.on_reply.1 },
            Some(cb) => Entry::Callback { fun: cb.call.on_reject.0, env: cb.call.on_reject.1 },
            None => Entry::Export(&entry_name),
        };

        let c = self.canisters.get_mut(&id).expect("exists");
        let instance = c.instance.as_mut().expect("checked before scheduling");
        let mut outcome = instance.run_uncommitted(entry, exec, budget);
        let stable_pages_dirtied = instance.stable().dirty_pages() as u64;
        if outcome.result.is_ok() && (kind == ApiContext::ReplicatedQuery || injected.is_some()) {
            outcome.rollback = Some(instance.roll_back());
            if let Some(trap) = &injected {
                outcome.result = Err(trap.error());
            } else {
                // A query executed as an update: its answer counts, its changes do not.
                outcome.exec.calls.clear();
            }
        } else if outcome.result.is_ok() {
            instance.commit();
        } else {
            outcome.rollback = Some(instance.roll_back());
        }
        if let Some(rollback) = outcome.rollback {
            c.metrics.record_rollback(rollback);
        }

        // A trapped callback is followed by its cleanup, on the state from before the callback.
        let mut error = outcome.result.clone().err();
        let mut cleanup_outcome = None;
        if let (Some(err), Some(cb)) = (&error, &callback)
            && let Some((fun, env)) = cb.call.on_cleanup
        {
            let mut exec = self.execution(&self.canisters[&id], ApiContext::Cleanup, caller);
            exec.instruction_limit = self.limits.update_instructions;
            let left = budget.saturating_sub(outcome.instructions);
            let c = self.canisters.get_mut(&id).expect("exists");
            let instance = c.instance.as_mut().expect("exists");
            let cleanup = instance.run(Entry::Callback { fun, env }, exec, left);
            if let Err(cleanup_err) = &cleanup.result {
                error = Some(err.with_failed_cleanup(&id, cleanup_err));
            }
            cleanup_outcome = Some(cleanup);
        }
        if let Some(log) = &mut self.execution_log {
            let entry = match &work {
                Work::Request { method, .. } => ExecutedEntry::Method(method.clone()),
                Work::Callback { callback, .. } => ExecutedEntry::Callback(callback.call.method.clone()),
                Work::System { export, .. } => ExecutedEntry::System(export.to_string()),
            };
            log.push(ExecutionRecord { canister: id, entry, instructions: outcome.instructions, stable_pages_dirtied, succeeded: error.is_none() });
        }
        let executed = Executed { canister: id, context_id, kind, outcome, cleanup: cleanup_outcome, error };
        let outputs = self.settle(executed);
        self.route(id, outputs);
        // The low-memory hook, made ready by this execution's growth, is the canister's next.
        if let Some(c) = self.canisters.get_mut(&id) {
            c.update_low_wasm_memory_hook_condition();
        }
        self.run_low_wasm_memory_hook(id);
    }

    /// Applies an execution's effects to its canister and call context, and returns what it
    /// sends out.
    fn settle(&mut self, executed: Executed) -> Vec<Output> {
        let Executed { canister: id, context_id, kind, outcome, cleanup, error } = executed;
        let costs = self.costs.clone();
        let (time, to_stderr) = (self.time, self.log_to_stderr);
        let c = self.canisters.get_mut(&id).expect("exists");
        let mut outputs = Vec::new();
        let mut instructions = outcome.instructions;
        for line in outcome.exec.logs.iter().cloned() {
            c.log(time, line, to_stderr);
        }
        if let Some(err) = &outcome.result.as_ref().err() {
            c.log(time, format!("[TRAP]: {}", err.display).into_bytes(), to_stderr);
        }
        c.log_buffer.record(time, &outcome.exec.logs, outcome.result.as_ref().err());
        let succeeded = outcome.result.is_ok();
        let exec = outcome.exec;
        // A query executed as an update answers, but keeps no change.
        if succeeded && kind != ApiContext::ReplicatedQuery {
            c.cycles = exec.balance;
            c.global_timer = exec.global_timer;
            if let Some(data) = exec.certified_data {
                c.certified_data = data;
            }
            c.version += 1;
            let ctx = c.call_contexts.get_mut(&context_id).expect("context of this execution");
            ctx.available -= exec.cycles_accepted;
            ctx.outstanding += exec.calls.len() as u32;
            for call in exec.calls {
                let deadline = call.timeout_seconds.map_or(0, |s| (time / 1_000_000_000 + s as u64) * 1_000_000_000);
                let callback = c.next_id();
                let request = Request {
                    sender: id,
                    receiver: call.callee,
                    method: call.method.clone(),
                    payload: call.payload.clone(),
                    cycles: call.cycles,
                    origin: Origin::Canister { caller: id, callback },
                    deadline,
                };
                c.callbacks.insert(callback, Callback { context: context_id, call, deadline, expired: false });
                outputs.push(Output::Request(request));
            }
        }
        if let (true, Some(response)) = (succeeded, exec.response) {
            let ctx = c.call_contexts.get_mut(&context_id).expect("context of this execution");
            ctx.responded = true;
            let result = match response {
                Response::Reply(bytes) => Ok(bytes),
                Response::Reject(msg) => Err(Reject::by_canister(msg)),
            };
            outputs.push(Output::Respond { origin: ctx.origin, from: id, result, refund: std::mem::take(&mut ctx.available) });
        }
        if let Some(cleanup) = cleanup {
            instructions += cleanup.instructions;
            for line in cleanup.exec.logs.iter().cloned() {
                c.log(time, line, to_stderr);
            }
            c.log_buffer.record(time, &cleanup.exec.logs, cleanup.result.as_ref().err());
            if cleanup.result.is_ok() {
                c.cycles = cleanup.exec.balance;
                c.global_timer = cleanup.exec.global_timer;
            }
        }
        let fee = costs.execution(instructions);
        c.cycles = c.cycles.saturating_sub(fee);
        c.metrics.cycles_consumed += fee;
        c.metrics.executions += 1;
        c.metrics.instructions += instructions;

        let ctx = c.call_contexts.get_mut(&context_id).expect("context of this execution");
        ctx.instructions += instructions;
        if matches!(kind, ApiContext::ReplyCallback | ApiContext::RejectCallback) {
            ctx.outstanding -= 1;
        }
        if !ctx.responded && ctx.outstanding == 0 {
            ctx.responded = true;
            let reject = match &error {
                Some(err) => Reject::failed(&id, err),
                None => Reject {
                    code: RejectCode::CanisterError,
                    error_code: ErrorCode::CanisterDidNotReply,
                    user_message: format!("Canister {id} did not reply to the call"),
                    canister_message: "No response".to_string(),
                },
            };
            outputs.push(Output::Respond { origin: ctx.origin, from: id, result: Err(reject), refund: std::mem::take(&mut ctx.available) });
        }
        if ctx.responded && ctx.outstanding == 0 {
            c.call_contexts.remove(&context_id);
        }
        outputs
    }

    /// Canisters that are stopping and have no open call contexts become stopped.
    fn finish_stopping(&mut self) {
        let mut answers = Vec::new();
        for c in self.canisters.values_mut() {
            if let Status::Stopping(waiters) = &c.status
                && c.call_contexts.is_empty()
                && c.callbacks.is_empty()
            {
                answers.extend(waiters.iter().map(|&waiter| (waiter, c.subnet)));
                c.status = Status::Stopped;
                c.version += 1;
            }
        }
        for (origin, at) in answers {
            self.deliver_response(origin, MANAGEMENT_CANISTER, Ok(candid::encode_args(()).expect("no value encodes")), 0, at);
        }
    }
}

pub fn method_not_found(kind: &str, method: &str) -> ExecError {
    ExecError {
        code: ErrorCode::CanisterMethodNotFound,
        display: format!("Canister has no {kind} method '{method}'."),
        help: Help::MethodNotFound,
    }
}

/// A composite query method called as an update, by ingress or by a canister: the IC runs
/// composite queries only outside consensus (execution/replicated_query.rs).
fn composite_query_in_replicated_mode() -> Reject {
    Reject::user_error(ErrorCode::CompositeQueryCalledInReplicatedMode, "Composite query cannot be called in replicated mode")
}

pub fn no_wasm_module() -> ExecError {
    ExecError {
        code: ErrorCode::CanisterWasmModuleNotFound,
        display: "Attempted to execute a message, but the canister contains no Wasm module.".to_string(),
        help: Help::WasmModuleNotFound,
    }
}
