//! The vault's stable memory, drawn.
//!
//! One `MemoryManager` over the raw stable memory; each id below is append-only (a retired id
//! stays listed with "do not reuse").
//!
//! ```text
//! id  name        structure                                   key -> value
//! 0   HEADER      StableCell<Header>                          magic "CVLT", layout version, id counters
//! 1   APPS        StableBTreeMap<Principal, AppRecord>         app -> registration, schedule, retention
//! 2   SNAPSHOTS   StableBTreeMap<SnapshotKey, SnapshotRecord>  (app, snapshot id) -> metadata, content hash
//! 3   MANIFESTS   StableBTreeMap<ManifestKey, [u8; 32]>        (snapshot id, chunk index) -> chunk digest
//! 4   CHUNK_REFS  StableBTreeMap<[u8; 32], u32>                chunk SHA-256 -> snapshots using it (layouts 1-3)
//! 5   CHUNK_DATA  StableBTreeMap<[u8; 32], Vec<u8>>            chunk SHA-256 -> bytes (stored once; layouts 1-3)
//! 6   JOBS        StableBTreeMap<u64, JobRecord>               job id -> state machine and outcome
//! 7   APP_JOBS    StableBTreeMap<AppJobKey, ()>                (app, job id): an app's job log
//! 8   DELETIONS   StableBTreeMap<u64, Deletion>                snapshot id -> chunks left to release
//! 9   CONFIG      StableCell<Config>                          administrators, registration mode
//! 10  ALLOWED     StableBTreeMap<Principal, ()>                principals allowed to register apps
//! 11  SUSPENDED   StableBTreeMap<Principal, SuspensionRecord>  app -> who suspended it, when, why
//! 12  INSTANCE    StableCell<u64>                             this vault instance's nonce (0 until fixed)
//! 13  APP_CHUNKS  StableBTreeMap<AppChunkKey, u32>             (app, chunk digest) -> the app's manifest entries naming it
//! 14  APP_USAGE   StableBTreeMap<UsageKey, UsageRecord>        app -> bytes held, registrant, cycles spent today;
//!                                                              registrant -> its apps, the bytes they hold
//! 15  RETIRED     StableBTreeMap<Principal, RetiredRecord>     unregistered app with snapshots -> its controllers
//! 16  SNAPSHOT_LAYOUTS StableBTreeMap<SnapshotKey, u32>        (app, snapshot id) -> the state layout its app declared
//! 17  INDEX       StableBTreeMap<IndexKey, ()>                 apps by next due time, imports by start, running jobs
//! 18  CHUNK_HEADER StableCell<ChunkStoreHeader>               the chunk store's bump end and totals
//! 19  CHUNK_BYTES raw                                         chunk bytes, each in 4 KiB pages of its own
//! 20  CHUNK_LOCATIONS StableBTreeMap<[u8; 32], ChunkLocation>  chunk digest -> offset in CHUNK_BYTES, length, references
//! 21  CHUNK_FREE_BY_SIZE StableBTreeMap<FreeExtent, ()>       (pages, offset) of each free extent of CHUNK_BYTES
//! 22  CHUNK_FREE_BY_OFFSET StableBTreeMap<u64, u32>           offset -> pages of each free extent
//! 23  INCREMENTAL StableBTreeMap<Principal, IncrementalRecord> app -> incrementals allowed between full snapshots,
//!                                                              the snapshot whose image it keeps as its base
//! 24  CHUNK_DELTAS StableBTreeMap<[u8; 32], DeltaRecord>      chunk stored as a delta -> the chunk it is over,
//!                                                              its length, its chain's bytes and depth
//! 25  MANIFEST_PAGES StableBTreeMap<ManifestKey, [u8; 32]>   (snapshot id, page) -> key of a page of its chunk
//!                                                              digests, in the chunk store (`manifest_tree`)
//! 26  SEALING     StableBTreeMap<u64, Principal>              complete snapshot id -> app: entries of MANIFESTS
//!                                                              still to turn into pages
//! 27  NATIVE_APPS StableBTreeMap<Principal, NativeApp>       app captured through native snapshots -> whether it
//!                                                              keeps running, the native snapshot the vault took last
//! 28  NATIVE_JOBS StableBTreeMap<u64, NativeJob>             job id -> its native snapshot on the IC, the header
//! ```
//!
//! Memories 9 to 12, 15, 16 and 23 are additions without a layout change: a build that does not
//! know them never opens them. INCREMENTAL holds a record only for an app registered with its
//! own `max_incrementals` or holding a base, and loses it when the app is unregistered; a base it
//! names is forgotten when that snapshot's deletion is scheduled (a record a build without it
//! left behind may name a snapshot gone since: only a complete snapshot is taken as a base). SNAPSHOT_LAYOUTS holds an entry only for a snapshot whose app declared
//! a state layout, and loses it when the snapshot's record goes. Memories 13 and 14 are layout 2:
//! `migration` builds them from layout 1's snapshots, manifests and registrations. INDEX and the
//! completed snapshots counted in APP_USAGE are layout 3, built from the apps and snapshots.
//! Memories 18 to 22, the chunk store (`chunk_store`), are layout 4: chunks stored since are
//! there; those of earlier layouts stay in CHUNK_DATA and CHUNK_REFS, served and released in
//! place (nothing is moved: see `chunk_store`).
//! A snapshot's content hash (SHA-256 or BLAKE3) is bit 7 of its record's state kind byte
//! (`storable`), clear in every record of layouts 1 to 4, which read as SHA-256; its chunk
//! digests (MANIFESTS, APP_CHUNKS, the chunk store's keys) are in it, SHA-256 and BLAKE3 ones side
//! by side in the same keys (`state::HashedChunk` says why that is safe). Layout 5 is that bit:
//! a build of layout 4 would misread it, so it refuses layout 5 (nothing runs in the upgrade).
//! Layout 6 adds CHUNK_DELTAS, which starts empty: a chunk of an incremental snapshot may be
//! stored as a delta over its base's (`chunk_store`), which a build of layout 5 would serve as
//! the chunk's bytes, so it refuses layout 6 (nothing runs in the upgrade).
//! Layout 7 adds MANIFEST_PAGES and SEALING: a complete snapshot names its chunks through pages
//! of digests that versions share (`manifest_tree`), where a build of layout 6 would find no
//! manifest, so it refuses layout 7. The upgrade queues every complete snapshot in SEALING, and
//! their entries in MANIFESTS become pages in bounded steps after it; until then they are read
//! where they are.
//! Layout 8 adds NATIVE_APPS and NATIVE_JOBS, which start empty, and state kind 3 (native) in
//! snapshot and app records, which a build of layout 7 cannot read: it refuses layout 8 (nothing
//! runs in the upgrade).
//! Layout 9 writes NATIVE_JOBS records of version 2, with the flag of an app the vault stopped
//! for the job; version 1 records read as not stopped. A build of layout 8 cannot read version 2:
//! it refuses layout 9 (nothing runs in the upgrade).
//! Release 0.1.0 reads layout 1 only (its header check traps its `post_upgrade`, so the IC keeps
//! the newer module): a rollback to it is refused; a build that writes layout 2 or 3 refuses a
//! newer one the same way.
//!
//! INSTANCE's nonce is fixed at install, or at the first upgrade from a release without it, and
//! kept across upgrades, so an app tells this install of the vault from an earlier or later one at
//! the same principal.
//!
//! Listing an app's snapshots, streaming a snapshot's chunks and deleting them are range scans
//! over SNAPSHOTS, MANIFEST_PAGES and MANIFESTS. A chunk's bytes are written once however many snapshots use
//! them; deletion releases references in bounded steps and frees the chunk's pages at zero.
//!
//! The records' byte layouts are in `storable/`, each pinned by a golden test.

