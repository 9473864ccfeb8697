//! Fault campaign: seeded random sequences of app updates, snapshots, restores, deletions,
//! vault and app upgrades, injected traps, rejects, lost and corrupted messages, timer firings,
//! refused requests, cancelled jobs, suspended apps and limits lowered until quotas refuse, over
//! several apps (library and native captures: the vault a controller, taking native snapshots,
//! the app refusing updates while it is stopped for the take) and, beside them, a hostile app
//! whose lie changes at random. After every step
//! the vault and the apps are checked against a model of what they should hold (invariants 1-8
//! of the design); a failure names the seed and the step that reproduce it.
//!
//! In CI: `CAMPAIGN_SEEDS` seeds (default 3) of `CAMPAIGN_STEPS` steps (default 150). One seed:
//! `CAMPAIGN_SEED=n`. The long run: `cargo test --release -p vault-tests --test integration
//! a_long_campaign -- --ignored --nocapture` (10 seeds of 1,000 steps).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use candid::Principal;
use ic_harness::{CallMatcher, IcBackend, RejectCode};
use ic_management_canister_types::CanisterIdRecord;
use serde_bytes::ByteBuf;
use vault_api::Sha256;
use vault_api::protocol::{BackupError, DumpBegin, RestoreBegin, StateKind, UpgradeLoad, methods};
use vault_api::service::{
    SnapshotOptions, UpdateScheduleArgs,
    JobError, JobInfo, JobKind, JobPhase, Limits, RestoreArgs, SnapshotInfo, SnapshotRef, SuspendArgs, Trigger, VaultError,
};
use vault_tests::lies::{DUMP_CALLS, HONEST, LIES, RESTORE_CALLS, lie_named};
use vault_tests::*;

/// The campaign's draws: splitmix64, small, seedable, and the same on every platform.
struct Rng(::btree::SplitMix);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.word()
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
    /// The states the app passed through while the snapshot could have been taken; `fixed`: a
    /// snapshot of the state an upgrade saved, whose window is that state (the states the saves
    /// it may read held), whatever the app does meanwhile.
    Snapshot { id: u64, window: Vec<Digest>, fixed: bool },
    /// `before` is the target's state when the restore started: kept until the commit (and, for
    /// one `via_upgrade`, until the upgrade that loads it).
    Restore { id: u64, source: Principal, snapshot: u64, before: Digest, via_upgrade: bool },
}

impl ModelJob {
    fn id(&self) -> u64 {
        match self {
            ModelJob::Snapshot { id, .. } | ModelJob::Restore { id, .. } => *id,
        }
    }
}

/// An app's completed snapshots, oldest first; those deleted on request; those retention let
/// go (the vault deletes them unless a running restore reads them).
struct History {
    keep: usize,
    /// Oldest first by the time each was taken, as retention orders them (then by id).
    completed: Vec<u64>,
    taken_at: BTreeMap<u64, u64>,
    deleted: BTreeSet<u64>,
    retired: BTreeSet<u64>,
}

impl History {
    fn new(keep: usize) -> History {
        History { keep, completed: Vec::new(), taken_at: BTreeMap::new(), deleted: BTreeSet::new(), retired: BTreeSet::new() }
    }

    /// The snapshots the vault must keep.
    fn live(&self) -> Vec<u64> {
        self.completed.iter().copied().filter(|s| !self.deleted.contains(s) && !self.retired.contains(s)).collect()
    }

    /// A snapshot taken at `taken_at` completed: retention keeps the newest `keep`.
    fn complete(&mut self, snapshot: u64, taken_at: u64) {
        self.taken_at.insert(snapshot, taken_at);
        let at = self.completed.partition_point(|s| (self.taken_at[s], *s) < (taken_at, snapshot));
        self.completed.insert(at, snapshot);
        let live = self.live();
        self.retired.extend(live.iter().take(live.len().saturating_sub(self.keep)));
    }
}

struct ModelApp {
    id: Principal,
    kind: AppKind,
    /// Captured through native snapshots (its library unused), not its library.
    native: bool,
    /// A restore target only: never updated, never snapshotted.
    clone: bool,
    /// Snapshotted by the vault's timer.
    scheduled: bool,
    state: Digest,
    next_update: u64,
    job: Option<ModelJob>,
    /// Jobs of this app the model has seen.
    jobs_seen: BTreeSet<u64>,
    history: History,
    /// A restore job and its snapshot, committed to load at the app's next upgrade.
    upgrade_restore: Option<(u64, u64)>,
    /// The state the app's last upgrade saved, as far as the model knows it.
    upgrade_saved: Saved,
}

/// What the app's last upgrade saved, for a snapshot of it.
#[derive(Clone, Debug, PartialEq)]
enum Saved {
    /// Nothing a dump may read: no upgrade yet, or the last loaded a restore instead.
    Nothing,
    Known(Digest),
    /// An upgrade the model cannot place (while a restore may have committed).
    Unknown,
}

/// Whether a job could get past each of `calls` with the lies told while it ran: each call
/// answered, at some time, by a lie that does not spoil it (or by the truth).
fn could_succeed(lies: &BTreeSet<&'static str>, calls: &[&str]) -> bool {
    calls.iter().all(|call| lies.iter().any(|&name| lie_named(name).is_none_or(|lie| !lie.spoils.contains(call))))
}

/// Chunks of every snapshot of the hostile app: its one-page image, in three.
const HOSTILE_CHUNKS: u32 = 3;
/// Snapshots of the hostile app its retention keeps.
const HOSTILE_KEEP: u32 = 3;

/// The hostile app beside the honest ones: it lies as `lie` names, changed at random.
struct HostileApp {
    id: Principal,
    lie: &'static str,
    job: Option<HostileJob>,
    jobs_seen: BTreeSet<u64>,
    history: History,
    /// Restores it committed, and the image it holds: every snapshot of it holds that image,
    /// so no commit changes it.
    commits: u64,
    image: Sha256,
}

#[derive(Clone, Debug)]
struct HostileJob {
    id: u64,
    /// The snapshot a restore reads; `None` for a snapshot.
    restoring: Option<u64>,
    /// Every lie told while it ran.
    lies: BTreeSet<&'static str>,
    /// Injected traps the vault had hit when it started (a trap costs a job an attempt).
    vault_traps: usize,
}

impl HostileApp {
    /// The hostile app, registered (it tells the truth while registering), once the campaign
    /// knows it models each of its lies.
    fn registered(env: &Env) -> HostileApp {
        let id = env.deploy_hostile();
        env.ic.add_cycles(id, MANY_CYCLES);
        let client = env.hostile(id);
        let known: BTreeSet<String> = client.lies().into_iter().collect();
        let modelled: BTreeSet<String> = LIES.iter().map(|lie| lie.name).chain([HONEST]).map(String::from).collect();
        assert_eq!(known, modelled, "the campaign models every lie of the hostile app");
        env.vault().register(id, manual(), keep(HOSTILE_KEEP)).expect("register the hostile app");
        HostileApp {
            id,
            lie: HONEST,
            job: None,
            jobs_seen: BTreeSet::new(),
            history: History::new(HOSTILE_KEEP as usize),
            commits: client.commits(),
            image: client.image_sha256(),
        }
    }
}

/// An app the campaign snapshots or restores into: an honest one (by index) or the hostile one.
#[derive(Clone, Copy, Debug)]
enum Who {
    Honest(usize),
    Hostile,
}

struct ModelSnapshot {
    app: Principal,
    /// The states it may hold (none for the hostile app's: it holds the one image).
    window: Vec<Digest>,
    /// The state it holds, once a restore showed it.
    state: Option<Digest>,
    info: SnapshotInfo,
}

/// When a setting held (the limits lowered, an app suspended), in IC time. The request that
/// set it ran in a round between the time it was sent and the time it answered, and so did the
/// request that ended it: the setting held surely from the first answer to the second sending,
/// and perhaps from the first sending to the second answer.
#[derive(Default)]
struct Held(Vec<Span>);

struct Span {
    sent: u64,
    answered: u64,
    /// The request that ended it: `u64::MAX` while it holds.
    end_sent: u64,
    end_answered: u64,
}

impl Held {
    fn begin(&mut self, (sent, answered): (u64, u64)) {
        self.0.push(Span { sent, answered, end_sent: u64::MAX, end_answered: u64::MAX });
    }

    fn end(&mut self, (sent, answered): (u64, u64)) {
        if let Some(span) = self.0.last_mut() {
            (span.end_sent, span.end_answered) = (sent, answered);
        }
    }

    /// Whether it surely held in every round from `from` to `to`.
    fn surely(&self, from: u64, to: u64) -> bool {
        self.0.iter().any(|s| s.answered < from && to < s.end_sent)
    }

    /// Whether it perhaps held in some round from `from` to `to`.
    fn perhaps(&self, from: u64, to: u64) -> bool {
        self.0.iter().any(|s| s.sent <= to && from <= s.end_answered)
    }
}

#[derive(Default, Debug)]
struct Tally {
    steps: u64,
    checks: u64,
    snapshots: u64,
    /// Of those, the ones the vault took incremental against an earlier one, and those of the
    /// state an upgrade saved.
    incremental: u64,
    of_upgrade_saves: u64,
    restores: u64,
    /// Of those, the ones through an upgrade, and of those the ones it loaded.
    via_upgrade: u64,
    loaded_at_upgrade: u64,
    failed_jobs: u64,
    vault_upgrades: u64,
    app_upgrades: u64,
    refusals: u64,
    faults_fired: u64,
    /// Of those, traps injected into the vault.
    vault_traps: u64,
    /// Jobs of the hostile app that ended, and of those the ones that failed in an error a lie
    /// or the campaign explains.
    hostile_jobs: u64,
    hostile_failures: u64,
    cancelled: u64,
    suspensions: u64,
    /// Times the limits were lowered, and snapshot jobs their quotas refused.
    lowerings: u64,
    quota_refusals: u64,
    /// Snapshots of native apps; updates a native app refused while the vault had it stopped;
    /// native apps a job left stopped, as its error or notes said (their controller starts them).
    native_snapshots: u64,
    downtime_refusals: u64,
    left_stopped: u64,
    /// Native snapshots left on apps at the end, their deletes made to fail.
    native_left: u64,
}

