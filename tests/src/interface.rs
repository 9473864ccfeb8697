//! The canisters' interfaces as their checked-in `.did` files declare them: every method with
//! its types, and what a reply of the declared type answered. Tests that enumerate the methods
//! from here cover a new one with no change.

use std::path::{Path, PathBuf};

use candid::types::value::{IDLArgs, IDLValue, VariantValue};
use candid::types::{FuncMode, Function, Label, TypeEnv};
use candid_parser::utils::CandidSource;

/// A service's methods with their types, from its `.did` file, in the file's order.
pub struct Interface {
    pub env: TypeEnv,
    pub methods: Vec<(String, Function)>,
}

/// What a reply of a method's declared `Result` type answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Ok,
    /// The error, by its variant's name (`NotAController`, `UnknownJob`, ...).
    Err(String),
}

/// A file of the workspace, by its path from the workspace's root.
pub fn workspace_file(path: &str) -> PathBuf {
    ic_harness::build::workspace_root().join(path)
}

impl Interface {
    /// Panics on a file that is not a candid service: the checked-in files are.
    pub fn load(did: &Path) -> Interface {
        let (env, actor) = CandidSource::File(did).load().unwrap_or_else(|e| panic!("{}: {e}", did.display()));
        let actor = actor.unwrap_or_else(|| panic!("{}: no service", did.display()));
        let methods = env
            .as_service(&actor)
            .unwrap_or_else(|e| panic!("{}: {e}", did.display()))
            .iter()
            .map(|(name, ty)| (name.clone(), env.as_func(ty).unwrap_or_else(|e| panic!("{}: {name}: {e}", did.display())).clone()))
            .collect();
        Interface { env, methods }
    }

    /// The vault's service (`vault/vault.did`).
    pub fn vault() -> Interface {
        Interface::load(&workspace_file("vault/vault.did"))
    }

    /// The backup endpoints the client library gives an app (`client-lib/backup.did`).
    pub fn backup() -> Interface {
        Interface::load(&workspace_file("client-lib/backup.did"))
    }

    pub fn method(&self, name: &str) -> Option<&Function> {
        self.methods.iter().find(|(n, _)| n == name).map(|(_, f)| f)
    }

    pub fn is_query(func: &Function) -> bool {
        func.modes.iter().any(|m| matches!(m, FuncMode::Query | FuncMode::CompositeQuery))
    }

    /// What `reply` to `method` answered: an error if it is not of the method's declared type,
    /// or not a `variant { Ok; Err }`.
    pub fn answer(&self, method: &str, reply: &[u8]) -> Result<Answer, String> {
        let func = self.method(method).ok_or_else(|| format!("{method} is not a method of the interface"))?;
        let decoded = IDLArgs::from_bytes_with_types(reply, &self.env, &func.rets)
            .map_err(|e| format!("{method}: the reply is not of the declared type: {e}"))?;
        let is = |label: &Label, name: &str| label.get_id() == Label::Named(name.into()).get_id();
        match decoded.args.first() {
            Some(IDLValue::Variant(VariantValue(field, _))) if is(&field.id, "Ok") => Ok(Answer::Ok),
            Some(IDLValue::Variant(VariantValue(field, _))) if is(&field.id, "Err") => match &field.val {
                IDLValue::Variant(VariantValue(error, _)) => Ok(Answer::Err(match &error.id {
                    Label::Named(name) => name.clone(),
                    other => other.to_string(),
                })),
                other => Err(format!("{method}: an error that is not a variant: {other:?}")),
            },
            other => Err(format!("{method}: a reply that is neither Ok nor Err: {other:?}")),
        }
    }
}
