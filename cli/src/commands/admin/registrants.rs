//! `vault admin registrants`: every principal that registered apps or may, and what its apps
//! hold.

use serde::Serialize;
use vault_api::service::{AppUsage, RegistrantInfo, Suspension};

use crate::context::Context;
use crate::output::{CliError, Output};
use crate::report::{size, table, time};

/// List the registrants and the principals on the allow-list, with each app they registered:
/// its snapshots, their bytes, its running job and whether it is suspended.
#[derive(clap::Args, Debug)]
pub struct Args {}

#[derive(Serialize)]
pub struct RegistrantReport {
    pub registrant: String,
    /// On the allow-list.
    pub allowed: bool,
    pub apps: Vec<AppUsageReport>,
}

#[derive(Serialize)]
pub struct AppUsageReport {
    pub app: String,
    pub snapshots: u32,
    /// The sizes of its completed snapshots, added up (chunks they share are stored once).
    pub snapshot_bytes: u64,
    pub running_job: Option<u64>,
    pub suspension: Option<SuspensionReport>,
}

#[derive(Serialize)]
pub struct SuspensionReport {
    pub by: String,
    pub at: String,
    pub reason: String,
}

impl From<RegistrantInfo> for RegistrantReport {
    fn from(r: RegistrantInfo) -> Self {
        RegistrantReport { registrant: r.registrant.to_text(), allowed: r.allowed, apps: r.apps.into_iter().map(AppUsageReport::from).collect() }
    }
}

impl From<AppUsage> for AppUsageReport {
    fn from(a: AppUsage) -> Self {
        AppUsageReport {
            app: a.app.to_text(),
            snapshots: a.snapshots,
            snapshot_bytes: a.snapshot_bytes,
            running_job: a.running_job,
            suspension: a.suspension.map(SuspensionReport::from),
        }
    }
}

impl AppUsageReport {
    /// Its cells in the table, from APP on.
    fn cells(&self) -> [String; 5] {
        let job = self.running_job.map_or_else(|| "-".to_string(), |job| job.to_string());
        // The reason is an administrator's text: escaped, so that it stays on its row.
        let suspended = self.suspension.as_ref().map_or_else(|| "-".to_string(), |s| format!("{} by {}: {:?}", s.at, s.by, s.reason));
        [self.app.clone(), self.snapshots.to_string(), size(self.snapshot_bytes), job, suspended]
    }
}

impl From<Suspension> for SuspensionReport {
    fn from(s: Suspension) -> Self {
        SuspensionReport { by: s.by.to_text(), at: time(s.at_nanos), reason: s.reason }
    }
}

/// The registrants, as a table with a row for each app (and one for a registrant without any).
#[derive(Serialize)]
#[serde(transparent)]
pub struct Registrants(pub Vec<RegistrantReport>);

const HEADER: [&str; 7] = ["REGISTRANT", "ALLOWED", "APP", "SNAPSHOTS", "BYTES", "RUNNING JOB", "SUSPENDED"];

impl std::fmt::Display for Registrants {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        if self.0.is_empty() {
            return write!(f, "no registrants: nobody registered an app or is on the allow-list");
        }
        let mut rows = Vec::new();
        for registrant in &self.0 {
            let allowed = if registrant.allowed { "yes" } else { "no" };
            let apps = match registrant.apps.as_slice() {
                [] => vec![["-"; 5].map(String::from)],
                apps => apps.iter().map(AppUsageReport::cells).collect(),
            };
            for cells in apps {
                rows.push([registrant.registrant.clone(), allowed.to_string()].into_iter().chain(cells).collect());
            }
        }
        write!(f, "{}", table(&HEADER, &rows))
    }
}

pub fn exec(context: &mut Context, _: &Args) -> Result<Output, CliError> {
    let registrants = context.vault()?.list_registrants()?;
    Ok(Output::of(&Registrants(registrants.into_iter().map(RegistrantReport::from).collect())))
}
