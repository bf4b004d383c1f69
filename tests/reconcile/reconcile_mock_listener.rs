//! Drain-on vs drain-off, end to end against the real `mock-slb` and its TCP data plane:
//! the listener's drain settings come from the Service annotations (written only when
//! different), an established connection survives its backend going to weight 0, and
//! the agent's window and the SLB's removal drain behave as the annotations say.
//!
//! Real TCP connections run in real time while the clock is moved with `jump` (the mock's
//! documented approach; a paused clock would auto-advance during socket waits).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mock_slb::state::seed::ListenerSeed;
use mock_slb::state::Protocol;
use slb_sync::model::BackendState;
use slb_sync::reconcile::{Clock, Executor, ListenerTarget, TokioClock};
use support::reconcile_mock::*;

const PREFIX: &str = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-";
/// `--default-drain-seconds`.
const DEFAULT_DRAIN_SECS: u32 = 30;

fn annotations(drain: &str, timeout: Option<u32>) -> BTreeMap<String, String> {
    let mut map = BTreeMap::from([
        (format!("{PREFIX}id"), LB.to_owned()),
        (
            format!("{PREFIX}vgroup-port"),
            format!("{GROUP}:{SERVICE_PORT}"),
        ),
        (format!("{PREFIX}connection-drain"), drain.to_owned()),
        (
            "service.beta.kubernetes.io/backend-type".to_owned(),
            "eni".to_owned(),
        ),
    ]);
    if let Some(timeout) = timeout {
        map.insert(
            format!("{PREFIX}connection-drain-timeout"),
            timeout.to_string(),
        );
    }
    map
}

fn set_listener_calls(mock: &mock_slb::MockSlbHandle) -> usize {
    mock.call_log()
        .iter()
        .filter(|c| {
            c.action.starts_with("SetLoadBalancer") && c.action.ends_with("ListenerAttribute")
        })
        .count()
}

