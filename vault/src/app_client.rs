//! Typed calls from the vault to an app's backup endpoints and to the management canister.
//! Every call is bounded-wait; a failure says whether repeating the call can help. Every call
//! for a job carries this vault instance's nonce ([`nonce`]): the app binds what a job opens to
//! the vault instance that opened it.

use candid::utils::ArgumentEncoder;
use candid::{CandidType, Principal};
use ic_cdk::call::{Call, CallFailed};
use serde::de::DeserializeOwned;
use vault_api::protocol::{
    BackupError, BackupInfo, Chunk, ChunkRequest, DumpBegin, DumpEnd, DumpManifest, JobRef, RestoreBegin, RestoreChunk, RestoreCommit, RestoreReport,
    bounded_text, methods,
};

thread_local! {
    static OUTSTANDING: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// When the last call a trap cancelled is answered at the latest (its deadline).
    static CANCELLED_UNTIL: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Why the vault cannot be upgraded now, if it cannot: calls it has made are not answered yet,
/// and a response arriving after an upgrade would run callbacks of the old code. Calls whose
/// futures a trap in a callback cancelled are still answered, by their deadline.
pub fn upgrade_blocker() -> Option<String> {
    // A stopped canister has every call answered: that is what stopping waits for.
    if ic_cdk::api::canister_status() == ic_cdk::api::CanisterStatusCode::Stopped {
        return None;
    }
    let outstanding = OUTSTANDING.get();
    if outstanding > 0 {
        return Some(format!("the vault has {outstanding} calls outstanding"));
    }
    let until = CANCELLED_UNTIL.get();
    let now = ic_cdk::api::time();
    (until > now).then(|| format!("calls cancelled by a trap are answered within {} s", (until - now).div_ceil(1_000_000_000)))
}

/// Counts a call from before it is made until its answer drops it; a call whose future a trap
/// cancels counts until its deadline.
struct Outstanding {
    deadline: u64,
}

impl Outstanding {
    fn new() -> Self {
        OUTSTANDING.set(OUTSTANDING.get() + 1);
        Outstanding { deadline: ic_cdk::api::time() + CALL_TIMEOUT_SECONDS as u64 * 1_000_000_000 }
    }
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        OUTSTANDING.set(OUTSTANDING.get() - 1);
        if ic_cdk::futures::is_recovering_from_trap() {
            CANCELLED_UNTIL.set(CANCELLED_UNTIL.get().max(self.deadline));
        }
    }
}

/// Seconds a call may wait for its response before it ends in SYS_UNKNOWN.
pub const CALL_TIMEOUT_SECONDS: u32 = 60;

/// The most bytes a request (to another subnet) or a reply carries.
pub const MAX_PAYLOAD_BYTES: u64 = 2 * 1024 * 1024;

/// Fees of `calls` calls moving `bytes` bytes (requests and replies) for the transfer
/// accounting: the call fee and 1,000 cycles per byte, at 13-node application subnet prices
/// (the bound in `engine::steps` counts the same way).
pub fn transfer_cycles(calls: u64, bytes: u64) -> u128 {
    260_000 * calls as u128 + 1_000 * bytes as u128
}

/// Why a call produced no answer from the app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallFailure {
    Rejected { code: u32, message: String },
    /// `call_perform` refused (not enough cycles, or a full queue).
    NotSent,
    /// The reply did not decode: a corrupted or foreign answer.
    Undecodable(String),
    /// Chunk `index` did not match its digest (the SHA-256 an app claimed, or the vault's digest
    /// an app checked), had another index or length, on its way from or to the app.
    Corrupted { index: u32 },
}

impl CallFailure {
    /// Whether a later attempt may succeed: transient rejects, timeouts (the call is
    /// idempotent), traps (the app may recover, retries are bounded), undecodable replies.
    pub fn retryable(&self) -> bool {
        match self {
            CallFailure::Rejected { code, .. } => matches!(code, 2 | 5 | 6),
            CallFailure::NotSent | CallFailure::Undecodable(_) | CallFailure::Corrupted { .. } => true,
        }
    }

