//! The module rewrite that runs before a canister module is compiled.
//!
//! A plain wasm module gives the embedder no way to count the IC's instructions, to undo a
//! trapped message's heap writes at the cost of what it touched, or to call a callback by its
//! table index. The rewrite adds exactly that, and nothing that changes what the canister computes:
//!
//! - **Instruction counter.** An exported mutable `i64` global holds the instructions left in
//!   the message. Every straight-line run of code subtracts its cost (the IC's cost table,
//!   [`instruction_cost`], SIMD included) when it starts, and each function entry one more, as
//!   on the IC; function entries and loop headers then check the counter and call the host's
//!   `out_of_instructions` when it went negative. `memory.copy`, `memory.fill` and
//!   `memory.init` also pay one instruction per byte, as on the IC. The injected code itself is
//!   free. This is the IC's count, not wasmtime's fuel (one per operator).
//! - **Heap write journal.** Before each store, the page it lands in is looked up in a dirty
//!   bitmap kept in a second memory; on the first store of the message to a page the host's
//!   `journal_page` saves the page (and the next one: a store never spans more than two pages)
//!   so a trap can put it back. Bulk writes journal their whole destination range.
//! - **Memory size.** `memory.grow` and `memory.size` go through the host, which keeps a
//!   logical size that a rollback can shrink again (a wasm memory itself cannot shrink).
//! - **Exports** of the function table (callbacks are invoked through it), of memory 0, and of
//!   every mutable global (restored after a trap).

use wasm_encoder::reencode::{self, Reencode};
use wasm_encoder::{
    BlockType, CodeSection, ConstExpr, EntityType, ExportKind, ExportSection, Function,
    FunctionSection, GlobalSection, GlobalType, ImportSection, Instruction, MemArg, MemorySection,
    MemoryType, Module, TypeSection, ValType,
};
use wasmparser::{Operator, Parser, Payload, TypeRef, Validator, WasmFeatures};

/// Host import module of the functions the rewrite calls.
pub const HOST_MODULE: &str = "__harness";
/// `(page: i32) -> ()`: save page `page` and `page + 1` before their first write.
pub const JOURNAL_PAGE: &str = "journal_page";
/// `() -> ()`: the instruction counter went negative.
pub const OUT_OF_INSTRUCTIONS: &str = "out_of_instructions";
/// `(delta_pages: i32) -> i32`: `memory.grow` of memory 0.
pub const MEMORY_GROW: &str = "memory_grow";
/// `() -> i32`: `memory.size` of memory 0.
pub const MEMORY_SIZE: &str = "memory_size";

/// Export of the instruction counter global (`i64`, instructions left).
pub const COUNTER_EXPORT: &str = "__harness_instructions_left";
/// Export of the dirty-page bitmap memory (one byte per 4 KiB page of memory 0).
pub const BITMAP_EXPORT: &str = "__harness_dirty_bitmap";
/// Export of table 0.
pub const TABLE_EXPORT: &str = "__harness_table";
/// Export of memory 0.
pub const MEMORY_EXPORT: &str = "__harness_memory";

/// Export name of the module's mutable global with index `index`.
pub fn global_export(index: u32) -> String {
    format!("__harness_global_{index}")
}

/// The IC's page: the unit of dirty tracking, journaling and the dirty-page limits.
pub const PAGE_SIZE: usize = 4096;
/// Pages of a 4 GiB memory 0: the bitmap has one byte for each.
pub const MAX_HEAP_PAGES: usize = 1 << 20;
const WASM_PAGE: u64 = 65536;
/// A store whose static offset is below this, plus its at most 16 bytes, stays within the page
/// of its base address and the next one.
const SAME_OR_NEXT_PAGE_OFFSET: u64 = (PAGE_SIZE - 16) as u64;
/// Cost charged by the IC for the fixed part of `memory.copy`/`fill`/`init`.
const BULK_MEMORY_BASE_COST: u64 = 100;
/// Cost charged by the IC on entering a function, besides its code.
const FUNCTION_ENTRY_COST: u64 = 1;

/// Why a module cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum InstrumentError {
    #[error("Wasm module is invalid: {0}")]
    Invalid(String),
    #[error("Wasm module is not supported: {0}")]
    Unsupported(String),
}

impl From<wasmparser::BinaryReaderError> for InstrumentError {
    fn from(e: wasmparser::BinaryReaderError) -> Self {
        InstrumentError::Invalid(e.to_string())
    }
}

impl<E: std::fmt::Display> From<reencode::Error<E>> for InstrumentError {
    fn from(e: reencode::Error<E>) -> Self {
        match e {
            reencode::Error::ParseError(e) => InstrumentError::Invalid(e.to_string()),
            other => InstrumentError::Invalid(other.to_string()),
        }
    }
}

