//! Hostile: an app that serves the backup protocol by hand and lies in the way `set_lie` names
//! (anyone may set it): manifests the vault must not take, chunks that do not match, replies
//! that are not candid or cost a billion steps to decode, endless restarts, megabytes of text,
//! rejects, traps, and restores that never commit as they should. Told to be honest, it dumps
//! and restores a one-page stable-memory image in three chunks.
//!
//! Its incremental mode (`set_incremental_lie`) dumps another image as a library with
//! incremental dumps does (BLAKE3, chunks of `CHUNK_SIZE`, the image a `vault_dump_end` names
//! kept as the base of the next dump) and lies in the fields of incremental dumps: a base not
//! asked for, bitmaps and pages that do not add up, full chunks in an incremental dump and
//! changed pages in a full one.

use std::cell::{Cell, RefCell};

use candid::CandidType;
use ic_cdk::{query, update};
use serde_bytes::ByteBuf;
use vault_api::manifest::{ChunkFault, check_chunk, chunk_range, image_hash, try_chunk_count};
use vault_api::{ContentHash, Sha256};
use vault_api::protocol::{
    BackupError, BackupInfo, BaseRange, CHUNK_SIZE, Chunk, ChunkRequest, DumpBegin, DumpEnd, DumpManifest, JobRef, PAGE_SIZE, RestoreBegin, RestoreChunk,
    RestoreReport, StateKind, WASM_PAGE_SIZE, leb128,
};

/// Bytes of the honest image: three wasm pages.
const IMAGE_BYTES: u64 = 3 * WASM_PAGE_SIZE;
/// Bytes of a chunk of the honest image: three chunks, the last one shorter (a vault takes
/// chunks of 64 KiB at least).
const IMAGE_CHUNK_BYTES: u64 = 72 * 1024;
/// The largest restore this app stages.
const MAX_STAGED_BYTES: u64 = 64 << 20;
/// Bytes of the text in a megabyte error, reject or trap.
const LONG_TEXT_BYTES: usize = 1 << 20;
/// Elements of the `vec null` a decode bomb carries: a billion steps for a decoder without quotas.
const BOMB_ELEMENTS: u64 = 1_000_000_000;

/// How the app lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lie {
    Honest,
    /// A manifest of u64::MAX bytes.
    HugeSize,
    ZeroChunkSize,
    /// Chunks one byte over the protocol's `CHUNK_SIZE`.
    OversizedChunks,
    /// A manifest for the next job id.
    OtherJob,
    /// Chunks whose SHA-256 is another's.
    WrongSha256,
    /// Chunks that say they are the next one.
    WrongIndex,
    /// Chunks one byte too long, with the SHA-256 of those bytes.
    WrongLength,
    /// Chunk replies with a record field holding a billion `null`s.
    DecodeBomb,
    /// Chunk replies that are not candid.
    NotCandid,
    /// Every chunk answers that the dump is unknown, so the vault starts over and over.
    EndlessDump,
    /// Every protocol call answers an error with a megabyte of text.
    MegabyteError,
    /// Every protocol call is rejected with a megabyte of text.
    LongReject,
    /// Every protocol call traps, with a megabyte of text.
    Trap,
    /// Every restored chunk is refused as not matching its SHA-256.
    RefuseRestoreChunks,
    /// The commit reports a SHA-256 other than the snapshot's (and commits nothing).
    WrongCommitHash,
    /// Every commit answers that the staging area is unknown.
    CommitUnknownJob,
    /// Every commit traps.
    TrapOnCommit,
}

