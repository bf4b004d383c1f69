//! Health-aware readiness gates (docs/architecture.md, "Health-aware gates").
//!
//! A backend the SLB has added is not yet taking traffic when the listener checks its
//! backends' health: it is `unavailable` until it passed `HealthyThreshold` checks, and
//! the SLB may hold it out of rotation until then. With `--gate-on healthy` (the default)
//! a pod's readiness gate turns True only once `DescribeHealthStatus` reports its backend
//! `normal` on every checked listener that forwards to each group of the Service;
//! listeners without a health check keep the registration rule.
//!
//! The cost stays small: [`HealthBoard`] remembers which pods wait on the health of which
//! load balancer, and the [`poller`] reads `DescribeHealthStatus` for a load balancer only
//! while some pod waits on it, one call per load balancer per poll (every listener at
//! once), at the listener's own check interval, in the pod lane of the API budget
//! (behind drains). No pod waits: no health read at all.
//!
//! Local mode keeps the registration rule: its node answers the health check only once
//! an endpoint on the node is ready, which needs this gate (the same deadlock the Local
//! warm-up at weight 0 avoids).

mod board;
pub mod poller;
pub mod verdict;

pub use board::HealthBoard;
pub use verdict::Verdict;

use std::time::Duration;

/// What a readiness gate waits for (`--gate-on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum GateOn {
    /// The backend is in the SLB (at weight > 0 outside Local mode).
    Registered,
    /// Registered, and reported `normal` by every listener that checks it.
    #[default]
    Healthy,
}

/// The health-aware gate's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthGateConfig {
    pub gate_on: GateOn,
    /// A gate that waits on health this long after the pod's containers became ready
    /// opens anyway, with a Warning Event (`--health-gate-timeout-seconds`).
    pub timeout: Duration,
}

impl Default for HealthGateConfig {
    fn default() -> Self {
        HealthGateConfig {
            gate_on: GateOn::Healthy,
            timeout: Duration::from_secs(600),
        }
    }
}
