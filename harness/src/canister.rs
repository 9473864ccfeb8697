//! A canister module compiled once, and an instance of it that runs one execution at a time
//! and either commits it or rolls it back.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine, Global, Linker, Module, OptLevel, Store, Table, Val};

use crate::instrument::{self, PAGE_SIZE};
use crate::pages::{SizeMark, StableMemory, WASM_PAGE_SIZE, zero_pages};
use crate::system_api::{self, ApiContext, Execution, Handles, Heap, Help, HostTrap, SysApi};
use crate::types::ErrorCode;

/// Why a module cannot be installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleError {
    #[error("Wasm module is invalid: {0}")]
    Invalid(String),
    #[error("Wasm module imports `{module}.{name}`, which the harness does not implement")]
    UnknownImport { module: String, name: String },
}

/// What a module exports and holds, read once at compile time.
#[derive(Debug)]
pub struct ModuleInfo {
    pub mutable_globals: Vec<u32>,
    pub exports: BTreeSet<String>,
}

/// A compiled canister module, shared by every canister that runs it.
pub struct CompiledModule {
    pub(crate) module: Module,
    /// SHA-256 of the module as installed (the IC's module hash).
    pub(crate) hash: [u8; 32],
    /// The module as installed.
    pub(crate) wasm: Arc<[u8]>,
    pub(crate) info: ModuleInfo,
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.wasm_multi_memory(true);
        config.wasm_backtrace_max_frames(None);
        config.cranelift_opt_level(OptLevel::Speed);
        Engine::new(&config).expect("the harness's wasmtime configuration is valid")
    })
}

/// The linker of the host functions, and their `(module, name)`s.
struct Host {
    linker: Linker<SysApi>,
    names: HashSet<(String, String)>,
}

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let mut linker = Linker::new(engine());
        system_api::link(&mut linker).expect("host functions have distinct names");
        let probe = StableMemory::new(0).expect("an empty reservation");
        let mut store = Store::new(
            engine(),
            SysApi { stable: probe, heap: Heap::default(), handles: None, exec: Execution::default() },
        );
        let names = linker.iter(&mut store).map(|(m, n, _)| (m.to_string(), n.to_string())).collect();
        Host { linker, names }
    })
}

/// Names of every host function, as `(module, name)`.
pub fn host_functions() -> &'static HashSet<(String, String)> {
    &host().names
}

/// Compiles `wasm` (plain or gzip-compressed), or returns the cached module of the same bytes.
pub fn compile(wasm: &[u8]) -> Result<Arc<CompiledModule>, ModuleError> {
    compile_with_disk_cache(wasm, None)
}

/// As [`compile`], also keeping the machine code in `disk_cache` (a directory), so another
/// process skips the compilation.
pub fn compile_with_disk_cache(wasm: &[u8], disk_cache: Option<&std::path::Path>) -> Result<Arc<CompiledModule>, ModuleError> {
    static CACHE: OnceLock<Mutex<HashMap<[u8; 32], Arc<CompiledModule>>>> = OnceLock::new();
    let hash: [u8; 32] = Sha256::digest(wasm).into();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(module) = cache.lock().expect("cache lock").get(&hash) {
        return Ok(module.clone());
    }
    let compiled = Arc::new(compile_uncached(wasm, hash, disk_cache)?);
    cache.lock().expect("cache lock").insert(hash, compiled.clone());
    Ok(compiled)
}