/// The rewritten module and what the host needs to know of it.
#[derive(Debug)]
pub struct Instrumented {
    pub wasm: Vec<u8>,
    /// Indices of the module's own mutable globals, exported with [`global_export`].
    pub mutable_globals: Vec<u32>,
    /// `(module, name)` of every function import of the original module.
    pub function_imports: Vec<(String, String)>,
    /// Names of the original module's function exports.
    pub function_exports: Vec<String>,
}

/// The wasm features the harness accepts: those of wasmtime's defaults that the IC accepts.
pub fn features() -> WasmFeatures {
    WasmFeatures::MUTABLE_GLOBAL
        | WasmFeatures::SATURATING_FLOAT_TO_INT
        | WasmFeatures::SIGN_EXTENSION
        | WasmFeatures::MULTI_VALUE
        | WasmFeatures::BULK_MEMORY
        | WasmFeatures::REFERENCE_TYPES
        | WasmFeatures::SIMD
        | WasmFeatures::FLOATS
        | WasmFeatures::CALL_INDIRECT_OVERLONG
        | WasmFeatures::BULK_MEMORY_OPT
}

/// Cost of one operator in the IC's instruction count for a wasm32 module
/// (rs/embedders/src/wasm_utils/instrumentation.rs, `instruction_to_cost`), SIMD included.
pub fn instruction_cost(op: &Operator) -> u64 {
    use Operator::*;
    match op {
        Block { .. } | Loop { .. } | Else | End => 0,

        GlobalGet { .. } | GlobalSet { .. } | If { .. } | Br { .. } | BrIf { .. } | BrTable { .. } => 2,
        F32Add | F32Sub | F32Mul | F32Ceil | F32Floor | F32Trunc | F32Nearest | F32Copysign | F64Add | F64Sub | F64Mul
        | F64Ceil | F64Floor | F64Trunc | F64Nearest => 2,
        F32Div | F64Copysign | ReturnCall { .. } => 3,
        F32Eq | F32Ne | F32Lt | F32Gt | F32Le | F32Ge | F64Eq | F64Ne | F64Lt | F64Gt | F64Le | F64Ge => 3,
        F32ConvertI32S | F32ConvertI64S | F64ConvertI32S | F64ConvertI64S => 3,
        F64Div | F32Sqrt | Call { .. } | TableGet { .. } | TableSet { .. } | RefIsNull => 5,
        F64Sqrt => 8,
        I32DivS | I32DivU | I32RemS | I32RemU | I64DivS | I64DivU | I64RemS | I64RemU | CallIndirect { .. } => 10,
        F32ConvertI32U | F32ConvertI64U | F64ConvertI32U | F64ConvertI64U => 16,
        F32Min | F32Max | F64Min | F64Max => 18,
        I32TruncF32S | I32TruncF32U | I32TruncF64S | I32TruncF64U | I64TruncF32S | I64TruncF32U | I64TruncF64S
        | I64TruncF64U | I32TruncSatF32S | I32TruncSatF32U | I32TruncSatF64S | I32TruncSatF64U | I64TruncSatF32S
        | I64TruncSatF32U | I64TruncSatF64S | I64TruncSatF64U | MemorySize { .. } => 20,
        ReturnCallIndirect { .. } => 60,
        TableSize { .. } => 100,
        MemoryCopy { .. } | MemoryFill { .. } | MemoryInit { .. } | TableCopy { .. } | TableFill { .. }
        | TableInit { .. } => BULK_MEMORY_BASE_COST,
        RefFunc { .. } => 130,
        MemoryGrow { .. } | TableGrow { .. } | DataDrop { .. } | ElemDrop { .. } => 300,

        // SIMD: loads, stores, lane and bit operations, integer add and sub cost 1 (the default).
        I8x16LtU | I8x16GtU | I16x8LtU | I16x8GtU | I32x4LtU | I32x4GtU => 2,
        I8x16ShrU | I16x8Shl | I16x8ShrS | I16x8ShrU | I32x4Shl | I32x4ShrS | I32x4ShrU | I64x2Shl | I64x2ShrU => 2,
        I16x8ExtAddPairwiseI8x16U | I16x8ExtMulHighI8x16S | I16x8ExtMulHighI8x16U | I32x4Mul | I32x4ExtMulLowI16x8S
        | I32x4ExtMulHighI16x8S | I32x4ExtMulLowI16x8U | I32x4ExtMulHighI16x8U => 2,
        F32x4Ceil | F32x4Floor | F32x4Trunc | F32x4Nearest | F32x4Abs | F32x4Neg | F32x4Add | F32x4Sub | F32x4Mul
        | F64x2Ceil | F64x2Floor | F64x2Trunc | F64x2Nearest | F64x2Abs | F64x2Neg | F64x2Add | F64x2Sub | F64x2Mul => 2,
        I32x4TruncSatF32x4S | I32x4TruncSatF64x2SZero => 2,
        I8x16Shuffle { .. } | I8x16Popcnt | I8x16Shl | I8x16ShrS | I32x4ExtAddPairwiseI16x8U | I64x2ShrS
        | I32x4TruncSatF64x2UZero => 3,
        I64x2Mul | F32x4Min | F32x4Max | F64x2Min | I32x4TruncSatF32x4U | F32x4ConvertI32x4U => 4,
        F32x4Sqrt | F64x2Max => 5,
        F32x4Div => 10,
        F64x2Div => 12,
        F64x2Sqrt => 14,

        _ => 1,
    }
}

