//! The management canister `aaaaa-aa`: canister lifecycle, settings, status, info, logs and
//! snapshots (`snapshots`).
//!
//! Each method checks its caller as the IC does (controllers, canisters only, or a visibility
//! setting) and answers with the replica's texts, its reply encoded as the IC encodes it (a
//! method whose result is `()` answers with no value). Install and upgrade run the canister's
//! hooks atomically: a trap in `canister_init`, `canister_pre_upgrade` or
//! `canister_post_upgrade` leaves the canister as it was. `canister_status` and
//! `fetch_canister_logs` also answer query calls ([`World::management_query`]);
//! `fetch_canister_logs` answers nothing else.

use std::sync::Arc;

use candid::{Decode, Encode, Nat, Principal};
use ic_management_canister_types as mgmt;
use sha2::{Digest, Sha256};

use crate::canister::{self, CompiledModule, Entry, ExecError, Instance, Outcome};
use crate::messages::{Origin, Reject, Request};
use crate::pages::StableMemory;
use crate::settings::{self as canister_settings, Settings};
use crate::subnets::SubnetId;
use crate::system_api::ApiContext;
use crate::types::{ErrorCode, MANAGEMENT_CANISTER, RejectResponse, canister_id_from_index};
use crate::world::{CanisterState, Status, World};

const DOCS: &str = "https://internetcomputer.org/docs/current/references/execution-errors";

fn nat_u128(n: &Nat) -> u128 {
    u128::try_from(n.0.clone()).unwrap_or(u128::MAX)
}

fn decode<T: candid::CandidType + for<'de> serde::Deserialize<'de>>(method: &str, payload: &[u8]) -> Result<T, Reject> {
    Decode!(payload, T)
        .map_err(|e| Reject::system(ErrorCode::InvalidManagementPayload, format!("Error decoding candid for method {method}: {e}")))
}

fn encode<T: candid::CandidType>(value: &T) -> Vec<u8> {
    Encode!(value).expect("management replies encode")
}

/// The reply of a method whose result is `()`: no value.
pub(crate) fn empty_reply() -> Vec<u8> {
    Encode!().expect("an empty argument list encodes")
}

/// How an install changes the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallMode {
    Install,
    Reinstall,
    Upgrade { skip_pre_upgrade: bool },
}

impl World {
    pub(crate) fn origin_of(&self, sender: Principal, from_canister: bool) -> mgmt::ChangeOrigin {
        if from_canister {
            mgmt::ChangeOrigin::FromCanister(mgmt::FromCanisterRecord {
                canister_id: sender,
                canister_version: self.canisters.get(&sender).map(|c| c.version),
            })
        } else {
            mgmt::ChangeOrigin::FromUser(mgmt::FromUserRecord { user_id: sender })
        }
    }

    pub(crate) fn existing(&self, id: Principal) -> Result<&CanisterState, Reject> {
        self.canisters.get(&id).ok_or_else(|| {
            Reject::system(
                ErrorCode::CanisterNotFound,
                format!(
                    "Canister {id} not found.\nCheck the ICP dashboard to ensure the canister exists. See documentation: {DOCS}#canister-not-found"
                ),
            )
        })
    }

    /// The canister, if `sender` controls it.
    pub(crate) fn controlled(&self, id: Principal, sender: Principal) -> Result<&CanisterState, Reject> {
        let c = self.existing(id)?;
        if !c.controllers.contains(&sender) {
            let controllers: Vec<String> = c.controllers.iter().map(|p| p.to_string()).collect();
            return Err(Reject::system(
                ErrorCode::CanisterInvalidController,
                format!(
                    "Only the controllers of the canister {id} can control it.\nCanister's controllers: {}\nSender's ID: {sender}\nExecute this call from a controller of the target canister or add the current caller as a controller. See documentation: {DOCS}#invalid-controller",
                    controllers.join(" ")
                ),
            ));
        }
        Ok(c)
    }

