//! Who may call what, in one layer. Every endpoint names its rule in one line, and the rule is
//! checked before the request's snapshots are looked at or any argument is validated (a
//! rule names the apps it needs registered; `job_status` first finds the job's app):
//!
//! - anonymous callers get nothing;
//! - a registered app is managed, read and restored by its controllers: updates ask the
//!   management canister (`canister_info`) and keep what they saw on the app's record, queries
//!   (which cannot call) check the controllers last seen;
//! - an app unregistered with snapshots kept (retired) is still listed, exported, restored from
//!   and deleted by its controllers, and by those last seen once its canister is gone;
//! - registering an app needs its controller too, and registration open to the caller:
//!   administrators always, others as the registration mode says;
//! - administrators (the vault's own controllers, and the principals they name) allow
//!   registrants, suspend and evict apps and see what every app holds; only the vault's
//!   controllers name administrators.
//!
//! Ingress is also inspected before it is inducted (and paid for): [`admit_ingress`].

use candid::utils::ArgumentDecoder;
use candid::Principal;
use vault_api::service::{
    ChunkRef, ImportArgs, ImportChunk, Limits, ManifestPage, RegisterArgs, Registration, RestoreArgs, SetAllowedArgs, SnapshotOptions, SnapshotRef, SuspendArgs,
    UnregisterArgs, UpdateScheduleArgs, VaultError, methods,
};

use crate::app_client::{self, CanisterInfo};
use crate::state::with_state;
use crate::storable::AppRecord;

/// Apps whose controllers one sweep of [`refresh_some_controllers`] asks for.
pub const REFRESH_BUDGET: usize = 10;

thread_local! {
    /// The last app the sweep refreshed: the next sweep goes on after it.
    static REFRESHED_UP_TO: std::cell::Cell<Option<Principal>> = const { std::cell::Cell::new(None) };
    /// Likewise among retired apps (unregistered, their snapshots kept).
    static RETIRED_UP_TO: std::cell::Cell<Option<Principal>> = const { std::cell::Cell::new(None) };
}

/// Asks the management canister for the controllers of the next [`REFRESH_BUDGET`] registered
/// apps and as many retired ones (round robin) and keeps them: a controller removed from an app loses query access once
/// the sweep reaches it (or sooner, on any update about the app), one added gains it.
pub async fn refresh_some_controllers() {
    let (registered, retired) =
        with_state(|s| (s.apps_after(REFRESHED_UP_TO.get(), REFRESH_BUDGET), s.retired_after(RETIRED_UP_TO.get(), REFRESH_BUDGET)));
    REFRESHED_UP_TO.set(registered.last().copied());
    RETIRED_UP_TO.set(retired.last().copied());
    let apps: Vec<Principal> = registered.into_iter().chain(retired).collect();
    let answers = futures::future::join_all(apps.iter().map(|&app| app_client::canister_info(app))).await;
    for (app, answer) in apps.into_iter().zip(answers) {
        if let Ok(info) = answer {
            with_state(|s| s.note_canister_info(app, info.controllers, info.module_hash));
        }
    }
}

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

/// The vault's controllers and the principals they named administer it.
pub fn is_administrator(caller: Principal) -> bool {
    ic_cdk::api::is_controller(&caller) || with_state(|s| s.config().administrators.contains(&caller))
}

/// For administration: the caller is a controller of the vault or a named administrator.
pub fn administrator() -> Result<Principal, VaultError> {
    let caller = authenticated()?;
    if !is_administrator(caller) {
        return Err(VaultError::NotAnAdministrator { caller });
    }
    Ok(caller)
}

/// For naming administrators: the caller controls the vault.
pub fn vault_controller() -> Result<Principal, VaultError> {
    let caller = authenticated()?;
    if !ic_cdk::api::is_controller(&caller) {
        return Err(VaultError::NotAController { app: ic_cdk::api::canister_self(), caller });
    }
    Ok(caller)
}

