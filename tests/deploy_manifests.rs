//! Everything under `deploy/` is what a platform team applies: every field must be a real
//! field of its object (a misspelled one would be silently dropped by the API server or
//! kustomize), the agent must get no permission beyond what it uses, and the alerts and
//! dashboard must use only the metrics the agent promises (`deploy/METRICS.md`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use slb_sync::slb::credentials::CredentialsConfig;

mod common;
use common::schemas::{JsonPatchOp, Kustomization, PrometheusRule, RamPolicy, ServiceMonitor};
use common::{documents, files_under, repo_path, round_trips};

// ---- Reading deploy/. ----

fn deploy_dir() -> PathBuf {
    repo_path("deploy")
}

/// Every Kubernetes-style document under `deploy/` (YAML files), with its file.
fn all_documents() -> Vec<(PathBuf, Value)> {
    files_under(&deploy_dir(), &["yaml", "yml"])
        .into_iter()
        .flat_map(|path| {
            documents(&path)
                .into_iter()
                .map(move |doc| (path.clone(), doc))
        })
        .collect()
}

fn kind_of(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or("")
}

/// The single document of `kind` named `name` in `file` (relative to `deploy/`).
fn find(file: &str, kind: &str, name: &str) -> Value {
    let path = deploy_dir().join(file);
    let mut found: Vec<_> = documents(&path)
        .into_iter()
        .filter(|d| kind_of(d) == kind && d["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "{}: {kind} {name}", path.display());
    found.remove(0)
}

fn strict<T: serde::de::DeserializeOwned>(path: &Path, doc: &Value) -> T {
    serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Metadata of an object we parse with our own struct must still be real metadata.
fn metadata_round_trips(path: &Path, doc: &Value) {
    let meta: ObjectMeta = strict(path, &doc["metadata"]);
    assert_eq!(
        serde_json::to_value(&meta).unwrap(),
        doc["metadata"],
        "{}: a metadata field is not part of ObjectMeta",
        path.display()
    );
}

#[test]
fn every_manifest_under_deploy_uses_only_real_fields() {
    let mut kinds = BTreeSet::new();
    for (path, doc) in all_documents() {
        let kind = kind_of(&doc).to_owned();
        let api_version = doc["apiVersion"].as_str().unwrap_or("");
        match (api_version, kind.as_str()) {
            ("v1", "Namespace") => round_trips::<Namespace>(&path, &doc),
            ("v1", "ServiceAccount") => round_trips::<ServiceAccount>(&path, &doc),
            ("v1", "Service") => round_trips::<Service>(&path, &doc),
            ("v1", "Node") => round_trips::<Node>(&path, &doc),
            ("v1", "Pod") => round_trips::<Pod>(&path, &doc),
            ("discovery.k8s.io/v1", "EndpointSlice") => round_trips::<EndpointSlice>(&path, &doc),
            ("apps/v1", "Deployment") => round_trips::<Deployment>(&path, &doc),
            ("policy/v1", "PodDisruptionBudget") => round_trips::<PodDisruptionBudget>(&path, &doc),
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
                round_trips::<ClusterRole>(&path, &doc)
            }
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                round_trips::<ClusterRoleBinding>(&path, &doc)
            }
            ("rbac.authorization.k8s.io/v1", "Role") => round_trips::<Role>(&path, &doc),
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
                round_trips::<RoleBinding>(&path, &doc)
            }
            ("monitoring.coreos.com/v1", "ServiceMonitor") => {
                let _: ServiceMonitor = strict(&path, &doc);
                metadata_round_trips(&path, &doc);
            }
            ("monitoring.coreos.com/v1", "PrometheusRule") => {
                let _: PrometheusRule = strict(&path, &doc);
                metadata_round_trips(&path, &doc);
            }
            ("kustomize.config.k8s.io/v1beta1", "Kustomization") => {
                assert_eq!(path.file_name().unwrap(), "kustomization.yaml");
                let k: Kustomization = strict(&path, &doc);
                for patch in &k.patches {
                    let ops: Vec<JsonPatchOp> = serde_saphyr::from_str(&patch.patch)
                        .unwrap_or_else(|e| panic!("{}: patch: {e}", path.display()));
                    assert!(!ops.is_empty(), "{}: empty patch", path.display());
                }
            }
            (api_version, kind) => panic!(
                "{}: {api_version} {kind} is not a kind this test knows; add it with a \
                 typed check",
                path.display()
            ),
        }
        kinds.insert(kind);
    }
    // The walk really covered the base, the overlays and the examples.
    for kind in [
        "Kustomization",
        "ClusterRole",
        "Deployment",
        "PrometheusRule",
        "ServiceMonitor",
        "EndpointSlice",
    ] {
        assert!(kinds.contains(kind), "no {kind} found under deploy/");
    }
}

