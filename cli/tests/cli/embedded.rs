//! The embedded IC's own commands on canisters from anywhere: upgrades from files, settings,
//! logs, native snapshots, extra controllers, calls typed by the canister's candid interface,
//! and output into a pipe its reader closed.

use std::io::{Read, Write};
use std::process::Stdio;

use vault_cli::commands::embedded::modules;

use crate::support::{Ic, identity_file, message, principal, trapping_post_upgrade};

const NOTES_DID: &str = include_str!("../../../examples/notes/notes.did");

/// The settings test canister's interface, as far as these tests call it.
const SETTINGS_DID: &str = "service : (opt nat64) -> {
  env_var : (text) -> (opt text) query;
  print : (text) -> ();
  trap_with : (text) -> ();
}";

fn leb128(mut n: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            bytes.push(byte);
            return bytes;
        }
        bytes.push(byte | 0x80);
    }
}

/// `module` with a custom section `name` holding `content` at its end, as `ic-wasm metadata`
/// adds one.
fn with_section(module: &[u8], name: &str, content: &[u8]) -> Vec<u8> {
    let mut section = leb128(name.len());
    section.extend_from_slice(name.as_bytes());
    section.extend_from_slice(content);
    let mut out = module.to_vec();
    out.push(0);
    out.extend(leb128(section.len()));
    out.extend(section);
    out
}

