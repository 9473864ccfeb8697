//! The client library's stable memory.
//!
//! The library owns the app's raw stable memory and divides it with a `MemoryManager`:
//!
//! ```text
//! raw stable memory (MemoryManager)
//! ├── 0 SLOTS       4 KiB slots: the pages of the app's memory (what `vault_client::memory()`
//! │                 hands out) and their page tables; layouts 1-3: the app's memory as it is
//! ├── 1 STAGING     a serialized dump, or a serde restore being staged
//! ├── 2 COW         retired in layout 4 (layouts 1-3: old contents of pages written during a dump)
//! ├── 3 HEADER      the `Header` below, in a StableCell
//! ├── 4 COW_INDEX   retired in layout 4 (layouts 1-3: StableBTreeMap<page: u64, slot: u64>)
//! ├── 5 STAGED      StableBTreeMap<chunk index: u32, digest: [u8; 32]> (in the restore's content hash)
//! ├── 6 UPGRADE     a serde app's state kept across its upgrades (length-prefixed MessagePack)
//! ├── 7 DIR_A       a version's page directory: the live one, or a staged restore's
//! ├── 8 DIR_B       the other of the two
//! ├── 9 DIR_FROZEN  the page directory of the version an open stable-memory dump reads
//! ├── 10 FREE       slots ever taken (u64), then a bitmap of them: bit s of word s / 64 set if
//! │                 slot s is free
//! ├── 11 DIR_BASE   the page directory of the base of the next incremental dump
//! ├── 12 UPGRADE_RESTORE  a serde restore committed to load at the next upgrade, and how it went
//! │                 (`upgrade_restore`; an addition without a layout change: a build without
//! │                 it never opens it, and its upgrade keeps the state the app saved)
//! ├── 13 UPGRADE_SAVED  whether UPGRADE holds the state the app had at its last upgrade, and
//! │                 when it saved it (`serde_state`)
//! ├── 14 CONTENT_PIECES  StableBTreeMap<chunk index: u32, pieces: blob>: the pieces an open serde
//! │                 dump with a content index cut each chunk read so far into (`content_index`)
//! └── 15 CONTENT_BASE  the content index of the base of the next incremental serde dump
//!                   (`content_index`)
//! ```
//!
//! Ids are append-only: a retired id stays listed here and is never reused.
//!
//! The app's memory (`pages`): logical 4 KiB page p of a version is in the slot its table page
//! p / 512 maps it to, entry p % 512; table page t is in the slot entry t of the version's
//! directory maps it to. An entry is 8 bytes, little endian: 0 for none (zeros, or no table
//! page), else the slot + 1 in its low 32 bits and the generation it was taken in above.
//!
//! ```text
//! DIR_A/B/FROZEN: [entry of table page 0][entry of table page 1] ...
//!                       │
//! SLOTS:                └─► table page: [entry of page 0] ... [entry of page 511] ──► a page's slot
//! ```
//!
//! `Header`, version 6, 422 bytes: version 5's, then whether the open dump indexes its content
//! (420, 1 byte: 1 if so, see `content_index`) and the base's kind (421, 1 byte: a state kind
//! byte, 0 when there is no base): a stable-memory image kept by the paged memory, or a serde
//! serialization whose content index CONTENT_BASE holds.
//!
//! `Header`, version 5, 420 bytes: version 4's, then whether the open dump reads the state the
//! app's last upgrade saved (419, 1 byte: 1 if so, its "frozen generation" then that save's
//! generation, see `serde_state`).
//!
//! `Header`, version 4, 419 bytes: version 3's below, then the live directory (345, 1 byte:
//! 0 DIR_A, 1 DIR_B), the generation the next slots are taken in (346, 4 bytes), whether the
//! open dump is incremental (350, 1 byte) and the base (351, 68 bytes: present 1 byte, the vault
//! 30, its nonce 9 as in a key, the snapshot 8, size 8, generation 4, touched at 8; zeros when
//! there is none); the dump's "COW slots used" (125) is the frozen version's generation.
//!
//! `Header`, version 3, 345 bytes, little endian:
//!
//! ```text
//!   0  4  magic "CVCL"             44  1  dump present           134  1  restore present
//!   4  1  layout version (3)       45 47  dump key               135 47  restore key
//!   5  1  state kind (0/1/2)       92  8  dump touched at        182  8  restore touched at
//!   6 30  vault (opt principal)   100  1  dump kind              190  1  restore kind
//!  36  8  APP size (wasm pages)   101  8  dump size              191  8  restore size
//!                                 109  8  dump chunk size        199  8  restore chunk size
//!                                 117  8  dump taken at          207 32  restore manifest hash
//!                                 125  8  COW slots used         239  1  restore content hash
//!                                 133  1  dump chunk hashes
//! 240  1  last commit present    241 47  its key   288  8  its size   296 32  its manifest hash
//! 328  1  its kind               329  8  bytes of the last serde dump
//! 337  8  instructions it took
//! ```
//! Dump chunk hashes: 1 if the dump answers each chunk with its SHA-256, 0 if its vault hashes
//! them itself. Restore content hash: 0 SHA-256, 1 BLAKE3 (`vault_api::codec`); the manifest
//! hash and the STAGED digests are in it.
//!
//! `Header`, version 2, 343 bytes, read by `decode_v2`: version 3 without its two content-hash
//! bytes (133 and 239), so every field after the first is a byte earlier, after the second two.
//! A dump of version 2 answers each chunk's SHA-256; a restore of version 2 is SHA-256.
//!
//! A key, 47 bytes: the job (8), the vault that opened it (30, a principal), then its instance
//! nonce: 1 if there is one (9 bytes: the byte, then the nonce). State kind: 0 not yet known,
//! 1 serde, 2 stable memory. The two "present" bytes hold the [`Session`]: at most one of them is
//! 1, and the slot of the operation not open is zeros, as is the last commit's when there is none.
//!
//! `Header`, version 1, 210 bytes (release 0.1.0), read by `decode_v1`:
//!
//! ```text
//! 0   4  magic "CVCL"          44  1  dump present        86  1  restore present
//! 4   1  layout version (1)    45  8  dump job            87  8  restore job
//! 5   1  state kind (0/1/2)    53  1  dump kind           95  1  restore kind
//! 6  30  vault (opt principal) 54  8  dump size           96  8  restore size
//! 36  8  APP size (wasm pages) 62  8  dump chunk size    104  8  restore chunk size
//!                              70  8  dump taken at      112 32  restore SHA-256
//!                              78  8  COW slots used
//! 144 1  last commit present   145 8  its job    153 8  its size   161 32 its SHA-256
//! 193 1  its kind              194 8  bytes of the last serde dump
//! 202 8  instructions it took
//! ```
//! The slot of the operation not open holds job 0, kind 1 and zeros; so does the last commit's
//! when there is none.
//!
//! The layout version covers all of the above. This build writes [`LAYOUT_VERSION`] and reads
//! every version from [`OLDEST_LAYOUT`] on: the cell keeps the header as a [`StoredHeader`],
//! its version read first; the bytes after it may differ per version, so each version read
//! has its decoder here (`decode_v1` to `decode_v6`), and `migration` picks it by the version byte,
//! then runs one step per version up to the current one. An instance does this when it first
//! reads the header; the entry points an app calls in `post_upgrade` (`on_restore`,
//! `load_after_upgrade`, `use_serde_state`, `set_vault`, and `memory()` through its size) read
//! it first. A stored version newer than this build knows, or older than it reads, is refused
//! before anything is read past the version byte or written: the app's `post_upgrade` traps,
//! and the IC keeps the app on its previous module, its memory as it was. (An app whose
//! `post_upgrade` calls none of them traps instead in each message that reaches the library.)
//!
//! Layouts:
//! - 1: release 0.1.0: a session is keyed by its job alone.
//! - 2: a session and the last commit are keyed by the vault that opened them, its instance
//!   nonce and the job, and a session records when a vault call last touched it. The step from
//!   1 closes a dump or restore open under layout 1, releasing its pages or staged chunks (the
//!   vault's next call finds no such job and opens it again), and binds the last commit to the
//!   app's vault without a nonce, as release 0.1.0's vault sends none.
//! - 3: a dump records whether it answers each chunk's SHA-256 (a vault that hashes every chunk
//!   itself asks for none), a restore its content hash. The step from 2 changes nothing: what
//!   layout 2 opened hashes as it always did, with SHA-256.
//! - 4: the app's memory is paged. The step from 3 writes table pages mapping each page of the
//!   app's memory to the slot it already is in (8 bytes per 4 KiB, no page moved), and closes a
//!   dump or restore open under layout 3 as the step from 1 does.

