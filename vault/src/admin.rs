//! What each administration endpoint does once its access rule passed: the registration mode,
//! the administrators and the allow-list, suspending and evicting apps, and what every
//! registrant's apps hold.

use std::collections::BTreeMap;

use candid::Principal;
use vault_api::service::{AdminInfo, AppUsage, Limits, RegistrantInfo, Registration, SetAllowedArgs, Suspension, VaultError};

use crate::engine::cycles;
use crate::ops;
use crate::state::{State, with_state};
use crate::storable::{MAX_ADMINISTRATORS, SuspensionRecord};

/// Principals one `set_allowed` call changes at most.
pub const MAX_ALLOWED_PER_CALL: usize = 100;
/// The largest snapshot and import quotas an app may be given.
const MAX_APP_SNAPSHOTS: u32 = 10_000;
const MAX_APP_IMPORTS: u32 = 100;

pub fn info() -> AdminInfo {
    let (config, allowed) = with_state(|s| (s.config(), s.allowed()));
    AdminInfo {
        administrators: config.administrators,
        registration: config.registration,
        allowed,
        limits: config.limits,
        reserved_cycles: cycles::reserved(),
        stable_memory_bytes: cycles::stable_bytes(),
    }
}

/// Sets the reserve and the quotas of apps and registrants, within bounds that keep the vault
/// usable.
pub fn set_limits(limits: Limits) -> Result<(), VaultError> {
    let invalid = |reason: &str| Err(VaultError::InvalidArgument { reason: reason.into() });
    if limits.reserve_days > 3_650 {
        return invalid("keep a reserve of at most 3,650 days");
    }
    if limits.app_snapshots == 0 || limits.app_imports == 0 || limits.app_bytes == 0 || limits.app_cycles_per_day == 0 {
        return invalid("an app may have at least one snapshot, one import, one byte and one cycle a day");
    }
    if limits.registrant_apps == 0 || limits.registrant_bytes == 0 {
        return invalid("a registrant may have at least one app and one byte");
    }
    if limits.import_ttl_seconds < 60 {
        return invalid("an import has at least 60 seconds");
    }
    // Unregistering an app schedules the deletion of all its snapshots in one message.
    if limits.app_snapshots > MAX_APP_SNAPSHOTS || limits.app_imports > MAX_APP_IMPORTS {
        return invalid("an app may keep at most 10,000 snapshots and 100 imports in progress");
    }
    with_state(|s| {
        let mut config = s.config();
        config.limits = limits;
        s.set_config(config);
    });
    Ok(())
}

/// Replaces the named administrators (the vault's controllers are administrators anyway).
pub fn set_administrators(mut administrators: Vec<Principal>) -> Result<(), VaultError> {
    administrators.sort();
    administrators.dedup();
    if administrators.len() > MAX_ADMINISTRATORS {
        return Err(VaultError::TooMany { what: "administrators".into(), max: MAX_ADMINISTRATORS as u32 });
    }
    if administrators.contains(&Principal::anonymous()) {
        return Err(VaultError::InvalidArgument { reason: "the anonymous principal cannot administer the vault".into() });
    }
    with_state(|s| {
        let mut config = s.config();
        config.administrators = administrators;
        s.set_config(config);
    });
    Ok(())
}

pub fn set_registration(registration: Registration) {
    with_state(|s| {
        let mut config = s.config();
        config.registration = registration;
        s.set_config(config);
    });
}

pub fn set_allowed(args: SetAllowedArgs) -> Result<(), VaultError> {
    if args.principals.len() > MAX_ALLOWED_PER_CALL {
        return Err(VaultError::TooMany { what: "principals per call".into(), max: MAX_ALLOWED_PER_CALL as u32 });
    }
    if args.allowed && args.principals.contains(&Principal::anonymous()) {
        return Err(VaultError::InvalidArgument { reason: "the anonymous principal cannot register apps".into() });
    }
    with_state(|s| args.principals.iter().for_each(|&p| s.set_allowed(p, args.allowed)));
    Ok(())
}

/// What `app` holds and spends, from its usage record (no scan of its snapshots).
fn usage(s: &State, app: Principal, running_job: Option<u64>, now: u64) -> AppUsage {
    let held = s.app_usage(app);
    AppUsage {
        app,
        snapshots: held.completed,
        snapshot_bytes: held.completed_bytes,
        running_job,
        suspension: s.suspension(app).map(Suspension::from),
        stored_bytes: held.held.stored,
        cycles_today: held.cycles_today(now),
    }
}

/// Every principal that registered apps, may, or is charged for what apps it registered before
/// hold, with its registered apps, in principal order.
pub fn registrants() -> Vec<RegistrantInfo> {
    let now = ic_cdk::api::time();
    with_state(|s| {
        let mut by: BTreeMap<Principal, Vec<AppUsage>> = s.allowed().into_iter().chain(s.registrants()).map(|p| (p, Vec::new())).collect();
        for (app, record) in s.apps() {
            by.entry(record.registered_by).or_default().push(usage(s, app, record.running_job, now));
        }
        by.into_iter()
            .map(|(registrant, apps)| {
                let stored_bytes = s.registrant_usage(registrant).held.stored;
                RegistrantInfo { registrant, allowed: s.is_allowed(registrant), apps, stored_bytes }
            })
            .collect()
    })
}

/// Suspends registered `app`: no new snapshot, restore into it or import until resumed.
pub fn suspend(by: Principal, app: Principal, reason: &str, now: u64) -> Result<(), VaultError> {
    with_state(|s| {
        s.registered(app)?;
        s.suspend(app, SuspensionRecord::new(by, now, reason));
        Ok(())
    })
}

/// Resumes `app`: registered, or suspended before it was evicted.
pub fn resume(app: Principal) -> Result<(), VaultError> {
    with_state(|s| {
        if s.suspension(app).is_none() {
            s.registered(app)?;
        }
        s.resume(app);
        Ok(())
    })
}

/// Unregisters `app` for an administrator: its running job is cancelled, its snapshots stay
/// until its controllers delete them. A suspension stays: registered again, the app is still
/// suspended until an administrator resumes it.
pub fn evict(by: Principal, app: Principal) -> Result<(), VaultError> {
    ops::unregister(by, app, false)
}
