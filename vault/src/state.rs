//! The vault's state: registrations, snapshots, content-addressed chunks and jobs, as plain
//! functions over the stable maps of `memory.rs`, so unit tests drive them natively.
//!
//! What each app holds (the chunks its snapshots name, each counted once, and the snapshots it
//! builds) and what its registrant's apps hold together are kept up to date wherever a chunk
//! reference or a snapshot's status changes, so a quota reads one record.

use std::cell::RefCell;

use candid::Principal;
use ic_stable_structures::memory_manager::MemoryManager;
use ic_stable_structures::{DefaultMemoryImpl, StableBTreeMap, StableCell, Storable};
use vault_api::manifest::{ChunkFault, ManifestHasher, check_chunk, chunk_range};
use vault_api::{ContentHash, Sha256};
use vault_api::service::VaultError;

use crate::chunk_store::{ChunkStore, ChunkStoreMemories, PutOutcome, Released};
use crate::manifest_tree::{self, page_entries, page_of};
use crate::memory::{self, Memory};
use crate::storable::{
    AppBase, AppChunkKey, AppJobKey, AppRecord, AppUsageRecord, Config, Deletion, Header, Held, IncrementalRecord, IndexKey, JobRecord, ManifestKey, NativeApp, NativeJob,
    PrincipalKey, RegistrantUsageRecord, RetiredRecord, SnapshotKey, SnapshotRecord, SnapshotStatus, SuspensionRecord, UsageKey, UsageRecord,
};

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::init(DefaultMemoryImpl::default()));
}

/// Runs `f` on the canister's state.
pub fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with_borrow_mut(f)
}

/// Chunk bytes with their digest in their snapshot's content hash, hashed once, by the vault:
/// checking a digest a sender claims and addressing the stored content both need it.
///
/// SHA-256 and BLAKE3 digests share the chunk store's 32-byte key space. That is safe: the
/// store takes a key it holds as the same bytes, so two different chunks under one key would
/// take bytes whose digest in one hash is other bytes' digest in the other, a collision between
/// two 256-bit hashes, as hard to find as one within either (some 2^128 work). The same bytes in
/// both hashes have two keys and are stored twice: that costs space, never correctness.
pub struct HashedChunk<'a> {
    data: &'a [u8],
    hash: Sha256,
}

impl<'a> HashedChunk<'a> {
    pub fn new(content_hash: ContentHash, data: &'a [u8]) -> Self {
        HashedChunk { data, hash: content_hash.digest(data) }
    }

    /// Chunk `index`, `data`, of an image of `size` bytes in chunks of `chunk_size` in
    /// `content_hash`, checked (`vault_api::manifest::check_chunk`: its range and length, then the
    /// digest `claimed`, if any) and hashed once.
    pub fn check(
        content_hash: ContentHash,
        size: u64,
        chunk_size: u64,
        index: u32,
        data: &'a [u8],
        claimed: Option<&Sha256>,
    ) -> Result<Self, ChunkFault> {
        let checked = check_chunk(content_hash, size, chunk_size, index, data, claimed)?;
        Ok(HashedChunk { data, hash: checked.digest })
    }

    pub fn hash(&self) -> Sha256 {
        self.hash
    }
}

pub struct State {
    header: StableCell<Header, Memory>,
    instance: StableCell<u64, Memory>,
    apps: StableBTreeMap<PrincipalKey, AppRecord, Memory>,
    snapshots: StableBTreeMap<SnapshotKey, SnapshotRecord, Memory>,
    manifests: StableBTreeMap<ManifestKey, [u8; 32], Memory>,
    manifest_pages: StableBTreeMap<ManifestKey, [u8; 32], Memory>,
    sealing: StableBTreeMap<u64, PrincipalKey, Memory>,
    chunks: ChunkStore<Memory>,
    jobs: StableBTreeMap<u64, JobRecord, Memory>,
    app_jobs: StableBTreeMap<AppJobKey, (), Memory>,
    deletions: StableBTreeMap<u64, Deletion, Memory>,
    config: StableCell<Config, Memory>,
    allowed: StableBTreeMap<PrincipalKey, (), Memory>,
    suspended: StableBTreeMap<PrincipalKey, SuspensionRecord, Memory>,
    retired: StableBTreeMap<PrincipalKey, RetiredRecord, Memory>,
    app_chunks: StableBTreeMap<AppChunkKey, u32, Memory>,
    usage: StableBTreeMap<UsageKey, UsageRecord, Memory>,
    snapshot_layouts: StableBTreeMap<SnapshotKey, u32, Memory>,
    index: StableBTreeMap<IndexKey, (), Memory>,
    incremental: StableBTreeMap<PrincipalKey, IncrementalRecord, Memory>,
    native_apps: StableBTreeMap<PrincipalKey, NativeApp, Memory>,
    native_jobs: StableBTreeMap<u64, NativeJob, Memory>,
}

/// Manifest pages sealed in one message: at a snapshot's completion, and at each timer firing
/// while any are left. A page of a full snapshot's (128 entries removed and released, 4 KiB
/// written) costs some 50 M instructions: a 1 GiB snapshot's four pages added 0.2 B to the
/// vault's 20 B in the benchmark.
pub const SEAL_BUDGET: u32 = 32;

/// Finished jobs kept in an app's log.
pub const JOB_LOG_LENGTH: usize = 100;

impl State {
    /// Opens (or creates) the state in `memory`.
    pub fn init(memory: DefaultMemoryImpl) -> Self {
        let manager = MemoryManager::init(memory);
        let m = |id| memory::get(&manager, id);
        State {
            header: StableCell::init(m(memory::HEADER), Header { layout: memory::LAYOUT_VERSION, next_job: 1, next_snapshot: 1 }),
            instance: StableCell::init(m(memory::INSTANCE), 0),
            apps: StableBTreeMap::init(m(memory::APPS)),
            snapshots: StableBTreeMap::init(m(memory::SNAPSHOTS)),
            manifests: StableBTreeMap::init(m(memory::MANIFESTS)),
            manifest_pages: StableBTreeMap::init(m(memory::MANIFEST_PAGES)),
            sealing: StableBTreeMap::init(m(memory::SEALING)),
            chunks: ChunkStore::init(ChunkStoreMemories {
                header: m(memory::CHUNK_HEADER),
                data: m(memory::CHUNK_BYTES),
                locations: m(memory::CHUNK_LOCATIONS),
                free_by_size: m(memory::CHUNK_FREE_BY_SIZE),
                free_by_offset: m(memory::CHUNK_FREE_BY_OFFSET),
                legacy_data: m(memory::CHUNK_DATA),
                legacy_refs: m(memory::CHUNK_REFS),
                deltas: m(memory::CHUNK_DELTAS),
            }),
            jobs: StableBTreeMap::init(m(memory::JOBS)),
            app_jobs: StableBTreeMap::init(m(memory::APP_JOBS)),
            deletions: StableBTreeMap::init(m(memory::DELETIONS)),
            config: StableCell::init(m(memory::CONFIG), Config::default()),
            allowed: StableBTreeMap::init(m(memory::ALLOWED)),
            suspended: StableBTreeMap::init(m(memory::SUSPENDED)),
            retired: StableBTreeMap::init(m(memory::RETIRED)),
            app_chunks: StableBTreeMap::init(m(memory::APP_CHUNKS)),
            usage: StableBTreeMap::init(m(memory::APP_USAGE)),
            snapshot_layouts: StableBTreeMap::init(m(memory::SNAPSHOT_LAYOUTS)),
            index: StableBTreeMap::init(m(memory::INDEX)),
            incremental: StableBTreeMap::init(m(memory::INCREMENTAL)),
            native_apps: StableBTreeMap::init(m(memory::NATIVE_APPS)),
            native_jobs: StableBTreeMap::init(m(memory::NATIVE_JOBS)),
        }
    }

    /// The version of the stored layout.
    pub fn layout(&self) -> u8 {
        self.header.get().layout
    }

    pub fn set_layout(&mut self, layout: u8) {
        let mut h = self.header.get().clone();
        h.layout = layout;
        self.header.set(h);
    }

    /// This vault instance's nonce, which every protocol call carries (0 until fixed).
    pub fn instance_nonce(&self) -> u64 {
        *self.instance.get()
    }

    /// Fixes the instance's nonce to `nonce` (not 0), unless it has one.
    pub fn fix_instance_nonce(&mut self, nonce: u64) {
        if self.instance_nonce() == 0 {
            self.instance.set(nonce.max(1));
        }
    }

    fn next_id(&mut self, job: bool) -> u64 {
        let mut h = self.header.get().clone();
        let id = if job { &mut h.next_job } else { &mut h.next_snapshot };
        let next = *id;
        *id += 1;
        self.header.set(h);
        next
    }

    // Apps.

    pub fn app(&self, app: Principal) -> Option<AppRecord> {
        self.apps.get(&PrincipalKey(app))
    }

    /// Saves `app`'s record; a new one registers the app to its `registered_by`, who is charged
    /// for what the app holds from then on.
    pub fn put_app(&mut self, app: Principal, record: AppRecord) {
        let registrant = record.registered_by;
        let entries = app_entries(app, &record);
        let before = self.apps.insert(PrincipalKey(app), record);
        self.reindex(before.as_ref().map(|r| app_entries(app, r)).unwrap_or_default(), entries);
        if before.is_none() {
            self.charge_to(app, registrant);
        }
    }

    /// Unregisters `app`. What its snapshots still hold stays charged to its registrant.
    pub fn remove_app(&mut self, app: Principal) {
        self.incremental.remove(&PrincipalKey(app));
        self.native_apps.remove(&PrincipalKey(app));
        if let Some(record) = self.apps.remove(&PrincipalKey(app)) {
            self.reindex(app_entries(app, &record), Vec::new());
            let mut registrant = self.registrant_usage(record.registered_by);
            registrant.apps = registrant.apps.saturating_sub(1);
            self.put_registrant_usage(record.registered_by, registrant);
            self.put_app_usage(app, self.app_usage(app));
        }
    }

    pub fn apps(&self) -> Vec<(Principal, AppRecord)> {
        self.apps.iter().map(|e| (e.key().0, e.value())).collect()
    }

    /// A registered app's record; [`VaultError::UnknownApp`] for any other principal.
    pub fn registered(&self, app: Principal) -> Result<AppRecord, VaultError> {
        self.app(app).ok_or(VaultError::UnknownApp { app })
    }

    /// Up to `n` registered apps after `after` in principal order, from the first when there is
    /// none after it (a range scan).
    pub fn apps_after(&self, after: Option<Principal>, n: usize) -> Vec<Principal> {
        keys_after(&self.apps, after, n)
    }

