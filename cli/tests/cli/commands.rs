//! Each command on an embedded IC: what it does, what it prints, and how it refuses.

use std::process::Command;

use vault_cli::commands::embedded::modules;

use crate::support::{message, trapping_post_upgrade, Ic};

#[test]
fn register_schedule_list_status_and_unregister() {
    let ic = Ic::new();
    let app = ic.deploy("notes");
    let registered = ic.ok(&["register", &app, "--every", "6h", "--keep-last", "3", "--keep-daily", "2"]);
    assert_eq!(registered["app"], app.as_str());
    assert_eq!(registered["state_kind"], "serde");
    assert_eq!(registered["interval_seconds"], 6 * 3600);
    assert_eq!(registered["retention"]["keep_last"], 3);
    assert!(registered["next_snapshot_at"].is_string());

    assert!(message(&ic.err(&["register", &app])).contains("already registered"));

    // Only what is given changes.
    let changed = ic.ok(&["schedule", &app, "--keep-weekly", "4"]);
    assert_eq!(changed["interval_seconds"], 6 * 3600);
    assert_eq!(changed["retention"]["keep_last"], 3);
    assert_eq!(changed["retention"]["keep_weekly"], 4);
    let changed = ic.ok(&["schedule", &app, "--every", "never"]);
    assert_eq!(changed["interval_seconds"], 0);
    assert!(changed["next_snapshot_at"].is_null());

    let apps = ic.ok(&["list"]);
    assert_eq!(apps.as_array().unwrap().len(), 1);
    assert_eq!(apps[0]["app"], app.as_str());

    let status = ic.ok(&["status", &app]);
    assert_eq!(status["app"]["app"], app.as_str());
    assert_eq!(status["jobs"].as_array().unwrap().len(), 0);

    let text = ic.run(&["unregister", &app]).unwrap().text;
    assert!(text.contains("no longer backed up"), "{text}");
    assert!(message(&ic.err(&["status", &app])).contains("is not registered"));
    assert_eq!(ic.ok(&["list"]).as_array().unwrap().len(), 0);
}

#[test]
fn snapshot_restore_and_delete() {
    let ic = Ic::new();
    let app = ic.registered("ledger");
    ic.fill(&app, 3, 3_000_000);
    let before = ic.digest(&app);

    let snapshot = ic.ok(&["snapshot", &app]);
    assert_eq!(snapshot["trigger"], "manual");
    assert_eq!(snapshot["state_kind"], "stable-memory");
    assert!(snapshot["size"].as_u64().unwrap() >= 9_000_000);
    assert!(snapshot["chunks"].as_u64().unwrap() >= 5);
    assert_eq!(snapshot["sha256"].as_str().unwrap().len(), 64);
    let id = snapshot["id"].as_u64().unwrap();

    ic.call(&app, "put_blob", "(0 : nat64, 10 : nat64, 99 : nat8)");
    assert_ne!(ic.digest(&app), before);
    let restored = ic.ok(&["restore", &app, &id.to_string()]);
    assert_eq!(restored["phase"], "succeeded");
    assert_eq!(restored["kind"], "restore");
    assert_eq!(ic.digest(&app), before);

    let jobs = ic.ok(&["status", &app, "--jobs", "10"]);
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 2, "a snapshot and a restore");
    let job = jobs["jobs"][0]["id"].as_u64().unwrap();
    assert_eq!(ic.ok(&["status", "--job", &job.to_string()])["kind"], "restore");

    // A second snapshot, then the first deleted: the second stays restorable.
    let second = ic.snapshot(&app);
    let text = ic.run(&["delete", &app, &id.to_string()]).unwrap().text;
    assert!(text.contains("deleted"), "{text}");
    assert_eq!(ic.snapshot_ids(&app), vec![second]);
    assert!(message(&ic.err(&["restore", &app, &id.to_string()])).contains(&format!("has no snapshot {id}")));
    assert!(message(&ic.err(&["delete", &app, &id.to_string()])).contains(&format!("has no snapshot {id}")));
}

