//! One lab run's fixtures: the doubles in their processes, the driver's client and
//! controllers, agents started and stopped on them, and the costs of each process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use kube::Api;

use super::agent::{base_flags, Agent, StartError, AGENT_THREADS};
use super::pods::Controllers;
use super::procs::{self, Served, Usage};
use super::recorder::Call;
use super::spec::Spec;
use super::tracker::Tracker;

/// Why a run could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Serve(#[from] procs::ServeError),
    #[error(transparent)]
    Agent(#[from] StartError),
    #[error("cannot build the driver's kube client for {url}: {message}")]
    Client { url: String, message: String },
    #[error("{0}")]
    Timeout(String),
}

/// The doubles and the driver.
pub struct Lab {
    pub spec: Arc<Spec>,
    pub start: Instant,
    pub kube: Served,
    pub slb: Served,
    pub client: kube::Client,
    pub pods: Controllers,
    /// The account-wide limit mock-slb applies (and the agent's `--qps`/`--burst`).
    pub qps: f64,
    pub burst: u32,
    /// Seconds the doubles took to load the cluster.
    pub load_secs: f64,
}

impl Lab {
    /// Starts mock-kube and mock-slb with the generated cluster.
    pub async fn start(spec: Spec, qps: f64, burst: u32) -> Result<Lab, LabError> {
        let start = Instant::now();
        let json = serde_json::to_string(&spec).unwrap_or_default();
        let kube_args = ["serve-kube".to_owned(), "--spec".into(), json.clone()];
        let slb_args = [
            "serve-slb".to_owned(),
            "--spec".into(),
            json,
            "--qps".into(),
            qps.to_string(),
            "--burst".into(),
            burst.to_string(),
        ];
        let (kube, slb) = tokio::join!(procs::serve(&kube_args), procs::serve(&slb_args));
        let (kube, slb) = (kube?, slb?);
        let uri = kube
            .addr
            .parse()
            .map_err(|e: http::uri::InvalidUri| LabError::Client {
                url: kube.addr.clone(),
                message: e.to_string(),
            })?;
        let client =
            kube::Client::try_from(kube::Config::new(uri)).map_err(|e| LabError::Client {
                url: kube.addr.clone(),
                message: e.to_string(),
            })?;
        let spec = Arc::new(spec);
        let tracker = Tracker::new(start);
        let pods = Controllers::new(client.clone(), spec.clone(), tracker);
        Ok(Lab {
            spec,
            start,
            kube,
            slb,
            client,
            pods,
            qps,
            burst,
            load_secs: start.elapsed().as_secs_f64(),
        })
    }

    /// Restarts mock-slb with `spec`'s SLB (e.g. drifted), same limit.
    pub async fn restart_slb(&mut self, spec: &Spec) -> Result<(), LabError> {
        let json = serde_json::to_string(spec).unwrap_or_default();
        let args = [
            "serve-slb".to_owned(),
            "--spec".into(),
            json,
            "--qps".into(),
            self.qps.to_string(),
            "--burst".into(),
            self.burst.to_string(),
        ];
        let new = procs::serve(&args).await?;
        let old = std::mem::replace(&mut self.slb, new);
        old.stop().await;
        Ok(())
    }

