//! Fault campaign: seeded random sequences of app updates, snapshots, restores, deletions,
//! vault and app upgrades, injected traps, rejects, lost and corrupted messages, timer firings
//! and refused requests over several apps. After every step the vault and the apps are checked
//! against a model of what they should hold (invariants 1-8 of the design); a failure names
//! the seed and the step that reproduce it.
//!
//! In CI: `CAMPAIGN_SEEDS` seeds (default 3) of `CAMPAIGN_STEPS` steps (default 150). One seed:
//! `CAMPAIGN_SEED=n`. The long run: `cargo test --release -p vault-tests --test integration
//! a_long_campaign -- --ignored --nocapture` (10 seeds of 1,000 steps).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use candid::Principal;
use ic_harness::{CallMatcher, RejectCode};
use ic_management_canister_types::CanisterIdRecord;
use serde_bytes::ByteBuf;
use vault_api::Sha256;
use vault_api::protocol::{BackupError, DumpBegin, RestoreBegin, StateKind, methods};
use vault_api::service::{JobError, JobInfo, JobKind, JobPhase, RestoreArgs, SnapshotInfo, SnapshotRef, VaultError};
use vault_tests::*;

/// splitmix64: small, seedable, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len() as u64) as usize])
    }
}

/// An app's state as its `digest` reports it: update count and SHA-256.
type Digest = (u64, Vec<u8>);

#[derive(Clone, Debug)]
enum ModelJob {
    /// The states the app passed through while the snapshot could have been taken.
    Snapshot { id: u64, window: Vec<Digest> },
    /// `before` is the target's state when the restore started: kept until the commit.
    Restore { id: u64, source: Principal, snapshot: u64, before: Digest },
}

impl ModelJob {
    fn id(&self) -> u64 {
        match self {
            ModelJob::Snapshot { id, .. } | ModelJob::Restore { id, .. } => *id,
        }
    }
}

struct ModelApp {
    id: Principal,
    kind: AppKind,
    keep: usize,
    /// A restore target only: never updated, never snapshotted.
    clone: bool,
    state: Digest,
    next_update: u64,
    job: Option<ModelJob>,
    /// Jobs of this app the model has seen.
    jobs_seen: BTreeSet<u64>,
    /// Completed snapshots, oldest first; those deleted on request; those retention let go
    /// (the vault deletes them unless a running restore reads them).
    completed: Vec<u64>,
    deleted: BTreeSet<u64>,
    retired: BTreeSet<u64>,
}

impl ModelApp {
    /// The snapshots the vault must keep.
    fn live_snapshots(&self) -> Vec<u64> {
        self.completed.iter().copied().filter(|s| !self.deleted.contains(s) && !self.retired.contains(s)).collect()
    }

    /// A snapshot completed: retention keeps the newest `keep`.
    fn complete(&mut self, snapshot: u64) {
        self.completed.push(snapshot);
        let live = self.live_snapshots();
        self.retired.extend(live.iter().take(live.len().saturating_sub(self.keep)));
    }
}

struct ModelSnapshot {
    app: Principal,
    window: Vec<Digest>,
    /// The state it holds, once a restore showed it.
    state: Option<Digest>,
    info: SnapshotInfo,
}

#[derive(Default, Debug)]
struct Tally {
    steps: u64,
    checks: u64,
    snapshots: u64,
    restores: u64,
    failed_jobs: u64,
    vault_upgrades: u64,
    app_upgrades: u64,
    refusals: u64,
    faults_fired: u64,
    /// Of those, traps injected into the vault.
    vault_traps: u64,
}

struct Campaign {
    env: Env,
    rng: Rng,
    apps: Vec<ModelApp>,
    snapshots: BTreeMap<u64, ModelSnapshot>,
    /// Snapshots retention let go that the vault may still list: a restore read them (the
    /// vault spares those), or their retirement raced with a request.
    may_linger: BTreeSet<u64>,
    log: Vec<String>,
    tally: Tally,
    /// How much of the vault's log was checked for traps.
    vault_logs_seen: usize,
    /// Invariant checks passed (counted through `&self`, inside closures that report).
    checks: std::cell::Cell<u64>,
    faults_before: u64,
}

type Checked = Result<(), String>;

fn ensure(condition: bool, what: impl FnOnce() -> String) -> Checked {
    if condition { Ok(()) } else { Err(what()) }
}

fn injected(e: &impl std::fmt::Display) -> bool {
    e.to_string().contains("injected fault")
}

const MANY_CYCLES: u128 = 1 << 100;

impl Campaign {
    fn new(seed: u64) -> Campaign {
        let env = Env::with_vault_cycles(ic_harness::Harness::new(), MANY_CYCLES);
        let mut campaign = Campaign {
            env,
            rng: Rng(seed),
            apps: Vec::new(),
            snapshots: BTreeMap::new(),
            may_linger: BTreeSet::new(),
            log: Vec::new(),
            tally: Tally::default(),
            vault_logs_seen: 0,
            checks: std::cell::Cell::new(0),
            faults_before: 0,
        };
        // Two serde apps on timers (one big enough for several chunks), a stable-memory app
        // snapshotted on request, and a clone of each kind to restore into.
        campaign.add_app(AppKind::Notes, schedule(1), 2, false, 2);
        campaign.add_app(AppKind::Notes, schedule(2), 3, false, 0);
        campaign.add_app(AppKind::Ledger, manual(), 2, false, 0);
        campaign.add_app(AppKind::Notes, manual(), 1, true, 0);
        campaign.add_app(AppKind::Ledger, manual(), 1, true, 0);
        campaign.faults_before = campaign.env.ic.faults_fired();
        campaign
    }

