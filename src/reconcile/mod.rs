//! The imperative shell that runs step plans against the SLB (docs/architecture.md, "API hygiene"):
//! per-instance serialisation, a token-bucket rate limit, call timeouts, retries with
//! jittered exponential backoff, level-triggered re-planning after failures, and a
//! scheduler that coalesces bursts of changes into one plan per group.

mod clock;
mod discover;
mod drains;
mod executor;
mod health;
mod isolate;
mod journal;
mod last_read;
mod limits;
mod listener_reads;
mod listeners;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;
mod metrics;
mod outcome;
mod planning;
mod queue;
mod resolve;
mod retire;
mod scheduler;

#[cfg(test)]
mod tests;

pub use crate::model::{GroupRef, GroupTarget};
pub use crate::slb::budget::{current_lane, Budget, Caller, Lane};
pub use clock::{Clock, TokioClock};
pub use discover::OwnedGroup;
pub use executor::{
    Executor, ExecutorConfig, LedgerRestore, PassOutcome, QuarantinedBackend, ReconcileError,
};
pub use health::{GroupHealthSource, HEALTH_RECHECK};
pub use journal::DrainJournal;
pub use limits::ApiLimits;

/// `--slb-propagation-seconds`' default: how long the SLB may take to carry a write to
/// its forwarders (see [`crate::plan::PlanConfig::propagation`]).
pub const DEFAULT_SLB_PROPAGATION: std::time::Duration = std::time::Duration::from_secs(5);
pub use listeners::{ListenerOutcome, ListenerTarget};
pub use metrics::ReconcileMetrics;
pub use retire::GroupDeletion;
pub use scheduler::{
    spawn, spawn_observed, PassObserver, SchedulerConfig, SchedulerHandle, SchedulerStats,
    TargetSource,
};
