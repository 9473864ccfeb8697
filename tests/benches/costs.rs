//! What snapshots and restores cost as the state grows, for both kinds of state, measured on
//! the embedded IC running the real canisters. For each size it prints, and writes into
//! `docs/benchmarks.md` and `docs/benchmarks.svg`: wall time, instructions per MiB on the app
//! side and on the vault side, inter-canister calls and their mean payload, cycles per GiB (the
//! 13-node application subnet's prices), the process's peak memory, and the snapshot's wall time
//! over that of a plain in-process copy of the same number of bytes, measured in the same run.
//!
//!
//! Two baselines come from the same run: the *floor* pair (`harness/canisters` `floor`), two bare
//! canisters that move the same number of bytes with nothing but one stable read and one reply
//! (or request) per chunk and one stable write on the other side, in both directions; and what a
//! content hash costs per byte in a canister (`hashes`: SHA-256, BLAKE3).
//!
//! Run: `cargo bench -p vault-tests --bench costs` (1 MiB to 1 GiB; add `-- --with-4gib` for a
//! 4 GiB stable-memory snapshot and restore, and a 4 GiB large restore; `-- --quick` for 1 and
//! 16 MiB only, `-- --sizes 16,256` for the sizes listed, `-- --baselines-only 256,1024` for
//! the floor at those sizes and the hashes only, all three without writing the docs;
//! `-- --in-flight K` for the floor's calls in flight, 16 unless told).
//!
//! A section measures what the client library's `VaultMemory` costs the app's own work:
//! instructions per insert, get and overwrite of the btree example app on `DefaultMemoryImpl`,
//! on `VaultMemory`, and on `VaultMemory` while a dump is open (`-- --app-ops` for it alone,
//! without writing the docs).
//!
//! The last, *large restores*: a btree app's stable-memory snapshot of 256 MiB and 1 GiB (and
//! 4 GiB with `--with-4gib`) restored into a fresh clone that serves updates while the image
//! stages; per row the restore's commit message's instructions and stable pages dirtied (also
//! per GiB), the staging's wall time and rounds, the updates served and the peak memory
//! (`-- --large-restores` for it alone, without writing the docs).
//!
//! *Incremental snapshots*: a btree app of 1 GiB of stable memory snapshot first, then after
//! 0.1%, 1% and 10% of its entries updated and 1% appended, each snapshot incremental against
//! the one before once the vault takes it so; per row whether it was, its chunk bytes and
//! cycles (also as shares of the first's), rounds and instructions (`-- --incremental` for it
//! alone, with `--quick` at 64 MiB, without writing the docs).
//!
//! *Native capture*: canisters without the library, on the heap and in stable memory, 1 MiB to
//! 1 GiB, snapshotted and restored through native snapshots, with the app's downtime (`-- --native`
//! for it alone, `--quick` for 1 and 16 MiB, without writing the docs).
//!
//! *Incremental serde snapshots*: a notes app of 1 GiB of MessagePack (notes of 1,000 letters)
//! snapshot first, then after 0.1%, 1% and 10% of its notes rewritten, each a little longer or
//! shorter, with the same columns (`-- --serde-incremental` for it alone, with `--quick` at
//! 64 MiB, without writing the docs).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use candid::Principal;
use harness_test_canisters::hashes::{Algorithm, Hashed};
use ic_harness::{ExecutionRecord, Harness, IcBackend, SubnetId};
use serde_bytes::ByteBuf;
use sha2::Digest;
use vault_api::service::{JobInfo, JobPhase};
use vault_tests::btree::{MAX_BATCH, OpsCost, VALUE_SIZE};
use vault_tests::cost::{Cost, restore_commit};
use vault_tests::*;

const MIB: u64 = 1 << 20;
/// The inter-canister payload limit (cross-subnet), which a chunk call should nearly fill.
const PAYLOAD_LIMIT: u64 = 2 * MIB;

struct Measured {
    /// The kind of state ([`kind_name`]), or [`FLOOR`].
    state: &'static str,
    mib: u64,
    op: &'static str,
    state_bytes: u64,
    cost: Cost,
    peak_rss: u64,
    copy: Duration,
}

fn kind_name(kind: AppKind) -> &'static str {
    match kind {
        AppKind::Notes => "serde",
        AppKind::Ledger => "stable memory",
    }
}

/// The state column of the floor pair's rows.
const FLOOR: &str = "floor";
/// The floor canister's bytes per call: a 2 MiB message less a page.
const FLOOR_CHUNK: u64 = 2 * MIB - 4096;
/// Bytes the floor's source fills per message (a message may dirty at most 2 GiB).
const FLOOR_FILL_STEP: u64 = 1024 * MIB;
/// Bytes each hash is measured over.
const HASH_BYTES: u64 = 8 * MIB;

/// The process's peak resident memory since the last reset, in bytes (Linux: VmHWM, reset
/// through clear_refs; elsewhere the peak since the process started).
fn peak_rss() -> u64 {
    #[cfg(target_os = "linux")]
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:"))
    {
        return line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).unwrap_or(0) * 1024;
    }
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    let max = unsafe { usage.assume_init() }.ru_maxrss as u64;
    if cfg!(target_os = "macos") { max } else { max * 1024 }
}

