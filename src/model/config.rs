//! What the planner needs from the agent's configuration.

/// Which Services are managed and how owned backends are named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannerConfig {
    /// Fourth part of the owner Description (`--cluster-id`).
    pub cluster_id: String,
    /// `spec.loadBalancerClass` that marks a Service as ours (`--lb-class`).
    pub lb_class: String,
    /// Also manage class-less LoadBalancer Services that carry the SLB id annotation.
    pub manage_unclassed: bool,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        PlannerConfig {
            cluster_id: "kubernetes".to_owned(),
            lb_class: "slb-sync.io/slb".to_owned(),
            manage_unclassed: false,
        }
    }
}
