//! The production SLB client against the mock SLB over loopback HTTP: every `SlbApi`
//! action round-trips through the mock's state, requests carry what the real API needs,
//! and write calls are cut into batches of at most 20 in a stable order.

use support::slb_mock;

use std::collections::HashMap;
use std::net::IpAddr;

use serde_json::json;
use slb_mock::*;
use slb_sync::slb::{ErrorClass, Listener, ListenerProtocol, SlbApi, VServerGroupSummary};

#[tokio::test]
async fn vserver_groups_are_listed_created_described_and_deleted() {
    let (mock, c) = start(seed(170, false, json!({}))).await;
    assert_eq!(
        c.list_vserver_groups(LB).await.unwrap(),
        vec![VServerGroupSummary {
            v_server_group_id: GROUP.into(),
            v_server_group_name: OWNER.into(),
            listener_ports: vec![80],
            ..VServerGroupSummary::default()
        }]
    );

    let name = "k8s/443/web/default/c1";
    let id = c.create_vserver_group(LB, name).await.unwrap();
    assert!(id.starts_with("rsp-"), "{id}");
    let listed = c.list_vserver_groups(LB).await.unwrap();
    let created = listed
        .iter()
        .find(|g| g.v_server_group_id == id && g.v_server_group_name == name)
        .expect("the new group is listed");
    // Tagged as the agent's: the proof that it may delete the group once empty.
    assert!(created.created_by_agent(), "{created:?}");
    assert!(created.listener_ports.is_empty());
    assert!(!listed
        .iter()
        .find(|g| g.v_server_group_id == GROUP)
        .unwrap()
        .created_by_agent());
    let group = c.describe_vserver_group(&id).await.unwrap();
    assert_eq!(
        (
            group.v_server_group_id.as_str(),
            group.v_server_group_name.as_str(),
            group.load_balancer_id.as_str(),
            group.backends.len()
        ),
        (id.as_str(), name, LB, 0)
    );

    c.delete_vserver_group(&id).await.unwrap();
    assert!(!mock.state().v_server_groups.contains_key(&id));
    // The real SLB answers an unknown group with HTTP 404 `InvalidParameter` and this
    // message; the client keeps it so Events can quote it, and never retries it.
    let e = assert_api_error(
        c.describe_vserver_group(&id).await,
        "InvalidParameter",
        ErrorClass::Permanent,
    );
    assert_eq!(e.message, "The specified VServerGroupId does not exist.");
    assert_eq!(e.action, "DescribeVServerGroupAttribute");
    assert_api_error(
        c.delete_vserver_group(&id).await,
        "InvalidParameter",
        ErrorClass::Permanent,
    );
}