fn reset_peak_rss() {
    #[cfg(target_os = "linux")]
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Time to copy `bytes` bytes from one resident buffer into another, in this process.
fn plain_copy(bytes: u64) -> Duration {
    let source = vec![0xa5u8; bytes as usize];
    // Written once first, so the copy does not count the kernel's first touch of its pages.
    let mut target = vec![1u8; bytes as usize];
    let started = Instant::now();
    target.copy_from_slice(&source);
    let elapsed = started.elapsed();
    std::hint::black_box(&target);
    elapsed
}

/// Fills an app of `kind` with `mib` MiB of blobs, snapshots it and restores the snapshot into
/// a clone.
fn measure(kind: AppKind, mib: u64) -> Vec<Measured> {
    let env = Env::new();
    let app = env.registered(kind, manual(), keep(1));
    let client = env.app(app);
    let blob = (mib * MIB).min(32 * MIB);
    for key in 0..(mib * MIB).div_ceil(blob) {
        client.put_blob(key, blob, key as u8);
    }
    let copy = plain_copy(mib * MIB);
    reset_peak_rss();
    let (job, cost) = env.measure(&[app], || env.snapshot(app));
    assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
    let snapshot = Measured { state: kind_name(kind), mib, op: "snapshot", state_bytes: job.bytes_total, cost, peak_rss: peak_rss(), copy };

    let clone = env.registered(kind, manual(), keep(1));
    reset_peak_rss();
    let (restored, cost) = env.measure(&[clone], || env.restore(app, job.snapshot_id.unwrap(), Some(clone)));
    assert_eq!(restored.phase, JobPhase::Succeeded, "{restored:?}");
    let restore = Measured { state: kind_name(kind), mib, op: "restore", state_bytes: job.bytes_total, cost, peak_rss: peak_rss(), copy };
    vec![snapshot, restore]
}

/// The floor pair moving `mib` MiB: pulled in replies (as a snapshot moves state from the app
/// to the vault) and pushed in requests (as a restore moves it back), `in_flight` calls at a
/// time. In its rows, the app side is the canister whose memory is copied out by a snapshot or
/// into by a restore, the vault side the one that drives the transfer.
fn measure_floor(mib: u64, in_flight: u32) -> Vec<Measured> {
    let ic = Harness::builder().with_subnets(2).with_max_rounds_per_call(u32::MAX).build();
    let wasm = ic_harness::build::canister_wasm("harness-test-canisters", "floor");
    // As the vault's benchmark places them: the driving side on subnet 0, the app side on 1.
    let floor = |subnet| {
        let id = ic.create_canister_on_subnet(Some(owner()), None, SubnetId(subnet));
        ic.install_canister(id, wasm.clone(), candid::encode_args(()).unwrap(), Some(owner()));
        id
    };
    let (app, vault, clone) = (floor(1), floor(0), floor(1));
    let bytes = mib * MIB;
    for offset in (0..bytes).step_by(FLOOR_FILL_STEP as usize) {
        let () = ic.update_candid(app, owner(), "fill", (offset, FLOOR_FILL_STEP.min(bytes - offset), 7u64)).unwrap();
    }
    let copy = plain_copy(bytes);
    let run = |op: &'static str, app: Principal, method: &str, peer: Principal| {
        reset_peak_rss();
        let (calls, cost) = measure_canisters(&ic, app, vault, || {
            let (calls,): (Result<u64, String>,) = ic.update_candid(vault, owner(), method, (peer, 0u64, bytes, in_flight)).unwrap();
            calls
        });
        assert_eq!(calls, Ok(bytes.div_ceil(FLOOR_CHUNK)), "floor {op} of {mib} MiB");
        Measured { state: FLOOR, mib, op, state_bytes: bytes, cost, peak_rss: peak_rss(), copy }
    };
    let rows = vec![run("snapshot", app, "pull", app), run("restore", clone, "push", clone)];
    assert!(ic.get_stable_memory(vault)[..bytes as usize] == ic.get_stable_memory(clone)[..bytes as usize], "the floor restored other bytes");
    rows
}

/// Runs `f` and measures what it cost `app` and `vault`: every inter-canister call counts as a
/// chunk call (the floor's only calls carry the bytes).
fn measure_canisters<R>(ic: &Harness, app: Principal, vault: Principal, f: impl FnOnce() -> R) -> (R, Cost) {
    let (app0, vault0, traffic0, rounds0) = (ic.canister_metrics(app), ic.canister_metrics(vault), ic.traffic(), ic.rounds());
    let started = Instant::now();
    let result = f();
    let wall = started.elapsed();
    let (app1, vault1, traffic1, rounds1) = (ic.canister_metrics(app), ic.canister_metrics(vault), ic.traffic(), ic.rounds());
    let calls = traffic1.requests - traffic0.requests;
    let bytes = traffic1.request_bytes + traffic1.response_bytes - traffic0.request_bytes - traffic0.response_bytes;
    let cost = Cost {
        wall,
        rounds: rounds1 - rounds0,
        app_instructions: app1.instructions - app0.instructions,
        vault_instructions: vault1.instructions - vault0.instructions,
        calls,
        bytes,
        chunk_calls: calls,
        chunk_bytes: bytes,
        app_cycles: app1.cycles_consumed - app0.cycles_consumed,
        vault_cycles: vault1.cycles_consumed - vault0.cycles_consumed,
    };
    (result, cost)
}


/// A content hash's cost per byte in a canister.
struct HashCost {
    name: String,
    per_byte: f64,
}

/// What hashing [`HASH_BYTES`] costs in the `hashes` canister, per byte, for SHA-256 and BLAKE3
/// (its backend as the module was built: wasm SIMD with simd128, portable without).
fn measure_hashes() -> Vec<HashCost> {
    let ic = Harness::new();
    let id = ic.create_canister_with_settings(Some(owner()), None);
    ic.install_canister(id, ic_harness::build::canister_wasm("harness-test-canisters", "hashes"), candid::encode_args(()).unwrap(), Some(owner()));
    let (simd128,): (bool,) = ic.query_candid(id, owner(), "simd128", ()).unwrap();
    let blake3 = if simd128 { "BLAKE3 (blake3 1.8, `wasm32_simd`, built with simd128)" } else { "BLAKE3 (blake3 1.8, portable, built without simd128)" };
    let hash = |algorithm: Algorithm| {
        let (hashed,): (Hashed,) = ic.update_candid(id, owner(), "hash", (algorithm, HASH_BYTES, 1u64)).unwrap();
        hashed
    };
    let sha256 = hash(Algorithm::Sha256);
    // The digest is checked on the first MiB (a reply holds at most 2 MiB): the same bytes, hashed natively.
    let (data,): (ByteBuf,) = ic.query_candid(id, owner(), "data", (MIB, 1u64)).unwrap();
    let (first,): (Hashed,) = ic.update_candid(id, owner(), "hash", (Algorithm::Sha256, MIB, 1u64)).unwrap();
    assert_eq!(first.digest.as_slice(), sha2::Sha256::digest(&data).as_slice(), "SHA-256 in the canister");
    vec![
        HashCost { name: "SHA-256 (sha2 0.10)".into(), per_byte: sha256.instructions as f64 / HASH_BYTES as f64 },
        HashCost { name: blake3.into(), per_byte: hash(Algorithm::Blake3).instructions as f64 / HASH_BYTES as f64 },
    ]
}

const HASH_HEADER: &str = "| hash | instructions per byte |\n|---|---|";

fn hash_row(h: &HashCost) -> String {
    format!("| {} | {:.1} |", h.name, h.per_byte)
}

fn per_mib(instructions: u64, bytes: u64) -> f64 {
    instructions as f64 / (bytes as f64 / MIB as f64)
}

fn row(m: &Measured) -> String {
    let c = &m.cost;
    let gib = m.state_bytes as f64 / (1024.0 * MIB as f64);
    format!(
        "| {} | {} MiB | {:.1} MiB | {} | {:.2} s | {} ({:.0}/GiB) | {:.2} M | {:.2} M | {} ({}) | {:.2} MiB ({:.0}%) | {:.2} MiB | {:.3} T | {:.0} MiB | {:.0}× |",
        m.state,
        m.mib,
        m.state_bytes as f64 / MIB as f64,
        m.op,
        c.wall.as_secs_f64(),
        c.rounds,
        c.rounds as f64 / gib,
        per_mib(c.app_instructions, m.state_bytes) / 1e6,
        per_mib(c.vault_instructions, m.state_bytes) / 1e6,
        c.calls,
        c.chunk_calls,
        c.mean_chunk_payload() as f64 / MIB as f64,
        100.0 * c.mean_chunk_payload() as f64 / PAYLOAD_LIMIT as f64,
        c.mean_payload() as f64 / MIB as f64,
        (c.app_cycles + c.vault_cycles) as f64 / gib / 1e12,
        m.peak_rss as f64 / MIB as f64,
        c.wall.as_secs_f64() / m.copy.as_secs_f64().max(1e-9),
    )
}

