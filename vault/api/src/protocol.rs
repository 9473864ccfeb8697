//! The backup protocol: endpoints the client library adds to an app, called only by the app's
//! vault. Every call carries the vault's job id and is idempotent for it, so the vault may
//! repeat any call after a timeout (SYS_UNKNOWN) and get the same result.
//!
//! A dump or restore is bound to the vault instance that opened it: the app keys it by the
//! caller's principal, the vault's instance `nonce` (fixed once per install of the vault, kept
//! across its upgrades) and the job id, and answers `UnknownJob` to a call that does not match
//! all three (a reinstalled vault counts its jobs from 1 again). Release 0.1.0's vault sends no
//! nonce: what it opens is bound to its principal and the job only. Changing the app's vault
//! (`vault_set_vault`) releases what is open, and so does the app once no vault call touched it
//! for [`SESSION_TTL`].
//!
//! Snapshot (a dump):
//! 1. `vault_dump_begin(job)` freezes the state as of this message and answers its manifest
//!    (size, chunk size, state kind, the content hashes the app's library verifies on restore).
//!    The app keeps serving updates; the dump does not change.
//! 2. `vault_dump_chunk(job, index)` answers chunk `index`, with its SHA-256 unless the vault
//!    said it needs none (it hashes every chunk itself).
//! 3. `vault_dump_end(job)` releases the frozen image.
//!
//! Restore:
//! 1. `vault_restore_begin(job, manifest)` opens a staging area; the live state is untouched.
//!    The manifest says the snapshot's content hash: every digest of the restore is in it.
//! 2. `vault_restore_chunk(job, index, data, sha256)` checks the chunk's digest and stages it.
//! 3. `vault_restore_commit(job, state_layout)` checks that every chunk is there, that the
//!    manifest hash matches and that the app still declares `state_layout` (when given, and the
//!    app declares one), then replaces the live state in this one message;
//!    `vault_restore_abort(job)` drops the staging area instead.
//!
//! Content hashes: the vault picks each snapshot's ([`DumpManifest::content_hash`]): BLAKE3 when
//! the app's library verifies it on restore, else SHA-256. Every field added for them is `opt`,
//! and missing means what it meant before them: a vault that sends no `chunk_hashes` gets each
//! chunk's SHA-256, a library that lists no content hashes verifies SHA-256 only (release
//! 0.1.0's and the builds before BLAKE3), a restore with no content hash is SHA-256. The `sha256`
//! fields keep their names (candid compatibility) and carry digests in the content hash.

use std::cell::OnceCell;
use std::time::Duration;

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::manifest::{ContentHash, Sha256};

/// Bytes of a chunk: the 2 MiB cross-subnet payload limit less 4 KiB for the method name and
/// the candid framing of requests and replies.
pub const CHUNK_SIZE: u64 = 2 * 1024 * 1024 - 4096;

/// The chunk of `len` bytes `ranges` (in order and apart, within the chunk: as the vault checks them) and `data` stand for, `read_base` appending the
/// base's bytes from an offset, as many as asked; `None` if it could not.
pub fn rebuild_from_ranges(len: u64, ranges: &[BaseRange], data: &[u8], mut read_base: impl FnMut(u64, u32, &mut Vec<u8>) -> Option<()>) -> Option<Vec<u8>> {
    let mut chunk = Vec::with_capacity(len as usize);
    let mut data_at = 0;
    for range in ranges {
        let gap = range.at as usize - chunk.len();
        chunk.extend_from_slice(&data[data_at..data_at + gap]);
        data_at += gap;
        read_base(range.from, range.len, &mut chunk)?;
        if chunk.len() != range.at as usize + range.len as usize {
            return None;
        }
    }
    chunk.extend_from_slice(&data[data_at..]);
    Some(chunk)
}

/// The most chunks of its base (of [`CHUNK_SIZE`]) the ranges of one chunk of an incremental serde
/// dump may be in (`Chunk::base_ranges`): what the vault reads to rebuild the chunk.
pub const MAX_BASE_CHUNKS: usize = 4;

/// The unit an incremental dump tells changes in: a chunk of [`CHUNK_SIZE`] is 511 of them.
pub const PAGE_SIZE: u64 = 4096;