    /// A call to the management canister of subnet `at`, from a canister or an ingress
    /// message, that is answered at once (all but `stop_canister`).
    fn management_call(
        &mut self,
        at: SubnetId,
        sender: Principal,
        from_canister: bool,
        method: &str,
        payload: &[u8],
        cycles: u128,
    ) -> Result<Vec<u8>, Reject> {
        let only_canisters = |name: &str| {
            Reject::system(ErrorCode::CanisterRejectedMessage, format!("Only canisters can call ic00 method {name}"))
        };
        match method {
            "create_canister" => {
                let args: mgmt::CreateCanisterArgs = decode(method, payload)?;
                if from_canister && cycles < self.costs.canister_creation {
                    return Err(Reject::system(
                        ErrorCode::InsufficientCyclesForCreateCanister,
                        format!(
                            "Creating a canister requires a fee of {} that is deducted from the canister's initial balance but only {cycles} cycles were received with the create_canister request.",
                            self.costs.canister_creation
                        ),
                    ));
                }
                let initial = if from_canister { cycles - self.costs.canister_creation } else { cycles };
                let id = self.create_canister(sender, from_canister, args.settings, initial, at)?;
                Ok(encode(&mgmt::CanisterIdRecord { canister_id: id }))
            }
            "provisional_create_canister_with_cycles" => {
                let args: mgmt::ProvisionalCreateCanisterWithCyclesArgs = decode(method, payload)?;
                let amount = args.amount.as_ref().map_or(crate::config::DEFAULT_PROVISIONAL_CYCLES, nat_u128);
                let id = self.create_canister(sender, from_canister, args.settings, amount, at)?;
                Ok(encode(&mgmt::CanisterIdRecord { canister_id: id }))
            }
            "provisional_top_up_canister" => {
                let args: mgmt::ProvisionalTopUpCanisterArgs = decode(method, payload)?;
                self.existing(args.canister_id)?;
                self.canisters.get_mut(&args.canister_id).expect("exists").cycles += nat_u128(&args.amount);
                Ok(empty_reply())
            }
            "deposit_cycles" => {
                let args: mgmt::DepositCyclesArgs = decode(method, payload)?;
                self.existing(args.canister_id)?;
                self.canisters.get_mut(&args.canister_id).expect("exists").cycles += cycles;
                Ok(empty_reply())
            }
            "install_code" => {
                let args: mgmt::InstallCodeArgs = decode(method, payload)?;
                let mode = match args.mode {
                    mgmt::CanisterInstallMode::Install => InstallMode::Install,
                    mgmt::CanisterInstallMode::Reinstall => InstallMode::Reinstall,
                    mgmt::CanisterInstallMode::Upgrade(flags) => {
                        let flags = flags.unwrap_or_default();
                        if flags.wasm_memory_persistence == Some(mgmt::WasmMemoryPersistence::Keep) {
                            return Err(Reject::system(
                                ErrorCode::CanisterContractViolation,
                                "The harness does not support wasm_memory_persistence = keep",
                            ));
                        }
                        InstallMode::Upgrade { skip_pre_upgrade: flags.skip_pre_upgrade.unwrap_or(false) }
                    }
                };
                self.install_code(sender, from_canister, args.canister_id, mode, &args.wasm_module, args.arg)?;
                Ok(empty_reply())
            }
            "uninstall_code" => {
                let args: mgmt::UninstallCodeArgs = decode(method, payload)?;
                self.uninstall_code(sender, from_canister, args.canister_id)?;
                Ok(empty_reply())
            }
            "start_canister" => {
                let args: mgmt::CanisterIdRecord = decode(method, payload)?;
                self.start_canister(sender, args.canister_id)?;
                Ok(empty_reply())
            }
            "canister_status" => {
                let args: mgmt::CanisterIdRecord = decode(method, payload)?;
                Ok(encode(&self.canister_status(sender, args.canister_id)?))
            }
            "canister_info" => {
                if !from_canister {
                    return Err(only_canisters(method));
                }
                let args: mgmt::CanisterInfoArgs = decode(method, payload)?;
                Ok(encode(&self.canister_info(args.canister_id, args.num_requested_changes.unwrap_or(0))?))
            }
            "update_settings" => {
                let args: mgmt::UpdateSettingsArgs = decode(method, payload)?;
                self.update_settings(sender, from_canister, args.canister_id, args.settings)?;
                Ok(empty_reply())
            }
            "take_canister_snapshot" => {
                let args: mgmt::TakeCanisterSnapshotArgs = decode(method, payload)?;
                Ok(encode(&self.take_canister_snapshot(sender, from_canister, &args)?))
            }
            "load_canister_snapshot" => {
                let args: mgmt::LoadCanisterSnapshotArgs = decode(method, payload)?;
                self.load_canister_snapshot(sender, from_canister, &args)?;
                Ok(empty_reply())
            }
            "list_canister_snapshots" => {
                let args: mgmt::CanisterIdRecord = decode(method, payload)?;
                Ok(encode(&self.list_canister_snapshots(sender, args.canister_id)?))
            }
            "delete_canister_snapshot" => {
                let args: mgmt::DeleteCanisterSnapshotArgs = decode(method, payload)?;
                self.delete_canister_snapshot(sender, &args)?;
                Ok(empty_reply())
            }
            "read_canister_snapshot_metadata" => {
                let args: mgmt::ReadCanisterSnapshotMetadataArgs = decode(method, payload)?;
                Ok(encode(&self.read_canister_snapshot_metadata(sender, &args)?))
            }
            "read_canister_snapshot_data" => {
                let args: mgmt::ReadCanisterSnapshotDataArgs = decode(method, payload)?;
                Ok(encode(&mgmt::ReadCanisterSnapshotDataResult { chunk: self.read_canister_snapshot_data(sender, &args)? }))
            }
            "upload_canister_snapshot_metadata" => {
                let args: mgmt::UploadCanisterSnapshotMetadataArgs = decode(method, payload)?;
                Ok(encode(&self.upload_canister_snapshot_metadata(sender, &args)?))
            }
            "upload_canister_snapshot_data" => {
                let args: mgmt::UploadCanisterSnapshotDataArgs = decode(method, payload)?;
                self.upload_canister_snapshot_data(sender, &args)?;
                Ok(empty_reply())
            }
            "delete_canister" => {
                let args: mgmt::CanisterIdRecord = decode(method, payload)?;
                self.delete_canister(sender, args.canister_id)?;
                Ok(empty_reply())
            }
            "raw_rand" => {
                if !from_canister {
                    return Err(only_canisters(method));
                }
                let mut hasher = Sha256::new();
                hasher.update(self.rounds.to_be_bytes());
                hasher.update(self.time.to_be_bytes());
                hasher.update(sender.as_slice());
                Ok(encode(&serde_bytes::ByteBuf::from(hasher.finalize().to_vec())))
            }
            "fetch_canister_logs" => Err(Reject::system(
                ErrorCode::CanisterRejectedMessage,
                "fetch_canister_logs API is only accessible to end users in non-replicated mode",
            )),
            other => Err(Reject::system(
                ErrorCode::UnknownManagementMessage,
                format!("Management canister has no method '{other}'"),
            )),
        }
    }

