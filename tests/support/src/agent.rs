//! Fixtures for running the whole agent (`slb_sync::agent::run`) in-process against the
//! Kubernetes double (`mock-kube`) and the SLB double (`mock-slb`) over loopback.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mock_kube::{MockKube, MockKubeHandle};
use mock_slb::MockSlbHandle;
use serde_json::{json, Value};
use slb_sync::agent::{AgentConfig, PodSideChoice};
use slb_sync::desired::PlannerConfig;
use slb_sync::k8s::leader::LeaderConfig;
use slb_sync::reconcile::{ApiLimits, SchedulerConfig};
use slb_sync::slb::{SlbApi, SlbMetrics};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::slb_mock;

pub const CLUSTER_ID: &str = "c1";
pub const CLASS: &str = "slb-sync.io/slb";
pub const ANN: &str = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-";

/// Polls `check` every 50 ms until it returns `Some`, or panics with `what` at `within`.
pub async fn eventually<T>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A running agent; dropping it without [`Agent::stop`] aborts it.
pub struct Agent {
    pub identity: String,
    pub addr: SocketAddr,
    pub registry: prometheus::Registry,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), slb_sync::agent::AgentError>>>,
}

impl Agent {
    /// Stops the agent (as SIGTERM would) and waits for it to end.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("agent stops within 30 s")
                .expect("agent task")
                .expect("agent ends without error");
        }
    }

    pub async fn metrics_text(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.addr))
            .await
            .expect("scrape /metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// Sum of a counter or gauge over the series whose labels contain every `labels` pair.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut sum = 0.0;
        for family in self.registry.gather() {
            if family.name() != name {
                continue;
            }
            for m in family.get_metric() {
                let matches = labels.iter().all(|(k, v)| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == *k && l.value() == *v)
                });
                if matches {
                    // Histograms count their observations.
                    sum += m.get_counter().get_value()
                        + m.get_gauge().get_value()
                        + m.get_histogram().get_sample_count() as f64;
                }
            }
        }
        sum
    }

    /// SLB write calls this agent made.
    pub fn slb_writes(&self) -> f64 {
        [
            "AddVServerGroupBackendServers",
            "RemoveVServerGroupBackendServers",
            "SetVServerGroupAttribute",
            "CreateVServerGroup",
        ]
        .iter()
        .map(|a| self.metric("slb_sync_slb_calls_total", &[("action", a)]))
        .sum()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

pub fn config(identity: &str, registry: prometheus::Registry) -> AgentConfig {
    let planner = PlannerConfig {
        cluster_id: CLUSTER_ID.into(),
        lb_class: CLASS.into(),
        manage_unclassed: false,
    };
    let leader = LeaderConfig {
        lease_name: "slb-sync".into(),
        namespace: "kube-system".into(),
        identity: identity.into(),
        duration_secs: 15,
        grace_secs: 5,
    };
    let mut c = AgentConfig::new(planner, leader, registry).expect("agent metrics register");
    c.default_drain_secs = 1;
    // The mock SLB carries a write at once, and the tests' kube-proxy is instant: a node
    // backend still waits this allowance before it takes traffic (`plan::WarmUp`).
    c.slb_propagation = Duration::ZERO;
    c.kube_proxy_allowance = Duration::from_secs(1);
    c.http_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    c.limits = ApiLimits {
        qps: 200.0,
        burst: std::num::NonZeroU32::new(100).unwrap(),
        call_timeout: Duration::from_secs(5),
        retry_min_delay: Duration::from_millis(20),
        retry_max_delay: Duration::from_millis(200),
        ..ApiLimits::default()
    };
    c.scheduler = SchedulerConfig {
        max_concurrent: 4,
        error_delay: Duration::from_millis(200),
        max_error_delay: Duration::from_secs(2),
        ..SchedulerConfig::default()
    };
    c.shutdown_grace = Duration::from_secs(5);
    c
}

/// Starts an agent with `identity` against `kube` and `slb`, its SLB client's metrics in
/// the agent's registry; returns once its HTTP server is bound.
pub async fn start_agent(kube: &MockKubeHandle, slb: &MockSlbHandle, identity: &str) -> Agent {
    start_agent_with(kube, slb, identity, |_| {}).await
}

pub async fn start_agent_with(
    kube: &MockKubeHandle,
    slb: &MockSlbHandle,
    identity: &str,
    tweak: impl FnOnce(&mut AgentConfig),
) -> Agent {
    start_agent_full(kube, slb, identity, PodSideChoice::None, tweak).await
}

/// [`start_agent_with`] with the pod side of choice.
pub async fn start_agent_full(
    kube: &MockKubeHandle,
    slb: &MockSlbHandle,
    identity: &str,
    pod_side: PodSideChoice,
    tweak: impl FnOnce(&mut AgentConfig),
) -> Agent {
    let registry = prometheus::Registry::new();
    let mut cfg = config(identity, registry.clone());
    tweak(&mut cfg);
    let metrics = SlbMetrics::register(&registry).expect("slb metrics register");
    let api: Arc<dyn SlbApi> = Arc::new(slb_mock::client(slb).with_metrics(metrics));
    let bound = Arc::new(Mutex::new(None));
    let b = bound.clone();
    cfg.on_bound = Some(Arc::new(move |addr| *b.lock().unwrap() = Some(addr)));
    let (stop, stopped) = oneshot::channel::<()>();
    let client = kube.client().expect("kube client");
    let task = tokio::spawn(slb_sync::agent::run(
        cfg,
        client,
        api,
        pod_side,
        async move {
            let _ = stopped.await;
        },
    ));
    let addr = eventually("the agent's HTTP server", Duration::from_secs(10), || {
        *bound.lock().unwrap()
    })
    .await;
    Agent {
        identity: identity.into(),
        addr,
        registry,
        stop: Some(stop),
        task: Some(task),
    }
}

pub async fn start_kube() -> MockKubeHandle {
    MockKube::start().await.expect("mock kube starts")
}

/// A managed LoadBalancer Service `name` in `default` with port 80 (nodePort 30080,
/// targetPort named `http` = 8080) and the given extra annotations (short names after
/// the ACK prefix, or full keys containing a `/`).
pub fn service(name: &str, extra: &[(&str, &str)], local: bool) -> Value {
    let mut annotations = serde_json::Map::new();
    annotations.insert(format!("{ANN}id"), json!(slb_mock::LB));
    for (k, v) in extra {
        let key = if k.contains('/') {
            (*k).to_owned()
        } else {
            format!("{ANN}{k}")
        };
        annotations.insert(key, json!(v));
    }
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                     "annotations": annotations},
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": CLASS,
            "externalTrafficPolicy": if local { "Local" } else { "Cluster" },
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                       "targetPort": 8080, "nodePort": 30080}],
        },
    })
}

