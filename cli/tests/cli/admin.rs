//! Administration: the vault's controller lets a stranger register, suspends, resumes and
//! evicts the stranger's app and lists what it holds; the app's controller cancels its job;
//! a principal that administers nothing is refused by every administration command.

use serde_json::{Value, json};

use crate::support::{Ic, identity_file, message, principal};

/// The registrant `who` in `vault admin registrants --json`.
fn registrant(ic: &Ic, who: &str) -> Value {
    let listed = ic.ok(&["admin", "registrants"]);
    listed.as_array().unwrap().iter().find(|r| r["registrant"] == who).cloned().unwrap_or_else(|| panic!("{who} is not listed: {listed}"))
}

#[test]
fn the_vaults_controller_administers_a_strangers_app_and_the_stranger_cancels_its_job() {
    let ic = Ic::new();
    let stranger = identity_file(ic.root.path(), 11);
    let who = principal(&stranger);
    let as_stranger = |args: &[&str]| ic.run(&[&["--identity", stranger.as_str()], args].concat());
    let deploy = || as_stranger(&["embedded", "deploy", "--example", "notes"]).unwrap().json["canister"].as_str().unwrap().to_string();
    let app = deploy();
    ic.fill(&app, 2, 3_000_000);

    // Registration is by allow-list: the stranger may register once allowed.
    assert_eq!(ic.ok(&["admin", "info"]), json!({ "administrators": [], "registration": "allow-list", "allowed": [] }));
    let refused = message(&as_stranger(&["register", &app]).unwrap_err());
    assert!(refused.contains("may not register apps") && refused.contains(&format!("`vault admin allow {who}`")), "{refused}");
    ic.ok(&["admin", "allow", &who]);
    assert_eq!(ic.ok(&["admin", "info"])["allowed"], json!([who]));
    as_stranger(&["register", &app, "--every", "never"]).unwrap();
    let first = as_stranger(&["snapshot", &app]).unwrap().json["id"].as_u64().unwrap();

    // Suspended, the app takes no snapshot, and the stranger is told why.
    ic.ok(&["admin", "suspend", &app, "--reason", "over quota"]);
    let refused = message(&as_stranger(&["snapshot", &app]).unwrap_err());
    assert!(refused.contains("is suspended") && refused.contains("over quota") && refused.contains("vault admin resume"), "{refused}");
    let listed = registrant(&ic, &who);
    assert_eq!(listed["allowed"], true);
    let usage = &listed["apps"][0];
    assert_eq!((usage["app"].as_str(), usage["snapshots"].as_u64()), (Some(app.as_str()), Some(1)));
    assert!(usage["snapshot_bytes"].as_u64().unwrap() >= 6_000_000, "{usage}");
    assert_eq!(usage["suspension"]["reason"], "over quota");
    assert_eq!(usage["suspension"]["by"], principal(ic.dir().join("identity.pem").to_str().unwrap()));
    let table = ic.run(&["admin", "registrants"]).unwrap().text;
    let header = table.lines().next().unwrap();
    assert!(["REGISTRANT", "ALLOWED", "APP", "SNAPSHOTS", "BYTES", "RUNNING JOB", "SUSPENDED"].iter().all(|c| header.contains(c)), "{table}");
    let row = table.lines().find(|l| l.contains(&app)).unwrap_or_else(|| panic!("no row for {app}: {table}"));
    assert!(row.starts_with(&who) && row.contains("yes") && row.contains("MiB") && row.contains("\"over quota\""), "{row}");

    // Resumed, it snapshots again; the stranger cancels the running job, once.
    ic.ok(&["admin", "resume", &app]);
    let started = as_stranger(&["snapshot", &app, "--no-wait"]).unwrap().json;
    assert_ne!(started["phase"], "succeeded");
    let job = started["id"].as_u64().unwrap().to_string();
    assert_eq!(registrant(&ic, &who)["apps"][0]["running_job"], started["id"]);
    let cancelled = as_stranger(&["cancel", &job]).unwrap().json;
    assert_eq!(cancelled["phase"], "failed");
    assert_eq!(cancelled["error"], format!("cancelled by {who}"));
    let again = message(&as_stranger(&["cancel", &job]).unwrap_err());
    assert!(again.contains(&format!("job {job} cannot be cancelled")), "{again}");
    assert!(registrant(&ic, &who)["apps"][0]["running_job"].is_null());

    // Evicted, the app is not registered, its snapshot still listed for its controller;
    // registered again, it has its snapshot back.
    ic.ok(&["admin", "evict", &app]);
    assert!(message(&as_stranger(&["status", &app]).unwrap_err()).contains("is not registered"));
    assert_eq!(as_stranger(&["list", &app]).unwrap().json[0]["id"], first);
    assert_eq!(registrant(&ic, &who)["apps"], json!([]), "still listed: allowed, without apps");
    as_stranger(&["register", &app, "--every", "never"]).unwrap();
    assert_eq!(as_stranger(&["list", &app]).unwrap().json[0]["id"], first);

    // Limited to one snapshot, the app takes no second one until the limit is raised again.
    let limits = ic.ok(&["admin", "limits"]);
    assert_eq!((limits["app_snapshots"].as_u64(), limits["reserve_days"].as_u64()), (Some(1_000), Some(90)), "{limits}");
    assert_eq!(ic.ok(&["admin", "limits", "--app-snapshots", "1"])["app_snapshots"], 1);
    let refused = message(&as_stranger(&["snapshot", &app]).unwrap_err());
    assert!(refused.contains("quota") && refused.contains("snapshots"), "{refused}");
    assert_eq!(ic.ok(&["admin", "limits", "--app-snapshots", "1000"])["app_snapshots"], 1_000);

    // Off the allow-list, the stranger registers no other app until registration is open.
    ic.ok(&["admin", "disallow", &who]);
    let other = deploy();
    assert!(message(&as_stranger(&["register", &other]).unwrap_err()).contains("not on this vault's allow-list"));
    ic.ok(&["admin", "registration", "administrators"]);
    assert!(message(&as_stranger(&["register", &other]).unwrap_err()).contains("only administrators"));
    ic.ok(&["admin", "registration", "open"]);
    assert_eq!(ic.ok(&["admin", "info"])["registration"], "open");
    as_stranger(&["register", &other]).unwrap();

    // Named an administrator, the stranger administers, but names no administrator itself.
    ic.ok(&["admin", "administrators", &who]);
    assert_eq!(as_stranger(&["admin", "info"]).unwrap().json["administrators"], json!([who]));
    assert!(message(&as_stranger(&["admin", "administrators", &who]).unwrap_err()).contains("is not a controller of"));
    ic.ok(&["admin", "administrators", "--none"]);
    assert!(message(&as_stranger(&["admin", "info"]).unwrap_err()).contains("is not an administrator of this vault"));
}