impl Lie {
    const NAMED: [(&'static str, Lie); 18] = [
        ("honest", Lie::Honest),
        ("huge-size", Lie::HugeSize),
        ("zero-chunk-size", Lie::ZeroChunkSize),
        ("oversized-chunks", Lie::OversizedChunks),
        ("other-job", Lie::OtherJob),
        ("wrong-sha256", Lie::WrongSha256),
        ("wrong-index", Lie::WrongIndex),
        ("wrong-length", Lie::WrongLength),
        ("decode-bomb", Lie::DecodeBomb),
        ("not-candid", Lie::NotCandid),
        ("endless-dump", Lie::EndlessDump),
        ("megabyte-error", Lie::MegabyteError),
        ("long-reject", Lie::LongReject),
        ("trap", Lie::Trap),
        ("refuse-restore-chunks", Lie::RefuseRestoreChunks),
        ("wrong-commit-hash", Lie::WrongCommitHash),
        ("commit-unknown-job", Lie::CommitUnknownJob),
        ("trap-on-commit", Lie::TrapOnCommit),
    ];

    fn named(name: &str) -> Option<Lie> {
        Lie::NAMED.iter().find(|(n, _)| *n == name).map(|&(_, lie)| lie)
    }
}

/// Bytes of the image of the incremental mode: two chunks of `CHUNK_SIZE`, the first of 511
/// pages and the last of 17 (neither a multiple of 8, so their bitmaps have bits past them).
const INCREMENTAL_IMAGE_BYTES: u64 = 33 * WASM_PAGE_SIZE;

/// How the incremental mode lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IncrementalLie {
    Honest,
    /// A full dump's manifest names a base the vault did not ask for.
    UnaskedBase,
    /// An incremental dump's manifest names the snapshot after the one asked for.
    OtherBase,
    /// Bitmaps one byte short.
    ShortBitmap,
    /// Bitmaps marking the page after the chunk's last.
    BitsPastPages,
    /// Changed pages one byte short (or a page marked and not sent, when none changed).
    ShortPages,
    /// An incremental dump's chunks answered whole, without bitmaps.
    FullChunks,
    /// A full dump's chunks answered with bitmaps.
    PagesInFullDump,
    /// A serde dump against the base: a range past the base's end.
    SerdeRangesPastBase,
    /// A serde dump against the base: two ranges that overlap.
    SerdeRangesOverlapping,
    /// A full serde dump's chunks answered with a range of a base.
    SerdeRangesInFullDump,
}

