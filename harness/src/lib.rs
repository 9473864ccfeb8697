//! An embedded Internet Computer for tests, benchmarks and demos.
pub mod build;
pub mod canister;
pub mod config;
pub mod faults;
pub mod instrument;
pub mod interface;
pub mod management;
pub mod messages;
pub mod pages;
pub mod persist;
pub mod system_api;
pub mod types;
pub mod world;
pub mod backend;
pub mod harness;

pub use backend::{CallError, IcBackend};
pub use faults::CallMatcher;
pub use harness::{Harness, HarnessBuilder, MessageId, Time};
pub use types::{ErrorCode, LogRecord, RejectCode, RejectResponse};
