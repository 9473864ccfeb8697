//! Builds the canister modules `vault` carries (the vault and the example apps it deploys) and
//! puts them in OUT_DIR for `include_bytes!`, so an installed `vault` needs no source tree. The
//! build is the one the tests run (`canister_build`), so a checkout builds each module once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use canister_build::Target;

/// (package, library target) of each module carried.
const MODULES: [(&str, &str); 4] = [("canister-vault", "canister_vault"), ("notes", "notes"), ("ledger", "ledger"), ("plain", "plain")];

fn main() {
    if let Err(e) = bundle() {
        // Failing, not only logging the error, makes cargo show the nested build's messages.
        println!("cargo::error={e}");
        std::process::exit(1);
    }
}

fn bundle() -> Result<(), String> {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?);
    let workspace = manifest_dir.parent().ok_or("the CLI crate is in the workspace")?;
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    let built_in = canister_build::target_dir(workspace);
    let mut watched = BTreeSet::from([workspace.join("Cargo.toml"), workspace.join("Cargo.lock")]);
    for (package, lib) in MODULES {
        let module = canister_build::build(workspace, package, Target::Lib(lib)).map_err(|e| e.to_string())?;
        let carried = out_dir.join(format!("{lib}.wasm"));
        std::fs::copy(&module.path, &carried).map_err(|e| format!("copying {} to {}: {e}", module.path.display(), carried.display()))?;
        for source in module.sources().map_err(|e| e.to_string())? {
            if source.starts_with(workspace) && !source.starts_with(&built_in) {
                watched.extend(manifests_above(&source, workspace));
                watched.insert(source);
            }
        }
    }
    for path in watched {
        println!("cargo::rerun-if-changed={}", path.display());
    }
    println!("cargo::rerun-if-env-changed=CARGO_TARGET_DIR");
    Ok(())
}

/// The `Cargo.toml` files in the directories from `source` up to `workspace`: the manifests of
/// its package and of the workspace.
fn manifests_above(source: &Path, workspace: &Path) -> Vec<PathBuf> {
    source
        .ancestors()
        .skip(1)
        .take_while(|dir| dir.starts_with(workspace))
        .map(|dir| dir.join("Cargo.toml"))
        .filter(|manifest| manifest.exists())
        .collect()
}