impl IncrementalLie {
    const NAMED: [(&'static str, IncrementalLie); 11] = [
        ("honest", IncrementalLie::Honest),
        ("unasked-base", IncrementalLie::UnaskedBase),
        ("other-base", IncrementalLie::OtherBase),
        ("short-bitmap", IncrementalLie::ShortBitmap),
        ("bits-past-pages", IncrementalLie::BitsPastPages),
        ("short-pages", IncrementalLie::ShortPages),
        ("full-chunks", IncrementalLie::FullChunks),
        ("pages-in-full-dump", IncrementalLie::PagesInFullDump),
        ("serde-ranges-past-base", IncrementalLie::SerdeRangesPastBase),
        ("serde-ranges-overlapping", IncrementalLie::SerdeRangesOverlapping),
        ("serde-ranges-in-full-dump", IncrementalLie::SerdeRangesInFullDump),
    ];

    /// Whether the lie's dump says it is of a serde state.
    fn serde(self) -> bool {
        matches!(self, IncrementalLie::SerdeRangesPastBase | IncrementalLie::SerdeRangesOverlapping | IncrementalLie::SerdeRangesInFullDump)
    }

    fn named(name: &str) -> Option<IncrementalLie> {
        IncrementalLie::NAMED.iter().find(|(n, _)| *n == name).map(|&(_, lie)| lie)
    }
}

/// A dump open: its job, the image frozen for it, its chunks' size, and, in an incremental dump,
/// the base image its chunks' pages are told against.
struct Dump {
    job: u64,
    image: Vec<u8>,
    chunk_size: u64,
    base: Option<Vec<u8>>,
}

/// A restore being staged.
struct Staging {
    job: u64,
    size: u64,
    chunk_size: u64,
    sha256: Sha256,
    data: Vec<u8>,
    staged: Vec<bool>,
}

thread_local! {
    static LIE: Cell<Lie> = const { Cell::new(Lie::Honest) };
    static IMAGE: RefCell<Vec<u8>> = RefCell::new(initial_image());
    static DUMP: RefCell<Option<Dump>> = const { RefCell::new(None) };
    /// The incremental mode, with its lie; none outside it.
    static INCREMENTAL: Cell<Option<IncrementalLie>> = const { Cell::new(None) };
    static INCREMENTAL_IMAGE: RefCell<Vec<u8>> = RefCell::new(incremental_image());
    /// The snapshot whose image the incremental mode keeps as its base, and that image.
    static BASE: RefCell<Option<(u64, Vec<u8>)>> = const { RefCell::new(None) };
    static STAGING: RefCell<Option<Staging>> = const { RefCell::new(None) };
    /// The last commit's report, repeated to a repeated commit of its job.
    static COMMITTED: RefCell<Option<RestoreReport>> = const { RefCell::new(None) };
    static COMMITS: Cell<u64> = const { Cell::new(0) };
}

fn initial_image() -> Vec<u8> {
    (0..IMAGE_BYTES).map(|i| (i % 251) as u8 ^ (i / 251) as u8).collect()
}

fn incremental_image() -> Vec<u8> {
    (0..INCREMENTAL_IMAGE_BYTES).map(|i| (i % 241) as u8 ^ (i / 4096) as u8).collect()
}

/// Sets the incremental mode's lie by name (`honest` for none), or leaves the mode (`off`);
/// refuses a name it does not know.
#[update]
fn set_incremental_lie(name: String) -> Result<(), String> {
    if name == "off" {
        INCREMENTAL.set(None);
        return Ok(());
    }
    let lie = IncrementalLie::named(&name).ok_or_else(|| {
        let known: Vec<&str> = IncrementalLie::NAMED.iter().map(|(n, _)| *n).collect();
        format!("no incremental lie is named {name:?}; they are {}, and off", known.join(", "))
    })?;
    INCREMENTAL.set(Some(lie));
    Ok(())
}

/// The manifest hash of the incremental mode's image as the app holds it now, in BLAKE3.
#[query]
fn incremental_image_hash() -> Sha256 {
    INCREMENTAL_IMAGE.with_borrow(|image| image_hash(ContentHash::Blake3, image, CHUNK_SIZE))
}

/// Writes `byte` over page `page` of the incremental mode's image.
#[update]
fn write_incremental_page(page: u64, byte: u8) {
    INCREMENTAL_IMAGE.with_borrow_mut(|image| {
        let start = (page * PAGE_SIZE) as usize;
        let end = (start + PAGE_SIZE as usize).min(image.len());
        image[start.min(end)..end].fill(byte);
    });
}

/// Sets how the app lies, by name; refuses a name it does not know.
#[update]
fn set_lie(name: String) -> Result<(), String> {
    let lie = Lie::named(&name).ok_or_else(|| {
        let known: Vec<&str> = Lie::NAMED.iter().map(|(n, _)| *n).collect();
        format!("no lie is named {name:?}; the lies are {}", known.join(", "))
    })?;
    LIE.set(lie);
    Ok(())
}

/// The manifest hash of the image as the app holds it now.
#[query]
fn image_sha256() -> Sha256 {
    IMAGE.with_borrow(|image| image_hash(ContentHash::Sha256, image, IMAGE_CHUNK_BYTES))
}

/// Restores committed so far.
#[query]
fn commits() -> u64 {
    COMMITS.get()
}

/// How a protocol call is answered.
enum Answer<T> {
    Value(Result<T, BackupError>),
    Raw(Vec<u8>),
    Reject(String),
    Trap(String),
}

fn long_text() -> String {
    "é".repeat(LONG_TEXT_BYTES / 2)
}

/// Answers a protocol call: with the lie every method tells, if one is set, or else with what
/// `answer` makes of the lie.
fn serve<T: CandidType>(answer: impl FnOnce(Lie) -> Answer<T>) {
    let lie = LIE.get();
    let answer = match lie {
        Lie::MegabyteError => Answer::Value(Err(BackupError::InvalidImage { message: long_text() })),
        Lie::LongReject => Answer::Reject(long_text()),
        Lie::Trap => Answer::Trap(long_text()),
        other => answer(other),
    };
    match answer {
        Answer::Value(value) => ic_cdk::api::msg_reply(candid::encode_one(value).expect("an answer encodes")),
        Answer::Raw(bytes) => ic_cdk::api::msg_reply(bytes),
        Answer::Reject(message) => ic_cdk::api::msg_reject(message),
        Answer::Trap(message) => ic_cdk::trap(message),
    }
}

/// Says the caller is this app's vault.
#[query(manual_reply = true)]
fn vault_backup_info() {
    serve(|_| {
        Answer::Value(Ok(BackupInfo {
            vault: Some(ic_cdk::api::msg_caller()),
            state_kind: StateKind::StableMemory,
            state_bytes: IMAGE.with_borrow(|image| image.len() as u64),
            client_version: "hostile".into(),
            state_layout: None,
            // It hashes and verifies SHA-256 only, as a library before BLAKE3.
            content_hashes: None,
            upgrade_restore: None,
            upgrade_paths: None,
        }))
    });
}

#[update(manual_reply = true)]
fn vault_dump_begin(args: DumpBegin) {
    if let Some(lie) = INCREMENTAL.get() {
        return serve(|_| Answer::Value(Ok(incremental_dump_begin(args, lie))));
    }
    serve(|lie| {
        let image = IMAGE.with_borrow(Clone::clone);
        let size = image.len() as u64;
        DUMP.set(Some(Dump { job: args.job, image, chunk_size: IMAGE_CHUNK_BYTES, base: None }));
        let honest = DumpManifest {
            job: args.job,
            state_kind: StateKind::StableMemory,
            size,
            chunk_size: IMAGE_CHUNK_BYTES,
            taken_at_nanos: ic_cdk::api::time(),
            state_layout: None,
            content_hashes: None,
            base: None,
            from_upgrade_save: None,
            content_index: None,
        };
        Answer::Value(Ok(match lie {
            Lie::HugeSize => DumpManifest { size: u64::MAX, ..honest },
            Lie::ZeroChunkSize => DumpManifest { chunk_size: 0, ..honest },
            Lie::OversizedChunks => DumpManifest { chunk_size: CHUNK_SIZE + 1, ..honest },
            Lie::OtherJob => DumpManifest { job: args.job + 1, ..honest },
            _ => honest,
        }))
    });
}

/// Opens a dump of the incremental mode's image: incremental if the vault asked for the base
/// the mode keeps, with the manifest `lie` makes of it.
fn incremental_dump_begin(args: DumpBegin, lie: IncrementalLie) -> DumpManifest {
    let image = INCREMENTAL_IMAGE.with_borrow(Clone::clone);
    let size = image.len() as u64;
    let base = BASE.with_borrow(|base| base.as_ref().filter(|(snapshot, _)| args.base == Some(*snapshot)).cloned());
    let named = match lie {
        IncrementalLie::UnaskedBase if args.base.is_none() => Some(1),
        IncrementalLie::OtherBase => args.base.map(|asked| asked + 1),
        _ => base.as_ref().map(|(snapshot, _)| *snapshot),
    };
    DUMP.set(Some(Dump { job: args.job, image, chunk_size: CHUNK_SIZE, base: base.map(|(_, image)| image) }));
    DumpManifest {
        job: args.job,
        state_kind: if lie.serde() { StateKind::Serde } else { StateKind::StableMemory },
        size,
        chunk_size: CHUNK_SIZE,
        taken_at_nanos: ic_cdk::api::time(),
        state_layout: None,
        content_hashes: Some(vec![ContentHash::Sha256, ContentHash::Blake3]),
        base: named,
        from_upgrade_save: None,
        content_index: None,
    }
}

#[query(manual_reply = true)]
fn vault_dump_chunk(args: ChunkRequest) {
    serve(|lie| {
        if lie == Lie::EndlessDump {
            return Answer::Value(Err(BackupError::UnknownJob { job: args.job }));
        }
        let chunk = DUMP.with_borrow(|dump| match dump {
            Some(dump) if dump.job == args.job => match INCREMENTAL.get() {
                Some(lie) => incremental_chunk(dump, args.index, lie),
                None => dump_chunk(&dump.image, dump.chunk_size, args.index),
            },
            _ => Err(BackupError::UnknownJob { job: args.job }),
        });
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(error) => return Answer::Value(Err(error)),
        };
        match lie {
            Lie::WrongSha256 => Answer::Value(Ok(Chunk { sha256: Sha256::of(b"another chunk"), ..chunk })),
            Lie::WrongIndex => Answer::Value(Ok(Chunk { index: chunk.index + 1, ..chunk })),
            Lie::WrongLength => {
                let mut data = chunk.data.into_vec();
                data.push(0);
                Answer::Value(Ok(Chunk { index: chunk.index, sha256: Sha256::of(&data), data: ByteBuf::from(data), changed_pages: None, base_ranges: None }))
            }
            Lie::DecodeBomb => Answer::Raw(decode_bomb(&chunk, BOMB_ELEMENTS)),
            Lie::NotCandid => Answer::Raw(b"not candid: the vault must not take this for a chunk".to_vec()),
            _ => Answer::Value(Ok(chunk)),
        }
    });
}

