//! Administration: who may register apps (administrators always; others by the registration
//! mode and the allow-list), who administers (the vault's controllers and the administrators
//! they name), suspending, resuming and evicting apps, and the quotas and reserves that hold
//! every registrant, however hostile, to what the vault can afford.

use candid::{Encode, Principal};
use vault_api::protocol::StateKind;
use vault_api::service::{ImportArgs, ImportChunk, ImportInfo, JobError, Limits, Registration, SetAllowedArgs, SuspendArgs, VaultError};
use vault_tests::*;

/// The vault's answer as `caller` gets it (a reject instead is a failure of the test).
fn answer<T>(reply: VaultReply<T>) -> VaultResult<T> {
    reply.unwrap_or_else(|e| panic!("vault: {e}"))
}

/// An example app with this vault set, controlled by `controller` alone.
fn app_of(env: &Env, controller: Principal) -> Principal {
    let app = env.ic.create_canister_with_settings(Some(controller), None);
    env.ic.install_canister(app, AppKind::Notes.wasm(), Encode!(&Some(env.vault)).unwrap(), Some(controller));
    app
}

fn registers(env: &Env, caller: Principal, app: Principal) -> VaultResult<()> {
    env.vault_as(caller).register(app, manual(), keep(3)).map(drop)
}

#[test]
fn registration_is_open_to_administrators_and_as_the_mode_says() {
    let env = Env::new();
    let (theirs, later) = (app_of(&env, stranger()), app_of(&env, stranger()));
    // A new vault: administrators and the allow-list, which is empty.
    let closed = Err(VaultError::RegistrationClosed { caller: stranger(), mode: Registration::AllowList });
    assert_eq!(registers(&env, stranger(), theirs), closed);
    assert!(env.vault().list_apps().unwrap().is_empty(), "nothing registered");
    answer(env.vault().service().set_allowed(SetAllowedArgs { principals: vec![stranger()], allowed: true })).unwrap();
    registers(&env, stranger(), theirs).expect("allowed");
    // Allowed to register is not allowed to register what one does not control.
    let owners = env.deploy(AppKind::Notes, Some(env.vault));
    assert!(matches!(registers(&env, stranger(), owners), Err(VaultError::NotAController { .. })));
    // Administrators only: the allow-list no longer counts; the administrators still register.
    answer(env.vault().service().set_registration(Registration::Administrators)).unwrap();
    assert_eq!(registers(&env, stranger(), later), Err(VaultError::RegistrationClosed { caller: stranger(), mode: Registration::Administrators }));
    registers(&env, owner(), owners).expect("an administrator registers the apps it controls");
    // Open: anyone who controls the app.
    answer(env.vault().service().set_registration(Registration::Open)).unwrap();
    answer(env.vault().service().set_allowed(SetAllowedArgs { principals: vec![stranger()], allowed: false })).unwrap();
    registers(&env, stranger(), later).expect("open");
    let anonymous = answer(env.vault_as(Principal::anonymous()).service().admin_info());
    assert_eq!(anonymous, Err(VaultError::Anonymous));
}

