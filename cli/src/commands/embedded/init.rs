//! `vault embedded init`: a new embedded IC with a vault on it.

use std::fs::{OpenOptions, Permissions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use candid::Encode;
use serde::Serialize;
use vault_ops::embedded::EmbeddedTransport;
use vault_ops::identity;

use super::modules;
use crate::context::{EMBEDDED_IDENTITY, EMBEDDED_VAULT};
use crate::options::IdentityOpt;
use crate::output::{CliError, Output};

/// Cycles the embedded vault starts with.
pub const VAULT_CYCLES: u128 = 100_000_000_000_000;

/// Create an embedded IC in the `--embedded` directory and deploy a vault on it, controlled by
/// `--identity` or by a new identity saved as DIR/identity.pem.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The vault's wasm module; by default the one this program carries.
    #[arg(long)]
    pub wasm: Option<PathBuf>,
}

#[derive(Serialize)]
pub struct InitReport {
    pub dir: String,
    pub vault: String,
    pub controller: String,
    pub cycles: u128,
}

impl std::fmt::Display for InitReport {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "embedded IC created in {}\n  vault {} with {:.0} TC, controlled by {}",
            self.dir,
            self.vault,
            self.cycles as f64 / 1e12,
            self.controller
        )
    }
}

pub fn exec(dir: &Path, who: &IdentityOpt, args: &Args) -> Result<Output, CliError> {
    if dir.join("world.msgpack").exists() {
        return Err(CliError::Invalid(format!("{} already holds an embedded IC", dir.display())));
    }
    let module = args.wasm.as_deref().map_or_else(|| Ok(modules::VAULT.to_vec()), modules::read)?;
    std::fs::create_dir_all(dir).map_err(|e| CliError::Invalid(format!("creating {}: {e}", dir.display())))?;
    let controller = match &who.identity {
        Some(name) => identity::load(name)?,
        None => {
            let mut seed = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut seed))
                .map_err(|e| CliError::Invalid(format!("reading /dev/urandom: {e}")))?;
            let path = dir.join(EMBEDDED_IDENTITY);
            write_private(&path, identity::ed25519_pem(&seed).as_bytes())
                .map_err(|e| CliError::Invalid(format!("writing {}: {e}", path.display())))?;
            identity::load(path.to_str().unwrap_or_default())?
        }
    };
    let mut transport = EmbeddedTransport::create(dir, controller.principal);
    let ic = transport.harness();
    let vault = ic.create_canister_with_cycles(Some(controller.principal), None, VAULT_CYCLES);
    ic.try_install_canister(vault, module, Encode!().expect("empty args encode"), Some(controller.principal))
        .map_err(|r| modules::not_installed(&format!("no embedded IC was saved in {}", dir.display()), &r))?;
    std::fs::write(dir.join(EMBEDDED_VAULT), vault.to_text()).map_err(|e| CliError::Invalid(format!("writing {}: {e}", dir.display())))?;
    vault_ops::Transport::finish(&mut transport)?;
    Ok(Output::of(&InitReport {
        dir: dir.display().to_string(),
        vault: vault.to_text(),
        controller: controller.principal.to_text(),
        cycles: VAULT_CYCLES,
    }))
}

/// Writes a private key readable and writable by its owner only (mode 0600), also over a file
/// left with other permissions.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.set_permissions(Permissions::from_mode(0o600))?;
    file.write_all(bytes)
}
