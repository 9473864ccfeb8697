//! [`Harness`]: the embedded IC's public API, named as the `pocket-ic` crate names it so
//! tests move between the two.

use std::cell::RefCell;
use std::time::Duration;

use candid::{Encode, Principal};
use ic_management_canister_types as mgmt;

use crate::config::{Clock, CostTable, DEFAULT_PROVISIONAL_CYCLES, Limits};
use crate::faults::CallMatcher;
use crate::management::InstallMode;
use crate::subnets::{SubnetId, XNet};
use crate::types::{CallResult, ErrorCode, LogRecord, MANAGEMENT_CANISTER, RejectCode, RejectResponse};
use crate::world::{AdvanceError, AdvanceReport, CanisterMetrics, ExecutionRecord, Traffic, World};

/// The IC's time: nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(u64);

impl Time {
    pub const fn from_nanos_since_unix_epoch(nanos: u64) -> Self {
        Time(nanos)
    }

    pub fn as_nanos_since_unix_epoch(&self) -> u64 {
        self.0
    }
}

impl std::ops::Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        Time(self.0 + d.as_nanos() as u64)
    }
}

/// PocketIC's genesis time: 2021-05-06 19:17:10 UTC.
pub const DEFAULT_INITIAL_TIME: Time = Time(1_620_328_630_000_000_000);

/// An ingress message in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MessageId(u64);

/// Builds a [`Harness`] with other limits, prices or start time.
#[derive(Clone, Debug)]
pub struct HarnessBuilder {
    limits: Limits,
    costs: CostTable,
    initial_time: Time,
    log_to_stderr: bool,
    max_rounds_per_call: u32,
    clock: Clock,
    subnets: u32,
    xnet: XNet,
}

impl Default for HarnessBuilder {
    fn default() -> Self {
        HarnessBuilder {
            limits: Limits::default(),
            costs: CostTable::default(),
            initial_time: DEFAULT_INITIAL_TIME,
            log_to_stderr: std::env::var_os("HARNESS_LOG").is_some(),
            max_rounds_per_call: 100,
            clock: Clock::default(),
            subnets: 1,
            xnet: XNet::default(),
        }
    }
}

impl HarnessBuilder {
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Prices of a subnet of `nodes` nodes.
    pub fn with_subnet_size(mut self, nodes: u64) -> Self {
        self.costs = CostTable::for_subnet_size(nodes);
        self
    }

    pub fn with_initial_time(mut self, time: Time) -> Self {
        self.initial_time = time;
        self
    }

    /// Prints every canister's `debug_print` lines to stderr (also with `HARNESS_LOG` set).
    pub fn with_log_to_stderr(mut self, on: bool) -> Self {
        self.log_to_stderr = on;
        self
    }

    /// Rounds [`Harness::await_call`] runs before giving up (PocketIC: 100), not counting the
    /// rounds in which messages wait in streams between subnets.
    pub fn with_max_rounds_per_call(mut self, rounds: u32) -> Self {
        self.max_rounds_per_call = rounds;
        self
    }

    /// Time between two rounds in [`Harness::advance`] and [`Harness::advance_rounds`]
    /// (default 1 s; at least 1 ns).
    pub fn with_round_interval(mut self, interval: Duration) -> Self {
        self.clock.round_interval_nanos = nanos(interval).max(1);
        self
    }

    /// Rounds one advance may run before it stops with [`AdvanceError`] (default 1,000,000).
    pub fn with_max_rounds_per_advance(mut self, rounds: u64) -> Self {
        self.clock.max_rounds_per_advance = rounds;
        self
    }

    /// `count` subnets (at least 1), `SubnetId(0)` to `SubnetId(count - 1)`. Canisters are
    /// created on subnet 0 unless [`Harness::create_canister_on_subnet`] says otherwise; a
    /// canister created by a canister is on its creator's subnet.
    pub fn with_subnets(mut self, count: u32) -> Self {
        self.subnets = count.max(1);
        self
    }

    /// How messages travel between subnets (default [`XNet::default`]: 2 rounds each way, 4 MiB
    /// per stream and round).
    pub fn with_xnet(mut self, xnet: XNet) -> Self {
        self.xnet = xnet;
        self
    }

