//! Builds this workspace's canisters for wasm32: `cargo build --target wasm32-unknown-unknown
//! --profile canister` into `canisters` under cargo's target directory, apart from the native
//! build, so neither invalidates the other. The tests build so at run time (`ic_harness::build`)
//! and the `vault` CLI's build script at build time: with the same directory and arguments,
//! cargo finds the module one of them built fresh for the other.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;

/// The target canisters are built for.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// The cargo profile canisters are built with (the workspace's `[profile.canister]`).
pub const PROFILE: &str = "canister";

/// What to build of a package.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// The binary of this name.
    Bin(&'a str),
    /// The library (a `cdylib`), whose target has this name.
    Lib(&'a str),
}

impl Target<'_> {
    /// The name of the target, and of the module it builds.
    pub fn name(&self) -> &str {
        match self {
            Target::Bin(name) | Target::Lib(name) => name,
        }
    }
}

/// Why a canister could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("running {} to build canister {canister}: {source} (is cargo installed and on PATH?)", cargo.display())]
    Cargo { canister: String, cargo: PathBuf, source: io::Error },
    #[error("building canister {canister} for wasm32 failed ({status}): cargo's output says why")]
    Failed { canister: String, status: ExitStatus },
    #[error("reading {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
}

/// A module cargo wrote.
#[derive(Clone, Debug)]
pub struct Module {
    pub path: PathBuf,
}

impl Module {
    pub fn read(&self) -> Result<Vec<u8>, BuildError> {
        std::fs::read(&self.path).map_err(|source| BuildError::Read { path: self.path.clone(), source })
    }

    /// The files the module was built from, as cargo's dep-info file beside it lists them.
    pub fn sources(&self) -> Result<Vec<PathBuf>, BuildError> {
        let path = self.path.with_extension("d");
        let text = std::fs::read_to_string(&path).map_err(|source| BuildError::Read { path, source })?;
        Ok(text.lines().filter_map(|line| line.split_once(": ")).flat_map(|(_, deps)| dep_info_paths(deps)).collect())
    }
}

/// The paths of a dep-info rule's right-hand side: separated by spaces, a space inside a path
/// escaped with a backslash.
fn dep_info_paths(deps: &str) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let mut current = String::new();
    let mut chars = deps.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            ' ' => {
                if !current.is_empty() {
                    paths.push(PathBuf::from(std::mem::take(&mut current)));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        paths.push(PathBuf::from(current));
    }
    paths
}

/// Where the canisters of the workspace at `workspace` are built: `canisters` in
/// `$CARGO_TARGET_DIR` (relative to the workspace) if it is set, else in the workspace's `target`.
pub fn target_dir(workspace: &Path) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| workspace.join("target"), |dir| workspace.join(dir));
    target.join("canisters")
}

/// Builds `target` of `package` in the workspace at `workspace` and returns the module.
pub fn build(workspace: &Path, package: &str, target: Target) -> Result<Module, BuildError> {
    ensure_wasm_target();
    let canister = format!("{package}/{}", target.name());
    let target_dir = target_dir(workspace);
    let cargo = PathBuf::from(std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo")));
    let mut command = Command::new(&cargo);
    command
        .current_dir(workspace)
        .args(["build", "--quiet", "--locked", "--target", WASM_TARGET, "--profile", PROFILE, "-p", package])
        .arg("--target-dir")
        .arg(&target_dir)
        // The outer build's flags and wrappers (native RUSTFLAGS, clippy's wrapper) stay out, so the
        // tests and the build script ask cargo for the same build.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        // A build script's standard output is read by cargo as directives.
        .stdout(Stdio::from(io::stderr()));
    match target {
        Target::Bin(bin) => command.args(["--bin", bin]),
        Target::Lib(_) => command.arg("--lib"),
    };
    let status = command.status().map_err(|source| BuildError::Cargo { canister: canister.clone(), cargo, source })?;
    if !status.success() {
        return Err(BuildError::Failed { canister, status });
    }
    Ok(Module { path: target_dir.join(WASM_TARGET).join(PROFILE).join(format!("{}.wasm", target.name())) })
}

/// Installs the wasm32 target with rustup, once per process, so a fresh machine needs no step of
/// its own. Without rustup the build itself says what is missing.
fn ensure_wasm_target() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let _ = Command::new("rustup").args(["target", "add", WASM_TARGET]).output();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep_info_paths_split_on_unescaped_spaces() {
        assert_eq!(
            dep_info_paths("/w/src/lib.rs /w/my\\ dir/a.rs  /w/api.did"),
            [PathBuf::from("/w/src/lib.rs"), PathBuf::from("/w/my dir/a.rs"), PathBuf::from("/w/api.did")]
        );
        assert!(dep_info_paths("").is_empty());
    }
}
