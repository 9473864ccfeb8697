//! Who may do what: anonymous callers get nothing; only a controller of an app (checked with
//! `canister_info` for updates, against the controllers last seen for queries) may manage,
//! read or restore it.

use candid::Principal;
use vault_api::service::VaultError;

use crate::app_client;
use crate::storable::AppRecord;
use crate::with_state;

pub fn caller_not_anonymous() -> Result<Principal, VaultError> {
    let caller = ic_cdk::api::msg_caller();
    if caller == Principal::anonymous() {
        return Err(VaultError::Anonymous);
    }
    Ok(caller)
}

/// Asks the management canister for `app`'s controllers and checks the caller is one; keeps
/// the controllers seen on the app's record. Returns the app's info.
pub async fn caller_controls(caller: Principal, app: Principal) -> Result<app_client::CanisterInfo, VaultError> {
    let info = app_client::canister_info(app).await.map_err(|f| VaultError::AppUnreachable {
        app,
        reject_code: f.reject_code(),
        message: f.to_string(),
    })?;
    with_state(|s| {
        if let Some(mut record) = s.app(app) {
            record.controllers = info.controllers.clone();
            s.put_app(app, record);
        }
    });
    if !info.controllers.contains(&caller) {
        return Err(VaultError::NotAController { app, caller });
    }
    Ok(info)
}

/// For queries: the app is registered and the caller is among its controllers as last seen.
pub fn caller_controls_registered(caller: Principal, app: Principal) -> Result<AppRecord, VaultError> {
    let record = with_state(|s| s.app(app)).ok_or(VaultError::UnknownApp { app })?;
    if !record.controllers.contains(&caller) {
        return Err(VaultError::NotAController { app, caller });
    }
    Ok(record)
}
