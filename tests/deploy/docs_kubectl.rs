//! The `kubectl` commands of docs/install.md, docs/operations.md, the README and the
//! doctor's RBAC in docs/configuration.md, run with the machine's kubectl against
//! mock-kube (and the agent, in-process, for what it writes): install with each overlay
//! and re-apply, check the installation, read the agent's Events, audit a pod, dump the
//! cluster for `slb-sync plan`, uninstall, bind the doctor's ClusterRole.
//!
//! `scripts/install-deps.sh` installs kubectl; without one on PATH each test says so on
//! stderr and passes without running.

use support::agent;
use support::pod_e2e;
use support::slb_mock;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use agent::eventually;
use mock_kube::{MockKube, MockKubeHandle};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);
const AGENT: &str = "slb-sync-5d8f9c7b4-x2x7q";

/// kubectl on PATH, or `None` after telling the person running the tests why nothing ran
/// (written past the test harness's capture, so a skip is never silent).
fn kubectl_or_skip(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("kubectl"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: no kubectl on PATH (scripts/install-deps.sh installs it)"
        );
    }
    found
}

/// kubectl pointed at one mock-kube, in a scratch directory holding a copy of `deploy/`
/// (with the secret overlay's `credentials.env` made from its example, as install.md
/// says) and kubectl's own kubeconfig, cache and home.
struct Kubectl {
    bin: PathBuf,
    dir: tempfile::TempDir,
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

impl Kubectl {
    fn new(bin: PathBuf, kube: &MockKubeHandle) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let deploy = dir.path().join("deploy");
        copy_tree(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy"),
            &deploy,
        );
        let secret = deploy.join("overlays/secret");
        std::fs::copy(
            secret.join("credentials.env.example"),
            secret.join("credentials.env"),
        )
        .unwrap();
        kube.write_kubeconfig(dir.path().join("kubeconfig"))
            .unwrap();
        Self { bin, dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    async fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("KUBECONFIG", self.path("kubeconfig"))
            .env("KUBECACHEDIR", self.path("cache"))
            .env("HOME", self.dir.path())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("kubectl starts");
        if let Some(text) = stdin {
            use tokio::io::AsyncWriteExt;
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(text.as_bytes()).await.unwrap();
        }
        tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish within 60 s"))
            .expect("kubectl runs")
    }

