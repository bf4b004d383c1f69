//! The `slb-sync` policy: the real agent (`slb_sync::agent::run`, leader-elected, with
//! its pod side) in-process against the lab's mock-kube and mock SLB, a managed Service
//! per mode, and pods with the readiness gate and a preStop `slb-sync wait-drained`
//! (the built binary, run by the lab's kubelet as a real process).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use slb_sync::agent::{AgentConfig, AgentError, PodSideChoice};
use slb_sync::desired::PlannerConfig;
use slb_sync::k8s::leader::LeaderConfig;
use slb_sync::reconcile::{ApiLimits, SchedulerConfig};
use slb_sync::slb::SlbApi;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::baseline::BackendMode;
use crate::sim::SimConfig;

/// `spec.loadBalancerClass` the lab's agent manages.
pub const LB_CLASS: &str = "slb-sync.io/slb";
/// Cluster id in the owner Description `k8s/80/<app>/<ns>/lab`.
pub const CLUSTER_ID: &str = "lab";
const ANN: &str = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-";

/// Why the agent could not be started.
#[derive(Debug, thiserror::Error)]
pub enum AgentPolicyError {
    #[error("the slb-sync agent failed: {0}")]
    Agent(#[from] AgentError),
    #[error("the slb-sync agent did not bind its HTTP server within 10 s")]
    NotBound,
    #[error("cannot find or build the slb-sync binary for preStop wait-drained: {0}; build it with `cargo build --bin slb-sync` or set SLB_SYNC_BIN")]
    Binary(String),
}

/// The managed LoadBalancer Service of the lab's workload in `mode`, on SLB `lb` with the
/// group `group` bound to port 80.
pub fn service(sim: &SimConfig, mode: BackendMode, lb: &str, group: &str) -> Value {
    let mut annotations = serde_json::Map::new();
    annotations.insert(format!("{ANN}id"), json!(lb));
    annotations.insert(format!("{ANN}vgroup-port"), json!(format!("{group}:80")));
    if mode == BackendMode::Eni {
        annotations.insert(
            "service.beta.kubernetes.io/backend-type".into(),
            json!("eni"),
        );
    }
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": sim.app, "namespace": sim.namespace,
                     "uid": format!("uid-svc-{}", sim.app), "annotations": annotations},
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": LB_CLASS,
            "externalTrafficPolicy": if mode == BackendMode::Local { "Local" } else { "Cluster" },
            "selector": {"app": sim.app},
            "ports": [{"name": sim.port_name, "port": 80, "protocol": "TCP",
                       "targetPort": sim.container_port, "nodePort": sim.node_port}],
        },
    })
}

/// The readiness gate condition the agent sets for the lab's Service.
pub fn gate(sim: &SimConfig) -> String {
    format!("registered.slb-sync.io/{}", sim.app)
}

/// The built `slb-sync` binary: `$SLB_SYNC_BIN`, else `<target>/{debug,release}/slb-sync`
/// (this build's profile first) under `$CARGO_TARGET_DIR` or the workspace's `target/`;
/// built with `cargo build --bin slb-sync` (this build's profile) when absent.
pub async fn slb_sync_binary() -> Result<PathBuf, AgentPolicyError> {
    if let Some(p) = std::env::var_os("SLB_SYNC_BIN") {
        return Ok(PathBuf::from(p));
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let release = !cfg!(debug_assertions);
    let profiles = if release {
        ["release", "debug"]
    } else {
        ["debug", "release"]
    };
    for p in profiles {
        let bin = target.join(p).join("slb-sync");
        if bin.is_file() {
            return Ok(bin);
        }
    }
    let mut cmd = tokio::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()));
    cmd.current_dir(&workspace)
        .args(["build", "-p", "slb-sync", "--bin", "slb-sync"]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .await
        .map_err(|e| AgentPolicyError::Binary(e.to_string()))?;
    let bin = target.join(profiles[0]).join("slb-sync");
    if status.success() && bin.is_file() {
        Ok(bin)
    } else {
        Err(AgentPolicyError::Binary(format!(
            "`cargo build` ended with {status}"
        )))
    }
}

/// A running agent; dropping it without [`LabAgent::stop`] aborts it.
pub struct LabAgent {
    pub addr: SocketAddr,
    metrics: slb_sync::agent::AgentMetrics,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), AgentError>>>,
}

impl LabAgent {
    /// Starts the agent: pod side on, `drain_secs` drain window, the lease and
    /// kube-proxy allowance of `timings`, gates on `gate_on`, a fast rate limit; returns
    /// once its HTTP server (the drain API) is bound.
    pub async fn start(
        client: kube::Client,
        slb: Arc<dyn SlbApi>,
        drain_secs: u32,
        timings: &crate::world::Timings,
        gate_on: slb_sync::agent::health::GateOn,
    ) -> Result<LabAgent, AgentPolicyError> {
        let planner = PlannerConfig {
            cluster_id: CLUSTER_ID.into(),
            lb_class: LB_CLASS.into(),
            manage_unclassed: false,
        };
        let leader = LeaderConfig {
            lease_name: "slb-sync".into(),
            namespace: "kube-system".into(),
            identity: "slb-sync-lab-0".into(),
            duration_secs: u64::from(timings.lease_s),
            grace_secs: 2,
        };
        let mut c: AgentConfig = AgentConfig::new(planner, leader, prometheus::Registry::new())
            .map_err(AgentError::from)?;
        c.default_drain_secs = drain_secs;
        c.kube_proxy_allowance = Duration::from_millis(timings.kube_proxy_allowance_ms);
        c.slb_propagation = Duration::from_millis(timings.slb_propagation_ms);
        c.health_gate.gate_on = gate_on;
        c.http_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        c.limits = ApiLimits {
            qps: 200.0,
            burst: std::num::NonZeroU32::new(100).unwrap_or(std::num::NonZeroU32::MIN),
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
        c.shutdown_grace = Duration::from_secs(3);
        let bound = Arc::new(Mutex::new(None));
        let b = bound.clone();
        c.on_bound = Some(Arc::new(move |addr| {
            *b.lock().unwrap_or_else(|p| p.into_inner()) = Some(addr)
        }));
        let metrics = c.metrics.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let pod_side = PodSideChoice::Lifecycle {
            fail_open_margin: Duration::from_secs(60),
        };
        let task = tokio::spawn(slb_sync::agent::run(c, client, slb, pod_side, async move {
            let _ = stopped.await;
        }));
        let mut agent = LabAgent {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics,
            stop: Some(stop),
            task: Some(task),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(addr) = *bound.lock().unwrap_or_else(|p| p.into_inner()) {
                agent.addr = addr;
                return Ok(agent);
            }
            if agent.task.as_ref().is_some_and(|t| t.is_finished()) {
                if let Some(t) = agent.task.take() {
                    if let Ok(Err(e)) = t.await {
                        return Err(e.into());
                    }
                }
                return Err(AgentPolicyError::NotBound);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(AgentPolicyError::NotBound);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Pod finalizers released without a confirmed drain, and readiness gates opened by
    /// the health-gate timeout: each a loss of the guarantee, whether or not a request
    /// failed.
    pub fn fail_opens(&self) -> (u64, u64) {
        (
            self.metrics.finalizer_fail_open_total.get(),
            self.metrics.gate_fail_open_total.get(),
        )
    }

    /// Stops the agent as SIGTERM would, waiting at most 10 s.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for LabAgent {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
