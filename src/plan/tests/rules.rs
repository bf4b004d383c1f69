//! One test per planner rule of docs/architecture.md, "Steps".

use std::collections::HashMap;
use std::time::Duration;

use super::*;
use crate::model::BackendState::{Active, Draining};
use crate::plan::DrainStart;

#[test]
fn adds_absent_active_backends_at_their_weight_with_the_owner_description() {
    let desired = mk_desired(vec![mk_ecs(1, 40, Active), mk_ecs(2, 60, Active)]);
    let plan = mk_plan(
        &desired,
        &mk_observed(vec![]),
        &DrainLedger::new(),
        mk_ts(0),
    );
    assert_eq!(
        summary(&plan.steps),
        vec![(StepAction::Add, ids(&[("i-001", 40), ("i-002", 60)]))]
    );
    assert!(plan.steps[0]
        .backends
        .iter()
        .all(|b| b.description == owner().as_str() && b.server_ip.is_none()));
    assert_eq!(plan.requeue_at, None);
}

#[test]
fn desired_draining_backend_that_is_absent_needs_no_step() {
    let desired = mk_desired(vec![mk_ecs(1, 0, Draining)]);
    let plan = mk_plan(
        &desired,
        &mk_observed(vec![]),
        &DrainLedger::new(),
        mk_ts(0),
    );
    assert!(plan.steps.is_empty());
    assert_eq!(plan.requeue_at, None);
}

#[test]
fn foreign_backends_are_never_touched() {
    // Not desired, at weight > 0 and at weight 0 with an elapsed "drain": still untouched.
    let observed = mk_observed(vec![
        mk_slb_ecs(7, 50, FOREIGN),
        mk_slb_ecs(8, 0, ""),
        mk_slb_ecs(9, 0, "k8s/80/web/default/c1 "),
    ]);
    let ledger = mk_ledger(&[(8, -1000)]);
    let plan = mk_plan(
        &mk_desired(vec![mk_ecs(1, 10, Active)]),
        &observed,
        &ledger,
        mk_ts(0),
    );
    assert_eq!(
        summary(&plan.steps),
        vec![(StepAction::Add, ids(&[("i-001", 10)]))]
    );
    assert!(plan.ledger.started.is_empty());
    assert_eq!(plan.requeue_at, None);
}

#[test]
fn desired_backend_held_by_a_foreign_description_is_left_alone_with_a_warning() {
    let observed = mk_observed(vec![mk_slb_ecs(1, 5, FOREIGN)]);
    let plan = mk_plan(
        &mk_desired(vec![mk_ecs(1, 50, Active)]),
        &observed,
        &DrainLedger::new(),
        mk_ts(0),
    );
    assert!(plan.steps.is_empty(), "no add (it exists) and no setWeight");
    assert!(plan.warnings.iter().any(|w| w.contains(FOREIGN)));
}

#[test]
fn draining_backend_desired_again_is_restored_by_set_weight_not_re_added() {
    let observed = mk_observed(vec![mk_owned(1, 0)]);
    let ledger = mk_ledger(&[(1, -10)]);
    let plan = mk_plan(
        &mk_desired(vec![mk_ecs(1, 70, Active)]),
        &observed,
        &ledger,
        mk_ts(0),
    );
    assert_eq!(
        summary(&plan.steps),
        vec![(StepAction::SetWeight, ids(&[("i-001", 70)]))]
    );
    assert_eq!(plan.ledger.ended, vec![mk_owned(1, 0).key().unwrap()]);
    assert_eq!(plan.requeue_at, None);
}