    /// Whether it is unknown what the call did at the app: its response was lost (SYS_UNKNOWN),
    /// or the app ran it and answered bytes that do not decode. A trap rolls the app's message
    /// back, a reject or a call never delivered leaves the app as it was, and a corrupted chunk
    /// was answered.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            CallFailure::Rejected { code, .. } => *code == 6,
            CallFailure::Undecodable(_) => true,
            CallFailure::NotSent | CallFailure::Corrupted { .. } => false,
        }
    }

    pub fn reject_code(&self) -> u32 {
        match self {
            CallFailure::Rejected { code, .. } => *code,
            CallFailure::NotSent => 2,
            CallFailure::Undecodable(_) | CallFailure::Corrupted { .. } => 5,
        }
    }
}

impl std::fmt::Display for CallFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallFailure::Rejected { code, message } => write!(f, "reject code {code}: {message}"),
            CallFailure::NotSent => write!(f, "the call could not be sent"),
            CallFailure::Undecodable(e) => write!(f, "the reply did not decode: {e}"),
            CallFailure::Corrupted { index } => write!(f, "chunk {index} does not match its SHA-256"),
        }
    }
}

/// A completed call: its result and its bytes both ways.
pub struct Answer<T> {
    pub value: T,
    pub request_bytes: u64,
    pub reply_bytes: u64,
}

/// Calls protocol method `method` of app `target`. Its answer is untrusted: decoded within
/// quotas, and its text (a reject message, an error's message) cut to `MAX_APP_TEXT`.
async fn call<A: ArgumentEncoder, T: CandidType + DeserializeOwned>(target: Principal, method: &str, args: A) -> Protocol<T> {
    call_raw(target, method, candid::encode_args(args).expect("protocol arguments encode")).await
}

/// [`call`] with its arguments encoded.
async fn call_raw<T: CandidType + DeserializeOwned>(target: Principal, method: &str, payload: Vec<u8>) -> Protocol<T> {
    let request_bytes = (method.len() + payload.len()) as u64;
    let _outstanding = Outstanding::new();
    let response = Call::bounded_wait(target, method)
        .change_timeout(CALL_TIMEOUT_SECONDS)
        .with_raw_args(&payload)
        .await
        .map_err(|e| match e {
            CallFailed::CallRejected(r) => CallFailure::Rejected { code: r.raw_reject_code(), message: bounded_text(r.reject_message()) },
            _ => CallFailure::NotSent,
        })?;
    let bytes = response.into_bytes();
    let value: Result<T, BackupError> = vault_api::decode::one(&bytes).map_err(|e| CallFailure::Undecodable(bounded_text(&e.to_string())))?;
    Ok(Answer { value: value.map_err(BackupError::bounded), request_bytes, reply_bytes: bytes.len() as u64 })
}

pub type Protocol<T> = Result<Answer<Result<T, BackupError>>, CallFailure>;

/// Calls `method` of the management canister on an app's behalf (a native capture's snapshot
/// methods, its stop and start), bounded-wait for the reads and uploads of data (the same call
/// twice does the same) and unbounded-wait for the rest: a call that creates, loads or deletes a
/// snapshot or stops or starts the app must not end without telling whether it ran, and the
/// management canister always answers. A transient reject or a lost answer is a failure to
/// retry; any other reject is the management canister's refusal (`BackupError::NativeRefused`).
pub async fn management<A: CandidType, T: CandidType + DeserializeOwned>(method: &str, arg: &A, bounded: bool) -> Protocol<T> {
    let payload = candid::encode_one(arg).expect("management arguments encode");
    let request_bytes = (method.len() + payload.len()) as u64;
    let _outstanding = Outstanding::new();
    let call = if bounded {
        Call::bounded_wait(Principal::management_canister(), method).change_timeout(CALL_TIMEOUT_SECONDS)
    } else {
        Call::unbounded_wait(Principal::management_canister(), method)
    };
    let response = match call.with_raw_args(&payload).await {
        Ok(response) => response,
        Err(CallFailed::CallRejected(r)) if !matches!(r.raw_reject_code(), 2 | 6) => {
            let refused = BackupError::NativeRefused { method: method.to_string(), reject_code: r.raw_reject_code(), message: r.reject_message().to_string() };
            return Ok(Answer { value: Err(refused.bounded()), request_bytes, reply_bytes: r.reject_message().len() as u64 });
        }
        Err(CallFailed::CallRejected(r)) => return Err(CallFailure::Rejected { code: r.raw_reject_code(), message: bounded_text(r.reject_message()) }),
        Err(_) => return Err(CallFailure::NotSent),
    };
    let bytes = response.into_bytes();
    let value: T = vault_api::decode::one(&bytes).map_err(|e| CallFailure::Undecodable(bounded_text(&e.to_string())))?;
    Ok(Answer { value: Ok(value), request_bytes, reply_bytes: bytes.len() as u64 })
}

