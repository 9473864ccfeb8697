//! Incremental snapshots, pure: which base a dump asks to build on, the base entries a new
//! snapshot references before its chunks are asked for, and a chunk of an incremental dump (its
//! changed pages, checked) made into the chunk it stands for over the base's.
//!
//! A chunk of an incremental dump carries its changed pages as `pages` has them, over the base's
//! chunk at its index (empty past the base's end).

use std::ops::Range;

use vault_api::ContentHash;
use vault_api::manifest::{chunk_range, try_chunk_count};
use vault_api::protocol::{CHUNK_SIZE, StateKind};

use crate::pages;
use crate::storable::{Base, IncrementalRecord, SnapshotRecord, SnapshotStatus};

/// Base entries a new snapshot references in one step (each a few map operations).
pub const COPY_BUDGET: u32 = 1024;

/// Whether a snapshot may be a later one's base: a stable-memory image in BLAKE3, in chunks of
/// `CHUNK_SIZE` (so its chunks are those of the dumps after it, at the same indices, hashed as
/// theirs are).
pub fn may_be_base(snapshot: &SnapshotRecord) -> bool {
    snapshot.state_kind == StateKind::StableMemory && snapshot.content_hash == ContentHash::Blake3 && snapshot.chunk_size == CHUNK_SIZE
}

/// The base the next dump of an app of kind `kind` asks to build on: the snapshot the app
/// confirmed it holds (`record.base`, whose record is `snapshot`), if that is complete and may
/// be a base, and fewer than `record.max_incrementals` incremental snapshots lead up to it.
pub fn base_to_ask(kind: StateKind, record: &IncrementalRecord, snapshot: Option<&SnapshotRecord>) -> Option<Base> {
    let base = record.base?;
    let snapshot = snapshot.filter(|s| s.status == SnapshotStatus::Complete && may_be_base(s))?;
    let ask = kind == StateKind::StableMemory && base.incrementals < record.max_incrementals;
    ask.then_some(Base { snapshot: base.snapshot, size: snapshot.size, incrementals: base.incrementals, copied: 0 })
}

/// Entries the new snapshot of `chunks` chunks shares with `base`: those at the indices both
/// have.
pub fn shared_chunks(base: &Base, chunks: u32) -> u32 {
    try_chunk_count(base.size, CHUNK_SIZE).unwrap_or(0).min(chunks)
}

/// The base entries the next step references: up to [`COPY_BUDGET`] after those it does.
pub fn next_copy(base: &Base, chunks: u32) -> Range<u32> {
    let end = shared_chunks(base, chunks);
    let start = base.copied.min(end);
    start..end.min(start.saturating_add(COPY_BUDGET))
}

/// Bytes of the base's chunk `index` (0 past its end).
pub fn base_chunk_len(base: &Base, index: u32) -> u64 {
    if index >= try_chunk_count(base.size, CHUNK_SIZE).unwrap_or(0) {
        return 0;
    }
    let range = chunk_range(base.size, CHUNK_SIZE, index);
    range.end - range.start
}

/// Whether an app answered a chunk of `len` bytes with a bitmap `bitmap` of its pages and
/// `data` bytes of them as the protocol has it: a bit for each page and none past them, and the
/// bytes of the pages set. Whether any page is set, or why the answer is not one.
pub fn check_pages(len: u64, bitmap: &[u8], data: &[u8]) -> Result<bool, String> {
    let pages = pages::page_count(len);
    let bytes = pages::bitmap_len(len);
    if bitmap.len() != bytes {
        return Err(format!("a bitmap of {} bytes for {pages} pages, not {bytes}", bitmap.len()));
    }
    if let Some(&last) = bitmap.last()
        && !pages.is_multiple_of(8)
        && last >> (pages % 8) != 0
    {
        return Err(format!("pages past the chunk's {pages} are marked"));
    }
    let changed: u64 = pages::marked(bitmap).map(|page| pages::page_range(len, page)).map(|range| range.end - range.start).sum();
    if data.len() as u64 != changed {
        return Err(format!("{} bytes of pages for the {changed} the bitmap marks", data.len()));
    }
    Ok(changed > 0)
}

