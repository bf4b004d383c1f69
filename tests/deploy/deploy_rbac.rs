//! The agent gets no permission beyond what it uses, `doctor --live` only its list calls,
//! and nothing else under `deploy/` grants or binds anything.

use std::collections::BTreeSet;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};

use support::manifests::*;

/// `(apiGroup, resource, verb)` the agent uses, cluster-wide (docs/architecture.md, "Permissions").
const CLUSTER_GRANTS: &[(&str, &str, &[&str])] = &[
    ("", "services", &["get", "list", "watch", "patch"]),
    ("", "pods", &["get", "list", "watch", "patch"]),
    ("", "pods/status", &["patch"]),
    ("", "nodes", &["get", "list", "watch"]),
    (
        "discovery.k8s.io",
        "endpointslices",
        &["get", "list", "watch"],
    ),
    ("events.k8s.io", "events", &["create", "patch"]),
    ("", "events", &["create", "patch"]),
];

/// Leader election, in the agent's own namespace only.
const LEASE_GRANTS: &[(&str, &str, &[&str])] = &[(
    "coordination.k8s.io",
    "leases",
    &["get", "create", "update", "patch"],
)];

type Grant = (String, String, String);

fn expand(grants: &[(&str, &str, &[&str])]) -> BTreeSet<Grant> {
    grants
        .iter()
        .flat_map(|(group, resource, verbs)| {
            verbs
                .iter()
                .map(move |v| (group.to_string(), resource.to_string(), v.to_string()))
        })
        .collect()
}

fn granted(rules: &[k8s_openapi::api::rbac::v1::PolicyRule], what: &str) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in rules {
        assert!(rule.non_resource_urls.is_none(), "{what}: nonResourceURLs");
        let groups = rule.api_groups.clone().unwrap_or_default();
        let resources = rule.resources.clone().unwrap_or_default();
        for g in &groups {
            for r in &resources {
                for v in &rule.verbs {
                    assert!(
                        g != "*" && r != "*" && v != "*",
                        "{what}: wildcard in {g}/{r}/{v}"
                    );
                    out.insert((g.clone(), r.clone(), v.clone()));
                }
            }
        }
    }
    out
}

#[test]
fn the_cluster_role_grants_exactly_what_the_agent_uses() {
    let role: ClusterRole =
        serde_json::from_value(find("base/rbac.yaml", "ClusterRole", "slb-sync")).unwrap();
    let grants = granted(role.rules.as_deref().unwrap_or_default(), "ClusterRole");
    let allowed = expand(CLUSTER_GRANTS);
    let extra: Vec<_> = grants.difference(&allowed).collect();
    assert!(
        extra.is_empty(),
        "ClusterRole grants more than the agent uses: {extra:?}"
    );
    let missing: Vec<_> = allowed.difference(&grants).collect();
    assert!(missing.is_empty(), "ClusterRole lacks: {missing:?}");
    assert!(role.aggregation_rule.is_none());

    let role: Role =
        serde_json::from_value(find("base/rbac.yaml", "Role", "slb-sync-leader-election")).unwrap();
    assert_eq!(role.metadata.namespace.as_deref(), Some("slb-sync"));
    let grants = granted(role.rules.as_deref().unwrap_or_default(), "Role");
    assert_eq!(grants, expand(LEASE_GRANTS));
}

/// `(apiGroup, resource, verb)` `slb-sync doctor --live` uses: list calls only.
const DOCTOR_GRANTS: &[(&str, &str, &[&str])] = &[
    ("", "services", &["list"]),
    ("apps", "deployments", &["list"]),
    ("apps", "statefulsets", &["list"]),
    ("", "nodes", &["list"]),
];

#[test]
fn the_doctor_cluster_role_grants_exactly_its_list_calls_and_is_not_bound() {
    let role: ClusterRole =
        serde_json::from_value(find("doctor-rbac.yaml", "ClusterRole", "slb-sync-doctor")).unwrap();
    let grants = granted(
        role.rules.as_deref().unwrap_or_default(),
        "doctor ClusterRole",
    );
    assert_eq!(grants, expand(DOCTOR_GRANTS));
    assert!(role.aggregation_rule.is_none());
    // Bound by the user to whoever audits, never shipped bound.
    assert_eq!(documents(&deploy_dir().join("doctor-rbac.yaml")).len(), 1);
}

#[test]
fn rbac_binds_only_the_agent_service_account_and_nothing_else_grants() {
    for (path, doc) in all_documents() {
        match kind_of(&doc) {
            "ClusterRole" if path == deploy_dir().join("doctor-rbac.yaml") => {}
            "ClusterRole" | "Role" => assert_eq!(
                path,
                deploy_dir().join("base/rbac.yaml"),
                "RBAC rules outside base/rbac.yaml are not checked for least privilege"
            ),
            "ClusterRoleBinding" => {
                let b: ClusterRoleBinding = serde_json::from_value(doc).unwrap();
                assert_eq!(
                    (b.role_ref.kind.as_str(), b.role_ref.name.as_str()),
                    ("ClusterRole", "slb-sync")
                );
                let subjects = b.subjects.unwrap();
                assert_eq!(subjects.len(), 1);
                assert_eq!(
                    (
                        subjects[0].kind.as_str(),
                        subjects[0].name.as_str(),
                        subjects[0].namespace.as_deref()
                    ),
                    ("ServiceAccount", "slb-sync", Some("slb-sync"))
                );
            }
            "RoleBinding" => {
                let b: RoleBinding = serde_json::from_value(doc).unwrap();
                assert_eq!(b.metadata.namespace.as_deref(), Some("slb-sync"));
                assert_eq!(
                    (b.role_ref.kind.as_str(), b.role_ref.name.as_str()),
                    ("Role", "slb-sync-leader-election")
                );
                let subjects = b.subjects.unwrap();
                assert_eq!(subjects.len(), 1);
                assert_eq!(subjects[0].name, "slb-sync");
            }
            _ => {}
        }
    }
}

// ---- The agent's Deployment, Service and PDB. ----