fn dump_chunk(image: &[u8], chunk_size: u64, index: u32) -> Result<Chunk, BackupError> {
    let size = image.len() as u64;
    let chunks = try_chunk_count(size, chunk_size).expect("the image has a countable size");
    if index >= chunks {
        return Err(BackupError::ChunkOutOfRange { index, chunks });
    }
    let range = chunk_range(size, chunk_size, index);
    let data = &image[range.start as usize..range.end as usize];
    Ok(Chunk { index, data: ByteBuf::from(data), sha256: Sha256::of(data), changed_pages: None, base_ranges: None })
}

/// Chunk `index` of a dump of the incremental mode, as `lie` tells it: in an incremental dump,
/// the pages that differ from the base's (zeros past its end) and a bitmap of them.
fn incremental_chunk(dump: &Dump, index: u32, lie: IncrementalLie) -> Result<Chunk, BackupError> {
    let full = dump_chunk(&dump.image, dump.chunk_size, index)?;
    if lie.serde() {
        return Ok(serde_chunk(full, dump.base.as_deref(), lie));
    }
    let Some(base) = &dump.base else {
        let pages = (full.data.len() as u64).div_ceil(PAGE_SIZE).div_ceil(8) as usize;
        let bitmap = (lie == IncrementalLie::PagesInFullDump).then(|| ByteBuf::from(vec![0; pages]));
        return Ok(Chunk { sha256: Sha256::default(), changed_pages: bitmap, ..full });
    };
    if lie == IncrementalLie::FullChunks {
        return Ok(Chunk { sha256: Sha256::default(), ..full });
    }
    let start = chunk_range(dump.image.len() as u64, dump.chunk_size, index).start as usize;
    let pages = (full.data.len() as u64).div_ceil(PAGE_SIZE) as usize;
    let mut bitmap = vec![0u8; pages.div_ceil(8)];
    let mut data = Vec::new();
    for (page, mine) in full.data.chunks(PAGE_SIZE as usize).enumerate() {
        let at = start + page * PAGE_SIZE as usize;
        let theirs: Vec<u8> = (at..at + mine.len()).map(|i| base.get(i).copied().unwrap_or(0)).collect();
        if mine != theirs {
            bitmap[page / 8] |= 1 << (page % 8);
            data.extend_from_slice(mine);
        }
    }
    match lie {
        IncrementalLie::ShortBitmap => {
            bitmap.pop();
        }
        IncrementalLie::BitsPastPages => bitmap[pages / 8] |= 1 << (pages % 8),
        IncrementalLie::ShortPages if data.is_empty() => bitmap[0] |= 1,
        IncrementalLie::ShortPages => {
            data.pop();
        }
        _ => {}
    }
    Ok(Chunk { index, data: ByteBuf::from(data), sha256: Sha256::default(), changed_pages: Some(ByteBuf::from(bitmap)), base_ranges: None })
}

