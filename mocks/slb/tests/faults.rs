//! Fault injection through the admin API and the seed: error rates, throttling, the
//! vServer group write gap, latency and propagation delay; call log and counters.

mod common;

use std::time::Duration;

use common::*;
use mock_slb::client::http;
use mock_slb::faults::propagation::{BackendPropagation, Tail};
use mock_slb::{ErrorFault, FaultConfig, LatencyFault, Seed};
use serde_json::json;

fn add_one(port: u16) -> String {
    backends(&[("i-1", port, 100)])
}

#[tokio::test]
async fn error_rate_100_percent_through_admin_api_and_counters() {
    let (h, c) = start(seed(50, false, json!({}))).await;
    let faults = json!({"errors": [{"action": "AddVServerGroupBackendServers", "code": "ServiceUnavailable", "status": 503, "rate": 1.0}]});
    let a = http(
        h.api_addr(),
        "PUT",
        "/admin/faults",
        Some(("application/json", &faults.to_string())),
    )
    .await
    .unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    for port in 1..=3 {
        let a = c
            .slb(
                "AddVServerGroupBackendServers",
                &[
                    ("VServerGroupId", GROUP),
                    ("BackendServers", &add_one(port)),
                ],
            )
            .await
            .unwrap();
        assert_err(&a, 503, "ServiceUnavailable");
    }
    assert!(
        h.state().v_server_groups[GROUP].backends.is_empty(),
        "failed calls change nothing"
    );
    assert_ok(
        &c.slb("DescribeVServerGroups", &[("LoadBalancerId", LB)])
            .await
            .unwrap(),
    );

    let counters = http(h.api_addr(), "GET", "/admin/counters", None)
        .await
        .unwrap()
        .body;
    assert_eq!(counters["api"]["AddVServerGroupBackendServers"]["calls"], 3);
    assert_eq!(
        counters["api"]["AddVServerGroupBackendServers"]["errors"]["ServiceUnavailable"],
        3
    );
    assert_eq!(counters["api"]["DescribeVServerGroups"]["ok"], 1);

    let log = http(h.api_addr(), "GET", "/admin/calls", None)
        .await
        .unwrap()
        .body;
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 4);
    assert_eq!(log[0]["action"], "AddVServerGroupBackendServers");
    assert_eq!(log[0]["status"], 503);
    assert_eq!(log[0]["params"]["VServerGroupId"], GROUP);
    assert!(
        log[0]["params"].get("Signature").is_none(),
        "signatures are not logged"
    );

    // Clearing the faults lets the call through.
    h.set_faults(FaultConfig::default());
    let a = c
        .slb(
            "AddVServerGroupBackendServers",
            &[("VServerGroupId", GROUP), ("BackendServers", &add_one(1))],
        )
        .await
        .unwrap();
    assert_ok(&a);
}

#[tokio::test]
async fn faults_from_a_yaml_seed() {
    let yaml = format!(
        r#"
access_keys:
  - {{id: {KEY_ID}, secret: {SECRET}}}
ecs_instances:
  - {{id: i-1, ip: 127.0.51.1}}
load_balancers:
  - id: {LB}
    listeners:
      - {{port: 80, protocol: tcp, vserver_group_id: {GROUP}}}
    vserver_groups:
      - id: {GROUP}
        name: web
        backends:
          - {{server_id: i-1, port: 30080, weight: 100, type: ecs, description: k8s/80/web/default/c1}}
faults:
  errors:
    - {{action: DescribeVServerGroupAttribute, code: BackendServer.configuring, status: 409, rate: 1.0}}
"#
    );
    let seed = Seed::parse(&yaml, "inline").expect("yaml seed parses");
    let (h, c) = start(seed).await;
    assert_eq!(h.state().v_server_groups[GROUP].backends[0].port, 30080);
    let a = c
        .slb(
            "DescribeVServerGroupAttribute",
            &[("VServerGroupId", GROUP)],
        )
        .await
        .unwrap();
    assert_err(&a, 409, "BackendServer.configuring");
    assert!(h.listener_addr(LB, 80).is_some());
}

#[tokio::test]
async fn qps_limit_answers_throttling() {
    let (h, c) = start(seed(52, false, json!({}))).await;
    h.set_faults(FaultConfig {
        qps_limit: Some(0.2),
        ..FaultConfig::default()
    });
    let call = || c.slb("DescribeVServerGroups", &[("LoadBalancerId", LB)]);
    // One call every 5 s: generous real-time slack even on a loaded machine.
    assert_ok(&call().await.unwrap());
    assert_err(&call().await.unwrap(), 400, "Throttling");
    jump(Duration::from_secs(5)).await;
    assert_ok(&call().await.unwrap());
    assert_eq!(
        h.counters()["DescribeVServerGroups"].errors["Throttling"],
        1
    );
}

#[tokio::test]
async fn writes_to_one_group_closer_than_the_gap_are_processing() {
    let (h, c) = start(seed(53, false, json!({}))).await;
    h.set_faults(FaultConfig {
        group_write_gap_ms: Some(5000),
        ..FaultConfig::default()
    });
    let add = |port| {
        let c = c.clone();
        async move {
            c.slb(
                "AddVServerGroupBackendServers",
                &[
                    ("VServerGroupId", GROUP),
                    ("BackendServers", &add_one(port)),
                ],
            )
            .await
            .unwrap()
        }
    };
    assert_ok(&add(1).await);
    assert_err(&add(2).await, 400, "VServerGroupProcessing");
    // Other groups and reads are not affected.
    let a = c
        .slb(
            "CreateVServerGroup",
            &[("LoadBalancerId", LB), ("VServerGroupName", "other")],
        )
        .await
        .unwrap();
    let other = a.body["VServerGroupId"].as_str().unwrap().to_string();
    let a = c
        .slb(
            "AddVServerGroupBackendServers",
            &[("VServerGroupId", &other), ("BackendServers", &add_one(1))],
        )
        .await
        .unwrap();
    assert_ok(&a);
    assert_ok(
        &c.slb(
            "DescribeVServerGroupAttribute",
            &[("VServerGroupId", GROUP)],
        )
        .await
        .unwrap(),
    );
    jump(Duration::from_millis(5000)).await;
    assert_ok(&add(2).await);
}

