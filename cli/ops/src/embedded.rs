//! The embedded IC as a transport: an IC kept in a directory, loaded for each command and saved
//! after it, so every CLI command runs without a replica.

use std::path::{Path, PathBuf};
use std::time::Duration;

use candid::{Nat, Principal};
use ic_harness::{Harness, LogRecord, RejectResponse};
use ic_management_canister_types as mgmt;

use crate::transport::{CallError, Transport};

/// Rounds a save may run to let messages in flight finish.
const QUIET_ROUNDS: u32 = 1_000;
/// After an advance, time goes on a second at a time while a canister is busy: messages are in
/// flight, or its timer is due within this window (a job between batches, or backing off a
/// retry).
const BUSY_WINDOW: Duration = Duration::from_secs(120);
/// Seconds of settling at most.
const MAX_SETTLE_SECONDS: u64 = 3600;

/// What an advance ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Advanced {
    pub rounds: u64,
    pub executions: u64,
    /// Seconds the canisters worked after the advance, until they were idle.
    pub settled_seconds: u64,
}

pub struct EmbeddedTransport {
    ic: Harness,
    dir: PathBuf,
    caller: Principal,
    /// Whether anything may have changed since the IC was loaded: only then is it saved.
    changed: bool,
}

impl EmbeddedTransport {
    /// Whether `dir` holds a saved IC.
    pub fn check(dir: &Path) -> Result<(), CallError> {
        if !dir.join("world.msgpack").exists() {
            return Err(CallError::Transport(format!(
                "{} holds no embedded IC: create one with `vault --embedded {} embedded init`",
                dir.display(),
                dir.display()
            )));
        }
        Ok(())
    }

    /// Opens the IC saved in `dir`, calling as `caller`.
    pub fn open(dir: &Path, caller: Principal) -> Result<Self, CallError> {
        Self::check(dir)?;
        let ic = Harness::load(dir).map_err(|e| CallError::Transport(e.to_string()))?;
        Ok(EmbeddedTransport { ic, dir: dir.to_path_buf(), caller, changed: false })
    }

    /// A new IC to be saved in `dir`.
    pub fn create(dir: &Path, caller: Principal) -> Self {
        EmbeddedTransport { ic: Harness::new(), dir: dir.to_path_buf(), caller, changed: true }
    }

    /// The IC itself, to change it directly (deploy canisters, move time).
    pub fn harness(&mut self) -> &Harness {
        self.changed = true;
        &self.ic
    }

    /// The IC, to look at.
    pub fn view(&self) -> &Harness {
        &self.ic
    }

    /// Lets `duration` pass as on the IC, with a round wherever a timer, a heartbeat or a
    /// message is due, each at its time; then lets the work it started finish, a second at a
    /// time while a canister is busy (messages in flight, a timer due within two minutes), for
    /// an hour at most.
    pub fn advance(&mut self, duration: Duration, every_round: bool) -> Result<Advanced, CallError> {
        self.changed = true;
        let mut advanced = Advanced::default();
        let mut walk = |ic: &Harness, duration: Duration| -> Result<(), CallError> {
            let report = if every_round { ic.advance_rounds(duration) } else { ic.advance(duration) };
            let report = report.map_err(|e| CallError::Transport(e.to_string()))?;
            advanced.rounds += report.rounds;
            advanced.executions += report.executions;
            Ok(())
        };
        walk(&self.ic, duration)?;
        let mut settled_seconds = 0;
        while settled_seconds < MAX_SETTLE_SECONDS && self.busy() {
            walk(&self.ic, Duration::from_secs(1))?;
            settled_seconds += 1;
        }
        advanced.settled_seconds = settled_seconds;
        Ok(advanced)
    }

    fn busy(&self) -> bool {
        self.ic.with_world(|world| {
            let soon = world.time + BUSY_WINDOW.as_nanos() as u64;
            world.is_quiet().is_err() || world.canisters.values().any(|c| c.global_timer != 0 && c.global_timer <= soon)
        })
    }
}

