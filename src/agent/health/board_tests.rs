//! Tests of the health board: freshness of readings, per-group waits, poll cadence,
//! and how long a drain waits for a reading.
use super::*;
use crate::model::{HealthCheck, ListenerProtocol};

const T0: Timestamp = Timestamp::constant(1_700_000_000, 0);

fn at(ms: i64) -> Timestamp {
    T0.checked_add(SignedDuration::from_millis(ms)).unwrap()
}

fn pod(name: &str) -> PodKey {
    ("shop".into(), name.into())
}

fn place() -> PodPlace {
    PodPlace {
        ips: vec!["10.0.0.5".parse().unwrap()],
        instance: Some(Some("i-1".into())),
        node_unknown: false,
        virtual_node: false,
    }
}

fn checked_listener() -> Vec<Listener> {
    vec![Listener {
        port: 80,
        protocol: ListenerProtocol::Tcp,
        v_server_group_id: Some("rsp-a".into()),
        connection_drain: Some(false),
        connection_drain_timeout: None,
        health_check: Some(HealthCheck {
            interval_secs: 3,
            ..HealthCheck::DEFAULT
        }),
    }]
}

fn normal() -> Vec<BackendHealth> {
    vec![BackendHealth {
        server_id: "eni-1".into(),
        server_ip: "10.0.0.5".parse().ok(),
        port: 8080,
        listener_port: 80,
        status: "normal".into(),
    }]
}

fn look(b: &HealthBoard, name: &str, now: Timestamp) -> Verdict {
    b.look("lb-1", "rsp-a", Mode::Eni, &place(), &pod(name), now)
        .0
}

#[test]
fn a_reading_counts_only_if_asked_for_after_the_pod_began_to_wait() {
    let b = HealthBoard::new();
    b.set_listeners("lb-1", checked_listener(), at(0));
    // Read before web-1 waited: says nothing of its backend as it is now.
    b.set_reading("lb-1", normal(), at(0));
    assert_eq!(look(&b, "web-1", at(100)), Verdict::Unknown);
    b.set_reading("lb-1", normal(), at(200));
    assert_eq!(look(&b, "web-1", at(300)), Verdict::Healthy);
    // Healthy ends the wait: nobody waits, no poll is due.
    assert_eq!(b.due(at(300)), (vec![], None));
}

#[test]
fn a_pod_waits_on_each_of_its_groups_separately() {
    let b = HealthBoard::new();
    let mut listeners = checked_listener();
    listeners.push(Listener {
        port: 443,
        v_server_group_id: Some("rsp-b".into()),
        ..listeners[0].clone()
    });
    b.set_listeners("lb-1", listeners, at(0));
    let look_in = |group: &str, now| {
        b.look("lb-1", group, Mode::Eni, &place(), &pod("web-1"), now)
            .0
    };
    assert_eq!(look_in("rsp-a", at(100)), Verdict::Unknown);
    assert_eq!(look_in("rsp-b", at(100)), Verdict::Unknown);
    let mut reading = normal();
    reading.push(BackendHealth {
        listener_port: 443,
        status: "unavailable".into(),
        ..reading[0].clone()
    });
    b.set_reading("lb-1", reading.clone(), at(200));
    // rsp-a healthy ends its wait; rsp-b's wait keeps its start, so the same reading
    // still counts for it.
    assert_eq!(look_in("rsp-a", at(300)), Verdict::Healthy);
    assert_eq!(
        look_in("rsp-b", at(300)),
        Verdict::Pending { ports: vec![443] }
    );
    reading[1].status = "normal".into();
    b.set_reading("lb-1", reading, at(400));
    assert_eq!(look_in("rsp-b", at(500)), Verdict::Healthy);
    assert_eq!(b.waiting(), 0);
}

#[test]
fn a_drain_waits_for_a_reading_at_most_a_minute() {
    let b = HealthBoard::new();
    // Listeners unknown: weights alone, and the group is filed so they get read.
    assert_eq!(
        b.group_health("lb-1", "rsp-a", at(0)),
        GroupHealth::Unchecked
    );
    assert_eq!(b.due(at(0)).0, ["lb-1"]);
    assert!(b.drain_waits("lb-1"));
    b.set_listeners("lb-1", checked_listener(), at(0));
    assert_eq!(b.group_health("lb-1", "rsp-a", at(10)), GroupHealth::Unread);
    b.set_reading("lb-1", normal(), at(20));
    let key = mk_key();
    assert_eq!(
        b.group_health("lb-1", "rsp-a", at(30)),
        GroupHealth::Normal(BTreeSet::from([key.0, key.1]))
    );
    // Readings stop coming (the SLB fails every read): stale after 30 s (two polls
    // of 3 s are less), then a minute after the wait began, weights alone.
    assert_eq!(
        b.group_health("lb-1", "rsp-a", at(40_000)),
        GroupHealth::Unread
    );
    assert_eq!(
        b.group_health("lb-1", "rsp-a", at(60_000)),
        GroupHealth::Unchecked
    );
}

/// The keys a health entry of `normal()` matches: its ECS id and its IP.
fn mk_key() -> (BackendKey, BackendKey) {
    (
        BackendKey::Ecs {
            server_id: "eni-1".into(),
            port: 8080,
        },
        BackendKey::Eni {
            server_ip: "10.0.0.5".parse().unwrap(),
            port: 8080,
        },
    )
}

#[test]
fn polls_run_at_the_check_interval_and_stop_one_poll_after_the_last_look() {
    let b = HealthBoard::new();
    assert_eq!(b.due(at(0)), (vec![], None), "nobody waits: no poll");
    assert_eq!(look(&b, "web-1", at(0)), Verdict::Unknown);
    assert_eq!(b.due(at(0)).0, ["lb-1"], "first waiter: due at once");
    b.set_listeners("lb-1", checked_listener(), at(10));
    assert_eq!(b.polled("lb-1", at(20)), [pod("web-1")]);
    // Next poll one check interval (3 s) later.
    assert_eq!(b.due(at(1_000)), (vec![], Some(at(3_020))));
    // web-1 looks again after the poll (still waiting); at the next poll it stays.
    assert!(look(&b, "web-1", at(30)).waits());
    assert_eq!(b.polled("lb-1", at(3_020)), [pod("web-1")]);
    // It does not look again (its gate opened elsewhere, or it went): dropped at the
    // poll after, and no poll is due any more.
    assert!(b.polled("lb-1", at(6_020)).is_empty());
    assert_eq!(b.due(at(10_000)), (vec![], None));
}
