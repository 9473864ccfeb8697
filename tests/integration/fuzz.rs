//! Fuzzing every endpoint of the vault and of the client library (proptest): arbitrary bytes,
//! and arbitrary candid values of each method's argument types read from the checked-in `.did`
//! files (a new endpoint is fuzzed with no change here), from the rightful caller, a stranger,
//! the anonymous principal and the vault. Every answer is a reject naming the problem or a
//! reply of the declared type; a refusal changes nothing; an accepted request loses no snapshot
//! it did not ask to delete.
//!
//! `FUZZ_CASES` (default 600) sets the number of calls.

use candid::types::value::{IDLArgs, IDLField, IDLValue, VariantValue};
use candid::types::{Type, TypeEnv, TypeInner};
use candid::{Nat, Principal};
use ic_harness::IcBackend;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use vault_api::protocol::{BackupError, BackupInfo, methods};
use vault_api::service::methods as vault_methods;
use vault_tests::interface::{Answer, Interface};
use vault_tests::*;

/// What a call carries.
#[derive(Clone, Debug)]
enum Payload {
    Bytes(Vec<u8>),
    /// A candid value of the method's argument types, from this seed; or of another method's.
    Candid { seed: u64, other_method: bool },
}

/// Random candid values, biased towards what the canisters hold: their principals, small ids,
/// hash-sized blobs, limits.
struct Values<'a> {
    state: u64,
    env: &'a TypeEnv,
    principals: &'a [Principal],
}

impl Values<'_> {
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn number(&mut self) -> u64 {
        match self.below(6) {
            0 => 0,
            1 => u64::MAX,
            2 => 2 * 1024 * 1024,
            3 => self.next(),
            _ => self.below(20),
        }
    }

    fn bytes(&mut self) -> Vec<u8> {
        let len = match self.below(8) {
            0 => 32,
            1 => 0,
            2 if self.below(10) == 0 => 2 * 1024 * 1024 + 1,
            _ => self.below(100),
        };
        (0..len).map(|_| self.next() as u8).collect()
    }

    fn value(&mut self, ty: &Type, depth: u32) -> IDLValue {
        match ty.as_ref() {
            TypeInner::Var(name) => {
                let ty = self.env.rec_find_type(name).expect("a defined type").clone();
                self.value(&ty, depth)
            }
            TypeInner::Null => IDLValue::Null,
            TypeInner::Bool => IDLValue::Bool(self.below(2) == 0),
            TypeInner::Nat => IDLValue::Nat(Nat::from(self.number())),
            TypeInner::Int => IDLValue::Int((self.number() as i64).into()),
            TypeInner::Nat8 => IDLValue::Nat8(self.next() as u8),
            TypeInner::Nat16 => IDLValue::Nat16(self.next() as u16),
            TypeInner::Nat32 => IDLValue::Nat32(self.number() as u32),
            TypeInner::Nat64 => IDLValue::Nat64(self.number()),
            TypeInner::Int8 => IDLValue::Int8(self.next() as i8),
            TypeInner::Int16 => IDLValue::Int16(self.next() as i16),
            TypeInner::Int32 => IDLValue::Int32(self.number() as i32),
            TypeInner::Int64 => IDLValue::Int64(self.number() as i64),
            TypeInner::Float32 => IDLValue::Float32(self.next() as f32),
            TypeInner::Float64 => IDLValue::Float64(self.next() as f64),
            TypeInner::Text => IDLValue::Text((0..self.below(20)).map(|_| char::from(b' ' + self.below(95) as u8)).collect()),
            TypeInner::Reserved => IDLValue::Reserved,
            TypeInner::Principal => {
                if self.below(6) == 0 {
                    let bytes: Vec<u8> = (0..self.below(30)).map(|_| self.next() as u8).collect();
                    IDLValue::Principal(Principal::from_slice(&bytes))
                } else {
                    IDLValue::Principal(self.principals[self.below(self.principals.len() as u64) as usize])
                }
            }
            TypeInner::Opt(inner) => {
                if depth > 4 || self.below(3) == 0 { IDLValue::None } else { IDLValue::Opt(Box::new(self.value(inner, depth + 1))) }
            }
            TypeInner::Vec(inner) if matches!(inner.as_ref(), TypeInner::Nat8) => IDLValue::Blob(self.bytes()),
            TypeInner::Vec(inner) => {
                let n = if depth > 4 { 0 } else { self.below(4) };
                IDLValue::Vec((0..n).map(|_| self.value(inner, depth + 1)).collect())
            }
            TypeInner::Record(fields) => {
                IDLValue::Record(fields.iter().map(|f| IDLField { id: (*f.id).clone(), val: self.value(&f.ty, depth + 1) }).collect())
            }
            TypeInner::Variant(fields) => {
                let index = self.below(fields.len() as u64);
                let field = &fields[index as usize];
                IDLValue::Variant(VariantValue(Box::new(IDLField { id: (*field.id).clone(), val: self.value(&field.ty, depth + 1) }), index))
            }
            other => panic!("no generator for {other:?}"),
        }
    }
}

