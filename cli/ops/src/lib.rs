//! What the canister-vault CLI does, below its commands: the transports that reach a vault
//! (ic-agent for real networks, the embedded IC kept in a directory), the vault's typed
//! service, the operations that move snapshots to and from files, the file format, and a
//! canister's native snapshots in icp-cli's directory layout.

pub mod agent;
pub mod canister_snapshot;
pub mod convert;
pub mod embedded;
pub mod error;
pub mod export;
pub mod file;
pub mod guarded_upgrade;
pub mod identity;
pub mod import;
pub mod progress;
pub mod transport;
pub mod upgrade_restore;
pub mod vault;

pub use error::OpsError;
pub use transport::{CallError, Transport};
pub use vault::Vault;
