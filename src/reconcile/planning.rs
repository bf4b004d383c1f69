//! The planner's inputs a pass assembles from the executor's state: the drain ledger,
//! known ENI ids, backends held out after refusals, node backends in their warm-up and,
//! when the plan drains, the listeners' health.

use jiff::Timestamp;

use super::executor::{lock, Executor};
use crate::model::{GroupHealth, GroupTarget, ObservedGroup, SlbBackend};
use crate::plan::{plan_group_holding, GroupPlan, Holds, PlanConfig};
use crate::slb::budget::{current_lane, Lane};
use crate::slb::SlbApi;

impl<A: SlbApi + ?Sized> Executor<A> {
    /// The plan for `members` (the group as read, with this pass's writes applied), and
    /// when a node backend it holds at weight 0 may rise (see [`WarmUp`]).
    pub(super) fn plan(
        &self,
        target: &GroupTarget,
        group_id: &str,
        observed: &ObservedGroup,
        members: &[SlbBackend],
        now: Timestamp,
    ) -> (GroupPlan, Option<Timestamp>) {
        let ledger = lock(&self.ledger);
        let eni_ids = lock(&self.eni_ids);
        let config = PlanConfig {
            drain_window: target.drain_window,
            propagation: self.config.slb_propagation,
            max_batch: self.config.max_batch,
            emptying: target.emptying,
            // A pod waits for this pass's drain: it goes before the group's other work.
            drains_first: current_lane() == Lane::Drain,
        };
        let current = ObservedGroup {
            backends: members.to_vec(),
            ..observed.clone()
        };
        let refused = lock(&self.quarantine).held(group_id, now);
        let (desired, warm_until) = lock(&self.warm_up).hold(
            group_id,
            &target.desired,
            members,
            self.config.kube_proxy_allowance,
            now,
        );
        let plan_with = |health: GroupHealth| {
            plan_group_holding(
                &desired,
                Some(&current),
                &ledger,
                &eni_ids,
                &Holds {
                    refused: refused.clone(),
                    health,
                },
                config,
                now,
            )
        };
        let plan = plan_with(GroupHealth::Unchecked);
        // Health is asked for only when the plan lowers a weight: asking has the load
        // balancer's health read, and most passes drain nothing.
        let lowers = plan.ledger.started.iter().any(|d| !d.already_at_zero);
        let plan = match lowers
            .then(|| self.health_since_joins(&target.load_balancer_id, group_id, now))
            .flatten()
        {
            Some(health) => plan_with(health),
            None => plan,
        };
        (plan, warm_until)
    }
}