    pub fn build(self) -> Harness {
        let mut world = World::new(self.limits, self.costs, self.initial_time.0);
        world.log_to_stderr = self.log_to_stderr;
        world.subnets = self.subnets;
        world.xnet = self.xnet;
        Harness { world: RefCell::new(world), max_rounds_per_call: self.max_rounds_per_call, clock: self.clock }
    }
}

/// An embedded IC: canisters run in this process, on wasmtime.
pub struct Harness {
    world: RefCell<World>,
    max_rounds_per_call: u32,
    clock: Clock,
}

/// A duration in nanoseconds, `u64::MAX` for one longer than the IC's clock can count.
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

fn user(sender: Option<Principal>) -> Principal {
    sender.unwrap_or_else(Principal::anonymous)
}

impl Harness {
    pub fn new() -> Self {
        HarnessBuilder::default().build()
    }

    pub fn builder() -> HarnessBuilder {
        HarnessBuilder::default()
    }

    /// Saves the IC into `dir` (see `persist`), first running up to `max_rounds` rounds until
    /// no message is queued or in flight.
    pub fn save(&self, dir: &std::path::Path, max_rounds: u32) -> Result<(), crate::persist::PersistError> {
        for _ in 0..max_rounds {
            if self.world.borrow().is_quiet().is_ok() {
                break;
            }
            self.tick();
        }
        self.world.borrow_mut().save(dir)
    }

    /// Loads an IC saved by [`Self::save`].
    pub fn load(dir: &std::path::Path) -> Result<Self, crate::persist::PersistError> {
        let world = World::load(dir)?;
        let log_to_stderr = std::env::var_os("HARNESS_LOG").is_some();
        let mut world = world;
        world.log_to_stderr = log_to_stderr;
        let defaults = HarnessBuilder::default();
        Ok(Harness { world: RefCell::new(world), max_rounds_per_call: defaults.max_rounds_per_call, clock: defaults.clock })
    }

