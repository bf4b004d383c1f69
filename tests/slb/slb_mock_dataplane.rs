//! What the agent's SLB calls do to real traffic: the production client changes the mock
//! SLB's groups and listeners, and real TCP connections go through the mock's data plane
//! to echo servers on loopback addresses (ECS instances at 127.0.N.x, ENI IPs at .101+).
//!
//! Drain windows and the propagation delay run on the tokio clock; `jump` moves it while
//! no API call is in flight (see `support::slb_mock`), so nothing here waits in real time
//! for more than the few milliseconds a loopback round trip takes.

use support::slb_mock;

use std::collections::BTreeMap;
use std::time::Duration;

use mock_slb::FaultConfig;
use serde_json::json;
use slb_mock::*;
use slb_sync::slb::SlbApi;

async fn spread(lb: std::net::SocketAddr, n: usize) -> BTreeMap<String, u32> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let conn = Conn::open(lb).await.expect("forwarded");
        *seen.entry(conn.name).or_default() += 1;
    }
    seen
}

#[tokio::test]
async fn connections_spread_by_the_weights_the_client_writes() {
    let (mock, c) = start(seed(210, false, json!({}))).await;
    let a = echo_backend("127.0.210.1", "a").await;
    let b = echo_backend("127.0.210.2", "b").await;
    let e = echo_backend("127.0.210.102", "eni").await;
    c.add_backends(
        GROUP,
        &[
            ecs("i-1", a.port(), 60),
            ecs("i-2", b.port(), 20),
            eni("eni-1", "127.0.210.102", e.port(), 20),
        ],
    )
    .await
    .unwrap();
    let lb = mock.listener_addr(LB, 80).unwrap();
    // Smooth weighted round robin is exact over one period of the weight sum.
    assert_eq!(
        spread(lb, 100).await,
        BTreeMap::from([("a".into(), 60), ("b".into(), 20), ("eni".into(), 20)])
    );

    c.set_backends(
        GROUP,
        &[
            ecs("i-1", a.port(), 30),
            ecs("i-2", b.port(), 70),
            eni("eni-1", "127.0.210.102", e.port(), 0),
        ],
    )
    .await
    .unwrap();
    let seen = spread(lb, 100).await;
    // Running scores carry over a weight change, so one period may be off by one.
    assert!(!seen.contains_key("eni"), "{seen:?}");
    assert!((29..=31).contains(&seen["a"]), "{seen:?}");
    assert_eq!(seen["a"] + seen["b"], 100);
    let k = mock.dataplane_counters(LB, 80).unwrap();
    assert_eq!(
        (k.accepted, k.forwarded, k.refused, k.cut),
        (200, 200, 0, 0)
    );
}

#[tokio::test]
async fn weight_zero_stops_new_connections_while_established_ones_continue() {
    let (mock, c) = start(seed(211, false, json!({}))).await;
    let a = echo_backend("127.0.211.1", "a").await;
    let b = echo_backend("127.0.211.2", "b").await;
    c.add_backends(GROUP, &[ecs("i-1", a.port(), 50), ecs("i-2", b.port(), 50)])
        .await
        .unwrap();
    let lb = mock.listener_addr(LB, 80).unwrap();
    let (first, second) = (Conn::open(lb).await.unwrap(), Conn::open(lb).await.unwrap());
    let mut to_b = if first.name == "b" { first } else { second };
    assert_eq!(to_b.name, "b");

    c.set_backends(GROUP, &[ecs("i-2", b.port(), 0)])
        .await
        .unwrap();
    assert_eq!(
        spread(lb, 10).await,
        BTreeMap::from([("a".into(), 10)]),
        "weight 0 takes no new connections"
    );
    // Long after (weight 0 has no timer), the established connection still works.
    jump(Duration::from_secs(600)).await;
    assert!(to_b.alive().await, "established connection continues");
    assert_eq!(mock.dataplane_counters(LB, 80).unwrap().cut, 0);

    // Restoring the weight brings the backend back without re-adding it.
    c.set_backends(GROUP, &[ecs("i-2", b.port(), 50)])
        .await
        .unwrap();
    assert!(spread(lb, 4).await.contains_key("b"));
    assert!(to_b.alive().await);
}

