//! Integration tests of the embedded IC: each module runs the real test canisters (built from
//! `harness/canisters`) and checks one area of the IC's semantics.

mod atomicity;
mod backend;
mod baselines;
mod calls;
mod common;
mod cycles;
mod execution;
mod faults;
mod imports;
mod install;
mod limits;
mod logs;
mod management;
mod persistence;
mod queries;
mod settings;
mod snapshots;
mod subnets;
mod timers;
mod upgrades;