    /// A query call to `aaaaa-aa`, from a user or a composite query: its query methods
    /// `canister_status` and `fetch_canister_logs`, with `sender` as the caller.
    pub(crate) fn management_query(&self, sender: Principal, method: &str, payload: &[u8]) -> Result<Vec<u8>, Reject> {
        match method {
            "canister_status" => {
                let args: mgmt::CanisterIdRecord = decode(method, payload)?;
                Ok(encode(&self.canister_status(sender, args.canister_id)?))
            }
            "fetch_canister_logs" => {
                let args: mgmt::FetchCanisterLogsArgs = decode(method, payload)?;
                Ok(encode(&self.fetch_canister_logs(sender, &args)?))
            }
            other => Err(Reject::system(ErrorCode::CanisterMethodNotFound, format!("Query method {other} not found."))),
        }
    }

    /// Why an ingress message to `aaaaa-aa` is refused when submitted, if it is: the IC's
    /// ingress filter takes no `fetch_canister_logs` (a query method only).
    pub(crate) fn management_ingress_refusal(&self, method: &str) -> Option<RejectResponse> {
        (method == "fetch_canister_logs").then(|| {
            RejectResponse::new(ErrorCode::CanisterRejectedMessage, "fetch_canister_logs API is not accessible via ingress in replicated mode")
        })
    }

