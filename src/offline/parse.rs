//! Text → documents → typed Kubernetes objects.
//!
//! Documents are first read as untyped JSON values so that the `apiVersion`/`kind` can be
//! checked (and `kind: List` unwrapped) before choosing the typed k8s-openapi object; the
//! typed deserialisation then rejects malformed fields with a message naming the object.

use std::path::Path;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::Resource;
use serde_json::{Map, Value};

use super::error::{LoadError, Origin};
use super::snapshot::Collector;

/// How a file's text is read, chosen by its extension (`.json` → JSON, anything else → YAML).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    pub fn for_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Yaml,
        }
    }
}

/// Splits a file into its documents: every YAML document (`---`), or every JSON value of
/// a JSON stream. Empty YAML documents are skipped and not counted.
pub(super) fn documents(
    path: &Path,
    text: &str,
    format: Format,
) -> Result<Vec<(Origin, Value)>, LoadError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let origin = |document: usize, line: Option<u64>| Origin {
        path: path.to_owned(),
        document,
        line,
        item: None,
    };
    match format {
        Format::Yaml => {
            let docs: Vec<serde_saphyr::Spanned<Value>> =
                serde_saphyr::from_multiple_with_options(text, yaml_options(text.len())).map_err(
                    |source| LoadError::Yaml {
                        path: path.to_owned(),
                        source: Box::new(source),
                    },
                )?;
            Ok(docs
                .into_iter()
                .enumerate()
                .map(|(i, doc)| {
                    let line = doc.referenced.line();
                    (origin(i + 1, (line > 0).then_some(line)), doc.value)
                })
                .collect())
        }
        Format::Json => {
            let mut out = Vec::new();
            let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
            loop {
                let start = stream.byte_offset();
                let Some(next) = stream.next() else { break };
                let value = next.map_err(|source| LoadError::Json {
                    path: path.to_owned(),
                    source,
                })?;
                out.push((origin(out.len() + 1, Some(line_of(text, start))), value));
            }
            Ok(out)
        }
    }
}

/// The parser's resource budget, raised in proportion to the input: its defaults (1,024
/// documents, 250,000 nodes, 1,000,000 events) guard against hostile input but are below
/// a real cluster dump, and every document, node and event takes at least a byte of text.
/// The limits that guard against alias expansion, which the text's length does not bound,
/// stay at their defaults.
fn yaml_options(len: usize) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    let scaled = len.saturating_mul(2).saturating_add(1024);
    budget.max_documents = budget.max_documents.max(scaled);
    budget.max_events = budget.max_events.max(scaled);
    budget.max_nodes = budget.max_nodes.max(scaled);
    budget.max_total_scalar_bytes = budget.max_total_scalar_bytes.max(scaled);
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// 1-based line of the first non-blank character at or after `offset`.
fn line_of(text: &str, offset: usize) -> u64 {
    let rest = &text[offset..];
    let skipped = rest.len() - rest.trim_start().len();
    let upto = &text[..offset + skipped];
    upto.bytes().filter(|b| *b == b'\n').count() as u64 + 1
}

/// Adds the objects of one document (one object, or the items of a list) to `out`.
pub(super) fn collect_document(
    origin: Origin,
    value: Value,
    out: &mut Collector,
) -> Result<(), LoadError> {
    let (api_version, kind, mut map) = type_of(&origin, value)?;
    let list_item_kind = if kind == "List" {
        Some(None)
    } else {
        kind.strip_suffix("List")
            .filter(|_| map.get("items").is_some_and(Value::is_array))
            .map(|item_kind| Some((api_version.clone(), item_kind.to_owned())))
    };
    let Some(item_default) = list_item_kind else {
        return collect_object(origin, api_version, kind, map, out);
    };
    let items = match map.remove("items") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(LoadError::NotAnObject {
                origin: Box::new(origin),
                problem: format!("{kind} items is {}, not a list", describe(&other)),
            })
        }
    };
    for (i, mut item) in items.into_iter().enumerate() {
        let item_origin = Origin {
            item: Some(i),
            ..origin.clone()
        };
        // Typed lists (`PodList` from the API) leave apiVersion/kind out of their items.
        if let (Some((list_api_version, item_kind)), Value::Object(fields)) =
            (&item_default, &mut item)
        {
            fields
                .entry("apiVersion")
                .or_insert_with(|| Value::String(list_api_version.clone()));
            fields
                .entry("kind")
                .or_insert_with(|| Value::String(item_kind.clone()));
        }
        let (api_version, kind, fields) = type_of(&item_origin, item)?;
        if kind == "List" {
            return Err(LoadError::NotAnObject {
                origin: Box::new(item_origin),
                problem: "a List nested in a List is not supported".to_owned(),
            });
        }
        collect_object(item_origin, api_version, kind, fields, out)?;
    }
    Ok(())
}

