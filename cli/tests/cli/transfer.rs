//! Export, verify and import: big snapshots with bounded memory, interruptions, tampering,
//! and a snapshot moved to another IC and restored there.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vault_api::ContentHash;
use vault_api::protocol::{CHUNK_SIZE, StateKind};
use vault_api::service::Trigger;
use vault_ops::file;

use crate::support::{message, peak_heap, Ic};

const MIB: u64 = 1 << 20;

#[test]
fn a_256_mib_snapshot_exports_with_bounded_memory_and_resumes_after_an_interruption() {
    let ic = Ic::new();
    let app = ic.registered("ledger");
    ic.fill(&app, 8, 32 * MIB);
    let snapshot = ic.ok(&["snapshot", &app]);
    let size = snapshot["size"].as_u64().unwrap();
    assert!(size >= 256 * MIB, "{size}");
    let id = snapshot["id"].as_u64().unwrap().to_string();
    let file = ic.path("big.cvsnap");
    let part = ic.path("big.cvsnap.part");

    // Interrupt an export: the binary is killed once it has written some chunks.
    let argv = ic.argv(&["export", &app, &id, "-o", file.to_str().unwrap()]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_vault")).args(&argv[1..]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while std::fs::metadata(&part).map_or(0, |m| m.len()) < 16 * MIB {
        assert!(child.try_wait().unwrap().is_none(), "the export ended before it could be interrupted");
        assert!(Instant::now() < deadline, "the export wrote nothing");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!file.exists(), "an interrupted export leaves only the .part file");

    // Resume it, measuring the heap this thread holds meanwhile.
    let (exported, peak) = peak_heap(|| ic.ok(&["export", &app, &id, "-o", file.to_str().unwrap()]));
    let resumed = exported["resumed_chunks"].as_u64().unwrap();
    assert!(resumed >= 1, "{exported}");
    assert_eq!(exported["downloaded"].as_u64().unwrap(), size - resumed * snapshot["chunk_size"].as_u64().unwrap());
    assert!(!part.exists());
    assert!(std::fs::metadata(&file).unwrap().len() > size, "the file holds the whole snapshot");
    println!("exported {} MiB resuming after {resumed} chunks; peak heap {:.1} MiB", size / MIB, peak as f64 / MIB as f64);
    assert!(peak < 32 * MIB, "export held {peak} bytes of heap for a {size}-byte snapshot");

    let (verified, peak) = peak_heap(|| ic.ok(&["verify", file.to_str().unwrap()]));
    assert_eq!(verified["sha256"], snapshot["sha256"]);
    assert!(peak < 16 * MIB, "verify held {peak} bytes of heap");

    // A fresh export of the same snapshot gives the same bytes.
    let again = ic.path("again.cvsnap");
    let fresh = ic.ok(&["export", &app, &id, "-o", again.to_str().unwrap()]);
    assert_eq!(fresh["resumed_chunks"], 0);
    assert!(same_data(&file, &again));
}

/// Whether two snapshot files hold the same snapshot bytes (their export times differ).
fn same_data(a: &Path, b: &Path) -> bool {
    let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    let header_end = 16 + 141;
    a.len() == b.len() && a[header_end + 32..] == b[header_end + 32..]
}