#[test]
fn the_round_trip_check_catches_a_misspelled_field() {
    let doc: Value = serde_json::json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
        "spec": {"type": "LoadBalancer", "loadBalancerClas": "slb-sync.io/slb"}
    });
    let caught = std::panic::catch_unwind(|| round_trips::<Service>(Path::new("t"), &doc));
    assert!(caught.is_err());
    let doc: Value = serde_json::json!({
        "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
        "metadata": {"name": "x"},
        "spec": {"selector": {}, "endpoints": [{"port": "http", "intervall": "30s"}]}
    });
    assert!(serde_json::from_value::<ServiceMonitor>(doc).is_err());
}

/// Applies an RFC 6902 patch of `add` operations, the only kind the overlays use.
fn apply_json_patch(target: &mut Value, ops: &[JsonPatchOp], file: &Path) {
    for op in ops {
        assert_eq!(op.op, "add", "{}: only add is checked here", file.display());
        let (parent, last) = op.path.rsplit_once('/').unwrap();
        let parent = target
            .pointer_mut(parent)
            .unwrap_or_else(|| panic!("{}: no {parent} in the base", file.display()));
        match parent {
            Value::Array(items) if last == "-" => items.push(op.value.clone()),
            Value::Array(items) => items.insert(last.parse().unwrap(), op.value.clone()),
            Value::Object(fields) => {
                fields.insert(last.to_owned(), op.value.clone());
            }
            _ => panic!("{}: {} is not a container", file.display(), op.path),
        }
    }
}

/// Each overlay builds on the base and its patches produce a valid Deployment; every
/// resource a kustomization lists exists, and every manifest in the base is listed.
#[test]
fn overlays_patch_the_base_into_valid_deployments() {
    let base_path = deploy_dir().join("base/kustomization.yaml");
    let base: Kustomization = strict(&base_path, &documents(&base_path)[0]);
    assert_eq!(base.namespace.as_deref(), Some("slb-sync"));
    let listed: BTreeSet<_> = base.resources.iter().cloned().collect();
    for file in files_under(&deploy_dir().join("base"), &["yaml"]) {
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        if name != "kustomization.yaml" {
            assert!(listed.contains(&name), "base/{name} is not in resources");
        }
    }
    assert!(base
        .images
        .iter()
        .all(|i| i.name == "registry.example.com/slb-sync"));
    let deployment = find("base/deployment.yaml", "Deployment", "slb-sync");

    let mut overlays = 0;
    let mut rrsa_checked = false;
    for path in files_under(&deploy_dir().join("overlays"), &["yaml"]) {
        let k: Kustomization = strict(&path, &documents(&path)[0]);
        assert_eq!(k.api_version, "kustomize.config.k8s.io/v1beta1");
        assert_eq!(k.kind, "Kustomization");
        let dir = path.parent().unwrap();
        for resource in &k.resources {
            assert!(
                dir.join(resource).exists(),
                "{}: {resource}",
                path.display()
            );
        }
        assert_eq!(k.resources, ["../../base"], "{}", path.display());
        let mut patched = deployment.clone();
        for patch in &k.patches {
            let t = &patch.target;
            assert_eq!(
                (
                    t.group.as_str(),
                    t.version.as_str(),
                    t.kind.as_str(),
                    t.name.as_str()
                ),
                ("apps", "v1", "Deployment", "slb-sync"),
                "{}",
                path.display()
            );
            let ops: Vec<JsonPatchOp> = serde_saphyr::from_str(&patch.patch).unwrap();
            apply_json_patch(&mut patched, &ops, &path);
        }
        round_trips::<Deployment>(&path, &patched);
        if dir.ends_with("ram-role") {
            rrsa_checked = rrsa_overlay_is_what_the_agent_reads(&patched);
        }
        for generator in &k.secret_generator {
            assert_eq!(generator.namespace.as_deref(), Some("slb-sync"));
            // The env file itself is the user's (git-ignored); its template must exist.
            for env in &generator.envs {
                assert!(
                    dir.join(format!("{env}.example")).exists(),
                    "{}: {env}.example",
                    path.display()
                );
            }
        }
        overlays += 1;
    }
    assert_eq!(overlays, 3, "secret, ram-role and instance-role");
    assert!(rrsa_checked);
}

