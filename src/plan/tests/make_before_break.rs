//! Make before break when replacements cannot be added yet (ENI ids unknown).

use super::*;
use crate::model::BackendState::{Active, Draining};

#[test]
fn leaving_backends_keep_serving_while_their_unresolved_replacements_wait() {
    // Pod 1 leaves, pod 2 replaces it but its ENI id is not known: draining pod 1 now
    // would leave the group with no backend at weight > 0.
    let desired = mk_desired(vec![mk_eni(1, 100, Draining), mk_eni(2, 100, Active)]);
    let observed = mk_observed(vec![mk_slb_eni(1, 100, owner().as_str())]);
    let plan = mk_plan(&desired, &observed, &DrainLedger::new(), mk_ts(0));
    assert!(plan.steps.is_empty(), "{:?}", plan.steps);
    assert!(plan.ledger.started.is_empty(), "no drain starts");
    assert_eq!(plan.requeue_at, None);
    assert_eq!(plan.unresolved_eni_ips, vec![mk_ip(&mk_pod_ip(2))]);
    assert!(
        plan.warnings.iter().any(|w| w.contains("kept serving")),
        "{:?}",
        plan.warnings
    );
}

#[test]
fn leaving_backends_drain_when_another_backend_still_serves() {
    // Pod 3 stays at weight 100, so pod 1 drains although pod 2 cannot be added yet.
    let desired = mk_desired(vec![
        mk_eni(1, 100, Draining),
        mk_eni(2, 100, Active),
        mk_eni(3, 100, Active),
    ]);
    let observed = mk_observed(vec![
        mk_slb_eni(1, 100, owner().as_str()),
        mk_slb_eni(3, 100, owner().as_str()),
    ]);
    let plan = mk_plan(&desired, &observed, &DrainLedger::new(), mk_ts(0));
    assert_eq!(
        summary(&plan.steps),
        vec![(StepAction::SetWeight, ids(&[("eni-001", 0)]))]
    );
    assert_eq!(plan.ledger.started.len(), 1);
    assert!(!plan.ledger.started[0].already_at_zero);
    assert_eq!(plan.requeue_at, Some(mk_ts(30)));
}

#[test]
fn a_serving_foreign_backend_counts_as_capacity() {
    let desired = mk_desired(vec![mk_eni(1, 100, Draining), mk_eni(2, 100, Active)]);
    let observed = mk_observed(vec![
        mk_slb_eni(1, 100, owner().as_str()),
        mk_slb_eni(3, 100, FOREIGN),
    ]);
    let plan = mk_plan(&desired, &observed, &DrainLedger::new(), mk_ts(0));
    assert_eq!(
        summary(&plan.steps),
        vec![(StepAction::SetWeight, ids(&[("eni-001", 0)]))]
    );
}

#[test]
fn without_unresolved_replacements_leaving_backends_drain_even_to_an_empty_group() {
    // Nothing is desired any more (scale to zero, Service deleted): drain everything.
    let desired = mk_desired(vec![mk_eni(1, 100, Draining)]);
    let observed = mk_observed(vec![mk_slb_eni(1, 100, owner().as_str())]);
    let plan = mk_plan(&desired, &observed, &DrainLedger::new(), mk_ts(0));
    assert_eq!(
        summary(&plan.steps),
        vec![(StepAction::SetWeight, ids(&[("eni-001", 0)]))]
    );
}

#[test]
fn a_restored_backend_counts_as_capacity() {
    // Pod 3 comes back from weight 0 in the same plan: pod 1 may drain.
    let desired = mk_desired(vec![
        mk_eni(1, 100, Draining),
        mk_eni(2, 100, Active),
        mk_eni(3, 100, Active),
    ]);
    let observed = mk_observed(vec![
        mk_slb_eni(1, 100, owner().as_str()),
        mk_slb_eni(3, 0, owner().as_str()),
    ]);
    let plan = mk_plan(&desired, &observed, &DrainLedger::new(), mk_ts(0));
    assert_eq!(
        summary(&plan.steps),
        vec![(
            StepAction::SetWeight,
            ids(&[("eni-003", 100), ("eni-001", 0)])
        )]
    );
}

/// The plan of a drain-lane pass (a pod waits for its drain).
fn drain_plan(desired: &DesiredGroup, observed: &ObservedGroup, ledger: &DrainLedger) -> GroupPlan {
    let config = PlanConfig {
        drains_first: true,
        ..PlanConfig::new(WINDOW)
    };
    plan_group(
        desired,
        Some(observed),
        ledger,
        &HashMap::new(),
        config,
        mk_ts(60),
    )
}

#[test]
fn a_drain_goes_before_the_adds_when_the_group_keeps_serving_without_them() {
    // Node 1 leaves, node 3 joins, node 2 serves throughout; node 4's window is over.
    let desired = mk_desired(vec![mk_ecs(2, 100, Active), mk_ecs(3, 100, Active)]);
    let observed = mk_observed(vec![mk_owned(1, 100), mk_owned(2, 100), mk_owned(4, 0)]);
    let ledger = mk_ledger(&[(4, 0)]);
    let plan = drain_plan(&desired, &observed, &ledger);
    assert!(plan.drains_first);
    assert_eq!(
        summary(&plan.steps),
        vec![
            (StepAction::SetWeight, ids(&[("i-001", 0)])),
            (StepAction::Remove, ids(&[("i-004", 0)])),
            (StepAction::Add, ids(&[("i-003", 100)])),
        ]
    );
    // Outside the drain lane the adds go first, as always.
    let plan = mk_plan(&desired, &observed, &ledger, mk_ts(60));
    assert!(!plan.drains_first);
    assert_eq!(plan.steps[0].action, StepAction::Add);
}

#[test]
fn a_drain_waits_for_the_adds_when_lowering_first_would_leave_nothing_serving() {
    // Node 1 is the group's only backend: its replacement goes in first.
    let desired = mk_desired(vec![mk_ecs(3, 100, Active)]);
    let observed = mk_observed(vec![mk_owned(1, 100)]);
    let plan = drain_plan(&desired, &observed, &DrainLedger::new());
    assert!(!plan.drains_first);
    assert_eq!(
        summary(&plan.steps),
        vec![
            (StepAction::Add, ids(&[("i-003", 100)])),
            (StepAction::SetWeight, ids(&[("i-001", 0)])),
        ]
    );
}

#[test]
fn a_backend_whose_desired_weight_falls_to_zero_does_not_count_as_serving() {
    // Node 1 leaves; node 2 stays but is wanted at weight 0 (a node warming up again, a
    // weight of 0 asked for): only node 3, to be added, will take traffic.
    let desired = mk_desired(vec![mk_ecs(2, 0, Active), mk_ecs(3, 100, Active)]);
    let observed = mk_observed(vec![mk_owned(1, 100), mk_owned(2, 100)]);
    let plan = drain_plan(&desired, &observed, &DrainLedger::new());
    assert!(!plan.drains_first);
    assert_eq!(plan.steps[0].action, StepAction::Add, "{:?}", plan.steps);
}
