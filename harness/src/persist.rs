//! Saving an embedded IC to a directory and loading it back, so a command-line tool can run
//! one command per process against the same canisters.
//!
//! ```text
//! <dir>/world.msgpack            time, ids, settings and per-canister records (MessagePack)
//! <dir>/modules/<sha256>.wasm    each installed module, as installed
//! <dir>/modules/<sha256>.cwasm   its machine code, to skip compiling it again
//! <dir>/canisters/<id>.heap      a canister's wasm memory (its logical size)
//! <dir>/canisters/<id>.stable    its stable memory
//! <dir>/snapshots/<id>-<n>.wasm   a canister's snapshot number n: its module,
//! <dir>/snapshots/<id>-<n>.heap   its wasm memory
//! <dir>/snapshots/<id>-<n>.stable and its stable memory, each its length and the 4 KiB pages
//!                                 that are not zeros (MessagePack)
//! ```
//!
//! Only a quiet world is saved: no message queued or in flight, no call context open (a
//! canister's timer may be armed). [`crate::Harness::save`] runs rounds until then. Each
//! canister keeps its subnet; a world saved before there were subnets loads with one subnet
//! and every canister on it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candid::Principal;
use serde::{Deserialize, Serialize};
use wasmtime::Val;

use crate::canister::{self, CompiledModule, Instance, hex};
use crate::config::{CostTable, Limits};
use crate::logs::CanisterLog;
use crate::pages::StableMemory;
use crate::settings::{LowMemoryHook, Settings};
use crate::snapshots::{CanisterSnapshot, SnapshotBytes};
use crate::subnets::{SubnetId, XNet};
use crate::types::LogRecord;
use crate::world::{CanisterMetrics, CanisterState, Status, Traffic, World};

const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct SavedWorld {
    format: u32,
    time: u64,
    last_round_time: u64,
    next_canister_index: u64,
    next_message: u64,
    rounds: u64,
    #[serde(default = "one_subnet")]
    subnets: u32,
    #[serde(default)]
    xnet: XNet,
    limits: Limits,
    costs: CostTable,
    traffic: Traffic,
    canisters: Vec<SavedCanister>,
}

fn one_subnet() -> u32 {
    1
}

#[derive(Serialize, Deserialize)]
enum SavedVal {
    I32(i32),
    I64(i64),
    F32(u32),
    F64(u64),
}

#[derive(Serialize, Deserialize)]
struct SavedCanister {
    id: Principal,
    #[serde(default)]
    subnet: SubnetId,
    controllers: Vec<Principal>,
    stopped: bool,
    cycles: u128,
    settings: Settings,
    module: Option<String>,
    globals: Vec<SavedVal>,
    next_id: u64,
    global_timer: u64,
    version: u64,
    certified_data: Vec<u8>,
    logs: Vec<LogRecord>,
    next_log: u64,
    #[serde(default)]
    log_buffer: CanisterLog,
    #[serde(default)]
    low_memory_hook: LowMemoryHook,
    /// Candid `vec change`.
    history: Vec<u8>,
    total_changes: u64,
    metrics: CanisterMetrics,
    #[serde(default)]
    snapshots: Vec<SavedSnapshot>,
    #[serde(default)]
    next_snapshot: u64,
}

/// A canister snapshot's record; its module and memories are files of their own, written at
/// every save (a file of that name may be another world's).
#[derive(Serialize, Deserialize)]
struct SavedSnapshot {
    number: u64,
    uploaded: bool,
    taken_at: u64,
    canister_version: u64,
    globals: Vec<SavedVal>,
    certified_data: Vec<u8>,
    global_timer: u64,
    low_memory_hook: LowMemoryHook,
}

/// Writes `module` among the modules once; its name.
fn save_module(modules: &Path, module: &CompiledModule) -> Result<String, PersistError> {
    let name = hex(&module.hash);
    let path = modules.join(format!("{name}.wasm"));
    if !path.exists() {
        write(&path, &module.wasm)?;
    }
    Ok(name)
}

fn load_module(modules: &Path, name: &str) -> Result<Arc<CompiledModule>, PersistError> {
    let wasm = read(&modules.join(format!("{name}.wasm")))?;
    canister::compile_with_disk_cache(&wasm, Some(modules)).map_err(|e| PersistError::Format(e.to_string()))
}

fn saved_globals(values: &[Val]) -> Vec<SavedVal> {
    values
        .iter()
        .map(|v| match *v {
            Val::I32(x) => SavedVal::I32(x),
            Val::I64(x) => SavedVal::I64(x),
            Val::F32(x) => SavedVal::F32(x),
            Val::F64(x) => SavedVal::F64(x),
            ref other => panic!("a mutable global holding {other:?} cannot be saved"),
        })
        .collect()
}

