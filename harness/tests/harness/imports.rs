//! Every `ic0` function the cdk can import is defined, with its signature; an import the
//! harness lacks fails the install with its name.

use ic_harness::{ErrorCode, Harness, ModuleError, compile, host_functions};
use std::path::PathBuf;
use wasm_encoder::{EntityType, ImportSection, Module, TypeSection, ValType};

/// `src/sys.rs` of the `ic0` crate this workspace locks, from cargo's registry.
fn ic0_sys_rs() -> String {
    // Building a canister makes cargo fetch ic0's sources.
    crate::common::probe_wasm();
    let lock = std::fs::read_to_string(ic_harness::build::workspace_root().join("Cargo.lock")).unwrap();
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"ic0\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .expect("ic0 in Cargo.lock");
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    let registry = cargo_home.join("registry").join("src");
    for index in std::fs::read_dir(&registry).unwrap() {
        let path = index.unwrap().path().join(format!("ic0-{version}")).join("src").join("sys.rs");
        if let Ok(text) = std::fs::read_to_string(&path) {
            return text;
        }
    }
    panic!("ic0-{version} sources not found under {}", registry.display());
}

fn wasm_type(rust: &str) -> ValType {
    match rust.trim() {
        "usize" | "u32" | "i32" => ValType::I32,
        "u64" | "i64" => ValType::I64,
        other => panic!("unexpected type {other}"),
    }
}

/// `(name, params, results)` of each function in the wasm `extern` block of sys.rs.
fn ic0_imports() -> Vec<(String, Vec<ValType>, Vec<ValType>)> {
    let text = ic0_sys_rs();
    let block = text.split("#[cfg(not(target_family = \"wasm\"))]").next().unwrap();
    let mut out = Vec::new();
    for piece in block.split("pub fn ").skip(1) {
        let name = piece.split('(').next().unwrap().trim().to_string();
        let params = piece.split_once('(').unwrap().1.split_once(')').unwrap().0;
        let params = params
            .split(',')
            .filter(|p| p.contains(':'))
            .map(|p| wasm_type(p.split(':').nth(1).unwrap()))
            .collect();
        let rest = piece.split_once(')').unwrap().1;
        let results = match rest.split(';').next().unwrap().trim().strip_prefix("->") {
            Some(ty) => vec![wasm_type(ty)],
            None => vec![],
        };
        out.push((name, params, results));
    }
    out
}

fn module_importing(imports: &[(String, Vec<ValType>, Vec<ValType>)]) -> Vec<u8> {
    let mut types = TypeSection::new();
    let mut section = ImportSection::new();
    for (i, (name, params, results)) in imports.iter().enumerate() {
        types.ty().function(params.clone(), results.clone());
        section.import("ic0", name, EntityType::Function(i as u32));
    }
    let mut module = Module::new();
    module.section(&types).section(&section);
    module.finish()
}

#[test]
fn every_ic0_import_of_the_cdk_is_defined_with_its_signature() {
    let imports = ic0_imports();
    assert!(imports.len() >= 60, "parsed only {} functions", imports.len());
    for (name, _, _) in &imports {
        assert!(host_functions().contains(&("ic0".to_string(), name.clone())), "ic0.{name} is not defined");
    }
    compile(&module_importing(&imports)).expect("every signature matches");
}

#[test]
fn the_32_bit_stable_memory_api_is_defined() {
    for name in ["stable_size", "stable_grow", "stable_read", "stable_write"] {
        assert!(host_functions().contains(&("ic0".to_string(), name.to_string())), "ic0.{name}");
    }
}

#[test]
fn an_unknown_import_fails_the_install_naming_it() {
    let wasm = module_importing(&[("frobnicate".to_string(), vec![], vec![])]);
    assert_eq!(
        compile(&wasm).err(),
        Some(ModuleError::UnknownImport { module: "ic0".into(), name: "frobnicate".into() })
    );
    let ic = Harness::new();
    let id = ic.create_canister();
    let r = ic.reinstall_canister(id, wasm, vec![], None).unwrap_err();
    assert_eq!(r.error_code, ErrorCode::CanisterInvalidWasm);
    assert!(r.reject_message.contains("`ic0.frobnicate`"), "{}", r.reject_message);
}

#[test]
fn a_gzipped_module_installs() {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&crate::common::probe_wasm()).unwrap();
    let ic = Harness::new();
    let id = crate::common::install(&ic, gz.finish().unwrap(), crate::common::no_args());
    assert_eq!(crate::common::update::<_, (u64,)>(&ic, id, "inc", ()).unwrap().0, 1);
}
