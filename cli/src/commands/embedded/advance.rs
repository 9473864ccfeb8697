//! `vault embedded advance`: let time pass on the embedded IC, so timers fire, then let the
//! work they started finish.

use std::time::Duration;

use serde::Serialize;
use vault_ops::embedded::EmbeddedTransport;

use crate::options::parse_interval;
use crate::report::time;
use crate::output::{CliError, Output};

/// After the jump, rounds run a second apart while a canister is busy: messages are in flight,
/// or its timer is due within this window (a job between batches, or backing off a retry).
const BUSY_WINDOW: Duration = Duration::from_secs(120);
/// Rounds of settling at most.
const MAX_SETTLE_ROUNDS: u64 = 3600;

/// Let time pass, then run rounds a second apart until every canister is idle (no message in
/// flight, no timer due within two minutes), so scheduled snapshots complete.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// How long (`90`, `15m`, `6h`, `1d`...).
    #[arg(value_parser = parse_interval)]
    pub duration: u64,
}

#[derive(Serialize)]
pub struct Advanced {
    pub now: String,
    /// Seconds of rounds run after the jump, until the canisters were idle.
    pub settled_seconds: u64,
}

impl std::fmt::Display for Advanced {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "the time is now {}", self.now)?;
        if self.settled_seconds > 0 {
            write!(f, " (the canisters worked for {} s after the jump)", self.settled_seconds)?;
        }
        Ok(())
    }
}

pub fn exec(transport: &mut EmbeddedTransport, args: &Args) -> Result<Output, CliError> {
    let ic = transport.harness();
    ic.advance_time(Duration::from_secs(args.duration));
    ic.tick();
    let mut settled_seconds = 0;
    while settled_seconds < MAX_SETTLE_ROUNDS && busy(ic) {
        ic.advance_time(Duration::from_secs(1));
        ic.tick();
        settled_seconds += 1;
    }
    Ok(Output::of(&Advanced { now: time(ic.get_time().as_nanos_since_unix_epoch()), settled_seconds }))
}

fn busy(ic: &ic_harness::Harness) -> bool {
    ic.with_world(|world| {
        let soon = world.time + BUSY_WINDOW.as_nanos() as u64;
        world.is_quiet().is_err() || world.canisters.values().any(|c| c.global_timer != 0 && c.global_timer <= soon)
    })
}
