//! What commands print: each report is one serde value for `--json` and one text for people.
//! Principals are text, hashes hex, times RFC 3339 (UTC) and sizes bytes.

use std::fmt;

use candid::Principal;
use serde::Serialize;
use vault_api::ContentHash;
use vault_api::protocol::StateKind;
use vault_api::service::{AppInfo, JobInfo, JobKind, JobPhase, Retention, SnapshotInfo, Trigger};
use vault_ops::file::Header;

/// `bytes` for people: `12.5 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// Nanoseconds since the Unix epoch as RFC 3339 in UTC, to the second.
pub fn time(nanos: u64) -> String {
    let secs = nanos / 1_000_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Principals for a sentence: `a, b, c`.
pub fn principals(principals: &[Principal]) -> String {
    principals.iter().map(Principal::to_text).collect::<Vec<_>>().join(", ")
}

/// Rows under a header, each column as wide as its widest cell, two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells.zip(&widths).map(|(cell, &width)| format!("{cell:<width$}")).collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut lines = vec![line(&mut header.iter().copied())];
    lines.extend(rows.iter().map(|row| line(&mut row.iter().map(String::as_str))));
    lines.join("\n")
}

pub fn kind(kind: StateKind) -> &'static str {
    match kind {
        StateKind::Serde => "serde",
        StateKind::StableMemory => "stable-memory",
        StateKind::Native => "native",
    }
}

fn content_hash(hash: ContentHash) -> &'static str {
    match hash {
        ContentHash::Sha256 => "sha256",
        ContentHash::Blake3 => "blake3",
    }
}

fn trigger(trigger: Trigger) -> &'static str {
    match trigger {
        Trigger::Scheduled => "scheduled",
        Trigger::Manual => "manual",
        Trigger::Import => "import",
    }
}

fn phase(phase: JobPhase) -> &'static str {
    match phase {
        JobPhase::Starting => "starting",
        JobPhase::Transferring => "transferring",
        JobPhase::Finishing => "finishing",
        JobPhase::Succeeded => "succeeded",
        JobPhase::Failed => "failed",
    }
}

fn interval(seconds: u64) -> String {
    match seconds {
        0 => "on request only".into(),
        s if s % 86_400 == 0 => format!("every {}d", s / 86_400),
        s if s % 3600 == 0 => format!("every {}h", s / 3600),
        s if s % 60 == 0 => format!("every {}m", s / 60),
        s => format!("every {s}s"),
    }
}

#[derive(Serialize, Debug, Clone)]
pub struct AppReport {
    pub app: String,
    pub state_kind: &'static str,
    pub interval_seconds: u64,
    pub retention: Retention,
    pub snapshots: u32,
    pub next_snapshot_at: Option<String>,
    pub running_job: Option<u64>,
    pub controllers: Vec<String>,
    pub registered_by: String,
    pub registered_at: String,
}

impl From<AppInfo> for AppReport {
    fn from(a: AppInfo) -> Self {
        AppReport {
            app: a.app.to_text(),
            state_kind: kind(a.state_kind),
            interval_seconds: a.schedule.interval_seconds,
            retention: a.retention,
            snapshots: a.snapshots,
            next_snapshot_at: a.next_snapshot_at_nanos.map(time),
            running_job: a.running_job,
            controllers: a.controllers.iter().map(|c| c.to_text()).collect(),
            registered_by: a.registered_by.to_text(),
            registered_at: time(a.registered_at_nanos),
        }
    }
}

impl fmt::Display for AppReport {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let r = &self.retention;
        write!(
            f,
            "{}  {} state, {}, keeping the last {}, {} daily, {} weekly; {} snapshots",
            self.app,
            self.state_kind,
            interval(self.interval_seconds),
            r.keep_last,
            r.keep_daily,
            r.keep_weekly,
            self.snapshots
        )?;
        if let Some(next) = &self.next_snapshot_at {
            write!(f, "; next at {next}")?;
        }
        if let Some(job) = self.running_job {
            write!(f, "; job {job} running")?;
        }
        Ok(())
    }
}

#[derive(Serialize, Debug, Clone)]
pub struct SnapshotReport {
    pub app: String,
    pub id: u64,
    pub size: u64,
    pub chunks: u32,
    pub chunk_size: u64,
    /// The manifest hash, in `content_hash`.
    pub sha256: String,
    pub content_hash: &'static str,
    pub module_hash: Option<String>,
    pub state_kind: &'static str,
    pub trigger: &'static str,
    pub taken_at: String,
    pub duration_ms: u64,
    pub transfer_cycles: u128,
    pub state_layout: Option<u32>,
}

impl From<SnapshotInfo> for SnapshotReport {
    fn from(s: SnapshotInfo) -> Self {
        SnapshotReport {
            app: s.app.to_text(),
            id: s.id,
            size: s.size,
            chunks: s.chunks,
            chunk_size: s.chunk_size,
            sha256: s.sha256.to_hex(),
            content_hash: content_hash(s.content_hash()),
            module_hash: s.module_hash.map(|h| h.to_hex()),
            state_kind: kind(s.state_kind),
            trigger: trigger(s.trigger),
            taken_at: time(s.taken_at_nanos),
            duration_ms: s.duration_nanos / 1_000_000,
            transfer_cycles: s.transfer_cycles,
            state_layout: s.state_layout,
        }
    }
}

