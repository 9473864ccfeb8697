//! `vault-client`: compiled into an app canister, it gives the app the backup endpoints its
//! canister-vault calls, and refuses them to every other caller.
//!
//! An app backs up one of two kinds of state:
//!
//! - **Stable memory** (ic-stable-structures): build your `MemoryManager` on
//!   [`memory()`] instead of `DefaultMemoryImpl`. The memory is paged (4 KiB pages behind a page
//!   table): a snapshot is the memory's bytes as of the message that opened it, frozen by keeping
//!   that version of the table while the app's writes go to fresh pages; a later snapshot for
//!   the same vault sends only the pages that changed since the last one it stored; a restore is
//!   staged into free pages and put in place by switching the table. Measured on the embedded
//!   IC, a `StableBTreeMap` of 1 KiB values on it costs 1.28x the instructions it costs on
//!   `DefaultMemoryImpl` per insert and 1.23x per get (`docs/benchmarks.md`).
//! - **Heap state with serde**: register the state with [`use_serde_state`] in `init` and
//!   `post_upgrade`. A snapshot is its MessagePack (rmp-serde) serialization, made in one
//!   message.
//!
//! ```rust,no_run
//! use std::cell::RefCell;
//! use ic_stable_structures::{memory_manager::{MemoryId, MemoryManager, VirtualMemory}, StableBTreeMap};
//! use vault_client::VaultMemory;
//!
//! thread_local! {
//!     static MANAGER: RefCell<MemoryManager<VaultMemory>> =
//!         RefCell::new(MemoryManager::init(vault_client::memory()));
//!     static ACCOUNTS: RefCell<StableBTreeMap<u64, u64, VirtualMemory<VaultMemory>>> =
//!         RefCell::new(StableBTreeMap::init(MANAGER.with_borrow(|m| m.get(MemoryId::new(0)))));
//! }
//!
//! vault_client::vault_endpoints!();
//!
//! /// Rebuilds the structures from the memory: they keep parts of their state on the heap.
//! fn reload() {
//!     MANAGER.with_borrow_mut(|m| *m = MemoryManager::init(vault_client::memory()));
//!     ACCOUNTS.with_borrow_mut(|a| *a = StableBTreeMap::init(MANAGER.with_borrow(|m| m.get(MemoryId::new(0)))));
//! }
//!
//! /// The layout of the state this module reads and writes.
//! const STATE_LAYOUT: u32 = 1;
//!
//! #[ic_cdk::init]
//! fn init(vault: candid::Principal) {
//!     vault_client::set_vault(vault);
//!     vault_client::on_restore(reload);
//!     vault_client::set_state_layout(STATE_LAYOUT);
//! }
//!
//! #[ic_cdk::post_upgrade]
//! fn post_upgrade() {
//!     vault_client::on_restore(reload);
//!     vault_client::set_state_layout(STATE_LAYOUT);
//! }
//! # fn main() {}
//! ```
//!
//! An app may declare the version of its state's layout with [`set_state_layout`], in `init`
//! and `post_upgrade` like the calls beside it: the running module declares it (it is kept on
//! the heap, not in stable memory), so a module that changes the layout declares the new
//! version. Each snapshot records the layout declared when it was taken, and the vault refuses
//! to restore it into an app declaring another one unless the restore allows the layout change
//! (`vault restore --allow-layout-change`). An app that declares none restores as before.
//!
//! The library owns the canister's raw stable memory (see the `layout` module): all stable
//! memory access must go through [`memory()`] (or, for serde apps, [`save_for_upgrade`] and
//! [`load_after_upgrade`]).
//! Its layout is versioned: [`on_restore`] and [`load_after_upgrade`] in `post_upgrade` migrate
//! it from an older release's, and trap on one this release cannot read (a newer release's),
//! which fails the upgrade and leaves the app on its previous module.
//!
//! One dump or restore is open at a time, bound to the vault instance that opened it: the
//! vault's principal, its instance nonce (which a reinstalled vault renews) and the job. A call
//! that does not match all three is answered `UnknownJob`, so a reinstalled vault counting its
//! jobs from 1 again never reads what its previous install left open. A change of vault
//! (`vault_set_vault`) releases what is open, and so does the library, the next time it runs (an
//! endpoint, or the app's write to [`memory()`] while a dump or base holds pages), once no vault call touched
//! it for `vault_api::protocol::SESSION_TTL` (a week): a vault that vanished holds no
//! frozen pages or staged chunks for ever. The base of incremental dumps (the image of the last
//! snapshot the vault stored whole, kept while it is used) goes likewise, and with a restore.
//!
//! Sizes and paths:
//! - stable memory: dumped in chunks, any size; restored in chunks, any size the app's stable
//!   memory can hold next to its live state (the library's `MemoryManager` holds 256 GiB), the
//!   commit's work growing with the page table (8 bytes per 4 KiB), not the image;
//! - serde: serialized (and on restore deserialized) in one message within
//!   [`staging::INSTRUCTION_BUDGET`] instructions and at most `staging::MAX_STAGED_BYTES`
//!   bytes; past either the call is refused with `TooLargeForOneMessage` or `TooLarge`, the
//!   state unchanged. The README gives the sizes these limits come to.

