//! A small model of server-side apply field ownership, kept in `metadata.managedFields`
//! in the real `FieldsV1` format (`{"f:spec": {"f:holderIdentity": {}}}`).
//!
//! Why: leader election (kube-lease-manager) relies on apply conflicts — a manager that
//! applies `spec.holderIdentity` while another manager owns it with a different value must
//! get `409 Conflict`, or two replicas can both believe they lead.
//!
//! The model: ownership is per leaf field. Object keys are `f:<key>`; items of lists with
//! a known merge key (see [`crate::patch`]) are `k:{"<key>":<value>}`; `finalizers` items
//! are `v:<value>`; other lists are atomic leaves. An apply owns exactly the leaves it sent
//! (under its (manager, `Apply`) entry); any other write gives the writer (manager,
//! `Update`) ownership of the leaves it changed and takes them from everyone else. An
//! apply conflicts when it would change a leaf that another manager owns, unless
//! `force=true`, which takes the leaf over. Leaves a manager applied before and leaves out
//! of its next apply are removed when nobody else owns them (so applying
//! `finalizers: []` releases a finalizer the manager applied). Not modelled: the `.`
//! (self) markers of the real format.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::status::ApiError;

/// One leaf: its `FieldsV1` segments from the object root.
pub type Path = Vec<String>;

/// Metadata fields that are the system's, never owned.
const SYSTEM_META: &[&str] = &[
    "name",
    "namespace",
    "generateName",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// Leaf paths of a whole object (apiVersion, kind and system metadata excluded).
pub fn leaves(obj: &Value) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    let Some(map) = obj.as_object() else {
        return out;
    };
    for (k, v) in map {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                if let Some(m) = v.as_object() {
                    for (mk, mv) in m {
                        if !SYSTEM_META.contains(&mk.as_str()) {
                            walk(
                                mv,
                                mk,
                                vec!["f:metadata".into(), format!("f:{mk}")],
                                &mut out,
                            );
                        }
                    }
                }
            }
            _ => walk(v, k, vec![format!("f:{k}")], &mut out),
        }
    }
    out
}

fn walk(v: &Value, field: &str, path: Path, out: &mut BTreeSet<Path>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let mut p = path.clone();
                p.push(format!("f:{k}"));
                walk(child, k, p, out);
            }
        }
        Value::Array(items) if field == "finalizers" => {
            for i in items {
                let mut p = path.clone();
                p.push(format!("v:{i}"));
                out.insert(p);
            }
        }
        // An empty list owns nothing (so applying `[]` only gives up what was owned).
        Value::Array(items) if items.is_empty() => {}
        Value::Array(items) => {
            let refs: Vec<&Value> = items.iter().collect();
            match crate::patch::merge_key(field, &refs) {
                Some(key) => {
                    for i in items {
                        let mut p = path.clone();
                        p.push(format!("k:{}", json!({ key: i[key] })));
                        walk(i, "", p, out);
                    }
                }
                _ => {
                    out.insert(path);
                }
            }
        }
        _ => {
            out.insert(path);
        }
    }
}

/// The value at a leaf path, if present.
pub fn get<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for seg in path {
        if let Some(k) = seg.strip_prefix("f:") {
            cur = cur.get(k)?;
        } else if let Some(kv) = seg.strip_prefix("k:") {
            let want: Map<String, Value> = serde_json::from_str(kv).ok()?;
            let (key, val) = want.iter().next()?;
            cur = cur.as_array()?.iter().find(|i| i.get(key) == Some(val))?;
        } else if let Some(v) = seg.strip_prefix("v:") {
            let want: Value = serde_json::from_str(v).ok()?;
            return cur.as_array()?.iter().find(|i| **i == want);
        } else {
            return None;
        }
    }
    Some(cur)
}

