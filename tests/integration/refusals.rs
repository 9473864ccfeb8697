//! Every bad input gets a typed error and changes nothing.

use candid::Principal;
use serde_bytes::ByteBuf;
use vault_api::{ContentHash, Sha256};
use vault_api::protocol::{BackupError, ChunkRequest, DumpBegin, JobRef, RestoreBegin, RestoreChunk, StateKind, leb128, methods};
use vault_api::service::{ImportArgs, ImportChunk, Limits, Retention, Schedule, VaultError};
use vault_tests::*;

#[test]
fn the_vault_refuses_bad_requests_with_typed_errors() {
    let env = Env::new();
    let notes = env.registered(AppKind::Notes, manual(), keep(3));
    let ledger = env.registered(AppKind::Ledger, manual(), keep(3));
    for n in 0..2 {
        AppKind::Notes.apply(&env.app(notes), n);
        AppKind::Ledger.apply(&env.app(ledger), n);
    }
    let snapshot = env.snapshot(notes).snapshot_id.unwrap();
    let no_vault = env.deploy(AppKind::Notes, None);
    let other_vault = env.deploy(AppKind::Notes, Some(stranger()));
    let probe = env.ic.create_canister_with_settings(Some(owner()), None);
    env.ic.install_canister(probe, ic_harness::build::canister_wasm("harness-test-canisters", "probe"), candid::encode_args(()).unwrap(), Some(owner()));
    let missing = ic_harness::types::canister_id_from_index(4_000);
    let apps = [notes, ledger];
    let v = env.vault();
    let before = env.observable(&apps);

    assert_eq!(v.register(notes, manual(), keep(1)), Err(VaultError::AlreadyRegistered { app: notes }));
    assert_eq!(v.register(no_vault, manual(), keep(1)), Err(VaultError::WrongVault { app: no_vault, vault: None }));
    assert_eq!(v.register(other_vault, manual(), keep(1)), Err(VaultError::WrongVault { app: other_vault, vault: None }));
    assert!(matches!(v.register(probe, manual(), keep(1)), Err(VaultError::AppUnreachable { reject_code: 5, .. })));
    assert!(matches!(v.register(missing, manual(), keep(1)), Err(VaultError::AppUnreachable { .. })));
    assert!(matches!(v.register(no_vault, Schedule { interval_seconds: 5 }, keep(1)), Err(VaultError::InvalidSchedule { .. })));
    assert!(matches!(v.register(no_vault, manual(), keep(0)), Err(VaultError::InvalidRetention { .. })));
    let too_many = Retention { keep_last: 5000, keep_daily: 0, keep_weekly: 0 };
    assert!(matches!(v.update_schedule(notes, None, Some(too_many)), Err(VaultError::InvalidRetention { .. })));
    assert!(matches!(v.update_schedule(notes, Some(Schedule { interval_seconds: 10 }), None), Err(VaultError::InvalidSchedule { .. })));
    assert_eq!(v.update_schedule(no_vault, None, None), Err(VaultError::UnknownApp { app: no_vault }));
    assert_eq!(v.snapshot_now(no_vault), Err(VaultError::UnknownApp { app: no_vault }));
    assert_eq!(v.list_snapshots(no_vault), Err(VaultError::UnknownApp { app: no_vault }));
    assert_eq!(v.restore(notes, 999, None), Err(VaultError::UnknownSnapshot { app: notes, snapshot_id: 999 }));
    assert_eq!(v.restore(notes, snapshot, Some(no_vault)), Err(VaultError::TargetNotRegistered { target: no_vault }));
    assert_eq!(
        v.restore(notes, snapshot, Some(ledger)),
        Err(VaultError::StateKindMismatch { target: ledger, target_kind: StateKind::StableMemory, snapshot: StateKind::Serde })
    );
    assert_eq!(v.delete_snapshot(notes, 999), Err(VaultError::UnknownSnapshot { app: notes, snapshot_id: 999 }));
    assert_eq!(v.job_status(999), Err(VaultError::UnknownJob { job: 999 }));
    assert!(matches!(v.snapshot_chunk(notes, snapshot, 99), Err(VaultError::ChunkOutOfRange { index: 99, .. })));
    assert_eq!(env.observable(&apps), before, "nothing changed");

    // One job per app: a second one is refused while the first runs (held up by failing
    // chunk calls).
    env.ic.reject_calls(ic_harness::CallMatcher::to(notes).method(methods::DUMP_CHUNK), ic_harness::RejectCode::SysTransient, "busy", None);
    let job = v.snapshot_now(notes).unwrap();
    let running = env.observable(&apps);
    assert_eq!(v.snapshot_now(notes), Err(VaultError::JobRunning { app: notes, job: job.id }));
    assert_eq!(v.restore(notes, snapshot, None), Err(VaultError::JobRunning { app: notes, job: job.id }));
    assert_eq!(env.observable(&apps), running);
    env.ic.clear_faults();
    env.finish_job(job.id, 500);

    // A snapshot a running restore reads (held up by failing chunk calls) cannot be deleted,
    // nor its app unregistered with its snapshots.
    let clone = env.registered(AppKind::Notes, manual(), keep(1));
    env.ic.reject_calls(ic_harness::CallMatcher::to(clone).method(methods::RESTORE_CHUNK), ic_harness::RejectCode::SysTransient, "busy", None);
    let restore = v.restore(notes, snapshot, Some(clone)).unwrap();
    let reading = env.observable(&apps);
    assert_eq!(v.delete_snapshot(notes, snapshot), Err(VaultError::JobRunning { app: clone, job: restore.id }));
    assert_eq!(v.unregister(notes, true), Err(VaultError::JobRunning { app: clone, job: restore.id }));
    assert_eq!(env.observable(&apps), reading);
    env.ic.clear_faults();
    env.finish_job(restore.id, 100);
}

