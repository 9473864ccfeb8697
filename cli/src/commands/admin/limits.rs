//! `vault admin limits [--FIELD VALUE ...]`: the cycles reserve and the quotas, shown or changed.

use serde::Serialize;
use vault_api::service::Limits;

use crate::context::Context;
use crate::output::{CliError, Output};

/// Show the vault's cycles reserve and its quotas; with options, change those named (the others
/// stay as they are).
#[derive(clap::Args, Debug, Default, PartialEq, Eq)]
pub struct Args {
    /// Days of storing what the vault holds that its cycles must always pay for (at most 3,650).
    #[arg(long)]
    pub reserve_days: Option<u32>,
    /// Bytes one app's snapshots may hold, each chunk counted once however many share it.
    #[arg(long)]
    pub app_bytes: Option<u64>,
    /// Completed snapshots one app may have.
    #[arg(long)]
    pub app_snapshots: Option<u32>,
    /// Imports one app may have open at once.
    #[arg(long)]
    pub app_imports: Option<u32>,
    /// Seconds after which an unfinished import expires and releases its chunks (at least 60).
    #[arg(long)]
    pub import_ttl_seconds: Option<u64>,
    /// Cycles the vault may spend on one app's jobs and imports in a UTC day.
    #[arg(long)]
    pub app_cycles_per_day: Option<u64>,
    /// Apps one principal may have registered at once (administrators are not held to it).
    #[arg(long)]
    pub registrant_apps: Option<u32>,
    /// Bytes the apps one principal registered may hold together.
    #[arg(long)]
    pub registrant_bytes: Option<u64>,
}

impl Args {
    fn changes(&self) -> bool {
        *self != Args::default()
    }

    /// `limits` with the values given here in place of theirs.
    fn applied_to(&self, limits: Limits) -> Limits {
        Limits {
            reserve_days: self.reserve_days.unwrap_or(limits.reserve_days),
            app_bytes: self.app_bytes.unwrap_or(limits.app_bytes),
            app_snapshots: self.app_snapshots.unwrap_or(limits.app_snapshots),
            app_imports: self.app_imports.unwrap_or(limits.app_imports),
            import_ttl_seconds: self.import_ttl_seconds.unwrap_or(limits.import_ttl_seconds),
            app_cycles_per_day: self.app_cycles_per_day.unwrap_or(limits.app_cycles_per_day),
            registrant_apps: self.registrant_apps.unwrap_or(limits.registrant_apps),
            registrant_bytes: self.registrant_bytes.unwrap_or(limits.registrant_bytes),
        }
    }
}

#[derive(Serialize)]
pub struct LimitsReport {
    #[serde(flatten)]
    pub limits: Limits,
    /// Cycles kept back now: `reserve_days` of storing the vault's stable memory.
    pub reserved_cycles: u128,
    pub stable_memory_bytes: u64,
}

impl std::fmt::Display for LimitsReport {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let l = &self.limits;
        writeln!(f, "reserve: {} days of storage, {} cycles now for {} bytes of stable memory", l.reserve_days, self.reserved_cycles, self.stable_memory_bytes)?;
        writeln!(f, "per app: {} bytes, {} snapshots, {} imports open, {} cycles a day", l.app_bytes, l.app_snapshots, l.app_imports, l.app_cycles_per_day)?;
        writeln!(f, "per registrant: {} apps holding {} bytes", l.registrant_apps, l.registrant_bytes)?;
        write!(f, "imports expire after {} s", l.import_ttl_seconds)
    }
}

pub fn exec(context: &mut Context, args: &Args) -> Result<Output, CliError> {
    let mut vault = context.vault()?;
    if args.changes() {
        let limits = args.applied_to(vault.admin_info()?.limits);
        vault.set_limits(limits)?;
    }
    let info = vault.admin_info()?;
    Ok(Output::of(&LimitsReport { limits: info.limits, reserved_cycles: info.reserved_cycles, stable_memory_bytes: info.stable_memory_bytes }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_values_given_change() {
        let limits = Limits::default();
        assert!(!Args::default().changes());
        assert_eq!(Args::default().applied_to(limits), limits);
        let args = Args { app_snapshots: Some(7), import_ttl_seconds: Some(60), registrant_apps: Some(2), ..Args::default() };
        assert!(args.changes());
        assert_eq!(args.applied_to(limits), Limits { app_snapshots: 7, import_ttl_seconds: 60, registrant_apps: 2, ..limits });
    }
}