fn compile_uncached(wasm: &[u8], hash: [u8; 32], disk_cache: Option<&std::path::Path>) -> Result<CompiledModule, ModuleError> {
    let installed: Arc<[u8]> = wasm.into();
    let decompressed;
    let wasm = if wasm.starts_with(&[0x1f, 0x8b]) {
        decompressed = gunzip(wasm)?;
        &decompressed[..]
    } else {
        wasm
    };
    let rewritten = instrument::instrument(wasm).map_err(|e| ModuleError::Invalid(e.to_string()))?;
    for (module, name) in &rewritten.function_imports {
        if !host_functions().contains(&(module.clone(), name.clone())) {
            return Err(ModuleError::UnknownImport { module: module.clone(), name: name.clone() });
        }
    }
    let cached = disk_cache.map(|dir| dir.join(format!("{}.cwasm", hex(&hash))));
    // SAFETY: the file is machine code this function wrote for this engine configuration;
    // wasmtime checks that it was made by the same version and settings.
    let from_disk = cached.as_ref().and_then(|path| unsafe { Module::deserialize_file(engine(), path) }.ok());
    let module = match from_disk {
        Some(module) => module,
        None => {
            let module = Module::new(engine(), &rewritten.wasm).map_err(|e| ModuleError::Invalid(format!("{e:#}")))?;
            if let (Some(path), Ok(bytes)) = (&cached, module.serialize()) {
                let _ = std::fs::write(path, bytes);
            }
            module
        }
    };
    host().linker.instantiate_pre(&module).map_err(|e| ModuleError::Invalid(format!("{e:#}")))?;
    Ok(CompiledModule {
        module,
        hash,
        wasm: installed,
        info: ModuleInfo {
            mutable_globals: rewritten.mutable_globals,
            exports: rewritten.function_exports.into_iter().collect(),
        },
    })
}

/// The 4 KiB `pages` of `memory`, one after another.
fn copy_pages(memory: &[u8], pages: &[u64]) -> Vec<u8> {
    let mut data = Vec::with_capacity(pages.len() * PAGE_SIZE);
    for &page in pages {
        let start = page as usize * PAGE_SIZE;
        data.extend_from_slice(&memory[start..start + PAGE_SIZE]);
    }
    data
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, ModuleError> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| ModuleError::Invalid(format!("gzip: {e}")))?;
    Ok(out)
}

/// Where an execution starts.
#[derive(Clone, Copy, Debug)]
pub enum Entry<'a> {
    /// An exported function such as `canister_update foo`.
    Export(&'a str),
    /// A callback by table index, called with its environment.
    Callback { fun: u32, env: u32 },
}

/// Why an execution failed, as the replica reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecError {
    pub code: ErrorCode,
    /// The error itself, e.g. "Canister trapped: unreachable".
    pub display: String,
    pub help: Help,
}

impl ExecError {
    /// The replica's user-facing text: `Error from Canister <id>: <display>.\n<help>`.
    pub fn user_message(&self, canister: &candid::Principal) -> String {
        let help = self.help.text();
        if help.is_empty() {
            format!("Error from Canister {canister}: {}", self.display)
        } else {
            format!("Error from Canister {canister}: {}.\n{help}", self.display)
        }
    }

    /// This error, after the cleanup callback that followed it failed with `cleanup`.
    pub fn with_failed_cleanup(&self, canister: &candid::Principal, cleanup: &ExecError) -> ExecError {
        ExecError {
            code: self.code,
            display: format!("{}\n\ncall_on_cleanup also failed:\n\n{}", self.user_message(canister), cleanup.user_message(canister)),
            help: Help::None,
        }
    }

    /// The record the IC adds to the canister's log for this error: `[TRAP]: ` and the
    /// message of a Wasm trap or of `ic0.trap` (`(no message)` if empty); other errors add
    /// none. The message is the part of `display` after the replica's prefix for either.
    pub fn canister_log_line(&self) -> Option<Vec<u8>> {
        let message = match self.code {
            ErrorCode::CanisterTrapped => self.display.strip_prefix("Canister trapped: ")?,
            ErrorCode::CanisterCalledTrap => self.display.strip_prefix("Canister called `ic0.trap` with message: '")?.strip_suffix('\'')?,
            _ => return None,
        };
        let message = if message.is_empty() { "(no message)" } else { message };
        Some(format!("[TRAP]: {message}").into_bytes())
    }

    fn from_error(err: wasmtime::Error) -> Self {
        if let Some(trap) = err.downcast_ref::<HostTrap>() {
            return ExecError { code: trap.error_code(), display: trap.to_string(), help: trap.help() };
        }
        let what = match err.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::StackOverflow) => "stack overflow",
            Some(wasmtime::Trap::MemoryOutOfBounds) => "heap out of bounds",
            Some(wasmtime::Trap::TableOutOfBounds) => "table out of bounds",
            Some(wasmtime::Trap::IntegerDivisionByZero) => "integer division by 0",
            Some(wasmtime::Trap::UnreachableCodeReached) => "unreachable",
            _ => "unknown",
        };
        ExecError { code: ErrorCode::CanisterTrapped, display: format!("Canister trapped: {what}"), help: Help::Trapped }
    }
}

