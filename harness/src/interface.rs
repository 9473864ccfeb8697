//! Checks a canister's exported candid interface against its checked-in `.did` file.

use std::path::Path;

use candid_parser::utils::{CandidSource, service_equal};

/// Panics unless `exported` (the text `candid::export_service!` produces) and the service in
/// `did` are equal. With `UPDATE_CANDID` set, writes `exported` to `did` first: review the diff.
pub fn assert_service_matches(exported: &str, did: &Path) {
    if std::env::var_os("UPDATE_CANDID").is_some() {
        std::fs::write(did, exported).unwrap_or_else(|e| panic!("writing {}: {e}", did.display()));
    }
    let checked_in = std::fs::read_to_string(did).unwrap_or_else(|e| panic!("reading {}: {e}", did.display()));
    if let Err(e) = service_equal(CandidSource::Text(exported), CandidSource::Text(&checked_in)) {
        panic!(
            "{} differs from the exported interface: {e}\n(run the test with UPDATE_CANDID=1 to rewrite it)\nexported:\n{exported}",
            did.display()
        );
    }
}