    fn add_app(&mut self, kind: AppKind, schedule: vault_api::service::Schedule, keep_last: u32, clone: bool, prefill: u64) {
        let id = self.env.registered(kind, schedule, keep(keep_last));
        self.env.ic.add_cycles(id, MANY_CYCLES);
        let client = self.env.app(id);
        for n in 0..prefill {
            kind.apply(&client, n);
        }
        let state = client.digest();
        self.apps.push(ModelApp {
            id,
            kind,
            keep: keep_last as usize,
            clone,
            state,
            next_update: PREFILL,
            job: None,
            jobs_seen: BTreeSet::new(),
            completed: Vec::new(),
            deleted: BTreeSet::new(),
            retired: BTreeSet::new(),
        });
    }

    /// The app's digest, asked again if an injected trap hit the asking.
    fn digest(&self, app: Principal) -> Result<Digest, String> {
        let client = self.env.app(app);
        for _ in 0..8 {
            match client.try_update::<_, (u64, ByteBuf)>("digest", ()) {
                Ok((seq, hash)) => return Ok((seq, hash.into_vec())),
                Err(e) if injected(&e) => continue,
                Err(e) => return Err(format!("digest of {app}: {e}")),
            }
        }
        Err(format!("digest of {app} kept trapping"))
    }

