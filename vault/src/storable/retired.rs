//! `RETIRED` values: an app unregistered (or evicted) whose snapshots stay, and the controllers
//! who may still list, export, restore and delete them.

use candid::Principal;
use ic_stable_structures::storable::Bound;
use vault_api::codec::{Reader, Writer};

use super::MAX_CONTROLLERS;
use super::fields::{V1, check_version, storable};

/// `RETIRED` values, at most 340 bytes: version | unregistered by (30) | at u64 | controller
/// count u8 | controllers (30 each, at most 10), as last seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetiredRecord {
    pub by: Principal,
    pub at: u64,
    pub controllers: Vec<Principal>,
}

impl RetiredRecord {
    pub(super) fn encode(&self) -> Vec<u8> {
        let controllers = &self.controllers[..self.controllers.len().min(MAX_CONTROLLERS)];
        let mut w = Writer::default();
        w.u8(V1).principal(&self.by).u64(self.at).u8(controllers.len() as u8);
        for c in controllers {
            w.principal(c);
        }
        w.into_vec()
    }

    pub(super) fn decode(bytes: &[u8]) -> Self {
        let mut r = Reader::new(bytes);
        check_version(&mut r, "retired app");
        let (by, at) = (r.principal(), r.u64());
        let count = r.u8();
        RetiredRecord { by, at, controllers: (0..count).map(|_| r.principal()).collect() }
    }
}
storable!(RetiredRecord, Bound::Bounded { max_size: 40 + 30 * MAX_CONTROLLERS as u32, is_fixed_size: false });

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storable::tests::{check, p};

    #[test]
    fn golden_layout() {
        check("retired", RetiredRecord { by: p(7, 10), at: 11, controllers: vec![p(8, 10), p(9, 29)] });
    }
}