#[test]
fn a_vault_short_of_cycles_refuses_jobs() {
    // Enough to run its messages and register an app, not to keep chunk calls in flight.
    let env = Env::with_vault_cycles(ic_harness::Harness::new(), 150_000_000_000);
    let app = env.registered(AppKind::Notes, manual(), keep(3));
    let before = env.observable(&[app]);
    assert!(matches!(env.vault().snapshot_now(app), Err(VaultError::InsufficientCycles { .. })));
    assert_eq!(env.observable(&[app]), before);
}

use ic_harness::IcBackend;

#[test]
fn an_app_refuses_bad_protocol_calls_with_typed_errors() {
    let env = Env::new();
    let ledger = env.registered(AppKind::Ledger, manual(), keep(3));
    let notes = env.registered(AppKind::Notes, manual(), keep(3));
    AppKind::Ledger.apply(&env.app(ledger), 0);
    let before = (env.app(ledger).digest(), env.app(notes).digest());
    let image = vec![7u8; 65536 * 2];
    let chunk_size = 65536u64;
    let sha = vault_api::manifest::image_hash(ContentHash::Sha256, &image, chunk_size);
    let begin = |job: u64, state_kind, size, chunk_size, sha256| RestoreBegin { job, state_kind, size, chunk_size, sha256, nonce: None, content_hash: None, via_upgrade: None };
    let chunk = |job: u64, index: u32, data: Vec<u8>| RestoreChunk { job, index, sha256: Sha256::of(&data), data: ByteBuf::from(data), nonce: None };

    // A vault that cannot be one, set by the app's controller.
    for vault in [Principal::anonymous(), Principal::management_canister()] {
        let (refused,): (Result<(), BackupError>,) = env.ic.update_candid(notes, owner(), methods::SET_VAULT, (vault,)).unwrap();
        assert_eq!(refused, Err(BackupError::InvalidVault { vault }));
    }

    // Dumps.
    assert_eq!(as_vault::<_, vault_api::protocol::Chunk>(&env, ledger, methods::DUMP_CHUNK, (ChunkRequest { job: 5, index: 0, nonce: None },)), Err(BackupError::UnknownJob { job: 5 }));
    let manifest: vault_api::protocol::DumpManifest = as_vault(&env, ledger, methods::DUMP_BEGIN, (DumpBegin { job: 5, nonce: None, chunk_hashes: None, base: None, from_upgrade_save: None, content_index: None },)).unwrap();
    let chunks = vault_api::chunk_count(manifest.size, manifest.chunk_size);
    assert_eq!(
        as_vault::<_, vault_api::protocol::Chunk>(&env, ledger, methods::DUMP_CHUNK, (ChunkRequest { job: 5, index: chunks, nonce: None },)),
        Err(BackupError::ChunkOutOfRange { index: chunks, chunks })
    );
    as_vault::<_, ()>(&env, ledger, methods::DUMP_END, (JobRef { job: 5, nonce: None },)).unwrap();

    // Restores: every bad input refused, the live state untouched.
    let refuse = |app, method: &str, args: Vec<u8>| -> BackupError {
        let reply = env.ic.update_call(app, env.vault, method, args).unwrap();
        candid::decode_one::<Result<candid::Reserved, BackupError>>(&reply).unwrap().unwrap_err()
    };
    assert_eq!(
        refuse(notes, methods::RESTORE_BEGIN, candid::encode_one(begin(1, StateKind::StableMemory, 65536, chunk_size, sha)).unwrap()),
        BackupError::StateKindMismatch { app: StateKind::Serde, snapshot: StateKind::StableMemory }
    );
    assert!(matches!(
        refuse(ledger, methods::RESTORE_BEGIN, candid::encode_one(begin(1, StateKind::StableMemory, 100, chunk_size, sha)).unwrap()),
        BackupError::InvalidImage { .. }
    ));
    assert!(matches!(
        refuse(ledger, methods::RESTORE_BEGIN, candid::encode_one(begin(1, StateKind::StableMemory, 65536, 0, sha)).unwrap()),
        BackupError::UnsupportedChunkSize { .. }
    ));
    assert!(matches!(
        // More than the library's memory manager can hold (256 GiB).
        refuse(ledger, methods::RESTORE_BEGIN, candid::encode_one(begin(1, StateKind::StableMemory, 300 << 30, chunk_size, sha)).unwrap()),
        BackupError::TooLarge { .. }
    ));
    assert_eq!(refuse(ledger, methods::RESTORE_CHUNK, candid::encode_one(chunk(1, 0, image[..65536].to_vec())).unwrap()), BackupError::UnknownJob { job: 1 });
    as_vault::<_, ()>(&env, ledger, methods::RESTORE_BEGIN, (begin(1, StateKind::StableMemory, image.len() as u64, chunk_size, sha),)).unwrap();
    let mut bad = chunk(1, 0, image[..65536].to_vec());
    bad.sha256 = Sha256::of(b"something else");
    assert_eq!(refuse(ledger, methods::RESTORE_CHUNK, candid::encode_one(bad).unwrap()), BackupError::ChunkHashMismatch { index: 0 });
    assert_eq!(refuse(ledger, methods::RESTORE_CHUNK, candid::encode_one(chunk(1, 2, vec![0; 10])).unwrap()), BackupError::ChunkOutOfRange { index: 2, chunks: 2 });
    assert_eq!(
        refuse(ledger, methods::RESTORE_CHUNK, candid::encode_one(chunk(1, 0, vec![7; 10])).unwrap()),
        BackupError::ChunkSizeMismatch { index: 0, expected: 65536, actual: 10 }
    );
    as_vault::<_, ()>(&env, ledger, methods::RESTORE_CHUNK, (chunk(1, 0, image[..65536].to_vec()),)).unwrap();
    assert_eq!(refuse(ledger, methods::RESTORE_COMMIT, candid::encode_one(JobRef { job: 1, nonce: None }).unwrap()), BackupError::MissingChunks { missing: 1, first: 1 });
    // A manifest hash that the staged chunks do not produce is refused at commit.
    as_vault::<_, ()>(&env, ledger, methods::RESTORE_BEGIN, (begin(2, StateKind::StableMemory, image.len() as u64, chunk_size, Sha256::of(b"wrong")),)).unwrap();
    for i in 0..2u32 {
        as_vault::<_, ()>(&env, ledger, methods::RESTORE_CHUNK, (chunk(2, i, image[i as usize * 65536..(i as usize + 1) * 65536].to_vec()),)).unwrap();
    }
    assert_eq!(
        refuse(ledger, methods::RESTORE_COMMIT, candid::encode_one(JobRef { job: 2, nonce: None }).unwrap()),
        BackupError::SnapshotHashMismatch { expected: Sha256::of(b"wrong"), actual: sha }
    );
    // A serde image that does not decode into the app's state is refused at commit.
    let garbage = vec![0xc1u8; 1000];
    let garbage_sha = vault_api::manifest::image_hash(ContentHash::Sha256, &garbage, 1000);
    as_vault::<_, ()>(&env, notes, methods::RESTORE_BEGIN, (begin(3, StateKind::Serde, 1000, 1000, garbage_sha),)).unwrap();
    as_vault::<_, ()>(&env, notes, methods::RESTORE_CHUNK, (chunk(3, 0, garbage),)).unwrap();
    assert!(matches!(refuse(notes, methods::RESTORE_COMMIT, candid::encode_one(JobRef { job: 3, nonce: None }).unwrap()), BackupError::Deserialization { .. }));
    assert_eq!((env.app(ledger).digest(), env.app(notes).digest()), before, "no refused call changed a live state");
}

