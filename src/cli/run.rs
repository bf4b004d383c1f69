//! `slb-sync run`: the agent, with every component's flags.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::agent::args::ReconcileArgs;
use crate::agent::pods::args::PodSideArgs;
use crate::agent::AgentConfig;
use crate::desired::args::PlannerArgs;
use crate::http::args::HttpArgs;
use crate::k8s::args::{ClusterArgs, LeaderArgs};
use crate::reconcile::ApiLimits;
use crate::slb::budget::Budget;
use crate::slb::rpc::args::SlbArgs;
use crate::slb::{RpcSlbClient, SlbApi, SlbMetrics};

/// Flags of `slb-sync run` (each with its environment variable, as the deploy manifests
/// set them; see docs/configuration.md). The order of the groups is the order of
/// `--help`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub planner: PlannerArgs,
    #[command(flatten)]
    pub slb: SlbArgs,
    #[command(flatten)]
    pub reconcile: ReconcileArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub leader: LeaderArgs,
    #[command(flatten)]
    pub pods: PodSideArgs,
}

impl RunArgs {
    /// The agent's configuration; `registry` gets the agent metrics.
    pub fn agent_config(&self, registry: prometheus::Registry) -> prometheus::Result<AgentConfig> {
        let mut config = AgentConfig::new(self.planner.config(), self.leader.config(), registry)?;
        config.default_drain_secs = self.reconcile.drain.default_drain_seconds;
        config.resync = self.reconcile.resync();
        config.drift_check = self.reconcile.drift_check();
        config.slb_propagation = self.reconcile.drain.slb_propagation();
        config.kube_proxy_allowance = self.pods.kube_proxy_allowance();
        config.health_gate = self.pods.health_gate();
        config.http_addr = self.http.http_addr;
        // The call budget and deadline; retries keep their defaults (no flags).
        config.limits = ApiLimits {
            qps: self.slb.qps,
            burst: self.slb.burst,
            call_timeout: self.slb.call_timeout(),
            ..ApiLimits::default()
        };
        Ok(config)
    }
}

/// Runs the agent until SIGTERM or Ctrl-C.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let client = args.cluster.client().await?;
    let registry = prometheus::Registry::new();
    let mut config = args.agent_config(registry.clone())?;
    if config.leader.namespace.is_empty() {
        // In a pod, the service account's namespace; else the kubeconfig context's.
        config.leader.namespace = client.default_namespace().to_owned();
    }
    let slb_metrics = SlbMetrics::register(&registry).context("cannot register SLB metrics")?;
    let credentials = args
        .slb
        .credentials()
        .build()
        .context("cannot set up Alibaba Cloud credentials")?;
    // One budget for every HTTP request to the SLB and ECS APIs, shared with the
    // executor's scheduler (lanes and fairness).
    let budget = Arc::new(Budget::new(config.limits.qps, config.limits.burst));
    let slb: Arc<dyn SlbApi> = Arc::new(
        RpcSlbClient::new(args.slb.rpc_config(), credentials)
            .with_metrics(slb_metrics)
            .with_budget(budget),
    );
    crate::agent::run(config, client, slb, args.pods.pod_side(), shutdown_signal())
        .await
        .context("the agent stopped")?;
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM (the kubelet stopping the pod) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot listen for SIGTERM; Ctrl-C only");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested");
}
