//! A snapshot's manifest as pages of chunk digests that versions share.
//!
//! A complete snapshot names its chunks through pages: page `p` holds the digests of its chunks
//! `p * PAGE_ENTRIES ..`, [`PAGE_ENTRIES`] of them (the last page the rest), 32 bytes each, one
//! 4 KiB page of the chunk store. A page is stored in the chunk store under its [`page_key`],
//! content-addressed like a chunk and counted like one, and the snapshot keeps one entry a page
//! in `MANIFEST_PAGES`: (snapshot, page) -> page key. A snapshot built on another references its
//! pages, and a page with a changed chunk is a new page: what a version adds to the manifests is
//! an entry per page (44 bytes a 256 MiB of its state) and the pages it changed, 4 KiB each.
//!
//! ```text
//! MANIFEST_PAGES  (7, 0) -> P0  (7, 1) -> P1         (8, 0) -> P0  (8, 1) -> P1'
//! chunk store     P0: d0 d1 .. d127   P1: d128 ..    P1': d128 .. d200' ..
//! MANIFESTS       (9, 3) -> d3'   a snapshot being built (or of a layout before pages): an entry a chunk
//! ```
//!
//! A snapshot being built names its chunks in `MANIFESTS`, an entry a chunk, over the pages it
//! references from its base, if any: its own entry at an index wins. Once it is complete,
//! sealing (`State::seal_step`, in bounded steps) turns the entries of each page into the page,
//! and removes them. A manifest reads the same before, during and after: sealing changes how the
//! digests are kept, never which they are.
//!
//! A page holds one reference to each chunk it names, taken when it is first stored and
//! released when it is freed; a snapshot's page entry holds one to the page. So the references
//! to a chunk count the pages and the entries that name it, and a chunk goes with the last.
//!
//! A page key is BLAKE3 in its key-derivation mode, under a context of its own: no chunk's
//! digest (SHA-256, or BLAKE3 in its hash mode) is a page's key but by a collision, so an app
//! cannot store bytes the vault would take for a page, nor a page for its chunk.

use std::ops::Range;

/// Chunk digests a page holds.
pub const PAGE_ENTRIES: u32 = 128;

const KEY_CONTEXT: &str = "canister-vault 2026-12 manifest page";

/// The page that holds entry `index`.
pub fn page_of(index: u32) -> u32 {
    index / PAGE_ENTRIES
}

/// Where entry `index` is in its page's bytes.
pub fn offset_in_page(index: u32) -> u32 {
    index % PAGE_ENTRIES * 32
}

/// The entries page `page` of a manifest of `chunks` entries holds (empty past its end).
pub fn page_entries(page: u32, chunks: u32) -> Range<u32> {
    let start = page.saturating_mul(PAGE_ENTRIES).min(chunks);
    start..start.saturating_add(PAGE_ENTRIES).min(chunks)
}

/// Pages of a manifest of `chunks` entries.
pub fn pages(chunks: u32) -> u32 {
    chunks.div_ceil(PAGE_ENTRIES)
}

/// The key a page of `bytes` is stored under.
pub fn page_key(bytes: &[u8]) -> [u8; 32] {
    blake3::derive_key(KEY_CONTEXT, bytes)
}

/// The digests a page's bytes hold.
pub fn digests(bytes: &[u8]) -> Vec<[u8; 32]> {
    bytes.chunks_exact(32).map(|d| d.try_into().expect("32 bytes")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault_api::{ContentHash, Sha256};

    #[test]
    fn pages_cover_a_manifest_in_order() {
        assert_eq!((pages(0), pages(1), pages(128), pages(129)), (0, 1, 1, 2));
        assert_eq!((page_entries(0, 300), page_entries(2, 300), page_entries(3, 300)), (0..128, 256..300, 300..300));
        assert_eq!((page_of(127), page_of(128), offset_in_page(129)), (0, 1, 32));
    }

    #[test]
    fn a_page_key_is_no_chunk_digest_of_the_same_bytes() {
        let bytes = [7u8; 64];
        let key = page_key(&bytes);
        assert_ne!(key, Sha256::of(&bytes).0);
        assert_ne!(key, ContentHash::Blake3.digest(&bytes).0);
        assert_eq!(key, page_key(&bytes));
        assert_eq!(vault_api::hex(&page_key(b"")[..8]), "03fee23a19ad6d7b");
        assert_eq!(digests(&bytes), vec![[7; 32]; 2]);
    }
}
