//! The real agent in this process, configured from `slb-sync run` flags exactly as the
//! binary does (`slb_sync::cli::run`: `RunArgs::agent_config`, the production SLB client
//! taking a token of one API budget per HTTP request, the executor sharing that budget,
//! `PodSideArgs::pod_side`), on a runtime of its own whose threads are named `agent`:
//! their CPU time is the agent's.
//! Its SLB client is wrapped in a [`Recorder`], which hands the client's budget on.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use slb_sync::agent::AgentError;
use slb_sync::cli::run::RunArgs;
use slb_sync::slb::budget::Budget;
use slb_sync::slb::{RpcSlbClient, SlbApi, SlbMetrics};
use tokio::sync::oneshot;

use super::objects::{KEY_ID, KEY_SECRET};
use super::recorder::Recorder;

/// Thread name prefix of the agent's runtime.
pub const AGENT_THREADS: &str = "agent";

#[derive(Parser)]
#[command(name = "slb-sync run")]
struct Run {
    #[command(flatten)]
    args: RunArgs,
}

/// Why the agent did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("agent flags {flags:?}: {message}")]
    Flags { flags: Vec<String>, message: String },
    #[error("cannot start the agent's runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("the agent failed to start: {0}")]
    Agent(String),
    #[error("the agent did not bind its HTTP server within 30 s")]
    NotBound,
}

/// A running agent; [`Agent::stop`] stops it as SIGTERM would.
pub struct Agent {
    pub addr: SocketAddr,
    pub registry: prometheus::Registry,
    pub recorder: Arc<Recorder>,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<Result<(), AgentError>>>,
}

/// The flags every lab agent gets: the doubles' endpoints and key, loopback HTTP, a
/// Lease in kube-system. `extra` (the preset's and the user's) come after and win.
pub fn base_flags(slb_url: &str, cluster_id: &str) -> Vec<String> {
    [
        "--region",
        "cn-hangzhou",
        "--slb-endpoint",
        slb_url,
        "--ecs-endpoint",
        slb_url,
        "--access-key-id",
        KEY_ID,
        "--access-key-secret",
        KEY_SECRET,
        "--http-addr",
        "127.0.0.1:0",
        "--pod-name",
        "slb-sync-scale-0",
        "--lease-namespace",
        "kube-system",
        "--cluster-id",
        cluster_id,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

impl Agent {
    /// Starts the agent with `flags` (as `slb-sync run` takes them) against mock-kube at
    /// `kube_url`; returns once its HTTP server is bound. `start` is time zero of the
    /// recorder's log.
    pub async fn start(
        flags: Vec<String>,
        kube_url: &str,
        start: Instant,
    ) -> Result<Agent, StartError> {
        let mut argv = vec!["slb-sync-run".to_owned()];
        argv.extend(flags.iter().cloned());
        let args = Run::try_parse_from(&argv)
            .map_err(|e| StartError::Flags {
                flags: flags.clone(),
                message: e.to_string(),
            })?
            .args;
        let registry = prometheus::Registry::new();
        let mut config = args
            .agent_config(registry.clone())
            .map_err(|e| StartError::Agent(e.to_string()))?;
        let bound = Arc::new(Mutex::new(None));
        let b = bound.clone();
        config.on_bound = Some(Arc::new(move |addr| {
            *b.lock().unwrap_or_else(|p| p.into_inner()) = Some(addr)
        }));
        let slb_metrics =
            SlbMetrics::register(&registry).map_err(|e| StartError::Agent(e.to_string()))?;
        let credentials = args
            .slb
            .credentials()
            .build()
            .map_err(|e| StartError::Agent(e.to_string()))?;
        // As `slb-sync run` does: one budget for every HTTP request to the SLB and ECS
        // APIs, taken by the client and shared with the executor's scheduler (the
        // recorder hands the client's budget on).
        let budget = Arc::new(Budget::new(config.limits.qps, config.limits.burst));
        let client = RpcSlbClient::new(args.slb.rpc_config(), credentials)
            .with_metrics(slb_metrics)
            .with_budget(budget);
        let recorder = Arc::new(Recorder::new(Arc::new(client), start));
        let slb: Arc<dyn SlbApi> = recorder.clone();
        let pod_side = args.pods.pod_side();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(AGENT_THREADS)
            .enable_all()
            .build()?;
        let uri: http::Uri = kube_url
            .parse()
            .map_err(|e: http::uri::InvalidUri| StartError::Agent(e.to_string()))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let (done_tx, done) = oneshot::channel();
        runtime.spawn(async move {
            // Built on the agent's runtime: the client's tasks run on its threads.
            let result = match kube::Client::try_from(kube::Config::new(uri)) {
                Ok(client) => {
                    slb_sync::agent::run(config, client, slb, pod_side, async move {
                        let _ = stopped.await;
                    })
                    .await
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot build the kube client");
                    Ok(())
                }
            };
            let _ = done_tx.send(result);
        });
        let mut agent = Agent {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            registry,
            recorder,
            runtime: Some(runtime),
            stop: Some(stop),
            done: Some(done),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(addr) = *bound.lock().unwrap_or_else(|p| p.into_inner()) {
                agent.addr = addr;
                return Ok(agent);
            }
            if let Some(done) = agent.done.as_mut() {
                if let Ok(result) = done.try_recv() {
                    return Err(StartError::Agent(match result {
                        Err(e) => e.to_string(),
                        Ok(()) => "it ended at once".into(),
                    }));
                }
            }
            if Instant::now() > deadline {
                return Err(StartError::NotBound);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sum of a counter or gauge over the series whose labels contain every pair.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric(&self.registry, name, labels)
    }

    /// Stops the agent (lease released, passes finished within its grace) and its runtime.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), done).await;
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Sum of a counter or gauge in `registry` over the series whose labels contain `labels`.
pub fn metric(registry: &prometheus::Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut sum = 0.0;
    for family in registry.gather() {
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
                sum += m.get_counter().get_value() + m.get_gauge().get_value();
            }
        }
    }
    sum
}