use std::borrow::Cow;

use candid::Principal;
use ic_stable_structures::memory_manager::MemoryId;
use ic_stable_structures::storable::Bound;
use ic_stable_structures::{StableBTreeMap, Storable};
use vault_api::codec::{Reader, Writer, content_hash_byte, content_hash_of};
use vault_api::protocol::StateKind;
use vault_api::{ContentHash, Sha256};

/// The SLOTS memory's id, as the `MemoryManager` records its buckets' owner.
pub const SLOTS_ID: u8 = 0;
pub const SLOTS: MemoryId = MemoryId::new(SLOTS_ID);
pub const STAGING: MemoryId = MemoryId::new(1);
pub const HEADER: MemoryId = MemoryId::new(3);
pub const COW_INDEX: MemoryId = MemoryId::new(4);
pub const STAGED: MemoryId = MemoryId::new(5);
pub const UPGRADE: MemoryId = MemoryId::new(6);
pub const DIR_A: MemoryId = MemoryId::new(7);
pub const DIR_B: MemoryId = MemoryId::new(8);
pub const DIR_FROZEN: MemoryId = MemoryId::new(9);
pub const FREE: MemoryId = MemoryId::new(10);
pub const DIR_BASE: MemoryId = MemoryId::new(11);
pub const UPGRADE_RESTORE: MemoryId = MemoryId::new(12);
pub const UPGRADE_SAVED: MemoryId = MemoryId::new(13);
pub const CONTENT_PIECES: MemoryId = MemoryId::new(14);
pub const CONTENT_BASE: MemoryId = MemoryId::new(15);

