//! The client library's stable memory.
//!
//! The library owns the app's raw stable memory and divides it with a `MemoryManager`:
//!
//! ```text
//! raw stable memory (MemoryManager)
//! ├── 0 APP        the app's own memory: what `vault_client::memory()` hands out
//! ├── 1 STAGING    a serialized dump, or a restore being staged
//! ├── 2 COW        old contents of APP pages written while a dump is open (4 KiB slots)
//! ├── 3 HEADER     the `Header` below, in a StableCell
//! ├── 4 COW_INDEX  StableBTreeMap<page: u64, slot: u64>
//! ├── 5 STAGED     StableBTreeMap<chunk index: u32, SHA-256: [u8; 32]>
//! └── 6 UPGRADE    a serde app's state kept across its upgrades (length-prefixed MessagePack)
//! ```
//!
//! Ids are append-only: a retired id stays listed here and is never reused.
//!
//! `Header`, version 1, 210 bytes, little endian:
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
//! State kind: 0 not yet known, 1 serde, 2 stable memory. The two "present" bytes hold the
//! [`Session`]: at most one of them is 1.
//!
//! The layout version covers all of the above. This build writes [`LAYOUT_VERSION`] and reads
//! every version from [`OLDEST_LAYOUT`] on: the cell keeps the header as a [`StoredHeader`],
//! its version read first; the bytes after it may differ per version, so each version read
//! has its decoder here (`decode_v1`), and `migration` picks it by the version byte, then runs
//! one step per version up to the current one. An instance does this when it first reads the
//! header; the entry points an app calls in `post_upgrade` (`on_restore`,
//! `load_after_upgrade`, `use_serde_state`, `set_vault`, and `memory()` through its size) read
//! it first. A stored version newer than this build knows, or older than it reads, is refused
//! before anything is read past the version byte or written: the app's `post_upgrade` traps,
//! and the IC keeps the app on its previous module, its memory as it was. (An app whose
//! `post_upgrade` calls none of them traps instead in each message that reaches the library.)
//!
//! Layouts:
//! - 1: as drawn above (release 0.1.0 and since).

use std::borrow::Cow;

use candid::Principal;
use ic_stable_structures::memory_manager::MemoryId;
use ic_stable_structures::storable::Bound;
use ic_stable_structures::Storable;
use vault_api::codec::{Reader, Writer};
use vault_api::protocol::StateKind;
use vault_api::Sha256;

pub const APP: MemoryId = MemoryId::new(0);
pub const STAGING: MemoryId = MemoryId::new(1);
pub const COW: MemoryId = MemoryId::new(2);
pub const HEADER: MemoryId = MemoryId::new(3);
pub const COW_INDEX: MemoryId = MemoryId::new(4);
pub const STAGED: MemoryId = MemoryId::new(5);
pub const UPGRADE: MemoryId = MemoryId::new(6);

const MAGIC: &[u8; 4] = b"CVCL";
/// Version of the layout above, which this build writes; stored in the header.
pub const LAYOUT_VERSION: u8 = 1;
/// The oldest layout this build reads; `migration` takes it up to [`LAYOUT_VERSION`].
pub const OLDEST_LAYOUT: u8 = 1;
/// Bytes of layout 1's header, its magic and version included.
const HEADER_BYTES: usize = 210;

/// An open dump: the image frozen at `taken_at_nanos`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenDump {
    pub job: u64,
    pub kind: StateKind,
    pub size: u64,
    pub chunk_size: u64,
    pub taken_at_nanos: u64,
    /// Stable-memory dumps: slots of the COW memory in use.
    pub cow_slots: u64,
}

/// A restore being staged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenRestore {
    pub job: u64,
    pub kind: StateKind,
    pub size: u64,
    pub chunk_size: u64,
    pub sha256: Sha256,
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

/// The last restore committed, so a repeated commit answers the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub job: u64,
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
}

/// The fields written in the slot of the operation not open.
const NO_DUMP: OpenDump = OpenDump { job: 0, kind: StateKind::Serde, size: 0, chunk_size: 0, taken_at_nanos: 0, cow_slots: 0 };
const NO_RESTORE: OpenRestore = OpenRestore { job: 0, kind: StateKind::Serde, size: 0, chunk_size: 0, sha256: Sha256([0; 32]) };

