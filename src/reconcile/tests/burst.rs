//! Passes of one burst of pod changes: the group is read once (`last_read.rs`), and a
//! pass plans for what is wanted once its read returns, not when it started.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::reconcile::memory::MemorySlb;
use crate::slb::budget::Lane;

const READ: &str = "DescribeVServerGroupAttribute";

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

/// An ENI group where two old pods terminate while two new ones are listed.
fn eni_rollover(old_kept: bool) -> (Arc<MemorySlb>, GroupTarget) {
    let ip = |i: u32| -> std::net::IpAddr { format!("10.3.0.{i}").parse().unwrap() };
    let pod = |i: u32, state| Backend::eni(ip(i), 8080, Weight::new(100).unwrap(), state);
    let owner = mk_owner(80);
    let api = Arc::new(MemorySlb::default());
    let olds = if old_kept { 0..3 } else { 0..2 };
    api.put_group(mk_group(
        "lb-1",
        80,
        olds.clone()
            .map(|i| SlbBackend {
                server_id: format!("eni-{i}"),
                server_ip: Some(ip(i)),
                port: 8080,
                weight: Weight::new(100).unwrap(),
                backend_type: BackendType::Eni,
                description: owner.as_str().to_owned(),
            })
            .collect(),
    ));
    for i in 0..12 {
        api.add_eni(ip(i), &format!("eni-{i}"));
    }
    let mut backends = vec![
        pod(0, BackendState::Draining),
        pod(1, BackendState::Draining),
        pod(10, BackendState::Active),
        pod(11, BackendState::Active),
    ];
    if old_kept {
        backends.push(pod(2, BackendState::Active));
    }
    (api, mk_target("lb-1", 80, backends))
}

fn actions(api: &MemorySlb) -> Vec<&'static str> {
    api.calls().iter().map(|c| c.action).collect()
}

#[tokio::test(start_paused = true)]
async fn a_drain_pass_lowers_weights_before_it_looks_up_eni_ids_for_its_adds() {
    let (api, target) = eni_rollover(true);
    let exec = executor(&api);
    in_lane(Lane::Drain, exec.reconcile(&target)).await.unwrap();
    assert_eq!(
        actions(&api),
        [
            READ,
            "SetVServerGroupAttribute",
            "DescribeNetworkInterfaces",
            "AddVServerGroupBackendServers"
        ],
        "the drain is on the SLB before the lookup the adds need"
    );
    let group = api.group("rsp-80");
    let weight_of = |id: &str| {
        group
            .backends
            .iter()
            .find(|b| b.server_id == id)
            .map(|b| b.weight.get())
    };
    assert_eq!(weight_of("eni-0"), Some(0));
    assert_eq!(weight_of("eni-1"), Some(0));
    assert_eq!(weight_of("eni-10"), Some(100));
    assert_eq!(weight_of("eni-11"), Some(100));
}

#[tokio::test(start_paused = true)]
async fn a_drain_of_every_old_backend_still_waits_for_the_looked_up_adds() {
    let (api, target) = eni_rollover(false);
    let exec = executor(&api);
    in_lane(Lane::Drain, exec.reconcile(&target)).await.unwrap();
    assert_eq!(
        actions(&api),
        [
            READ,
            "DescribeNetworkInterfaces",
            "AddVServerGroupBackendServers",
            "SetVServerGroupAttribute"
        ],
        "make before break: nothing else serves, so the replacements go in first"
    );
}

/// A health source that learns listeners on first use and reports no health check.
#[derive(Default)]
struct Unlearned(std::sync::Mutex<Vec<String>>);

impl crate::reconcile::GroupHealthSource for Unlearned {
    fn group_health(&self, _: &str, _: &str, _: jiff::Timestamp) -> crate::model::GroupHealth {
        crate::model::GroupHealth::Unchecked
    }
    fn reading_asked_at(&self, _: &str) -> Option<jiff::Timestamp> {
        None
    }
    fn knows_listeners(&self, lb: &str) -> bool {
        self.0.lock().unwrap().iter().any(|l| l == lb)
    }
    fn learn_listeners(&self, lb: &str, _: Vec<crate::model::Listener>, _: jiff::Timestamp) {
        self.0.lock().unwrap().push(lb.to_owned());
    }
}

