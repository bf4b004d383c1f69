//! The fixed table of resource kinds the double serves.
//!
//! Kinds are data, not types: every object is a `serde_json::Value`, and this table says
//! only what differs between kinds (path, scope, subresources, what create resets, the
//! OpenAPI schema that validates it, where it is stored).

use serde_json::Value;

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
    /// Has a `/scale` subresource (`autoscaling/v1` Scale over `spec.replicas`).
    pub scale_subresource: bool,
    /// Name of the OpenAPI component schema that validates the kind.
    pub schema: &'static str,
    /// A custom resource (served only when its CRD is "installed"): no strategic merge
    /// patch, as on the real server.
    pub custom: bool,
    /// Stored as another kind of the table, converted on every read and write (a real
    /// server keeps one object and serves it through several API groups).
    pub stored_as: Option<(&'static str, &'static str, &'static str)>,
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

    /// `pods` or `deployments.apps`, as error messages name a resource.
    pub fn resource_name(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The object as this API serves it, from its stored form.
    pub fn to_view(&self, stored: Value) -> Value {
        match self.stored_as {
            Some(_) if self.group == "events.k8s.io" => crate::events::to_events_v1(stored),
            _ => stored,
        }
    }

    /// The stored form of an object this API was sent.
    pub fn to_stored(&self, view: Value) -> Value {
        match self.stored_as {
            Some(_) if self.group == "events.k8s.io" => crate::events::to_core(view),
            _ => view,
        }
    }

    const fn with_scale(mut self) -> Self {
        self.scale_subresource = true;
        self
    }

    const fn custom(mut self) -> Self {
        self.custom = true;
        self
    }

    const fn stored_as(mut self, gvr: (&'static str, &'static str, &'static str)) -> Self {
        self.stored_as = Some(gvr);
        self
    }
}

/// Shorthand for the table below: kind, scope, status rules and schema.
struct Spec {
    kind: &'static str,
    namespaced: bool,
    status: Option<StatusOnCreate>,
    schema: &'static str,
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
        scale_subresource: false,
        schema: spec.schema,
        custom: false,
        stored_as: None,
    }
}

const fn ns(kind: &'static str, schema: &'static str) -> Spec {
    Spec {
        kind,
        namespaced: true,
        status: None,
        schema,
    }
}

const fn cluster(kind: &'static str, schema: &'static str) -> Spec {
    Spec {
        kind,
        namespaced: false,
        status: None,
        schema,
    }
}

const fn with_status(mut spec: Spec, on_create: StatusOnCreate) -> Spec {
    spec.status = Some(on_create);
    spec
}

/// The group of the Prometheus Operator's custom resources, served only when
/// [`crate::MockKube::prometheus_operator_crds`] is on.
pub const PROMETHEUS_OPERATOR_GROUP: &str = "monitoring.coreos.com";

/// Every kind the double serves. Index into this table is the kind's id in the store.
pub const RESOURCES: &[ResourceDef] = &[
    def(
        ("", "v1", "pods"),
        "pod",
        with_status(
            ns("Pod", "io.k8s.api.core.v1.Pod"),
            StatusOnCreate::PodPending,
        ),
        &["po"],
    ),
    def(
        ("", "v1", "services"),
        "service",
        with_status(
            ns("Service", "io.k8s.api.core.v1.Service"),
            StatusOnCreate::Clear,
        ),
        &["svc"],
    ),
    def(
        ("", "v1", "nodes"),
        "node",
        with_status(
            cluster("Node", "io.k8s.api.core.v1.Node"),
            StatusOnCreate::Keep,
        ),
        &["no"],
    ),
    def(
        ("", "v1", "namespaces"),
        "namespace",
        with_status(
            cluster("Namespace", "io.k8s.api.core.v1.Namespace"),
            StatusOnCreate::NamespaceActive,
        ),
        &["ns"],
    ),
    def(
        ("", "v1", "events"),
        "event",
        ns("Event", "io.k8s.api.core.v1.Event"),
        &["ev"],
    ),
    def(
        ("", "v1", "serviceaccounts"),
        "serviceaccount",
        ns("ServiceAccount", "io.k8s.api.core.v1.ServiceAccount"),
        &["sa"],
    ),
    def(
        ("", "v1", "secrets"),
        "secret",
        ns("Secret", "io.k8s.api.core.v1.Secret"),
        &[],
    ),
    def(
        ("", "v1", "configmaps"),
        "configmap",
        ns("ConfigMap", "io.k8s.api.core.v1.ConfigMap"),
        &["cm"],
    ),
    def(
        ("discovery.k8s.io", "v1", "endpointslices"),
        "endpointslice",
        ns("EndpointSlice", "io.k8s.api.discovery.v1.EndpointSlice"),
        &[],
    ),
    def(
        ("coordination.k8s.io", "v1", "leases"),
        "lease",
        ns("Lease", "io.k8s.api.coordination.v1.Lease"),
        &[],
    ),
    // The same objects as core/v1 events, converted field by field (`events`).
    def(
        ("events.k8s.io", "v1", "events"),
        "event",
        ns("Event", "io.k8s.api.events.v1.Event"),
        &["ev"],
    )
    .stored_as(("", "v1", "events")),
    // Workloads, for `slb-sync doctor --live` and the install manifests; no controller
    // acts on them here.
    def(
        ("apps", "v1", "deployments"),
        "deployment",
        with_status(
            ns("Deployment", "io.k8s.api.apps.v1.Deployment"),
            StatusOnCreate::Clear,
        ),
        &["deploy"],
    )
    .with_scale(),
    def(
        ("apps", "v1", "statefulsets"),
        "statefulset",
        with_status(
            ns("StatefulSet", "io.k8s.api.apps.v1.StatefulSet"),
            StatusOnCreate::Clear,
        ),
        &["sts"],
    )
    .with_scale(),
    def(
        ("policy", "v1", "poddisruptionbudgets"),
        "poddisruptionbudget",
        with_status(
            ns(
                "PodDisruptionBudget",
                "io.k8s.api.policy.v1.PodDisruptionBudget",
            ),
            StatusOnCreate::Clear,
        ),
        &["pdb"],
    ),
    // RBAC objects are stored and listed; nothing enforces them (there is no auth).
    def(
        ("rbac.authorization.k8s.io", "v1", "clusterroles"),
        "clusterrole",
        cluster("ClusterRole", "io.k8s.api.rbac.v1.ClusterRole"),
        &[],
    ),
    def(
        ("rbac.authorization.k8s.io", "v1", "clusterrolebindings"),
        "clusterrolebinding",
        cluster(
            "ClusterRoleBinding",
            "io.k8s.api.rbac.v1.ClusterRoleBinding",
        ),
        &[],
    ),
    def(
        ("rbac.authorization.k8s.io", "v1", "roles"),
        "role",
        ns("Role", "io.k8s.api.rbac.v1.Role"),
        &[],
    ),
    def(
        ("rbac.authorization.k8s.io", "v1", "rolebindings"),
        "rolebinding",
        ns("RoleBinding", "io.k8s.api.rbac.v1.RoleBinding"),
        &[],
    ),
    // The Prometheus Operator's custom resources the install manifests create.
    def(
        (PROMETHEUS_OPERATOR_GROUP, "v1", "servicemonitors"),
        "servicemonitor",
        ns("ServiceMonitor", "com.coreos.monitoring.v1.ServiceMonitor"),
        &["smon"],
    )
    .custom(),
    def(
        (PROMETHEUS_OPERATOR_GROUP, "v1", "prometheusrules"),
        "prometheusrule",
        ns("PrometheusRule", "com.coreos.monitoring.v1.PrometheusRule"),
        &["promrule"],
    )
    .custom(),
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

/// The kind whose store holds objects of `kind` (itself unless it is `stored_as` another).
pub fn storage_of(kind: usize) -> usize {
    RESOURCES[kind]
        .stored_as
        .and_then(|(g, v, p)| find(g, v, p))
        .unwrap_or(kind)
}