fn kind_byte(kind: Option<StateKind>) -> u8 {
    match kind {
        None => 0,
        Some(StateKind::Serde) => 1,
        Some(StateKind::StableMemory) => 2,
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

impl Header {
    /// The header in this build's layout, [`LAYOUT_VERSION`].
    pub fn encode(&self) -> StoredHeader {
        let mut w = Writer::with_capacity(HEADER_BYTES);
        w.u8(kind_byte(self.state_kind)).opt_principal(self.vault.as_ref()).u64(self.app_pages);
        // Layout 1 keeps a slot for each operation: the open one is marked present, the other not.
        let (dump, restore) = match &self.session {
            Session::Idle => (None, None),
            Session::Dumping(dump) => (Some(dump), None),
            Session::Restoring(restore) => (None, Some(restore)),
        };
        w.u8(dump.is_some() as u8);
        let dump = dump.unwrap_or(&NO_DUMP);
        w.u64(dump.job)
            .u8(kind_byte(Some(dump.kind)))
            .u64(dump.size)
            .u64(dump.chunk_size)
            .u64(dump.taken_at_nanos)
            .u64(dump.cow_slots);
        w.u8(restore.is_some() as u8);
        let restore = restore.unwrap_or(&NO_RESTORE);
        w.u64(restore.job)
            .u8(kind_byte(Some(restore.kind)))
            .u64(restore.size)
            .u64(restore.chunk_size)
            .sha256(&restore.sha256);
        let committed = self.committed.clone().unwrap_or(Committed {
            job: 0,
            kind: StateKind::Serde,
            size: 0,
            sha256: Sha256::default(),
        });
        w.u8(self.committed.is_some() as u8)
            .u64(committed.job)
            .u64(committed.size)
            .sha256(&committed.sha256)
            .u8(kind_byte(Some(committed.kind)))
            .u64(self.serde_cost.0)
            .u64(self.serde_cost.1);
        let fields = w.into_vec();
        debug_assert_eq!(MAGIC.len() + 1 + fields.len(), HEADER_BYTES);
        StoredHeader { layout: LAYOUT_VERSION, fields }
    }
}

/// Layout 1's decoder.
pub fn decode_v1(fields: &[u8]) -> Header {
    let mut r = Reader::new(fields);
    let state_kind = kind_of(r.u8());
    let vault = r.opt_principal();
    let app_pages = r.u64();
    let dump_present = r.u8() == 1;
    let dump = OpenDump {
        job: r.u64(),
        kind: kind_of(r.u8()).expect("a kind"),
        size: r.u64(),
        chunk_size: r.u64(),
        taken_at_nanos: r.u64(),
        cow_slots: r.u64(),
    };
    let restore_present = r.u8() == 1;
    let restore = OpenRestore {
        job: r.u64(),
        kind: kind_of(r.u8()).expect("a kind"),
        size: r.u64(),
        chunk_size: r.u64(),
        sha256: r.sha256(),
    };
    let session = match (dump_present, restore_present) {
        (false, false) => Session::Idle,
        (true, false) => Session::Dumping(dump),
        (false, true) => Session::Restoring(restore),
        // A broken invariant: no version of this library writes both, since a dump and a restore have always
        // superseded each other. Which one the vault still drives cannot be told, so the message traps rather
        // than guess.
        (true, true) => panic!(
            "the client header has both a dump and a restore open, which this library never writes: \
             its stable memory was changed from outside the library"
        ),
    };
    let present = r.u8() == 1;
    let (job, size, sha256) = (r.u64(), r.u64(), r.sha256());
    let kind = kind_of(r.u8()).expect("a kind");
    let committed = present.then_some(Committed { job, kind, size, sha256 });
    let serde_cost = (r.u64(), r.u64());
    Header { state_kind, vault, app_pages, session, committed, serde_cost }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            state_kind: Some(StateKind::StableMemory),
            vault: Some(Principal::from_slice(&[9; 10])),
            app_pages: 3,
            session: Session::Dumping(OpenDump {
                job: 4,
                kind: StateKind::StableMemory,
                size: 196608,
                chunk_size: 100,
                taken_at_nanos: 5,
                cow_slots: 6,
            }),
            committed: Some(Committed { job: 2, kind: StateKind::Serde, size: 10, sha256: Sha256([7; 32]) }),
            serde_cost: (11, 12),
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
        decode_v1(&stored.fields)
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
        Session::Restoring(OpenRestore { job: 8, kind: StateKind::Serde, size: 40, chunk_size: 16, sha256: Sha256([3; 32]) })
    }

    #[test]
    fn every_session_round_trips() {
        for session in [Session::Idle, sample().session, restoring()] {
            let h = Header { session, ..sample() };
            assert_eq!(read(stored_bytes(&h)), h);
        }
    }

    /// Bytes 44..86 hold the dump's slot, 86..144 the restore's.
    const DUMP_SLOT: std::ops::Range<usize> = 44..86;
    const RESTORE_SLOT: std::ops::Range<usize> = 86..144;

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
        assert_eq!(hex, include_str!("../golden/header_v1.hex").trim());
    }
}
