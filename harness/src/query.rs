//! Query calls, outside consensus (`impl World`). A query method runs once and its changes are
//! discarded. A composite query method may call query and composite query methods of any
//! canister, itself included, and the management canister's query methods; the call graph
//! runs depth first as the replica runs it (rs/execution_environment/src/query_handler), each
//! call context keeping its canister's changes until it answers, every change discarded at the
//! end. The graph is bounded by `Limits::composite_query_depth` nested calls and by
//! `Limits::composite_query_instructions` for all its executions, each call counting
//! `Limits::composite_query_call_instructions` more.

use std::collections::VecDeque;

use candid::Principal;

use crate::canister::{Entry, Instance, Outcome, PendingChanges};
use crate::messages::Reject;
use crate::system_api::{ApiContext, Execution, OutgoingCall, Response};
use crate::types::{CallResult, ErrorCode, MANAGEMENT_CANISTER};
use crate::world::{Status, World, method_not_found, no_wasm_module};

/// The answer to a call in the graph, as its caller gets it.
type Answer = Result<Vec<u8>, Reject>;

/// A call context of the graph that has not answered yet.
struct Frame {
    canister: Principal,
    caller: Principal,
    /// Calls it made and has not sent yet, in order.
    calls: VecDeque<OutgoingCall>,
    /// The call whose answer it waits for.
    awaiting: Option<OutgoingCall>,
    /// Instructions of its executions so far (`performance_counter` type 1).
    instructions: u64,
    /// The changes of an outer call context on the same canister, set aside while this one
    /// runs on the canister's committed state.
    outer: Option<PendingChanges>,
}

/// How a method's execution ended: answered, or waiting with its call context open.
enum Started {
    Answered(Answer),
    Waiting(Box<Frame>),
}

/// The call contexts waiting, innermost last, and the instructions the graph used.
#[derive(Default)]
struct Graph {
    stack: Vec<Frame>,
    instructions: u64,
}

impl World {
    /// Runs a query call to `receiver`; nothing it does is kept.
    pub(crate) fn query(&mut self, receiver: Principal, sender: Principal, method: &str, payload: Vec<u8>) -> CallResult {
        if receiver == MANAGEMENT_CANISTER {
            return self.management_query(sender, method, &payload).map_err(|r| r.to_user());
        }
        let mut graph = Graph::default();
        let answer = match self.start_query(&mut graph, receiver, sender, method, payload) {
            Ok(Started::Answered(answer)) => answer,
            Ok(Started::Waiting(frame)) => {
                graph.stack.push(*frame);
                self.run_graph(&mut graph)
            }
            Err(refusal) => Err(refusal),
        };
        answer.map_err(|r| r.to_user())
    }

    /// Walks the graph until its first call context answers, or a limit stops it.
    fn run_graph(&mut self, graph: &mut Graph) -> Answer {
        let mut answer: Option<Answer> = None;
        while let Some(mut frame) = graph.stack.pop() {
            if let Some(limit) = self.graph_limit_reached(graph) {
                graph.stack.push(frame);
                self.abandon(graph);
                return Err(limit);
            }
            let answered = match answer.take() {
                Some(result) => self.query_callback(graph, &mut frame, result),
                None => match frame.calls.pop_front() {
                    None => Some(Err(did_not_answer(frame.canister))),
                    Some(call) => {
                        frame.awaiting = Some(call.clone());
                        let caller = frame.canister;
                        graph.stack.push(frame);
                        match self.send_query_call(graph, caller, call) {
                            Started::Answered(result) => answer = Some(result),
                            Started::Waiting(callee) => graph.stack.push(*callee),
                        }
                        continue;
                    }
                },
            };
            match answered {
                Some(result) => {
                    self.end_frame(frame);
                    if graph.stack.is_empty() {
                        return result;
                    }
                    answer = Some(result);
                }
                None => graph.stack.push(frame),
            }
        }
        unreachable!("the loop returns when the first call context answers")
    }

    /// The error that ends the whole query once the call context about to run has as many
    /// below it as the depth allows, or the graph has used its instructions.
    fn graph_limit_reached(&self, graph: &Graph) -> Option<Reject> {
        if graph.stack.len() >= self.limits.composite_query_depth {
            return Some(Reject::system(ErrorCode::QueryCallGraphTooDeep, "Composite query calls exceeded the maximum call depth."));
        }
        if graph.instructions >= self.limits.composite_query_instructions {
            return Some(Reject::system(
                ErrorCode::QueryCallGraphTotalInstructionLimitExceeded,
                "Composite query calls exceeded the instruction limit.",
            ));
        }
        None
    }

