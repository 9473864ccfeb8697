//! What the test canisters share.

/// Fills `buf` with a cheap pseudo-random stream (xorshift64, about two instructions a byte)
/// determined by `seed`.
pub fn pseudo_random_fill(buf: &mut [u8], seed: u64) {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for word in buf.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
    }
}

/// The interface of the `hashes` canister, for it and its clients.
pub mod hashes {
    use candid::{CandidType, Deserialize};
    use serde_bytes::ByteBuf;

    #[derive(CandidType, Deserialize, Clone, Copy, Debug)]
    pub enum Algorithm {
        Sha256,
        Blake3,
    }

    #[derive(CandidType, Deserialize)]
    pub struct Hashed {
        pub digest: ByteBuf,
        /// Instructions the hash took, and nothing else of the message.
        pub instructions: u64,
    }
}