/// The result of one execution.
#[derive(Debug)]
pub struct Outcome {
    pub exec: Execution,
    pub instructions: u64,
    pub result: Result<(), ExecError>,
    /// Set when the execution was rolled back.
    pub rollback: Option<Rollback>,
}

/// What a rollback undid and what it took.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rollback {
    /// 4 KiB pages the execution had written (heap and stable memory).
    pub pages: usize,
    pub nanos: u64,
}

/// The changes an instance holds uncommitted, copied out so that they can be put back after
/// a rollback: a composite query's call context keeps them while the canister runs another
/// call context on its committed state (a call back into it), or a cleanup on the state from
/// before a callback that trapped.
pub struct PendingChanges {
    heap_pages: Vec<u64>,
    heap_data: Vec<u8>,
    /// The heap's logical size, in wasm pages.
    heap_size: u64,
    globals: Vec<Val>,
    stable_pages: Vec<u64>,
    stable_data: Vec<u8>,
    /// The stable memory's size, in wasm pages.
    stable_size: u64,
}

/// A running instance of a canister module.
pub struct Instance {
    store: Store<SysApi>,
    instance: wasmtime::Instance,
    module: Arc<CompiledModule>,
    globals: Vec<Global>,
    saved_globals: Vec<Val>,
    table: Option<Table>,
    handles: Handles,
}

impl Instance {
    /// Instantiates `module` over `stable` (kept as it is, open journal included). Runs the
    /// module's start function, if any.
    pub fn new(module: Arc<CompiledModule>, stable: StableMemory) -> Result<Self, Box<(ExecError, StableMemory)>> {
        let limit_pages = crate::config::MAX_WASM_MEMORY / WASM_PAGE_SIZE;
        let exec = Execution { context: ApiContext::Start, ..Execution::default() };
        let mut store = Store::new(
            engine(),
            SysApi { stable, heap: Heap { limit_pages, ..Heap::default() }, handles: None, exec },
        );
        let instance = match host().linker.instantiate(&mut store, &module.module) {
            Ok(instance) => instance,
            Err(e) => return Err(Box::new((ExecError::from_error(e), store.into_data().stable))),
        };
        let memory = instance.get_memory(&mut store, instrument::MEMORY_EXPORT);
        let handles = Handles {
            memory,
            bitmap: instance.get_memory(&mut store, instrument::BITMAP_EXPORT).expect("added by the rewrite"),
            counter: instance.get_global(&mut store, instrument::COUNTER_EXPORT).expect("added by the rewrite"),
        };
        let globals = module
            .info
            .mutable_globals
            .iter()
            .map(|&g| instance.get_global(&mut store, &instrument::global_export(g)).expect("exported by the rewrite"))
            .collect();
        let table = instance.get_table(&mut store, instrument::TABLE_EXPORT);
        let data = store.data_mut();
        data.handles = Some(handles);
        let mut this = Instance { store, instance, module, globals, saved_globals: Vec::new(), table, handles };
        let pages = memory.map_or(0, |m| m.size(&this.store));
        this.store.data_mut().heap.logical_pages = pages;
        // Writes of the start function are the initial state.
        this.commit_heap();
        this.store.data_mut().heap.mark = SizeMark::new(pages);
        Ok(this)
    }

    pub fn module(&self) -> &Arc<CompiledModule> {
        &self.module
    }

    pub fn exports(&self, name: &str) -> bool {
        self.module.info.exports.contains(name)
    }

    /// Gives back the stable memory (for an upgrade or uninstall).
    pub fn into_stable(self) -> StableMemory {
        self.store.into_data().stable
    }

    /// Takes the stable memory out, leaving an empty one, to hand it to the next module.
    pub fn take_stable(&mut self) -> StableMemory {
        let empty = StableMemory::new(0).expect("an empty reservation");
        std::mem::replace(&mut self.store.data_mut().stable, empty)
    }

    pub fn put_stable(&mut self, stable: StableMemory) {
        self.store.data_mut().stable = stable;
    }

    pub fn stable(&self) -> &StableMemory {
        &self.store.data().stable
    }

    pub fn stable_mut(&mut self) -> &mut StableMemory {
        &mut self.store.data_mut().stable
    }

    /// The values of the module's mutable globals.
    pub fn globals(&mut self) -> Vec<Val> {
        self.globals.iter().map(|g| g.get(&mut self.store)).collect()
    }

