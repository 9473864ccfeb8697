//! A chunk's [`PAGE_SIZE`] pages, some of them marked by a bitmap (bit `j % 8` of byte `j / 8`
//! for page `j`) and followed by the bytes of those marked, in order (the last page as long as
//! the chunk's end leaves it). An incremental dump's chunk comes in this form (its changed
//! pages), and the chunk store keeps a chunk close to another in it (a delta over that one).
//!
//! A chunk of `len` bytes in this form over `base` is `base` zero-extended or cut to `len`, with
//! the marked pages put in.

use std::ops::Range;

use vault_api::codec::same_bytes;
use vault_api::protocol::PAGE_SIZE;

/// Pages of a chunk of `len` bytes.
pub fn page_count(len: u64) -> u64 {
    len.div_ceil(PAGE_SIZE)
}

/// Bytes of the bitmap of a chunk of `len` bytes.
pub fn bitmap_len(len: u64) -> usize {
    page_count(len).div_ceil(8) as usize
}

/// The pages a bitmap marks, in order.
pub fn marked(bitmap: &[u8]) -> impl Iterator<Item = u64> + '_ {
    bitmap
        .iter()
        .enumerate()
        .flat_map(|(byte, &bits)| (0..8).filter(move |bit| bits & (1 << bit) != 0).map(move |bit| byte as u64 * 8 + bit))
}

/// Bytes of page `page` of a chunk of `len` bytes (the last as long as the chunk leaves it).
pub fn page_range(len: u64, page: u64) -> Range<u64> {
    let start = page * PAGE_SIZE;
    start..(start + PAGE_SIZE).min(len)
}

/// The chunk of `len` bytes that `bitmap` and `data` (checked to agree: every marked page's
/// bytes, in order) stand for over `base`.
pub fn apply(base: &[u8], len: u64, bitmap: &[u8], data: &[u8]) -> Vec<u8> {
    let mut chunk = base[..base.len().min(len as usize)].to_vec();
    put_in(&mut chunk, len, bitmap, data);
    chunk
}

/// Makes `chunk` the chunk of `len` bytes that `bitmap` and `data` stand for over it, in place.
pub fn put_in(chunk: &mut Vec<u8>, len: u64, bitmap: &[u8], data: &[u8]) {
    chunk.truncate(len as usize);
    chunk.resize(len as usize, 0);
    let mut from = 0;
    for page in marked(bitmap) {
        let range = page_range(len, page);
        let (start, end) = (range.start as usize, range.end as usize);
        chunk[start..end].copy_from_slice(&data[from..from + end - start]);
        from += end - start;
    }
}

/// `chunk` over `base`: the bitmap of its pages that differ from `base`'s bytes there (zeros past
/// `base`'s end), followed by those pages; [`put_delta_in`] of it over `base` gives `chunk` back.
pub fn delta(base: &[u8], chunk: &[u8]) -> Vec<u8> {
    let len = chunk.len() as u64;
    let bitmap = bitmap_len(len);
    let mut delta = vec![0; bitmap];
    for page in 0..page_count(len) {
        let range = page_range(len, page);
        let (start, end) = (range.start as usize, range.end as usize);
        let mine = &chunk[start..end];
        let theirs = base.get(start..end.min(base.len())).unwrap_or_default();
        let same = same_bytes(&mine[..theirs.len()], theirs) && same_bytes(&mine[theirs.len()..], &ZEROS[..mine.len() - theirs.len()]);
        if !same {
            delta[page as usize / 8] |= 1 << (page % 8);
            delta.extend_from_slice(mine);
        }
    }
    delta
}

/// A page of zeros, what a chunk is past its base's end.
const ZEROS: [u8; PAGE_SIZE as usize] = [0; PAGE_SIZE as usize];

/// [`put_in`] of a [`delta`] (a bitmap for `len` bytes, then the pages) over `chunk`.
pub fn put_delta_in(chunk: &mut Vec<u8>, len: u64, delta: &[u8]) {
    let (bitmap, data) = delta.split_at(bitmap_len(len).min(delta.len()));
    put_in(chunk, len, bitmap, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = PAGE_SIZE as usize;

    fn bytes(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed)).collect()
    }

    #[test]
    fn a_delta_holds_the_pages_that_differ_and_applies_back_to_the_chunk_whatever_the_lengths() {
        let base = bytes(16 * PAGE, 1);
        let mut changed = base.clone();
        changed[3 * PAGE + 9] ^= 1;
        changed[15 * PAGE] ^= 1;
        let mut zero_extended = base[..2 * PAGE + 5].to_vec();
        zero_extended.resize(4 * PAGE, 0);
        let cases = [
            (base.clone(), changed.clone(), 2),
            (base.clone(), base.clone(), 0),
            (base[..2 * PAGE + 5].to_vec(), zero_extended, 0),
            (base[..2 * PAGE + 5].to_vec(), base[..4 * PAGE].to_vec(), 2),
            (base.clone(), base[..PAGE + 3].to_vec(), 0),
            (base.clone(), changed[..3 * PAGE + 10].to_vec(), 1),
            (Vec::new(), bytes(PAGE + 1, 2), 2),
            (base.clone(), Vec::new(), 0),
        ];
        for (n, (base, chunk, pages)) in cases.into_iter().enumerate() {
            let delta = delta(&base, &chunk);
            let len = chunk.len() as u64;
            let marked: Vec<u64> = marked(&delta[..bitmap_len(len)]).collect();
            assert_eq!(marked.len(), pages, "case {n}: {marked:?}");
            let data: u64 = marked.iter().map(|&p| page_range(len, p)).map(|r| r.end - r.start).sum();
            assert_eq!(delta.len() as u64, bitmap_len(len) as u64 + data, "case {n}");
            let mut applied = base.clone();
            put_delta_in(&mut applied, len, &delta);
            assert!(applied == chunk, "case {n}");
        }
    }
}
