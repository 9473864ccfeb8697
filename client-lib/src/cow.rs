//! The pages of the open dump copied aside: the COW_INDEX map (page -> slot of the COW memory)
//! and, cached on the heap, a bitmap of its pages, loaded from the map on first use.

use std::cell::RefCell;

use crate::store;

thread_local! {
    /// Pages of the open dump already copied aside; `None` until loaded from the index.
    static SAVED: RefCell<Option<Vec<u64>>> = const { RefCell::new(None) };
}

fn with_saved<R>(f: impl FnOnce(&mut Vec<u64>) -> R) -> R {
    SAVED.with_borrow_mut(|saved| {
        let bits = saved.get_or_insert_with(|| {
            let mut bits = Vec::new();
            store::with_cow_index(|index| {
                for entry in index.iter() {
                    set_bit(&mut bits, *entry.key());
                }
            });
            bits
        });
        f(bits)
    })
}

fn set_bit(bits: &mut Vec<u64>, page: u64) {
    let word = (page / 64) as usize;
    if word >= bits.len() {
        bits.resize(word + 1, 0);
    }
    bits[word] |= 1 << (page % 64);
}

/// Whether `page` was copied aside.
pub fn is_saved(page: u64) -> bool {
    with_saved(|bits| bits.get((page / 64) as usize).is_some_and(|w| w & (1 << (page % 64)) != 0))
}

/// Records `page` as copied aside into `slot`.
pub fn save(page: u64, slot: u64) {
    store::with_cow_index(|index| index.insert(page, slot));
    with_saved(|bits| set_bit(bits, page));
}

/// The slot holding `page`'s old contents, if it was copied aside.
pub fn slot_of(page: u64) -> Option<u64> {
    store::with_cow_index(|index| index.get(&page))
}

/// Forgets the pages copied aside (the dump closed).
pub fn clear() {
    store::with_cow_index(|index| index.clear_new());
    SAVED.with_borrow_mut(|saved| *saved = Some(Vec::new()));
}