/// Function indices after the rewrite: the host imports are appended to the original imports,
/// which shifts every function the module defines.
struct Remap {
    imported_functions: u32,
    added_imports: u32,
}

impl Reencode for Remap {
    type Error = std::convert::Infallible;

    fn function_index(&mut self, func: u32) -> Result<u32, reencode::Error<Self::Error>> {
        Ok(if func < self.imported_functions { func } else { func + self.added_imports })
    }
}

/// Indices of what the rewrite adds, as seen from the rewritten code.
#[derive(Clone, Copy)]
struct Added {
    journal_page: u32,
    out_of_instructions: u32,
    memory_grow: u32,
    memory_size: u32,
    journal_range: u32,
    counter: u32,
    bitmap: u32,
}

/// The sections of a parsed module, each borrowed from the input bytes.
#[derive(Default)]
struct ParsedSections<'a> {
    types: Option<wasmparser::TypeSectionReader<'a>>,
    imports: Option<wasmparser::ImportSectionReader<'a>>,
    functions: Option<wasmparser::FunctionSectionReader<'a>>,
    tables: Option<wasmparser::TableSectionReader<'a>>,
    memories: Option<wasmparser::MemorySectionReader<'a>>,
    globals: Option<wasmparser::GlobalSectionReader<'a>>,
    exports: Option<wasmparser::ExportSectionReader<'a>>,
    start: Option<u32>,
    elements: Option<wasmparser::ElementSectionReader<'a>>,
    data_count: Option<u32>,
    bodies: Vec<wasmparser::FunctionBody<'a>>,
    data: Option<wasmparser::DataSectionReader<'a>>,
    customs: Vec<wasmparser::CustomSectionReader<'a>>,
}

impl<'a> ParsedSections<'a> {
    fn parse(wasm: &'a [u8]) -> Result<Self, InstrumentError> {
        let mut s = ParsedSections::default();
        for payload in Parser::new(0).parse_all(wasm) {
            match payload? {
                Payload::Version { .. } | Payload::End(_) | Payload::CodeSectionStart { .. } => {}
                Payload::TypeSection(r) => s.types = Some(r),
                Payload::ImportSection(r) => s.imports = Some(r),
                Payload::FunctionSection(r) => s.functions = Some(r),
                Payload::TableSection(r) => s.tables = Some(r),
                Payload::MemorySection(r) => s.memories = Some(r),
                Payload::GlobalSection(r) => s.globals = Some(r),
                Payload::ExportSection(r) => s.exports = Some(r),
                Payload::StartSection { func, .. } => s.start = Some(func),
                Payload::ElementSection(r) => s.elements = Some(r),
                Payload::DataCountSection { count, .. } => s.data_count = Some(count),
                Payload::CodeSectionEntry(body) => s.bodies.push(body),
                Payload::DataSection(r) => s.data = Some(r),
                Payload::CustomSection(r) => s.customs.push(r),
                other => {
                    let id = other.as_section().map(|(id, _)| id);
                    return Err(InstrumentError::Unsupported(format!("section with id {id:?}")));
                }
            }
        }
        Ok(s)
    }
}