/// Pod A is replaced by nothing (it leaves) while pod B stays; returns after A's removal
/// with the connection that was established to A, for the caller to check.
async fn scenario(drain_on: bool) -> (Conn, Conn, Arc<mock_slb::MockSlbHandle>) {
    let spec = if drain_on {
        slb_sync::annotations::parse(&annotations("on", Some(10)))
    } else {
        slb_sync::annotations::parse(&annotations("off", None))
    }
    .expect("valid annotations");
    let window_secs = spec.drain_window_secs(DEFAULT_DRAIN_SECS);
    assert_eq!(window_secs, if drain_on { 10 } else { DEFAULT_DRAIN_SECS });
    let window = Duration::from_secs(u64::from(window_secs));

    // The listener starts the other way round, so the agent has to write it; an HTTP
    // listener on the same group has no drain setting to write.
    let mut s = seed((0..2).map(|n| (pod_ip(n), n)), !drain_on, 300, Vec::new());
    s.load_balancers[0].listeners.push(ListenerSeed {
        port: 8080,
        protocol: Protocol::Http,
        vserver_group_id: Some(GROUP.to_owned()),
        connection_drain: false,
        connection_drain_timeout: 300,
        bind: None,
        health_check: None,
    });
    let mock = start_mock(s).await;
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(t0()));
    let executor = Executor::new(Arc::new(client(&mock)), clock, executor_config());

    // Listener drain from the annotations: written once, then left alone.
    let listeners = ListenerTarget {
        load_balancer_id: spec.load_balancer_id.clone(),
        v_server_group_ids: vec![GROUP.to_owned()],
        connection_drain: spec.connection_drain,
        connection_drain_timeout: spec.connection_drain_timeout,
        drain_window_secs: window_secs,
    };
    let first = executor.reconcile_listeners(&listeners).await.unwrap();
    assert_eq!(first.changed, vec![SERVICE_PORT]);
    let tcp = mock.state().load_balancers[LB].listeners[&SERVICE_PORT].clone();
    assert_eq!(tcp.connection_drain, drain_on);
    if drain_on {
        assert_eq!(tcp.connection_drain_timeout, 10);
        assert!(
            first.warnings.iter().any(|w| w.contains("8080")),
            "HTTP listener warned about: {:?}",
            first.warnings
        );
    }
    let again = executor.reconcile_listeners(&listeners).await.unwrap();
    assert!(again.changed.is_empty(), "settings equal: no write");
    assert_eq!(set_listener_calls(&mock), 1, "one listener write in all");

    // Two pods serve.
    let a = echo_backend(pod_ip(0), "a").await;
    let b = echo_backend(pod_ip(1), "b").await;
    let both = vec![
        eni(0, a.port(), BackendState::Active),
        eni(1, b.port(), BackendState::Active),
    ];
    executor.reconcile(&target(both, window)).await.unwrap();
    let lb = mock
        .listener_addr(LB, SERVICE_PORT)
        .expect("TCP listener bound");
    let (mut to_a, mut to_b) = (None, None);
    for _ in 0..4 {
        let conn = Conn::open(lb).await.expect("forwarded");
        match conn.name.as_str() {
            "a" => to_a = Some(conn),
            _ => to_b = Some(conn),
        }
    }
    let (mut to_a, mut to_b) = (to_a.expect("reached a"), to_b.expect("reached b"));

    // Pod A terminates: weight 0 at once, no new connections, the old one lives on.
    let leaving = vec![
        eni(0, a.port(), BackendState::Draining),
        eni(1, b.port(), BackendState::Active),
    ];
    let leaving = target(leaving, window);
    executor.reconcile(&leaving).await.unwrap();
    assert_eq!(members_now(&mock).get(&key(0, a.port())), Some(&0));
    for _ in 0..5 {
        assert_eq!(Conn::open(lb).await.expect("forwarded").name, "b");
    }
    assert!(to_a.alive().await, "weight 0 keeps established connections");

    // Inside the agent's window nothing is removed (1 s of real-time slack).
    jump(window - Duration::from_secs(1)).await;
    executor.reconcile(&leaving).await.unwrap();
    assert!(members_now(&mock).contains_key(&key(0, a.port())));
    assert!(to_a.alive().await);

    // The window has passed: removed.
    jump(Duration::from_secs(1)).await;
    let outcome = executor.reconcile(&leaving).await.unwrap();
    assert_eq!(outcome.steps_applied, 1);
    assert!(!members_now(&mock).contains_key(&key(0, a.port())));
    assert!(
        to_b.alive().await,
        "the staying pod's connection is untouched"
    );
    (to_a, to_b, mock)
}

#[tokio::test]
async fn drain_on_keeps_connections_through_weight_0_and_removal_until_the_timeout() {
    let (mut to_a, mut to_b, mock) = scenario(true).await;
    assert!(
        to_a.alive().await,
        "drain on: the connection outlives the removal"
    );
    // 1 s of real-time slack before the SLB's 10 s drain timeout ends.
    jump(Duration::from_secs(9)).await;
    assert!(to_a.alive().await, "still inside ConnectionDrainTimeout");
    jump(Duration::from_secs(1)).await;
    assert!(
        to_a.closed().await,
        "closed once ConnectionDrainTimeout passed"
    );
    assert!(to_b.alive().await);
    let counters = mock.dataplane_counters(LB, SERVICE_PORT).unwrap();
    assert_eq!(counters.cut, 1);
}

#[tokio::test]
async fn drain_off_keeps_connections_through_weight_0_and_cuts_them_at_removal() {
    let (mut to_a, mut to_b, mock) = scenario(false).await;
    assert!(
        to_a.closed().await,
        "drain off: removal cuts the connection"
    );
    assert!(to_b.alive().await);
    let counters = mock.dataplane_counters(LB, SERVICE_PORT).unwrap();
    assert_eq!(counters.cut, 1);
}