#[tokio::test]
async fn backends_are_added_set_and_removed_ecs_and_eni() {
    let (mock, c) = start(seed(171, false, json!({}))).await;
    let added = vec![
        ecs("i-1", 30080, 100),
        ecs("i-2", 30080, 50),
        eni("eni-1", "127.0.171.101", 8080, 100),
        // The second IP of the same ENI is a member of its own (ServerId, ServerIp, Port).
        eni("eni-1", "127.0.171.102", 8080, 30),
    ];
    c.add_backends(GROUP, &added).await.unwrap();

    let group = c.describe_vserver_group(GROUP).await.unwrap();
    let mut read: Vec<_> = group.backends.clone();
    read.sort_by_key(|b| (b.server_id.clone(), b.server_ip, b.port));
    let got: Vec<_> = read
        .iter()
        .map(|b| {
            (
                b.server_id.as_str(),
                b.backend_type.as_str(),
                b.server_ip.map(|ip| ip.to_string()),
                b.port,
                b.weight.get(),
                b.description.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "eni-1",
                "eni",
                Some("127.0.171.101".into()),
                8080,
                100,
                OWNER
            ),
            (
                "eni-1",
                "eni",
                Some("127.0.171.102".into()),
                8080,
                30,
                OWNER
            ),
            // ECS members are reported with the instance's IP.
            ("i-1", "ecs", Some("127.0.171.1".into()), 30080, 100, OWNER),
            ("i-2", "ecs", Some("127.0.171.2".into()), 30080, 50, OWNER),
        ]
    );
    // Reading back gives the identity the planner matches on.
    for b in &added {
        assert!(
            group.backends.iter().any(|r| r.key() == b.key()),
            "{b:?} not read back"
        );
    }

    // Set: weight and description of existing members only; others keep theirs.
    let mut drained = eni("eni-1", "127.0.171.102", 8080, 0);
    drained.description = "k8s/80/web/default/c2".into();
    c.set_backends(GROUP, &[ecs("i-2", 30080, 0), drained])
        .await
        .unwrap();
    let by_key: HashMap<_, _> = members(&mock, GROUP)
        .into_iter()
        .map(|(id, ip, port, w)| ((id, ip, port), w))
        .collect();
    let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    assert_eq!(by_key[&("i-1".to_string(), None, 30080)], 100);
    assert_eq!(by_key[&("i-2".to_string(), None, 30080)], 0);
    assert_eq!(
        by_key[&("eni-1".to_string(), ip("127.0.171.101"), 8080)],
        100
    );
    assert_eq!(by_key[&("eni-1".to_string(), ip("127.0.171.102"), 8080)], 0);
    let stored = mock.state().v_server_groups[GROUP].backends.clone();
    assert_eq!(
        stored
            .iter()
            .find(|b| b.server_ip == ip("127.0.171.102"))
            .unwrap()
            .description,
        "k8s/80/web/default/c2"
    );

    // Remove takes one ENI IP out and leaves the other; absent members are ignored.
    c.remove_backends(
        GROUP,
        &[
            eni("eni-1", "127.0.171.102", 8080, 0),
            ecs("i-2", 30080, 0),
            ecs("i-3", 30080, 0),
        ],
    )
    .await
    .unwrap();
    let mut left: Vec<_> = members(&mock, GROUP)
        .into_iter()
        .map(|(id, ip, port, _)| (id, ip, port))
        .collect();
    left.sort();
    assert_eq!(
        left,
        vec![
            ("eni-1".to_string(), ip("127.0.171.101"), 8080),
            ("i-1".to_string(), None, 30080),
        ]
    );

    // What went over the wire: the documented BackendServers shape, ServerIp for ENIs,
    // no Description on removal.
    let adds = batches_sent(&mock, "AddVServerGroupBackendServers");
    assert_eq!(
        adds[0][2],
        json!({"ServerId": "eni-1", "ServerIp": "127.0.171.101", "Port": 8080,
               "Weight": 100, "Type": "eni", "Description": OWNER})
    );
    let removes = batches_sent(&mock, "RemoveVServerGroupBackendServers");
    assert!(removes[0].iter().all(|b| b.get("Description").is_none()));
}

#[tokio::test]
async fn forty_five_backends_go_in_batches_of_twenty_twenty_five_in_order() {
    let (mock, c) = start(seed(172, false, json!({}))).await;
    let all: Vec<_> = (1..=45)
        .map(|i| ecs(&format!("i-{i}"), 30080, 10))
        .collect();
    let ids = |batch: &Vec<serde_json::Value>| -> Vec<String> {
        batch
            .iter()
            .map(|b| b["ServerId"].as_str().unwrap().to_string())
            .collect()
    };
    let expected: Vec<Vec<String>> = [1..=20, 21..=40, 41..=45]
        .into_iter()
        .map(|r| r.map(|i| format!("i-{i}")).collect())
        .collect();

    c.add_backends(GROUP, &all).await.unwrap();
    let sent = batches_sent(&mock, "AddVServerGroupBackendServers");
    assert_eq!(sent.iter().map(ids).collect::<Vec<_>>(), expected);
    assert_eq!(members(&mock, GROUP).len(), 45);

    let zero: Vec<_> = (1..=45).map(|i| ecs(&format!("i-{i}"), 30080, 0)).collect();
    c.set_backends(GROUP, &zero).await.unwrap();
    let sent = batches_sent(&mock, "SetVServerGroupAttribute");
    assert_eq!(sent.iter().map(ids).collect::<Vec<_>>(), expected);
    assert!(members(&mock, GROUP).iter().all(|m| m.3 == 0));

    c.remove_backends(GROUP, &zero).await.unwrap();
    let sent = batches_sent(&mock, "RemoveVServerGroupBackendServers");
    assert_eq!(sent.iter().map(ids).collect::<Vec<_>>(), expected);
    assert!(members(&mock, GROUP).is_empty());

    // Every write went to the group, signed, with the region and the SLB API version.
    let log = mock.call_log();
    assert_eq!(log.len(), 9);
    for call in &log {
        assert_eq!(call.status, 200, "{call:?}");
        assert_eq!(call.params["RegionId"], "cn-hangzhou");
        assert_eq!(call.params["Version"], "2014-05-15");
        assert_eq!(call.params["VServerGroupId"], GROUP);
        assert_eq!(call.params["AccessKeyId"], KEY_ID);
        assert_eq!(call.params["SignatureMethod"], "HMAC-SHA1");
    }
}

