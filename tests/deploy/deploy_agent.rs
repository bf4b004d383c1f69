//! The agent's Deployment, drain API Service, RAM policy and image: hardened, highly
//! available, reachable where the examples call it, and least privilege in the cloud.

use std::collections::BTreeMap;
use support::schemas::RamPolicy;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use support::manifests::*;

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
    // Every action the agent's client can send is allowed: a listener read denied on an
    // HTTP listener would leave health-aware gates waiting for their timeout.
    let allowed: Vec<&String> = policy.statement.iter().flat_map(|s| &s.action).collect();
    for action in slb_sync::slb::ACTIONS {
        let want = if action == "DescribeNetworkInterfaces" {
            format!("ecs:{action}")
        } else {
            format!("slb:{action}")
        };
        assert!(allowed.contains(&&want), "{want} is not in the RAM policy");
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
