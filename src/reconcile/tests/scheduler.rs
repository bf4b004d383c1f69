//! Coalescing and wake-ups of the scheduler, in virtual time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::model::ServiceRef;
use crate::reconcile::memory::{Fault, MemorySlb};
use crate::reconcile::{spawn, GroupRef, SchedulerConfig, TargetSource};
use crate::slb::ErrorClass;

const DESCRIBE: &str = "DescribeVServerGroupAttribute";

#[derive(Default)]
struct Targets(Mutex<HashMap<GroupRef, GroupTarget>>);

impl Targets {
    fn set(&self, group: &GroupRef, target: GroupTarget) {
        self.0.lock().unwrap().insert(group.clone(), target);
    }
}

impl TargetSource for Targets {
    fn target(&self, group: &GroupRef) -> Option<GroupTarget> {
        self.0.lock().unwrap().get(group).cloned()
    }
}

fn web(port: u16) -> GroupRef {
    GroupRef::new(ServiceRef::new("default", "web"), port)
}

struct Rig {
    api: Arc<MemorySlb>,
    targets: Arc<Targets>,
    handle: crate::reconcile::SchedulerHandle,
    task: tokio::task::JoinHandle<()>,
}

fn mk_rig(latency: Duration, backends: Vec<SlbBackend>, desired: Vec<Backend>) -> Rig {
    let api = Arc::new(MemorySlb::with_latency(latency));
    api.put_group(mk_group("lb-1", 80, backends));
    let targets = Arc::new(Targets::default());
    targets.set(&web(80), mk_target("lb-1", 80, desired));
    let executor = Arc::new(mk_executor(&api, mk_config()));
    let (handle, task) = spawn(executor, targets.clone(), SchedulerConfig::default());
    Rig {
        api,
        targets,
        handle,
        task,
    }
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_triggers_costs_one_plan() {
    let rig = mk_rig(Duration::from_millis(50), vec![], vec![mk_ecs(1, 10)]);
    for _ in 0..100 {
        rig.handle.trigger(web(80));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(rig.api.count(DESCRIBE), 1);
    assert_eq!(rig.handle.stats().passes(), 1);
    assert_eq!(rig.handle.stats().coalesced(), 99);
    assert_eq!(weights(&rig.api.group("rsp-80")), ws(&[("i-001", 10)]));
}

#[tokio::test(start_paused = true)]
async fn changes_during_a_pass_read_join_it_and_cost_one_more_pass_at_most() {
    let rig = mk_rig(Duration::from_secs(1), vec![], vec![mk_ecs(1, 10)]);
    rig.handle.trigger(web(80));
    tokio::time::sleep(Duration::from_millis(500)).await; // the first pass is reading
    for n in 2..=50 {
        let desired: Vec<Backend> = (1..=n).map(|i| mk_ecs(i, 10)).collect();
        rig.targets.set(&web(80), mk_target("lb-1", 80, desired));
        rig.handle.trigger(web(80));
    }
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(rig.handle.stats().passes(), 2);
    assert_eq!(rig.api.count(DESCRIBE), 2);
    assert_eq!(rig.api.group("rsp-80").backends.len(), 50);
    // The first pass plans once its read returns: all 50 in 3 calls (batches of 20);
    // the second, for the triggers that came during the first, finds nothing to do.
    assert_eq!(rig.api.count("AddVServerGroupBackendServers"), 3);
}

#[tokio::test(start_paused = true)]
async fn drains_finish_at_their_deadline_without_further_triggers() {
    let owner = mk_owner(80);
    let rig = mk_rig(
        Duration::ZERO,
        vec![mk_slb(1, 50, &owner), mk_slb(2, 50, &owner)],
        vec![mk_ecs(2, 50)],
    );
    rig.handle.trigger(web(80));
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert_eq!(
        weights(&rig.api.group("rsp-80")),
        ws(&[("i-001", 0), ("i-002", 50)])
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(weights(&rig.api.group("rsp-80")), ws(&[("i-002", 50)]));
    assert_eq!(rig.handle.stats().passes(), 2);
}

#[tokio::test(start_paused = true)]
async fn failed_groups_are_retried_later_with_growing_delays() {
    let rig = mk_rig(Duration::ZERO, vec![], vec![mk_ecs(1, 10)]);
    rig.api
        .inject(DESCRIBE, Fault::Fail(ErrorClass::Permanent), 3);
    rig.handle.trigger(web(80));
    // Delays 5 s, 10 s, 20 s: the fourth pass, after 35 s, succeeds.
    tokio::time::sleep(Duration::from_secs(34)).await;
    assert_eq!(rig.handle.stats().passes(), 3);
    assert!(rig.api.group("rsp-80").backends.is_empty());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rig.handle.stats().passes(), 4);
    assert_eq!(rig.handle.stats().failures(), 3);
    assert_eq!(weights(&rig.api.group("rsp-80")), ws(&[("i-001", 10)]));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_handle_stops_the_scheduler() {
    let rig = mk_rig(Duration::from_secs(1), vec![], vec![mk_ecs(1, 10)]);
    rig.handle.trigger(web(80));
    drop(rig.handle);
    tokio::time::timeout(Duration::from_secs(10), rig.task)
        .await
        .expect("scheduler stops")
        .unwrap();
    assert_eq!(
        rig.api.count("AddVServerGroupBackendServers"),
        1,
        "the running pass finished"
    );
}

/// A rolling replacement of 50 ENI backends, 10 pods at a time: new pods become desired
/// active, old ones draining, then gone. With 30 % of calls throttled, busy or losing
/// their answer, the group converges, always keeps a weighted backend, and never sees an
/// add of a member it already has.
#[tokio::test(start_paused = true)]
async fn rolling_replacement_keeps_capacity_under_faults() {
    let ip =
        |i: u32| -> std::net::IpAddr { format!("10.2.{}.{}", i / 256, i % 256).parse().unwrap() };
    let pod =
        |i: u32, state: BackendState| Backend::eni(ip(i), 8080, Weight::new(100).unwrap(), state);
    let owner = mk_owner(80);
    let old: Vec<SlbBackend> = (0..50)
        .map(|i| SlbBackend {
            server_id: format!("eni-{i}"),
            server_ip: Some(ip(i)),
            port: 8080,
            weight: Weight::new(100).unwrap(),
            backend_type: BackendType::Eni,
            description: owner.as_str().to_owned(),
        })
        .collect();
    let rig = mk_rig(
        Duration::from_millis(50),
        old,
        (0..50).map(|i| pod(i, BackendState::Active)).collect(),
    );
    for i in 0..100 {
        rig.api.add_eni(ip(i), &format!("eni-{i}"));
    }
    rig.api.random_faults(300, 0x5eed);

    let desired_at = |wave: u32, old_draining: bool| {
        let mut backends = Vec::new();
        for i in 0..50 {
            let replaced = i / 10 < wave;
            let in_wave = i / 10 == wave - 1;
            if !replaced {
                backends.push(pod(i, BackendState::Active));
            } else if in_wave && old_draining {
                backends.push(pod(i, BackendState::Draining));
            }
            if replaced {
                backends.push(pod(50 + i, BackendState::Active));
            }
        }
        mk_target("lb-1", 80, backends)
    };
    for wave in 1..=5 {
        // Surge: 10 new pods, the 10 old ones terminating (draining) …
        rig.targets.set(&web(80), desired_at(wave, true));
        rig.handle.trigger(web(80));
        tokio::time::sleep(Duration::from_secs(45)).await;
        // … and once drained and removed, the old pods are gone.
        rig.targets.set(&web(80), desired_at(wave, false));
        rig.handle.trigger(web(80));
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    tokio::time::sleep(Duration::from_secs(300)).await;

    let group = rig.api.group("rsp-80");
    let mut ips: Vec<_> = group
        .backends
        .iter()
        .map(|b| (b.server_ip.unwrap(), b.weight.get()))
        .collect();
    ips.sort();
    let want: Vec<_> = (50..100).map(|i| (ip(i), 100)).collect();
    assert_eq!(ips, want);
    assert!(
        rig.api.min_weighted("rsp-80").unwrap() >= 50,
        "{:?}",
        rig.api.min_weighted("rsp-80")
    );
    assert_eq!(rig.api.duplicate_adds(), 0);
    let played = rig.api.random_faults_played();
    assert!(
        played >= 10,
        "{played} faults in {} calls",
        rig.api.calls().len()
    );
}

#[tokio::test(start_paused = true)]
async fn metrics_count_steps_backends_drains_coalescing_and_latency() {
    let registry = prometheus::Registry::new();
    let metrics = crate::reconcile::ReconcileMetrics::register(&registry).unwrap();
    let owner = mk_owner(80);
    let api = Arc::new(MemorySlb::with_latency(Duration::from_millis(10)));
    api.put_group(mk_group(
        "lb-1",
        80,
        vec![
            mk_slb(1, 50, &owner),
            SlbBackend {
                description: "user".into(),
                ..mk_slb(9, 50, &owner)
            },
        ],
    ));
    let targets = Arc::new(Targets::default());
    targets.set(
        &web(80),
        mk_target("lb-1", 80, vec![mk_ecs(2, 50), mk_ecs(3, 50)]),
    );
    let executor = Arc::new(mk_executor(&api, mk_config()).with_metrics(metrics.clone()));
    let (handle, _task) = spawn(executor, targets.clone(), SchedulerConfig::default());

    tokio::time::sleep(Duration::from_secs(1)).await;
    for _ in 0..5 {
        handle.trigger(web(80));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let step =
        |action: &str, result: &str| metrics.steps.with_label_values(&[action, result]).get();
    assert_eq!(
        (
            step("add", "ok"),
            step("setWeight", "ok"),
            step("remove", "ok")
        ),
        (1, 1, 0)
    );
    let gauge = |state: &str| metrics.backends.with_label_values(&[state]).get();
    assert_eq!(
        (gauge("active"), gauge("draining")),
        (2, 1),
        "foreign i-009 not counted"
    );
    assert_eq!(metrics.coalesced.get(), 4);
    assert_eq!(metrics.change_to_first_call.get_sample_count(), 1);
    assert!(
        metrics.change_to_first_call.get_sample_sum() < 0.001,
        "first call right away"
    );

    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(step("remove", "ok"), 1);
    assert_eq!((gauge("active"), gauge("draining")), (2, 0));
    assert_eq!(metrics.drain_duration.get_sample_count(), 1);
    let drained = metrics.drain_duration.get_sample_sum();
    assert!((30.0..31.0).contains(&drained), "{drained}");
    // Only the triggered pass measured change latency; the deadline wake-up did not.
    assert_eq!(metrics.change_to_first_call.get_sample_count(), 1);
    assert_eq!(metrics.passes.with_label_values(&["ok"]).get(), 2);
    let names: Vec<String> = registry
        .gather()
        .iter()
        .map(|f| f.name().to_owned())
        .collect();
    assert!(
        names.iter().all(|n| n.starts_with("slb_sync_")),
        "{names:?}"
    );
}
