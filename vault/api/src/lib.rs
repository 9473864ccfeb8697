//! The types canister-vault speaks, shared by the vault canister, the client library apps
//! compile in, the CLI and the tests.
//!
//! - [`protocol`]: the endpoints the client library adds to an app, which only its vault may
//!   call (dump a point-in-time image in chunks; stage a restore in chunks and commit it).
//! - [`service`]: the vault's own endpoints (register, schedule, snapshot, list, restore, ...).
//! - [`client`]: a typed client of the service over any transport (the CLI's, the tests').
//! - [`manifest`]: how an image is cut into chunks and how chunks and a snapshot are hashed (SHA-256 or BLAKE3).
//! - [`native`]: the image of a native canister snapshot: its parts, each in whole chunks, and its metadata.
//! - [`layout`]: the migration steps from a stored layout version to a build's.

pub mod client;
pub mod codec;
pub mod decode;
pub mod layout;
pub mod manifest;
pub mod native;
pub mod protocol;
pub mod service;

pub use manifest::{ContentHash, Sha256, chunk_count, hex, manifest_hash};