/// Removes the field, list item or set value a path points at.
fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for seg in parents {
        let next = if let Some(k) = seg.strip_prefix("f:") {
            cur.get_mut(k)
        } else if let Some(kv) = seg.strip_prefix("k:") {
            let Ok(want) = serde_json::from_str::<Map<String, Value>>(kv) else {
                return;
            };
            let Some((key, val)) = want.iter().next() else {
                return;
            };
            cur.as_array_mut()
                .and_then(|a| a.iter_mut().find(|i| i.get(key) == Some(val)))
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(k) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(k);
        }
    } else if let Some(kv) = last.strip_prefix("k:") {
        if let (Ok(want), Some(a)) = (
            serde_json::from_str::<Map<String, Value>>(kv),
            cur.as_array_mut(),
        ) {
            if let Some((key, val)) = want.iter().next() {
                a.retain(|i| i.get(key) != Some(val));
            }
        }
    } else if let Some(v) = last.strip_prefix("v:") {
        if let (Ok(want), Some(a)) = (serde_json::from_str::<Value>(v), cur.as_array_mut()) {
            a.retain(|i| *i != want);
        }
    }
}

/// Server-side apply's pruning: fields `manager` applied before but not in this apply,
/// and that no other manager owns, are removed from `obj` (a list item as a whole once
/// nothing in it is owned any more).
pub fn prune_unapplied(
    current: &Value,
    obj: &mut Value,
    manager: &str,
    subresource: &str,
    applied: &BTreeSet<Path>,
) {
    let list = entries(current);
    let is_mine = |e: &Entry| e.is(manager, "Apply", subresource);
    let Some(prev) = list.iter().find(|e| is_mine(e)) else {
        return;
    };
    let keep: BTreeSet<&Path> = list
        .iter()
        .filter(|e| !is_mine(e))
        .flat_map(|e| e.fields.iter())
        .chain(applied.iter())
        .collect();
    for p in prev.fields.iter().filter(|p| !keep.contains(p)) {
        let target = (0..p.len())
            .filter(|i| p[*i].starts_with("k:"))
            .map(|i| &p[..=i])
            .find(|prefix| !keep.iter().any(|k| k.starts_with(prefix)))
            .unwrap_or(p);
        remove_at(obj, target);
    }
}

/// Encodes leaf paths as a `FieldsV1` tree.
fn encode(paths: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for p in paths {
        let mut node = &mut root;
        for seg in p {
            let next = node.entry(seg.clone()).or_insert_with(|| json!({}));
            if !next.is_object() {
                *next = json!({});
            }
            node = next.as_object_mut().expect("made an object above");
        }
    }
    Value::Object(root)
}

/// Decodes a `FieldsV1` tree into its leaf paths.
fn decode(v: &Value) -> BTreeSet<Path> {
    fn go(v: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
        let children: Vec<(&String, &Value)> = v
            .as_object()
            .map(|m| m.iter().filter(|(k, _)| k.as_str() != ".").collect())
            .unwrap_or_default();
        if children.is_empty() {
            if !path.is_empty() {
                out.insert(path.clone());
            }
            return;
        }
        for (k, child) in children {
            path.push(k.clone());
            go(child, path, out);
            path.pop();
        }
    }
    let mut out = BTreeSet::new();
    go(v, &mut Vec::new(), &mut out);
    out
}

/// `.spec.holderIdentity` style, for conflict messages.
fn display(path: &[String]) -> String {
    path.iter()
        .map(|s| match s.strip_prefix("f:") {
            Some(k) => format!(".{k}"),
            None => format!("[{s}]"),
        })
        .collect()
}

struct Entry {
    manager: String,
    operation: String,
    /// `""` for the main resource, `"status"` for the status subresource.
    subresource: String,
    fields: BTreeSet<Path>,
    raw: Value,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }
}

