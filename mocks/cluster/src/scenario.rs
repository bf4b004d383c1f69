//! One lab run: a simulated cluster, the mock SLB, a sync policy, a rolling update under
//! load. The `demo` table is these runs over modes × policies × seeds.
//!
//! `naive` and `sleep` run the lab's baseline controller; `slb-sync` runs the real agent
//! against this cluster's mock-kube and this mock SLB (see [`crate::agent_policy`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use slb_sync::slb::credentials::{Credentials, SecretString, StaticProvider};
use slb_sync::slb::{RpcConfig, RpcSlbClient, SlbApi};
use tokio::time::Instant;

use crate::agent_policy::{self, AgentPolicyError, LabAgent};
use crate::baseline::{spawn_baseline, BackendMode, BaselineConfig};
use crate::delay::{rng_for, Delay};
use crate::endpoints::endpoint_feed;
use crate::http::get_once;
use crate::kubelet::pod_ip;
use crate::kubeproxy::TrafficPolicy;
use crate::load::{Load, LoadConfig, LoadReport};
use crate::rollout::{roll, RolloutConfig, RolloutError};
use crate::scheduler::Layout;
use crate::sim::{instance_id, node_name, Sim, SimConfig, SimError};
use crate::world::{ApiWorld, Propagation, Timings, World};
use crate::AbortOnDrop;

#[path = "scenario/slb.rs"]
mod slb;

/// The sync policy under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Baseline controller; pods without readinessProbe or preStop.
    Naive,
    /// Baseline controller; readinessProbe and preStop `sleep`, grace = sleep + 30 s;
    /// with `drain` the listener's connection drain is on too (the vendor's advice for
    /// persistent connections): the seed's full remedy.
    Sleep { seconds: i64, drain: bool },
    /// The real agent with its pod side; pods carry the readiness gate, a readinessProbe
    /// and preStop `slb-sync wait-drained --timeout <wait_secs>`; drain window
    /// `drain_secs` (`default_drain_secs`). The SLB listener has ConnectionDrain on
    /// (10 s) so established connections outlive the removal until the app closes them.
    SlbSync { drain_secs: u32, wait_secs: u32 },
}

impl Policy {
    /// `policy` with its numbers (preStop sleep, drain window, `wait-drained` timeout)
    /// from `t`.
    pub fn of(policy: Policy, t: &Timings) -> Policy {
        match policy {
            Policy::Naive => Policy::Naive,
            Policy::Sleep { drain, .. } => Policy::Sleep {
                seconds: t.sleep_s,
                drain,
            },
            Policy::SlbSync { .. } => Policy::SlbSync {
                drain_secs: t.drain_window_s,
                wait_secs: t.wait_drained_s,
            },
        }
    }

    /// The name used in tables and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Policy::Naive => "naive",
            Policy::Sleep { drain: true, .. } => "sleep",
            Policy::Sleep { drain: false, .. } => "sleep-stock",
            Policy::SlbSync { .. } => "slb-sync",
        }
    }
}

/// One run.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub mode: BackendMode,
    pub policy: Policy,
    pub layout: Layout,
    pub replicas: usize,
    pub max_surge: usize,
    pub max_unavailable: usize,
    /// Cluster shape and delays (`policy` is derived from `mode`).
    pub sim: SimConfig,
    pub baseline_lag: Delay,
    pub propagation: Propagation,
    /// SLB API latency, limit, errors and outage.
    pub api: ApiWorld,
    pub load: LoadShape,
    /// The agent's kube-proxy allowance and lease, the listener's drain timeout.
    pub timings: Timings,
    /// Load keeps running this long after the rollout's old pods are gone.
    pub settle: Duration,
    /// The listener's health check (`None`: off, the lab's default).
    pub health_check: Option<mock_slb::state::HealthCheck>,
    /// What the agent's readiness gates wait for (`slb-sync` policy).
    pub gate_on: slb_sync::agent::health::GateOn,
}

/// Load settings (the target is the SLB listener).
#[derive(Debug, Clone)]
pub struct LoadShape {
    pub short_every: Option<Duration>,
    pub keepalive_conns: usize,
    pub keepalive_every: Duration,
    /// Slow keep-alive clients (long polls): each request held `slow_delay` by the app.
    pub slow_conns: usize,
    pub slow_delay: Delay,
    /// Streams: one response held a drawn time, ended early on SIGTERM.
    pub streams: usize,
    pub stream_hold: Delay,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub load: LoadReport,
    /// From the rollout's start until every new pod was Ready and no old pod live.
    pub rollout: Duration,
    /// The mock SLB listener's own view: `(refused, connect_failed, cut)` connections,
    /// which attributes the client's `other` (a fresh connection closed unanswered).
    pub slb_refused_failed_cut: (u64, u64, u64),
    /// Pods of the rollout: start → Ready, delete → stopped, killed at grace end.
    pub pods: crate::kubelet::PodTimesInner,
    /// slb-sync: finalizers released and gates opened without their guarantee.
    pub fail_open: FailOpen,
    /// SLB API calls by action: calls, successes, errors by code.
    pub slb_calls: BTreeMap<String, mock_slb::calls::ActionCounters>,
}

