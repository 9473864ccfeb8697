//! Shared helpers: an embedded IC in a temporary directory with a vault on it, commands run
//! against it, and an allocator that measures a thread's peak heap use.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};

use serde_json::Value;
use vault_cli::{CliError, Output};

/// An embedded IC made with `vault embedded init`, kept in a temporary directory.
pub struct Ic {
    pub root: tempfile::TempDir,
    pub vault: String,
}

impl Ic {
    pub fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let mut ic = Ic { root, vault: String::new() };
        ic.vault = ic.ok(&["embedded", "init"])["vault"].as_str().unwrap().to_string();
        ic
    }

    pub fn dir(&self) -> PathBuf {
        self.root.path().join("ic")
    }

    /// A path in this IC's temporary directory (not inside the IC).
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// The command line `vault --embedded DIR <args>`.
    pub fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut argv = vec!["vault".to_string(), "--embedded".to_string(), self.dir().display().to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        argv
    }

    pub fn run(&self, args: &[&str]) -> Result<Output, CliError> {
        vault_cli::run(self.argv(args))
    }

    /// Runs a command that must succeed; returns its JSON.
    pub fn ok(&self, args: &[&str]) -> Value {
        self.run(args).unwrap_or_else(|e| panic!("vault {}: {e}", args.join(" "))).json
    }

    /// Runs a command that must fail; returns the error.
    pub fn err(&self, args: &[&str]) -> CliError {
        match self.run(args) {
            Ok(out) => panic!("vault {} succeeded: {}", args.join(" "), out.text),
            Err(e) => e,
        }
    }

    /// An example app (`ledger` or `notes`) trusting this IC's vault.
    pub fn deploy(&self, example: &str) -> String {
        self.ok(&["embedded", "deploy", "--example", example])["canister"].as_str().unwrap().to_string()
    }

    /// An example app, registered for snapshots on request only.
    pub fn registered(&self, example: &str) -> String {
        let app = self.deploy(example);
        self.ok(&["register", &app, "--every", "never", "--keep-last", "5"]);
        app
    }

    /// Calls `method` of `canister` with candid text arguments; returns the reply as text.
    pub fn call(&self, canister: &str, method: &str, args: &str) -> String {
        self.run(&["embedded", "call", canister, method, args]).unwrap_or_else(|e| panic!("{method}: {e}")).text
    }

    /// Stores `blobs` blobs of `bytes` bytes each in an example app.
    pub fn fill(&self, app: &str, blobs: u64, bytes: u64) {
        for key in 0..blobs {
            self.call(app, "put_blob", &format!("({key} : nat64, {bytes} : nat64, {key} : nat8)"));
        }
    }

    /// An example app's update count and state hash.
    pub fn digest(&self, app: &str) -> String {
        self.call(app, "digest", "()")
    }

    /// Takes a snapshot of `app`; returns its id.
    pub fn snapshot(&self, app: &str) -> u64 {
        self.ok(&["snapshot", app])["id"].as_u64().unwrap()
    }

    /// The ids of `app`'s snapshots, oldest first.
    pub fn snapshot_ids(&self, app: &str) -> Vec<u64> {
        self.ok(&["list", app]).as_array().unwrap().iter().map(|s| s["id"].as_u64().unwrap()).collect()
    }

    /// Writes `bytes` into a file in this IC's temporary directory; returns its path.
    pub fn file(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.path(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    }

    /// The `vault` binary with the command line `vault --embedded DIR <args>`, with none of the
    /// environment variables that would change it.
    pub fn binary(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_vault"));
        command.args(&self.argv(args)[1..]).env_remove("VAULT_ID").env_remove("VAULT_IDENTITY").env_remove("VAULT_EMBEDDED");
        command
    }
}

/// Writes a PEM identity made from `seed` into `dir`; returns its path.
pub fn identity_file(dir: &Path, seed: u8) -> String {
    let path = dir.join(format!("identity-{seed}.pem"));
    std::fs::write(&path, vault_ops::identity::ed25519_pem(&[seed; 32])).unwrap();
    path.display().to_string()
}

/// The principal of the PEM identity at `path`.
pub fn principal(path: &str) -> String {
    vault_ops::identity::load(path).unwrap().principal.to_text()
}

/// The error's text.
pub fn message(e: &CliError) -> String {
    e.to_string()
}

thread_local! {
    /// Bytes this thread has allocated and not freed, and the most there were.
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

/// The system allocator, counting what each thread holds.
pub struct CountingAllocator;

fn count(delta: i64) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as i64);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as i64));
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as i64);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as i64 - layout.size() as i64);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` and returns its result with the most heap bytes this thread held during it, above
/// what it held before.
pub fn peak_heap<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let result = f();
    let peak = PEAK.with(Cell::get);
    (result, (peak - start).max(0) as u64)
}

/// A module whose `canister_post_upgrade` is `unreachable`: every upgrade to it traps.
pub fn trapping_post_upgrade() -> Vec<u8> {
    let name = b"canister_post_upgrade";
    let mut exports = vec![0x01, name.len() as u8];
    exports.extend_from_slice(name);
    exports.extend_from_slice(&[0x00, 0x00]); // function 0
    let mut module = vec![0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]; // magic, version
    module.extend_from_slice(&[0x01, 0x04, 0x01, 0x60, 0x00, 0x00]); // types: [] -> []
    module.extend_from_slice(&[0x03, 0x02, 0x01, 0x00]); // functions: one of type 0
    module.extend_from_slice(&[0x07, exports.len() as u8]);
    module.extend(exports);
    module.extend_from_slice(&[0x0a, 0x05, 0x01, 0x03, 0x00, 0x00, 0x0b]); // code: unreachable
    module
}
