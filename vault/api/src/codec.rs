//! A small fixed-layout binary codec for records kept in stable memory.
//!
//! Records that the vault and the client library store are written field by field, little
//! endian, in the order their `Storable` impl documents, so the bytes are pinned by golden
//! tests and never depend on a serialization library's choices.

use candid::Principal;

use crate::manifest::{ContentHash, Sha256};
use crate::protocol::StateKind;
use crate::service::Trigger;

/// A state kind's byte in every stored layout and file: 1 serde, 2 stable memory (0 is left
/// for "none" where a layout needs it).
pub fn state_kind_byte(kind: StateKind) -> u8 {
    match kind {
        StateKind::Serde => 1,
        StateKind::StableMemory => 2,
        StateKind::Native => 3,
    }
}

pub fn state_kind_of(byte: u8) -> Option<StateKind> {
    match byte {
        1 => Some(StateKind::Serde),
        2 => Some(StateKind::StableMemory),
        3 => Some(StateKind::Native),
        _ => None,
    }
}

/// A trigger's byte in every stored layout and file: 0 scheduled, 1 manual, 2 import.
pub fn trigger_byte(trigger: Trigger) -> u8 {
    match trigger {
        Trigger::Scheduled => 0,
        Trigger::Manual => 1,
        Trigger::Import => 2,
    }
}

pub fn trigger_of(byte: u8) -> Option<Trigger> {
    match byte {
        0 => Some(Trigger::Scheduled),
        1 => Some(Trigger::Manual),
        2 => Some(Trigger::Import),
        _ => None,
    }
}

/// A content hash's byte in every stored layout and file that has one: 0 SHA-256, 1 BLAKE3 (so
/// the zero of a field that had no content hash before reads as SHA-256).
pub fn content_hash_byte(hash: ContentHash) -> u8 {
    match hash {
        ContentHash::Sha256 => 0,
        ContentHash::Blake3 => 1,
    }
}

pub fn content_hash_of(byte: u8) -> Option<ContentHash> {
    match byte {
        0 => Some(ContentHash::Sha256),
        1 => Some(ContentHash::Blake3),
        _ => None,
    }
}

/// Appends fields to a byte vector.
#[derive(Default)]
pub struct Writer(Vec<u8>);

impl Writer {
    pub fn with_capacity(n: usize) -> Self {
        Writer(Vec::with_capacity(n))
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u128(&mut self, v: u128) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    pub fn sha256(&mut self, v: &Sha256) -> &mut Self {
        self.bytes(&v.0)
    }
    /// A principal in 30 bytes: its length, then its bytes, zero padded.
    pub fn principal(&mut self, p: &Principal) -> &mut Self {
        let bytes = p.as_slice();
        let mut padded = [0u8; 29];
        padded[..bytes.len()].copy_from_slice(bytes);
        self.u8(bytes.len() as u8).bytes(&padded)
    }
    /// An optional principal in 30 bytes: length 0 is none. (The management canister, whose
    /// principal is empty, is never stored.)
    pub fn opt_principal(&mut self, p: Option<&Principal>) -> &mut Self {
        match p {
            Some(p) => self.principal(p),
            None => self.u8(0).bytes(&[0u8; 29]),
        }
    }
    /// A length-prefixed (u32) byte string.
    pub fn blob(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len() as u32).bytes(v)
    }
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

/// Reads fields in the order they were written. Panics on short input: stored records are
/// written by this codec, so a short one is a broken invariant.
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let slice = &self.bytes[self.at..self.at + n];
        self.at += n;
        slice
    }
    pub fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().expect("4 bytes"))
    }
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().expect("8 bytes"))
    }
    pub fn u128(&mut self) -> u128 {
        u128::from_le_bytes(self.take(16).try_into().expect("16 bytes"))
    }
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        self.take(N).try_into().expect("N bytes")
    }
    pub fn sha256(&mut self) -> Sha256 {
        Sha256(self.array())
    }
    pub fn principal(&mut self) -> Principal {
        self.opt_principal().expect("a stored principal")
    }
    pub fn opt_principal(&mut self) -> Option<Principal> {
        let len = self.u8() as usize;
        let padded: [u8; 29] = self.array();
        (len > 0).then(|| Principal::from_slice(&padded[..len]))
    }
    pub fn blob(&mut self) -> &'a [u8] {
        let len = self.u32() as usize;
        self.take(len)
    }
    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        self.take(n)
    }
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.bytes.len() - self.at)
    }
}

/// Whether `a` and `b` hold the same bytes, compared eight at a time: a wasm build's `memcmp`
/// (what `==` on byte slices calls) compares one at a time, some ten instructions a byte.
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let word = |bytes: &[u8]| u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
    let (x, y) = (a.chunks_exact(8), b.chunks_exact(8));
    a.len() == b.len() && x.remainder() == y.remainder() && x.zip(y).all(|(x, y)| word(x) == word(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_compares_every_byte_whatever_the_lengths() {
        let a: Vec<u8> = (0..29u8).collect();
        for len in [0, 1, 7, 8, 9, 16, 29] {
            assert!(same_bytes(&a[..len], &a[..len]));
            for at in 0..len {
                let mut b = a[..len].to_vec();
                b[at] ^= 0x80;
                assert!(!same_bytes(&a[..len], &b), "a byte at {at} of {len}");
            }
        }
        assert!(!same_bytes(&a[..8], &a[..9]) && !same_bytes(&a[..9], &a[..8]), "of other lengths");
    }

    #[test]
    fn fields_round_trip() {
        let p = Principal::from_slice(&[1, 2, 3]);
        let mut w = Writer::default();
        w.u8(7).u32(8).u64(9).u128(10).principal(&p).opt_principal(None).blob(b"xy").sha256(&Sha256([5; 32]));
        let bytes = w.into_vec();
        assert_eq!(bytes.len(), 1 + 4 + 8 + 16 + 30 + 30 + 6 + 32);
        let mut r = Reader::new(&bytes);
        assert_eq!((r.u8(), r.u32(), r.u64(), r.u128()), (7, 8, 9, 10));
        assert_eq!(r.principal(), p);
        assert_eq!(r.opt_principal(), None);
        assert_eq!(r.blob(), b"xy");
        assert_eq!(r.sha256(), Sha256([5; 32]));
        assert!(r.rest().is_empty());
    }
}
