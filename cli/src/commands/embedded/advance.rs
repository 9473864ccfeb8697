//! `vault embedded advance`: let time pass on the embedded IC, so timers fire, then let the
//! work they started finish.

use std::time::Duration;

use serde::Serialize;
use vault_ops::embedded::EmbeddedTransport;

use crate::options::parse_interval;
use crate::report::time;
use crate::output::{CliError, Output};

/// Let time pass as on the IC, with a round wherever a timer, a heartbeat or a message is due
/// (each timer firing at its time), then let the canisters work until they are idle (no
/// message in flight, no timer due within two minutes), so scheduled snapshots complete.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// How long (`90`, `15m`, `6h`, `1d`...).
    #[arg(value_parser = parse_interval)]
    pub duration: u64,
    /// Run a round every round interval (1 s) whether or not anything is due, as the IC does,
    /// instead of only where something is due: slower, the same outcome for timers.
    #[arg(long)]
    pub every_round: bool,
}

#[derive(Serialize)]
pub struct Advanced {
    pub now: String,
    /// Rounds run, and the executions in them.
    pub rounds: u64,
    pub executions: u64,
    /// Seconds the canisters worked after the advance, until they were idle.
    pub settled_seconds: u64,
}

impl std::fmt::Display for Advanced {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "the time is now {}, after {} rounds and {} executions", self.now, self.rounds, self.executions)?;
        if self.settled_seconds > 0 {
            write!(f, " (the canisters worked for {} s after the advance)", self.settled_seconds)?;
        }
        Ok(())
    }
}

pub fn exec(transport: &mut EmbeddedTransport, args: &Args) -> Result<Output, CliError> {
    let advanced = transport.advance(Duration::from_secs(args.duration), args.every_round)?;
    let now = time(transport.view().get_time().as_nanos_since_unix_epoch());
    Ok(Output::of(&Advanced { now, rounds: advanced.rounds, executions: advanced.executions, settled_seconds: advanced.settled_seconds }))
}