#[test]
fn controllers_name_administrators_who_administer_but_name_no_one() {
    let env = Env::new();
    let admin = Principal::from_slice(&[0xad; 29]);
    let not_one = VaultError::NotAnAdministrator { caller: admin };
    assert_eq!(answer(env.vault_as(admin).service().set_registration(Registration::Open)), Err(not_one.clone()));
    assert_eq!(answer(env.vault_as(admin).service().list_registrants()), Err(not_one));
    let named = answer(env.vault_as(stranger()).service().set_administrators(vec![admin]));
    assert!(matches!(named, Err(VaultError::NotAController { .. })), "{named:?}");
    assert!(matches!(
        answer(env.vault().service().set_administrators(vec![Principal::anonymous()])),
        Err(VaultError::InvalidArgument { .. })
    ));
    let too_many: Vec<Principal> = (0..11u8).map(|i| Principal::from_slice(&[i; 29])).collect();
    assert!(matches!(answer(env.vault().service().set_administrators(too_many)), Err(VaultError::TooMany { max: 10, .. })));
    answer(env.vault().service().set_administrators(vec![admin])).unwrap();
    answer(env.vault_as(admin).service().set_registration(Registration::Open)).unwrap();
    let info = answer(env.vault_as(admin).service().admin_info()).unwrap();
    assert_eq!((info.administrators, info.registration), (vec![admin], Registration::Open));
    let names = answer(env.vault_as(admin).service().set_administrators(vec![admin, stranger()]));
    assert!(matches!(names, Err(VaultError::NotAController { .. })), "only the vault's controllers name administrators");
    // Registrants and what their apps hold.
    let app = env.registered(AppKind::Notes, manual(), keep(3));
    AppKind::Notes.apply(&env.app(app), 0);
    let job = env.snapshot(app);
    let registrants = answer(env.vault_as(admin).service().list_registrants()).unwrap();
    let owners = registrants.iter().find(|r| r.registrant == owner()).expect("the owner registered an app");
    assert_eq!(owners.apps.len(), 1);
    let usage = &owners.apps[0];
    assert_eq!((usage.app, usage.snapshots, usage.running_job), (app, 1, None));
    assert_eq!(usage.snapshot_bytes, env.vault().list_snapshots(app).unwrap()[0].size);
    assert!(job.error.is_none());
}

#[test]
fn a_suspended_app_gets_no_new_work_until_resumed_and_keeps_its_snapshots() {
    let env = Env::new();
    let app = env.registered(AppKind::Notes, schedule(1), keep(10));
    AppKind::Notes.apply(&env.app(app), 0);
    let first = env.snapshot(app);
    let suspend = |caller| answer(env.vault_as(caller).service().suspend_app(SuspendArgs { app, reason: "x".repeat(10_000) }));
    assert_eq!(suspend(stranger()), Err(VaultError::NotAnAdministrator { caller: stranger() }));
    suspend(owner()).unwrap();
    let refused = env.vault().snapshot_now(app);
    let Err(VaultError::Suspended { suspension, .. }) = &refused else { panic!("{refused:?}") };
    assert!(suspension.by == owner() && suspension.reason.chars().count() <= 259, "the reason is cut");
    assert!(matches!(env.vault().restore(app, first.snapshot_id.unwrap(), None), Err(VaultError::Suspended { .. })));
    // Scheduled slots pass without a snapshot; reading and export go on.
    for _ in 0..3 {
        env.ic.advance_time(HOUR);
        env.run_for(5);
    }
    let snapshots = env.vault().list_snapshots(app).unwrap();
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    env.vault().snapshot_chunk(app, snapshots[0].id, 0).expect("still readable");
    answer(env.vault().service().resume_app(app)).unwrap();
    assert!(env.snapshot(app).error.is_none());
}

#[test]
fn an_evicted_app_loses_its_registration_and_job_but_not_its_snapshots() {
    let env = Env::new();
    let app = env.registered(AppKind::Ledger, manual(), keep(10));
    AppKind::Ledger.apply(&env.app(app), 0);
    let first = env.snapshot(app);
    env.ic.reject_calls(ic_harness::CallMatcher::to(app).method(vault_api::protocol::methods::DUMP_CHUNK), ic_harness::RejectCode::SysTransient, "busy", None);
    let stuck = env.vault().snapshot_now(app).unwrap();
    answer(env.vault().service().suspend_app(SuspendArgs { app, reason: "abuse".into() })).unwrap();
    assert_eq!(answer(env.vault_as(stranger()).service().evict_app(app)), Err(VaultError::NotAnAdministrator { caller: stranger() }));
    answer(env.vault().service().evict_app(app)).unwrap();
    assert_eq!(env.vault().app_info(app), Err(VaultError::UnknownApp { app }));
    env.ic.clear_faults();
    // Registered again, its controllers find the snapshot it had; it is still suspended.
    env.vault().register(app, manual(), keep(10)).unwrap();
    let listed = env.vault().list_snapshots(app).unwrap();
    assert_eq!(listed.iter().map(|s| s.id).collect::<Vec<_>>(), vec![first.snapshot_id.unwrap()]);
    assert_eq!(env.vault().job_status(stuck.id), Err(VaultError::UnknownJob { job: stuck.id }));
    assert!(matches!(env.vault().snapshot_now(app), Err(VaultError::Suspended { .. })), "eviction does not lift a suspension");
    answer(env.vault().service().resume_app(app)).unwrap();
    assert!(env.snapshot(app).error.is_none());
}