#[test]
fn a_principal_that_administers_nothing_is_refused_by_every_administration_command() {
    let ic = Ic::new();
    let app = ic.registered("notes");
    let stranger = identity_file(ic.root.path(), 12);
    let who = principal(&stranger);
    let before = (ic.ok(&["admin", "info"]), ic.ok(&["admin", "registrants"]));

    let commands: [&[&str]; 11] = [
        &["admin", "info"],
        &["admin", "limits"],
        &["admin", "limits", "--app-bytes", "1"],
        &["admin", "registration", "open"],
        &["admin", "allow", &who],
        &["admin", "disallow", &who],
        &["admin", "registrants"],
        &["admin", "suspend", &app, "--reason", "mine now"],
        &["admin", "resume", &app],
        &["admin", "evict", &app],
        &["admin", "administrators", &who],
    ];
    for args in commands {
        let refused = message(&ic.err(&[&["--identity", stranger.as_str()], args].concat()));
        let expected = if args[1] == "administrators" { "is not a controller of" } else { "is not an administrator of this vault" };
        assert!(refused.contains(&format!("{who} {expected}")), "{args:?}: {refused}");
    }
    // Nothing changed.
    assert_eq!((ic.ok(&["admin", "info"]), ic.ok(&["admin", "registrants"])), before);
    assert_eq!(ic.ok(&["status", &app])["app"]["app"], app.as_str());
}
