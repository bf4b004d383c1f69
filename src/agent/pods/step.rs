//! What one reconcile of a pod decides, purely: from the pod, the facts gathered about it
//! (the Services it backs, the gates it should show, whether its drain is confirmed) and
//! `now`, the writes to make and when to look at the pod again.

use std::time::Duration;

use jiff::Timestamp;

use super::allowance::{self, Verdict};
use super::decide::{self, BackedService, GateCondition};
use crate::model::StoredPod;

/// What the reconciler gathered about a pod from the index and the SLB members seen.
#[derive(Debug, Clone, Default)]
pub struct PodFacts {
    /// The managed Services that select the pod.
    pub backed: Vec<BackedService>,
    /// The readiness gate conditions the pod should show, one per declared gate of a
    /// managed Service.
    pub gates: Vec<GateCondition>,
    /// Every group of every backed Service no longer sends the pod traffic.
    pub drain_confirmed: bool,
}

/// The durations that shape a deleted pod's hold.
#[derive(Debug, Clone, Copy)]
pub struct HoldRules {
    /// `--finalizer-grace-margin-seconds`.
    pub fail_open_margin: Duration,
    /// `--kube-proxy-allowance-seconds`.
    pub kube_proxy_allowance: Duration,
}

/// A pod write the pod side decided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodWrite {
    /// Add `slb-sync.io/drain` (unless the pod is being deleted or has it).
    AddFinalizer,
    /// Set a readiness gate condition.
    Gate(GateCondition),
    /// The drain is confirmed: Event DrainCompleted, condition drained=True, then release.
    Complete,
    /// The fail-open deadline passed: Warning Event, metric, release.
    FailOpen { held_secs: u64 },
}

/// What to do for a pod now, and when to look again.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodStep {
    pub writes: Vec<PodWrite>,
    /// The next deadline of the pod's own (end of the kube-proxy allowance, the fail-open
    /// release); `None` when only a change can move it on.
    pub wake_at: Option<Timestamp>,
}

pub fn pod_step(pod: &StoredPod, facts: &PodFacts, rules: HoldRules, now: Timestamp) -> PodStep {
    if decide::is_deleting(pod) {
        return deleting_step(pod, facts, rules, now);
    }
    let mut step = PodStep::default();
    if decide::needs_finalizer(pod, &facts.backed) {
        step.writes.push(PodWrite::AddFinalizer);
    }
    for want in &facts.gates {
        if !decide::gate_settled(pod, want) {
            step.writes.push(PodWrite::Gate(want.clone()));
        }
    }
    step
}

fn deleting_step(pod: &StoredPod, facts: &PodFacts, rules: HoldRules, now: Timestamp) -> PodStep {
    let mut step = PodStep::default();
    if !decide::has_finalizer(pod) {
        return step;
    }
    if decide::is_drained(pod) {
        step.writes.push(PodWrite::Complete);
        return step;
    }
    let allowance = allowance::allowance_for(&facts.backed, rules.kube_proxy_allowance);
    let settled_at = (!allowance.is_zero())
        .then(|| allowance::kube_proxy_settled_at(pod, allowance))
        .flatten();
    let fail_open_at = decide::fail_open_deadline(pod, rules.fail_open_margin, allowance);
    match allowance::verdict(facts.drain_confirmed, settled_at, now) {
        Verdict::Drained => {
            step.writes.push(PodWrite::Complete);
            return step;
        }
        Verdict::Settling(at) => step.wake_at = Some(at),
        Verdict::Waiting => {}
    }
    if let Some(deadline) = fail_open_at {
        if now >= deadline {
            // The hold counts from the deletion (the `deletionTimestamp` is the kill time,
            // a grace period later).
            let deleted = allowance::terminating_since(pod)
                .and_then(|t| t.checked_sub(jiff::SignedDuration::from_secs(1)).ok())
                .unwrap_or(deadline);
            let held_secs = now.duration_since(deleted).as_secs().max(0) as u64;
            step.writes.push(PodWrite::FailOpen { held_secs });
            step.wake_at = None;
            return step;
        }
        step.wake_at = Some(step.wake_at.map_or(deadline, |at| at.min(deadline)));
    }
    step
}
