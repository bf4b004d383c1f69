//! Label and field selectors, parsed as the API server parses them.
//!
//! Label selectors: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`,
//! comma-separated (AND). Field selectors: `=`, `==`, `!=` on a fixed set of fields per
//! kind; an unknown field is a 400 like the real server.

use serde_json::Value;

use crate::status::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector`; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<LabelReq>);

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn parse_set(rest: &str, whole: &str) -> Result<Vec<String>, ApiError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "unable to parse requirement: {whole:?}: expected a parenthesised set"
            ))
        })?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let req = if let Some(k) = part.strip_prefix('!') {
                LabelReq::NotExists(k.trim().to_string())
            } else if let Some((k, v)) = part.split_once("!=") {
                LabelReq::NotEq(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = part.split_once("==") {
                LabelReq::Eq(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = part.split_once('=') {
                LabelReq::Eq(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                LabelReq::NotIn(k.trim().to_string(), parse_set(rest, part)?)
            } else if let Some((k, rest)) = part.split_once(" in ") {
                LabelReq::In(k.trim().to_string(), parse_set(rest, part)?)
            } else if part.contains(['(', ')', ' ', '<', '>']) {
                return Err(ApiError::bad_request(format!(
                    "unable to parse requirement: {part:?}"
                )));
            } else {
                LabelReq::Exists(part.to_string())
            };
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// Whether an object (its `metadata.labels`) matches.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldReq {
    pointer: String,
    value: String,
    negate: bool,
}

/// A parsed `fieldSelector`; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<FieldReq>);

/// Fields the real server indexes for each kind (beyond `metadata.name` and
/// `metadata.namespace`, which every kind supports), by the kind's `(group, kind)`.
/// events.k8s.io Events are stored as core/v1 Events: their labels are converted.
fn kind_fields(group: &str, kind: &str) -> &'static [&'static str] {
    match (group, kind) {
        ("", "Pod") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "Node") => &["spec.unschedulable"],
        ("", "Namespace") => &["status.phase"],
        ("", "Service") => &["spec.clusterIP", "spec.type"],
        ("", "Secret") => &["type"],
        ("", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        _ => &[],
    }
}

impl FieldSelector {
    /// Parses `s` for objects of `group`/`kind`; an unsupported field is a 400.
    pub fn parse(s: &str, group: &str, kind: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (field, value, negate) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, false)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            let stored = if group == "events.k8s.io" {
                crate::events::field_label_to_core(field)
            } else if field == "metadata.name"
                || field == "metadata.namespace"
                || kind_fields(group, kind).contains(&field)
            {
                Some(field)
            } else {
                None
            };
            let Some(stored) = stored else {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            };
            reqs.push(FieldReq {
                pointer: format!("/{}", stored.replace('.', "/")),
                value: value.trim().to_string(),
                negate,
            });
        }
        Ok(Self(reqs))
    }

    /// Whether an object matches. Missing fields compare as `""`, booleans as
    /// `"true"`/`"false"`, as the server's field label conversion does.
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|r| {
            // An Event's `source` is its source component, else its reporting component.
            let pointer = match r.pointer.as_str() {
                "/source" => match obj.pointer("/source/component").and_then(Value::as_str) {
                    Some(c) if !c.is_empty() => "/source/component",
                    _ => "/reportingComponent",
                },
                p => p,
            };
            let actual = match obj.pointer(pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ if r.pointer == "/spec/unschedulable" => "false".to_string(),
                _ => String::new(),
            };
            (actual == r.value) != r.negate
        })
    }

    /// Whether the selector has no requirement.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj() -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": {"app": "web", "tier": "fe"}},
               "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}})
    }

    #[test]
    fn label_operators() {
        let o = obj();
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&o);
        assert!(m("app=web"));
        assert!(m("app==web,tier=fe"));
        assert!(!m("app=web,tier=be"));
        assert!(m("app!=db"));
        assert!(!m("app!=web"));
        assert!(m("app in (web, db)"));
        assert!(!m("app in (db)"));
        assert!(m("app notin (db)"));
        assert!(!m("app notin (db,web)"));
        assert!(m("tier"));
        assert!(!m("missing"));
        assert!(m("!missing"));
        assert!(!m("!app"));
        assert!(m(""));
        assert!(m("missing notin (x)"));
    }

    #[test]
    fn field_selectors_and_unknown_field() {
        let o = obj();
        let m = |s: &str| FieldSelector::parse(s, "", "Pod").unwrap().matches(&o);
        assert!(m("metadata.name=a"));
        assert!(m("spec.nodeName=n1,status.phase=Running"));
        assert!(m("spec.nodeName!=n2"));
        assert!(!m("status.phase==Pending"));
        let err = FieldSelector::parse("spec.bogus=1", "", "Pod").unwrap_err();
        assert_eq!(err.code, 400);
        assert!(FieldSelector::parse("spec.nodeName=n1", "coordination.k8s.io", "Lease").is_err());
    }

    #[test]
    fn event_fields_in_both_apis() {
        let ev = json!({"involvedObject": {"name": "web", "kind": "Service"},
                        "reportingComponent": "slb-sync", "source": {}, "type": "Warning"});
        let core = |s: &str| FieldSelector::parse(s, "", "Event").unwrap().matches(&ev);
        assert!(core("involvedObject.name=web,involvedObject.kind=Service"));
        assert!(core("reportingComponent=slb-sync"));
        assert!(
            core("source=slb-sync"),
            "source falls back to the reporting component"
        );
        assert!(FieldSelector::parse("regarding.name=web", "", "Event").is_err());
        let v1 = |s: &str| {
            FieldSelector::parse(s, "events.k8s.io", "Event")
                .unwrap()
                .matches(&ev)
        };
        assert!(v1(
            "regarding.name=web,reportingController=slb-sync,type=Warning"
        ));
        assert!(!v1("regarding.name=db"));
        assert!(FieldSelector::parse("involvedObject.name=web", "events.k8s.io", "Event").is_err());
    }
}