/// A chunk of a serde dump as `lie` tells it: ranges of the base (past its end, or overlapping),
/// or a range in a full dump; the bytes the ranges leave out.
fn serde_chunk(full: Chunk, base: Option<&[u8]>, lie: IncrementalLie) -> Chunk {
    let base_len = base.map_or(0, |base| base.len() as u64);
    let ranges = match lie {
        IncrementalLie::SerdeRangesPastBase => vec![BaseRange { at: 0, from: base_len - 10, len: 20 }],
        IncrementalLie::SerdeRangesOverlapping => vec![BaseRange { at: 0, from: 0, len: 10 }, BaseRange { at: 5, from: 100, len: 10 }],
        _ => vec![BaseRange { at: 0, from: 0, len: 1 }],
    };
    let covered: usize = ranges.iter().map(|range| range.len as usize).sum();
    let data = ByteBuf::from(full.data[covered.min(full.data.len())..].to_vec());
    Chunk { data, sha256: Sha256::default(), base_ranges: Some(ranges), ..full }
}

#[update(manual_reply = true)]
fn vault_dump_end(args: DumpEnd) {
    serve(|_| {
        let ended = DUMP.with_borrow_mut(|dump| if dump.as_ref().is_some_and(|d| d.job == args.job) { dump.take() } else { None });
        // The incremental mode keeps the image the vault stored as its next base.
        if let (Some(dump), Some(snapshot), Some(_)) = (ended, args.base, INCREMENTAL.get()) {
            BASE.set(Some((snapshot, dump.image)));
        }
        Answer::Value(Ok(()))
    });
}

