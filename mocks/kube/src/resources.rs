//! The fixed table of resource kinds the double serves, and the discovery documents
//! built from it.
//!
//! Kinds are data, not types: every object is a `serde_json::Value`, and this table says
//! only what differs between kinds (path, scope, status subresource, what create resets).

use serde_json::{json, Value};

/// What `create` does with `.status` for a kind that has a status subresource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusOnCreate {
    /// Keep what the client sent (nodes: the real API lets kubelet create a full node).
    Keep,
    /// Replace with `{}` (services).
    Clear,
    /// Replace with `{"phase": "Pending"}` (pods).
    PodPending,
    /// Replace with `{"phase": "Active"}` (namespaces).
    NamespaceActive,
}

/// One served resource kind.
#[derive(Debug, Clone, Copy)]
pub struct ResourceDef {
    /// API group; `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    /// Plural path segment, e.g. `pods`.
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    /// Has a `/status` subresource: the main endpoint then ignores `.status` changes.
    pub status_subresource: bool,
    pub status_on_create: StatusOnCreate,
    pub short_names: &'static [&'static str],
}

impl ResourceDef {
    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Shorthand for the table below: kind, scope and status rules.
struct Spec {
    kind: &'static str,
    namespaced: bool,
    status: Option<StatusOnCreate>,
}

const fn def(
    gvr: (&'static str, &'static str, &'static str),
    singular: &'static str,
    spec: Spec,
    short_names: &'static [&'static str],
) -> ResourceDef {
    ResourceDef {
        group: gvr.0,
        version: gvr.1,
        plural: gvr.2,
        singular,
        kind: spec.kind,
        namespaced: spec.namespaced,
        status_subresource: spec.status.is_some(),
        status_on_create: match spec.status {
            Some(s) => s,
            None => StatusOnCreate::Keep,
        },
        short_names,
    }
}

/// Every kind the double serves. Index into this table is the kind's id in the store.
pub const RESOURCES: &[ResourceDef] = &[
    def(
        ("", "v1", "pods"),
        "pod",
        Spec {
            kind: "Pod",
            namespaced: true,
            status: Some(StatusOnCreate::PodPending),
        },
        &["po"],
    ),
    def(
        ("", "v1", "services"),
        "service",
        Spec {
            kind: "Service",
            namespaced: true,
            status: Some(StatusOnCreate::Clear),
        },
        &["svc"],
    ),
    def(
        ("", "v1", "nodes"),
        "node",
        Spec {
            kind: "Node",
            namespaced: false,
            status: Some(StatusOnCreate::Keep),
        },
        &["no"],
    ),
    def(
        ("", "v1", "namespaces"),
        "namespace",
        Spec {
            kind: "Namespace",
            namespaced: false,
            status: Some(StatusOnCreate::NamespaceActive),
        },
        &["ns"],
    ),
    def(
        ("", "v1", "events"),
        "event",
        Spec {
            kind: "Event",
            namespaced: true,
            status: None,
        },
        &["ev"],
    ),
    def(
        ("discovery.k8s.io", "v1", "endpointslices"),
        "endpointslice",
        Spec {
            kind: "EndpointSlice",
            namespaced: true,
            status: None,
        },
        &[],
    ),
    def(
        ("coordination.k8s.io", "v1", "leases"),
        "lease",
        Spec {
            kind: "Lease",
            namespaced: true,
            status: None,
        },
        &[],
    ),
    def(
        ("events.k8s.io", "v1", "events"),
        "event",
        Spec {
            kind: "Event",
            namespaced: true,
            status: None,
        },
        &["ev"],
    ),
    // Workloads, for `slb-sync doctor --live`; no controller acts on them here.
    def(
        ("apps", "v1", "deployments"),
        "deployment",
        Spec {
            kind: "Deployment",
            namespaced: true,
            status: Some(StatusOnCreate::Clear),
        },
        &["deploy"],
    ),
    def(
        ("apps", "v1", "statefulsets"),
        "statefulset",
        Spec {
            kind: "StatefulSet",
            namespaced: true,
            status: Some(StatusOnCreate::Clear),
        },
        &["sts"],
    ),
];

/// Finds a kind by group, version and plural.
pub fn find(group: &str, version: &str, plural: &str) -> Option<usize> {
    RESOURCES
        .iter()
        .position(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Finds a kind by `apiVersion` and `kind` (used by the direct `put` hook).
pub fn find_by_kind(api_version: &str, kind: &str) -> Option<usize> {
    RESOURCES
        .iter()
        .position(|r| r.api_version() == api_version && r.kind == kind)
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// `APIResourceList` for one group/version, or `None` when it is not served.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut resources = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        resources.push(json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
            "shortNames": r.short_names,
        }));
        if r.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

/// `APIVersions` served at `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// `APIGroupList` served at `/apis`.
pub fn group_list() -> Value {
    let mut groups: Vec<Value> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if groups.iter().any(|g| g["name"] == r.group) {
            continue;
        }
        let gv = json!({"groupVersion": r.api_version(), "version": r.version});
        groups.push(json!({
            "name": r.group,
            "versions": [gv.clone()],
            "preferredVersion": gv,
        }));
    }
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `APIGroup` served at `/apis/<group>`.
pub fn group(name: &str) -> Option<Value> {
    group_list()["groups"]
        .as_array()
        .and_then(|gs| gs.iter().find(|g| g["name"] == name).cloned())
        .map(|mut g| {
            g["kind"] = json!("APIGroup");
            g["apiVersion"] = json!("v1");
            g
        })
}

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-mock-kube",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}
