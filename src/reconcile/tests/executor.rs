//! Executor behaviour: order, drains in virtual time, retries, serialisation, limits.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::reconcile::memory::{Fault, MemorySlb};
use crate::slb::budget::{Caller, Lane, CALLER};
use crate::slb::ErrorClass;

const ADD: &str = "AddVServerGroupBackendServers";
const SET: &str = "SetVServerGroupAttribute";
const REMOVE: &str = "RemoveVServerGroupBackendServers";

fn seconds(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[tokio::test(start_paused = true)]
async fn adds_then_drains_then_removes_after_the_window() {
    let owner = mk_owner(80);
    let api = Arc::new(MemorySlb::default());
    api.put_group(mk_group("lb-1", 80, vec![mk_slb(1, 50, &owner)]));
    let exec = mk_executor(&api, mk_config());
    let target = mk_target("lb-1", 80, vec![mk_ecs(2, 50)]);

    let out = in_lane(Lane::Pod, exec.reconcile(&target)).await.unwrap();
    assert_eq!(out.steps_applied, 2);
    assert_eq!(
        weights(&api.group("rsp-80")),
        ws(&[("i-001", 0), ("i-002", 50)])
    );
    let writes: Vec<_> = api
        .calls()
        .iter()
        .map(|c| c.action)
        .filter(|a| *a != "DescribeVServerGroupAttribute")
        .collect();
    assert_eq!(writes, vec![ADD, SET], "make before break");
    assert_eq!(out.requeue_at, Some(mk_t0() + seconds(30)));

    tokio::time::sleep(seconds(29)).await;
    let out = exec.reconcile(&target).await.unwrap();
    assert_eq!(out.steps_applied, 0, "no removal before the window elapsed");
    assert_eq!(api.count(REMOVE), 0);

    tokio::time::sleep(seconds(1)).await;
    let out = exec.reconcile(&target).await.unwrap();
    assert_eq!(out.steps_applied, 1);
    assert_eq!(weights(&api.group("rsp-80")), ws(&[("i-002", 50)]));
    assert_eq!(out.requeue_at, None);
    assert!(exec.ledger().is_empty());
}

#[tokio::test(start_paused = true)]
async fn throttling_retries_wait_longer_than_busy_retries() {
    async fn time_with(class: ErrorClass) -> (Duration, usize) {
        let api = Arc::new(MemorySlb::default());
        api.put_group(mk_group("lb-1", 80, vec![mk_slb(1, 10, &mk_owner(80))]));
        api.inject(SET, Fault::Fail(class), 2);
        let exec = mk_executor(&api, mk_config());
        let start = Instant::now();
        let out = exec
            .reconcile(&mk_target("lb-1", 80, vec![mk_ecs(1, 90)]))
            .await
            .unwrap();
        assert_eq!(out.replans, 0, "retried in place, not re-planned");
        (start.elapsed(), api.count(SET))
    }
    // Backoff 0.5 s then 1 s, each plus up to 100 % jitter; throttling ×4.
    let (busy, busy_calls) = time_with(ErrorClass::Busy).await;
    let (throttled, throttled_calls) = time_with(ErrorClass::Throttling).await;
    assert_eq!((busy_calls, throttled_calls), (3, 3));
    assert!(
        busy >= Duration::from_millis(1500) && busy < seconds(3),
        "{busy:?}"
    );
    assert!(
        throttled >= seconds(6) && throttled < seconds(12),
        "{throttled:?}"
    );
}

/// A pass a pod waits on retries a throttled call as soon as any other retryable error:
/// its calls are paced by the agent's own budget, and the bulk lanes' longer back-off
/// is what leaves it the quota.
#[tokio::test(start_paused = true)]
async fn throttled_calls_of_a_pass_a_pod_waits_on_are_not_held_longer() {
    async fn time_in(lane: Lane) -> Duration {
        let api = Arc::new(MemorySlb::default());
        api.put_group(mk_group("lb-1", 80, vec![mk_slb(1, 10, &mk_owner(80))]));
        api.inject(SET, Fault::Fail(ErrorClass::Throttling), 2);
        let exec = mk_executor(&api, mk_config());
        let start = Instant::now();
        let caller = Caller::new(lane, "shop/web".into());
        CALLER
            .scope(
                caller,
                exec.reconcile(&mk_target("lb-1", 80, vec![mk_ecs(1, 90)])),
            )
            .await
            .unwrap();
        assert_eq!(api.count(SET), 3);
        start.elapsed()
    }
    // Backoff 0.5 s then 1 s, each plus up to 100 % jitter; ×4 in the bulk lane only.
    for lane in [Lane::Drain, Lane::Pod] {
        let took = time_in(lane).await;
        assert!(
            took >= Duration::from_millis(1500) && took < seconds(3),
            "{lane:?} {took:?}"
        );
    }
    let bulk = time_in(Lane::Bulk).await;
    assert!(bulk >= seconds(6), "{bulk:?}");
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_not_retried_and_block_removal() {
    let owner = mk_owner(80);
    let api = Arc::new(MemorySlb::default());
    api.put_group(mk_group("lb-1", 80, vec![mk_slb(1, 0, &owner)]));
    let exec = mk_executor(&api, mk_config());
    let target = mk_target("lb-1", 80, vec![mk_ecs(2, 50)]);
    // First pass starts i-001's window (it is at 0 without a ledger entry) and adds i-002.
    api.inject(ADD, Fault::Fail(ErrorClass::Permanent), 100);
    tokio::time::sleep(seconds(0)).await;
    let err = exec.reconcile(&target).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent);
    tokio::time::sleep(seconds(60)).await;
    let adds_before = api.count(ADD);
    let err = exec.reconcile(&target).await.unwrap_err();
    assert_eq!(err.replans, 3);
    // One add per plan, never retried in place; and the elapsed removal never ran.
    assert_eq!(api.count(ADD) - adds_before, 4);
    assert_eq!(api.count(REMOVE), 0);
    assert!(
        err.to_string().contains("AddVServerGroupBackendServers"),
        "{err}"
    );

    // Once the add goes through, the removal follows in the same pass.
    let api2 = Arc::new(MemorySlb::default());
    api2.put_group(api.group("rsp-80"));
    let exec2 = Executor::new(api2.clone(), exec.clock().clone(), mk_config());
    exec2.restore_ledger(exec.ledger());
    let out = exec2.reconcile(&target).await.unwrap();
    assert_eq!(out.steps_applied, 2);
    assert_eq!(weights(&api2.group("rsp-80")), ws(&[("i-002", 50)]));
}

#[tokio::test(start_paused = true)]
async fn a_lost_add_answer_is_re_read_not_re_added() {
    let api = Arc::new(MemorySlb::default());
    api.put_group(mk_group("lb-1", 80, vec![]));
    api.inject(ADD, Fault::FailAfterApply(ErrorClass::Unavailable), 1);
    let exec = mk_executor(&api, mk_config());
    let out = exec
        .reconcile(&mk_target("lb-1", 80, vec![mk_ecs(1, 100)]))
        .await
        .unwrap();
    assert_eq!(out.replans, 1);
    assert_eq!(api.count(ADD), 1, "no duplicate add");
    assert_eq!(api.count("DescribeVServerGroupAttribute"), 2);
    assert_eq!(weights(&api.group("rsp-80")), ws(&[("i-001", 100)]));
}

#[tokio::test(start_paused = true)]
async fn one_mutation_in_flight_per_instance() {
    let api = Arc::new(MemorySlb::with_latency(Duration::from_millis(100)));
    let mut config = mk_config();
    config.max_batch = 1;
    for (lb, port) in [("lb-1", 80), ("lb-1", 81), ("lb-2", 82), ("lb-2", 83)] {
        api.put_group(mk_group(lb, port, vec![]));
    }
    let exec = mk_executor(&api, config);
    let targets: Vec<_> = [("lb-1", 80), ("lb-1", 81), ("lb-2", 82), ("lb-2", 83)]
        .into_iter()
        .map(|(lb, port)| mk_target(lb, port, (0..5).map(|i| mk_ecs(i, 10)).collect()))
        .collect();
    let start = Instant::now();
    let results = futures::future::join_all(targets.iter().map(|t| exec.reconcile(t))).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(api.count(ADD), 20);
    assert_eq!(api.max_in_flight("lb-1"), 1);
    assert_eq!(api.max_in_flight("lb-2"), 1);
    assert_eq!(
        api.max_total_in_flight(),
        2,
        "different instances proceed in parallel"
    );
    // 10 serial adds per instance at 100 ms each, plus the reads.
    assert!(start.elapsed() >= seconds(1) && start.elapsed() < Duration::from_millis(1300));
}

#[tokio::test(start_paused = true)]
async fn calls_respect_the_token_bucket() {
    let api = Arc::new(MemorySlb::default());
    api.put_group(mk_group("lb-1", 80, vec![]));
    let mut config = mk_config();
    config.limits.qps = 2.0;
    config.limits.burst = std::num::NonZeroU32::new(1).unwrap();
    config.max_batch = 1;
    let exec = mk_executor(&api, config);
    exec.reconcile(&mk_target(
        "lb-1",
        80,
        (0..6).map(|i| mk_ecs(i, 10)).collect(),
    ))
    .await
    .unwrap();
    let calls = api.calls();
    assert_eq!(calls.len(), 7, "one read, six adds");
    for pair in calls.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(499),
            "calls {gap:?} apart at 2 QPS"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn hung_calls_time_out_and_fail_the_pass() {
    let api = Arc::new(MemorySlb::with_latency(seconds(3600)));
    api.put_group(mk_group("lb-1", 80, vec![]));
    let mut config = mk_config();
    config.max_replans = 0;
    let exec = mk_executor(&api, config);
    let start = Instant::now();
    let err = exec
        .reconcile(&mk_target("lb-1", 80, vec![mk_ecs(1, 10)]))
        .await
        .unwrap_err();
    assert_eq!(err.source.code, "Timeout");
    assert_eq!(
        api.count("DescribeVServerGroupAttribute"),
        5,
        "first try and 4 retries"
    );
    assert!(start.elapsed() < seconds(120), "{:?}", start.elapsed());
}

/// A window that ends just after a pass planned is due at its end; one that had ended
/// and was held back is looked at again a second later.
#[tokio::test(start_paused = true)]
async fn a_window_ending_just_after_a_pass_is_due_at_its_end() {
    let api = Arc::new(MemorySlb::default());
    api.put_group(mk_group("lb-1", 80, vec![mk_slb(1, 10, &mk_owner(80))]));
    let mut config = mk_config();
    config.slb_propagation = Duration::ZERO;
    let exec = mk_executor(&api, config);
    let target = mk_target("lb-1", 80, vec![mk_ecs(2, 50)]);
    exec.reconcile(&target).await.unwrap();
    let started = exec.clock().now();
    assert_eq!(
        weights(&api.group("rsp-80")),
        ws(&[("i-001", 0), ("i-002", 50)])
    );

    tokio::time::sleep(WINDOW - Duration::from_millis(300)).await;
    let out = exec.reconcile(&target).await.unwrap();
    assert_eq!(
        out.requeue_at,
        Some(started + WINDOW),
        "not a second after the pass"
    );
}

#[tokio::test(start_paused = true)]
async fn restart_mid_drain_restarts_the_window_in_full() {
    let owner = mk_owner(80);
    let api = Arc::new(MemorySlb::default());
    api.put_group(mk_group(
        "lb-1",
        80,
        vec![mk_slb(1, 50, &owner), mk_slb(2, 50, &owner)],
    ));
    let target = mk_target("lb-1", 80, vec![mk_ecs(2, 50)]);
    {
        let exec = mk_executor(&api, mk_config());
        exec.reconcile(&target).await.unwrap();
        assert_eq!(
            weights(&api.group("rsp-80")),
            ws(&[("i-001", 0), ("i-002", 50)])
        );
    } // the agent stops; its in-memory ledger is gone

    tokio::time::sleep(seconds(20)).await;
    let exec = mk_executor(&api, mk_config());
    let out = exec.reconcile(&target).await.unwrap();
    assert_eq!(out.steps_applied, 0);
    let restarted_at = exec.clock().now();
    assert_eq!(out.requeue_at, Some(restarted_at + WINDOW));

    tokio::time::sleep(seconds(29)).await;
    exec.reconcile(&target).await.unwrap();
    assert_eq!(
        api.count(REMOVE),
        0,
        "49 s after weight 0 but only 29 s since the restart"
    );

    tokio::time::sleep(seconds(1)).await;
    exec.reconcile(&target).await.unwrap();
    assert_eq!(weights(&api.group("rsp-80")), ws(&[("i-002", 50)]));
}

#[tokio::test(start_paused = true)]
async fn eni_ids_are_resolved_in_batches_of_100_and_cached() {
    let api = Arc::new(MemorySlb::default());
    api.put_group(mk_group("lb-1", 80, vec![]));
    let ip = |i: u32| -> IpAddr { format!("10.1.{}.{}", i / 256, i % 256).parse().unwrap() };
    for i in 0..250 {
        api.add_eni(ip(i), &format!("eni-{i}"));
    }
    let mut backends: Vec<Backend> = (0..251)
        .map(|i| Backend::eni(ip(i), 8080, Weight::new(100).unwrap(), BackendState::Active))
        .collect();
    backends.sort_by_key(|b| b.key());
    let exec = mk_executor(&api, mk_config());
    let target = mk_target("lb-1", 80, backends);
    let out = in_lane(Lane::Pod, exec.reconcile(&target)).await.unwrap();
    assert_eq!(api.count("DescribeNetworkInterfaces"), 3);
    assert_eq!(api.count(ADD), 13, "250 backends in batches of 20");
    let add_sizes: Vec<usize> = api
        .calls()
        .iter()
        .filter(|c| c.action == ADD)
        .map(|c| c.backends)
        .collect();
    assert!(
        add_sizes[..12].iter().all(|n| *n == 20) && add_sizes[12] == 10,
        "{add_sizes:?}"
    );
    assert_eq!(out.unresolved_eni_ips, vec![ip(250)]);
    assert_eq!(
        out.requeue_at,
        Some(mk_t0() + seconds(10)),
        "look again for the missing ENI"
    );
    let group = api.group("rsp-80");
    assert!(group
        .backends
        .iter()
        .all(|b| b.server_id.starts_with("eni-") && b.server_ip.is_some()));

    in_lane(Lane::Pod, exec.reconcile(&target)).await.unwrap();
    assert_eq!(
        api.count("DescribeNetworkInterfaces"),
        3,
        "an IP just missed is not asked again at once"
    );
    tokio::time::sleep(seconds(10)).await;
    let out = in_lane(Lane::Pod, exec.reconcile(&target)).await.unwrap();
    assert_eq!(
        api.count("DescribeNetworkInterfaces"),
        4,
        "only the unknown IP is asked again, after its backoff"
    );
    assert_eq!(
        out.requeue_at,
        Some(mk_t0() + seconds(30)),
        "the second miss waits twice as long"
    );
    in_lane(Lane::Pod, exec.reconcile(&target)).await.unwrap();
    assert_eq!(api.count("DescribeNetworkInterfaces"), 4);
}

#[tokio::test(start_paused = true)]
async fn a_group_without_vgroup_port_is_found_by_name_or_created_once() {
    let api = Arc::new(MemorySlb::default());
    let exec = mk_executor(&api, mk_config());
    let mut target = mk_target("lb-1", 80, vec![mk_ecs(1, 10)]);
    target.desired.v_server_group_id = None;
    let out = exec.reconcile(&target).await.unwrap();
    let id = out.v_server_group_id.unwrap();
    assert_eq!(api.group(&id).v_server_group_name, mk_owner(80).as_str());
    assert_eq!(weights(&api.group(&id)), ws(&[("i-001", 10)]));
    exec.reconcile(&target).await.unwrap();
    assert_eq!(api.count("CreateVServerGroup"), 1);
    assert_eq!(
        api.count("DescribeVServerGroups"),
        1,
        "the id is remembered"
    );

    // Nothing to add and no group: nothing is created.
    let mut empty = mk_target("lb-1", 81, vec![]);
    empty.desired.v_server_group_id = None;
    let out = exec.reconcile(&empty).await.unwrap();
    assert_eq!(out.v_server_group_id, None);
    assert_eq!(api.count("CreateVServerGroup"), 1);
}

#[tokio::test(start_paused = true)]
async fn tokio_clock_follows_virtual_time() {
    let clock = TokioClock::starting_at(mk_t0());
    assert_eq!(clock.now(), mk_t0());
    tokio::time::sleep(seconds(90)).await;
    assert_eq!(clock.now(), mk_t0() + seconds(90));
    let at = clock.instant_at(mk_t0() + seconds(100));
    assert_eq!(at - Instant::now(), seconds(10));
}

#[tokio::test(start_paused = true)]
async fn listener_drain_is_read_first_and_written_only_when_different() {
    use crate::reconcile::ListenerTarget;
    use crate::slb::{Listener, ListenerProtocol};
    let api = Arc::new(MemorySlb::default());
    let listener = |port, protocol, drain, timeout| Listener {
        port,
        protocol,
        v_server_group_id: Some("rsp-80".into()),
        connection_drain: drain,
        connection_drain_timeout: timeout,
        health_check: None,
    };
    api.put_listener(
        "lb-1",
        listener(80, ListenerProtocol::Tcp, Some(false), None),
    );
    api.put_listener("lb-1", listener(443, ListenerProtocol::Https, None, None));
    api.inject("SetListenerDrain", Fault::Fail(ErrorClass::Busy), 1);
    let exec = mk_executor(&api, mk_config());
    let target = ListenerTarget {
        load_balancer_id: "lb-1".into(),
        v_server_group_ids: vec!["rsp-80".into()],
        connection_drain: Some(true),
        connection_drain_timeout: Some(120),
        drain_window_secs: 120,
    };
    let out = exec.reconcile_listeners(&target).await.unwrap();
    assert_eq!(out.changed, vec![80]);
    assert_eq!(
        out.warnings.len(),
        1,
        "HTTPS has no drain: {:?}",
        out.warnings
    );
    assert_eq!(api.count("SetListenerDrain"), 2, "busy once, retried");
    let tcp = &api.listeners("lb-1")[0];
    assert_eq!(
        (tcp.connection_drain, tcp.connection_drain_timeout),
        (Some(true), Some(120))
    );

    let out = exec.reconcile_listeners(&target).await.unwrap();
    assert!(out.changed.is_empty());
    assert_eq!(
        api.count("SetListenerDrain"),
        2,
        "nothing written when equal"
    );
}

#[derive(Default)]
struct Journal(std::sync::Mutex<Vec<String>>);

impl crate::reconcile::DrainJournal for Journal {
    fn drain_started(&self, group: &str, key: &crate::model::BackendKey, at: jiff::Timestamp) {
        let secs = at.duration_since(mk_t0()).as_secs();
        self.0
            .lock()
            .unwrap()
            .push(format!("start {group} {key} +{secs}s"));
    }
    fn drain_ended(&self, group: &str, key: &crate::model::BackendKey) {
        self.0.lock().unwrap().push(format!("end {group} {key}"));
    }
}

#[tokio::test(start_paused = true)]
async fn drain_starts_and_ends_are_journalled_for_persistence() {
    let owner = mk_owner(80);
    let api = Arc::new(MemorySlb::with_latency(seconds(1)));
    api.put_group(mk_group(
        "lb-1",
        80,
        vec![
            mk_slb(1, 50, &owner),
            mk_slb(2, 0, &owner),
            mk_slb(3, 0, &owner),
        ],
    ));
    let journal = Arc::new(Journal::default());
    let exec = mk_executor(&api, mk_config()).with_journal(journal.clone());
    // i-003 is wanted again: restored, and no drain is recorded for it.
    let target = mk_target("lb-1", 80, vec![mk_ecs(3, 50)]);
    exec.reconcile(&target).await.unwrap();
    tokio::time::sleep(seconds(40)).await;
    exec.reconcile(&target).await.unwrap();
    let log = journal.0.lock().unwrap().clone();
    assert_eq!(
        log,
        vec![
            // Found at 0 unrecorded: the window starts at the plan (after the 1 s read).
            "start rsp-80 ecs/i-002:30080 +1s",
            // Weight 0 confirmed when the call returned: read 1 s + setWeight 1 s.
            "start rsp-80 ecs/i-001:30080 +2s",
            "end rsp-80 ecs/i-001:30080",
            "end rsp-80 ecs/i-002:30080",
        ]
    );
}

/// A health source that reports the given backends `normal`, in a reading asked for at
/// the given time.
struct Reading(std::sync::Mutex<(Vec<&'static str>, Timestamp)>);

impl crate::reconcile::GroupHealthSource for Reading {
    fn group_health(&self, _: &str, _: &str, _: Timestamp) -> crate::model::GroupHealth {
        let r = self.0.lock().unwrap();
        crate::model::GroupHealth::Normal(
            r.0.iter()
                .map(|id| crate::model::BackendKey::Ecs {
                    server_id: (*id).to_owned(),
                    port: 30080,
                })
                .collect(),
        )
    }
    fn reading_asked_at(&self, _: &str) -> Option<Timestamp> {
        Some(self.0.lock().unwrap().1)
    }
    fn knows_listeners(&self, _: &str) -> bool {
        true
    }
    fn learn_listeners(&self, _: &str, _: Vec<crate::model::Listener>, _: Timestamp) {}
}

#[tokio::test(start_paused = true)]
async fn a_backend_added_again_is_not_taken_as_normal_from_a_reading_older_than_its_add() {
    // i-002 was a member before (its key reported normal), was removed, and is added
    // back: a reading asked for before the SLB could carry the new add speaks of its
    // previous life. The drain of i-001 waits for a reading asked after that.
    let owner = mk_owner(80);
    let api = Arc::new(MemorySlb::default());
    api.put_group(mk_group("lb-1", 80, vec![mk_slb(1, 50, &owner)]));
    let reading = Arc::new(Reading(std::sync::Mutex::new((
        vec!["i-001", "i-002"],
        mk_t0(),
    ))));
    let config = ExecutorConfig {
        slb_propagation: seconds(5),
        ..mk_config()
    };
    let exec = mk_executor(&api, config).with_health(reading.clone());
    let target = mk_target("lb-1", 80, vec![mk_ecs(2, 50)]);

    exec.reconcile(&target).await.unwrap();
    assert_eq!(
        weights(&api.group("rsp-80")),
        ws(&[("i-001", 50), ("i-002", 50)]),
        "added, and the leaving backend kept serving"
    );
    // A reading asked 4 s after the add: still before the SLB may carry it.
    tokio::time::sleep(seconds(4)).await;
    reading.0.lock().unwrap().1 = mk_t0() + seconds(4);
    exec.reconcile(&target).await.unwrap();
    assert_eq!(api.count(SET), 0, "still held");
    // One asked once the add may be carried: i-002 is normal in it, i-001 drains.
    tokio::time::sleep(seconds(2)).await;
    reading.0.lock().unwrap().1 = mk_t0() + seconds(6);
    exec.reconcile(&target).await.unwrap();
    assert_eq!(
        weights(&api.group("rsp-80")),
        ws(&[("i-001", 0), ("i-002", 50)])
    );
}
