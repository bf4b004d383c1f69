//! The planner's flags, shared by every command that decides which Services are managed
//! (`run`, `plan`, `doctor`), and their translation into [`PlannerConfig`].

use clap::Args;

use super::PlannerConfig;

/// Which Services are managed: shared by `run`, `plan` and `doctor`.
#[derive(Debug, Clone, Args)]
pub struct ManagedArgs {
    /// `spec.loadBalancerClass` of the Services this agent manages.
    #[arg(long, env = "SLB_SYNC_LB_CLASS", default_value = "slb-sync.io/slb")]
    pub lb_class: String,
    /// Also manage LoadBalancer Services without a class that carry the SLB id annotation.
    #[arg(
        long,
        env = "SLB_SYNC_MANAGE_UNCLASSED",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub manage_unclassed: bool,
}

/// Which Services are managed and how owned backends are named: shared by every command
/// that plans.
#[derive(Debug, Clone, Args)]
pub struct PlannerArgs {
    /// Cluster id written into owned backends' Description `k8s/<port>/<svc>/<ns>/<cluster-id>`.
    #[arg(long, env = "SLB_SYNC_CLUSTER_ID", default_value = "kubernetes")]
    pub cluster_id: String,
    #[command(flatten)]
    pub managed: ManagedArgs,
}

impl PlannerArgs {
    pub fn config(&self) -> PlannerConfig {
        PlannerConfig {
            cluster_id: self.cluster_id.clone(),
            lb_class: self.managed.lb_class.clone(),
            manage_unclassed: self.managed.manage_unclassed,
        }
    }
}