/// The largest image a snapshot holds: the stable memory a canister may have (400 GiB).
pub const MAX_IMAGE_BYTES: u64 = 400 << 30;

/// The most chunks a snapshot has: [`MAX_IMAGE_BYTES`] in chunks of [`CHUNK_SIZE`] fit, and a
/// list of all of them (4 bytes each) fits in one reply.
pub const MAX_CHUNKS: u32 = 1 << 18;

/// Bytes in a wasm page, the unit stable memory grows in: a stable-memory image is a whole
/// number of them.
pub const WASM_PAGE_SIZE: u64 = 65536;

/// How long an app keeps a dump or a staged restore that no vault call touched: then the next
/// time its client library runs, it releases it (a dump's copied-aside pages or staging bytes, a
/// restore's staged chunks), so a vault that vanished holds nothing forever.
///
/// A vault gives up on a job after its whole retry budget: 9 failed attempts in a row
/// (`MAX_RETRIES` = 8 in the vault's engine), each waiting at most 60 s for its answer, with
/// backoffs of 2, 4, 8, 16, 32, 64, 64 and 64 s between them: 9 x 60 + 254 = 794 s, about
/// 13 minutes (up to 10 minutes more per attempt when a trap loses the vault's timer and its
/// watchdog re-arms it). But chunk reads are queries, which record nothing, so a dump is touched
/// only when it opens and closes: the TTL must also outlast the longest transfer, `MAX_CHUNKS`
/// chunks read 4 at a time, 65,536 rounds of calls, about two days at 2 to 3 s a round. A week
/// covers both, and a vault stopped for an upgrade meanwhile.
pub const SESSION_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Method names of the protocol.
pub mod methods {
    pub const INFO: &str = "vault_backup_info";
    pub const DUMP_BEGIN: &str = "vault_dump_begin";
    pub const DUMP_CHUNK: &str = "vault_dump_chunk";
    pub const DUMP_END: &str = "vault_dump_end";
    pub const RESTORE_BEGIN: &str = "vault_restore_begin";
    pub const RESTORE_CHUNK: &str = "vault_restore_chunk";
    pub const RESTORE_COMMIT: &str = "vault_restore_commit";
    pub const RESTORE_ABORT: &str = "vault_restore_abort";
    pub const SET_VAULT: &str = "vault_set_vault";
}

/// How an app holds the state the vault backs up.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StateKind {
    /// Heap state serialized with MessagePack (rmp-serde).
    Serde,
    /// State in stable memory (ic-stable-structures): the image is the memory's bytes.
    StableMemory,
    /// A whole canister, captured without the client library through a native canister snapshot
    /// that the vault, as a controller, takes and reads out: its module, heap and stable memory,
    /// and the snapshot's metadata (`native`).
    Native,
}

/// What an app tells about its backup setup.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BackupInfo {
    pub vault: Option<Principal>,
    pub state_kind: StateKind,
    /// Bytes of the state: the memory size, or the size of the last serialized dump.
    pub state_bytes: u64,
    pub client_version: String,
    /// The version of its state's layout the running module declares
    /// (`vault_client::set_state_layout`); none if it declares none, or runs release 0.1.0's
    /// library.
    pub state_layout: Option<u32>,
    /// The content hashes its library verifies on restore; none from a library that verifies
    /// SHA-256 only (release 0.1.0's and the builds before BLAKE3).
    pub content_hashes: Option<Vec<ContentHash>>,
    /// The last restore committed to load at the app's next upgrade (`RestoreCommit::via_upgrade`)
    /// and where it stands; none if there is none, or from a library before such restores.
    pub upgrade_restore: Option<UpgradeRestore>,
    /// Whether its library restores serde state through an upgrade (`RestoreBegin::via_upgrade`)
    /// and dumps the state an upgrade saved (`DumpBegin::from_upgrade_save`); none from a library
    /// before.
    pub upgrade_paths: Option<bool>,
}

/// A serde restore committed to load at the app's next upgrade: its job and manifest hash, and
/// whether that upgrade loaded it.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UpgradeRestore {
    pub job: u64,
    pub sha256: Sha256,
    pub state: UpgradeLoad,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum UpgradeLoad {
    /// Staged and checked: the next upgrade's `post_upgrade` loads it.
    Pending,
    /// An upgrade loaded it, at this time (nanoseconds).
    Loaded { at: u64 },
    /// An upgrade could not load it and kept the state the app had: why. Also a dump or restore
    /// opened since, which took its place in staging.
    Failed { reason: String },
}

