//! The pure core (`model` → `annotations` → `index` → `desired`, and `plan`) may import
//! only layers below it, never the I/O shell (`agent`, `reconcile`, `slb`, `k8s`, …);
//! and no two top-level modules import each other, directly or through others. Checked
//! here on the source text (doc comments excluded) so a stray `use` fails the tests
//! rather than waiting for a review (docs/architecture.md, "Where the code lives").

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each core module and what it may import.
const CORE: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("annotations", &["model"]),
    ("index", &["model", "annotations"]),
    ("desired", &["model", "annotations", "index"]),
    ("plan", &["model"]),
];

/// Top-level module → the top-level modules its non-test code names as `crate::<m>`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if matches!(name.as_str(), "lib" | "main" | "layering") {
            continue;
        }
        let mut found = BTreeSet::new();
        for file in rust_files(&path) {
            let text = std::fs::read_to_string(&file).unwrap();
            for target in crate_paths(&text) {
                if target != name {
                    found.insert(target);
                }
            }
        }
        modules
            .entry(name)
            .or_insert_with(BTreeSet::new)
            .extend(found);
    }
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    for targets in modules.values_mut() {
        targets.retain(|t| known.contains(t));
    }
    modules
}

/// Source files of a module, without its tests and test fixtures.
fn rust_files(path: &Path) -> Vec<std::path::PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if name == "tests" || name == "tests.rs" || name == "fixtures.rs" {
            continue;
        }
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
    out
}

/// `crate::<module>` paths in code before its inline `#[cfg(test)]` module, comments
/// skipped.
fn crate_paths(text: &str) -> Vec<String> {
    let code = text
        .split("#[cfg(test)]\nmod tests {")
        .next()
        .unwrap_or(text);
    let mut out = Vec::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or("");
        for part in line.split("crate::").skip(1) {
            let module: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.push(module);
        }
        // `use crate::{a, b::c}`.
        if let Some(group) = line.split("crate::{").nth(1) {
            for item in group.split(',') {
                let module: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                out.push(module);
            }
        }
    }
    out
}

#[test]
fn the_core_imports_only_the_layers_below_it() {
    let imports = imports();
    for (module, allowed) in CORE {
        let found = &imports[*module];
        let stray: Vec<&String> = found
            .iter()
            .filter(|m| !allowed.contains(&m.as_str()))
            .collect();
        assert!(
            stray.is_empty(),
            "`{module}` is pure core and may import only {allowed:?}, but imports {stray:?}"
        );
    }
}

#[test]
fn no_two_top_level_modules_import_each_other() {
    let imports = imports();
    // Depth-first search for a cycle, reporting the path that closes it.
    fn visit<'a>(
        m: &'a str,
        imports: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(at) = path.iter().position(|p| *p == m) {
            panic!("module cycle: {} → {m}", path[at..].join(" → "));
        }
        if !done.insert(m) {
            return;
        }
        path.push(m);
        for next in &imports[m] {
            visit(next, imports, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for m in imports.keys() {
        visit(m, &imports, &mut Vec::new(), &mut done);
    }
}