    /// Puts back a heap and globals saved from an instance of the same module (outside any
    /// execution).
    pub fn restore(&mut self, heap: &mut impl std::io::Read, heap_len: u64, globals: &[Val]) -> Result<(), String> {
        let pages = heap_len / WASM_PAGE_SIZE;
        if let Some(memory) = self.handles.memory {
            let physical = memory.size(&self.store);
            if pages > physical {
                memory.grow(&mut self.store, pages - physical).map_err(|e| format!("growing the heap: {e}"))?;
            }
            heap.read_exact(&mut memory.data_mut(&mut self.store)[..heap_len as usize]).map_err(|e| format!("reading the heap: {e}"))?;
            let data = self.store.data_mut();
            data.heap.logical_pages = pages;
            data.heap.mark = SizeMark::new(pages);
        }
        if globals.len() != self.globals.len() {
            return Err(format!("{} globals saved for a module with {}", globals.len(), self.globals.len()));
        }
        for (global, value) in self.globals.iter().zip(globals) {
            global.set(&mut self.store, *value).map_err(|e| format!("setting a global: {e}"))?;
        }
        Ok(())
    }

    /// Bytes of the heap (its logical size).
    pub fn heap_bytes(&self) -> u64 {
        self.store.data().heap.logical_pages * WASM_PAGE_SIZE
    }

    /// The heap's contents.
    pub fn heap(&self) -> &[u8] {
        let len = self.heap_bytes() as usize;
        self.handles.memory.map_or(&[][..], |m| &m.data(&self.store)[..len])
    }

    /// Runs `entry` and commits its changes, or rolls them back if it trapped.
    pub fn run(&mut self, entry: Entry, exec: Execution, budget: u64) -> Outcome {
        let mut outcome = self.run_uncommitted(entry, exec, budget);
        if outcome.result.is_ok() {
            self.commit();
        } else {
            outcome.rollback = Some(self.roll_back());
        }
        outcome
    }

    /// Runs `entry` with `budget` instructions and leaves its changes pending: the caller
    /// must [`Self::commit`] or [`Self::roll_back`]. The journals accumulate until then, so
    /// several executions (pre_upgrade, then post_upgrade) form one atomic unit.
    pub fn run_uncommitted(&mut self, entry: Entry, exec: Execution, budget: u64) -> Outcome {
        if self.saved_globals.is_empty() {
            self.saved_globals = self.globals.iter().map(|g| g.get(&mut self.store)).collect();
        }
        let data = self.store.data_mut();
        data.exec = exec;
        let counter_start = budget.min(i64::MAX as u64) as i64;
        self.handles.counter.set(&mut self.store, Val::I64(counter_start)).expect("counter is a mutable i64");
        let result = match entry {
            Entry::Export(name) => self
                .instance
                .get_typed_func::<(), ()>(&mut self.store, name)
                .and_then(|f| f.call(&mut self.store, ())),
            Entry::Callback { fun, env } => self.call_callback(fun, env),
        };
        let left = self.handles.counter.get(&mut self.store).unwrap_i64();
        let instructions = counter_start.saturating_sub(left.max(0)) as u64;
        let exec = std::mem::take(&mut self.store.data_mut().exec);
        Outcome { exec, instructions, result: result.map_err(ExecError::from_error), rollback: None }
    }

    fn call_callback(&mut self, fun: u32, env: u32) -> wasmtime::Result<()> {
        let table = self.table.ok_or_else(|| wasmtime::Error::new(wasmtime::Trap::TableOutOfBounds))?;
        let func = table
            .get(&mut self.store, u64::from(fun))
            .and_then(|r| r.as_func().flatten().copied())
            .ok_or_else(|| wasmtime::Error::new(wasmtime::Trap::TableOutOfBounds))?;
        func.typed::<i32, ()>(&self.store)?.call(&mut self.store, env as i32)
    }

    /// Keeps the pending changes.
    pub fn commit(&mut self) {
        self.commit_heap();
        let data = self.store.data_mut();
        data.stable.commit();
        self.saved_globals.clear();
    }

    fn commit_heap(&mut self) {
        self.clear_bitmap();
        let heap = &mut self.store.data_mut().heap;
        heap.journal.forget();
        heap.mark = SizeMark::new(heap.logical_pages);
    }

