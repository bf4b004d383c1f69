//! `/openapi/v2` in JSON (and, encoded by [`super::protobuf`], in protobuf).
//!
//! Built from the same schemas as the v3 documents: references point at `#/definitions/`,
//! and the v3 `oneOf` of int-or-string and quantities becomes Swagger 2.0's
//! `type: string` (with `format: int-or-string` where an integer is allowed).

use serde_json::{json, Map, Value};

use super::{patch_types, SCHEMAS};
use crate::discovery::{self, Served};
use crate::resources::RESOURCES;

fn convert(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let alts = ["oneOf", "anyOf"]
                .iter()
                .find_map(|k| m.get(*k).and_then(Value::as_array));
            if let (Some(alts), None) = (alts, m.get("type")) {
                let integer = alts.iter().any(|a| a["type"] == "integer");
                let mut out = json!({"type": "string"});
                if integer {
                    out["format"] = json!("int-or-string");
                }
                return out;
            }
            Value::Object(
                m.iter()
                    .map(|(k, v)| {
                        let v = match (k.as_str(), v.as_str()) {
                            ("$ref", Some(r)) => {
                                json!(r.replace("#/components/schemas/", "#/definitions/"))
                            }
                            _ => convert(v),
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(convert).collect()),
        other => other.clone(),
    }
}

/// The Swagger 2.0 document: every schema, and each served kind's object path with the
/// operations kubectl looks up by `x-kubernetes-group-version-kind`.
pub fn document(served: Served) -> Value {
    let definitions: Map<String, Value> = SCHEMAS
        .iter()
        .map(|(k, v)| (k.clone(), convert(v)))
        .collect();
    let mut paths = Map::new();
    for r in RESOURCES.iter().filter(|r| served.serves(r)) {
        let prefix = if r.group.is_empty() {
            format!("/api/{}", r.version)
        } else {
            format!("/apis/{}/{}", r.group, r.version)
        };
        let scope = if r.namespaced {
            "/namespaces/{namespace}"
        } else {
            ""
        };
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let schema = json!({"$ref": format!("#/definitions/{}", r.schema)});
        let query = |name: &str| json!({"name": name, "in": "query", "type": "string", "uniqueItems": true});
        paths.insert(
            format!("{prefix}{scope}/{}/{{name}}", r.plural),
            json!({
                "get": {"produces": ["application/json", "application/yaml"],
                        "responses": {"200": {"description": "OK", "schema": schema}},
                        "x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk},
                "patch": {"consumes": patch_types(r.custom),
                          "parameters": [query("dryRun"), query("fieldManager"), query("fieldValidation"), query("force")],
                          "responses": {"200": {"description": "OK", "schema": schema}},
                          "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk},
            }),
        );
    }
    let (major, minor) = discovery::KUBERNETES_VERSION;
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": format!("v{major}.{minor}.0")},
        "paths": paths,
        "definitions": definitions,
    })
}
