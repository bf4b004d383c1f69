//! Every limit the mock SLB enforces, reached through the production client: each comes
//! back as a Permanent error (never retried) quoting the API's code, message and RequestId,
//! and a refused write changes nothing (or, across batches, leaves the earlier ones).
//!
//! Weight above 100 cannot be sent: `Weight` refuses it at construction. The 100-IP limit
//! of `DescribeNetworkInterfaces` is never reached: the client splits (see
//! `slb_mock_actions.rs`).

use support::slb_mock;

use serde_json::json;
use slb_mock::*;
use slb_sync::model::Weight;
use slb_sync::slb::{ErrorClass, RpcSlbClient, SlbApi};

const PERMANENT: ErrorClass = ErrorClass::Permanent;

#[tokio::test]
async fn more_than_twenty_backends_in_one_call_is_refused() {
    let mock = start_mock(seed(180, false, json!({}))).await;
    let mut config = config(&mock);
    config.batch_size = 21;
    let c = RpcSlbClient::new(config, static_creds(KEY_ID, SECRET, None));
    let all: Vec<_> = (1..=21)
        .map(|i| ecs(&format!("i-{i}"), 30080, 10))
        .collect();
    let e = assert_api_error(
        c.add_backends(GROUP, &all).await,
        "TooManyBackendServers",
        PERMANENT,
    );
    assert!(e.message.contains("20"), "{e}");
    assert!(members(&mock, GROUP).is_empty());
    // Twenty is fine.
    c.add_backends(GROUP, &all[..20]).await.unwrap();
    assert_eq!(members(&mock, GROUP).len(), 20);
}

#[tokio::test]
async fn bad_port_and_description_are_invalid_parameters() {
    let (mock, c) = start(seed(181, false, json!({}))).await;
    assert_api_error(
        c.add_backends(GROUP, &[ecs("i-1", 0, 10)]).await,
        "InvalidParameter",
        PERMANENT,
    );
    for bad in ["has space", "semi;colon", &"x".repeat(81)] {
        let mut b = ecs("i-1", 30080, 10);
        b.description = bad.to_string();
        let e = assert_api_error(
            c.add_backends(GROUP, &[b]).await,
            "InvalidParameter",
            PERMANENT,
        );
        assert!(e.message.contains("Description"), "{e}");
    }
    let mut ok = ecs("i-1", 65535, 10);
    ok.description = "x".repeat(80);
    c.add_backends(GROUP, &[ok]).await.unwrap();
    assert_eq!(members(&mock, GROUP).len(), 1);
    assert!(
        Weight::new(101).is_none(),
        "weights above 100 cannot be built"
    );
}

#[tokio::test]
async fn membership_rules_add_existing_fails_remove_absent_succeeds() {
    let (mock, c) = start(seed(182, false, json!({}))).await;
    c.add_backends(
        GROUP,
        &[ecs("i-1", 30080, 10), eni("eni-1", "127.0.182.101", 80, 10)],
    )
    .await
    .unwrap();
    // Adding a member that exists is an error at the SLB (HTTP 400 InvalidParameter).
    let e = assert_api_error(
        c.add_backends(GROUP, &[ecs("i-2", 30080, 10), ecs("i-1", 30080, 50)])
            .await,
        "InvalidParameter",
        PERMANENT,
    );
    assert!(e.message.contains("i-1"), "{e}");
    assert_eq!(members(&mock, GROUP).len(), 2, "the whole call is refused");
    // The same ENI on its other IP is a different member.
    c.add_backends(GROUP, &[eni("eni-1", "127.0.182.102", 80, 10)])
        .await
        .unwrap();
    assert_api_error(
        c.add_backends(GROUP, &[eni("eni-1", "127.0.182.101", 80, 10)])
            .await,
        "InvalidParameter",
        PERMANENT,
    );
    // Removing an absent member succeeds and changes nothing.
    c.remove_backends(GROUP, &[ecs("i-9", 30080, 0), ecs("i-1", 1234, 0)])
        .await
        .unwrap();
    assert_eq!(members(&mock, GROUP).len(), 3);
    // Setting a member that is not there is refused.
    assert_api_error(
        c.set_backends(GROUP, &[ecs("i-9", 30080, 0)]).await,
        "InvalidParameter",
        PERMANENT,
    );
}