fn set_limits(env: &Env, limits: Limits) {
    answer(env.vault().service().set_limits(limits)).unwrap();
}

/// The chunks these tests import in: the smallest a vault takes for an image of several.
const IMPORT_CHUNK: u64 = 64 * 1024;

fn import(env: &Env, caller: Principal, app: Principal, data: &[u8]) -> VaultResult<ImportInfo> {
    let args = ImportArgs {
        app,
        state_kind: StateKind::Serde,
        size: data.len() as u64,
        chunk_size: IMPORT_CHUNK,
        sha256: vault_api::manifest::image_hash(vault_api::ContentHash::Sha256, data, IMPORT_CHUNK),
        taken_at_nanos: 1,
        module_hash: None,
        state_layout: None,
        content_hash: None,
    };
    answer(env.vault_as(caller).service().import_begin(args))
}

#[test]
fn an_open_vault_holds_a_stranger_to_its_quotas() {
    let env = Env::new();
    answer(env.vault().service().set_registration(Registration::Open)).unwrap();
    let app = app_of(&env, stranger());
    registers(&env, stranger(), app).unwrap();
    AppKind::Notes.apply(&env.app(app), PREFILL);
    let mine = env.vault_as(stranger());
    // As the stranger: the vault's owner controls nothing of theirs.
    let job = |env: &Env| {
        let id = mine.snapshot_now(app).unwrap().id;
        for _ in 0..500 {
            let job = mine.job_status(id).unwrap();
            if job.finished_at_nanos.is_some() {
                return job;
            }
            env.run_for(1);
        }
        panic!("job {id} did not finish");
    };
    assert!(job(&env).error.is_none());
    let size = mine.list_snapshots(app).unwrap()[0].size;
    // Room for one more snapshot's bytes, and two snapshots in all.
    set_limits(&env, Limits { app_bytes: 2 * size + size / 2, app_snapshots: 2, app_imports: 1, ..Limits::default() });
    assert!(job(&env).error.is_none());
    let third = job(&env);
    let Some(JobError::Refused { error: VaultError::QuotaExceeded { what, used, limit, .. } }) = third.error else { panic!("{third:?}") };
    assert_eq!((what.as_str(), used, limit), ("snapshots", 2, 2));
    assert_eq!(mine.list_snapshots(app).unwrap().len(), 2, "the refused snapshot is never listed");
    // Bytes: a larger limit on snapshots, not on bytes (the chunks the two snapshots share count
    // once in what the app holds).
    let held = mine.app_info(app).unwrap().stored_bytes.expect("this vault counts them");
    set_limits(&env, Limits { app_bytes: held + size / 2, app_snapshots: 10, app_imports: 1, ..Limits::default() });
    let over = job(&env);
    assert!(matches!(over.error, Some(JobError::Refused { error: VaultError::QuotaExceeded { ref what, .. } }) if what == "bytes"), "{over:?}");
    // Imports: one open at a time, and within the bytes left.
    let refused = import(&env, stranger(), app, &vec![1u8; size as usize]);
    assert!(matches!(refused, Err(VaultError::QuotaExceeded { ref what, .. }) if what == "bytes"), "{refused:?}");
    import(&env, stranger(), app, b"a small import").unwrap();
    let second = import(&env, stranger(), app, b"another small import");
    assert!(matches!(second, Err(VaultError::QuotaExceeded { ref what, .. }) if what == "imports open"), "{second:?}");
}