/// Rewrites `wasm` as the module doc describes. The module is validated first.
pub fn instrument(wasm: &[u8]) -> Result<Instrumented, InstrumentError> {
    Validator::new_with_features(features())
        .validate_all(wasm)
        .map_err(|e| InstrumentError::Invalid(e.to_string()))?;
    let sections = ParsedSections::parse(wasm)?;

    // What the module has, to lay out the indices of the additions.
    let mut types: Vec<wasmparser::FuncType> = Vec::new();
    if let Some(r) = sections.types.clone() {
        for ty in r.into_iter_err_on_gc_types() {
            types.push(ty?);
        }
    }
    let mut func_type_of: Vec<u32> = Vec::new(); // imported, then defined functions
    let mut function_imports = Vec::new();
    let mut global_count = 0u32;
    let mut tables = 0u32;
    if let Some(r) = sections.imports.clone() {
        for import in r.into_imports() {
            let import = import?;
            match import.ty {
                TypeRef::Func(t) => {
                    func_type_of.push(t);
                    function_imports.push((import.module.to_string(), import.name.to_string()));
                }
                TypeRef::Global(_) => global_count += 1,
                TypeRef::Table(_) => tables += 1,
                TypeRef::Memory(_) => {
                    return Err(InstrumentError::Unsupported(
                        "a canister module must define its memory, not import it".into(),
                    ));
                }
                other => return Err(InstrumentError::Unsupported(format!("import of {other:?}"))),
            }
        }
    }
    let imported_functions = function_imports.len() as u32;
    if let Some(r) = sections.functions.clone() {
        for t in r {
            func_type_of.push(t?);
        }
    }
    let defined_functions = func_type_of.len() as u32 - imported_functions;
    tables += sections.tables.as_ref().map_or(0, |r| r.count());
    let mut memories = 0u32;
    if let Some(r) = sections.memories.clone() {
        for memory in r {
            if memory?.memory64 {
                return Err(InstrumentError::Unsupported("64-bit memories".into()));
            }
            memories += 1;
        }
    }
    if memories > 1 {
        return Err(InstrumentError::Unsupported("more than one memory".into()));
    }
    let mut mutable_globals = Vec::new();
    if let Some(r) = sections.globals.clone() {
        for global in r {
            if global?.ty.mutable {
                mutable_globals.push(global_count);
            }
            global_count += 1;
        }
    }
    let mut function_exports = Vec::new();
    if let Some(r) = sections.exports.clone() {
        for export in r {
            let export = export?;
            if export.kind == wasmparser::ExternalKind::Func {
                function_exports.push(export.name.to_string());
            }
        }
    }
    const ADDED_IMPORTS: u32 = 4;
    let new_type = types.len() as u32;
    let added = Added {
        journal_page: imported_functions,
        out_of_instructions: imported_functions + 1,
        memory_grow: imported_functions + 2,
        memory_size: imported_functions + 3,
        journal_range: imported_functions + ADDED_IMPORTS + defined_functions,
        counter: global_count,
        bitmap: memories,
    };
    let mut remap = Remap { imported_functions, added_imports: ADDED_IMPORTS };
    let mut module = Module::new();

    let mut s = TypeSection::new();
    if let Some(r) = sections.types {
        remap.parse_type_section(&mut s, r)?;
    }
    s.ty().function([ValType::I32], []);
    s.ty().function([], []);
    s.ty().function([ValType::I32], [ValType::I32]);
    s.ty().function([], [ValType::I32]);
    s.ty().function([ValType::I32, ValType::I32], []);
    module.section(&s);

    let mut s = ImportSection::new();
    if let Some(r) = sections.imports {
        remap.parse_import_section(&mut s, r)?;
    }
    s.import(HOST_MODULE, JOURNAL_PAGE, EntityType::Function(new_type));
    s.import(HOST_MODULE, OUT_OF_INSTRUCTIONS, EntityType::Function(new_type + 1));
    s.import(HOST_MODULE, MEMORY_GROW, EntityType::Function(new_type + 2));
    s.import(HOST_MODULE, MEMORY_SIZE, EntityType::Function(new_type + 3));
    module.section(&s);

    let mut s = FunctionSection::new();
    if let Some(r) = sections.functions {
        remap.parse_function_section(&mut s, r)?;
    }
    s.function(new_type + 4);
    module.section(&s);

    if let Some(r) = sections.tables {
        let mut s = wasm_encoder::TableSection::new();
        remap.parse_table_section(&mut s, r)?;
        module.section(&s);
    }

    let mut s = MemorySection::new();
    if let Some(r) = sections.memories {
        remap.parse_memory_section(&mut s, r)?;
    }
    // One byte per page of a 4 GiB memory, and one more so `page + 1` of the last page is in
    // range for the host.
    let bitmap_pages = (MAX_HEAP_PAGES as u64 + 1).div_ceil(WASM_PAGE);
    s.memory(MemoryType {
        minimum: bitmap_pages,
        maximum: Some(bitmap_pages),
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    module.section(&s);

    let mut s = GlobalSection::new();
    if let Some(r) = sections.globals {
        remap.parse_global_section(&mut s, r)?;
    }
    // Unlimited until the host sets it: the start function runs at instantiation.
    s.global(GlobalType { val_type: ValType::I64, mutable: true, shared: false }, &ConstExpr::i64_const(i64::MAX));
    module.section(&s);

    let mut s = ExportSection::new();
    if let Some(r) = sections.exports {
        remap.parse_export_section(&mut s, r)?;
    }
    s.export(COUNTER_EXPORT, ExportKind::Global, added.counter);
    s.export(BITMAP_EXPORT, ExportKind::Memory, added.bitmap);
    if tables > 0 {
        s.export(TABLE_EXPORT, ExportKind::Table, 0);
    }
    if memories > 0 {
        s.export(MEMORY_EXPORT, ExportKind::Memory, 0);
    }
    for &g in &mutable_globals {
        s.export(&global_export(g), ExportKind::Global, g);
    }
    module.section(&s);

    if let Some(func) = sections.start {
        module.section(&wasm_encoder::StartSection { function_index: remap.function_index(func)? });
    }
    if let Some(r) = sections.elements {
        let mut s = wasm_encoder::ElementSection::new();
        remap.parse_element_section(&mut s, r)?;
        module.section(&s);
    }
    if let Some(count) = sections.data_count {
        module.section(&wasm_encoder::DataCountSection { count });
    }

    let mut s = CodeSection::new();
    for (i, body) in sections.bodies.iter().enumerate() {
        let type_index = func_type_of[imported_functions as usize + i];
        let params = types[type_index as usize].params().len() as u32;
        s.function(&rewrite_body(&mut remap, body, params, &added)?);
    }
    s.function(&journal_range_body(&added));
    module.section(&s);

    if let Some(r) = sections.data {
        let mut s = wasm_encoder::DataSection::new();
        remap.parse_data_section(&mut s, r)?;
        module.section(&s);
    }
    for custom in sections.customs {
        if custom.name() == "name" {
            // Function names shift with the added imports; a name section that does not
            // re-encode is dropped (it only serves backtraces).
            if let wasmparser::KnownCustom::Name(names) = custom.as_known()
                && let Ok(s) = remap.custom_name_section(names)
            {
                module.section(&s);
            }
        } else {
            remap.parse_custom_section(&mut module, custom)?;
        }
    }

    Ok(Instrumented {
        wasm: module.finish(),
        mutable_globals,
        function_imports,
        function_exports,
    })
}

fn bitmap_arg(added: &Added) -> MemArg {
    MemArg { offset: 0, align: 0, memory_index: added.bitmap }
}

/// Instructions that subtract `cost` from the counter and, with `check`, call
/// `out_of_instructions` when it went negative.
fn charge(out: &mut Vec<Instruction<'static>>, added: &Added, cost: u64, check: bool) {
    if cost > 0 {
        out.extend([
            Instruction::GlobalGet(added.counter),
            Instruction::I64Const(cost as i64),
            Instruction::I64Sub,
            Instruction::GlobalSet(added.counter),
        ]);
    }
    if check {
        out.extend([
            Instruction::GlobalGet(added.counter),
            Instruction::I64Const(0),
            Instruction::I64LtS,
            Instruction::If(BlockType::Empty),
            Instruction::Call(added.out_of_instructions),
            Instruction::End,
        ]);
    }
}

/// `(dst: i32, len: i32)`: charges `len` instructions and journals the pages of `dst..dst+len`.
fn journal_range_body(added: &Added) -> Function {
    // Params 0 dst, 1 len; locals 2 page, 3 last.
    let (dst, len, page, last) = (0, 1, 2, 3);
    let mut f = Function::new([(2, ValType::I32)]);
    let mut body = vec![
        Instruction::GlobalGet(added.counter),
        Instruction::LocalGet(len),
        Instruction::I64ExtendI32U,
        Instruction::I64Sub,
        Instruction::GlobalSet(added.counter),
    ];
    charge(&mut body, added, 0, true);
    body.extend([
        Instruction::LocalGet(len),
        Instruction::I32Eqz,
        Instruction::If(BlockType::Empty),
        Instruction::Return,
        Instruction::End,
        Instruction::LocalGet(dst),
        Instruction::I32Const(12),
        Instruction::I32ShrU,
        Instruction::LocalSet(page),
        // last = min((dst + len - 1) >> 12, MAX_HEAP_PAGES - 1), in 64 bits against overflow
        Instruction::LocalGet(dst),
        Instruction::I64ExtendI32U,
        Instruction::LocalGet(len),
        Instruction::I64ExtendI32U,
        Instruction::I64Add,
        Instruction::I64Const(1),
        Instruction::I64Sub,
        Instruction::I64Const(12),
        Instruction::I64ShrU,
        Instruction::I32WrapI64,
        Instruction::LocalTee(last),
        Instruction::I32Const(MAX_HEAP_PAGES as i32 - 1),
        Instruction::LocalGet(last),
        Instruction::I32Const(MAX_HEAP_PAGES as i32 - 1),
        Instruction::I32LtU,
        Instruction::Select,
        Instruction::LocalSet(last),
        Instruction::Loop(BlockType::Empty),
        Instruction::LocalGet(page),
        Instruction::I32Load8U(bitmap_arg(added)),
        Instruction::I32Eqz,
        Instruction::If(BlockType::Empty),
        Instruction::LocalGet(page),
        Instruction::Call(added.journal_page),
        Instruction::End,
        Instruction::LocalGet(page),
        Instruction::I32Const(1),
        Instruction::I32Add,
        Instruction::LocalTee(page),
        Instruction::LocalGet(last),
        Instruction::I32LeU,
        Instruction::BrIf(0),
        Instruction::End,
        Instruction::End,
    ]);
    for i in &body {
        f.instruction(i);
    }
    f
}

/// Scratch locals appended to a function for the injected code.
struct Scratch {
    addr: u32,
    page: u32,
    len: u32,
    src: u32,
    value_i32: u32,
    value_i64: u32,
    value_f32: u32,
    value_f64: u32,
    value_v128: u32,
}

/// The value type a store takes, or `None` for operators that do not store to memory 0.
fn stored_type<'o>(op: &'o Operator) -> Option<(ValType, &'o wasmparser::MemArg)> {
    use Operator::*;
    Some(match op {
        I32Store { memarg } | I32Store8 { memarg } | I32Store16 { memarg } => (ValType::I32, memarg),
        I64Store { memarg } | I64Store8 { memarg } | I64Store16 { memarg } | I64Store32 { memarg } => {
            (ValType::I64, memarg)
        }
        F32Store { memarg } => (ValType::F32, memarg),
        F64Store { memarg } => (ValType::F64, memarg),
        V128Store { memarg }
        | V128Store8Lane { memarg, .. }
        | V128Store16Lane { memarg, .. }
        | V128Store32Lane { memarg, .. }
        | V128Store64Lane { memarg, .. } => (ValType::V128, memarg),
        _ => return None,
    })
}

/// How an operator ends or starts a straight-line run of code.
enum Boundary {
    /// Part of the current run.
    None,
    /// Ends the run after itself (branches, and constructs whose body is a new run).
    After,
    /// A branch target: the run ends before it and a new one starts after it.
    Before,
    /// A loop header: like `Before`, and the new run checks the counter.
    LoopHeader,
}

fn boundary(op: &Operator) -> Boundary {
    use Operator::*;
    match op {
        Loop { .. } => Boundary::LoopHeader,
        Else | End | Catch { .. } | CatchAll | Delegate { .. } => Boundary::Before,
        Block { .. } | If { .. } | Br { .. } | BrIf { .. } | BrTable { .. } | Return | Unreachable
        | Try { .. } | TryTable { .. } | Throw { .. } | ThrowRef | Rethrow { .. } | ReturnCall { .. }
        | ReturnCallIndirect { .. } | BrOnNull { .. } | BrOnNonNull { .. } => Boundary::After,
        _ => Boundary::None,
    }
}

fn rewrite_body(
    remap: &mut Remap,
    body: &wasmparser::FunctionBody,
    params: u32,
    added: &Added,
) -> Result<Function, InstrumentError> {
    let mut locals = Vec::new();
    let mut declared = 0u32;
    for pair in body.get_locals_reader()? {
        let (count, ty) = pair?;
        declared += count;
        locals.push((count, remap.val_type(ty)?));
    }
    let base = params + declared;
    let scratch = Scratch {
        addr: base,
        page: base + 1,
        len: base + 2,
        src: base + 3,
        value_i32: base + 4,
        value_i64: base + 5,
        value_f32: base + 6,
        value_f64: base + 7,
        value_v128: base + 8,
    };
    locals.extend([
        (5, ValType::I32),
        (1, ValType::I64),
        (1, ValType::F32),
        (1, ValType::F64),
        (1, ValType::V128),
    ]);
    let mut f = Function::new(locals);

    // The IC charges a function's entry one instruction, so that even an empty one costs.
    let mut w = RunWriter { added: *added, out: Vec::new(), run: Vec::new(), cost: FUNCTION_ENTRY_COST, check: true };
    let mut reader = body.get_operators_reader()?;
    while !reader.eof() {
        let op = reader.read()?;
        let cost = instruction_cost(&op);
        match boundary(&op) {
            Boundary::LoopHeader => {
                w.flush();
                w.out.push(remap.instruction(op)?);
                w.check = true;
                continue;
            }
            Boundary::Before => {
                w.flush();
                w.out.push(remap.instruction(op)?);
                continue;
            }
            Boundary::After => {
                w.cost += cost;
                w.run.push(remap.instruction(op)?);
                w.flush();
                continue;
            }
            Boundary::None => {}
        }
        w.cost += cost;
        if let Some((ty, memarg)) = stored_type(&op) {
            if memarg.memory == 0 {
                journal_store(&mut w.run, &scratch, added, ty, memarg.offset);
            }
            w.run.push(remap.instruction(op)?);
            continue;
        }
        match op {
            Operator::MemoryGrow { mem: 0 } => w.run.push(Instruction::Call(added.memory_grow)),
            Operator::MemorySize { mem: 0 } => w.run.push(Instruction::Call(added.memory_size)),
            Operator::MemoryCopy { dst_mem: 0, .. } | Operator::MemoryFill { mem: 0 }
            | Operator::MemoryInit { mem: 0, .. } => {
                // Stack: [dst, src|value|segment offset, len]; journal dst..dst+len first.
                w.run.extend([
                    Instruction::LocalSet(scratch.len),
                    Instruction::LocalSet(scratch.src),
                    Instruction::LocalTee(scratch.addr),
                    Instruction::LocalGet(scratch.len),
                    Instruction::Call(added.journal_range),
                    Instruction::LocalGet(scratch.addr),
                    Instruction::LocalGet(scratch.src),
                    Instruction::LocalGet(scratch.len),
                ]);
                w.run.push(remap.instruction(op)?);
            }
            other => w.run.push(remap.instruction(other)?),
        }
    }
    w.flush();
    for i in &w.out {
        f.instruction(i);
    }
    Ok(f)
}

/// Collects a function's instructions run by run, so each run's cost is charged at its start.
struct RunWriter<'a> {
    added: Added,
    out: Vec<Instruction<'a>>,
    run: Vec<Instruction<'a>>,
    cost: u64,
    check: bool,
}

