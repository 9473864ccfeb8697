//! Integration tests of the embedded IC: each module runs the real test canisters and checks
//! one area of the IC's semantics.

mod common;
mod smoke;
