//! The library's stored layout, migrated when an instance first reads its header (the shape of
//! the vault's `migration`; the layout module says when that is and what a refusal does).
//!
//! The stored header's version byte picks its decoder, and one step per version takes the rest
//! of the library's memory from there to [`LAYOUT_VERSION`]; the header is then stored in it. A
//! layout outside [`OLDEST_LAYOUT`]`..=`[`LAYOUT_VERSION`] is refused before any of that.

use ic_stable_structures::memory_manager::{MemoryManager, VirtualMemory};
use ic_stable_structures::{DefaultMemoryImpl, StableCell};
use vault_api::layout::{LayoutError, steps_from};

use crate::layout::{self, CowIndex, Decoder, Header, LAYOUT_VERSION, LiveDir, OLDEST_LAYOUT, Session, Staged, StoredHeader};
use crate::pages;

/// Takes the library's memories (those `manager` divides) from one layout version to the next;
/// the header is already in memory, read by its layout's decoder, and stored once every step ran.
pub type Step = fn(&mut Header, &MemoryManager<DefaultMemoryImpl>);

/// The cell the header is stored in.
type HeaderCell = StableCell<StoredHeader, VirtualMemory<DefaultMemoryImpl>>;

/// `STEPS[i]` migrates layout `OLDEST_LAYOUT + i` to `OLDEST_LAYOUT + i + 1`. 2 to 3 changes
/// nothing but the header's layout: `decode_v2` reads a dump of layout 2 as answering each chunk's
/// SHA-256 and a restore as SHA-256, which they are; nor does 4 to 5: `decode_v4` reads a dump of
/// layout 4 as reading the state as it is, which it does; nor 5 to 6: `decode_v5` reads a dump
/// of layout 5 as indexing no content and its base as a stable-memory image, which they are.
const STEPS: [Step; (LAYOUT_VERSION - OLDEST_LAYOUT) as usize] = [close_session, |_, _| {}, page_the_app_memory, |_, _| {}, |_, _| {}];

/// `DECODERS[i]` reads the header of layout `OLDEST_LAYOUT + i`: one for each layout read.
const DECODERS: [Decoder; (LAYOUT_VERSION - OLDEST_LAYOUT + 1) as usize] =
    [layout::decode_v1, layout::decode_v2, layout::decode_v3, layout::decode_v4, layout::decode_v5, layout::decode_v6];

/// 3 to 4: the app's memory becomes the live version of a paged memory whose every page is in
/// the slot it was in (the APP memory is the SLOTS memory), behind table pages written after it.
/// What was open is closed first: a dump's copied-aside pages are not a frozen version, and a
/// restore staged its image where a stable-memory restore no longer does.
fn page_the_app_memory(header: &mut Header, manager: &MemoryManager<DefaultMemoryImpl>) {
    close_session(header, manager);
    pages::lay_out_in_place(manager.get(layout::SLOTS), manager.get(layout::FREE), manager.get(layout::DIR_A), header.app_pages);
    header.live_dir = LiveDir::A;
    header.generation = 0;
}

/// 1 to 2 (and in 3 to 4): a dump or restore open under layout 1 is keyed by its job alone, not
/// by the vault instance that opened it; it is closed, releasing its copied-aside pages or staged
/// chunks. The vault's next call for it finds no such job and opens it again.
fn close_session(header: &mut Header, manager: &MemoryManager<DefaultMemoryImpl>) {
    match header.session {
        Session::Idle => return,
        Session::Dumping(_) => CowIndex::<_>::init(manager.get(layout::COW_INDEX)).clear_new(),
        Session::Restoring(_) => Staged::<_>::init(manager.get(layout::STAGED)).clear_new(),
    }
    header.session = Session::Idle;
}

