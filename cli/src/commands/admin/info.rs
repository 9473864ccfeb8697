//! `vault admin info`: who administers the vault and who may register apps.

use serde::Serialize;

use super::registration::Mode;
use crate::context::Context;
use crate::output::{CliError, Output};

/// Show the administrators the vault's controllers named, the registration mode and the
/// allow-list.
#[derive(clap::Args, Debug)]
pub struct Args {}

#[derive(Serialize)]
pub struct AdminReport {
    /// Administrators besides the vault's controllers.
    pub administrators: Vec<String>,
    pub registration: Mode,
    pub allowed: Vec<String>,
}

impl std::fmt::Display for AdminReport {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "registration: {} ({})", self.registration.name(), self.registration.who())?;
        write!(f, "\nadministrators: the vault's controllers{}", if self.administrators.is_empty() { "" } else { " and" })?;
        for administrator in &self.administrators {
            write!(f, "\n  {administrator}")?;
        }
        write!(f, "\nallow-list:{}", if self.allowed.is_empty() { " empty" } else { "" })?;
        for allowed in &self.allowed {
            write!(f, "\n  {allowed}")?;
        }
        Ok(())
    }
}

pub fn exec(context: &mut Context, _: &Args) -> Result<Output, CliError> {
    let info = context.vault()?.admin_info()?;
    Ok(Output::of(&AdminReport {
        administrators: info.administrators.iter().map(|p| p.to_text()).collect(),
        registration: info.registration.into(),
        allowed: info.allowed.iter().map(|p| p.to_text()).collect(),
    }))
}