/// One fuzzed canister: its interface and who may call it.
struct Target {
    canister: Principal,
    interface: Interface,
}

struct Fuzz {
    env: Env,
    notes: Principal,
    ledger: Principal,
    targets: Vec<Target>,
    callers: Vec<Principal>,
    principals: Vec<Principal>,
}

/// Requests whose acceptance may delete snapshots.
const DELETING: [&str; 3] = [vault_methods::DELETE_SNAPSHOT, vault_methods::UNREGISTER, vault_methods::UPDATE_SCHEDULE];

impl Fuzz {
    fn new() -> Fuzz {
        let env = Env::new();
        let notes = env.registered(AppKind::Notes, manual(), keep(5));
        let ledger = env.registered(AppKind::Ledger, manual(), keep(5));
        for n in PREFILL..PREFILL + 3 {
            AppKind::Notes.apply(&env.app(notes), n);
            AppKind::Ledger.apply(&env.app(ledger), n);
            env.snapshot(notes);
            env.snapshot(ledger);
        }
        let vault = env.vault;
        let targets = vec![
            Target { canister: vault, interface: Interface::vault() },
            Target { canister: notes, interface: Interface::backup() },
            Target { canister: ledger, interface: Interface::backup() },
        ];
        let callers = vec![owner(), stranger(), Principal::anonymous(), vault];
        let principals = vec![vault, notes, ledger, owner(), stranger(), Principal::anonymous(), Principal::management_canister()];
        Fuzz { env, notes, ledger, targets, callers, principals }
    }

    /// What a refused request must leave as it was. The stable-memory app's state is told by
    /// its update count here (hashing its whole image per call would be slow); its digest is
    /// compared once at the end.
    fn observed(&self) -> impl PartialEq + std::fmt::Debug + use<> {
        let vault = self.env.vault();
        let ledger = (vault.app_info(self.ledger).ok(), vault.list_snapshots(self.ledger).ok(), self.env.app(self.ledger).seq());
        let info: Result<(Result<BackupInfo, BackupError>,), _> = self.env.ic.query_candid(self.ledger, self.env.vault, methods::INFO, ());
        (self.env.observable(&[self.notes]), ledger, info.map(|r| r.0).map_err(|e| e.to_string()))
    }

    fn listed(&self) -> Vec<(Principal, u64)> {
        [self.notes, self.ledger]
            .iter()
            .flat_map(|&app| self.env.vault().list_snapshots(app).unwrap_or_default().into_iter().map(move |s| (app, s.id)))
            .collect()
    }

    fn payload(&self, target: &Target, method: usize, payload: &Payload) -> Vec<u8> {
        match payload {
            Payload::Bytes(bytes) => bytes.clone(),
            Payload::Candid { seed, other_method } => {
                let interface = &target.interface;
                let types = if *other_method {
                    &interface.methods[(*seed as usize) % interface.methods.len()].1.args
                } else {
                    &interface.methods[method].1.args
                };
                let mut values = Values { state: *seed, env: &interface.env, principals: &self.principals };
                let args: Vec<IDLValue> = types.iter().map(|t| values.value(t, 0)).collect();
                IDLArgs::new(&args).to_bytes_with_types(&interface.env, types).expect("a generated value encodes")
            }
        }
    }