/// The header in `cell`, with the library's memory migrated to [`LAYOUT_VERSION`]; a layout this
/// build cannot read is refused with nothing read past its version byte, nor written.
pub fn migrate(cell: &mut HeaderCell, manager: &MemoryManager<DefaultMemoryImpl>) -> Result<Header, LayoutError> {
    let stored = cell.get();
    let steps = steps_from(stored.layout, OLDEST_LAYOUT, LAYOUT_VERSION, &STEPS)?;
    // steps_from accepted the layout, so it has its decoder.
    let decode = DECODERS[usize::from(stored.layout - OLDEST_LAYOUT)];
    let mut header = decode(&stored.fields);
    for step in steps {
        step(&mut header, manager);
    }
    if !steps.is_empty() {
        cell.set(header.encode());
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use candid::Principal;
    use ic_stable_structures::Memory;
    use ic_stable_structures::Storable;
    use vault_api::Sha256;
    use vault_api::protocol::StateKind;

    use super::*;
    use crate::layout::{Committed, OpenDump, SessionKey};

    /// `GOLDEN[i]`: a header of layout `OLDEST_LAYOUT + i` as a release that wrote it stored it.
    const GOLDEN: [&str; DECODERS.len()] =
        [
        include_str!("../golden/header_v1.hex"),
        include_str!("../golden/header_v2.hex"),
        include_str!("../golden/header_v3.hex"),
        include_str!("../golden/header_v4.hex"),
        include_str!("../golden/header_v5.hex"),
        include_str!("../golden/header_v6.hex"),
    ];

    fn unhex(hex: &str) -> Vec<u8> {
        let hex = hex.trim();
        (0..hex.len()).step_by(2).map(|at| u8::from_str_radix(&hex[at..at + 2], 16).expect("hex")).collect()
    }

    /// A fresh raw memory with its manager, the header cell holding `stored`, and some bytes in
    /// the app's memory.
    fn memory_with(stored: StoredHeader) -> (DefaultMemoryImpl, MemoryManager<DefaultMemoryImpl>, HeaderCell) {
        let raw = DefaultMemoryImpl::default();
        let manager = MemoryManager::init(raw.clone());
        let cell = StableCell::new(manager.get(layout::HEADER), stored);
        let app = manager.get(layout::SLOTS);
        app.grow(1);
        app.write(0, b"the app's state");
        (raw, manager, cell)
    }

    fn raw_bytes(raw: &DefaultMemoryImpl) -> Vec<u8> {
        raw.borrow().clone()
    }

    #[test]
    fn layouts_this_build_cannot_read_are_refused_and_left_as_they_are() {
        let fields = vec![0xab; 300];
        for (layout, refusal) in [
            (LAYOUT_VERSION + 1, LayoutError::Newer { stored: LAYOUT_VERSION + 1, known: LAYOUT_VERSION }),
            (OLDEST_LAYOUT - 1, LayoutError::TooOld { stored: OLDEST_LAYOUT - 1, oldest: OLDEST_LAYOUT }),
        ] {
            let stored = StoredHeader { layout, fields: fields.clone() };
            let (raw, manager, mut cell) = memory_with(stored.clone());
            let before = raw_bytes(&raw);
            assert_eq!(migrate(&mut cell, &manager), Err(refusal));
            assert_eq!(raw_bytes(&raw), before, "nothing was touched");
            let reopened = StableCell::init(manager.get(layout::HEADER), Header::default().encode());
            assert_eq!(reopened.get(), &stored);
        }
    }

    #[test]
    fn each_readable_layout_is_read_from_the_header_its_release_stored() {
        for (i, golden) in GOLDEN.iter().enumerate() {
            let stored = StoredHeader::from_bytes(unhex(golden).into());
            let layout = stored.layout;
            assert_eq!(layout, OLDEST_LAYOUT + i as u8);
            let (raw, manager, mut cell) = memory_with(stored);
            let before = raw_bytes(&raw);
            let header = migrate(&mut cell, &manager).expect("a readable layout");
            assert_eq!(cell.get(), &header.encode(), "stored in the current layout");
            if layout == LAYOUT_VERSION {
                assert_eq!(raw_bytes(&raw), before, "a current header is not rewritten");
            }
        }
    }

    #[test]
    fn a_fresh_memory_opens_in_the_current_layout() {
        let (_, manager, mut cell) = memory_with(Header::default().encode());
        assert_eq!(migrate(&mut cell, &manager), Ok(Header::default()));
        assert_eq!(cell.get().layout, LAYOUT_VERSION);
    }

    /// What release 0.1.0 wrote in `golden/header_v1.hex`, as this build reads it.
    fn layout_1_golden_header() -> Header {
        let vault = Principal::from_slice(&[9; 10]);
        let key = |job| SessionKey { vault, nonce: None, job };
        Header {
            state_kind: Some(StateKind::StableMemory),
            vault: Some(vault),
            app_pages: 3,
            session: Session::Dumping(OpenDump {
                key: key(4),
                kind: StateKind::StableMemory,
                size: 196608,
                chunk_size: 100,
                taken_at_nanos: 5,
                frozen_generation: 6,
                touched_at_nanos: 5,
                chunk_hashes: true,
                incremental: false,
                from_upgrade_save: false,
                content_index: false,
            }),
            committed: Some(Committed { key: key(2), kind: StateKind::Serde, size: 10, sha256: Sha256([7; 32]) }),
            serde_cost: (11, 12),
            ..Header::default()
        }
    }

    #[test]
    fn layout_1_is_read_with_its_session_and_commit_bound_to_the_vault_without_a_nonce() {
        let stored = StoredHeader::from_bytes(unhex(GOLDEN[0]).into());
        assert_eq!(layout::decode_v1(&stored.fields), layout_1_golden_header());
    }

    #[test]
    #[should_panic(expected = "both a dump and a restore open")]
    fn a_layout_1_header_with_both_operations_open_traps() {
        let mut bytes = unhex(GOLDEN[0]);
        // Byte 86 is layout 1's "restore present"; the golden header has a dump open.
        bytes[86] = 1;
        layout::decode_v1(&StoredHeader::from_bytes(bytes.into()).fields);
    }

    #[test]
    fn the_step_from_layout_1_closes_what_was_open_and_keeps_the_rest() {
        let dumping = unhex(GOLDEN[0]);
        // The same header with a restore open instead: layout 1's "present" bytes are 44 and 86.
        let mut restoring = dumping.clone();
        (restoring[44], restoring[86]) = (0, 1);
        for bytes in [dumping, restoring] {
            let (_, manager, mut cell) = memory_with(StoredHeader::from_bytes(bytes.into()));
            // What the open operation holds: a page copied aside, or a chunk staged.
            match layout::decode_v1(&cell.get().fields).session {
                Session::Dumping(_) => {
                    CowIndex::<_>::init(manager.get(layout::COW_INDEX)).insert(0, 0);
                }
                _ => {
                    Staged::<_>::init(manager.get(layout::STAGED)).insert(0, [1; 32]);
                }
            }
            let header = migrate(&mut cell, &manager).expect("layout 1 is read");
            assert_eq!(header, Header { session: Session::Idle, ..layout_1_golden_header() });
            assert_eq!(CowIndex::<_>::init(manager.get(layout::COW_INDEX)).len(), 0, "copied-aside pages released");
            assert_eq!(Staged::<_>::init(manager.get(layout::STAGED)).len(), 0, "staged chunks released");
            let mut app_state = [0; 15];
            manager.get(layout::SLOTS).read(0, &mut app_state);
            assert_eq!(&app_state, b"the app's state");
            assert_eq!(cell.get(), &header.encode(), "stored in the current layout");
        }
    }
}