#[update(manual_reply = true)]
fn vault_restore_begin(args: RestoreBegin) {
    serve(|_| Answer::Value(restore_begin(args)));
}

fn restore_begin(args: RestoreBegin) -> Result<(), BackupError> {
    if args.state_kind != StateKind::StableMemory {
        return Err(BackupError::StateKindMismatch { app: StateKind::StableMemory, snapshot: args.state_kind });
    }
    let Some(chunks) = try_chunk_count(args.size, args.chunk_size).filter(|_| args.chunk_size <= CHUNK_SIZE) else {
        return Err(BackupError::UnsupportedChunkSize { chunk_size: args.chunk_size, max: CHUNK_SIZE });
    };
    if args.size > MAX_STAGED_BYTES {
        return Err(BackupError::TooLarge { size: args.size, limit: MAX_STAGED_BYTES });
    }
    if STAGING.with_borrow(|s| s.as_ref().is_some_and(|s| s.job == args.job)) {
        return Ok(());
    }
    STAGING.set(Some(Staging {
        job: args.job,
        size: args.size,
        chunk_size: args.chunk_size,
        sha256: args.sha256,
        data: vec![0; args.size as usize],
        staged: vec![false; chunks as usize],
    }));
    Ok(())
}

#[update(manual_reply = true)]
fn vault_restore_chunk(args: RestoreChunk) {
    serve(|lie| {
        if lie == Lie::RefuseRestoreChunks {
            return Answer::Value(Err(BackupError::ChunkHashMismatch { index: args.index }));
        }
        Answer::Value(restore_chunk(args))
    });
}

fn restore_chunk(args: RestoreChunk) -> Result<(), BackupError> {
    STAGING.with_borrow_mut(|staging| {
        let staging = staging.as_mut().filter(|s| s.job == args.job).ok_or(BackupError::UnknownJob { job: args.job })?;
        let index = args.index;
        let range = check_chunk(ContentHash::Sha256, staging.size, staging.chunk_size, index, &args.data, Some(&args.sha256))
            .map_err(|fault| chunk_refusal(index, fault))?
            .range;
        staging.data[range.start as usize..range.end as usize].copy_from_slice(&args.data);
        staging.staged[index as usize] = true;
        Ok(())
    })
}

