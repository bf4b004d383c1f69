//! One Event, two APIs. The real server stores an Event once and serves it as core/v1
//! (`kubectl get events`, `kubectl describe`) and as events.k8s.io/v1 (kube-runtime's
//! `Recorder`), renaming fields on the way; so does the double. Objects are stored in
//! the core/v1 form and converted at the API boundary, both ways, so either API sees the
//! other's writes under the same name, uid and resourceVersion.

use serde_json::{Map, Value};

/// (core/v1 field, events.k8s.io/v1 field); every other field has the same name in both.
const RENAMED: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

fn rename(obj: Value, api_version: &str, from_core: bool) -> Value {
    let Value::Object(map) = obj else {
        return obj;
    };
    let mut out = Map::with_capacity(map.len());
    for (k, v) in map {
        let name = RENAMED
            .iter()
            .find(|(core, events)| if from_core { core == &k } else { events == &k })
            .map(|(core, events)| if from_core { *events } else { *core })
            .unwrap_or(k.as_str())
            .to_string();
        out.insert(name, v);
    }
    out.insert("apiVersion".into(), Value::from(api_version));
    out.insert("kind".into(), Value::from("Event"));
    Value::Object(out)
}

/// The events.k8s.io/v1 view of a stored (core/v1) Event.
pub fn to_events_v1(core: Value) -> Value {
    rename(core, "events.k8s.io/v1", true)
}

/// The core/v1 (stored) form of an events.k8s.io/v1 Event.
pub fn to_core(events_v1: Value) -> Value {
    rename(events_v1, "v1", false)
}

/// An events.k8s.io/v1 field label as the stored object names it (the real server's
/// field label conversion); `None` for a label that API does not select on.
pub fn field_label_to_core(label: &str) -> Option<&'static str> {
    Some(match label {
        "metadata.name" => "metadata.name",
        "metadata.namespace" => "metadata.namespace",
        "reason" => "reason",
        "type" => "type",
        "reportingController" => "reportingComponent",
        "regarding.kind" => "involvedObject.kind",
        "regarding.namespace" => "involvedObject.namespace",
        "regarding.name" => "involvedObject.name",
        "regarding.uid" => "involvedObject.uid",
        "regarding.apiVersion" => "involvedObject.apiVersion",
        "regarding.resourceVersion" => "involvedObject.resourceVersion",
        "regarding.fieldPath" => "involvedObject.fieldPath",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_ways_round_trip() {
        let v1 = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "default"},
            "regarding": {"kind": "Service", "name": "web", "namespace": "default", "uid": "u1"},
            "note": "bad value", "reason": "BadAnnotation", "type": "Warning",
            "action": "Reconcile", "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "slb-sync", "reportingInstance": "agent-0",
            "series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:05.000000Z"},
            "deprecatedCount": 3,
        });
        let core = to_core(v1.clone());
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "web");
        assert_eq!(core["message"], "bad value");
        assert_eq!(core["reportingComponent"], "slb-sync");
        assert_eq!(core["count"], 3);
        assert_eq!(core["series"]["count"], 2);
        assert!(core.get("regarding").is_none() && core.get("note").is_none());
        assert_eq!(to_events_v1(core), v1);
    }

    #[test]
    fn field_labels() {
        assert_eq!(
            field_label_to_core("regarding.name"),
            Some("involvedObject.name")
        );
        assert_eq!(
            field_label_to_core("reportingController"),
            Some("reportingComponent")
        );
        assert_eq!(field_label_to_core("note"), None);
    }
}