#[test]
fn an_argument_that_would_cost_more_to_decode_than_its_bytes_is_refused_from_any_canister() {
    let env = Env::new();
    let probe = env.ic.create_canister_with_settings(Some(owner()), None);
    env.ic.install_canister(probe, ic_harness::build::canister_wasm("harness-test-canisters", "probe"), candid::encode_args(()).unwrap(), Some(owner()));
    let no_principals: &[u8] = &[0];
    let bomb = padded_record(&[&[0x6d, 0x68]], &[("principals", 2, no_principals), ("allowed", 0x7e, &[1])]);
    let before = env.ic.cycle_balance(env.vault);
    let answer = forwarded(&env, probe, env.vault, vault_api::service::methods::SET_ALLOWED, bomb);
    let spent = before - env.ic.cycle_balance(env.vault);
    refused_undecoded(answer);
    assert!(spent < 50_000_000, "the refusal cost the vault {spent} cycles");
}

/// A record of `fields` (name, type, value bytes) and one field more, `padding`: `vec null` of a
/// billion elements, which takes a few bytes and, without a decoding quota, seconds to skip. Type 0
/// is the record, 1 the padding's, 2 on `types`.
fn padded_record(types: &[&[u8]], fields: &[(&str, u8, &[u8])]) -> Vec<u8> {
    const NULLS: u8 = 0x01;
    let mut all: Vec<(u32, u8, Vec<u8>)> = fields.iter().map(|(name, ty, value)| (candid::idl_hash(name), *ty, value.to_vec())).collect();
    let mut billion = Vec::new();
    leb128(&mut billion, 1_000_000_000);
    all.push((candid::idl_hash("padding"), NULLS, billion));
    all.sort_unstable();
    let mut bytes = b"DIDL".to_vec();
    leb128(&mut bytes, 2 + types.len() as u64);
    bytes.push(0x6c);
    leb128(&mut bytes, all.len() as u64);
    for (id, ty, _) in &all {
        leb128(&mut bytes, *id as u64);
        bytes.push(*ty);
    }
    bytes.extend([0x6d, 0x7f]);
    for ty in types {
        bytes.extend_from_slice(ty);
    }
    bytes.extend([0x01, 0x00]);
    for (_, _, value) in &all {
        bytes.extend_from_slice(value);
    }
    bytes
}

