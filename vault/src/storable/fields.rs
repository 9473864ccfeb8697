//! Field encodings the records share: the layout version byte, state kinds, triggers,
//! optional values, and the `Storable` impl every record gets from its `encode`/`decode`.

use vault_api::Sha256;
use vault_api::codec::{Reader, Writer};
use vault_api::protocol::StateKind;
use vault_api::service::Trigger;

pub const V1: u8 = 1;

pub fn check_version(r: &mut Reader, what: &str) {
    let v = r.u8();
    assert_eq!(v, V1, "{what} layout version {v} is not supported");
}

pub use vault_api::codec::{state_kind_byte as kind_byte, trigger_byte};

/// A stored state kind; another byte is a broken invariant.
pub fn kind_of(b: u8) -> StateKind {
    vault_api::codec::state_kind_of(b).unwrap_or_else(|| panic!("unknown state kind {b}"))
}

/// A stored trigger; another byte is a broken invariant.
pub fn trigger_of(b: u8) -> Trigger {
    vault_api::codec::trigger_of(b).unwrap_or_else(|| panic!("unknown trigger {b}"))
}

pub fn opt_u64(w: &mut Writer, v: Option<u64>) {
    w.u8(v.is_some() as u8).u64(v.unwrap_or(0));
}

pub fn read_opt_u64(r: &mut Reader) -> Option<u64> {
    let present = r.u8() == 1;
    let v = r.u64();
    present.then_some(v)
}

pub fn opt_sha(w: &mut Writer, v: Option<&Sha256>) {
    w.u8(v.is_some() as u8).sha256(v.unwrap_or(&Sha256::default()));
}

pub fn read_opt_sha(r: &mut Reader) -> Option<Sha256> {
    let present = r.u8() == 1;
    let v = r.sha256();
    present.then_some(v)
}

macro_rules! storable {
    ($ty:ty, $bound:expr) => {
        impl ::ic_stable_structures::Storable for $ty {
            fn to_bytes(&self) -> ::std::borrow::Cow<'_, [u8]> {
                ::std::borrow::Cow::Owned(self.encode())
            }
            fn into_bytes(self) -> Vec<u8> {
                self.encode()
            }
            fn from_bytes(bytes: ::std::borrow::Cow<[u8]>) -> Self {
                Self::decode(&bytes)
            }
            const BOUND: ::ic_stable_structures::storable::Bound = $bound;
        }
    };
}
pub(crate) use storable;
