//! Agent-level metrics shared by the control loop and the pod side.
use prometheus::{IntCounter, Registry};
/// Metrics of the agent itself (the SLB client and the reconciler have their own).
#[derive(Debug, Clone)]
pub struct AgentMetrics {
    /// Pod finalizers released at their deadline without a confirmed drain.
    pub finalizer_fail_open_total: IntCounter,
}
impl AgentMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let finalizer_fail_open_total = IntCounter::new(
            "slb_sync_finalizer_fail_open_total",
            "Pod finalizers released at their deadline without a confirmed drain",
        )?;
        registry.register(Box::new(finalizer_fail_open_total.clone()))?;
        Ok(AgentMetrics {
            finalizer_fail_open_total,
        })
    }
}