fn chunk_refusal(index: u32, fault: ChunkFault) -> BackupError {
    match fault {
        ChunkFault::OutOfRange { chunks } => BackupError::ChunkOutOfRange { index, chunks },
        ChunkFault::SizeMismatch { expected, actual } => BackupError::ChunkSizeMismatch { index, expected, actual },
        ChunkFault::HashMismatch => BackupError::ChunkHashMismatch { index },
    }
}

#[update(manual_reply = true)]
fn vault_restore_commit(args: JobRef) {
    serve(|lie| match lie {
        Lie::WrongCommitHash => Answer::Value(wrong_commit(args.job)),
        Lie::CommitUnknownJob => Answer::Value(Err(BackupError::UnknownJob { job: args.job })),
        Lie::TrapOnCommit => Answer::Trap(format!("commit of job {} traps", args.job)),
        _ => Answer::Value(restore_commit(args.job)),
    });
}

/// The staged restore's report, with a SHA-256 that is not the snapshot's.
fn wrong_commit(job: u64) -> Result<RestoreReport, BackupError> {
    STAGING.with_borrow(|staging| {
        let staging = staging.as_ref().filter(|s| s.job == job).ok_or(BackupError::UnknownJob { job })?;
        Ok(RestoreReport { job, state_kind: StateKind::StableMemory, size: staging.size, sha256: Sha256([0x11; 32]), loads_at_upgrade: None })
    })
}

fn restore_commit(job: u64) -> Result<RestoreReport, BackupError> {
    if let Some(report) = COMMITTED.with_borrow(|c| c.clone()).filter(|r| r.job == job) {
        return Ok(report);
    }
    let staging = STAGING.take().filter(|s| s.job == job);
    let Some(staging) = staging else { return Err(BackupError::UnknownJob { job }) };
    let missing: Vec<u32> = (0..staging.staged.len() as u32).filter(|&i| !staging.staged[i as usize]).collect();
    if let Some(&first) = missing.first() {
        let missing = missing.len() as u32;
        STAGING.set(Some(staging));
        return Err(BackupError::MissingChunks { missing, first });
    }
    let actual = image_hash(ContentHash::Sha256, &staging.data, staging.chunk_size);
    if actual != staging.sha256 {
        return Err(BackupError::SnapshotHashMismatch { expected: staging.sha256, actual });
    }
    let report = RestoreReport { job, state_kind: StateKind::StableMemory, size: staging.size, sha256: actual, loads_at_upgrade: None };
    IMAGE.set(staging.data);
    COMMITTED.set(Some(report.clone()));
    COMMITS.set(COMMITS.get() + 1);
    Ok(report)
}

#[update(manual_reply = true)]
fn vault_restore_abort(args: JobRef) {
    serve(|_| {
        STAGING.with_borrow_mut(|staging| {
            if staging.as_ref().is_some_and(|s| s.job == args.job) {
                *staging = None;
            }
        });
        Answer::Value(Ok(()))
    });
}

/// The reply `variant { Ok = chunk }` whose record carries one more field, a `vec null` of
/// `elements` elements: a receiver skips the field it does not know, one step per element.
fn decode_bomb(chunk: &Chunk, elements: u64) -> Vec<u8> {
    const NAT32: u8 = 0x79;
    const VARIANT: u8 = 0x6b;
    const RECORD: u8 = 0x6c;
    const VEC: u8 = 0x6d;
    const NAT8: u8 = 0x7b;
    const NULL: u8 = 0x7f;
    // Types 0: the variant, 1: the record, 2: a blob, 3: the padding.
    let (blob, padding) = (2, 3);
    let mut fields =
        [("index", NAT32), ("data", blob), ("sha256", blob), ("padding", padding)].map(|(name, ty)| (candid::idl_hash(name), ty));
    fields.sort_unstable();
    let mut bytes = b"DIDL".to_vec();
    leb128(&mut bytes, 4);
    bytes.push(VARIANT);
    leb128(&mut bytes, 1);
    leb128(&mut bytes, candid::idl_hash("Ok") as u64);
    bytes.push(1);
    bytes.push(RECORD);
    leb128(&mut bytes, fields.len() as u64);
    for (id, ty) in fields {
        leb128(&mut bytes, id as u64);
        bytes.push(ty);
    }
    bytes.extend([VEC, NAT8, VEC, NULL]);
    // One argument, of type 0: the variant's first (only) case.
    bytes.extend([1, 0, 0]);
    for (id, _) in fields {
        match id {
            id if id == candid::idl_hash("index") => bytes.extend(chunk.index.to_le_bytes()),
            id if id == candid::idl_hash("data") => {
                leb128(&mut bytes, chunk.data.len() as u64);
                bytes.extend_from_slice(&chunk.data);
            }
            id if id == candid::idl_hash("sha256") => {
                leb128(&mut bytes, 32);
                bytes.extend(chunk.sha256.0);
            }
            _ => leb128(&mut bytes, elements),
        }
    }
    bytes
}