fn loaded_globals(saved: &[SavedVal]) -> Vec<Val> {
    saved
        .iter()
        .map(|v| match *v {
            SavedVal::I32(x) => Val::I32(x),
            SavedVal::I64(x) => Val::I64(x),
            SavedVal::F32(x) => Val::F32(x),
            SavedVal::F64(x) => Val::F64(x),
        })
        .collect()
}

/// Why a world could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the world did not quiet down: {0}")]
    Busy(String),
    #[error("{0}")]
    Format(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PersistError + '_ {
    move |source| PersistError::Io { path: path.to_path_buf(), source }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    std::fs::write(path, bytes).map_err(io(path))
}

fn read(path: &Path) -> Result<Vec<u8>, PersistError> {
    std::fs::read(path).map_err(io(path))
}

/// A file and its length.
fn open(path: &Path) -> Result<(std::fs::File, u64), PersistError> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let len = file.metadata().map_err(io(path))?.len();
    Ok((file, len))
}

impl World {
    /// Whether nothing is queued or in flight.
    pub fn is_quiet(&self) -> Result<(), String> {
        if !self.management_queue.is_empty() {
            return Err("management requests are queued".into());
        }
        if !self.streams.is_empty() {
            return Err("messages are in flight between subnets".into());
        }
        for c in self.canisters.values() {
            if !c.queue.is_empty() || !c.call_contexts.is_empty() || !c.callbacks.is_empty() {
                return Err(format!("canister {} has messages in flight", c.id));
            }
            if matches!(c.status, Status::Stopping(_)) {
                return Err(format!("canister {} is stopping", c.id));
            }
        }
        Ok(())
    }