struct Campaign {
    env: Env,
    rng: Rng,
    apps: Vec<ModelApp>,
    hostile: HostileApp,
    snapshots: BTreeMap<u64, ModelSnapshot>,
    /// Snapshots retention let go that the vault may still list: a restore read them (the
    /// vault spares those), or their retirement raced with a request.
    may_linger: BTreeSet<u64>,
    /// Jobs the campaign cancelled.
    cancelled: BTreeSet<u64>,
    /// When each app was suspended, and the step at which each suspended one is resumed.
    suspended: BTreeMap<Principal, Held>,
    resume_at: BTreeMap<Principal, u64>,
    /// When the limits were lowered, the step at which they are raised again, and the limits
    /// they are raised to.
    lowered: Held,
    raise_at: Option<u64>,
    usual_limits: Limits,
    log: Vec<String>,
    tally: Tally,
    /// How much of the vault's log was checked for traps.
    vault_logs_seen: usize,
    /// Invariant checks passed (counted through `&self`, inside closures that report).
    checks: std::cell::Cell<u64>,
    faults_before: u64,
    /// Whether a delete of a native snapshot was made to fail: one may be left on its app.
    delete_faulted: bool,
    /// Native apps a job left stopped, started again by the campaign.
    left_stopped: std::cell::Cell<u64>,
}

type Checked = Result<(), String>;

fn ensure(condition: bool, what: impl FnOnce() -> String) -> Checked {
    if condition { Ok(()) } else { Err(what()) }
}

fn injected(e: &impl std::fmt::Display) -> bool {
    e.to_string().contains("injected fault")
}

/// A call refused because its canister is stopped or stopping.
fn stopped(e: &impl std::fmt::Display) -> bool {
    let e = e.to_string();
    e.contains(" is stopped") || e.contains(" is stopping")
}

/// The management methods of a native capture that are bounded-wait calls, which may end in
/// SYS_UNKNOWN or lose their response.
const NATIVE_BOUNDED: [&str; 5] =
    ["canister_status", "list_canister_snapshots", "read_canister_snapshot_metadata", "read_canister_snapshot_data", "upload_canister_snapshot_data"];
/// Those that are unbounded-wait: always answered.
const NATIVE_UNBOUNDED: [&str; 6] =
    ["stop_canister", "start_canister", "take_canister_snapshot", "delete_canister_snapshot", "upload_canister_snapshot_metadata", "load_canister_snapshot"];

const MANY_CYCLES: u128 = 1 << 100;

/// Rounds within which a step of the vault's under way makes its calls and ends.
const STEP_ROUNDS: u32 = 60;

/// Updates sent, one a round, while the vault snapshots a native app.
const UPDATES_DURING_TAKE: u64 = 20;

/// Rounds a native app may stay stopped for a take or a load, faults and retries included.
const MAX_DOWNTIME_ROUNDS: u32 = 300;

impl Campaign {
    fn new(seed: u64) -> Campaign {
        // Two subnets: the vault on one, the apps on the other, as a vault serves apps of any subnet.
        let env = Env::with_vault_cycles(ic_harness::Harness::builder().with_subnets(2).build(), MANY_CYCLES);
        let hostile = HostileApp::registered(&env);
        let usual_limits = env.vault().service().admin_info().expect("admin_info").expect("the owner administers the vault").limits;
        let mut campaign = Campaign {
            env,
            rng: Rng(::btree::SplitMix(seed)),
            apps: Vec::new(),
            hostile,
            snapshots: BTreeMap::new(),
            may_linger: BTreeSet::new(),
            cancelled: BTreeSet::new(),
            suspended: BTreeMap::new(),
            resume_at: BTreeMap::new(),
            lowered: Held::default(),
            raise_at: None,
            usual_limits,
            log: Vec::new(),
            tally: Tally::default(),
            vault_logs_seen: 0,
            checks: std::cell::Cell::new(0),
            faults_before: 0,
            delete_faulted: false,
            left_stopped: std::cell::Cell::new(0),
        };
        // Two serde apps on timers (one big enough for several chunks), a stable-memory app
        // snapshotted on request, and a clone of each kind to restore into. Natively captured:
        // a heap app on a timer and a stable-memory app on request, and a clone of each.
        campaign.add_app(AppKind::Notes, schedule(1), 2, false, 2, false);
        campaign.add_app(AppKind::Notes, schedule(2), 3, false, 0, false);
        campaign.add_app(AppKind::Ledger, manual(), 2, false, 0, false);
        campaign.add_app(AppKind::Notes, manual(), 1, true, 0, false);
        campaign.add_app(AppKind::Ledger, manual(), 1, true, 0, false);
        campaign.add_app(AppKind::Notes, schedule(3), 2, false, 0, true);
        campaign.add_app(AppKind::Ledger, manual(), 2, false, 0, true);
        campaign.add_app(AppKind::Notes, manual(), 1, true, 0, true);
        campaign.add_app(AppKind::Ledger, manual(), 1, true, 0, true);
        campaign.faults_before = campaign.env.ic.faults_fired();
        campaign
    }

    fn add_app(&mut self, kind: AppKind, schedule: vault_api::service::Schedule, keep_last: u32, clone: bool, prefill: u64, native: bool) {
        let id = if native {
            let id = self.env.deploy_without_library(kind.wasm(), candid::encode_one(Some(self.env.vault)).unwrap(), self.env.app_subnet, true);
            self.env.vault().register_native(id, schedule, keep(keep_last), false).expect("register natively");
            id
        } else {
            self.env.registered(kind, schedule, keep(keep_last))
        };
        self.env.ic.add_cycles(id, MANY_CYCLES);
        let client = self.env.app(id);
        for n in 0..prefill {
            kind.apply(&client, n);
        }
        let state = client.digest();
        self.apps.push(ModelApp {
            id,
            kind,
            native,
            clone,
            scheduled: schedule.interval_seconds > 0,
            state,
            next_update: PREFILL,
            job: None,
            jobs_seen: BTreeSet::new(),
            history: History::new(keep_last as usize),
            upgrade_restore: None,
            upgrade_saved: Saved::Nothing,
        });
    }

    /// The app's digest, asked again if an injected trap hit the asking, or a round later if
    /// the app was stopped (a native app, for a take or a load).
    fn digest(&self, app: Principal) -> Result<Digest, String> {
        let client = self.env.app(app);
        let (mut trapped, mut stopped_for) = (0, 0);
        while trapped < 8 && stopped_for < MAX_DOWNTIME_ROUNDS {
            match client.try_update::<_, (u64, ByteBuf)>("digest", ()) {
                Ok((seq, hash)) => return Ok((seq, hash.into_vec())),
                Err(e) if injected(&e) => trapped += 1,
                Err(e) if stopped(&e) && self.is_native(app) => {
                    stopped_for += 1;
                    self.wait_while_stopped(app)?;
                }
                Err(e) => return Err(format!("digest of {app}: {e}")),
            }
        }
        Err(format!("digest of {app} kept trapping, or the app stayed stopped"))
    }

    /// The app's update count, asked a round later if the app was stopped (a native app).
    fn seq(&self, app: Principal) -> Result<u64, String> {
        for _ in 0..MAX_DOWNTIME_ROUNDS {
            match self.seq_now(app)? {
                Some(seq) => return Ok(seq),
                None => self.wait_while_stopped(app)?,
            }
        }
        Err(format!("{app} stayed stopped for {MAX_DOWNTIME_ROUNDS} rounds"))
    }

    /// The app's update count now: none while a native app is stopped.
    fn seq_now(&self, app: Principal) -> Result<Option<u64>, String> {
        match self.env.ic.query_candid::<_, (u64,)>(app, owner(), "seq", ()) {
            Ok((seq,)) => Ok(Some(seq)),
            Err(e) if stopped(&e) && self.is_native(app) => Ok(None),
            Err(e) => Err(format!("seq of {app}: {e}")),
        }
    }

    /// A native app is stopped: a round passes while a job of it runs; once none does, the last
    /// one must say it left the app stopped, and the campaign starts it.
    fn wait_while_stopped(&self, app: Principal) -> Checked {
        let jobs = self.env.vault().list_jobs(app).map_err(|e| e.to_string())?;
        if jobs.iter().any(|j| !finished(j)) {
            self.env.run_for(1);
            return Ok(());
        }
        let last = jobs.iter().max_by_key(|j| j.id).ok_or_else(|| format!("{app} is stopped, and no job of it ever ran"))?;
        self.start_if_left_stopped(last)
    }

    /// Whether a job of the app runs in the vault (one the model may not have seen yet).
    fn job_runs(&self, app: Principal) -> Result<bool, String> {
        Ok(self.env.vault().list_jobs(app).map_err(|e| e.to_string())?.iter().any(|j| !finished(j)))
    }

    /// The answer to an ingress message, rounds a second apart until it comes.
    fn answered(&self, message: ic_harness::MessageId) -> Option<Result<Vec<u8>, ic_harness::RejectResponse>> {
        for _ in 0..MAX_DOWNTIME_ROUNDS {
            if let Some(answer) = self.env.ic.ingress_status(message) {
                return Some(answer);
            }
            self.env.run_for(1);
        }
        None
    }

