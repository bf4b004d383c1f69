//! Prometheus metrics of the executor and scheduler (bounded labels only).

use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry,
};

/// Metrics of the reconciler; clones share the same series.
#[derive(Clone, Debug)]
pub struct ReconcileMetrics {
    /// `slb_sync_steps_total{action,result}`: SLB write steps by action
    /// (`add|setWeight|remove`) and result (`ok|error`).
    pub steps: IntCounterVec,
    /// `slb_sync_backends{state}`: owned backends by state (`active` = weight > 0,
    /// `draining` = weight 0), over all groups as last reconciled.
    pub backends: IntGaugeVec,
    /// `slb_sync_drain_duration_seconds`: weight 0 confirmed → removal.
    pub drain_duration: Histogram,
    /// `slb_sync_coalesced_triggers_total`: triggers that cost no pass of their own.
    pub coalesced: IntCounter,
    /// `slb_sync_passes_total{result}`: reconcile passes by result (`ok|error`).
    pub passes: IntCounterVec,
    /// `slb_sync_change_to_first_call_seconds`: a desired-state change seen → the first
    /// SLB call of the pass that handles it.
    pub change_to_first_call: Histogram,
    /// `slb_sync_backend_quarantines_total`: backends the SLB refused and the agent held
    /// out of their group's plans (each refusal counts).
    pub quarantines: IntCounter,
    /// `slb_sync_quarantined_backends`: backends held out now, awaiting their retry.
    pub quarantined: IntGauge,
    /// `slb_sync_drift_backends_total`: owned backends found gone from their group
    /// without a removal by the agent (console edits, SLB-side state loss).
    pub drift: IntCounter,
    /// `slb_sync_queue_depth{lane}`: groups waiting for a pass, per lane.
    pub queue_depth: IntGaugeVec,
    /// `slb_sync_queue_wait_seconds{lane}`: a group queued → its pass started.
    pub queue_wait: HistogramVec,
    /// `slb_sync_pod_work_delayed_total`: drain- and pod-lane passes that took longer than 10 s from
    /// queue to done (the API budget does not fit pod-facing demand).
    pub pod_work_delayed: IntCounter,
}

impl ReconcileMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let steps = IntCounterVec::new(
            Opts::new(
                "slb_sync_steps_total",
                "SLB write steps by action and result",
            ),
            &["action", "result"],
        )?;
        let backends = IntGaugeVec::new(
            Opts::new("slb_sync_backends", "Owned SLB backends by state"),
            &["state"],
        )?;
        let drain_duration = Histogram::with_opts(
            HistogramOpts::new(
                "slb_sync_drain_duration_seconds",
                "Time from weight 0 confirmed to removal of a backend",
            )
            .buckets(exponential_buckets(5.0, 2.0, 9)?),
        )?;
        let coalesced = IntCounter::new(
            "slb_sync_coalesced_triggers_total",
            "Triggers folded into a pass already queued or pending",
        )?;
        let passes = IntCounterVec::new(
            Opts::new("slb_sync_passes_total", "Reconcile passes by result"),
            &["result"],
        )?;
        let change_to_first_call = Histogram::with_opts(
            HistogramOpts::new(
                "slb_sync_change_to_first_call_seconds",
                "Time from a desired-state change being seen to the first SLB call for it",
            )
            .buckets(exponential_buckets(0.001, 4.0, 10)?),
        )?;
        let quarantines = IntCounter::new(
            "slb_sync_backend_quarantines_total",
            "Backends the SLB refused, held out of their group's plans until a retry",
        )?;
        let quarantined = IntGauge::new(
            "slb_sync_quarantined_backends",
            "Backends held out of their group's plans after the SLB refused them",
        )?;
        let drift = IntCounter::new(
            "slb_sync_drift_backends_total",
            "Owned backends found gone from their group without a removal by the agent",
        )?;
        registry.register(Box::new(drift.clone()))?;
        let queue_depth = IntGaugeVec::new(
            Opts::new(
                "slb_sync_queue_depth",
                "Groups waiting for a reconcile pass, per lane",
            ),
            &["lane"],
        )?;
        let queue_wait = HistogramVec::new(
            HistogramOpts::new(
                "slb_sync_queue_wait_seconds",
                "Time from a group being queued to its pass starting, per lane",
            )
            .buckets(exponential_buckets(0.01, 4.0, 9)?),
            &["lane"],
        )?;
        for lane in super::Lane::ALL {
            queue_depth.with_label_values(&[lane.as_str()]).set(0);
            queue_wait.with_label_values(&[lane.as_str()]);
        }
        let pod_work_delayed = IntCounter::new(
            "slb_sync_pod_work_delayed_total",
            "Pod-facing passes that took longer than 10 s from queue to done",
        )?;
        registry.register(Box::new(pod_work_delayed.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(queue_wait.clone()))?;
        registry.register(Box::new(quarantines.clone()))?;
        registry.register(Box::new(quarantined.clone()))?;
        registry.register(Box::new(steps.clone()))?;
        registry.register(Box::new(backends.clone()))?;
        registry.register(Box::new(drain_duration.clone()))?;
        registry.register(Box::new(coalesced.clone()))?;
        registry.register(Box::new(passes.clone()))?;
        registry.register(Box::new(change_to_first_call.clone()))?;
        Ok(ReconcileMetrics {
            steps,
            backends,
            drain_duration,
            coalesced,
            passes,
            change_to_first_call,
            quarantines,
            quarantined,
            drift,
            queue_depth,
            queue_wait,
            pod_work_delayed,
        })
    }
}

tokio::task_local! {
    /// When the change a pass handles was first seen; taken by the pass's first call.
    pub(crate) static CHANGE_SEEN: std::cell::Cell<Option<tokio::time::Instant>>;
}
