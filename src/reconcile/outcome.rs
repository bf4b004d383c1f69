//! What a pass reports: its outcome when it converged, its error when it did not.

use std::net::IpAddr;

use jiff::Timestamp;

use crate::model::SlbBackend;
use crate::slb::{ErrorClass, SlbError};

/// What one successful pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassOutcome {
    /// The group reconciled; `None` when there was no group and nothing to add.
    pub v_server_group_id: Option<String>,
    /// SLB write calls that succeeded.
    pub steps_applied: usize,
    /// Re-reads after failures before the pass converged.
    pub replans: usize,
    /// When the group must be looked at again: the earliest pending drain deadline, or
    /// sooner when ENI ids were missing.
    pub requeue_at: Option<Timestamp>,
    /// `requeue_at` is a drain window ending: a removal a terminating pod waits for
    /// (the scheduler wakes the group in the drain lane, not the pod lane).
    pub requeue_for_drain: bool,
    pub warnings: Vec<String>,
    pub unresolved_eni_ips: Vec<IpAddr>,
    /// The group's members (owned and foreign) as they stand after this pass's steps:
    /// what readiness gates and drain confirmations are decided from.
    pub backends: Vec<SlbBackend>,
    /// Backends the SLB refused in this pass, now held out of plans until their retry.
    pub quarantined: Vec<QuarantinedBackend>,
    /// Whether a listener forwards to the group, when this pass looked the group up by
    /// name (`None`: not known from this pass).
    pub listened: Option<bool>,
}

/// A backend the SLB refused, as Events and logs report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedBackend {
    pub backend: SlbBackend,
    pub held: crate::plan::Held,
}

/// A pass that did not converge; the scheduler retries the group later.
#[derive(Debug, thiserror::Error)]
#[error(
    "reconciling vServer group {group} of SLB {load_balancer_id} failed after {replans} \
     re-plan(s): {source}"
)]
pub struct ReconcileError {
    /// The group's owner Description.
    pub group: String,
    pub load_balancer_id: String,
    pub replans: usize,
    #[source]
    pub source: SlbError,
}

impl ReconcileError {
    pub fn class(&self) -> ErrorClass {
        self.source.class
    }

    /// The SLB instance does not exist (deleted, or a wrong id).
    pub fn load_balancer_gone(&self) -> bool {
        self.source.code.starts_with("InvalidLoadBalancerId")
    }
}