    /// The log records of `args.canister_id` its `log_visibility` lets `sender` read.
    pub(crate) fn fetch_canister_logs(&self, sender: Principal, args: &mgmt::FetchCanisterLogsArgs) -> Result<mgmt::FetchCanisterLogsResult, Reject> {
        let c = self.existing(args.canister_id)?;
        if !c.settings.log_visibility.allows(&sender, &c.controllers) {
            return Err(Reject::system(
                ErrorCode::CanisterRejectedMessage,
                format!("Caller {sender} is not allowed to query ic00 method fetch_canister_logs"),
            ));
        }
        Ok(mgmt::FetchCanisterLogsResult { canister_log_records: c.log_buffer.records(args.filter.as_ref()) })
    }

    /// The subnet whose management canister handles `request`: the one hosting the canister
    /// named by its `canister_id` argument (the IC's effective canister id), if it has one
    /// and that canister exists.
    pub(crate) fn management_subnet(&self, request: &Request) -> Option<SubnetId> {
        #[derive(candid::CandidType, serde::Deserialize)]
        struct AboutCanister {
            canister_id: Principal,
        }
        let about = Decode!(&request.payload, AboutCanister).ok()?;
        self.subnet_of(&about.canister_id)
    }

    /// A request to `aaaaa-aa` from a canister or an ingress message, taken from the queue of
    /// subnet `at`.
    pub(crate) fn process_management_request(&mut self, at: SubnetId, request: Request) {
        let from_canister = matches!(request.origin, Origin::Canister { .. });
        if request.method == "stop_canister" {
            let result = Decode!(&request.payload, mgmt::CanisterIdRecord)
                .map_err(|e| Reject::system(ErrorCode::InvalidManagementPayload, format!("Error decoding candid for method stop_canister: {e}")))
                .and_then(|args| self.stop_canister(request.sender, args.canister_id, request.origin));
            match result {
                Ok(true) => self.deliver_response(request.origin, MANAGEMENT_CANISTER, Ok(empty_reply()), request.cycles, at),
                Ok(false) => {} // answered when the canister has stopped
                Err(reject) => self.deliver_response(request.origin, MANAGEMENT_CANISTER, Err(reject), request.cycles, at),
            }
            return;
        }
        let keeps_cycles = matches!(request.method.as_str(), "create_canister" | "deposit_cycles");
        let result = self.management_call(at, request.sender, from_canister, &request.method, &request.payload, request.cycles);
        let refund = if keeps_cycles && result.is_ok() { 0 } else { request.cycles };
        self.deliver_response(request.origin, MANAGEMENT_CANISTER, result, refund, at);
    }