#[test]
fn no_job_or_import_spends_into_the_cycles_reserve() {
    let env = Env::with_vault_cycles(ic_harness::Harness::new(), 2_000_000_000_000);
    let app = env.registered(AppKind::Notes, manual(), keep(5));
    AppKind::Notes.apply(&env.app(app), 0);
    assert!(env.snapshot(app).error.is_none(), "the default reserve leaves room");
    // A reserve of ten years of storage is more than the vault has.
    set_limits(&env, Limits { reserve_days: 3_650, ..Limits::default() });
    let info = answer(env.vault().service().admin_info()).unwrap();
    let balance = env.ic.cycle_balance(env.vault);
    assert!(info.reserved_cycles > balance, "{} reserved of {balance}", info.reserved_cycles);
    assert!(matches!(env.vault().snapshot_now(app), Err(VaultError::InsufficientCycles { available: 0, .. })));
    assert!(matches!(import(&env, owner(), app, b"import"), Err(VaultError::InsufficientCycles { available: 0, .. })));
    assert!(env.vault().list_jobs(app).unwrap().len() == 1, "no job started");
}

#[test]
fn an_unfinished_import_expires_and_releases_its_chunks() {
    let env = Env::new();
    let app = env.registered(AppKind::Notes, manual(), keep(5));
    set_limits(&env, Limits { import_ttl_seconds: 60, ..Limits::default() });
    let data = vec![9u8; 3 * IMPORT_CHUNK as usize];
    let first = &data[..IMPORT_CHUNK as usize];
    let begun = import(&env, owner(), app, &data).unwrap();
    let chunk = ImportChunk {
        app,
        snapshot_id: begun.snapshot_id,
        index: 0,
        data: serde_bytes::ByteBuf::from(first.to_vec()),
        sha256: vault_api::Sha256::of(first),
    };
    answer(env.vault().service().import_chunk(chunk.clone())).unwrap();
    env.ic.advance_time(std::time::Duration::from_secs(61));
    env.run_for(3);
    // A chunk for it is refused before the vault pays for it.
    let gone = env.vault().service().import_chunk(chunk).expect_err("refused at inspection").to_string();
    let not_an_import = VaultError::NotAnImport { app, snapshot_id: begun.snapshot_id }.to_string();
    assert!(gone.contains("refused before induction") && gone.contains(&not_an_import), "{gone}");
    // Its place is free again: the same import begins anew.
    assert_ne!(import(&env, owner(), app, &data).unwrap().snapshot_id, begun.snapshot_id);
}