    /// Keeps the controllers and module hash last seen for a registered `app`.
    pub fn note_canister_info(&mut self, app: Principal, controllers: Vec<Principal>, module_hash: Option<Sha256>) {
        if let Some(mut record) = self.retired(app) {
            record.controllers = controllers.clone();
            self.retired.insert(PrincipalKey(app), record);
        }
        if let Some(mut record) = self.app(app) {
            record.controllers = controllers;
            record.module_hash = module_hash;
            self.put_app(app, record);
        }
    }

    // Incremental snapshots.

    /// How `app`'s snapshots may be incremental, and the base it holds.
    pub fn incremental(&self, app: Principal) -> IncrementalRecord {
        self.incremental.get(&PrincipalKey(app)).unwrap_or_default()
    }

    /// Sets the incremental snapshots registered `app` takes at most between two full ones.
    pub fn set_max_incrementals(&mut self, app: Principal, max_incrementals: u32) {
        let record = IncrementalRecord { max_incrementals, ..self.incremental(app) };
        self.put_incremental(app, record);
    }

    /// Registered `app` confirmed it keeps the image of snapshot `base.snapshot`: its next dump
    /// may be incremental against it.
    pub fn keep_base(&mut self, app: Principal, base: AppBase) {
        if self.apps.contains_key(&PrincipalKey(app)) {
            let record = IncrementalRecord { base: Some(base), ..self.incremental(app) };
            self.put_incremental(app, record);
        }
    }

    /// Forgets the base of `app`: the app may not hold it (it restores, or has another vault
    /// set), or it goes. Its next snapshot is full.
    pub fn forget_base(&mut self, app: Principal) {
        let record = self.incremental(app);
        if record.base.is_some() {
            self.put_incremental(app, IncrementalRecord { base: None, ..record });
        }
    }

    /// Saves `app`'s incremental record; the default is kept as no record.
    fn put_incremental(&mut self, app: Principal, record: IncrementalRecord) {
        if record == IncrementalRecord::default() {
            self.incremental.remove(&PrincipalKey(app));
        } else {
            self.incremental.insert(PrincipalKey(app), record);
        }
    }

    // Retired apps: unregistered, their snapshots kept.

    pub fn retired(&self, app: Principal) -> Option<RetiredRecord> {
        self.retired.get(&PrincipalKey(app))
    }

    pub fn retire(&mut self, app: Principal, record: RetiredRecord) {
        self.retired.insert(PrincipalKey(app), record);
    }

    /// Forgets that `app` was retired: it is registered again, or keeps no snapshot.
    pub fn unretire(&mut self, app: Principal) {
        self.retired.remove(&PrincipalKey(app));
    }

    /// Up to `n` retired apps after `after`, as [`State::apps_after`] takes registered ones.
    pub fn retired_after(&self, after: Option<Principal>, n: usize) -> Vec<Principal> {
        keys_after(&self.retired, after, n)
    }

    /// Notes `job` as the one `app` runs (the app is registered: jobs start for registered apps).
    pub fn set_running_job(&mut self, app: Principal, job: u64) {
        let mut record = self.app(app).expect("jobs start for registered apps");
        record.running_job = Some(job);
        self.put_app(app, record);
    }

    /// `job` of `app` is over: the app may run another; its job log is pruned.
    pub fn free_app(&mut self, app: Principal, job: u64) {
        if let Some(mut record) = self.app(app).filter(|r| r.running_job == Some(job)) {
            record.running_job = None;
            self.put_app(app, record);
        }
        self.prune_job_log(app);
    }

    /// What the vault keeps of `app` if it captures it through native snapshots.
    pub fn native_app(&self, app: Principal) -> Option<NativeApp> {
        self.native_apps.get(&PrincipalKey(app))
    }

    pub fn put_native_app(&mut self, app: Principal, record: NativeApp) {
        self.native_apps.insert(PrincipalKey(app), record);
    }

    /// Notes `taken` as the native snapshot the vault holds of `app` (none: it deleted it).
    pub fn note_native_taken(&mut self, app: Principal, taken: Option<Vec<u8>>) {
        if let Some(mut record) = self.native_app(app) {
            record.taken = taken;
            self.put_native_app(app, record);
        }
    }

    /// Job `job`'s native snapshot on the IC, if it has one.
    pub fn native_job(&self, job: u64) -> Option<NativeJob> {
        self.native_jobs.get(&job)
    }

    /// Changes job `job`'s native record (a new one if it has none) with `change`.
    pub fn update_native_job(&mut self, job: u64, change: impl FnOnce(&mut NativeJob)) {
        let mut record = self.native_jobs.get(&job).unwrap_or_default();
        change(&mut record);
        self.native_jobs.insert(job, record);
    }

    pub fn remove_native_job(&mut self, job: u64) {
        self.native_jobs.remove(&job);
    }

    // Administration.

    pub fn config(&self) -> Config {
        self.config.get().clone()
    }

    pub fn set_config(&mut self, config: Config) {
        self.config.set(config);
    }

    pub fn is_allowed(&self, principal: Principal) -> bool {
        self.allowed.contains_key(&PrincipalKey(principal))
    }

    pub fn set_allowed(&mut self, principal: Principal, allowed: bool) {
        if allowed {
            self.allowed.insert(PrincipalKey(principal), ());
        } else {
            self.allowed.remove(&PrincipalKey(principal));
        }
    }

    /// The allow-list, in principal order.
    pub fn allowed(&self) -> Vec<Principal> {
        self.allowed.keys().map(|k| k.0).collect()
    }

    pub fn suspension(&self, app: Principal) -> Option<SuspensionRecord> {
        self.suspended.get(&PrincipalKey(app))
    }

    pub fn suspend(&mut self, app: Principal, record: SuspensionRecord) {
        self.suspended.insert(PrincipalKey(app), record);
    }

    pub fn resume(&mut self, app: Principal) {
        self.suspended.remove(&PrincipalKey(app));
    }

    /// Refuses new work (a snapshot, a restore into it, an import) for a suspended app.
    pub fn not_suspended(&self, app: Principal) -> Result<(), VaultError> {
        match self.suspension(app) {
            Some(record) => Err(VaultError::Suspended { app, suspension: record.into() }),
            None => Ok(()),
        }
    }

    // Snapshots and chunks.

    pub fn snapshot(&self, app: Principal, id: u64) -> Option<SnapshotRecord> {
        self.snapshots.get(&SnapshotKey { app, id })
    }

    pub fn put_snapshot(&mut self, app: Principal, id: u64, record: SnapshotRecord) {
        self.write_snapshot(SnapshotKey { app, id }, Some(record));
    }

    /// The state layout `app` declared when snapshot `id` was taken, if it declared one.
    pub fn snapshot_layout(&self, app: Principal, id: u64) -> Option<u32> {
        self.snapshot_layouts.get(&SnapshotKey { app, id })
    }

    /// Records that `app` declared state layout `layout` for snapshot `id`.
    pub fn put_snapshot_layout(&mut self, app: Principal, id: u64, layout: u32) {
        self.snapshot_layouts.insert(SnapshotKey { app, id }, layout);
    }

    /// Saves (or, with `None`, removes, with its state layout) a snapshot's record; a snapshot
    /// being built counts whole in what its app holds until it completes or goes, a completed one
    /// in its app's completed snapshots and, until its manifest is sealed, in those to seal, an
    /// import in progress in the index.
    fn write_snapshot(&mut self, key: SnapshotKey, record: Option<SnapshotRecord>) {
        let building = |r: &Option<SnapshotRecord>| r.as_ref().filter(|r| r.status == SnapshotStatus::Building).map_or(0, |r| r.size);
        let completed = |r: &Option<SnapshotRecord>| r.as_ref().filter(|r| r.status == SnapshotStatus::Complete).map(|r| r.size);
        let import = |r: &Option<SnapshotRecord>| r.as_ref().and_then(|r| import_entry(key, r)).into_iter().collect::<Vec<_>>();
        let (after, completed_after, import_after) = (building(&record), completed(&record), import(&record));
        let before_record = match record {
            Some(record) => self.snapshots.insert(key, record),
            None => {
                self.snapshot_layouts.remove(&key);
                self.snapshots.remove(&key)
            }
        };
        let (before, completed_before) = (building(&before_record), completed(&before_record));
        self.reindex(import(&before_record), import_after);
        if before != after {
            self.adjust_held(key.app, |held| held.building = held.building.saturating_sub(before).saturating_add(after));
        }
        match (completed_before, completed_after) {
            (None, Some(_)) => {
                self.sealing.insert(key.id, PrincipalKey(key.app));
            }
            (Some(_), None) => {
                self.sealing.remove(&key.id);
            }
            _ => {}
        }
        if completed_before != completed_after {
            let mut usage = self.app_usage(key.app);
            if let Some(size) = completed_before {
                usage.completed = usage.completed.saturating_sub(1);
                usage.completed_bytes = usage.completed_bytes.saturating_sub(size);
            }
            if let Some(size) = completed_after {
                usage.completed = usage.completed.saturating_add(1);
                usage.completed_bytes = usage.completed_bytes.saturating_add(size);
            }
            self.put_app_usage(key.app, usage);
        }
    }

    /// Replaces index entries `before` of a record by its entries `after`.
    fn reindex(&mut self, before: Vec<IndexKey>, after: Vec<IndexKey>) {
        if before == after {
            return;
        }
        for key in before {
            self.index.remove(&key);
        }
        for key in after {
            self.index.insert(key, ());
        }
    }

    /// An app's snapshots in id order (a range scan).
    pub fn snapshots_of(&self, app: Principal) -> Vec<(u64, SnapshotRecord)> {
        self.snapshots
            .range(SnapshotKey { app, id: 0 }..=SnapshotKey { app, id: u64::MAX })
            .map(|e| (e.key().id, e.value()))
            .collect()
    }

    /// `app`'s completed snapshots: (id, taken at), in id order.
    pub fn completed_of(&self, app: Principal) -> Vec<(u64, u64)> {
        self.snapshots_of(app).into_iter().filter(|(_, r)| r.status == SnapshotStatus::Complete).map(|(id, r)| (id, r.taken_at)).collect()
    }

    /// `app`'s imports in progress.
    pub fn open_imports_of(&self, app: Principal) -> Vec<(u64, SnapshotRecord)> {
        self.snapshots_of(app).into_iter().filter(|(_, r)| r.status == SnapshotStatus::Building && r.trigger == vault_api::service::Trigger::Import).collect()
    }

    /// When the first import in progress expires, `ttl` nanoseconds after it began (the first
    /// entry of the index's imports).
    pub fn next_import_expiry(&self, ttl: u64) -> Option<u64> {
        match self.index.range(IndexKey::FIRST_IMPORT..).next().map(|e| *e.key()) {
            Some(IndexKey::Import { started_at, .. }) => Some(started_at.saturating_add(ttl)),
            _ => None,
        }
    }