/// How [`EmbeddedTransport::install_code`] changes a canister's code, as `install_code`'s modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallMode {
    /// Into an empty canister: `canister_init` runs.
    Install,
    /// A new module over the old one, keeping the stable memory: `canister_pre_upgrade` runs in
    /// the old module, `canister_post_upgrade` in the new one.
    Upgrade,
    /// A new module on empty memories: `canister_init` runs.
    Reinstall,
}

/// A change of a canister's settings, relative to what it has: each field given is set, the
/// others stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettingsChange {
    pub add_controllers: Vec<Principal>,
    pub remove_controllers: Vec<Principal>,
    /// Environment variables set (added, or given a new value).
    pub set_environment: Vec<(String, String)>,
    /// Environment variables removed, after the ones set.
    pub remove_environment: Vec<String>,
    pub wasm_memory_limit: Option<u64>,
    pub wasm_memory_threshold: Option<u64>,
    pub log_visibility: Option<mgmt::LogVisibility>,
    pub freezing_threshold: Option<u64>,
    pub reserved_cycles_limit: Option<u128>,
}

impl SettingsChange {
    pub fn is_empty(&self) -> bool {
        *self == SettingsChange::default()
    }

    /// The `update_settings` argument that makes `current` into the changed settings: the
    /// whole lists where controllers or variables change (`update_settings` replaces them),
    /// nothing for a field this change leaves.
    pub fn settings(&self, current: &mgmt::DefiniteCanisterSettings) -> mgmt::CanisterSettings {
        let controllers = (!self.add_controllers.is_empty() || !self.remove_controllers.is_empty()).then(|| {
            let mut controllers = current.controllers.clone();
            controllers.extend(self.add_controllers.iter().filter(|p| !current.controllers.contains(p)));
            controllers.retain(|p| !self.remove_controllers.contains(p));
            controllers
        });
        let environment_variables = (!self.set_environment.is_empty() || !self.remove_environment.is_empty()).then(|| {
            let mut variables: std::collections::BTreeMap<String, String> =
                current.environment_variables.iter().map(|v| (v.name.clone(), v.value.clone())).collect();
            variables.extend(self.set_environment.iter().cloned());
            variables.retain(|name, _| !self.remove_environment.contains(name));
            variables.into_iter().map(|(name, value)| mgmt::EnvironmentVariable { name, value }).collect()
        });
        mgmt::CanisterSettings {
            controllers,
            environment_variables,
            wasm_memory_limit: self.wasm_memory_limit.map(Nat::from),
            wasm_memory_threshold: self.wasm_memory_threshold.map(Nat::from),
            log_visibility: self.log_visibility.clone(),
            freezing_threshold: self.freezing_threshold.map(Nat::from),
            reserved_cycles_limit: self.reserved_cycles_limit.map(Nat::from),
            ..Default::default()
        }
    }
}

/// The management canister's methods, called as the caller: each checks it as the IC does
/// (a controller, or who the canister's visibility settings let read).
impl EmbeddedTransport {
    /// A new, empty canister with the cycles the embedded IC gives one (100 TC), controlled by
    /// the caller and `controllers`.
    pub fn create_canister(&mut self, controllers: &[Principal]) -> Principal {
        let mut all = vec![self.caller];
        all.extend(controllers.iter().filter(|p| **p != self.caller));
        let settings = mgmt::CanisterSettings { controllers: Some(all), ..Default::default() };
        let caller = Some(self.caller);
        self.harness().create_canister_with_settings(caller, Some(settings))
    }

    /// Installs `module` (plain or gzip-compressed) on `canister` with `arg`. A module that is
    /// not valid wasm, or a hook that traps, leaves the canister as it was.
    pub fn install_code(&mut self, canister: Principal, mode: InstallMode, module: Vec<u8>, arg: Vec<u8>) -> Result<(), RejectResponse> {
        let caller = Some(self.caller);
        let ic = self.harness();
        match mode {
            InstallMode::Install => ic.try_install_canister(canister, module, arg, caller),
            InstallMode::Upgrade => ic.upgrade_canister(canister, module, arg, caller),
            InstallMode::Reinstall => ic.reinstall_canister(canister, module, arg, caller),
        }
    }

