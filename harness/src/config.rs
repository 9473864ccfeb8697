//! Limits and cycle prices, defaulting to the IC's application-subnet values.
//!
//! Sources: rs/config/src/subnet_config.rs, execution_environment.rs and embedders.rs in
//! dfinity/ic, and `CyclesAccountManagerConfig::application_subnet` for a 13-node subnet.
//! The round interval is an assumption (see [`Clock`]).

/// Per-message and per-canister limits.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Instructions of one update, callback, cleanup, timer or heartbeat execution.
    pub update_instructions: u64,
    /// Instructions of one query execution.
    pub query_instructions: u64,
    /// Instructions of an install or upgrade (pre_upgrade and post_upgrade together).
    pub install_instructions: u64,
    /// Instructions of `canister_inspect_message`.
    pub inspect_instructions: u64,
    /// Bytes of an inter-canister request (method name and argument) between subnets; a
    /// larger one gets a synthetic reject (CANISTER_ERROR).
    pub max_request_bytes_cross_subnet: usize,
    /// Bytes of a request within a subnet; `ic0.call_data_append` traps past it.
    pub max_request_bytes_same_subnet: usize,
    /// Whether calls between different canisters on one subnet count as same-subnet calls for
    /// the request size limit. By default each canister is treated as if on its own subnet, so
    /// code is held to the 2 MiB limit; calls between subnets (`crate::SubnetId`) always are.
    pub single_subnet: bool,
    /// Bytes of an ingress message's argument.
    pub max_ingress_bytes: usize,
    /// Bytes of a reply in replicated execution.
    pub max_reply_bytes: usize,
    /// Bytes of a reply of a non-replicated query.
    pub max_query_reply_bytes: usize,
    /// Bytes of stable memory a canister may have.
    pub stable_memory_bytes: u64,
    /// Bytes of stable memory one message may write (4 KiB pages) in an update, an upgrade and
    /// a query.
    pub stable_dirty_bytes_update: u64,
    pub stable_dirty_bytes_upgrade: u64,
    pub stable_dirty_bytes_query: u64,
    /// Upper bound of the bounded-wait timeout, in seconds.
    pub max_call_timeout_seconds: u32,
    /// Bytes of certified data.
    pub max_certified_data_bytes: usize,
    /// Instructions of all executions of one composite query's call graph together
    /// (`MAX_INSTRUCTIONS_PER_COMPOSITE_QUERY_CALL`); each execution in it also keeps to
    /// `query_instructions`.
    #[serde(default = "default_composite_query_instructions")]
    pub composite_query_instructions: u64,
    /// Instructions each call in a composite query's graph counts against that limit besides
    /// what it executes (`INSTRUCTION_OVERHEAD_PER_QUERY_CALL`).
    #[serde(default = "default_composite_query_call_instructions")]
    pub composite_query_call_instructions: u64,
    /// Nested calls a composite query's graph may have (`MAX_QUERY_CALL_DEPTH`).
    #[serde(default = "default_composite_query_depth")]
    pub composite_query_depth: usize,
    /// Instructions a canister executes in one round before it starts no other message in it
    /// (`MAX_INSTRUCTIONS_PER_ROUND` of application subnets, rs/config/src/subnet_config.rs: 4 B).
    /// The execution that reaches it runs to its end, as the IC lets a round's last message
    /// overshoot; the canister's other messages wait for the next round.
    #[serde(default = "default_round_instructions")]
    pub round_instructions: u64,
}

fn default_round_instructions() -> u64 {
    4_000_000_000
}

fn default_composite_query_instructions() -> u64 {
    5_000_000_000
}

fn default_composite_query_call_instructions() -> u64 {
    50_000_000
}

fn default_composite_query_depth() -> usize {
    6
}

impl Default for Limits {
    fn default() -> Self {
        const GIB: u64 = 1 << 30;
        const MIB: usize = 1 << 20;
        Limits {
            update_instructions: 40_000_000_000,
            round_instructions: default_round_instructions(),
            query_instructions: 5_000_000_000,
            install_instructions: 300_000_000_000,
            inspect_instructions: 200_000_000,
            max_request_bytes_cross_subnet: 2 * MIB,
            max_request_bytes_same_subnet: 10 * MIB,
            single_subnet: false,
            max_ingress_bytes: 2 * MIB,
            max_reply_bytes: 2 * MIB,
            max_query_reply_bytes: 3 * MIB,
            stable_memory_bytes: 400 * GIB,
            stable_dirty_bytes_update: 2 * GIB,
            stable_dirty_bytes_upgrade: 8 * GIB,
            stable_dirty_bytes_query: GIB,
            max_call_timeout_seconds: 300,
            max_certified_data_bytes: 32,
            composite_query_instructions: default_composite_query_instructions(),
            composite_query_call_instructions: default_composite_query_call_instructions(),
            composite_query_depth: default_composite_query_depth(),
        }
    }
}

/// How the clock moves in [`crate::Harness::advance`] and [`crate::Harness::advance_rounds`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// Time from one round to the next, at least 1 ns. Heartbeats run once per round, and a
    /// timer due sooner than this after the last round waits for the next one. The IC
    /// publishes no block rate; an application subnet makes about one block a second, which
    /// is the default (an assumption).
    pub round_interval_nanos: u64,
    /// Rounds one advance may run; an advance that would run more stops with
    /// [`crate::AdvanceError`].
    pub max_rounds_per_advance: u64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock { round_interval_nanos: 1_000_000_000, max_rounds_per_advance: 1_000_000 }
    }
}

