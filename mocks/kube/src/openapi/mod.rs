//! The OpenAPI documents kubectl reads, and the schema checks behind `fieldValidation`.
//!
//! kubectl (1.27+) validates what it sends by asking the server to: when the OpenAPI v3
//! document of a group/version lists a `fieldValidation` parameter on the kind's PATCH
//! operation, it sends `fieldValidation=Strict` and leaves the checking to the server;
//! it also computes `kubectl apply`'s strategic merge patches from the v3 schemas'
//! `x-kubernetes-patch-merge-key`/`-strategy` extensions. So the double serves
//! `/openapi/v3` (the index), `/openapi/v3/<api|apis/group>/<version>` (paths for every
//! served kind with those parameters, and the component schemas they refer to) and
//! checks writes against the same schemas ([`validate`]).
//!
//! The built-in kinds' schemas are Kubernetes' own for the release in `/version`
//! (`openapi/kubernetes.json`, see `openapi/generate.py`); the Prometheus Operator kinds'
//! are in [`crds`]. `/openapi/v2` is served in JSON and in the protobuf client-go asks
//! for (see `protobuf`).

pub mod crds;
mod protobuf;
mod v2;
mod validate;

use std::collections::BTreeSet;
use std::sync::LazyLock;

use serde_json::{json, Map, Value};

pub use v2::document as v2_document;

/// The media type of `/openapi/v2` in protobuf, which client-go asks for.
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// `/openapi/v2` in protobuf.
pub fn v2_protobuf(served: Served) -> Vec<u8> {
    protobuf::encode(&v2_document(served))
}
pub use validate::{check, FieldValidation, Findings};

use crate::discovery::{self, Served};
use crate::resources::{ResourceDef, RESOURCES};
use crate::status::ApiError;

static SCHEMAS: LazyLock<Map<String, Value>> = LazyLock::new(|| {
    let doc: Value = serde_json::from_str(include_str!("../../openapi/kubernetes.json"))
        .expect("openapi/kubernetes.json is valid JSON");
    let mut schemas = doc
        .get("schemas")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    schemas.extend(crds::schemas());
    schemas
});

/// Every component schema, by name (e.g. `io.k8s.api.core.v1.Pod`).
pub fn schemas() -> &'static Map<String, Value> {
    &SCHEMAS
}

const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";

/// Checks an object of kind `def` before it is stored: removes undeclared fields and
/// returns the warnings to send, or the error the real server answers.
pub fn validate(
    def: &ResourceDef,
    obj: &mut Value,
    mode: FieldValidation,
) -> Result<Vec<String>, ApiError> {
    validate_as(def.schema, def.kind, def.version, obj, mode)
}

/// [`validate`] against a named schema (the Scale of a `/scale` subresource).
pub fn validate_as(
    schema: &str,
    kind: &str,
    version: &str,
    obj: &mut Value,
    mode: FieldValidation,
) -> Result<Vec<String>, ApiError> {
    let Some(s) = SCHEMAS.get(schema) else {
        return Ok(Vec::new());
    };
    let found = check(obj, s, &SCHEMAS);
    let prefix = format!("{kind} in version \"{version}\" cannot be handled as a {kind}");
    if let Some((path, got, want)) = found.wrong_type.first() {
        return Err(ApiError::bad_request(format!(
            "{prefix}: json: cannot unmarshal {got} into Go struct field {kind}.{path} of type {want}"
        )));
    }
    let unknown: Vec<String> = found
        .unknown
        .iter()
        .map(|p| format!("unknown field \"{p}\""))
        .collect();
    match mode {
        FieldValidation::Strict if !unknown.is_empty() => Err(ApiError::bad_request(format!(
            "{prefix}: strict decoding error: {}",
            unknown.join(", ")
        ))),
        FieldValidation::Warn => Ok(unknown),
        _ => Ok(Vec::new()),
    }
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn query(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true,
           "schema": {"type": "string", "uniqueItems": true}})
}