#[test]
fn query_access_follows_the_controllers_the_vault_sees_within_a_sweep() {
    let env = Env::new();
    let app = env.registered(AppKind::Notes, manual(), keep(3));
    AppKind::Notes.apply(&env.app(app), 0);
    env.snapshot(app);
    let reads = |env: &Env| env.vault_as(stranger()).list_snapshots(app).map(|s| s.len());
    // Added as a controller: queries know once the vault has looked (the stranger asks it to).
    env.ic.set_controllers(app, Some(owner()), vec![owner(), stranger()]).unwrap();
    assert!(matches!(reads(&env), Err(VaultError::NotAController { .. })), "not seen yet");
    answer(env.vault_as(stranger()).service().refresh_access(app)).expect("a controller now");
    assert_eq!(reads(&env), Ok(1));
    // Removed: a former controller reads until the vault looks again, at the latest at the next
    // sweep of the watchdog (every 10 minutes, 10 apps a sweep).
    env.ic.set_controllers(app, Some(owner()), vec![owner()]).unwrap();
    assert_eq!(reads(&env), Ok(1), "the vault has not looked yet");
    let refreshed = answer(env.vault_as(stranger()).service().refresh_access(app));
    assert!(matches!(refreshed, Err(VaultError::NotAController { .. })), "{refreshed:?}");
    assert!(matches!(reads(&env), Err(VaultError::NotAController { .. })), "refused once the vault looked");
    // Without anyone asking, the watchdog's sweep sees each change.
    env.ic.set_controllers(app, Some(owner()), vec![owner(), stranger()]).unwrap();
    env.ic.advance_time(std::time::Duration::from_secs(601));
    env.run_for(5);
    assert_eq!(reads(&env), Ok(1), "the sweep saw the stranger added");
    env.ic.set_controllers(app, Some(owner()), vec![owner()]).unwrap();
    env.ic.advance_time(std::time::Duration::from_secs(601));
    env.run_for(5);
    assert!(matches!(reads(&env), Err(VaultError::NotAController { .. })), "the sweep saw the stranger removed");
}

#[test]
fn an_import_claiming_a_future_time_does_not_outlive_newer_snapshots() {
    let env = Env::new();
    let app = env.registered(AppKind::Notes, manual(), keep(1));
    let data = b"an imported image".to_vec();
    let args = ImportArgs {
        app,
        state_kind: StateKind::Serde,
        size: data.len() as u64,
        chunk_size: 1024,
        sha256: vault_api::manifest::image_hash(vault_api::ContentHash::Sha256, &data, 1024),
        taken_at_nanos: u64::MAX,
        module_hash: None,
        state_layout: None,
        content_hash: None,
    };
    let begun = answer(env.vault().service().import_begin(args)).unwrap();
    let chunk = ImportChunk { app, snapshot_id: begun.snapshot_id, index: 0, sha256: vault_api::Sha256::of(&data), data: serde_bytes::ByteBuf::from(data) };
    answer(env.vault().service().import_chunk(chunk)).unwrap();
    let imported = answer(env.vault().service().import_commit(vault_api::service::SnapshotRef { app, snapshot_id: begun.snapshot_id })).unwrap();
    assert!(imported.taken_at_nanos < u64::MAX, "clamped to the vault's time");
    // Keeping one: the snapshot taken after the import is the one kept.
    AppKind::Notes.apply(&env.app(app), 0);
    let taken = env.snapshot(app);
    let kept: Vec<u64> = env.vault().list_snapshots(app).unwrap().iter().map(|s| s.id).collect();
    assert_eq!(kept, vec![taken.snapshot_id.unwrap()]);
}

#[test]
fn a_controller_removed_since_it_began_an_import_cannot_complete_it() {
    let env = Env::new();
    let app = env.registered(AppKind::Notes, manual(), keep(3));
    let controllers = env.ic.get_controllers(app);
    env.ic.set_controllers(app, Some(owner()), [controllers.clone(), vec![stranger()]].concat()).unwrap();
    answer(env.vault_as(stranger()).service().refresh_access(app)).unwrap();
    let data = b"an imported image".to_vec();
    let begun = import(&env, stranger(), app, &data).unwrap();
    let chunk = ImportChunk { app, snapshot_id: begun.snapshot_id, index: 0, sha256: vault_api::Sha256::of(&data), data: serde_bytes::ByteBuf::from(data) };
    answer(env.vault_as(stranger()).service().import_chunk(chunk)).unwrap();
    // Removed, and the vault has not seen it yet: the commit asks the IC.
    env.ic.set_controllers(app, Some(owner()), controllers).unwrap();
    let commit = vault_api::service::SnapshotRef { app, snapshot_id: begun.snapshot_id };
    let refused = answer(env.vault_as(stranger()).service().import_commit(commit));
    assert!(matches!(refused, Err(VaultError::NotAController { .. })), "{refused:?}");
    assert!(listed(&env, app).is_empty());
    answer(env.vault().service().import_commit(commit)).expect("a controller completes it");
    assert_eq!(listed(&env, app), vec![begun.snapshot_id]);
}

