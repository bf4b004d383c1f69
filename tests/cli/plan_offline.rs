//! `slb-sync plan --offline` as a user runs it: the built binary on the example
//! manifests in `deploy/examples/` and on bad input.
//!
//! The expected plans below are worked out by hand from the example objects with the
//! rules (docs/architecture.md, "Planner rules"); they are the acceptance check for the planner.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples")
}

fn example(dir: &str) -> String {
    examples().join(dir).display().to_string()
}

/// Runs the binary with only the environment variables given (none of the developer's
/// `SLB_SYNC_*` settings leak in).
fn slb_sync(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slb-sync"));
    cmd.args(args).env_clear().envs(env.iter().copied());
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    cmd.output().expect("the slb-sync binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn plan_json(args: &[&str], env: &[(&str, &str)]) -> Value {
    let out = slb_sync(args, env);
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).expect("plan prints JSON")
}

fn ecs(server_id: &str, port: u16, weight: u8, state: &str) -> Value {
    json!({"serverId": server_id, "serverIp": null, "port": port, "weight": weight,
           "type": "ecs", "state": state})
}

fn eni(server_ip: &str, port: u16, weight: u8, state: &str) -> Value {
    json!({"serverId": null, "serverIp": server_ip, "port": port, "weight": weight,
           "type": "eni", "state": state})
}

// Instance ids of the example nodes cn-hangzhou.10.0.1.11, .12, .13 and .15 (.14 is
// excluded from load balancers and never appears).
const N11: &str = "i-bp11a6b3xq2w5n7e0k4d";
const N12: &str = "i-bp12c9f1m8r4t6y2u5p3";
const N13: &str = "i-bp13e2h7j5s9v1z8w6q0";
const N15: &str = "i-bp15j8p3d1f6h4l2s7t9";

/// Cluster: every eligible node at the NodePort, weight 100; .14 is excluded by label, .15
/// carries ToBeDeletedByClusterAutoscaler and is drained. The terminating pod does not
/// matter (nodes are the backends). Port 80 names its group via `vgroup-port`.
fn expected_cluster(cluster_id: &str) -> Value {
    let nodes = |port| {
        json!([
            ecs(N11, port, 100, "active"),
            ecs(N12, port, 100, "active"),
            ecs(N13, port, 100, "active"),
            ecs(N15, port, 0, "draining"),
        ])
    };
    json!({
        "service": "demo/web-cluster",
        "loadBalancerId": "lb-bp1qv4kx7w2n9m3r5t8y0a",
        "mode": "Cluster",
        "groups": [
            {"servicePort": 80, "protocol": "TCP", "vServerGroupId": "rsp-bp1x7k2m9q4w6e8r3t5",
             "name": format!("k8s/80/web-cluster/demo/{cluster_id}"), "backends": nodes(30080)},
            {"servicePort": 443, "protocol": "TCP", "vServerGroupId": null,
             "name": format!("k8s/443/web-cluster/demo/{cluster_id}"), "backends": nodes(30443)},
        ],
        "errors": [],
    })
}

/// Local: weight = counted (ready, not terminating) endpoints per node: .11 has two, .12
/// one (its terminating one does not count), .13 only a terminating one → draining.
fn expected_local() -> Value {
    json!({
        "service": "demo/web-local",
        "loadBalancerId": "lb-bp1r5t8y0az4kx7w2n9m3q",
        "mode": "Local",
        "groups": [
            {"servicePort": 80, "protocol": "TCP", "vServerGroupId": null,
             "name": "k8s/80/web-local/demo/kubernetes",
             "backends": [
                 ecs(N11, 31080, 2, "active"),
                 ecs(N12, 31080, 1, "active"),
                 ecs(N13, 31080, 0, "draining"),
             ]},
        ],
        "errors": [],
    })
}

/// ENI: pod IPs at the EndpointSlice port named like the Service port (`http` → 8080).
/// .16 terminating → draining; .23 is not ready only because its readiness gate is not
/// yet True while its containers are ready → admitted (bootstrap); .24 is still starting
/// → absent. Sorted by IP text.
fn expected_eni() -> Value {
    json!({
        "service": "demo/web-eni",
        "loadBalancerId": "lb-bp1s2n9m3qv4kx7w5t8y0b",
        "mode": "ENI",
        "groups": [
            {"servicePort": 80, "protocol": "TCP", "vServerGroupId": null,
             "name": "k8s/80/web-eni/demo/kubernetes",
             "backends": [
                 eni("10.0.32.16", 8080, 0, "draining"),
                 eni("10.0.32.17", 8080, 100, "active"),
                 eni("10.0.32.21", 8080, 100, "active"),
                 eni("10.0.32.22", 8080, 100, "active"),
                 eni("10.0.32.23", 8080, 100, "active"),
             ]},
        ],
        "errors": [],
    })
}