    /// Creates a canister on `subnet`.
    pub(crate) fn create_canister(
        &mut self,
        sender: Principal,
        from_canister: bool,
        settings: Option<mgmt::CanisterSettings>,
        cycles: u128,
        subnet: SubnetId,
    ) -> Result<Principal, Reject> {
        if subnet.0 >= self.subnets {
            return Err(Reject::system(ErrorCode::SubnetNotFound, format!("Subnet {} not found: there are {} subnets", subnet.0, self.subnets)));
        }
        let update = settings.unwrap_or_default();
        let controllers = update.controllers.clone().unwrap_or_else(|| vec![sender]);
        canister_settings::check_controllers(&controllers)?;
        let mut settings = Settings::default();
        settings.apply(&update, 0)?;
        let environment_variables_hash = update.environment_variables.is_some().then(|| canister_settings::environment_variables_hash(&settings.environment_variables));
        let id = canister_id_from_index(self.next_canister_index);
        self.next_canister_index += 1;
        let mut state = CanisterState::new(id, subnet, controllers.clone(), cycles, settings);
        let origin = self.origin_of(sender, from_canister);
        state.record_change(self.time, origin, mgmt::ChangeDetails::Creation(mgmt::CreationRecord { controllers, environment_variables_hash }));
        self.canisters.insert(id, state);
        Ok(id)
    }

    pub(crate) fn install_code(
        &mut self,
        sender: Principal,
        from_canister: bool,
        id: Principal,
        mode: InstallMode,
        wasm: &[u8],
        arg: Vec<u8>,
    ) -> Result<(), Reject> {
        let c = self.controlled(id, sender)?;
        if mode == InstallMode::Install && c.instance.is_some() {
            return Err(Reject::system(
                ErrorCode::CanisterNonEmpty,
                format!("Canister {id} cannot be installed because the canister is not empty. Try installing with mode='reinstall' instead."),
            ));
        }
        if matches!(mode, InstallMode::Upgrade { .. }) && c.instance.is_none() {
            return Err(Reject::failed(&id, &crate::world::no_wasm_module()));
        }
        let module = canister::compile(wasm).map_err(|e| {
            Reject::system(ErrorCode::CanisterInvalidWasm, format!("Error from Canister {id}: Canister's Wasm module is not valid: {e}"))
        })?;
        let origin = self.origin_of(sender, from_canister);
        let result = match mode {
            InstallMode::Upgrade { skip_pre_upgrade } => self.upgrade(id, sender, module.clone(), arg, skip_pre_upgrade),
            _ => self.install_fresh(id, sender, module.clone(), arg, mode == InstallMode::Reinstall),
        };
        let instructions = match &result {
            Ok(effects) => effects.instructions,
            Err((_, instructions)) => *instructions,
        };
        let fee = self.costs.execution(instructions);
        let time = self.time;
        let c = self.canisters.get_mut(&id).expect("exists");
        c.cycles = c.cycles.saturating_sub(fee);
        c.metrics.cycles_consumed += fee;
        c.metrics.executions += 1;
        c.metrics.instructions += instructions;
        let effects = result.map_err(|(error, _)| Reject::failed(&id, &error))?;
        c.version += 1;
        // install_code deactivates the timer; init or post_upgrade may have set it again.
        c.global_timer = effects.global_timer;
        if !matches!(mode, InstallMode::Upgrade { .. }) {
            c.certified_data.clear();
        }
        if let Some(data) = effects.certified_data {
            c.certified_data = data;
        }
        let deployment_mode = match mode {
            InstallMode::Install => mgmt::CodeDeploymentMode::Install,
            InstallMode::Reinstall => mgmt::CodeDeploymentMode::Reinstall,
            InstallMode::Upgrade { .. } => mgmt::CodeDeploymentMode::Upgrade,
        };
        c.record_change(
            time,
            origin,
            mgmt::ChangeDetails::CodeDeployment(mgmt::CodeDeploymentRecord { mode: deployment_mode, module_hash: module.hash.to_vec() }),
        );
        // A reinstall purges the log, its own hook's lines too; the numbering goes on.
        if mode == InstallMode::Reinstall {
            c.log_buffer.purge();
        }
        self.wasm_memory_changed(id);
        Ok(())
    }

    /// The canister's heap or its memory settings changed outside a message: the low-memory
    /// hook's condition is taken again, and the hook runs now if that made it ready (on the
    /// IC it is the canister's next execution, in the same round).
    pub(crate) fn wasm_memory_changed(&mut self, id: Principal) {
        self.canisters.get_mut(&id).expect("exists").update_low_wasm_memory_hook_condition();
        self.run_low_wasm_memory_hook(id);
    }