#[test]
fn import_into_another_ic_then_restore_gives_the_same_state() {
    let source = Ic::new();
    let app = source.registered("notes");
    source.fill(&app, 3, 2_000_000);
    source.call(&app, "add_note", r#"("title", "body")"#);
    let digest = source.digest(&app);
    let id = source.snapshot(&app).to_string();
    let file = source.path("notes.cvsnap");
    let file = file.to_str().unwrap();
    source.ok(&["export", &app, &id, "-o", file]);

    let target = Ic::new();
    let clone = target.registered("notes");
    assert_ne!(target.digest(&clone), digest);
    let imported = target.ok(&["import", file, "--app", &clone]);
    assert_eq!(imported["snapshot"]["trigger"], "import");
    assert_eq!(imported["snapshot"]["app"], clone.as_str());
    let imported_id = imported["snapshot"]["id"].as_u64().unwrap().to_string();
    assert_eq!(target.snapshot_ids(&clone), vec![imported_id.parse::<u64>().unwrap()]);
    let restored = target.ok(&["restore", &clone, &imported_id]);
    assert_eq!(restored["phase"], "succeeded");
    assert_eq!(target.digest(&clone), digest);

    // Importing the same file again makes a second snapshot with the same hash; its chunks
    // are already in the vault.
    let again = target.ok(&["import", file, "--app", &clone]);
    assert_eq!(again["snapshot"]["sha256"], imported["snapshot"]["sha256"]);

    // A file of serde state does not go into a stable-memory app: the import is refused at once.
    let ledger = target.registered("ledger");
    let e = message(&target.err(&["import", file, "--app", &ledger]));
    assert!(e.contains("cannot be restored"), "{e}");
    assert_eq!(target.snapshot_ids(&ledger), Vec::<u64>::new(), "nothing imported");
}

#[test]
fn a_snapshot_exports_in_blake3_and_a_file_written_before_blake3_verifies_and_imports_in_sha256() {
    let ic = Ic::new();
    let app = ic.registered("ledger");
    ic.fill(&app, 1, 100_000);
    let id = ic.snapshot(&app).to_string();
    let file = ic.path("ledger.cvsnap");
    let file_arg = file.to_str().unwrap();
    let exported = ic.ok(&["export", &app, &id, "-o", file_arg]);
    let verified = ic.ok(&["verify", file_arg]);
    assert_eq!((&verified["content_hash"], &verified["sha256"]), (&"blake3".into(), &exported["sha256"]));

    let old = version_1_file(&ic, &app);
    let verified = ic.ok(&["verify", &old]);
    assert_eq!(verified["content_hash"], "sha256");
    let imported = ic.ok(&["import", &old, "--app", &app]);
    assert_eq!((&imported["snapshot"]["content_hash"], &imported["snapshot"]["sha256"]), (&"sha256".into(), &verified["sha256"]));
    // It exports again as it came in, in SHA-256.
    let again = ic.path("again.cvsnap");
    let imported_id = imported["snapshot"]["id"].as_u64().unwrap().to_string();
    ic.ok(&["export", &app, &imported_id, "-o", again.to_str().unwrap()]);
    let reverified = ic.ok(&["verify", again.to_str().unwrap()]);
    assert_eq!((&reverified["content_hash"], &reverified["sha256"]), (&"sha256".into(), &verified["sha256"]));
}

/// A snapshot file of format version 1 of a stable-memory snapshot of `app`, as the writer
/// before BLAKE3 wrote it (`cli/ops/golden/snapshot_v1.hex` pins those bytes): this build's file of
/// a SHA-256 snapshot with version 1 at bytes 8 and 9 (byte 10, its content hash, was reserved,
/// 0 as SHA-256's is) and its header checksum sealed again; returns its path.
fn version_1_file(ic: &Ic, app: &str) -> String {
    let image = vec![7u8; 65536];
    let (chunk_hashes, sha256) = file::manifest_of(ContentHash::Sha256, &image, CHUNK_SIZE);
    let header = file::Header {
        app: candid::Principal::from_text(app).unwrap(),
        snapshot_id: 1,
        taken_at_nanos: 2,
        state_kind: StateKind::StableMemory,
        size: image.len() as u64,
        chunk_size: CHUNK_SIZE,
        chunks: chunk_hashes.len() as u32,
        sha256,
        module_hash: None,
        trigger: Trigger::Manual,
        exported_at_nanos: 3,
        content_hash: ContentHash::Sha256,
    };
    let path = ic.path("v2.cvsnap");
    let mut writer = file::FileWriter::open(&path, file::Manifest { header, chunk_hashes }, false).unwrap();
    writer.write_chunk(0, &image).unwrap();
    writer.finish().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes[8..12], [2, 0, 0, 0], "version 2, SHA-256");
    bytes[8] = 1;
    let header_end = 16 + 141;
    let checksum = vault_api::Sha256::of(&bytes[..header_end]);
    bytes[header_end..header_end + 32].copy_from_slice(&checksum.0);
    ic.file("v1.cvsnap", &bytes)
}

#[test]
fn a_tampered_file_is_refused_by_verify_and_by_import_and_changes_nothing() {
    let ic = Ic::new();
    let app = ic.registered("ledger");
    ic.fill(&app, 2, 3_000_000);
    let id = ic.snapshot(&app).to_string();
    let file = ic.path("ledger.cvsnap");
    ic.ok(&["export", &app, &id, "-o", file.to_str().unwrap()]);
    let clean = std::fs::read(&file).unwrap();

    let tampered = ic.path("tampered.cvsnap");
    let tampered_arg = tampered.to_str().unwrap();
    let cases: [(&str, usize, &str); 4] = [
        ("a data byte", clean.len() - 1000, "does not match its digest"),
        ("a header byte", 40, "header checksum"),
        ("a chunk table byte", 16 + 141 + 32 + 5, "chunk table does not hash"),
        ("the magic", 0, "not a canister-vault snapshot file"),
    ];
    for (what, offset, expected) in cases {
        let mut bytes = clean.clone();
        bytes[offset] ^= 0x40;
        std::fs::write(&tampered, &bytes).unwrap();
        let e = message(&ic.err(&["verify", tampered_arg]));
        assert!(e.contains(expected), "{what}: verify said {e}");
        let e = message(&ic.err(&["import", tampered_arg, "--app", &app]));
        assert!(e.contains(expected), "{what}: import said {e}");
    }
    std::fs::write(&tampered, &clean[..clean.len() - 1]).unwrap();
    assert!(message(&ic.err(&["verify", tampered_arg])).contains("a complete snapshot file has"));
    assert!(message(&ic.err(&["import", tampered_arg, "--app", &app])).contains("a complete snapshot file has"));
    assert_eq!(ic.snapshot_ids(&app), vec![id.parse::<u64>().unwrap()], "no snapshot was added");

    let text = ic.run(&["verify", file.to_str().unwrap()]).unwrap().text;
    assert!(text.starts_with("ok: "), "{text}");
}

