//! The endpoints `vault_endpoints!` adds to an app match `backup.did`.

use std::path::Path;

vault_client::vault_endpoints!();
candid::export_service!();

#[test]
fn backup_did_matches_the_endpoints() {
    let did = Path::new(env!("CARGO_MANIFEST_DIR")).join("backup.did");
    ic_harness::interface::assert_service_matches(&__export_service(), &did);
}
