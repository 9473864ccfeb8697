//! What an operation costs on the embedded IC: wall time, rounds, instructions on the app side
//! and on the vault side, calls and bytes between canisters, and cycles, as the IC would charge
//! them; and which logged execution committed a restore.

use std::time::{Duration, Instant};

use candid::Principal;
use ic_harness::{ExecutedEntry, ExecutionRecord};
use vault_api::protocol::methods;

use crate::Env;

/// The cost of one operation, the difference between before and after it.
#[derive(Clone, Debug, Default)]
pub struct Cost {
    pub wall: Duration,
    /// Rounds the IC ran.
    pub rounds: u64,
    /// Instructions executed by the app-side canisters given to [`Env::measure`].
    pub app_instructions: u64,
    pub vault_instructions: u64,
    /// Inter-canister calls (requests), and the bytes of their requests and responses.
    pub calls: u64,
    pub bytes: u64,
    /// The calls among them that carry state (`vault_dump_chunk`, `vault_restore_chunk`).
    pub chunk_calls: u64,
    pub chunk_bytes: u64,
    pub app_cycles: u128,
    pub vault_cycles: u128,
}

/// The client library's methods whose requests or replies carry a chunk of state.
const CHUNK_METHODS: [&str; 2] = [methods::DUMP_CHUNK, methods::RESTORE_CHUNK];

impl Cost {
    /// Mean bytes a call carried, its request and response together.
    pub fn mean_payload(&self) -> u64 {
        self.bytes.checked_div(self.calls).unwrap_or(0)
    }

    /// Mean bytes a chunk call carried, its request and response together.
    pub fn mean_chunk_payload(&self) -> u64 {
        self.chunk_bytes.checked_div(self.chunk_calls).unwrap_or(0)
    }
}

impl Env {
    /// Runs `f` and measures what it cost; `apps` are the app-side canisters it involves.
    pub fn measure<R>(&self, apps: &[Principal], f: impl FnOnce() -> R) -> (R, Cost) {
        let before = self.snapshot_counters(apps);
        let started = Instant::now();
        let result = f();
        let wall = started.elapsed();
        let after = self.snapshot_counters(apps);
        let cost = Cost {
            wall,
            rounds: after.rounds - before.rounds,
            app_instructions: after.app_instructions - before.app_instructions,
            vault_instructions: after.vault_instructions - before.vault_instructions,
            calls: after.calls - before.calls,
            bytes: after.bytes - before.bytes,
            chunk_calls: after.chunk_calls - before.chunk_calls,
            chunk_bytes: after.chunk_bytes - before.chunk_bytes,
            app_cycles: after.app_cycles - before.app_cycles,
            vault_cycles: after.vault_cycles - before.vault_cycles,
        };
        (result, cost)
    }

    fn snapshot_counters(&self, apps: &[Principal]) -> Cost {
        let app_metrics: Vec<_> = apps.iter().map(|a| self.ic.canister_metrics(*a)).collect();
        let vault = self.ic.canister_metrics(self.vault);
        let traffic = self.ic.traffic();
        Cost {
            wall: Duration::ZERO,
            rounds: self.ic.rounds(),
            app_instructions: app_metrics.iter().map(|m| m.instructions).sum(),
            vault_instructions: vault.instructions,
            calls: traffic.requests,
            bytes: traffic.request_bytes + traffic.response_bytes,
            chunk_calls: CHUNK_METHODS.iter().filter_map(|m| traffic.by_method.get(*m)).map(|t| t.requests).sum(),
            chunk_bytes: CHUNK_METHODS.iter().filter_map(|m| traffic.by_method.get(*m)).map(|t| t.bytes).sum(),
            app_cycles: app_metrics.iter().map(|m| m.cycles_consumed).sum(),
            vault_cycles: vault.cycles_consumed,
        }
    }
}

/// The execution of `app` among `log` that committed a restore: its first `vault_restore_commit`
/// that did not trap (a commit the vault repeats only answers again).
pub fn restore_commit(log: &[ExecutionRecord], app: Principal) -> Option<&ExecutionRecord> {
    log.iter().find(|r| r.canister == app && r.succeeded && r.entry == ExecutedEntry::Method(methods::RESTORE_COMMIT.into()))
}
