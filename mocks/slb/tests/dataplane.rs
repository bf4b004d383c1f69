//! Data plane with real TCP: weighted spread, weight 0, removal with and without drain,
//! ENI backends, refusal without backends, health checks.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use mock_slb::client::Client;
use serde_json::json;

async fn add(c: &Client, servers: &str) {
    let a = c
        .slb(
            "AddVServerGroupBackendServers",
            &[("VServerGroupId", GROUP), ("BackendServers", servers)],
        )
        .await
        .unwrap();
    assert_ok(&a);
}

async fn set(c: &Client, servers: &str) {
    let a = c
        .slb(
            "SetVServerGroupAttribute",
            &[("VServerGroupId", GROUP), ("BackendServers", servers)],
        )
        .await
        .unwrap();
    assert_ok(&a);
}

async fn remove(c: &Client, servers: &str) {
    let a = c
        .slb(
            "RemoveVServerGroupBackendServers",
            &[("VServerGroupId", GROUP), ("BackendServers", servers)],
        )
        .await
        .unwrap();
    assert_ok(&a);
}

#[tokio::test]
async fn weighted_round_robin_spreads_exactly_by_weight() {
    let (h, c) = start(seed(60, false, json!({}))).await;
    let a = echo_backend("127.0.60.1", "a").await;
    let b = echo_backend("127.0.60.2", "b").await;
    // ENI backend on its secondary IP.
    let e = echo_backend("127.0.60.12", "eni").await;
    add(
        &c,
        &backends(&[("i-1", a.port(), 60), ("i-2", b.port(), 20)]),
    )
    .await;
    add(&c, &format!(r#"[{{"ServerId":"eni-1","Port":{},"Weight":20,"Type":"eni","ServerIp":"127.0.60.12"}}]"#, e.port())).await;
    let lb = h.listener_addr(LB, 80).unwrap();
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..400 {
        let conn = Conn::open(lb).await.expect("forwarded");
        *seen.entry(conn.name).or_default() += 1;
    }
    assert_eq!(
        seen,
        BTreeMap::from([("a".into(), 240), ("b".into(), 80), ("eni".into(), 80)])
    );
    let k = h.dataplane_counters(LB, 80).unwrap();
    assert_eq!((k.accepted, k.forwarded, k.refused), (400, 400, 0));
    let view = h.dataplane().into_iter().find(|l| l.port == 80).unwrap();
    assert_eq!(view.forwarded_by_backend[&format!("i-1:{}", a.port())], 240);
    assert_eq!(
        view.forwarded_by_backend[&format!("eni-1/127.0.60.12:{}", e.port())],
        80
    );
}

#[tokio::test]
async fn no_backend_refuses_and_unknown_port_fails_connect() {
    let (h, c) = start(seed(61, false, json!({}))).await;
    let lb = h.listener_addr(LB, 80).unwrap();
    assert!(Conn::open(lb).await.is_none());
    // A backend with nothing listening: the mock accepts, the connect fails, it closes.
    add(&c, &backends(&[("i-1", 1, 100)])).await;
    assert!(Conn::open(lb).await.is_none());
    let k = h.dataplane_counters(LB, 80).unwrap();
    assert_eq!(
        (k.accepted, k.refused, k.connect_failed, k.forwarded),
        (2, 1, 1, 0)
    );
}

#[tokio::test]
async fn weight_zero_stops_new_connections_but_established_continue() {
    let (h, c) = start(seed(62, false, json!({}))).await;
    let a = echo_backend("127.0.62.1", "a").await;
    let b = echo_backend("127.0.62.2", "b").await;
    add(&c, &backends(&[("i-1", a.port(), 1), ("i-2", b.port(), 1)])).await;
    let lb = h.listener_addr(LB, 80).unwrap();
    let mut to_b = None;
    for _ in 0..2 {
        let conn = Conn::open(lb).await.unwrap();
        if conn.name == "b" {
            to_b = Some(conn);
        }
    }
    let mut to_b = to_b.expect("round robin reached b");
    set(&c, &backends(&[("i-2", b.port(), 0)])).await;
    for _ in 0..10 {
        assert_eq!(Conn::open(lb).await.unwrap().name, "a");
    }
    assert!(
        to_b.alive().await,
        "established connection to a weight-0 backend continues"
    );
    assert_eq!(h.dataplane_counters(LB, 80).unwrap().cut, 0);
}

#[tokio::test]
async fn removal_with_drain_keeps_connections_until_the_timeout() {
    let (h, c) = start(seed(63, true, json!({}))).await;
    let a = echo_backend("127.0.63.1", "a").await;
    let b = echo_backend("127.0.63.2", "b").await;
    add(&c, &backends(&[("i-1", a.port(), 100)])).await;
    add(&c, &backends(&[("i-2", b.port(), 100)])).await;
    let lb = h.listener_addr(LB, 80).unwrap();
    let mut first = Conn::open(lb).await.unwrap();
    let mut second = Conn::open(lb).await.unwrap();
    if first.name != "a" {
        std::mem::swap(&mut first, &mut second);
    }
    let (mut to_a, mut to_b) = (first, second);
    assert_eq!((to_a.name.as_str(), to_b.name.as_str()), ("a", "b"));
    // Drain timeout is 10 s (the seed's listener).
    remove(&c, &backends(&[("i-1", a.port(), 100)])).await;
    assert_eq!(
        Conn::open(lb).await.unwrap().name,
        "b",
        "removed backend takes no new connections"
    );
    // 1 s of real-time slack before the window ends, for loaded machines.
    jump(Duration::from_millis(9_000)).await;
    assert!(
        to_a.alive().await,
        "drain keeps the connection inside the window"
    );
    assert_eq!(h.dataplane_counters(LB, 80).unwrap().cut, 0);
    jump(Duration::from_millis(1_000)).await;
    assert!(to_a.closed().await, "closed at the end of the drain window");
    assert!(
        to_b.alive().await,
        "other backends' connections are untouched"
    );
    assert_eq!(h.dataplane_counters(LB, 80).unwrap().cut, 1);
}

#[tokio::test]
async fn removal_without_drain_cuts_at_once() {
    let (h, c) = start(seed(64, false, json!({}))).await;
    let a = echo_backend("127.0.64.1", "a").await;
    add(&c, &backends(&[("i-1", a.port(), 100)])).await;
    let lb = h.listener_addr(LB, 80).unwrap();
    let mut conn = Conn::open(lb).await.unwrap();
    assert!(conn.alive().await);
    remove(&c, &backends(&[("i-1", a.port(), 100)])).await;
    assert!(
        conn.closed().await,
        "drain off: established connections are cut"
    );
    let k = h.dataplane_counters(LB, 80).unwrap();
    assert_eq!((k.cut, k.active), (1, 0));
    assert!(Conn::open(lb).await.is_none());
}

#[tokio::test]
async fn readding_within_the_drain_window_keeps_the_connection() {
    let (h, c) = start(seed(65, true, json!({}))).await;
    let a = echo_backend("127.0.65.1", "a").await;
    add(&c, &backends(&[("i-1", a.port(), 100)])).await;
    let lb = h.listener_addr(LB, 80).unwrap();
    let mut conn = Conn::open(lb).await.unwrap();
    remove(&c, &backends(&[("i-1", a.port(), 100)])).await;
    add(&c, &backends(&[("i-1", a.port(), 100)])).await;
    jump(Duration::from_secs(11)).await;
    assert!(conn.alive().await);
    assert_eq!(h.dataplane_counters(LB, 80).unwrap().cut, 0);
}

#[tokio::test]
async fn health_check_takes_a_dead_backend_out_of_rotation() {
    let mut s = seed(66, false, json!({}));
    s.load_balancers[0].listeners[0].health_check = Some(mock_slb::state::HealthCheck {
        interval_ms: 50,
        timeout_ms: 200,
        healthy_threshold: 1,
        unhealthy_threshold: 1,
        unchecked_serves: true,
    });
    let (h, c) = start(s).await;
    let a = echo_backend("127.0.66.1", "a").await;
    // i-2 has nothing listening on this port.
    add(
        &c,
        &backends(&[("i-1", a.port(), 100), ("i-2", a.port(), 100)]),
    )
    .await;
    // Let a few checks run (real time: they are real connects).
    let mut statuses = Vec::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let r = c
            .slb(
                "DescribeHealthStatus",
                &[("LoadBalancerId", LB), ("ListenerPort", "80")],
            )
            .await
            .unwrap();
        statuses = r.body["BackendServers"]["BackendServer"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["ServerId"].as_str().unwrap().to_string(),
                    b["ServerHealthStatus"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        if statuses.iter().all(|(_, s)| s != "unavailable") {
            break;
        }
    }
    assert_eq!(
        statuses,
        vec![
            ("i-1".to_string(), "normal".to_string()),
            ("i-2".to_string(), "abnormal".to_string())
        ]
    );
    let lb = h.listener_addr(LB, 80).unwrap();
    for _ in 0..6 {
        assert_eq!(Conn::open(lb).await.unwrap().name, "a");
    }
    assert_eq!(h.dataplane_counters(LB, 80).unwrap().connect_failed, 0);
}

#[tokio::test]
async fn shutdown_closes_api_listeners_and_connections() {
    let (h, c) = start(seed(67, false, json!({}))).await;
    let a = echo_backend("127.0.67.1", "a").await;
    add(&c, &backends(&[("i-1", a.port(), 100)])).await;
    let lb = h.listener_addr(LB, 80).unwrap();
    let api = h.api_addr();
    let mut conn = Conn::open(lb).await.unwrap();
    h.shutdown().await;
    assert!(conn.closed().await, "proxied connections are closed");
    assert!(
        tokio::net::TcpStream::connect(lb).await.is_err(),
        "listener gone"
    );
    assert!(
        tokio::net::TcpStream::connect(api).await.is_err(),
        "API gone"
    );
}
