//! `slb-sync doctor --live` against mock-kube (the real `kube::Client` over loopback): the
//! objects of `deploy/examples/` and `deploy/doctor-fixtures/bad/` are loaded into the
//! double, and the live audit must report what the file audit reports on the same files.
//! Also: chunked lists, `--namespace`, and the errors a user gets when the API server
//! refuses (403) or cannot be reached, or no cluster is configured.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

use mock_kube::{Fault, MockKube, MockKubeHandle};
use serde_json::{json, Value};
use slb_sync::doctor::Rule;

use support::manifests::{documents, files_under, repo_path};

// ---- Fixtures. ----

/// Every object under a repository directory, as `doctor PATH` reads it (a namespaced
/// object without a namespace is in `default`).
fn objects(dir: &str) -> Vec<Value> {
    let cluster_scoped = ["Namespace", "Node"];
    files_under(&repo_path(dir), &["yaml", "yml"])
        .iter()
        .flat_map(|path| documents(path))
        .map(|mut doc| {
            let kind = doc["kind"].as_str().unwrap_or("").to_owned();
            if !cluster_scoped.contains(&kind.as_str()) && doc["metadata"]["namespace"].is_null() {
                doc["metadata"]["namespace"] = json!("default");
            }
            doc
        })
        .collect()
}

async fn cluster_with(docs: &[Value]) -> MockKubeHandle {
    let kube = MockKube::start().await.expect("mock-kube starts");
    for doc in docs {
        kube.put(doc)
            .unwrap_or_else(|e| panic!("mock-kube takes {}: {e}", doc["kind"]));
    }
    kube
}

/// The built binary with a clean environment: only PATH, HOME (empty) and `env`.
async fn slb_sync(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_slb-sync"));
    cmd.args(args).env_clear().env("HOME", home.path());
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.kill_on_drop(true)
        .output()
        .await
        .expect("the slb-sync binary runs")
}

/// `doctor --live -o json` against `kube`, with `extra` arguments.
async fn live(kube: &MockKubeHandle, extra: &[&str]) -> (Output, Option<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig).unwrap();
    let mut args = vec!["doctor", "--live", "--output", "json"];
    args.extend_from_slice(extra);
    let out = slb_sync(&args, &[("KUBECONFIG", &kubeconfig)]).await;
    let report = serde_json::from_slice(&out.stdout).ok();
    (out, report)
}

/// `doctor -o json PATH` on the repository directory.
async fn from_files(dir: &str) -> Value {
    let path = repo_path(dir);
    let out = slb_sync(&["doctor", "--output", "json", path.to_str().unwrap()], &[]).await;
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

/// The findings as (severity, object, rule, service): what must agree between modes (the
/// advice for a missing workload is worded for each mode).
fn keys(report: &Value) -> Vec<(String, String, String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or("").to_owned();
            (s("severity"), s("object"), s("rule"), s("service"))
        })
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The findings other than `group-listener`, the note each example Service gets for its
/// ports found or created by name.
fn beside_group_listener(findings: &Value) -> Value {
    Value::Array(
        findings
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["rule"] != "group-listener")
            .cloned()
            .collect(),
    )
}