/// Calls `method` of `target` with `arg` from the probe canister, as any canister may.
fn forwarded(env: &Env, probe: Principal, target: Principal, method: &str, arg: Vec<u8>) -> Forwarded {
    let call = candid::encode_args((target, method, ByteBuf::from(arg), None::<u32>, 0u128)).unwrap();
    candid::decode_one(&env.ic.update_call(probe, owner(), "call", call).expect("the probe answers")).unwrap()
}

fn refused_undecoded(answer: Forwarded) {
    match answer {
        Forwarded::Reject { code, message } => {
            assert_eq!(code, 4, "refused by the guard, not a trap: {message}");
            assert!(message.contains("does not decode"), "{message}");
        }
        other => panic!("the argument was taken: {other:?}"),
    }
}

#[test]
fn an_app_refuses_an_argument_that_would_cost_more_to_decode_than_its_bytes() {
    let env = Env::new();
    let app = env.registered(AppKind::Notes, manual(), keep(3));
    let probe = env.ic.create_canister_with_settings(Some(owner()), None);
    env.ic.install_canister(probe, ic_harness::build::canister_wasm("harness-test-canisters", "probe"), candid::encode_args(()).unwrap(), Some(owner()));
    let job = 7u64.to_le_bytes();
    let bomb = padded_record(&[], &[("job", 0x78, &job)]);
    let before = env.ic.cycle_balance(app);
    refused_undecoded(forwarded(&env, probe, app, methods::DUMP_BEGIN, bomb));
    let spent = before - env.ic.cycle_balance(app);
    assert!(spent < 50_000_000, "the refusal cost the app {spent} cycles");
}