/// The COW_INDEX map: page of the app's memory -> slot of the COW memory holding its old contents.
pub type CowIndex<M> = StableBTreeMap<u64, u64, M>;
/// The STAGED map: chunk index -> its digest, in the restore's content hash.
pub type Staged<M> = StableBTreeMap<u32, [u8; 32], M>;

const MAGIC: &[u8; 4] = b"CVCL";
/// Version of the layout above, which this build writes; stored in the header.
pub const LAYOUT_VERSION: u8 = 6;
/// The oldest layout this build reads; `migration` takes it up to [`LAYOUT_VERSION`].
pub const OLDEST_LAYOUT: u8 = 1;
/// Bytes of the current layout's header, its magic and version included.
const HEADER_BYTES: usize = 422;
/// Bytes of the base's slot, its "present" byte included.
const BASE_SLOT_BYTES: usize = 1 + 30 + 9 + 8 + 8 + 4 + 8;
/// Bytes of a key, and of each slot with its "present" byte, in layout 2 and in layout 3 (one
/// content-hash byte more in the dump's and the restore's).
const KEY_BYTES: usize = 47;
const V2_DUMP_SLOT_BYTES: usize = 1 + KEY_BYTES + 8 + 1 + 4 * 8;
const V2_RESTORE_SLOT_BYTES: usize = 1 + KEY_BYTES + 8 + 1 + 2 * 8 + 32;
const DUMP_SLOT_BYTES: usize = V2_DUMP_SLOT_BYTES + 1;
const RESTORE_SLOT_BYTES: usize = V2_RESTORE_SLOT_BYTES + 1;
const COMMITTED_SLOT_BYTES: usize = 1 + KEY_BYTES + 8 + 32 + 1;

/// Who opened a dump or restore and for which job: a later call is for it only if its key is
/// the same (else the app answers `UnknownJob`). Release 0.1.0's vault sends no nonce, so what
/// it opens is keyed by its principal and the job only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionKey {
    /// The vault that called.
    pub vault: Principal,
    /// That vault's instance nonce, fixed once per install of it.
    pub nonce: Option<u64>,
    pub job: u64,
}

/// An open dump: the image frozen at `taken_at_nanos`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenDump {
    pub key: SessionKey,
    pub kind: StateKind,
    pub size: u64,
    pub chunk_size: u64,
    pub taken_at_nanos: u64,
    /// Stable-memory dumps: the generation of the version it reads (see `pages`); a dump of the
    /// state the last upgrade saved: that save's generation.
    pub frozen_generation: u32,
    /// When a vault call other than a chunk read last touched it.
    pub touched_at_nanos: u64,
    /// Whether it answers each chunk with its SHA-256: its vault did not say it hashes them itself.
    pub chunk_hashes: bool,
    /// Whether it answers the pages that differ from the base (`Header::base`).
    pub incremental: bool,
    /// Whether it reads the serde state the app's last upgrade saved (`save_for_upgrade`) rather
    /// than a serialization of the state as it is.
    pub from_upgrade_save: bool,
    /// Whether it indexes its content as its chunks are read (`DumpBegin::content_index`), so
    /// that it may become the base of the next.
    pub content_index: bool,
}

/// A restore being staged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenRestore {
    pub key: SessionKey,
    pub kind: StateKind,
    pub size: u64,
    pub chunk_size: u64,
    /// The manifest hash the staged chunks must produce, in `content_hash`.
    pub sha256: Sha256,
    /// When a vault call last touched it.
    pub touched_at_nanos: u64,
    /// The snapshot's content hash: each staged chunk is checked in it, and the manifest.
    pub content_hash: ContentHash,
}