/// `…-ignore-weight-update: on`: what a member weighs while it takes traffic is the
/// user's; joining, leaving and rising from 0 still go by the desired weights.
#[test]
fn kept_weights_leave_serving_members_as_they_are() {
    let observed = mk_observed(vec![mk_owned(1, 37), mk_owned(2, 0), mk_owned(3, 100)]);
    let mut desired = mk_desired(vec![
        mk_ecs(1, 100, Active),
        mk_ecs(2, 100, Active),
        mk_ecs(3, 100, Draining),
        mk_ecs(4, 100, Active),
    ]);
    desired.keep_weights = true;
    let plan = mk_plan(&desired, &observed, &DrainLedger::new(), mk_ts(0));
    assert_eq!(
        summary(&plan.steps),
        vec![
            (StepAction::Add, ids(&[("i-004", 100)])),
            (StepAction::SetWeight, ids(&[("i-002", 100), ("i-003", 0)])),
        ],
        "i-001 keeps its 37"
    );
    desired.keep_weights = false;
    let plan = mk_plan(&desired, &observed, &DrainLedger::new(), mk_ts(0));
    assert_eq!(
        summary(&plan.steps)[1],
        (
            StepAction::SetWeight,
            ids(&[("i-001", 100), ("i-002", 100), ("i-003", 0)])
        )
    );
}

#[test]
fn restore_happens_even_after_the_window_elapsed() {
    let observed = mk_observed(vec![mk_owned(1, 0)]);
    let ledger = mk_ledger(&[(1, -1000)]);
    let plan = mk_plan(
        &mk_desired(vec![mk_ecs(1, 70, Active)]),
        &observed,
        &ledger,
        mk_ts(0),
    );
    assert_eq!(
        summary(&plan.steps),
        vec![(StepAction::SetWeight, ids(&[("i-001", 70)]))]
    );
}

#[test]
fn equal_weights_are_never_re_set() {
    let observed = mk_observed(vec![mk_owned(1, 50), mk_owned(2, 0)]);
    let ledger = mk_ledger(&[(2, -5)]);
    let desired = mk_desired(vec![mk_ecs(1, 50, Active), mk_ecs(2, 0, Draining)]);
    let plan = mk_plan(&desired, &observed, &ledger, mk_ts(0));
    assert!(plan.steps.is_empty(), "{:?}", plan.steps);
    assert_eq!(plan.requeue_at, Some(mk_ts(25)));
}

#[test]
fn changed_weight_of_a_present_backend_is_set() {
    let observed = mk_observed(vec![mk_owned(1, 50), mk_owned(2, 50)]);
    let desired = mk_desired(vec![mk_ecs(1, 100, Active), mk_ecs(2, 50, Active)]);
    let plan = mk_plan(&desired, &observed, &DrainLedger::new(), mk_ts(0));
    assert_eq!(
        summary(&plan.steps),
        vec![(StepAction::SetWeight, ids(&[("i-001", 100)]))]
    );
}

#[test]
fn leaving_backend_goes_to_weight_zero_then_is_removed_in_a_later_pass() {
    let desired = mk_desired(vec![mk_ecs(2, 50, Active)]);
    let key = mk_owned(1, 0).key().unwrap();

    // Pass 1: weight 0, drain starts now, no removal.
    let t0 = mk_ts(0);
    let observed = mk_observed(vec![mk_owned(1, 50), mk_owned(2, 50)]);
    let plan = mk_plan(&desired, &observed, &DrainLedger::new(), t0);
    assert_eq!(
        summary(&plan.steps),
        vec![(StepAction::SetWeight, ids(&[("i-001", 0)]))]
    );
    assert_eq!(
        plan.ledger.started,
        vec![DrainStart {
            key: key.clone(),
            started_at: t0,
            already_at_zero: false
        }]
    );
    assert_eq!(plan.requeue_at, Some(mk_ts(30)));

    // The step ran; pass 2 before the deadline changes nothing.
    let mut ledger = DrainLedger::new();
    ledger.apply(GROUP, &plan.ledger);
    let observed = mk_observed(vec![mk_owned(1, 0), mk_owned(2, 50)]);
    let plan = mk_plan(&desired, &observed, &ledger, mk_ts(29));
    assert!(plan.steps.is_empty());
    assert_eq!(plan.requeue_at, Some(mk_ts(30)));

    // Pass 3 at the deadline removes it and forgets the drain.
    let plan = mk_plan(&desired, &observed, &ledger, mk_ts(30));
    assert_eq!(
        summary(&plan.steps),
        vec![(StepAction::Remove, ids(&[("i-001", 0)]))]
    );
    assert_eq!(plan.ledger.ended, vec![key]);
    assert_eq!(plan.requeue_at, None);
}