// ---- Acceptance: the planner's output on the examples. ----

#[test]
fn cluster_example_plans_every_eligible_node() {
    let out = plan_json(&["plan", "--offline", &example("cluster")], &[]);
    assert_eq!(out, json!({"services": [expected_cluster("kubernetes")]}));
}

#[test]
fn local_example_weights_nodes_by_their_counted_endpoints() {
    let out = plan_json(&["plan", "--offline", &example("local")], &[]);
    assert_eq!(out, json!({"services": [expected_local()]}));
}

#[test]
fn eni_example_plans_pod_ips_with_gate_bootstrap_and_draining() {
    let out = plan_json(&["plan", "--offline", &example("eni")], &[]);
    assert_eq!(out, json!({"services": [expected_eni()]}));
}

/// ACK's backend annotations and node rules (docs/configuration.md, "ACK compatibility of
/// backend selection"), on the examples with them added, against what ACK's controller
/// computes.
#[test]
fn ack_weights_virtual_and_hybrid_nodes_plan_as_ack_computes_them() {
    let dir = tempfile::tempdir().unwrap();
    let copy = |from: &str, to: &str, edit: &dyn Fn(String) -> String| {
        let text = std::fs::read_to_string(examples().join(from)).unwrap();
        let edited = edit(text.clone());
        assert_ne!(edited, text, "{from} was edited");
        std::fs::write(dir.path().join(to), edited).unwrap();
    };
    let annotate = |lines: &'static str| {
        move |text: String| {
            text.replacen("  annotations:\n", &format!("  annotations:\n{lines}"), 1)
        }
    };
    // Local with a shared weight of 60 on a group named by vgroup-port, over four counted
    // pods: two on .11 (60 × 2 / 4 = 30), one on .12 (15) and one on a virtual node, an
    // ENI backend of its own (15); a ready pod on a hybrid node (outside the VPC) counts
    // nowhere.
    copy(
        "local/workload.yaml",
        "local-workload.yaml",
        &annotate(
            "    service.beta.kubernetes.io/alibaba-cloud-loadbalancer-vgroup-port: rsp-web:80\n    \
             service.beta.kubernetes.io/alibaba-cloud-loadbalancer-weight: \"60\"\n",
        ),
    );
    copy("local/cluster-state.yaml", "local-state.yaml", &|text| {
        text + "---\napiVersion: v1\nkind: Node\nmetadata:\n  name: cn-hangzhou.10.0.1.16\n  \
                labels: {pool: web-local}\nspec: {providerID: \"ack-hybrid://cn-hangzhou.i-far\"}\n\
                ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  \
                name: web-local-hybrid\n  namespace: demo\n  \
                labels: {kubernetes.io/service-name: web-local}\naddressType: IPv4\n\
                ports:\n- {name: http, port: 8080, protocol: TCP}\nendpoints:\n\
                - addresses: [10.0.24.61]\n  conditions: {ready: true, serving: true, terminating: false}\n  \
                nodeName: cn-hangzhou.10.0.1.16\n\
                - addresses: [10.0.24.71]\n  conditions: {ready: true, serving: true, terminating: false}\n  \
                nodeName: virtual-kubelet-cn-hangzhou-k\n\
                ---\napiVersion: v1\nkind: Node\nmetadata:\n  name: virtual-kubelet-cn-hangzhou-k\n  \
                labels: {type: virtual-kubelet, pool: web-local}\nspec: {providerID: cn-hangzhou.vk}\n"
    });
    // ENI with a default weight of 30 and weights left alone once serving.
    copy(
        "eni/workload.yaml",
        "eni-workload.yaml",
        &annotate(
            "    service.beta.kubernetes.io/alibaba-cloud-loadbalancer-default-weight: \"30\"\n    \
             service.beta.kubernetes.io/alibaba-cloud-loadbalancer-ignore-weight-update: \"on\"\n",
        ),
    );
    std::fs::copy(
        examples().join("eni/cluster-state.yaml"),
        dir.path().join("eni-state.yaml"),
    )
    .unwrap();
    let out = plan_json(
        &["plan", "--offline", &dir.path().display().to_string()],
        &[],
    );
    let mut local = expected_local();
    local["groups"][0]["vServerGroupId"] = json!("rsp-web");
    local["groups"][0]["backends"] = json!([
        ecs(N11, 31080, 30, "active"),
        ecs(N12, 31080, 15, "active"),
        ecs(N13, 31080, 0, "draining"),
        eni("10.0.24.71", 8080, 15, "active"),
    ]);
    let mut eni = expected_eni();
    for backend in eni["groups"][0]["backends"].as_array_mut().unwrap() {
        if backend["state"] == "active" {
            backend["weight"] = json!(30);
        }
    }
    eni["groups"][0]["keepWeights"] = json!(true);
    assert_eq!(out, json!({"services": [eni, local]}));
}

