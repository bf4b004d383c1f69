//! Passes of one burst of pod changes: the group is read once (`last_read.rs`), and a
//! pass plans for what is wanted once its read returns, not when it started.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::reconcile::memory::MemorySlb;
use crate::slb::budget::{Caller, Lane, CALLER};

const READ: &str = "DescribeVServerGroupAttribute";

fn in_lane<F: std::future::Future>(
    lane: Lane,
    pass: F,
) -> impl std::future::Future<Output = F::Output> {
    CALLER.scope(Caller::new(lane, "default/web".into()), pass)
}

fn executor(api: &Arc<MemorySlb>) -> crate::reconcile::Executor<MemorySlb> {
    let mut config = mk_config();
    config.reuse_read = Duration::from_secs(10);
    mk_executor(api, config)
}

#[tokio::test(start_paused = true)]
async fn pod_lane_passes_of_one_burst_read_the_group_once() {
    let owner = mk_owner(80);
    let api = Arc::new(MemorySlb::default());
    api.put_group(mk_group("lb-1", 80, vec![mk_slb(1, 100, &owner)]));
    let exec = executor(&api);

    // A new pod's backend is added, then another's, then the old one drains.
    let wants = [
        vec![mk_ecs(1, 100), mk_ecs(2, 100)],
        vec![mk_ecs(1, 100), mk_ecs(2, 100), mk_ecs(3, 100)],
        vec![mk_ecs(2, 100), mk_ecs(3, 100)],
    ];
    for desired in wants {
        let out = in_lane(Lane::Pod, exec.reconcile(&mk_target("lb-1", 80, desired)))
            .await
            .unwrap();
        assert_eq!(out.steps_applied, 1);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert_eq!(api.count(READ), 1, "one read for the three passes");
    assert_eq!(
        weights(&api.group("rsp-80")),
        ws(&[("i-001", 0), ("i-002", 100), ("i-003", 100)])
    );

    // Past the bound the group is read again; the change and bulk lanes always read.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let target = mk_target("lb-1", 80, vec![mk_ecs(2, 100), mk_ecs(3, 100)]);
    in_lane(Lane::Drain, exec.reconcile(&target)).await.unwrap();
    assert_eq!(api.count(READ), 2);
    in_lane(Lane::Change, exec.reconcile(&target))
        .await
        .unwrap();
    assert_eq!(api.count(READ), 3);
}

#[tokio::test(start_paused = true)]
async fn a_group_changed_behind_the_agents_back_is_read_again_when_a_write_fails() {
    let owner = mk_owner(80);
    let api = Arc::new(MemorySlb::default());
    api.put_group(mk_group("lb-1", 80, vec![mk_slb(1, 100, &owner)]));
    let exec = executor(&api);
    let both = mk_target("lb-1", 80, vec![mk_ecs(1, 100), mk_ecs(2, 100)]);
    in_lane(Lane::Pod, exec.reconcile(&both)).await.unwrap();

    // Someone empties the group from the console; the agent still remembers both.
    api.put_group(mk_group("lb-1", 80, vec![]));
    let drain_one = mk_target("lb-1", 80, vec![mk_ecs(2, 100)]);
    let out = in_lane(Lane::Drain, exec.reconcile(&drain_one))
        .await
        .unwrap();
    // Setting weight 0 on a backend that is gone fails; the pass reads and re-plans.
    assert_eq!(out.replans, 1);
    assert_eq!(api.count(READ), 2);
    assert_eq!(weights(&api.group("rsp-80")), ws(&[("i-002", 100)]));
}

#[tokio::test(start_paused = true)]
async fn a_pass_plans_for_the_changes_seen_while_its_read_waited() {
    let api = Arc::new(MemorySlb::with_latency(Duration::from_millis(500)));
    api.put_group(mk_group("lb-1", 80, vec![]));
    let exec = executor(&api);
    let wanted = Arc::new(std::sync::Mutex::new(mk_target(
        "lb-1",
        80,
        vec![mk_ecs(1, 100)],
    )));
    let first = wanted.lock().unwrap().clone();
    let latest = {
        let wanted = wanted.clone();
        move || Some(wanted.lock().unwrap().clone())
    };
    let pass = tokio::spawn({
        let exec = Arc::new(exec);
        async move { exec.reconcile_latest(first, &latest).await }
    });
    // Two more pods are listed while the pass waits for its read.
    tokio::time::sleep(Duration::from_millis(200)).await;
    *wanted.lock().unwrap() = mk_target(
        "lb-1",
        80,
        vec![mk_ecs(1, 100), mk_ecs(2, 100), mk_ecs(3, 100)],
    );
    let (result, planned) = pass.await.unwrap();
    assert_eq!(result.unwrap().steps_applied, 1, "one add for all three");
    assert_eq!(planned.desired.backends.len(), 3);
    assert_eq!(
        weights(&api.group("rsp-80")),
        ws(&[("i-001", 100), ("i-002", 100), ("i-003", 100)])
    );
    assert_eq!(api.count(READ), 1);

    // A target for another group (the Service moved to another instance) is not taken.
    let other = mk_target("lb-2", 80, vec![]);
    let (_, planned) = Arc::new(executor(&api))
        .reconcile_latest(mk_target("lb-1", 80, vec![mk_ecs(1, 100)]), &move || {
            Some(other.clone())
        })
        .await;
    assert_eq!(planned.load_balancer_id, "lb-1");
}
