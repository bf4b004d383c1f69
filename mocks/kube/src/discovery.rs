//! The discovery documents (`/version`, `/api`, `/apis`, `/apis/<group>`,
//! `/api/v1`, `/apis/<group>/<version>`), built from the resource table.
//!
//! Only the legacy (non-aggregated) documents are served: a client asking for aggregated
//! discovery (`as=APIGroupDiscoveryList`) also accepts `application/json` and then reads
//! these, as it would from a server older than 1.26.

use serde_json::{json, Value};

use crate::resources::{ResourceDef, RESOURCES};

/// The Kubernetes release the double answers as (its OpenAPI schemas are that release's).
pub const KUBERNETES_VERSION: (&str, &str) = ("1", "33");

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

/// Kinds `kubectl get all` lists (the real server's `all` category).
fn categories(r: &ResourceDef) -> &'static [&'static str] {
    match (r.group, r.plural) {
        ("", "pods" | "services") | ("apps", "deployments" | "statefulsets") => &["all"],
        _ => &[],
    }
}

/// Which kinds this server serves: custom resources only while their CRDs are installed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Served {
    pub custom_resources: bool,
}

impl Served {
    pub fn serves(&self, r: &ResourceDef) -> bool {
        !r.custom || self.custom_resources
    }

    fn kinds(self) -> impl Iterator<Item = &'static ResourceDef> {
        RESOURCES.iter().filter(move |r| self.serves(r))
    }
}

/// `APIResourceList` for one group/version, or `None` when it is not served.
pub fn api_resource_list(served: Served, group: &str, version: &str) -> Option<Value> {
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut resources = Vec::new();
    for r in served
        .kinds()
        .filter(|r| r.group == group && r.version == version)
    {
        resources.push(json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
            "shortNames": r.short_names,
            "categories": categories(r),
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
        if r.scale_subresource {
            resources.push(json!({
                "name": format!("{}/scale", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
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
pub fn group_list(served: Served) -> Value {
    let mut groups: Vec<Value> = Vec::new();
    for r in served.kinds().filter(|r| !r.group.is_empty()) {
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
pub fn group(served: Served, name: &str) -> Option<Value> {
    group_list(served)["groups"]
        .as_array()
        .and_then(|gs| gs.iter().find(|g| g["name"] == name).cloned())
        .map(|mut g| {
            g["kind"] = json!("APIGroup");
            g["apiVersion"] = json!("v1");
            g
        })
}

/// The group/versions served, core first (`("", "v1")`).
pub fn group_versions(served: Served) -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in served.kinds() {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// `/version`.
pub fn version() -> Value {
    let (major, minor) = KUBERNETES_VERSION;
    json!({
        "major": major,
        "minor": minor,
        "gitVersion": format!("v{major}.{minor}.0-mock-kube"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}