    /// Writes this (quiet) world into `dir`.
    pub(crate) fn save(&mut self, dir: &Path) -> Result<(), PersistError> {
        self.is_quiet().map_err(PersistError::Busy)?;
        let modules = dir.join("modules");
        let canisters_dir = dir.join("canisters");
        let snapshots_dir = dir.join("snapshots");
        for d in [dir, &modules, &canisters_dir, &snapshots_dir] {
            std::fs::create_dir_all(d).map_err(io(d))?;
        }
        let mut canisters = Vec::new();
        let mut snapshot_files = std::collections::BTreeSet::new();
        for c in self.canisters.values_mut() {
            let (module, globals) = match &mut c.instance {
                Some(instance) => {
                    let name = save_module(&modules, instance.module())?;
                    write(&canisters_dir.join(format!("{}.heap", c.id)), instance.heap())?;
                    write(&canisters_dir.join(format!("{}.stable", c.id)), instance.stable().contents())?;
                    (Some(name), saved_globals(&instance.globals()))
                }
                None => (None, Vec::new()),
            };
            let mut snapshots = Vec::new();
            for (&number, snapshot) in &c.snapshots {
                for (kind, bytes) in [("wasm", &snapshot.wasm), ("heap", &snapshot.heap), ("stable", &snapshot.stable)] {
                    let file = format!("{}-{number}.{kind}", c.id);
                    write(&snapshots_dir.join(&file), &rmp_serde::to_vec(bytes).map_err(|e| PersistError::Format(e.to_string()))?)?;
                    snapshot_files.insert(file);
                }
                snapshots.push(SavedSnapshot {
                    number,
                    uploaded: snapshot.uploaded,
                    taken_at: snapshot.taken_at,
                    canister_version: snapshot.canister_version,
                    globals: saved_globals(&snapshot.globals),
                    certified_data: snapshot.certified_data.clone(),
                    global_timer: snapshot.global_timer,
                    low_memory_hook: snapshot.low_memory_hook,
                });
            }
            canisters.push(SavedCanister {
                id: c.id,
                subnet: c.subnet,
                controllers: c.controllers.clone(),
                stopped: c.status == Status::Stopped,
                cycles: c.cycles,
                settings: c.settings.clone(),
                module,
                globals,
                next_id: c.next_id,
                global_timer: c.global_timer,
                version: c.version,
                certified_data: c.certified_data.clone(),
                logs: c.logs.clone(),
                next_log: c.next_log,
                log_buffer: c.log_buffer.clone(),
                low_memory_hook: c.low_memory_hook,
                history: candid::encode_one(&c.history).expect("a history encodes"),
                total_changes: c.total_changes,
                metrics: c.metrics.clone(),
                snapshots,
                next_snapshot: c.next_snapshot,
            });
        }
        let saved = SavedWorld {
            format: FORMAT_VERSION,
            time: self.time,
            last_round_time: self.last_round_time,
            next_canister_index: self.next_canister_index,
            next_message: self.next_message,
            rounds: self.rounds,
            subnets: self.subnets,
            xnet: self.xnet,
            limits: self.limits.clone(),
            costs: self.costs.clone(),
            traffic: self.traffic.clone(),
            canisters,
        };
        let bytes = rmp_serde::to_vec_named(&saved).map_err(|e| PersistError::Format(e.to_string()))?;
        // Written last and atomically: a world file names only memories already written.
        let tmp = dir.join("world.msgpack.tmp");
        write(&tmp, &bytes)?;
        std::fs::rename(&tmp, dir.join("world.msgpack")).map_err(io(dir))?;
        // Then the files of snapshots deleted since the last save go.
        for entry in std::fs::read_dir(&snapshots_dir).map_err(io(&snapshots_dir))? {
            let path = entry.map_err(io(&snapshots_dir))?.path();
            if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| !snapshot_files.contains(n)) {
                std::fs::remove_file(&path).map_err(io(&path))?;
            }
        }
        Ok(())
    }

    /// Reads a world saved in `dir`.
    pub(crate) fn load(dir: &Path) -> Result<World, PersistError> {
        let saved: SavedWorld = rmp_serde::from_slice(&read(&dir.join("world.msgpack"))?)
            .map_err(|e| PersistError::Format(format!("{}: {e}", dir.display())))?;
        if saved.format != FORMAT_VERSION {
            return Err(PersistError::Format(format!("world format {} is not supported", saved.format)));
        }
        let mut world = World::new(saved.limits, saved.costs, saved.time);
        world.last_round_time = saved.last_round_time;
        world.next_canister_index = saved.next_canister_index;
        world.next_message = saved.next_message;
        world.rounds = saved.rounds;
        world.subnets = saved.subnets;
        world.xnet = saved.xnet;
        world.traffic = saved.traffic;
        let modules = dir.join("modules");
        let mut canisters = BTreeMap::new();
        for s in saved.canisters {
            if s.subnet.0 >= world.subnets {
                return Err(PersistError::Format(format!("canister {} is on subnet {} of {}", s.id, s.subnet.0, world.subnets)));
            }
            let mut c = CanisterState::new(s.id, s.subnet, s.controllers, s.cycles, s.settings);
            if let Some(name) = &s.module {
                let module = load_module(&modules, name)?;
                let mut stable = StableMemory::new(world.limits.stable_memory_bytes).map_err(io(dir))?;
                // Memories are read from their files straight into place, with no copy on the way.
                let (mut file, len) = open(&dir.join("canisters").join(format!("{}.stable", s.id)))?;
                stable.load_contents(&mut file, len).map_err(PersistError::Format)?;
                let mut instance = Instance::new(module, stable).map_err(|e| PersistError::Format(e.0.display.clone()))?;
                let (mut heap, heap_len) = open(&dir.join("canisters").join(format!("{}.heap", s.id)))?;
                instance.restore(&mut heap, heap_len, &loaded_globals(&s.globals)).map_err(PersistError::Format)?;
                c.instance = Some(instance);
            }
            for saved in &s.snapshots {
                let memory = |kind: &str| -> Result<SnapshotBytes, PersistError> {
                    let path = dir.join("snapshots").join(format!("{}-{}.{kind}", s.id, saved.number));
                    let bytes: SnapshotBytes = rmp_serde::from_slice(&read(&path)?).map_err(|e| PersistError::Format(format!("{}: {e}", path.display())))?;
                    bytes.is_well_formed().then_some(bytes).ok_or_else(|| PersistError::Format(format!("{}: pages outside the memory", path.display())))
                };
                let wasm = memory("wasm")?;
                let module = wasm.to_vec();
                let compile = || canister::compile_with_disk_cache(&module, Some(&modules)).map_err(|e| PersistError::Format(e.to_string()));
                let snapshot = CanisterSnapshot {
                    uploaded: saved.uploaded,
                    taken_at: saved.taken_at,
                    canister_version: saved.canister_version,
                    compiled: if saved.uploaded { None } else { Some(compile()?) },
                    wasm,
                    heap: memory("heap")?,
                    stable: memory("stable")?,
                    globals: loaded_globals(&saved.globals),
                    certified_data: saved.certified_data.clone(),
                    global_timer: saved.global_timer,
                    low_memory_hook: saved.low_memory_hook,
                };
                c.snapshots.insert(saved.number, snapshot);
            }
            c.next_snapshot = s.next_snapshot;
            c.status = if s.stopped { Status::Stopped } else { Status::Running };
            c.next_id = s.next_id;
            c.global_timer = s.global_timer;
            c.version = s.version;
            c.certified_data = s.certified_data;
            c.logs = s.logs;
            c.next_log = s.next_log;
            c.log_buffer = s.log_buffer;
            c.low_memory_hook = s.low_memory_hook;
            c.history = candid::decode_one(&s.history).map_err(|e| PersistError::Format(e.to_string()))?;
            c.total_changes = s.total_changes;
            c.metrics = s.metrics;
            canisters.insert(s.id, c);
        }
        world.canisters = canisters;
        Ok(world)
    }
}