use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ic_stable_structures::DefaultMemoryImpl;

pub type Memory = VirtualMemory<DefaultMemoryImpl>;

/// Version of the layout above, which this build writes; stored in the header.
pub const LAYOUT_VERSION: u8 = 9;
/// The oldest layout this build reads; `migration` takes it up to [`LAYOUT_VERSION`].
pub const OLDEST_LAYOUT: u8 = 1;

pub const HEADER: MemoryId = MemoryId::new(0);
pub const APPS: MemoryId = MemoryId::new(1);
pub const SNAPSHOTS: MemoryId = MemoryId::new(2);
pub const MANIFESTS: MemoryId = MemoryId::new(3);
pub const CHUNK_REFS: MemoryId = MemoryId::new(4);
pub const CHUNK_DATA: MemoryId = MemoryId::new(5);
pub const JOBS: MemoryId = MemoryId::new(6);
pub const APP_JOBS: MemoryId = MemoryId::new(7);
pub const DELETIONS: MemoryId = MemoryId::new(8);
pub const CONFIG: MemoryId = MemoryId::new(9);
pub const ALLOWED: MemoryId = MemoryId::new(10);
pub const SUSPENDED: MemoryId = MemoryId::new(11);
pub const INSTANCE: MemoryId = MemoryId::new(12);
pub const APP_CHUNKS: MemoryId = MemoryId::new(13);
pub const APP_USAGE: MemoryId = MemoryId::new(14);
pub const RETIRED: MemoryId = MemoryId::new(15);
pub const SNAPSHOT_LAYOUTS: MemoryId = MemoryId::new(16);
pub const INDEX: MemoryId = MemoryId::new(17);
pub const CHUNK_HEADER: MemoryId = MemoryId::new(18);
pub const CHUNK_BYTES: MemoryId = MemoryId::new(19);
pub const CHUNK_LOCATIONS: MemoryId = MemoryId::new(20);
pub const CHUNK_FREE_BY_SIZE: MemoryId = MemoryId::new(21);
pub const CHUNK_FREE_BY_OFFSET: MemoryId = MemoryId::new(22);
pub const INCREMENTAL: MemoryId = MemoryId::new(23);
pub const CHUNK_DELTAS: MemoryId = MemoryId::new(24);
pub const MANIFEST_PAGES: MemoryId = MemoryId::new(25);
pub const SEALING: MemoryId = MemoryId::new(26);
pub const NATIVE_APPS: MemoryId = MemoryId::new(27);
pub const NATIVE_JOBS: MemoryId = MemoryId::new(28);

/// The memory of `id` under `manager`.
pub fn get(manager: &MemoryManager<DefaultMemoryImpl>, id: MemoryId) -> Memory {
    manager.get(id)
}
