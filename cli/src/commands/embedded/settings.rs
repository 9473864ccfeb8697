//! `vault embedded settings`: a canister's settings on the embedded IC, shown (`canister_status`)
//! or changed (`update_settings`).

use std::collections::BTreeMap;

use candid::{Nat, Principal};
use clap::ValueEnum;
use ic_management_canister_types as mgmt;
use serde::Serialize;
use vault_ops::embedded::{EmbeddedTransport, SettingsChange};

use crate::options::{parse_interval, parse_principal};
use crate::output::{CliError, Output};
use crate::report::{principals, size};

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Visibility {
    /// The canister's controllers only.
    Controllers,
    /// Anyone.
    Public,
}

/// Show a canister's settings, or change them as one of its controllers: every option given
/// goes into one `update_settings`, which sets all of them or none; the settings are then shown.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_parser = parse_principal)]
    pub canister: Principal,
    /// Make this principal a controller too (repeatable).
    #[arg(long = "add-controller", value_name = "PRINCIPAL", value_parser = parse_principal)]
    pub add_controllers: Vec<Principal>,
    /// Make this principal no longer a controller (repeatable).
    #[arg(long = "remove-controller", value_name = "PRINCIPAL", value_parser = parse_principal)]
    pub remove_controllers: Vec<Principal>,
    /// Set an environment variable the canister reads with `ic0.env_var_*` (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_variable)]
    pub set_environment: Vec<(String, String)>,
    /// Remove an environment variable (repeatable).
    #[arg(long = "remove-env", value_name = "NAME")]
    pub remove_environment: Vec<String>,
    /// The most bytes of Wasm memory (heap) the canister may use; 0 for no limit.
    #[arg(long, value_name = "BYTES")]
    pub wasm_memory_limit: Option<u64>,
    /// `canister_on_low_wasm_memory` runs when fewer bytes than this are left below the limit.
    #[arg(long, value_name = "BYTES")]
    pub wasm_memory_threshold: Option<u64>,
    /// Who may read the canister's logs.
    #[arg(long, value_enum)]
    pub log_visibility: Option<Visibility>,
    /// Let these principals read the logs, besides the controllers (repeatable).
    #[arg(long = "log-viewer", value_name = "PRINCIPAL", value_parser = parse_principal, conflicts_with = "log_visibility")]
    pub log_viewers: Vec<Principal>,
    /// Seconds of cycles the canister keeps for its storage before it is frozen (`90`, `30d`...).
    #[arg(long, value_name = "SECONDS", value_parser = parse_interval)]
    pub freezing_threshold: Option<u64>,
    /// The most cycles the canister may have reserved for its storage.
    #[arg(long, value_name = "CYCLES")]
    pub reserved_cycles_limit: Option<u64>,
}

impl Args {
    fn change(&self) -> SettingsChange {
        let log_visibility = match (self.log_visibility, self.log_viewers.is_empty()) {
            (Some(Visibility::Controllers), _) => Some(mgmt::LogVisibility::Controllers),
            (Some(Visibility::Public), _) => Some(mgmt::LogVisibility::Public),
            (None, false) => Some(mgmt::LogVisibility::AllowedViewers(self.log_viewers.clone())),
            (None, true) => None,
        };
        SettingsChange {
            add_controllers: self.add_controllers.clone(),
            remove_controllers: self.remove_controllers.clone(),
            set_environment: self.set_environment.clone(),
            remove_environment: self.remove_environment.clone(),
            wasm_memory_limit: self.wasm_memory_limit,
            wasm_memory_threshold: self.wasm_memory_threshold,
            log_visibility,
            freezing_threshold: self.freezing_threshold,
            reserved_cycles_limit: self.reserved_cycles_limit.map(u128::from),
        }
    }
}

/// `NAME=VALUE`.
fn parse_variable(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("`{text}` is not NAME=VALUE")),
    }
}