const HEADER: &str = "| state | data put | snapshot | operation | wall time | rounds (per GiB) | app instr/MiB | vault instr/MiB | calls (chunk calls) | mean payload per chunk call (of 2 MiB) | mean payload per call | cycles/GiB (app + vault) | peak memory | wall time / plain copy |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

/// A line chart of instructions per MiB (app and vault together) against the state's size.
fn svg(rows: &[Measured]) -> String {
    let (w, h, left, bottom, top, right) = (720.0, 420.0, 70.0, 50.0, 30.0, 200.0);
    let sizes: Vec<u64> = {
        let mut s: Vec<u64> = rows.iter().map(|m| m.mib).collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    let value = |m: &Measured| per_mib(m.cost.app_instructions + m.cost.vault_instructions, m.state_bytes) / 1e6;
    let max = rows.iter().map(value).fold(1.0f64, f64::max) * 1.15;
    let x = |mib: u64| {
        let i = sizes.iter().position(|&s| s == mib).unwrap_or(0) as f64;
        left + i * (w - left - right) / (sizes.len().max(2) - 1) as f64
    };
    let y = |v: f64| h - bottom - v / max * (h - bottom - top);
    let mut out = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    let _ = writeln!(out, "<text x=\"{left}\" y=\"18\" font-size=\"14\">Instructions per MiB (app + vault), millions, by state size</text>");
    let _ = writeln!(out, "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>", h - bottom, w - right, h - bottom);
    let _ = writeln!(out, "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>", h - bottom);
    for &s in &sizes {
        let label = if s >= 1024 { format!("{} GiB", s / 1024) } else { format!("{s} MiB") };
        let _ = writeln!(out, "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{label}</text>", x(s), h - bottom + 18.0);
    }
    for i in 0..=4 {
        let v = max * i as f64 / 4.0;
        let _ = writeln!(out, "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.0}</text>", left - 6.0, y(v) + 4.0);
        let _ = writeln!(out, "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"#ddd\"/>", y(v), w - right);
    }
    let series = [
        (kind_name(AppKind::Ledger), "snapshot", "#1f77b4"),
        (kind_name(AppKind::Ledger), "restore", "#aec7e8"),
        (kind_name(AppKind::Notes), "snapshot", "#d62728"),
        (kind_name(AppKind::Notes), "restore", "#ff9896"),
        (FLOOR, "snapshot", "#555555"),
        (FLOOR, "restore", "#aaaaaa"),
    ];
    for (n, (state, op, color)) in series.iter().enumerate() {
        let points: Vec<String> = rows
            .iter()
            .filter(|m| m.state == *state && m.op == *op)
            .map(|m| format!("{:.1},{:.1}", x(m.mib), y(value(m))))
            .collect();
        let _ = writeln!(out, "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>", points.join(" "));
        for p in &points {
            let (px, py) = p.split_once(',').unwrap();
            let _ = writeln!(out, "<circle cx=\"{px}\" cy=\"{py}\" r=\"3\" fill=\"{color}\"/>");
        }
        let ly = top + 20.0 + n as f64 * 18.0;
        let _ = writeln!(out, "<line x1=\"{0}\" y1=\"{ly}\" x2=\"{1}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"2\"/>", w - right + 15.0, w - right + 35.0);
        let _ = writeln!(out, "<text x=\"{}\" y=\"{}\">{state} {op}</text>", w - right + 40.0, ly + 4.0);
    }
    out.push_str("</svg>\n");
    out
}

/// Entries the btree app holds before its operations are measured (about 100 MiB of values, the
/// image an open dump freezes), and operations of each kind measured.
const APP_OPS_ENTRIES: u64 = 100_000;
/// The job the vault's dump of the btree app is opened for.
const APP_OPS_JOB: u64 = 1;

/// What the btree app's own operations cost on one memory.
struct AppOps {
    memory: &'static str,
    /// The most this memory may cost per insert and per get, as a multiple of
    /// `DefaultMemoryImpl`'s (none for `DefaultMemoryImpl` itself).
    bar: Option<f64>,
    cost: OpsCost,
}

/// The btree app's operations ([`APP_OPS_ENTRIES`] inserts of fresh keys into a map of as many
/// entries, their gets, as many overwrites of entries present before each message) on `DefaultMemoryImpl` (the
/// baseline canister), on `VaultMemory` with no dump open, and on `VaultMemory` of an app
/// registered with the vault while a dump is open: opened by a `vault_dump_begin` call as the
/// vault once the map is filled (no job of the vault's then moves its chunks), and left open
/// while the operations run, so their writes to the frozen image pay for keeping it.
fn measure_app_ops() -> Vec<AppOps> {
    let env = Env::new();
    let measured = |memory: &'static str, bar: Option<f64>, app: Principal, open_dump: bool| {
        let client = env.btree(app);
        client.fill(0, APP_OPS_ENTRIES);
        if open_dump {
            let manifest = env.open_dump_as_vault(app, APP_OPS_JOB).expect("the dump opens");
            assert!(manifest.size >= APP_OPS_ENTRIES * VALUE_SIZE as u64, "the dump freezes the filled map: {manifest:?}");
        }
        let cost = client.measure_ops(APP_OPS_ENTRIES);
        if open_dump {
            assert!(env.dump_chunk_as_vault(app, APP_OPS_JOB, 0).is_ok(), "the dump stayed open while the operations ran");
        }
        AppOps { memory, bar, cost }
    };
    let registered = env.deploy_btree(Some(env.vault));
    env.vault().register(registered, manual(), keep(1)).expect("register");
    vec![
        measured("`DefaultMemoryImpl`", None, env.deploy_btree_baseline(), false),
        measured("`VaultMemory`, no dump open", Some(1.3), env.deploy_btree(None), false),
        measured("`VaultMemory`, dump open", Some(2.0), registered, true),
    ]
}

const APP_OPS_HEADER: &str = "| memory | operations of each kind | instructions per insert | per get | per overwrite | bar: insert and get at most |\n|---|---|---|---|---|---|";

/// The rows of the app-ops table, each operation's instructions also as a multiple of
/// `DefaultMemoryImpl`'s (the first row).
fn app_ops_rows(rows: &[AppOps]) -> Vec<String> {
    let per_op = |instructions: u64, cost: &OpsCost| instructions as f64 / cost.count.max(1) as f64;
    let phases = |c: &OpsCost| [per_op(c.insert_instructions, c), per_op(c.get_instructions, c), per_op(c.overwrite_instructions, c)];
    let base = phases(&rows[0].cost);
    rows.iter()
        .map(|r| {
            let own = phases(&r.cost);
            let ratios: Vec<f64> = own.iter().zip(base).map(|(own, base)| own / base.max(1.0)).collect();
            let cells: Vec<String> = own.iter().zip(&ratios).map(|(own, ratio)| format!("{own:.0} ({ratio:.2}×)")).collect();
            let bar = r.bar.map_or_else(String::new, |bar| {
                let met = if ratios[..2].iter().all(|ratio| *ratio <= bar) { "met" } else { "missed" };
                format!("{bar:.1}×: {met}")
            });
            format!("| {} | {} | {} | {} | {} | {bar} |", r.memory, r.cost.count, cells[0], cells[1], cells[2])
        })
        .collect()
}

/// The clone's own entries before a large restore (at keys after the source's), and the entries
/// each of its updates overwrites while the restore stages.
const CLONE_ENTRIES: u64 = 1_000;
const CLONE_OVERWRITES: u64 = 10;
/// What one update may do: instructions, and stable memory dirtied.
const UPDATE_INSTRUCTIONS: f64 = 40e9;
const UPDATE_DIRTY_PAGES: f64 = (2u64 << 30) as f64 / 4096.0;
/// The most the client library's `MemoryManager` holds, the size the per-GiB figures are
/// extrapolated to.
const MANAGER_GIB: f64 = 256.0;

/// A stable-memory restore of the btree app into a fresh clone that serves updates while the
/// image stages.
struct LargeRestore {
    mib: u64,
    image_bytes: u64,
    /// The clone's `vault_restore_commit` execution.
    commit: ExecutionRecord,
    staging: Duration,
    staging_rounds: u64,
    /// Updates the clone served while the restore staged.
    updates: u64,
    peak_rss: u64,
}

/// Fills a btree app until its stable memory holds `mib` MiB, snapshots it and restores the
/// snapshot into a fresh clone of [`CLONE_ENTRIES`] entries that overwrites some of them
/// between the rounds of the restore's staging; checks that the clone then holds the snapshot's
/// map.
fn measure_large_restore(mib: u64) -> LargeRestore {
    let env = Env::new();
    let registered = || {
        let app = env.deploy_btree(Some(env.vault));
        env.vault().register(app, manual(), keep(1)).expect("register");
        app
    };
    let app = registered();
    let client = env.btree(app);
    let mut entries = 0;
    while env.stable_memory_bytes(app) < mib * MIB {
        entries = client.fill(entries, MAX_BATCH);
    }
    let digest = client.digest();
    let job = env.snapshot(app);
    assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");

    let clone = registered();
    let served_clone = env.btree(clone);
    served_clone.fill(entries, CLONE_ENTRIES);
    reset_peak_rss();
    env.ic.log_executions(true);
    let restore = env.vault().restore(app, job.snapshot_id.unwrap(), Some(clone)).expect("restore");
    let served = env.finish_job_serving(restore.id, 100_000, |n| served_clone.update_random(n, CLONE_OVERWRITES));
    let log = env.ic.take_execution_log();
    env.ic.log_executions(false);
    let peak_rss = peak_rss();
    assert_eq!(served.job.phase, JobPhase::Succeeded, "{:?}", served.job);
    assert!(served.while_transferring > 0, "the clone served updates while the chunks moved: {served:?}");
    assert!(served_clone.digest() == digest, "the clone holds the snapshot's map after the commit");
    let commit = restore_commit(&log, clone).expect("the clone committed").clone();
    LargeRestore { mib, image_bytes: job.bytes_total, commit, staging: served.staging_wall, staging_rounds: served.staging_rounds, updates: served.calls, peak_rss }
}

const LARGE_RESTORE_HEADER: &str = "| stable memory filled to | image | commit: instructions (per GiB) | commit: stable pages dirtied (per GiB) | per GiB × 256: of an update's 40 B instructions, of its 2 GiB dirtied | staging: wall time, rounds | updates the clone served while staging | peak memory |\n|---|---|---|---|---|---|---|---|";

fn large_restore_row(r: &LargeRestore) -> String {
    let gib = r.image_bytes as f64 / (1024.0 * MIB as f64);
    let (instructions, pages) = (r.commit.instructions as f64 / gib, r.commit.stable_pages_dirtied as f64 / gib);
    format!(
        "| {} MiB | {:.1} MiB | {:.2} M ({:.2} M/GiB) | {} ({:.1}/GiB) | {:.3}%, {:.3}% | {:.2} s, {} | {} | {:.0} MiB |",
        r.mib,
        r.image_bytes as f64 / MIB as f64,
        r.commit.instructions as f64 / 1e6,
        instructions / 1e6,
        r.commit.stable_pages_dirtied,
        pages,
        100.0 * instructions * MANAGER_GIB / UPDATE_INSTRUCTIONS,
        100.0 * pages * MANAGER_GIB / UPDATE_DIRTY_PAGES,
        r.staging.as_secs_f64(),
        r.staging_rounds,
        r.updates,
        r.peak_rss as f64 / MIB as f64,
    )
}

/// The large restores at 256 MiB and 1 GiB, and at 4 GiB with `with_4gib`, each row printed as
/// it is measured.
fn measure_large_restores(with_4gib: bool) -> Vec<LargeRestore> {
    println!("\n{LARGE_RESTORE_HEADER}");
    let sizes: &[u64] = if with_4gib { &[256, 1024, 4096] } else { &[256, 1024] };
    sizes
        .iter()
        .map(|&mib| {
            let measured = measure_large_restore(mib);
            println!("{}", large_restore_row(&measured));
            measured
        })
        .collect()
}

/// The btree app's stable memory in the incremental-snapshot section, and with `--quick`.
const INCREMENTAL_MIB: u64 = 1024;
const INCREMENTAL_QUICK_MIB: u64 = 64;
/// Snapshots the incremental section's app keeps: all of them, so that what each adds to the
/// vault's storage shows.
const INCREMENTAL_KEEP: u32 = 6;

/// A change the btree app makes before one of the incremental section's snapshots, as a share
/// of its entries in per mille.
#[derive(Clone, Copy)]
enum Change {
    /// Overwrites at pseudo-random keys (`update_random`).
    Update { per_mille: u64 },
    /// Inserts after the largest key (`append`).
    Append { per_mille: u64 },
    /// Rewrites notes at pseudo-random ids, each up to 32 bytes longer or shorter (`edit_random`).
    Rewrite { per_mille: u64 },
}

impl Change {
    fn per_mille(self) -> u64 {
        match self {
            Change::Update { per_mille } | Change::Append { per_mille } | Change::Rewrite { per_mille } => per_mille,
        }
    }

    fn describe(self) -> String {
        let percent = self.per_mille() as f64 / 10.0;
        match self {
            Change::Update { .. } => format!("{percent}% of the entries updated"),
            Change::Append { .. } => format!("{percent}% new entries appended"),
            Change::Rewrite { .. } => format!("{percent}% of the notes rewritten"),
        }
    }
}

/// The most a snapshot may move and cost, in percent of the first (full) snapshot's chunk bytes
/// and cycles.
#[derive(Clone, Copy)]
struct Bar {
    bytes_percent: f64,
    cycles_percent: Option<f64>,
}

/// The changes made in turn, each followed by a snapshot, with the bar that snapshot must meet.
const INCREMENTAL_CHANGES: [(Change, Option<Bar>); 4] = [
    (Change::Update { per_mille: 1 }, None),
    (Change::Update { per_mille: 10 }, Some(Bar { bytes_percent: 8.0, cycles_percent: Some(10.0) })),
    (Change::Update { per_mille: 100 }, None),
    (Change::Append { per_mille: 10 }, Some(Bar { bytes_percent: 3.0, cycles_percent: None })),
];

/// The incremental section: the app's stable memory and entries when first snapshot, and the
/// snapshots in turn.
struct Incremental {
    mib: u64,
    entries: u64,
    rows: Vec<IncrementalSnapshot>,
}

/// One snapshot of the incremental section.
struct IncrementalSnapshot {
    /// What changed since the snapshot before; none for the first.
    change: Option<Change>,
    bar: Option<Bar>,
    /// Whether the vault took it incremental against the snapshot before.
    incremental: bool,
    cost: Cost,
    /// Bytes the app's snapshots hold in the vault after it, each chunk once (retention keeps
    /// every snapshot of the section, so the growth is what this one added).
    stored_bytes: u64,
}

/// Whether the vault took `job`'s snapshot incremental: the job's note on opening the dump names
/// the snapshot it is incremental against.
fn taken_incremental(job: &JobInfo) -> bool {
    job.notes.iter().any(|note| note.contains("incremental against snapshot"))
}

/// Fills a btree app until its stable memory holds `mib` MiB and snapshots it; then for each of
/// [`INCREMENTAL_CHANGES`] makes the change and snapshots it again; each snapshot measured and
/// its row printed as it is.
fn measure_incremental(mib: u64) -> Incremental {
    let env = Env::new();
    let app = env.deploy_btree(Some(env.vault));
    env.vault().register(app, manual(), keep(INCREMENTAL_KEEP)).expect("register");
    let client = env.btree(app);
    let mut filled = 0;
    while env.stable_memory_bytes(app) < mib * MIB {
        filled = client.fill(filled, MAX_BATCH);
    }
    let mut entries = filled;
    println!("\nA btree app of {mib} MiB of stable memory ({filled} entries of {VALUE_SIZE} bytes), snapshot after snapshot:\n\n{INCREMENTAL_HEADER}");
    let rows = snapshot_after_each(&env, app, &INCREMENTAL_CHANGES, |seed, change| {
        let count = (entries * change.per_mille() / 1000).max(1);
        match change {
            Change::Update { .. } => client.update_random(seed as u64, count),
            Change::Append { .. } => entries = client.append(count),
            Change::Rewrite { .. } => unreachable!("the btree app has no notes"),
        }
    });
    Incremental { mib, entries: filled, rows }
}

/// Snapshots `app`, then again after each of `changes` in turn (`make` makes the `i`-th), each
/// snapshot measured and its row printed as it is.
fn snapshot_after_each(env: &Env, app: Principal, changes: &[(Change, Option<Bar>)], mut make: impl FnMut(usize, Change)) -> Vec<IncrementalSnapshot> {
    let snapshot = |change: Option<Change>, bar: Option<Bar>| {
        let (job, cost) = env.measure(&[app], || env.snapshot(app));
        assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
        let info = env.vault().app_info(app).expect("app info");
        let stored_bytes = info.stored_bytes.expect("this vault counts the bytes an app's snapshots hold");
        IncrementalSnapshot { change, bar, incremental: taken_incremental(&job), cost, stored_bytes }
    };
    let full = snapshot(None, None);
    println!("{}", incremental_row(&full, &full, 0));
    let mut rows = vec![full];
    for (i, &(change, bar)) in changes.iter().enumerate() {
        make(i, change);
        let measured = snapshot(Some(change), bar);
        println!("{}", incremental_row(&measured, &rows[0], rows.last().map_or(0, |before| before.stored_bytes)));
        rows.push(measured);
    }
    rows
}

/// The notes app's MessagePack in the serde incremental section, and with `--quick`.
const SERDE_INCREMENTAL_MIB: u64 = 1024;
const SERDE_INCREMENTAL_QUICK_MIB: u64 = 64;
/// Letters of a note's body in the serde incremental section.
const NOTE_BODY: u64 = 1_000;
/// Notes a fill adds per update.
const NOTES_PER_UPDATE: u64 = 50_000;

/// The serde section's changes in turn, each followed by a snapshot, with the bar that snapshot
/// must meet.
const SERDE_CHANGES: [(Change, Option<Bar>); 3] = [
    (Change::Rewrite { per_mille: 1 }, None),
    (Change::Rewrite { per_mille: 10 }, Some(Bar { bytes_percent: 5.0, cycles_percent: None })),
    (Change::Rewrite { per_mille: 100 }, None),
];

/// Fills a notes app with notes of [`NOTE_BODY`] letters until its MessagePack is `mib` MiB and
/// snapshots it; then for each of [`SERDE_CHANGES`] rewrites that share of its notes and
/// snapshots it again; each snapshot measured and its row printed as it is.
fn measure_serde_incremental(mib: u64) -> Incremental {
    let env = Env::new();
    let app = env.registered(AppKind::Notes, manual(), keep(INCREMENTAL_KEEP));
    let client = env.app(app);
    // A note's MessagePack: its id, its title and its body, with their field names.
    let notes = mib * MIB / (NOTE_BODY + 30);
    let mut held = 0;
    while held < notes {
        held = client.update::<_, (u64,)>("add_notes", (NOTES_PER_UPDATE.min(notes - held), NOTE_BODY, 1u64)).0;
    }
    println!("\nA notes app of {notes} notes of {NOTE_BODY} letters (about {mib} MiB of MessagePack), snapshot after snapshot:\n\n{INCREMENTAL_HEADER}");
    let rows = snapshot_after_each(&env, app, &SERDE_CHANGES, |seed, change| {
        let count = (notes * change.per_mille() / 1000).max(1);
        assert_eq!(client.update::<_, (u64,)>("edit_random", (count, seed as u64 + 1)).0, count);
    });
    Incremental { mib, entries: notes, rows }
}

/// The table of an incremental section, each row's storage growth over the row before.
fn incremental_table(md: &mut String, section: &Incremental) {
    let _ = writeln!(md, "{INCREMENTAL_HEADER}");
    let mut stored_before = 0;
    for s in &section.rows {
        let _ = writeln!(md, "{}", incremental_row(s, &section.rows[0], stored_before));
        stored_before = s.stored_bytes;
    }
}

const INCREMENTAL_HEADER: &str = "| change before the snapshot | snapshot | chunk bytes (of the first's) | cycles, app + vault (of the first's) | stored in the vault: growth (of the first's) | rounds | app instructions | vault instructions | wall time | bar: of the first's bytes, cycles |\n|---|---|---|---|---|---|---|---|---|---|";

/// A row of the incremental section, its bytes, cycles and storage growth (over `stored_before`,
/// what the app's snapshots held before it) also as shares of `first`'s.
fn incremental_row(s: &IncrementalSnapshot, first_snapshot: &IncrementalSnapshot, stored_before: u64) -> String {
    let (c, first) = (&s.cost, &first_snapshot.cost);
    let growth = s.stored_bytes.saturating_sub(stored_before);
    let growth_percent = 100.0 * growth as f64 / first_snapshot.stored_bytes.max(1) as f64;
    let bytes_percent = 100.0 * c.chunk_bytes as f64 / first.chunk_bytes.max(1) as f64;
    let cycles = c.app_cycles + c.vault_cycles;
    let cycles_percent = 100.0 * cycles as f64 / (first.app_cycles + first.vault_cycles).max(1) as f64;
    let bar = s.bar.map_or_else(String::new, |bar| {
        let met = bytes_percent <= bar.bytes_percent && bar.cycles_percent.is_none_or(|most| cycles_percent <= most);
        let cycles_bar = bar.cycles_percent.map_or_else(|| "-".to_string(), |most| format!("{most:.0}%"));
        format!("{:.0}%, {cycles_bar}: {}", bar.bytes_percent, if met { "met" } else { "missed" })
    });
    format!(
        "| {} | {} | {:.2} MiB ({:.2}%) | {:.4} T ({:.2}%) | {:.2} MiB ({:.2}%) | {} | {:.2} B | {:.2} B | {:.2} s | {bar} |",
        s.change.map_or_else(|| "none: the first snapshot".to_string(), Change::describe),
        if s.incremental { "incremental" } else { "full" },
        c.chunk_bytes as f64 / MIB as f64,
        bytes_percent,
        cycles as f64 / 1e12,
        cycles_percent,
        growth as f64 / MIB as f64,
        growth_percent,
        c.rounds,
        c.app_instructions as f64 / 1e9,
        c.vault_instructions as f64 / 1e9,
        c.wall.as_secs_f64(),
    )
}

/// The floor's calls in flight unless `--in-flight` says otherwise: as many as the vault's
/// batches make at most.
const DEFAULT_IN_FLIGHT: u32 = 16;

/// The management methods that carry a native snapshot's bytes.
const SLICE_METHODS: [&str; 2] = ["read_canister_snapshot_data", "upload_canister_snapshot_data"];

/// A native capture's operation: what [`Measured`] says, and how long the app was stopped.
struct Native {
    heap: bool,
    mib: u64,
    op: &'static str,
    image: u64,
    downtime: Option<u64>,
    cost: Cost,
    slice_calls: u64,
    slice_bytes: u64,
    peak_rss: u64,
}

/// A canister without the library holding `mib` MiB on its heap (`plain`) or in stable memory
/// (`kv`), in values of 1 MiB, registered natively; snapshotted, then restored into a clone.
fn measure_native(heap: bool, mib: u64) -> Vec<Native> {
    let env = Env::new();
    let deploy = || {
        let (wasm, arg) = if heap { (plain_wasm(), candid::encode_args(()).unwrap()) } else { (kv_wasm(), candid::encode_one(None::<()>).unwrap()) };
        let canister = env.deploy_without_library(wasm, arg, env.app_subnet, true);
        env.vault().register_native(canister, manual(), keep(1), false).expect("register");
        canister
    };
    let app = deploy();
    for key in 0..mib {
        if heap {
            let entry = "x".repeat(MIB as usize - 64);
            let (_,): (u64,) = env.ic.update_candid(app, owner(), "add", (entry,)).unwrap();
        } else {
            let (_,): (Option<ByteBuf>,) = env.ic.update_candid(app, owner(), "put", (key, ByteBuf::from(vec![key as u8; MIB as usize - 64]))).unwrap();
        }
    }
    let slices = |env: &Env| {
        let traffic = env.ic.traffic();
        SLICE_METHODS.iter().filter_map(|m| traffic.by_method.get(*m)).fold((0, 0), |(c, b), t| (c + t.requests, b + t.bytes))
    };
    let run = |op: &'static str, canister: Principal, f: &dyn Fn() -> JobInfo| {
        let before = slices(&env);
        reset_peak_rss();
        let (job, cost) = env.measure(&[canister], f);
        assert_eq!(job.phase, JobPhase::Succeeded, "{job:?}");
        let after = slices(&env);
        let downtime = job.notes.iter().find_map(|n| n.split("stopped for ").nth(1)?.split(' ').next()?.parse::<u64>().ok());
        Native { heap, mib, op, image: job.bytes_total, downtime, cost, slice_calls: after.0 - before.0, slice_bytes: after.1 - before.1, peak_rss: peak_rss() }
    };
    let snapshot = run("snapshot", app, &|| env.snapshot(app));
    let id = env.vault().list_snapshots(app).unwrap()[0].id;
    let clone = deploy();
    let restore = run("restore", clone, &|| env.restore(app, id, Some(clone)));
    assert_eq!(env.ic.get_stable_memory(clone), env.ic.get_stable_memory(app), "the clone holds the app's stable memory");
    vec![snapshot, restore]
}