/// The README's Quick start: all examples at once form one cluster (the shared Nodes are
/// merged), Services sorted by `<namespace>/<name>`.
#[test]
fn all_examples_together_plan_each_service_once_in_name_order() {
    let out = plan_json(
        &["plan", "--offline", &examples().display().to_string()],
        &[],
    );
    assert_eq!(
        out,
        json!({"services": [expected_cluster("kubernetes"), expected_eni(), expected_local()]})
    );
}

#[test]
fn cluster_id_from_flag_or_env_names_the_owned_groups() {
    let dir = example("cluster");
    let out = plan_json(&["plan", "--offline", &dir, "--cluster-id", "prod-hz"], &[]);
    assert_eq!(out, json!({"services": [expected_cluster("prod-hz")]}));
    let out = plan_json(
        &["plan"],
        &[
            ("SLB_SYNC_OFFLINE", &dir),
            ("SLB_SYNC_CLUSTER_ID", "prod-hz"),
        ],
    );
    assert_eq!(out, json!({"services": [expected_cluster("prod-hz")]}));
}

#[test]
fn services_of_another_class_are_not_managed() {
    let all = examples().display().to_string();
    let out = plan_json(
        &["plan", "--offline", &all, "--lb-class", "example.com/other"],
        &[],
    );
    assert_eq!(out, json!({"services": []}));
    // Classed Services are never picked up by --manage-unclassed either.
    let out = plan_json(
        &["plan", "--offline", &all, "--manage-unclassed"],
        &[("SLB_SYNC_LB_CLASS", "example.com/other")],
    );
    assert_eq!(out, json!({"services": []}));
}

// ---- Input handling: these do not need the planner. ----

#[test]
fn every_example_file_holds_only_valid_kubernetes_objects() {
    let snap = slb_sync::offline::load_paths(&[examples()]).expect("examples load");
    assert_eq!(snap.services.len(), 3);
    assert_eq!(snap.endpoint_slices.len(), 3);
    assert_eq!(
        snap.nodes.len(),
        5,
        "identical Nodes of the three examples are merged"
    );
    assert_eq!(snap.pods.len(), 4 + 5 + 6);
    // A Namespace and a Deployment per example.
    assert_eq!(snap.ignored, 6);
}

#[test]
fn plan_without_offline_explains_that_live_mode_is_not_available() {
    let out = slb_sync(&["plan"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("--offline"), "{err}");
    assert!(err.contains("cluster connection"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_missing_path_is_an_error_naming_it() {
    let out = slb_sync(&["plan", "--offline", "/nonexistent/cluster.yaml"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("cannot read /nonexistent/cluster.yaml"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_file_that_is_not_kubernetes_objects_is_an_error_naming_file_and_document() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("values.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\nreplicaCount: 3\nimage: web\n",
    )
    .unwrap();
    let out = slb_sync(&["plan", "--offline", &file.display().to_string()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let expected = format!(
        "{}, document 2 (line 5): not a Kubernetes object (apiVersion is missing)",
        file.display()
    );
    assert!(err.contains(&expected), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn unparsable_yaml_and_json_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("broken.yaml");
    std::fs::write(&yaml, "apiVersion: v1\nkind: [Node\n").unwrap();
    let out = slb_sync(&["plan", "--offline", &yaml.display().to_string()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{} is not valid YAML", yaml.display())),
        "{err}"
    );
    assert!(
        err.contains("line 2"),
        "the parser's position is shown: {err}"
    );

    let json = dir.path().join("broken.json");
    std::fs::write(&json, "{\"apiVersion\": \"v1\",").unwrap();
    let out = slb_sync(&["plan", "--offline", &json.display().to_string()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{} is not valid JSON", json.display())),
        "{err}"
    );
}

#[test]
fn a_malformed_object_names_the_object_and_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("svc.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: demo}\n\
         spec: {ports: [{port: http}]}\n",
    )
    .unwrap();
    let out = slb_sync(&["plan", "--offline", &file.display().to_string()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("Service web does not match the v1 Service schema"),
        "{err}"
    );
    assert!(err.contains("caused by: invalid type"), "{err}");
}

#[test]
fn an_empty_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = slb_sync(
        &["plan", "--offline", &dir.path().display().to_string()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("holds no *.yaml, *.yml or *.json files"),
        "{err}"
    );
}

#[test]
fn flags_are_read_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("from-env.yaml");
    std::fs::write(&file, "kind: Node\n").unwrap();
    let path = file.display().to_string();
    let out = slb_sync(&["plan"], &[("SLB_SYNC_OFFLINE", &path)]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("from-env.yaml, document 1"), "{err}");

    // A bad boolean in the variable is a usage error, so the variable is read.
    let out = slb_sync(
        &["plan", "--offline", &path],
        &[("SLB_SYNC_MANAGE_UNCLASSED", "maybe")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("maybe"), "{}", stderr(&out));
}
