//! What a plan is made of: ordered SLB write steps and when to look again.

use std::net::IpAddr;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use super::ledger::LedgerUpdates;
use crate::model::SlbBackend;

/// The SLB accepts at most 20 backends per write call.
pub const MAX_BATCH: usize = 20;

/// The SLB write call a step makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum StepAction {
    /// `AddVServerGroupBackendServers`.
    #[serde(rename = "add")]
    Add,
    /// `SetVServerGroupAttribute` (weights of existing members).
    #[serde(rename = "setWeight")]
    SetWeight,
    /// `RemoveVServerGroupBackendServers`.
    #[serde(rename = "remove")]
    Remove,
}

impl StepAction {
    /// Bounded metric label, also the JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            StepAction::Add => "add",
            StepAction::SetWeight => "setWeight",
            StepAction::Remove => "remove",
        }
    }
}

/// One SLB write call: at most the batch size of backends, each written as it will be
/// after the step (`setWeight` carries the new weight; Description is the owner's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub action: StepAction,
    pub backends: Vec<SlbBackend>,
}

/// Knobs of the step planner that are not part of the desired or observed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanConfig {
    /// How long an owned backend stays at weight 0 before it may be removed: the
    /// Service's `connection-drain-timeout` when drain is on, else `--default-drain-seconds`
    /// (see [`crate::model::LbSpec::drain_window_secs`]).
    pub drain_window: Duration,
    /// How long the SLB may take to carry a written weight to its forwarders
    /// (`--slb-propagation-seconds`): the API answers before they do, and nothing the API
    /// reports shows when they have. A backend set to weight 0 keeps new connections for
    /// up to this long, so its window counts from then: it is removed (and its pod
    /// released) no earlier than `startedAt + propagation + drain_window`.
    pub propagation: Duration,
    /// Backends per write call; the SLB allows at most [`MAX_BATCH`]. Values of 0 are
    /// treated as 1.
    pub max_batch: usize,
    /// The group is being emptied on purpose (its Service deleted, its port removed or
    /// moved): no warning that nothing is desired.
    pub emptying: bool,
    /// A pod waits for this plan's drains (the drain lane): weight 0 and removals go
    /// before adds whenever the group keeps a backend with weight > 0 without the adds,
    /// so the drain need not wait for the group's other work (see [`GroupPlan::drains_first`]).
    pub drains_first: bool,
}

impl PlanConfig {
    pub fn new(drain_window: Duration) -> Self {
        PlanConfig {
            drain_window,
            propagation: Duration::ZERO,
            max_batch: MAX_BATCH,
            emptying: false,
            drains_first: false,
        }
    }
}

/// The plan for one vServer group.
///
/// **Executing it.** Steps must run in order, and the executor stops at the first step
/// that fails: this is what makes "if an add or weight step failed in this pass, no
/// removal runs" hold, since every `remove` step comes after every `add` and `setWeight`
/// step. After a failure the executor re-reads the group and plans again rather than
/// guessing what the failed call did.
///
/// Serialises as the `plan` command's per-group fields:
/// `{"steps":[{"action":"add|setWeight|remove","backends":[…]}],"requeueAt":RFC 3339|null}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupPlan {
    /// In execution order: adds, weight changes (raises and restores before weight-0
    /// drains), removals; with [`Self::drains_first`], weight changes, removals, adds.
    pub steps: Vec<Step>,
    /// The weight changes and removals come before the adds: everything after the last
    /// of them is work no pod's drain waits for.
    #[serde(skip)]
    pub drains_first: bool,
    /// Drains this plan would have made wait for the group's health: draining now would
    /// leave nothing the health check reports `normal` (or no reading is known yet). Plan
    /// again once the reading changes.
    #[serde(skip)]
    pub held_for_health: bool,
    /// The earliest pending drain deadline: when this group must be planned again even
    /// if nothing else changes. `None` when no drain is pending.
    pub requeue_at: Option<Timestamp>,
    /// Drains started and ledger entries to forget.
    #[serde(skip)]
    pub ledger: LedgerUpdates,
    /// Things an operator should hear about (empty desired set, foreign backend in the
    /// way of a desired one, …). Not errors: the rest of the plan stands.
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// Desired ENI backends not added because no ENI id is known for their IP, sorted.
    #[serde(skip)]
    pub unresolved_eni_ips: Vec<IpAddr>,
}

impl GroupPlan {
    /// True when the group needs no SLB write now.
    pub fn is_noop(&self) -> bool {
        self.steps.is_empty()
    }
}

/// The members of a group after `steps` ran on `before`: adds appended, weights set,
/// removals dropped, matched by backend identity.
pub fn members_after(mut backends: Vec<SlbBackend>, steps: &[Step]) -> Vec<SlbBackend> {
    for step in steps {
        for written in &step.backends {
            let Some(key) = written.key() else { continue };
            let position = backends.iter().position(|b| b.key().as_ref() == Some(&key));
            match (step.action, position) {
                (StepAction::Add, None) => backends.push(written.clone()),
                (StepAction::Add | StepAction::SetWeight, Some(i)) => {
                    backends[i].weight = written.weight;
                    backends[i].description = written.description.clone();
                }
                (StepAction::SetWeight, None) => {}
                (StepAction::Remove, Some(i)) => {
                    backends.remove(i);
                }
                (StepAction::Remove, None) => {}
            }
        }
    }
    backends
}

#[cfg(test)]
mod members_after_tests {
    use super::*;
    use crate::model::{BackendType, Weight};

    fn ecs(id: &str, weight: u32) -> SlbBackend {
        SlbBackend {
            server_id: id.to_owned(),
            server_ip: None,
            port: 80,
            weight: Weight::new(weight).unwrap(),
            backend_type: BackendType::Ecs,
            description: "k8s/80/web/default/kubernetes".to_owned(),
        }
    }

    #[test]
    fn adds_weights_and_removals_apply_by_identity() {
        let before = vec![ecs("i-a", 100), ecs("i-b", 100), ecs("i-c", 0)];
        let steps = [
            Step {
                action: StepAction::Add,
                backends: vec![ecs("i-d", 100)],
            },
            Step {
                action: StepAction::SetWeight,
                backends: vec![ecs("i-b", 0)],
            },
            Step {
                action: StepAction::Remove,
                backends: vec![ecs("i-c", 0)],
            },
        ];
        let after = members_after(before, &steps);
        let shown: Vec<_> = after
            .iter()
            .map(|b| (b.server_id.as_str(), b.weight.get()))
            .collect();
        assert_eq!(shown, [("i-a", 100), ("i-b", 0), ("i-d", 100)]);
    }
}