    async fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None).await
    }

    /// Runs a command that must succeed; its stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "kubectl {} failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// [`Self::ok`] of a command line without quoted arguments, as the docs write it.
    async fn line(&self, command: &str) -> String {
        let args: Vec<&str> = command.split_whitespace().collect();
        self.ok(&args).await
    }

    /// `kubectl apply -f -` of a manifest that must be accepted.
    async fn apply(&self, manifest: &Value) -> String {
        let out = self
            .run_with_stdin(&["apply", "-f", "-"], Some(&manifest.to_string()))
            .await;
        assert!(
            out.status.success(),
            "kubectl apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// What `kubectl apply -k` of any overlay creates (namespace `slb-sync`).
const INSTALLED: &[&str] = &[
    "namespace/slb-sync",
    "serviceaccount/slb-sync",
    "role.rbac.authorization.k8s.io/slb-sync-leader-election",
    "clusterrole.rbac.authorization.k8s.io/slb-sync",
    "rolebinding.rbac.authorization.k8s.io/slb-sync-leader-election",
    "clusterrolebinding.rbac.authorization.k8s.io/slb-sync",
    "service/slb-sync",
    "deployment.apps/slb-sync",
    "poddisruptionbudget.policy/slb-sync",
    "prometheusrule.monitoring.coreos.com/slb-sync",
    "servicemonitor.monitoring.coreos.com/slb-sync",
];

async fn kube_with_prometheus_operator() -> MockKubeHandle {
    MockKube::builder()
        .prometheus_operator_crds(true)
        .serve()
        .await
        .expect("mock-kube starts")
}

fn agent_env(kube: &MockKubeHandle) -> Vec<Value> {
    let deploy = kube
        .get("apps/v1", "Deployment", "slb-sync", "slb-sync")
        .expect("the agent's Deployment");
    deploy["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_overlay_installs_and_a_second_apply_changes_nothing() {
    let Some(bin) = kubectl_or_skip("every_overlay_installs_and_a_second_apply_changes_nothing")
    else {
        return;
    };
    for (overlay, env_var) in [
        ("secret", "ALIBABA_CLOUD_ACCESS_KEY_ID"),
        ("instance-role", "SLB_SYNC_RAM_ROLE"),
        ("ram-role", "ALIBABA_CLOUD_ROLE_ARN"),
    ] {
        let kube = kube_with_prometheus_operator().await;
        let kubectl = Kubectl::new(bin.clone(), &kube);
        let dir = format!("deploy/overlays/{overlay}");
        let first = kubectl.ok(&["apply", "-k", &dir]).await;
        for object in INSTALLED {
            assert!(
                first.contains(&format!("{object} created")),
                "{overlay}: {object} not created:\n{first}"
            );
        }
        assert!(
            agent_env(&kube).iter().any(|e| e["name"] == env_var),
            "{overlay}: the overlay's patch sets {env_var}"
        );
        assert!(kube
            .get(
                "rbac.authorization.k8s.io/v1",
                "ClusterRole",
                "",
                "slb-sync"
            )
            .is_some());
        assert!(kube
            .get(
                "monitoring.coreos.com/v1",
                "ServiceMonitor",
                "slb-sync",
                "slb-sync"
            )
            .is_some());
        if overlay == "secret" {
            let secrets = kube.list("v1", "Secret", Some("slb-sync"));
            assert_eq!(secrets.len(), 1, "{secrets:?}");
            let name = secrets[0]["metadata"]["name"].as_str().unwrap();
            assert!(name.starts_with("slb-sync-credentials-"), "{name}");
        }

        let second = kubectl.ok(&["apply", "-k", &dir]).await;
        for line in second.lines() {
            // The PodDisruptionBudget's selector has `patchStrategy: replace`, so kubectl
            // always sends it again and says "configured", against a real server too.
            let expected = if line.starts_with("poddisruptionbudget.policy/") {
                "configured"
            } else {
                "unchanged"
            };
            assert!(line.ends_with(expected), "{overlay}: second apply: {line}");
        }
        assert_eq!(second.lines().count(), first.lines().count());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelt_field_is_refused_by_the_servers_validation() {
    let Some(bin) = kubectl_or_skip("a_misspelt_field_is_refused_by_the_servers_validation") else {
        return;
    };
    let kube = kube_with_prometheus_operator().await;
    let kubectl = Kubectl::new(bin, &kube);
    let manifest = |replicas_key: &str| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                replicas_key: 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "web", "image": "nginx"}]}},
            },
        })
    };
    let out = kubectl
        .run_with_stdin(
            &["apply", "-f", "-"],
            Some(&manifest("replica").to_string()),
        )
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a misspelt field must be refused");
    assert!(
        stderr.contains("strict decoding error: unknown field \"spec.replica\""),
        "{stderr}"
    );
    assert!(kube
        .get("apps/v1", "Deployment", "default", "web")
        .is_none());

    // A misspelt ServiceMonitor field is refused as the operator's CRD would refuse it.
    let monitor = json!({
        "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"endpoint": [{"port": "http"}], "selector": {}},
    });
    let out = kubectl
        .run_with_stdin(&["apply", "-f", "-"], Some(&monitor.to_string()))
        .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field \"spec.endpoint\""));

    let created = kubectl.apply(&manifest("replicas")).await;
    assert!(created.contains("deployment.apps/web created"), "{created}");
    let stored = kube.get("apps/v1", "Deployment", "default", "web").unwrap();
    assert_eq!(stored["spec"]["replicas"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_prometheus_operator_the_base_needs_its_two_lines_removed() {
    let Some(bin) =
        kubectl_or_skip("without_the_prometheus_operator_the_base_needs_its_two_lines_removed")
    else {
        return;
    };
    let kube = MockKube::start().await.unwrap();
    let kubectl = Kubectl::new(bin, &kube);
    let out = kubectl
        .run(&["apply", "-k", "deploy/overlays/secret"])
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(
            "no matches for kind \"ServiceMonitor\" in version \"monitoring.coreos.com/v1\""
        ),
        "{stderr}"
    );
    // As install.md says: delete the two lines from the base and apply again.
    let base = kubectl.path("deploy/base/kustomization.yaml");
    let text = std::fs::read_to_string(&base).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !matches!(l.trim(), "- servicemonitor.yaml" | "- prometheusrule.yaml"))
        .collect();
    std::fs::write(&base, kept.join("\n")).unwrap();
    let again = kubectl.line("apply -k deploy/overlays/secret").await;
    assert!(
        again.contains("deployment.apps/slb-sync unchanged"),
        "{again}"
    );
    assert!(!again.contains("servicemonitor"), "{again}");
}

