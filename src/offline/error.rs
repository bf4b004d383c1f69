//! Why a set of manifest or snapshot files could not be turned into cluster objects.
//!
//! Every variant names the file (and the document inside it) so the operator can go
//! straight to the line that needs fixing.

use std::fmt;
use std::path::PathBuf;

/// Where one object came from: a file, the document inside it (1-based, counting only
/// non-empty documents) and, for a `kind: List`, the item inside that document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub path: PathBuf,
    pub document: usize,
    /// 1-based line where the document starts, when the format reports it (YAML).
    pub line: Option<u64>,
    /// Index in the `items` of a `kind: List` document.
    pub item: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, document {}", self.path.display(), self.document)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        if let Some(item) = self.item {
            write!(f, ", items[{item}]")?;
        }
        Ok(())
    }
}

/// A problem that stops `plan --offline` before any planning: the input is not a set of
/// readable Kubernetes objects.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}: check that the path exists and is readable", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} holds no *.yaml, *.yml or *.json files: pass manifest or snapshot files \
         (kubectl get -o yaml) or a directory containing them",
        path.display()
    )]
    EmptyDirectory { path: PathBuf },
    #[error("{} is not valid YAML", path.display())]
    Yaml {
        path: PathBuf,
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    #[error("{} is not valid JSON", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{origin}: not a Kubernetes object ({problem}); every document must have \
         apiVersion and kind"
    )]
    NotAnObject {
        origin: Box<Origin>,
        problem: String,
    },
    #[error("{origin}: {kind} {name} does not match the {api_version} {kind} schema")]
    Invalid {
        origin: Box<Origin>,
        api_version: &'static str,
        kind: &'static str,
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{origin}: {kind} has no metadata.name; every object needs a name")]
    Unnamed { origin: Box<Origin>, kind: String },
    #[error(
        "{origin}: {kind} apiVersion {api_version} is not supported; use {supported} \
         (what `kubectl get {kind} -o yaml` prints on Kubernetes 1.21 and later)"
    )]
    UnsupportedVersion {
        origin: Box<Origin>,
        kind: String,
        api_version: String,
        supported: &'static str,
    },
    #[error(
        "{kind} {name} is defined twice with different contents, in {first} and in \
         {second}; keep one of them"
    )]
    Conflict {
        kind: &'static str,
        name: String,
        first: Box<Origin>,
        second: Box<Origin>,
    },
}