#[test]
fn zero_window_still_needs_a_second_pass() {
    let desired = mk_desired(vec![]);
    let config = PlanConfig::new(Duration::ZERO);
    let none = HashMap::new();
    let observed = mk_observed(vec![mk_owned(1, 50)]);
    let plan = plan_group(
        &desired,
        Some(&observed),
        &DrainLedger::new(),
        &none,
        config,
        mk_ts(0),
    );
    assert_eq!(
        summary(&plan.steps),
        vec![(StepAction::SetWeight, ids(&[("i-001", 0)]))]
    );
    // Unledgered at weight 0: the window starts now, nothing is removed even though it is 0 s.
    let observed = mk_observed(vec![mk_owned(1, 0)]);
    let plan = plan_group(
        &desired,
        Some(&observed),
        &DrainLedger::new(),
        &none,
        config,
        mk_ts(0),
    );
    assert!(plan.steps.is_empty());
    assert_eq!(plan.requeue_at, Some(mk_ts(0)));
}

#[test]
fn owned_backend_at_zero_without_ledger_entry_starts_its_window_now() {
    let observed = mk_observed(vec![mk_owned(1, 0)]);
    let plan = mk_plan(
        &mk_desired(vec![]),
        &observed,
        &DrainLedger::new(),
        mk_ts(100),
    );
    assert!(plan.steps.is_empty(), "no removal in this pass");
    assert_eq!(
        plan.ledger.started,
        vec![DrainStart {
            key: mk_owned(1, 0).key().unwrap(),
            started_at: mk_ts(100),
            already_at_zero: true
        }]
    );
    assert_eq!(plan.requeue_at, Some(mk_ts(130)));
}

#[test]
fn window_boundary_is_now_at_or_after_start_plus_window() {
    let observed = mk_observed(vec![mk_owned(1, 0)]);
    let ledger = mk_ledger(&[(1, 0)]);
    let desired = mk_desired(vec![]);
    let just_before = mk_ts(30)
        .checked_sub(jiff::SignedDuration::from_nanos(1))
        .unwrap();
    let plan = mk_plan(&desired, &observed, &ledger, just_before);
    assert!(plan.steps.is_empty());
    assert_eq!(plan.requeue_at, Some(mk_ts(30)));
    let plan = mk_plan(&desired, &observed, &ledger, mk_ts(30));
    assert_eq!(
        summary(&plan.steps),
        vec![(StepAction::Remove, ids(&[("i-001", 0)]))]
    );
}

#[test]
fn the_window_counts_from_when_the_slb_may_carry_the_weight_0() {
    // Weight 0 written at t0; the SLB may carry it up to 5 s later, so the 30 s window
    // ends at t0 + 35.
    let observed = mk_observed(vec![mk_owned(1, 0)]);
    let ledger = mk_ledger(&[(1, 0)]);
    let desired = mk_desired(vec![]);
    let config = PlanConfig {
        propagation: Duration::from_secs(5),
        ..PlanConfig::new(WINDOW)
    };
    let plan_at = |now| {
        plan_group(
            &desired,
            Some(&observed),
            &ledger,
            &HashMap::new(),
            config,
            now,
        )
    };
    let plan = plan_at(mk_ts(34));
    assert!(plan.steps.is_empty(), "{:?}", plan.steps);
    assert_eq!(plan.requeue_at, Some(mk_ts(35)));
    assert_eq!(
        summary(&plan_at(mk_ts(35)).steps),
        vec![(StepAction::Remove, ids(&[("i-001", 0)]))]
    );
}

