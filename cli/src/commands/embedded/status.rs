//! `vault embedded status`: the embedded IC's time and canisters, with their cycles and work.

use serde::Serialize;
use vault_ops::embedded::EmbeddedTransport;

use crate::report::{size, time};
use crate::output::{CliError, Output};

/// Show the embedded IC: its time, and each canister's cycles, memory and executions.
#[derive(clap::Args, Debug)]
pub struct Args {}

#[derive(Serialize)]
pub struct CanisterReport {
    pub canister: String,
    pub cycles: u128,
    pub memory_bytes: u64,
    pub executions: u64,
    pub instructions: u64,
    pub cycles_consumed: u128,
}

#[derive(Serialize)]
pub struct IcReport {
    pub time: String,
    pub time_nanos: u64,
    pub rounds: u64,
    pub canisters: Vec<CanisterReport>,
}

impl std::fmt::Display for IcReport {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "time {} after {} rounds", self.time, self.rounds)?;
        for c in &self.canisters {
            write!(
                f,
                "\n  {}  {:>9.3} TC  {:>10}  {} executions, {:.2} B instructions, {:.3} TC consumed",
                c.canister,
                c.cycles as f64 / 1e12,
                size(c.memory_bytes),
                c.executions,
                c.instructions as f64 / 1e9,
                c.cycles_consumed as f64 / 1e12
            )?;
        }
        Ok(())
    }
}

pub fn exec(transport: &EmbeddedTransport, _: &Args) -> Result<Output, CliError> {
    let report = transport.view().with_world(|world| IcReport {
        time: time(world.time),
        time_nanos: world.time,
        rounds: world.rounds,
        canisters: world
            .canisters
            .iter()
            .map(|(id, c)| CanisterReport {
                canister: id.to_text(),
                cycles: c.cycles,
                memory_bytes: c.memory_bytes(),
                executions: c.metrics.executions,
                instructions: c.metrics.instructions,
                cycles_consumed: c.metrics.cycles_consumed,
            })
            .collect(),
    });
    Ok(Output::of(&report))
}
