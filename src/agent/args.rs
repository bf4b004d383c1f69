//! The reconcile timing flags of `slb-sync run`: the default drain window, the SLB's
//! propagation allowance and how often groups are re-read.

use std::time::Duration;

use clap::Args;

/// When a drained backend may be removed: its window, and the SLB's time to carry the
/// weight 0 that starts it (`run` and `plan` take the same flags).
#[derive(Debug, Clone, Args)]
pub struct DrainArgs {
    /// Drain window of Services whose `connection-drain` is not on, in seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "SLB_SYNC_DEFAULT_DRAIN_SECONDS",
        default_value_t = 30
    )]
    pub default_drain_seconds: u32,
    /// How long the SLB may take to carry a written change to its forwarders, in
    /// seconds. The API answers before they carry it and reports nothing of when they
    /// have, so a backend set to weight 0 may get new connections this long after the
    /// call: its drain window counts from then, and its pod is released no earlier.
    /// Raise it where the SLB is seen to take longer (a connection that reaches a pod
    /// after its release is lost).
    #[arg(
        long,
        value_name = "SECONDS",
        env = "SLB_SYNC_SLB_PROPAGATION_SECONDS",
        default_value_t = 5
    )]
    pub slb_propagation_seconds: u32,
}

impl DrainArgs {
    pub fn slb_propagation(&self) -> Duration {
        Duration::from_secs(u64::from(self.slb_propagation_seconds))
    }
}

/// How long backends drain and how often groups are re-read and repaired.
#[derive(Debug, Clone, Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub drain: DrainArgs,
    /// Every group is re-read and repaired this often, in seconds (drift made outside the
    /// agent).
    #[arg(
        long,
        value_name = "SECONDS",
        env = "SLB_SYNC_RESYNC_SECONDS",
        default_value_t = 600
    )]
    pub resync_seconds: u64,
    /// Groups that pods wait on (a readiness gate not yet open, a drain not yet
    /// confirmed) are re-read and repaired this often, in seconds, so a group changed
    /// behind the agent's back is mended while a rollout depends on it.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "SLB_SYNC_DRIFT_CHECK_SECONDS",
        default_value_t = 10
    )]
    pub drift_check_seconds: u64,
}

impl ReconcileArgs {
    /// At least a second: 0 would re-read every group in a busy loop.
    pub fn resync(&self) -> Duration {
        Duration::from_secs(self.resync_seconds.max(1))
    }

    /// At least a second, like [`Self::resync`].
    pub fn drift_check(&self) -> Duration {
        Duration::from_secs(self.drift_check_seconds.max(1))
    }
}
