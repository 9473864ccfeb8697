//! The embedded IC as a transport: an IC kept in a directory, loaded for each command and saved
//! after it, so every CLI command runs without a replica.

use std::path::{Path, PathBuf};
use std::time::Duration;

use candid::Principal;
use ic_harness::Harness;

use crate::transport::{CallError, Transport};

/// Rounds a save may run to let messages in flight finish.
const QUIET_ROUNDS: u32 = 1_000;

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
}

fn rejected(r: ic_harness::RejectResponse) -> CallError {
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