/// The snapshots of `app` listed, by id.
fn listed(env: &Env, app: Principal) -> Vec<u64> {
    env.vault().list_snapshots(app).unwrap().iter().map(|s| s.id).collect()
}

/// Applies the first `PREFILL` updates to `app`: a state of several chunks.
fn filled(env: &Env, app: Principal) {
    for n in 0..PREFILL {
        AppKind::Notes.apply(&env.app(app), n);
    }
}

/// A snapshot of `app` taken as `caller`, finished.
fn snapshot_as(env: &Env, caller: Principal, app: Principal) -> vault_api::service::JobInfo {
    let id = env.vault_as(caller).snapshot_now(app).unwrap().id;
    env.finish_job_as(caller, id, 2_000)
}

fn refused_by_quota(job: &vault_api::service::JobInfo) -> &VaultError {
    match &job.error {
        Some(JobError::Refused { error: error @ VaultError::QuotaExceeded { .. } }) => error,
        other => panic!("job {} was not refused by a quota: {other:?}", job.id),
    }
}

#[test]
fn snapshots_sharing_their_chunks_count_them_once_in_the_bytes_quota() {
    let env = Env::new();
    let app = env.registered(AppKind::Notes, manual(), keep(10));
    filled(&env, app);
    assert!(env.snapshot(app).error.is_none());
    let (size, chunks) = env.vault().list_snapshots(app).unwrap().first().map(|s| (s.size, s.chunks)).unwrap();
    let held = env.vault().app_info(app).unwrap().stored_bytes.expect("this vault counts them");
    let manifest_pages = 32 * u64::from(chunks);
    assert!(held > 0 && held <= size + manifest_pages, "{held} of {size} and its manifest's pages");
    // Counted whole, a third snapshot of the same state would pass the quota.
    set_limits(&env, Limits { app_bytes: 2 * size + size / 2, ..Limits::default() });
    for _ in 0..4 {
        let job = env.snapshot(app);
        assert!(job.error.is_none(), "{job:?}");
    }
    assert_eq!(listed(&env, app).len(), 5);
    assert_eq!(env.vault().app_info(app).unwrap().stored_bytes, Some(held), "an unchanged state's chunks are stored and counted once");
    let registrants = answer(env.vault().service().list_registrants()).unwrap();
    let owners = registrants.iter().find(|r| r.registrant == owner()).expect("the owner registered the app");
    let usage = &owners.apps[0];
    assert_eq!((usage.stored_bytes, usage.snapshot_bytes, owners.stored_bytes), (held, 5 * size, held));
    // A new snapshot must still fit whole beside what the app holds.
    set_limits(&env, Limits { app_bytes: held + size - 1, ..Limits::default() });
    let over = env.snapshot(app);
    assert_eq!(
        refused_by_quota(&over),
        &VaultError::QuotaExceeded { app, what: "bytes".into(), used: held, limit: held + size - 1, registrant: None }
    );
}

#[test]
fn an_app_whose_retention_keeps_as_many_snapshots_as_its_quota_keeps_taking_them() {
    let env = Env::new();
    let app = env.registered(AppKind::Notes, manual(), keep(2));
    set_limits(&env, Limits { app_snapshots: 2, ..Limits::default() });
    let mut taken = Vec::new();
    for n in 0..5 {
        AppKind::Notes.apply(&env.app(app), PREFILL + n);
        let job = env.snapshot(app);
        assert!(job.error.is_none(), "snapshot {n}: {job:?}");
        taken.push(job.snapshot_id.unwrap());
    }
    assert_eq!(listed(&env, app), taken[3..], "retention keeps the newest two");
    // A policy that keeps more than the quota meets it once the quota is full.
    env.vault().update_schedule(app, None, Some(keep(3))).unwrap();
    let over = env.snapshot(app);
    assert!(matches!(refused_by_quota(&over), VaultError::QuotaExceeded { what, used: 2, limit: 2, .. } if what == "snapshots"), "{over:?}");
    assert_eq!(listed(&env, app), taken[3..]);
}

