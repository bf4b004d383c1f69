//! The columns and cells of each kind's `Table`, after the real server's printers.

use serde_json::{json, Value};

use crate::resources::ResourceDef;

type Cells = Vec<Value>;

fn s<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn i(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn arr<'a>(obj: &'a Value, pointer: &str) -> &'a [Value] {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn or_none(v: String) -> String {
    if v.is_empty() {
        "<none>".into()
    } else {
        v
    }
}

/// A duration as kubectl prints ages (`duration.HumanDuration`).
pub(super) fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 && s % 60 == 0 => format!("{m}m"),
        s if s < 600 => format!("{m}m{}s", s % 60),
        s if s < 3 * 3600 => format!("{m}m"),
        s if s < 8 * 3600 && m % 60 == 0 => format!("{h}h"),
        s if s < 8 * 3600 => format!("{h}h{}m", m % 60),
        s if s < 48 * 3600 => format!("{h}h"),
        s if s < 8 * 86_400 && h % 24 == 0 => format!("{d}d"),
        s if s < 8 * 86_400 => format!("{d}d{}h", h % 24),
        s if s < 2 * 365 * 86_400 => format!("{d}d"),
        _ => format!("{}y", d / 365),
    }
}

/// The age of an RFC 3339 timestamp, `<unknown>` when absent.
fn age(ts: &str) -> String {
    match ts.parse::<jiff::Timestamp>() {
        Ok(t) => human_duration(jiff::Timestamp::now().as_second() - t.as_second()),
        Err(_) => "<unknown>".into(),
    }
}

fn created(obj: &Value) -> String {
    age(s(obj, "/metadata/creationTimestamp"))
}

fn col(name: &str, ty: &str, format: &str, priority: i64) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": "", "priority": priority})
}

fn name_col() -> Value {
    col("Name", "string", "name", 0)
}

fn age_col() -> Value {
    col("Age", "string", "", 0)
}

fn pod_row(o: &Value) -> Cells {
    let containers = arr(o, "/spec/containers").len();
    let statuses = arr(o, "/status/containerStatuses");
    let ready = statuses.iter().filter(|c| c["ready"] == true).count();
    let restarts: i64 = statuses
        .iter()
        .map(|c| c["restartCount"].as_i64().unwrap_or(0))
        .sum();
    let mut reason = s(o, "/status/reason").to_string();
    if reason.is_empty() {
        reason = s(o, "/status/phase").to_string();
    }
    for c in statuses {
        if let Some(r) = c.pointer("/state/waiting/reason").and_then(Value::as_str) {
            reason = r.to_string();
        }
    }
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        reason = "Terminating".into();
    }
    let gates = arr(o, "/spec/readinessGates");
    let gates_cell = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = arr(o, "/status/conditions");
        let met = gates
            .iter()
            .filter(|g| {
                conditions
                    .iter()
                    .any(|c| c["type"] == g["conditionType"] && c["status"] == "True")
            })
            .count();
        format!("{met}/{}", gates.len())
    };
    vec![
        json!(s(o, "/metadata/name")),
        json!(format!("{ready}/{containers}")),
        json!(reason),
        json!(restarts),
        json!(created(o)),
        json!(or_none(s(o, "/status/podIP").into())),
        json!(or_none(s(o, "/spec/nodeName").into())),
        json!(or_none(s(o, "/status/nominatedNodeName").into())),
        json!(gates_cell),
    ]
}

fn service_row(o: &Value) -> Cells {
    let ty = s(o, "/spec/type");
    let ingress: Vec<String> = arr(o, "/status/loadBalancer/ingress")
        .iter()
        .filter_map(|i| i["ip"].as_str().or(i["hostname"].as_str()))
        .map(str::to_string)
        .collect();
    let external = match ty {
        "LoadBalancer" if ingress.is_empty() => "<pending>".to_string(),
        "LoadBalancer" => ingress.join(","),
        "ExternalName" => s(o, "/spec/externalName").to_string(),
        _ => "<none>".to_string(),
    };
    let ports: Vec<String> = arr(o, "/spec/ports")
        .iter()
        .map(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64() {
                Some(np) => format!("{}:{np}/{proto}", p["port"]),
                None => format!("{}/{proto}", p["port"]),
            }
        })
        .collect();
    let selector: Vec<String> = o
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    vec![
        json!(s(o, "/metadata/name")),
        json!(ty),
        json!(or_none(s(o, "/spec/clusterIP").into())),
        json!(external),
        json!(or_none(ports.join(","))),
        json!(created(o)),
        json!(or_none(selector.join(","))),
    ]
}

