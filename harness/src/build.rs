//! Builds canister wasm from this workspace, for tests, benchmarks and demos.
//!
//! Canisters are built with `cargo build --target wasm32-unknown-unknown --profile canister`
//! into `target/canisters`, apart from the native build, so neither invalidates the other.
//! Each (package, binary) is built once per process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the harness crate is in the workspace").to_path_buf()
}

/// Builds binary `bin` of `package` for wasm32 and returns the module's bytes.
pub fn canister_wasm(package: &str, bin: &str) -> Vec<u8> {
    build(package, Target::Bin(bin))
}

/// Builds the library (a `cdylib`) of `package`, whose library target is named `lib`, for
/// wasm32 and returns the module's bytes.
pub fn canister_lib_wasm(package: &str, lib: &str) -> Vec<u8> {
    build(package, Target::Lib(lib))
}

/// Installs the wasm32 target with rustup, once per process, so a fresh machine needs no
/// step of its own. Without rustup the build reports what is missing.
fn ensure_wasm_target() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let _ = Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]).output();
    });
}

enum Target<'a> {
    Bin(&'a str),
    Lib(&'a str),
}

fn build(package: &str, target: Target) -> Vec<u8> {
    let (flag, name): (&[&str], &str) = match target {
        Target::Bin(bin) => (&["--bin", bin], bin),
        Target::Lib(lib) => (&["--lib"], lib),
    };

    type Built = Mutex<HashMap<(String, String), Vec<u8>>>;
    static BUILT: OnceLock<Built> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    let key = (package.to_string(), name.to_string());
    if let Some(wasm) = built.get(&key) {
        return wasm.clone();
    }
    ensure_wasm_target();
    let root = workspace_root();
    let target_dir = root.join("target").join("canisters");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--quiet", "--locked", "--target", "wasm32-unknown-unknown", "--profile", "canister"])
        .args(["-p", package])
        .args(flag)
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .unwrap_or_else(|e| panic!("running cargo to build canister {package}/{name}: {e}"));
    assert!(status.success(), "building canister {package}/{name} failed");
    let path = target_dir.join("wasm32-unknown-unknown").join("canister").join(format!("{name}.wasm"));
    let wasm = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    built.insert(key, wasm.clone());
    wasm
}
