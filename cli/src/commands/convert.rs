//! `vault convert`: a native snapshot's file to icp-cli's snapshot directory and back, without
//! any network.

use std::path::PathBuf;

use candid::Principal;

use crate::options::parse_principal;
use crate::output::{CliError, Output};
use crate::report::FileReport;

/// Move a canister snapshot between the vault and icp-cli: write the native snapshot in FILE
/// (from `vault export`) into a directory `icp canister snapshot upload -i DIR` takes, or the
/// directory `icp canister snapshot download -o DIR` wrote into a file `vault import` takes.
#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("direction").required(true))]
pub struct Args {
    /// A snapshot file or, with `--to-file`, a snapshot directory.
    pub from: PathBuf,
    /// Write the file's snapshot into this directory (which must hold no snapshot).
    #[arg(long, group = "direction", value_name = "DIR")]
    pub to_dir: Option<PathBuf>,
    /// Write the directory's snapshot into this file, as a snapshot of `--app`.
    #[arg(long, group = "direction", value_name = "FILE", requires = "app")]
    pub to_file: Option<PathBuf>,
    /// The canister the snapshot is of (a file names its app).
    #[arg(long, value_parser = parse_principal)]
    pub app: Option<Principal>,
    /// Replace an existing file.
    #[arg(long)]
    pub force: bool,
}

pub fn exec(args: &Args) -> Result<Output, CliError> {
    if let Some(dir) = &args.to_dir {
        let metadata = vault_ops::convert::file_to_dir(&args.from, dir)?;
        let report = serde_json::json!({
            "dir": dir.display().to_string(),
            "wasm_module_size": metadata.wasm_module_size,
            "wasm_memory_size": metadata.wasm_memory_size,
            "stable_memory_size": metadata.stable_memory_size,
        });
        let text = format!(
            "wrote {} (module {} bytes, heap {} bytes, stable memory {} bytes): icp canister snapshot upload -i {}",
            dir.display(),
            metadata.wasm_module_size,
            metadata.wasm_memory_size,
            metadata.stable_memory_size,
            dir.display()
        );
        return Ok(Output { text, json: report });
    }
    let (file, app) = (args.to_file.as_ref().expect("clap requires a direction"), args.app.expect("clap requires --app"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let manifest = vault_ops::convert::dir_to_file(&args.from, app, file, args.force, now)?;
    let report = FileReport::new(file, &manifest.header);
    Ok(Output { text: format!("wrote {report}: vault import {} --app {app}", file.display()), ..Output::of(&report) })
}