#[test]
fn a_serde_state_restores_through_the_apps_upgrade_and_snapshots_from_its_save_and_a_failed_upgrade_keeps_the_app() {
    let ic = Ic::new();
    let app = ic.registered("notes");
    ic.call(&app, "add_note", r#"("kept", "as the snapshot has it")"#);
    let taken = ic.digest(&app);
    let id = ic.snapshot(&app).to_string();
    ic.call(&app, "add_note", r#"("later", "replaced by the restore")"#);
    let notes = ic.file("notes.wasm", modules::NOTES);
    let trapping = ic.file("trapping.wasm", &trapping_post_upgrade());

    let refused = message(&ic.err(&["restore", &app, &id, "--via-upgrade", "--wasm", &trapping]));
    assert!(refused.contains("keeps its module and state") && refused.contains("stays staged"), "{refused}");
    assert_ne!(ic.digest(&app), taken, "the failed upgrade left the app as it was");

    let restored = ic.ok(&["restore", &app, &id, "--via-upgrade", "--wasm", &notes]);
    assert_eq!(restored["job"]["phase"], "succeeded");
    assert!(restored["loaded_at"].is_string(), "{restored}");
    assert_eq!(ic.digest(&app), taken);

    // The state an upgrade saved, snapshotted as of then.
    ic.ok(&["embedded", "upgrade", &app, "--wasm", &notes]);
    ic.call(&app, "add_note", r#"("after", "the upgrade")"#);
    let saved = ic.ok(&["snapshot", &app, "--from-upgrade-save"]);
    assert_eq!(saved["state_kind"], "serde");
    let saved = saved["id"].as_u64().unwrap().to_string();
    ic.ok(&["restore", &app, &saved]);
    assert_eq!(ic.digest(&app), taken, "as the upgrade saved it");

    let ledger = ic.registered("ledger");
    let id = ic.snapshot(&ledger).to_string();
    let refused = message(&ic.err(&["restore", &ledger, &id, "--via-upgrade", "--wasm", &notes]));
    assert!(refused.contains("only a serde snapshot"), "{refused}");
    let usage = message(&ic.err(&["restore", &app, &id, "--via-upgrade"]));
    assert!(usage.contains("--wasm"), "{usage}");
}

#[test]
fn a_job_can_be_followed_without_waiting() {
    let ic = Ic::new();
    let app = ic.registered("notes");
    ic.fill(&app, 2, 3_000_000);
    let started = ic.ok(&["snapshot", &app, "--no-wait"]);
    let job = started["id"].as_u64().unwrap().to_string();
    assert_ne!(started["phase"], "succeeded");
    assert!(message(&ic.err(&["snapshot", &app])).contains("already running"));
    ic.ok(&["embedded", "advance", "1m"]);
    assert_eq!(ic.ok(&["status", "--job", &job])["phase"], "succeeded");
    assert_eq!(ic.snapshot_ids(&app).len(), 1);
}

#[test]
fn scheduled_snapshots_are_taken_as_time_passes() {
    let ic = Ic::new();
    let app = ic.deploy("ledger");
    ic.ok(&["register", &app, "--every", "1h", "--keep-last", "2"]);
    for _ in 0..3 {
        ic.ok(&["embedded", "advance", "1h"]);
    }
    let snapshots = ic.ok(&["list", &app]);
    let snapshots = snapshots.as_array().unwrap();
    assert_eq!(snapshots.len(), 2, "three taken, the newest two kept");
    assert!(snapshots.iter().all(|s| s["trigger"] == "scheduled"));
}

#[test]
fn one_advance_fires_every_timer_due_in_it_at_its_time() {
    let ic = Ic::new();
    let app = ic.deploy("ledger");
    ic.ok(&["register", &app, "--every", "1h", "--keep-last", "20"]);
    let walked = ic.ok(&["embedded", "advance", "6h"]);
    assert_eq!(ic.snapshot_ids(&app).len(), 6, "an hourly schedule over 6 h: {walked}");
    let every_round = ic.ok(&["embedded", "advance", "2h", "--every-round"]);
    assert_eq!(ic.snapshot_ids(&app).len(), 8, "round by round, the same: {every_round}");
    let rounds = |report: &serde_json::Value| report["rounds"].as_u64().unwrap();
    assert!(rounds(&walked) < 1_000 && rounds(&every_round) >= 7_200, "rounds only where something is due: {walked} {every_round}");
}

#[test]
fn bad_command_lines_are_refused_before_anything_runs() {
    let ic = Ic::new();
    let usage = |args: &[&str]| match ic.run(args) {
        Err(vault_cli::CliError::Usage(e)) => e.to_string(),
        other => panic!("{args:?}: {other:?}"),
    };
    assert!(usage(&["register", "not-a-principal"]).contains("is not a principal"));
    assert!(usage(&["register", "aaaaa-aa", "--every", "6 hours"]).contains("not a duration"));
    assert!(usage(&["status"]).contains("required"));
    assert!(usage(&["restore", "aaaaa-aa"]).contains("required"));
    assert!(usage(&["frobnicate"]).contains("unrecognized subcommand"));
    let unregistered = ic.deploy("notes");
    assert!(message(&ic.err(&["list", &unregistered])).contains("is not registered"));
    assert!(message(&ic.err(&["embedded", "call", &unregistered, "seq", "(not candid"])).contains("not candid"));
    let empty = tempfile::tempdir().unwrap();
    let err = vault_cli::run(["vault", "--embedded", empty.path().to_str().unwrap(), "list"]).unwrap_err();
    assert!(message(&err).contains("holds no embedded IC"), "{err}");
    assert!(message(&ic.err(&["embedded", "init"])).contains("already holds an embedded IC"));
}

/// A module whose `canister_init` is `unreachable`: it traps whenever it is installed.
const TRAPPING_INIT: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // types: [] -> []
    0x03, 0x02, 0x01, 0x00, // functions: one of type 0
    0x07, 0x11, 0x01, 0x0d, b'c', b'a', b'n', b'i', b's', b't', b'e', b'r', b'_', b'i', b'n', b'i', b't', 0x00, 0x00, // export it
    0x0a, 0x05, 0x01, 0x03, 0x00, 0x00, 0x0b, // code: no locals, unreachable, end
];

#[test]
fn a_module_that_does_not_install_is_an_error_not_a_panic() {
    let ic = Ic::new();
    let not_wasm = ic.path("not.wasm");
    std::fs::write(&not_wasm, b"this is not a wasm module").unwrap();
    let trapping = ic.path("trapping.wasm");
    std::fs::write(&trapping, TRAPPING_INIT).unwrap();
    for (module, code) in [(&not_wasm, "IC0505"), (&trapping, "IC0502")] {
        let module = module.to_str().unwrap();
        let refused = message(&ic.err(&["embedded", "deploy", "--wasm", module]));
        assert!(refused.contains("did not install") && refused.contains("stays empty") && refused.contains(code), "{refused}");

        let fresh = tempfile::tempdir().unwrap();
        let dir = fresh.path().join("ic");
        let err = vault_cli::run(["vault", "--embedded", dir.to_str().unwrap(), "embedded", "init", "--wasm", module]).unwrap_err();
        assert!(message(&err).contains(code), "{err}");
        let err = vault_cli::run(["vault", "--embedded", dir.to_str().unwrap(), "embedded", "status"]).unwrap_err();
        assert!(message(&err).contains("holds no embedded IC"), "a failed init saves no IC: {err}");
    }

    let argv = ic.argv(&["embedded", "deploy", "--wasm", not_wasm.to_str().unwrap()]);
    let out = Command::new(env!("CARGO_BIN_EXE_vault")).args(&argv[1..]).env_remove("VAULT_ID").env_remove("VAULT_IDENTITY").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "an error, not a panic: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("IC0505"));
}

#[test]
fn the_binary_prints_json_for_scripts_and_exits_non_zero_on_errors() {
    let ic = Ic::new();
    let app = ic.registered("notes");
    let vault = |args: &[&str]| {
        let argv = ic.argv(args);
        Command::new(env!("CARGO_BIN_EXE_vault")).args(&argv[1..]).env_remove("VAULT_ID").env_remove("VAULT_IDENTITY").output().unwrap()
    };
    let out = vault(&["--json", "list"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let apps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(apps[0]["app"], app.as_str());

    let out = vault(&["list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&app));

    let out = vault(&["--json", "restore", &app, "7"]);
    assert_eq!(out.status.code(), Some(1));
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(error["error"].as_str().unwrap().contains("has no snapshot 7"), "{error}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no snapshot 7"));

    let out = vault(&["status"]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit with 2");
    let out = vault(&["--help"]);
    assert!(out.status.success());
    for command in ["register", "schedule", "snapshot", "list", "status", "restore", "delete", "export", "import", "verify", "embedded"] {
        assert!(String::from_utf8_lossy(&out.stdout).contains(command), "--help lists {command}");
    }
}

#[test]
fn an_upgrade_runs_once_a_snapshot_is_complete_prints_its_rollback_and_offers_the_restore_when_it_fails() {
    let ic = Ic::new();
    let notes = ic.file("notes.wasm", modules::NOTES);
    let trapping = ic.file("trapping.wasm", &trapping_post_upgrade());

    // A library app: the snapshot holds the state, and the rollback says the module goes back first.
    let app = ic.registered("notes");
    ic.call(&app, "add_note", r#"("kept", "across the upgrade")"#);
    let upgraded = ic.ok(&["upgrade", &app, "--wasm", &notes]);
    let before = upgraded["before"]["id"].as_u64().unwrap();
    assert_eq!(ic.snapshot_ids(&app), vec![before], "the snapshot is in the vault");
    assert_eq!(upgraded["before"]["state_kind"], "serde");
    assert_eq!(upgraded["restore_includes_module"], false);
    let rollback = upgraded["rollback"].as_str().unwrap();
    assert!(rollback.contains("back to its previous module") && rollback.ends_with(&format!("`vault restore {app} {before}`")), "{rollback}");
    assert_eq!(upgraded["module_bytes"], modules::NOTES.len());
    let installed = ic.ok(&["embedded", "upgrade", &app, "--wasm", &notes])["module_hash"].clone();
    assert_eq!(upgraded["module_hash"], installed, "the hash printed is the IC's module hash");
    let state = ic.digest(&app);

    // A refused upgrade leaves the app as it was and names the snapshot taken before it.
    let refused = message(&ic.err(&["upgrade", &app, "--wasm", &trapping]));
    let second = *ic.snapshot_ids(&app).last().unwrap();
    assert!(refused.contains("A rejected upgrade leaves a canister as it was"), "{refused}");
    assert!(refused.contains(&format!("`vault restore {app} {second}` puts it back")), "{refused}");
    assert_eq!(ic.digest(&app), state);
    // With --restore-on-failure the snapshot is restored without asking.
    let restored = message(&ic.err(&["upgrade", &app, "--wasm", &trapping, "--restore-on-failure"]));
    let job: u64 = restored.rsplit("and job ").next().unwrap().split(' ').next().unwrap().parse().unwrap_or_else(|_| panic!("{restored}"));
    let job = ic.ok(&["status", "--job", &job.to_string()]);
    assert_eq!((job["kind"].as_str(), job["phase"].as_str()), (Some("restore"), Some("succeeded")), "{job}");
    assert_eq!(ic.digest(&app), state);

    // Nothing is upgraded when no snapshot can be taken: an app the vault does not know.
    let stranger = ic.deploy("notes");
    ic.call(&stranger, "add_note", r#"("untouched", "no snapshot, no upgrade")"#);
    let stranger_state = ic.digest(&stranger);
    let unknown = message(&ic.err(&["upgrade", &stranger, "--wasm", &trapping]));
    assert!(unknown.contains("not registered"), "{unknown}");
    assert_eq!(ic.digest(&stranger), stranger_state);

    // A native app: an upgrade that loses its heap is rolled back, module and all, by the restore printed.
    let plain = ic.ok(&["embedded", "deploy", "--example", "plain", "--controller", &ic.vault])["canister"].as_str().unwrap().to_string();
    ic.ok(&["register", &plain, "--native", "--every", "never", "--keep-last", "5"]);
    ic.call(&plain, "add", r#"("held in the heap alone")"#);
    let held = ic.call(&plain, "digest", "()");
    let plain_wasm = ic.file("plain.wasm", modules::PLAIN);
    let upgraded = ic.ok(&["upgrade", &plain, "--wasm", &plain_wasm]);
    assert_eq!(upgraded["before"]["state_kind"], "native");
    assert_eq!(upgraded["restore_includes_module"], true);
    let before = upgraded["before"]["id"].as_u64().unwrap().to_string();
    assert_eq!(upgraded["rollback"].as_str().unwrap(), format!("`vault restore {plain} {before}` (module, heap and stable memory)"));
    assert_eq!(ic.call(&plain, "count", "()").trim(), "(0 : nat64)", "the upgrade dropped the heap");
    ic.ok(&["restore", &plain, &before]);
    assert_eq!(ic.call(&plain, "digest", "()"), held);
}