const NATIVE_HEADER: &str = "| state | data put | image | operation | app stopped for | wall time | rounds | vault instr/MiB | calls (slice calls) | mean payload per slice call | app cycles/GiB | vault cycles/GiB | peak memory |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|";

fn native_row(n: &Native) -> String {
    let c = &n.cost;
    let gib = n.image as f64 / (1024.0 * MIB as f64);
    format!(
        "| {} | {} MiB | {:.1} MiB | {} | {} | {:.2} s | {} | {:.2} M | {} ({}) | {:.2} MiB | {:.3} T | {:.3} T | {:.0} MiB |",
        if n.heap { "native, heap" } else { "native, stable memory" },
        n.mib,
        n.image as f64 / MIB as f64,
        n.op,
        n.downtime.map_or("-".to_string(), |ms| format!("{:.0} s", ms as f64 / 1000.0)),
        c.wall.as_secs_f64(),
        c.rounds,
        per_mib(c.vault_instructions, n.image) / 1e6,
        c.calls,
        n.slice_calls,
        n.slice_bytes.checked_div(n.slice_calls).unwrap_or(0) as f64 / MIB as f64,
        c.app_cycles as f64 / gib / 1e12,
        c.vault_cycles as f64 / gib / 1e12,
        n.peak_rss as f64 / MIB as f64,
    )
}