#[tokio::test(start_paused = true)]
async fn a_first_drain_plans_for_the_endpoints_that_arrived_while_it_read_the_listeners() {
    let owner = mk_owner(80);
    let api = Arc::new(MemorySlb::with_latency(Duration::from_millis(500)));
    api.put_group(mk_group(
        "lb-1",
        80,
        (1..=3).map(|n| mk_slb(n, 100, &owner)).collect(),
    ));
    let health = Arc::new(Unlearned::default());
    let exec = Arc::new(executor(&api).with_health(health.clone()));
    let draining = |n| {
        let mut b = mk_ecs(n, 100);
        b.state = BackendState::Draining;
        b
    };
    let wanted = Arc::new(std::sync::Mutex::new(mk_target(
        "lb-1",
        80,
        vec![draining(1), mk_ecs(2, 100), mk_ecs(3, 100)],
    )));
    let first = wanted.lock().unwrap().clone();
    let latest = {
        let wanted = wanted.clone();
        move || Some(wanted.lock().unwrap().clone())
    };
    let pass = tokio::spawn({
        let exec = exec.clone();
        in_lane(Lane::Drain, async move {
            exec.reconcile_latest(first, &latest).await
        })
    });
    // The group is read (0.5 s), then the instance's listeners (another 0.5 s); a second
    // pod of the Service terminates in between.
    tokio::time::sleep(Duration::from_millis(700)).await;
    *wanted.lock().unwrap() = mk_target("lb-1", 80, vec![draining(1), draining(2), mk_ecs(3, 100)]);
    let (result, _) = pass.await.unwrap();
    result.unwrap();
    assert_eq!(health.0.lock().unwrap().len(), 1, "the listeners were read");
    assert_eq!(
        weights(&api.group("rsp-80")),
        ws(&[("i-001", 0), ("i-002", 0), ("i-003", 100)]),
        "both drains in the pass"
    );
    assert_eq!(api.count("SetVServerGroupAttribute"), 1, "in one write");
}

#[tokio::test(start_paused = true)]
async fn first_drains_of_many_instances_read_their_listeners_ten_at_a_time() {
    first_drains_of_twelve_instances(false).await;
}

#[tokio::test(start_paused = true)]
async fn first_drains_that_plan_from_a_recent_read_still_share_their_listener_reads() {
    first_drains_of_twelve_instances(true).await;
}

/// Twelve instances, one group each, whose first drains start at once; with `read`, the
/// groups were read moments before, so the drains go to their listener reads at once.
async fn first_drains_of_twelve_instances(read: bool) {
    let api = Arc::new(MemorySlb::with_latency(Duration::from_millis(500)));
    let lbs: Vec<(String, u16)> = (1..=12).map(|n| (format!("lb-{n}"), 8000 + n)).collect();
    for (lb, port) in &lbs {
        let owner = mk_owner(*port);
        api.put_group(mk_group(
            lb,
            *port,
            (1..=2).map(|n| mk_slb(n, 100, &owner)).collect(),
        ));
    }
    let health = Arc::new(Unlearned::default());
    let exec = Arc::new(executor(&api).with_health(health.clone()));
    if read {
        for (lb, port) in &lbs {
            let target = mk_target(lb, *port, vec![mk_ecs(1, 100), mk_ecs(2, 100)]);
            in_lane(Lane::Pod, exec.reconcile(&target)).await.unwrap();
        }
    }
    let reads = api.count(READ);
    let mut draining = mk_ecs(1, 100);
    draining.state = BackendState::Draining;
    // A burst of deletions: the first drain of twelve instances at once.
    let passes: Vec<_> = lbs
        .iter()
        .map(|(lb, port)| {
            let target = mk_target(lb, *port, vec![draining.clone(), mk_ecs(2, 100)]);
            let exec = exec.clone();
            tokio::spawn(in_lane(Lane::Drain, async move {
                exec.reconcile(&target).await
            }))
        })
        .collect();
    for pass in passes {
        pass.await.unwrap().unwrap();
    }
    let mut learned = health.0.lock().unwrap().clone();
    learned.sort();
    learned.dedup();
    assert_eq!(learned.len(), 12, "every instance's listeners are known");
    assert_eq!(
        api.count("DescribeLoadBalancerListeners"),
        2,
        "ten instances per read, not one read each"
    );
    let reread = if read { 0 } else { 12 };
    assert_eq!(api.count(READ) - reads, reread);
    for (_, port) in &lbs {
        assert_eq!(
            weights(&api.group(&format!("rsp-{port}"))),
            ws(&[("i-001", 0), ("i-002", 100)]),
        );
    }
}