/// Advances the embedded IC's time to the first second of the next UTC day.
fn next_utc_day(env: &Env) {
    let day = 86_400 * 1_000_000_000;
    let now = env.ic.get_time().as_nanos_since_unix_epoch();
    env.ic.advance_time(std::time::Duration::from_nanos(day - now % day + 1_000_000_000));
}

#[test]
fn an_app_past_its_cycles_of_the_day_gets_no_new_job_or_import_until_the_next_day() {
    let env = Env::new();
    next_utc_day(&env);
    let app = env.registered(AppKind::Notes, manual(), keep(10));
    filled(&env, app);
    let first = env.snapshot(app);
    let spent = env.vault().app_info(app).unwrap().cycles_today.expect("this vault counts them");
    let snapshot = &env.vault().list_snapshots(app).unwrap()[0];
    assert_eq!(spent, snapshot.transfer_cycles, "the day's spending is what the snapshot's calls cost");
    // The day's quota at what was spent: nothing more starts today.
    let limit = spent as u64;
    set_limits(&env, Limits { app_cycles_per_day: limit, ..Limits::default() });
    let refused = env.snapshot(app);
    let VaultError::QuotaExceeded { what, used, limit: quota, registrant: None, .. } = refused_by_quota(&refused) else { unreachable!() };
    assert_eq!((what.as_str(), *quota), ("cycles per day", limit));
    assert!(*used >= limit, "{used}: the refused job's dump_begin call counts too");
    let restore = env.vault().restore(app, first.snapshot_id.unwrap(), None);
    assert!(matches!(restore, Err(VaultError::QuotaExceeded { ref what, .. }) if what == "cycles per day"), "{restore:?}");
    let data = b"a small import".to_vec();
    let refused = import(&env, owner(), app, &data);
    assert!(matches!(refused, Err(VaultError::QuotaExceeded { ref what, .. }) if what == "cycles per day"), "{refused:?}");
    // The next UTC day starts from nothing: the import's estimate, a chunk's ingress, fits.
    next_utc_day(&env);
    assert_eq!(env.vault().app_info(app).unwrap().cycles_today, Some(0));
    import(&env, owner(), app, &data).expect("a new day");
}

#[test]
fn a_job_begun_within_the_days_cycles_ends_though_the_quota_is_lowered_meanwhile() {
    let env = Env::new();
    next_utc_day(&env);
    let app = env.registered(AppKind::Notes, manual(), keep(10));
    filled(&env, app);
    let dump_chunk = ic_harness::CallMatcher::to(app).method(vault_api::protocol::methods::DUMP_CHUNK);
    env.ic.reject_calls(dump_chunk, ic_harness::RejectCode::SysTransient, "busy", None);
    let job = env.vault().snapshot_now(app).unwrap();
    env.until_phase(job.id, vault_api::service::JobPhase::Transferring, 60);
    set_limits(&env, Limits { app_cycles_per_day: 1, ..Limits::default() });
    env.ic.clear_faults();
    let done = env.finish_job(job.id, 2_000);
    assert!(done.error.is_none(), "{done:?}");
    assert!(env.vault().app_info(app).unwrap().cycles_today > Some(1));
}

