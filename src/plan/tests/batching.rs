//! Write calls carry at most 20 backends, in stable key order.

use super::*;
use crate::model::BackendState::Active;

fn batch_sizes(steps: &[Step], action: StepAction) -> Vec<usize> {
    steps
        .iter()
        .filter(|s| s.action == action)
        .map(|s| s.backends.len())
        .collect()
}

fn all_ids(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .flat_map(|s| s.backends.iter().map(|b| b.server_id.clone()))
        .collect()
}

#[test]
fn adds_are_batched_at_20_21_and_45() {
    for (n, expected) in [(20, vec![20]), (21, vec![20, 1]), (45, vec![20, 20, 5])] {
        // Insert in reverse to check the batches follow key order, not input order.
        let desired = mk_desired((0..n).rev().map(|i| mk_ecs(i, 10, Active)).collect());
        let plan = mk_plan(
            &desired,
            &mk_observed(vec![]),
            &DrainLedger::new(),
            mk_ts(0),
        );
        assert_eq!(
            batch_sizes(&plan.steps, StepAction::Add),
            expected,
            "n = {n}"
        );
        let got = all_ids(&plan.steps);
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(got, sorted);
        assert_eq!(got.len(), n as usize);
    }
}

#[test]
fn weight_changes_are_batched_at_20_21_and_45() {
    for (n, expected) in [(20, vec![20]), (21, vec![20, 1]), (45, vec![20, 20, 5])] {
        let desired = mk_desired((0..n).map(|i| mk_ecs(i, 90, Active)).collect());
        let observed = mk_observed((0..n).map(|i| mk_owned(i, 10)).collect());
        let plan = mk_plan(&desired, &observed, &DrainLedger::new(), mk_ts(0));
        assert_eq!(
            batch_sizes(&plan.steps, StepAction::SetWeight),
            expected,
            "n = {n}"
        );
    }
}

#[test]
fn raises_and_drains_share_batches_raises_first() {
    // 30 raises and 15 drains: 45 weight changes fit in three calls.
    let desired = mk_desired((0..30).map(|i| mk_ecs(i + 100, 90, Active)).collect());
    let mut observed: Vec<_> = (0..30).map(|i| mk_owned(i + 100, 10)).collect();
    observed.extend((0..15).map(|i| mk_owned(i, 50)));
    let plan = mk_plan(
        &desired,
        &mk_observed(observed),
        &DrainLedger::new(),
        mk_ts(0),
    );
    assert_eq!(
        batch_sizes(&plan.steps, StepAction::SetWeight),
        vec![20, 20, 5]
    );
    let weights: Vec<u8> = plan
        .steps
        .iter()
        .flat_map(|s| s.backends.iter().map(|b| b.weight.get()))
        .collect();
    assert!(weights[..30].iter().all(|w| *w == 90));
    assert!(weights[30..].iter().all(|w| *w == 0));
}

#[test]
fn removals_are_batched_at_20_21_and_45() {
    for (n, expected) in [(20, vec![20]), (21, vec![20, 1]), (45, vec![20, 20, 5])] {
        let observed = mk_observed((0..n).map(|i| mk_owned(i, 0)).collect());
        let entries: Vec<(u32, i64)> = (0..n).map(|i| (i, -100)).collect();
        let plan = mk_plan(
            &mk_desired(vec![mk_ecs(999, 1, Active)]),
            &observed,
            &mk_ledger(&entries),
            mk_ts(0),
        );
        assert_eq!(
            batch_sizes(&plan.steps, StepAction::Remove),
            expected,
            "n = {n}"
        );
    }
}

#[test]
fn smaller_configured_batches_are_honoured() {
    let desired = mk_desired((0..7).map(|i| mk_ecs(i, 10, Active)).collect());
    let config = PlanConfig {
        drain_window: WINDOW,
        propagation: Duration::ZERO,
        max_batch: 3,
        emptying: false,
        drains_first: false,
    };
    let plan = plan_group(
        &desired,
        None,
        &DrainLedger::new(),
        &HashMap::new(),
        config,
        mk_ts(0),
    );
    assert_eq!(batch_sizes(&plan.steps, StepAction::Add), vec![3, 3, 1]);
}