impl BackupInfo {
    /// Whether the app's library verifies `hash` on restore.
    pub fn verifies(&self, hash: ContentHash) -> bool {
        hash.verified_by(self.content_hashes.as_deref())
    }
}

#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct DumpBegin {
    pub job: u64,
    /// The vault instance's nonce; none from release 0.1.0's vault.
    pub nonce: Option<u64>,
    /// Whether the app answers each chunk with its SHA-256 (`Chunk::sha256`): false from a vault
    /// that hashes every chunk itself; none (a vault before BLAKE3) means it does.
    pub chunk_hashes: Option<bool>,
    /// An incremental dump, if the app can: the snapshot this vault stored of an earlier dump of
    /// the app and named at its end ([`DumpEnd::base`]). An app that still holds that image
    /// answers each chunk with the pages that differ from it ([`Chunk::changed_pages`]), and says
    /// so in [`DumpManifest::base`]; else the dump is full. None from a vault before incremental
    /// dumps.
    pub base: Option<u64>,
    /// A serde app: dump the state its last upgrade saved (`pre_upgrade`), as of then, rather
    /// than serialize the state as it is in this message, so a state larger than one update can
    /// serialize is snapshotted; none is false.
    pub from_upgrade_save: Option<bool>,
    /// A serde dump (of the state as it is, or as the last upgrade saved it): index the content of
    /// each chunk as it is read (cut where the bytes say, each piece hashed), so that the dump
    /// may become the base of the next
    /// (`DumpEnd::base`), against which each chunk is answered as the ranges it shares with the
    /// base's image and the bytes it does not (`Chunk::base_ranges`). None is false; ignored by a
    /// stable-memory dump, whose pages are indexed by the paged memory anyway.
    pub content_index: Option<bool>,
}

/// A frozen image, ready to be read in chunks.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DumpManifest {
    pub job: u64,
    pub state_kind: StateKind,
    pub size: u64,
    pub chunk_size: u64,
    /// The app's time when the image was frozen.
    pub taken_at_nanos: u64,
    /// The state layout the app declared when the dump opened (as in `BackupInfo`).
    pub state_layout: Option<u32>,
    /// The content hashes the app's library verifies on restore (as in `BackupInfo`).
    pub content_hashes: Option<Vec<ContentHash>>,
    /// The snapshot the dump is incremental against: `DumpBegin::base`, if the app holds that
    /// image; none for a full dump (and from a library before incremental dumps).
    pub base: Option<u64>,
    /// The dump reads the state the app's last upgrade saved (`DumpBegin::from_upgrade_save`),
    /// taken then; none for one of the state as it is (and from a library before such dumps).
    pub from_upgrade_save: Option<bool>,
    /// The app indexes the content of this serde dump as its chunks are read
    /// (`DumpBegin::content_index`); none if not (and from a library before such dumps).
    pub content_index: Option<bool>,
}

impl DumpManifest {
    /// The content hash a vault gives the snapshot of this dump: BLAKE3 when the app's library
    /// verifies it on restore, else SHA-256, which every library verifies.
    pub fn content_hash(&self) -> ContentHash {
        if ContentHash::Blake3.verified_by(self.content_hashes.as_deref()) { ContentHash::Blake3 } else { ContentHash::Sha256 }
    }
}

#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRequest {
    pub job: u64,
    pub index: u32,
    pub nonce: Option<u64>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub index: u32,
    pub data: ByteBuf,
    /// From an app: the chunk's SHA-256, or zeros when its dump was opened with `chunk_hashes`
    /// false. From the vault (`snapshot_chunk`): its digest in the snapshot's content hash.
    pub sha256: Sha256,
    /// In an incremental dump: which of the chunk's [`PAGE_SIZE`] pages differ from the base's
    /// (bit `j % 8` of byte `j / 8` for page `j`, a page past the base's end differing unless it
    /// is zeros), and `data` holds those pages, in order, the chunk's last page as long as the
    /// chunk's end leaves it. The chunk is the base's chunk at the same index (zeros past its
    /// end, cut to this chunk's length) with those pages put in. None in a full dump, and from
    /// the vault.
    pub changed_pages: Option<ByteBuf>,
    /// In a serde dump incremental against a base: the ranges of the chunk that are bytes of the
    /// base's image, in order and apart; `data` holds the chunk's other bytes, in order. None in
    /// any other dump, and from the vault.
    pub base_ranges: Option<Vec<BaseRange>>,
}