    /// Schedules the deletion of at most `budget` imports unfinished `ttl` nanoseconds after they
    /// began, the oldest first; returns how many expired.
    pub fn expire_imports(&mut self, now: u64, ttl: u64, budget: usize) -> usize {
        let expired: Vec<SnapshotKey> = self
            .index
            .range(IndexKey::FIRST_IMPORT..)
            .map(|e| *e.key())
            .map_while(|key| match key {
                IndexKey::Import { started_at, snapshot } if started_at.saturating_add(ttl) <= now => Some(snapshot),
                _ => None,
            })
            .take(budget)
            .collect();
        for key in &expired {
            self.schedule_deletion(key.app, key.id);
        }
        expired.len()
    }

    pub fn new_snapshot_id(&mut self) -> u64 {
        self.next_id(false)
    }

    /// The id [`Self::new_snapshot_id`] gives next.
    pub fn peek_snapshot_id(&self) -> u64 {
        self.header.get().next_snapshot
    }

    /// Marks a building snapshot complete with its hash and what it cost.
    pub fn complete_snapshot(&mut self, app: Principal, id: u64, sha256: Sha256, duration: u64, transfer_cycles: u128) {
        if let Some(mut record) = self.snapshot(app, id) {
            record.status = SnapshotStatus::Complete;
            record.sha256 = sha256;
            record.duration = duration;
            record.transfer_cycles = transfer_cycles;
            self.put_snapshot(app, id, record);
        }
    }

    /// Stores chunk `index` of `app`'s snapshot `snapshot`, once per content: repeating it (a
    /// retried call) changes nothing. A chunk stored before at the index has the same length.
    pub fn store_chunk(&mut self, app: Principal, snapshot: u64, index: u32, chunk: &HashedChunk) {
        self.store_chunk_over(app, snapshot, index, chunk, None);
    }

    /// [`Self::store_chunk`] of a chunk rebuilt over `base`, the chunk the index names until now
    /// (its digest and bytes: the base snapshot's chunk there, which the snapshot references in
    /// its place): stored as a delta over it where the chunk store allows (`chunk_store`).
    pub fn store_rebuilt_chunk(&mut self, app: Principal, snapshot: u64, index: u32, chunk: &HashedChunk, base: (Sha256, &[u8])) {
        self.store_chunk_over(app, snapshot, index, chunk, Some(base));
    }

    fn store_chunk_over(&mut self, app: Principal, snapshot: u64, index: u32, chunk: &HashedChunk, base: Option<(Sha256, &[u8])>) {
        let (data, hash) = (chunk.data, chunk.hash);
        let key = ManifestKey { snapshot, index };
        // The snapshot's own entry at the index, else its page's, names the chunk there until now.
        let own = self.manifests.get(&key);
        let replaced = own.or_else(|| self.page_entry(snapshot, index));
        if replaced == Some(hash.0) {
            return;
        }
        // Before a dump's first chunk or an import's, the reserves were checked to keep 4 GiB of
        // stable memory free, and references are counted per manifest entry (at most 2^32). The
        // new chunk is stored before the one it replaces is released: it may be a delta over it.
        let stored = match base {
            Some((base, base_bytes)) if replaced == Some(base.0) => self.chunks.put_over(hash.0, data, &base.0, base_bytes),
            _ => self.chunks.put(hash.0, data),
        };
        stored.expect("the stable-memory reserve has room for the chunk");
        self.manifests.insert(key, hash.0);
        self.hold_chunk(app, hash.0, data.len() as u64);
        // A page's entry stays referenced through the page until the snapshot is sealed.
        if let Some(own) = own {
            self.release_chunk(app, own, base.map_or(data.len(), |(_, bytes)| bytes.len()) as u64);
        }
    }

    /// Makes entries `indices` of `app`'s snapshot `to` name the chunks those of its complete
    /// snapshot `from` name, each one reference more (no chunk is read): a snapshot built on
    /// `from` starts as it. A page of `from` whose entries are all in `indices` is referenced as
    /// a page, one reference for all its entries. An index `to` has an entry at already keeps it.
    /// Whether `from` is complete and has every one of them (if not, `to` is to be dropped).
    pub fn copy_entries(&mut self, app: Principal, from: u64, to: u64, indices: std::ops::Range<u32>) -> bool {
        let Some(record) = self.snapshot(app, from).filter(|r| r.status == SnapshotStatus::Complete) else { return false };
        let mut index = indices.start;
        while index < indices.end {
            let page = page_entries(page_of(index), record.chunks);
            if index == page.start && page.end <= indices.end && self.copy_page(app, &record, from, to, page_of(index)) {
                index = page.end;
                continue;
            }
            let Some(hash) = self.entry(from, index) else { return false };
            let key = ManifestKey { snapshot: to, index };
            if !self.manifests.contains_key(&key) {
                self.chunks.add_ref(&hash).expect("a manifest entry's chunk is stored, with fewer than 2^32 references");
                self.manifests.insert(key, hash);
                self.hold_chunk(app, hash, chunk_len(&record, index));
            }
            index += 1;
        }
        true
    }

    /// Has snapshot `to` reference page `page` of `from` (its `record`), if `from` names its
    /// chunks there by that page alone (it is sealed there); whether it does.
    fn copy_page(&mut self, app: Principal, record: &SnapshotRecord, from: u64, to: u64, page: u32) -> bool {
        let Some(key) = self.manifest_pages.get(&ManifestKey { snapshot: from, index: page }) else { return false };
        let entries = page_entries(page, record.chunks);
        if self.manifests.range(ManifestKey { snapshot: from, index: entries.start }..ManifestKey { snapshot: from, index: entries.end }).next().is_some() {
            return false;
        }
        let page_key = ManifestKey { snapshot: to, index: page };
        if !self.manifest_pages.contains_key(&page_key) {
            self.chunks.add_ref(&key).expect("a snapshot's page is stored, with fewer than 2^32 references");
            self.manifest_pages.insert(page_key, key);
            self.hold_page(app, key, record, page);
        }
        true
    }

    /// One more manifest entry of `app`'s names chunk `hash`, stored, of `len` bytes: at the first,
    /// the bytes it takes in the store count in what the app holds, and a delta holds its base
    /// for the app as well (`APP_CHUNKS` counts an app's manifest entries, pages and held deltas
    /// naming a chunk, as the store's references count everyone's).
    fn hold_chunk(&mut self, app: Principal, hash: [u8; 32], len: u64) {
        let mut next = Some((hash, len));
        while let Some((hash, len)) = next {
            let key = AppChunkKey { app, hash };
            let refs = self.app_chunks.get(&key).unwrap_or(0);
            self.app_chunks.insert(key, refs + 1);
            if refs > 0 {
                return;
            }
            let stored = self.chunks.stored_len(&hash).map_or(len, u64::from);
            self.adjust_held(app, |held| held.stored = held.stored.saturating_add(stored));
            next = self.chunks.delta_base(&hash).map(|base| (base, 0));
        }
    }

    /// One more page entry of `app`'s names page `key`, page `page` of snapshot `record`'s: at the
    /// first, the page's bytes count in what the app holds, and the app holds each chunk it names.
    fn hold_page(&mut self, app: Principal, key: [u8; 32], record: &SnapshotRecord, page: u32) {
        let app_key = AppChunkKey { app, hash: key };
        let refs = self.app_chunks.get(&app_key).unwrap_or(0);
        self.app_chunks.insert(app_key, refs + 1);
        if refs > 0 {
            return;
        }
        let stored = self.chunks.stored_len(&key).expect("a snapshot's page is stored");
        self.adjust_held(app, |held| held.stored = held.stored.saturating_add(u64::from(stored)));
        for (index, digest) in (page_entries(page, u32::MAX).start..).zip(self.page_digests(&key)) {
            self.hold_chunk(app, digest, chunk_len(record, index));
        }
    }

    /// A manifest entry of `app`'s naming chunk `hash` is gone: the app holds the bytes no more
    /// after its last (nor, for a delta, its base through it), the vault frees them after the last
    /// of any app. The bytes are those the chunk takes in the store where it knows them without
    /// reading it, else `len` (a legacy chunk's, as its snapshot's record gives it): an entry of
    /// a snapshot being built on a base may name the base's chunk at its index, of another length
    /// than its own record gives there.
    fn release_chunk(&mut self, app: Principal, hash: [u8; 32], len: u64) {
        // What the app holds through the chunk is counted off while the store still has it.
        self.release_held(app, hash, len);
        self.chunks.release(&hash);
    }

    /// What `app` holds through chunk `hash`, one of its holders fewer ([`Self::release_chunk`]).
    fn release_held(&mut self, app: Principal, hash: [u8; 32], len: u64) {
        let mut next = Some((hash, len));
        while let Some((hash, len)) = next {
            let key = AppChunkKey { app, hash };
            match self.app_chunks.get(&key) {
                Some(refs) if refs > 1 => {
                    self.app_chunks.insert(key, refs - 1);
                    return;
                }
                Some(_) => {
                    self.app_chunks.remove(&key);
                    let stored = self.chunks.stored_len(&hash).map_or(len, u64::from);
                    self.adjust_held(app, |held| held.stored = held.stored.saturating_sub(stored));
                }
                None => return,
            }
            next = self.chunks.delta_base(&hash).map(|base| (base, 0));
        }
    }

    /// A page entry of `app`'s naming page `key`, page `page` of snapshot `record`'s, is gone:
    /// after the app's last, it holds neither the page nor the chunks through it; after anyone's
    /// last, the page goes and releases each chunk it names. The chunks it named, if it read them
    /// (for either), else 0.
    fn release_page(&mut self, app: Principal, key: [u8; 32], record: Option<&SnapshotRecord>, page: u32) -> u32 {
        let app_key = AppChunkKey { app, hash: key };
        let last_for_app = match self.app_chunks.get(&app_key) {
            Some(refs) if refs > 1 => {
                self.app_chunks.insert(app_key, refs - 1);
                false
            }
            Some(_) => {
                self.app_chunks.remove(&app_key);
                true
            }
            None => false,
        };
        let last = self.chunks.refs(&key) == Some(1);
        let digests = if last_for_app || last { self.page_digests(&key) } else { Vec::new() };
        if last_for_app {
            let stored = self.chunks.stored_len(&key).map_or(0, u64::from);
            self.adjust_held(app, |held| held.stored = held.stored.saturating_sub(stored));
            for (index, digest) in (page_entries(page, u32::MAX).start..).zip(&digests) {
                self.release_held(app, *digest, record.map_or(0, |r| chunk_len(r, index)));
            }
        }
        if self.chunks.release(&key) == Released::Freed {
            for digest in &digests {
                self.chunks.release(digest);
            }
        }
        digests.len() as u32
    }

    /// The chunk digests stored page `key` holds.
    fn page_digests(&self, key: &[u8; 32]) -> Vec<[u8; 32]> {
        manifest_tree::digests(&self.chunks.get(key).expect("a snapshot's page is stored"))
    }

