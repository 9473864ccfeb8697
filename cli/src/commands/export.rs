//! `vault export APP SNAPSHOT -o FILE [--force]`: download a snapshot into a file.

use std::path::PathBuf;
use std::time::Instant;

use candid::Principal;
use serde::Serialize;

use crate::context::Context;
use crate::options::parse_principal;
use crate::report::{size, FileReport};
use crate::output::{CliError, Output};

/// Download a snapshot into a file with query calls, one chunk at a time, checking every
/// chunk's digest and the snapshot's manifest hash. Run it again after an interruption: it resumes.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_parser = parse_principal)]
    pub app: Principal,
    pub snapshot: u64,
    /// The file to write (`FILE.part` while downloading).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Replace FILE if it exists (without this, an existing FILE is an error).
    #[arg(long)]
    pub force: bool,
}

#[derive(Serialize)]
pub struct ExportReport {
    #[serde(flatten)]
    pub file: FileReport,
    pub resumed_chunks: u32,
    pub downloaded: u64,
    pub seconds: f64,
}

impl std::fmt::Display for ExportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "exported {}\n  downloaded {} in {:.1} s", self.file, size(self.downloaded), self.seconds)?;
        if self.resumed_chunks > 0 {
            write!(f, ", resuming after {} chunks already in {}.part", self.resumed_chunks, self.file.path)?;
        }
        Ok(())
    }
}

pub fn exec(context: &mut Context, args: &Args) -> Result<Output, CliError> {
    let started = Instant::now();
    let (mut vault, progress) = context.vault_with_progress()?;
    let exported = vault_ops::export::export(&mut vault, args.app, args.snapshot, &args.output, args.force, progress)?;
    Ok(Output::of(&ExportReport {
        file: FileReport::new(&exported.path, &exported.manifest.header),
        resumed_chunks: exported.resumed_chunks,
        downloaded: exported.downloaded,
        seconds: started.elapsed().as_secs_f64(),
    }))
}
