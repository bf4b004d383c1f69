//! Priority lanes and fairness under a small API budget, in virtual time: pod-facing
//! work is never stuck behind bulk work, and no Service crowds out another.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::model::ServiceRef;
use crate::reconcile::memory::MemorySlb;
use crate::reconcile::{spawn, GroupRef, Lane, SchedulerConfig, TargetSource};

const SLOT: Duration = Duration::from_millis(200); // 5 calls/s

#[derive(Default)]
struct Targets(Mutex<HashMap<GroupRef, GroupTarget>>);

impl TargetSource for Targets {
    fn target(&self, group: &GroupRef) -> Option<GroupTarget> {
        self.0.lock().unwrap().get(group).cloned()
    }
}

/// `n` groups, each its Service's only group on its own instance, at 5 calls/s.
struct Rig {
    api: Arc<MemorySlb>,
    targets: Arc<Targets>,
    handle: crate::reconcile::SchedulerHandle,
}

fn group_ref(service: &str, port: u16) -> GroupRef {
    GroupRef::new(ServiceRef::new("default", service), port)
}

fn rig() -> Rig {
    let api = Arc::new(MemorySlb::default());
    let targets = Arc::new(Targets::default());
    let mut config = mk_config();
    config.limits.qps = 5.0;
    config.limits.burst = NonZeroU32::new(1).unwrap();
    let executor = Arc::new(mk_executor(&api, config));
    let (handle, _task) = spawn(executor, targets.clone(), SchedulerConfig::default());
    Rig {
        api,
        targets,
        handle,
    }
}

impl Rig {
    /// Group `rsp-<port>` of Service `service` on instance `lb-<service>`, holding owned
    /// backends `members` and wanting `desired`.
    fn add(&self, service: &str, port: u16, members: &[(u32, u32)], desired: Vec<Backend>) {
        let lb = format!("lb-{service}");
        let owner = mk_owner(port);
        let backends = members
            .iter()
            .map(|(n, w)| mk_slb(*n, *w, &owner))
            .collect();
        let mut group = mk_group(&lb, port, backends);
        group.v_server_group_id = format!("rsp-{service}-{port}");
        self.api.put_group(group);
        let mut target = mk_target(&lb, port, desired);
        target.desired.v_server_group_id = Some(format!("rsp-{service}-{port}"));
        self.targets
            .0
            .lock()
            .unwrap()
            .insert(group_ref(service, port), target);
    }

    /// `n` Services `gate<n>`, each waiting for a new pod's backend (a pod-lane pass).
    fn gate_passes(&self, n: usize) {
        for n in 0..n {
            let service = format!("gate{n}");
            self.add(
                &service,
                80,
                &[(1, 100)],
                vec![mk_ecs(1, 100), mk_ecs(2, 100)],
            );
            self.handle.trigger_in(group_ref(&service, 80), Lane::Pod);
        }
    }

    /// When the first weight write to `target` was made.
    fn first_weight_write(&self, target: &str) -> Instant {
        self.api
            .calls()
            .into_iter()
            .find(|c| c.target == target && c.action == "SetVServerGroupAttribute")
            .map(|c| c.at)
            .expect("weight written")
    }

    /// When the first call naming `target` was made, after `since`.
    fn first_call(&self, target: &str, since: Instant) -> Option<Instant> {
        self.api
            .calls()
            .into_iter()
            .find(|c| c.target == target && c.at >= since)
            .map(|c| c.at)
    }
}

#[tokio::test(start_paused = true)]
async fn a_drain_starts_within_a_call_slot_with_ten_thousand_resync_passes_queued() {
    let rig = rig();
    for n in 0..10_000u16 {
        rig.add(&format!("bulk{n}"), 80, &[(1, 100)], vec![mk_ecs(1, 100)]);
        rig.handle
            .trigger_in(group_ref(&format!("bulk{n}"), 80), Lane::Bulk);
    }
    // A deleted pod's node leaves Service `web`: weight 0 is the pod's drain starting.
    rig.add("web", 80, &[(1, 100), (2, 100)], vec![mk_ecs(1, 100)]);
    tokio::time::sleep(Duration::from_secs(60)).await; // the resync is well under way
    let bulk_before = rig.handle.stats().started(Lane::Bulk);
    assert!(bulk_before > 100, "{bulk_before}");
    let triggered = Instant::now();
    rig.handle.trigger_in(group_ref("web", 80), Lane::Drain);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let read = rig.first_call("rsp-web-80", triggered).expect("web read");
    eprintln!("drain: read {:?} after the trigger", read - triggered);
    let calls = rig.api.calls();
    let drained = rig.first_weight_write("rsp-web-80");
    // Its read takes the next token, and its write the one after: no bulk call in
    // between (a bulk call already holding a token may finish).
    assert!(
        read - triggered <= SLOT,
        "read {:?} after",
        read - triggered
    );
    assert!(
        drained - read <= SLOT,
        "write {:?} after the read",
        drained - read
    );
    let bulk_between = calls
        .iter()
        .filter(|c| c.at > read && c.at < drained && c.target != "rsp-web-80")
        .count();
    assert_eq!(bulk_between, 0);
    assert_eq!(
        weights(&rig.api.group("rsp-web-80")),
        ws(&[("i-001", 100), ("i-002", 0)])
    );
    // Calls go out at the budget's rate, never faster.
    for pair in calls.windows(2) {
        assert!(pair[1].at - pair[0].at >= SLOT - Duration::from_millis(1));
    }
}

