//! Reading the repository's files, above all the manifests under `deploy/`.

use std::path::{Path, PathBuf};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

/// A path relative to the repository root.
pub fn repo_path(relative: &str) -> PathBuf {
    // This crate is tests/support/ of the repository.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2);
    root.expect("tests/support is two levels below the root")
        .join(relative)
}

/// Every YAML document of a file, as untyped JSON values (empty documents skipped).
pub fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .filter(|doc| !doc.is_null())
        .collect()
}

/// Deserialises into the typed object and back: a misspelled or misplaced field is
/// dropped by the typed object and shows up as a difference.
pub fn round_trips<K: serde::de::DeserializeOwned + serde::Serialize>(path: &Path, doc: &Value) {
    let typed: K = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{}: {e}: {doc}", path.display()));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        &back,
        doc,
        "{}: a field is not part of {}",
        path.display(),
        doc["kind"]
    );
}

/// Every file under `dir` (recursively, sorted) whose name ends in one of `extensions`.
pub fn files_under(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

// ---- Reading deploy/. ----

pub fn deploy_dir() -> PathBuf {
    repo_path("deploy")
}

/// Every Kubernetes-style document under `deploy/` (YAML files), with its file.
pub fn all_documents() -> Vec<(PathBuf, Value)> {
    files_under(&deploy_dir(), &["yaml", "yml"])
        .into_iter()
        .flat_map(|path| {
            documents(&path)
                .into_iter()
                .map(move |doc| (path.clone(), doc))
        })
        .collect()
}

pub fn kind_of(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or("")
}

/// The single document of `kind` named `name` in `file` (relative to `deploy/`).
pub fn find(file: &str, kind: &str, name: &str) -> Value {
    let path = deploy_dir().join(file);
    let mut found: Vec<_> = documents(&path)
        .into_iter()
        .filter(|d| kind_of(d) == kind && d["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "{}: {kind} {name}", path.display());
    found.remove(0)
}

pub fn strict<T: serde::de::DeserializeOwned>(path: &Path, doc: &Value) -> T {
    serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Metadata of an object we parse with our own struct must still be real metadata.
pub fn metadata_round_trips(path: &Path, doc: &Value) {
    let meta: ObjectMeta = strict(path, &doc["metadata"]);
    assert_eq!(
        serde_json::to_value(&meta).unwrap(),
        doc["metadata"],
        "{}: a metadata field is not part of ObjectMeta",
        path.display()
    );
}