/// The `apiVersion` and `kind` of a document that must be a Kubernetes object.
fn type_of(
    origin: &Origin,
    value: Value,
) -> Result<(String, String, Map<String, Value>), LoadError> {
    let not_object = |problem: String| LoadError::NotAnObject {
        origin: Box::new(origin.clone()),
        problem,
    };
    let Value::Object(map) = value else {
        return Err(not_object(format!("the document is {}", describe(&value))));
    };
    let field = |name: &str| match map.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        None | Some(Value::Null) => Err(not_object(format!("{name} is missing"))),
        Some(other) => Err(not_object(format!(
            "{name} is {}, not a non-empty string",
            describe(other)
        ))),
    };
    let api_version = field("apiVersion")?;
    let kind = field("kind")?;
    Ok((api_version, kind, map))
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Deserialises the kinds the planner reads (and, when asked, the workloads `doctor`
/// audits); every other kind is counted and ignored.
fn collect_object(
    origin: Origin,
    api_version: String,
    kind: String,
    map: Map<String, Value>,
    out: &mut Collector,
) -> Result<(), LoadError> {
    let (group, version) = match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version.as_str()),
    };
    let wanted = |group_: &str, kind_: &str| group == group_ && kind == kind_;
    if wanted(Service::GROUP, Service::KIND) {
        check_version::<Service>(&origin, version, &kind, &api_version)?;
        let obj = typed::<Service>(&origin, map)?;
        out.add_service(obj, origin)
    } else if wanted(EndpointSlice::GROUP, EndpointSlice::KIND) {
        check_version::<EndpointSlice>(&origin, version, &kind, &api_version)?;
        let obj = typed::<EndpointSlice>(&origin, map)?;
        out.add_endpoint_slice(obj, origin)
    } else if wanted(Node::GROUP, Node::KIND) {
        check_version::<Node>(&origin, version, &kind, &api_version)?;
        let obj = typed::<Node>(&origin, map)?;
        out.add_node(obj, origin)
    } else if wanted(Pod::GROUP, Pod::KIND) {
        check_version::<Pod>(&origin, version, &kind, &api_version)?;
        let obj = typed::<Pod>(&origin, map)?;
        out.add_pod(obj, origin)
    } else if out.keep_workloads && wanted(Deployment::GROUP, Deployment::KIND) {
        check_version::<Deployment>(&origin, version, &kind, &api_version)?;
        let obj = typed::<Deployment>(&origin, map)?;
        out.add_deployment(obj, origin)
    } else if out.keep_workloads && wanted(StatefulSet::GROUP, StatefulSet::KIND) {
        check_version::<StatefulSet>(&origin, version, &kind, &api_version)?;
        let obj = typed::<StatefulSet>(&origin, map)?;
        out.add_stateful_set(obj, origin)
    } else {
        tracing::debug!(%origin, %api_version, %kind, "ignoring object of a kind the planner does not read");
        out.ignore();
        Ok(())
    }
}

fn check_version<K: Resource>(
    origin: &Origin,
    version: &str,
    kind: &str,
    api_version: &str,
) -> Result<(), LoadError> {
    if version == K::VERSION {
        Ok(())
    } else {
        Err(LoadError::UnsupportedVersion {
            origin: Box::new(origin.clone()),
            kind: kind.to_owned(),
            api_version: api_version.to_owned(),
            supported: K::API_VERSION,
        })
    }
}

fn typed<K: Resource + serde::de::DeserializeOwned>(
    origin: &Origin,
    map: Map<String, Value>,
) -> Result<K, LoadError> {
    let name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map_or_else(|| "(unnamed)".to_owned(), str::to_owned);
    serde_json::from_value(Value::Object(map)).map_err(|source| LoadError::Invalid {
        origin: Box::new(origin.clone()),
        api_version: K::API_VERSION,
        kind: K::KIND,
        name,
        source,
    })
}