impl RunWriter<'_> {
    fn flush(&mut self) {
        let mut head = Vec::new();
        charge(&mut head, &self.added, self.cost, self.check);
        self.out.extend(head);
        self.out.append(&mut self.run);
        self.cost = 0;
        self.check = false;
    }
}

/// Injects, before a store of a `ty` value at `[addr]+offset`, the check that journals its page.
fn journal_store(run: &mut Vec<Instruction>, s: &Scratch, added: &Added, ty: ValType, offset: u64) {
    let value = match ty {
        ValType::I32 => s.value_i32,
        ValType::I64 => s.value_i64,
        ValType::F32 => s.value_f32,
        ValType::F64 => s.value_f64,
        _ => s.value_v128,
    };
    run.push(Instruction::LocalSet(value));
    run.push(Instruction::LocalTee(s.addr));
    if offset <= SAME_OR_NEXT_PAGE_OFFSET {
        run.extend([Instruction::I32Const(12), Instruction::I32ShrU]);
    } else {
        // The page of the effective address; past 4 GiB the bitmap read traps like the store.
        run.extend([
            Instruction::I64ExtendI32U,
            Instruction::I64Const(offset as i64),
            Instruction::I64Add,
            Instruction::I64Const(12),
            Instruction::I64ShrU,
            Instruction::I32WrapI64,
        ]);
    }
    run.extend([
        Instruction::LocalTee(s.page),
        Instruction::I32Load8U(bitmap_arg(added)),
        Instruction::I32Eqz,
        Instruction::If(BlockType::Empty),
        Instruction::LocalGet(s.page),
        Instruction::Call(added.journal_page),
        Instruction::End,
        Instruction::LocalGet(s.addr),
        Instruction::LocalGet(value),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_encoder::{ExportKind, TypeSection};

    fn memarg() -> wasmparser::MemArg {
        wasmparser::MemArg { align: 4, max_align: 4, offset: 0, memory: 0 }
    }

    #[test]
    fn simd_operators_cost_what_the_ic_charges() {
        use Operator::*;
        let costs = [
            (V128Load { memarg: memarg() }, 1),
            (V128Store { memarg: memarg() }, 1),
            (V128Const { value: wasmparser::V128::from(0i128) }, 1),
            (I32x4Splat, 1),
            (I32x4ExtractLane { lane: 0 }, 1),
            (V128Xor, 1),
            (I32x4Add, 1),
            (I32x4Sub, 1),
            (I32x4Shl, 2),
            (I32x4ShrU, 2),
            (I32x4Mul, 2),
            (I8x16Shl, 3),
            (I8x16Shuffle { lanes: [0; 16] }, 3),
            (I64x2Mul, 4),
            (F32x4Div, 10),
            (F64x2Sqrt, 14),
        ];
        for (op, cost) in costs {
            assert_eq!(instruction_cost(&op), cost, "{op:?}");
        }
    }

    /// `(param x i32) (result i32)`: in v128 lanes, `v = (x * x) << 1`, then `i64x2.mul(v, v)`
    /// stored at address 0, and the low 32 bits of what was stored returned.
    fn simd_module() -> Vec<u8> {
        use Instruction as I;
        let mut module = Module::new();
        let mut types = TypeSection::new();
        types.ty().function([ValType::I32], [ValType::I32]);
        module.section(&types);
        let mut functions = FunctionSection::new();
        functions.function(0);
        module.section(&functions);
        let mut memories = MemorySection::new();
        memories.memory(MemoryType { minimum: 1, maximum: None, memory64: false, shared: false, page_size_log2: None });
        module.section(&memories);
        let mut exports = ExportSection::new();
        exports.export("f", ExportKind::Func, 0);
        module.section(&exports);
        let mut code = CodeSection::new();
        let mut f = Function::new([(1, ValType::V128)]);
        let store = MemArg { offset: 0, align: 4, memory_index: 0 };
        let load = MemArg { offset: 0, align: 2, memory_index: 0 };
        for i in [
            I::I32Const(0),
            I::LocalGet(0),
            I::I32x4Splat,
            I::LocalGet(0),
            I::I32x4Splat,
            I::I32x4Mul,
            I::I32Const(1),
            I::I32x4Shl,
            I::LocalTee(1),
            I::LocalGet(1),
            I::I8x16Shuffle([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]),
            I::LocalTee(1),
            I::LocalGet(1),
            I::I64x2Mul,
            I::V128Store(store),
            I::I32Const(0),
            I::I32Load(load),
            I::End,
        ] {
            f.instruction(&i);
        }
        code.function(&f);
        module.section(&code);
        module.finish()
    }

    /// The IC's cost of `simd_module`'s function: its entry, then 1 for each of its 13 consts,
    /// locals, splats, store and load, 2 for `i32x4.mul` and `i32x4.shl`, 3 for the shuffle and 4
    /// for `i64x2.mul`.
    const SIMD_FUNCTION_COST: i64 = 1 + 13 + 2 * 2 + 3 + 4;

    struct Host {
        journaled: Vec<i32>,
    }

    #[test]
    fn a_simd_function_runs_metered_as_on_the_ic_and_its_vector_store_is_journaled() {
        let instrumented = instrument(&simd_module()).unwrap();
        let mut config = wasmtime::Config::new();
        config.wasm_multi_memory(true);
        let engine = wasmtime::Engine::new(&config).unwrap();
        let module = wasmtime::Module::new(&engine, &instrumented.wasm).unwrap();
        let mut linker = wasmtime::Linker::<Host>::new(&engine);
        linker.func_wrap(HOST_MODULE, JOURNAL_PAGE, |mut c: wasmtime::Caller<'_, Host>, page: i32| c.data_mut().journaled.push(page)).unwrap();
        linker.func_wrap(HOST_MODULE, OUT_OF_INSTRUCTIONS, || -> wasmtime::Result<()> { Err(wasmtime::Error::msg("out of instructions")) }).unwrap();
        linker.func_wrap(HOST_MODULE, MEMORY_GROW, |_: i32| -1i32).unwrap();
        linker.func_wrap(HOST_MODULE, MEMORY_SIZE, || 1i32).unwrap();
        let mut store = wasmtime::Store::new(&engine, Host { journaled: Vec::new() });
        let instance = linker.instantiate(&mut store, &module).unwrap();
        let counter = instance.get_global(&mut store, COUNTER_EXPORT).unwrap();
        let f = instance.get_typed_func::<i32, i32>(&mut store, "f").unwrap();

        let x: u32 = 0x1234_5678;
        let start = 1_000_000i64;
        counter.set(&mut store, wasmtime::Val::I64(start)).unwrap();
        let got = f.call(&mut store, x as i32).unwrap() as u32;

        let lane = (x.wrapping_mul(x) << 1) as u64;
        let lane = lane | (lane << 32);
        assert_eq!(got, lane.wrapping_mul(lane) as u32);
        assert_eq!(start - counter.get(&mut store).unwrap_i64(), SIMD_FUNCTION_COST);
        assert_eq!(store.data().journaled, [0]);

        // With less than the function costs, it stops at its entry.
        counter.set(&mut store, wasmtime::Val::I64(SIMD_FUNCTION_COST - 1)).unwrap();
        let trap = f.call(&mut store, 1).unwrap_err();
        assert!(format!("{trap:#}").contains("out of instructions"), "{trap:#}");
    }
}