/// The one operation open at a time: a dump and a restore are never open together (a new one
/// supersedes the other, see the `session` module).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Session {
    #[default]
    Idle,
    Dumping(OpenDump),
    Restoring(OpenRestore),
}

impl Session {
    /// When a vault call last touched the open operation; `None` when idle.
    pub fn touched_at_nanos(&self) -> Option<u64> {
        match self {
            Session::Idle => None,
            Session::Dumping(dump) => Some(dump.touched_at_nanos),
            Session::Restoring(restore) => Some(restore.touched_at_nanos),
        }
    }
}

/// The last restore committed, so a repeated commit answers the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub key: SessionKey,
    pub kind: StateKind,
    pub size: u64,
    pub sha256: Sha256,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Header {
    pub state_kind: Option<StateKind>,
    pub vault: Option<Principal>,
    /// Size of the APP memory as the app sees it, in wasm pages.
    pub app_pages: u64,
    pub session: Session,
    pub committed: Option<Committed>,
    /// Bytes and instructions of the last serde dump, to estimate the next one's cost.
    pub serde_cost: (u64, u64),
    /// Which directory is the live version's.
    pub live_dir: LiveDir,
    /// The generation slots are taken in now.
    pub generation: u32,
    /// The base of the next incremental dump.
    pub base: Option<Base>,
}

/// An image a vault stored whole as one of its snapshots and named as the base of its next
/// incremental dump: bound to that vault instance. A stable-memory image is kept by the paged
/// memory (see `pages`); of a serde serialization, its content index is (`content_index`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Base {
    pub kind: StateKind,
    pub vault: Principal,
    pub nonce: Option<u64>,
    pub snapshot: u64,
    pub size: u64,
    pub generation: u32,
    /// When a vault call last touched it (its dump's end, or a dump against it).
    pub touched_at_nanos: u64,
}

/// The two directories the live version and a staged restore take turns in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LiveDir {
    #[default]
    A,
    B,
}

impl LiveDir {
    pub fn other(self) -> LiveDir {
        match self {
            LiveDir::A => LiveDir::B,
            LiveDir::B => LiveDir::A,
        }
    }
}

fn kind_byte(kind: Option<StateKind>) -> u8 {
    match kind {
        None => 0,
        Some(StateKind::Serde) => 1,
        Some(StateKind::StableMemory) => 2,
        Some(StateKind::Native) => unreachable!("a library app's state is serde or stable memory"),
    }
}

fn kind_of(byte: u8) -> Option<StateKind> {
    match byte {
        0 => None,
        1 => Some(StateKind::Serde),
        2 => Some(StateKind::StableMemory),
        other => panic!("unknown state kind {other} in the client header"),
    }
}

/// The header as its cell stores it: the magic, checked, the layout version, read, and the bytes
/// after it, which only the decoder of that version reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredHeader {
    pub layout: u8,
    pub fields: Vec<u8>,
}

impl Storable for StoredHeader {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.clone().into_bytes())
    }

    fn into_bytes(self) -> Vec<u8> {
        let mut w = Writer::with_capacity(MAGIC.len() + 1 + self.fields.len());
        w.bytes(MAGIC).u8(self.layout).bytes(&self.fields);
        w.into_vec()
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        let mut r = Reader::new(&bytes);
        assert_eq!(&r.array::<4>(), MAGIC, "not a client header");
        let layout = r.u8();
        StoredHeader { layout, fields: r.rest().to_vec() }
    }

    /// Each layout's header may have its own size.
    const BOUND: Bound = Bound::Unbounded;
}

/// Reads the fields after the version byte of one layout into a [`Header`].
pub type Decoder = fn(&[u8]) -> Header;

fn write_key(w: &mut Writer, key: &SessionKey) {
    w.u64(key.job).principal(&key.vault).u8(key.nonce.is_some() as u8).u64(key.nonce.unwrap_or(0));
}

fn read_key(r: &mut Reader) -> SessionKey {
    let job = r.u64();
    let vault = r.principal();
    let (present, nonce) = (r.u8() == 1, r.u64());
    SessionKey { vault, nonce: present.then_some(nonce), job }
}

/// The session of the two slots' contents; no release writes both, as a dump and a restore
/// have always superseded each other.
fn session_of(dump: Option<OpenDump>, restore: Option<OpenRestore>) -> Session {
    match (dump, restore) {
        (None, None) => Session::Idle,
        (Some(dump), None) => Session::Dumping(dump),
        (None, Some(restore)) => Session::Restoring(restore),
        (Some(_), Some(_)) => both_open(),
    }
}

/// A broken invariant: which operation the vault still drives cannot be told, so the message
/// traps rather than guess.
fn both_open() -> ! {
    panic!(
        "the client header has both a dump and a restore open, which this library never writes: \
         its stable memory was changed from outside the library"
    )
}