/// This vault instance's nonce, as the protocol's requests carry it.
pub fn nonce() -> Option<u64> {
    Some(crate::state::with_state(|s| s.instance_nonce()))
}

pub async fn info(app: Principal) -> Protocol<BackupInfo> {
    call(app, methods::INFO, ()).await
}

/// Opens `job`'s dump, asking for no chunk hashes (the vault hashes every chunk itself), for a
/// dump incremental against snapshot `base` if given, and for a serde dump's content index if
/// `content_index`.
pub async fn dump_begin(app: Principal, job: u64, base: Option<u64>, from_upgrade_save: bool, content_index: bool) -> Protocol<DumpManifest> {
    let from_upgrade_save = from_upgrade_save.then_some(true);
    let args = DumpBegin { job, nonce: nonce(), chunk_hashes: Some(false), base, from_upgrade_save, content_index: content_index.then_some(true) };
    call(app, methods::DUMP_BEGIN, (args,)).await
}

pub async fn dump_chunk(app: Principal, job: u64, index: u32) -> Protocol<Chunk> {
    call(app, methods::DUMP_CHUNK, (ChunkRequest { job, index, nonce: nonce() },)).await
}

/// Closes `job`'s dump; `base`: the vault stored it whole as that snapshot, which the app may keep
/// as its base. (A `JobRef` with a field more: a library before incremental dumps reads it.)
pub async fn dump_end(app: Principal, job: u64, base: Option<u64>) -> Protocol<()> {
    call(app, methods::DUMP_END, (DumpEnd { job, nonce: nonce(), base },)).await
}

pub async fn restore_begin(app: Principal, args: RestoreBegin) -> Protocol<()> {
    call(app, methods::RESTORE_BEGIN, (args,)).await
}

pub async fn restore_chunk(app: Principal, args: RestoreChunk) -> Protocol<()> {
    call_raw(app, methods::RESTORE_CHUNK, args.encode_request().expect("protocol arguments encode")).await
}

/// Commits `job`'s restore; the app refuses unless it still declares `state_layout` (if given).
pub async fn restore_commit(app: Principal, job: u64, state_layout: Option<u32>, via_upgrade: bool) -> Protocol<RestoreReport> {
    call(app, methods::RESTORE_COMMIT, (RestoreCommit { job, nonce: nonce(), state_layout, via_upgrade: via_upgrade.then_some(true) },)).await
}

pub async fn restore_abort(app: Principal, job: u64) -> Protocol<()> {
    call(app, methods::RESTORE_ABORT, (JobRef { job, nonce: nonce() },)).await
}

/// An app's controllers and module hash, from the management canister.
pub struct CanisterInfo {
    pub controllers: Vec<Principal>,
    pub module_hash: Option<vault_api::Sha256>,
}

pub async fn canister_info(canister: Principal) -> Result<CanisterInfo, CallFailure> {
    let args = ic_cdk_management_canister::CanisterInfoArgs { canister_id: canister, num_requested_changes: None };
    let _outstanding = Outstanding::new();
    let info = ic_cdk_management_canister::canister_info(&args).await.map_err(|e| match e {
        ic_cdk::call::Error::CallRejected(r) => CallFailure::Rejected { code: r.raw_reject_code(), message: r.reject_message().to_string() },
        ic_cdk::call::Error::CandidDecodeFailed(e) => CallFailure::Undecodable(e.to_string()),
        _ => CallFailure::NotSent,
    })?;
    let module_hash = info
        .module_hash
        .and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok())
        .map(vault_api::Sha256);
    Ok(CanisterInfo { controllers: info.controllers, module_hash })
}