    /// Entry `index` of `snapshot`'s page there, if it has one: the chunk digest it names.
    fn page_entry(&self, snapshot: u64, index: u32) -> Option<[u8; 32]> {
        let key = self.manifest_pages.get(&ManifestKey { snapshot, index: page_of(index) })?;
        let mut digest = [0; 32];
        (self.chunks.read(&key, manifest_tree::offset_in_page(index), &mut digest)? == 32).then_some(digest)
    }

    /// Entry `index` of `snapshot`'s manifest: the chunk digest its own entry names, else its page.
    fn entry(&self, snapshot: u64, index: u32) -> Option<[u8; 32]> {
        self.manifests.get(&ManifestKey { snapshot, index }).or_else(|| self.page_entry(snapshot, index))
    }

    /// Entries `range` of `snapshot`'s manifest (within one page or many), each page read once:
    /// the chunk digest each names, `None` for one that names none.
    fn entries(&self, snapshot: u64, range: std::ops::Range<u32>) -> Vec<Option<[u8; 32]>> {
        let mut entries = vec![None; range.len()];
        let pages = ManifestKey { snapshot, index: page_of(range.start) }..ManifestKey { snapshot, index: page_of(range.end.saturating_sub(1)) + 1 };
        let pages: Vec<(u32, [u8; 32])> = if range.is_empty() { Vec::new() } else { self.manifest_pages.range(pages).map(|e| (e.key().index, e.value())).collect() };
        for (page, key) in pages {
            for (index, digest) in (page_entries(page, u32::MAX).start..).zip(self.page_digests(&key)) {
                if range.contains(&index) {
                    entries[(index - range.start) as usize] = Some(digest);
                }
            }
        }
        let own = self.manifests.range(ManifestKey { snapshot, index: range.start }..ManifestKey { snapshot, index: range.end });
        for entry in own {
            entries[(entry.key().index - range.start) as usize] = Some(entry.value());
        }
        entries
    }

    /// Chunks of `snapshot` below `chunks` that are not stored yet (a page at a time).
    pub fn missing_chunks(&self, snapshot: u64, chunks: u32) -> Vec<u32> {
        (0..manifest_tree::pages(chunks))
            .flat_map(|page| {
                let range = page_entries(page, chunks);
                let entries = self.entries(snapshot, range.clone());
                range.zip(entries).filter(|(_, entry)| entry.is_none()).map(|(index, _)| index)
            })
            .collect()
    }

    /// Digests of chunks `start .. start + count` of `snapshot`, up to the first it does not have.
    pub fn chunk_hashes(&self, snapshot: u64, start: u32, count: u32) -> Vec<Sha256> {
        self.entries(snapshot, start..start.saturating_add(count)).into_iter().map_while(|entry| entry.map(Sha256)).collect()
    }

    /// Chunk `index` of `snapshot`: its digest and bytes.
    pub fn chunk(&self, snapshot: u64, index: u32) -> Option<(Sha256, Vec<u8>)> {
        let hash = self.entry(snapshot, index)?;
        let data = self.chunks.get(&hash).expect("a manifest entry's chunk is stored");
        Some((Sha256(hash), data))
    }

    /// The manifest hash in `content_hash` of `snapshot` from its stored chunk digests; `None` if
    /// any is missing.
    pub fn manifest_hash(&self, snapshot: u64, content_hash: ContentHash, size: u64, chunk_size: u64) -> Option<Sha256> {
        let mut hasher = ManifestHasher::new(content_hash, size, chunk_size);
        let chunks = vault_api::manifest::try_chunk_count(size, chunk_size)?;
        for page in 0..manifest_tree::pages(chunks) {
            for entry in self.entries(snapshot, page_entries(page, chunks)) {
                hasher.push(&Sha256(entry?));
            }
        }
        hasher.finish()
    }

    /// Distinct chunks stored and their bytes, manifest pages among them (chunks of layouts
    /// before the chunk store count in the first only).
    pub fn chunk_totals(&self) -> (u64, u64) {
        let totals = self.chunks.totals();
        (totals.chunks + totals.legacy_chunks, totals.stored_bytes)
    }

    /// Seals at most `budget` pages of the complete snapshots whose manifests have entries of
    /// their own (`manifest_tree`): snapshot `first` first, if it is queued (the one just
    /// completed: the next snapshot of its app may build on it), then the oldest. A snapshot
    /// the chunk store has no room to seal stays as it is, read and released from its entries.
    /// Returns whether work remains.
    pub fn seal_step(&mut self, first: Option<u64>, mut budget: u32) -> bool {
        while budget > 0 {
            let queued = first.and_then(|id| self.sealing.get(&id).map(|app| (id, app)));
            let Some((id, PrincipalKey(app))) = queued.or_else(|| self.sealing.first_key_value()) else { return false };
            budget -= 1;
            // Only a complete snapshot is queued (`write_snapshot`), and it names every chunk.
            let record = self.snapshot(app, id).filter(|r| r.status == SnapshotStatus::Complete);
            let sealed = match (&record, record.as_ref().and_then(|r| self.first_own_entry(id, r.chunks))) {
                (Some(record), Some(index)) => self.seal_page(app, id, record, page_of(index)),
                _ => false,
            };
            if !sealed || record.is_some_and(|r| self.first_own_entry(id, r.chunks).is_none()) {
                self.sealing.remove(&id);
            }
        }
        !self.sealing.is_empty()
    }

    /// The index of `snapshot`'s first entry of its own below `chunks`.
    fn first_own_entry(&self, snapshot: u64, chunks: u32) -> Option<u32> {
        self.manifests.range(ManifestKey { snapshot, index: 0 }..ManifestKey { snapshot, index: chunks }).next().map(|e| e.key().index)
    }

    /// Whether a complete snapshot's manifest is still to be sealed.
    pub fn sealing_pending(&self) -> bool {
        !self.sealing.is_empty()
    }

    /// Turns the entries of page `page` of `app`'s complete snapshot `id` (its `record`) into one
    /// page: its own entries there over the page it referenced, if any. The new page is held
    /// before what it replaces is released (they name most of the same chunks). Whether it did:
    /// not if the chunk store has no room for the page (nothing changed).
    fn seal_page(&mut self, app: Principal, id: u64, record: &SnapshotRecord, page: u32) -> bool {
        let range = page_entries(page, record.chunks);
        let own: Vec<(u32, [u8; 32])> = self
            .manifests
            .range(ManifestKey { snapshot: id, index: range.start }..ManifestKey { snapshot: id, index: range.end })
            .map(|e| (e.key().index, e.value()))
            .collect();
        let digests: Vec<[u8; 32]> = self.entries(id, range).into_iter().map(|e| e.expect("a complete snapshot names every chunk")).collect();
        let bytes = digests.concat();
        let key = manifest_tree::page_key(&bytes);
        let page_key = ManifestKey { snapshot: id, index: page };
        let old = self.manifest_pages.get(&page_key);
        if old != Some(key) {
            let Ok(stored) = self.chunks.put(key, &bytes) else { return false };
            if stored == PutOutcome::Written {
                for digest in &digests {
                    self.chunks.add_ref(digest).expect("a manifest entry's chunk is stored, with fewer than 2^32 references");
                }
            }
            self.manifest_pages.insert(page_key, key);
            self.hold_page(app, key, record, page);
        }
        for (index, digest) in own {
            self.manifests.remove(&ManifestKey { snapshot: id, index });
            self.release_chunk(app, digest, chunk_len(record, index));
        }
        if let Some(old) = old.filter(|old| *old != key) {
            self.release_page(app, old, Some(record), page);
        }
        true
    }

    /// Marks a snapshot for deletion; its chunks are released by [`Self::delete_step`]. An app
    /// whose base it is forgets it.
    pub fn schedule_deletion(&mut self, app: Principal, id: u64) {
        let key = SnapshotKey { app, id };
        let Some(mut record) = self.snapshots.get(&key) else { return };
        if record.status == SnapshotStatus::Deleting {
            return;
        }
        record.status = SnapshotStatus::Deleting;
        let chunks = record.chunks;
        self.write_snapshot(key, Some(record));
        self.deletions.insert(id, Deletion { app, next_index: 0, chunks });
        if self.incremental(app).base.is_some_and(|base| base.snapshot == id) {
            self.forget_base(app);
        }
    }

    /// Releases about `budget` chunk references of pending deletions (a page counts one and each
    /// chunk it releases one): a snapshot's own entries first, then its pages; removes a
    /// snapshot's record once all are released. Returns whether work remains.
    pub fn delete_step(&mut self, mut budget: u32) -> bool {
        while budget > 0 {
            let Some((id, mut deletion)) = self.deletions.first_key_value() else { return false };
            let key = SnapshotKey { app: deletion.app, id };
            let record = self.snapshots.get(&key);
            while budget > 0 && deletion.next_index < deletion.chunks {
                let own = ManifestKey { snapshot: id, index: deletion.next_index }..ManifestKey { snapshot: id, index: deletion.chunks };
                let Some((index, hash)) = self.manifests.range(own).next().map(|e| (e.key().index, e.value())) else {
                    deletion.next_index = deletion.chunks;
                    break;
                };
                self.manifests.remove(&ManifestKey { snapshot: id, index });
                let len = record.as_ref().map_or(0, |r| chunk_len(r, index));
                self.release_chunk(deletion.app, hash, len);
                deletion.next_index = index + 1;
                budget -= 1;
            }
            let pages = ManifestKey { snapshot: id, index: 0 }..=ManifestKey { snapshot: id, index: u32::MAX };
            while budget > 0 && deletion.next_index >= deletion.chunks {
                let Some((page, page_key)) = self.manifest_pages.range(pages.clone()).next().map(|e| (e.key().index, e.value())) else { break };
                self.manifest_pages.remove(&ManifestKey { snapshot: id, index: page });
                let released = self.release_page(deletion.app, page_key, record.as_ref(), page);
                budget = budget.saturating_sub(1 + released);
            }
            let done = deletion.next_index >= deletion.chunks && self.manifest_pages.range(pages).next().is_none();
            if done {
                self.deletions.remove(&id);
                self.write_snapshot(key, None);
            } else {
                self.deletions.insert(id, deletion);
            }
        }
        !self.deletions.is_empty()
    }

    /// When the next scheduled snapshot of any app is due (the first entry of the index's).
    pub fn next_scheduled(&self) -> Option<u64> {
        match self.index.range(IndexKey::FIRST_DUE..).next().map(|e| *e.key()) {
            Some(IndexKey::Due { at, .. }) => Some(at),
            _ => None,
        }
    }

    /// Up to `n` apps whose scheduled snapshot is due at `now`, the earliest first.
    pub fn due_apps(&self, now: u64, n: usize) -> Vec<Principal> {
        self.index
            .range(IndexKey::FIRST_DUE..)
            .map(|e| *e.key())
            .map_while(|key| match key {
                IndexKey::Due { at, app } if at <= now => Some(app),
                _ => None,
            })
            .take(n)
            .collect()
    }