    /// Undoes the pending changes: heap pages, heap size, globals and stable memory.
    pub fn roll_back(&mut self) -> Rollback {
        let started = std::time::Instant::now();
        let pages = self.store.data().heap.journal.touched_count() + self.store.data().stable.dirty_pages();
        self.clear_bitmap();
        if let Some(memory) = self.handles.memory {
            let (bytes, data) = memory.data_and_store_mut(&mut self.store);
            let heap = &mut data.heap;
            heap.journal.roll_back(bytes);
            let added = heap.mark.added_bytes();
            zero_pages(&mut bytes[added]);
            heap.logical_pages = heap.mark.at_start;
            heap.mark = SizeMark::new(heap.logical_pages);
        }
        self.store.data_mut().stable.roll_back();
        let saved = std::mem::take(&mut self.saved_globals);
        for (global, value) in self.globals.iter().zip(saved) {
            global.set(&mut self.store, value).expect("restoring a global's own value");
        }
        Rollback { pages, nanos: started.elapsed().as_nanos() as u64 }
    }

    /// A copy of the pending changes: the pages written since the last commit as they are now,
    /// the memory sizes and the globals.
    pub fn pending_changes(&mut self) -> PendingChanges {
        let globals = self.globals();
        let data = self.store.data();
        let heap_pages = data.heap.journal.touched().to_vec();
        let heap = self.handles.memory.map_or(&[][..], |m| m.data(&self.store));
        let heap_data = copy_pages(heap, &heap_pages);
        let stable_pages = data.stable.touched_pages().to_vec();
        let stable_data = copy_pages(data.stable.contents(), &stable_pages);
        PendingChanges {
            heap_pages,
            heap_data,
            heap_size: data.heap.logical_pages,
            globals,
            stable_pages,
            stable_data,
            stable_size: data.stable.size(),
        }
    }

    /// Puts back changes [`Self::pending_changes`] copied, as pending changes over the
    /// committed state (after a [`Self::roll_back`]): a later rollback undoes them again.
    pub fn reapply(&mut self, changes: &PendingChanges) {
        if self.saved_globals.is_empty() {
            self.saved_globals = self.globals();
        }
        for (global, value) in self.globals.iter().zip(&changes.globals) {
            global.set(&mut self.store, *value).expect("a global's own value, saved before");
        }
        if let Some(memory) = self.handles.memory {
            let physical = memory.size(&self.store);
            if changes.heap_size > physical {
                memory.grow(&mut self.store, changes.heap_size - physical).expect("the heap had this size before the rollback");
            }
            let (bytes, api) = memory.data_and_store_mut(&mut self.store);
            let heap = &mut api.heap;
            heap.logical_pages = heap.logical_pages.max(changes.heap_size);
            heap.mark.peak = heap.mark.peak.max(changes.heap_size);
            let fresh_from = heap.mark.fresh_from();
            for (page, contents) in changes.heap_pages.iter().zip(changes.heap_data.chunks_exact(PAGE_SIZE)) {
                heap.journal.touch(*page, bytes, fresh_from);
                let start = *page as usize * PAGE_SIZE;
                bytes[start..start + PAGE_SIZE].copy_from_slice(contents);
            }
            let bitmap = self.handles.bitmap;
            let (bits, api) = bitmap.data_and_store_mut(&mut self.store);
            for &page in api.heap.journal.touched() {
                if let Some(bit) = bits.get_mut(page as usize) {
                    *bit = 1;
                }
            }
        }
        let stable = &mut self.store.data_mut().stable;
        if changes.stable_size > stable.size() {
            stable.grow(changes.stable_size - stable.size()).expect("the stable memory had this size before the rollback");
        }
        for (page, contents) in changes.stable_pages.iter().zip(changes.stable_data.chunks_exact(PAGE_SIZE)) {
            let offset = page * PAGE_SIZE as u64;
            stable.journal_range(offset, PAGE_SIZE as u64);
            stable.write_journaled(offset, contents);
        }
    }

    fn clear_bitmap(&mut self) {
        let bitmap = self.handles.bitmap;
        let (bits, data) = bitmap.data_and_store_mut(&mut self.store);
        for &page in data.heap.journal.touched() {
            if let Some(bit) = bits.get_mut(page as usize) {
                *bit = 0;
            }
        }
    }
}
