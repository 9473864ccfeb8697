//! Builds canister wasm from this workspace, for tests and benchmarks, with `canister_build`
//! (into `target/canisters`, apart from the native build). Each (package, target) is built once
//! per process; a failed build panics with cargo's reason, as a test should.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use canister_build::Target;

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

fn build(package: &str, target: Target) -> Vec<u8> {
    type Built = Mutex<HashMap<(String, String), Vec<u8>>>;
    static BUILT: OnceLock<Built> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    let key = (package.to_string(), target.name().to_string());
    if let Some(wasm) = built.get(&key) {
        return wasm.clone();
    }
    let wasm = canister_build::build(&workspace_root(), package, target).and_then(|module| module.read()).unwrap_or_else(|e| panic!("{e}"));
    built.insert(key, wasm.clone());
    wasm
}