#[tokio::test]
async fn unknown_servers_groups_instances_and_listeners() {
    let (mock, c) = start(seed(183, false, json!({}))).await;
    assert_api_error(
        c.add_backends(GROUP, &[ecs("i-404", 30080, 10)]).await,
        "InvalidServerId.NotExist",
        PERMANENT,
    );
    assert_api_error(
        c.add_backends(GROUP, &[eni("eni-404", "127.0.183.101", 80, 10)])
            .await,
        "InvalidServerId.NotExist",
        PERMANENT,
    );
    // An IP that is not the ENI's.
    assert_api_error(
        c.add_backends(GROUP, &[eni("eni-2", "127.0.183.101", 80, 10)])
            .await,
        "InvalidParameter",
        PERMANENT,
    );
    for result in [
        c.add_backends("rsp-404", &[ecs("i-1", 30080, 10)]).await,
        c.remove_backends("rsp-404", &[ecs("i-1", 30080, 10)]).await,
        c.set_backends("rsp-404", &[ecs("i-1", 30080, 10)]).await,
    ] {
        let e = assert_api_error(result, "InvalidParameter", PERMANENT);
        assert_eq!(e.message, "The specified VServerGroupId does not exist.");
    }
    assert_api_error(
        c.list_vserver_groups("lb-404").await,
        "InvalidLoadBalancerId.NotFound",
        PERMANENT,
    );
    assert_api_error(
        c.create_vserver_group("lb-404", "k8s/80/a/b/c").await,
        "InvalidLoadBalancerId.NotFound",
        PERMANENT,
    );
    assert_api_error(
        c.describe_listeners("lb-404").await,
        "InvalidLoadBalancerId.NotFound",
        PERMANENT,
    );
    let mut gone = c.describe_listeners(LB).await.unwrap()[1].clone();
    gone.port = 81;
    assert_api_error(
        c.set_listener_drain(LB, &gone, true, Some(30)).await,
        "ListenerNotFound",
        PERMANENT,
    );
    assert!(members(&mock, GROUP).is_empty());
}

#[tokio::test]
async fn group_names_and_groups_in_use() {
    let (mock, c) = start(seed(184, false, json!({}))).await;
    assert_api_error(
        c.create_vserver_group(LB, "bad name!").await,
        "InvalidParameter",
        PERMANENT,
    );
    // The listener on port 80 uses the seeded group.
    assert_api_error(
        c.delete_vserver_group(GROUP).await,
        "RspoolVipExist",
        PERMANENT,
    );
    assert!(mock.state().v_server_groups.contains_key(GROUP));
}

#[tokio::test]
async fn connection_drain_timeout_must_be_ten_to_nine_hundred() {
    let (mock, c) = start(seed(185, false, json!({}))).await;
    let tcp = c.describe_listeners(LB).await.unwrap()[1].clone();
    assert_eq!(tcp.port, 80);
    for bad in [0, 9, 901] {
        assert_api_error(
            c.set_listener_drain(LB, &tcp, true, Some(bad)).await,
            "InvalidParameter",
            PERMANENT,
        );
    }
    // Drain on needs a timeout.
    let e = assert_api_error(
        c.set_listener_drain(LB, &tcp, true, None).await,
        "MissingParameter",
        PERMANENT,
    );
    assert!(e.message.contains("ConnectionDrainTimeout"), "{e}");
    assert!(!mock.state().load_balancers[LB].listeners[&80].connection_drain);
    for good in [10, 900] {
        c.set_listener_drain(LB, &tcp, true, Some(good))
            .await
            .unwrap();
        assert_eq!(
            mock.state().load_balancers[LB].listeners[&80].connection_drain_timeout,
            good
        );
    }
}

#[tokio::test]
async fn instance_quota_stops_a_batched_write_part_way() {
    let mut s = seed(186, false, json!({}));
    s.load_balancers[0].backend_quota = 30;
    let (mock, c) = start(s).await;
    let all: Vec<_> = (1..=45)
        .map(|i| ecs(&format!("i-{i}"), 30080, 10))
        .collect();
    assert_api_error(
        c.add_backends(GROUP, &all).await,
        "InstanceBackendServerNumberOverLimit",
        PERMANENT,
    );
    // The first batch of 20 stays applied, the second is refused, the third never sent.
    let mut ids: Vec<_> = members(&mock, GROUP).into_iter().map(|m| m.0).collect();
    ids.sort_by_key(|id| id[2..].parse::<u32>().unwrap());
    assert_eq!(ids, (1..=20).map(|i| format!("i-{i}")).collect::<Vec<_>>());
    let calls = calls_of(&mock, "AddVServerGroupBackendServers");
    let statuses: Vec<_> = calls.iter().map(|c| (c.status, c.code.clone())).collect();
    assert_eq!(
        statuses,
        vec![
            (200, None),
            (400, Some("InstanceBackendServerNumberOverLimit".into()))
        ]
    );
    // Up to the quota is fine.
    c.add_backends(GROUP, &all[20..30]).await.unwrap();
    assert_eq!(members(&mock, GROUP).len(), 30);
}
