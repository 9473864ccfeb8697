//! The example apps' test data: pseudo-random bytes (xorshift64), so no two chunks of a big
//! state are alike and content-addressed storage stores every one.

/// `size` bytes derived from `seed`: the same for the same arguments.
pub fn pseudo_random(seed: u8, size: u64) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(seed);
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn blobs_are_reproducible_and_differ_by_seed() {
        assert_eq!(super::pseudo_random(1, 64), super::pseudo_random(1, 64));
        assert_ne!(super::pseudo_random(1, 64), super::pseudo_random(2, 64));
        let blob = super::pseudo_random(7, 1 << 16);
        assert_ne!(blob[..4096], blob[4096..8192], "no repeating pages");
    }
}