/// Bytes of a chunk that are bytes of its dump's base: `len` bytes from `at` in the chunk are
/// those from `from` in the base's image.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaseRange {
    pub at: u32,
    pub from: u64,
    pub len: u32,
}

/// `Ok(chunk)` as candid encodes it for a reply of type `Result<Chunk, BackupError>` (that of
/// `vault_dump_chunk`), in three pieces so that the chunk's bytes can be sent from where they
/// are, not copied into an encoding: what comes before them (the header, the `Ok` tag, the fields
/// before `data` and its length), the bytes, and the fields after them.
pub struct ChunkReply<'a> {
    head: Vec<u8>,
    data: &'a [u8],
    tail: Vec<u8>,
}

thread_local! {
    /// The header every chunk reply starts with, once [`reply_header`] computed it.
    static REPLY_HEADER: OnceCell<Vec<u8>> = const { OnceCell::new() };
}

impl Chunk {
    /// The chunk's fields but its bytes.
    fn without_data(&self) -> Chunk {
        Chunk { index: self.index, data: ByteBuf::new(), sha256: self.sha256, changed_pages: self.changed_pages.clone(), base_ranges: self.base_ranges.clone() }
    }
}

impl<'a> ChunkReply<'a> {
    /// The reply `Ok(chunk)`: the header candid gives its type, then candid's encoding of the
    /// value, split where the data goes. The split comes from the value with no data and with
    /// one byte, which differ only in the data's length and bytes.
    pub fn of(chunk: &'a Chunk) -> candid::Result<Self> {
        let (before, after) = around_blob(|data| reply_value(Chunk { data: ByteBuf::from(data), ..chunk.without_data() }))?;
        let mut head = reply_header()?;
        head.extend_from_slice(&before);
        leb128(&mut head, chunk.data.len() as u64);
        Ok(ChunkReply { head, data: &chunk.data, tail: after })
    }

    /// Computes the header of chunk replies unless this instance did: candid's type table of
    /// their type, the costly part of an encoding (about 350 K instructions in a canister). The
    /// heap keeps it past an update, so an app prepares it in the update that opens a dump, and
    /// each chunk call copies it. (A failure is [`ChunkReply::of`]'s to report.)
    pub fn prepare() {
        let _ = reply_header();
    }

    /// The pieces, to be sent one after the other.
    pub fn pieces(&self) -> [&[u8]; 3] {
        [&self.head, self.data, &self.tail]
    }
}

/// What `encode` gives around the bytes of the one blob of the value it encodes, from its
/// encodings with no bytes and with one, which differ only in the blob's length and bytes: the
/// encoding of the value with blob `data` is the first, `data`'s length (LEB128), `data` and the
/// second.
fn around_blob(encode: impl Fn(&[u8]) -> candid::Result<Vec<u8>>) -> candid::Result<(Vec<u8>, Vec<u8>)> {
    let (empty, one) = (encode(&[])?, encode(&[0xff])?);
    // The empty blob's length (0) is the first byte that differs from the other's (1, then its byte).
    let at = empty.iter().zip(&one).position(|(a, b)| a != b).unwrap_or(empty.len());
    let (before, after) = (&empty[..at], empty.get(at + 1..).unwrap_or_default());
    if empty.get(at) != Some(&0) || one != [before, &[1, 0xff], after].concat() {
        return Err(candid::Error::msg("the encodings of a value do not differ only in its blob"));
    }
    Ok((before.to_vec(), after.to_vec()))
}

impl RestoreChunk {
    /// The request `(self,)` as candid encodes it, the chunk's bytes copied once into it (candid's
    /// encoder copies a blob into a growing buffer, then into its output).
    pub fn encode_request(&self) -> candid::Result<Vec<u8>> {
        let (before, after) = around_blob(|data| candid::encode_one(RestoreChunk { data: ByteBuf::from(data), ..self.clone_empty() }))?;
        let mut request = Vec::with_capacity(before.len() + 10 + self.data.len() + after.len());
        request.extend_from_slice(&before);
        leb128(&mut request, self.data.len() as u64);
        request.extend_from_slice(&self.data);
        request.extend_from_slice(&after);
        Ok(request)
    }