    /// Tracks the pods of Service `s`.
    pub async fn track_service(&self, s: usize) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.spec.namespace(s));
        let config = watcher::Config::default().labels(&format!("app={}", self.spec.service(s)));
        self.pods.tracker.watch(api, config).await;
    }

    /// Tracks the pods on node `n`.
    pub async fn track_node(&self, n: usize) {
        let api: Api<Pod> = Api::all(self.client.clone());
        let config =
            watcher::Config::default().fields(&format!("spec.nodeName={}", self.spec.node(n)));
        self.pods.tracker.watch(api, config).await;
    }

    /// Starts an agent with the lab's flags, the budget, then `extra`.
    pub async fn agent(&self, extra: &[String]) -> Result<Agent, LabError> {
        let mut flags = base_flags(&self.slb.addr, &self.spec.cluster_id);
        flags.extend([
            "--qps".to_owned(),
            self.qps.to_string(),
            "--burst".into(),
            self.burst.to_string(),
        ]);
        flags.extend(extra.iter().cloned());
        Ok(Agent::start(flags, &self.kube.addr, self.start).await?)
    }

    /// Seconds since the lab started.
    pub fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// mock-slb's `/admin/counters` answer (`Null` when it cannot be read).
    async fn admin_counters(&self) -> serde_json::Value {
        let addr = self
            .slb
            .addr
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse();
        let Ok(addr) = addr else {
            return serde_json::Value::Null;
        };
        match crate::http::get_once(addr, "/admin/counters", Duration::from_secs(10)).await {
            Ok(reply) => serde_json::from_str(&reply.body).unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        }
    }

    /// mock-slb's per-action call counters: (calls, throttled) summed over `actions`
    /// (every action when empty).
    pub async fn slb_counters(&self, actions: &[&str]) -> (u64, u64) {
        let v = self.admin_counters().await;
        let mut calls = 0;
        let mut throttled = 0;
        if let Some(api) = v["api"].as_object() {
            for (action, c) in api {
                if actions.is_empty() || actions.contains(&action.as_str()) {
                    calls += c["calls"].as_u64().unwrap_or(0);
                    throttled += c["errors"]["Throttling"].as_u64().unwrap_or(0);
                }
            }
        }
        (calls, throttled)
    }

    /// Throttled answers per action since mock-slb started.
    pub async fn throttled_by_action(&self) -> std::collections::BTreeMap<String, u64> {
        let v = self.admin_counters().await;
        let mut out = std::collections::BTreeMap::new();
        for (action, c) in v["api"].as_object().into_iter().flatten() {
            if let Some(n) = c["errors"]["Throttling"].as_u64() {
                out.insert(action.clone(), n);
            }
        }
        out
    }

    /// The costs of the three processes now: (lab process, agent threads' CPU), mock-kube,
    /// mock-slb.
    pub fn usage(&self) -> Costs {
        Costs {
            lab: procs::usage(0),
            agent_cpu_secs: procs::thread_cpu_secs(AGENT_THREADS),
            heap_mib: procs::heap_mib(),
            kube: procs::usage(self.kube.pid),
            slb: procs::usage(self.slb.pid),
        }
    }

    /// Starts a new peak-memory window in every process.
    pub fn reset_peaks(&self) {
        procs::reset_peak(0);
        procs::reset_peak(self.kube.pid);
        procs::reset_peak(self.slb.pid);
    }

    /// Stops the doubles.
    pub async fn stop(self) {
        self.kube.stop().await;
        self.slb.stop().await;
    }
}

/// Memory and CPU of the lab's processes at one moment.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Costs {
    pub lab: Usage,
    pub agent_cpu_secs: f64,
    /// Live heap of the lab process (agent and driver), when the binary counts it.
    pub heap_mib: Option<f64>,
    pub kube: Usage,
    pub slb: Usage,
}

/// Polls `check` every 100 ms until it holds or `within` passes.
pub async fn until(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> bool,
) -> Result<(), LabError> {
    let deadline = Instant::now() + within;
    while !check() {
        if Instant::now() > deadline {
            return Err(LabError::Timeout(format!(
                "{what} did not happen within {within:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Waits until the agent leads and has read every group of `spec` since it started (an
/// answered DescribeVServerGroupAttribute for each, in the recorder): its cold start as
/// the SLB saw it, whatever the agent's own progress metric says. Says how far it got
/// every 30 s. Returns the agent's cold-start gauge (`slb_sync_cold_start_groups`) then
/// (given 5 s to follow): 0 when the agent agrees that its cold start is over.
pub async fn cold_start_done(
    agent: &Agent,
    spec: &Spec,
    within: Duration,
) -> Result<f64, LabError> {
    until("the agent leading", within, || {
        agent.metric("slb_sync_leader", &[]) >= 1.0
    })
    .await?;
    let groups: Vec<String> = (0..spec.services()).map(|s| spec.group(s)).collect();
    let started = Instant::now();
    let mut said = Instant::now();
    until("every group read", within, || {
        let read = agent.recorder.read_of(&groups);
        if said.elapsed() >= Duration::from_secs(30) {
            said = Instant::now();
            eprintln!(
                "  cold start, {:.0}s in: groups read {read}/{}; the agent's cold-start gauge {}, bulk queue {}, resync behind {}",
                started.elapsed().as_secs_f64(),
                groups.len(),
                agent.metric("slb_sync_cold_start_groups", &[]),
                agent.metric("slb_sync_queue_depth", &[("lane", "bulk")]),
                agent.metric("slb_sync_resync_behind", &[]),
            );
        }
        read == groups.len()
    })
    .await?;
    // The agent counts a pass once its report reaches the control loop, a moment after
    // the read was answered: give it that moment.
    let gauge = || agent.metric("slb_sync_cold_start_groups", &[]);
    let _ = until(
        "the agent's cold-start gauge",
        Duration::from_secs(5),
        || gauge() == 0.0,
    )
    .await;
    Ok(gauge())
}

/// The first call in `calls` at or after `from` that `matches`: its time.
pub fn first_call(calls: &[Call], from: f64, matches: impl Fn(&Call) -> bool) -> Option<f64> {
    calls
        .iter()
        .filter(|c| c.at >= from && c.ok)
        .find(|c| matches(c))
        .map(|c| c.at)
}
