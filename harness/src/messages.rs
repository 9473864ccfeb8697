//! The messages between canisters and their callers: requests, responses, the rejections
//! they carry, and who waits for each answer.

use candid::Principal;

use crate::canister::ExecError;
use crate::types::{ErrorCode, RejectCode, RejectResponse};

/// A rejection on its way to a caller, with the text each kind of caller sees: an ingress
/// caller gets the IC error code and the user message; a calling canister gets the reject code
/// and its own form of the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    pub code: RejectCode,
    pub error_code: ErrorCode,
    pub user_message: String,
    pub canister_message: String,
}

impl Reject {
    /// A reject the callee made with `msg_reject`.
    pub fn by_canister(message: String) -> Self {
        Reject {
            code: RejectCode::CanisterReject,
            error_code: ErrorCode::CanisterRejectedMessage,
            user_message: message.clone(),
            canister_message: message,
        }
    }

    /// A failed execution: canisters see the message behind its error code, as the replica
    /// sends it (`IC0503: Error from Canister ...`).
    pub fn failed(canister: &Principal, error: &ExecError) -> Self {
        Self::user_error(error.code, error.user_message(canister))
    }

    /// An error the replica raises as a `UserError`: a caller outside the IC sees the message,
    /// a calling canister sees it after its code (`IC0527: Composite query cannot ...`).
    pub fn user_error(error_code: ErrorCode, message: impl Into<String>) -> Self {
        let message = message.into();
        Reject {
            code: error_code.reject_code(),
            error_code,
            canister_message: format!("{error_code}: {message}"),
            user_message: message,
        }
    }

    /// A reject the system makes, the same text for every caller.
    pub fn system(error_code: ErrorCode, message: impl Into<String>) -> Self {
        let message = message.into();
        Reject { code: error_code.reject_code(), error_code, user_message: message.clone(), canister_message: message }
    }

    /// As [`Self::system`] with a reject code other than the error code's first digit.
    pub fn system_with_code(code: RejectCode, error_code: ErrorCode, message: impl Into<String>) -> Self {
        Reject { code, ..Self::system(error_code, message) }
    }

    pub fn to_user(&self) -> RejectResponse {
        RejectResponse {
            reject_code: self.code,
            reject_message: self.user_message.clone(),
            error_code: self.error_code,
            certified: true,
        }
    }
}

/// Who waits for the answer of a call context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Ingress(u64),
    Canister { caller: Principal, callback: u64 },
    /// A timer or heartbeat: nobody waits.
    System,
}

#[derive(Clone, Debug)]
pub struct Request {
    pub sender: Principal,
    pub receiver: Principal,
    pub method: String,
    pub payload: Vec<u8>,
    pub cycles: u128,
    pub origin: Origin,
    /// Nanoseconds; 0 for a call without a deadline.
    pub deadline: u64,
}

#[derive(Clone, Debug)]
pub struct ResponseMessage {
    pub callback: u64,
    pub result: Result<Vec<u8>, Reject>,
    pub refund: u128,
}

#[derive(Clone, Debug)]
pub enum Input {
    Request(Request),
    Response(ResponseMessage),
}

/// What an execution sends out, routed once the canister's state is settled.
#[derive(Debug)]
pub enum Output {
    Request(Request),
    Respond { origin: Origin, from: Principal, result: Result<Vec<u8>, Reject>, refund: u128 },
}