impl fmt::Display for SnapshotReport {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "#{:<4} {}  {:>10} in {:>4} chunks  {:<9}  {} {}…  {:.3} TC",
            self.id,
            self.taken_at,
            size(self.size),
            self.chunks,
            self.trigger,
            self.content_hash,
            &self.sha256[..16],
            self.transfer_cycles as f64 / 1e12
        )?;
        if let Some(layout) = self.state_layout {
            write!(f, "  layout {layout}")?;
        }
        Ok(())
    }
}

#[derive(Serialize, Debug, Clone)]
pub struct JobReport {
    pub id: u64,
    pub app: String,
    pub kind: &'static str,
    /// For a restore: the app whose snapshot is restored.
    pub source: Option<String>,
    pub phase: &'static str,
    pub snapshot_id: Option<u64>,
    pub chunks_done: u32,
    pub chunks_total: u32,
    pub bytes_total: u64,
    pub retries: u32,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: u64,
    pub error: Option<String>,
    pub notes: Vec<String>,
}

impl From<JobInfo> for JobReport {
    fn from(j: JobInfo) -> Self {
        let (kind, source) = match j.kind {
            JobKind::Snapshot { .. } => ("snapshot", None),
            JobKind::Restore { source, .. } => ("restore", Some(source.to_text())),
        };
        JobReport {
            id: j.id,
            app: j.app.to_text(),
            kind,
            source,
            phase: phase(j.phase),
            snapshot_id: j.snapshot_id,
            chunks_done: j.chunks_done,
            chunks_total: j.chunks_total,
            bytes_total: j.bytes_total,
            retries: j.retries,
            started_at: time(j.started_at_nanos),
            finished_at: j.finished_at_nanos.map(time),
            duration_ms: j.finished_at_nanos.unwrap_or(j.updated_at_nanos).saturating_sub(j.started_at_nanos) / 1_000_000,
            error: j.error.map(|e| e.to_string()),
            notes: j.notes,
        }
    }
}

impl fmt::Display for JobReport {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "job {} {} of {}: {}", self.id, self.kind, self.app, self.phase)?;
        if let Some(id) = self.snapshot_id {
            write!(f, ", snapshot #{id}")?;
        }
        if let Some(source) = self.source.as_ref().filter(|s| **s != self.app) {
            write!(f, " of {source}")?;
        }
        write!(f, ", {}/{} chunks, {}", self.chunks_done, self.chunks_total, size(self.bytes_total))?;
        if self.retries > 0 {
            write!(f, ", {} retries", self.retries)?;
        }
        write!(f, ", started {}", self.started_at)?;
        if self.finished_at.is_some() {
            write!(f, ", took {:.1} s", self.duration_ms as f64 / 1000.0)?;
        }
        if let Some(error) = &self.error {
            write!(f, "\n  error: {error}")?;
        }
        for note in &self.notes {
            write!(f, "\n  note: {note}")?;
        }
        Ok(())
    }
}

/// A snapshot file's header.
#[derive(Serialize, Debug, Clone)]
pub struct FileReport {
    pub path: String,
    pub app: String,
    pub snapshot_id: u64,
    pub size: u64,
    pub chunks: u32,
    /// The manifest hash, in `content_hash`.
    pub sha256: String,
    pub content_hash: &'static str,
    pub state_kind: &'static str,
    pub taken_at: String,
    pub exported_at: String,
}

impl FileReport {
    pub fn new(path: &std::path::Path, h: &Header) -> Self {
        FileReport {
            path: path.display().to_string(),
            app: h.app.to_text(),
            snapshot_id: h.snapshot_id,
            size: h.size,
            chunks: h.chunks,
            sha256: h.sha256.to_hex(),
            content_hash: content_hash(h.content_hash),
            state_kind: kind(h.state_kind),
            taken_at: time(h.taken_at_nanos),
            exported_at: time(h.exported_at_nanos),
        }
    }
}

impl fmt::Display for FileReport {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{}: snapshot #{} of {}, {} {} in {} chunks, taken {}, {} {}",
            self.path,
            self.snapshot_id,
            self.app,
            size(self.size),
            self.state_kind,
            self.chunks,
            self.taken_at,
            self.content_hash,
            self.sha256
        )
    }
}

/// A list of reports, one per line, or a note when empty.
#[derive(Serialize, Debug, Clone)]
#[serde(transparent)]
pub struct Listing<T> {
    pub items: Vec<T>,
    #[serde(skip)]
    pub empty: &'static str,
}

impl<T: fmt::Display> fmt::Display for Listing<T> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.items.is_empty() {
            return write!(f, "{}", self.empty);
        }
        let lines: Vec<String> = self.items.iter().map(ToString::to_string).collect();
        write!(f, "{}", lines.join("\n"))
    }
}

/// A sentence, for commands with nothing else to report.
#[derive(Serialize, Debug, Clone)]
pub struct Done {
    pub done: String,
}

impl fmt::Display for Done {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times_read_well() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(3 << 20), "3.0 MiB");
        assert_eq!(size(1536 << 20), "1.5 GiB");
        assert_eq!(time(0), "1970-01-01T00:00:00Z");
        // The PocketIC genesis time, 2021-05-06T19:17:10Z.
        assert_eq!(time(1_620_328_630_000_000_000), "2021-05-06T19:17:10Z");
        assert_eq!(time(951_782_400_000_000_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn tables_align_their_columns() {
        let rows = vec![vec!["abc".to_string(), "1".to_string(), "-".to_string()], vec!["d".to_string(), "2345".to_string(), "last".to_string()]];
        assert_eq!(table(&["NAME", "N", "NOTE"], &rows), "NAME  N     NOTE\nabc   1     -\nd     2345  last");
        assert_eq!(table(&["NAME", "NOTE"], &[]), "NAME  NOTE");
    }
}