/// The `ram-role` overlay's variables make the agent choose RRSA, and its token file is
/// the projected service-account token with the audience STS requires.
fn rrsa_overlay_is_what_the_agent_reads(patched: &Value) -> bool {
    let deployment: Deployment = serde_json::from_value(patched.clone()).unwrap();
    let pod = deployment.spec.template.spec.unwrap();
    let container = &pod.containers[0];
    let env: BTreeMap<String, String> = container
        .env
        .iter()
        .flatten()
        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
        .collect();
    let config = CredentialsConfig::from_lookup(|key| env.get(key).cloned());
    let settings = config
        .rrsa_settings()
        .unwrap()
        .expect("all three RRSA variables");
    let provider = format!("{:?}", config.build().unwrap());
    assert!(provider.starts_with("RrsaProvider"), "{provider}");

    let token_file = settings.oidc_token_file;
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| token_file.starts_with(&m.mount_path))
        .expect("the token file is on a mounted volume");
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .unwrap();
    let projected = volume.projected.as_ref().expect("a projected volume");
    let token = projected
        .sources
        .iter()
        .flatten()
        .find_map(|s| s.service_account_token.as_ref())
        .expect("a serviceAccountToken source");
    assert_eq!(Path::new(&mount.mount_path).join(&token.path), token_file);
    assert_eq!(token.audience.as_deref(), Some("sts.aliyuncs.com"));
    true
}

// ---- Least privilege. ----

/// `(apiGroup, resource, verb)` the agent uses, cluster-wide (DESIGN.md §2, issue 5).
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

#[test]
fn the_agent_deployment_is_hardened_and_highly_available() {
    let d: Deployment =
        serde_json::from_value(find("base/deployment.yaml", "Deployment", "slb-sync")).unwrap();
    let spec = d.spec;
    assert_eq!(spec.replicas, Some(2));
    let labels = spec.template.metadata.unwrap().labels.unwrap();
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("slb-sync"));
    let pod_sc = pod.security_context.unwrap();
    assert_eq!(pod_sc.run_as_non_root, Some(true));
    assert!(pod_sc.run_as_user.is_some_and(|u| u != 0));
    assert_eq!(pod_sc.seccomp_profile.unwrap().type_, "RuntimeDefault");

    assert_eq!(pod.containers.len(), 1);
    let c = &pod.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some("registry.example.com/slb-sync:0.1.0")
    );
    assert_eq!(
        c.command.as_deref(),
        Some(&["/usr/local/bin/slb-sync".to_owned()][..])
    );
    assert_eq!(c.args.as_deref(), Some(&["run".to_owned()][..]));
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_owned()][..])
    );
    assert!(sc.capabilities.as_ref().unwrap().add.is_none());
    assert_eq!(sc.privileged, None);

    let resources = c.resources.as_ref().unwrap();
    for key in ["cpu", "memory"] {
        assert!(
            resources.requests.as_ref().unwrap().contains_key(key),
            "request {key}"
        );
    }
    assert!(resources.limits.as_ref().unwrap().contains_key("memory"));

    let http_port = c
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .find(|p| p.name.as_deref() == Some("http"))
        .unwrap();
    assert_eq!(http_port.container_port, 8080);
    let path = |probe: &Option<k8s_openapi::api::core::v1::Probe>| {
        probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .clone()
            .unwrap()
    };
    assert_eq!(path(&c.liveness_probe), "/healthz");
    assert_eq!(path(&c.readiness_probe), "/readyz");

    let env: BTreeMap<_, _> = c
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.as_str(), e))
        .collect();
    assert_eq!(
        env["SLB_SYNC_HTTP_ADDR"].value.as_deref(),
        Some("0.0.0.0:8080")
    );
    assert_eq!(
        env["SLB_SYNC_LEASE_NAME"].value.as_deref(),
        Some("slb-sync")
    );
    let field = |name: &str| {
        env[name]
            .value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap()
            .field_path
            .clone()
    };
    assert_eq!(field("POD_NAMESPACE"), "metadata.namespace");
    assert_eq!(field("POD_NAME"), "metadata.name");
    for name in [
        "SLB_SYNC_CLUSTER_ID",
        "SLB_SYNC_LB_CLASS",
        "ALIBABA_CLOUD_REGION_ID",
    ] {
        assert!(env.contains_key(name), "{name}");
    }
    // No credential in the base.
    assert!(!env.keys().any(|k| k.contains("ACCESS_KEY")));

    // The PDB keeps one replica and selects these pods.
    let pdb: PodDisruptionBudget = serde_json::from_value(find(
        "base/poddisruptionbudget.yaml",
        "PodDisruptionBudget",
        "slb-sync",
    ))
    .unwrap();
    let pdb_spec = pdb.spec.unwrap();
    assert_eq!(
        pdb_spec.min_available,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    for (k, v) in pdb_spec.selector.unwrap().match_labels.unwrap() {
        assert_eq!(labels.get(&k), Some(&v));
    }
}