/// The README's code samples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// This crate's README's code samples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ClientReadmeDoctests;

mod cdc;
mod content_index;
mod dump;
mod guards;
mod layout;
mod memory;
mod migration;
mod pages;
pub mod restore;
mod serde_state;
mod session;
pub mod staging;
mod store;
mod upgrade_restore;

use std::cell::Cell;

use candid::Principal;
pub use memory::{VaultMemory, memory};
pub use restore::on_restore;
pub use serde_state::{load_after_upgrade, save_for_upgrade, use_serde_state};
pub use vault_api;
use vault_api::protocol::{BackupError, BackupInfo};

/// Sets the vault allowed to call the backup endpoints (call it in `init`; controllers can
/// change it later with `vault_set_vault`). A change of vault releases the dump or restore the
/// previous one left open.
pub fn set_vault(vault: Principal) {
    if store::header().vault != Some(vault) {
        session::release();
        session::drop_base();
    }
    store::update_header(|h| h.vault = Some(vault));
}

/// The vault allowed to call the backup endpoints.
pub fn vault() -> Option<Principal> {
    store::header().vault
}

thread_local! {
    static STATE_LAYOUT: Cell<Option<u32>> = const { Cell::new(None) };
}

/// Declares `version` as the layout of the state this module reads and writes (call it in `init`
/// and `post_upgrade`). The vault records it with each snapshot, and refuses to restore a
/// snapshot of another declared layout into this app unless the restore allows the change.
pub fn set_state_layout(version: u32) {
    STATE_LAYOUT.set(Some(version));
}

/// The state layout the running module declared, if it declared one.
fn state_layout() -> Option<u32> {
    STATE_LAYOUT.get()
}

/// The functions behind the endpoints [`vault_endpoints!`] defines. Each checks its caller,
/// then releases a dump or restore no vault call touched for `SESSION_TTL`.
#[doc(hidden)]
pub mod endpoints {
    use std::marker::PhantomData;

    use super::*;
    use layout::SessionKey;
    use vault_api::protocol::{
        Chunk, ChunkReply, ChunkRequest, DumpBegin, DumpEnd, DumpManifest, JobRef, RestoreBegin, RestoreChunk, RestoreCommit, RestoreReport,
    };

    /// The guard on every backup endpoint with arguments: they must decode as `Args` within the
    /// quotas of `vault_api::decode` before the endpoint's own decoding (which has a skipping
    /// quota but no decoding quota) runs, whoever sends them: a crafted argument costs the app
    /// bounded work and is refused, before the caller is checked (which answers a typed error).
    pub fn bounded_args<Args: for<'a> candid::utils::ArgumentDecoder<'a>>() -> Result<(), String> {
        vault_api::decode::args::<Args>(&arg_data()).map(drop).map_err(|e| format!("the argument does not decode: {e}"))
    }

    /// The call's argument, copied into a buffer that is not zeroed first (a chunk's 2 MiB would
    /// cost an instruction a byte more).
    fn arg_data() -> Vec<u8> {
        let len = ic0::msg_arg_data_size();
        let mut bytes = Vec::with_capacity(len);
        ic0::msg_arg_data_copy_uninit(&mut bytes.spare_capacity_mut()[..len], 0);
        // SAFETY: `msg_arg_data_copy_uninit` initialized the `len` bytes after the (empty) start.
        unsafe { bytes.set_len(len) };
        bytes
    }

