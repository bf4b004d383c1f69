//! The typed, validated form of a Service's SLB annotations.

use std::collections::BTreeMap;

use super::BackendType;

/// What a Service's annotations ask of its SLB (parsed by `crate::annotations`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LbSpec {
    /// SLB instance id (`…-id`), required for a managed Service.
    pub load_balancer_id: String,
    /// Service port → vServer group id (`…-vgroup-port: rsp-a:80,rsp-b:443`).
    /// Ports not listed get a group found or created by its owner name.
    pub vgroup_ports: BTreeMap<u16, String>,
    /// `…-connection-drain`: `Some(true)` for `on`; `None` when absent.
    pub connection_drain: Option<bool>,
    /// `…-connection-drain-timeout`, seconds in 10–900; also the agent's drain window.
    pub connection_drain_timeout: Option<u32>,
    /// `…-remove-unscheduled-backend`: drain nodes marked unschedulable.
    pub remove_unscheduled_backend: bool,
    /// `…-backend-label: k=v,k2=v2`: a node must carry all of them to be a backend.
    pub backend_labels: Vec<(String, String)>,
    /// `service.beta.kubernetes.io/backend-type`; `Some(Eni)` selects ENI mode.
    pub backend_type: Option<BackendType>,
    /// `…-weight` (0–100): the weight shared by the group's backends. ACK reads it only
    /// with `…-vgroup-port`, and so does the planner.
    pub weight: Option<u32>,
    /// `…-default-weight` (0–100): each backend's weight in Cluster and ENI mode (100
    /// when absent); Local mode weighs nodes by their pods, as ACK does.
    pub default_weight: Option<u32>,
    /// `…-ignore-weight-update: on`: a backend already taking traffic keeps the weight it
    /// has on the SLB (set by hand, say) instead of getting the computed one.
    pub ignore_weight_update: bool,
}

impl LbSpec {
    /// The drain window in seconds for this Service: its `connection-drain-timeout` when
    /// drain is on, otherwise the agent-wide default.
    pub fn drain_window_secs(&self, default_secs: u32) -> u32 {
        match (self.connection_drain, self.connection_drain_timeout) {
            (Some(true), Some(timeout)) => timeout,
            _ => default_secs,
        }
    }
}