    /// The request's fields without its bytes.
    fn clone_empty(&self) -> RestoreChunk {
        RestoreChunk { job: self.job, index: self.index, data: ByteBuf::new(), sha256: self.sha256, nonce: self.nonce }
    }
}

/// Candid's encoding of `Ok(chunk)` without the header.
fn reply_value(chunk: Chunk) -> candid::Result<Vec<u8>> {
    let mut serializer = candid::ser::ValueSerializer::new();
    Ok::<Chunk, BackupError>(chunk).idl_serialize(&mut serializer)?;
    Ok(serializer.get_result().to_vec())
}

/// The header of a `Result<Chunk, BackupError>` reply (the magic, the type table and the
/// argument's type): candid's encoding of a chunk less that of its value.
fn reply_header() -> candid::Result<Vec<u8>> {
    if let Some(header) = REPLY_HEADER.with(|header| header.get().cloned()) {
        return Ok(header);
    }
    let chunk = Chunk { index: 0, data: ByteBuf::new(), sha256: Sha256::default(), changed_pages: None, base_ranges: None };
    let encoded = candid::encode_one(Ok::<Chunk, BackupError>(chunk.clone()))?;
    let value = reply_value(chunk)?;
    let header = encoded.strip_suffix(&value[..]).ok_or_else(|| candid::Error::msg("a chunk's encoding does not end with its value"))?;
    Ok(REPLY_HEADER.with(|cell| cell.get_or_init(|| header.to_vec()).clone()))
}

