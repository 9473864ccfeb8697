//! Content-defined chunking of a serialization (a gear hash, as in FastCDC): bytes are cut where
//! the hash of the 64 bytes before says so, at least [`MIN_PIECE`] and at most [`MAX_PIECE`] apart,
//! about [`MIN_PIECE`] + 1 KiB on average. An insertion or a deletion moves the cuts near it only,
//! so the pieces of a state whose records changed in a few places are mostly those of the state
//! before, wherever they now are.

use std::ops::Range;

pub const MIN_PIECE: usize = 128;
pub const MAX_PIECE: usize = 16 * 1024;
/// A cut where the hash's top 10 bits are zeros: one chance in 1,024 a byte.
const CUT_SHIFT: u32 = 64 - 10;
/// Bytes the hash depends on: each step shifts it by one bit.
const WINDOW: usize = 64;

/// 256 random words, one per byte value (splitmix64 from a fixed seed: the cuts of a build are
/// those of every other).
const GEAR: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut state: u64 = 0x6361_6e69_7374_6572;
    let mut i = 0;
    while i < 256 {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        table[i] = z ^ (z >> 31);
        i += 1;
    }
    table
};

/// The end of the piece of `bytes` that starts at its first byte. (Plain loops over slices: a
/// wasm build of an iterator chain here took some 40 instructions a byte.)
fn piece_end(bytes: &[u8]) -> usize {
    if bytes.len() <= MIN_PIECE {
        return bytes.len();
    }
    let end = bytes.len().min(MAX_PIECE);
    let window = &bytes[MIN_PIECE - WINDOW..end];
    let mut hash = 0u64;
    for &byte in &window[..WINDOW - 1] {
        hash = (hash << 1).wrapping_add(GEAR[byte as usize]);
    }
    for (i, &byte) in window[WINDOW - 1..].iter().enumerate() {
        hash = (hash << 1).wrapping_add(GEAR[byte as usize]);
        if hash >> CUT_SHIFT == 0 {
            return MIN_PIECE + i;
        }
    }
    end
}

/// The pieces `bytes` is cut into, in order, covering it.
pub fn pieces(bytes: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        (start < bytes.len()).then(|| {
            let end = start + piece_end(&bytes[start..]);
            let piece = start..end;
            start = end;
            piece
        })
    })
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// `len` bytes from a fixed pseudo-random sequence starting at `seed`.
    pub fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed;
        (0..len)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (state >> 56) as u8
            })
            .collect()
    }

    fn cut(bytes: &[u8]) -> Vec<&[u8]> {
        pieces(bytes).map(|range| &bytes[range]).collect()
    }

    #[test]
    fn pieces_cover_the_bytes_within_their_bounds() {
        for len in [0, 1, MIN_PIECE, MIN_PIECE + 1, 5000, 1 << 20] {
            let bytes = noise(len, len as u64);
            let ranges: Vec<Range<usize>> = pieces(&bytes).collect();
            let mut at = 0;
            for (i, range) in ranges.iter().enumerate() {
                assert_eq!(range.start, at);
                assert!(range.len() <= MAX_PIECE);
                assert!(range.len() >= MIN_PIECE || i == ranges.len() - 1, "only the last piece is short");
                at = range.end;
            }
            assert_eq!(at, len);
        }
        let average = (1 << 20) / pieces(&noise(1 << 20, 7)).count();
        assert!((900..1600).contains(&average), "{average} bytes a piece");
        let zeros = vec![0u8; 100_000];
        assert!(pieces(&zeros).all(|range| range.len() == MAX_PIECE || range.end == zeros.len()), "no cut in zeros: the largest pieces");
    }

    #[test]
    fn an_insertion_changes_the_pieces_near_it_only() {
        let before = noise(1 << 20, 1);
        let mut after = before.clone();
        after.splice(300_000..300_000, noise(777, 2));
        after.drain(700_000..700_100);
        let old: std::collections::HashSet<&[u8]> = cut(&before).into_iter().collect();
        let new = cut(&after);
        let changed: usize = new.iter().filter(|piece| !old.contains(*piece)).map(|piece| piece.len()).sum();
        assert!(changed < 6 * 4096, "{changed} bytes in new pieces for 877 bytes changed");
    }

    #[test]
    fn the_gear_table_is_the_one_every_build_cuts_with() {
        let bytes = noise(1 << 16, 3);
        let ends: Vec<usize> = pieces(&bytes).map(|range| range.end).take(4).collect();
        assert_eq!(ends, GOLDEN_ENDS, "the cuts of a build are those the base's index was made with");
    }

    const GOLDEN_ENDS: [usize; 4] = [150, 1747, 3749, 4005];
}
