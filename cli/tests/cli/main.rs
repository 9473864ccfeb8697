//! The CLI's integration tests: every command runs on embedded ICs in temporary directories,
//! in process through `vault_cli::run` and, where exit codes, stdout or interruptions matter,
//! as the `vault` binary.

mod access;
mod admin;
mod commands;
mod embedded;
mod files;
mod support;
mod transfer;

#[global_allocator]
static ALLOCATOR: support::CountingAllocator = support::CountingAllocator;
