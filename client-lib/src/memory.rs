//! [`VaultMemory`]: the app's stable memory, with copy on write while a dump is open.
//!
//! The app uses it as it would use `DefaultMemoryImpl`, typically under its own
//! `MemoryManager`. While the vault reads a dump, the first write of a message to a 4 KiB page
//! of the frozen image first copies the page's old contents aside, so the dump reads the state
//! as of the message that opened it while the app keeps writing. Such a write first releases a
//! dump no vault call touched for `SESSION_TTL`, so a vanished vault's dump stops copying.

use ic_stable_structures::Memory;
use vault_api::protocol::{StateKind, WASM_PAGE_SIZE as WASM_PAGE};

use crate::layout::{self, Session};
use crate::store::{self, Mem, ReadBuffer};
use crate::{cow, session};

/// The unit of copy on write.
pub const COW_PAGE: u64 = 4096;

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

fn app() -> Mem {
    store::memory(layout::APP)
}

fn cow_memory() -> Mem {
    store::memory(layout::COW)
}

/// The app's stable memory. Cheap to create and copy; all instances are the same memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct VaultMemory;

/// The app's memory.
pub fn memory() -> VaultMemory {
    VaultMemory
}

fn check_bounds(offset: u64, len: usize) {
    let size = store::header().app_pages * WASM_PAGE;
    if offset.checked_add(len as u64).is_none_or(|end| end > size) {
        ic_cdk::trap(format!("stable memory out of bounds: {offset} + {len} > {size}"));
    }
}

impl Memory for VaultMemory {
    fn size(&self) -> u64 {
        store::header().app_pages
    }

    fn grow(&self, pages: u64) -> i64 {
        check_writable();
        let old = store::header().app_pages;
        let new = old + pages;
        let underlying = app();
        let have = underlying.size();
        if have < new && underlying.grow(new - have) < 0 {
            return -1;
        }
        // A restore may have left bytes above the old size: growth exposes only zeros.
        if have > old {
            zero(&underlying, old * WASM_PAGE, have.min(new) * WASM_PAGE);
        }
        store::update_header(|h| h.app_pages = new);
        old as i64
    }

    fn read(&self, offset: u64, dst: &mut [u8]) {
        check_bounds(offset, dst.len());
        app().read(offset, dst);
    }

    fn write(&self, offset: u64, src: &[u8]) {
        write_at(offset, src, ic_cdk::api::time);
    }
}

/// Writes `src` at `offset` of the app's memory, `now` telling the time if a dump is open.
fn write_at(offset: u64, src: &[u8], now: impl FnOnce() -> u64) {
    check_writable();
    check_bounds(offset, src.len());
    if !src.is_empty() {
        save_before_write(offset, src.len() as u64, now);
    }
    app().write(offset, src);
}

fn zero(memory: &Mem, start: u64, end: u64) {
    let zeros = vec![0u8; WASM_PAGE as usize];
    let mut at = start;
    while at < end {
        let n = (end - at).min(WASM_PAGE);
        memory.write(at, &zeros[..n as usize]);
        at += n;
    }
}

/// Copies aside the pages of `[offset, offset+len)` that belong to an open stable-memory dump
/// and were not copied yet, unless the dump is stale as of `now`: then it is released.
fn save_before_write(offset: u64, len: u64, now: impl FnOnce() -> u64) {
    let Session::Dumping(dump) = store::header().session else { return };
    if session::release_stale(now()) || dump.kind != StateKind::StableMemory {
        return;
    }
    let first = offset / COW_PAGE;
    let last = ((offset + len - 1) / COW_PAGE).min(dump.size.div_ceil(COW_PAGE).saturating_sub(1));
    if offset >= dump.size {
        return;
    }
    let mut slots = dump.cow_slots;
    let mut page_buf = [0u8; COW_PAGE as usize];
    for page in first..=last {
        if cow::is_saved(page) {
            continue;
        }
        app().read(page * COW_PAGE, &mut page_buf);
        let at = slots * COW_PAGE;
        let cow = cow_memory();
        let needed = (at + COW_PAGE).div_ceil(WASM_PAGE);
        if cow.size() < needed && cow.grow(needed - cow.size()) < 0 {
            ic_cdk::trap("the vault client could not grow its copy-on-write memory");
        }
        cow.write(at, &page_buf);
        cow::save(page, slots);
        slots += 1;
    }
    if slots != dump.cow_slots {
        store::update_header(|h| {
            if let Session::Dumping(open) = &mut h.session {
                open.cow_slots = slots;
            }
        });
    }
}