/// For registering `app`: registration is open to the caller (an administrator always; others
/// as the registration mode says), and the caller controls the app now. Returns the caller and
/// what the management canister said of the app.
pub async fn may_register(app: Principal) -> Result<(Principal, CanisterInfo), VaultError> {
    let caller = authenticated()?;
    let mode = with_state(|s| s.config().registration);
    let open = match mode {
        Registration::Open => true,
        Registration::AllowList => with_state(|s| s.is_allowed(caller)),
        Registration::Administrators => false,
    };
    if !open && !is_administrator(caller) {
        return Err(VaultError::RegistrationClosed { caller, mode });
    }
    let info = controls(caller, app).await?;
    Ok((caller, info))
}

/// For updates about a registered `app`: the caller controls it now. Returns the caller.
pub async fn controller(app: Principal) -> Result<Principal, VaultError> {
    let caller = authenticated()?;
    with_state(|s| s.registered(app))?;
    controls(caller, app).await?;
    Ok(caller)
}

/// For updates about job `job`: the caller controls, now, the app the job runs on.
pub async fn controller_of_job(job: u64) -> Result<Principal, VaultError> {
    authenticated()?;
    let app = with_state(|s| s.job(job)).ok_or(VaultError::UnknownJob { job })?.app;
    controller(app).await
}

/// For restoring `source`'s snapshot into `target` (itself or a clone): the target is
/// registered, the source is or is retired, and the caller controls both now (a retired source
/// whose canister is gone: controlled it when the vault last saw it).
pub async fn restorer(source: Principal, target: Principal) -> Result<(), VaultError> {
    let caller = authenticated()?;
    holder_record(source)?;
    if with_state(|s| s.app(target)).is_none() {
        return Err(VaultError::TargetNotRegistered { target });
    }
    holds(caller, source).await?;
    if target != source {
        controls(caller, target).await?;
    }
    Ok(())
}

/// The controllers last seen of `app`, registered or retired (unregistered, its snapshots kept).
fn holder_record(app: Principal) -> Result<Vec<Principal>, VaultError> {
    with_state(|s| s.app(app).map(|r| r.controllers).or_else(|| s.retired(app).map(|r| r.controllers))).ok_or(VaultError::UnknownApp { app })
}

/// Whether `caller` controls `app`, whose snapshots the vault holds, now: as the management
/// canister says, or, once the app's canister is gone (deleted: no one controls it), as the
/// vault last saw it.
async fn holds(caller: Principal, app: Principal) -> Result<(), VaultError> {
    let seen = holder_record(app)?;
    match controls(caller, app).await {
        Err(VaultError::AppUnreachable { reject_code: 3, .. }) if seen.contains(&caller) => Ok(()),
        answer => answer.map(drop),
    }
}

/// For updates about the snapshots of `app`, registered or retired: the caller controls it now
/// (see [`holds`]). Returns the caller.
pub async fn snapshot_holder(app: Principal) -> Result<Principal, VaultError> {
    let caller = authenticated()?;
    holds(caller, app).await?;
    Ok(caller)
}

