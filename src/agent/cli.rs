//! The flags of `slb-sync run` (each with its environment variable, as the deploy
//! manifests set them; see deploy/METRICS.md): the components' own, flattened, and
//! their translation into [`AgentConfig`].

use clap::Args;

use super::args::ReconcileArgs;
use super::pods::args::PodSideArgs;
use super::AgentConfig;
use crate::desired::args::PlannerArgs;
use crate::http::args::HttpArgs;
use crate::k8s::args::{ClusterArgs, LeaderArgs};
use crate::slb::rpc::args::SlbArgs;

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
        config.default_drain_secs = self.reconcile.default_drain_seconds;
        config.resync = self.reconcile.resync();
        config.drift_check = self.reconcile.drift_check();
        config.kube_proxy_allowance = self.pods.kube_proxy_allowance();
        config.http_addr = self.http.http_addr;
        config.limits = self.slb.limits();
        Ok(config)
    }
}