    fn is_native(&self, app: Principal) -> bool {
        self.apps.iter().any(|a| a.id == app && a.native)
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

    fn now(&self) -> u64 {
        self.env.ic.get_time().as_nanos_since_unix_epoch()
    }

    /// [`Campaign::request`] as the owner, with the IC's times when it was sent and answered.
    fn timed<T>(&self, call: impl Fn(&mut VaultService<'_>) -> VaultReply<T>) -> Result<(VaultResult<T>, (u64, u64)), String> {
        let sent = self.now();
        let result = self.request(owner(), call)?;
        Ok((result, (sent, self.now())))
    }

    fn say(&mut self, what: String) {
        self.log.push(format!("step {}: {what}", self.tally.steps));
    }

    fn check(&self, condition: bool, what: impl FnOnce() -> String) -> Checked {
        self.checks.set(self.checks.get() + 1);
        ensure(condition, what)
    }

    /// Injected traps the vault hit so far.
    fn vault_traps_hit(&self) -> usize {
        let logs = self.env.ic.canister_logs(self.env.vault);
        logs.iter()
            .filter(|l| {
                let line = String::from_utf8_lossy(&l.content);
                line.starts_with("[TRAP]") && line.contains("injected fault")
            })
            .count()
    }

    // ---- the apps ----

    fn principal(&self, who: Who) -> Principal {
        match who {
            Who::Honest(i) => self.apps[i].id,
            Who::Hostile => self.hostile.id,
        }
    }

    fn history(&self, who: Who) -> &History {
        match who {
            Who::Honest(i) => &self.apps[i].history,
            Who::Hostile => &self.hostile.history,
        }
    }

    fn history_mut(&mut self, who: Who) -> &mut History {
        match who {
            Who::Honest(i) => &mut self.apps[i].history,
            Who::Hostile => &mut self.hostile.history,
        }
    }

    /// The job the model has running on the app.
    fn running_job(&self, who: Who) -> Option<u64> {
        match who {
            Who::Honest(i) => self.apps[i].job.as_ref().map(ModelJob::id),
            Who::Hostile => self.hostile.job.as_ref().map(|j| j.id),
        }
    }

    fn observe_job_of(&mut self, who: Who) -> Checked {
        match who {
            Who::Honest(i) => self.observe_job(i),
            Who::Hostile => self.observe_hostile_job(),
        }
    }

    fn everyone(&self) -> Vec<Who> {
        (0..self.apps.len()).map(Who::Honest).chain([Who::Hostile]).collect()
    }

    /// The apps that take snapshots: the honest ones that are not clones, and the hostile one.
    fn sources(&self) -> Vec<Who> {
        self.main_apps().into_iter().map(Who::Honest).chain([Who::Hostile]).collect()
    }

    fn is_suspended(&self, app: Principal) -> bool {
        self.resume_at.contains_key(&app)
    }

    // ---- steps ----

    fn step(&mut self) -> Checked {
        let before: Vec<Digest> = self.apps.iter().map(|a| a.state.clone()).collect();
        let resumption = self.resume_at.iter().find(|&(_, &step)| step <= self.tally.steps).map(|(&app, _)| app);
        if let Some(app) = resumption {
            self.resume(app)?;
        } else if self.raise_at.is_some_and(|step| step <= self.tally.steps) {
            self.raise_limits()?;
        } else {
            match self.rng.below(100) {
                0..21 => self.update()?,
                21..24 => self.update_during_take()?,
                24..33 => self.snapshot_now()?,
                33..37 => self.restore(false)?,
                37..43 => self.restore(true)?,
                43..46 => self.delete()?,
                46..58 => self.advance(),
                58..61 => self.settle()?,
                61..63 => self.upgrade_vault()?,
                63..66 => self.upgrade_app()?,
                66..79 => self.inject_fault(),
                79..81 => self.stranger()?,
                81..83 => self.verify_stored()?,
                83..92 => self.hostile_step()?,
                92..95 => self.cancel()?,
                95..97 => self.suspend()?,
                97 => self.change_vault_and_back()?,
                _ => self.toggle_limits()?,
            }
        }
        self.observe(&before)
    }

    /// The clone app `source`'s snapshots restore into: of its kind, captured as it is.
    fn clone_of(&self, source: usize) -> usize {
        let (kind, native) = (self.apps[source].kind, self.apps[source].native);
        (0..self.apps.len()).find(|&i| self.apps[i].clone && self.apps[i].kind == kind && self.apps[i].native == native).expect("a clone of each kind")
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
                if let Some(ModelJob::Snapshot { window, fixed: false, .. }) = &mut self.apps[i].job {
                    window.push(state);
                }
            }
            Err(e) if injected(&e) => {
                let seq = self.seq(id)?;
                let expected = self.apps[i].state.0;
                self.check(seq == expected, || format!("a trapped update of {id} was not rolled back: seq {seq}, expected {expected}"))?;
            }
            // A native app is stopped for its take (or a load): only while a job of it runs.
            Err(e) if stopped(&e) && self.apps[i].native => {
                let running = self.job_runs(id)? || self.apps[i].job.is_some();
                self.check(running, || format!("{id} refused update {n} as stopped with no job of it running: {e}"))?;
                let seq = self.seq(id)?;
                let expected = self.apps[i].state.0;
                self.check(seq == expected, || format!("{id} refused update {n} as stopped, yet is at seq {seq}, expected {expected}"))?;
                self.tally.downtime_refusals += 1;
            }
            Err(e) => return Err(format!("update {n} of {id}: {e}")),
        }
        Ok(())
    }

    /// Updates sent to a native app on request, one a round, while the vault snapshots it:
    /// each runs (the app running) or is refused as the app is stopped (the take), none is lost
    /// or half run, and the snapshot holds one of the states they passed through.
    fn update_during_take(&mut self) -> Checked {
        let candidates: Vec<usize> = self
            .main_apps()
            .into_iter()
            .filter(|&i| self.apps[i].native && !self.apps[i].scheduled && self.apps[i].job.is_none() && !self.is_suspended(self.apps[i].id))
            .collect();
        let Some(&i) = self.rng.pick(&candidates) else { return Ok(()) };
        let id = self.apps[i].id;
        let before = self.known_state(i)?;
        let ic = &self.env.ic;
        let request = ic.submit_call(self.env.vault, owner(), "snapshot_now", candid::encode_one(id).unwrap()).map_err(|e| e.to_string())?;
        let mut sent = Vec::new();
        for _ in 0..UPDATES_DURING_TAKE {
            let n = self.apps[i].next_update;
            self.apps[i].next_update += 1;
            // The ledger's mint, which always runs on a running app.
            sent.push(ic.submit_call(id, owner(), "mint", candid::encode_args((n % 5, 100 + n)).unwrap()));
            self.env.run_for(1);
        }
        let job = self.answered(request).ok_or("snapshot_now was not answered")?.map_err(|e| format!("snapshot_now: {e}"))?;
        let (job,): (VaultResult<JobInfo>,) = candid::decode_args(&job).map_err(|e| e.to_string())?;
        let job = job.map_err(|e| format!("snapshot_now of idle {id}: {e}"))?;
        let (mut window, mut seq, mut refused) = (vec![before.clone()], before.0, 0);
        for submitted in sent {
            let outcome = match submitted {
                Ok(message) => self.answered(message).ok_or("an update was not answered")?,
                Err(reject) => Err(reject),
            };
            match outcome {
                Ok(reply) => {
                    let (after,): (u64,) = candid::decode_args(&reply).map_err(|e| e.to_string())?;
                    self.check(after == seq + 1, || format!("an update of {id} during its take left it at seq {after}, expected {}", seq + 1))?;
                    seq = after;
                    window.push((seq, Vec::new()));
                }
                Err(e) if stopped(&e.reject_message) => refused += 1,
                Err(e) if injected(&e.reject_message) => {}
                Err(e) => return Err(format!("an update of {id} during its take: {e}")),
            }
        }
        self.say(format!("snapshot_now {id} with {UPDATES_DURING_TAKE} updates a round: job {}, {refused} refused as stopped", job.id));
        let now = self.seq(id)?;
        self.check(now == seq, || format!("{id} is at seq {now} after its updates during the take, which left it at {seq}"))?;
        self.tally.downtime_refusals += refused;
        self.apps[i].state = (seq, Vec::new());
        self.apps[i].jobs_seen.insert(job.id);
        self.apps[i].job = Some(ModelJob::Snapshot { id: job.id, window, fixed: false });
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
        // A serde app's snapshot is now and then of the state its last upgrade saved.
        let saved = self.apps[i].upgrade_saved.clone();
        let fixed = self.apps[i].kind == AppKind::Notes && !self.apps[i].native && saved != Saved::Unknown && self.rng.chance(20);
        let options = SnapshotOptions { full: false, from_upgrade_save: fixed.then_some(true) };
        let result = self.request(owner(), |v| v.snapshot_now_with(id, options))?;
        self.say(format!("snapshot_now {id}: {:?}", result.as_ref().map(|j| j.id)));
        match (&self.apps[i].job, result) {
            (_, Ok(job)) => {
                self.check(!self.is_suspended(id), || format!("snapshot_now of suspended {id} started job {}", job.id))?;
                self.ended_meanwhile(Who::Honest(i))?;
                let state = self.known_state(i)?;
                let window = match (fixed, saved) {
                    (false, _) => vec![state],
                    (true, Saved::Known(saved)) => vec![saved],
                    // There is nothing to dump: the job must fail saying so.
                    (true, _) => Vec::new(),
                };
                self.apps[i].jobs_seen.insert(job.id);
                self.apps[i].job = Some(ModelJob::Snapshot { id: job.id, window, fixed });
                Ok(())
            }
            (Some(running), Err(VaultError::JobRunning { job, .. })) => {
                self.tally.refusals += 1;
                let expected = running.id();
                self.check(job == expected, || format!("snapshot_now of {id} refused for job {job}, but {expected} runs"))
            }
            // Refused as suspended once idle: a job the model had ended in the request's rounds.
            (_, Err(VaultError::Suspended { app, .. })) if app == id && self.is_suspended(id) => {
                self.tally.refusals += 1;
                self.ended_meanwhile(Who::Honest(i))
            }
            (None, Err(VaultError::JobRunning { job, .. })) if self.unseen_timer_job(i, job) => {
                self.tally.refusals += 1;
                Ok(())
            }
            (running, result) => Err(format!("snapshot_now of {id} with job {running:?} running: {result:?}")),
        }
    }

