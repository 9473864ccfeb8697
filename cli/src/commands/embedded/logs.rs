//! `vault embedded logs`: a canister's log on the embedded IC, by `fetch_canister_logs`.

use candid::Principal;
use ic_harness::LogRecord;
use serde::Serialize;
use vault_ops::embedded::EmbeddedTransport;

use crate::options::parse_principal;
use crate::output::{CliError, Output};
use crate::report::time;

/// Show what a canister printed (`ic0.debug_print`) and its traps, as the IC keeps them: one
/// line per record, `[INDEX. TIME]: TEXT`, as `dfx canister logs` prints them. Its controllers
/// read them, and anyone its `log_visibility` lets (see `vault embedded settings`).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_parser = parse_principal)]
    pub canister: Principal,
}

#[derive(Serialize)]
pub struct Record {
    pub idx: u64,
    pub timestamp_nanos: u64,
    /// RFC 3339 (UTC), to the nanosecond.
    pub timestamp: String,
    /// The record as text, or `(bytes) 0x...` for bytes that are not.
    pub text: String,
}

#[derive(Serialize)]
#[serde(transparent)]
pub struct Logs(pub Vec<Record>);

impl std::fmt::Display for Logs {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let lines: Vec<String> = self.0.iter().map(|r| format!("[{}. {}]: {}", r.idx, r.timestamp, r.text)).collect();
        write!(f, "{}", lines.join("\n"))
    }
}

/// RFC 3339 with the nanoseconds, their trailing zeros left out (as `dfx` shows them).
fn timestamp(nanos: u64) -> String {
    let seconds = time(nanos);
    match nanos % 1_000_000_000 {
        0 => seconds,
        fraction => format!("{}.{}Z", seconds.trim_end_matches('Z'), format!("{fraction:09}").trim_end_matches('0')),
    }
}

/// Text, unless it is not UTF-8 or holds control characters besides tabs and newlines.
fn text(content: &[u8]) -> String {
    match std::str::from_utf8(content) {
        Ok(text) if !text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') => text.to_string(),
        _ => format!("(bytes) 0x{}", vault_api::hex(content)),
    }
}

fn record(r: LogRecord) -> Record {
    Record { idx: r.idx, timestamp_nanos: r.timestamp_nanos, timestamp: timestamp(r.timestamp_nanos), text: text(&r.content) }
}

pub fn exec(transport: &EmbeddedTransport, args: &Args) -> Result<Output, CliError> {
    let records = transport.fetch_canister_logs(args.canister)?;
    Ok(Output::of(&Logs(records.into_iter().map(record).collect())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_as_dfx_shows_them() {
        assert_eq!(timestamp(1_620_328_630_000_000_000), "2021-05-06T19:17:10Z");
        assert_eq!(timestamp(1_620_328_630_203_980_000), "2021-05-06T19:17:10.20398Z");
        assert_eq!(timestamp(1_620_328_630_000_000_001), "2021-05-06T19:17:10.000000001Z");
        assert_eq!(text(b"hello\tworld\n"), "hello\tworld\n");
        assert_eq!(text(&[0xff, 0x00]), "(bytes) 0xff00");
        assert_eq!(text(b"bell\x07"), "(bytes) 0x62656c6c07");
    }
}