impl Header {
    /// The header in this build's layout, [`LAYOUT_VERSION`].
    pub fn encode(&self) -> StoredHeader {
        let mut w = Writer::with_capacity(HEADER_BYTES);
        w.u8(kind_byte(self.state_kind)).opt_principal(self.vault.as_ref()).u64(self.app_pages);
        match &self.session {
            Session::Dumping(dump) => {
                w.u8(1);
                write_key(&mut w, &dump.key);
                w.u64(dump.touched_at_nanos)
                    .u8(kind_byte(Some(dump.kind)))
                    .u64(dump.size)
                    .u64(dump.chunk_size)
                    .u64(dump.taken_at_nanos)
                    .u64(dump.frozen_generation.into())
                    .u8(dump.chunk_hashes as u8);
            }
            _ => {
                w.bytes(&[0; DUMP_SLOT_BYTES]);
            }
        }
        match &self.session {
            Session::Restoring(restore) => {
                w.u8(1);
                write_key(&mut w, &restore.key);
                w.u64(restore.touched_at_nanos)
                    .u8(kind_byte(Some(restore.kind)))
                    .u64(restore.size)
                    .u64(restore.chunk_size)
                    .sha256(&restore.sha256)
                    .u8(content_hash_byte(restore.content_hash));
            }
            _ => {
                w.bytes(&[0; RESTORE_SLOT_BYTES]);
            }
        }
        match &self.committed {
            Some(committed) => {
                w.u8(1);
                write_key(&mut w, &committed.key);
                w.u64(committed.size).sha256(&committed.sha256).u8(kind_byte(Some(committed.kind)));
            }
            None => {
                w.bytes(&[0; COMMITTED_SLOT_BYTES]);
            }
        }
        w.u64(self.serde_cost.0).u64(self.serde_cost.1);
        w.u8(matches!(self.live_dir, LiveDir::B) as u8).u32(self.generation);
        w.u8(matches!(&self.session, Session::Dumping(dump) if dump.incremental) as u8);
        match &self.base {
            Some(base) => {
                w.u8(1).principal(&base.vault).u8(base.nonce.is_some() as u8).u64(base.nonce.unwrap_or(0));
                w.u64(base.snapshot).u64(base.size).u32(base.generation).u64(base.touched_at_nanos);
            }
            None => {
                w.bytes(&[0; BASE_SLOT_BYTES]);
            }
        }
        w.u8(matches!(&self.session, Session::Dumping(dump) if dump.from_upgrade_save) as u8);
        w.u8(matches!(&self.session, Session::Dumping(dump) if dump.content_index) as u8);
        w.u8(kind_byte(self.base.as_ref().map(|base| base.kind)));
        let fields = w.into_vec();
        debug_assert_eq!(MAGIC.len() + 1 + fields.len(), HEADER_BYTES);
        StoredHeader { layout: LAYOUT_VERSION, fields }
    }
}

/// Layout 6's decoder.
pub fn decode_v6(fields: &[u8]) -> Header {
    let mut r = Reader::new(fields);
    let mut header = decode_with_source(&mut r);
    let content_index = r.u8() == 1;
    if let Session::Dumping(dump) = &mut header.session {
        dump.content_index = content_index;
    }
    let base_kind = kind_of(r.u8());
    if let Some(base) = &mut header.base {
        base.kind = base_kind.expect("a base has a kind");
    }
    header
}

/// Layout 5's decoder: a dump it has open indexes no content, and its base is a stable-memory
/// image, the only kind it kept.
pub fn decode_v5(fields: &[u8]) -> Header {
    decode_with_source(&mut Reader::new(fields))
}

/// Layouts 5 and 6, whose dumps say what they read.
fn decode_with_source(r: &mut Reader) -> Header {
    let mut header = decode_paged(r);
    let from_upgrade_save = r.u8() == 1;
    if let Session::Dumping(dump) = &mut header.session {
        dump.from_upgrade_save = from_upgrade_save;
    }
    header
}

/// Layout 4's decoder: a dump it has open reads the state as it is.
pub fn decode_v4(fields: &[u8]) -> Header {
    decode_paged(&mut Reader::new(fields))
}