// ---- Same findings as the file audit. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_audit_of_the_examples_equals_the_file_audit_and_is_clean() {
    let kube = cluster_with(&objects("deploy/examples")).await;
    let (out, report) = live(&kube, &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let report = report.expect("JSON report");
    assert_eq!(report, from_files("deploy/examples").await);
    // Clean but for the note every by-name group gets (it needs a listener).
    assert_eq!(beside_group_listener(&report["findings"]), json!([]));
    assert_eq!(report["summary"]["services"], 3);
    assert_eq!(report["summary"]["workloads"], 3);
    // Read-only: list calls and nothing else.
    for ((verb, resource), _) in kube.request_counts() {
        assert_eq!(verb, "list", "{verb} {resource}");
    }
    assert_eq!(kube.request_count("list", "nodes"), 1, "a Local Service");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_audit_of_the_bad_fixtures_reports_every_rule_like_the_file_audit() {
    let docs = objects("deploy/doctor-fixtures/bad");
    let services = docs.iter().filter(|d| d["kind"] == "Service").count();
    let kube = cluster_with(&docs).await;
    // Small chunks: the lists take several requests and must still see every object.
    const CHUNK: usize = 7;
    let (out, report) = live(&kube, &["--chunk-size", &CHUNK.to_string()]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = report.expect("JSON report");
    let files = from_files("deploy/doctor-fixtures/bad").await;
    assert_eq!(keys(&report), keys(&files));
    assert_eq!(report["summary"], files["summary"]);
    let rules: BTreeSet<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    for rule in Rule::ALL {
        assert!(rules.contains(rule.as_str()), "{rule} not reported");
    }
    assert!(services > CHUNK, "the fixture is big enough to need chunks");
    assert_eq!(
        kube.request_count("list", "services") as usize,
        services.div_ceil(CHUNK)
    );
    // The advice for a Service without an audited workload speaks of the cluster.
    let workload = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "workload")
        .unwrap();
    assert!(
        workload["fix"]
            .as_str()
            .unwrap()
            .contains("kubectl get pods -n"),
        "{workload}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_restricts_the_audit_to_one_namespace() {
    let mut docs = objects("deploy/examples");
    // Move the ENI example to its own namespace.
    let eni = objects("deploy/examples/eni");
    for doc in docs.iter_mut().filter(|d| eni.contains(d)) {
        if doc["kind"] == "Namespace" {
            doc["metadata"]["name"] = json!("shop");
        } else if !doc["metadata"]["namespace"].is_null() {
            doc["metadata"]["namespace"] = json!("shop");
        }
    }
    let kube = cluster_with(&docs).await;
    let (out, report) = live(&kube, &["--namespace", "shop"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = &report.unwrap()["summary"];
    assert_eq!(
        (summary["services"].clone(), summary["workloads"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(
        kube.request_count("list", "nodes"),
        0,
        "no Local Service in shop"
    );

    let (_, report) = live(&kube, &["-n", "demo"]).await;
    assert_eq!(report.unwrap()["summary"]["services"], 2);

    // Nothing managed there: exit 0, and a hint at the usual cause (the class).
    let (out, report) = live(&kube, &["-n", "kube-system"]).await;
    assert!(out.status.success());
    assert_eq!(report.unwrap()["summary"]["services"], 0);
    let err = stderr(&out);
    assert!(
        err.contains("no managed Service in namespace kube-system") && err.contains("--lb-class"),
        "{err}"
    );
    assert_eq!(
        kube.request_count("list", "deployments"),
        2,
        "not for kube-system"
    );
}

// ---- Errors say what failed and what to do. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_list_is_an_error_naming_the_permission_to_ask_for() {
    let kube = cluster_with(&objects("deploy/examples")).await;
    kube.inject_fault(Fault::fail("/apis/apps/v1/deployments", 403, "Forbidden"));
    let (out, report) = live(&kube, &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(report.is_none(), "no report on a failed read");
    let err = stderr(&out);
    for part in [
        "forbids listing deployments.apps in all namespaces",
        "`list` permission on deployments.apps",
        "deploy/doctor-rbac.yaml",
        "kubectl auth can-i list deployments.apps -A",
    ] {
        assert!(err.contains(part), "{part:?} not in: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_permission_on_nodes_the_audit_goes_on_and_says_what_it_skipped() {
    let kube = cluster_with(&objects("deploy/examples")).await;
    kube.inject_fault(Fault::fail("/api/v1/nodes", 403, "Forbidden"));
    let (out, report) = live(&kube, &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("warning:") && err.contains("forbids listing nodes"),
        "{err}"
    );
    assert!(err.contains("kubectl auth can-i list nodes"), "{err}");
    let findings = beside_group_listener(&report.unwrap()["findings"]);
    assert_eq!(findings.as_array().unwrap().len(), 1, "{findings}");
    assert_eq!(findings[0]["rule"], "local-layout");
    assert_eq!(findings[0]["severity"], "info");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_server_is_named_with_what_to_check() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: \
         http://127.0.0.1:{port}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  \
         context:\n    cluster: c\n    user: u\ncurrent-context: c\n"
    );
    std::fs::write(&kubeconfig, yaml).unwrap();
    let out = slb_sync(&["doctor", "--live"], &[("KUBECONFIG", &kubeconfig)]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "cannot reach the API server at http://127.0.0.1:{port}"
        )),
        "{err}"
    );
    assert!(err.contains("kubectl cluster-info"), "{err}");
    assert!(
        err.starts_with("error: "),
        "nothing before doctor's own error: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_kubeconfig_the_error_says_how_to_point_at_one() {
    let out = slb_sync(&["doctor", "--live"], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("KUBECONFIG"), "{err}");
    assert!(err.contains("slb-sync doctor PATH"), "{err}");
}

// ---- Scale. ----

/// 5,000 nodes: the node list takes ⌈nodes / 500⌉ requests, and a pool node on the last
/// page still counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_thousand_node_cluster_is_read_in_chunks_and_fully_counted() {
    let kube = cluster_with(&objects("deploy/examples")).await;
    for i in 1..=5000 {
        let mut labels = json!({"kubernetes.io/hostname": format!("node-{i:05}")});
        // Three more nodes in the Local example's pool, spread over the pages.
        if i % 2000 == 1000 {
            labels["pool"] = json!("web-local");
        }
        kube.put(&json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": format!("node-{i:05}"), "labels": labels}}))
            .unwrap();
    }
    let nodes = kube.list("v1", "Node", None).len();
    let started = std::time::Instant::now();
    let (out, report) = live(&kube, &[]).await;
    let elapsed = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        kube.request_count("list", "nodes") as usize,
        nodes.div_ceil(500)
    );
    // 2 pool nodes in the example + 3 here ≥ 3 replicas: the layout warning counts all 5.
    let findings = beside_group_listener(&report.unwrap()["findings"]);
    assert_eq!(findings.as_array().unwrap().len(), 1, "{findings}");
    assert_eq!(findings[0]["rule"], "local-layout");
    let text = findings[0]["finding"].as_str().unwrap();
    assert!(text.contains("replicas 3 ≤ 5 nodes in the pool"), "{text}");
    eprintln!("doctor --live read {nodes} nodes in {elapsed:?}");
}
