//! Fault injection through the mock SLB, seen by the production client: every error class
//! (throttling, busy, unavailable, permanent) with the real codes and HTTP statuses, the
//! QPS limits, the `VServerGroupProcessing` write gap, latency beyond the call deadline,
//! and the per-action metrics the client records.

use support::slb_mock;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mock_slb::{ErrorFault, FaultConfig, LatencyFault};
use serde_json::json;
use slb_mock::*;
use slb_sync::slb::{ErrorClass, RpcSlbClient, SlbApi, SlbMetrics};

fn always(action: Option<&str>, code: &str, status: u16) -> FaultConfig {
    FaultConfig {
        errors: vec![ErrorFault {
            action: action.map(str::to_string),
            code: code.into(),
            status,
            message: None,
            rate: 1.0,
        }],
        ..FaultConfig::default()
    }
}

#[tokio::test]
async fn injected_codes_keep_their_class_whatever_the_http_status() {
    let (mock, c) = start(seed(200, false, json!({}))).await;
    for (code, status, class) in [
        ("Throttling", 400, ErrorClass::Throttling),
        ("Throttling.User", 400, ErrorClass::Throttling),
        ("Throttling.Api", 503, ErrorClass::Throttling),
        ("SystemBusy", 449, ErrorClass::Busy),
        ("SystemBusy", 503, ErrorClass::Busy),
        ("OperationBusy", 400, ErrorClass::Busy),
        ("ServiceIsConfiguring", 400, ErrorClass::Busy),
        ("ServiceIsStopping", 400, ErrorClass::Busy),
        ("BackendServer.configuring", 409, ErrorClass::Busy),
        ("VServerGroupProcessing", 400, ErrorClass::Busy),
        ("ServiceUnavailable", 503, ErrorClass::Unavailable),
        ("InternalError", 500, ErrorClass::Unavailable),
        ("UnknownError", 500, ErrorClass::Unavailable),
        ("Forbidden.RAM", 403, ErrorClass::Permanent),
        ("QuotaExceeded", 400, ErrorClass::Permanent),
    ] {
        mock.set_faults(always(Some("AddVServerGroupBackendServers"), code, status));
        let e = assert_api_error(
            c.add_backends(GROUP, &[ecs("i-1", 30080, 10)]).await,
            code,
            class,
        );
        assert_eq!(e.is_retryable(), class != ErrorClass::Permanent);
        assert_eq!(
            e.message,
            format!("Injected fault {code} for AddVServerGroupBackendServers.")
        );
        // Reads are not affected by a write fault.
        c.describe_vserver_group(GROUP).await.unwrap();
    }
    assert!(members(&mock, GROUP).is_empty());
    mock.set_faults(FaultConfig::default());
    c.add_backends(GROUP, &[ecs("i-1", 30080, 10)])
        .await
        .unwrap();
    let counters = mock.counters();
    let add = &counters["AddVServerGroupBackendServers"];
    assert_eq!((add.calls, add.ok), (16, 1));
    assert_eq!(add.errors["SystemBusy"], 2);
}

#[tokio::test]
async fn qps_limits_answer_throttling_and_refill() {
    let (mock, c) = start(seed(201, false, json!({}))).await;
    // One call per 100 s (the bucket holds at least one call): the outcome does not
    // depend on how long calls take on a loaded machine.
    mock.set_faults(FaultConfig {
        qps_limit: Some(0.01),
        throttling_code: Some("Throttling.User".into()),
        ..FaultConfig::default()
    });
    c.list_vserver_groups(LB).await.unwrap();
    let e = assert_api_error(
        c.describe_vserver_group(GROUP).await,
        "Throttling.User",
        ErrorClass::Throttling,
    );
    assert!(e.is_retryable());
    jump(Duration::from_secs(101)).await;
    c.list_vserver_groups(LB).await.unwrap();

    // A per-action limit throttles that action only.
    mock.set_faults(FaultConfig {
        action_qps_limits: BTreeMap::from([("DescribeVServerGroupAttribute".into(), 0.01)]),
        ..FaultConfig::default()
    });
    c.describe_vserver_group(GROUP).await.unwrap();
    assert_api_error(
        c.describe_vserver_group(GROUP).await,
        "Throttling",
        ErrorClass::Throttling,
    );
    for _ in 0..3 {
        c.list_vserver_groups(LB).await.unwrap();
    }
    let counters = mock.counters();
    assert_eq!(counters["DescribeVServerGroupAttribute"].errors.len(), 2);
}