    /// Keeps an install hook's log lines and trap.
    fn log_outcome(&mut self, id: Principal, outcome: &Outcome) {
        let (time, to_stderr) = (self.time, self.log_to_stderr);
        let c = self.canisters.get_mut(&id).expect("exists");
        for line in &outcome.exec.logs {
            c.log(time, line.clone(), to_stderr);
        }
        if let Err(e) = &outcome.result {
            c.log(time, format!("[TRAP]: {}", e.display).into_bytes(), to_stderr);
        }
        c.log_buffer.record(time, &outcome.exec.logs, outcome.result.as_ref().err());
    }

    fn hook_execution(&self, id: Principal, sender: Principal, context: ApiContext, arg: Vec<u8>) -> crate::system_api::Execution {
        let mut exec = self.execution(&self.canisters[&id], context, sender);
        exec.arg = arg;
        exec.instruction_limit = self.limits.install_instructions;
        if context == ApiContext::Init {
            exec.global_timer = 0;
        }
        exec
    }

    fn install_fresh(&mut self, id: Principal, sender: Principal, module: Arc<CompiledModule>, arg: Vec<u8>, reinstall: bool) -> Result<HookEffects, (ExecError, u64)> {
        let stable = StableMemory::new(self.limits.stable_memory_bytes).expect("reserving stable memory address space");
        let mut instance = Instance::new(module, stable).map_err(|failed| (failed.0, 0))?;
        let mut effects = HookEffects::default();
        if instance.exports("canister_init") {
            let exec = self.hook_execution(id, sender, ApiContext::Init, arg);
            let outcome = instance.run(Entry::Export("canister_init"), exec, self.limits.install_instructions);
            self.log_outcome(id, &outcome);
            if let Err(e) = outcome.result {
                return Err((e, outcome.instructions));
            }
            effects = HookEffects::of(&outcome);
        }
        if let Some(e) = self.canisters[&id].settings.heap_over_limit(instance.heap_bytes()) {
            return Err((e, effects.instructions));
        }
        if reinstall {
            self.discard_call_contexts(id);
        }
        self.canisters.get_mut(&id).expect("exists").instance = Some(instance);
        Ok(effects)
    }

    fn upgrade(&mut self, id: Principal, sender: Principal, module: Arc<CompiledModule>, arg: Vec<u8>, skip_pre_upgrade: bool) -> Result<HookEffects, (ExecError, u64)> {
        let budget = self.limits.install_instructions;
        let mut old = self.canisters.get_mut(&id).expect("exists").instance.take().expect("checked by install_code");
        let mut used = 0;
        let restore = |world: &mut World, mut old: Instance| {
            old.roll_back();
            world.canisters.get_mut(&id).expect("exists").instance = Some(old);
        };
        if !skip_pre_upgrade && old.exports("canister_pre_upgrade") {
            let exec = self.hook_execution(id, sender, ApiContext::PreUpgrade, Vec::new());
            let outcome = old.run_uncommitted(Entry::Export("canister_pre_upgrade"), exec, budget);
            self.log_outcome(id, &outcome);
            used += outcome.instructions;
            if let Err(e) = outcome.result {
                restore(self, old);
                return Err((e, used));
            }
        }
        let mut new = match Instance::new(module, old.take_stable()) {
            Ok(new) => new,
            Err(failed) => {
                let (e, stable) = *failed;
                old.put_stable(stable);
                restore(self, old);
                return Err((e, used));
            }
        };
        let mut effects = HookEffects::default();
        if new.exports("canister_post_upgrade") {
            // The new module runs at the version after the upgrade.
            let mut exec = self.hook_execution(id, sender, ApiContext::Init, arg);
            exec.version += 1;
            let outcome = new.run_uncommitted(Entry::Export("canister_post_upgrade"), exec, budget.saturating_sub(used));
            self.log_outcome(id, &outcome);
            used += outcome.instructions;
            if let Err(e) = outcome.result {
                new.roll_back();
                old.put_stable(new.into_stable());
                restore(self, old);
                return Err((e, used));
            }
            effects = HookEffects::of(&outcome);
        }
        if let Some(e) = self.canisters[&id].settings.heap_over_limit(new.heap_bytes()) {
            new.roll_back();
            old.put_stable(new.into_stable());
            restore(self, old);
            return Err((e, used));
        }
        new.commit();
        self.canisters.get_mut(&id).expect("exists").instance = Some(new);
        effects.instructions = used;
        Ok(effects)
    }