#[tokio::test]
async fn propagation_delay_applies_to_the_data_plane_later() {
    let (h, c) = start(seed(54, false, json!({}))).await;
    h.set_faults(FaultConfig {
        propagation_delay_ms: 5000,
        ..FaultConfig::default()
    });
    let a = c
        .slb(
            "AddVServerGroupBackendServers",
            &[
                ("VServerGroupId", GROUP),
                ("BackendServers", &add_one(30080)),
            ],
        )
        .await
        .unwrap();
    assert_ok(&a);
    assert_eq!(
        h.state().v_server_groups[GROUP].backends.len(),
        1,
        "the API shows it at once"
    );
    let applied = |h: &mock_slb::MockSlbHandle| {
        h.dataplane()
            .iter()
            .find(|l| l.port == 80)
            .unwrap()
            .targets
            .len()
    };
    assert_eq!(applied(&h), 0);
    jump(Duration::from_millis(4000)).await;
    assert_eq!(applied(&h), 0);
    jump(Duration::from_millis(1000)).await;
    assert_eq!(applied(&h), 1);
}

#[tokio::test(start_paused = true)]
async fn latency_is_added_on_the_tokio_clock() {
    let (h, c) = start(seed(55, false, json!({}))).await;
    h.set_faults(FaultConfig {
        latency: vec![LatencyFault {
            action: Some("DescribeVServerGroups".into()),
            min_ms: 2000,
            max_ms: 2000,
        }],
        errors: vec![ErrorFault {
            action: Some("Nothing".into()),
            code: "X".into(),
            status: 500,
            message: None,
            rate: 1.0,
        }],
        ..FaultConfig::default()
    });
    let t0 = tokio::time::Instant::now();
    assert_ok(
        &c.slb("DescribeVServerGroups", &[("LoadBalancerId", LB)])
            .await
            .unwrap(),
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(2000),
        "{:?}",
        t0.elapsed()
    );
    let t1 = tokio::time::Instant::now();
    assert_ok(
        &c.slb(
            "DescribeVServerGroupAttribute",
            &[("VServerGroupId", GROUP)],
        )
        .await
        .unwrap(),
    );
    assert!(t1.elapsed() < Duration::from_millis(2000));
}

/// Weights of the data plane's targets of listener 80, by port.
fn carried(h: &mock_slb::MockSlbHandle) -> Vec<(u16, u32)> {
    let mut v: Vec<(u16, u32)> = h
        .dataplane()
        .iter()
        .find(|l| l.port == 80)
        .map(|l| l.targets.iter().map(|t| (t.key.port, t.weight)).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn lag(add_ms: u64, weight_ms: u64, remove_ms: u64) -> FaultConfig {
    FaultConfig {
        backend_propagation: Some(BackendPropagation {
            add: Tail::fixed(add_ms),
            weight: Tail::fixed(weight_ms),
            remove: Tail::fixed(remove_ms),
        }),
        seed: Some(1),
        ..FaultConfig::default()
    }
}

#[tokio::test]
async fn member_changes_land_one_by_one_and_a_later_weight_change_can_overtake_an_add() {
    let (h, c) = start(seed(56, false, json!({}))).await;
    let add = |port: u16| {
        let c = &c;
        async move {
            c.slb(
                "AddVServerGroupBackendServers",
                &[
                    ("VServerGroupId", GROUP),
                    ("BackendServers", &add_one(port)),
                ],
            )
            .await
            .unwrap()
        }
    };
    assert_ok(&add(1).await);
    h.set_faults(lag(3000, 200, 200));
    assert_ok(&add(2).await);
    let a = c
        .slb(
            "SetVServerGroupAttribute",
            &[
                ("VServerGroupId", GROUP),
                ("BackendServers", &backends(&[("i-1", 1, 0)])),
            ],
        )
        .await
        .unwrap();
    assert_ok(&a);
    assert_eq!(carried(&h), vec![(1, 100)], "nothing landed yet");
    jump(Duration::from_millis(300)).await;
    assert_eq!(
        carried(&h),
        vec![(1, 0)],
        "the weight 0 written after the add landed first: no member takes connections"
    );
    jump(Duration::from_millis(2800)).await;
    assert_eq!(carried(&h), vec![(1, 0), (2, 100)]);
}

#[tokio::test]
async fn a_member_removed_right_after_its_add_lands_in_write_order() {
    let (h, c) = start(seed(57, false, json!({}))).await;
    h.set_faults(lag(3000, 100, 100));
    let write = |action: &'static str| {
        let c = &c;
        async move {
            c.slb(
                action,
                &[("VServerGroupId", GROUP), ("BackendServers", &add_one(7))],
            )
            .await
            .unwrap()
        }
    };
    assert_ok(&write("AddVServerGroupBackendServers").await);
    assert_ok(&write("RemoveVServerGroupBackendServers").await);
    assert!(h.state().v_server_groups[GROUP].backends.is_empty());
    jump(Duration::from_millis(2900)).await;
    assert_eq!(carried(&h), vec![], "neither landed");
    // The add lands at 3 s and the removal right behind it, never the other way round
    // (which would leave a member the API no longer has).
    jump(Duration::from_millis(200)).await;
    assert_eq!(carried(&h), vec![]);
}
