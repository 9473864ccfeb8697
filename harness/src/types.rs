//! Vocabulary shared by the harness and its users: reject codes, IC error codes, rejections.

use candid::Principal;

/// The management canister's principal.
pub const MANAGEMENT_CANISTER: Principal = Principal::management_canister();

/// Reject codes of the IC interface spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum RejectCode {
    SysFatal = 1,
    SysTransient = 2,
    DestinationInvalid = 3,
    CanisterReject = 4,
    CanisterError = 5,
    SysUnknown = 6,
}

impl RejectCode {
    pub fn from_u32(code: u32) -> Option<Self> {
        Some(match code {
            1 => RejectCode::SysFatal,
            2 => RejectCode::SysTransient,
            3 => RejectCode::DestinationInvalid,
            4 => RejectCode::CanisterReject,
            5 => RejectCode::CanisterError,
            6 => RejectCode::SysUnknown,
            _ => return None,
        })
    }
}

/// IC error codes (rs/types/error_types/src/lib.rs in dfinity/ic); shown as `IC` and four
/// digits. The first digit is the reject code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    SubnetOversubscribed = 101,
    MaxNumberOfCanistersReached = 102,
    CanisterQueueFull = 201,
    IngressMessageTimeout = 202,
    CanisterQueueNotEmpty = 203,
    IngressHistoryFull = 204,
    CanisterIdAlreadyExists = 205,
    StopCanisterRequestTimeout = 206,
    CanisterOutOfCycles = 207,
    CertifiedStateUnavailable = 208,
    InstallCodeRateLimited = 209,
    HeapDeltaRateLimited = 210,
    CanisterNotFound = 301,
    CanisterSnapshotNotFound = 305,
    InsufficientMemoryAllocation = 402,
    InsufficientCyclesForCreateCanister = 403,
    SubnetNotFound = 404,
    CanisterNotHostedBySubnet = 405,
    CanisterRejectedMessage = 406,
    UnknownManagementMessage = 407,
    InvalidManagementPayload = 408,
    CanisterSnapshotImmutable = 409,
    CanisterTrapped = 502,
    CanisterCalledTrap = 503,
    CanisterContractViolation = 504,
    CanisterInvalidWasm = 505,
    CanisterDidNotReply = 506,
    CanisterOutOfMemory = 507,
    CanisterStopped = 508,
    CanisterStopping = 509,
    CanisterNotStopped = 510,
    CanisterStoppingCancelled = 511,
    CanisterInvalidController = 512,
    CanisterFunctionNotFound = 513,
    CanisterNonEmpty = 514,
    QueryCallGraphLoopDetected = 517,
    InsufficientCyclesInCall = 520,
    CanisterWasmEngineError = 521,
    CanisterInstructionLimitExceeded = 522,
    CanisterMemoryAccessLimitExceeded = 524,
    QueryCallGraphTooDeep = 525,
    QueryCallGraphTotalInstructionLimitExceeded = 526,
    CompositeQueryCalledInReplicatedMode = 527,
    QueryTimeLimitExceeded = 528,
    QueryCallGraphInternal = 529,
    InsufficientCyclesInComputeAllocation = 530,
    InsufficientCyclesInMemoryAllocation = 531,
    InsufficientCyclesInMemoryGrow = 532,
    ReservedCyclesLimitExceededInMemoryAllocation = 533,
    ReservedCyclesLimitExceededInMemoryGrow = 534,
    InsufficientCyclesInMessageMemoryGrow = 535,
    CanisterMethodNotFound = 536,
    CanisterWasmModuleNotFound = 537,
    CanisterAlreadyInstalled = 538,
    CanisterWasmMemoryLimitExceeded = 539,
    ReservedCyclesLimitIsTooLow = 540,
    DeadlineExpired = 601,
    ResponseDropped = 602,
}