#[tokio::test(start_paused = true)]
async fn a_burst_from_one_service_delays_another_services_drain_by_one_turn_at_most() {
    let rig = rig();
    // Service `busy` rolls 40 groups at once; `web` then needs one drain.
    for port in 1..=40 {
        rig.add(
            "busy",
            port,
            &[(1, 100)],
            vec![mk_ecs(1, 100), mk_ecs(2, 100)],
        );
    }
    rig.add("web", 80, &[(1, 100), (2, 100)], vec![mk_ecs(1, 100)]);
    let start = Instant::now();
    for port in 1..=40 {
        rig.handle.trigger_in(group_ref("busy", port), Lane::Pod);
    }
    tokio::task::yield_now().await;
    rig.handle.trigger_in(group_ref("web", 80), Lane::Drain);
    tokio::time::sleep(Duration::from_secs(30)).await;

    let web = rig.first_call("rsp-web-80", start).expect("web read");
    eprintln!("web read {:?} after busy's burst of 40 passes", web - start);
    // web's pass gets a slot at once (a Service with nothing running always may), and
    // its calls take turns with busy's rather than lining up behind them.
    assert!(
        web - start <= SLOT * 2,
        "web read {:?} after the burst",
        web - start
    );
    let busy_done = rig
        .api
        .calls()
        .iter()
        .filter(|c| c.target.starts_with("rsp-busy"))
        .map(|c| c.at)
        .max()
        .unwrap();
    assert!(
        busy_done - start > SLOT * 60,
        "the burst itself took {:?}",
        busy_done - start
    );
}

#[tokio::test(start_paused = true)]
async fn drains_go_ahead_of_gates_queued_before_them() {
    let rig = rig();
    // Forty Services each wait for a new pod's backend to be added (gates: no deadline),
    // then one pod is deleted (its drain has one: the pod's grace period).
    rig.gate_passes(40);
    rig.add("web", 80, &[(1, 100), (2, 100)], vec![mk_ecs(1, 100)]);
    tokio::time::sleep(SLOT * 3).await; // the gates' passes are running and waiting
    let triggered = Instant::now();
    rig.handle.trigger_in(group_ref("web", 80), Lane::Drain);
    tokio::time::sleep(Duration::from_secs(30)).await;

    let calls = rig.api.calls();
    let read = rig.first_call("rsp-web-80", triggered).expect("web read");
    let drained = rig.first_weight_write("rsp-web-80");
    eprintln!(
        "drain: read {:?}, weight 0 {:?} after the trigger",
        read - triggered,
        drained - triggered
    );
    // Read at the next token and written at the one after, however many gate calls wait.
    assert!(
        read - triggered <= SLOT,
        "read {:?} after",
        read - triggered
    );
    assert!(drained - read <= SLOT, "write {:?} after", drained - read);
    let gate_calls_after = calls
        .iter()
        .filter(|c| c.target.starts_with("rsp-gate") && c.at > drained)
        .count();
    assert!(
        gate_calls_after > 40,
        "{gate_calls_after} gate calls after the drain"
    );
}

#[tokio::test(start_paused = true)]
async fn a_gate_pass_waiting_for_the_budget_turns_drain_work_when_its_group_drains() {
    let rig = rig();
    rig.gate_passes(10);
    // Service `web` waits for a new pod too; its pass queues its read behind the others.
    rig.add("web", 80, &[(1, 100)], vec![mk_ecs(1, 100), mk_ecs(2, 100)]);
    rig.handle.trigger_in(group_ref("web", 80), Lane::Pod);
    tokio::time::sleep(SLOT * 3).await;
    assert_eq!(
        rig.handle.stats().started(Lane::Pod),
        11,
        "every pass under way"
    );
    // Then web's old pod terminates: the pass under way carries its drain.
    rig.targets
        .0
        .lock()
        .unwrap()
        .get_mut(&group_ref("web", 80))
        .unwrap()
        .desired
        .backends
        .retain(|b| b.key() == mk_ecs(2, 100).key());
    let triggered = Instant::now();
    rig.handle.trigger_in(group_ref("web", 80), Lane::Drain);
    tokio::time::sleep(Duration::from_secs(5)).await;

    let read = rig.first_call("rsp-web-80", triggered).expect("web read");
    let drained = rig.first_weight_write("rsp-web-80");
    // The read moves to the drain lane at the next grant and goes at the token after;
    // the add and the weight 0 follow. In the pod lane they would wait for ten passes.
    assert!(
        read - triggered <= SLOT * 2,
        "read {:?} after",
        read - triggered
    );
    assert!(
        drained - read <= SLOT * 2,
        "weight 0 {:?} after the read",
        drained - read
    );
    assert_eq!(
        weights(&rig.api.group("rsp-web-80")),
        ws(&[("i-001", 0), ("i-002", 100)])
    );
}

