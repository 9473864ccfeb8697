use crate::common::*;
use ic_harness::Harness;

#[test]
fn update_and_query() {
    let ic = Harness::new();
    let id = probe(&ic);
    let (v,): (u64,) = update(&ic, id, "inc", ()).unwrap();
    assert_eq!(v, 1);
    let (v,): (u64,) = update(&ic, id, "inc", ()).unwrap();
    assert_eq!(v, 2);
    let (v,): (u64,) = query(&ic, id, "get", ()).unwrap();
    assert_eq!(v, 2);
}