fn node_row(o: &Value) -> Cells {
    let ready = arr(o, "/status/conditions")
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| c["status"] == "True");
    let mut status = match ready {
        Some(true) => "Ready".to_string(),
        Some(false) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if o.pointer("/spec/unschedulable") == Some(&json!(true)) {
        status.push_str(",SchedulingDisabled");
    }
    let roles: Vec<String> = o
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    vec![
        json!(s(o, "/metadata/name")),
        json!(status),
        json!(or_none(roles.join(","))),
        json!(created(o)),
        json!(s(o, "/status/nodeInfo/kubeletVersion")),
    ]
}

/// Core and events.k8s.io Events print alike; `core` is the stored (core/v1) form.
pub(super) fn event_row(core: &Value) -> Cells {
    let first = match core.get("firstTimestamp").and_then(Value::as_str) {
        Some(t) => age(t),
        None => age(s(core, "/eventTime")),
    };
    let mut last = match core.get("lastTimestamp").and_then(Value::as_str) {
        Some(t) => age(t),
        None => first.clone(),
    };
    let mut count = i(core, "/count").max(1);
    if core.get("series").is_some_and(Value::is_object) {
        last = age(s(core, "/series/lastObservedTime"));
        count = i(core, "/series/count");
    }
    let kind = s(core, "/involvedObject/kind").to_lowercase();
    let name = s(core, "/involvedObject/name");
    let target = if name.is_empty() {
        kind
    } else {
        format!("{kind}/{name}")
    };
    let mut source = s(core, "/source/component").to_string();
    if source.is_empty() {
        source = s(core, "/reportingComponent").to_string();
    }
    let host = s(core, "/source/host");
    let instance = s(core, "/reportingInstance");
    if !host.is_empty() {
        source = format!("{source}, {host}");
    } else if !instance.is_empty() && instance != source {
        source = format!("{source}, {instance}");
    }
    vec![
        json!(last),
        json!(s(core, "/type")),
        json!(s(core, "/reason")),
        json!(target),
        json!(s(core, "/involvedObject/fieldPath")),
        json!(source),
        json!(s(core, "/message").trim()),
        json!(first),
        json!(count),
        json!(s(core, "/metadata/name")),
    ]
}

fn containers_cells(o: &Value, pod_spec: &str) -> (String, String) {
    let cs = arr(o, &format!("{pod_spec}/containers"));
    let names: Vec<&str> = cs.iter().filter_map(|c| c["name"].as_str()).collect();
    let images: Vec<&str> = cs.iter().filter_map(|c| c["image"].as_str()).collect();
    (names.join(","), images.join(","))
}