#[tokio::test]
async fn listeners_are_described_and_drain_is_set_on_tcp_and_udp() {
    let (mock, c) = start(seed(173, true, json!({}))).await;
    let listeners = c.describe_listeners(LB).await.unwrap();
    let tcp = Listener {
        port: 80,
        protocol: ListenerProtocol::Tcp,
        v_server_group_id: Some(GROUP.into()),
        connection_drain: Some(true),
        connection_drain_timeout: Some(10),
        health_check: None,
    };
    let udp = Listener {
        port: 53,
        protocol: ListenerProtocol::Udp,
        v_server_group_id: None,
        connection_drain: Some(false),
        connection_drain_timeout: Some(300),
        health_check: None,
    };
    assert_eq!(
        listeners,
        vec![
            udp.clone(),
            tcp.clone(),
            Listener {
                port: 443,
                protocol: ListenerProtocol::Https,
                v_server_group_id: None,
                connection_drain: None,
                connection_drain_timeout: None,
                health_check: None,
            },
            Listener {
                port: 8080,
                protocol: ListenerProtocol::Http,
                v_server_group_id: None,
                connection_drain: None,
                connection_drain_timeout: None,
                health_check: None,
            },
        ]
    );

    c.set_listener_drain(LB, &tcp, true, Some(900))
        .await
        .unwrap();
    c.set_listener_drain(LB, &udp, true, Some(10))
        .await
        .unwrap();
    let state = mock.state();
    let lb = &state.load_balancers[LB];
    assert_eq!(
        (
            lb.listeners[&80].connection_drain,
            lb.listeners[&80].connection_drain_timeout
        ),
        (true, 900)
    );
    assert_eq!(
        (
            lb.listeners[&53].connection_drain,
            lb.listeners[&53].connection_drain_timeout
        ),
        (true, 10)
    );
    c.set_listener_drain(LB, &tcp, false, None).await.unwrap();
    assert!(!mock.state().load_balancers[LB].listeners[&80].connection_drain);
    let after = c.describe_listeners(LB).await.unwrap();
    assert_eq!(after[1].connection_drain, Some(false));

    // HTTP listeners have no drain setting: refused locally, nothing sent.
    let before = mock.call_log().len();
    let http = &listeners[3];
    let e = c
        .set_listener_drain(LB, http, true, Some(30))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "UnsupportedListenerProtocol")
    );
    assert_eq!(mock.call_log().len(), before);
}

#[tokio::test]
async fn health_of_a_listener_lists_each_member() {
    let (_mock, c) = start(seed(174, false, json!({}))).await;
    c.add_backends(
        GROUP,
        &[ecs("i-1", 30080, 100), eni("eni-2", "127.0.174.103", 80, 0)],
    )
    .await
    .unwrap();
    let mut health = c.describe_health(LB, Some(80)).await.unwrap();
    health.sort_by(|a, b| a.server_id.cmp(&b.server_id));
    let got: Vec<_> = health
        .iter()
        .map(|h| {
            (
                h.server_id.as_str(),
                h.server_ip.map(|ip| ip.to_string()),
                h.port,
                h.listener_port,
                h.status.as_str(),
            )
        })
        .collect();
    // Without a health check configured the SLB knows nothing of a member's health.
    assert_eq!(
        got,
        vec![
            ("eni-2", Some("127.0.174.103".into()), 80, 80, "unavailable"),
            ("i-1", Some("127.0.174.1".into()), 30080, 80, "unavailable"),
        ]
    );
    assert!(c.describe_health(LB, Some(53)).await.unwrap().is_empty());
}