/// The notes app's module with its candid interface as public metadata, as `dfx` builds it.
fn notes_with_interface() -> Vec<u8> {
    with_section(modules::NOTES, "icp:public candid:service", NOTES_DID.as_bytes())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// The harness's settings test canister: it reads its environment variables, prints and traps.
fn settings_canister(ic: &Ic) -> (String, String) {
    let wasm = ic.file("settings.wasm", &ic_harness::build::canister_wasm("harness-test-canisters", "settings"));
    let did = ic.file("settings.did", SETTINGS_DID.as_bytes());
    let canister = ic.ok(&["embedded", "deploy", "--wasm", &wasm, "--candid", &did])["canister"].as_str().unwrap().to_string();
    (canister, did)
}

#[test]
fn an_upgrade_from_a_file_keeps_the_state_and_a_reinstall_starts_afresh() {
    let ic = Ic::new();
    let app = ic.deploy("notes");
    ic.call(&app, "add_note", r#"("title", "body")"#);
    let digest = ic.digest(&app);
    let old_hash = ic.ok(&["embedded", "settings", &app])["module_hash"].as_str().unwrap().to_string();

    // Far more than a command line takes, given as a file.
    let module = notes_with_interface();
    assert!(module.len() > 553_000);
    let file = ic.file("notes.wasm", &module);
    let upgraded = ic.ok(&["embedded", "upgrade", &app, "--wasm", &file]);
    assert_eq!(upgraded["mode"], "upgrade");
    assert_eq!(upgraded["module_bytes"], module.len());
    let new_hash = upgraded["module_hash"].as_str().unwrap().to_string();
    assert_ne!(new_hash, old_hash);
    assert_eq!(ic.ok(&["embedded", "settings", &app])["module_hash"], new_hash.as_str());
    assert_eq!(ic.digest(&app), digest, "the notes survive the upgrade");

    // A gzip-compressed module, as deploy takes them; the hash is the compressed module's.
    let compressed = ic.file("notes.wasm.gz", &gzip(&module));
    let upgraded = ic.ok(&["embedded", "upgrade", &app, "--wasm", &compressed]);
    assert_ne!(upgraded["module_hash"], new_hash.as_str());
    assert_eq!(ic.digest(&app), digest);
    assert!(ic.call(&app, "count", "()").contains("1 : nat64"), "typed by the compressed module's interface too");

    // A reinstall runs init on empty memories, with an argument read from a file.
    let arg = ic.file("init.arg", format!("(opt principal \"{}\")", ic.vault).as_bytes());
    let text = ic.run(&["embedded", "upgrade", &app, "--wasm", &file, "--mode", "reinstall", "--arg-file", &arg]).unwrap().text;
    assert!(text.contains("reinstalled"), "{text}");
    assert!(ic.call(&app, "count", "()").contains("0 : nat64"));
    assert!(ic.call(&app, "vault_backup_info", "()").contains(&ic.vault), "the init argument reached init");

    let usage = message(&ic.err(&["embedded", "upgrade", &app, "--wasm", &file, "--arg", "()", "--arg-file", &arg]));
    assert!(usage.contains("cannot be used with"), "{usage}");
}

#[test]
fn an_upgrade_whose_post_upgrade_traps_leaves_the_canister_as_it_was() {
    let ic = Ic::new();
    let app = ic.deploy("notes");
    ic.call(&app, "add_note", r#"("title", "body")"#);
    let digest = ic.digest(&app);
    let before = ic.ok(&["embedded", "settings", &app]);

    let trapping = ic.file("trapping.wasm", &trapping_post_upgrade());
    let refused = message(&ic.err(&["embedded", "upgrade", &app, "--wasm", &trapping]));
    assert!(refused.contains("did not install") && refused.contains("keeps its module"), "{refused}");
    assert!(refused.contains("IC0502") && refused.contains("trapped") && refused.contains("unreachable"), "the IC's message: {refused}");

    assert_eq!(ic.digest(&app), digest);
    assert_eq!(ic.ok(&["embedded", "settings", &app])["module_hash"], before["module_hash"]);
    let logs = ic.ok(&["embedded", "logs", &app]);
    let last = logs.as_array().unwrap().last().unwrap()["text"].as_str().unwrap().to_string();
    assert!(last.starts_with("[TRAP]:") && last.contains("unreachable"), "the trap is in the log: {last}");

    let not_wasm = ic.file("not.wasm", b"this is not a wasm module");
    assert!(message(&ic.err(&["embedded", "upgrade", &app, "--wasm", &not_wasm])).contains("IC0505"));
    assert_eq!(ic.digest(&app), digest);
}

#[test]
fn deploy_adds_controllers_and_only_controllers_upgrade() {
    let ic = Ic::new();
    let me = principal(ic.dir().join("identity.pem").to_str().unwrap());
    let partner = identity_file(ic.root.path(), 3);
    let stranger = identity_file(ic.root.path(), 4);
    let notes = ic.file("notes.wasm", &notes_with_interface());
    let deployed = ic.ok(&["embedded", "deploy", "--wasm", &notes, "--controller", &principal(&partner), "--controller", &me]);
    let app = deployed["canister"].as_str().unwrap().to_string();
    let controllers = ic.ok(&["embedded", "settings", &app])["controllers"].clone();
    assert_eq!(controllers, serde_json::json!([me, principal(&partner)]), "the deployer stays a controller, once");

    ic.ok(&["--identity", &partner, "embedded", "upgrade", &app, "--wasm", &notes]);
    let refused = message(&ic.err(&["--identity", &stranger, "embedded", "upgrade", &app, "--wasm", &notes]));
    assert!(refused.contains("Only the controllers") && refused.contains("keeps its module"), "{refused}");
    let refused = message(&ic.err(&["--identity", &stranger, "embedded", "settings", &app]));
    assert!(refused.contains("Only the controllers"), "{refused}");
}

#[test]
fn settings_show_what_canister_status_reports_and_change_what_update_settings_sets() {
    let ic = Ic::new();
    let me = principal(ic.dir().join("identity.pem").to_str().unwrap());
    let other = principal(&identity_file(ic.root.path(), 5));
    let (canister, did) = settings_canister(&ic);

    let shown = ic.ok(&["embedded", "settings", &canister]);
    assert_eq!(shown["status"], "running");
    assert_eq!(shown["controllers"], serde_json::json!([me]));
    assert_eq!(shown["log_visibility"], "controllers");
    assert_eq!(shown["freezing_threshold"], 2_592_000);
    assert_eq!(shown["environment_variables"], serde_json::json!({}));
    assert!(shown["module_hash"].as_str().unwrap().len() == 64);

    let changed = ic.ok(&[
        "embedded",
        "settings",
        &canister,
        "--add-controller",
        &other,
        "--env",
        "GREETING=hello",
        "--env",
        "MODE=test",
        "--wasm-memory-limit",
        "1073741824",
        "--wasm-memory-threshold",
        "1048576",
        "--log-visibility",
        "public",
        "--freezing-threshold",
        "7d",
    ]);
    assert_eq!(changed["controllers"], serde_json::json!([me, other]));
    assert_eq!(changed["environment_variables"], serde_json::json!({ "GREETING": "hello", "MODE": "test" }));
    assert_eq!(changed["wasm_memory_limit"], 1_073_741_824);
    assert_eq!(changed["wasm_memory_threshold"], 1_048_576);
    assert_eq!(changed["log_visibility"], "public");
    assert_eq!(changed["freezing_threshold"], 7 * 86_400);
    assert_eq!(ic.ok(&["embedded", "settings", &canister]), changed, "as canister_status reports them after");

    // Only what is given changes; variables are set and removed one by one.
    let changed =
        ic.ok(&["embedded", "settings", &canister, "--remove-controller", &other, "--env", "MODE=live", "--remove-env", "GREETING"]);
    assert_eq!(changed["controllers"], serde_json::json!([me]));
    assert_eq!(changed["environment_variables"], serde_json::json!({ "MODE": "live" }));
    assert_eq!(changed["log_visibility"], "public");
    assert_eq!(changed["wasm_memory_limit"], 1_073_741_824);
    let viewers = ic.ok(&["embedded", "settings", &canister, "--log-viewer", &other]);
    assert_eq!(viewers["log_visibility"], serde_json::json!({ "allowed_viewers": [other] }));

    // The canister reads the variable.
    let read = ic.run(&["embedded", "call", &canister, "env_var", r#"("MODE")"#, "--candid", &did]).unwrap().text;
    assert!(read.contains(r#"opt "live""#), "{read}");

    // One update_settings: a refused setting changes none of them.
    let refused =
        message(&ic.err(&["embedded", "settings", &canister, "--env", "MODE=again", "--wasm-memory-threshold", "281474976710657"]));
    assert!(refused.contains("wasm_memory_threshold") || refused.contains("threshold"), "{refused}");
    assert_eq!(ic.ok(&["embedded", "settings", &canister])["environment_variables"], serde_json::json!({ "MODE": "live" }));

    let text = ic.run(&["embedded", "settings", &canister]).unwrap().text;
    assert!(
        text.contains("environment variables") && text.contains("MODE=live") && text.contains(&format!("controllers and {other}")),
        "{text}"
    );
    match ic.run(&["embedded", "settings", &canister, "--env", "NO_EQUALS_SIGN"]) {
        Err(vault_cli::CliError::Usage(e)) => assert!(e.to_string().contains("is not NAME=VALUE"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn logs_show_what_the_canister_printed_to_whom_its_visibility_lets() {
    let ic = Ic::new();
    let (canister, did) = settings_canister(&ic);
    ic.ok(&["embedded", "call", &canister, "print", r#"("hello, log")"#, "--candid", &did]);
    assert!(message(&ic.err(&["embedded", "call", &canister, "trap_with", r#"("boom")"#, "--candid", &did])).contains("boom"));

    let logs = ic.ok(&["embedded", "logs", &canister]);
    let records = logs.as_array().unwrap();
    assert_eq!(records.len(), 2, "{logs}");
    assert_eq!(records[0]["idx"], 0);
    assert_eq!(records[0]["text"], "hello, log");
    assert_eq!(records[1]["idx"], 1);
    assert_eq!(records[1]["text"], "[TRAP]: boom");
    let timestamp = records[0]["timestamp"].as_str().unwrap();
    assert!(timestamp.starts_with("20") && timestamp.ends_with('Z'), "{timestamp}");
    let text = ic.run(&["embedded", "logs", &canister]).unwrap().text;
    assert_eq!(text, format!("[0. {timestamp}]: hello, log\n[1. {}]: [TRAP]: boom", records[1]["timestamp"].as_str().unwrap()));

    let stranger = identity_file(ic.root.path(), 6);
    let refused = message(&ic.err(&["--identity", &stranger, "embedded", "logs", &canister]));
    assert!(refused.contains("not allowed to query ic00 method fetch_canister_logs"), "{refused}");
    ic.ok(&["embedded", "settings", &canister, "--log-visibility", "public"]);
    assert_eq!(ic.ok(&["--identity", &stranger, "embedded", "logs", &canister]), logs);
}

#[test]
fn calls_are_typed_by_the_canisters_candid_interface() {
    let ic = Ic::new();
    let notes = ic.file("notes.wasm", &notes_with_interface());
    // The init argument is typed too: an omitted `opt` is null.
    let app = ic.ok(&["embedded", "deploy", "--wasm", &notes])["canister"].as_str().unwrap().to_string();

    // Untyped numbers are read as the method's nat64 and nat8.
    assert!(ic.call(&app, "put_blob", "(1, 1_000, 7)").contains("1 : nat64"));
    assert!(ic.call(&app, "add_note", r#"("title", "body")"#).contains("2 : nat64"));
    // Replies show the interface's names, as dfx prints them.
    let info = ic.call(&app, "vault_backup_info", "()");
    assert!(info.contains("Ok = record") && info.contains("state_kind = variant { Serde }") && info.contains("vault = null"), "{info}");
    assert!(!info.contains("17_724"), "no hashed names: {info}");
    let note = ic.call(&app, "get_note", "(0)");
    assert!(note.contains(r#"title = "title""#) && note.contains(r#"body = "body""#), "{note}");

    let missing = message(&ic.err(&["embedded", "call", &app, "frobnicate"]));
    assert!(
        missing.contains("has no method `frobnicate`") && missing.contains("add_note") && missing.contains("vault_set_vault"),
        "{missing}"
    );
    let mistyped = message(&ic.err(&["embedded", "call", &app, "put_blob", r#"("one", 2, 3)"#]));
    assert!(mistyped.contains("does not match") && mistyped.contains("nat64"), "{mistyped}");
    let too_many = message(&ic.err(&["embedded", "call", &app, "count", "(1)"]));
    assert!(too_many.contains("1 values") && too_many.contains("()"), "{too_many}");
    assert!(message(&ic.err(&["embedded", "call", &app, "count", "(not candid"])).contains("not candid"));

    // A module without the metadata: typed by --candid, else as before (hashed names).
    let example = ic.deploy("notes");
    let untyped = ic.call(&example, "vault_backup_info", "()");
    assert!(untyped.contains("17_724"), "{untyped}");
    let did = ic.file("notes.did", NOTES_DID.as_bytes());
    let typed = ic.run(&["embedded", "call", &example, "vault_backup_info", "--candid", &did]).unwrap().text;
    assert!(typed.contains("Ok = record") && typed.contains(&format!("vault = opt principal \"{}\"", ic.vault)), "{typed}");
    let refused = message(&ic.err(&["embedded", "call", &example, "put_blob", "(1, 1_000, 7)"]));
    assert!(refused.contains("from int to nat64"), "untyped, an int is refused as before: {refused}");
}

/// Runs the binary with its stdout into a pipe that is closed once `read` bytes came through
/// (none: at once, before it writes); returns its exit code and stderr.
fn into_closed_pipe(ic: &Ic, args: &[&str], read: usize) -> (Option<i32>, String) {
    let mut child = ic.binary(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut head = vec![0; read];
    stdout.read_exact(&mut head).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn output_into_a_closed_pipe_ends_the_command_quietly() {
    let ic = Ic::new();
    let app = ic.deploy("notes");
    let body = "x".repeat(300_000);
    ic.call(&app, "add_note", &format!("(\"big\", \"{body}\")"));

    // More than a pipe holds, its reader gone after the first bytes (`| head -c 10`).
    for args in
        [&["embedded", "call", &app, "get_note", "(0 : nat64)"][..], &["--json", "embedded", "call", &app, "get_note", "(0 : nat64)"]]
    {
        let (code, stderr) = into_closed_pipe(&ic, args, 10);
        assert_eq!((code, stderr.as_str()), (Some(0), ""), "{args:?}");
    }
    let demo_home = ic.root.path().join("demo");
    let demo = ["demo", "--dir", demo_home.to_str().unwrap()];
    for args in [&["embedded", "status"][..], &["list"], &["--json", "embedded", "settings", &app], &["--json", "restore", &app, "7"], &demo] {
        let (code, stderr) = into_closed_pipe(&ic, args, 0);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(code == Some(0) || code == Some(1), "{args:?}: exits as the command ended ({code:?}): {stderr}");
    }
    let (code, stderr) = into_closed_pipe(&ic, &["--json", "restore", &app, "7"], 0);
    assert_eq!(code, Some(1), "a failed command still fails: {stderr}");
}

#[test]
fn native_snapshots_move_through_a_directory_in_icp_clis_layout_and_restore_a_canister() {
    let ic = Ic::new();
    let (app, other) = (ic.deploy("notes"), ic.deploy("notes"));
    ic.call(&app, "add_note", r#"("kept", "in the snapshot")"#);
    let digest = ic.digest(&app);
    let taken = ic.ok(&["embedded", "snapshot", "create", &app]);
    let id = taken["id"].as_str().unwrap().to_string();
    assert_eq!(ic.ok(&["embedded", "snapshot", "list", &app]), serde_json::json!([taken.clone()]));

    let dir = ic.path("snapshot");
    let downloaded = ic.ok(&["embedded", "snapshot", "download", &app, &id, "-o", dir.to_str().unwrap()]);
    for file in ["metadata.json", "wasm_module.bin", "wasm_memory.bin", "stable_memory.bin"] {
        assert!(dir.join(file).exists(), "{file}");
    }
    assert!(dir.join("wasm_chunk_store").is_dir());
    let metadata: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(metadata["source"], serde_json::json!({ "taken_from_canister": null }), "icp-cli's encoding of the management types");
    assert_eq!(metadata["stable_memory_size"], downloaded["stable_memory_size"]);
    assert_eq!(std::fs::metadata(dir.join("wasm_memory.bin")).unwrap().len(), downloaded["wasm_memory_size"].as_u64().unwrap());
    let again = message(&ic.err(&["embedded", "snapshot", "download", &app, &id, "-o", dir.to_str().unwrap()]));
    assert!(again.contains("exists already"), "{again}");

    // Uploaded as a snapshot of another canister and restored there; restored into the app after a change.
    let uploaded = ic.ok(&["embedded", "snapshot", "upload", &other, "-i", dir.to_str().unwrap()])["snapshot_id"].as_str().unwrap().to_string();
    ic.ok(&["embedded", "snapshot", "restore", &other, &uploaded]);
    assert_eq!(ic.digest(&other), digest, "the other canister runs the app's state");
    ic.call(&app, "add_note", r#"("lost", "after the snapshot")"#);
    assert_ne!(ic.digest(&app), digest);
    ic.ok(&["embedded", "snapshot", "restore", &app, &id]);
    assert_eq!(ic.digest(&app), digest);
    ic.ok(&["embedded", "snapshot", "delete", &app, &id]);
    assert_eq!(ic.ok(&["embedded", "snapshot", "list", &app]), serde_json::json!([]));

    // A file shorter than the metadata says is refused before anything is sent.
    let heap = std::fs::read(dir.join("wasm_memory.bin")).unwrap();
    std::fs::write(dir.join("wasm_memory.bin"), &heap[..heap.len() - 1]).unwrap();
    let short = message(&ic.err(&["embedded", "snapshot", "upload", &other, "-i", dir.to_str().unwrap()]));
    assert!(short.contains("the metadata says"), "{short}");
    assert_eq!(ic.ok(&["embedded", "snapshot", "list", &other]).as_array().unwrap().len(), 1, "no snapshot was made of it");
    // An upload refused part way (the embedded IC keeps no wasm chunk store) leaves no snapshot behind.
    std::fs::write(dir.join("wasm_memory.bin"), &heap).unwrap();
    let mut with_chunk = metadata.clone();
    with_chunk["wasm_chunk_store"] = serde_json::json!([{ "hash": vec![7u8; 32] }]);
    std::fs::write(dir.join("metadata.json"), serde_json::to_vec(&with_chunk).unwrap()).unwrap();
    std::fs::write(dir.join("wasm_chunk_store").join(format!("{}.bin", "07".repeat(32))), b"chunk").unwrap();
    let refused = message(&ic.err(&["embedded", "snapshot", "upload", &other, "-i", dir.to_str().unwrap()]));
    assert!(refused.contains("wasm chunk store"), "{refused}");
    assert_eq!(ic.ok(&["embedded", "snapshot", "list", &other]).as_array().unwrap().len(), 1, "the half-uploaded snapshot was deleted");
    let unknown = message(&ic.err(&["embedded", "snapshot", "restore", &app, &id]));
    assert!(unknown.contains("IC0305") || unknown.contains("Could not find the snapshot ID"), "{unknown}");
}

#[test]
fn a_canister_captured_natively_moves_between_the_vault_and_icp_clis_directory_both_ways() {
    let ic = Ic::new();
    let app = ic.ok(&["embedded", "deploy", "--example", "notes", "--controller", &ic.vault])["canister"].as_str().unwrap().to_string();
    let other = ic.deploy("notes");
    ic.call(&app, "add_note", r#"("kept", "in the vault's native snapshot")"#);
    let digest = ic.digest(&app);
    let registered = ic.ok(&["register", &app, "--native", "--every", "never", "--keep-last", "5"]);
    assert_eq!(registered["state_kind"], "native");
    let id = ic.snapshot(&app).to_string();
    let file = ic.path("native.cvsnap");
    ic.ok(&["export", &app, &id, "-o", file.to_str().unwrap()]);
    assert_eq!(ic.ok(&["verify", file.to_str().unwrap()])["state_kind"], "native");

    // The vault's snapshot, as icp-cli uploads it, restores another canister.
    let dir = ic.path("from-vault");
    ic.ok(&["convert", file.to_str().unwrap(), "--to-dir", dir.to_str().unwrap()]);
    let uploaded = ic.ok(&["embedded", "snapshot", "upload", &other, "-i", dir.to_str().unwrap()])["snapshot_id"].as_str().unwrap().to_string();
    ic.ok(&["embedded", "snapshot", "restore", &other, &uploaded]);
    assert_eq!(ic.digest(&other), digest, "the other canister runs the snapshot's state");
    let again = message(&ic.err(&["convert", file.to_str().unwrap(), "--to-dir", dir.to_str().unwrap()]));
    assert!(again.contains("exists already"), "{again}");

    // A snapshot icp-cli downloaded imports into the vault and restores the app.
    ic.call(&app, "add_note", r#"("second", "taken by icp")"#);
    let second = ic.digest(&app);
    let taken = ic.ok(&["embedded", "snapshot", "create", &app])["id"].as_str().unwrap().to_string();
    let downloaded = ic.path("from-icp");
    ic.ok(&["embedded", "snapshot", "download", &app, &taken, "-o", downloaded.to_str().unwrap()]);
    let converted = ic.path("from-icp.cvsnap");
    ic.ok(&["convert", downloaded.to_str().unwrap(), "--to-file", converted.to_str().unwrap(), "--app", &app]);
    let imported = ic.ok(&["import", converted.to_str().unwrap(), "--app", &app])["snapshot"]["id"].as_u64().unwrap().to_string();
    ic.call(&app, "add_note", r#"("lost", "after both")"#);
    ic.ok(&["restore", &app, &imported]);
    assert_eq!(ic.digest(&app), second);
    ic.ok(&["restore", &app, &id]);
    assert_eq!(ic.digest(&app), digest);

    // A library snapshot's file is no canister snapshot.
    let library = ic.registered("notes");
    let library_id = ic.snapshot(&library).to_string();
    let library_file = ic.path("library.cvsnap");
    ic.ok(&["export", &library, &library_id, "-o", library_file.to_str().unwrap()]);
    let refused = message(&ic.err(&["convert", library_file.to_str().unwrap(), "--to-dir", ic.path("nothing").to_str().unwrap()]));
    assert!(refused.contains("only a native snapshot"), "{refused}");
}
