//! Incremental snapshots, pure: which base a dump asks to build on, the base entries a new
//! snapshot references before its chunks are asked for, and a chunk of an incremental dump (its
//! changed pages, or its ranges of the base's image, checked) made into the chunk it stands for.
//!
//! A chunk of an incremental stable-memory dump carries its changed pages as `pages` has them,
//! over the base's chunk at its index (empty past the base's end). A chunk of an incremental
//! serde dump carries the ranges of it that are bytes of the base's image, wherever they are in
//! it (a serialization moves when a record before grows or shrinks), and its other bytes.

use std::ops::Range;

use vault_api::ContentHash;
use vault_api::manifest::{chunk_range, try_chunk_count};
use vault_api::protocol::{BaseRange, CHUNK_SIZE, MAX_BASE_CHUNKS, StateKind};

use crate::pages;
use crate::storable::{Base, IncrementalRecord, SnapshotRecord, SnapshotStatus};

/// Base entries a new snapshot references in one step (each a few map operations).
pub const COPY_BUDGET: u32 = 1024;
// Each step starts at a page of the base's manifest, so its whole pages are referenced as pages.
const _: () = assert!(COPY_BUDGET.is_multiple_of(crate::manifest_tree::PAGE_ENTRIES));

/// Whether a snapshot may be a later one's base: an image in BLAKE3, in chunks of `CHUNK_SIZE`
/// (so a stable-memory image's chunks are those of the dumps after it, at the same indices, hashed
/// as theirs are).
pub fn may_be_base(snapshot: &SnapshotRecord) -> bool {
    snapshot.content_hash == ContentHash::Blake3 && snapshot.chunk_size == CHUNK_SIZE
}