    pub fn deletions_pending(&self) -> bool {
        !self.deletions.is_empty()
    }

    // What apps and registrants hold and spend.

    /// What `app`'s snapshots hold, who is charged for it, and what the vault spent on it.
    pub fn app_usage(&self, app: Principal) -> AppUsageRecord {
        match self.usage.get(&UsageKey::App(app)) {
            Some(UsageRecord::App(usage)) => usage,
            _ => AppUsageRecord::default(),
        }
    }

    /// How many apps `registrant` has registered now, and what the apps charged to it hold.
    pub fn registrant_usage(&self, registrant: Principal) -> RegistrantUsageRecord {
        match self.usage.get(&UsageKey::Registrant(registrant)) {
            Some(UsageRecord::Registrant(usage)) => usage,
            _ => RegistrantUsageRecord::default(),
        }
    }

    /// The principals with apps registered or charged to them, in key order.
    pub fn registrants(&self) -> Vec<Principal> {
        let first = UsageKey::Registrant(Principal::management_canister());
        self.usage
            .range(first..)
            .filter_map(|e| match *e.key() {
                UsageKey::Registrant(registrant) => Some(registrant),
                UsageKey::App(_) => None,
            })
            .collect()
    }

    /// Adds `cycles` the vault spent on `app` at `now` to the app's spending of the day.
    pub fn spend_cycles(&mut self, app: Principal, now: u64, cycles: u128) {
        let mut usage = self.app_usage(app);
        usage.spend(now, cycles);
        self.put_app_usage(app, usage);
    }

    /// Takes back `cycles` counted at `spent_at` beyond what was spent on `app`, from the
    /// spending of that day (none once a later day began).
    pub fn refund_cycles(&mut self, app: Principal, spent_at: u64, cycles: u128) {
        let mut usage = self.app_usage(app);
        usage.refund(spent_at, cycles);
        self.put_app_usage(app, usage);
    }

    /// An app's usage is kept while it is registered, holds bytes, has completed snapshots or
    /// spent cycles (so unregistering does not start its day afresh).
    fn put_app_usage(&mut self, app: Principal, usage: AppUsageRecord) {
        if usage.is_empty() && !self.apps.contains_key(&PrincipalKey(app)) {
            self.usage.remove(&UsageKey::App(app));
        } else {
            self.usage.insert(UsageKey::App(app), UsageRecord::App(usage));
        }
    }

    /// A registrant's usage is kept while it has apps registered or charged to it holding bytes.
    fn put_registrant_usage(&mut self, registrant: Principal, usage: RegistrantUsageRecord) {
        if usage.apps == 0 && usage.held.is_empty() {
            self.usage.remove(&UsageKey::Registrant(registrant));
        } else {
            self.usage.insert(UsageKey::Registrant(registrant), UsageRecord::Registrant(usage));
        }
    }

    /// Changes what `app` holds, and so what its registrant's apps hold, by `change`.
    fn adjust_held(&mut self, app: Principal, change: impl Fn(&mut Held)) {
        let mut usage = self.app_usage(app);
        change(&mut usage.held);
        if let Some(registrant) = usage.registrant {
            let mut theirs = self.registrant_usage(registrant);
            change(&mut theirs.held);
            self.put_registrant_usage(registrant, theirs);
        }
        self.put_app_usage(app, usage);
    }

    /// `registrant` registered `app`: one more app of its, and what the app holds is charged to
    /// it, no longer to the principal that registered the app before (if another).
    fn charge_to(&mut self, app: Principal, registrant: Principal) {
        let mut usage = self.app_usage(app);
        let moved = usage.registrant != Some(registrant);
        if moved && let Some(before) = usage.registrant {
            let mut theirs = self.registrant_usage(before);
            theirs.held.remove(usage.held);
            self.put_registrant_usage(before, theirs);
        }
        let mut theirs = self.registrant_usage(registrant);
        theirs.apps += 1;
        if moved {
            theirs.held.add(usage.held);
        }
        self.put_registrant_usage(registrant, theirs);
        usage.registrant = Some(registrant);
        self.put_app_usage(app, usage);
    }

    /// Builds what layout 2 adds from a layout 1's records: each app's chunk references and the
    /// bytes it holds, from its snapshots and their manifests (each read once), and each
    /// registrant's apps, from the registrations. Apps unregistered before are charged to no one.
    pub fn count_usage(&mut self) {
        for (app, record) in self.apps() {
            self.charge_to(app, record.registered_by);
        }
        let snapshots: Vec<(SnapshotKey, SnapshotRecord)> = self.snapshots.iter().map(|e| (*e.key(), e.value())).collect();
        for (key, record) in snapshots {
            if record.status == SnapshotStatus::Building {
                self.adjust_held(key.app, |held| held.building = held.building.saturating_add(record.size));
            }
            let entries: Vec<(u32, [u8; 32])> = self
                .manifests
                .range(ManifestKey { snapshot: key.id, index: 0 }..=ManifestKey { snapshot: key.id, index: u32::MAX })
                .map(|e| (e.key().index, e.value()))
                .collect();
            for (index, hash) in entries {
                self.hold_chunk(key.app, hash, chunk_len(&record, index));
            }
        }
    }

    /// Builds what layout 7 adds from a layout 6's records: every complete snapshot queued for
    /// sealing (each record read once; the sealing runs after the upgrade, in steps).
    pub fn queue_sealing(&mut self) {
        let complete: Vec<SnapshotKey> = self.snapshots.iter().filter(|e| e.value().status == SnapshotStatus::Complete).map(|e| *e.key()).collect();
        for key in complete {
            self.sealing.insert(key.id, PrincipalKey(key.app));
        }
    }

    /// Builds what layout 3 adds from a layout 2's records: the index, from the apps and the
    /// snapshots, and each app's completed snapshots (each record read once).
    pub fn build_index(&mut self) {
        for (app, record) in self.apps() {
            self.reindex(Vec::new(), app_entries(app, &record));
        }
        // Counted per app first, then written once an app.
        let mut completed: std::collections::BTreeMap<Principal, (u32, u64)> = Default::default();
        let imports: Vec<IndexKey> = self
            .snapshots
            .iter()
            .filter_map(|e| {
                let (key, record) = (*e.key(), e.value());
                if record.status == SnapshotStatus::Complete {
                    let counted = completed.entry(key.app).or_default();
                    *counted = (counted.0.saturating_add(1), counted.1.saturating_add(record.size));
                }
                import_entry(key, &record)
            })
            .collect();
        self.reindex(Vec::new(), imports);
        for (app, (count, bytes)) in completed {
            let mut usage = self.app_usage(app);
            usage.completed = usage.completed.saturating_add(count);
            usage.completed_bytes = usage.completed_bytes.saturating_add(bytes);
            self.put_app_usage(app, usage);
        }
    }

    // Jobs.

    pub fn new_job_id(&mut self) -> u64 {
        self.next_id(true)
    }

    pub fn job(&self, id: u64) -> Option<JobRecord> {
        self.jobs.get(&id)
    }

    pub fn put_job(&mut self, job: JobRecord) {
        self.app_jobs.insert(AppJobKey { app: job.app, job: job.id }, ());
        self.jobs.insert(job.id, job);
    }

    /// An app's jobs, newest first.
    pub fn jobs_of(&self, app: Principal) -> Vec<JobRecord> {
        let mut ids: Vec<u64> = self
            .app_jobs
            .range(AppJobKey { app, job: 0 }..=AppJobKey { app, job: u64::MAX })
            .map(|e| e.key().job)
            .collect();
        ids.reverse();
        ids.into_iter().filter_map(|id| self.jobs.get(&id)).collect()
    }

    /// The ids of the apps' running jobs, in order (the index's keys alone: no job is read).
    pub fn running_job_ids(&self) -> Vec<u64> {
        self.index
            .keys_range(IndexKey::FIRST_RUNNING..)
            .filter_map(|key| match key {
                IndexKey::Running { job, .. } => Some(job),
                _ => None,
            })
            .collect()
    }

    /// Jobs not finished yet, by id (the index's running jobs).
    pub fn active_jobs(&self) -> Vec<JobRecord> {
        self.running_job_ids().into_iter().filter_map(|id| self.jobs.get(&id)).filter(|j| !j.is_finished()).collect()
    }

    /// Keeps the newest [`JOB_LOG_LENGTH`] finished jobs of `app`.
    pub fn prune_job_log(&mut self, app: Principal) {
        let finished: Vec<u64> = self.jobs_of(app).into_iter().filter(|j| j.is_finished()).map(|j| j.id).collect();
        for id in finished.into_iter().skip(JOB_LOG_LENGTH) {
            self.jobs.remove(&id);
            self.app_jobs.remove(&AppJobKey { app, job: id });
        }
    }

    /// Removes an app's job log (on unregistration).
    pub fn remove_jobs_of(&mut self, app: Principal) {
        for job in self.jobs_of(app) {
            self.jobs.remove(&job.id);
            self.app_jobs.remove(&AppJobKey { app, job: job.id });
        }
    }
}

/// The index entries an app's record has: its next scheduled snapshot, its running job.
fn app_entries(app: Principal, record: &AppRecord) -> Vec<IndexKey> {
    let due = (record.next_due > 0).then_some(IndexKey::Due { at: record.next_due, app });
    let running = record.running_job.map(|job| IndexKey::Running { job, app });
    due.into_iter().chain(running).collect()
}

/// The index entry of a snapshot record that is an import in progress.
fn import_entry(key: SnapshotKey, record: &SnapshotRecord) -> Option<IndexKey> {
    let open = record.status == SnapshotStatus::Building && record.trigger == vault_api::service::Trigger::Import;
    open.then_some(IndexKey::Import { started_at: record.started_at, snapshot: key })
}

/// Bytes of chunk `index` of the snapshot `record` describes.
fn chunk_len(record: &SnapshotRecord, index: u32) -> u64 {
    let range = chunk_range(record.size, record.chunk_size, index);
    range.end.saturating_sub(range.start)
}

