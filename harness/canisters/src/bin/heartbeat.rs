//! Heartbeat: keeps the time of each of its heartbeats.

use std::cell::RefCell;

use ic_cdk::{heartbeat, query};

thread_local! {
    static BEATS: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

#[heartbeat]
fn beat() {
    BEATS.with_borrow_mut(|beats| beats.push(ic_cdk::api::time()));
}

/// The time of every heartbeat so far, in nanoseconds.
#[query]
fn beats() -> Vec<u64> {
    BEATS.with_borrow(|beats| beats.clone())
}

fn main() {}