fn selector_string(o: &Value, pointer: &str) -> String {
    let labels: Vec<String> = o
        .pointer(&format!("{pointer}/matchLabels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    or_none(labels.join(","))
}

/// Column definitions and a row renderer for a kind.
pub(super) fn printer(def: &ResourceDef) -> (Vec<Value>, fn(&Value) -> Cells) {
    match (def.group, def.kind) {
        ("", "Pod") => (
            vec![
                name_col(),
                col("Ready", "string", "", 0),
                col("Status", "string", "", 0),
                col("Restarts", "string", "", 0),
                age_col(),
                col("IP", "string", "", 1),
                col("Node", "string", "", 1),
                col("Nominated Node", "string", "", 1),
                col("Readiness Gates", "string", "", 1),
            ],
            pod_row,
        ),
        ("", "Service") => (
            vec![
                name_col(),
                col("Type", "string", "", 0),
                col("Cluster-IP", "string", "", 0),
                col("External-IP", "string", "", 0),
                col("Port(s)", "string", "", 0),
                age_col(),
                col("Selector", "string", "", 1),
            ],
            service_row,
        ),
        ("", "Node") => (
            vec![
                name_col(),
                col("Status", "string", "", 0),
                col("Roles", "string", "", 0),
                age_col(),
                col("Version", "string", "", 0),
            ],
            node_row,
        ),
        ("", "Namespace") => (
            vec![name_col(), col("Status", "string", "", 0), age_col()],
            |o| {
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(s(o, "/status/phase")),
                    json!(created(o)),
                ]
            },
        ),
        ("", "Event") | ("events.k8s.io", "Event") => (
            vec![
                col("Last Seen", "string", "", 0),
                col("Type", "string", "", 0),
                col("Reason", "string", "", 0),
                col("Object", "string", "", 0),
                col("Subobject", "string", "", 1),
                col("Source", "string", "", 1),
                col("Message", "string", "", 0),
                col("First Seen", "string", "", 1),
                col("Count", "string", "", 1),
                col("Name", "string", "", 1),
            ],
            event_row,
        ),
        ("coordination.k8s.io", "Lease") => (
            vec![name_col(), col("Holder", "string", "", 0), age_col()],
            |o| {
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(s(o, "/spec/holderIdentity")),
                    json!(created(o)),
                ]
            },
        ),
        ("apps", "Deployment") => (
            vec![
                name_col(),
                col("Ready", "string", "", 0),
                col("Up-to-date", "integer", "", 0),
                col("Available", "integer", "", 0),
                age_col(),
                col("Containers", "string", "", 1),
                col("Images", "string", "", 1),
                col("Selector", "string", "", 1),
            ],
            |o| {
                let (names, images) = containers_cells(o, "/spec/template/spec");
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(format!(
                        "{}/{}",
                        i(o, "/status/readyReplicas"),
                        o.pointer("/spec/replicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(1)
                    )),
                    json!(i(o, "/status/updatedReplicas")),
                    json!(i(o, "/status/availableReplicas")),
                    json!(created(o)),
                    json!(names),
                    json!(images),
                    json!(selector_string(o, "/spec/selector")),
                ]
            },
        ),
        ("apps", "StatefulSet") => (
            vec![
                name_col(),
                col("Ready", "string", "", 0),
                age_col(),
                col("Containers", "string", "", 1),
                col("Images", "string", "", 1),
            ],
            |o| {
                let (names, images) = containers_cells(o, "/spec/template/spec");
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(format!(
                        "{}/{}",
                        i(o, "/status/readyReplicas"),
                        o.pointer("/spec/replicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(1)
                    )),
                    json!(created(o)),
                    json!(names),
                    json!(images),
                ]
            },
        ),
        ("policy", "PodDisruptionBudget") => (
            vec![
                name_col(),
                col("Min Available", "string", "", 0),
                col("Max Unavailable", "string", "", 0),
                col("Allowed Disruptions", "integer", "", 0),
                age_col(),
            ],
            |o| {
                let v = |p: &str| match o.pointer(p) {
                    Some(Value::String(x)) => x.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => "N/A".into(),
                };
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(v("/spec/minAvailable")),
                    json!(v("/spec/maxUnavailable")),
                    json!(i(o, "/status/disruptionsAllowed")),
                    json!(created(o)),
                ]
            },
        ),
        ("", "Secret") => (
            vec![
                name_col(),
                col("Type", "string", "", 0),
                col("Data", "string", "", 0),
                age_col(),
            ],
            |o| {
                let n = ["/data", "/stringData"]
                    .iter()
                    .filter_map(|p| o.pointer(p).and_then(Value::as_object))
                    .map(serde_json::Map::len)
                    .sum::<usize>();
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(s(o, "/type")),
                    json!(n),
                    json!(created(o)),
                ]
            },
        ),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => (
            vec![name_col(), col("Role", "string", "", 0), age_col()],
            |o| {
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(format!(
                        "{}/{}",
                        s(o, "/roleRef/kind"),
                        s(o, "/roleRef/name")
                    )),
                    json!(created(o)),
                ]
            },
        ),
        ("rbac.authorization.k8s.io", _) => {
            (vec![name_col(), col("Created At", "date", "", 0)], |o| {
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(s(o, "/metadata/creationTimestamp")),
                ]
            })
        }
        _ => (vec![name_col(), age_col()], |o| {
            vec![json!(s(o, "/metadata/name")), json!(created(o))]
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_print_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(4 * 3600 + 120), "4h2m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86_400 + 3600), "3d1h");
        assert_eq!(human_duration(30 * 86_400), "30d");
    }

    #[test]
    fn event_cells_from_either_api() {
        let core = json!({"metadata": {"name": "web.1"}, "type": "Warning", "reason": "BadAnnotation",
                          "involvedObject": {"kind": "Service", "name": "web"},
                          "message": " bad value ", "reportingComponent": "slb-sync",
                          "eventTime": jiff::Timestamp::now().to_string(),
                          "series": {"count": 3, "lastObservedTime": jiff::Timestamp::now().to_string()}});
        let cells = event_row(&core);
        assert_eq!(cells[1], "Warning");
        assert_eq!(cells[2], "BadAnnotation");
        assert_eq!(cells[3], "service/web");
        assert_eq!(cells[5], "slb-sync");
        assert_eq!(cells[6], "bad value");
        assert_eq!(cells[8], 3);
    }
}
