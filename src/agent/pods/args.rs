//! The pod side's flags of `slb-sync run`: how long a terminating pod waits for
//! kube-proxy, and when its drain finalizer is released without a confirmed drain.

use std::time::Duration;

use clap::Args;

use crate::agent::health::{GateOn, HealthGateConfig};
use crate::agent::PodSideChoice;

/// The drain handshake's timing.
#[derive(Debug, Clone, Args)]
pub struct PodSideArgs {
    /// Pod drain finalizers are released (fail-open) this long after the pod's grace
    /// period ended without a confirmed drain, in seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "SLB_SYNC_FINALIZER_GRACE_MARGIN_SECONDS",
        default_value_t = 30
    )]
    pub finalizer_grace_margin_seconds: u64,
    /// A deleted pod of a Cluster or Local Service is reported drained (its preStop
    /// `wait-drained` returns) only after it has been terminating this long, in seconds,
    /// on top of its SLB side being confirmed. kube-proxy on every node applies the
    /// EndpointSlice change in its next iptables/IPVS sync and forwards new connections
    /// to the pod until then; set it above your kube-proxy's sync lag (`minSyncPeriod`
    /// plus the time a sync takes). ENI backends bypass kube-proxy and never wait for it.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "SLB_SYNC_KUBE_PROXY_ALLOWANCE_SECONDS",
        default_value_t = 5
    )]
    pub kube_proxy_allowance_seconds: u64,
    /// What a pod's readiness gate waits for: `healthy` (registered, and reported
    /// `normal` by every listener that checks the backend's health; listeners without a
    /// health check, and Local mode, fall back to registration) or `registered` (in the
    /// SLB only).
    #[arg(
        long,
        value_enum,
        value_name = "WHEN",
        env = "SLB_SYNC_GATE_ON",
        default_value_t = GateOn::Healthy
    )]
    pub gate_on: GateOn,
    /// A readiness gate that waits on health opens anyway this long after the pod's
    /// containers became ready, in seconds, with a Warning Event
    /// (`slb_sync_gate_fail_open_total`): a misconfigured health check cannot block a
    /// rollout forever.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "SLB_SYNC_HEALTH_GATE_TIMEOUT_SECONDS",
        default_value_t = 600
    )]
    pub health_gate_timeout_seconds: u64,
}

impl PodSideArgs {
    /// The real pod side, with the fail-open margin.
    pub fn pod_side(&self) -> PodSideChoice {
        PodSideChoice::Lifecycle {
            fail_open_margin: Duration::from_secs(self.finalizer_grace_margin_seconds),
        }
    }

    pub fn health_gate(&self) -> HealthGateConfig {
        HealthGateConfig {
            gate_on: self.gate_on,
            timeout: Duration::from_secs(self.health_gate_timeout_seconds),
        }
    }

    pub fn kube_proxy_allowance(&self) -> Duration {
        Duration::from_secs(self.kube_proxy_allowance_seconds)
    }
}