    /// Open call contexts of a canister whose code goes away are rejected; their callbacks
    /// will not run.
    fn discard_call_contexts(&mut self, id: Principal) {
        let c = self.canisters.get_mut(&id).expect("exists");
        let contexts = std::mem::take(&mut c.call_contexts);
        c.callbacks.clear();
        let at = c.subnet;
        for (_, ctx) in contexts {
            if !ctx.responded {
                let reject = Reject::system_with_code(
                    crate::types::RejectCode::CanisterReject,
                    ErrorCode::CanisterRejectedMessage,
                    "Canister has been uninstalled.",
                );
                self.deliver_response(ctx.origin, id, Err(reject), ctx.available, at);
            }
        }
    }

    pub(crate) fn uninstall_code(&mut self, sender: Principal, from_canister: bool, id: Principal) -> Result<(), Reject> {
        self.controlled(id, sender)?;
        self.discard_call_contexts(id);
        let origin = self.origin_of(sender, from_canister);
        let time = self.time;
        let c = self.canisters.get_mut(&id).expect("exists");
        c.instance = None;
        c.global_timer = 0;
        c.certified_data.clear();
        c.log_buffer.purge();
        c.version += 1;
        c.record_change(time, origin, mgmt::ChangeDetails::CodeUninstall);
        self.wasm_memory_changed(id);
        Ok(())
    }

    /// Starts stopping `id`; returns whether it is already stopped (answer now) or the answer
    /// waits until its call contexts close.
    pub(crate) fn stop_canister(&mut self, sender: Principal, id: Principal, waiter: Origin) -> Result<bool, Reject> {
        self.controlled(id, sender)?;
        let c = self.canisters.get_mut(&id).expect("exists");
        match &mut c.status {
            Status::Stopped => Ok(true),
            Status::Stopping(waiters) => {
                waiters.push(waiter);
                Ok(false)
            }
            Status::Running => {
                c.status = Status::Stopping(vec![waiter]);
                c.version += 1;
                Ok(false)
            }
        }
    }

    pub(crate) fn start_canister(&mut self, sender: Principal, id: Principal) -> Result<(), Reject> {
        self.controlled(id, sender)?;
        let c = self.canisters.get_mut(&id).expect("exists");
        let previous = std::mem::replace(&mut c.status, Status::Running);
        if previous != Status::Running {
            c.version += 1;
        }
        let at = c.subnet;
        if let Status::Stopping(waiters) = previous {
            for waiter in waiters {
                let reject = Reject::system(ErrorCode::CanisterStoppingCancelled, format!("Canister {id}'s stop request was cancelled."));
                self.deliver_response(waiter, MANAGEMENT_CANISTER, Err(reject), 0, at);
            }
        }
        Ok(())
    }

