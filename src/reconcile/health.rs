//! What the executor asks of the listeners' health checks: whether a drain may go ahead
//! without leaving the group nothing that takes traffic (docs/architecture.md,
//! "Health-aware gates").

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::executor::{lock, Executor};
use super::listener_reads::{read_ended, Turn, Wanted};
use crate::model::{GroupHealth, Listener};
use crate::slb::budget::{current_lane, prepaid, Lane};
use crate::slb::SlbApi;

/// A pass whose drains waited for the group's health plans again this soon (the API's
/// default check interval): the reading it waits for is refreshed about as often.
pub const HEALTH_RECHECK: Duration = Duration::from_secs(2);

/// The latest health reading of a group's backends. Asking keeps the load balancer's
/// health read for a while (the agent's board files the group as a waiter).
pub trait GroupHealthSource: Send + Sync {
    fn group_health(&self, load_balancer_id: &str, group_id: &str, now: Timestamp) -> GroupHealth;
    /// When the reading [`Self::group_health`] goes by was asked for.
    fn reading_asked_at(&self, load_balancer_id: &str) -> Option<Timestamp>;
    /// Whether the load balancer's listeners (which check health) are known.
    fn knows_listeners(&self, load_balancer_id: &str) -> bool;
    /// The load balancer's listeners as just read.
    fn learn_listeners(&self, load_balancer_id: &str, listeners: Vec<Listener>, at: Timestamp);
}

impl<A: SlbApi + ?Sized> Executor<A> {
    /// The group's health with every backend this agent added (or added again) too
    /// recently for the reading to speak of it taken out of the `normal` set: a reading
    /// asked for before the SLB carried the add reports the key's previous life (a node
    /// removed and added back for a new pod keeps its key) or nothing yet.
    pub(super) fn health_since_joins(
        &self,
        load_balancer_id: &str,
        group_id: &str,
        now: Timestamp,
    ) -> Option<GroupHealth> {
        let health = self.health.as_ref()?;
        // Asked first: a reading landing in between pairs a newer reading with an older
        // time, which only holds a drain longer, never the other way round.
        let asked = health.reading_asked_at(load_balancer_id);
        let mut reading = health.group_health(load_balancer_id, group_id, now);
        if let GroupHealth::Normal(normal) = &mut reading {
            let joined = lock(&self.joined);
            normal.retain(|key| {
                joined
                    .get(&(group_id.to_owned(), key.clone()))
                    .and_then(|at| at.checked_add(self.config.slb_propagation).ok())
                    .is_none_or(|carried| asked.is_some_and(|asked| asked >= carried))
            });
        }
        Some(reading)
    }

    /// Drains wait for `health`: none goes ahead while it would leave the group nothing
    /// the listeners report `normal` (see [`crate::plan::Holds`]).
    pub fn with_health(mut self, health: Arc<dyn GroupHealthSource>) -> Self {
        self.health = Some(health);
        self
    }

    /// A pod-facing pass over a load balancer whose listeners the health source does
    /// not know says so before its reads, so that the first drain that needs them reads
    /// them together with the others' (see `listener_reads.rs`).
    pub(super) fn want_listeners(&self, load_balancer_id: &str) -> Option<Wanted<'_>> {
        let health = self.health.as_ref()?;
        (current_lane().pod_facing() && !health.knows_listeners(load_balancer_id))
            .then(|| self.listener_reads.want(load_balancer_id))
    }

    /// A drain pass (a pod waits) over a load balancer whose listeners the health source
    /// does not know reads them first: whether a listener checks health decides whether
    /// the drain must wait for a replacement reported `normal`. Once per load balancer,
    /// with up to nine other wanted ones in the same call, or by waiting for a read in
    /// flight that has it; a failed read leaves the drain to go by weights alone.
    pub(super) async fn learn_listeners_for_drain(&self, load_balancer_id: &str) {
        let Some(health) = &self.health else { return };
        if current_lane() != Lane::Drain || health.knows_listeners(load_balancer_id) {
            return;
        }
        let mut lead = match self.listener_reads.turn(load_balancer_id) {
            Turn::Lead(lead) => lead,
            Turn::Wait(done) => {
                read_ended(done).await;
                if !health.knows_listeners(load_balancer_id) {
                    tracing::warn!(%load_balancer_id,
                        "cannot read the listeners' health checks; the drain goes by weights alone");
                }
                return;
            }
        };
        // What the read asks for is decided once it may go: the drains that needed
        // listeners while it waited for the budget are in it.
        self.gate.budget.acquire_for_current().await;
        // A token at once (the burst): the drains started together still get to join.
        tokio::task::yield_now().await;
        let ids = lead.close(|id| !health.knows_listeners(id));
        match prepaid(self.gate.retried("DescribeLoadBalancerListeners", || {
            self.api.describe_listeners_of(ids)
        }))
        .await
        {
            Ok(found) => {
                let now = self.clock.now();
                for (id, listeners) in found {
                    if ids.contains(&id) {
                        health.learn_listeners(&id, listeners, now);
                    }
                }
                if !health.knows_listeners(load_balancer_id) {
                    tracing::warn!(%load_balancer_id,
                        "the listener read did not answer for the load balancer; the drain goes by weights alone");
                }
            }
            Err(error) => tracing::warn!(%load_balancer_id, %error,
                "cannot read the listeners' health checks; the drain goes by weights alone"),
        }
    }
}
