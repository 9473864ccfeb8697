//! Release 0.1.0's modules (`tests/fixtures/release-0.1.0`), for the tests that run the previous
//! release beside this build: its vault, and its apps, whose client library answers each chunk
//! it dumps with its SHA-256 and verifies SHA-256 only.

use candid::{Encode, Principal};

use crate::{AppKind, Env, keep, manual, owner};

/// Release 0.1.0's module `name` (`canister_vault`, `notes`, `ledger`).
pub fn release_0_1_0(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/release-0.1.0/{name}.wasm.gz", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The previous release's module of `kind`.
pub fn previous_app(kind: AppKind) -> Vec<u8> {
    release_0_1_0(match kind {
        AppKind::Notes => "notes",
        AppKind::Ledger => "ledger",
    })
}

/// An app of `kind` on the previous release's module, controlled by [`owner`], with `env`'s vault
/// set and registered with it (manual snapshots, the 10 newest kept).
pub fn registered_previous_app(env: &Env, kind: AppKind) -> Principal {
    let app = env.ic.create_canister_with_settings(Some(owner()), None);
    env.ic.install_canister(app, previous_app(kind), Encode!(&Some(env.vault)).unwrap(), Some(owner()));
    env.vault().register(app, manual(), keep(10)).expect("register");
    app
}
