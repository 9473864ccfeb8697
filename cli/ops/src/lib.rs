//! What the canister-vault CLI does, below its commands: the transports that reach a vault,
//! the operations (export, import, verify, ...) and the snapshot file format.

pub mod file;
