//! Fault injection: make a canister trap at its n-th execution, refuse calls with a chosen
//! reject, drop the responses of bounded-wait calls so their callers see SYS_UNKNOWN, or
//! corrupt a reply on its way back.

use candid::Principal;

use crate::canister::ExecError;
use crate::messages::{Reject, Request};
use crate::system_api::Help;
use crate::types::{ErrorCode, RejectCode};

/// Which calls a fault applies to; `None` matches anything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallMatcher {
    pub caller: Option<Principal>,
    pub callee: Option<Principal>,
    pub method: Option<String>,
}

impl CallMatcher {
    pub fn any() -> Self {
        Self::default()
    }

    pub fn to(callee: Principal) -> Self {
        CallMatcher { callee: Some(callee), ..Self::default() }
    }

    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    pub fn from(mut self, caller: Principal) -> Self {
        self.caller = Some(caller);
        self
    }

    fn matches(&self, caller: Principal, callee: Principal, method: Option<&str>) -> bool {
        self.caller.is_none_or(|c| c == caller)
            && self.callee.is_none_or(|c| c == callee)
            && self.method.as_deref().is_none_or(|m| Some(m) == method)
    }
}

/// How many more times a fault fires; `None` forever.
type Remaining = Option<u32>;

fn fire(remaining: &mut Remaining) -> bool {
    match remaining {
        None => true,
        Some(0) => false,
        Some(n) => {
            *n -= 1;
            true
        }
    }
}

#[derive(Clone, Debug)]
struct TrapFault {
    canister: Principal,
    /// Executions of the canister still to pass before the trap.
    countdown: u64,
}

#[derive(Clone, Debug)]
struct RejectFault {
    matcher: CallMatcher,
    code: RejectCode,
    message: String,
    remaining: Remaining,
}

/// Drops or corrupts matching responses.
#[derive(Clone, Debug)]
struct ResponseFault {
    matcher: CallMatcher,
    remaining: Remaining,
}

fn take(faults: &mut [ResponseFault], caller: Principal, callee: Principal, method: Option<&str>) -> bool {
    let Some(fault) = faults.iter_mut().find(|f| f.matcher.matches(caller, callee, method) && f.remaining != Some(0))
    else {
        return false;
    };
    fire(&mut fault.remaining)
}

/// A trap the harness makes a canister take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectedTrap {
    pub message: String,
}

impl InjectedTrap {
    /// The error of the execution the trap ends, as if the canister had called `ic0.trap`.
    pub fn error(&self) -> ExecError {
        ExecError {
            code: ErrorCode::CanisterCalledTrap,
            display: format!("Canister called `ic0.trap` with message: '{}'", self.message),
            help: Help::TrappedExplicitly,
        }
    }
}

/// The faults in force.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    traps: Vec<TrapFault>,
    rejects: Vec<RejectFault>,
    drops: Vec<ResponseFault>,
    corruptions: Vec<ResponseFault>,
    request_corruptions: Vec<ResponseFault>,
    /// How many faults fired.
    pub fired: u64,
}

impl Faults {
    /// The canister's `nth` execution from now (1 = the next one) traps after it ran, so its
    /// changes are rolled back.
    pub fn trap_at(&mut self, canister: Principal, nth: u64) {
        assert!(nth >= 1, "executions are counted from 1");
        self.traps.push(TrapFault { canister, countdown: nth });
    }

    /// Requests matching `matcher` are answered with `code` and `message` instead of being
    /// delivered, `times` times (`None`: always).
    pub fn reject_calls(&mut self, matcher: CallMatcher, code: RejectCode, message: impl Into<String>, times: Option<u32>) {
        self.rejects.push(RejectFault { matcher, code, message: message.into(), remaining: times });
    }

    /// Responses to bounded-wait calls matching `matcher` are dropped, `times` times.
    pub fn drop_responses(&mut self, matcher: CallMatcher, times: Option<u32>) {
        self.drops.push(ResponseFault { matcher, remaining: times });
    }

    /// Requests matching `matcher` arrive with their middle byte flipped, `times` times.
    pub fn corrupt_requests(&mut self, matcher: CallMatcher, times: Option<u32>) {
        self.request_corruptions.push(ResponseFault { matcher, remaining: times });
    }

    /// Flips the middle byte of `request`'s payload if a corruption fault matches.
    pub fn corrupt_request(&mut self, request: &mut Request) {
        let (caller, callee) = (request.sender, request.receiver);
        if !request.payload.is_empty() && take(&mut self.request_corruptions, caller, callee, Some(&request.method)) {
            let middle = request.payload.len() / 2;
            request.payload[middle] ^= 0xff;
            self.fired += 1;
        }
    }

    /// Replies to calls matching `matcher` arrive with their middle byte flipped, `times` times.
    pub fn corrupt_replies(&mut self, matcher: CallMatcher, times: Option<u32>) {
        self.corruptions.push(ResponseFault { matcher, remaining: times });
    }

    pub fn clear(&mut self) {
        self.traps.clear();
        self.rejects.clear();
        self.drops.clear();
        self.corruptions.clear();
        self.request_corruptions.clear();
    }

    /// Called once per replicated execution of `canister`.
    pub fn take_trap(&mut self, canister: Principal) -> Option<InjectedTrap> {
        let mut hit = None;
        for fault in self.traps.iter_mut().filter(|f| f.canister == canister) {
            fault.countdown -= 1;
            if fault.countdown == 0 {
                hit = Some(InjectedTrap { message: "injected fault: trap at this message".to_string() });
            }
        }
        self.traps.retain(|f| f.countdown > 0);
        self.fired += hit.is_some() as u64;
        hit
    }

    pub fn reject_for(&mut self, request: &Request) -> Option<Reject> {
        let fault = self
            .rejects
            .iter_mut()
            .find(|f| f.matcher.matches(request.sender, request.receiver, Some(&request.method)) && f.remaining != Some(0))?;
        fire(&mut fault.remaining);
        self.fired += 1;
        let error_code = match fault.code {
            RejectCode::SysFatal => ErrorCode::SubnetOversubscribed,
            RejectCode::SysTransient => ErrorCode::CanisterQueueFull,
            RejectCode::DestinationInvalid => ErrorCode::CanisterNotFound,
            RejectCode::CanisterReject => ErrorCode::CanisterRejectedMessage,
            RejectCode::CanisterError => ErrorCode::CanisterTrapped,
            RejectCode::SysUnknown => ErrorCode::DeadlineExpired,
        };
        Some(Reject::system_with_code(fault.code, error_code, fault.message.clone()))
    }

    pub fn drop_response(&mut self, caller: Principal, callee: Principal, method: Option<&str>) -> bool {
        let hit = take(&mut self.drops, caller, callee, method);
        self.fired += hit as u64;
        hit
    }

    /// Flips the middle byte of `reply` if a corruption fault matches.
    pub fn corrupt_reply(&mut self, caller: Principal, callee: Principal, method: Option<&str>, reply: &mut [u8]) {
        if !reply.is_empty() && take(&mut self.corruptions, caller, callee, method) {
            reply[reply.len() / 2] ^= 0xff;
            self.fired += 1;
        }
    }
}