fn ok(schema: &str) -> Value {
    json!({"200": {"description": "OK", "content": {
        "application/json": {"schema": reference(schema)},
        "application/yaml": {"schema": reference(schema)},
    }}})
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

fn operation(action: &str, gvk: &Value, params: &[&str], responses: Value) -> Value {
    let parameters: Vec<Value> = params.iter().map(|p| query(p)).collect();
    json!({
        "parameters": parameters,
        "responses": responses,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    })
}

fn with_body(mut op: Value, content_types: &[&str], schema: &str) -> Value {
    let content: Map<String, Value> = content_types
        .iter()
        .map(|ct| ((*ct).to_string(), json!({"schema": reference(schema)})))
        .collect();
    op["requestBody"] = json!({"content": content, "required": true});
    op
}

const WRITE: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];
const PATCH_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "force"];
const LIST: &[&str] = &[
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
];

fn patch_types(custom: bool) -> &'static [&'static str] {
    if custom {
        &[
            "application/apply-patch+yaml",
            "application/json-patch+json",
            "application/merge-patch+json",
        ]
    } else {
        &[
            "application/apply-patch+yaml",
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ]
    }
}

/// Paths of one kind: collection (namespaced and across namespaces), object, and the
/// `status`/`scale` subresources.
fn kind_paths(r: &ResourceDef, paths: &mut Map<String, Value>) {
    let prefix = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    let kind_gvk = gvk(r.group, r.version, r.kind);
    let list = format!("{}List", r.schema);
    let list_schema = if SCHEMAS.contains_key(&list) {
        list
    } else {
        r.schema.to_string()
    };
    let collection = if r.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{prefix}/{}", r.plural)
    };
    let scope: Vec<Value> = if r.namespaced {
        vec![path_param("namespace")]
    } else {
        Vec::new()
    };
    let json_body = ["application/json", "application/yaml"];
    paths.insert(
        collection.clone(),
        json!({
            "parameters": scope,
            "get": operation("list", &kind_gvk, LIST, ok(&list_schema)),
            "post": with_body(operation("post", &kind_gvk, WRITE, ok(r.schema)), &json_body, r.schema),
            "delete": operation("deletecollection", &kind_gvk, LIST, ok(STATUS)),
        }),
    );
    if r.namespaced {
        paths.insert(
            format!("{prefix}/{}", r.plural),
            json!({"get": operation("list", &kind_gvk, LIST, ok(&list_schema))}),
        );
    }
    let mut item_scope = scope.clone();
    item_scope.push(path_param("name"));
    let object = |schema: &str, target_gvk: &Value| {
        json!({
            "parameters": item_scope,
            "get": operation("get", target_gvk, &[], ok(schema)),
            "put": with_body(operation("put", target_gvk, WRITE, ok(schema)), &json_body, schema),
            "patch": with_body(operation("patch", target_gvk, PATCH_PARAMS, ok(schema)), patch_types(r.custom), PATCH),
        })
    };
    let mut item = object(r.schema, &kind_gvk);
    item["delete"] = operation(
        "delete",
        &kind_gvk,
        &["dryRun", "gracePeriodSeconds", "propagationPolicy"],
        ok(STATUS),
    );
    paths.insert(format!("{collection}/{{name}}"), item);
    if r.status_subresource {
        paths.insert(
            format!("{collection}/{{name}}/status"),
            object(r.schema, &kind_gvk),
        );
    }
    if r.scale_subresource {
        paths.insert(
            format!("{collection}/{{name}}/scale"),
            object(SCALE, &gvk("autoscaling", "v1", "Scale")),
        );
    }
}

/// Adds every schema `value` refers to, transitively.
fn closure(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref" {
                    let name = v.as_str().and_then(|r| r.rsplit('/').next()).unwrap_or("");
                    if let Some(s) = SCHEMAS.get(name) {
                        if out.insert(name.to_string()) {
                            closure(s, out);
                        }
                    }
                } else {
                    closure(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| closure(v, out)),
        _ => {}
    }
}