impl ErrorCode {
    /// The code with number `code`, if it is one of the IC's.
    pub fn from_u16(code: u16) -> Option<Self> {
        use ErrorCode::*;
        Some(match code {
            101 => SubnetOversubscribed,
            102 => MaxNumberOfCanistersReached,
            201 => CanisterQueueFull,
            202 => IngressMessageTimeout,
            203 => CanisterQueueNotEmpty,
            204 => IngressHistoryFull,
            205 => CanisterIdAlreadyExists,
            206 => StopCanisterRequestTimeout,
            207 => CanisterOutOfCycles,
            208 => CertifiedStateUnavailable,
            209 => InstallCodeRateLimited,
            210 => HeapDeltaRateLimited,
            301 => CanisterNotFound,
            305 => CanisterSnapshotNotFound,
            402 => InsufficientMemoryAllocation,
            403 => InsufficientCyclesForCreateCanister,
            404 => SubnetNotFound,
            405 => CanisterNotHostedBySubnet,
            406 => CanisterRejectedMessage,
            407 => UnknownManagementMessage,
            408 => InvalidManagementPayload,
            409 => CanisterSnapshotImmutable,
            502 => CanisterTrapped,
            503 => CanisterCalledTrap,
            504 => CanisterContractViolation,
            505 => CanisterInvalidWasm,
            506 => CanisterDidNotReply,
            507 => CanisterOutOfMemory,
            508 => CanisterStopped,
            509 => CanisterStopping,
            510 => CanisterNotStopped,
            511 => CanisterStoppingCancelled,
            512 => CanisterInvalidController,
            513 => CanisterFunctionNotFound,
            514 => CanisterNonEmpty,
            517 => QueryCallGraphLoopDetected,
            520 => InsufficientCyclesInCall,
            521 => CanisterWasmEngineError,
            522 => CanisterInstructionLimitExceeded,
            524 => CanisterMemoryAccessLimitExceeded,
            525 => QueryCallGraphTooDeep,
            526 => QueryCallGraphTotalInstructionLimitExceeded,
            527 => CompositeQueryCalledInReplicatedMode,
            528 => QueryTimeLimitExceeded,
            529 => QueryCallGraphInternal,
            530 => InsufficientCyclesInComputeAllocation,
            531 => InsufficientCyclesInMemoryAllocation,
            532 => InsufficientCyclesInMemoryGrow,
            533 => ReservedCyclesLimitExceededInMemoryAllocation,
            534 => ReservedCyclesLimitExceededInMemoryGrow,
            535 => InsufficientCyclesInMessageMemoryGrow,
            536 => CanisterMethodNotFound,
            537 => CanisterWasmModuleNotFound,
            538 => CanisterAlreadyInstalled,
            539 => CanisterWasmMemoryLimitExceeded,
            540 => ReservedCyclesLimitIsTooLow,
            601 => DeadlineExpired,
            602 => ResponseDropped,
            _ => return None,
        })
    }

    pub fn reject_code(self) -> RejectCode {
        RejectCode::from_u32(self as u32 / 100).expect("every error code starts with a reject code")
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IC{:04}", *self as u16)
    }
}

/// A rejection as a caller outside the IC sees it (the `pocket-ic` crate's shape).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectResponse {
    pub reject_code: RejectCode,
    pub reject_message: String,
    pub error_code: ErrorCode,
    pub certified: bool,
}

impl RejectResponse {
    pub fn new(error_code: ErrorCode, reject_message: impl Into<String>) -> Self {
        RejectResponse {
            reject_code: error_code.reject_code(),
            reject_message: reject_message.into(),
            error_code,
            certified: true,
        }
    }

    /// A reject produced by the canister itself with `msg_reject`.
    pub fn canister_reject(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::CanisterRejectedMessage, message)
    }
}

impl std::fmt::Display for RejectResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "reject code {:?}, reject message {}, error code {}",
            self.reject_code, self.reject_message, self.error_code
        )
    }
}

impl std::error::Error for RejectResponse {}

/// What a call returned to its caller.
pub type CallResult = Result<Vec<u8>, RejectResponse>;

/// The principal of the canister with sequence number `index` (the IC's canister id layout:
/// 8 bytes big-endian index, then 0x01 0x01).
pub fn canister_id_from_index(index: u64) -> Principal {
    let mut bytes = [0u8; 10];
    bytes[..8].copy_from_slice(&index.to_be_bytes());
    bytes[8] = 0x01;
    bytes[9] = 0x01;
    Principal::from_slice(&bytes)
}

/// One line a canister printed with `ic0.debug_print` or with a trap.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogRecord {
    pub idx: u64,
    pub timestamp_nanos: u64,
    pub content: Vec<u8>,
}

impl LogRecord {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.content).into_owned()
    }
}