    pub(crate) fn canister_status(&self, sender: Principal, id: Principal) -> Result<mgmt::CanisterStatusResult, Reject> {
        let c = self.existing(id)?;
        if sender != id && !c.settings.status_visibility.allows(&sender, &c.controllers) {
            self.controlled(id, sender)?;
        }
        let heap = c.instance.as_ref().map_or(0, |i| i.heap_bytes());
        let stable = c.instance.as_ref().map_or(0, |i| i.stable().size_bytes());
        Ok(mgmt::CanisterStatusResult {
            status: match c.status {
                Status::Running => mgmt::CanisterStatusType::Running,
                Status::Stopping(_) => mgmt::CanisterStatusType::Stopping,
                Status::Stopped => mgmt::CanisterStatusType::Stopped,
            },
            ready_for_migration: false,
            version: c.version,
            settings: c.settings.definite(&c.controllers),
            module_hash: c.instance.as_ref().map(|i| i.module().hash.to_vec()),
            memory_size: Nat::from(c.memory_bytes()),
            memory_metrics: mgmt::MemoryMetrics {
                wasm_memory_size: Nat::from(heap),
                stable_memory_size: Nat::from(stable),
                global_memory_size: Nat::from(0u64),
                wasm_binary_size: Nat::from(0u64),
                custom_sections_size: Nat::from(0u64),
                canister_history_size: Nat::from(0u64),
                wasm_chunk_store_size: Nat::from(0u64),
                snapshots_size: Nat::from(c.snapshots_bytes()),
                log_memory_store_size: Nat::from(0u64),
            },
            cycles: Nat::from(c.cycles),
            reserved_cycles: Nat::from(0u64),
            idle_cycles_burned_per_day: Nat::from(self.costs.idle_burn_per_day(c.memory_bytes())),
            query_stats: mgmt::QueryStats {
                num_calls_total: Nat::from(0u64),
                num_instructions_total: Nat::from(0u64),
                request_payload_bytes_total: Nat::from(0u64),
                response_payload_bytes_total: Nat::from(0u64),
            },
        })
    }

    pub(crate) fn canister_info(&self, id: Principal, requested: u64) -> Result<mgmt::CanisterInfoResult, Reject> {
        let c = self.existing(id)?;
        let n = (requested as usize).min(c.history.len());
        Ok(mgmt::CanisterInfoResult {
            total_num_changes: c.total_changes,
            recent_changes: c.history[c.history.len() - n..].to_vec(),
            module_hash: c.instance.as_ref().map(|i| i.module().hash.to_vec()),
            controllers: c.controllers.clone(),
        })
    }

    pub(crate) fn update_settings(&mut self, sender: Principal, from_canister: bool, id: Principal, settings: mgmt::CanisterSettings) -> Result<(), Reject> {
        self.controlled(id, sender)?;
        let origin = self.origin_of(sender, from_canister);
        let time = self.time;
        let c = self.canisters.get_mut(&id).expect("exists");
        let heap = c.instance.as_ref().map_or(0, |i| i.heap_bytes());
        c.settings.apply(&settings, heap)?;
        c.version += 1;
        if let Some(controllers) = settings.controllers {
            c.controllers = controllers.clone();
            c.record_change(time, origin, mgmt::ChangeDetails::ControllersChange(mgmt::ControllersChangeRecord { controllers }));
        }
        self.wasm_memory_changed(id);
        Ok(())
    }

    pub(crate) fn delete_canister(&mut self, sender: Principal, id: Principal) -> Result<(), Reject> {
        let c = self.controlled(id, sender)?;
        if sender == id {
            return Err(Reject::system(ErrorCode::CanisterInvalidController, format!("Canister {id} cannot delete itself.")));
        }
        if c.status != Status::Stopped {
            return Err(Reject::system(ErrorCode::CanisterNotStopped, format!("Canister {id} must be stopped before it is deleted.")));
        }
        self.canisters.remove(&id);
        Ok(())
    }
}

/// What an init or post_upgrade hook leaves besides memory.
#[derive(Default)]
struct HookEffects {
    instructions: u64,
    global_timer: u64,
    certified_data: Option<Vec<u8>>,
}

impl HookEffects {
    fn of(outcome: &Outcome) -> Self {
        HookEffects {
            instructions: outcome.instructions,
            global_timer: outcome.exec.global_timer,
            certified_data: outcome.exec.certified_data.clone(),
        }
    }
}
