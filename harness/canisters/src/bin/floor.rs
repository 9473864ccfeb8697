//! Floor: the least a transfer of stable memory between two canisters costs, the baseline of the
//! benchmark. The sending side does one stable read and one reply (or request) per chunk, the
//! receiving side one stable write; the bytes travel raw, with no encoding. One module plays
//! either side: `pull` fetches a peer's bytes in its replies (the direction of a snapshot, app
//! to vault), `push` sends this canister's bytes in its requests (the direction of a restore),
//! each with `in_flight` bounded-wait calls in flight, the next one started from the callback of
//! the last.
//!
//! Raw methods: `read` takes the offset and the length (each a little-endian u64) and replies
//! with those bytes of stable memory; `write` takes the offset and the bytes and writes them.

use std::cell::Cell;

use candid::Principal;
use harness_test_canisters::pseudo_random_fill;
use ic_cdk::call::Call;
use ic_cdk::update;

/// Bytes per call: a 2 MiB message less a page, room for the method name and the offset.
const CHUNK: u64 = 2 * 1024 * 1024 - 4096;
/// The largest message a canister may send or reply with (cross-subnet).
const MESSAGE_LIMIT: usize = 2 * 1024 * 1024;
const WASM_PAGE: u64 = 65536;
/// Bytes written per stable write while filling.
const FILL_STEP: usize = 1024 * 1024;

/// The end of `len` bytes from `offset`, which must fit in 64 bits.
fn end_of(offset: u64, len: u64) -> u64 {
    offset.checked_add(len).unwrap_or_else(|| ic_cdk::trap("offset + length overflows 64 bits"))
}

/// Grows stable memory to hold at least `end` bytes.
fn ensure_stable(end: u64) {
    let size = ic0::stable64_size() * WASM_PAGE;
    if end > size && ic0::stable64_grow((end - size).div_ceil(WASM_PAGE)) == u64::MAX {
        ic_cdk::trap("stable memory cannot grow");
    }
}

/// A vector of `len` bytes of stable memory from `offset`, after `prefix`.
fn stable_bytes(prefix: &[u8], offset: u64, len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(prefix.len() + len);
    bytes.extend_from_slice(prefix);
    ic0::stable64_read_uninit(&mut bytes.spare_capacity_mut()[..len], offset);
    // SAFETY: stable64_read_uninit wrote all `len` bytes after the prefix, or trapped.
    unsafe { bytes.set_len(prefix.len() + len) };
    bytes
}

/// The argument of a raw method, whole.
fn arg_bytes() -> Vec<u8> {
    let len = ic0::msg_arg_data_size();
    let mut arg = Vec::with_capacity(len);
    ic0::msg_arg_data_copy_uninit(&mut arg.spare_capacity_mut()[..len], 0);
    // SAFETY: msg_arg_data_copy_uninit wrote all `len` bytes, or trapped.
    unsafe { arg.set_len(len) };
    arg
}

/// The little-endian u64 at `at` of `bytes`.
fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// Fills `len` bytes of stable memory from `offset` with a pseudo-random stream of `seed`
/// (a message may dirty at most 2 GiB: larger states take several calls).
#[update]
fn fill(offset: u64, len: u64, seed: u64) {
    let end = end_of(offset, len);
    ensure_stable(end);
    let mut buf = vec![0; FILL_STEP];
    let mut at = offset;
    while at < end {
        let n = (end - at).min(FILL_STEP as u64) as usize;
        pseudo_random_fill(&mut buf[..n], seed ^ at);
        ic0::stable64_write(&buf[..n], at);
        at += n as u64;
    }
}

/// Raw `read(offset, len)`: one stable read, one reply.
#[unsafe(export_name = "canister_update read")]
extern "C" fn read() {
    let mut arg = [0; 16];
    if ic0::msg_arg_data_size() != arg.len() {
        ic_cdk::trap("read takes an offset and a length, each a little-endian u64");
    }
    ic0::msg_arg_data_copy(&mut arg, 0);
    let (Some(offset), Some(len)) = (u64_at(&arg, 0), u64_at(&arg, 8)) else {
        ic_cdk::trap("read takes an offset and a length, each a little-endian u64")
    };
    let len =
        usize::try_from(len).ok().filter(|&len| len <= MESSAGE_LIMIT).unwrap_or_else(|| ic_cdk::trap("read replies with at most 2 MiB"));
    ic0::msg_reply_data_append(&stable_bytes(&[], offset, len));
    ic0::msg_reply();
}

/// Raw `write(offset, bytes)`: one stable write, an empty reply.
#[unsafe(export_name = "canister_update write")]
extern "C" fn write() {
    let arg = arg_bytes();
    let Some(offset) = u64_at(&arg, 0) else { ic_cdk::trap("write takes an offset (a little-endian u64), then the bytes") };
    let bytes = &arg[8..];
    ensure_stable(end_of(offset, bytes.len() as u64));
    ic0::stable64_write(bytes, offset);
    ic0::msg_reply();
}

/// Moves `len` bytes from `offset` chunk by chunk, `in_flight` chunks at a time: each of
/// `in_flight` workers moves a chunk with `move_chunk` and, when it is done, takes the next.
/// Returns the calls made, or why one failed.
async fn transfer<F, M>(offset: u64, len: u64, in_flight: u32, move_chunk: M) -> Result<u64, String>
where
    M: Fn(u64, usize) -> F,
    F: Future<Output = Result<(), String>>,
{
    let end = end_of(offset, len);
    let next = Cell::new(offset);
    let calls = Cell::new(0u64);
    let worker = || async {
        while next.get() < end {
            let at = next.get();
            let n = CHUNK.min(end - at);
            next.set(at + n);
            move_chunk(at, n as usize).await?;
            calls.set(calls.get() + 1);
        }
        Ok(())
    };
    let workers = futures::future::join_all((0..in_flight.max(1)).map(|_| worker())).await;
    workers.into_iter().collect::<Result<(), String>>()?;
    Ok(calls.get())
}

/// Copies `len` bytes of `peer`'s stable memory from `offset` into this canister's, in replies
/// to `read`, `in_flight` calls at a time; returns the calls made.
#[update]
async fn pull(peer: Principal, offset: u64, len: u64, in_flight: u32) -> Result<u64, String> {
    ensure_stable(end_of(offset, len));
    transfer(offset, len, in_flight, |at, n| async move {
        let arg = [at.to_le_bytes(), (n as u64).to_le_bytes()].concat();
        let reply = Call::bounded_wait(peer, "read").take_raw_args(arg).await.map_err(|e| e.to_string())?;
        ic0::stable64_write(reply.as_ref(), at);
        Ok(())
    })
    .await
}

/// Copies `len` bytes of this canister's stable memory from `offset` into `peer`'s, in requests
/// to `write`, `in_flight` calls at a time; returns the calls made.
#[update]
async fn push(peer: Principal, offset: u64, len: u64, in_flight: u32) -> Result<u64, String> {
    transfer(offset, len, in_flight, |at, n| async move {
        let request = stable_bytes(&at.to_le_bytes(), at, n);
        Call::bounded_wait(peer, "write").take_raw_args(request).await.map_err(|e| e.to_string())?;
        Ok(())
    })
    .await
}

fn main() {}