#[tokio::test(start_paused = true)]
async fn drains_of_many_groups_go_before_their_adds() {
    let rig = rig();
    // Ten Services each lose a pod and gain one at once (node 1 leaves, node 3 joins,
    // node 2 serves throughout): each pass reads, sets weight 0 and adds.
    for n in 0..10 {
        let service = format!("web{n}");
        rig.add(
            &service,
            80,
            &[(1, 100), (2, 100)],
            vec![mk_ecs(2, 100), mk_ecs(3, 100)],
        );
        rig.handle.trigger_in(group_ref(&service, 80), Lane::Drain);
    }
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(30)).await;

    let calls = rig.api.calls();
    let last_drain = calls
        .iter()
        .filter(|c| c.action == "SetVServerGroupAttribute")
        .map(|c| c.at)
        .max()
        .expect("weights 0 written");
    let first_add = calls
        .iter()
        .filter(|c| c.action == "AddVServerGroupBackendServers")
        .map(|c| c.at)
        .min()
        .expect("adds written");
    // Twenty calls (a read and a write per group) take every drain to weight 0; the
    // adds follow. Adds first, the last drain would wait for thirty calls.
    assert!(last_drain < first_add, "an add went before a drain");
    assert!(
        last_drain - start <= SLOT * 20,
        "last drain after {:?}",
        last_drain - start
    );
    for n in 0..10 {
        assert_eq!(
            weights(&rig.api.group(&format!("rsp-web{n}-80"))),
            ws(&[("i-001", 0), ("i-002", 100), ("i-003", 100)])
        );
    }
}

#[derive(Default)]
struct Delays(Mutex<Vec<(GroupRef, Duration)>>);

impl crate::reconcile::PassObserver for Delays {
    fn pass_finished(
        &self,
        _: &GroupRef,
        _: &GroupTarget,
        _: &Result<crate::reconcile::PassOutcome, crate::reconcile::ReconcileError>,
    ) {
    }

    fn pass_delayed(&self, group: &GroupRef, waited: Duration) {
        self.0.lock().unwrap().push((group.clone(), waited));
    }
}

#[tokio::test(start_paused = true)]
async fn pod_work_that_does_not_fit_the_budget_is_reported() {
    let api = Arc::new(MemorySlb::default());
    let targets = Arc::new(Targets::default());
    let mut config = mk_config();
    config.limits.qps = 1.0;
    config.limits.burst = NonZeroU32::new(1).unwrap();
    let registry = prometheus::Registry::new();
    let metrics = crate::reconcile::ReconcileMetrics::register(&registry).unwrap();
    let executor = Arc::new(mk_executor(&api, config).with_metrics(metrics.clone()));
    let delays = Arc::new(Delays::default());
    let (handle, _task) = crate::reconcile::spawn_observed(
        executor,
        targets.clone(),
        Some(delays.clone()),
        SchedulerConfig::default(),
    );
    let rig = Rig {
        api,
        targets,
        handle,
    };
    // Twenty Services each need a drain at once: two calls each at one call a second.
    for n in 0..20 {
        let service = format!("s{n}");
        rig.add(&service, 80, &[(1, 100), (2, 100)], vec![mk_ecs(1, 100)]);
        rig.handle.trigger_in(group_ref(&service, 80), Lane::Drain);
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
    let delays = delays.0.lock().unwrap().clone();
    assert!(!delays.is_empty());
    assert!(delays
        .iter()
        .all(|(_, waited)| *waited > Duration::from_secs(10)));
    assert_eq!(metrics.pod_work_delayed.get(), delays.len() as u64);
    // The first ones fit: only the late ones are reported.
    assert!(delays.len() < 20, "{}", delays.len());
}

#[tokio::test(start_paused = true)]
async fn at_shutdown_resync_passes_are_dropped_and_the_scheduler_ends_at_once() {
    let api = Arc::new(MemorySlb::default());
    let targets = Arc::new(Targets::default());
    let mut config = mk_config();
    config.limits.qps = 1.0;
    config.limits.burst = NonZeroU32::new(1).unwrap();
    let executor = Arc::new(mk_executor(&api, config));
    let (handle, task) = spawn(executor, targets.clone(), SchedulerConfig::default());
    let rig = Rig {
        api,
        targets,
        handle,
    };
    for n in 0..100 {
        let service = format!("bulk{n}");
        rig.add(&service, 80, &[(1, 100)], vec![mk_ecs(1, 100)]);
        rig.handle.trigger_in(group_ref(&service, 80), Lane::Bulk);
    }
    tokio::time::sleep(Duration::from_secs(3)).await; // bulk passes wait for tokens
    let stopped = Instant::now();
    drop(rig.handle);
    task.await.unwrap();
    assert!(
        stopped.elapsed() < Duration::from_secs(1),
        "{:?}",
        stopped.elapsed()
    );
}
