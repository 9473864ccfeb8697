//! `vault verify FILE`: check a snapshot file without any network.

use std::path::PathBuf;

use crate::options::OutputOpt;
use crate::progress::Bars;
use crate::report::FileReport;
use crate::output::{CliError, Output};

/// Check a snapshot file: its header checksum, that its chunk table produces the snapshot's
/// manifest hash, and every chunk against the table, in the file's content hash (SHA-256 or BLAKE3).
#[derive(clap::Args, Debug)]
pub struct Args {
    pub file: PathBuf,
}

pub fn exec(args: &Args, output: &OutputOpt) -> Result<Output, CliError> {
    let manifest = vault_ops::import::verify(&args.file, &mut Bars::new(output.json))?;
    let report = FileReport::new(&args.file, &manifest.header);
    Ok(Output { text: format!("ok: {report}"), ..Output::of(&report) })
}
