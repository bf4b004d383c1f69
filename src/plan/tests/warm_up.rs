//! A node backend rises above weight 0 only the kube-proxy allowance after the agent
//! first wanted it to; ENI backends and nodes already carried are never held.

use super::*;
use crate::model::BackendState::Active;
use crate::plan::WarmUp;

const ALLOWANCE: Duration = Duration::from_secs(5);

fn weights(d: &DesiredGroup) -> Vec<u8> {
    d.backends.iter().map(|b| b.weight.get()).collect()
}

#[test]
fn a_node_wanted_above_zero_is_held_at_zero_for_the_allowance_then_raised() {
    let mut warm = WarmUp::default();
    // Node 2 is present at weight 0 (its pod was not Ready); now its endpoint is ready.
    let desired = mk_desired(vec![mk_ecs(1, 100, Active), mk_ecs(2, 100, Active)]);
    let members = vec![mk_owned(1, 100), mk_owned(2, 0)];
    let (held, next) = warm.hold(GROUP, &desired, &members, ALLOWANCE, mk_ts(10));
    assert_eq!(weights(&held), vec![100, 0]);
    assert_eq!(next, Some(mk_ts(15)));
    let plan = mk_plan(
        &held,
        &mk_observed(members.clone()),
        &DrainLedger::new(),
        mk_ts(10),
    );
    assert!(
        plan.steps.is_empty(),
        "nothing to write yet: {:?}",
        plan.steps
    );

    // Asked again before the end: the allowance still counts from the first want.
    let (held, next) = warm.hold(GROUP, &desired, &members, ALLOWANCE, mk_ts(14));
    assert_eq!((weights(&held), next), (vec![100, 0], Some(mk_ts(15))));
    let (held, next) = warm.hold(GROUP, &desired, &members, ALLOWANCE, mk_ts(15));
    assert_eq!((weights(&held), next), (vec![100, 100], None));
    let plan = mk_plan(&held, &mk_observed(members), &DrainLedger::new(), mk_ts(15));
    assert_eq!(
        summary(&plan.steps),
        vec![(StepAction::SetWeight, ids(&[("i-002", 100)]))]
    );
}

#[test]
fn a_new_node_is_added_at_zero_and_a_carried_node_or_an_eni_backend_is_never_held() {
    let mut warm = WarmUp::default();
    let desired = mk_desired(vec![
        mk_ecs(1, 100, Active),
        mk_ecs(3, 100, Active),
        mk_eni(7, 100, Active),
    ]);
    let members = vec![mk_owned(1, 100)];
    let (held, next) = warm.hold(GROUP, &desired, &members, ALLOWANCE, mk_ts(0));
    assert_eq!(weights(&held), vec![100, 0, 100]);
    assert_eq!(next, Some(mk_ts(5)));
    let plan = mk_plan(&held, &mk_observed(members), &DrainLedger::new(), mk_ts(0));
    let adds: Vec<_> = plan
        .steps
        .iter()
        .filter(|s| s.action == StepAction::Add)
        .collect();
    assert!(adds
        .iter()
        .flat_map(|s| &s.backends)
        .all(|b| b.server_id != "i-003" || b.weight == Weight::ZERO));
}

#[test]
fn a_want_that_goes_away_starts_over_and_no_allowance_holds_nothing() {
    let mut warm = WarmUp::default();
    let up = mk_desired(vec![mk_ecs(2, 100, Active)]);
    let down = mk_desired(vec![mk_ecs(2, 0, Active)]);
    let members = vec![mk_owned(2, 0)];
    warm.hold(GROUP, &up, &members, ALLOWANCE, mk_ts(0));
    // The endpoint went not-ready again: the want is forgotten ...
    warm.hold(GROUP, &down, &members, ALLOWANCE, mk_ts(3));
    // ... so a new want at t=4 waits its own full allowance.
    let (_, next) = warm.hold(GROUP, &up, &members, ALLOWANCE, mk_ts(4));
    assert_eq!(next, Some(mk_ts(9)));
    let (held, next) = WarmUp::default().hold(GROUP, &up, &members, Duration::ZERO, mk_ts(0));
    assert_eq!((weights(&held), next), (vec![100], None));
}