/// The native rows: heap and stable memory, at each of `sizes` MiB.
fn measure_natives(sizes: &[u64]) -> Vec<Native> {
    println!("\n{NATIVE_HEADER}");
    let mut rows = Vec::new();
    for &mib in sizes {
        for heap in [true, false] {
            for n in measure_native(heap, mib) {
                println!("{}", native_row(&n));
                rows.push(n);
            }
        }
    }
    rows
}

/// The value after flag `name`, parsed by `parse`; exits with the usage if it does not parse.
fn flag_value<T>(args: &[String], name: &str, parse: impl FnOnce(&str) -> Option<T>) -> Option<T> {
    let i = args.iter().position(|a| a == name)?;
    let value = args.get(i + 1).and_then(|v| parse(v));
    if value.is_none() {
        eprintln!("usage: costs [--quick | --sizes MIB[,MIB...]] [--with-4gib] [--baselines-only MIB[,MIB...]] [--in-flight CALLS] [--app-ops] [--large-restores] [--incremental] [--serde-incremental]");
        std::process::exit(2);
    }
    value
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let print_app_ops = |rows: &[AppOps]| {
        println!("\n{APP_OPS_HEADER}");
        app_ops_rows(rows).iter().for_each(|row| println!("{row}"));
    };
    if args.iter().any(|a| a == "--app-ops") {
        print_app_ops(&measure_app_ops());
        return;
    }
    let with_4gib = args.iter().any(|a| a == "--with-4gib");
    if args.iter().any(|a| a == "--large-restores") {
        measure_large_restores(with_4gib);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    if args.iter().any(|a| a == "--incremental") {
        measure_incremental(if quick { INCREMENTAL_QUICK_MIB } else { INCREMENTAL_MIB });
        return;
    }
    if args.iter().any(|a| a == "--native") {
        measure_natives(if quick { &[1, 16] } else { &[1, 16, 256, 1024] });
        return;
    }
    if args.iter().any(|a| a == "--serde-incremental") {
        measure_serde_incremental(if quick { SERDE_INCREMENTAL_QUICK_MIB } else { SERDE_INCREMENTAL_MIB });
        return;
    }
    let in_flight = flag_value(&args, "--in-flight", |k| k.parse().ok().filter(|&k| k > 0)).unwrap_or(DEFAULT_IN_FLIGHT);
    let baselines_only: Option<Vec<u64>> =
        flag_value(&args, "--baselines-only", |list| list.split(',').map(|mib| mib.trim().parse().ok()).collect());
    let sizes: Option<Vec<u64>> = flag_value(&args, "--sizes", |list| list.split(',').map(|mib| mib.trim().parse().ok()).collect());
    let list: &[u64] = match &sizes {
        Some(sizes) => sizes,
        None if quick => &[1, 16],
        None => &[1, 16, 256, 1024],
    };
    println!("{HEADER}");
    let mut rows = Vec::new();
    let mut record = |measured: Vec<Measured>| {
        for m in measured {
            println!("{}", row(&m));
            rows.push(m);
        }
    };
    match &baselines_only {
        Some(sizes) => sizes.iter().for_each(|&mib| record(measure_floor(mib, in_flight))),
        None => {
            for &mib in list {
                record(measure(AppKind::Ledger, mib));
                record(measure(AppKind::Notes, mib));
                record(measure_floor(mib, in_flight));
            }
            if with_4gib {
                record(measure(AppKind::Ledger, 4096));
            }
        }
    }
    let hashes = measure_hashes();
    println!("\n{HASH_HEADER}");
    for h in &hashes {
        println!("{}", hash_row(h));
    }
    if quick || baselines_only.is_some() || sizes.is_some() {
        return;
    }
    let app_ops = measure_app_ops();
    print_app_ops(&app_ops);
    let large_restores = measure_large_restores(with_4gib);
    let incremental = measure_incremental(INCREMENTAL_MIB);
    let serde_incremental = measure_serde_incremental(SERDE_INCREMENTAL_MIB);
    let natives = measure_natives(&[1, 16, 256, 1024]);
    let root = ic_harness::build::workspace_root();
    let mut md = String::from("# Benchmarks\n\nSnapshots and restores of the example apps (`ledger`: stable memory, `notes`: serde) on the embedded IC, which counts instructions and charges cycles as the IC does (13-node application subnet). A snapshot moves the app's state into the vault; a restore moves it from the vault into a fresh clone. Regenerate with `cargo bench -p vault-tests --bench costs -- --with-4gib` (the 4 GiB rows hold the app, the vault's copy and the clone in memory; without the flag they are left out).\n\n");
    let _ = writeln!(md, "{HEADER}");
    for m in &rows {
        let _ = writeln!(md, "{}", row(m));
    }
    md.push_str("\n![instructions per MiB by state size](benchmarks.svg)\n\n");
    md.push_str("- *data put* is what the benchmark wrote into the app (pseudo-random blobs of up to 32 MiB); *snapshot* is the state the vault took: for stable memory the whole memory image the app's structures occupy (its `MemoryManager` allocates in buckets, so a small state still has an image of some MiB), for serde the MessagePack encoding. Every per-MiB figure is per MiB of snapshot.\n");
    md.push_str("- *calls* counts every inter-canister call of the operation: the chunk calls (`vault_dump_chunk`, `vault_restore_chunk`) that carry the state, the begin and end calls, and the vault's `canister_info` check (self-calls of timers and ingress messages are not counted). A call's payload is its request and its response together; the chunk calls are what fill the 2 MiB limit, the other calls are a few small messages per job.\n");
    let _ = writeln!(md, "- *floor* is the baseline: two bare canisters (`harness/canisters/src/bin/floor.rs`) moving the same bytes with nothing but one stable read and one reply per chunk of 2 MiB − 4 KiB on one side and one stable write on the other, the bytes raw (no encoding), {in_flight} bounded-wait calls in flight, each next call started from a callback. Its *snapshot* pulls the bytes in replies (the app side serves the reads, the vault side writes), its *restore* pushes them in requests (the vault side reads and sends, the app side writes). What a row costs above the floor is what the vault's protocol, encoding and bookkeeping add.");
    md.push_str("- *rounds* are the embedded IC's rounds the operation took, with the vault (and the floor's driving side) on one subnet and the apps on another: a message between subnets is inducted 2 rounds after it was sent, and each stream between two subnets inducts at most 4 MiB a round (`harness/src/subnets.rs` gives the sources). Moving 1 GiB one way therefore takes at least 256 rounds: the byte-budget floor. A round is a second of the harness's clock.\n");
    md.push_str("- *wall time / plain copy* compares with `copy_from_slice` of the same number of bytes in this process.\n");
    md.push_str("- *peak memory* is the benchmark process's resident peak during the operation: the embedded IC holds the app, the vault and the clone in memory.\n");
    md.push_str("- A stable-memory restore stages its chunks into free pages of the app's memory and commits by switching the live page directory, so no image is refused for its size below what the library's `MemoryManager` holds (256 GiB); *Large restores* below measures the commit.\n");
    let _ = writeln!(md, "\n## Content hashes\n\nInstructions per byte of hashing {} MiB on a canister's heap (`harness/canisters/src/bin/hashes.rs`, counted with `ic0.performance_counter`; the digests are checked against native ones in the harness tests). The workspace builds its wasm with `simd128` (`.cargo/config.toml`), and with it the `hashes` canister turns on blake3's `wasm32_simd` backend; `CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS=\"-C target-feature=-simd128\" cargo bench -p vault-tests --bench costs -- --baselines-only 16` measures a build without (portable BLAKE3; the canisters are built again, and again without the variable).\n", HASH_BYTES / MIB);
    let _ = writeln!(md, "{HASH_HEADER}");
    for h in &hashes {
        let _ = writeln!(md, "{}", hash_row(h));
    }
    let _ = writeln!(md, "\n## The app's own work on VaultMemory\n\nInstructions per operation of the btree example app (`examples/btree`: a `StableBTreeMap<u64, [u8; 1024]>` under a `MemoryManager`), counted in the canister with `ic0.performance_counter` around each phase of its `measure_ops`: {APP_OPS_ENTRIES} inserts of fresh keys after the largest into a map of {APP_OPS_ENTRIES} entries, then gets of them, then {APP_OPS_ENTRIES} overwrites at pseudo-random keys among the entries present before each message (the filled ones and the earlier messages' inserts), in messages of {} of each (the values are made before each phase). `DefaultMemoryImpl` is the same workload without the client library (`btree-baseline`). *dump open* is an app registered with the vault whose dump was opened as the vault opens it (`vault_dump_begin`, called as the vault) once the map was filled, and left open while the operations ran, so their writes to the frozen image pay for keeping it. Each figure is also given as a multiple of `DefaultMemoryImpl`'s; the bars, for inserts and gets, are at most 1.3× with no dump open and at most 2× while a dump is open. `cargo bench -p vault-tests --bench costs -- --app-ops` measures this section alone.\n", MAX_BATCH);
    let _ = writeln!(md, "{APP_OPS_HEADER}");
    for row in app_ops_rows(&app_ops) {
        let _ = writeln!(md, "{row}");
    }
    let _ = writeln!(md, "\n## Large restores\n\nA stable-memory snapshot of the btree example app, filled until its stable memory holds the size in the first column, restored into a fresh clone of {CLONE_ENTRIES} entries of its own that serves updates while the restore stages: between the rounds of the staging it overwrites {CLONE_OVERWRITES} of its entries (`update_random`); once the job succeeded the clone's map has the snapshot's digest, the updates made while it staged replaced. The commit is the clone's `vault_restore_commit` message (`Harness::take_execution_log`): it checks the manifest hash over the staged chunks' digests, switches the live page directory and frees the old version's pages, so it neither copies nor rewrites the image; what grows with the image is the work per chunk, its staged digest checked into the manifest hash. One update may execute 40 B instructions and dirty 2 GiB of stable memory; the per-GiB figures, times 256 (the most the library's `MemoryManager` holds), are given as shares of those limits: a linear extrapolation, an upper bound where part of the cost does not grow with the image. *Staging* is from the restore request until the job was first seen committing, the clone's updates included; *peak memory* is the process's resident peak during the restore. `cargo bench -p vault-tests --bench costs -- --large-restores` measures this section alone (256 MiB and 1 GiB; 4 GiB with `--with-4gib`), without writing the docs.\n");
    let _ = writeln!(md, "{LARGE_RESTORE_HEADER}");
    for r in &large_restores {
        let _ = writeln!(md, "{}", large_restore_row(r));
    }
    let _ = writeln!(md, "\n## Incremental snapshots\n\nA btree example app filled until its stable memory holds {} MiB ({} entries of {VALUE_SIZE} bytes), registered with the vault (keeping its last {INCREMENTAL_KEEP} snapshots), snapshot after snapshot: the first, then after each change in turn, each change made to the map as the snapshot before left it. An app whose memory still holds the image of its last snapshot the vault stored answers the vault's dump with only the 4 KiB pages that differ from it, and the vault builds the new snapshot over the last one's chunks; *snapshot* says whether the vault took it incremental (its job's note on opening the dump names the snapshot it builds on). *Chunk bytes* are the `vault_dump_chunk` calls' requests and replies; *cycles* what the app and the vault consumed from the snapshot request until the job succeeded; *stored in the vault* how much the bytes the app's snapshots hold (each chunk once) grew with the snapshot: the vault stores a changed chunk as a delta over the base's, the pages that differ; all three are also given as shares of the first snapshot's, against the bars: after 1% of the entries updated at most 8% of its bytes and 10% of its cycles, after 1% appended at most 3% of its bytes. `cargo bench -p vault-tests --bench costs -- --incremental` measures this section alone (`--quick` with {INCREMENTAL_QUICK_MIB} MiB), without writing the docs.\n", incremental.mib, incremental.entries);
    incremental_table(&mut md, &incremental);
    let _ = writeln!(md, "\n## Incremental serde snapshots\n\nA notes example app (`examples/notes`: a serde state, MessagePack) holding {} notes of {NOTE_BODY} pseudo-random letters, about {} MiB of MessagePack, registered with the vault (keeping its last {INCREMENTAL_KEEP} snapshots), snapshot after snapshot: the first, then after each change in turn, each rewriting that share of the notes at pseudo-random ids with new letters, each note up to 32 bytes longer or shorter (so what follows it in the serialization moves). The vault asks a serde dump for a content index: the app cuts each chunk of its serialization where its bytes say (a gear hash, pieces of about 1.1 KiB) and records each piece's BLAKE3; once the vault stored the dump and named it the base, a dump against it answers each chunk as the ranges of it found in the base's image and the bytes of the rest, and the vault rebuilds the chunk from its copy of the base. The columns are those of the section above; the bar: after 1% of the notes rewritten, at most 5% of the first snapshot's bytes. *Stored in the vault* grows by the chunks rebuilt whole: a chunk whose bytes moved is no delta of the base's chunk at its index. `cargo bench -p vault-tests --bench costs -- --serde-incremental` measures this section alone (`--quick` with {SERDE_INCREMENTAL_QUICK_MIB} MiB), without writing the docs.\n", serde_incremental.entries, serde_incremental.mib);
    incremental_table(&mut md, &serde_incremental);
    md.push_str("\n## Native capture\n\nCanisters without the client library, registered with `--native` (the vault a controller): `plain` (`examples/plain`, entries on the heap) and `kv` (`harness/canisters`, a `StableBTreeMap` in stable memory), filled with values of 1 MiB. A *snapshot* stops the app, takes a native snapshot, starts the app, then reads the snapshot out in slices of 2,000,000 bytes (`read_canister_snapshot_data`, charged to the app: 5 M instructions and one a byte) and deletes it; a *restore* uploads the image into a fresh clone (`upload_canister_snapshot_metadata`, `upload_canister_snapshot_data`), stops it, loads it and starts it. *Image* is the vault's copy: the module, the heap and the stable memory, each padded to whole slices, and the metadata. *App stopped for* is the take alone (stop, take, start), in the embedded IC's time (a round is a second). The IC charges the snapshot methods' instructions to the app in cycles (the take: 2 B + 1 a byte; each read: 5 M + 1 a byte), so they are in *app cycles*; for a restore, *app* is the clone, charged for the uploads (1 a byte) and the load (2 B + 1 a byte). `cargo bench -p vault-tests --bench costs -- --native` measures this section alone (`--quick`: 1 and 16 MiB), without writing the docs.\n\n");
    let _ = writeln!(md, "{NATIVE_HEADER}");
    for n in &natives {
        let _ = writeln!(md, "{}", native_row(n));
    }
    std::fs::write(root.join("docs/benchmarks.md"), md).expect("write docs/benchmarks.md");
    std::fs::write(root.join("docs/benchmarks.svg"), svg(&rows)).expect("write docs/benchmarks.svg");
    println!("wrote docs/benchmarks.md and docs/benchmarks.svg");
}
