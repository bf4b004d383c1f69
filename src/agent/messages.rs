//! What the watchers, the pass observer and the control loop's own tasks tell the
//! control loop (see the "Flow" section of the agent module).

use std::time::Duration;

use super::cleanup::Found;
use crate::index::Affected;
use crate::k8s::events::AgentEvent;
use crate::model::{GroupRef, GroupTarget, ServiceRef};
use crate::reconcile::Lane;

/// What the watchers and the pass observer tell the control loop.
#[derive(Debug)]
pub enum Msg {
    /// Services an object change affected, with the lane their passes go in.
    Affected(Affected, Lane),
    Synced(Kind),
    Pass(PassReport),
    /// Writing a Service's listener drain settings failed: try again after the next pass.
    ListenersFailed(ServiceRef),
    /// A search of the SLB for a deleted Service's backends ended.
    Found(Found),
    /// Look at this Service again (a failed search is retried).
    Recheck(ServiceRef),
    /// Pod-facing work of a Service took this long: more than the API budget allows.
    Delayed {
        service: ServiceRef,
        waited: Duration,
    },
    /// Whether a listener forwards to a group of a Service, as a read found.
    Listeners {
        service: ServiceRef,
        load_balancer_id: String,
        group: String,
        bound: bool,
    },
}

/// The kinds watched; the agent is ready once each has delivered its first full list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Services,
    EndpointSlices,
    Nodes,
    Pods,
}

/// What the control loop learns from a pass.
#[derive(Debug)]
pub struct PassReport {
    pub group: GroupRef,
    /// The group the pass ran for, without its backends.
    pub target: GroupTarget,
    /// `Ok((group id, owned members left))`, or how the pass failed.
    pub result: Result<(Option<String>, bool), PassFailure>,
    /// Events about single backends of the group (refused and held out), for the Service.
    pub events: Vec<AgentEvent>,
    /// Whether a listener forwards to the group, when the pass looked it up by name.
    pub listened: Option<bool>,
}

/// A pass that failed, as the control loop needs it.
#[derive(Debug)]
pub struct PassFailure {
    /// The Event to report when the error is permanent.
    pub event: Option<AgentEvent>,
    /// The SLB instance does not exist (any more): a group being emptied there has
    /// nothing of ours left.
    pub load_balancer_gone: bool,
}