#[test]
fn an_import_chunk_the_reserves_cannot_pay_for_is_refused_before_the_vault_pays_for_it() {
    // Enough for the import to begin beside the cycles reserve, which grows with every memory the
    // vault opens (each takes a bucket of 8 MiB of stable memory).
    let env = Env::with_vault_cycles(ic_harness::Harness::new(), 300_000_000_000);
    let app = env.registered(AppKind::Notes, manual(), keep(3));
    let data = vec![7u8; 100];
    let chunk_hash = Sha256::of(&data);
    let sha256 = vault_api::manifest::manifest_hash(ContentHash::Sha256, 100, 100, [&chunk_hash]).unwrap();
    let args =
        ImportArgs { app, state_kind: StateKind::Serde, size: 100, chunk_size: 100, sha256, taken_at_nanos: 1, module_hash: None, state_layout: None, content_hash: None };
    let import = env.vault().service().import_begin(args).unwrap().expect("the vault can pay for the import when it begins");
    // Other apps' storage has since grown the reserve past what the vault holds.
    let limits = Limits { reserve_days: 3_650, ..Limits::default() };
    env.vault().service().set_limits(limits).unwrap().unwrap();
    // (Reading the app's digest runs rounds, in which the vault's timer may spend: balance last.)
    let observed = env.observable(&[app]);
    let balance = env.ic.cycle_balance(env.vault);
    let chunk = ImportChunk { app, snapshot_id: import.snapshot_id, index: 0, data: ByteBuf::from(data), sha256: chunk_hash };
    let refused = env.vault().service().import_chunk(chunk);
    assert!(matches!(&refused, Err(e) if e.to_string().contains("cycles")), "{refused:?}");
    assert_eq!(env.ic.cycle_balance(env.vault), balance, "refused before induction: nothing paid");
    assert_eq!(env.observable(&[app]), observed, "nothing stored");
}

/// The vault's next snapshot of `app`, held with its dump open: every chunk call fails.
fn a_dump_held_open(env: &Env, app: Principal) -> vault_api::service::JobInfo {
    env.ic.reject_calls(ic_harness::CallMatcher::to(app).method(methods::DUMP_CHUNK), ic_harness::RejectCode::SysTransient, "busy", None);
    let job = env.vault().snapshot_now(app).unwrap();
    for _ in 0..100 {
        if env.vault().job_status(job.id).unwrap().phase != vault_api::service::JobPhase::Starting {
            return job;
        }
        env.run_for(1);
    }
    panic!("job {} did not open its dump", job.id);
}

/// Opens a dump of `app` for `job` as the vault, without a nonce (as release 0.1.0's vault does).
fn open_dump(env: &Env, app: Principal, job: u64) {
    let begin = DumpBegin { job, nonce: None, chunk_hashes: None, base: None, from_upgrade_save: None, content_index: None };
    as_vault::<_, vault_api::protocol::DumpManifest>(env, app, methods::DUMP_BEGIN, (begin,)).expect("a dump opens");
}

