//! [`VaultMemory`]: the app's stable memory, paged (see `pages`) so that an open dump reads the
//! state as of the message that opened it while the app keeps writing. A write while a dump or
//! the base of incremental dumps holds pages first releases what no vault call touched for
//! `SESSION_TTL`, so a vanished vault's dump or base stops holding pages.

use ic_stable_structures::Memory;
use vault_api::protocol::WASM_PAGE_SIZE as WASM_PAGE;

use crate::{pages, session};

thread_local! {
    /// Set while the app's reload hook runs after a restore: the memory is then the snapshot's
    /// and must stay so.
    static FROZEN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with writes to the app's memory forbidden: a write traps, undoing the message.
pub fn read_only<R>(f: impl FnOnce() -> R) -> R {
    FROZEN.set(true);
    let result = f();
    FROZEN.set(false);
    result
}

fn check_writable() {
    if FROZEN.get() {
        ic_cdk::trap(
            "the app's reload hook wrote to its memory after a restore, so the state would differ from the snapshot: \
             create every stable structure in init, so that reloading only reads",
        );
    }
}

/// The app's stable memory. Cheap to create and copy; all instances are the same memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct VaultMemory;

/// The app's memory.
pub fn memory() -> VaultMemory {
    VaultMemory
}

impl Memory for VaultMemory {
    fn size(&self) -> u64 {
        pages::live_size() / WASM_PAGE
    }

    fn grow(&self, pages: u64) -> i64 {
        check_writable();
        let old = self.size();
        match old.checked_add(pages).filter(|&new| pages::fits(new)) {
            Some(new) if pages::grow_live(new) => old as i64,
            _ => -1,
        }
    }

    fn read(&self, offset: u64, dst: &mut [u8]) {
        // SAFETY: `dst` is valid for its length.
        unsafe { pages::read_live(offset, dst.as_mut_ptr(), dst.len()) }
    }

    unsafe fn read_unsafe(&self, offset: u64, dst: *mut u8, count: usize) {
        // SAFETY: the caller vouches that `dst` is valid for `count` bytes.
        unsafe { pages::read_live(offset, dst, count) }
    }

    fn write(&self, offset: u64, src: &[u8]) {
        write_at(offset, src, ic_cdk::api::time);
    }
}

/// Writes `src` at `offset` of the app's memory, `now` telling the time if a dump is open.
fn write_at(offset: u64, src: &[u8], now: impl FnOnce() -> u64) {
    check_writable();
    pages::write_live(offset, src, || {
        session::release_stale(now());
    });
}

#[cfg(test)]
mod tests {
    use vault_api::protocol::{SESSION_TTL, StateKind};

    use super::*;
    use crate::layout::{Base, OpenDump, Session, SessionKey};
    use crate::store;

    const TTL: u64 = SESSION_TTL.as_nanos() as u64;
    const PAGE: u64 = pages::PAGE;

    fn key() -> SessionKey {
        SessionKey { vault: candid::Principal::from_slice(&[9; 10]), nonce: Some(1), job: 1 }
    }

    /// Opens a dump of the app's whole memory, touched at `touched_at`.
    fn open_dump(touched_at: u64) {
        let size = memory().size() * WASM_PAGE;
        session::open_dump(|| {
            Ok(OpenDump {
                key: key(),
                kind: StateKind::StableMemory,
                size,
                chunk_size: 1024,
                taken_at_nanos: 0,
                frozen_generation: pages::freeze(),
                touched_at_nanos: touched_at,
                chunk_hashes: false,
                incremental: false,
                from_upgrade_save: false,
                content_index: false,
            })
        })
        .expect("freezing cannot fail here");
    }

    fn live(offset: u64, len: usize) -> Vec<u8> {
        let mut bytes = vec![0; len];
        memory().read(offset, &mut bytes);
        bytes
    }

    #[test]
    fn a_write_during_a_dump_within_the_ttl_leaves_the_frozen_page_to_the_dump() {
        memory().grow(1);
        write_at(0, b"before", || unreachable!("no dump is open: the time is not read"));
        open_dump(10);
        write_at(0, b"after!", || 10 + TTL);
        assert_eq!((pages::read_frozen(0, 6), live(0, 6)), (b"before".to_vec(), b"after!".to_vec()));
        assert_eq!(pages::frozen_only_slots(), 2, "the page and its table page");
        write_at(8, b"again", || 10 + TTL);
        assert_eq!(pages::frozen_only_slots(), 2, "a page is taken fresh once per dump");
        assert_eq!(live(0, 13), b"after!\0\0again".to_vec());
    }

    #[test]
    fn a_frozen_read_across_pages_written_and_not_reads_the_image_as_frozen() {
        memory().grow(1);
        let image: Vec<u8> = (0..WASM_PAGE).map(|i| (i % 251) as u8).collect();
        write_at(0, &image, || 0);
        open_dump(10);
        for page in [1, 3, 4] {
            write_at(page * PAGE + 10, b"written while the dump is open", || 20);
        }
        for (offset, len) in [(0, WASM_PAGE as usize), (100, 5 * PAGE as usize), (PAGE + 5, 7), (3 * PAGE, 0)] {
            assert_eq!(pages::read_frozen(offset, len), image[offset as usize..offset as usize + len], "{offset} + {len}");
        }
        assert_ne!(live(PAGE, PAGE as usize), image[PAGE as usize..2 * PAGE as usize]);
    }

    #[test]
    fn a_write_releases_a_dump_no_vault_call_touched_for_the_ttl_and_takes_no_fresh_page() {
        memory().grow(1);
        write_at(0, b"before", || 0);
        let in_use = pages::slots_in_use();
        open_dump(10);
        write_at(0, b"after!", || 10 + TTL + 1);
        assert_eq!(store::header().session, Session::Idle);
        assert_eq!(pages::slots_in_use(), in_use, "written in place");
        assert_eq!(live(0, 6), b"after!".to_vec());
    }

    #[test]
    fn a_write_releases_a_base_no_vault_call_touched_for_the_ttl_and_takes_no_fresh_page() {
        memory().grow(1);
        write_at(0, &[1; 2 * PAGE as usize], || 0);
        let in_use = pages::slots_in_use();
        open_dump(10);
        let Session::Dumping(dump) = store::header().session else { unreachable!("a dump is open") };
        let base = Base { kind: StateKind::StableMemory, vault: key().vault, nonce: key().nonce, snapshot: 1, size: dump.size, generation: dump.frozen_generation, touched_at_nanos: 10 };
        session::end_dump_as_base(&key(), base);
        write_at(0, b"within", || 10 + TTL);
        assert!(store::header().base.is_some(), "within the TTL");
        write_at(PAGE, b"after!", || 10 + TTL + 1);
        assert_eq!(store::header().base, None, "a vanished vault's base is released");
        assert_eq!(pages::slots_in_use(), in_use, "the base's pages freed, the second page written in place");
        assert_eq!((live(0, 6), live(PAGE, 6)), (b"within".to_vec(), b"after!".to_vec()));
    }

    #[test]
    fn a_write_releases_a_restore_no_vault_call_touched_for_the_ttl_and_frees_its_pages() {
        crate::restore::on_restore(|| ());
        memory().grow(1);
        let in_use = pages::slots_in_use();
        let begin = vault_api::protocol::RestoreBegin {
            job: 2,
            state_kind: StateKind::StableMemory,
            size: WASM_PAGE,
            chunk_size: WASM_PAGE,
            sha256: vault_api::Sha256::default(),
            nonce: key().nonce,
            content_hash: None,
            via_upgrade: None,
        };
        crate::restore::begin(key(), begin, 10).expect("a restore opens");
        pages::write_staged(0, &[7; WASM_PAGE as usize]);
        assert!(pages::slots_in_use() > in_use, "the staged image holds pages");
        write_at(0, b"within", || 10 + TTL);
        assert!(matches!(store::header().session, Session::Restoring(_)), "within the TTL");
        write_at(2 * PAGE, b"after!", || 10 + TTL + 1);
        assert_eq!(store::header().session, Session::Idle, "a vanished vault's restore is released");
        assert_eq!(pages::slots_in_use(), in_use + 3, "the staged pages freed; two live pages and their table page taken");
    }

    /// Whether `f` traps (off the IC, `ic_cdk::trap` panics).
    fn traps(f: impl FnOnce()) -> bool {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err()
    }

    #[test]
    fn an_access_past_the_end_traps_also_after_an_empty_one_at_the_end() {
        for size in [0, 1] {
            std::thread::spawn(move || {
                memory().grow(size);
                let end = size * WASM_PAGE;
                memory().read(end, &mut []);
                assert!(traps(|| memory().read(end, &mut [0; 8])), "a read past {end} after an empty read there");
                write_at(end, &[], || 0);
                assert!(traps(|| memory().read(end + 1, &mut [0; 8])), "a read past {end} after an empty write there");
                assert!(traps(|| write_at(end, &[1; 8], || 0)), "a write past {end}");
            })
            .join()
            .expect("the instance's thread");
        }
    }

    #[test]
    fn grown_pages_read_as_zeros_and_take_no_slot_until_written() {
        memory().grow(2);
        assert_eq!((live(0, 2 * WASM_PAGE as usize), pages::slots_in_use()), (vec![0; 2 * WASM_PAGE as usize], 0));
        write_at(WASM_PAGE + 1, b"x", || 0);
        assert_eq!(pages::slots_in_use(), 2, "one page and its table page");
        assert_eq!(live(WASM_PAGE, 3), b"\0x\0".to_vec());
    }
}