#[test]
fn calls_cancelled_before_they_are_answered_stay_counted_in_the_days_cycles() {
    let env = Env::new();
    next_utc_day(&env);
    let app = env.registered(AppKind::Notes, manual(), keep(10));
    filled(&env, app);
    let dump_chunk = ic_harness::CallMatcher::to(app).method(vault_api::protocol::methods::DUMP_CHUNK);
    env.ic.drop_responses(dump_chunk, None);
    let job = env.vault().snapshot_now(app).unwrap();
    env.until_phase(job.id, vault_api::service::JobPhase::Transferring, 60);
    env.run_for(3);
    env.vault().cancel_job(job.id).expect("cancel_job");
    // The answers come (SYS_UNKNOWN) after the job ended: no one reads them.
    env.run_for(120);
    env.ic.clear_faults();
    let spent = env.vault().app_info(app).unwrap().cycles_today.expect("this vault counts them");
    // What a chunk call may cost at most (its reply at 2 MiB) is counted when it goes out.
    assert!(spent > 2 << 20 << 10, "{spent} cycles counted for the day");
}

#[test]
fn an_open_vault_holds_each_registrant_to_its_number_of_apps_and_their_bytes() {
    let env = Env::new();
    answer(env.vault().service().set_registration(Registration::Open)).unwrap();
    set_limits(&env, Limits { registrant_apps: 1, ..Limits::default() });
    let (first, second) = (app_of(&env, stranger()), app_of(&env, stranger()));
    registers(&env, stranger(), first).unwrap();
    let refused = registers(&env, stranger(), second);
    let expected = VaultError::QuotaExceeded { app: second, what: "apps".into(), used: 1, limit: 1, registrant: Some(stranger()) };
    assert_eq!(refused, Err(expected));
    assert!(refused.unwrap_err().to_string().contains(&format!("registrant {}'s quota", stranger())));
    assert_eq!(env.vault_as(stranger()).app_info(second), Err(VaultError::UnknownApp { app: second }));
    // Administrators are not held to it.
    env.registered(AppKind::Notes, manual(), keep(1));
    env.registered(AppKind::Notes, manual(), keep(1));
    // Bytes: what the registrant's apps hold together.
    for app in [first, second] {
        AppKind::Notes.apply(&env.app(app), PREFILL);
    }
    assert!(snapshot_as(&env, stranger(), first).error.is_none());
    let held = env.vault_as(stranger()).app_info(first).unwrap().stored_bytes.expect("this vault counts them");
    let limit = held + held / 2;
    set_limits(&env, Limits { registrant_apps: 2, registrant_bytes: limit, ..Limits::default() });
    registers(&env, stranger(), second).unwrap();
    let expected = VaultError::QuotaExceeded { app: second, what: "bytes".into(), used: held, limit, registrant: Some(stranger()) };
    assert_eq!(refused_by_quota(&snapshot_as(&env, stranger(), second)), &expected);
    // Unregistered with its snapshot kept, the first app's bytes stay charged to the stranger.
    env.vault_as(stranger()).unregister(first, false).unwrap();
    assert_eq!(refused_by_quota(&snapshot_as(&env, stranger(), second)), &expected);
    let registrants = answer(env.vault().service().list_registrants()).unwrap();
    let theirs = registrants.iter().find(|r| r.registrant == stranger()).expect("the stranger is listed");
    assert_eq!((theirs.stored_bytes, theirs.apps.iter().map(|a| a.app).collect::<Vec<_>>()), (held, vec![second]));
}

#[test]
fn imports_count_against_the_snapshot_quota_with_the_imports_still_open() {
    let env = Env::new();
    let app = env.registered(AppKind::Notes, manual(), keep(1));
    answer(env.vault().service().set_limits(Limits { app_snapshots: 2, ..Limits::default() })).unwrap();
    env.snapshot(app);
    import(&env, owner(), app, &[1; 10]).expect("room for a second snapshot");
    // No retention runs on an import: the open one and the completed one fill the quota.
    let refused = import(&env, owner(), app, &[2; 10]);
    assert_eq!(refused, Err(VaultError::QuotaExceeded { app, what: "snapshots".into(), used: 2, limit: 2, registrant: None }));
}