/// The base the next dump of an app of kind `kind` asks to build on: the snapshot the app
/// confirmed it holds (`record.base`, whose record is `snapshot`), if that is complete, of the
/// app's kind and may be a base, and fewer than `record.max_incrementals` incremental snapshots
/// lead up to it.
pub fn base_to_ask(kind: StateKind, record: &IncrementalRecord, snapshot: Option<&SnapshotRecord>) -> Option<Base> {
    let base = record.base?;
    let snapshot = snapshot.filter(|s| s.status == SnapshotStatus::Complete && s.state_kind == kind && may_be_base(s))?;
    let ask = base.incrementals < record.max_incrementals;
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

/// Whether an app answered a chunk of `len` bytes of a serde dump against a base of `base_size`
/// bytes with `ranges` of the base's image and `data` bytes besides as the protocol has it: each
/// range in the chunk and in the base, none empty, in order and apart, all in at most
/// [`MAX_BASE_CHUNKS`] of the base's chunks, and the bytes between them as many as `data`. Why
/// not, if not.
pub fn check_ranges(len: u64, base_size: u64, ranges: &[BaseRange], data: &[u8]) -> Result<(), String> {
    let mut covered = 0u64;
    let mut end = 0u64;
    let mut base_chunks: Vec<u64> = Vec::with_capacity(MAX_BASE_CHUNKS + 1);
    for (i, range) in ranges.iter().enumerate() {
        let (at, range_len) = (u64::from(range.at), u64::from(range.len));
        if range_len == 0 {
            return Err(format!("range {i} is empty"));
        }
        if at < end {
            return Err(format!("range {i} starts at {at}, before the end of the one before ({end})"));
        }
        end = at + range_len;
        if end > len {
            return Err(format!("range {i} ends at {end}, past the chunk's {len} bytes"));
        }
        if range.from.checked_add(range_len).is_none_or(|base_end| base_end > base_size) {
            return Err(format!("range {i} reads the base from {} for {range_len} bytes, past its {base_size}", range.from));
        }
        for base_chunk in range.from / CHUNK_SIZE..=(range.from + range_len - 1) / CHUNK_SIZE {
            if !base_chunks.contains(&base_chunk) {
                base_chunks.push(base_chunk);
            }
            if base_chunks.len() > MAX_BASE_CHUNKS {
                return Err(format!("range {i} reads a chunk of the base more than the {MAX_BASE_CHUNKS} a chunk may"));
            }
        }
        covered += range_len;
    }
    if covered + data.len() as u64 != len {
        return Err(format!("{covered} bytes of ranges and {} of data for a chunk of {len}", data.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use vault_api::Sha256;
    use vault_api::protocol::rebuild_from_ranges;
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
        assert_eq!(base_to_ask(StateKind::Serde, &holding(0, 24), Some(&complete)), None, "a base of another kind");
        let serde = SnapshotRecord { state_kind: StateKind::Serde, ..complete.clone() };
        assert_eq!(base_to_ask(StateKind::Serde, &holding(0, 24), Some(&serde)).map(|b| b.snapshot), Some(9));
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

    fn range(at: u32, from: u64, len: u32) -> BaseRange {
        BaseRange { at, from, len }
    }

    #[test]
    fn a_serde_chunk_is_its_ranges_of_the_base_and_its_bytes_between_them() {
        let base = bytes(10_000, 1);
        let ranges = [range(3, 9_000, 100), range(103, 0, 50), range(200, 500, 1)];
        let data = bytes(3 + 47 + 9, 9);
        let len = 3 + 100 + 50 + 47 + 1 + 9;
        assert_eq!(check_ranges(len, base.len() as u64, &ranges, &data), Ok(()));
        let read = |from: u64, len: u32, out: &mut Vec<u8>| {
            out.extend_from_slice(base.get(from as usize..from as usize + len as usize)?);
            Some(())
        };
        let chunk = rebuild_from_ranges(len, &ranges, &data, read).expect("rebuilt");
        let expected = [&data[..3], &base[9_000..9_100], &base[..50], &data[3..50], &base[500..501], &data[50..]].concat();
        assert!(chunk == expected);
        assert!(rebuild_from_ranges(len, &ranges, &data, |_, _, _| None).is_none(), "a base that cannot be read");
        let short = |_, _, out: &mut Vec<u8>| {
            out.push(0);
            Some(())
        };
        assert!(rebuild_from_ranges(len, &ranges, &data, short).is_none(), "a read short of its range");
        assert_eq!(rebuild_from_ranges(5, &[], &data[..5], read), Some(data[..5].to_vec()), "no range: the bytes");
    }

    #[test]
    fn serde_ranges_that_do_not_add_up_are_refused() {
        let ok = [range(0, 0, 10), range(10, 50, 10)];
        assert_eq!(check_ranges(25, 100, &ok, &[0; 5]), Ok(()));
        let refused = |ranges: &[BaseRange], data: usize, why: &str| {
            let reason = check_ranges(25, 100, ranges, &vec![0; data]).expect_err(why);
            assert!(reason.contains(why), "{reason}");
        };
        refused(&ok, 4, "and 4 of data");
        refused(&ok, 6, "and 6 of data");
        refused(&[range(0, 0, 10), range(9, 50, 10)], 6, "before the end");
        refused(&[range(10, 0, 10), range(0, 50, 10)], 5, "before the end");
        refused(&[range(0, 0, 0)], 25, "empty");
        refused(&[range(20, 0, 10)], 15, "past the chunk");
        refused(&[range(0, 95, 10)], 15, "past its 100");
        refused(&[range(0, u64::MAX, 10)], 15, "past its 100");
        refused(&[range(u32::MAX, 0, u32::MAX)], 0, "past the chunk");
        // Ranges in at most four of the base's chunks.
        let c = CHUNK_SIZE;
        let four = [range(0, 0, 1), range(1, c - 1, 2), range(3, 2 * c + 5, 1), range(4, 3 * c, 1), range(5, 10, 1)];
        assert_eq!(check_ranges(10, 4 * c, &four, &[0; 4]), Ok(()));
        let five = [range(0, 0, 1), range(1, c - 1, 2), range(3, 2 * c + 5, 1), range(4, 3 * c + 10, (c - 9) as u32)];
        let reason = check_ranges(c + 10, 5 * c, &five, &[0; 15]).expect_err("five chunks");
        assert!(reason.contains("more than the 4"), "{reason}");
    }
}