fn entries(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|e| Entry {
                    manager: e["manager"].as_str().unwrap_or_default().to_string(),
                    operation: e["operation"].as_str().unwrap_or_default().to_string(),
                    subresource: e["subresource"].as_str().unwrap_or_default().to_string(),
                    fields: decode(&e["fieldsV1"]),
                    raw: e.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Refuses an apply by `manager` that would change a leaf another manager owns.
pub fn check_apply(
    current: &Value,
    applied: &Value,
    manager: &str,
    resource: &str,
    name: &str,
) -> Result<(), ApiError> {
    let owners = entries(current);
    let mut conflicts = Vec::new();
    for p in leaves(applied) {
        let Some(cur) = get(current, &p) else {
            continue;
        };
        if get(applied, &p) == Some(cur) {
            continue;
        }
        for e in owners.iter().filter(|e| e.manager != manager) {
            if e.fields.contains(&p) {
                conflicts.push(format!("conflict with \"{}\": {}", e.manager, display(&p)));
            }
        }
    }
    if conflicts.is_empty() {
        return Ok(());
    }
    Err(ApiError::conflict(
        resource,
        name,
        &format!(
            "Apply failed with {} conflict{}: {}",
            conflicts.len(),
            if conflicts.len() == 1 { "" } else { "s" },
            conflicts.join(", ")
        ),
    ))
}

/// What a write does to ownership.
pub enum Op<'a> {
    /// Any write other than apply, by this manager.
    Update(&'a str),
    /// An apply by this manager of these leaves (`force` takes them from others).
    Apply {
        manager: &'a str,
        leaves: BTreeSet<Path>,
        force: bool,
    },
}

/// Rewrites `new`'s `managedFields` after a write from `old` (None on create).
pub fn record(
    old: Option<&Value>,
    new: &mut Value,
    op: &Op<'_>,
    subresource: &str,
    api_version: &str,
    now: &str,
) {
    let empty = json!({});
    let old_obj = old.unwrap_or(&empty);
    let mut list = entries(old_obj);
    let changed: BTreeSet<Path> = leaves(old_obj)
        .union(&leaves(new))
        .filter(|p| get(old_obj, p) != get(new, p))
        .cloned()
        .collect();
    let (manager, operation, mine): (&str, &str, BTreeSet<Path>) = match op {
        Op::Update(m) => {
            let prev = list
                .iter()
                .find(|e| e.is(m, "Update", subresource))
                .map(|e| e.fields.clone())
                .unwrap_or_default();
            let gained = changed.iter().filter(|p| get(new, p).is_some()).cloned();
            (m, "Update", prev.into_iter().chain(gained).collect())
        }
        Op::Apply {
            manager, leaves, ..
        } => (manager, "Apply", leaves.clone()),
    };
    let force = matches!(op, Op::Apply { force: true, .. });
    for e in list.iter_mut() {
        if e.is(manager, operation, subresource) {
            continue;
        }
        let before = e.fields.len();
        e.fields.retain(|p| {
            let taken = (changed.contains(p) && (operation == "Update" || mine.contains(p)))
                || (force && mine.contains(p));
            !taken && get(new, p).is_some()
        });
        if e.fields.len() != before {
            e.raw["time"] = json!(now);
        }
    }
    let mine: BTreeSet<Path> = mine.into_iter().filter(|p| get(new, p).is_some()).collect();
    match list
        .iter_mut()
        .find(|e| e.is(manager, operation, subresource))
    {
        Some(e) if e.fields != mine => {
            e.fields = mine;
            e.raw["time"] = json!(now);
        }
        Some(_) => {}
        None if !mine.is_empty() => list.push(Entry {
            manager: manager.to_string(),
            operation: operation.to_string(),
            subresource: subresource.to_string(),
            fields: mine,
            raw: json!({
                "manager": manager,
                "operation": operation,
                "apiVersion": api_version,
                "time": now,
                "fieldsType": "FieldsV1",
            }),
        }),
        None => {}
    }
    let out: Vec<Value> = list
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|mut e| {
            if !e.subresource.is_empty() {
                e.raw["subresource"] = json!(e.subresource);
            }
            e.raw["fieldsV1"] = encode(&e.fields);
            e.raw
        })
        .collect();
    if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
        if out.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(out));
        }
    }
}

#[cfg(test)]
mod tests;