/// The examples' preStop calls `http://slb-sync.slb-sync.svc:8080`: that Service must
/// exist and reach the agent's http port.
#[test]
fn the_drain_api_service_is_where_the_examples_call_it() {
    let svc: Service =
        serde_json::from_value(find("base/service.yaml", "Service", "slb-sync")).unwrap();
    assert_eq!(svc.metadata.namespace.as_deref(), Some("slb-sync"));
    let spec = svc.spec.unwrap();
    let port = &spec.ports.unwrap()[0];
    assert_eq!(port.port, 8080);
    assert_eq!(
        port.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("http".into()))
    );
    let d: Deployment =
        serde_json::from_value(find("base/deployment.yaml", "Deployment", "slb-sync")).unwrap();
    let labels = d.spec.template.metadata.unwrap().labels.unwrap();
    for (k, v) in spec.selector.unwrap() {
        assert_eq!(labels.get(&k), Some(&v));
    }
    for mode in ["cluster", "local", "eni"] {
        let text =
            std::fs::read_to_string(deploy_dir().join(format!("examples/{mode}/workload.yaml")))
                .unwrap();
        assert!(text.contains("http://slb-sync.slb-sync.svc:8080"), "{mode}");
    }
}

// ---- Metrics contract, alerts and dashboard. ----

/// The metric names listed in the table of `deploy/METRICS.md`.
fn contract_metrics() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(deploy_dir().join("METRICS.md")).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<_> = line.split('|').map(str::trim).collect();
        if cells.len() > 3 && cells[1].starts_with("`slb_sync_") {
            out.insert(cells[1].trim_matches('`').to_owned(), cells[2].to_owned());
        }
    }
    out
}

/// Every `slb_sync_*` name in a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("slb_sync_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        out.insert(name);
    }
    out
}

fn check_known(name: &str, contract: &BTreeMap<String, String>, where_: &str) {
    let base = name
        .strip_suffix("_bucket")
        .filter(|b| contract.get(*b).is_some_and(|t| t == "histogram"));
    assert!(
        contract.contains_key(name) || base.is_some(),
        "{where_} uses {name}, which deploy/METRICS.md does not promise"
    );
}

#[test]
fn metrics_contract_lists_the_agreed_metrics() {
    let contract = contract_metrics();
    let expected = [
        ("slb_sync_slb_calls_total", "counter"),
        ("slb_sync_slb_call_duration_seconds", "histogram"),
        ("slb_sync_reconcile_errors_total", "counter"),
        ("slb_sync_steps_total", "counter"),
        ("slb_sync_backends", "gauge"),
        ("slb_sync_drain_duration_seconds", "histogram"),
        ("slb_sync_drains_over_window_total", "counter"),
        ("slb_sync_finalizer_fail_open_total", "counter"),
        ("slb_sync_leader", "gauge"),
        ("slb_sync_passes_total", "counter"),
        ("slb_sync_coalesced_triggers_total", "counter"),
        ("slb_sync_change_to_first_call_seconds", "histogram"),
        ("slb_sync_drain_api_requests_total", "counter"),
        ("slb_sync_drain_api_waiting", "gauge"),
    ];
    let expected: BTreeMap<_, _> = expected
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    assert_eq!(contract, expected);
}

