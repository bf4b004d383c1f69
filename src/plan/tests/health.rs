//! Make before break by health: where listeners check the group's backends, a backend
//! takes traffic only once reported `normal`, so no serving backend goes to weight 0
//! while nothing reported normal would be left.

use std::collections::{BTreeSet, HashMap};

use super::*;
use crate::model::BackendState::{Active, Draining};
use crate::model::GroupHealth;
use crate::plan::{plan_group_holding, Holds};

fn plan_with(
    desired: &DesiredGroup,
    observed: &ObservedGroup,
    health: GroupHealth,
    drains_first: bool,
) -> GroupPlan {
    plan_group_holding(
        desired,
        Some(observed),
        &DrainLedger::new(),
        &HashMap::new(),
        &Holds {
            health,
            ..Holds::default()
        },
        PlanConfig {
            drains_first,
            ..PlanConfig::new(WINDOW)
        },
        mk_ts(0),
    )
}

fn normal(ns: &[u32]) -> GroupHealth {
    GroupHealth::Normal(
        ns.iter()
            .map(|n| mk_owned(*n, 0).key().unwrap())
            .collect::<BTreeSet<_>>(),
    )
}

/// Node 1 leaves (its pod was deleted), node 2 is its replacement, registered at weight 100.
fn replacement() -> (DesiredGroup, ObservedGroup) {
    (
        mk_desired(vec![mk_ecs(1, 100, Draining), mk_ecs(2, 100, Active)]),
        mk_observed(vec![mk_owned(1, 100), mk_owned(2, 100)]),
    )
}

#[test]
fn a_drain_waits_while_its_replacement_is_not_reported_normal() {
    let (desired, observed) = replacement();
    for drains_first in [false, true] {
        let held = plan_with(&desired, &observed, normal(&[1]), drains_first);
        assert!(held.steps.is_empty(), "{:?}", held.steps);
        assert!(held.held_for_health);
        assert!(held.ledger.started.is_empty(), "no drain starts while held");
        assert!(
            held.warnings.iter().any(|w| w.contains("reported normal")),
            "{:?}",
            held.warnings
        );
        let go = plan_with(&desired, &observed, normal(&[1, 2]), drains_first);
        assert_eq!(
            summary(&go.steps),
            vec![(StepAction::SetWeight, ids(&[("i-001", 0)]))]
        );
        assert!(!go.held_for_health);
    }
}

#[test]
fn without_a_reading_every_drain_waits_for_the_first_one() {
    let (desired, observed) = replacement();
    let held = plan_with(&desired, &observed, GroupHealth::Unread, false);
    assert!(held.steps.is_empty() && held.held_for_health);
    // Where nothing checks health, weights alone decide (as before).
    let plain = plan_with(&desired, &observed, GroupHealth::Unchecked, false);
    assert_eq!(
        summary(&plain.steps),
        vec![(StepAction::SetWeight, ids(&[("i-001", 0)]))]
    );
    assert!(!plain.held_for_health);
}

#[test]
fn a_replacement_added_in_the_same_plan_does_not_count_as_serving() {
    // Node 2 is not in the group yet: it is added now and `unavailable` until checked.
    let desired = mk_desired(vec![mk_ecs(1, 100, Draining), mk_ecs(2, 100, Active)]);
    let observed = mk_observed(vec![mk_owned(1, 100)]);
    let plan = plan_with(&desired, &observed, normal(&[1]), false);
    assert_eq!(
        summary(&plan.steps),
        vec![(StepAction::Add, ids(&[("i-002", 100)]))]
    );
    assert!(plan.held_for_health);
}

#[test]
fn scale_down_and_unhealthy_leavers_are_not_held() {
    // Another backend reported normal keeps serving: the drain goes ahead.
    let desired = mk_desired(vec![
        mk_ecs(1, 100, Draining),
        mk_ecs(2, 100, Active),
        mk_ecs(3, 100, Active),
    ]);
    let observed = mk_observed(vec![mk_owned(1, 100), mk_owned(2, 100), mk_owned(3, 100)]);
    let plan = plan_with(&desired, &observed, normal(&[1, 3]), false);
    assert_eq!(
        summary(&plan.steps),
        vec![(StepAction::SetWeight, ids(&[("i-001", 0)]))]
    );
    // A leaving backend the check does not report normal takes no traffic: holding it
    // would keep nothing serving.
    let (desired, observed) = replacement();
    let plan = plan_with(&desired, &observed, normal(&[]), false);
    assert_eq!(
        summary(&plan.steps),
        vec![(StepAction::SetWeight, ids(&[("i-001", 0)]))]
    );
    assert!(!plan.held_for_health);
}

#[test]
fn a_group_that_empties_drains_without_waiting_for_health() {
    // Scaled to zero: node 1 leaves and nothing replaces it.
    let desired = mk_desired(vec![mk_ecs(1, 100, Draining)]);
    let observed = mk_observed(vec![mk_owned(1, 100)]);
    for health in [normal(&[1]), GroupHealth::Unread] {
        let plan = plan_with(&desired, &observed, health, true);
        assert_eq!(
            summary(&plan.steps),
            vec![(StepAction::SetWeight, ids(&[("i-001", 0)]))]
        );
        assert!(!plan.held_for_health);
    }
    // A deleted Service's group (emptying) likewise.
    let (desired, observed) = replacement();
    let plan = plan_group_holding(
        &desired,
        Some(&observed),
        &DrainLedger::new(),
        &HashMap::new(),
        &Holds {
            health: GroupHealth::Unread,
            ..Holds::default()
        },
        PlanConfig {
            emptying: true,
            ..PlanConfig::new(WINDOW)
        },
        mk_ts(0),
    );
    assert!(!plan.held_for_health, "{:?}", plan.warnings);
}
