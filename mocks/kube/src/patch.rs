//! The four patch flavours, applied to `serde_json::Value` objects.
//!
//! - JSON merge patch (RFC 7386): exact.
//! - JSON patch (RFC 6902): the `json-patch` crate, op by op; a failed `test` is a 422
//!   `Invalid`, as the real server answers, and a `test` for `null` passes on an absent
//!   path, as in the server's library. The caller patches a copy, so a failure changes
//!   nothing.
//! - Strategic merge patch: an **approximation**. It is a merge patch except that lists
//!   whose field name has a known merge key are merged item by item (`conditions` and
//!   node `addresses` by `type`, `containers`/`initContainers`/`ephemeralContainers`/
//!   `env`/`volumes` by `name`, `volumeMounts` by `mountPath`, `readinessGates` by
//!   `conditionType`, `ownerReferences` by `uid`, `taints` by `key`, container `ports` by
//!   `containerPort`, Service `ports` by `port`), `finalizers` is merged as a set, and the
//!   directives `$patch: delete|replace|merge`, `$deleteFromPrimitiveList/<field>` are
//!   honoured. `$setElementOrder/...` and `$retainKeys` are accepted and ignored. The merge
//!   key is chosen by field name only (not by the kind's schema), and only when every item
//!   on both sides is an object carrying the key; otherwise the list is replaced.
//! - Server-side apply: an **approximation**. The applied configuration is strategically
//!   merged onto the live object. Field ownership is tracked per leaf field in
//!   `managedFields` (see `store::ownership`): an apply that would change a field another
//!   manager owns is `409 Conflict` unless `force=true`; fields a manager stops applying
//!   are removed unless someone else owns them.

use serde_json::{Map, Value};

use crate::status::ApiError;

/// The patch flavour, from the request's `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(ct: &str) -> Result<Self, ApiError> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Ok(Self::Json),
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(Self::Apply),
            _ => Err(ApiError::unsupported_media_type(
                ct,
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json",
            )),
        }
    }
}

/// Parses a patch body: JSON for every flavour, and YAML too for apply.
pub fn parse_body(kind: PatchKind, body: &[u8]) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(json_err) if kind == PatchKind::Apply => {
            let text = std::str::from_utf8(body)
                .map_err(|e| ApiError::bad_request(format!("apply body is not UTF-8: {e}")))?;
            serde_saphyr::from_str::<Value>(text).map_err(|e| {
                ApiError::bad_request(format!("error decoding YAML: {e} (as JSON: {json_err})"))
            })
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "error decoding patch body: {e}"
        ))),
    }
}

/// Applies a parsed patch to `target` in place.
pub fn apply(kind: PatchKind, target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    match kind {
        PatchKind::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("merge patch must be a JSON object"));
            }
            json_patch::merge(target, patch);
            Ok(())
        }
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            for op in ops.0.iter() {
                // Like the API server's JSON patch library, a `test` for `null` passes when
                // the path is absent: kube-runtime's finalizer helper relies on it.
                if let json_patch::PatchOperation::Test(t) = op {
                    if t.value.is_null() && target.pointer(t.path.as_str()).is_none() {
                        continue;
                    }
                }
                json_patch::patch(target, std::slice::from_ref(op))
                    .map_err(|e| ApiError::invalid(e.to_string()))?;
            }
            Ok(())
        }
        PatchKind::Strategic | PatchKind::Apply => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "strategic merge patch and apply configuration must be JSON objects",
                ));
            }
            strategic_merge(target, patch);
            Ok(())
        }
    }
}

/// Merge key for a list field, by field name and the items present.
pub(crate) fn merge_key(field: &str, items: &[&Value]) -> Option<&'static str> {
    let key = match field {
        "conditions" | "addresses" => "type",
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => "name",
        "volumeMounts" => "mountPath",
        "readinessGates" => "conditionType",
        "ownerReferences" => "uid",
        "taints" => "key",
        "ports" => {
            if items.iter().all(|i| i.get("containerPort").is_some()) {
                "containerPort"
            } else {
                "port"
            }
        }
        _ => return None,
    };
    items.iter().all(|i| i.get(key).is_some()).then_some(key)
}

