//! Desired `active` backends at weight 0: Local nodes whose only endpoints are admitted by
//! the readiness-gate bootstrap (present so the gate can open, no new connection before
//! the node's kube-proxy has a rule). They are added at 0, kept, never drained or removed,
//! and raised with `setWeight` once the planner wants them to serve.

use super::*;
use crate::model::BackendState::{Active, Draining};

#[test]
fn absent_active_backend_at_weight_zero_is_added_at_zero() {
    let plan = mk_plan(
        &mk_desired(vec![mk_ecs(1, 1, Active), mk_ecs(2, 0, Active)]),
        &mk_observed(vec![mk_owned(1, 1)]),
        &DrainLedger::new(),
        mk_ts(0),
    );
    assert_eq!(
        summary(&plan.steps),
        vec![(StepAction::Add, ids(&[("i-002", 0)]))]
    );
    assert!(plan.ledger.started.is_empty());
    assert_eq!(plan.requeue_at, None);
}

#[test]
fn present_active_backend_at_weight_zero_is_kept_without_a_drain_window() {
    // Unlike an owned backend at 0 that is not desired, it starts no window and is never
    // removed, however long it waits.
    for now in [0, 1_000, 100_000] {
        let plan = mk_plan(
            &mk_desired(vec![mk_ecs(1, 0, Active)]),
            &mk_observed(vec![mk_owned(1, 0)]),
            &DrainLedger::new(),
            mk_ts(now),
        );
        assert!(plan.steps.is_empty(), "{:?}", plan.steps);
        assert!(plan.ledger.started.is_empty());
        assert_eq!(plan.requeue_at, None);
    }
}

#[test]
fn a_draining_node_wanted_again_at_weight_zero_ends_its_drain_and_stays() {
    // Its window elapsed long ago: still no removal, the ledger entry ends.
    let plan = mk_plan(
        &mk_desired(vec![mk_ecs(1, 0, Active)]),
        &mk_observed(vec![mk_owned(1, 0)]),
        &mk_ledger(&[(1, -1000)]),
        mk_ts(0),
    );
    assert!(plan.steps.is_empty(), "{:?}", plan.steps);
    assert_eq!(plan.ledger.ended, vec![mk_owned(1, 0).key().unwrap()]);
}

#[test]
fn weight_zero_backend_is_raised_with_set_weight_once_it_serves() {
    let plan = mk_plan(
        &mk_desired(vec![mk_ecs(1, 1, Active)]),
        &mk_observed(vec![mk_owned(1, 0)]),
        &DrainLedger::new(),
        mk_ts(0),
    );
    assert_eq!(
        summary(&plan.steps),
        vec![(StepAction::SetWeight, ids(&[("i-001", 1)]))]
    );
    // The same backend desired draining instead: its window starts.
    let plan = mk_plan(
        &mk_desired(vec![mk_ecs(1, 0, Draining)]),
        &mk_observed(vec![mk_owned(1, 0)]),
        &DrainLedger::new(),
        mk_ts(0),
    );
    assert_eq!(plan.ledger.started.len(), 1);
    assert_eq!(plan.requeue_at, Some(mk_ts(30)));
}
