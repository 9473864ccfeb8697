//! Measures the harness on this machine and prints the figures (a benchmark, not a test):
//!
//! - the wall time of a small update call (ingress, one round, execution, reply);
//! - the throughput of moving 2 MiB chunks from one canister's stable memory into another's
//!   through inter-canister calls;
//! - the cost of rolling back a message that touched a page of a 1 GiB heap and a 1 GiB stable
//!   memory.
//!
//! Run with `cargo bench -p ic-harness --bench harness`.

use std::time::Instant;

use candid::{Encode, Principal};
use ic_harness::{Harness, IcBackend};
use serde_bytes::ByteBuf;

const MIB: u64 = 1 << 20;

fn controller() -> Principal {
    Principal::from_slice(&[0xc0; 29])
}

fn probe(ic: &Harness, wasm: &[u8]) -> Principal {
    let id = ic.create_canister_with_settings(Some(controller()), None);
    ic.add_cycles(id, 1u128 << 60);
    ic.install_canister(id, wasm.to_vec(), Encode!().unwrap(), Some(controller()));
    id
}

fn update<R: for<'a> candid::utils::ArgumentDecoder<'a>>(ic: &Harness, id: Principal, method: &str, args: impl candid::utils::ArgumentEncoder) -> R {
    ic.update_candid(id, controller(), method, args).unwrap_or_else(|e| panic!("{method}: {e}"))
}

fn small_update_calls(wasm: &[u8]) {
    let ic = Harness::new();
    let id = probe(&ic, wasm);
    for _ in 0..200 {
        let _: (u64,) = update(&ic, id, "inc", ());
    }
    let n = 5_000;
    let started = Instant::now();
    for _ in 0..n {
        let _: (u64,) = update(&ic, id, "inc", ());
    }
    let per_call = started.elapsed().as_secs_f64() / n as f64;
    let metrics = ic.canister_metrics(id);
    println!(
        "small update call: {:.1} µs per call over {n} calls ({} instructions each, candid included)",
        per_call * 1e6,
        metrics.instructions / metrics.executions
    );
}

fn chunk_transfer(wasm: &[u8], total: u64) {
    let ic = Harness::new();
    let (source, sink) = (probe(&ic, wasm), probe(&ic, wasm));
    let step = 128 * MIB;
    let mut offset = 0;
    while offset < total {
        let len = step.min(total - offset);
        let () = update(&ic, source, "fill_stable", (offset, len, 7u8));
        offset += len;
    }
    // A chunk as large as the 2 MiB reply allows after the candid framing.
    let chunk = 2 * MIB - 64;
    let traffic_before = ic.traffic();
    let started = Instant::now();
    let (calls,): (u64,) = update(&ic, sink, "pull", (source, total, chunk));
    let elapsed = started.elapsed().as_secs_f64();
    let traffic = ic.traffic();
    assert_eq!(ic.get_stable_memory(sink)[..total as usize], ic.get_stable_memory(source)[..total as usize]);
    let moved = (traffic.response_bytes - traffic_before.response_bytes) as f64 / MIB as f64;
    println!(
        "2 MiB chunk transfer: {:.0} MiB in {calls} calls in {elapsed:.2} s = {:.0} MiB/s (stable -> heap -> reply -> heap -> stable)",
        moved,
        moved / elapsed
    );
}

fn rollback_of_one_page(wasm: &[u8]) {
    let ic = Harness::new();
    let id = probe(&ic, wasm);
    let (pages,): (u64,) = update(&ic, id, "grow_heap", (1024u64,));
    let mut offset = 0;
    while offset < 1024 * MIB {
        let () = update(&ic, id, "fill_stable", (offset, 128 * MIB, 1u8));
        offset += 128 * MIB;
    }
    let heap_mib = pages * 65536 / MIB;
    let before = ic.canister_metrics(id);
    let rounds = 200;
    for i in 0..rounds {
        // Writes one stable page and the heap pages the call itself needs, then traps.
        let result = ic.update_call(id, controller(), "set_and_trap", Encode!(&(i as u64), &ByteBuf::from(vec![1u8; 8]), &0u64).unwrap());
        assert!(result.is_err());
    }
    let m = ic.canister_metrics(id);
    let count = m.rollbacks - before.rollbacks;
    println!(
        "rollback: {:.1} µs per trapped message on a {heap_mib} MiB heap and {} MiB stable memory, {:.1} pages written on average",
        (m.rollback_nanos - before.rollback_nanos) as f64 / count as f64 / 1e3,
        ic.get_stable_memory(id).len() as u64 / MIB,
        (m.rolled_back_pages - before.rolled_back_pages) as f64 / count as f64,
    );
}

fn main() {
    let wasm = ic_harness::build::canister_wasm("harness-test-canisters", "probe");
    let started = Instant::now();
    ic_harness::compile(&wasm).unwrap();
    println!("compile probe canister ({} KiB): {:.2} s (cached per process afterwards)", wasm.len() / 1024, started.elapsed().as_secs_f64());
    small_update_calls(&wasm);
    chunk_transfer(&wasm, 256 * MIB);
    rollback_of_one_page(&wasm);
}