/// Releases without the agent's guarantee (slb-sync only; zero for the baselines).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailOpen {
    /// Pod finalizers released without a confirmed drain.
    pub finalizers: u64,
    /// Readiness gates opened by the health-gate timeout.
    pub gates: u64,
}

/// Why a run could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("mock SLB did not start: {0}")]
    Slb(String),
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error(transparent)]
    Rollout(#[from] RolloutError),
    #[error(transparent)]
    Agent(#[from] AgentPolicyError),
    #[error("no steady state before the rollout: {0}")]
    NotSteady(String),
}

impl Scenario {
    /// Defaults for a mode and policy: 3 nodes, 3 replicas (Local: 2 replicas one per
    /// node, so a rollout moves every pod), maxSurge 1, maxUnavailable 0.
    pub fn new(mode: BackendMode, policy: Policy, seed: u64, subnet: u8) -> Scenario {
        let local = mode == BackendMode::Local;
        Scenario {
            mode,
            policy,
            layout: if local {
                Layout::OnePerNode
            } else {
                Layout::Spread
            },
            replicas: if local { 2 } else { 3 },
            max_surge: 1,
            max_unavailable: 0,
            sim: SimConfig {
                seed,
                subnet,
                nodes: 3,
                proxy_lag: Delay::between(Duration::from_millis(20), Duration::from_millis(300)),
                ..SimConfig::default()
            },
            baseline_lag: Delay::default(),
            propagation: Propagation::Fixed { ms: 0 },
            api: ApiWorld::default(),
            load: LoadShape {
                short_every: None,
                keepalive_conns: 0,
                keepalive_every: Duration::ZERO,
                slow_conns: 0,
                slow_delay: Delay::default(),
                streams: 0,
                stream_hold: Delay::default(),
            },
            timings: Timings::default(),
            settle: Duration::from_secs(2),
            health_check: None,
            gate_on: slb_sync::agent::health::GateOn::Healthy,
        }
        .with_world(&World::default())
    }

    /// Takes the world's delays, SLB, load and timings (the policy keeps its own numbers:
    /// [`Policy::of`] takes them from the same timings).
    pub fn with_world(mut self, w: &World) -> Scenario {
        let c = &w.cluster;
        self.sim.endpoint_lag = c.endpoint_lag_ms.delay();
        self.sim.proxy_lag = c.proxy_lag_ms.delay();
        self.sim.startup = c.startup_ms.delay();
        self.sim.response = c.response_ms.delay();
        self.baseline_lag = c.baseline_lag_ms.delay();
        self.propagation = w.slb.propagation;
        self.health_check = w.slb.health_check;
        self.api = w.slb.api.clone();
        let l = &w.load;
        self.load = LoadShape {
            short_every: l.short_every_ms.map(Duration::from_millis),
            keepalive_conns: l.keepalive_conns,
            keepalive_every: Duration::from_millis(l.keepalive_every_ms),
            slow_conns: l.long_polls,
            slow_delay: l.long_poll_ms.delay(),
            streams: l.streams,
            stream_hold: l.stream_ms.delay(),
        };
        self.timings = w.timings.clone();
        self
    }

    /// The pod template; `wait_drained` is the preStop command of the `slb-sync` policy.
    /// Local mode, in-place layout (docs/architecture.md, "Workload advice"): 3 replicas with a
    /// preferred affinity to a 2-node pool, so every backend node keeps a serving pod
    /// through the rollout.
    pub fn local_in_place(policy: Policy, seed: u64, subnet: u8) -> Scenario {
        let mut s = Scenario::new(BackendMode::Local, policy, seed, subnet);
        s.layout = Layout::InPlace {
            pool: vec![node_name(1), node_name(2)],
        };
        s.replicas = 3;
        s
    }

    fn template(&self, wait_drained: &[String]) -> Pod {
        let mut container = json!({"name": "app", "image": "lab"});
        let mut grace = 30;
        let mut gates = json!([]);
        let probe = json!({"httpGet": {"path": "/", "port": self.sim.container_port}});
        match self.policy {
            Policy::Naive => {}
            Policy::Sleep { seconds, .. } => {
                container["lifecycle"] = json!({"preStop": {"sleep": {"seconds": seconds}}});
                container["readinessProbe"] = probe;
                grace = seconds + 30;
            }
            Policy::SlbSync { wait_secs, .. } => {
                container["lifecycle"] = json!({"preStop": {"exec": {"command": wait_drained}}});
                container["readinessProbe"] = probe;
                gates = json!([{"conditionType": agent_policy::gate(&self.sim)}]);
                grace = i64::from(wait_secs) + 30;
            }
        }
        serde_json::from_value(json!({"metadata": {}, "spec": {
            "terminationGracePeriodSeconds": grace, "readinessGates": gates,
            "containers": [container]}}))
        .unwrap_or_default()
    }

    /// Runs the scenario to the end.
    pub async fn run(&self) -> Result<Outcome, ScenarioError> {
        let slb = mock_slb::MockSlb::start(mock_slb::Config {
            seed: self.slb_seed()?,
            ..Default::default()
        })
        .await
        .map_err(|e| ScenarioError::Slb(e.to_string()))?;
        let result = self.run_with(&slb).await;
        slb.shutdown().await;
        result
    }

    async fn run_with(&self, slb: &mock_slb::MockSlbHandle) -> Result<Outcome, ScenarioError> {
        let target = slb
            .listener_addr("lb-lab", 80)
            .ok_or_else(|| ScenarioError::Slb("listener 80 not bound".into()))?;
        let mut rpc = RpcConfig::new("cn-hangzhou");
        rpc.slb_endpoint = Some(slb.api_url());
        rpc.ecs_endpoint = Some(slb.api_url());
        let creds = Credentials::new("labkey", SecretString::from("labsecret"), None, "lab")
            .map_err(|e| ScenarioError::Slb(e.to_string()))?;
        let api: Arc<dyn SlbApi> =
            Arc::new(RpcSlbClient::new(rpc, Arc::new(StaticProvider::new(creds))));
        let mut sc = self.sim.clone();
        sc.policy = if self.mode == BackendMode::Local {
            TrafficPolicy::Local
        } else {
            TrafficPolicy::Cluster
        };
        sc.layout = self.layout.clone();
        let sim = Sim::start(sc.clone()).await?;
        let (feed, feed_task) = endpoint_feed(sim.client.clone(), &sc.namespace, &sc.app);
        let _feed_task = AbortOnDrop(feed_task);
        let enis: BTreeMap<_, _> = (1..=sc.nodes)
            .flat_map(|i| (2..=254).map(move |n| (pod_ip(sc.subnet, i, n), format!("eni-node{i}"))))
            .collect();
        let bc = BaselineConfig {
            v_server_group_id: "rsp-web".into(),
            mode: self.mode,
            nodes: (1..=sc.nodes)
                .map(|i| (node_name(i), instance_id(i)))
                .collect(),
            node_port: sc.node_port,
            container_port: sc.container_port,
            enis,
            description: format!("k8s/80/{}/{}/lab", sc.app, sc.namespace),
            lag: self.baseline_lag,
        };
        let mut _baseline = None;
        let mut agent = None;
        let mut wait_drained = Vec::new();
        match self.policy {
            Policy::SlbSync {
                drain_secs,
                wait_secs,
            } => {
                let bin = agent_policy::slb_sync_binary().await?;
                sim.kube
                    .put(&agent_policy::service(&sc, self.mode, "lb-lab", "rsp-web"))
                    .map_err(SimError::from)?;
                let a = LabAgent::start(
                    sim.client.clone(),
                    api.clone(),
                    drain_secs,
                    &self.timings,
                    self.gate_on,
                )
                .await?;
                let wait = format!(
                    "'{}' wait-drained --agent http://{} --timeout {wait_secs}",
                    bin.to_string_lossy(),
                    a.addr
                );
                // `wait-drained` alone in every mode: through kube-proxy (Cluster, Local)
                // the agent itself waits out kube-proxy's lag (its allowance, shortened
                // in `LabAgent::start`) before it reports a pod drained.
                wait_drained = vec!["/bin/sh".into(), "-c".into(), wait];
                agent = Some(a);
            }
            _ => {
                _baseline = Some(spawn_baseline(
                    api.clone(),
                    bc,
                    feed.clone(),
                    rng_for(sc.seed, "baseline"),
                ));
            }
        }
        let rc = RolloutConfig {
            namespace: sc.namespace.clone(),
            name: sc.app.clone(),
            replicas: self.replicas,
            max_surge: self.max_surge,
            max_unavailable: self.max_unavailable,
            period: Duration::from_millis(50),
            deadline: Duration::from_secs(120),
        };
        let template = self.template(&wait_drained);
        roll(sim.client.clone(), &rc, 1, &template).await?;

        // Steady state: every app serves and the SLB carries what the baseline wants.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let eps = feed.borrow().clone();
            // Local: one backend per node that hosts an endpoint.
            let want = match self.mode {
                BackendMode::Cluster => usize::from(sc.nodes),
                BackendMode::Local => eps
                    .iter()
                    .map(|e| e.node.as_str())
                    .collect::<std::collections::BTreeSet<_>>()
                    .len(),
                BackendMode::Eni => self.replicas,
            };
            let mut ok = eps.len() == self.replicas;
            for e in eps.iter() {
                ok &= get_once(e.addr, "/", Duration::from_secs(5))
                    .await
                    .is_ok_and(|r| r.status == 200);
            }
            // Members that take new connections: slb-sync holds a Local node whose pod
            // is not Ready yet at weight 0 until its endpoint is ready.
            let group = api
                .describe_vserver_group("rsp-web")
                .await
                .map(|g| g.backends.iter().filter(|b| b.weight.get() > 0).count())
                .unwrap_or(0);
            // With a health check, steady means the SLB sends to them: every member
            // checked normal (before that a held-out member gets nothing).
            if self.health_check.is_some() {
                ok &= api
                    .describe_health("lb-lab", Some(80))
                    .await
                    .is_ok_and(|h| h.iter().all(|b| b.status == "normal"));
            }
            // And the forwarders carry them (a write's members may land one by one).
            let carried = slb
                .dataplane()
                .iter()
                .find(|l| l.load_balancer_id == "lb-lab" && l.port == 80)
                .map_or(0, |l| l.targets.iter().filter(|t| t.weight > 0).count());
            if ok && group == want && carried == want {
                break;
            }
            if Instant::now() > deadline {
                return Err(ScenarioError::NotSteady(format!(
                    "{} endpoints, {group}/{want} SLB backends, {carried} carried",
                    eps.len()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;

        let load = Load::start(LoadConfig {
            target,
            short_every: self.load.short_every,
            keepalive_conns: self.load.keepalive_conns,
            keepalive_every: self.load.keepalive_every,
            slow_conns: self.load.slow_conns,
            slow_delay: self.load.slow_delay,
            streams: self.load.streams,
            stream_hold: self.load.stream_hold,
            seed: self.sim.seed,
            timeout: Duration::from_secs(5),
        });
        // Only the rollout's pods count: the first version's are in the record already.
        let before = sim.times.snapshot();
        slb.clear_call_log();
        // The API's faults from the rollout on (setup and the steady-state checks run
        // without them), with the outage at its drawn moment.
        slb.set_faults(self.faults(true, false));
        let outage = async {
            let Some(o) = self.api.outage else { return };
            let after = o.after_ms.delay().sample(&mut rng_for(sc.seed, "outage"));
            tokio::time::sleep(after).await;
            slb.set_faults(self.faults(true, true));
            tokio::time::sleep(Duration::from_millis(o.for_ms)).await;
            slb.set_faults(self.faults(true, false));
        };
        let (rollout, ()) = tokio::join!(roll(sim.client.clone(), &rc, 2, &template), outage);
        let rollout = rollout?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while sim.kube.list("v1", "Pod", Some(&sc.namespace)).len() > self.replicas
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(self.settle).await;
        let report = load.stop();
        let mut fail_open = FailOpen::default();
        if let Some(a) = agent {
            (fail_open.finalizers, fail_open.gates) = a.fail_opens();
            a.stop().await;
        }
        let mut pods = sim.times.snapshot();
        pods.to_ready
            .drain(..before.to_ready.len().min(pods.to_ready.len()));
        pods.held.drain(..before.held.len().min(pods.held.len()));
        pods.killed -= before.killed.min(pods.killed);
        pods.prestop_failed -= before.prestop_failed.min(pods.prestop_failed);
        let slb_calls = slb.counters();
        sim.shutdown().await;
        let c = slb.dataplane_counters("lb-lab", 80).unwrap_or_default();
        Ok(Outcome {
            load: report,
            rollout,
            slb_refused_failed_cut: (c.refused, c.connect_failed, c.cut),
            pods,
            fail_open,
            slb_calls,
        })
    }
}