fn main() {}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk() -> Chunk {
        dump_chunk(&initial_image(), IMAGE_CHUNK_BYTES, 2).unwrap()
    }

    #[test]
    fn a_short_bomb_is_the_chunk_with_a_field_more() {
        let decoded: Result<Chunk, BackupError> = candid::decode_one(&decode_bomb(&chunk(), 3)).unwrap();
        assert_eq!(decoded, Ok(chunk()));
    }

    #[test]
    fn the_bomb_is_refused_by_the_vaults_quotas_alone() {
        // A million elements still decode without quotas (a billion would take seconds).
        let bomb = decode_bomb(&chunk(), 1_000_000);
        assert_eq!(candid::decode_one::<Result<Chunk, BackupError>>(&bomb).unwrap(), Ok(chunk()));
        assert!(vault_api::decode::one::<Result<Chunk, BackupError>>(&bomb).is_err());
        let refused = vault_api::decode::one::<Result<Chunk, BackupError>>(&decode_bomb(&chunk(), BOMB_ELEMENTS));
        assert!(refused.is_err(), "{refused:?}");
    }

    #[test]
    fn the_honest_image_is_three_chunks_of_whole_pages() {
        assert_eq!(IMAGE_BYTES % WASM_PAGE_SIZE, 0);
        assert_eq!(try_chunk_count(IMAGE_BYTES, IMAGE_CHUNK_BYTES), Some(3));
        assert_eq!(chunk().data.len() as u64, IMAGE_BYTES - 2 * IMAGE_CHUNK_BYTES);
    }

    #[test]
    fn every_lie_has_one_name() {
        for (name, lie) in Lie::NAMED {
            assert_eq!(Lie::named(name), Some(lie));
        }
        assert_eq!(Lie::named("lying"), None);
        for (name, lie) in IncrementalLie::NAMED {
            assert_eq!(IncrementalLie::named(name), Some(lie));
        }
        assert_eq!(IncrementalLie::named("off"), None, "off leaves the mode");
    }

    #[test]
    fn the_incremental_image_is_two_chunks_whose_pages_leave_bits_in_their_bitmaps() {
        assert_eq!(try_chunk_count(INCREMENTAL_IMAGE_BYTES, CHUNK_SIZE), Some(2));
        let pages = |index| chunk_range(INCREMENTAL_IMAGE_BYTES, CHUNK_SIZE, index).end.div_ceil(PAGE_SIZE) - index as u64 * 511;
        assert_eq!((pages(0), pages(1)), (511, 17));
        let image = incremental_image();
        let mut changed = image.clone();
        changed[520 * PAGE_SIZE as usize] ^= 1;
        let dump = Dump { job: 1, image: changed, chunk_size: CHUNK_SIZE, base: Some(image) };
        let honest = incremental_chunk(&dump, 1, IncrementalLie::Honest).unwrap();
        let bitmap = honest.changed_pages.unwrap().into_vec();
        assert_eq!((bitmap, honest.data.len() as u64), (vec![0, 0b10, 0], PAGE_SIZE), "page 9 of chunk 1 changed");
        let unchanged = incremental_chunk(&dump, 0, IncrementalLie::Honest).unwrap();
        assert_eq!((unchanged.changed_pages.unwrap().len(), unchanged.data.len()), (64, 0));
    }
}