#[tokio::test]
async fn removal_with_drain_set_by_the_client_closes_at_the_end_of_the_window() {
    // The listener starts without drain; the client turns it on, as the agent does for a
    // Service annotated `connection-drain: on`.
    let (mock, c) = start(seed(212, false, json!({}))).await;
    let tcp = c.describe_listeners(LB).await.unwrap()[1].clone();
    c.set_listener_drain(LB, &tcp, true, Some(60))
        .await
        .unwrap();
    let a = echo_backend("127.0.212.1", "a").await;
    let b = echo_backend("127.0.212.2", "b").await;
    c.add_backends(GROUP, &[ecs("i-1", a.port(), 50), ecs("i-2", b.port(), 50)])
        .await
        .unwrap();
    let lb = mock.listener_addr(LB, 80).unwrap();
    let (first, second) = (Conn::open(lb).await.unwrap(), Conn::open(lb).await.unwrap());
    let (mut to_a, mut to_b) = if first.name == "a" {
        (first, second)
    } else {
        (second, first)
    };
    assert_eq!((to_a.name.as_str(), to_b.name.as_str()), ("a", "b"));

    // The agent's order: weight 0, then removal; the drain window starts at removal.
    c.set_backends(GROUP, &[ecs("i-1", a.port(), 0)])
        .await
        .unwrap();
    c.remove_backends(GROUP, &[ecs("i-1", a.port(), 0)])
        .await
        .unwrap();
    assert_eq!(spread(lb, 3).await, BTreeMap::from([("b".into(), 3)]));
    // Ten seconds before the 60 s window ends: slack for the real time a loaded machine
    // spends between the removal and this check (the tokio clock runs with it).
    jump(Duration::from_secs(50)).await;
    assert!(
        to_a.alive().await,
        "drain keeps the connection inside the window"
    );
    assert_eq!(mock.dataplane_counters(LB, 80).unwrap().cut, 0);
    jump(Duration::from_secs(10)).await;
    assert!(to_a.closed().await, "closed when the drain window ends");
    assert!(
        to_b.alive().await,
        "other backends' connections are untouched"
    );
    assert_eq!(mock.dataplane_counters(LB, 80).unwrap().cut, 1);
}

#[tokio::test]
async fn removal_without_drain_cuts_at_once() {
    let (mock, c) = start(seed(213, false, json!({}))).await;
    let a = echo_backend("127.0.213.1", "a").await;
    let e = echo_backend("127.0.213.103", "eni").await;
    c.add_backends(
        GROUP,
        &[
            ecs("i-1", a.port(), 100),
            eni("eni-2", "127.0.213.103", e.port(), 100),
        ],
    )
    .await
    .unwrap();
    let lb = mock.listener_addr(LB, 80).unwrap();
    let (first, second) = (Conn::open(lb).await.unwrap(), Conn::open(lb).await.unwrap());
    let (mut to_a, mut to_eni) = if first.name == "a" {
        (first, second)
    } else {
        (second, first)
    };
    assert!(to_a.alive().await && to_eni.alive().await);

    c.remove_backends(GROUP, &[eni("eni-2", "127.0.213.103", e.port(), 0)])
        .await
        .unwrap();
    assert!(to_eni.closed().await, "drain off: cut at removal");
    assert!(to_a.alive().await);
    c.remove_backends(GROUP, &[ecs("i-1", a.port(), 0)])
        .await
        .unwrap();
    assert!(to_a.closed().await);
    let k = mock.dataplane_counters(LB, 80).unwrap();
    assert_eq!((k.cut, k.active), (2, 0));
    assert!(Conn::open(lb).await.is_none(), "no backend: refused");
    assert_eq!(mock.dataplane_counters(LB, 80).unwrap().refused, 1);
}