/// Chunk 0 of `job`'s dump of `app`, asked for as the vault without a nonce.
fn first_chunk(env: &Env, app: Principal, job: u64) -> Result<u32, BackupError> {
    let request = ChunkRequest { job, index: 0, nonce: None };
    as_vault::<_, vault_api::protocol::Chunk>(env, app, methods::DUMP_CHUNK, (request,)).map(|c| c.index)
}

#[test]
fn a_reinstalled_vault_cannot_read_the_dump_its_previous_install_left_open() {
    let env = Env::new();
    let app = env.registered(AppKind::Ledger, manual(), keep(3));
    AppKind::Ledger.apply(&env.app(app), 0);
    let left_open = a_dump_held_open(&env, app);
    AppKind::Ledger.apply(&env.app(app), 1);
    let now = env.app(app).digest();
    // Reinstalled at the same principal: its state is gone, and its jobs count from 1 again.
    env.ic.reinstall_canister(env.vault, vault_wasm(), candid::encode_args(()).unwrap(), Some(owner())).expect("reinstall");
    env.ic.clear_faults();
    assert_eq!(first_chunk(&env, app, left_open.id), Err(BackupError::UnknownJob { job: left_open.id }), "bound to the install's nonce");
    env.vault().register(app, manual(), keep(3)).expect("registered with the new install");
    let job = env.snapshot(app);
    assert_eq!((left_open.id, job.id, &job.error), (1, 1, &None), "the same job id, and the snapshot completes");
    // Its snapshot is the app's state now, not the image the previous install froze.
    let restored = env.restore(app, job.snapshot_id.unwrap(), None);
    assert_eq!(restored.error, None);
    assert_eq!(env.app(app).digest(), now);
}

#[test]
fn setting_another_vault_releases_the_dump_the_previous_one_left_open() {
    let env = Env::new();
    let app = env.registered(AppKind::Ledger, manual(), keep(3));
    let set_vault = |vault: Principal| {
        env.ic.update_candid::<_, (Result<(), BackupError>,)>(app, owner(), methods::SET_VAULT, (vault,)).expect("vault_set_vault").0
    };
    open_dump(&env, app, 7);
    set_vault(env.vault).expect("the same vault again");
    assert_eq!(first_chunk(&env, app, 7), Ok(0), "setting the same vault changes nothing");
    set_vault(stranger()).expect("another vault");
    set_vault(env.vault).expect("and back");
    assert_eq!(first_chunk(&env, app, 7), Err(BackupError::UnknownJob { job: 7 }), "released when the vault changed");
}

#[test]
fn a_dump_no_vault_call_touched_for_the_session_ttl_is_released() {
    let env = Env::new();
    let app = env.registered(AppKind::Ledger, manual(), keep(3));
    open_dump(&env, app, 7);
    let minute = std::time::Duration::from_secs(60);
    env.ic.advance_time(vault_api::protocol::SESSION_TTL - minute);
    assert_eq!(first_chunk(&env, app, 7), Ok(0), "kept within the TTL");
    env.ic.advance_time(2 * minute);
    assert_eq!(first_chunk(&env, app, 7), Err(BackupError::UnknownJob { job: 7 }), "released once past it");
}

#[test]
fn an_import_of_another_state_kind_than_the_apps_is_refused_before_it_begins() {
    let env = Env::new();
    let app = env.registered(AppKind::Notes, manual(), keep(3));
    let before = env.observable(&[app]);
    let sha256 = vault_api::manifest::manifest_hash(ContentHash::Sha256, 100, 100, [&Sha256::of(&[7; 100])]).unwrap();
    let args = ImportArgs {
        app,
        state_kind: StateKind::StableMemory,
        size: 100,
        chunk_size: 100,
        sha256,
        taken_at_nanos: 1,
        module_hash: None,
        state_layout: None,
        content_hash: None,
    };
    let refused = env.vault().service().import_begin(args).unwrap();
    assert_eq!(refused, Err(VaultError::StateKindMismatch { target: app, target_kind: StateKind::Serde, snapshot: StateKind::StableMemory }));
    assert_eq!(env.observable(&[app]), before);
}