/// Node `node-<i>` backed by ECS instance `i-<i>`.
pub fn node(i: u32) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": format!("node-{i}"), "labels": {"kubernetes.io/hostname": format!("node-{i}")}},
        "spec": {"providerID": format!("cn-hangzhou.i-{i}")},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    })
}

/// An EndpointSlice of Service `service` with ready endpoints `(ip, node)`.
pub fn slice(service: &str, endpoints: &[(&str, &str)]) -> Value {
    let eps: Vec<Value> = endpoints
        .iter()
        .map(|(ip, node)| {
            json!({
                "addresses": [ip], "nodeName": node,
                "conditions": {"ready": true, "serving": true, "terminating": false},
            })
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-abc"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": eps,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    })
}

/// Members of the mock's group `group` as (server id, port, weight, description).
pub fn members(slb: &MockSlbHandle, group: &str) -> Vec<(String, u16, u8, String)> {
    let mut out: Vec<_> = slb
        .state()
        .v_server_groups
        .get(group)
        .map(|g| {
            g.backends
                .iter()
                .map(|b| (b.server_id.clone(), b.port, b.weight, b.description.clone()))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Runs `f` with a fresh kube double and an SLB double seeded by `seed`.
pub async fn with_mocks<F, Fut>(seed: mock_slb::Seed, f: F)
where
    F: FnOnce(MockKubeHandle, MockSlbHandle) -> Fut,
    Fut: Future<Output = ()>,
{
    let kube = start_kube().await;
    let slb = slb_mock::start_mock(seed).await;
    f(kube, slb).await;
}