    /// Runs `method` of `canister` for `caller`, or refuses it as the IC would.
    fn start_query(
        &mut self,
        graph: &mut Graph,
        canister: Principal,
        caller: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Started, Reject> {
        let (export, kind) = self.query_entry(canister, method)?;
        let instance = self.canisters.get_mut(&canister).and_then(|c| c.instance.as_mut()).expect("checked by query_entry");
        // A call back into a canister with a call context open runs on its committed state.
        let outer = graph.stack.iter().any(|f| f.canister == canister).then(|| {
            let changes = instance.pending_changes();
            instance.roll_back();
            changes
        });
        let mut exec = self.query_execution(graph, canister, kind, caller, 0);
        exec.arg = arg;
        let mut outcome = self.run_query(graph, canister, Entry::Export(&export), exec);
        let mut frame = Frame { canister, caller, calls: VecDeque::new(), awaiting: None, instructions: outcome.instructions, outer };
        match answer_of(canister, &mut outcome) {
            Some(answer) => {
                self.end_frame(frame);
                Ok(Started::Answered(answer))
            }
            None => {
                frame.calls = std::mem::take(&mut outcome.exec.calls).into();
                Ok(Started::Waiting(Box::new(frame)))
            }
        }
    }

    /// The export and context of a query call to `method`: a composite query method first, as
    /// the replica looks for one, then a query method.
    fn query_entry(&self, canister: Principal, method: &str) -> Result<(String, ApiContext), Reject> {
        let Some(c) = self.canisters.get(&canister) else {
            return Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {canister} not found")));
        };
        if c.status == Status::Stopped {
            return Err(Reject::system(ErrorCode::CanisterStopped, format!("Canister {canister} is stopped")));
        }
        let Some(instance) = &c.instance else {
            return Err(Reject::failed(&canister, &no_wasm_module()));
        };
        let composite = format!("canister_composite_query {method}");
        if instance.exports(&composite) {
            return Ok((composite, ApiContext::CompositeQuery));
        }
        let query = format!("canister_query {method}");
        if instance.exports(&query) {
            return Ok((query, ApiContext::NonReplicatedQuery));
        }
        Err(Reject::failed(&canister, &method_not_found("query", method)))
    }

    /// Sends `call` of canister `caller`; a refusal or the callee's answer comes back at once,
    /// unless the callee waits for calls of its own.
    fn send_query_call(&mut self, graph: &mut Graph, caller: Principal, call: OutgoingCall) -> Started {
        let overhead = self.limits.composite_query_call_instructions;
        if call.callee == MANAGEMENT_CANISTER {
            // Only the management canister's query methods answer, and count as a call.
            let answer = self.management_query(caller, &call.method, &call.payload);
            if !matches!(&answer, Err(r) if r.error_code == ErrorCode::CanisterMethodNotFound) {
                graph.instructions += overhead;
            }
            return Started::Answered(answer);
        }
        match self.start_query(graph, call.callee, caller, &call.method, call.payload) {
            Ok(started) => {
                graph.instructions += overhead;
                started
            }
            Err(refusal) => Started::Answered(Err(refusal)),
        }
    }

    /// Runs the callback of `frame` for the answer to its call, and the cleanup after it if
    /// it traps (on the state from before the callback); returns the frame's answer if it gave
    /// one. Calls the callback made join the frame's.
    fn query_callback(&mut self, graph: &mut Graph, frame: &mut Frame, result: Answer) -> Option<Answer> {
        let call = frame.awaiting.take().expect("a call context gets answers only to the call it waits for");
        let ((fun, env), kind, arg, reject) = match result {
            Ok(reply) => (call.on_reply, ApiContext::CompositeReplyCallback, reply, None),
            Err(r) => (call.on_reject, ApiContext::CompositeRejectCallback, Vec::new(), Some((r.code, r.canister_message))),
        };
        let before = call.on_cleanup.map(|_| self.instance_mut(frame.canister).pending_changes());
        let mut exec = self.query_execution(graph, frame.canister, kind, frame.caller, frame.instructions);
        (exec.arg, exec.reject) = (arg, reject);
        let budget = exec.instruction_limit;
        let mut outcome = self.run_query(graph, frame.canister, Entry::Callback { fun, env }, exec);
        frame.instructions += outcome.instructions;
        let mut error = match outcome.result.clone() {
            Ok(()) => {
                let answer = answer_of(frame.canister, &mut outcome);
                if answer.is_none() {
                    frame.calls.extend(std::mem::take(&mut outcome.exec.calls));
                }
                return answer;
            }
            Err(error) => error,
        };
        if let (Some((fun, env)), Some(before)) = (call.on_cleanup, before) {
            let instance = self.instance_mut(frame.canister);
            instance.roll_back();
            instance.reapply(&before);
            let mut exec = self.query_execution(graph, frame.canister, ApiContext::CompositeCleanup, frame.caller, frame.instructions);
            exec.instruction_limit = budget.saturating_sub(outcome.instructions);
            let cleanup = self.run_query(graph, frame.canister, Entry::Callback { fun, env }, exec);
            frame.instructions += cleanup.instructions;
            if let Err(cleanup_error) = &cleanup.result {
                error = error.with_failed_cleanup(&frame.canister, cleanup_error);
            }
        }
        Some(Err(Reject::failed(&frame.canister, &error)))
    }

    /// Instructions the next execution may use: a query's, or what the graph has left.
    fn graph_budget(&self, graph: &Graph) -> u64 {
        self.limits.query_instructions.min(self.limits.composite_query_instructions.saturating_sub(graph.instructions))
    }

    /// An execution of `canister` in context `kind` for `caller`, whose call context ran
    /// `context_instructions` so far, with the instructions the graph has left.
    fn query_execution(
        &self,
        graph: &Graph,
        canister: Principal,
        kind: ApiContext,
        caller: Principal,
        context_instructions: u64,
    ) -> Execution {
        let mut exec = self.execution(&self.canisters[&canister], kind, caller);
        exec.call_context_instructions = context_instructions;
        exec.instruction_limit = self.graph_budget(graph);
        exec
    }

    /// Runs `entry` on `canister` within `exec`'s instruction limit, leaving its changes
    /// pending, and keeps the lines it logged.
    fn run_query(&mut self, graph: &mut Graph, canister: Principal, entry: Entry, exec: Execution) -> Outcome {
        let budget = exec.instruction_limit;
        let (time, to_stderr) = (self.time, self.log_to_stderr);
        let c = self.canisters.get_mut(&canister).expect("the graph runs existing canisters");
        let outcome = c.instance.as_mut().expect("checked by query_entry").run_uncommitted(entry, exec, budget);
        for line in &outcome.exec.logs {
            c.log(time, line.clone(), to_stderr);
        }
        graph.instructions += outcome.instructions;
        outcome
    }

    fn instance_mut(&mut self, canister: Principal) -> &mut Instance {
        self.canisters.get_mut(&canister).and_then(|c| c.instance.as_mut()).expect("the graph runs installed canisters")
    }

    /// Discards what an answered call context changed, and puts back the changes of the outer
    /// call context on the same canister it had set aside.
    fn end_frame(&mut self, frame: Frame) {
        let instance = self.instance_mut(frame.canister);
        instance.roll_back();
        if let Some(outer) = &frame.outer {
            instance.reapply(outer);
        }
    }

    /// Discards what every call context still open changed.
    fn abandon(&mut self, graph: &mut Graph) {
        for frame in graph.stack.drain(..).rev() {
            self.instance_mut(frame.canister).roll_back();
        }
    }
}

/// The answer an execution of `canister` gave: its trap, reply or reject; `None` if it gave
/// none, its call context waiting for the calls it made.
fn answer_of(canister: Principal, outcome: &mut Outcome) -> Option<Answer> {
    match (&outcome.result, outcome.exec.response.take()) {
        (Err(e), _) => Some(Err(Reject::failed(&canister, e))),
        (Ok(()), Some(Response::Reply(bytes))) => Some(Ok(bytes)),
        (Ok(()), Some(Response::Reject(message))) => Some(Err(Reject::by_canister(message))),
        (Ok(()), None) => None,
    }
}

/// A call context that made no call left to wait for and did not answer.
fn did_not_answer(canister: Principal) -> Reject {
    Reject::user_error(ErrorCode::CanisterDidNotReply, format!("Canister {canister} did not produce a response"))
}
