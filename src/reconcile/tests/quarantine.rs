//! A backend the SLB refuses is isolated and held out; every other change of the pass
//! proceeds, and the held backend is tried again on its own schedule.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::model::BackendState;
use crate::reconcile::memory::MemorySlb;
use crate::slb::budget::Lane;

const ADD: &str = "AddVServerGroupBackendServers";
const SET: &str = "SetVServerGroupAttribute";

fn draining(n: u32) -> Backend {
    Backend {
        state: BackendState::Draining,
        ..mk_ecs(n, 100)
    }
}

#[tokio::test(start_paused = true)]
async fn an_unknown_instance_is_held_out_and_the_rest_of_the_pass_proceeds() {
    let owner = mk_owner(80);
    let api = Arc::new(MemorySlb::default());
    // Node 1 serves, node 2 is tainted for removal, nodes 3..=12 are new, node 7's ECS
    // instance was released while its Node lingers.
    api.put_group(mk_group(
        "lb-1",
        80,
        vec![mk_slb(1, 100, &owner), mk_slb(2, 100, &owner)],
    ));
    api.forget_server("i-007");
    let exec = mk_executor(&api, mk_config());
    let mut desired = vec![mk_ecs(1, 100), draining(2)];
    desired.extend((3..=12).map(|n| mk_ecs(n, 100)));
    let target = mk_target("lb-1", 80, desired);

    let out = in_lane(Lane::Pod, exec.reconcile(&target)).await.unwrap();
    let mut expected: Vec<(&str, u8)> = vec![("i-001", 100), ("i-002", 0)];
    let names: Vec<String> = (3..=12)
        .filter(|n| *n != 7)
        .map(|n| format!("i-{n:03}"))
        .collect();
    expected.extend(names.iter().map(|n| (n.as_str(), 100)));
    assert_eq!(weights(&api.group("rsp-80")), ws(&expected));
    assert_eq!(out.quarantined.len(), 1);
    assert_eq!(out.quarantined[0].backend.server_id, "i-007");
    assert_eq!(
        out.quarantined[0].held.refusal.code,
        "InvalidServerId.NotExist"
    );
    assert_eq!(out.replans, 0, "no re-read: the pass went on");
    // The error named the instance: the rest went in one call, then i-007 alone.
    assert_eq!(api.count(ADD), 3, "{:?}", api.calls());
    assert_eq!(api.count(SET), 1);
    // The group is looked at again when the hold ends, whatever else happens.
    assert_eq!(out.requeue_at, Some(mk_t0() + Duration::from_secs(30)));

    // Before the hold ends the instance is not tried again.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let out = in_lane(Lane::Pod, exec.reconcile(&target)).await.unwrap();
    assert!(out.quarantined.is_empty());
    assert_eq!(api.count(ADD), 3);

    // After it, it is tried once and held twice as long.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let out = in_lane(Lane::Pod, exec.reconcile(&target)).await.unwrap();
    assert_eq!(api.count(ADD), 4);
    assert_eq!(out.quarantined.len(), 1);
    assert_eq!(out.quarantined[0].held.strikes, 2);
    assert_eq!(
        out.quarantined[0].held.until,
        mk_t0() + Duration::from_secs(90)
    );
}

#[tokio::test(start_paused = true)]
async fn refusals_are_isolated_by_name_or_else_by_halving() {
    for naming in [true, false] {
        let api = Arc::new(MemorySlb::default());
        api.put_group(mk_group("lb-1", 80, vec![]));
        api.forget_server("i-004");
        api.forget_server("i-006");
        api.name_unknown_servers(naming);
        let exec = mk_executor(&api, mk_config());
        let target = mk_target("lb-1", 80, (1..=8).map(|n| mk_ecs(n, 100)).collect());
        let out = exec.reconcile(&target).await.unwrap();
        let mut held: Vec<&str> = out
            .quarantined
            .iter()
            .map(|q| q.backend.server_id.as_str())
            .collect();
        held.sort();
        assert_eq!(held, vec!["i-004", "i-006"], "naming: {naming}");
        assert_eq!(api.group("rsp-80").backends.len(), 6, "naming: {naming}");
        // By name: all, all but 4, all but 4 and 6, 6, 4. By halves: 1-8, 1-4, 1-2,
        // 3-4, 3, 4, 5-8, 5-6, 5, 6, 7-8.
        let calls = if naming { 5 } else { 11 };
        assert_eq!(api.count(ADD), calls, "naming: {naming}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_held_replacement_never_leaves_the_group_without_weight() {
    let owner = mk_owner(80);
    let api = Arc::new(MemorySlb::default());
    api.put_group(mk_group("lb-1", 80, vec![mk_slb(2, 100, &owner)]));
    api.forget_server("i-009");
    let exec = mk_executor(&api, mk_config());
    let target = mk_target("lb-1", 80, vec![draining(2), mk_ecs(9, 100)]);
    let out = exec.reconcile(&target).await.unwrap();
    assert_eq!(out.quarantined.len(), 1);
    assert_eq!(weights(&api.group("rsp-80")), ws(&[("i-002", 100)]));
    assert_eq!(api.count(SET), 0, "node 2 keeps serving");
    assert_eq!(api.min_weighted("rsp-80"), None, "no write at all");
}

#[tokio::test(start_paused = true)]
async fn a_failure_that_is_not_about_a_backend_still_ends_the_pass() {
    let api = Arc::new(MemorySlb::default());
    api.put_group(mk_group("lb-1", 80, vec![]));
    api.inject(
        ADD,
        crate::reconcile::memory::Fault::Fail(crate::slb::ErrorClass::Permanent),
        10,
    );
    let mut config = mk_config();
    config.max_replans = 1;
    let exec = mk_executor(&api, config);
    let target = mk_target("lb-1", 80, (1..=4).map(|n| mk_ecs(n, 100)).collect());
    let err = exec.reconcile(&target).await.unwrap_err();
    assert_eq!(err.source.code, "Injected");
    assert_eq!(api.count(ADD), 2, "one call per pass attempt, no bisection");
}
