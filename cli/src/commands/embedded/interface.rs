//! A canister's candid interface, from its module's `candid:service` metadata or a `.did` file:
//! candid text arguments encoded with the types a method (or the module's init) takes, and
//! replies decoded with the names its results give, as `dfx` and `icp` do. Without one,
//! arguments go with the types their text shows and replies show hashed field names.

use std::path::{Path, PathBuf};

use candid::types::{FuncMode, Function, Type};
use candid::{IDLArgs, TypeEnv};
use candid_parser::utils::CandidSource;

use crate::output::CliError;

/// The metadata a module's interface is in (`icp:public candid:service` or
/// `icp:private candid:service`).
pub const CANDID_SERVICE: &str = "candid:service";

/// The init (or post_upgrade) argument of a module, flattened into `deploy` and `upgrade`.
#[derive(clap::Args, Debug)]
pub struct InitArgOpt {
    /// The argument, in candid text (e.g. `(opt principal "aaaaa-aa")`), typed by the
    /// module's interface when it has one; none by default.
    #[arg(long, requires = "wasm", conflicts_with = "arg_file")]
    pub arg: Option<String>,
    /// The argument's candid text, read from this file (for one too long for a command line).
    #[arg(long, value_name = "FILE", requires = "wasm")]
    pub arg_file: Option<PathBuf>,
    /// The module's candid interface, when it carries no `candid:service` metadata.
    #[arg(long, value_name = "FILE", requires = "wasm")]
    pub candid: Option<PathBuf>,
}

impl InitArgOpt {
    /// The argument's candid text: `--arg`, the file of `--arg-file`, or none (`()`).
    pub fn text(&self) -> Result<String, CliError> {
        match (&self.arg, &self.arg_file) {
            (Some(text), _) => Ok(text.clone()),
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| CliError::Invalid(format!("reading {}: {e}", path.display()))),
            (None, None) => Ok("()".into()),
        }
    }

    /// The argument for `module`, encoded with the types of the interface's init (`service :
    /// (ARGS) -> ...`) where `--candid` or the module's metadata gives them.
    pub fn encode(&self, module: &[u8]) -> Result<Vec<u8>, CliError> {
        let interface = Interface::of(self.candid.as_deref(), ic_harness::module_metadata(module, CANDID_SERVICE))?;
        let types = interface.as_ref().and_then(Interface::init);
        let what = "the init argument";
        encode(parse(&self.text()?, what)?, types, what)
    }
}

/// A service's types and methods.
pub struct Interface {
    env: TypeEnv,
    service: Type,
    /// Where it was read, for messages.
    source: String,
}

/// Types of a list of arguments or of results, in the environment that names them.
#[derive(Clone, Copy)]
pub struct Types<'a> {
    env: &'a TypeEnv,
    types: &'a [Type],
}

/// A method of an [`Interface`].
pub struct Method<'a> {
    env: &'a TypeEnv,
    function: &'a Function,
}

impl Method<'_> {
    pub fn args(&self) -> Types<'_> {
        Types { env: self.env, types: &self.function.args }
    }

    pub fn results(&self) -> Types<'_> {
        Types { env: self.env, types: &self.function.rets }
    }

    /// A query (or composite query) method, which `dfx` calls as a query.
    pub fn is_query(&self) -> bool {
        self.function.modes.iter().any(|m| matches!(m, FuncMode::Query | FuncMode::CompositeQuery))
    }
}

impl Interface {
    /// The interface in the `.did` file at `candid` if given, else in `metadata` (a module's
    /// `candid:service`); `None` if neither is given.
    pub fn of(candid: Option<&Path>, metadata: Option<Vec<u8>>) -> Result<Option<Self>, CliError> {
        match (candid, metadata) {
            (Some(path), _) => Self::load(CandidSource::File(path), path.display().to_string()).map(Some),
            (None, Some(bytes)) => {
                let text = String::from_utf8(bytes)
                    .map_err(|_| CliError::Invalid("the module's candid:service metadata is not UTF-8 text".into()))?;
                Self::load(CandidSource::Text(&text), "the module's candid:service metadata".into()).map(Some)
            }
            (None, None) => Ok(None),
        }
    }

