//! `vault import FILE --app APP`: upload a snapshot file into an app's history.

use std::path::PathBuf;
use std::time::Instant;

use candid::Principal;
use serde::Serialize;

use crate::context::Context;
use crate::options::parse_principal;
use crate::report::{size, SnapshotReport};
use crate::output::{CliError, Output};

/// Upload a snapshot file into the vault as a snapshot of APP, after which it restores like any
/// other. The file is verified in full first; the vault checks every chunk again and completes
/// the snapshot only when all of them match. Run it again after an interruption: it resumes.
#[derive(clap::Args, Debug)]
pub struct Args {
    pub file: PathBuf,
    /// The registered app whose history receives the snapshot (any app you control with the
    /// same kind of state: the file's own app, or another, to clone it).
    #[arg(long, value_parser = parse_principal)]
    pub app: Principal,
}

#[derive(Serialize)]
pub struct ImportReport {
    pub snapshot: SnapshotReport,
    pub uploaded: u64,
    pub seconds: f64,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "imported as snapshot #{} of {} (uploaded {} in {:.1} s)\n{}",
            self.snapshot.id,
            self.snapshot.app,
            size(self.uploaded),
            self.seconds,
            self.snapshot
        )
    }
}

pub fn exec(context: &mut Context, args: &Args) -> Result<Output, CliError> {
    let started = Instant::now();
    let (mut vault, progress) = context.vault_with_progress()?;
    let imported = vault_ops::import::import(&mut vault, &args.file, args.app, progress)?;
    Ok(Output::of(&ImportReport {
        snapshot: imported.snapshot.into(),
        uploaded: imported.uploaded,
        seconds: started.elapsed().as_secs_f64(),
    }))
}