/// Lists merged as sets of primitives.
fn is_primitive_set(field: &str) -> bool {
    field == "finalizers"
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// Strategic merge of `patch` into `target` (see the module doc for what is honoured).
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Some(pmap) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    match pmap.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = strip_directives(patch);
            return;
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return;
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(tmap) = target.as_object_mut() else {
        return;
    };
    for (k, v) in pmap {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(remove)) = (tmap.get_mut(field), v.as_array()) {
                list.retain(|x| !remove.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            tmap.remove(k);
            continue;
        }
        match (tmap.get_mut(k), v) {
            (Some(Value::Array(cur)), Value::Array(items)) => merge_list(k, cur, items),
            (Some(cur @ Value::Object(_)), Value::Object(_)) => strategic_merge(cur, v),
            (_, Value::Array(items)) => {
                let plain: Vec<Value> = items
                    .iter()
                    .filter(|i| i.get("$patch").is_none())
                    .map(strip_directives)
                    .collect();
                tmap.insert(k.clone(), Value::Array(plain));
            }
            _ => {
                tmap.insert(k.clone(), strip_directives(v));
            }
        }
    }
}

fn merge_list(field: &str, cur: &mut Vec<Value>, items: &[Value]) {
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *cur = items
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .map(strip_directives)
            .collect();
        return;
    }
    if is_primitive_set(field) {
        for i in items {
            if !cur.contains(i) {
                cur.push(i.clone());
            }
        }
        return;
    }
    let all: Vec<&Value> = cur.iter().chain(items.iter()).collect();
    let Some(key) = merge_key(field, &all) else {
        *cur = items.iter().map(strip_directives).collect();
        return;
    };
    for item in items {
        let id = &item[key];
        let pos = cur.iter().position(|c| &c[key] == id);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(p), true) => {
                cur.remove(p);
            }
            (None, true) => {}
            (Some(p), false) => strategic_merge(&mut cur[p], item),
            (None, false) => cur.push(strip_directives(item)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_conditions_by_type_and_finalizers_as_set() {
        let mut pod = json!({
            "metadata": {"finalizers": ["a"]},
            "status": {"conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "PodScheduled", "status": "True"}
            ]}
        });
        let patch = json!({
            "metadata": {"finalizers": ["b", "a"]},
            "status": {"conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "registered.slb-sync.io/web", "status": "True"}
            ]}
        });
        strategic_merge(&mut pod, &patch);
        assert_eq!(pod["metadata"]["finalizers"], json!(["a", "b"]));
        let conds = pod["status"]["conditions"].as_array().unwrap();
        assert_eq!(conds.len(), 3);
        assert_eq!(conds[0], json!({"type": "Ready", "status": "True"}));
        assert_eq!(conds[1]["type"], "PodScheduled");
    }

    #[test]
    fn strategic_directives() {
        let mut obj = json!({"metadata": {"finalizers": ["a", "b"]},
                             "status": {"conditions": [{"type": "X"}, {"type": "Y"}]},
                             "spec": {"tags": [1, 2]}});
        let patch = json!({
            "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]},
            "status": {"conditions": [{"type": "X", "$patch": "delete"}],
                       "$setElementOrder/conditions": [{"type": "Y"}]},
            "spec": {"tags": [3]}
        });
        strategic_merge(&mut obj, &patch);
        assert_eq!(obj["metadata"]["finalizers"], json!(["b"]));
        assert_eq!(obj["status"]["conditions"], json!([{"type": "Y"}]));
        assert_eq!(obj["spec"]["tags"], json!([3]));
    }

    #[test]
    fn json_patch_test_failure_is_422() {
        let mut obj = json!({"metadata": {"finalizers": ["a"]}});
        let patch = json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "b"},
                           {"op": "remove", "path": "/metadata/finalizers/0"}]);
        let err = apply(PatchKind::Json, &mut obj, &patch).unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(obj["metadata"]["finalizers"], json!(["a"]));
    }

    #[test]
    fn apply_accepts_yaml() {
        let v = parse_body(PatchKind::Apply, b"metadata:\n  labels:\n    a: b\n").unwrap();
        assert_eq!(v, json!({"metadata": {"labels": {"a": "b"}}}));
    }
}
