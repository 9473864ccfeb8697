//! Who may call the backup endpoints: the app's vault, and for setting the vault, the app's
//! controllers.

use candid::Principal;
use vault_api::protocol::BackupError;

use crate::store;

/// The caller is the vault set for this app; it is returned.
pub fn caller_is_vault() -> Result<Principal, BackupError> {
    let caller = ic_cdk::api::msg_caller();
    match store::header().vault {
        None => Err(BackupError::NoVaultSet),
        Some(vault) if vault == caller => Ok(caller),
        Some(_) => Err(BackupError::NotTheVault { caller }),
    }
}

/// The caller is the vault or a controller of the app.
pub fn caller_is_vault_or_controller() -> Result<(), BackupError> {
    caller_is_controller().or_else(|_| caller_is_vault().map(|_| ()))
}

pub fn caller_is_controller() -> Result<(), BackupError> {
    let caller = ic_cdk::api::msg_caller();
    if caller != Principal::anonymous() && ic_cdk::api::is_controller(&caller) {
        Ok(())
    } else {
        Err(BackupError::NotAController { caller })
    }
}
