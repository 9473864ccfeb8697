//! A real network (a local replica started by `dfx start` or `icp network start`, or mainnet)
//! through ic-agent.

use std::time::Duration;

use candid::Principal;
use ic_agent::{Agent, AgentError};

use crate::identity::LoadedIdentity;
use crate::transport::{CallError, Transport};

/// Where `--network` points: `local` (a replica on 127.0.0.1:4943, as `dfx start` runs it),
/// `ic` (mainnet), or a URL.
pub fn network_url(network: &str) -> String {
    match network {
        "local" => "http://127.0.0.1:4943".to_string(),
        "ic" => "https://icp-api.io".to_string(),
        url => url.to_string(),
    }
}

/// Whether the network is a local test network, whose root key must be fetched (mainnet's is
/// built into the agent).
pub fn is_local(url: &str) -> bool {
    url.starts_with("http://127.0.0.1") || url.starts_with("http://localhost") || url.starts_with("http://[::1]")
}

pub struct AgentTransport {
    agent: Agent,
    runtime: tokio::runtime::Runtime,
    caller: Principal,
}

impl AgentTransport {
    pub fn new(network: &str, identity: LoadedIdentity) -> Result<Self, CallError> {
        let url = network_url(network);
        let agent = Agent::builder()
            .with_url(url.clone())
            .with_arc_identity(identity.identity.clone())
            .build()
            .map_err(|e| CallError::Transport(format!("connecting to {url}: {e}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CallError::Transport(e.to_string()))?;
        if is_local(&url) {
            runtime.block_on(agent.fetch_root_key()).map_err(agent_error)?;
        }
        Ok(AgentTransport { agent, runtime, caller: identity.principal })
    }
}

/// The agent's error as the CLI reports it: a reject keeps its code.
pub fn agent_error(e: AgentError) -> CallError {
    match e {
        AgentError::CertifiedReject { reject, .. } | AgentError::UncertifiedReject { reject, .. } => CallError::Rejected {
            code: reject.reject_code as u32,
            error_code: reject.error_code,
            message: reject.reject_message,
        },
        other => CallError::Transport(other.to_string()),
    }
}

impl Transport for AgentTransport {
    fn caller(&self) -> Principal {
        self.caller
    }

    fn update(&mut self, canister: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError> {
        let call = self.agent.update(&canister, method).with_arg(arg).call_and_wait();
        self.runtime.block_on(call).map_err(agent_error)
    }

    fn query(&mut self, canister: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError> {
        let call = self.agent.query(&canister, method).with_arg(arg).call();
        self.runtime.block_on(call).map_err(agent_error)
    }

    fn wait(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_agent::agent::{RejectCode, RejectResponse};

    #[test]
    fn networks_resolve_to_urls() {
        assert_eq!(network_url("local"), "http://127.0.0.1:4943");
        assert_eq!(network_url("ic"), "https://icp-api.io");
        assert_eq!(network_url("http://10.0.0.1:8000"), "http://10.0.0.1:8000");
        assert!(is_local(&network_url("local")));
        assert!(!is_local(&network_url("ic")));
    }

    #[test]
    fn a_reject_keeps_its_code() {
        let reject = RejectResponse {
            reject_code: RejectCode::CanisterError,
            reject_message: "trapped".into(),
            error_code: Some("IC0503".into()),
        };
        let e = agent_error(AgentError::CertifiedReject { reject, operation: None });
        assert_eq!(e, CallError::Rejected { code: 5, error_code: Some("IC0503".into()), message: "trapped".into() });
    }

    #[test]
    fn calls_to_an_unreachable_replica_fail_with_a_transport_error() {
        let pem = crate::identity::ed25519_pem(&[7; 32]);
        let identity = crate::identity::from_pem(pem.as_bytes(), std::path::Path::new("test")).unwrap();
        // Port 9 (discard) on loopback: nothing answers, the root key fetch fails fast.
        let err = AgentTransport::new("http://127.0.0.1:9", identity).err().expect("no replica");
        assert!(matches!(err, CallError::Transport(_)), "{err}");
    }
}