/// Appends `n` in unsigned LEB128, as candid encodes lengths, counts and field ids.
pub fn leb128(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RestoreBegin {
    pub job: u64,
    pub state_kind: StateKind,
    pub size: u64,
    pub chunk_size: u64,
    /// The snapshot's manifest hash in its content hash, checked before commit.
    pub sha256: Sha256,
    pub nonce: Option<u64>,
    /// The snapshot's content hash; none (a vault before BLAKE3) is SHA-256.
    pub content_hash: Option<ContentHash>,
    /// A serde image to be loaded by the app's next upgrade (`RestoreCommit::via_upgrade`), so
    /// checked against what an upgrade may execute rather than one update; none is false.
    pub via_upgrade: Option<bool>,
}

impl RestoreBegin {
    /// The restore's content hash: every digest it carries is in it.
    pub fn content_hash(&self) -> ContentHash {
        self.content_hash.unwrap_or(ContentHash::Sha256)
    }
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RestoreChunk {
    pub job: u64,
    pub index: u32,
    pub data: ByteBuf,
    /// The chunk's digest in the restore's content hash (`RestoreBegin::content_hash`).
    pub sha256: Sha256,
    pub nonce: Option<u64>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobRef {
    pub job: u64,
    pub nonce: Option<u64>,
}

/// Closes job `job`'s dump. `base`: the vault stored the whole dump as this snapshot, so the app
/// keeps its image as the base of this vault instance's next incremental dump (`DumpBegin::base`)
/// in place of the one it kept before; none from a vault that does not, or before incremental
/// dumps (a `JobRef`, which this record extends).
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct DumpEnd {
    pub job: u64,
    pub nonce: Option<u64>,
    pub base: Option<u64>,
}

/// Commits job `job`'s staged image: the job reference, with the state layout the app must still
/// declare (release 0.1.0's vault and a restore allowed to change the layout send none).
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestoreCommit {
    pub job: u64,
    pub nonce: Option<u64>,
    pub state_layout: Option<u32>,
    /// For a serde image staged with `RestoreBegin::via_upgrade`: check it and leave it staged
    /// for the app's next upgrade to load (`vault_client::load_after_upgrade`) in place of the
    /// state its `pre_upgrade` saved, rather than load it in this message; none is false.
    pub via_upgrade: Option<bool>,
}

/// What a committed restore put in place.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RestoreReport {
    pub job: u64,
    pub state_kind: StateKind,
    pub size: u64,
    /// The manifest hash of the image committed, in the restore's content hash.
    pub sha256: Sha256,
    /// The commit staged the image for the app's next upgrade to load rather than put it in
    /// place (`RestoreCommit::via_upgrade`; `BackupInfo::upgrade_restore` says whether one has);
    /// none is false (the state is in place).
    pub loads_at_upgrade: Option<bool>,
}

/// Why an app refused a protocol call. The app's state is unchanged by a refused call.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackupError {
    #[error("{caller} is not this app's vault")]
    NotTheVault { caller: Principal },
    #[error("no vault is set for this app")]
    NoVaultSet,
    #[error("no state saved by an upgrade to dump: {reason}")]
    NoUpgradeSave { reason: String },
    #[error("only a controller of the app may set its vault; {caller} is not one")]
    NotAController { caller: Principal },
    #[error("no dump or restore is open for job {job}")]
    UnknownJob { job: u64 },
    #[error("chunk {index} is out of range: the image has {chunks} chunks")]
    ChunkOutOfRange { index: u32, chunks: u32 },
    #[error("chunk {index} does not match its digest")]
    ChunkHashMismatch { index: u32 },
    #[error("chunk {index} has {actual} bytes, not {expected}")]
    ChunkSizeMismatch { index: u32, expected: u64, actual: u64 },
    #[error("{missing} chunks are missing, the first is {first}")]
    MissingChunks { missing: u32, first: u32 },
    #[error("the staged image hashes to {actual}, not {expected}")]
    SnapshotHashMismatch { expected: Sha256, actual: Sha256 },
    #[error("a {snapshot:?} snapshot cannot be restored into a {app:?} app")]
    StateKindMismatch { app: StateKind, snapshot: StateKind },
    #[error("chunk size {chunk_size} is not supported: it must be between 1 and {max}")]
    UnsupportedChunkSize { chunk_size: u64, max: u64 },
    #[error("the app registered no reload hook: a stable-memory app must call vault_client::on_restore so its structures reload after a restore")]
    NoReloadHook,
    #[error("invalid image: {message}")]
    InvalidImage { message: String },
    #[error("an image of {size} bytes exceeds this app's limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error(
        "the state ({size} bytes) needs about {estimated_instructions} instructions to serialize, over the {limit} a message may use: take it through the upgrade path"
    )]
    TooLargeForOneMessage { size: u64, estimated_instructions: u64, limit: u64 },
    #[error("serialization failed: {message}")]
    Serialization { message: String },
    #[error("the staged image does not deserialize: {message}")]
    Deserialization { message: String },
    #[error("{vault} cannot be a vault: it is the anonymous principal or the management canister")]
    InvalidVault { vault: Principal },
    #[error("the app declares state layout {app}, not the snapshot's {snapshot}: nothing was committed")]
    StateLayoutMismatch { snapshot: u32, app: u32 },
    /// An app captured through native snapshots: the management canister refused a snapshot
    /// method on it (the vault not a controller any more, the app's snapshot slots full, a
    /// snapshot that does not fit, ...).
    #[error("the management canister refused {method} (reject code {reject_code}): {message}")]
    NativeRefused { method: String, reject_code: u32, message: String },
}

/// Characters of text from an app (a reject message, an error's message) the vault keeps.
pub const MAX_APP_TEXT: usize = 256;

/// `text` cut to [`MAX_APP_TEXT`] characters, marked where it was cut.
pub fn bounded_text(text: &str) -> String {
    match text.char_indices().nth(MAX_APP_TEXT) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}