#[tokio::test]
async fn health_checks_take_a_dead_backend_out_and_bring_it_back() {
    let mut s = seed(214, false, json!({}));
    s.load_balancers[0].listeners[0].health_check = Some(mock_slb::state::HealthCheck {
        interval_ms: 50,
        timeout_ms: 2_000,
        healthy_threshold: 1,
        unhealthy_threshold: 1,
        unchecked_serves: true,
    });
    let (mock, c) = start(s).await;
    let a = echo_backend("127.0.214.1", "a").await;
    // Nothing listens on i-2's address yet.
    c.add_backends(GROUP, &[ecs("i-1", a.port(), 50), ecs("i-2", a.port(), 50)])
        .await
        .unwrap();

    let wait_for = |want: [&'static str; 2]| {
        let c = &c;
        async move {
            let mut last = Vec::new();
            // Checks are real connects every 50 ms; allow 10 s of real time.
            for _ in 0..200 {
                let mut health = c.describe_health(LB, Some(80)).await.unwrap();
                health.sort_by(|x, y| x.server_id.cmp(&y.server_id));
                last = health.into_iter().map(|h| h.status).collect::<Vec<_>>();
                if last == want {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("health never became {want:?}; last {last:?}");
        }
    };
    wait_for(["normal", "abnormal"]).await;
    let lb = mock.listener_addr(LB, 80).unwrap();
    assert_eq!(spread(lb, 6).await, BTreeMap::from([("a".into(), 6)]));
    assert_eq!(mock.dataplane_counters(LB, 80).unwrap().connect_failed, 0);

    // The backend comes up on the checked address: back in rotation.
    let b = tokio::net::TcpListener::bind(("127.0.214.2", a.port()))
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = b.accept().await {
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let _ = s.write_all(b"b\n").await;
                let mut buf = [0u8; 64];
                let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
            });
        }
    });
    wait_for(["normal", "normal"]).await;
    assert_eq!(
        spread(lb, 4).await,
        BTreeMap::from([("a".into(), 2), ("b".into(), 2)])
    );
}

async fn first_status(c: &slb_sync::slb::RpcSlbClient) -> String {
    c.describe_health(LB, Some(80)).await.unwrap()[0]
        .status
        .clone()
}

/// With `unchecked_serves: false` a member added to a checked listener gets no new
/// connection until it passed `healthy_threshold` checks; with `true` it gets them at once.
#[tokio::test]
async fn an_unchecked_backend_serves_only_where_the_switch_says_so() {
    for (net, unchecked_serves) in [(216u8, false), (217, true)] {
        let mut s = seed(net, false, json!({}));
        s.load_balancers[0].listeners[0].health_check = Some(mock_slb::state::HealthCheck {
            interval_ms: 200,
            timeout_ms: 2_000,
            healthy_threshold: 3,
            unhealthy_threshold: 3,
            unchecked_serves,
        });
        let (mock, c) = start(s).await;
        let a = echo_backend(&format!("127.0.{net}.1"), "a").await;
        c.add_backends(GROUP, &[ecs("i-1", a.port(), 100)])
            .await
            .unwrap();
        assert_eq!(first_status(&c).await, "unavailable");
        let lb = mock.listener_addr(LB, 80).unwrap();
        if unchecked_serves {
            assert_eq!(spread(lb, 2).await, BTreeMap::from([("a".into(), 2)]));
        } else {
            assert!(Conn::open(lb).await.is_none(), "held out until normal");
            assert_eq!(mock.dataplane_counters(LB, 80).unwrap().refused, 1);
        }
        // Three checks 200 ms apart: normal within a few seconds of real time.
        let mut last = String::new();
        for _ in 0..100 {
            last = first_status(&c).await;
            if last == "normal" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(last, "normal");
        assert_eq!(spread(lb, 2).await, BTreeMap::from([("a".into(), 2)]));
    }
}

#[tokio::test]
async fn a_change_reaches_the_data_plane_after_the_propagation_delay() {
    let (mock, c) = start(seed(215, false, json!({}))).await;
    mock.set_faults(FaultConfig {
        // Long enough that real time spent on a loaded machine never applies it early.
        propagation_delay_ms: 60_000,
        ..FaultConfig::default()
    });
    let a = echo_backend("127.0.215.1", "a").await;
    c.add_backends(GROUP, &[ecs("i-1", a.port(), 100)])
        .await
        .unwrap();
    // The API already answers with the backend...
    let group = c.describe_vserver_group(GROUP).await.unwrap();
    assert_eq!(group.backends.len(), 1);
    // ...but the data plane does not carry it yet.
    let lb = mock.listener_addr(LB, 80).unwrap();
    assert!(Conn::open(lb).await.is_none());
    jump(Duration::from_secs(60)).await;
    let mut conn = Conn::open(lb).await.expect("applied after the delay");
    assert_eq!(conn.name, "a");

    // Removal is delayed the same way: the connection lives until it applies.
    c.remove_backends(GROUP, &[ecs("i-1", a.port(), 0)])
        .await
        .unwrap();
    assert!(conn.alive().await);
    jump(Duration::from_secs(60)).await;
    assert!(conn.closed().await);
}