/// For queries about the snapshots of `app`, registered or retired: the caller is among its
/// controllers as last seen.
pub fn seen_snapshot_holder(app: Principal) -> Result<(), VaultError> {
    let caller = authenticated()?;
    if !holder_record(app)?.contains(&caller) {
        return Err(VaultError::NotAController { app, caller });
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

/// Whether an ingress message may be inducted, as `canister_inspect_message` decides before the
/// vault pays for it: the anonymous principal is refused, and so is a method no ingress may
/// call or an argument that is not the method's within the decoding quotas of
/// `vault_api::decode`. The endpoint checks its own rule again: this only refuses early.
pub fn admit_ingress(caller: Principal, method: &str, arg: &[u8]) -> Result<(), String> {
    if caller == Principal::anonymous() {
        return Err("the vault answers no anonymous update calls".into());
    }
    let decoded = match method {
        methods::REGISTER => decodes::<(RegisterArgs,)>(arg),
        methods::UNREGISTER => decodes::<(UnregisterArgs,)>(arg),
        methods::UPDATE_SCHEDULE => decodes::<(UpdateScheduleArgs,)>(arg),
        methods::SNAPSHOT_NOW => decodes::<(Principal, Option<SnapshotOptions>)>(arg),
        methods::APP_INFO
        | methods::LIST_SNAPSHOTS
        | methods::LIST_JOBS
        | methods::RESUME_APP
        | methods::EVICT_APP
        | methods::REFRESH_ACCESS => {
            decodes::<(Principal,)>(arg)
        }
        methods::LIST_APPS | methods::ADMIN_INFO | methods::LIST_REGISTRANTS => decodes::<()>(if arg.is_empty() { b"DIDL\x00\x00" } else { arg }),
        methods::SET_ADMINISTRATORS => decodes::<(Vec<Principal>,)>(arg),
        methods::SET_REGISTRATION => decodes::<(Registration,)>(arg),
        methods::SET_ALLOWED => decodes::<(SetAllowedArgs,)>(arg),
        methods::SUSPEND_APP => decodes::<(SuspendArgs,)>(arg),
        methods::SET_LIMITS => decodes::<(Limits,)>(arg),
        methods::DELETE_SNAPSHOT | methods::IMPORT_COMMIT | methods::IMPORT_ABORT => decodes::<(SnapshotRef,)>(arg),
        methods::RESTORE => decodes::<(RestoreArgs,)>(arg),
        methods::JOB_STATUS | methods::CANCEL_JOB => decodes::<(u64,)>(arg),
        methods::SNAPSHOT_CHUNK => decodes::<(ChunkRef,)>(arg),
        methods::SNAPSHOT_MANIFEST => decodes::<(ManifestPage,)>(arg),
        methods::IMPORT_BEGIN => decodes::<(ImportArgs,)>(arg),
        methods::IMPORT_CHUNK => decodes::<(ImportChunk,)>(arg),
        other => return Err(format!("{other} is not a method of the vault's service")),
    };
    decoded.map_err(|e| format!("the argument of {method} does not decode: {e}"))
}

fn decodes<'a, Args: ArgumentDecoder<'a>>(arg: &'a [u8]) -> Result<(), candid::Error> {
    vault_api::decode::args::<Args>(arg).map(drop)
}

/// A guard on every endpoint with arguments: its argument must decode as `Args` within the
/// quotas of `vault_api::decode`, before the endpoint's own decoding (which has a skipping
/// quota but no decoding quota) runs. Calls from other canisters pass no `inspect_message`:
/// this is what bounds what decoding their arguments may cost.
pub fn bounded_args<Args: for<'a> ArgumentDecoder<'a>>() -> Result<(), String> {
    decodes::<Args>(&ic_cdk::api::msg_arg_data()).map_err(|e| format!("the argument does not decode: {e}"))
}

#[cfg(test)]
mod tests {
    use vault_api::Sha256;

    use super::*;

    fn owner() -> Principal {
        Principal::from_slice(&[1; 29])
    }

    #[test]
    fn ingress_is_admitted_with_a_well_formed_argument() {
        let chunk = ImportChunk {
            app: owner(),
            snapshot_id: 1,
            index: 0,
            data: serde_bytes::ByteBuf::from(vec![0u8; 2 * 1024 * 1024]),
            sha256: Sha256::default(),
        };
        assert_eq!(admit_ingress(owner(), methods::IMPORT_CHUNK, &candid::encode_one(&chunk).unwrap()), Ok(()));
        assert_eq!(admit_ingress(owner(), methods::LIST_APPS, &[]), Ok(()));
        assert_eq!(admit_ingress(owner(), methods::JOB_STATUS, &candid::encode_one(7u64).unwrap()), Ok(()));
    }

    #[test]
    fn anonymous_callers_unknown_methods_and_bad_arguments_are_refused() {
        let arg = candid::encode_one(owner()).unwrap();
        assert!(admit_ingress(Principal::anonymous(), methods::SNAPSHOT_NOW, &arg).is_err());
        assert!(admit_ingress(owner(), "<ic-cdk internal> timer_executor", &arg).is_err());
        assert!(admit_ingress(owner(), methods::SNAPSHOT_NOW, b"not candid").is_err());
        assert!(admit_ingress(owner(), methods::JOB_STATUS, &arg).is_err(), "a principal is not a job id");
        let mut bomb = b"DIDL\x01\x6d\x7f\x01\x00".to_vec();
        bomb.extend_from_slice(&[0x80, 0x94, 0xeb, 0xdc, 0x03]);
        assert!(admit_ingress(owner(), methods::LIST_APPS, &bomb).is_err(), "a billion nulls where none is expected");
    }
}
