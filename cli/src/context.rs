//! What a command runs with: a transport to the IC, the vault's id, and the progress bars.
//! On an embedded IC, the directory also holds the identity and the vault made with it.

use std::path::{Path, PathBuf};

use candid::Principal;
use vault_ops::agent::AgentTransport;
use vault_ops::embedded::EmbeddedTransport;
use vault_ops::identity::{self, LoadedIdentity};
use vault_ops::{Transport, Vault};

use crate::options::{IdentityOpt, NetworkOpt, OutputOpt, VaultOpt};
use crate::progress::Bars;
use crate::output::CliError;

/// The identity `vault embedded init` makes, in the IC's directory.
pub const EMBEDDED_IDENTITY: &str = "identity.pem";
/// The id of the vault `vault embedded init` deploys, in the IC's directory.
pub const EMBEDDED_VAULT: &str = "vault.id";

pub struct Context {
    pub transport: Box<dyn Transport>,
    vault: Option<Principal>,
    pub progress: Bars,
    /// The embedded IC's directory, when the command runs on one.
    pub embedded: Option<PathBuf>,
}

/// The identity a command calls as.
pub fn identity(network: &NetworkOpt, identity: &IdentityOpt) -> Result<LoadedIdentity, CliError> {
    match (&identity.identity, &network.embedded) {
        (Some(name), _) => Ok(identity::load(name)?),
        (None, Some(dir)) => Ok(identity::load(dir.join(EMBEDDED_IDENTITY).to_str().unwrap_or_default())?),
        (None, None) => Ok(identity::load("default")?),
    }
}

impl Context {
    pub fn open(network: &NetworkOpt, who: &IdentityOpt, vault: &VaultOpt, output: &OutputOpt) -> Result<Self, CliError> {
        if let Some(dir) = &network.embedded {
            EmbeddedTransport::check(dir)?;
        }
        let caller = identity(network, who)?;
        let (transport, vault, embedded): (Box<dyn Transport>, _, _) = match &network.embedded {
            Some(dir) => {
                let transport = EmbeddedTransport::open(dir, caller.principal)?;
                (Box::new(transport), vault.vault.or_else(|| embedded_vault(dir)), Some(dir.clone()))
            }
            None => (Box::new(AgentTransport::new(&network.network, caller)?), vault.vault, None),
        };
        Ok(Context { transport, vault, progress: Bars::new(output.json), embedded })
    }

    /// The vault, through this context's transport.
    pub fn vault(&mut self) -> Result<Vault<'_>, CliError> {
        Ok(self.vault_with_progress()?.0)
    }

    /// The vault and the progress bars, for commands that move bytes.
    pub fn vault_with_progress(&mut self) -> Result<(Vault<'_>, &mut Bars), CliError> {
        let id = self.vault.ok_or_else(|| CliError::Invalid("which vault? pass --vault <canister id> or set VAULT_ID".into()))?;
        Ok((Vault::new(self.transport.as_mut(), id), &mut self.progress))
    }

    /// Ends the command: an embedded IC is saved if it changed.
    pub fn finish(mut self) -> Result<(), CliError> {
        Ok(self.transport.finish()?)
    }
}

fn embedded_vault(dir: &Path) -> Option<Principal> {
    let text = std::fs::read_to_string(dir.join(EMBEDDED_VAULT)).ok()?;
    Principal::from_text(text.trim()).ok()
}