#[test]
fn desired_draining_backend_is_set_to_zero_then_removed_after_its_window() {
    let desired = mk_desired(vec![mk_ecs(1, 0, Draining), mk_ecs(2, 10, Active)]);
    let observed = mk_observed(vec![mk_owned(1, 30), mk_owned(2, 10)]);
    let plan = mk_plan(&desired, &observed, &DrainLedger::new(), mk_ts(0));
    assert_eq!(
        summary(&plan.steps),
        vec![(StepAction::SetWeight, ids(&[("i-001", 0)]))]
    );

    let observed = mk_observed(vec![mk_owned(1, 0), mk_owned(2, 10)]);
    let plan = mk_plan(&desired, &observed, &mk_ledger(&[(1, 0)]), mk_ts(31));
    assert_eq!(
        summary(&plan.steps),
        vec![(StepAction::Remove, ids(&[("i-001", 0)]))]
    );
}

#[test]
fn requeue_at_is_the_earliest_pending_deadline() {
    let observed = mk_observed(vec![
        mk_owned(1, 0),
        mk_owned(2, 0),
        mk_owned(3, 10),
        mk_owned(4, 0),
    ]);
    // 1 drains since -20 (deadline 10), 2 since -25 (deadline 5), 3 starts now (30),
    // 4 elapsed (removed, no deadline).
    let ledger = mk_ledger(&[(1, -20), (2, -25), (4, -31)]);
    let plan = mk_plan(
        &mk_desired(vec![mk_ecs(9, 1, Active)]),
        &observed,
        &ledger,
        mk_ts(0),
    );
    assert_eq!(plan.requeue_at, Some(mk_ts(5)));
    assert_eq!(
        summary(&plan.steps),
        vec![
            (StepAction::Add, ids(&[("i-009", 1)])),
            (StepAction::SetWeight, ids(&[("i-003", 0)])),
            (StepAction::Remove, ids(&[("i-004", 0)])),
        ]
    );
}

#[test]
fn steps_run_adds_then_raises_then_drains_then_removals() {
    let desired = mk_desired(vec![mk_ecs(1, 50, Active), mk_ecs(5, 80, Active)]);
    let observed = mk_observed(vec![mk_owned(2, 50), mk_owned(3, 0), mk_owned(5, 20)]);
    let ledger = mk_ledger(&[(3, -60)]);
    let plan = mk_plan(&desired, &observed, &ledger, mk_ts(0));
    assert_eq!(
        summary(&plan.steps),
        vec![
            (StepAction::Add, ids(&[("i-001", 50)])),
            (StepAction::SetWeight, ids(&[("i-005", 80), ("i-002", 0)])),
            (StepAction::Remove, ids(&[("i-003", 0)])),
        ]
    );
}

#[test]
fn ledger_entries_of_backends_gone_from_the_group_are_forgotten() {
    let observed = mk_observed(vec![mk_slb_ecs(2, 0, FOREIGN)]);
    let ledger = mk_ledger(&[(1, -5), (2, -5)]);
    let plan = mk_plan(&mk_desired(vec![]), &observed, &ledger, mk_ts(0));
    assert!(plan.steps.is_empty());
    assert_eq!(
        plan.ledger.ended,
        vec![mk_owned(1, 0).key().unwrap(), mk_owned(2, 0).key().unwrap()]
    );
}

#[test]
fn empty_desired_set_is_allowed_but_warned_about() {
    let observed = mk_observed(vec![mk_owned(1, 50)]);
    let plan = mk_plan(
        &mk_desired(vec![]),
        &observed,
        &DrainLedger::new(),
        mk_ts(0),
    );
    assert!(plan
        .warnings
        .iter()
        .any(|w| w.contains("no desired backends")));
    assert_eq!(
        summary(&plan.steps),
        vec![(StepAction::SetWeight, ids(&[("i-001", 0)]))]
    );

    let plan = mk_plan(
        &mk_desired(vec![mk_ecs(1, 50, Active)]),
        &observed,
        &DrainLedger::new(),
        mk_ts(0),
    );
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
}

