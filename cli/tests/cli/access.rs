//! Identities: a principal that controls nothing is refused by every command, and nothing
//! changes.

use crate::support::{identity_file, message, principal, Ic};

#[test]
fn an_identity_that_does_not_control_the_app_is_refused_everywhere() {
    let ic = Ic::new();
    let app = ic.registered("notes");
    ic.fill(&app, 1, 1_000_000);
    let id = ic.snapshot(&app).to_string();
    let file = ic.path("notes.cvsnap");
    let file = file.to_str().unwrap();
    ic.ok(&["export", &app, &id, "-o", file]);
    let jobs_before = ic.ok(&["status", &app])["jobs"].as_array().unwrap().len();

    let stranger = identity_file(ic.root.path(), 9);
    let as_stranger = |args: &[&str]| {
        let mut full = vec!["--identity", stranger.as_str()];
        full.extend_from_slice(args);
        message(&ic.err(&full))
    };
    let commands: [&[&str]; 9] = [
        &["list", &app],
        &["status", &app],
        &["snapshot", &app],
        &["restore", &app, &id],
        &["delete", &app, &id],
        &["export", &app, &id, "-o", "/dev/null"],
        &["import", file, "--app", &app],
        &["schedule", &app, "--every", "1h"],
        &["unregister", &app],
    ];
    for args in commands {
        let e = as_stranger(args);
        assert!(e.contains("is not a controller of"), "{args:?}: {e}");
    }
    // Allowed to register apps, the stranger still registers none it does not control.
    ic.ok(&["admin", "allow", &principal(&stranger)]);
    assert!(as_stranger(&["register", &ic.deploy("notes")]).contains("is not a controller of"));
    let listed = ic.ok(&["--identity", &stranger, "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 0, "the stranger controls no registered app");

    // Nothing changed.
    assert_eq!(ic.snapshot_ids(&app), vec![id.parse::<u64>().unwrap()]);
    assert_eq!(ic.ok(&["status", &app])["jobs"].as_array().unwrap().len(), jobs_before);
    assert_eq!(ic.ok(&["status", &app])["app"]["interval_seconds"], 0);
}

#[test]
fn the_identity_init_makes_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let ic = Ic::new();
    let mode = std::fs::metadata(ic.dir().join("identity.pem")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
}
