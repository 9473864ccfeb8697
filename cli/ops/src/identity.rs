//! Identities: a PEM file (Ed25519, secp256k1 or P-256, as dfx and icp write them), or a name
//! in the dfx identity store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candid::Principal;
use ic_agent::Identity;
use ic_agent::identity::{BasicIdentity, Prime256v1Identity, Secp256k1Identity};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("reading {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path} holds no Ed25519, secp256k1 or P-256 private key in PEM form")]
    NotAKey { path: PathBuf },
    #[error("no identity given: pass --identity <pem file or dfx identity name>")]
    Missing,
}

/// An identity and its principal.
#[derive(Clone)]
pub struct LoadedIdentity {
    pub identity: Arc<dyn Identity>,
    pub principal: Principal,
}

/// Parses a PEM private key.
pub fn from_pem(pem: &[u8], path: &Path) -> Result<LoadedIdentity, IdentityError> {
    let identity: Arc<dyn Identity> = if let Ok(i) = BasicIdentity::from_pem(pem) {
        Arc::new(i)
    } else if let Ok(i) = Secp256k1Identity::from_pem(pem) {
        Arc::new(i)
    } else if let Ok(i) = Prime256v1Identity::from_pem(pem) {
        Arc::new(i)
    } else {
        return Err(IdentityError::NotAKey { path: path.to_path_buf() });
    };
    let principal = identity.sender().map_err(|message| IdentityError::Read { path: path.to_path_buf(), message })?;
    Ok(LoadedIdentity { identity, principal })
}

/// An Ed25519 private key in the PKCS#8 PEM form `dfx identity new` writes, from its 32-byte
/// seed: for identities made on the spot, such as the demo's.
pub fn ed25519_pem(seed: &[u8; 32]) -> String {
    /// PKCS#8 for Ed25519 (RFC 8410): version 0, algorithm 1.3.101.112, then the seed.
    const PREFIX: [u8; 16] = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    let der = [&PREFIX[..], seed].concat();
    pem::encode_config(&pem::Pem::new("PRIVATE KEY", der), pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF))
}

/// `identity` is a path to a PEM file, or the name of an identity in the dfx store
/// (`~/.config/dfx/identity/<name>/identity.pem`).
pub fn load(identity: &str) -> Result<LoadedIdentity, IdentityError> {
    let direct = PathBuf::from(identity);
    let looks_like_a_path = identity.contains(std::path::MAIN_SEPARATOR) || identity.contains('/') || identity.ends_with(".pem");
    let path = if direct.is_file() || looks_like_a_path {
        direct
    } else {
        let home = std::env::var_os("HOME").map(PathBuf::from).ok_or(IdentityError::Missing)?;
        home.join(".config").join("dfx").join("identity").join(identity).join("identity.pem")
    };
    let pem = std::fs::read(&path).map_err(|e| IdentityError::Read { path: path.clone(), message: e.to_string() })?;
    from_pem(&pem, &path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ed25519 key in the PKCS#8 PEM form `dfx identity new` writes.
    const TEST_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g\n-----END PRIVATE KEY-----\n";

    #[test]
    fn ed25519_pem_writes_the_form_dfx_writes() {
        let seed: [u8; 32] = std::array::from_fn(|i| i as u8 + 1);
        assert_eq!(ed25519_pem(&seed), TEST_PEM);
    }

    #[test]
    fn a_pem_file_gives_its_self_authenticating_principal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id.pem");
        std::fs::write(&path, TEST_PEM).unwrap();
        let id = load(path.to_str().unwrap()).unwrap();
        // Self-authenticating principals end in 0x02 and have 29 bytes.
        assert_eq!(id.principal.as_slice().len(), 29);
        assert_eq!(id.principal.as_slice()[28], 0x02);
        assert_eq!(load(path.to_str().unwrap()).unwrap().principal, id.principal);
    }

    #[test]
    fn a_file_without_a_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not.pem");
        std::fs::write(&path, "hello").unwrap();
        assert!(matches!(load(path.to_str().unwrap()), Err(IdentityError::NotAKey { .. })));
    }
}