/// Layouts 4 and 5, whose app memory is paged.
fn decode_paged(r: &mut Reader) -> Header {
    let mut header = decode_keyed(r, true);
    header.live_dir = if r.u8() == 1 { LiveDir::B } else { LiveDir::A };
    header.generation = r.u32();
    let incremental = r.u8() == 1;
    if let Session::Dumping(dump) = &mut header.session {
        dump.incremental = incremental;
    }
    header.base = if r.u8() == 1 {
        let vault = r.principal();
        let (present, nonce) = (r.u8() == 1, r.u64());
        let (snapshot, size, generation, touched_at_nanos) = (r.u64(), r.u64(), r.u32(), r.u64());
        Some(Base { kind: StateKind::StableMemory, vault, nonce: present.then_some(nonce), snapshot, size, generation, touched_at_nanos })
    } else {
        r.array::<{ BASE_SLOT_BYTES - 1 }>();
        None
    };
    header
}

/// Layout 3's decoder: its dump's frozen generation is not one (the step to layout 4 closes it).
pub fn decode_v3(fields: &[u8]) -> Header {
    decode_keyed(&mut Reader::new(fields), true)
}

/// Layout 2's decoder: a dump answers each chunk's SHA-256, a restore is SHA-256.
pub fn decode_v2(fields: &[u8]) -> Header {
    decode_keyed(&mut Reader::new(fields), false)
}

/// Layouts 2 to 4, whose sessions are keyed by their vault instance: layouts 3 and 4 have the
/// dump's and the restore's content-hash bytes (`content_hashes`), layout 2 has neither.
fn decode_keyed(r: &mut Reader, content_hashes: bool) -> Header {
    let state_kind = kind_of(r.u8());
    let vault = r.opt_principal();
    let app_pages = r.u64();
    let dump = if r.u8() == 1 {
        let mut dump = OpenDump {
            key: read_key(r),
            touched_at_nanos: r.u64(),
            kind: kind_of(r.u8()).expect("a kind"),
            size: r.u64(),
            chunk_size: r.u64(),
            taken_at_nanos: r.u64(),
            frozen_generation: r.u64() as u32,
            chunk_hashes: true,
            incremental: false,
            from_upgrade_save: false,
            content_index: false,
        };
        if content_hashes {
            dump.chunk_hashes = r.u8() == 1;
        }
        Some(dump)
    } else {
        r.array::<{ V2_DUMP_SLOT_BYTES - 1 }>();
        if content_hashes {
            r.u8();
        }
        None
    };
    let restore_present = r.u8() == 1;
    if dump.is_some() && restore_present {
        both_open();
    }
    let restore = if restore_present {
        let mut restore = OpenRestore {
            key: read_key(r),
            touched_at_nanos: r.u64(),
            kind: kind_of(r.u8()).expect("a kind"),
            size: r.u64(),
            chunk_size: r.u64(),
            sha256: r.sha256(),
            content_hash: ContentHash::Sha256,
        };
        if content_hashes {
            restore.content_hash = content_hash_of(r.u8()).expect("a content hash");
        }
        Some(restore)
    } else {
        r.array::<{ V2_RESTORE_SLOT_BYTES - 1 }>();
        if content_hashes {
            r.u8();
        }
        None
    };
    let committed = if r.u8() == 1 {
        let (key, size, sha256) = (read_key(r), r.u64(), r.sha256());
        Some(Committed { key, kind: kind_of(r.u8()).expect("a kind"), size, sha256 })
    } else {
        r.array::<{ COMMITTED_SLOT_BYTES - 1 }>();
        None
    };
    let serde_cost = (r.u64(), r.u64());
    Header { state_kind, vault, app_pages, session: session_of(dump, restore), committed, serde_cost, ..Header::default() }
}