#[cfg(test)]
mod tests {
    use vault_api::Sha256;
    use vault_api::protocol::PAGE_SIZE;
    use vault_api::service::Trigger;

    use super::*;
    use crate::storable::AppBase;

    const PAGE: u64 = PAGE_SIZE;

    fn snapshot(status: SnapshotStatus, content_hash: ContentHash, chunk_size: u64) -> SnapshotRecord {
        SnapshotRecord {
            status,
            job: 1,
            taken_at: 2,
            size: 3 * CHUNK_SIZE + 5 * PAGE,
            sha256: Sha256::default(),
            module_hash: None,
            state_kind: StateKind::StableMemory,
            chunks: 4,
            chunk_size,
            started_at: 0,
            duration: 0,
            transfer_cycles: 0,
            trigger: Trigger::Scheduled,
            content_hash,
        }
    }

    fn holding(incrementals: u32, max_incrementals: u32) -> IncrementalRecord {
        IncrementalRecord { max_incrementals, base: Some(AppBase { snapshot: 9, incrementals }) }
    }

    #[test]
    fn a_dump_asks_for_the_base_its_app_holds_while_fewer_incrementals_than_allowed_lead_to_it() {
        let complete = snapshot(SnapshotStatus::Complete, ContentHash::Blake3, CHUNK_SIZE);
        let asked = base_to_ask(StateKind::StableMemory, &holding(23, 24), Some(&complete));
        assert_eq!(asked, Some(Base { snapshot: 9, size: complete.size, incrementals: 23, copied: 0 }));
        assert_eq!(base_to_ask(StateKind::StableMemory, &holding(24, 24), Some(&complete)), None, "the 25th is full");
        assert_eq!(base_to_ask(StateKind::StableMemory, &holding(0, 0), Some(&complete)), None, "0: every snapshot is full");
        assert_eq!(base_to_ask(StateKind::StableMemory, &IncrementalRecord::default(), Some(&complete)), None, "no base held");
        assert_eq!(base_to_ask(StateKind::StableMemory, &holding(0, 24), None), None, "the base is gone");
        assert_eq!(base_to_ask(StateKind::Serde, &holding(0, 24), Some(&complete)), None);
        for (status, hash, chunk_size) in [
            (SnapshotStatus::Deleting, ContentHash::Blake3, CHUNK_SIZE),
            (SnapshotStatus::Building, ContentHash::Blake3, CHUNK_SIZE),
            (SnapshotStatus::Complete, ContentHash::Sha256, CHUNK_SIZE),
            (SnapshotStatus::Complete, ContentHash::Blake3, 64 * 1024),
        ] {
            let base = snapshot(status, hash, chunk_size);
            assert_eq!(base_to_ask(StateKind::StableMemory, &holding(0, 24), Some(&base)), None, "{status:?} {hash:?} {chunk_size}");
        }
    }

    #[test]
    fn the_base_entries_are_referenced_in_bounded_steps_up_to_those_both_have() {
        let base = |size, copied| Base { snapshot: 1, size, incrementals: 0, copied };
        assert_eq!(next_copy(&base(3 * CHUNK_SIZE + 1, 0), 10), 0..4);
        assert_eq!(next_copy(&base(3 * CHUNK_SIZE + 1, 0), 2), 0..2, "the new image is shorter");
        assert_eq!(next_copy(&base(3 * CHUNK_SIZE + 1, 4), 10), 4..4, "all referenced");
        let large = base(5000 * CHUNK_SIZE, 0);
        assert_eq!(next_copy(&large, 5000), 0..COPY_BUDGET);
        assert_eq!(next_copy(&Base { copied: COPY_BUDGET, ..large }, 5000), COPY_BUDGET..2 * COPY_BUDGET);
        assert_eq!(next_copy(&Base { copied: 4 * COPY_BUDGET, ..large }, 5000), 4 * COPY_BUDGET..5000, "the last step takes what is left");
        assert_eq!(next_copy(&base(0, 0), 3), 0..0, "an empty base shares nothing");
        assert_eq!((base_chunk_len(&base(CHUNK_SIZE + 10, 0), 1), base_chunk_len(&base(CHUNK_SIZE + 10, 0), 2)), (10, 0));
    }