    fn restore(&mut self, into_clone: bool) -> Checked {
        let Some(&source) = self.rng.pick(&self.main_apps()) else { return Ok(()) };
        let Some(&snapshot) = self.rng.pick(&self.apps[source].history.live()) else { return Ok(()) };
        let target = if into_clone { self.clone_of(source) } else { source };
        let (source_id, target_id) = (self.apps[source].id, self.apps[target].id);
        // A serde app's restore goes through its upgrade now and then; not while another waits.
        let via_upgrade =
            self.apps[target].kind == AppKind::Notes && !self.apps[target].native && self.apps[target].upgrade_restore.is_none() && self.rng.chance(30);
        let args = RestoreArgs {
            app: source_id,
            snapshot_id: snapshot,
            target: into_clone.then_some(target_id),
            allow_layout_change: None,
            via_upgrade: via_upgrade.then_some(true),
        };
        let result = self.request(owner(), |v| v.restore(args))?;
        self.say(format!("restore {snapshot} of {source_id} into {target_id}: {:?}", result.as_ref().map(|j| j.id)));
        // The job running when the vault answered (it may end later in the same round).
        let running = self.running_job(Who::Honest(target));
        self.catch_up(Who::Honest(source))?;
        match (running, result) {
            (_, Ok(job)) => {
                self.check(!self.is_suspended(target_id), || format!("a restore into suspended {target_id} started job {}", job.id))?;
                self.ended_meanwhile(Who::Honest(target))?;
                let before = self.known_state(target)?;
                self.may_linger.insert(snapshot);
                self.apps[target].jobs_seen.insert(job.id);
                self.apps[target].job = Some(ModelJob::Restore { id: job.id, source: source_id, snapshot, before, via_upgrade });
                Ok(())
            }
            (Some(running), Err(VaultError::JobRunning { job, .. })) => {
                self.tally.refusals += 1;
                self.check(job == running, || format!("restore into {target_id} refused for job {job}, but {running} runs"))
            }
            (_, Err(VaultError::Suspended { app, .. })) if app == target_id && self.is_suspended(target_id) => {
                self.tally.refusals += 1;
                self.ended_meanwhile(Who::Honest(target))
            }
            // Retention let it go in the rounds that ran the request.
            (_, Err(VaultError::UnknownSnapshot { .. })) if self.apps[source].history.retired.contains(&snapshot) => {
                self.tally.refusals += 1;
                Ok(())
            }
            (None, Err(VaultError::JobRunning { job, .. })) if self.unseen_timer_job(target, job) => {
                self.tally.refusals += 1;
                Ok(())
            }
            // A restore asks the target which content hashes it verifies: an injected fault may
            // make it unreachable then, and the restore is refused before it starts.
            (_, Err(VaultError::AppUnreachable { app, .. })) if app == target_id => {
                self.tally.refusals += 1;
                self.ended_meanwhile(Who::Honest(target))
            }
            (running, result) => Err(format!("restore into {target_id} with job {running:?} running: {result:?}")),
        }
    }

    /// Whether `job` of app `i` is a snapshot its timer started in the rounds that ran the last
    /// request, which the observation after the step takes in.
    fn unseen_timer_job(&self, i: usize, job: u64) -> bool {
        let scheduled = |j: &JobInfo| matches!(j.kind, JobKind::Snapshot { trigger: Trigger::Scheduled });
        !self.apps[i].jobs_seen.contains(&job) && self.env.vault().job_status(job).is_ok_and(|j| scheduled(&j))
    }

    /// Takes in the end of the app's job if it ended in the rounds that ran the last request.
    /// The two ran in either order, so what the end retired may linger.
    fn catch_up(&mut self, who: Who) -> Checked {
        let Some(job) = self.running_job(who) else { return Ok(()) };
        if !self.env.vault().job_status(job).is_ok_and(|j| finished(&j)) {
            return Ok(());
        }
        let retired = self.history(who).retired.clone();
        self.observe_job_of(who)?;
        let newly: Vec<u64> = self.history(who).retired.difference(&retired).copied().collect();
        self.may_linger.extend(newly);
        Ok(())
    }

    /// A new job of the app started, or the app was found idle: the job the model had must
    /// have ended in the rounds that ran the request.
    fn ended_meanwhile(&mut self, who: Who) -> Checked {
        self.catch_up(who)?;
        let running = self.running_job(who);
        self.check(running.is_none(), || {
            let status = running.map(|j| self.env.vault().job_status(j));
            format!("a second job started on {} while job {running:?} runs: {status:?}", self.principal(who))
        })
    }

    /// The running jobs that read `snapshot` of `app`.
    fn readers_of(&self, app: Principal, snapshot: u64) -> Vec<u64> {
        let honest = self.apps.iter().filter_map(|a| match a.job {
            Some(ModelJob::Restore { id: job, source, snapshot: s, .. }) if source == app && s == snapshot => Some(job),
            _ => None,
        });
        let hostile = self.hostile.job.as_ref().filter(|j| app == self.hostile.id && j.restoring == Some(snapshot)).map(|j| j.id);
        honest.chain(hostile).collect()
    }

