//! Offline input: Kubernetes objects read from manifest or snapshot files instead of a
//! cluster, for `slb-sync plan --offline` (and, later, `doctor` on manifests).
//!
//! Files are YAML (multi-document) or JSON (one value or a stream), each document one
//! object or a `kind: List`/`<Kind>List`. Only the kinds the planner reads (Service,
//! discovery.k8s.io/v1 EndpointSlice, Node, Pod) are kept, plus apps/v1 Deployments and
//! StatefulSets when the loader is asked to keep workloads (`doctor`); other kinds are
//! skipped so a whole manifest directory can be passed. Anything that is not a Kubernetes object is an
//! error naming the file and document, because a silently skipped typo would make the plan
//! lie.

mod error;
mod parse;
mod report;
mod snapshot;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

pub use error::{LoadError, Origin};
pub use parse::Format;
pub use report::{plan, plan_steps, GroupSteps, PlanReport, ServiceSteps, StepReport};
pub use snapshot::ClusterSnapshot;

use snapshot::Collector;

/// Reads every path (file, or directory searched recursively for `*.yaml`, `*.yml` and
/// `*.json` in sorted order) into one snapshot.
pub fn load_paths<P: AsRef<Path>>(paths: &[P]) -> Result<ClusterSnapshot, LoadError> {
    let mut loader = Loader::default();
    for path in paths {
        loader.add_path(path.as_ref())?;
    }
    Ok(loader.finish())
}

/// As [`load_paths`], also keeping apps/v1 Deployments and StatefulSets (for `doctor`).
pub fn load_paths_with_workloads<P: AsRef<Path>>(
    paths: &[P],
) -> Result<ClusterSnapshot, LoadError> {
    let mut loader = Loader::with_workloads();
    for path in paths {
        loader.add_path(path.as_ref())?;
    }
    Ok(loader.finish())
}

/// Accumulates objects from several files; the same file reached twice is read once.
#[derive(Debug, Default)]
pub struct Loader {
    collector: Collector,
    files_read: HashSet<PathBuf>,
}

impl Loader {
    /// A loader that also keeps apps/v1 Deployments and StatefulSets instead of counting
    /// them as ignored.
    pub fn with_workloads() -> Self {
        let mut loader = Loader::default();
        loader.collector.keep_workloads = true;
        loader
    }

    /// Adds a file, or every manifest file under a directory.
    pub fn add_path(&mut self, path: &Path) -> Result<(), LoadError> {
        let meta = fs::metadata(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        if !meta.is_dir() {
            return self.add_file(path);
        }
        let mut files = Vec::new();
        let mut visited = HashSet::new();
        manifest_files(path, &mut files, &mut visited)?;
        if files.is_empty() {
            return Err(LoadError::EmptyDirectory {
                path: path.to_owned(),
            });
        }
        for file in files {
            self.add_file(&file)?;
        }
        Ok(())
    }

    /// Adds one file, read as JSON when it ends in `.json` and as YAML otherwise.
    pub fn add_file(&mut self, path: &Path) -> Result<(), LoadError> {
        let read_err = |source| LoadError::Read {
            path: path.to_owned(),
            source,
        };
        let canonical = fs::canonicalize(path).map_err(read_err)?;
        if !self.files_read.insert(canonical) {
            return Ok(());
        }
        let text = fs::read_to_string(path).map_err(read_err)?;
        self.add_text(path, &text, Format::for_path(path))
    }

    /// Adds the objects in `text`, reporting problems against `path`.
    pub fn add_text(&mut self, path: &Path, text: &str, format: Format) -> Result<(), LoadError> {
        for (origin, value) in parse::documents(path, text, format)? {
            parse::collect_document(origin, value, &mut self.collector)?;
        }
        Ok(())
    }

    pub fn finish(self) -> ClusterSnapshot {
        self.collector.finish()
    }
}

fn is_manifest(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        ["yaml", "yml", "json"]
            .iter()
            .any(|x| e.eq_ignore_ascii_case(x))
    })
}

/// Collects manifest files under `dir` depth-first in name order, following symlinks but
/// never entering a directory twice (a symlink loop would otherwise never end).
fn manifest_files(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    visited: &mut HashSet<PathBuf>,
) -> Result<(), LoadError> {
    let read_err = |source| LoadError::Read {
        path: dir.to_owned(),
        source,
    };
    if !visited.insert(fs::canonicalize(dir).map_err(read_err)?) {
        return Ok(());
    }
    let mut entries = fs::read_dir(dir)
        .map_err(read_err)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err)?;
    entries.sort();
    for entry in entries {
        let meta = fs::metadata(&entry).map_err(|source| LoadError::Read {
            path: entry.clone(),
            source,
        })?;
        if meta.is_dir() {
            manifest_files(&entry, out, visited)?;
        } else if meta.is_file() && is_manifest(&entry) {
            out.push(entry);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
