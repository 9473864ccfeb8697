//! An embedded Internet Computer for tests, benchmarks and demos.
//!
//! The public API is [`Harness`] (and the [`IcBackend`] trait it shares with PocketIC), the
//! vocabulary in [`types`], [`build`] for canister wasm and [`interface`] for `.did` checks.
//! The other modules are private; each uses only the ones below it:
//!
//! ```text
//! backend      IcBackend over Harness
//! harness      the Harness API
//! persist      save and load a World         (impl World)
//! query        query calls, composite ones   (impl World)
//! management   the management canister       (impl World)
//! world        canisters, queues, rounds
//! subnets      subnet ids, the streams between subnets and their pace
//! settings     canister settings, their checks, the low-memory hook's condition
//! logs         the canister log fetch_canister_logs returns
//! faults       injected traps, rejects, drops, corruptions
//! messages     requests, responses, rejects
//! canister     compiled modules, instances, commit and rollback
//! system_api   the ic0 host functions
//! pages        memory regions and page journals
//! instrument   the wasm rewrite: instruction counting, heap journal
//! config       limits and prices              types  codes, rejections, ids
//! ```
//!
//! `build` and `interface` stand apart. `management`, `persist` and `query` add methods to
//! `World`; for requests to the management canister, `world` calls `management`'s
//! `process_management_request`, `management_subnet` and `management_ingress_refusal` without
//! importing them.
pub mod build;
pub mod interface;
pub mod types;

mod backend;
mod canister;
mod config;
mod faults;
mod harness;
mod instrument;
mod logs;
mod management;
mod messages;
mod pages;
mod persist;
mod query;
mod settings;
mod snapshots;
mod subnets;
mod system_api;
mod world;

pub use backend::{CallError, IcBackend};
pub use canister::{CompiledModule, ModuleError, compile, host_functions};
pub use config::{Clock, Limits};
pub use faults::CallMatcher;
pub use harness::{Harness, HarnessBuilder, MessageId, Time, module_metadata};
pub use persist::PersistError;
pub use subnets::{SubnetId, XNet};
pub use types::{ErrorCode, LogRecord, RejectCode, RejectResponse};
pub use world::{AdvanceError, AdvanceReport, CanisterMetrics, CanisterState, ExecutedEntry, ExecutionRecord, MethodTraffic, Traffic, World};