    /// Direct access to the state, for the harness's own extensions.
    pub fn with_world<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut self.world.borrow_mut())
    }

    fn management(&self, sender: Principal, method: &str, payload: Vec<u8>) -> CallResult {
        let id = self.submit_call(MANAGEMENT_CANISTER, sender, method, payload)?;
        self.await_call(id)
    }

    /// Creates a canister with 100T cycles, controlled by the anonymous principal.
    pub fn create_canister(&self) -> Principal {
        self.create_canister_with_settings(None, None)
    }

    /// Creates a canister with 100T cycles, controlled by `sender` unless `settings` says.
    pub fn create_canister_with_settings(&self, sender: Option<Principal>, settings: Option<mgmt::CanisterSettings>) -> Principal {
        self.create_canister_with_cycles(sender, settings, DEFAULT_PROVISIONAL_CYCLES)
    }

    /// Creates a canister with `cycles` cycles (PocketIC: `create_canister_with_params`).
    pub fn create_canister_with_cycles(&self, sender: Option<Principal>, settings: Option<mgmt::CanisterSettings>, cycles: u128) -> Principal {
        self.create_canister_with_cycles_on(sender, settings, cycles, SubnetId::default())
    }

    /// As [`Self::create_canister_with_settings`], on `subnet`; panics if there is no such
    /// subnet ([`HarnessBuilder::with_subnets`]).
    pub fn create_canister_on_subnet(&self, sender: Option<Principal>, settings: Option<mgmt::CanisterSettings>, subnet: SubnetId) -> Principal {
        self.create_canister_with_cycles_on(sender, settings, DEFAULT_PROVISIONAL_CYCLES, subnet)
    }

    /// As [`Self::create_canister_with_cycles`], on `subnet`; panics if there is no such subnet.
    pub fn create_canister_with_cycles_on(&self, sender: Option<Principal>, settings: Option<mgmt::CanisterSettings>, cycles: u128, subnet: SubnetId) -> Principal {
        self.world
            .borrow_mut()
            .create_canister(user(sender), false, settings, cycles, subnet)
            .unwrap_or_else(|r| panic!("create_canister: {}", r.user_message))
    }

    /// How many subnets this IC has (numbered from 0).
    pub fn subnet_count(&self) -> u32 {
        self.world.borrow().subnets
    }

    /// The subnet `canister` is on, if it exists.
    pub fn subnet_of(&self, canister: Principal) -> Option<SubnetId> {
        self.world.borrow().subnet_of(&canister)
    }

    /// Rounds run so far (by [`Self::tick`], the calls that wait, and the advances).
    pub fn rounds(&self) -> u64 {
        self.world.borrow().rounds
    }

    pub fn canister_exists(&self, canister: Principal) -> bool {
        self.world.borrow().canisters.contains_key(&canister)
    }

    /// Adds cycles; returns the new balance.
    pub fn add_cycles(&self, canister: Principal, amount: u128) -> u128 {
        let mut world = self.world.borrow_mut();
        let c = world.canisters.get_mut(&canister).unwrap_or_else(|| panic!("canister {canister} does not exist"));
        c.cycles += amount;
        c.cycles
    }

    pub fn cycle_balance(&self, canister: Principal) -> u128 {
        self.world.borrow().canister(&canister).map_or(0, |c| c.cycles)
    }

    /// Installs `wasm_module` on an empty canister; panics on failure, as PocketIC does.
    pub fn install_canister(&self, canister: Principal, wasm_module: Vec<u8>, arg: Vec<u8>, sender: Option<Principal>) {
        self.try_install_canister(canister, wasm_module, arg, sender)
            .unwrap_or_else(|r| panic!("install_canister failed: {}", r.reject_message))
    }

    /// Installs `wasm_module` on an empty canister. A module that is not valid wasm fails with
    /// `CanisterInvalidWasm`, a trapping init with the trap's code; the canister stays empty.
    pub fn try_install_canister(&self, canister: Principal, wasm_module: Vec<u8>, arg: Vec<u8>, sender: Option<Principal>) -> Result<(), RejectResponse> {
        self.install(canister, wasm_module, arg, sender, InstallMode::Install)
    }

    pub fn upgrade_canister(&self, canister: Principal, wasm_module: Vec<u8>, arg: Vec<u8>, sender: Option<Principal>) -> Result<(), RejectResponse> {
        self.install(canister, wasm_module, arg, sender, InstallMode::Upgrade { skip_pre_upgrade: false })
    }

    pub fn reinstall_canister(&self, canister: Principal, wasm_module: Vec<u8>, arg: Vec<u8>, sender: Option<Principal>) -> Result<(), RejectResponse> {
        self.install(canister, wasm_module, arg, sender, InstallMode::Reinstall)
    }

    fn install(&self, canister: Principal, wasm: Vec<u8>, arg: Vec<u8>, sender: Option<Principal>, mode: InstallMode) -> Result<(), RejectResponse> {
        self.world
            .borrow_mut()
            .install_code(user(sender), false, canister, mode, &wasm, arg)
            .map_err(|r| r.to_user())
    }

    pub fn uninstall_canister(&self, canister: Principal, sender: Option<Principal>) -> Result<(), RejectResponse> {
        self.world.borrow_mut().uninstall_code(user(sender), false, canister).map_err(|r| r.to_user())
    }

    /// Sends an update call and runs rounds until it completes.
    pub fn update_call(&self, canister: Principal, sender: Principal, method: &str, payload: Vec<u8>) -> CallResult {
        let id = self.submit_call(canister, sender, method, payload)?;
        self.await_call(id)
    }

    /// Runs a query; its changes are discarded.
    pub fn query_call(&self, canister: Principal, sender: Principal, method: &str, payload: Vec<u8>) -> CallResult {
        self.world.borrow_mut().query(canister, sender, method, payload)
    }

    /// Submits an update call without running it.
    pub fn submit_call(&self, canister: Principal, sender: Principal, method: &str, payload: Vec<u8>) -> Result<MessageId, RejectResponse> {
        self.world.borrow_mut().submit_ingress(canister, sender, method, payload).map(MessageId)
    }

    /// Runs rounds until the call completes: at most the configured number of rounds
    /// ([`HarnessBuilder::with_max_rounds_per_call`]) besides those that start with messages
    /// waiting in streams between subnets (a call that moves 1 GiB across subnets waits at
    /// least 256 rounds at 4 MiB a round), and never more than the rounds one advance may run.
    pub fn await_call(&self, id: MessageId) -> CallResult {
        let (mut rounds, mut counted) = (0u64, 0u32);
        while counted <= self.max_rounds_per_call && rounds < self.clock.max_rounds_per_advance {
            if let Some(result) = self.ingress_status(id) {
                return result;
            }
            let streams_busy = self.world.borrow().streams_busy();
            self.tick();
            rounds += 1;
            if !streams_busy {
                counted += 1;
            }
        }
        Err(RejectResponse::new(ErrorCode::IngressMessageTimeout, format!("Failed to answer to ingress {} after {rounds} rounds.", id.0)))
    }

    /// The result of a submitted call, if it completed.
    pub fn ingress_status(&self, id: MessageId) -> Option<CallResult> {
        self.world.borrow().ingress.get(&id.0).cloned().flatten()
    }

    /// Executes one round.
    pub fn tick(&self) {
        self.world.borrow_mut().tick();
    }

    /// Moves time forward (runs no round); canisters pay storage for the elapsed time.
    pub fn advance_time(&self, duration: Duration) {
        self.world.borrow_mut().advance_time(duration.as_nanos() as u64);
    }

    /// Lets `duration` pass as the IC would, with rounds only where something is due: each
    /// global timer fires in a round at its time, a canister with a heartbeat gets a round
    /// every round interval, messages in flight run in the next round, a bounded-wait call
    /// expires just after its deadline; a round never comes sooner than one round interval
    /// after the last, so a timer re-armed at once fires once per interval. The messages a
    /// round produces run in it (up to 64 inner rounds, then in the next round). Canisters pay
    /// storage for the time as it passes. Returns the rounds and executions it ran, or stops
    /// with [`AdvanceError`] once it has run the round limit
    /// ([`HarnessBuilder::with_max_rounds_per_advance`]).
    pub fn advance(&self, duration: Duration) -> Result<AdvanceReport, AdvanceError> {
        self.world.borrow_mut().advance(nanos(duration), &self.clock)
    }

    /// Lets `duration` pass round by round: a round every round interval whether or not
    /// anything is due, as the IC runs them. Refused up front, running nothing, if that is
    /// more rounds than the limit.
    pub fn advance_rounds(&self, duration: Duration) -> Result<AdvanceReport, AdvanceError> {
        self.world.borrow_mut().advance_rounds(nanos(duration), &self.clock)
    }

    pub fn get_time(&self) -> Time {
        Time(self.world.borrow().time)
    }

    /// Sets the time; it cannot go back.
    pub fn set_time(&self, time: Time) {
        let now = self.world.borrow().time;
        assert!(time.0 >= now, "time cannot go back: {} < {now}", time.0);
        self.world.borrow_mut().advance_time(time.0 - now);
    }

    pub fn get_controllers(&self, canister: Principal) -> Vec<Principal> {
        self.world.borrow().canister(&canister).map(|c| c.controllers.clone()).unwrap_or_default()
    }

    pub fn set_controllers(&self, canister: Principal, sender: Option<Principal>, new_controllers: Vec<Principal>) -> Result<(), RejectResponse> {
        let settings = mgmt::CanisterSettings { controllers: Some(new_controllers), ..Default::default() };
        self.update_canister_settings(canister, sender, settings)
    }

    pub fn update_canister_settings(&self, canister: Principal, sender: Option<Principal>, settings: mgmt::CanisterSettings) -> Result<(), RejectResponse> {
        self.world
            .borrow_mut()
            .update_settings(user(sender), false, canister, settings)
            .map_err(|r| r.to_user())
    }

    /// Stops a canister: runs rounds until its open calls are done.
    pub fn stop_canister(&self, canister: Principal, sender: Option<Principal>) -> Result<(), RejectResponse> {
        let arg = Encode!(&mgmt::CanisterIdRecord { canister_id: canister }).expect("encodes");
        self.management(user(sender), "stop_canister", arg).map(|_| ())
    }

    pub fn start_canister(&self, canister: Principal, sender: Option<Principal>) -> Result<(), RejectResponse> {
        self.world.borrow_mut().start_canister(user(sender), canister).map_err(|r| r.to_user())
    }

    pub fn delete_canister(&self, canister: Principal, sender: Option<Principal>) -> Result<(), RejectResponse> {
        self.world.borrow_mut().delete_canister(user(sender), canister).map_err(|r| r.to_user())
    }

    pub fn canister_status(&self, canister: Principal, sender: Option<Principal>) -> Result<mgmt::CanisterStatusResult, RejectResponse> {
        self.world.borrow().canister_status(user(sender), canister).map_err(|r| r.to_user())
    }

    pub fn get_stable_memory(&self, canister: Principal) -> Vec<u8> {
        let world = self.world.borrow();
        let c = world.canister(&canister).unwrap_or_else(|| panic!("canister {canister} does not exist"));
        c.instance.as_ref().map(|i| i.stable().contents().to_vec()).unwrap_or_default()
    }

    /// Replaces a canister's stable memory (outside any message).
    pub fn set_stable_memory(&self, canister: Principal, data: Vec<u8>) {
        let mut world = self.world.borrow_mut();
        let c = world.canisters.get_mut(&canister).unwrap_or_else(|| panic!("canister {canister} does not exist"));
        let instance = c.instance.as_mut().unwrap_or_else(|| panic!("canister {canister} has no module"));
        instance.stable_mut().set_contents(&data).unwrap_or_else(|e| panic!("set_stable_memory: {e}"));
    }

    /// A canister's log as `sender` may read it, by a query call of `fetch_canister_logs` (as
    /// PocketIC's): the records the IC keeps, which its `log_visibility` lets `sender` see.
    pub fn fetch_canister_logs(&self, canister: Principal, sender: Principal) -> Result<Vec<LogRecord>, RejectResponse> {
        let args = mgmt::FetchCanisterLogsArgs { canister_id: canister, filter: None };
        let reply = self.query_call(MANAGEMENT_CANISTER, sender, "fetch_canister_logs", Encode!(&args).expect("encodes"))?;
        let result = candid::decode_one::<mgmt::FetchCanisterLogsResult>(&reply).expect("the management canister's reply decodes");
        Ok(result
            .canister_log_records
            .into_iter()
            .map(|r| LogRecord { idx: r.idx, timestamp_nanos: r.timestamp_nanos, content: r.content })
            .collect())
    }

    /// A native snapshot of `canister` taken as `sender`, in place of snapshot `replace` if given.
    pub fn take_canister_snapshot(&self, canister: Principal, sender: Option<Principal>, replace: Option<Vec<u8>>) -> Result<mgmt::Snapshot, RejectResponse> {
        let args = mgmt::TakeCanisterSnapshotArgs { canister_id: canister, replace_snapshot: replace, uninstall_code: None, sender_canister_version: None };
        self.management_candid(sender, "take_canister_snapshot", Encode!(&args)).map(|(snapshot,)| snapshot)
    }

    pub fn load_canister_snapshot(&self, canister: Principal, sender: Option<Principal>, snapshot: Vec<u8>) -> Result<(), RejectResponse> {
        let args = mgmt::LoadCanisterSnapshotArgs { canister_id: canister, snapshot_id: snapshot, sender_canister_version: None };
        self.management_candid(sender, "load_canister_snapshot", Encode!(&args))
    }

    pub fn list_canister_snapshots(&self, canister: Principal, sender: Option<Principal>) -> Result<Vec<mgmt::Snapshot>, RejectResponse> {
        self.management_candid(sender, "list_canister_snapshots", Encode!(&mgmt::CanisterIdRecord { canister_id: canister })).map(|(all,)| all)
    }

    pub fn delete_canister_snapshot(&self, canister: Principal, sender: Option<Principal>, snapshot: Vec<u8>) -> Result<(), RejectResponse> {
        let args = mgmt::DeleteCanisterSnapshotArgs { canister_id: canister, snapshot_id: snapshot };
        self.management_candid(sender, "delete_canister_snapshot", Encode!(&args))
    }

    /// A call of management method `method` as `sender` (an ingress message), its reply decoded.
    fn management_candid<R: for<'a> candid::utils::ArgumentDecoder<'a>>(&self, sender: Option<Principal>, method: &str, payload: candid::Result<Vec<u8>>) -> Result<R, RejectResponse> {
        let reply = self.management(user(sender), method, payload.expect("management arguments encode"))?;
        Ok(candid::decode_args(&reply).expect("the management canister's reply decodes"))
    }

    // Beyond PocketIC: what the harness can show and do because it runs in-process.

    /// Every log line of a canister, including traps as `[TRAP]: ...`.
    pub fn canister_logs(&self, canister: Principal) -> Vec<LogRecord> {
        self.world.borrow().canister(&canister).map(|c| c.logs.clone()).unwrap_or_default()
    }

    /// The metadata `name` of the module `canister` runs ([`module_metadata`]), public or
    /// private alike; `None` for an empty canister or a module without it.
    pub fn canister_metadata(&self, canister: Principal, name: &str) -> Option<Vec<u8>> {
        let world = self.world.borrow();
        module_metadata(&world.canister(&canister)?.instance.as_ref()?.module().wasm, name)
    }

    pub fn canister_metrics(&self, canister: Principal) -> CanisterMetrics {
        self.world.borrow().canister(&canister).map(|c| c.metrics.clone()).unwrap_or_default()
    }

    /// Starts logging every replicated execution of a message on any canister (requests,
    /// callbacks, system tasks; not installs), or stops and drops the log.
    pub fn log_executions(&self, on: bool) {
        self.world.borrow_mut().execution_log = on.then(Vec::new);
    }

    /// The executions logged since logging started or since the last take, oldest first.
    pub fn take_execution_log(&self) -> Vec<ExecutionRecord> {
        self.world.borrow_mut().execution_log.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Requests and responses that crossed between different canisters.
    pub fn traffic(&self) -> Traffic {
        self.world.borrow().traffic.clone()
    }

    /// The heap of a canister (its logical size).
    pub fn heap_memory(&self, canister: Principal) -> Vec<u8> {
        let world = self.world.borrow();
        world.canister(&canister).and_then(|c| c.instance.as_ref()).map(|i| i.heap().to_vec()).unwrap_or_default()
    }

    /// Makes the canister's `nth` replicated execution from now (1 = the next) trap after it
    /// ran: its changes are rolled back, as after any trap.
    pub fn trap_at_message(&self, canister: Principal, nth: u64) {
        self.world.borrow_mut().faults.trap_at(canister, nth);
    }

    /// Answers matching calls with `code` and `message` instead of delivering them, `times`
    /// times (`None`: until cleared).
    pub fn reject_calls(&self, matcher: CallMatcher, code: RejectCode, message: &str, times: Option<u32>) {
        self.world.borrow_mut().faults.reject_calls(matcher, code, message, times);
    }

    /// Drops the responses of matching bounded-wait calls: the caller gets SYS_UNKNOWN once
    /// the call's deadline passes.
    pub fn drop_responses(&self, matcher: CallMatcher, times: Option<u32>) {
        self.world.borrow_mut().faults.drop_responses(matcher, times);
    }

    /// Flips the middle byte of matching requests' payloads, `times` times.
    pub fn corrupt_requests(&self, matcher: CallMatcher, times: Option<u32>) {
        self.world.borrow_mut().faults.corrupt_requests(matcher, times);
    }

    /// Flips the middle byte of the replies to matching calls, `times` times.
    pub fn corrupt_replies(&self, matcher: CallMatcher, times: Option<u32>) {
        self.world.borrow_mut().faults.corrupt_replies(matcher, times);
    }

    pub fn clear_faults(&self) {
        self.world.borrow_mut().faults.clear();
    }

    /// How many injected faults fired so far.
    pub fn faults_fired(&self) -> u64 {
        self.world.borrow().faults.fired
    }
}

/// The metadata `name` of a canister module (plain or gzip-compressed): the content of its
/// custom section `icp:public <name>` or `icp:private <name>`, as `ic-wasm metadata` writes
/// them (e.g. `candid:service`, the module's candid interface); `None` if it has neither or is
/// not a wasm module.
pub fn module_metadata(wasm: &[u8], name: &str) -> Option<Vec<u8>> {
    let decompressed;
    let wasm = if wasm.starts_with(&[0x1f, 0x8b]) {
        decompressed = crate::canister::gunzip(wasm).ok()?;
        &decompressed[..]
    } else {
        wasm
    };
    let sections = [format!("icp:public {name}"), format!("icp:private {name}")];
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        if let wasmparser::Payload::CustomSection(section) = payload.ok()?
            && sections.iter().any(|s| s == section.name())
        {
            return Some(section.data().to_vec());
        }
    }
    None
}
