//! Protobuf request bodies of the RBAC kinds.
//!
//! Since client-go 1.32 the typed clients of built-in kinds send their bodies in
//! protobuf, and client-go falls back to JSON after a `415` only from CBOR, never from
//! protobuf: a server that cannot read protobuf ends `kubectl create clusterrolebinding`
//! (and every other `kubectl create <kind>`) with an error. The docs bind the doctor's
//! ClusterRole that way, so the double reads the protobuf form of Roles, ClusterRoles,
//! RoleBindings and ClusterRoleBindings: the `k8s\0` envelope (`runtime.Unknown`), then the
//! object by the field numbers of the kinds' `generated.proto`. Other kinds' protobuf
//! bodies stay `415`; answers are JSON, which those clients also accept.

use serde_json::{json, Map, Value};

use crate::resources::ResourceDef;
use crate::status::ApiError;

/// How one protobuf field becomes a JSON field.
#[derive(Clone, Copy)]
enum F {
    Str(&'static str),
    Int(&'static str),
    Bool(&'static str),
    Time(&'static str),
    Strings(&'static str),
    StringMap(&'static str),
    Msg(&'static str, &'static [(u32, F)]),
    Msgs(&'static str, &'static [(u32, F)]),
    /// Read elsewhere (the envelope's `raw`).
    Skip,
}

/// A field's value on the wire.
enum Wire<'a> {
    Bytes(&'a [u8]),
    Number(u64),
}

const OWNER_REFERENCE: &[(u32, F)] = &[
    (1, F::Str("kind")),
    (3, F::Str("name")),
    (4, F::Str("uid")),
    (5, F::Str("apiVersion")),
    (6, F::Bool("controller")),
    (7, F::Bool("blockOwnerDeletion")),
];

const OBJECT_META: &[(u32, F)] = &[
    (1, F::Str("name")),
    (2, F::Str("generateName")),
    (3, F::Str("namespace")),
    (4, F::Str("selfLink")),
    (5, F::Str("uid")),
    (6, F::Str("resourceVersion")),
    (7, F::Int("generation")),
    (8, F::Time("creationTimestamp")),
    (9, F::Time("deletionTimestamp")),
    (10, F::Int("deletionGracePeriodSeconds")),
    (11, F::StringMap("labels")),
    (12, F::StringMap("annotations")),
    (13, F::Msgs("ownerReferences", OWNER_REFERENCE)),
    (14, F::Strings("finalizers")),
];

const SUBJECT: &[(u32, F)] = &[
    (1, F::Str("kind")),
    (2, F::Str("apiGroup")),
    (3, F::Str("name")),
    (4, F::Str("namespace")),
];

const ROLE_REF: &[(u32, F)] = &[
    (1, F::Str("apiGroup")),
    (2, F::Str("kind")),
    (3, F::Str("name")),
];

const POLICY_RULE: &[(u32, F)] = &[
    (1, F::Strings("verbs")),
    (2, F::Strings("apiGroups")),
    (3, F::Strings("resources")),
    (4, F::Strings("resourceNames")),
    (5, F::Strings("nonResourceURLs")),
];

const LABEL_SELECTOR_REQUIREMENT: &[(u32, F)] = &[
    (1, F::Str("key")),
    (2, F::Str("operator")),
    (3, F::Strings("values")),
];

const LABEL_SELECTOR: &[(u32, F)] = &[
    (1, F::StringMap("matchLabels")),
    (2, F::Msgs("matchExpressions", LABEL_SELECTOR_REQUIREMENT)),
];

const AGGREGATION_RULE: &[(u32, F)] = &[(1, F::Msgs("clusterRoleSelectors", LABEL_SELECTOR))];

const BINDING: &[(u32, F)] = &[
    (1, F::Msg("metadata", OBJECT_META)),
    (2, F::Msgs("subjects", SUBJECT)),
    (3, F::Msg("roleRef", ROLE_REF)),
];

const ROLE: &[(u32, F)] = &[
    (1, F::Msg("metadata", OBJECT_META)),
    (2, F::Msgs("rules", POLICY_RULE)),
];

const CLUSTER_ROLE: &[(u32, F)] = &[
    (1, F::Msg("metadata", OBJECT_META)),
    (2, F::Msgs("rules", POLICY_RULE)),
    (3, F::Msg("aggregationRule", AGGREGATION_RULE)),
];

const UNKNOWN: &[(u32, F)] = &[
    (
        1,
        F::Msg(
            "typeMeta",
            &[(1, F::Str("apiVersion")), (2, F::Str("kind"))],
        ),
    ),
    (2, F::Skip),
    (3, F::Str("contentEncoding")),
    (4, F::Str("contentType")),
];

/// The layout of `def`'s protobuf form, when the double reads it.
fn layout(def: &ResourceDef) -> Option<&'static [(u32, F)]> {
    match (def.group, def.kind) {
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => Some(BINDING),
        ("rbac.authorization.k8s.io", "Role") => Some(ROLE),
        ("rbac.authorization.k8s.io", "ClusterRole") => Some(CLUSTER_ROLE),
        _ => None,
    }
}

fn bad(why: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("error decoding protobuf request body: {why}"))
}

struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self
                .data
                .split_first()
                .ok_or_else(|| bad("truncated varint"))?;
            self.data = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint too long"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ApiError> {
        if n > self.data.len() {
            return Err(bad("truncated field"));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    /// The next field: its number and value.
    fn field(&mut self) -> Result<(u32, Wire<'a>), ApiError> {
        let tag = self.varint()?;
        let number = u32::try_from(tag >> 3).map_err(|_| bad("field number"))?;
        let value = match tag & 7 {
            0 => Wire::Number(self.varint()?),
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| bad("length"))?;
                Wire::Bytes(self.take(n)?)
            }
            1 => Wire::Number(u64::from_le_bytes(
                self.take(8)?.try_into().unwrap_or([0; 8]),
            )),
            5 => Wire::Number(u64::from(u32::from_le_bytes(
                self.take(4)?.try_into().unwrap_or([0; 4]),
            ))),
            w => return Err(bad(format!("wire type {w} of field {number}"))),
        };
        Ok((number, value))
    }
}

fn text(b: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(b.to_vec()).map_err(|_| bad("a string is not UTF-8"))
}

fn time(b: &[u8]) -> Result<Option<String>, ApiError> {
    let mut r = Reader { data: b };
    let mut seconds = 0i64;
    while !r.data.is_empty() {
        if let (1, Wire::Number(v)) = r.field()? {
            seconds = v as i64;
        }
    }
    if seconds == 0 {
        return Ok(None);
    }
    let t = jiff::Timestamp::from_second(seconds).map_err(bad)?;
    Ok(Some(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

/// Decodes one message by its layout; empty strings, zero numbers and unset times are left
/// out, as the API's JSON omits them.
fn message(data: &[u8], layout: &[(u32, F)]) -> Result<Map<String, Value>, ApiError> {
    let mut out = Map::new();
    let mut r = Reader { data };
    while !r.data.is_empty() {
        let (number, value) = r.field()?;
        let Some((_, f)) = layout.iter().find(|(n, _)| *n == number) else {
            return Err(bad(format!("field {number} is not understood here")));
        };
        match (*f, value) {
            (F::Skip, _) => {}
            (F::Str(k), Wire::Bytes(b)) => {
                let s = text(b)?;
                if !s.is_empty() {
                    out.insert(k.into(), json!(s));
                }
            }
            (F::Int(k), Wire::Number(v)) => {
                if v != 0 {
                    out.insert(k.into(), json!(v as i64));
                }
            }
            (F::Bool(k), Wire::Number(v)) => {
                out.insert(k.into(), json!(v != 0));
            }
            (F::Time(k), Wire::Bytes(b)) => {
                if let Some(t) = time(b)? {
                    out.insert(k.into(), json!(t));
                }
            }
            (F::Strings(k), Wire::Bytes(b)) => push(&mut out, k, json!(text(b)?)),
            (F::StringMap(k), Wire::Bytes(b)) => {
                let entry = message(b, &[(1, F::Str("key")), (2, F::Str("value"))])?;
                let key = entry.get("key").and_then(Value::as_str).unwrap_or("");
                let value = entry.get("value").cloned().unwrap_or_else(|| json!(""));
                let map = out.entry(k).or_insert_with(|| json!({}));
                map[key] = value;
            }
            (F::Msg(k, l), Wire::Bytes(b)) => {
                out.insert(k.into(), Value::Object(message(b, l)?));
            }
            (F::Msgs(k, l), Wire::Bytes(b)) => push(&mut out, k, Value::Object(message(b, l)?)),
            _ => return Err(bad(format!("field {number} has the wrong wire type"))),
        }
    }
    Ok(out)
}

fn push(out: &mut Map<String, Value>, key: &str, v: Value) {
    match out.entry(key).or_insert_with(|| json!([])) {
        Value::Array(a) => a.push(v),
        other => *other = json!([v]),
    }
}

/// The JSON form of a protobuf body sent for `def`, or `415` for a kind not read.
pub fn decode(def: &ResourceDef, content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    let Some(layout) = layout(def) else {
        return Err(ApiError::unsupported_media_type(
            content_type,
            "application/json, application/yaml",
        ));
    };
    let envelope = body
        .strip_prefix(b"k8s\0".as_slice())
        .ok_or_else(|| bad("no k8s protobuf envelope"))?;
    let unknown = message(envelope, UNKNOWN)?;
    let mut r = Reader { data: envelope };
    let mut raw: &[u8] = &[];
    while !r.data.is_empty() {
        if let (2, Wire::Bytes(b)) = r.field()? {
            raw = b;
        }
    }
    let api_version = unknown
        .get("typeMeta")
        .and_then(|t| t.get("apiVersion"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = unknown
        .get("typeMeta")
        .and_then(|t| t.get("kind"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if api_version != def.api_version() || kind != def.kind {
        return Err(bad(format!(
            "{api_version}/{kind} sent to the {} endpoint",
            def.resource_name()
        )));
    }
    let mut obj = message(raw, layout)?;
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{find, RESOURCES};

    fn field(out: &mut Vec<u8>, number: u8, data: &[u8]) {
        out.push(number << 3 | 2);
        out.push(data.len() as u8);
        out.extend_from_slice(data);
    }

    /// What client-go sends for `kubectl create clusterrolebinding b --clusterrole=r --user=alice`.
    fn binding() -> Vec<u8> {
        let mut meta = Vec::new();
        field(&mut meta, 1, b"b");
        field(&mut meta, 8, b""); // creationTimestamp: always written, zero
        let mut subject = Vec::new();
        field(&mut subject, 1, b"User");
        field(&mut subject, 2, b"rbac.authorization.k8s.io");
        field(&mut subject, 3, b"alice");
        field(&mut subject, 4, b"");
        let mut role_ref = Vec::new();
        field(&mut role_ref, 1, b"rbac.authorization.k8s.io");
        field(&mut role_ref, 2, b"ClusterRole");
        field(&mut role_ref, 3, b"r");
        let mut raw = Vec::new();
        field(&mut raw, 1, &meta);
        field(&mut raw, 2, &subject);
        field(&mut raw, 3, &role_ref);
        let mut type_meta = Vec::new();
        field(&mut type_meta, 1, b"rbac.authorization.k8s.io/v1");
        field(&mut type_meta, 2, b"ClusterRoleBinding");
        let mut unknown = b"k8s\0".to_vec();
        field(&mut unknown, 1, &type_meta);
        field(&mut unknown, 2, &raw);
        field(&mut unknown, 3, b"");
        field(&mut unknown, 4, b"");
        unknown
    }

    #[test]
    fn reads_a_cluster_role_binding() {
        let def =
            &RESOURCES[find("rbac.authorization.k8s.io", "v1", "clusterrolebindings").unwrap()];
        let v = decode(def, "application/vnd.kubernetes.protobuf", &binding()).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                   "metadata": {"name": "b"},
                   "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}],
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "r"}})
        );
        let role_binding =
            &RESOURCES[find("rbac.authorization.k8s.io", "v1", "rolebindings").unwrap()];
        assert_eq!(
            decode(role_binding, "x", &binding()).unwrap_err().code,
            400,
            "kind must match"
        );
        let pods = &RESOURCES[find("", "v1", "pods").unwrap()];
        assert_eq!(decode(pods, "x", &binding()).unwrap_err().code, 415);
        assert_eq!(decode(def, "x", b"k8s\0\x0a\x05ab").unwrap_err().code, 400);
    }
}