    /// A vault update as `caller`, sent again if an injected trap hit it (the trap rolled it
    /// back).
    fn request<T>(&self, caller: Principal, call: impl Fn(&mut VaultService<'_>) -> VaultReply<T>) -> Result<VaultResult<T>, String> {
        let mut trapped = String::new();
        for _ in 0..8 {
            match call(&mut self.env.vault_as(caller).service()) {
                Ok(result) => return Ok(result),
                Err(e) if injected(&e) => trapped = e.to_string(),
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(format!("kept trapping: {trapped}"))
    }

    fn say(&mut self, what: String) {
        self.log.push(format!("step {}: {what}", self.tally.steps));
    }

    fn check(&self, condition: bool, what: impl FnOnce() -> String) -> Checked {
        self.checks.set(self.checks.get() + 1);
        ensure(condition, what)
    }

    // ---- steps ----

    fn step(&mut self) -> Checked {
        let before: Vec<Digest> = self.apps.iter().map(|a| a.state.clone()).collect();
        match self.rng.below(100) {
            0..30 => self.update()?,
            30..40 => self.snapshot_now()?,
            40..45 => self.restore(false)?,
            45..52 => self.restore(true)?,
            52..56 => self.delete()?,
            56..71 => self.advance(),
            71..74 => self.settle()?,
            74..76 => self.upgrade_vault()?,
            76..79 => self.upgrade_app()?,
            79..94 => self.inject_fault(),
            94..97 => self.stranger()?,
            _ => self.verify_stored()?,
        }
        self.observe(&before)
    }

    fn main_apps(&self) -> Vec<usize> {
        (0..self.apps.len()).filter(|&i| !self.apps[i].clone).collect()
    }

    fn restoring_in_place(&self, i: usize) -> bool {
        matches!(self.apps[i].job, Some(ModelJob::Restore { .. }))
    }

    fn update(&mut self) -> Checked {
        let candidates: Vec<usize> = self.main_apps().into_iter().filter(|&i| !self.restoring_in_place(i)).collect();
        let Some(&i) = self.rng.pick(&candidates) else { return Ok(()) };
        let (id, kind, n) = (self.apps[i].id, self.apps[i].kind, self.apps[i].next_update);
        self.apps[i].next_update += 1;
        self.say(format!("update {n} of {id}"));
        match kind.try_apply(&self.env.app(id), n) {
            Ok(seq) => {
                let expected = self.apps[i].state.0 + 1;
                self.check(seq == expected, || format!("update {n} of {id} left the app at seq {seq}, expected {expected}"))?;
                // A serde app's digest is cheap: always known. A stable-memory app's is asked
                // while a snapshot could catch the state.
                let in_window = matches!(self.apps[i].job, Some(ModelJob::Snapshot { .. }));
                self.apps[i].state = if kind == AppKind::Notes || in_window { self.digest(id)? } else { (seq, Vec::new()) };
                let state = self.apps[i].state.clone();
                if let Some(ModelJob::Snapshot { window, .. }) = &mut self.apps[i].job {
                    window.push(state);
                }
            }
            Err(e) if injected(&e) => {
                let seq = self.env.app(id).seq();
                let expected = self.apps[i].state.0;
                self.check(seq == expected, || format!("a trapped update of {id} was not rolled back: seq {seq}, expected {expected}"))?;
            }
            Err(e) => return Err(format!("update {n} of {id}: {e}")),
        }
        Ok(())
    }

    /// The app's state with its hash, asked if not known.
    fn known_state(&mut self, i: usize) -> Result<Digest, String> {
        if self.apps[i].state.1.is_empty() {
            self.apps[i].state = self.digest(self.apps[i].id)?;
        }
        Ok(self.apps[i].state.clone())
    }

    fn snapshot_now(&mut self) -> Checked {
        let Some(&i) = self.rng.pick(&self.main_apps()) else { return Ok(()) };
        let id = self.apps[i].id;
        let result = self.request(owner(), |v| v.snapshot_now(id))?;
        self.say(format!("snapshot_now {id}: {:?}", result.as_ref().map(|j| j.id)));
        match (&self.apps[i].job, result) {
            (_, Ok(job)) => {
                self.ended_meanwhile(i)?;
                let state = self.known_state(i)?;
                self.apps[i].jobs_seen.insert(job.id);
                self.apps[i].job = Some(ModelJob::Snapshot { id: job.id, window: vec![state] });
                Ok(())
            }
            (Some(running), Err(VaultError::JobRunning { job, .. })) => {
                self.tally.refusals += 1;
                let expected = running.id();
                self.check(job == expected, || format!("snapshot_now of {id} refused for job {job}, but {expected} runs"))
            }
            (running, result) => Err(format!("snapshot_now of {id} with job {running:?} running: {result:?}")),
        }
    }

    fn restore(&mut self, into_clone: bool) -> Checked {
        let Some(&source) = self.rng.pick(&self.main_apps()) else { return Ok(()) };
        let Some(&snapshot) = self.rng.pick(&self.apps[source].live_snapshots()) else { return Ok(()) };
        let target = if into_clone {
            let kind = self.apps[source].kind;
            (0..self.apps.len()).find(|&i| self.apps[i].clone && self.apps[i].kind == kind).expect("a clone of each kind")
        } else {
            source
        };
        let (source_id, target_id) = (self.apps[source].id, self.apps[target].id);
        let args = RestoreArgs { app: source_id, snapshot_id: snapshot, target: into_clone.then_some(target_id) };
        let result = self.request(owner(), |v| v.restore(args))?;
        self.say(format!("restore {snapshot} of {source_id} into {target_id}: {:?}", result.as_ref().map(|j| j.id)));
        self.catch_up(source)?;
        match (&self.apps[target].job, result) {
            (_, Ok(job)) => {
                self.ended_meanwhile(target)?;
                let before = self.known_state(target)?;
                self.may_linger.insert(snapshot);
                self.apps[target].jobs_seen.insert(job.id);
                self.apps[target].job = Some(ModelJob::Restore { id: job.id, source: source_id, snapshot, before });
                Ok(())
            }
            (Some(running), Err(VaultError::JobRunning { job, .. })) => {
                self.tally.refusals += 1;
                let expected = running.id();
                self.check(job == expected, || format!("restore into {target_id} refused for job {job}, but {expected} runs"))
            }
            // Retention let it go in the rounds that ran the request.
            (_, Err(VaultError::UnknownSnapshot { .. })) if self.apps[source].retired.contains(&snapshot) => {
                self.tally.refusals += 1;
                Ok(())
            }
            (running, result) => Err(format!("restore into {target_id} with job {running:?} running: {result:?}")),
        }
    }

    /// Takes in the end of app `i`'s job if it ended in the rounds that ran the last request.
    /// The two ran in either order, so what the end retired may linger.
    fn catch_up(&mut self, i: usize) -> Checked {
        let Some(job) = self.apps[i].job.as_ref().map(ModelJob::id) else { return Ok(()) };
        if !self.env.vault().job_status(job).is_ok_and(|j| finished(&j)) {
            return Ok(());
        }
        let retired = self.apps[i].retired.clone();
        self.observe_job(i)?;
        let newly: Vec<u64> = self.apps[i].retired.difference(&retired).copied().collect();
        self.may_linger.extend(newly);
        Ok(())
    }

    /// A new job of app `i` started: the one the model had must have ended in the rounds
    /// that ran the request.
    fn ended_meanwhile(&mut self, i: usize) -> Checked {
        self.catch_up(i)?;
        let running = self.apps[i].job.as_ref().map(ModelJob::id);
        self.check(running.is_none(), || {
            let status = running.map(|j| self.env.vault().job_status(j));
            format!("a second job started on {} while job {running:?} runs: {status:?}", self.apps[i].id)
        })
    }

    fn delete(&mut self) -> Checked {
        let Some(&i) = self.rng.pick(&self.main_apps()) else { return Ok(()) };
        let id = self.apps[i].id;
        let live = self.apps[i].live_snapshots();
        // Now and then a snapshot that does not exist (any more).
        let snapshot = match self.rng.pick(&live) {
            Some(&s) if !self.rng.chance(15) => s,
            _ => self.rng.below(1000) + 10_000,
        };
        let readers: Vec<u64> = self
            .apps
            .iter()
            .filter_map(|a| match a.job {
                Some(ModelJob::Restore { id: job, source, snapshot: s, .. }) if source == id && s == snapshot => Some(job),
                _ => None,
            })
            .collect();
        let result = self.request(owner(), |v| v.delete_snapshot(SnapshotRef { app: id, snapshot_id: snapshot }))?;
        self.say(format!("delete {snapshot} of {id}: {result:?}"));
        self.catch_up(i)?;
        let live = self.apps[i].live_snapshots();
        match result {
            Ok(()) => {
                // A restore reading it may have ended in the rounds that ran the delete.
                let read = readers.iter().any(|&job| self.env.vault().job_status(job).is_ok_and(|j| !finished(&j)));
                let deletable = self.apps[i].completed.contains(&snapshot) && !self.apps[i].deleted.contains(&snapshot) && !read;
                self.check(deletable, || format!("deleted {snapshot} of {id}, which is not deletable"))?;
                self.apps[i].deleted.insert(snapshot);
            }
            Err(VaultError::JobRunning { .. }) => {
                self.tally.refusals += 1;
                self.check(!readers.is_empty(), || format!("delete of {snapshot} refused as in use, but no restore reads it"))?;
            }
            Err(VaultError::UnknownSnapshot { .. }) => {
                self.tally.refusals += 1;
                self.check(!live.contains(&snapshot), || format!("delete of live snapshot {snapshot} of {id} refused as unknown"))?;
            }
            Err(e) => return Err(format!("delete {snapshot} of {id}: {e}")),
        }
        Ok(())
    }

    /// Time passes: seconds between rounds, now and then hours (the timers' schedules).
    fn advance(&mut self) {
        let seconds = if self.rng.chance(15) { 1800 + self.rng.below(3 * 3600) } else { 1 + self.rng.below(10) };
        let rounds = 1 + self.rng.below(5);
        self.say(format!("advance {seconds} s, {rounds} rounds"));
        self.env.ic.advance_time(Duration::from_secs(seconds));
        for _ in 0..rounds {
            self.env.ic.tick();
        }
    }

    /// Rounds a second apart until no job the model knows of is running. A trap in the vault's
    /// global timer handler stops its timer until an update call: one comes after a while.
    fn settle(&mut self) -> Checked {
        self.say("settle".into());
        for round in 0..2_000 {
            if round == 1_000 {
                let refused = self.request(owner(), |v| v.snapshot_now(Principal::management_canister()))?;
                ensure(matches!(refused, Err(VaultError::UnknownApp { .. })), || format!("{refused:?}"))?;
            }
            let running: Vec<u64> = self.apps.iter().filter_map(|a| a.job.as_ref().map(ModelJob::id)).collect();
            if running.iter().all(|&id| self.env.vault().job_status(id).is_ok_and(|j| finished(&j))) {
                return Ok(());
            }
            self.env.ic.advance_time(Duration::from_secs(1));
            self.env.ic.tick();
        }
        Err("jobs did not finish in 2,000 rounds".into())
    }

    /// Stops the vault (its outstanding calls end first), upgrades it and starts it.
    fn upgrade_vault(&mut self) -> Checked {
        self.say("upgrade the vault".into());
        let ic = &self.env.ic;
        let vault = self.env.vault;
        let stop = ic.submit_call(Principal::management_canister(), owner(), "stop_canister", candid::encode_one(CanisterIdRecord { canister_id: vault }).unwrap()).map_err(|e| e.to_string())?;
        let mut stopped = None;
        for _ in 0..1_000 {
            stopped = ic.ingress_status(stop);
            if stopped.is_some() {
                break;
            }
            ic.advance_time(Duration::from_secs(1));
            ic.tick();
        }
        ensure(matches!(stopped, Some(Ok(_))), || format!("the vault did not stop: {stopped:?}"))?;
        // An injected trap in an upgrade hook fails the upgrade and leaves the vault as it
        // was; the next attempt goes through.
        let upgrade = || ic.upgrade_canister(vault, vault_wasm(), candid::encode_args(()).unwrap(), Some(owner()));
        match upgrade() {
            Err(e) if e.reject_message.contains("injected fault") => upgrade(),
            other => other,
        }
        .map_err(|e| format!("vault upgrade: {e}"))?;
        ic.start_canister(vault, Some(owner())).map_err(|e| format!("vault start: {e}"))?;
        self.tally.vault_upgrades += 1;
        Ok(())
    }

    fn upgrade_app(&mut self) -> Checked {
        let Some(&i) = self.rng.pick(&self.main_apps()) else { return Ok(()) };
        let (id, kind) = (self.apps[i].id, self.apps[i].kind);
        self.say(format!("upgrade app {id}"));
        match self.env.ic.upgrade_canister(id, kind.wasm(), candid::encode_args(()).unwrap(), Some(owner())) {
            Ok(()) => self.tally.app_upgrades += 1,
            // An injected trap in a hook fails the upgrade; the app stays as it was.
            Err(e) if e.reject_message.contains("injected fault") => {}
            Err(e) => return Err(format!("upgrade of {id}: {e}")),
        }
        if self.restoring_in_place(i) {
            return Ok(()); // the commit may have run in the upgrade's rounds: the observation checks
        }
        let seq = self.env.app(id).seq();
        let expected = self.apps[i].state.0;
        self.check(seq == expected, || format!("the upgrade of {id} changed its seq to {seq}, expected {expected}"))
    }

    fn inject_fault(&mut self) {
        // Mostly at an app a job is talking to.
        let busy: Vec<Principal> = self.apps.iter().filter(|a| a.job.is_some()).map(|a| a.id).collect();
        let all: Vec<Principal> = self.apps.iter().map(|a| a.id).collect();
        let Some(&app) = (if !busy.is_empty() && self.rng.chance(70) { self.rng.pick(&busy) } else { self.rng.pick(&all) }) else { return };
        let ic = &self.env.ic;
        let vault = self.env.vault;
        let dump = [methods::DUMP_BEGIN, methods::DUMP_CHUNK, methods::DUMP_END];
        let restore = [methods::RESTORE_BEGIN, methods::RESTORE_CHUNK, methods::RESTORE_COMMIT];
        let method = if self.rng.chance(50) { *self.rng.pick(&dump).unwrap() } else { *self.rng.pick(&restore).unwrap() };
        let matcher = CallMatcher::to(app).method(method).from(vault);
        // Mostly a few times; now and then until cleared.
        let times = if self.rng.chance(10) { None } else { Some(1 + self.rng.below(3) as u32) };
        let what = match self.rng.below(6) {
            0 => {
                // The vault too: a trap rolls back one of its messages, which must not stall
                // or lose anything.
                let target = if self.rng.chance(30) { vault } else { app };
                let nth = 1 + self.rng.below(6);
                ic.trap_at_message(target, nth);
                if target == vault {
                    self.tally.vault_traps += 1;
                }
                format!("trap {target} at its message {nth}")
            }
            1 => {
                let code = *self.rng.pick(&[RejectCode::SysTransient, RejectCode::CanisterError, RejectCode::CanisterReject, RejectCode::SysUnknown]).unwrap();
                ic.reject_calls(matcher, code, "injected reject", times);
                format!("reject {method} to {app} with {code:?}, {times:?} times")
            }
            2 => {
                ic.drop_responses(matcher, times.map(|_| 1));
                format!("drop a response of {method} to {app}")
            }
            3 => {
                ic.corrupt_replies(CallMatcher::to(app).method(methods::DUMP_CHUNK).from(vault), times);
                format!("corrupt dump chunks of {app}, {times:?} times")
            }
            4 => {
                ic.corrupt_requests(CallMatcher::to(app).method(methods::RESTORE_CHUNK).from(vault), times);
                format!("corrupt restore chunks to {app}, {times:?} times")
            }
            _ => {
                ic.clear_faults();
                "clear faults".to_string()
            }
        };
        self.say(what);
    }

    /// A stranger tries the vault's and an app's endpoints: refused, nothing changes (the
    /// observation after the step checks the listings and states).
    fn stranger(&mut self) -> Checked {
        let Some(&i) = self.rng.pick(&self.main_apps()) else { return Ok(()) };
        let id = self.apps[i].id;
        let some_snapshot = self.apps[i].live_snapshots().first().copied().unwrap_or(1);
        let what = self.rng.below(6);
        self.say(format!("stranger call {what} on {id}"));
        fn not_a_controller<T: std::fmt::Debug>(r: Result<VaultResult<T>, String>) -> Result<(), String> {
            match r {
                Ok(Err(VaultError::NotAController { .. })) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
        let outcome = match what {
            0 => match self.env.vault_as(stranger()).list_snapshots(id) {
                Err(VaultError::NotAController { .. }) => Ok(()),
                other => Err(format!("{other:?}")),
            },
            1 => not_a_controller(self.request(stranger(), |v| v.snapshot_now(id))),
            2 => not_a_controller(self.request(stranger(), |v| v.restore(RestoreArgs { app: id, snapshot_id: some_snapshot, target: None }))),
            3 => not_a_controller(self.request(stranger(), |v| v.delete_snapshot(SnapshotRef { app: id, snapshot_id: some_snapshot }))),
            4 => self.stranger_to_app(id, methods::DUMP_BEGIN, candid::encode_one(DumpBegin { job: 1 }).unwrap()),
            _ => {
                let kind = if self.apps[i].kind == AppKind::Notes { StateKind::Serde } else { StateKind::StableMemory };
                let begin = RestoreBegin { job: 1, state_kind: kind, size: 1, chunk_size: 1, sha256: Sha256::of(b"") };
                self.stranger_to_app(id, methods::RESTORE_BEGIN, candid::encode_one(begin).unwrap())
            }
        };
        self.tally.refusals += 1;
        self.check(outcome.is_ok(), || format!("stranger call {what} on {id} was not refused: {outcome:?}"))
    }

    /// A stranger's call of a backup endpoint: refused as not the vault, or hit by an injected
    /// trap (which changes nothing either).
    fn stranger_to_app(&self, app: Principal, method: &str, arg: Vec<u8>) -> Result<(), String> {
        match self.env.ic.update_call(app, stranger(), method, arg) {
            Ok(reply) => match candid::decode_one::<Result<candid::Reserved, BackupError>>(&reply) {
                Ok(Err(BackupError::NotTheVault { .. })) => Ok(()),
                other => Err(format!("{other:?}")),
            },
            Err(e) if e.reject_message.contains("injected fault") => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Reads a stored snapshot chunk by chunk: every chunk matches its SHA-256 and together
    /// they give the snapshot's manifest hash.
    fn verify_stored(&mut self) -> Checked {
        let Some(&i) = self.rng.pick(&self.main_apps()) else { return Ok(()) };
        let Some(&snapshot) = self.rng.pick(&self.apps[i].live_snapshots()) else { return Ok(()) };
        self.say(format!("verify stored snapshot {snapshot}"));
        self.verify_chunks(self.apps[i].id, snapshot)
    }

    fn verify_chunks(&mut self, app: Principal, snapshot: u64) -> Checked {
        let info = self.snapshots[&snapshot].info.clone();
        let mut hashes = Vec::new();
        for index in 0..info.chunks {
            let chunk = self.env.vault().snapshot_chunk(app, snapshot, index).map_err(|e| {
                let listed: Vec<u64> = self.env.vault().list_snapshots(app).unwrap_or_default().iter().map(|s| s.id).collect();
                format!("chunk {index} of {snapshot}: {e} (listed: {listed:?})")
            })?;
            self.check(Sha256::of(&chunk.data) == chunk.sha256, || format!("chunk {index} of {snapshot} does not match its hash"))?;
            hashes.push(chunk.sha256);
        }
        let manifest = vault_api::manifest::manifest_hash(info.size, info.chunk_size, &hashes);
        self.check(manifest == Some(info.sha256), || format!("the chunks of {snapshot} do not give its hash"))
    }

    // ---- observation ----

    /// Checks every app and the vault against the model after a step; `before` holds the
    /// apps' states before it (a timer may have started a snapshot at either end of it).
    fn observe(&mut self, before: &[Digest]) -> Checked {
        // The vault traps only where a trap was injected, and in the callbacks of the calls
        // that trap cancelled (ic-cdk traps when their answers arrive).
        let logs = self.env.ic.canister_logs(self.env.vault);
        let traps: Vec<String> = logs[self.vault_logs_seen.min(logs.len())..]
            .iter()
            .map(|l| String::from_utf8_lossy(&l.content).into_owned())
            .filter(|l| l.starts_with("[TRAP]") && !l.contains("injected fault") && !l.contains("Call already trapped"))
            .collect();
        self.vault_logs_seen = logs.len();
        self.check(traps.is_empty(), || format!("the vault trapped: {traps:?}"))?;
        // An update call while observing (a digest) runs rounds in which the vault may move
        // on: observe again until a pass sees it still.
        for pass in 0..10 {
            let executions = self.env.ic.canister_metrics(self.env.vault).executions;
            for (i, before) in before.iter().enumerate() {
                self.observe_job(i)?;
                self.discover_timer_jobs(i, before)?;
                self.observe_listing(i)?;
                self.observe_live_state(i, pass == 0)?;
            }
            if self.env.ic.canister_metrics(self.env.vault).executions == executions {
                return Ok(());
            }
        }
        Err("the vault kept changing while observed".into())
    }

    fn discover_timer_jobs(&mut self, i: usize, before: &Digest) -> Checked {
        if self.apps[i].clone {
            return Ok(());
        }
        let id = self.apps[i].id;
        let jobs = self.env.vault().list_jobs(id).map_err(|e| e.to_string())?;
        let unseen: Vec<JobInfo> = jobs.into_iter().rev().filter(|j| !self.apps[i].jobs_seen.contains(&j.id)).collect();
        for job in unseen {
            self.apps[i].jobs_seen.insert(job.id);
            let timer = matches!(job.kind, JobKind::Snapshot { .. });
            self.check(timer && self.apps[i].job.is_none(), || format!("job {} of {id} appeared from nowhere: {job:?}", job.id))?;
            let mut window = vec![self.known_state(i)?];
            if before.0 != window[0].0 || before.1 != window[0].1 {
                window.insert(0, before.clone());
            }
            self.say(format!("timer started job {} of {id}", job.id));
            self.apps[i].job = Some(ModelJob::Snapshot { id: job.id, window });
            self.observe_job(i)?;
        }
        Ok(())
    }

    fn observe_job(&mut self, i: usize) -> Checked {
        let Some(model) = self.apps[i].job.clone() else { return Ok(()) };
        let id = self.apps[i].id;
        let job = self.env.vault().job_status(model.id()).map_err(|e| format!("job {}: {e}", model.id()))?;
        let listed: Vec<u64> = self.env.vault().list_snapshots(id).map_err(|e| e.to_string())?.iter().map(|s| s.id).collect();
        match (model, job.phase) {
            (ModelJob::Snapshot { window, .. }, JobPhase::Succeeded) => {
                let snapshot = job.snapshot_id.ok_or("a snapshot job without its snapshot")?;
                let info = self.env.vault().list_snapshots(id).map_err(|e| e.to_string())?.into_iter().find(|s| s.id == snapshot);
                let info = info.ok_or_else(|| format!("snapshot {snapshot} of job {} completed but is not listed", job.id))?;
                self.say(format!("snapshot {snapshot} of {id} completed"));
                self.snapshots.insert(snapshot, ModelSnapshot { app: id, window, state: None, info });
                self.apps[i].complete(snapshot);
                self.apps[i].job = None;
                self.tally.snapshots += 1;
            }
            (ModelJob::Snapshot { .. }, phase) => {
                if let Some(snapshot) = job.snapshot_id {
                    self.check(!listed.contains(&snapshot), || format!("incomplete snapshot {snapshot} ({phase:?}) is listed"))?;
                }
                if phase == JobPhase::Failed {
                    self.check(job.error.is_some(), || format!("job {} failed without saying why", job.id))?;
                    self.say(format!("snapshot job {} failed: {:?}", job.id, job.error));
                    self.apps[i].job = None;
                    self.tally.failed_jobs += 1;
                }
            }
            (ModelJob::Restore { snapshot, .. }, JobPhase::Succeeded) => {
                let now = self.digest(id)?;
                self.say(format!("restore of {snapshot} into {id} committed"));
                self.settle_snapshot_state(snapshot, &now)?;
                self.apps[i].state = now;
                self.apps[i].job = None;
                self.tally.restores += 1;
            }
            (ModelJob::Restore { snapshot, before, .. }, JobPhase::Failed) => {
                let now = self.digest(id)?;
                self.say(format!("restore of {snapshot} into {id} failed: {:?}", job.error));
                self.check(job.error.is_some(), || format!("job {} failed without saying why", job.id))?;
                if matches!(job.error, Some(JobError::CommitUnconfirmed { .. })) && now != before {
                    // The vault said it could not learn whether the commit ran: it did.
                    self.settle_snapshot_state(snapshot, &now)?;
                } else {
                    self.check(now == before, || format!("a failed restore changed {id}: {now:?}, was {before:?}"))?;
                }
                self.apps[i].state = now;
                self.apps[i].job = None;
                self.tally.failed_jobs += 1;
            }
            (ModelJob::Restore { snapshot, before, .. }, phase) => {
                // Untouched until the commit; the commit may have run before the vault heard.
                let seq = self.env.app(id).seq();
                let committed = self.snapshots[&snapshot].window.iter().any(|d| d.0 == seq);
                self.check(seq == before.0 || (phase == JobPhase::Finishing && committed), || {
                    format!("{id} changed to seq {seq} before the restore of {snapshot} committed ({phase:?})")
                })?;
            }
        }
        Ok(())
    }

    /// A restore showed what `snapshot` holds: it must be one state of its window (point in
    /// time), and the same every time.
    fn settle_snapshot_state(&mut self, snapshot: u64, state: &Digest) -> Checked {
        let model = self.snapshots.get(&snapshot).ok_or_else(|| format!("unknown snapshot {snapshot}"))?;
        let in_window = model.window.iter().any(|d| d.0 == state.0 && (d.1.is_empty() || d.1 == state.1));
        let same = model.state.as_ref().is_none_or(|s| s == state);
        let window = model.window.iter().map(|d| d.0).collect::<Vec<_>>();
        self.check(in_window, || format!("snapshot {snapshot} restored seq {} not in its window {window:?}", state.0))?;
        self.check(same, || format!("snapshot {snapshot} restored differently from an earlier restore"))?;
        self.snapshots.get_mut(&snapshot).unwrap().state = Some(state.clone());
        Ok(())
    }

    /// Listed: every completed, undeleted snapshot retention keeps; nothing else; each one as
    /// it was when it completed.
    fn observe_listing(&mut self, i: usize) -> Checked {
        if self.apps[i].clone {
            return Ok(());
        }
        let id = self.apps[i].id;
        let listed = self.env.vault().list_snapshots(id).map_err(|e| e.to_string())?;
        let app = &self.apps[i];
        let ids: BTreeSet<u64> = listed.iter().map(|s| s.id).collect();
        let live: BTreeSet<u64> = app.live_snapshots().into_iter().collect();
        self.check(ids.iter().all(|s| app.completed.contains(s) && !app.deleted.contains(s)), || format!("{id} lists {ids:?}, the model has {live:?}"))?;
        self.check(live.is_subset(&ids), || format!("{id} lost a snapshot: lists {ids:?}, must keep {live:?}"))?;
        let spared: Vec<u64> = ids.difference(&live).copied().collect();
        self.check(spared.iter().all(|s| self.may_linger.contains(s)), || format!("{id} keeps {spared:?} past its retention"))?;
        for info in &listed {
            let same = self.snapshots.get(&info.id).is_some_and(|m| m.info == *info && m.app == id);
            self.check(same, || format!("snapshot {} changed after completion: {info:?}", info.id))?;
        }
        Ok(())
    }

    fn observe_live_state(&mut self, i: usize, whole_state: bool) -> Checked {
        if self.restoring_in_place(i) {
            return Ok(());
        }
        let id = self.apps[i].id;
        let seq = self.env.app(id).seq();
        let expected = self.apps[i].state.0;
        self.check(seq == expected, || format!("{id} is at seq {seq}, the model says {expected}"))?;
        // Now and then the whole state, where the model knows its hash.
        if whole_state && !self.apps[i].state.1.is_empty() && self.rng.chance(5) {
            let now = self.digest(id)?;
            let state = self.apps[i].state.clone();
            self.check(now == state, || format!("{id}'s state is {now:?}, the model says {state:?}"))?;
        }
        Ok(())
    }

    // ---- the end ----

    /// Without faults: every job ends, every app takes one more snapshot (retention then keeps
    /// exactly its newest), every kept snapshot verifies, and some restore to their states.
    fn finish(&mut self) -> Checked {
        self.env.ic.clear_faults();
        self.say("finish".into());
        let before: Vec<Digest> = self.apps.iter().map(|a| a.state.clone()).collect();
        self.settle()?;
        self.observe(&before)?;
        for i in self.main_apps() {
            let before: Vec<Digest> = self.apps.iter().map(|a| a.state.clone()).collect();
            if self.apps[i].job.is_none() {
                self.snapshot_now_of(i)?;
            }
            self.settle()?;
            self.observe(&before)?;
        }
        for i in self.main_apps() {
            let id = self.apps[i].id;
            let listed: BTreeSet<u64> = self.env.vault().list_snapshots(id).map_err(|e| e.to_string())?.iter().map(|s| s.id).collect();
            let newest: BTreeSet<u64> = self.apps[i].live_snapshots().into_iter().collect();
            self.check(listed == newest, || format!("{id} lists {listed:?} once idle, its retention keeps {newest:?}"))?;
            for &snapshot in &newest {
                self.verify_chunks(id, snapshot)?;
            }
            if let Some(&snapshot) = newest.iter().next() {
                self.restore_into_clone(i, snapshot)?;
            }
        }
        Ok(())
    }

    fn snapshot_now_of(&mut self, i: usize) -> Checked {
        let id = self.apps[i].id;
        let job = self.request(owner(), |v| v.snapshot_now(id))?.map_err(|e| format!("snapshot_now {id}: {e}"))?;
        let state = self.known_state(i)?;
        self.apps[i].jobs_seen.insert(job.id);
        self.apps[i].job = Some(ModelJob::Snapshot { id: job.id, window: vec![state] });
        Ok(())
    }

    fn restore_into_clone(&mut self, source: usize, snapshot: u64) -> Checked {
        let kind = self.apps[source].kind;
        let target = (0..self.apps.len()).find(|&i| self.apps[i].clone && self.apps[i].kind == kind).expect("a clone of each kind");
        let before = self.known_state(target)?;
        let (source_id, target_id) = (self.apps[source].id, self.apps[target].id);
        let args = RestoreArgs { app: source_id, snapshot_id: snapshot, target: Some(target_id) };
        let job = self.request(owner(), |v| v.restore(args))?.map_err(|e| format!("restore: {e}"))?;
        self.apps[target].jobs_seen.insert(job.id);
        self.apps[target].job = Some(ModelJob::Restore { id: job.id, source: source_id, snapshot, before });
        self.settle()?;
        let done = self.env.vault().job_status(job.id).map_err(|e| e.to_string())?;
        self.check(done.phase == JobPhase::Succeeded, || format!("the final restore of {snapshot} failed: {done:?}"))?;
        self.observe_job(target)
    }
}

fn finished(job: &JobInfo) -> bool {
    matches!(job.phase, JobPhase::Succeeded | JobPhase::Failed)
}

/// Runs one seed; panics with the seed and the last steps on the first violation.
fn run(seed: u64, steps: u64) -> Tally {
    let mut campaign = Campaign::new(seed);
    let mut outcome = Ok(());
    while campaign.tally.steps < steps {
        campaign.tally.steps += 1;
        outcome = campaign.step();
        if outcome.is_err() {
            break;
        }
    }
    if outcome.is_ok() {
        outcome = campaign.finish();
    }
    if let Err(violation) = outcome {
        let recent = campaign.log.iter().rev().take(25).rev().cloned().collect::<Vec<_>>().join("\n  ");
        panic!(
            "campaign seed {seed} failed at step {}: {violation}\n  {recent}\nrerun: CAMPAIGN_SEED={seed} CAMPAIGN_STEPS={steps} cargo test -p vault-tests --test integration campaign -- --nocapture",
            campaign.tally.steps
        );
    }
    campaign.tally.faults_fired = campaign.env.ic.faults_fired() - campaign.faults_before;
    campaign.tally.checks = campaign.checks.get();
    println!("seed {seed}: {:?}", campaign.tally);
    campaign.tally
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn campaign(seeds: u64, steps: u64) {
    let seeds: Vec<u64> = match std::env::var("CAMPAIGN_SEED").ok().and_then(|v| v.parse().ok()) {
        Some(seed) => vec![seed],
        None => (1..=env_u64("CAMPAIGN_SEEDS", seeds)).collect(),
    };
    let steps = env_u64("CAMPAIGN_STEPS", steps);
    let started = std::time::Instant::now();
    let tallies: Vec<Tally> = seeds.iter().map(|&seed| run(seed, steps)).collect();
    let sum = |f: fn(&Tally) -> u64| tallies.iter().map(f).sum::<u64>();
    println!(
        "campaign: {} seeds, {} steps, {} injected faults fired ({} traps armed in the vault), {} invariant checks passed, {} snapshots, {} restores, {} failed jobs, {} vault upgrades, {} app upgrades, {} refusals, in {:.0?}",
        seeds.len(),
        sum(|t| t.steps),
        sum(|t| t.faults_fired),
        sum(|t| t.vault_traps),
        sum(|t| t.checks),
        sum(|t| t.snapshots),
        sum(|t| t.restores),
        sum(|t| t.failed_jobs),
        sum(|t| t.vault_upgrades),
        sum(|t| t.app_upgrades),
        sum(|t| t.refusals),
        started.elapsed()
    );
}

#[test]
fn a_seeded_fault_campaign_keeps_every_invariant() {
    campaign(3, 150);
}

#[test]
#[ignore = "the long run: 10 seeds of 1,000 steps"]
fn a_long_campaign() {
    campaign(10, 1_000);
}
