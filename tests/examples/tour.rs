//! A tour of canister-vault on the embedded IC: deploy a vault and two apps (one with serde
//! heap state, one with stable structures), register them on a schedule, load data, let the
//! timers take snapshots while the apps keep working, break an app's state, restore a good
//! version, and restore another into a fresh clone. Each step prints what it did, with sizes,
//! durations and cycles; any failed check exits non-zero.
//!
//! Run: `cargo run --release -p vault-tests --example tour`

use std::process::ExitCode;
use std::time::Instant;

use vault_api::service::{JobPhase, Retention};
use vault_tests::*;

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

fn check(ok: bool, what: &str) -> Result<(), String> {
    if ok {
        println!("   ✓ {what}");
        Ok(())
    } else {
        Err(format!("check failed: {what}"))
    }
}

fn tour() -> Result<(), String> {
    let started = Instant::now();
    println!("1. Deploying a vault and two apps on the embedded IC");
    let env = Env::new();
    let vault_cycles = env.ic.cycle_balance(env.vault);
    let retention = Retention { keep_last: 3, keep_daily: 7, keep_weekly: 4 };
    let notes = env.registered(AppKind::Notes, schedule(6), retention);
    let ledger = env.registered(AppKind::Ledger, schedule(6), retention);
    println!("   vault {}, notes {notes} (serde heap state), ledger {ledger} (stable structures)", env.vault);
    println!("   both registered: a snapshot every 6 hours, keeping the last 3, 7 daily, 4 weekly");

    println!("2. Loading data");
    // Each app applies its numbered updates in order: a restored state can then be checked
    // against a fresh canister that replays the same prefix.
    let mut updates = [(notes, AppKind::Notes, 0u64), (ledger, AppKind::Ledger, 0u64)];
    let apply = |(app, kind, n): &mut (candid::Principal, AppKind, u64)| {
        kind.apply(&env.app(*app), *n);
        *n += 1;
    };
    for _ in 0..PREFILL + 10 {
        updates.iter_mut().for_each(apply);
    }
    println!("   {} updates each; ledger total {}", PREFILL + 10, env.app(ledger).query::<_, (u64,)>("total", ()).0);

    println!("3. A day passes: timers take snapshots while the apps keep serving updates");
    let mut during = 0;
    for _ in 0..4 {
        env.ic.advance_time(6 * HOUR);
        env.ic.tick();
        for entry in updates.iter_mut() {
            while let Some(job) = env.vault().app_info(entry.0).map_err(|e| e.to_string())?.running_job {
                if matches!(env.vault().job_status(job).map_err(|e| e.to_string())?.phase, JobPhase::Succeeded | JobPhase::Failed) {
                    break;
                }
                apply(entry);
                during += 1;
            }
        }
    }
    println!("   {during} updates ran while snapshots were being taken");
    for (name, app) in [("notes", notes), ("ledger", ledger)] {
        let list = env.vault().list_snapshots(app).map_err(|e| e.to_string())?;
        println!("   {name}: {} snapshots kept", list.len());
        for s in &list {
            println!(
                "     #{:<3} {:>10} in {:>3} chunks, sha256 {}…, transfer {:.3} TC",
                s.id,
                mib(s.size),
                s.chunks,
                &s.sha256.to_hex()[..12],
                s.transfer_cycles as f64 / 1e12
            );
        }
        check(list.len() == 3, &format!("{name}: retention kept the newest 3 of 4"))?;
    }

    println!("4. Someone breaks the ledger's state");
    let good = env.vault().list_snapshots(ledger).map_err(|e| e.to_string())?[1].clone();
    let ledger_app = env.app(ledger);
    for account in 0..5u64 {
        let _: (Result<u64, String>,) = ledger_app.update("transfer", (account, 99u64, ledger_app.query::<_, (u64,)>("balance", (account,)).0));
    }
    println!("   all balances moved to account 99: it holds {}", ledger_app.query::<_, (u64,)>("balance", (99u64,)).0);

    println!("5. Restoring snapshot #{} into the ledger", good.id);
    let t = Instant::now();
    let job = env.restore(ledger, good.id, None);
    check(job.phase == JobPhase::Succeeded, &format!("restore job {} succeeded in {:.2} s wall time", job.id, t.elapsed().as_secs_f64()))?;
    let (seq, digest) = ledger_app.digest();
    check(digest == env.reference_digest(AppKind::Ledger, seq), &format!("the ledger is byte for byte its state after {seq} updates"))?;
    check(ledger_app.query::<_, (u64,)>("balance", (99u64,)).0 == 0, "account 99 is empty again")?;

    println!("6. Cloning the notes app from its oldest kept snapshot into a fresh canister");
    let clone = env.registered(AppKind::Notes, schedule(0), keep(1));
    let oldest = env.vault().list_snapshots(notes).map_err(|e| e.to_string())?[0].clone();
    let job = env.restore(notes, oldest.id, Some(clone));
    check(job.phase == JobPhase::Succeeded, &format!("clone {clone} restored from #{}", oldest.id))?;
    let (seq, digest) = env.app(clone).digest();
    check(digest == env.reference_digest(AppKind::Notes, seq), &format!("the clone holds the notes state after {seq} updates"))?;
    check(env.app(notes).seq() > seq, "the source app is untouched and ahead")?;

    println!("7. Costs");
    let spent = vault_cycles.saturating_sub(env.ic.cycle_balance(env.vault));
    let metrics = env.ic.canister_metrics(env.vault);
    let traffic = env.ic.traffic();
    println!(
        "   vault: {:.3} TC spent, {} executions, {:.2} B instructions; {} inter-canister calls moved {}",
        spent as f64 / 1e12,
        metrics.executions,
        metrics.instructions as f64 / 1e9,
        traffic.requests,
        mib(traffic.request_bytes + traffic.response_bytes)
    );
    println!("Tour complete in {:.1} s.", started.elapsed().as_secs_f64());
    Ok(())
}

fn main() -> ExitCode {
    match tour() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