impl BackupError {
    /// The error with its text cut to [`MAX_APP_TEXT`]: an app's error is stored and shown.
    pub fn bounded(self) -> Self {
        match self {
            BackupError::InvalidImage { message } => BackupError::InvalidImage { message: bounded_text(&message) },
            BackupError::Serialization { message } => BackupError::Serialization { message: bounded_text(&message) },
            BackupError::Deserialization { message } => BackupError::Deserialization { message: bounded_text(&message) },
            BackupError::NativeRefused { method, reject_code, message } => {
                BackupError::NativeRefused { method: bounded_text(&method), reject_code, message: bounded_text(&message) }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_text_is_cut_on_a_character_boundary() {
        assert_eq!(bounded_text("short"), "short");
        let long = "é".repeat(MAX_APP_TEXT + 10);
        let cut = bounded_text(&long);
        assert_eq!(cut.chars().count(), MAX_APP_TEXT + 3);
        assert!(cut.ends_with("..."));
        let error = BackupError::Serialization { message: long }.bounded();
        assert!(matches!(error, BackupError::Serialization { message } if message == cut));
    }

    #[test]
    fn a_restore_chunk_request_is_candids_encoding() {
        let patterned = |len: usize| (0..len).map(|i| (i * 13 + len) as u8).collect::<Vec<u8>>();
        for len in [0, 1, 127, 128, 16383, 16384, CHUNK_SIZE as usize] {
            for (index, nonce) in [(0, None), (128, Some(1)), (u32::MAX, Some(u64::MAX))] {
                let args = RestoreChunk { job: 1 << 40, index, data: ByteBuf::from(patterned(len)), sha256: Sha256([0xab; 32]), nonce };
                let request = args.encode_request().expect("a chunk encodes");
                assert!(request == candid::encode_one(&args).unwrap(), "{len} bytes, index {index}");
            }
        }
    }

    #[test]
    fn a_chunk_reply_in_pieces_is_candids_encoding() {
        let patterned = |len: usize| (0..len).map(|i| (i * 7 + len) as u8).collect::<Vec<u8>>();
        for len in [0, 1, 127, 128, 129, 16383, 16384, 16385, (1 << 21) - 1, 1 << 21, CHUNK_SIZE as usize] {
            for index in [0, 1, 127, 128, 16384, u32::MAX] {
                let pages = [None, Some(ByteBuf::new()), Some(ByteBuf::from(patterned(64)))];
                let ranges = [Some(vec![BaseRange { at: 1, from: 1 << 40, len: 7 }, BaseRange { at: 9, from: 3, len: u32::MAX }]), Some(vec![]), None];
                let shapes = pages.into_iter().zip(ranges);
                for (sha256, (changed_pages, base_ranges)) in [Sha256::default(), Sha256([0xff; 32]), Sha256::of(&patterned(len))].into_iter().zip(shapes) {
                    let chunk = Chunk { index, data: ByteBuf::from(patterned(len)), sha256, changed_pages, base_ranges };
                    let reply = ChunkReply::of(&chunk).expect("a chunk encodes");
                    let expected = candid::encode_one(Ok::<Chunk, BackupError>(chunk.clone())).unwrap();
                    assert!(reply.pieces().concat() == expected, "{len} bytes, index {index}, {sha256}");
                    assert_eq!(reply.pieces()[1], &chunk.data[..]);
                    let decoded: Result<Chunk, BackupError> = crate::decode::one(&reply.pieces().concat()).unwrap();
                    assert_eq!(decoded, Ok(chunk));
                }
            }
        }
    }

    /// `DumpManifest` as the builds before BLAKE3 have it.
    #[derive(CandidType, Deserialize, Debug, PartialEq)]
    struct DumpManifestBefore {
        job: u64,
        state_kind: StateKind,
        size: u64,
        chunk_size: u64,
        taken_at_nanos: u64,
        state_layout: Option<u32>,
    }

    #[test]
    fn a_snapshot_is_blake3_only_for_a_library_that_verifies_it_and_old_manifests_read_as_sha256() {
        let before = DumpManifestBefore { job: 1, state_kind: StateKind::Serde, size: 2, chunk_size: 3, taken_at_nanos: 4, state_layout: None };
        let old: DumpManifest = candid::decode_one(&candid::encode_one(&before).unwrap()).unwrap();
        assert_eq!((old.content_hashes.as_ref(), old.content_hash()), (None, ContentHash::Sha256));
        let new = DumpManifest { content_hashes: Some(vec![ContentHash::Sha256, ContentHash::Blake3]), ..old.clone() };
        assert_eq!(new.content_hash(), ContentHash::Blake3);
        assert_eq!(DumpManifest { content_hashes: Some(vec![ContentHash::Sha256]), ..old }.content_hash(), ContentHash::Sha256);
        let read_by_old: DumpManifestBefore = candid::decode_one(&candid::encode_one(&new).unwrap()).unwrap();
        assert_eq!(read_by_old, before, "a vault before BLAKE3 reads a manifest of this build");
    }
}