/// Bytes `[offset, offset+len)` of the open dump's image: copied-aside pages from the COW
/// memory, the others from the app's memory.
pub fn read_frozen(offset: u64, len: usize) -> Vec<u8> {
    let mut buf = ReadBuffer::with_capacity(len);
    let end = offset + len as u64;
    let mut at = offset;
    while at < end {
        let page = at / COW_PAGE;
        let page_end = ((page + 1) * COW_PAGE).min(end);
        if cow::is_saved(page) {
            let slot = cow::slot_of(page).expect("a saved page has a slot");
            buf.read(&cow_memory(), slot * COW_PAGE + (at - page * COW_PAGE), (page_end - at) as usize);
            at = page_end;
        } else {
            // Read the run of pages not copied aside in one go.
            let mut run_end = page_end;
            while run_end < end && !cow::is_saved(run_end / COW_PAGE) {
                run_end = ((run_end / COW_PAGE + 1) * COW_PAGE).min(end);
            }
            buf.read(&app(), at, (run_end - at) as usize);
            at = run_end;
        }
    }
    buf.into_vec()
}

/// Replaces the app's memory with `size` bytes read by `fill` (a restore's commit).
pub fn replace_contents(size: u64, mut fill: impl FnMut(u64, &mut [u8])) {
    let pages = size / WASM_PAGE;
    let underlying = app();
    if underlying.size() < pages && underlying.grow(pages - underlying.size()) < 0 {
        ic_cdk::trap("the vault client could not grow the app's memory for a restore");
    }
    const STEP: u64 = 1 << 20;
    let mut buf = vec![0u8; STEP as usize];
    let mut at = 0;
    while at < size {
        let n = (size - at).min(STEP) as usize;
        fill(at, &mut buf[..n]);
        underlying.write(at, &buf[..n]);
        at += n as u64;
    }
    store::update_header(|h| h.app_pages = pages);
}

#[cfg(test)]
mod tests {
    use vault_api::protocol::SESSION_TTL;

    use super::*;
    use crate::layout::{OpenDump, SessionKey};

    const TTL: u64 = SESSION_TTL.as_nanos() as u64;

    /// Opens a dump of the app's whole memory, touched at `touched_at`.
    fn open_dump(touched_at: u64) {
        let key = SessionKey { vault: candid::Principal::from_slice(&[9; 10]), nonce: Some(1), job: 1 };
        let size = memory().size() * WASM_PAGE;
        let dump = OpenDump {
            key,
            kind: StateKind::StableMemory,
            size,
            chunk_size: 1024,
            taken_at_nanos: 0,
            cow_slots: 0,
            touched_at_nanos: touched_at,
            chunk_hashes: false,
        };
        session::open_dump(|| Ok(dump)).expect("freezing cannot fail here");
    }

    fn live(offset: u64, len: usize) -> Vec<u8> {
        let mut bytes = vec![0; len];
        memory().read(offset, &mut bytes);
        bytes
    }

    #[test]
    fn a_write_copies_aside_for_a_dump_within_the_ttl() {
        memory().grow(1);
        write_at(0, b"before", || unreachable!("no dump is open: the time is not read"));
        open_dump(10);
        write_at(0, b"after!", || 10 + TTL);
        assert_eq!((read_frozen(0, 6), live(0, 6)), (b"before".to_vec(), b"after!".to_vec()));
        assert!(matches!(store::header().session, Session::Dumping(OpenDump { cow_slots: 1, .. })));
    }

    #[test]
    fn a_frozen_read_across_pages_copied_aside_and_not_reads_the_image_as_frozen() {
        memory().grow(1);
        let image: Vec<u8> = (0..WASM_PAGE).map(|i| (i % 251) as u8).collect();
        write_at(0, &image, || 0);
        open_dump(10);
        for page in [1, 3, 4] {
            write_at(page * COW_PAGE + 10, b"written while the dump is open", || 20);
        }
        for (offset, len) in [(0, WASM_PAGE as usize), (100, 5 * COW_PAGE as usize), (COW_PAGE + 5, 7), (3 * COW_PAGE, 0)] {
            assert_eq!(read_frozen(offset, len), image[offset as usize..offset as usize + len], "{offset} + {len}");
        }
        assert_ne!(live(COW_PAGE, COW_PAGE as usize), image[COW_PAGE as usize..2 * COW_PAGE as usize]);
    }

    #[test]
    fn a_write_releases_a_dump_no_vault_call_touched_for_the_ttl_and_copies_nothing() {
        memory().grow(1);
        write_at(0, b"before", || 0);
        open_dump(10);
        write_at(0, b"after!", || 10 + TTL + 1);
        assert_eq!(store::header().session, Session::Idle);
        assert!(!cow::is_saved(0) && store::with_cow_index(|index| index.is_empty()), "nothing copied aside");
        assert_eq!(live(0, 6), b"after!".to_vec());
    }
}