#[test]
fn alerts_cover_the_failure_modes_with_contract_metrics() {
    let contract = contract_metrics();
    let path = deploy_dir().join("base/prometheusrule.yaml");
    let rule: PrometheusRule = strict(&path, &documents(&path)[0]);
    assert_eq!(
        (rule.api_version.as_str(), rule.kind.as_str()),
        ("monitoring.coreos.com/v1", "PrometheusRule")
    );
    assert_eq!(rule.metadata.namespace.as_deref(), Some("slb-sync"));
    let mut alerts = BTreeMap::new();
    for group in &rule.spec.groups {
        for r in &group.rules {
            for name in metric_names(&r.expr) {
                check_known(&name, &contract, &r.alert);
            }
            assert!(r.labels.contains_key("severity"), "{}", r.alert);
            assert!(
                r.annotations.contains_key("summary") && r.annotations.contains_key("description")
            );
            alerts.insert(r.alert.clone(), metric_names(&r.expr));
        }
    }
    for (alert, metric) in [
        ("SlbSyncReconcileErrors", "slb_sync_reconcile_errors_total"),
        ("SlbSyncSlbThrottling", "slb_sync_slb_calls_total"),
        (
            "SlbSyncDrainsOverWindow",
            "slb_sync_drains_over_window_total",
        ),
        (
            "SlbSyncFinalizerFailOpen",
            "slb_sync_finalizer_fail_open_total",
        ),
        ("SlbSyncLeaderAbsent", "slb_sync_leader"),
    ] {
        assert!(
            alerts.get(alert).is_some_and(|m| m.contains(metric)),
            "{alert} on {metric}"
        );
    }
    assert!(alerts["SlbSyncSlbThrottling"].len() == 1);

    let sm_path = deploy_dir().join("base/servicemonitor.yaml");
    let sm: ServiceMonitor = strict(&sm_path, &documents(&sm_path)[0]);
    assert_eq!(
        (sm.api_version.as_str(), sm.kind.as_str()),
        ("monitoring.coreos.com/v1", "ServiceMonitor")
    );
    assert_eq!(sm.spec.endpoints[0].port, "http");
    assert_eq!(sm.spec.endpoints[0].path.as_deref(), Some("/metrics"));
    assert_eq!(sm.metadata.namespace.as_deref(), Some("slb-sync"));
    assert!(sm.spec.namespace_selector.is_some());
    assert_eq!(
        sm.spec
            .selector
            .match_labels
            .unwrap()
            .get("app.kubernetes.io/name")
            .map(String::as_str),
        Some("slb-sync")
    );
}

#[test]
fn the_dashboard_charts_every_contract_metric_and_nothing_else() {
    let contract = contract_metrics();
    let path = deploy_dir().join("grafana-dashboard.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(dash["uid"], "slb-sync");
    let mut used = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for panel in dash["panels"].as_array().unwrap() {
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "duplicate panel id"
        );
        assert!(panel["gridPos"]["w"].as_u64().is_some());
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            for name in metric_names(expr) {
                check_known(&name, &contract, panel["title"].as_str().unwrap());
                used.insert(name.strip_suffix("_bucket").unwrap_or(&name).to_owned());
            }
        }
    }
    let missing: Vec<_> = contract.keys().filter(|m| !used.contains(*m)).collect();
    assert!(missing.is_empty(), "no panel for {missing:?}");
}

#[test]
fn the_ram_policy_is_valid_and_allows_only_slb_and_eni_lookups() {
    let path = deploy_dir().join("ram-policy.json");
    let policy: RamPolicy = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(policy.version, "1");
    for statement in &policy.statement {
        assert_eq!(statement.effect, "Allow");
        for action in &statement.action {
            assert!(
                (action.starts_with("slb:") || action == "ecs:DescribeNetworkInterfaces")
                    && !action.contains('*'),
                "{action}"
            );
        }
    }
    // No other JSON under deploy/ goes unchecked.
    let json: Vec<_> = files_under(&deploy_dir(), &["json"]);
    assert_eq!(
        json,
        [deploy_dir().join("grafana-dashboard.json"), path],
        "unchecked JSON under deploy/"
    );
}

/// The image must run as non-root and contain `cp` (the examples' init container copies
/// the binary with it), with the binary where the manifests expect it.
#[test]
fn the_dockerfile_builds_the_image_the_manifests_expect() {
    let text = std::fs::read_to_string(repo_path("Dockerfile")).unwrap();
    let stages: Vec<_> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert!(stages.len() >= 2, "multi-stage");
    let final_base = stages.last().unwrap();
    assert!(
        !final_base.contains("distroless") && !final_base.contains("scratch"),
        "{final_base}: the final image needs cp"
    );
    assert!(text.contains("/usr/local/bin/slb-sync"));
    assert!(text.contains("--locked"));
    let user = text
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .expect("USER");
    assert!(!user.contains("root") && !user.contains(" 0"), "{user}");
    let pod_user = find("base/deployment.yaml", "Deployment", "slb-sync")["spec"]["template"]
        ["spec"]["securityContext"]["runAsUser"]
        .as_u64()
        .unwrap();
    assert_eq!(user, format!("USER {pod_user}:{pod_user}"));
}