    /// A call from the vault for `job`: the key of its session, and the time.
    fn vault_call(job: u64, nonce: Option<u64>) -> Result<(SessionKey, u64), BackupError> {
        let vault = guards::caller_is_vault()?;
        let now = ic_cdk::api::time();
        session::release_stale(now);
        Ok((SessionKey { vault, nonce, job }, now))
    }

    pub fn info() -> Result<BackupInfo, BackupError> {
        guards::caller_is_vault_or_controller()?;
        session::release_stale(ic_cdk::api::time());
        let header = store::header();
        let kind = serde_state::state_kind();
        let state_bytes = match kind {
            vault_api::protocol::StateKind::StableMemory => header.app_pages * vault_api::protocol::WASM_PAGE_SIZE,
            vault_api::protocol::StateKind::Serde => header.serde_cost.0,
            vault_api::protocol::StateKind::Native => unreachable!("a library app's state is serde or stable memory"),
        };
        Ok(BackupInfo {
            vault: header.vault,
            state_kind: kind,
            state_bytes,
            client_version: env!("CARGO_PKG_VERSION").to_string(),
            state_layout: state_layout(),
            content_hashes: Some(restore::CONTENT_HASHES.to_vec()),
            upgrade_restore: upgrade_restore::get().map(|record| record.report()),
            upgrade_paths: Some(true),
        })
    }

    pub fn set_vault(vault: Principal) -> Result<(), BackupError> {
        guards::caller_is_controller()?;
        if vault == Principal::anonymous() || vault == Principal::management_canister() {
            return Err(BackupError::InvalidVault { vault });
        }
        session::release_stale(ic_cdk::api::time());
        upgrade_restore::discard(None, "a controller set the app's vault");
        super::set_vault(vault);
        Ok(())
    }

    pub fn dump_begin(args: DumpBegin) -> Result<DumpManifest, BackupError> {
        let (key, now) = vault_call(args.job, args.nonce)?;
        ChunkReply::prepare();
        dump::begin(key, &args, now, state_layout())
    }

    /// Replies itself: a chunk's bytes go into the reply from the buffer they were read into,
    /// around them the rest of candid's encoding of `Ok(chunk)` (an error is encoded whole).
    pub fn dump_chunk(args: ChunkRequest) -> PhantomData<Result<Chunk, BackupError>> {
        fn encoding_failed<T>(error: candid::Error) -> T {
            ic_cdk::trap(format!("encoding the reply: {error}"))
        }
        let answer = vault_call(args.job, args.nonce).and_then(|(key, _)| dump::chunk(key, args.index));
        match answer {
            Ok(chunk) => {
                let reply = ChunkReply::of(&chunk).unwrap_or_else(encoding_failed);
                reply.pieces().into_iter().for_each(ic0::msg_reply_data_append);
                ic0::msg_reply();
            }
            Err(error) => ic_cdk::api::msg_reply(candid::encode_one(Err::<Chunk, _>(error)).unwrap_or_else(encoding_failed)),
        }
        PhantomData
    }

    pub fn dump_end(args: DumpEnd) -> Result<(), BackupError> {
        let (key, now) = vault_call(args.job, args.nonce)?;
        dump::end(key, args.base, now)
    }

    pub fn restore_begin(args: RestoreBegin) -> Result<(), BackupError> {
        let (key, now) = vault_call(args.job, args.nonce)?;
        restore::begin(key, args, now)
    }

    pub fn restore_chunk(args: RestoreChunk) -> Result<(), BackupError> {
        let (key, now) = vault_call(args.job, args.nonce)?;
        restore::chunk(key, args, now)
    }

    pub fn restore_commit(args: RestoreCommit) -> Result<RestoreReport, BackupError> {
        let (key, _) = vault_call(args.job, args.nonce)?;
        restore::commit(key, args.state_layout.map(|snapshot| (snapshot, state_layout())), args.via_upgrade == Some(true))
    }