    /// A chunk of `len` bytes, byte `i` of it `seed + i` (mod 256).
    fn bytes(len: u64, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_add(seed)).collect()
    }

    /// What an app answers for `new` over `base`: the bitmap of the pages that differ (zeros past
    /// the base's end) and their bytes.
    fn answer(base: &[u8], new: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut bitmap = pages::delta(base, new);
        let data = bitmap.split_off(pages::bitmap_len(new.len() as u64));
        (bitmap, data)
    }

    #[test]
    fn a_chunk_is_its_base_with_the_changed_pages_put_in_whatever_the_lengths() {
        let base = bytes(CHUNK_SIZE, 1);
        let mut cases = Vec::new();
        let mut changed = base.clone();
        changed[5 * PAGE as usize + 7] ^= 0xff;
        changed[510 * PAGE as usize] ^= 0xff;
        cases.push((base.clone(), changed));
        cases.push((base.clone(), base.clone()));
        cases.push((base[..3 * PAGE as usize + 100].to_vec(), base.clone()));
        let mut grown = base[..3 * PAGE as usize].to_vec();
        grown.extend(vec![0; 2 * PAGE as usize]);
        cases.push((base[..3 * PAGE as usize].to_vec(), grown));
        cases.push((Vec::new(), bytes(PAGE + 9, 3)));
        cases.push((base.clone(), base[..PAGE as usize * 2 + 1].to_vec()));
        cases.push((base.clone(), bytes(CHUNK_SIZE, 2)));
        for (base, new) in cases {
            let (bitmap, data) = answer(&base, &new);
            let any = check_pages(new.len() as u64, &bitmap, &data).expect("an honest answer");
            assert_eq!(any, !data.is_empty());
            assert!(pages::apply(&base, new.len() as u64, &bitmap, &data) == new, "{} bytes over {}", new.len(), base.len());
        }
        let (bitmap, data) = answer(&base, &base);
        assert_eq!((bitmap.len(), data.len()), (64, 0), "511 pages: 64 bytes, none set");
    }

    #[test]
    fn an_answer_whose_bitmap_or_pages_do_not_add_up_is_refused() {
        let len = CHUNK_SIZE;
        let mut bitmap = vec![0u8; 64];
        bitmap[0] = 0b101;
        let pages = vec![7u8; 2 * PAGE as usize];
        assert_eq!(check_pages(len, &bitmap, &pages), Ok(true));
        assert!(check_pages(len, &bitmap[..63], &pages).unwrap_err().contains("63 bytes"));
        assert!(check_pages(len, &[bitmap.clone(), vec![0]].concat(), &pages).is_err(), "a byte too many");
        let mut past = bitmap.clone();
        past[63] = 0x80;
        assert!(
            check_pages(len, &past, &[pages.clone(), vec![7; PAGE as usize]].concat()).unwrap_err().contains("past"),
            "page 511 of 511"
        );
        assert!(check_pages(len, &bitmap, &pages[1..]).is_err(), "a byte short");
        assert!(check_pages(len, &bitmap, &[pages.clone(), vec![1]].concat()).is_err(), "a byte over");
        assert!(check_pages(len, &[0; 64], &[]) == Ok(false), "nothing changed");
        // The last page of a chunk is as long as the chunk leaves it.
        assert_eq!(check_pages(PAGE + 10, &[0b10], &[1; 10]), Ok(true));
        assert!(check_pages(PAGE + 10, &[0b10], &[1; PAGE as usize]).is_err());
        assert!(check_pages(PAGE + 10, &[0b100], &[1; 10]).is_err(), "a third page of two");
        assert!(check_pages(0, &[], &[]) == Ok(false), "an empty chunk has no page");
        assert!(check_pages(0, &[0], &[]).is_err());
    }
}