    /// One call; `Ok(true)` if the canister accepted it.
    fn call(&self, target: &Target, method: usize, caller: Principal, payload: Vec<u8>) -> Result<bool, String> {
        let (name, func) = &target.interface.methods[method];
        let query = Interface::is_query(func);
        let result = if query {
            self.env.ic.query_call(target.canister, caller, name, payload)
        } else {
            self.env.ic.update_call(target.canister, caller, name, payload)
        };
        match result {
            Err(reject) => {
                ensure(!reject.reject_message.is_empty(), format!("{name}: a reject without a message"))?;
                Ok(false)
            }
            Ok(reply) => Ok(target.interface.answer(name, &reply)? == Answer::Ok),
        }
    }

    /// After an accepted request: its jobs end, and the setup is put back (both apps
    /// registered, each knowing the vault).
    fn restore_setup(&self) {
        for app in [self.notes, self.ledger] {
            if let Ok(jobs) = self.env.vault().list_jobs(app) {
                for job in jobs.iter().filter(|j| j.finished_at_nanos.is_none()) {
                    self.env.finish_job(job.id, 2_000);
                }
            }
            let _ = self.env.vault().register(app, manual(), keep(5));
            let _: (Result<(), BackupError>,) = self.env.app(app).update(methods::SET_VAULT, (self.env.vault,));
        }
    }
}

fn ensure(condition: bool, what: String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(what) }
}

fn payloads() -> impl Strategy<Value = Payload> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200).prop_map(Payload::Bytes),
        prop::collection::vec(any::<u8>(), 0..200).prop_map(|mut b| {
            let mut didl = b"DIDL".to_vec();
            didl.append(&mut b);
            Payload::Bytes(didl)
        }),
        (any::<u64>(), prop::bool::weighted(0.15)).prop_map(|(seed, other_method)| Payload::Candid { seed, other_method }),
        (any::<u64>(), Just(false)).prop_map(|(seed, other_method)| Payload::Candid { seed, other_method }),
    ]
}

#[test]
fn every_endpoint_refuses_arbitrary_input_cleanly_and_changes_nothing() {
    let fuzz = Fuzz::new();
    let ledger_digest = fuzz.env.app(fuzz.ledger).digest();
    let cases = std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(600);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let strategy = (0..fuzz.targets.len(), any::<prop::sample::Index>(), 0..fuzz.callers.len(), payloads());
    let accepted_restores = std::cell::Cell::new(0u32);
    let tally = std::cell::RefCell::new(std::collections::BTreeMap::<String, (u32, u32)>::new());
    runner
        .run(&strategy, |(target, method, caller, payload)| {
            let target = &fuzz.targets[target];
            let method = method.index(target.interface.methods.len());
            let name = target.interface.methods[method].0.clone();
            let caller = fuzz.callers[caller];
            let bytes = fuzz.payload(target, method, &payload);
            let (before, listed) = (fuzz.observed(), fuzz.listed());
            let accepted = fuzz.call(target, method, caller, bytes).map_err(TestCaseError::fail)?;
            let mut counts = tally.borrow_mut();
            let entry = counts.entry(name.clone()).or_default();
            if accepted {
                entry.1 += 1;
                fuzz.restore_setup();
                // A restore the vault accepted (and the setup's settling finished) or a commit
                // the app accepted may change the stable-memory app's state.
                if name == methods::RESTORE_COMMIT || name == vault_methods::RESTORE {
                    accepted_restores.set(accepted_restores.get() + 1);
                }
                if !DELETING.contains(&name.as_str()) {
                    let now = fuzz.listed();
                    let lost: Vec<_> = listed.iter().filter(|s| !now.contains(s)).collect();
                    prop_assert!(lost.is_empty(), "{name} as {caller} lost snapshots {lost:?}");
                }
            } else {
                entry.0 += 1;
                prop_assert_eq!(fuzz.observed(), before, "{} as {} refused but changed state", name, caller);
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    if accepted_restores.get() == 0 {
        assert_eq!(fuzz.env.app(fuzz.ledger).digest(), ledger_digest, "the stable-memory app's state changed");
    }
    for (method, (refused, accepted)) in tally.borrow().iter() {
        println!("{method}: {refused} refused, {accepted} accepted");
    }
}