/// Layout 1's decoder. Layout 1 keyed a session and the last commit by the job alone: they are
/// read as the app's vault's, without a nonce (release 0.1.0's vault sends none), a dump as
/// touched when it was taken and a restore, of which no time was kept, at 0. (The step to
/// layout 2 closes what is open.)
pub fn decode_v1(fields: &[u8]) -> Header {
    let mut r = Reader::new(fields);
    let state_kind = kind_of(r.u8());
    let vault = r.opt_principal();
    let app_pages = r.u64();
    // The anonymous principal, which no vault is, if none is set.
    let key = |job| SessionKey { vault: vault.unwrap_or(Principal::anonymous()), nonce: None, job };
    let dump_present = r.u8() == 1;
    let mut dump = OpenDump {
        key: key(r.u64()),
        kind: kind_of(r.u8()).expect("a kind"),
        size: r.u64(),
        chunk_size: r.u64(),
        taken_at_nanos: r.u64(),
        frozen_generation: r.u64() as u32,
        touched_at_nanos: 0,
        chunk_hashes: true,
        incremental: false,
        from_upgrade_save: false,
        content_index: false,
    };
    dump.touched_at_nanos = dump.taken_at_nanos;
    let restore_present = r.u8() == 1;
    let restore = OpenRestore {
        key: key(r.u64()),
        kind: kind_of(r.u8()).expect("a kind"),
        size: r.u64(),
        chunk_size: r.u64(),
        sha256: r.sha256(),
        touched_at_nanos: 0,
        content_hash: ContentHash::Sha256,
    };
    let session = session_of(dump_present.then_some(dump), restore_present.then_some(restore));
    let present = r.u8() == 1;
    let (job, size, sha256) = (r.u64(), r.u64(), r.sha256());
    let kind = kind_of(r.u8()).expect("a kind");
    let committed = present.then_some(Committed { key: key(job), kind, size, sha256 });
    let serde_cost = (r.u64(), r.u64());
    Header { state_kind, vault, app_pages, session, committed, serde_cost, ..Header::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault() -> Principal {
        Principal::from_slice(&[9; 10])
    }

    fn sample() -> Header {
        Header {
            state_kind: Some(StateKind::StableMemory),
            vault: Some(vault()),
            app_pages: 3,
            session: Session::Dumping(OpenDump {
                key: SessionKey { vault: vault(), nonce: Some(0x0102_0304_0506_0708), job: 4 },
                kind: StateKind::StableMemory,
                size: 196608,
                chunk_size: 100,
                taken_at_nanos: 5,
                frozen_generation: 6,
                touched_at_nanos: 13,
                chunk_hashes: false,
                incremental: true,
                from_upgrade_save: true,
                content_index: true,
            }),
            committed: Some(Committed {
                key: SessionKey { vault: Principal::from_slice(&[8; 29]), nonce: None, job: 2 },
                kind: StateKind::Serde,
                size: 10,
                sha256: Sha256([7; 32]),
            }),
            serde_cost: (11, 12),
            live_dir: LiveDir::B,
            generation: 14,
            base: Some(Base {
                kind: StateKind::Serde,
                vault: Principal::from_slice(&[6; 29]),
                nonce: Some(15),
                snapshot: 16,
                size: 1 << 20,
                generation: 13,
                touched_at_nanos: 17,
            }),
        }
    }

    /// The bytes the cell stores for `header`.
    fn stored_bytes(header: &Header) -> Vec<u8> {
        header.encode().into_bytes()
    }

    /// The header in `bytes`, which hold this build's layout.
    fn read(bytes: Vec<u8>) -> Header {
        let stored = StoredHeader::from_bytes(Cow::Owned(bytes));
        assert_eq!(stored.layout, LAYOUT_VERSION);
        decode_v6(&stored.fields)
    }

    #[test]
    fn header_round_trips_in_its_documented_size() {
        let h = sample();
        let bytes = stored_bytes(&h);
        assert_eq!(bytes.len(), HEADER_BYTES);
        assert_eq!(read(bytes), h);
        assert_eq!(read(stored_bytes(&Header::default())), Header::default());
    }

    #[test]
    fn the_version_byte_is_read_and_the_fields_after_it_kept_as_they_are() {
        let newer = [&MAGIC[..], &[LAYOUT_VERSION + 1], &[0xab; 7]].concat();
        let stored = StoredHeader::from_bytes(Cow::Borrowed(&newer));
        assert_eq!(stored, StoredHeader { layout: LAYOUT_VERSION + 1, fields: vec![0xab; 7] });
        assert_eq!(stored.into_bytes(), newer);
    }

    #[test]
    #[should_panic(expected = "not a client header")]
    fn bytes_without_the_magic_are_not_a_header() {
        StoredHeader::from_bytes(Cow::Owned(stored_bytes(&sample())[1..].to_vec()));
    }

    fn restoring() -> Session {
        Session::Restoring(OpenRestore {
            key: SessionKey { vault: vault(), nonce: None, job: 8 },
            kind: StateKind::Serde,
            size: 40,
            chunk_size: 16,
            sha256: Sha256([3; 32]),
            touched_at_nanos: 14,
            content_hash: ContentHash::Blake3,
        })
    }

    #[test]
    fn every_session_round_trips() {
        for session in [Session::Idle, sample().session, restoring()] {
            let h = Header { session, ..sample() };
            assert_eq!(read(stored_bytes(&h)), h);
        }
        let nothing_committed = Header { committed: None, ..sample() };
        assert_eq!(read(stored_bytes(&nothing_committed)), nothing_committed);
        let no_base = Header { base: None, ..sample() };
        assert_eq!(read(stored_bytes(&no_base)), no_base, "the fields after the base's slot are read where they are");
    }

    /// Bytes of layout 4's paging fields at the end: the live directory, the generation, the
    /// dump's incremental byte and the base's slot; then layout 5's dump-source byte and layout
    /// 6's content-index and base-kind bytes.
    const PAGING_BYTES: usize = 1 + 4 + 1 + BASE_SLOT_BYTES + 1 + 2;

    /// Bytes 44..134 hold the dump's slot, 134..240 the restore's, 240..329 the last commit's.
    const DUMP_SLOT: std::ops::Range<usize> = 44..134;
    const RESTORE_SLOT: std::ops::Range<usize> = 134..240;
    const COMMITTED_SLOT: std::ops::Range<usize> = 240..329;

    #[test]
    fn the_slots_are_where_the_drawing_puts_them() {
        assert_eq!(DUMP_SLOT.len(), DUMP_SLOT_BYTES);
        assert_eq!(RESTORE_SLOT.len(), RESTORE_SLOT_BYTES);
        assert_eq!(COMMITTED_SLOT.len(), COMMITTED_SLOT_BYTES);
        assert_eq!(COMMITTED_SLOT.end + 16 + PAGING_BYTES, HEADER_BYTES);
    }

    /// A restore of `content_hash` open in [`sample`].
    fn restoring_in(content_hash: ContentHash) -> Header {
        let Session::Restoring(restore) = restoring() else { unreachable!("restoring() is a restore") };
        Header { session: Session::Restoring(OpenRestore { content_hash, ..restore }), ..sample() }
    }

    /// [`sample`] with its dump answering SHA-256s or not.
    fn dumping(chunk_hashes: bool) -> Header {
        let Session::Dumping(dump) = sample().session else { unreachable!("sample() is a dump") };
        Header { session: Session::Dumping(OpenDump { chunk_hashes, ..dump }), ..sample() }
    }

    #[test]
    fn the_content_hash_bytes_are_where_the_drawing_puts_them() {
        assert_eq!((stored_bytes(&dumping(false))[133], stored_bytes(&dumping(true))[133]), (0, 1));
        assert_eq!((stored_bytes(&restoring_in(ContentHash::Sha256))[239], stored_bytes(&restoring_in(ContentHash::Blake3))[239]), (0, 1));
    }

    #[test]
    fn a_layout_2_dump_answers_sha256s_and_a_layout_2_restore_is_sha256() {
        // Layout 2's bytes are layout 5's without bytes 133 and 239 and the paging's at the end.
        for (header, as_layout_2) in [(dumping(false), dumping(true)), (restoring_in(ContentHash::Blake3), restoring_in(ContentHash::Sha256))] {
            let as_layout_2 = Header { live_dir: LiveDir::A, generation: 0, base: None, ..as_layout_2 };
            let as_layout_2 = match as_layout_2.session {
                Session::Dumping(dump) => {
                    Header { session: Session::Dumping(OpenDump { incremental: false, from_upgrade_save: false, content_index: false, ..dump }), ..as_layout_2 }
                }
                _ => as_layout_2,
            };
            let mut bytes = stored_bytes(&header);
            bytes.truncate(HEADER_BYTES - PAGING_BYTES);
            bytes.remove(239);
            bytes.remove(133);
            assert_eq!(decode_v2(&bytes[5..]), as_layout_2);
        }
    }

    #[test]
    fn the_slot_of_the_operation_not_open_is_written_empty() {
        let idle = stored_bytes(&Header { session: Session::Idle, ..sample() });
        assert_eq!((idle[DUMP_SLOT.start], idle[RESTORE_SLOT.start]), (0, 0));
        let dumping = stored_bytes(&sample());
        assert_eq!(dumping[DUMP_SLOT.start], 1);
        assert_eq!(dumping[RESTORE_SLOT], idle[RESTORE_SLOT]);
        let restoring = stored_bytes(&Header { session: restoring(), ..sample() });
        assert_eq!(restoring[RESTORE_SLOT.start], 1);
        assert_eq!(restoring[DUMP_SLOT], idle[DUMP_SLOT]);
        assert_eq!(idle[..DUMP_SLOT.start], dumping[..DUMP_SLOT.start]);
        assert_eq!(idle[RESTORE_SLOT.end..], restoring[RESTORE_SLOT.end..]);
        assert!(idle[DUMP_SLOT.start..RESTORE_SLOT.end].iter().all(|&b| b == 0), "empty slots are zeros");
        let nothing_committed = stored_bytes(&Header { committed: None, ..sample() });
        assert!(nothing_committed[COMMITTED_SLOT].iter().all(|&b| b == 0));
    }

    #[test]
    #[should_panic(expected = "both a dump and a restore open")]
    fn a_header_with_both_operations_open_traps() {
        let mut bytes = stored_bytes(&sample());
        bytes[RESTORE_SLOT.start] = 1;
        read(bytes);
    }

    #[test]
    fn header_golden_bytes() {
        let bytes = stored_bytes(&sample());
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, include_str!("../golden/header_v6.hex").trim());
    }
}