#[tokio::test]
async fn writes_to_one_group_closer_than_the_gap_are_processing() {
    let (mock, c) = start(seed(202, false, json!({}))).await;
    mock.set_faults(FaultConfig {
        group_write_gap_ms: Some(60_000),
        ..FaultConfig::default()
    });
    c.add_backends(GROUP, &[ecs("i-1", 30080, 10)])
        .await
        .unwrap();
    let e = assert_api_error(
        c.set_backends(GROUP, &[ecs("i-1", 30080, 0)]).await,
        "VServerGroupProcessing",
        ErrorClass::Busy,
    );
    assert!(e.is_retryable());
    // A batched write meets the gap between its own batches: the first batch lands, the
    // second is refused as busy, which the reconciler retries after a backoff.
    let other = c
        .create_vserver_group(LB, "k8s/443/web/default/c1")
        .await
        .unwrap();
    let many: Vec<_> = (1..=25).map(|i| ecs(&format!("i-{i}"), 443, 10)).collect();
    assert_api_error(
        c.add_backends(&other, &many).await,
        "VServerGroupProcessing",
        ErrorClass::Busy,
    );
    assert_eq!(members(&mock, &other).len(), 20);
    // Other groups and reads are not held up.
    c.describe_vserver_group(GROUP).await.unwrap();
    assert_eq!(members(&mock, GROUP)[0].3, 10);
}

#[tokio::test]
async fn latency_beyond_the_deadline_is_an_unavailable_timeout() {
    let mock = start_mock(seed(203, false, json!({}))).await;
    mock.set_faults(FaultConfig {
        latency: vec![LatencyFault {
            action: Some("DescribeVServerGroups".into()),
            min_ms: 120_000,
            max_ms: 120_000,
        }],
        ..FaultConfig::default()
    });
    let mut config = config(&mock);
    // Room for a first connection on a loaded machine.
    config.timeout = Duration::from_secs(5);
    let c = RpcSlbClient::new(config, static_creds(KEY_ID, SECRET, None));
    let started = Instant::now();
    let e = c.list_vserver_groups(LB).await.unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.class),
        ("Timeout", ErrorClass::Unavailable),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the deadline cut the call, not the mock's answer"
    );
    // Actions without latency answer in time.
    c.describe_vserver_group(GROUP).await.unwrap();
}

#[tokio::test]
async fn a_stopped_mock_is_an_unavailable_transport_error() {
    let mock = start_mock(seed(204, false, json!({}))).await;
    let c = client(&mock);
    mock.shutdown().await;
    let e = c.list_vserver_groups(LB).await.unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.class),
        ("Transport", ErrorClass::Unavailable),
        "{e}"
    );
    assert!(!e.to_string().contains("Signature="), "no signed URL: {e}");
}

#[tokio::test]
async fn calls_are_counted_by_action_and_result_class() {
    let mock = start_mock(seed(205, false, json!({}))).await;
    let registry = prometheus::Registry::new();
    let c = client(&mock).with_metrics(SlbMetrics::register(&registry).unwrap());
    c.add_backends(GROUP, &[ecs("i-1", 30080, 10)])
        .await
        .unwrap();
    mock.set_faults(always(
        Some("AddVServerGroupBackendServers"),
        "SystemBusy",
        449,
    ));
    c.add_backends(GROUP, &[ecs("i-2", 30080, 10)])
        .await
        .unwrap_err();
    c.add_backends(GROUP, &[ecs("i-1", 30080, 10)])
        .await
        .unwrap_err();
    mock.set_faults(FaultConfig::default());
    c.add_backends(GROUP, &[ecs("i-1", 30080, 10)])
        .await
        .unwrap_err();

    let count = |action: &str, result: &str| -> u64 {
        registry
            .gather()
            .iter()
            .find(|f| f.name() == "slb_sync_slb_calls_total")
            .and_then(|f| {
                f.get_metric().iter().find(|m| {
                    let labels: BTreeMap<_, _> = m
                        .get_label()
                        .iter()
                        .map(|l| (l.name(), l.value()))
                        .collect();
                    labels.get("action") == Some(&action) && labels.get("result") == Some(&result)
                })
            })
            .map(|m| m.get_counter().get_value() as u64)
            .unwrap_or(0)
    };
    let add = "AddVServerGroupBackendServers";
    assert_eq!(count(add, "ok"), 1);
    assert_eq!(count(add, "busy"), 2);
    assert_eq!(count(add, "permanent"), 1, "adding an existing member");
    assert_eq!(count(add, "throttling"), 0);
}
