//! Everything under `deploy/` is what a platform team applies: every field must be a real
//! field of its object (a misspelled one would be silently dropped by the API server or
//! kustomize), the agent must get no permission beyond what it uses, and the alerts and
//! dashboard must use only the metrics the agent promises (`deploy/METRICS.md`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde_json::Value;
use slb_sync::slb::credentials::CredentialsConfig;
use support::schemas::{JsonPatchOp, Kustomization, PrometheusRule, ServiceMonitor};

use support::manifests::*;

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