/// A canister's settings and state, as `canister_status` reports them.
#[derive(Serialize)]
pub struct SettingsReport {
    pub canister: String,
    /// `running`, `stopping` or `stopped`.
    pub status: &'static str,
    /// The SHA-256 of its module in hex; none for an empty canister.
    pub module_hash: Option<String>,
    pub controllers: Vec<String>,
    pub environment_variables: BTreeMap<String, String>,
    /// Bytes; 0 for no limit.
    pub wasm_memory_limit: u64,
    pub wasm_memory_threshold: u64,
    /// `"controllers"`, `"public"` or `{"allowed_viewers": [...]}`.
    pub log_visibility: mgmt::LogVisibility,
    /// Seconds.
    pub freezing_threshold: u64,
    pub reserved_cycles_limit: u128,
    pub compute_allocation: u64,
    pub memory_allocation: u64,
    pub cycles: u128,
    pub memory_bytes: u64,
}

fn number(n: &Nat) -> u64 {
    u64::try_from(n.0.clone()).unwrap_or(u64::MAX)
}

fn cycles(n: &Nat) -> u128 {
    u128::try_from(n.0.clone()).unwrap_or(u128::MAX)
}

impl SettingsReport {
    fn new(canister: Principal, status: mgmt::CanisterStatusResult) -> Self {
        let settings = status.settings;
        SettingsReport {
            canister: canister.to_text(),
            status: match status.status {
                mgmt::CanisterStatusType::Running => "running",
                mgmt::CanisterStatusType::Stopping => "stopping",
                mgmt::CanisterStatusType::Stopped => "stopped",
            },
            module_hash: status.module_hash.as_deref().map(vault_api::hex),
            controllers: settings.controllers.iter().map(Principal::to_text).collect(),
            environment_variables: settings.environment_variables.into_iter().map(|v| (v.name, v.value)).collect(),
            wasm_memory_limit: number(&settings.wasm_memory_limit),
            wasm_memory_threshold: number(&settings.wasm_memory_threshold),
            log_visibility: settings.log_visibility,
            freezing_threshold: number(&settings.freezing_threshold),
            reserved_cycles_limit: cycles(&settings.reserved_cycles_limit),
            compute_allocation: number(&settings.compute_allocation),
            memory_allocation: number(&settings.memory_allocation),
            cycles: cycles(&status.cycles),
            memory_bytes: number(&status.memory_size),
        }
    }
}

impl std::fmt::Display for SettingsReport {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let module = self.module_hash.as_ref().map_or_else(|| "no module".to_string(), |hash| format!("module 0x{hash}"));
        write!(f, "{}: {}, {module}", self.canister, self.status)?;
        let variables: Vec<String> = self.environment_variables.iter().map(|(name, value)| format!("{name}={value}")).collect();
        let log_visibility = match &self.log_visibility {
            mgmt::LogVisibility::Controllers => "controllers".to_string(),
            mgmt::LogVisibility::Public => "public".to_string(),
            mgmt::LogVisibility::AllowedViewers(viewers) => format!("controllers and {}", principals(viewers)),
        };
        let limit = |bytes: u64| if bytes == 0 { "none".to_string() } else { size(bytes) };
        let rows = [
            ("controllers", self.controllers.join(", ")),
            ("environment variables", if variables.is_empty() { "none".into() } else { variables.join(", ") }),
            ("wasm memory limit", limit(self.wasm_memory_limit)),
            ("wasm memory threshold", size(self.wasm_memory_threshold)),
            ("log visibility", log_visibility),
            ("freezing threshold", format!("{} s", self.freezing_threshold)),
            ("reserved cycles limit", format!("{:.3} TC", self.reserved_cycles_limit as f64 / 1e12)),
            ("compute allocation", format!("{} %", self.compute_allocation)),
            ("memory allocation", limit(self.memory_allocation)),
            ("cycles", format!("{:.3} TC", self.cycles as f64 / 1e12)),
            ("memory", size(self.memory_bytes)),
        ];
        for (label, value) in rows {
            write!(f, "\n  {label:<22} {value}")?;
        }
        Ok(())
    }
}

pub fn exec(transport: &mut EmbeddedTransport, args: &Args) -> Result<Output, CliError> {
    let change = args.change();
    let status =
        if change.is_empty() { transport.canister_status(args.canister)? } else { transport.update_settings(args.canister, &change)? };
    Ok(Output::of(&SettingsReport::new(args.canister, status)))
}