    fn delete(&mut self) -> Checked {
        let Some(&who) = self.rng.pick(&self.sources()) else { return Ok(()) };
        let id = self.principal(who);
        let live = self.history(who).live();
        // Now and then a snapshot that does not exist (any more).
        let snapshot = match self.rng.pick(&live) {
            Some(&s) if !self.rng.chance(15) => s,
            _ => self.rng.below(1000) + 10_000,
        };
        let readers = self.readers_of(id, snapshot);
        let result = self.request(owner(), |v| v.delete_snapshot(SnapshotRef { app: id, snapshot_id: snapshot }))?;
        self.say(format!("delete {snapshot} of {id}: {result:?}"));
        self.catch_up(who)?;
        let history = self.history(who);
        let live = history.live();
        match result {
            Ok(()) => {
                // A restore reading it may have ended in the rounds that ran the delete.
                let read = readers.iter().any(|&job| self.env.vault().job_status(job).is_ok_and(|j| !finished(&j)));
                let deletable = history.completed.contains(&snapshot) && !history.deleted.contains(&snapshot) && !read;
                self.check(deletable, || format!("deleted {snapshot} of {id}, which is not deletable"))?;
                self.history_mut(who).deleted.insert(snapshot);
            }
            // A restore reading it, or the app's snapshot job, which may build on it (its base).
            Err(VaultError::JobRunning { job, .. }) => {
                self.tally.refusals += 1;
                let snapshots_app = |info: &vault_api::service::JobInfo| info.app == id && matches!(info.kind, vault_api::service::JobKind::Snapshot { .. });
                let in_use = readers.contains(&job) || self.env.vault().job_status(job).is_ok_and(|info| snapshots_app(&info));
                self.check(in_use, || format!("delete of {snapshot} refused as in use by job {job}, which neither reads it nor snapshots its app"))?;
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
            let running: Vec<u64> = self.everyone().into_iter().filter_map(|who| self.running_job(who)).collect();
            if running.iter().all(|&id| self.env.vault().job_status(id).is_ok_and(|j| finished(&j))) {
                return Ok(());
            }
            self.env.run_for(1);
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
            self.env.run_for(1);
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
        self.upgrade(i)
    }

    /// Upgrades app `i` with its module: its state stays, unless a restore committed to load at
    /// this upgrade, which the app says it loaded (the state is then the snapshot's) or could
    /// not (another dump or restore took its place in staging: the state stays).
    fn upgrade(&mut self, i: usize) -> Checked {
        let (id, kind) = (self.apps[i].id, self.apps[i].kind);
        self.say(format!("upgrade app {id}"));
        let before = self.apps[i].state.clone();
        let upgraded = match self.env.ic.upgrade_canister(id, kind.wasm(), candid::encode_args(()).unwrap(), Some(owner())) {
            Ok(()) => {
                self.tally.app_upgrades += 1;
                true
            }
            // An injected trap in a hook fails the upgrade; the app stays as it was.
            Err(e) if e.reject_message.contains("injected fault") => false,
            Err(e) => return Err(format!("upgrade of {id}: {e}")),
        };
        if self.restoring_in_place(i) {
            if upgraded {
                self.apps[i].upgrade_saved = Saved::Unknown;
            }
            return Ok(()); // the commit may have run in the upgrade's rounds: the observation checks
        }
        if upgraded && self.apps[i].upgrade_restore.is_some() {
            let settled = self.settle_upgrade_restore(i)?;
            self.check(settled, || format!("{id}'s restore is still waiting after an upgrade"))?;
        } else {
            self.unchanged_by_upgrade(i)?;
        }
        if upgraded {
            // It saved the state it had (a dump of the save may read this one or the one before),
            // unless it loaded a restore in its place.
            let loaded = self.apps[i].state != before;
            self.apps[i].upgrade_saved = if loaded { Saved::Nothing } else { Saved::Known(before.clone()) };
            if let Some(ModelJob::Snapshot { window, fixed: true, .. }) = &mut self.apps[i].job
                && !loaded
            {
                window.push(before);
            }
        }
        Ok(())
    }

    fn unchanged_by_upgrade(&self, i: usize) -> Checked {
        let (id, seq, expected) = (self.apps[i].id, self.seq(self.apps[i].id)?, self.apps[i].state.0);
        self.check(seq == expected, || format!("the upgrade of {id} changed its seq to {seq}, expected {expected}"))
    }

    /// Takes in where app `i`'s restore through an upgrade stands, as the app says: whether it is
    /// settled (loaded, or superseded in staging), each outcome checked against the app's state.
    fn settle_upgrade_restore(&mut self, i: usize) -> Result<bool, String> {
        let Some((job, snapshot)) = self.apps[i].upgrade_restore else { return Ok(true) };
        let id = self.apps[i].id;
        let info = self.env.app(id).backup_info().upgrade_restore;
        let state = match info {
            Some(restore) if restore.job == job => restore.state,
            // A later restore's commit took the record: its begin took the image's place first.
            _ => UpgradeLoad::Failed { reason: "a restore took its place".into() },
        };
        match state {
            UpgradeLoad::Pending => return Ok(false),
            UpgradeLoad::Loaded { .. } => {
                let now = self.digest(id)?;
                self.say(format!("the upgrade of {id} loaded snapshot {snapshot}"));
                self.settle_snapshot_state(snapshot, &now)?;
                if let Some(ModelJob::Snapshot { window, fixed: false, .. }) = &mut self.apps[i].job {
                    window.push(now.clone());
                }
                self.apps[i].state = now;
                self.tally.loaded_at_upgrade += 1;
            }
            UpgradeLoad::Failed { reason } => {
                self.say(format!("the upgrade of {id} did not load snapshot {snapshot}: {reason}"));
                self.check(reason.contains("took its place"), || format!("{id}'s restore of {snapshot} failed at its upgrade: {reason}"))?;
                self.unchanged_by_upgrade(i)?;
            }
        }
        self.apps[i].upgrade_restore = None;
        Ok(true)
    }

    /// The app's controller sets another vault and then its vault again: the app releases what
    /// was open and drops the base of its incremental dumps, so the vault's next calls find no job
    /// (it starts over) and its next snapshot of the app is full.
    fn change_vault_and_back(&mut self) -> Checked {
        let library: Vec<usize> = self.main_apps().into_iter().filter(|&i| !self.apps[i].native).collect();
        let Some(&i) = self.rng.pick(&library) else { return Ok(()) };
        let id = self.apps[i].id;
        self.say(format!("change the vault of {id} and back"));
        let set = |vault: Principal| -> Result<bool, String> {
            match self.env.ic.update_call(id, owner(), methods::SET_VAULT, candid::encode_one(vault).unwrap()) {
                Ok(bytes) => {
                    let answer: Result<(), BackupError> = candid::decode_one(&bytes).map_err(|e| format!("set_vault of {id}: {e}"))?;
                    answer.map(|()| true).map_err(|e| format!("set_vault of {id}: {e:?}"))
                }
                // An injected trap in the app fails the call; the app stays as it was.
                Err(e) if injected(&e) => Ok(false),
                Err(e) => Err(format!("set_vault of {id}: {e}")),
            }
        };
        if !set(Principal::from_slice(&[0xfe; 10]))? {
            return Ok(());
        }
        for _ in 0..5 {
            if set(self.env.vault)? {
                return Ok(());
            }
        }
        Err(format!("{id} could not be given its vault back"))
    }

    /// Faults at the honest apps and the vault (the hostile app's lies are its own faults).
    fn inject_fault(&mut self) {
        // Mostly at an app a job is talking to.
        let busy: Vec<Principal> = self.apps.iter().filter(|a| a.job.is_some()).map(|a| a.id).collect();
        let all: Vec<Principal> = self.apps.iter().map(|a| a.id).collect();
        let Some(&app) = (if !busy.is_empty() && self.rng.chance(70) { self.rng.pick(&busy) } else { self.rng.pick(&all) }) else { return };
        let ic = &self.env.ic;
        let vault = self.env.vault;
        let native = self.is_native(app);
        // A native app's jobs are calls to the management canister (about every native app).
        let (method, matcher) = if native {
            let methods: Vec<&str> = NATIVE_BOUNDED.iter().chain(&NATIVE_UNBOUNDED).copied().collect();
            let method = *self.rng.pick(&methods).unwrap();
            (method, CallMatcher::to(Principal::management_canister()).method(method).from(vault))
        } else {
            let dump = [methods::DUMP_BEGIN, methods::DUMP_CHUNK, methods::DUMP_END];
            let restore = [methods::RESTORE_BEGIN, methods::RESTORE_CHUNK, methods::RESTORE_COMMIT];
            let method = if self.rng.chance(50) { *self.rng.pick(&dump).unwrap() } else { *self.rng.pick(&restore).unwrap() };
            (method, CallMatcher::to(app).method(method).from(vault))
        };
        // Unbounded-wait calls are always answered: no SYS_UNKNOWN, no lost response.
        let bounded = !native || NATIVE_BOUNDED.contains(&method);
        // Mostly a few times; now and then until cleared.
        let times = if self.rng.chance(10) { None } else { Some(1 + self.rng.below(3) as u32) };
        let draw = match self.rng.below(6) {
            // The IC's streams are certified: a native capture's requests are not corrupted.
            3 | 4 if native => 1,
            2 if !bounded => 1,
            draw => draw,
        };
        if native && method == "delete_canister_snapshot" && draw == 1 {
            self.delete_faulted = true;
        }
        let what = match draw {
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
                let codes = [RejectCode::SysTransient, RejectCode::CanisterError, RejectCode::CanisterReject, RejectCode::SysUnknown];
                let code = *self.rng.pick(&codes[..if bounded { 4 } else { 3 }]).unwrap();
                ic.reject_calls(matcher, code, "injected reject", times);
                format!("reject {method} to {app} with {code:?}, {times:?} times")
            }
            2 => {
                ic.drop_responses(matcher, times.map(|_| 1));
                format!("drop a response of {method} to {app}")
            }
            3 => {
                // Requests only: a reply reaches the vault as the app sent it (the IC's streams
                // are certified), and this build's library sends no hash of its chunks.
                ic.corrupt_requests(CallMatcher::to(app).method(methods::DUMP_CHUNK).from(vault), times);
                format!("corrupt dump chunk requests to {app}, {times:?} times")
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
        let some_snapshot = self.apps[i].history.live().first().copied().unwrap_or(1);
        let what = self.rng.below(8);
        self.say(format!("stranger call {what} on {id}"));
        fn not_a_controller<T: std::fmt::Debug>(r: Result<VaultResult<T>, String>) -> Result<(), String> {
            match r {
                Ok(Err(VaultError::NotAController { .. })) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
        fn not_an_administrator<T: std::fmt::Debug>(r: Result<VaultResult<T>, String>) -> Result<(), String> {
            match r {
                Ok(Err(VaultError::NotAnAdministrator { caller })) if caller == stranger() => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
        let outcome = match what {
            0 => match self.env.vault_as(stranger()).list_snapshots(id) {
                Err(VaultError::NotAController { .. }) => Ok(()),
                other => Err(format!("{other:?}")),
            },
            1 => not_a_controller(self.request(stranger(), |v| v.snapshot_now(id))),
            2 => not_a_controller(self.request(stranger(), |v| v.restore(RestoreArgs { app: id, snapshot_id: some_snapshot, target: None, allow_layout_change: None, via_upgrade: None }))),
            3 => not_a_controller(self.request(stranger(), |v| v.delete_snapshot(SnapshotRef { app: id, snapshot_id: some_snapshot }))),
            4 => self.stranger_to_app(id, methods::DUMP_BEGIN, candid::encode_one(DumpBegin { job: 1, nonce: None, chunk_hashes: None, base: None, from_upgrade_save: None, content_index: None }).unwrap()),
            5 => {
                let kind = if self.apps[i].kind == AppKind::Notes { StateKind::Serde } else { StateKind::StableMemory };
                let begin = RestoreBegin { job: 1, state_kind: kind, size: 1, chunk_size: 1, sha256: Sha256::of(b""), nonce: None, content_hash: None, via_upgrade: None };
                self.stranger_to_app(id, methods::RESTORE_BEGIN, candid::encode_one(begin).unwrap())
            }
            6 => not_an_administrator(self.request(stranger(), |v| v.suspend_app(SuspendArgs { app: id, reason: "a stranger's".into() }))),
            _ => not_an_administrator(self.request(stranger(), |v| v.set_limits(Limits { app_bytes: 1, ..self.usual_limits }))),
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
            // A native app stopped for a take refuses everyone.
            Err(e) if stopped(&e.reject_message) && self.is_native(app) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Reads a stored snapshot chunk by chunk: every chunk matches its digest in the snapshot's
    /// content hash and together they give the snapshot's manifest hash.
    fn verify_stored(&mut self) -> Checked {
        let Some(&who) = self.rng.pick(&self.sources()) else { return Ok(()) };
        let Some(&snapshot) = self.rng.pick(&self.history(who).live()) else { return Ok(()) };
        self.say(format!("verify stored snapshot {snapshot}"));
        self.verify_chunks(self.principal(who), snapshot)
    }

    fn verify_chunks(&mut self, app: Principal, snapshot: u64) -> Checked {
        let info = self.snapshots[&snapshot].info.clone();
        let mut hashes = Vec::new();
        for index in 0..info.chunks {
            let chunk = self.env.vault().snapshot_chunk(app, snapshot, index).map_err(|e| {
                let listed: Vec<u64> = self.env.vault().list_snapshots(app).unwrap_or_default().iter().map(|s| s.id).collect();
                format!("chunk {index} of {snapshot}: {e} (listed: {listed:?})")
            })?;
            self.check(info.content_hash().digest(&chunk.data) == chunk.sha256, || format!("chunk {index} of {snapshot} does not match its hash"))?;
            hashes.push(chunk.sha256);
        }
        let manifest = vault_api::manifest::manifest_hash(info.content_hash(), info.size, info.chunk_size, &hashes);
        self.check(manifest == Some(info.sha256), || format!("the chunks of {snapshot} do not give its hash"))
    }

    /// The hostile app: a new lie (or the truth), or a snapshot of it, or a restore into it.
    fn hostile_step(&mut self) -> Checked {
        match self.rng.below(100) {
            0..40 => {
                let lie = if self.rng.chance(30) { HONEST } else { self.rng.pick(&LIES).expect("lies").name };
                self.set_lie(lie);
                Ok(())
            }
            40..75 => {
                let id = self.hostile.id;
                let result = self.request(owner(), |v| v.snapshot_now(id))?;
                self.say(format!("snapshot_now of the hostile {id}: {:?}", result.as_ref().map(|j| j.id)));
                self.hostile_started(None, result)
            }
            _ => {
                let Some(&snapshot) = self.rng.pick(&self.hostile.history.live()) else { return Ok(()) };
                let id = self.hostile.id;
                let result = self.request(owner(), |v| v.restore(RestoreArgs { app: id, snapshot_id: snapshot, target: None, allow_layout_change: None, via_upgrade: None }))?;
                self.say(format!("restore {snapshot} into the hostile {id}: {:?}", result.as_ref().map(|j| j.id)));
                self.hostile_started(Some(snapshot), result)
            }
        }
    }

    fn set_lie(&mut self, lie: &'static str) {
        self.say(format!("the hostile app lies: {lie}"));
        self.env.hostile(self.hostile.id).set_lie(lie);
        self.hostile.lie = lie;
        if let Some(job) = &mut self.hostile.job {
            job.lies.insert(lie);
        }
    }

    /// Takes in the vault's answer to a request that starts a job of the hostile app: a
    /// snapshot, or a restore of `restoring`.
    fn hostile_started(&mut self, restoring: Option<u64>, result: VaultResult<JobInfo>) -> Checked {
        let id = self.hostile.id;
        // The job running when the vault answered (it may end later in the same round).
        let running = self.running_job(Who::Hostile);
        self.catch_up(Who::Hostile)?;
        match (running, result) {
            (_, Ok(job)) => {
                self.check(!self.is_suspended(id), || format!("suspended {id} started job {}", job.id))?;
                self.ended_meanwhile(Who::Hostile)?;
                self.may_linger.extend(restoring);
                self.hostile.jobs_seen.insert(job.id);
                let (lies, vault_traps) = (BTreeSet::from([self.hostile.lie]), self.vault_traps_hit());
                self.hostile.job = Some(HostileJob { id: job.id, restoring, lies, vault_traps });
                Ok(())
            }
            (Some(running), Err(VaultError::JobRunning { job, .. })) => {
                self.tally.refusals += 1;
                self.check(job == running, || format!("a job of the hostile {id} refused for job {job}, but {running} runs"))
            }
            (_, Err(VaultError::Suspended { app, .. })) if app == id && self.is_suspended(id) => {
                self.tally.refusals += 1;
                self.ended_meanwhile(Who::Hostile)
            }
            // Retention let it go in the rounds that ran the request.
            (_, Err(VaultError::UnknownSnapshot { snapshot_id, .. })) if self.hostile.history.retired.contains(&snapshot_id) => {
                self.tally.refusals += 1;
                Ok(())
            }
            (running, result) => Err(format!("a job of the hostile {id} with job {running:?} running: {result:?}")),
        }
    }

    /// Cancels a running job: it ends as cancelled by the owner (the observation of its end
    /// checks that a snapshot is never listed and that an app is as it was), or the vault
    /// refuses as the job is over or a restore is committing.
    fn cancel(&mut self) -> Checked {
        let running: Vec<(Who, u64)> = self.everyone().into_iter().filter_map(|who| self.running_job(who).map(|job| (who, job))).collect();
        let Some(&(who, job)) = self.rng.pick(&running) else { return Ok(()) };
        let result = self.request(owner(), |v| v.cancel_job(job))?;
        self.say(format!("cancel job {job} of {}: {:?}", self.principal(who), result.as_ref().map(|j| &j.error)));
        match result {
            Ok(info) => {
                let cancelled = Some(JobError::Cancelled { by: owner() });
                self.check(info.phase == JobPhase::Failed && info.error == cancelled, || format!("cancelled job {job} is {info:?}"))?;
                self.cancelled.insert(job);
                self.tally.cancelled += 1;
                self.observe_job_of(who)
            }
            Err(VaultError::NotCancellable { job: refused, reason }) => {
                self.tally.refusals += 1;
                let status = self.env.vault().job_status(job).map_err(|e| format!("job {job}: {e}"))?;
                let committing = matches!(status.kind, JobKind::Restore { .. }) && status.phase == JobPhase::Finishing;
                self.check(refused == job && (finished(&status) || committing), || {
                    format!("cancel of job {job} refused ({reason}): {status:?}")
                })?;
                self.catch_up(who)
            }
            Err(e) => Err(format!("cancel of job {job}: {e}")),
        }
    }

    /// Suspends an app for a few steps: no snapshot or restore into it starts until resumed.
    /// Half the time an app on a timer, whose slots then pass.
    fn suspend(&mut self) -> Checked {
        let on_timer = self.rng.chance(50);
        let candidates: Vec<Principal> = self
            .everyone()
            .into_iter()
            .filter(|&who| !on_timer || matches!(who, Who::Honest(i) if self.apps[i].scheduled))
            .map(|who| self.principal(who))
            .filter(|&app| !self.is_suspended(app))
            .collect();
        let Some(&app) = self.rng.pick(&candidates) else { return Ok(()) };
        let reason = format!("suspended at step {}", self.tally.steps);
        let (result, times) = self.timed(|v| v.suspend_app(SuspendArgs { app, reason: reason.clone() }))?;
        self.say(format!("suspend {app}: {result:?}"));
        result.map_err(|e| format!("suspend {app}: {e}"))?;
        self.suspended.entry(app).or_default().begin(times);
        let until = self.tally.steps + 3 + self.rng.below(20);
        self.resume_at.insert(app, until);
        self.tally.suspensions += 1;
        Ok(())
    }

    fn resume(&mut self, app: Principal) -> Checked {
        let (result, times) = self.timed(|v| v.resume_app(app))?;
        self.say(format!("resume {app}: {result:?}"));
        result.map_err(|e| format!("resume {app}: {e}"))?;
        self.suspended.entry(app).or_default().end(times);
        self.resume_at.remove(&app);
        Ok(())
    }

    /// Lowers the limits for a few steps, so that every snapshot whose dump opens meanwhile
    /// meets a quota of 1 (of bytes, or of snapshots too); or raises them early.
    fn toggle_limits(&mut self) -> Checked {
        if self.raise_at.is_some() {
            return self.raise_limits();
        }
        let app_snapshots = if self.rng.chance(50) { 1 } else { self.usual_limits.app_snapshots };
        let limits = Limits { app_bytes: 1, app_snapshots, ..self.usual_limits };
        let (result, times) = self.timed(|v| v.set_limits(limits))?;
        self.say(format!("lower the limits to {limits:?}: {result:?}"));
        result.map_err(|e| format!("set_limits: {e}"))?;
        self.lowered.begin(times);
        self.raise_at = Some(self.tally.steps + 5 + self.rng.below(20));
        self.tally.lowerings += 1;
        Ok(())
    }

    fn raise_limits(&mut self) -> Checked {
        let limits = self.usual_limits;
        let (result, times) = self.timed(|v| v.set_limits(limits))?;
        self.say(format!("raise the limits: {result:?}"));
        result.map_err(|e| format!("set_limits: {e}"))?;
        self.lowered.end(times);
        self.raise_at = None;
        Ok(())
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
                self.observe_listing(Who::Honest(i))?;
                self.observe_live_state(i, pass == 0)?;
            }
            self.observe_hostile()?;
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
            let started = job.started_at_nanos;
            let suspended = self.suspended.get(&id).is_some_and(|held| held.surely(started, started));
            self.check(!suspended, || format!("the timer started job {} of {id} while it was suspended", job.id))?;
            let mut window = vec![self.known_state(i)?];
            if before.0 != window[0].0 || before.1 != window[0].1 {
                window.insert(0, before.clone());
            }
            self.say(format!("timer started job {} of {id}", job.id));
            self.apps[i].job = Some(ModelJob::Snapshot { id: job.id, window, fixed: false });
            self.observe_job(i)?;
        }
        Ok(())
    }

    fn observe_job(&mut self, i: usize) -> Checked {
        let Some(model) = self.apps[i].job.clone() else { return Ok(()) };
        let id = self.apps[i].id;
        let job = self.env.vault().job_status(model.id()).map_err(|e| format!("job {}: {e}", model.id()))?;
        if self.apps[i].native && finished(&job) {
            self.start_if_left_stopped(&job)?;
        }
        let listed: Vec<u64> = self.env.vault().list_snapshots(id).map_err(|e| e.to_string())?.iter().map(|s| s.id).collect();
        match (model, job.phase) {
            (ModelJob::Snapshot { window, fixed, .. }, JobPhase::Succeeded) => {
                self.check_not_refused(&job)?;
                let snapshot = job.snapshot_id.ok_or("a snapshot job without its snapshot")?;
                let info = self.env.vault().list_snapshots(id).map_err(|e| e.to_string())?.into_iter().find(|s| s.id == snapshot);
                let info = info.ok_or_else(|| format!("snapshot {snapshot} of job {} completed but is not listed", job.id))?;
                let incremental = job.notes.iter().any(|note| note.contains("incremental against snapshot"));
                self.say(format!("snapshot {snapshot} of {id} completed{}", if incremental { ", incremental" } else { "" }));
                let taken_at = info.taken_at_nanos;
                self.snapshots.insert(snapshot, ModelSnapshot { app: id, window, state: None, info });
                self.apps[i].history.complete(snapshot, taken_at);
                self.apps[i].job = None;
                self.tally.snapshots += 1;
                self.tally.native_snapshots += self.apps[i].native as u64;
                self.tally.incremental += incremental as u64;
                self.tally.of_upgrade_saves += fixed as u64;
            }
            (ModelJob::Snapshot { .. }, phase) => {
                if let Some(snapshot) = job.snapshot_id {
                    self.check(!listed.contains(&snapshot), || format!("incomplete snapshot {snapshot} ({phase:?}) is listed"))?;
                }
                if phase == JobPhase::Failed {
                    self.check(job.error.is_some(), || format!("job {} failed without saying why", job.id))?;
                    self.check_failure_cause(&job)?;
                    self.say(format!("snapshot job {} failed: {:?}", job.id, job.error));
                    self.apps[i].job = None;
                    self.count_failure(&job);
                }
            }
            (ModelJob::Restore { snapshot, before, via_upgrade: true, .. }, JobPhase::Succeeded)
                if job.notes.iter().any(|note| note.contains("whose next upgrade loads it")) =>
            {
                self.say(format!("restore of {snapshot} into {id} staged for its upgrade"));
                self.apps[i].job = None;
                self.apps[i].upgrade_restore = Some((job.id, snapshot));
                self.tally.restores += 1;
                self.tally.via_upgrade += 1;
                if !self.settle_upgrade_restore(i)? {
                    let now = self.digest(id)?;
                    self.check(now == before, || format!("the commit of a restore staged for the upgrade changed {id}: {now:?}, was {before:?}"))?;
                    self.upgrade(i)?;
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
                self.check_failure_cause(&job)?;
                if matches!(job.error, Some(JobError::CommitUnconfirmed { .. })) && now != before {
                    // The vault said it could not learn whether the commit ran: it did.
                    self.settle_snapshot_state(snapshot, &now)?;
                } else {
                    self.check(now == before, || format!("a failed restore changed {id}: {now:?}, was {before:?}"))?;
                }
                self.apps[i].state = now;
                self.apps[i].job = None;
                self.count_failure(&job);
            }
            (ModelJob::Restore { snapshot, before, .. }, phase) => {
                // Untouched until the commit; the commit may have run before the vault heard. A
                // native target stopped for its load is not asked.
                let Some(seq) = self.seq_now(id)? else { return Ok(()) };
                let committed = self.snapshots[&snapshot].window.iter().any(|d| d.0 == seq);
                self.check(seq == before.0 || (phase == JobPhase::Finishing && committed), || {
                    format!("{id} changed to seq {seq} before the restore of {snapshot} committed ({phase:?})")
                })?;
            }
        }
        Ok(())
    }

    /// A native app's job ended: the vault started the app again, or the job says it could not
    /// (its error names `start_canister`, or its notes ask for a start); the campaign, its
    /// controller, then starts it.
    fn start_if_left_stopped(&self, job: &JobInfo) -> Checked {
        let app = job.app;
        // A job cancelled during its take ends at once; the step under way still starts the app.
        let status = || self.env.ic.canister_status(app, Some(owner())).map(|s| s.status).map_err(|e| format!("status of {app}: {e}"));
        for _ in 0..STEP_ROUNDS {
            if status()? == ic_management_canister_types::CanisterStatusType::Running {
                return Ok(());
            }
            self.env.run_for(1);
        }
        let status = status()?;
        let start_refused = matches!(&job.error, Some(JobError::AppRefused { error: BackupError::NativeRefused { method, .. } }) if method == "start_canister");
        let said = start_refused || job.notes.iter().any(|n| n.contains("could not be started again"));
        self.check(said, || format!("job {} left {app} {status:?} without saying so: {job:?}", job.id))?;
        self.env.ic.start_canister(app, Some(owner())).map_err(|e| format!("start {app}: {e}"))?;
        self.left_stopped.set(self.left_stopped.get() + 1);
        Ok(())
    }

    /// A snapshot job completed: its dump did not open while the lowered limits surely
    /// refused every snapshot.
    fn check_not_refused(&self, job: &JobInfo) -> Checked {
        let (from, to) = (job.started_at_nanos, job.finished_at_nanos.unwrap_or(u64::MAX));
        self.check(!self.lowered.surely(from, to), || format!("snapshot job {} completed while the limits refused every snapshot", job.id))
    }

    /// What a failed job ended in that the campaign caused: a cancel only if it cancelled the
    /// job, a quota only for a snapshot job that ran while the limits were perhaps lowered (to
    /// 1, for the app that ran it). The vault's stable memory never fills here.
    fn check_failure_cause(&self, job: &JobInfo) -> Checked {
        let id = job.id;
        match &job.error {
            Some(JobError::Cancelled { by }) => self
                .check(self.cancelled.contains(&id) && *by == owner(), || format!("job {id} was cancelled by {by}, not by the campaign")),
            // A snapshot of an upgrade's save when there was none, or a later upgrade saved anew.
            // Or its save is older than what retention keeps.
            Some(JobError::AppRefused { error: BackupError::NoUpgradeSave { .. } })
            | Some(JobError::Refused { error: VaultError::InvalidArgument { .. } }) => {
                let of_save = job.notes.iter().any(|note| note.contains("last upgrade saved"));
                self.check(of_save, || format!("job {id} failed for want of an upgrade's save it did not ask for: {:?}", job.error))
            }
            Some(JobError::Refused { error }) => {
                let quota = matches!(error, VaultError::QuotaExceeded { app, limit: 1, .. } if *app == job.app);
                let snapshot = matches!(job.kind, JobKind::Snapshot { .. });
                let lowered = self.lowered.perhaps(job.started_at_nanos, job.finished_at_nanos.unwrap_or(u64::MAX));
                self.check(quota && snapshot && lowered, || format!("job {id} was refused though no limit it meets was lowered: {error:?}"))
            }
            other => self.check(!self.cancelled.contains(&id), || format!("job {id} was cancelled, yet ended in {other:?}")),
        }
    }

    fn count_failure(&mut self, job: &JobInfo) {
        self.tally.failed_jobs += 1;
        if matches!(job.error, Some(JobError::Refused { error: VaultError::QuotaExceeded { .. } })) {
            self.tally.quota_refusals += 1;
        }
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
    fn observe_listing(&mut self, who: Who) -> Checked {
        if let Who::Honest(i) = who
            && self.apps[i].clone
        {
            return Ok(());
        }
        let id = self.principal(who);
        let listed = self.env.vault().list_snapshots(id).map_err(|e| e.to_string())?;
        let history = self.history(who);
        let ids: BTreeSet<u64> = listed.iter().map(|s| s.id).collect();
        let live: BTreeSet<u64> = history.live().into_iter().collect();
        self.check(ids.iter().all(|s| history.completed.contains(s) && !history.deleted.contains(s)), || {
            format!("{id} lists {ids:?}, the model has {live:?}")
        })?;
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
        // A native app stopped is stopped by a job of it.
        let Some(seq) = self.seq_now(id)? else {
            // Stopped by a job of it; or, with none running, by one that ended (cancelled during
            // its take, say): the step under way starts it, or the job said it could not.
            return if self.job_runs(id)? { Ok(()) } else { self.wait_while_stopped(id) };
        };
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

    /// The hostile app: no job of it from nowhere, its job as the lies told allow, its listing.
    fn observe_hostile(&mut self) -> Checked {
        let id = self.hostile.id;
        let jobs = self.env.vault().list_jobs(id).map_err(|e| e.to_string())?;
        let unseen: Vec<u64> = jobs.iter().map(|j| j.id).filter(|j| !self.hostile.jobs_seen.contains(j)).collect();
        self.check(unseen.is_empty(), || format!("jobs {unseen:?} of the hostile {id} appeared from nowhere"))?;
        self.observe_hostile_job()?;
        self.observe_listing(Who::Hostile)
    }

    /// The hostile app's job as the lies told while it ran allow: it succeeds only if each of
    /// its calls could be answered without a lie that spoils it, and fails in an error one of
    /// the lies (or the campaign) explains. A restore commits once if it succeeds, and not at
    /// all if it fails, unless the vault could not learn whether its commit ran. The app's
    /// image never changes: every snapshot holds it.
    fn observe_hostile_job(&mut self) -> Checked {
        let Some(model) = self.hostile.job.clone() else { return Ok(()) };
        let id = self.hostile.id;
        let job = self.env.vault().job_status(model.id).map_err(|e| format!("job {}: {e}", model.id))?;
        let (commits, image) = (self.env.hostile(id).commits(), self.env.hostile(id).image_sha256());
        let committed = self.hostile.commits;
        self.check(image == self.hostile.image, || format!("the hostile {id}'s image changed to {image:?}"))?;
        let lies = &model.lies;
        match (model.restoring, job.phase) {
            (restoring, JobPhase::Succeeded) => {
                let calls = if restoring.is_some() { RESTORE_CALLS } else { DUMP_CALLS };
                self.check(could_succeed(lies, calls), || format!("job {} of the hostile {id} succeeded with the lies {lies:?}", job.id))?;
                if let Some(snapshot) = restoring {
                    self.check(commits == committed + 1, || {
                        format!("the restore of {snapshot} into {id} succeeded with {commits} commits, was {committed}")
                    })?;
                    self.say(format!("restore of {snapshot} into the hostile {id} committed"));
                    self.tally.restores += 1;
                } else {
                    self.check_not_refused(&job)?;
                    let snapshot = job.snapshot_id.ok_or("a snapshot job without its snapshot")?;
                    let info = self.env.vault().list_snapshots(id).map_err(|e| e.to_string())?.into_iter().find(|s| s.id == snapshot);
                    let info = info.ok_or_else(|| format!("snapshot {snapshot} of job {} completed but is not listed", job.id))?;
                    let holds_the_image = info.sha256 == self.hostile.image && info.chunks == HOSTILE_CHUNKS;
                    self.check(holds_the_image, || format!("snapshot {snapshot} of the hostile {id} is not its image: {info:?}"))?;
                    self.say(format!("snapshot {snapshot} of the hostile {id} completed"));
                    let taken_at = info.taken_at_nanos;
                    self.snapshots.insert(snapshot, ModelSnapshot { app: id, window: Vec::new(), state: None, info });
                    self.hostile.history.complete(snapshot, taken_at);
                    self.tally.snapshots += 1;
                }
            }
            (restoring, JobPhase::Failed) => {
                let error = job.error.clone().ok_or_else(|| format!("job {} failed without saying why", job.id))?;
                self.check_failure_cause(&job)?;
                // A trap in the vault costs a job an attempt, and may end it as out of them.
                let trapped = self.vault_traps_hit() > model.vault_traps;
                let by_a_lie = lies.iter().any(|&name| lie_named(name).is_some_and(|lie| (lie.ends_in)(&error)));
                let by_the_campaign = matches!(error, JobError::Cancelled { .. } | JobError::Refused { .. });
                let by_a_trap = trapped && matches!(error, JobError::RetriesExhausted { .. } | JobError::CommitUnconfirmed { .. });
                self.check(by_a_lie || by_the_campaign || by_a_trap, || {
                    format!("job {} of the hostile {id} failed in {error:?}, which none of the lies {lies:?} explains", job.id)
                })?;
                let unknown_commit = restoring.is_some() && (trapped || matches!(error, JobError::CommitUnconfirmed { .. }));
                self.check(commits == committed || (unknown_commit && commits == committed + 1), || {
                    format!("failed job {} of the hostile {id} left {commits} commits, was {committed}", job.id)
                })?;
                self.say(format!("job {} of the hostile {id} failed: {error:?}", job.id));
                self.count_failure(&job);
                self.tally.hostile_failures += 1;
            }
            (restoring, phase) => {
                // Nothing committed while it runs, unless the commit ran before the vault heard.
                let committing = restoring.is_some() && phase == JobPhase::Finishing;
                return self.check(commits == committed || (committing && commits == committed + 1), || {
                    format!("the hostile {id} has {commits} commits, was {committed}, while job {} runs ({phase:?})", job.id)
                });
            }
        }
        self.hostile.commits = commits;
        self.hostile.job = None;
        self.tally.hostile_jobs += 1;
        Ok(())
    }

    // ---- the end ----

    /// Without faults, with the usual limits, no app suspended and the hostile app honest:
    /// every job ends, every app takes one more snapshot (retention then keeps exactly its
    /// newest), every kept snapshot verifies, and some restore to their states.
    fn finish(&mut self) -> Checked {
        self.env.ic.clear_faults();
        self.say("finish".into());
        if self.raise_at.is_some() {
            self.raise_limits()?;
        }
        for app in self.resume_at.keys().copied().collect::<Vec<_>>() {
            self.resume(app)?;
        }
        self.set_lie(HONEST);
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
        let before: Vec<Digest> = self.apps.iter().map(|a| a.state.clone()).collect();
        if self.hostile.job.is_none() {
            let hostile = self.hostile.id;
            let job = self.request(owner(), |v| v.snapshot_now(hostile))?.map_err(|e| format!("snapshot_now {hostile}: {e}"))?;
            self.hostile_started(None, Ok(job))?;
        }
        self.settle()?;
        self.observe(&before)?;
        for who in self.sources() {
            let id = self.principal(who);
            let listed: BTreeSet<u64> = self.env.vault().list_snapshots(id).map_err(|e| e.to_string())?.iter().map(|s| s.id).collect();
            let newest: BTreeSet<u64> = self.history(who).live().into_iter().collect();
            self.check(listed == newest, || format!("{id} lists {listed:?} once idle, its retention keeps {newest:?}"))?;
            for &snapshot in &newest {
                self.verify_chunks(id, snapshot)?;
            }
            match (who, newest.iter().next()) {
                (Who::Honest(i), Some(&snapshot)) => self.restore_into_clone(i, snapshot)?,
                (Who::Hostile, Some(&snapshot)) => self.restore_hostile(snapshot)?,
                (_, None) => {}
            }
        }
        self.nothing_left_on_native_apps()?;
        self.delete_everything()
    }

    /// Idle, the vault leaves no native snapshot on the apps it captures or restored into (their
    /// ten slots are theirs), unless a delete of one was made to fail.
    fn nothing_left_on_native_apps(&mut self) -> Checked {
        for app in self.apps.iter().filter(|a| a.native).map(|a| a.id).collect::<Vec<_>>() {
            let left = self.env.ic.list_canister_snapshots(app, Some(owner())).map_err(|e| format!("snapshots of {app}: {e}"))?;
            self.tally.native_left += left.len() as u64;
            self.check(left.is_empty() || self.delete_faulted, || format!("{app} holds {} native snapshots once idle, no delete having failed", left.len()))?;
        }
        Ok(())
    }

    /// Every snapshot deleted, what each app holds comes back to nothing: each chunk, delta and
    /// manifest page was released as often as it was held, whatever ran before.
    fn delete_everything(&mut self) -> Checked {
        let sources: Vec<Principal> = self.sources().into_iter().map(|who| self.principal(who)).collect();
        // No timer takes one more meanwhile.
        for &id in &sources {
            self.request(owner(), |v| v.update_schedule(UpdateScheduleArgs { app: id, schedule: Some(manual()), retention: None, max_incrementals: None }))?
                .map_err(|e| format!("unscheduling {id}: {e}"))?;
        }
        for _ in 0..MAX_DOWNTIME_ROUNDS {
            if !sources.iter().map(|&id| self.job_runs(id)).collect::<Result<Vec<bool>, String>>()?.contains(&true) {
                break;
            }
            self.env.run_for(1);
        }
        for &id in &sources {
            let listed: Vec<u64> = self.env.vault().list_snapshots(id).map_err(|e| e.to_string())?.iter().map(|s| s.id).collect();
            for &snapshot in &listed {
                let result = self.request(owner(), |v| v.delete_snapshot(SnapshotRef { app: id, snapshot_id: snapshot }))?;
                // The app's timer may take one more meanwhile, and its retention let this one go.
                let now: Vec<u64> = self.env.vault().list_snapshots(id).map_err(|e| e.to_string())?.iter().map(|s| s.id).collect();
                let retired = matches!(result, Err(VaultError::UnknownSnapshot { .. })) && now.iter().any(|s| !listed.contains(s));
                self.check(result.is_ok() || retired, || format!("deleting {snapshot} of {id} once idle: {result:?}"))?;
            }
            // What the timer took meanwhile goes too.
            for snapshot in self.env.vault().list_snapshots(id).map_err(|e| e.to_string())? {
                let result = self.request(owner(), |v| v.delete_snapshot(SnapshotRef { app: id, snapshot_id: snapshot.id }))?;
                self.check(result.is_ok(), || format!("deleting {} of {id} once idle: {result:?}", snapshot.id))?;
            }
        }
        let held = |campaign: &Self| -> Result<Vec<Option<u64>>, String> {
            sources.iter().map(|&id| campaign.env.vault().app_info(id).map(|info| info.stored_bytes).map_err(|e| e.to_string())).collect()
        };
        for _ in 0..600 {
            if held(self)?.iter().all(|&bytes| bytes == Some(0)) {
                return Ok(());
            }
            self.env.run_for(1);
        }
        let left = held(self)?;
        self.check(false, || format!("with every snapshot deleted, {sources:?} still hold {left:?} bytes"))
    }

    fn snapshot_now_of(&mut self, i: usize) -> Checked {
        let id = self.apps[i].id;
        let job = self.request(owner(), |v| v.snapshot_now(id))?.map_err(|e| format!("snapshot_now {id}: {e}"))?;
        let state = self.known_state(i)?;
        self.apps[i].jobs_seen.insert(job.id);
        self.apps[i].job = Some(ModelJob::Snapshot { id: job.id, window: vec![state], fixed: false });
        Ok(())
    }

    fn restore_into_clone(&mut self, source: usize, snapshot: u64) -> Checked {
        let target = self.clone_of(source);
        let before = self.known_state(target)?;
        let (source_id, target_id) = (self.apps[source].id, self.apps[target].id);
        let args = RestoreArgs { app: source_id, snapshot_id: snapshot, target: Some(target_id), allow_layout_change: None, via_upgrade: None };
        let job = self.request(owner(), |v| v.restore(args))?.map_err(|e| format!("restore: {e}"))?;
        self.apps[target].jobs_seen.insert(job.id);
        self.apps[target].job = Some(ModelJob::Restore { id: job.id, source: source_id, snapshot, before, via_upgrade: false });
        self.settle()?;
        let done = self.env.vault().job_status(job.id).map_err(|e| e.to_string())?;
        self.check(done.phase == JobPhase::Succeeded, || format!("the final restore of {snapshot} failed: {done:?}"))?;
        self.observe_job(target)
    }

    /// The honest hostile app takes the restore of its snapshot.
    fn restore_hostile(&mut self, snapshot: u64) -> Checked {
        let id = self.hostile.id;
        let args = RestoreArgs { app: id, snapshot_id: snapshot, target: None, allow_layout_change: None, via_upgrade: None };
        let job = self.request(owner(), |v| v.restore(args))?.map_err(|e| format!("restore: {e}"))?;
        self.hostile_started(Some(snapshot), Ok(job.clone()))?;
        self.settle()?;
        let done = self.env.vault().job_status(job.id).map_err(|e| e.to_string())?;
        self.check(done.phase == JobPhase::Succeeded, || {
            format!("the final restore of {snapshot} into the hostile {id} failed: {done:?}")
        })?;
        self.observe_hostile_job()
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
    campaign.tally.left_stopped = campaign.left_stopped.get();
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
        "campaign: {} seeds, {} steps, {} injected faults fired ({} traps armed in the vault), {} invariant checks passed, {} snapshots ({} incremental, {} of an upgrade's save), {} restores ({} through an upgrade, {} loaded by it), {} failed jobs ({} quota refusals), {} jobs of the hostile app ({} failed in an explained error), {} cancelled, {} suspensions, {} lowerings of the limits, {} vault upgrades, {} app upgrades, {} refusals; native apps: {} snapshots, {} updates refused while stopped, {} left stopped by a refused start, {} snapshots left by a refused delete; in {:.0?}",
        seeds.len(),
        sum(|t| t.steps),
        sum(|t| t.faults_fired),
        sum(|t| t.vault_traps),
        sum(|t| t.checks),
        sum(|t| t.snapshots),
        sum(|t| t.incremental),
        sum(|t| t.of_upgrade_saves),
        sum(|t| t.restores),
        sum(|t| t.via_upgrade),
        sum(|t| t.loaded_at_upgrade),
        sum(|t| t.failed_jobs),
        sum(|t| t.quota_refusals),
        sum(|t| t.hostile_jobs),
        sum(|t| t.hostile_failures),
        sum(|t| t.cancelled),
        sum(|t| t.suspensions),
        sum(|t| t.lowerings),
        sum(|t| t.vault_upgrades),
        sum(|t| t.app_upgrades),
        sum(|t| t.refusals),
        sum(|t| t.native_snapshots),
        sum(|t| t.downtime_refusals),
        sum(|t| t.left_stopped),
        sum(|t| t.native_left),
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
