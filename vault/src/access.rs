//! Who may call what, in one layer. Every endpoint names its rule in one line, and the rule is
//! checked before the request's snapshots are looked at or any argument is validated (a
//! rule names the apps it needs registered; `job_status` first finds the job's app):
//!
//! - anonymous callers get nothing;
//! - a registered app is managed, read and restored by its controllers: updates ask the
//!   management canister (`canister_info`) and keep what they saw on the app's record, queries
//!   (which cannot call) check the controllers last seen;
//! - registering an app needs its controller too.

use candid::Principal;
use vault_api::service::VaultError;

use crate::app_client::{self, CanisterInfo};
use crate::state::with_state;
use crate::storable::AppRecord;

/// Anonymous callers refused; the caller otherwise.
pub fn authenticated() -> Result<Principal, VaultError> {
    let caller = ic_cdk::api::msg_caller();
    if caller == Principal::anonymous() {
        return Err(VaultError::Anonymous);
    }
    Ok(caller)
}

/// Asks the management canister for `app`'s controllers, keeps them on the app's record if it
/// is registered, and checks the caller is one.
async fn controls(caller: Principal, app: Principal) -> Result<CanisterInfo, VaultError> {
    let info = app_client::canister_info(app).await.map_err(|f| VaultError::AppUnreachable {
        app,
        reject_code: f.reject_code(),
        message: f.to_string(),
    })?;
    with_state(|s| s.note_canister_info(app, info.controllers.clone(), info.module_hash));
    if !info.controllers.contains(&caller) {
        return Err(VaultError::NotAController { app, caller });
    }
    Ok(info)
}

/// For registering `app`: the caller controls it now. Returns the caller and what the
/// management canister said of the app.
pub async fn may_register(app: Principal) -> Result<(Principal, CanisterInfo), VaultError> {
    let caller = authenticated()?;
    let info = controls(caller, app).await?;
    Ok((caller, info))
}

/// For updates about a registered `app`: the caller controls it now.
pub async fn controller(app: Principal) -> Result<(), VaultError> {
    let caller = authenticated()?;
    with_state(|s| s.registered(app))?;
    controls(caller, app).await?;
    Ok(())
}

/// For restoring `source`'s snapshot into `target` (itself or a clone): both are registered
/// and the caller controls both now.
pub async fn restorer(source: Principal, target: Principal) -> Result<(), VaultError> {
    let caller = authenticated()?;
    with_state(|s| s.registered(source))?;
    if with_state(|s| s.app(target)).is_none() {
        return Err(VaultError::TargetNotRegistered { target });
    }
    controls(caller, source).await?;
    if target != source {
        controls(caller, target).await?;
    }
    Ok(())
}

/// For queries about a registered `app`: the caller is among its controllers as last seen.
/// Returns the app's record.
pub fn seen_controller(app: Principal) -> Result<AppRecord, VaultError> {
    let caller = authenticated()?;
    let record = with_state(|s| s.registered(app))?;
    if !record.controllers.contains(&caller) {
        return Err(VaultError::NotAController { app, caller });
    }
    Ok(record)
}

/// For a query about job `job`: the caller is among the controllers, as last seen, of the app
/// it runs on (a clone's restore is shown to the controllers of its target, who control the
/// source too).
pub fn seen_controller_of_job(job: u64) -> Result<crate::storable::JobRecord, VaultError> {
    authenticated()?;
    let record = with_state(|s| s.job(job)).ok_or(VaultError::UnknownJob { job })?;
    seen_controller(record.app)?;
    Ok(record)
}