/// A Running, Ready replica of the agent, as the Deployment controller and kubelet would
/// leave it.
fn agent_pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "slb-sync",
                     "labels": {"app.kubernetes.io/name": "slb-sync"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "slb-sync", "image": "slb-sync"}]},
        "status": {"phase": "Running",
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [{"name": "slb-sync", "ready": true, "restartCount": 0,
                                          "image": "slb-sync", "imageID": "",
                                          "state": {"running": {}}}]},
    })
}

/// A managed Service whose drain timeout the agent refuses (operations.md, "Bad
/// annotations").
fn bad_service() -> Value {
    let ann = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-";
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "bad", "namespace": "default", "annotations": {
            format!("{ann}id"): slb_mock::LB,
            format!("{ann}connection-drain-timeout"): "5",
        }},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": agent::CLASS,
                 "selector": {"app": "bad"},
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                            "targetPort": 8080, "nodePort": 30081}]},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_troubleshoot_and_uninstall_with_the_agent_running() {
    let Some(bin) = kubectl_or_skip("check_troubleshoot_and_uninstall_with_the_agent_running")
    else {
        return;
    };
    let kube = kube_with_prometheus_operator().await;
    let slb = slb_mock::start_mock(slb_mock::seed(47, false, json!({}))).await;
    let kubectl = Kubectl::new(bin, &kube);
    kubectl.line("apply -k deploy/overlays/secret").await;

    // operations.md, doctor's "cannot reach the API server": this should work first.
    let info = kubectl.line("cluster-info").await;
    assert!(
        info.contains(&format!("is running at {}", kube.url())),
        "{info}"
    );

    // install.md, "Check the installation": both replicas Running and Ready.
    for name in ["slb-sync-5d8f9c7b4-x2x7q", "slb-sync-5d8f9c7b4-q8w2n"] {
        kube.put(&agent_pod(name)).unwrap();
    }
    let pods = kubectl.line("-n slb-sync get pods").await;
    let rows: Vec<&str> = pods.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{pods}");
    for row in rows {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[1..3], ["1/1", "Running"], "{pods}");
    }

    // The agent, with its pod side, leading from the namespace the manifests give it.
    pod_e2e::put_eni_service(&kube);
    kube.put(&pod_e2e::pod("web-0", "127.0.47.101")).unwrap();
    kube.put(&pod_e2e::slice(
        "web-0",
        "127.0.47.101",
        pod_e2e::Ep::NotReady,
    ))
    .unwrap();
    let agent = agent::start_agent_full(&kube, &slb, AGENT, pod_e2e::lifecycle(), |c| {
        c.leader.namespace = "slb-sync".into();
    })
    .await;
    eventually("the agent holds the lease", WAIT, || {
        kube.get("coordination.k8s.io/v1", "Lease", "slb-sync", "slb-sync")
            .filter(|l| l["spec"]["holderIdentity"] == AGENT)
    })
    .await;
    let lease = kubectl.line("-n slb-sync get lease slb-sync -o yaml").await;
    assert!(
        lease.contains(&format!("holderIdentity: {AGENT}")),
        "{lease}"
    );
    let holder = kubectl
        .line("-n slb-sync get lease slb-sync -o jsonpath={.spec.holderIdentity}")
        .await;
    assert_eq!(holder, AGENT);

    // operations.md, "Pods stuck in Terminating": the agent's finalizer and gate.
    eventually("the agent holds web-0 with its finalizer", WAIT, || {
        kube.get("v1", "Pod", "default", "web-0")
            .filter(|p| pod_e2e::finalizers(p).contains(&pod_e2e::FINALIZER.to_owned()))
    })
    .await;
    let audit = kubectl
        .ok(&[
            "get",
            "pod",
            "web-0",
            "-o",
            "jsonpath={.metadata.finalizers} {.status.conditions}",
        ])
        .await;
    assert!(audit.contains(pod_e2e::FINALIZER), "{audit}");
    assert!(audit.contains(pod_e2e::GATE), "{audit}");

    // operations.md, "Troubleshooting" and "Bad annotations": the Event the agent writes
    // through events.k8s.io, read through core/v1 by `get events` and `describe`.
    kubectl.apply(&bad_service()).await;
    eventually("the agent's BadAnnotation Event", WAIT, || {
        kube.list("events.k8s.io/v1", "Event", Some("default"))
            .into_iter()
            .find(|e| e["reason"] == "BadAnnotation" && e["regarding"]["name"] == "bad")
    })
    .await;
    let events = kubectl
        .line("get events -A --field-selector reportingComponent=slb-sync")
        .await;
    let row = events
        .lines()
        .find(|l| l.contains("BadAnnotation"))
        .unwrap_or_else(|| panic!("no BadAnnotation row:\n{events}"));
    for cell in [
        "default",
        "Warning",
        "service/bad",
        "connection-drain-timeout",
    ] {
        assert!(row.contains(cell), "{cell} missing: {row}");
    }
    let warnings = kubectl
        .line("get events -A --field-selector type=Warning")
        .await;
    assert!(warnings.contains("BadAnnotation"), "{warnings}");
    let described = kubectl.line("describe service bad").await;
    let line = described
        .lines()
        .find(|l| l.contains("BadAnnotation"))
        .unwrap_or_else(|| panic!("no Event in describe:\n{described}"));
    assert!(line.contains("slb-sync"), "From column: {line}");
    // The message operations.md shows for this command.
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md"))
            .unwrap();
    let documented = docs
        .lines()
        .find(|l| l.starts_with("kubectl describe service web"))
        .and_then(|l| l.split_once("BadAnnotation ... "))
        .map(|(_, message)| message.trim())
        .expect("operations.md shows describe's BadAnnotation line");
    assert!(
        line.contains(documented),
        "{line}\ndocumented: {documented}"
    );

    // README, "`slb-sync plan`": a dump of the cluster, planned offline.
    let dump = kubectl
        .line("get nodes,pods,services,endpointslices -A -o yaml")
        .await;
    let file = kubectl.path("cluster.yaml");
    std::fs::write(&file, dump).unwrap();
    let plan = pod_e2e::slb_sync_command(env!("CARGO_BIN_EXE_slb-sync"))
        .args(["plan", "--offline"])
        .arg(&file)
        .output()
        .await
        .unwrap();
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    let services: Vec<&str> = plan["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["service"].as_str())
        .collect();
    assert_eq!(services, ["default/bad", "default/web"]);

    // install.md, "Uninstall": stop the agent, then delete the installation.
    agent.stop().await;
    kubectl
        .line("-n slb-sync scale deployment slb-sync --replicas=0")
        .await;
    let deploy = kube
        .get("apps/v1", "Deployment", "slb-sync", "slb-sync")
        .unwrap();
    assert_eq!(deploy["spec"]["replicas"], 0);
    let deleted = kubectl.line("delete -k deploy/overlays/secret").await;
    for object in INSTALLED {
        let (kind, name) = object.split_once('/').unwrap();
        assert!(
            deleted.contains(&format!("{kind} \"{name}\" deleted")),
            "{object}:\n{deleted}"
        );
    }
    assert!(kube.get("v1", "Namespace", "", "slb-sync").is_none());
    assert!(kube
        .get(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            "",
            "slb-sync"
        )
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_rbac_of_configuration_md_binds_alice() {
    let Some(bin) = kubectl_or_skip("the_doctor_rbac_of_configuration_md_binds_alice") else {
        return;
    };
    let kube = MockKube::start().await.unwrap();
    let kubectl = Kubectl::new(bin, &kube);
    let role = kubectl.line("apply -f deploy/doctor-rbac.yaml").await;
    assert!(role.contains("clusterrole.rbac.authorization.k8s.io/slb-sync-doctor created"));
    // kubectl sends these two in protobuf.
    kubectl
        .line("create clusterrolebinding slb-sync-doctor-alice --clusterrole=slb-sync-doctor --user=alice")
        .await;
    kubectl
        .line(
            "-n shop create rolebinding slb-sync-doctor --clusterrole=slb-sync-doctor --user=alice",
        )
        .await;
    let rbac = "rbac.authorization.k8s.io/v1";
    for (kind, ns, name) in [
        ("ClusterRoleBinding", "", "slb-sync-doctor-alice"),
        ("RoleBinding", "shop", "slb-sync-doctor"),
    ] {
        let binding = kube.get(rbac, kind, ns, name).expect(kind);
        assert_eq!(
            binding["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "slb-sync-doctor"})
        );
        assert_eq!(
            binding["subjects"],
            json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}])
        );
    }
}
