//! `vault admin ...`: administering the vault. Its administrators (its controllers and the
//! principals they name) decide who may register apps, see what every registrant's apps hold,
//! set the reserve and quotas, and suspend or evict apps.

use clap::Subcommand;

use crate::context::Context;
use crate::output::{CliError, Output};

pub mod administrators;
pub mod allow;
pub mod disallow;
pub mod evict;
pub mod info;
pub mod limits;
pub mod registrants;
pub mod registration;
pub mod resume;
pub mod suspend;

#[derive(Subcommand, Debug)]
pub enum Command {
    Info(info::Args),
    Limits(limits::Args),
    Administrators(administrators::Args),
    Registration(registration::Args),
    Allow(allow::Args),
    Disallow(disallow::Args),
    Registrants(registrants::Args),
    Suspend(suspend::Args),
    Resume(resume::Args),
    Evict(evict::Args),
}

pub fn exec(context: &mut Context, command: &Command) -> Result<Output, CliError> {
    match command {
        Command::Info(args) => info::exec(context, args),
        Command::Limits(args) => limits::exec(context, args),
        Command::Administrators(args) => administrators::exec(context, args),
        Command::Registration(args) => registration::exec(context, args),
        Command::Allow(args) => allow::exec(context, args),
        Command::Disallow(args) => disallow::exec(context, args),
        Command::Registrants(args) => registrants::exec(context, args),
        Command::Suspend(args) => suspend::exec(context, args),
        Command::Resume(args) => resume::exec(context, args),
        Command::Evict(args) => evict::exec(context, args),
    }
}
