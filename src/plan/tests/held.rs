//! Backends held out after the SLB refused them: the rest of the group proceeds, within
//! make before break.

use std::collections::{BTreeSet, HashMap};

use super::*;
use crate::model::BackendKey;
use crate::model::BackendState::{Active, Draining};
use crate::plan::plan_group_holding;

fn held(ns: &[u32]) -> BTreeSet<BackendKey> {
    ns.iter().map(|n| mk_owned(*n, 0).key().unwrap()).collect()
}

fn plan_holding(
    desired: &DesiredGroup,
    observed: &ObservedGroup,
    ledger: &DrainLedger,
    hold: &[u32],
    now: Timestamp,
) -> GroupPlan {
    plan_group_holding(
        desired,
        Some(observed),
        ledger,
        &HashMap::new(),
        &crate::plan::Holds {
            refused: held(hold),
            ..Default::default()
        },
        PlanConfig::new(WINDOW),
        now,
    )
}

#[test]
fn a_held_node_is_not_added_and_the_rest_of_the_group_proceeds() {
    // Node 1 serves, node 2 leaves (autoscaler taint), node 3 is new, node 9 is a Node
    // whose ECS instance the SLB does not know.
    let desired = mk_desired(vec![
        mk_ecs(1, 100, Active),
        mk_ecs(2, 100, Draining),
        mk_ecs(3, 100, Active),
        mk_ecs(9, 100, Active),
    ]);
    let observed = mk_observed(vec![mk_owned(1, 100), mk_owned(2, 100)]);
    let plan = plan_holding(&desired, &observed, &DrainLedger::new(), &[9], mk_ts(0));
    assert_eq!(
        summary(&plan.steps),
        vec![
            (StepAction::Add, ids(&[("i-003", 100)])),
            (StepAction::SetWeight, ids(&[("i-002", 0)])),
        ]
    );
    assert!(
        plan.warnings.iter().any(|w| w.contains("left out")),
        "{:?}",
        plan.warnings
    );
}

#[test]
fn leaving_backends_keep_serving_while_their_only_replacement_is_held() {
    let desired = mk_desired(vec![mk_ecs(2, 100, Draining), mk_ecs(9, 100, Active)]);
    let observed = mk_observed(vec![mk_owned(2, 100)]);
    let plan = plan_holding(&desired, &observed, &DrainLedger::new(), &[9], mk_ts(0));
    assert!(plan.steps.is_empty(), "{:?}", plan.steps);
    assert!(plan.ledger.started.is_empty());
    assert!(
        plan.warnings.iter().any(|w| w.contains("kept serving")),
        "{:?}",
        plan.warnings
    );
}

#[test]
fn a_held_leaving_backend_is_neither_lowered_nor_removed() {
    let desired = mk_desired(vec![mk_ecs(1, 100, Active)]);
    let observed = mk_observed(vec![mk_owned(1, 100), mk_owned(2, 100), mk_owned(3, 0)]);
    let ledger = mk_ledger(&[(3, -100)]);
    let plan = plan_holding(&desired, &observed, &ledger, &[2, 3], mk_ts(0));
    assert!(plan.steps.is_empty(), "{:?}", plan.steps);
    // Without the hold both would be written.
    let free = mk_plan(&desired, &observed, &ledger, mk_ts(0));
    assert_eq!(
        summary(&free.steps),
        vec![
            (StepAction::SetWeight, ids(&[("i-002", 0)])),
            (StepAction::Remove, ids(&[("i-003", 0)])),
        ]
    );
}

#[test]
fn a_held_backend_that_already_serves_does_not_block_drains() {
    // Node 9 is present at weight 50 but its weight change to 100 was refused; node 2
    // may still drain: node 9 carries traffic.
    let desired = mk_desired(vec![mk_ecs(2, 100, Draining), mk_ecs(9, 100, Active)]);
    let observed = mk_observed(vec![mk_owned(2, 100), mk_owned(9, 50)]);
    let plan = plan_holding(&desired, &observed, &DrainLedger::new(), &[9], mk_ts(0));
    assert_eq!(
        summary(&plan.steps),
        vec![(StepAction::SetWeight, ids(&[("i-002", 0)]))]
    );
}