/// The OpenAPI v3 document of one group/version, or `None` when it is not served.
pub fn v3_document(served: Served, group: &str, version: &str) -> Option<Value> {
    let kinds: Vec<&ResourceDef> = RESOURCES
        .iter()
        .filter(|r| served.serves(r) && r.group == group && r.version == version)
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    for r in &kinds {
        kind_paths(r, &mut paths);
    }
    let paths = Value::Object(paths);
    let mut names = BTreeSet::new();
    closure(&paths, &mut names);
    let schemas: Map<String, Value> = names
        .into_iter()
        .filter_map(|n| SCHEMAS.get(&n).map(|s| (n, s.clone())))
        .collect();
    let (major, minor) = discovery::KUBERNETES_VERSION;
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{major}.{minor}.0")},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// The path of a group/version's document, relative to `/openapi/v3/`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// FNV-1a of the document: the index's `hash`, so clients cache a document until it
/// changes (here: until the served kinds change).
fn hash(doc: &Value) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in serde_json::to_vec(doc).unwrap_or_default() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016X}")
}

/// `/openapi/v3`: where each group/version's document is.
pub fn v3_index(served: Served) -> Value {
    let mut paths = Map::new();
    for (group, version) in discovery::group_versions(served) {
        if let Some(doc) = v3_document(served, group, version) {
            let path = gv_path(group, version);
            paths.insert(
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", hash(&doc))}),
            );
        }
    }
    json!({"paths": paths})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_kind_has_its_schema() {
        for r in RESOURCES {
            let s = SCHEMAS
                .get(r.schema)
                .unwrap_or_else(|| panic!("{}", r.schema));
            assert_eq!(
                s["x-kubernetes-group-version-kind"][0]["kind"], r.kind,
                "{}",
                r.schema
            );
        }
        assert!(SCHEMAS.contains_key(SCALE));
    }

    #[test]
    fn patch_operations_offer_field_validation() {
        let served = Served {
            custom_resources: true,
        };
        let doc = v3_document(served, "apps", "v1").unwrap();
        let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
        assert!(op["requestBody"]["content"]
            .get("application/strategic-merge-patch+json")
            .is_some());
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        assert!(schemas.contains_key("io.k8s.api.core.v1.PodSpec"));
        assert!(!schemas.contains_key("io.k8s.api.rbac.v1.Role"));
        let crd = v3_document(served, "monitoring.coreos.com", "v1").unwrap();
        let op = &crd["paths"]
            ["/apis/monitoring.coreos.com/v1/namespaces/{namespace}/servicemonitors/{name}"]
            ["patch"];
        assert!(op["requestBody"]["content"]
            .get("application/strategic-merge-patch+json")
            .is_none());
        assert!(v3_document(Served::default(), "monitoring.coreos.com", "v1").is_none());
        let index = v3_index(served);
        assert!(index["paths"]["api/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap()
            .starts_with("/openapi/v3/api/v1?hash="));
    }

    #[test]
    fn strict_refuses_what_warn_drops() {
        let def = &RESOURCES[crate::resources::find("apps", "v1", "deployments").unwrap()];
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                         "metadata": {"name": "web"}, "spec": {"replica": 2}});
        let err = validate(def, &mut obj.clone(), FieldValidation::Strict).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message
                .ends_with("strict decoding error: unknown field \"spec.replica\""),
            "{}",
            err.message
        );
        let mut warned = obj.clone();
        let warnings = validate(def, &mut warned, FieldValidation::Warn).unwrap();
        assert_eq!(warnings, vec!["unknown field \"spec.replica\"".to_string()]);
        assert_eq!(warned["spec"], json!({}));
        let mut bad = json!({"spec": {"replicas": "2"}});
        let err = validate(def, &mut bad, FieldValidation::Ignore).unwrap_err();
        assert!(
            err.message.contains("cannot unmarshal string"),
            "{}",
            err.message
        );
    }
}
