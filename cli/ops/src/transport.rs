//! How the CLI reaches a vault: a trait with two implementations, the embedded IC kept in a
//! directory ([`crate::embedded`]) and ic-agent for real networks ([`crate::agent`]).

use std::time::Duration;

use candid::Principal;

/// Why a call produced no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("rejected (reject code {code}{}): {message}", .error_code.as_ref().map(|c| format!(", {c}")).unwrap_or_default())]
    Rejected { code: u32, error_code: Option<String>, message: String },
    #[error("{0}")]
    Transport(String),
}

pub trait Transport {
    /// The principal calls are made as.
    fn caller(&self) -> Principal;

    fn update(&mut self, canister: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError>;

    fn query(&mut self, canister: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError>;

    /// Calls management method `method` about `canister` (the call's effective canister).
    fn management(&mut self, _canister: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError> {
        self.update(Principal::management_canister(), method, arg)
    }

    /// Upgrades `canister` to `module`, its `post_upgrade` given `arg`, as a controller of it
    /// (the management canister's `install_code`). A rejected upgrade leaves it as it was.
    fn upgrade(&mut self, canister: Principal, module: Vec<u8>, arg: Vec<u8>) -> Result<(), CallError>;

    /// Lets `duration` pass while waiting for the vault's jobs: the embedded IC moves its time
    /// and runs rounds; a real network is waited for.
    fn wait(&mut self, duration: Duration);

    /// Ends a command: the embedded IC saves itself; a real network has nothing to do.
    fn finish(&mut self) -> Result<(), CallError> {
        Ok(())
    }
}

/// What the vault's typed client ([`vault_api::client::ServiceClient`]) calls through.
impl vault_api::client::Transport for dyn Transport + '_ {
    type Error = CallError;

    fn update(&mut self, canister: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError> {
        Transport::update(self, canister, method, arg)
    }

    fn query(&mut self, canister: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError> {
        Transport::query(self, canister, method, arg)
    }
}