/// Up to `n` keys of `map` after `after` in principal order, from the first when there is none
/// after it (a range scan).
fn keys_after<V: Storable>(map: &StableBTreeMap<PrincipalKey, V, Memory>, after: Option<Principal>, n: usize) -> Vec<Principal> {
    let next: Vec<Principal> = match after {
        Some(after) => map.range((std::ops::Bound::Excluded(PrincipalKey(after)), std::ops::Bound::Unbounded)).take(n).map(|e| e.key().0).collect(),
        None => Vec::new(),
    };
    if !next.is_empty() {
        return next;
    }
    map.keys().take(n).map(|k| k.0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault_api::protocol::StateKind;
    use vault_api::service::Trigger;

    fn state() -> State {
        State::init(DefaultMemoryImpl::default())
    }

    fn app() -> Principal {
        Principal::from_slice(&[7; 10])
    }

    /// A snapshot of `chunks` chunks of 4 bytes.
    fn record(status: SnapshotStatus, taken_at: u64, chunks: u32) -> SnapshotRecord {
        SnapshotRecord {
            status,
            job: 1,
            taken_at,
            size: chunks as u64 * 4,
            sha256: Sha256::default(),
            module_hash: None,
            state_kind: StateKind::Serde,
            chunks,
            chunk_size: 4,
            started_at: 0,
            duration: 0,
            transfer_cycles: 0,
            trigger: Trigger::Manual,
            content_hash: ContentHash::Sha256,
        }
    }

    fn complete(state: &mut State, id: u64, chunks: u32) {
        state.put_snapshot(app(), id, record(SnapshotStatus::Complete, id, chunks));
    }

    fn register(state: &mut State, app: Principal, registrant: Principal) {
        state.put_app(app, AppRecord { registered_by: registrant, ..crate::storable::tests::sample_app() });
    }

    #[test]
    fn an_app_holds_each_chunk_once_however_many_of_its_snapshots_name_it() {
        let mut s = state();
        let other = Principal::from_slice(&[8; 10]);
        for snapshot in [1, 2] {
            s.store_chunk(app(), snapshot, 0, &HashedChunk::new(ContentHash::Sha256, b"same"));
            s.store_chunk(app(), snapshot, 1, &HashedChunk::new(ContentHash::Sha256, b"same"));
            complete(&mut s, snapshot, 2);
        }
        s.store_chunk(other, 3, 0, &HashedChunk::new(ContentHash::Sha256, b"same"));
        assert_eq!(s.app_usage(app()).held, Held { stored: 4, building: 0 }, "four manifest entries, four bytes");
        assert_eq!(s.app_usage(other).held.stored, 4, "another app holds it too");
        s.schedule_deletion(app(), 1);
        s.delete_step(100);
        assert_eq!(s.app_usage(app()).held.stored, 4, "snapshot 2 still names it");
        s.schedule_deletion(app(), 2);
        s.delete_step(100);
        assert_eq!(s.app_usage(app()), AppUsageRecord::default(), "an unregistered app holding nothing has no record");
        assert_eq!((s.chunk_totals().0, s.app_usage(other).held.stored), (1, 4), "the other app's is kept");
    }

    #[test]
    fn a_chunk_replaced_at_its_index_is_released() {
        let mut s = state();
        s.put_snapshot(app(), 1, record(SnapshotStatus::Building, 1, 1));
        s.store_chunk(app(), 1, 0, &HashedChunk::new(ContentHash::Sha256, b"abcd"));
        s.store_chunk(app(), 1, 0, &HashedChunk::new(ContentHash::Sha256, b"efgh"));
        assert_eq!((s.app_usage(app()).held.stored, s.chunk_totals().0), (4, 1));
    }

    #[test]
    fn a_snapshot_being_built_counts_whole_until_it_completes_or_goes() {
        let mut s = state();
        s.put_snapshot(app(), 1, record(SnapshotStatus::Building, 1, 2));
        s.store_chunk(app(), 1, 0, &HashedChunk::new(ContentHash::Sha256, b"abcd"));
        assert_eq!(s.app_usage(app()).held, Held { stored: 4, building: 8 });
        s.complete_snapshot(app(), 1, Sha256::default(), 0, 0);
        assert_eq!(s.app_usage(app()).held, Held { stored: 4, building: 0 });
        s.put_snapshot(app(), 2, record(SnapshotStatus::Building, 2, 3));
        assert_eq!(s.app_usage(app()).held.building, 12);
        s.schedule_deletion(app(), 2);
        assert_eq!(s.app_usage(app()).held, Held { stored: 4, building: 0 });
    }

    #[test]
    fn a_registrant_is_charged_for_its_apps_until_another_registers_them() {
        let mut s = state();
        let (first, second) = (Principal::from_slice(&[21; 10]), Principal::from_slice(&[22; 10]));
        register(&mut s, app(), first);
        register(&mut s, app(), first);
        s.store_chunk(app(), 1, 0, &HashedChunk::new(ContentHash::Sha256, b"abcd"));
        complete(&mut s, 1, 1);
        let holding = |apps, stored| RegistrantUsageRecord { apps, held: Held { stored, building: 0 } };
        assert_eq!((s.registrant_usage(first), s.app_usage(app()).registrant), (holding(1, 4), Some(first)), "saved twice, registered once");
        s.remove_app(app());
        assert_eq!(s.registrant_usage(first), holding(0, 4), "what its snapshot holds stays charged");
        register(&mut s, app(), second);
        assert_eq!((s.registrant_usage(first), s.registrant_usage(second)), (holding(0, 0), holding(1, 4)));
        assert_eq!(s.registrants(), vec![second]);
        s.schedule_deletion(app(), 1);
        s.delete_step(10);
        s.remove_app(app());
        assert_eq!((s.registrant_usage(second), s.app_usage(app())), (holding(0, 0), AppUsageRecord::default()));
        assert!(s.registrants().is_empty(), "nothing left to charge");
    }

    #[test]
    fn cycles_spent_add_up_by_day() {
        let mut s = state();
        register(&mut s, app(), app());
        s.spend_cycles(app(), 10, 5);
        s.spend_cycles(app(), 20, 6);
        assert_eq!(s.app_usage(app()).cycles_today(30), 11);
        assert_eq!(s.registrant_usage(app()).apps, 1, "an app registered by itself has both records");
        s.refund_cycles(app(), 30, 4);
        s.remove_app(app());
        assert_eq!(s.app_usage(app()).cycles_today(30), 7, "an unregistered app holding nothing keeps its spending");
        register(&mut s, app(), app());
        assert_eq!(s.app_usage(app()).cycles_today(30), 7, "registered again, it spends on from there");
    }

    #[test]
    fn a_retired_app_keeps_the_controllers_the_vault_sees_and_the_sweep_goes_round_them() {
        let mut s = state();
        let [a, b, c] = [1u8, 2, 3].map(|n| Principal::from_slice(&[n; 10]));
        let (old, new) = (Principal::from_slice(&[8; 29]), Principal::from_slice(&[9; 29]));
        for app in [a, b, c] {
            s.retire(app, RetiredRecord { by: old, at: 1, controllers: vec![old] });
        }
        s.note_canister_info(b, vec![new], None);
        assert_eq!(s.retired(b).map(|r| r.controllers), Some(vec![new]));
        assert_eq!(s.retired(a).map(|r| r.controllers), Some(vec![old]));
        assert_eq!(s.retired_after(None, 2), [a, b]);
        assert_eq!(s.retired_after(Some(b), 2), [c]);
        assert_eq!(s.retired_after(Some(c), 2), [a, b], "round again from the first");
        s.unretire(b);
        assert_eq!((s.retired(b), s.retired_after(Some(a), 5)), (None, vec![c]));
    }

    #[test]
    fn identical_chunks_are_stored_once_and_freed_at_the_last_reference() {
        let mut s = state();
        for snapshot in [1, 2] {
            s.store_chunk(app(), snapshot, 0, &HashedChunk::new(ContentHash::Sha256, b"same"));
            s.store_chunk(app(), snapshot, 1, &HashedChunk::new(ContentHash::Sha256, format!("own{snapshot}").as_bytes()));
            complete(&mut s, snapshot, 2);
        }
        assert_eq!(s.chunk_totals().0, 3, "the shared chunk is stored once");
        s.schedule_deletion(app(), 1);
        assert!(!s.delete_step(100));
        assert_eq!(s.chunk_totals().0, 2);
        assert_eq!(s.chunk(2, 0).unwrap().1, b"same".to_vec(), "still used by snapshot 2");
        assert!(s.snapshot(app(), 1).is_none());
        s.schedule_deletion(app(), 2);
        s.delete_step(100);
        assert_eq!(s.chunk_totals(), (0, 0));
    }

    #[test]
    fn storing_a_chunk_again_is_a_no_op() {
        let mut s = state();
        s.store_chunk(app(), 1, 0, &HashedChunk::new(ContentHash::Sha256, b"abc"));
        s.store_chunk(app(), 1, 0, &HashedChunk::new(ContentHash::Sha256, b"abc"));
        complete(&mut s, 1, 1);
        s.schedule_deletion(app(), 1);
        s.delete_step(10);
        assert_eq!(s.chunk_totals().0, 0, "one reference, not two");
    }

    #[test]
    fn deletion_runs_in_bounded_steps() {
        let mut s = state();
        for i in 0..10 {
            s.store_chunk(app(), 1, i, &HashedChunk::new(ContentHash::Sha256, &[i as u8]));
        }
        complete(&mut s, 1, 10);
        s.schedule_deletion(app(), 1);
        assert!(s.delete_step(4));
        assert_eq!(s.chunk_totals().0, 6);
        assert!(s.delete_step(4));
        assert!(!s.delete_step(4));
        assert_eq!(s.chunk_totals().0, 0);
        assert!(s.snapshots_of(app()).is_empty());
    }

    #[test]
    fn a_snapshots_state_layout_goes_when_its_deletion_completes() {
        let mut s = state();
        for i in 0..2 {
            s.store_chunk(app(), 1, i, &HashedChunk::new(ContentHash::Sha256, &[i as u8]));
        }
        complete(&mut s, 1, 2);
        complete(&mut s, 2, 0);
        s.put_snapshot_layout(app(), 1, 4);
        assert_eq!((s.snapshot_layout(app(), 1), s.snapshot_layout(app(), 2)), (Some(4), None));
        s.schedule_deletion(app(), 1);
        assert!(s.delete_step(1));
        assert_eq!(s.snapshot_layout(app(), 1), Some(4), "kept while the deletion runs");
        assert!(!s.delete_step(1));
        assert_eq!(s.snapshot_layout(app(), 1), None);
    }

    #[test]
    fn missing_chunks_and_hash_pages_are_range_scans() {
        let mut s = state();
        for i in [0, 2, 3] {
            s.store_chunk(app(), 1, i, &HashedChunk::new(ContentHash::Sha256, &[i as u8]));
        }
        s.store_chunk(app(), 2, 1, &HashedChunk::new(ContentHash::Sha256, b"other snapshot"));
        assert_eq!(s.missing_chunks(1, 5), vec![1, 4]);
        assert_eq!(s.chunk_hashes(1, 2, 10), vec![Sha256::of(&[2]), Sha256::of(&[3])]);
    }

    #[test]
    fn the_manifest_hash_needs_every_chunk_in_order() {
        let mut s = state();
        s.store_chunk(app(), 1, 0, &HashedChunk::new(ContentHash::Sha256, b"abcd"));
        assert_eq!(s.manifest_hash(1, ContentHash::Sha256, 6, 4), None);
        s.store_chunk(app(), 1, 1, &HashedChunk::new(ContentHash::Sha256, b"ef"));
        let expected = vault_api::manifest::image_hash(ContentHash::Sha256, b"abcdef", 4);
        assert_eq!(s.manifest_hash(1, ContentHash::Sha256, 6, 4), Some(expected));
        for (snapshot, hash) in [(2, ContentHash::Blake3), (3, ContentHash::Sha256)] {
            s.store_chunk(app(), snapshot, 0, &HashedChunk::new(hash, b"abcd"));
            s.store_chunk(app(), snapshot, 1, &HashedChunk::new(hash, b"ef"));
        }
        let blake3 = vault_api::manifest::image_hash(ContentHash::Blake3, b"abcdef", 4);
        assert_eq!(s.manifest_hash(2, ContentHash::Blake3, 6, 4), Some(blake3));
        assert_eq!(s.chunk(2, 0).map(|(digest, _)| digest), Some(ContentHash::Blake3.digest(b"abcd")));
        assert_eq!(s.chunk_totals().0, 4, "the same bytes in SHA-256 and BLAKE3 are two chunks");
    }

    #[test]
    fn apps_are_swept_round_robin_in_pages() {
        let mut s = state();
        let apps: Vec<Principal> = (1..=5u8).map(|i| Principal::from_slice(&[i; 10])).collect();
        for &app in &apps {
            s.put_app(app, crate::storable::tests::sample_app());
        }
        assert_eq!(s.apps_after(None, 2), apps[..2]);
        assert_eq!(s.apps_after(Some(apps[1]), 2), apps[2..4]);
        assert_eq!(s.apps_after(Some(apps[3]), 2), apps[4..]);
        assert_eq!(s.apps_after(Some(apps[4]), 2), apps[..2], "after the last, the first again");
    }

    #[test]
    fn the_index_finds_due_apps_imports_in_progress_and_running_jobs_in_order() {
        let mut s = state();
        let [a, b, c] = [1u8, 2, 3].map(|n| Principal::from_slice(&[n; 10]));
        let sample = crate::storable::tests::sample_app;
        s.put_app(a, AppRecord { next_due: 30, running_job: None, ..sample() });
        s.put_app(b, AppRecord { next_due: 10, running_job: Some(5), ..sample() });
        s.put_app(c, AppRecord { next_due: 0, running_job: None, ..sample() });
        assert_eq!((s.next_scheduled(), s.due_apps(9, 10), s.due_apps(30, 10), s.due_apps(30, 1)), (Some(10), vec![], vec![b, a], vec![b]));
        s.put_app(b, AppRecord { next_due: 40, running_job: Some(5), ..sample() });
        assert_eq!((s.next_scheduled(), s.due_apps(35, 10)), (Some(30), vec![a]), "b moved to 40");
        s.remove_app(a);
        assert_eq!(s.next_scheduled(), Some(40));

        s.put_job(JobRecord::new(5, b, vault_api::service::JobKind::Snapshot { trigger: Trigger::Manual }, 0));
        assert_eq!(s.active_jobs().iter().map(|j| j.id).collect::<Vec<_>>(), [5]);
        s.free_app(b, 5);
        assert!(s.active_jobs().is_empty());

        let import = |started_at| SnapshotRecord { trigger: Trigger::Import, started_at, ..record(SnapshotStatus::Building, 1, 1) };
        s.put_snapshot(c, 1, import(100));
        s.put_snapshot(c, 2, import(50));
        s.put_snapshot(c, 3, SnapshotRecord { started_at: 10, ..record(SnapshotStatus::Building, 1, 1) });
        assert_eq!(s.next_import_expiry(10), Some(60), "a dump is no import");
        assert_eq!(s.expire_imports(200, 10, 1), 1, "one a call");
        assert_eq!(s.snapshot(c, 2).map(|r| r.status), Some(SnapshotStatus::Deleting), "the oldest first");
        assert_eq!(s.next_import_expiry(10), Some(110));
        s.complete_snapshot(c, 1, Sha256::default(), 0, 0);
        assert_eq!((s.next_import_expiry(10), s.expire_imports(u64::MAX, 0, 10)), (None, 0));
    }

    #[test]
    fn an_apps_completed_snapshots_are_counted_as_they_complete_and_go() {
        let mut s = state();
        s.put_snapshot(app(), 1, record(SnapshotStatus::Building, 1, 2));
        complete(&mut s, 2, 3);
        assert_eq!((s.app_usage(app()).completed, s.app_usage(app()).completed_bytes), (1, 12));
        s.complete_snapshot(app(), 1, Sha256::default(), 0, 0);
        assert_eq!((s.app_usage(app()).completed, s.app_usage(app()).completed_bytes), (2, 20));
        s.schedule_deletion(app(), 2);
        assert_eq!((s.app_usage(app()).completed, s.app_usage(app()).completed_bytes), (1, 8), "a snapshot being deleted is not listed");
        s.schedule_deletion(app(), 1);
        s.delete_step(10);
        assert_eq!(s.app_usage(app()), AppUsageRecord::default());
    }

    #[test]
    fn a_snapshot_built_on_another_references_its_chunks_until_its_own_replace_them() {
        let mut s = state();
        register(&mut s, app(), app());
        for (index, bytes) in [b"aaaa", b"bbbb", b"cc\0\0"].iter().enumerate() {
            s.store_chunk(app(), 1, index as u32, &HashedChunk::new(ContentHash::Blake3, &bytes[..]));
        }
        complete(&mut s, 1, 3);
        s.put_snapshot(app(), 2, record(SnapshotStatus::Building, 2, 3));
        let held = s.app_usage(app()).held.stored;
        assert!(s.copy_entries(app(), 1, 2, 0..2) && s.copy_entries(app(), 1, 2, 1..3), "the second step keeps the entry it finds");
        assert_eq!((s.app_usage(app()).held.stored, s.chunk_totals().0), (held, 3), "no byte more is held or stored");
        assert_eq!(s.chunk(2, 2), s.chunk(1, 2));
        // Chunk 1 rebuilt, chunk 2 rebuilt shorter than the base's.
        for (index, rebuilt) in [(1, &b"bbBB"[..]), (2, b"c")] {
            let (base_hash, base_chunk) = s.chunk(2, index).unwrap();
            s.store_rebuilt_chunk(app(), 2, index, &HashedChunk::new(ContentHash::Blake3, rebuilt), (base_hash, &base_chunk));
        }
        assert_eq!((s.app_usage(app()).held.stored, s.chunk_totals().0), (held + 5, 5), "chunks of less than a page are stored whole");
        s.schedule_deletion(app(), 1);
        s.delete_step(100);
        assert_eq!(s.chunk(2, 0).map(|c| c.1), Some(b"aaaa".to_vec()), "the base's chunk stays with the snapshot built on it");
        assert_eq!(s.app_usage(app()).held.stored, 4 + 4 + 1);
        s.schedule_deletion(app(), 2);
        s.delete_step(100);
        assert_eq!((s.chunk_totals(), s.app_usage(app()).held.stored), ((0, 0), 0));
        assert!(!s.copy_entries(app(), 1, 3, 0..1), "a base gone is copied from no more");
    }

    #[test]
    fn a_chunk_rebuilt_as_a_delta_holds_its_base_for_every_app_naming_it_until_the_last_goes() {
        const PAGE: usize = vault_api::protocol::PAGE_SIZE as usize;
        let mut s = state();
        let other = Principal::from_slice(&[9; 10]);
        register(&mut s, app(), app());
        register(&mut s, other, other);
        let base: Vec<Vec<u8>> = (0..2u8).map(|n| vec![n + 1; 4 * PAGE]).collect();
        for (index, bytes) in base.iter().enumerate() {
            s.store_chunk(app(), 1, index as u32, &HashedChunk::new(ContentHash::Blake3, bytes));
        }
        complete(&mut s, 1, 2);
        s.put_snapshot(app(), 2, record(SnapshotStatus::Building, 2, 2));
        assert!(s.copy_entries(app(), 1, 2, 0..2));
        let mut rebuilt = base[1].clone();
        rebuilt[2 * PAGE] = 0xff;
        let (base_hash, base_chunk) = s.chunk(2, 1).unwrap();
        s.store_rebuilt_chunk(app(), 2, 1, &HashedChunk::new(ContentHash::Blake3, &rebuilt), (base_hash, &base_chunk));
        let delta = 1 + PAGE as u64;
        assert_eq!(s.chunks.totals().delta_chunks, 1);
        assert_eq!((s.app_usage(app()).held.stored, s.chunk_totals()), (8 * PAGE as u64 + delta, (3, 8 * PAGE as u64 + delta)));
        // Another app's snapshot of the same bytes shares the delta, and holds its base through it.
        s.put_snapshot(other, 3, record(SnapshotStatus::Building, 3, 1));
        s.store_chunk(other, 3, 0, &HashedChunk::new(ContentHash::Blake3, &rebuilt));
        assert_eq!((s.app_usage(other).held.stored, s.chunk_totals().0), (4 * PAGE as u64 + delta, 3));
        s.schedule_deletion(app(), 1);
        s.delete_step(100);
        assert_eq!(s.app_usage(app()).held.stored, 8 * PAGE as u64 + delta, "the base's chunks stay through snapshot 2");
        assert!(s.chunk(2, 1).unwrap().1 == rebuilt);
        s.schedule_deletion(app(), 2);
        s.delete_step(100);
        assert_eq!((s.app_usage(app()).held.stored, s.app_usage(other).held.stored), (0, 4 * PAGE as u64 + delta));
        assert_eq!(s.chunk_totals(), (2, 4 * PAGE as u64 + delta), "the delta and its base stay for the other app");
        assert!(s.chunk(3, 0).unwrap().1 == rebuilt);
        s.schedule_deletion(other, 3);
        s.delete_step(100);
        assert_eq!((s.app_usage(other).held.stored, s.chunk_totals()), (0, (0, 0)));
        assert_eq!(s.app_chunks.len(), 0);
    }

    #[test]
    fn a_snapshot_dropped_before_it_rebuilds_a_base_chunk_of_another_length_releases_what_that_chunk_holds() {
        // Base 1: 6 bytes, its last chunk 2 long; snapshot 2 grows to 8 and fails before it
        // rebuilds chunk 1, with the base gone first. And the other way: a shorter image.
        for (base, new, base_chunks, new_size) in [(&[&b"aaaa"[..], b"bb"], 2, 2, 8), (&[&b"aaaa"[..], b"bbbb"], 2, 2, 6)] {
            let mut s = state();
            register(&mut s, app(), app());
            for (index, bytes) in base.iter().enumerate() {
                s.store_chunk(app(), 1, index as u32, &HashedChunk::new(ContentHash::Blake3, bytes));
            }
            let base_size = base.iter().map(|b| b.len() as u64).sum();
            s.put_snapshot(app(), 1, SnapshotRecord { size: base_size, ..record(SnapshotStatus::Complete, 1, base_chunks) });
            s.put_snapshot(app(), 2, SnapshotRecord { size: new_size, ..record(SnapshotStatus::Building, 2, new) });
            assert!(s.copy_entries(app(), 1, 2, 0..2));
            s.schedule_deletion(app(), 1);
            s.delete_step(100);
            assert_eq!(s.app_usage(app()).held.stored, base_size, "snapshot 2 names the base's chunks");
            s.schedule_deletion(app(), 2);
            s.delete_step(100);
            assert_eq!((s.chunk_totals(), s.app_usage(app()).held.stored), ((0, 0), 0), "a base of {base_size} bytes, an image of {new_size}");
        }
    }

    #[test]
    fn an_apps_base_goes_with_its_snapshot_and_its_registration() {
        let mut s = state();
        register(&mut s, app(), app());
        assert_eq!(s.incremental(app()), IncrementalRecord::default());
        s.set_max_incrementals(app(), 3);
        s.keep_base(app(), AppBase { snapshot: 1, incrementals: 2 });
        assert_eq!(s.incremental(app()), IncrementalRecord { max_incrementals: 3, base: Some(AppBase { snapshot: 1, incrementals: 2 }) });
        complete(&mut s, 1, 1);
        complete(&mut s, 2, 1);
        s.schedule_deletion(app(), 2);
        assert!(s.incremental(app()).base.is_some(), "another snapshot went");
        s.schedule_deletion(app(), 1);
        assert_eq!(s.incremental(app()), IncrementalRecord { max_incrementals: 3, base: None });
        s.keep_base(app(), AppBase { snapshot: 3, incrementals: 0 });
        s.remove_app(app());
        assert_eq!(s.incremental(app()), IncrementalRecord::default(), "unregistered, it has no record");
        s.keep_base(app(), AppBase { snapshot: 4, incrementals: 0 });
        assert_eq!(s.incremental(app()), IncrementalRecord::default(), "nor gets one");
    }

    #[test]
    fn ids_are_unique_and_survive_reopening() {
        let memory = DefaultMemoryImpl::default();
        let mut s = State::init(memory.clone());
        assert_eq!((s.new_job_id(), s.new_job_id(), s.new_snapshot_id()), (1, 2, 1));
        let mut s = State::init(memory);
        assert_eq!(s.new_job_id(), 3);
    }

    /// Chunks of 4 bytes, `from ..` their index written out.
    fn chunk_bytes(count: u32, from: u32) -> Vec<Vec<u8>> {
        (from..from + count).map(|i| format!("{i:04}").into_bytes()).collect()
    }

    /// Stores `chunks` as snapshot `id` of `app()` from index `at` on.
    fn store_all(s: &mut State, id: u64, at: u32, chunks: &[Vec<u8>]) {
        for (index, chunk) in (at..).zip(chunks) {
            s.store_chunk(app(), id, index, &HashedChunk::new(ContentHash::Sha256, chunk));
        }
    }

    /// How snapshot `id`'s manifest is kept: its own entries and its pages.
    fn kept(s: &State, id: u64) -> (usize, Vec<[u8; 32]>) {
        let own = s.manifests.range(ManifestKey { snapshot: id, index: 0 }..=ManifestKey { snapshot: id, index: u32::MAX }).count();
        let pages = s.manifest_pages.range(ManifestKey { snapshot: id, index: 0 }..=ManifestKey { snapshot: id, index: u32::MAX }).map(|e| e.value()).collect();
        (own, pages)
    }

    type Read = (Option<Sha256>, Vec<Sha256>, Vec<Option<(Sha256, Vec<u8>)>>, Vec<u32>);

    /// Everything a reader of snapshot `id` of `chunks` chunks of 4 bytes sees.
    fn read_all(s: &State, id: u64, chunks: u32) -> Read {
        let hash = s.manifest_hash(id, ContentHash::Sha256, chunks as u64 * 4, 4);
        (hash, s.chunk_hashes(id, 0, 10_000), (0..chunks + 1).map(|i| s.chunk(id, i)).collect(), s.missing_chunks(id, chunks + 2))
    }

    /// Deletes `snapshots` in steps of `budget`; then nothing is stored and no app holds anything.
    fn delete_to_nothing(s: &mut State, snapshots: &[(Principal, u64)], budget: u32) {
        for &(app, id) in snapshots {
            s.schedule_deletion(app, id);
        }
        while s.delete_step(budget) {}
        assert_eq!(s.chunk_totals(), (0, 0));
        for &(app, _) in snapshots {
            assert_eq!(s.app_usage(app), AppUsageRecord::default());
        }
    }

    /// Bytes of the pages of a manifest of `chunks` entries.
    fn page_bytes(chunks: u32) -> u64 {
        chunks as u64 * 32
    }

    #[test]
    fn a_sealed_manifest_reads_as_before_in_pages_and_deletes_to_nothing() {
        let mut s = state();
        store_all(&mut s, 1, 0, &chunk_bytes(300, 0));
        complete(&mut s, 1, 300);
        let before = read_all(&s, 1, 300);
        assert_eq!((before.1.len(), &before.3), (300, &vec![300, 301]));
        assert_eq!((kept(&s, 1).0, s.app_usage(app()).held.stored, s.sealing_pending()), (300, 1200, true));
        // Sealed a page a step: every step reads the same.
        for step in 1..=3 {
            assert_eq!(s.seal_step(None, 1), step < 3, "step {step}");
            assert_eq!(read_all(&s, 1, 300), before, "after step {step}");
        }
        assert!(!s.seal_step(None, 1) && !s.sealing_pending());
        let (own, pages) = kept(&s, 1);
        assert_eq!((own, pages.len()), (0, 3), "three pages: 128, 128 and 44 entries");
        assert_eq!(s.chunk_totals(), (303, 1200 + page_bytes(300)));
        assert_eq!(s.app_usage(app()).held.stored, 1200 + page_bytes(300), "an app holds its pages as its chunks");
        delete_to_nothing(&mut s, &[(app(), 1)], 100);
    }

    #[test]
    fn an_incremental_snapshot_adds_the_pages_it_changes_and_shares_the_rest() {
        let mut s = state();
        store_all(&mut s, 1, 0, &chunk_bytes(300, 0));
        complete(&mut s, 1, 300);
        s.seal_step(None, 10);
        let base = read_all(&s, 1, 300);
        // Snapshot 2 starts as 1 (its three pages, no entry of its own), then one chunk changes.
        s.put_snapshot(app(), 2, record(SnapshotStatus::Building, 2, 300));
        assert!(s.copy_entries(app(), 1, 2, 0..300));
        assert_eq!(kept(&s, 2), (0, kept(&s, 1).1), "three page references, no entry");
        assert_eq!(read_all(&s, 2, 300).1, base.1);
        store_all(&mut s, 2, 130, &[b"new!".to_vec()]);
        assert_eq!(s.chunk(2, 130).map(|c| c.1), Some(b"new!".to_vec()), "its own entry wins over the page's");
        s.put_snapshot(app(), 2, record(SnapshotStatus::Complete, 2, 300));
        s.seal_step(None, 10);
        let (own, pages) = kept(&s, 2);
        let base_pages = kept(&s, 1).1;
        assert_eq!((own, pages[0] == base_pages[0], pages[1] == base_pages[1], pages[2] == base_pages[2]), (0, true, false, true));
        assert_eq!(s.chunk_totals().0, 300 + 1 + 3 + 1, "one chunk and one page more");
        let mut expected = base.1.clone();
        expected[130] = Sha256::of(b"new!");
        let incremental = read_all(&s, 2, 300);
        assert_eq!(incremental.1, expected);
        // The base goes: its own page 1 and chunk 130 with it; snapshot 2 reads as it did.
        s.schedule_deletion(app(), 1);
        while s.delete_step(7) {}
        assert_eq!(read_all(&s, 2, 300), incremental);
        assert_eq!(s.chunk_totals(), (300 + 3, 1200 + page_bytes(300)));
        assert_eq!(s.app_usage(app()).held.stored, 1200 + page_bytes(300));
        delete_to_nothing(&mut s, &[(app(), 2)], 7);
    }

    #[test]
    fn a_snapshot_built_on_one_not_sealed_yet_shares_its_pages_once_both_are() {
        let mut s = state();
        store_all(&mut s, 1, 0, &chunk_bytes(200, 0));
        complete(&mut s, 1, 200);
        s.put_snapshot(app(), 2, record(SnapshotStatus::Building, 2, 201));
        assert!(s.copy_entries(app(), 1, 2, 0..200), "entries of its own are copied as entries");
        assert_eq!(kept(&s, 2).0, 200);
        store_all(&mut s, 2, 200, &[b"more".to_vec()]);
        s.put_snapshot(app(), 2, record(SnapshotStatus::Complete, 2, 201));
        s.seal_step(None, 10);
        let (pages_1, pages_2) = (kept(&s, 1).1, kept(&s, 2).1);
        assert_eq!((pages_1[0] == pages_2[0], pages_1[1] == pages_2[1]), (true, false), "the first page is the same page, stored once");
        assert_eq!(s.chunk_totals().0, 201 + 3);
        // Another app's identical snapshot shares the pages and holds them itself.
        let other = Principal::from_slice(&[8; 10]);
        for (index, chunk) in (0..).zip(chunk_bytes(200, 0)) {
            s.store_chunk(other, 3, index, &HashedChunk::new(ContentHash::Sha256, &chunk));
        }
        s.put_snapshot(other, 3, record(SnapshotStatus::Complete, 3, 200));
        s.seal_step(None, 10);
        assert_eq!((kept(&s, 3).1, s.chunk_totals().0), (pages_1.clone(), 201 + 3));
        assert_eq!(s.app_usage(other).held.stored, 800 + page_bytes(200));
        delete_to_nothing(&mut s, &[(app(), 1), (app(), 2), (other, 3)], 50);
    }

    #[test]
    fn the_snapshot_just_completed_is_sealed_first() {
        let mut s = state();
        for id in [1, 2] {
            store_all(&mut s, id, 0, &chunk_bytes(200, 0));
            complete(&mut s, id, 200);
        }
        assert!(s.seal_step(Some(2), 2));
        assert_eq!((kept(&s, 1).1.len(), kept(&s, 2).1.len()), (0, 2));
        assert!(!s.seal_step(Some(2), 2), "then the others");
        assert_eq!((kept(&s, 1).0, kept(&s, 1).1, s.chunk_totals().0), (0, kept(&s, 2).1, 200 + 2));
    }

    #[test]
    fn a_snapshot_deleted_while_it_is_sealed_releases_everything() {
        let mut s = state();
        store_all(&mut s, 1, 0, &chunk_bytes(300, 0));
        complete(&mut s, 1, 300);
        assert!(s.seal_step(None, 1), "one page of three sealed");
        s.schedule_deletion(app(), 1);
        assert!(!s.seal_step(None, 10), "a snapshot being deleted is not sealed");
        delete_to_nothing(&mut s, &[(app(), 1)], 10);
    }
}