/// Default `wasm_memory_limit` setting: 3 GiB.
pub const DEFAULT_WASM_MEMORY_LIMIT: u64 = 3 << 30;
/// Largest wasm32 memory: 4 GiB.
pub const MAX_WASM_MEMORY: u64 = 4 << 30;
/// Default freezing threshold: 30 days.
pub const DEFAULT_FREEZING_THRESHOLD_SECONDS: u64 = 30 * 24 * 3600;
/// Cycles of a canister created through the harness API (as PocketIC gives).
pub const DEFAULT_PROVISIONAL_CYCLES: u128 = 100_000_000_000_000;

/// Cycle prices of a 13-node application subnet; [`CostTable::for_subnet_size`] scales them.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CostTable {
    pub subnet_size: u64,
    pub update_message_execution: u128,
    pub per_instruction: u128,
    pub inter_canister_call: u128,
    pub per_byte_sent: u128,
    pub ingress_reception: u128,
    pub per_ingress_byte: u128,
    /// Storage, per GiB and second.
    pub storage_per_gib_second: u128,
    pub canister_creation: u128,
}

impl Default for CostTable {
    fn default() -> Self {
        CostTable {
            subnet_size: 13,
            update_message_execution: 5_000_000,
            per_instruction: 1,
            inter_canister_call: 260_000,
            per_byte_sent: 1_000,
            ingress_reception: 1_200_000,
            per_ingress_byte: 2_000,
            storage_per_gib_second: 127_000,
            canister_creation: 500_000_000_000,
        }
    }
}

impl CostTable {
    /// Prices for a subnet of `nodes` nodes: the 13-node prices times `nodes / 13`, rounded
    /// down per fee as the IC does.
    pub fn for_subnet_size(nodes: u64) -> Self {
        let base = CostTable::default();
        let scale = |fee: u128| fee * nodes as u128 / 13;
        CostTable {
            subnet_size: nodes,
            update_message_execution: scale(base.update_message_execution),
            per_instruction: base.per_instruction,
            inter_canister_call: scale(base.inter_canister_call),
            per_byte_sent: scale(base.per_byte_sent),
            ingress_reception: scale(base.ingress_reception),
            per_ingress_byte: scale(base.per_ingress_byte),
            storage_per_gib_second: scale(base.storage_per_gib_second),
            canister_creation: scale(base.canister_creation),
        }
    }

    /// Cycles an execution of `instructions` costs.
    pub fn execution(&self, instructions: u64) -> u128 {
        self.update_message_execution + self.per_instruction * instructions as u128
    }

    /// What `ic0.cost_call` returns and `call_perform` takes up front: the call fee, the bytes
    /// sent, and reservations for the largest response and its callback's execution.
    pub fn call(&self, limits: &Limits, method_name_bytes: u64, payload_bytes: u64) -> u128 {
        self.inter_canister_call
            + self.per_byte_sent * (method_name_bytes + payload_bytes) as u128
            + self.response_reservation(limits)
    }

    /// The part of [`Self::call`] refunded down to use when the response arrives.
    pub fn response_reservation(&self, limits: &Limits) -> u128 {
        self.per_byte_sent * limits.max_reply_bytes as u128 + self.execution(limits.update_instructions)
    }

    /// Ingress induction of a message of `bytes` (method name and argument).
    pub fn ingress(&self, bytes: usize) -> u128 {
        self.ingress_reception + self.per_ingress_byte * bytes as u128
    }

    /// Storage of `bytes` for `nanos`.
    pub fn storage(&self, bytes: u64, nanos: u64) -> u128 {
        self.storage_per_gib_second * bytes as u128 * nanos as u128 / (1u128 << 30) / 1_000_000_000
    }

    /// Cycles burnt per day by a canister of `bytes` of memory, for the freezing threshold.
    pub fn idle_burn_per_day(&self, bytes: u64) -> u128 {
        self.storage(bytes, 86_400 * 1_000_000_000)
    }

    /// `ic0.cost_http_request`: (3M + 60K n) n + 400 per request byte + 800 per response byte.
    pub fn http_request(&self, request_bytes: u64, max_response_bytes: u64) -> u128 {
        let n = self.subnet_size as u128;
        (3_000_000 + 60_000 * n) * n + 400 * request_bytes as u128 + 800 * max_response_bytes as u128
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_call_matches_the_documented_13_node_amount() {
        // IC-FACTS: 42,102,412,000 + 1000 x (name + payload).
        let c = CostTable::default();
        assert_eq!(c.call(&Limits::default(), 5, 10), 42_102_412_000 + 15_000);
    }

    #[test]
    fn storage_of_one_gib_for_thirty_days() {
        let c = CostTable::default();
        let cycles = c.storage(1 << 30, 30 * 86_400 * 1_000_000_000);
        assert_eq!(cycles, 127_000 * 30 * 86_400);
    }

    #[test]
    fn prices_scale_with_subnet_size() {
        let c = CostTable::for_subnet_size(34);
        assert_eq!(c.update_message_execution, 5_000_000 * 34 / 13);
        assert_eq!(c.inter_canister_call, 260_000 * 34 / 13);
    }
}
