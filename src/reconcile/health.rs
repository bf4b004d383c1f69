//! What the executor asks of the listeners' health checks: whether a drain may go ahead
//! without leaving the group nothing that takes traffic (docs/architecture.md,
//! "Health-aware gates").

use std::time::Duration;

use jiff::Timestamp;

use crate::model::{GroupHealth, Listener};

/// A pass whose drains waited for the group's health plans again this soon (the API's
/// default check interval): the reading it waits for is refreshed about as often.
pub const HEALTH_RECHECK: Duration = Duration::from_secs(2);

/// The latest health reading of a group's backends. Asking keeps the load balancer's
/// health read for a while (the agent's board files the group as a waiter).
pub trait GroupHealthSource: Send + Sync {
    fn group_health(&self, load_balancer_id: &str, group_id: &str, now: Timestamp) -> GroupHealth;
    /// Whether the load balancer's listeners (which check health) are known.
    fn knows_listeners(&self, load_balancer_id: &str) -> bool;
    /// The load balancer's listeners as just read.
    fn learn_listeners(&self, load_balancer_id: &str, listeners: Vec<Listener>, at: Timestamp);
}