    fn load(candid: CandidSource, source: String) -> Result<Self, CliError> {
        let (env, service) = candid.load().map_err(|e| CliError::Invalid(format!("{source} is not a candid interface: {e}")))?;
        let service = service.ok_or_else(|| CliError::Invalid(format!("{source} declares no service")))?;
        let interface = Interface { env, service, source };
        interface.methods()?;
        Ok(interface)
    }

    /// Its methods and their types, in its order.
    fn methods(&self) -> Result<&[(String, Type)], CliError> {
        self.env.as_service(&self.service).map_err(|e| CliError::Invalid(format!("{}: {e}", self.source)))
    }

    /// Its method `name`, or an error that lists the methods it has.
    pub fn method(&self, name: &str) -> Result<Method<'_>, CliError> {
        let methods = self.methods()?;
        let Some((_, method)) = methods.iter().find(|(method, _)| method == name) else {
            let names: Vec<&str> = methods.iter().map(|(method, _)| method.as_str()).collect();
            return Err(CliError::Invalid(format!(
                "the interface ({}) has no method `{name}`; its methods: {}",
                self.source,
                names.join(", ")
            )));
        };
        let function = self.env.as_func(method).map_err(|e| CliError::Invalid(format!("{}: method `{name}`: {e}", self.source)))?;
        Ok(Method { env: &self.env, function })
    }

    /// The types of the service's init arguments, if it declares them (`service : (ARGS) -> {...}`).
    pub fn init(&self) -> Option<Types<'_>> {
        match self.service.as_ref() {
            candid::types::TypeInner::Class(args, _) => Some(Types { env: &self.env, types: args }),
            _ => None,
        }
    }
}

fn list(types: &[Type]) -> String {
    format!("({})", types.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
}

/// Candid text, as arguments (`what` names them in the error).
pub fn parse(text: &str, what: &str) -> Result<IDLArgs, CliError> {
    candid_parser::parse_idl_args(text).map_err(|e| CliError::Invalid(format!("{what} is not candid: {e}")))
}

/// Arguments encoded as `types`, where known: `(1)` is a `nat64` where one is taken, omitted
/// trailing `opt` arguments are `null`. Else with the types their text shows.
pub fn encode(args: IDLArgs, types: Option<Types>, what: &str) -> Result<Vec<u8>, CliError> {
    match types {
        None => args.to_bytes().map_err(|e| CliError::Invalid(format!("{what} does not encode: {e}"))),
        Some(Types { env, types }) => {
            if args.args.len() > types.len() {
                return Err(CliError::Invalid(format!("{what} has {} values, but the interface takes {}", args.args.len(), list(types))));
            }
            args.annotate_types(true, env, types)
                .and_then(|typed| typed.to_bytes_with_types(env, types))
                .map_err(|e| CliError::Invalid(format!("{what} does not match the interface's types {}: {e}", list(types))))
        }
    }
}

/// A reply, decoded with the names and types of `types` where known.
pub fn decode(reply: &[u8], types: Option<Types>) -> Result<IDLArgs, CliError> {
    match types {
        None => IDLArgs::from_bytes(reply).map_err(|e| CliError::Invalid(format!("the reply is not candid: {e}"))),
        Some(Types { env, types }) => IDLArgs::from_bytes_with_types(reply, env, types).map_err(|e| {
            let untyped = IDLArgs::from_bytes(reply).map_or_else(|_| "not candid".to_string(), |args| args.to_string());
            CliError::Invalid(format!("the reply does not match the interface's results {}: {e}; it is {untyped}", list(types)))
        }),
    }
}
