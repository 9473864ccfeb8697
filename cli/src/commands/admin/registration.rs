//! `vault admin registration administrators|allow-list|open`: who may register apps.

use clap::ValueEnum;
use serde::Serialize;
use vault_api::service::Registration;

use crate::context::Context;
use crate::output::{CliError, Output};
use crate::report::Done;

/// Who may register apps.
#[derive(ValueEnum, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Administrators only.
    Administrators,
    /// Administrators and the principals on the allow-list (the vault's default).
    AllowList,
    /// Anyone who controls the app.
    Open,
}

impl Mode {
    /// Its name on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Administrators => "administrators",
            Mode::AllowList => "allow-list",
            Mode::Open => "open",
        }
    }

    /// Who registers apps in this mode.
    pub fn who(self) -> &'static str {
        match self {
            Mode::Administrators => "administrators register apps",
            Mode::AllowList => "administrators and the principals on the allow-list register apps",
            Mode::Open => "anyone registers the apps they control",
        }
    }
}

impl From<Mode> for Registration {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Administrators => Registration::Administrators,
            Mode::AllowList => Registration::AllowList,
            Mode::Open => Registration::Open,
        }
    }
}

impl From<Registration> for Mode {
    fn from(registration: Registration) -> Self {
        match registration {
            Registration::Administrators => Mode::Administrators,
            Registration::AllowList => Mode::AllowList,
            Registration::Open => Mode::Open,
        }
    }
}

/// Set who may register apps with the vault. Administrators always may (apps they control);
/// apps registered before stay registered.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_enum)]
    pub mode: Mode,
}

pub fn exec(context: &mut Context, args: &Args) -> Result<Output, CliError> {
    context.vault()?.set_registration(args.mode.into())?;
    Ok(Output::of(&Done { done: format!("registration is {}: {}", args.mode.name(), args.mode.who()) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_is_named_as_the_command_line_takes_it() {
        for mode in Mode::value_variants() {
            assert_eq!(Mode::from_str(mode.name(), false), Ok(*mode));
            assert_eq!(serde_json::to_value(mode).unwrap(), mode.name());
            assert_eq!(Mode::from(Registration::from(*mode)), *mode);
        }
    }
}