#[tokio::test]
async fn eni_ids_are_resolved_in_calls_of_at_most_one_hundred_ips() {
    let (mock, c) = start(seed(175, false, json!({}))).await;
    let mut ips: Vec<IpAddr> = vec![
        "127.0.175.101".parse().unwrap(),
        "127.0.175.102".parse().unwrap(),
        "127.0.175.103".parse().unwrap(),
    ];
    // 147 addresses without an ENI, and one duplicate.
    ips.extend((0..147u32).map(|i| IpAddr::from([10, 9, (i / 200) as u8, (i % 200) as u8])));
    ips.push("127.0.175.101".parse().unwrap());

    let found = c.resolve_eni_ids(&ips).await.unwrap();
    let mut found: Vec<_> = found
        .into_iter()
        .map(|(ip, id)| (ip.to_string(), id))
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            ("127.0.175.101".into(), "eni-1".into()),
            ("127.0.175.102".into(), "eni-1".into()),
            ("127.0.175.103".into(), "eni-2".into()),
        ]
    );
    let calls = calls_of(&mock, "DescribeNetworkInterfaces");
    let per_call: Vec<usize> = calls
        .iter()
        .map(|c| {
            c.params
                .keys()
                .filter(|k| k.starts_with("PrivateIpAddress."))
                .count()
        })
        .collect();
    assert_eq!(per_call, vec![100, 50]);
    for call in &calls {
        assert_eq!(call.status, 200);
        assert_eq!(call.params["Version"], "2014-05-26");
        assert_eq!(call.params["RegionId"], "cn-hangzhou");
        assert_eq!(call.params["PageSize"], "100");
    }
    assert!(c.resolve_eni_ids(&[]).await.unwrap().is_empty());
}

/// The reconciler writes back what it read (with new weights): ECS members come back with
/// the instance's ServerIp and ENI members with theirs, and both must be accepted as the
/// same members by Set and Remove.
#[tokio::test]
async fn members_read_back_can_be_written_back() {
    let (mock, c) = start(seed(176, false, json!({}))).await;
    c.add_backends(
        GROUP,
        &[
            ecs("i-1", 30080, 100),
            eni("eni-1", "127.0.176.102", 80, 100),
        ],
    )
    .await
    .unwrap();
    let read = c.describe_vserver_group(GROUP).await.unwrap().backends;
    assert!(read.iter().all(|b| b.server_ip.is_some()));
    let zeroed: Vec<_> = read
        .iter()
        .cloned()
        .map(|mut b| {
            b.weight = slb_sync::model::Weight::ZERO;
            b
        })
        .collect();
    c.set_backends(GROUP, &zeroed).await.unwrap();
    let after = members(&mock, GROUP);
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|m| m.3 == 0), "{after:?}");
    // Adding what was read is adding an existing member.
    assert_api_error(
        c.add_backends(GROUP, &read[..1]).await,
        "InvalidParameter",
        ErrorClass::Permanent,
    );
    c.remove_backends(GROUP, &zeroed).await.unwrap();
    assert!(members(&mock, GROUP).is_empty());
}

/// Every HTTP request takes a token of the client's budget: a write of 45 backends is
/// three requests of 20 at most, and the budget is charged for each, so the configured
/// rate is what the API sees.
#[tokio::test]
async fn every_http_request_takes_a_token_of_the_budget() {
    let mock = start_mock(seed(171, false, json!({}))).await;
    let budget = std::sync::Arc::new(slb_sync::slb::budget::Budget::new(
        1000.0,
        std::num::NonZeroU32::new(1000).unwrap(),
    ));
    let c = client(&mock).with_budget(budget.clone());
    mock.clear_call_log();
    let listeners = c.describe_listeners(LB).await.unwrap();
    assert_eq!(listeners.len(), 4);
    let many: Vec<slb_sync::model::SlbBackend> =
        (1..=45).map(|port| ecs("i-1", port, 100)).collect();
    c.add_backends(GROUP, &many).await.unwrap();
    c.list_vserver_groups(LB).await.unwrap();
    let requests = mock.call_log().len() as u64;
    assert_eq!(
        requests, 5,
        "one for every listener, three batches of backends, one list"
    );
    assert_eq!(budget.granted(), requests);
    // The executor waits on the same budget instead of pacing calls a second time.
    let exec = slb_sync::reconcile::Executor::new(
        std::sync::Arc::new(c),
        std::sync::Arc::new(slb_sync::reconcile::TokioClock::new()),
        slb_sync::reconcile::ExecutorConfig::default(),
    );
    assert!(std::sync::Arc::ptr_eq(exec.budget(), &budget));
}
