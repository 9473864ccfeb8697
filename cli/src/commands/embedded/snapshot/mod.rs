//! `vault embedded snapshot ...`: a canister's native snapshots on the embedded IC, as
//! `icp canister snapshot` handles them on a network: take, list, restore, delete, and download
//! and upload in icp-cli's directory layout (`vault_ops::canister_snapshot`).

use clap::Subcommand;
use serde::Serialize;
use vault_ops::embedded::EmbeddedTransport;

use crate::output::{CliError, Output};
use crate::report::{size, time};

pub mod create;
pub mod delete;
pub mod download;
pub mod list;
pub mod restore;
pub mod upload;

#[derive(Subcommand, Debug)]
pub enum Command {
    Create(create::Args),
    List(list::Args),
    Restore(restore::Args),
    Delete(delete::Args),
    Download(download::Args),
    Upload(upload::Args),
}

pub fn exec(transport: &mut EmbeddedTransport, command: &Command) -> Result<Output, CliError> {
    match command {
        Command::Create(args) => create::exec(transport, args),
        Command::List(args) => list::exec(transport, args),
        Command::Restore(args) => restore::exec(transport, args),
        Command::Delete(args) => delete::exec(transport, args),
        Command::Download(args) => download::exec(transport, args),
        Command::Upload(args) => upload::exec(transport, args),
    }
}

/// A snapshot id, as icp-cli writes and reads it: hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotId(pub Vec<u8>);

pub fn parse_snapshot_id(text: &str) -> Result<SnapshotId, String> {
    let text = text.trim();
    if text.is_empty() || !text.len().is_multiple_of(2) {
        return Err(format!("`{text}` is not a snapshot id: an even number of hex digits"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|_| format!("`{text}` is not a snapshot id: hex digits only")))
        .collect::<Result<_, _>>()
        .map(SnapshotId)
}

/// A canister and one of its snapshots (or one it may load).
#[derive(clap::Args, Debug)]
pub struct SnapshotArgs {
    #[arg(value_parser = crate::options::parse_principal)]
    pub canister: candid::Principal,
    #[arg(value_parser = parse_snapshot_id)]
    pub snapshot: SnapshotId,
}

/// What a command did to a canister with a snapshot, in words.
#[derive(Serialize)]
pub struct Done {
    pub canister: candid::Principal,
    pub snapshot: String,
    #[serde(skip)]
    pub text: String,
}

impl std::fmt::Display for Done {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}", self.text)
    }
}

/// A snapshot as `list_canister_snapshots` and `take_canister_snapshot` answer it.
#[derive(Serialize)]
pub struct Snapshot {
    pub id: String,
    pub taken_at_nanos: u64,
    pub taken_at: String,
    pub total_size: u64,
}

impl Snapshot {
    pub fn of(s: &ic_management_canister_types::Snapshot) -> Self {
        Snapshot { id: vault_api::hex(&s.id), taken_at_nanos: s.taken_at_timestamp, taken_at: time(s.taken_at_timestamp), total_size: s.total_size }
    }
}

impl std::fmt::Display for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}  {}  {}", self.id, self.taken_at, size(self.total_size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_ids_are_hex() {
        assert_eq!(parse_snapshot_id("00000000000000010a0b"), Ok(SnapshotId(vec![0, 0, 0, 0, 0, 0, 0, 1, 10, 11])));
        assert!(parse_snapshot_id("abc").unwrap_err().contains("even number"));
        assert!(parse_snapshot_id("zz").unwrap_err().contains("hex digits only"));
    }
}
