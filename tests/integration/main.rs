//! Integration tests of canister-vault on the embedded IC, running the real vault and example
//! app wasm. One module per area.

mod access;
mod admin;
mod btree;
mod campaign;
mod faults;
mod flows;
mod fuzz;
mod hostile;
mod incremental;
mod native;
mod refusals;
mod restores;
mod schedule;
mod sizes;
mod upgrades;
mod via_upgrade;