    pub fn restore_abort(args: JobRef) -> Result<(), BackupError> {
        let (key, _) = vault_call(args.job, args.nonce)?;
        restore::abort(key)
    }
}

/// Defines the backup endpoints in the app crate (see `backup.did`). The app crate depends on
/// `ic-cdk`, `candid` and this crate as `vault-client`. (The paths are absolute rather than
/// `$crate` because `ic_cdk::export_candid!` re-parses the types as written.)
#[macro_export]
macro_rules! vault_endpoints {
    () => {
        #[::ic_cdk::query]
        fn vault_backup_info() -> ::core::result::Result<::vault_client::vault_api::protocol::BackupInfo, ::vault_client::vault_api::protocol::BackupError> {
            ::vault_client::endpoints::info()
        }

        #[::ic_cdk::update(guard = "::vault_client::endpoints::bounded_args::<(::candid::Principal,)>")]
        fn vault_set_vault(vault: ::candid::Principal) -> ::core::result::Result<(), ::vault_client::vault_api::protocol::BackupError> {
            ::vault_client::endpoints::set_vault(vault)
        }

        #[::ic_cdk::update(guard = "::vault_client::endpoints::bounded_args::<(::vault_client::vault_api::protocol::DumpBegin,)>")]
        fn vault_dump_begin(
            args: ::vault_client::vault_api::protocol::DumpBegin,
        ) -> ::core::result::Result<::vault_client::vault_api::protocol::DumpManifest, ::vault_client::vault_api::protocol::BackupError> {
            ::vault_client::endpoints::dump_begin(args)
        }

        #[::ic_cdk::update(guard = "::vault_client::endpoints::bounded_args::<(::vault_client::vault_api::protocol::ChunkRequest,)>", manual_reply = true)]
        fn vault_dump_chunk(
            args: ::vault_client::vault_api::protocol::ChunkRequest,
        ) -> ::core::marker::PhantomData<
            ::core::result::Result<::vault_client::vault_api::protocol::Chunk, ::vault_client::vault_api::protocol::BackupError>,
        > {
            ::vault_client::endpoints::dump_chunk(args)
        }

        #[::ic_cdk::update(guard = "::vault_client::endpoints::bounded_args::<(::vault_client::vault_api::protocol::DumpEnd,)>")]
        fn vault_dump_end(args: ::vault_client::vault_api::protocol::DumpEnd) -> ::core::result::Result<(), ::vault_client::vault_api::protocol::BackupError> {
            ::vault_client::endpoints::dump_end(args)
        }

        #[::ic_cdk::update(guard = "::vault_client::endpoints::bounded_args::<(::vault_client::vault_api::protocol::RestoreBegin,)>")]
        fn vault_restore_begin(
            args: ::vault_client::vault_api::protocol::RestoreBegin,
        ) -> ::core::result::Result<(), ::vault_client::vault_api::protocol::BackupError> {
            ::vault_client::endpoints::restore_begin(args)
        }

        #[::ic_cdk::update(guard = "::vault_client::endpoints::bounded_args::<(::vault_client::vault_api::protocol::RestoreChunk,)>")]
        fn vault_restore_chunk(
            args: ::vault_client::vault_api::protocol::RestoreChunk,
        ) -> ::core::result::Result<(), ::vault_client::vault_api::protocol::BackupError> {
            ::vault_client::endpoints::restore_chunk(args)
        }

        #[::ic_cdk::update(guard = "::vault_client::endpoints::bounded_args::<(::vault_client::vault_api::protocol::RestoreCommit,)>")]
        fn vault_restore_commit(
            args: ::vault_client::vault_api::protocol::RestoreCommit,
        ) -> ::core::result::Result<::vault_client::vault_api::protocol::RestoreReport, ::vault_client::vault_api::protocol::BackupError> {
            ::vault_client::endpoints::restore_commit(args)
        }

        #[::ic_cdk::update(guard = "::vault_client::endpoints::bounded_args::<(::vault_client::vault_api::protocol::JobRef,)>")]
        fn vault_restore_abort(args: ::vault_client::vault_api::protocol::JobRef) -> ::core::result::Result<(), ::vault_client::vault_api::protocol::BackupError> {
            ::vault_client::endpoints::restore_abort(args)
        }
    };
}
