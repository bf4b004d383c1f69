//! The agent's own metrics (deploy/METRICS.md), shared by the control loop and the pod side.

use prometheus::{IntCounter, IntGauge, Registry};

/// Counters and gauges of the control loop and the pod side. Clones share the series.
#[derive(Clone, Debug)]
pub struct AgentMetrics {
    /// `slb_sync_reconcile_errors_total`: passes that ended in an error after retries.
    pub reconcile_errors_total: IntCounter,
    /// `slb_sync_leader`: 1 while this replica holds the lease.
    pub leader: IntGauge,
    /// `slb_sync_drains_over_window_total`: confirmed removals later than window + 10 s.
    pub drains_over_window_total: IntCounter,
    /// `slb_sync_finalizer_fail_open_total`: pod finalizers released at the deadline
    /// without a confirmed removal (incremented by the pod side).
    pub finalizer_fail_open_total: IntCounter,
    /// `slb_sync_resync_behind`: 1 while a resync cycle could not finish within its
    /// interval on the API budget (the next one waits for it), else 0.
    pub resync_behind: IntGauge,
    /// `slb_sync_cold_start_groups`: groups of the first cycle after gaining the lease
    /// not yet passed over in any lane (0 once every group was read or is gone).
    pub cold_start_groups: IntGauge,
    /// `slb_sync_gate_fail_open_total`: readiness gates opened by the health-gate timeout
    /// without a `normal` report.
    pub gate_fail_open_total: IntCounter,
    /// `slb_sync_backend_unhealthy_total`: readiness gates shut because a listener reports
    /// the pod's backend `abnormal` (counted when the gate says so).
    pub backend_unhealthy_total: IntCounter,
    /// `slb_sync_gates_waiting_on_health`: pods whose gate waits for a health report.
    pub gates_waiting_on_health: IntGauge,
}

impl AgentMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let reconcile_errors_total = IntCounter::new(
            "slb_sync_reconcile_errors_total",
            "Reconcile passes of a Service that ended in an error (after retries)",
        )?;
        let leader = IntGauge::new(
            "slb_sync_leader",
            "1 on the replica holding the leader lease, else 0",
        )?;
        let drains_over_window_total = IntCounter::new(
            "slb_sync_drains_over_window_total",
            "Drains whose confirmed removal came later than drain window + 10 s",
        )?;
        let finalizer_fail_open_total = IntCounter::new(
            "slb_sync_finalizer_fail_open_total",
            "Pod drain finalizers released at the deadline without a confirmed removal",
        )?;
        let resync_behind = IntGauge::new(
            "slb_sync_resync_behind",
            "1 while a resync cycle cannot finish within its interval on the API budget",
        )?;
        let cold_start_groups = IntGauge::new(
            "slb_sync_cold_start_groups",
            "Groups of the first cycle after gaining the lease not yet read",
        )?;
        let gate_fail_open_total = IntCounter::new(
            "slb_sync_gate_fail_open_total",
            "Readiness gates opened by the health-gate timeout without a normal health report",
        )?;
        let backend_unhealthy_total = IntCounter::new(
            "slb_sync_backend_unhealthy_total",
            "Readiness gates kept False because a listener reports the pod's backend abnormal",
        )?;
        let gates_waiting_on_health = IntGauge::new(
            "slb_sync_gates_waiting_on_health",
            "Pods whose readiness gate waits for the SLB to report their backend normal",
        )?;
        registry.register(Box::new(gate_fail_open_total.clone()))?;
        registry.register(Box::new(backend_unhealthy_total.clone()))?;
        registry.register(Box::new(gates_waiting_on_health.clone()))?;
        registry.register(Box::new(resync_behind.clone()))?;
        registry.register(Box::new(cold_start_groups.clone()))?;
        registry.register(Box::new(reconcile_errors_total.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        registry.register(Box::new(drains_over_window_total.clone()))?;
        registry.register(Box::new(finalizer_fail_open_total.clone()))?;
        Ok(AgentMetrics {
            reconcile_errors_total,
            leader,
            drains_over_window_total,
            finalizer_fail_open_total,
            resync_behind,
            cold_start_groups,
            gate_fail_open_total,
            backend_unhealthy_total,
            gates_waiting_on_health,
        })
    }
}

/// Creates every labelled series of the reconciler's metrics at 0, so dashboards and
/// alerts see them from start-up (deploy/METRICS.md), before the first step or pass.
pub fn init_reconcile_series(metrics: &crate::reconcile::ReconcileMetrics) {
    use crate::plan::StepAction;
    for action in [StepAction::Add, StepAction::SetWeight, StepAction::Remove] {
        for result in ["ok", "error"] {
            metrics.steps.with_label_values(&[action.as_str(), result]);
        }
    }
    for state in ["active", "draining"] {
        metrics.backends.with_label_values(&[state]);
    }
    for result in ["ok", "error"] {
        metrics.passes.with_label_values(&[result]);
    }
}