#[test]
fn eni_backends_without_a_known_eni_id_are_reported_not_added() {
    let desired = mk_desired(vec![
        mk_eni(1, 100, Active),
        mk_eni(2, 100, Active),
        mk_eni(3, 100, Active),
    ]);
    // 3 is already in the group: its id comes from the SLB, no lookup needed.
    let observed = mk_observed(vec![mk_slb_eni(3, 100, owner().as_str())]);
    let eni_ids = HashMap::from([(mk_ip(&mk_pod_ip(2)), "eni-two".to_owned())]);
    let plan = plan_group(
        &desired,
        Some(&observed),
        &DrainLedger::new(),
        &eni_ids,
        PlanConfig::new(WINDOW),
        mk_ts(0),
    );
    assert_eq!(plan.unresolved_eni_ips, vec![mk_ip(&mk_pod_ip(1))]);
    assert_eq!(plan.steps.len(), 1);
    let added = &plan.steps[0].backends;
    assert_eq!(plan.steps[0].action, StepAction::Add);
    assert_eq!(added.len(), 1);
    assert_eq!(added[0].server_id, "eni-two");
    assert_eq!(added[0].server_ip, Some(mk_ip(&mk_pod_ip(2))));
    assert_eq!(added[0].backend_type, BackendType::Eni);
    assert!(plan.warnings.iter().any(|w| w.contains("no ENI id")));
}

#[test]
fn eni_backend_leaving_is_drained_by_ip_identity() {
    let desired = mk_desired(vec![mk_eni(2, 100, Active)]);
    let observed = mk_observed(vec![
        mk_slb_eni(1, 100, owner().as_str()),
        mk_slb_eni(2, 100, owner().as_str()),
    ]);
    let plan = mk_plan(&desired, &observed, &DrainLedger::new(), mk_ts(0));
    assert_eq!(
        summary(&plan.steps),
        vec![(StepAction::SetWeight, ids(&[("eni-001", 0)]))]
    );
    assert_eq!(
        plan.steps[0].backends[0].server_ip,
        Some(mk_ip(&mk_pod_ip(1)))
    );
}

#[test]
fn missing_group_plans_adds_only() {
    let desired = mk_desired(vec![mk_ecs(1, 10, Active), mk_ecs(2, 0, Draining)]);
    let plan = plan_group(
        &desired,
        None,
        &mk_ledger(&[(2, 0)]),
        &HashMap::new(),
        PlanConfig::new(WINDOW),
        mk_ts(0),
    );
    assert_eq!(
        summary(&plan.steps),
        vec![(StepAction::Add, ids(&[("i-001", 10)]))]
    );
}

#[test]
fn plan_serialises_to_the_documented_json() {
    let desired = mk_desired(vec![mk_ecs(1, 50, Active)]);
    let observed = mk_observed(vec![mk_owned(2, 50)]);
    let plan = mk_plan(&desired, &observed, &DrainLedger::new(), mk_ts(0));
    let json = serde_json::to_value(&plan).unwrap();
    let owner = owner().as_str().to_owned();
    assert_eq!(
        json,
        serde_json::json!({
            "steps": [
                {"action": "add", "backends": [{"serverId": "i-001", "serverIp": null, "port": 30080,
                    "weight": 50, "type": "ecs", "description": owner}]},
                {"action": "setWeight", "backends": [{"serverId": "i-002", "serverIp": null,
                    "port": 30080, "weight": 0, "type": "ecs", "description": owner}]},
            ],
            "requeueAt": "2027-01-15T08:00:30Z",
        })
    );
    let idle = mk_plan(
        &desired,
        &mk_observed(vec![mk_owned(1, 50)]),
        &DrainLedger::new(),
        mk_ts(0),
    );
    assert_eq!(
        serde_json::to_value(&idle).unwrap(),
        serde_json::json!({"steps": [], "requeueAt": null})
    );
}