#[test]
fn export_overwrites_an_existing_file_only_with_force() {
    let ic = Ic::new();
    let app = ic.registered("notes");
    ic.fill(&app, 1, 100_000);
    let id = ic.snapshot(&app).to_string();
    let file = ic.path("notes.cvsnap");
    let file_arg = file.to_str().unwrap();
    std::fs::write(&file, b"someone's file").unwrap();
    let e = message(&ic.err(&["export", &app, &id, "-o", file_arg]));
    assert!(e.contains("already exists") && e.contains("--force"), "{e}");
    assert_eq!(std::fs::read(&file).unwrap(), b"someone's file");

    let exported = ic.ok(&["export", &app, &id, "-o", file_arg, "--force"]);
    assert_eq!(ic.ok(&["verify", file_arg])["sha256"], exported["sha256"]);
    assert!(message(&ic.err(&["export", &app, &id, "-o", file_arg])).contains("--force"), "a finished export is not overwritten either");
}

/// A transport that fails every call after its first `budget` updates.
struct FailingAfter<'a> {
    inner: &'a mut dyn vault_ops::Transport,
    budget: u32,
}

impl vault_ops::Transport for FailingAfter<'_> {
    fn caller(&self) -> candid::Principal {
        self.inner.caller()
    }

    fn update(&mut self, canister: candid::Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, vault_ops::CallError> {
        if self.budget == 0 {
            return Err(vault_ops::CallError::Transport("connection lost".into()));
        }
        self.budget -= 1;
        self.inner.update(canister, method, arg)
    }

    fn query(&mut self, canister: candid::Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, vault_ops::CallError> {
        self.inner.query(canister, method, arg)
    }

    fn upgrade(&mut self, canister: candid::Principal, module: Vec<u8>, arg: Vec<u8>) -> Result<(), vault_ops::CallError> {
        self.inner.upgrade(canister, module, arg)
    }

    fn wait(&mut self, duration: Duration) {
        self.inner.wait(duration)
    }
}

#[test]
fn an_interrupted_import_resumes_with_the_chunks_still_missing() {
    let source = Ic::new();
    let app = source.registered("ledger");
    source.fill(&app, 3, 3_000_000);
    let id = source.snapshot(&app).to_string();
    let file = source.path("ledger.cvsnap");
    let exported = source.ok(&["export", &app, &id, "-o", file.to_str().unwrap()]);
    let chunks = exported["chunks"].as_u64().unwrap();
    assert!(chunks >= 4);

    let target = Ic::new();
    let clone = target.registered("ledger");
    let caller = vault_ops::identity::load(target.dir().join("identity.pem").to_str().unwrap()).unwrap().principal;
    let vault_id = candid::Principal::from_text(&target.vault).unwrap();
    {
        // import_begin and two chunks get through, then the connection is lost.
        let mut embedded = vault_ops::embedded::EmbeddedTransport::open(&target.dir(), caller).unwrap();
        let mut failing = FailingAfter { inner: &mut embedded, budget: 3 };
        let mut vault = vault_ops::Vault::new(&mut failing, vault_id);
        let e = vault_ops::import::import(&mut vault, &file, candid::Principal::from_text(&clone).unwrap(), &mut vault_ops::progress::Silent).unwrap_err();
        assert!(e.to_string().contains("connection lost"), "{e}");
        vault_ops::Transport::finish(&mut embedded).unwrap();
    }
    assert_eq!(target.snapshot_ids(&clone), Vec::<u64>::new(), "an unfinished import is not listed");

    let imported = target.ok(&["import", file.to_str().unwrap(), "--app", &clone]);
    let chunk_size = exported["size"].as_u64().unwrap().div_ceil(chunks);
    let uploaded = imported["uploaded"].as_u64().unwrap();
    assert!(uploaded < exported["size"].as_u64().unwrap() - chunk_size, "the two chunks already there were not sent again: {uploaded}");
    let restored = target.ok(&["restore", &clone, &imported["snapshot"]["id"].to_string()]);
    assert_eq!(restored["phase"], "succeeded");
    assert_eq!(target.digest(&clone), source.digest(&app));
}
