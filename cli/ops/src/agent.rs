//! A real network (a local replica started by `dfx start` or `icp network start`, or mainnet)
//! through ic-agent.

use std::net::IpAddr;
use std::time::Duration;

use candid::Principal;
use ic_agent::export::reqwest::Url;
use ic_agent::{Agent, AgentError};
use ic_management_canister_types::{CanisterInstallMode, InstallCodeArgs};

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
/// built into the agent): a plain `http` URL whose host, as the agent parses it, is `localhost`
/// or a loopback address (127.0.0.0/8, `::1`). Only such a replica is trusted to say its key.
pub fn is_local(url: &str) -> bool {
    let Ok(url) = Url::parse(url) else { return false };
    // The parsed host is lowercase, an IPv4 address in dotted decimal, an IPv6 one in brackets.
    let host = url.host_str().unwrap_or_default();
    let address = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    url.scheme() == "http" && (host == "localhost" || address.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()))
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
        let transport = Self::with_agent(agent, identity.principal)?;
        if is_local(&url) {
            transport.runtime.block_on(transport.agent.fetch_root_key()).map_err(agent_error)?;
        }
        Ok(transport)
    }

    /// A transport over an agent built elsewhere (its identity's principal is `caller`).
    pub fn with_agent(agent: Agent, caller: Principal) -> Result<Self, CallError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CallError::Transport(e.to_string()))?;
        Ok(AgentTransport { agent, runtime, caller })
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

    fn management(&mut self, canister: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError> {
        let call = self.agent.update(&Principal::management_canister(), method).with_effective_canister_id(canister).with_arg(arg).call_and_wait();
        self.runtime.block_on(call).map_err(agent_error)
    }

    /// In one `install_code` message, so a module of at most the 2 MiB an ingress message holds
    /// (less the rest of the argument).
    fn upgrade(&mut self, canister: Principal, module: Vec<u8>, arg: Vec<u8>) -> Result<(), CallError> {
        let args = InstallCodeArgs { mode: CanisterInstallMode::Upgrade(None), canister_id: canister, wasm_module: module, arg, sender_canister_version: None };
        let arg = candid::encode_one(&args).map_err(|e| CallError::Transport(format!("encoding install_code's argument: {e}")))?;
        let call = self.agent.update(&Principal::management_canister(), "install_code").with_effective_canister_id(canister).with_arg(arg).call_and_wait();
        self.runtime.block_on(call).map(|_| ()).map_err(agent_error)
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
    fn only_a_loopback_host_is_local() {
        for url in [
            "http://127.0.0.1:4943",
            "http://localhost:8000/",
            "http://LOCALHOST",
            "http://127.8.9.10",
            "http://[::1]:4943",
            "http://me@localhost:4943",
        ] {
            assert!(is_local(url), "{url} is local");
        }
        for url in [
            "http://localhost.evil.com",
            "http://127.0.0.1.evil.com:4943",
            "http://127.0.0.1@evil.com",
            "http://localhost:4943@evil.com",
            "http://[::1].evil.com",
            "http://evil.com/http://127.0.0.1",
            "http://10.0.0.1:8000",
            "https://icp-api.io",
            "https://localhost:4943",
            "localhost:4943",
            "not a url",
        ] {
            assert!(!is_local(url), "{url} is not local");
        }
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

    /// A replica stand-in on loopback: answers every HTTP request on one connection with the
    /// next of `replies` (CBOR bodies) and sends each request's path and body back.
    fn fake_replica(replies: Vec<Vec<u8>>) -> (String, std::sync::mpsc::Receiver<(String, Vec<u8>)>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (seen, requests) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut replies = replies.into_iter();
            while let Ok((stream, _)) = listener.accept() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        break;
                    }
                    let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_string();
                    let mut length = 0;
                    loop {
                        let mut header = String::new();
                        reader.read_line(&mut header).unwrap();
                        if header.trim().is_empty() {
                            break;
                        }
                        if let Some((name, value)) = header.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    seen.send((path, body)).unwrap();
                    let reply = replies.next().expect("a reply for every request");
                    let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/cbor\r\ncontent-length: {}\r\n\r\n", reply.len());
                    stream.write_all(head.as_bytes()).unwrap();
                    stream.write_all(&reply).unwrap();
                }
            }
        });
        (url, requests)
    }

    #[derive(serde::Serialize)]
    struct Replied {
        status: &'static str,
        reply: Arg,
    }

    #[derive(serde::Serialize)]
    struct Arg {
        #[serde(with = "serde_bytes")]
        arg: Vec<u8>,
    }

    #[derive(serde::Serialize)]
    struct Rejected {
        status: &'static str,
        reject_code: u64,
        reject_message: &'static str,
        error_code: &'static str,
    }

    #[test]
    fn a_query_is_a_signed_envelope_for_the_vault_and_its_reply_decodes() {
        use candid::Encode;
        use ic_agent::agent::{Envelope, EnvelopeContent};
        use vault_api::service::{SnapshotInfo, VaultError};

        let app = Principal::from_slice(&[7; 29]);
        let vault_id = Principal::from_slice(&[1; 10]);
        let listed: Result<Vec<SnapshotInfo>, VaultError> = Err(VaultError::UnknownApp { app });
        let replies = vec![
            serde_cbor::to_vec(&Replied { status: "replied", reply: Arg { arg: Encode!(&listed).unwrap() } }).unwrap(),
            serde_cbor::to_vec(&Rejected { status: "rejected", reject_code: 3, reject_message: "no such canister", error_code: "IC0301" }).unwrap(),
        ];
        let (url, requests) = fake_replica(replies);
        let pem = crate::identity::ed25519_pem(&[7; 32]);
        let identity = crate::identity::from_pem(pem.as_bytes(), std::path::Path::new("test")).unwrap();
        let agent = Agent::builder()
            .with_url(url)
            .with_arc_identity(identity.identity.clone())
            .with_verify_query_signatures(false)
            .build()
            .unwrap();
        let mut transport = AgentTransport::with_agent(agent, identity.principal).unwrap();
        let mut vault = crate::vault::Vault::new(&mut transport, vault_id);

        let e = vault.list_snapshots(app).unwrap_err();
        assert!(matches!(e, crate::OpsError::Vault(VaultError::UnknownApp { app: a }) if a == app), "{e}");
        let (path, body) = requests.recv().unwrap();
        assert_eq!(path, format!("/api/v3/canister/{vault_id}/query"));
        let envelope: Envelope = serde_cbor::from_slice(&body).unwrap();
        assert!(envelope.sender_pubkey.is_some() && envelope.sender_sig.is_some(), "the request is signed");
        match envelope.content.into_owned() {
            EnvelopeContent::Query { sender, canister_id, method_name, arg, .. } => {
                assert_eq!((sender, canister_id, method_name.as_str()), (identity.principal, vault_id, "list_snapshots"));
                assert_eq!(candid::decode_one::<Principal>(&arg).unwrap(), app);
            }
            other => panic!("not a query: {other:?}"),
        }

        let e = vault.app_info(app).unwrap_err();
        assert!(
            matches!(&e, crate::OpsError::Call { method: "app_info", error: CallError::Rejected { code: 3, error_code: Some(c), .. } } if c == "IC0301"),
            "{e}"
        );
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
