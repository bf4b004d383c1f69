//! The example manifests in `deploy/examples/` are what users copy: every field must be
//! a real Kubernetes field, and each workload must be wired the way the README and the
//! design recommend.

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use support::manifests::{documents, round_trips};

const MODES: [&str; 3] = ["cluster", "local", "eni"];
const AGENT_URL: &str = "http://slb-sync.slb-sync.svc:8080";

fn example_file(mode: &str, file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/examples")
        .join(mode)
        .join(file)
}

#[test]
fn every_example_field_is_a_kubernetes_field() {
    for mode in MODES {
        for file in ["workload.yaml", "cluster-state.yaml"] {
            let path = example_file(mode, file);
            for doc in documents(&path) {
                match doc["kind"].as_str().unwrap() {
                    "Namespace" => round_trips::<Namespace>(&path, &doc),
                    "Service" => round_trips::<Service>(&path, &doc),
                    "Deployment" => round_trips::<Deployment>(&path, &doc),
                    "Node" => round_trips::<Node>(&path, &doc),
                    "Pod" => round_trips::<Pod>(&path, &doc),
                    "EndpointSlice" => round_trips::<EndpointSlice>(&path, &doc),
                    other => panic!("{}: unexpected kind {other}", path.display()),
                }
            }
        }
    }
}

fn workload(mode: &str) -> (Service, Deployment) {
    let path = example_file(mode, "workload.yaml");
    let docs = documents(&path);
    let find = |kind: &str| {
        let doc = docs.iter().find(|d| d["kind"] == kind).unwrap().clone();
        doc
    };
    (
        serde_json::from_value(find("Service")).unwrap(),
        serde_json::from_value(find("Deployment")).unwrap(),
    )
}

fn int_or_percent_is_zero(v: &Option<IntOrString>) -> bool {
    matches!(v, Some(IntOrString::Int(0))) || matches!(v, Some(IntOrString::String(s)) if s == "0%")
}

#[test]
fn every_example_workload_is_wired_for_zero_loss_updates() {
    for mode in MODES {
        let (svc, deploy) = workload(mode);
        let svc_name = svc.metadata.name.clone().unwrap();
        let svc_spec = svc.spec.unwrap();
        assert_eq!(svc_spec.type_.as_deref(), Some("LoadBalancer"), "{mode}");
        assert_eq!(
            svc_spec.load_balancer_class.as_deref(),
            Some("slb-sync.io/slb"),
            "{mode}"
        );
        let spec = deploy.spec;
        // The Service selects the Deployment's pods.
        let pod_labels = spec.template.metadata.unwrap().labels.unwrap();
        for (k, v) in svc_spec.selector.unwrap() {
            assert_eq!(pod_labels.get(&k), Some(&v), "{mode}: selector {k}");
        }

        let rolling = spec.strategy.unwrap().rolling_update.unwrap();
        assert!(
            int_or_percent_is_zero(&rolling.max_unavailable),
            "{mode}: maxUnavailable must be 0"
        );
        assert!(
            !int_or_percent_is_zero(&rolling.max_surge) && rolling.max_surge.is_some(),
            "{mode}: maxSurge must be > 0"
        );

        let pod = spec.template.spec.unwrap();
        let gates: Vec<_> = pod
            .readiness_gates
            .unwrap_or_default()
            .into_iter()
            .map(|g| g.condition_type)
            .collect();
        assert_eq!(
            gates,
            [format!("registered.slb-sync.io/{svc_name}")],
            "{mode}"
        );

        // The init container delivers the binary into an emptyDir the app mounts.
        let volume = pod
            .volumes
            .unwrap()
            .into_iter()
            .find(|v| v.empty_dir.is_some())
            .unwrap()
            .name;
        let init = &pod.init_containers.unwrap()[0];
        let init_mount = init
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.name == volume)
            .unwrap();
        let installed = init.command.as_ref().unwrap().last().unwrap().clone();
        assert!(installed.starts_with(&init_mount.mount_path), "{mode}");

        let app = &pod.containers[0];
        assert!(app.readiness_probe.is_some(), "{mode}: readinessProbe");
        let env: Vec<_> = app.env.iter().flatten().map(|e| e.name.as_str()).collect();
        assert!(
            env.contains(&"POD_NAME") && env.contains(&"POD_NAMESPACE"),
            "{mode}"
        );
        let app_mount = app
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.name == volume)
            .unwrap();
        assert_eq!(app_mount.mount_path, init_mount.mount_path, "{mode}");

        let pre_stop = app
            .lifecycle
            .as_ref()
            .unwrap()
            .pre_stop
            .as_ref()
            .unwrap()
            .exec
            .as_ref()
            .unwrap()
            .command
            .clone()
            .unwrap();
        assert_eq!(
            pre_stop[0], installed,
            "{mode}: preStop runs the delivered binary"
        );
        assert_eq!(pre_stop[1], "wait-drained", "{mode}");
        let flag = |name: &str| {
            let i = pre_stop.iter().position(|a| a == name).unwrap();
            pre_stop[i + 1].clone()
        };
        assert_eq!(flag("--agent"), AGENT_URL, "{mode}");
        let timeout: i64 = flag("--timeout").parse().unwrap();
        let drain_window: i64 = svc
            .metadata
            .annotations
            .as_ref()
            .unwrap()
            .get("service.beta.kubernetes.io/alibaba-cloud-loadbalancer-connection-drain-timeout")
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            timeout > drain_window,
            "{mode}: preStop outlasts the drain window"
        );
        let grace = pod.termination_grace_period_seconds.unwrap();
        assert!(
            grace >= timeout + 30,
            "{mode}: grace {grace} < preStop {timeout} + 30"
        );
    }
}

/// Local mode's in-place layout: preferred affinity to a labelled pool, and more replicas
/// than labelled nodes, so every pool node keeps a serving pod through the rollout.
#[test]
fn local_example_uses_the_in_place_layout() {
    let (_, deploy) = workload("local");
    let spec = deploy.spec;
    let affinity = spec.template.spec.unwrap().affinity.unwrap();
    let preferred = affinity
        .node_affinity
        .unwrap()
        .preferred_during_scheduling_ignored_during_execution
        .unwrap();
    let term = &preferred[0].preference.match_expressions.as_ref().unwrap()[0];
    assert_eq!(term.operator, "In");
    let (key, values) = (&term.key, term.values.clone().unwrap());

    let state = example_file("local", "cluster-state.yaml");
    let labelled = documents(&state)
        .into_iter()
        .filter(|d| d["kind"] == "Node")
        .map(|d| serde_json::from_value::<Node>(d).unwrap())
        .filter(|n| {
            n.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(key))
                .is_some_and(|v| values.contains(v))
        })
        .count();
    assert!(labelled >= 1);
    assert!(
        spec.replicas.unwrap() > labelled as i32,
        "{} replicas for {labelled} labelled nodes",
        spec.replicas.unwrap()
    );
}