    /// `canister_status`: its settings, module, cycles and memory.
    pub fn canister_status(&self, canister: Principal) -> Result<mgmt::CanisterStatusResult, CallError> {
        self.ic.canister_status(canister, Some(self.caller)).map_err(rejected)
    }

    /// Changes the canister's settings with one `update_settings` (all or nothing); returns its
    /// status after.
    pub fn update_settings(&mut self, canister: Principal, change: &SettingsChange) -> Result<mgmt::CanisterStatusResult, CallError> {
        let current = self.canister_status(canister)?;
        let caller = Some(self.caller);
        self.harness().update_canister_settings(canister, caller, change.settings(&current.settings)).map_err(rejected)?;
        self.canister_status(canister)
    }

    /// `fetch_canister_logs`: the records the canister's log keeps, as its `log_visibility`
    /// lets the caller read them.
    pub fn fetch_canister_logs(&self, canister: Principal) -> Result<Vec<LogRecord>, CallError> {
        self.ic.fetch_canister_logs(canister, self.caller).map_err(rejected)
    }

    /// The metadata `name` of the module `canister` runs (e.g. `candid:service`), if it has it.
    pub fn canister_metadata(&self, canister: Principal, name: &str) -> Option<Vec<u8>> {
        self.ic.canister_metadata(canister, name)
    }
}

fn rejected(r: RejectResponse) -> CallError {
    CallError::Rejected { code: r.reject_code as u32, error_code: Some(r.error_code.to_string()), message: r.reject_message }
}

impl Transport for EmbeddedTransport {
    fn caller(&self) -> Principal {
        self.caller
    }

    fn update(&mut self, canister: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError> {
        self.changed = true;
        self.ic.update_call(canister, self.caller, method, arg).map_err(rejected)
    }

    fn query(&mut self, canister: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError> {
        self.ic.query_call(canister, self.caller, method, arg).map_err(rejected)
    }

    fn upgrade(&mut self, canister: Principal, module: Vec<u8>, arg: Vec<u8>) -> Result<(), CallError> {
        self.install_code(canister, InstallMode::Upgrade, module, arg).map_err(rejected)
    }

    fn wait(&mut self, duration: Duration) {
        self.changed = true;
        self.ic.advance_time(duration);
        self.ic.tick();
    }

    fn finish(&mut self) -> Result<(), CallError> {
        if !self.changed {
            return Ok(());
        }
        self.changed = false;
        self.ic.save(&self.dir, QUIET_ROUNDS).map_err(|e| CallError::Transport(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variable(name: &str, value: &str) -> mgmt::EnvironmentVariable {
        mgmt::EnvironmentVariable { name: name.into(), value: value.into() }
    }

    #[test]
    fn a_settings_change_sets_only_what_it_names_from_what_the_canister_has() {
        let [a, b, c] = [1u8, 2, 3].map(|i| Principal::from_slice(&[i]));
        let current = mgmt::DefiniteCanisterSettings {
            controllers: vec![a, b],
            environment_variables: vec![variable("KEEP", "1"), variable("MODE", "old"), variable("GONE", "x")],
            ..Default::default()
        };
        assert_eq!(SettingsChange::default().settings(&current), mgmt::CanisterSettings::default(), "nothing given, nothing set");
        assert!(SettingsChange::default().is_empty());

        let change = SettingsChange {
            add_controllers: vec![b, c],
            remove_controllers: vec![a],
            set_environment: vec![("MODE".into(), "new".into()), ("ADDED".into(), "2".into())],
            remove_environment: vec!["GONE".into()],
            freezing_threshold: Some(60),
            ..Default::default()
        };
        let settings = change.settings(&current);
        assert_eq!(settings.controllers, Some(vec![b, c]), "added once, removed after");
        assert_eq!(settings.environment_variables, Some(vec![variable("ADDED", "2"), variable("KEEP", "1"), variable("MODE", "new")]));
        assert_eq!(settings.freezing_threshold, Some(Nat::from(60u64)));
        assert_eq!((settings.wasm_memory_limit, settings.log_visibility), (None, None));
    }
}
