//! Contract of how the SLB RPC client reads answers (loopback `wiremock` server): vServer
//! groups decoded tolerantly, health status, listeners with their group and drain
//! settings, and listener drain writes on TCP/UDP only.

use slb_sync::model::HealthCheck;
use support::slb_contract::*;

#[tokio::test]
async fn vserver_group_reads_decode_tolerantly() {
    let server = MockServer::start().await;
    answer(
        &server,
        "DescribeVServerGroups",
        ok(json!({"RequestId": "r", "VServerGroups": {"VServerGroup": [
            {"VServerGroupId": "rsp-1", "VServerGroupName": "k8s/80/web/default/c1"},
            {"VServerGroupId": "rsp-2"},
            {"VServerGroupName": "no id: skipped"}
        ]}})),
    )
    .await;
    answer(
        &server,
        "DescribeVServerGroupAttribute",
        ok(
            json!({"RequestId": "r", "VServerGroupId": "rsp-1", "VServerGroupName": "g",
                "LoadBalancerId": "lb-1", "BackendServers": {"BackendServer": [
                {"ServerId": "i-1", "Port": "30080", "Weight": "100", "Type": "ecs",
                 "Description": "k8s/80/web/default/c1"},
                {"serverId": "eni-2", "port": 8080, "weight": 0, "type": "eni",
                 "serverIp": "10.0.0.9"},
                {"ServerId": "eci-3", "Port": 80, "Weight": 10, "Type": "eci"},
                {"ServerId": "i-4", "Port": 80, "Weight": 5}
            ]}}),
        ),
    )
    .await;
    let c = client(&server);

    let groups = c.list_vserver_groups("lb-1").await.unwrap();
    let ids: Vec<_> = groups
        .iter()
        .map(|g| g.v_server_group_id.as_str())
        .collect();
    assert_eq!(ids, ["rsp-1", "rsp-2"]);
    assert_eq!(groups[0].v_server_group_name, "k8s/80/web/default/c1");

    let group = c.describe_vserver_group("rsp-1").await.unwrap();
    assert_eq!(group.load_balancer_id, "lb-1");
    assert_eq!(group.v_server_group_name, "g");
    assert_eq!(
        group.backends,
        vec![
            ecs("i-1", 30080, 100),
            SlbBackend {
                server_id: "eni-2".into(),
                server_ip: Some("10.0.0.9".parse().unwrap()),
                port: 8080,
                weight: Weight::ZERO,
                backend_type: BackendType::Eni,
                description: String::new(),
            },
            SlbBackend {
                description: String::new(),
                ..ecs("i-4", 80, 5)
            },
        ],
        "numbers as strings, any key case, ECI skipped, Type defaults to ecs"
    );
    let requests = sent(&server).await;
    assert_eq!(requests[0]["LoadBalancerId"], "lb-1");
    assert_eq!(requests[1]["VServerGroupId"], "rsp-1");
}

#[tokio::test]
async fn a_backend_entry_without_weight_fails_the_read_instead_of_hiding_it() {
    let server = MockServer::start().await;
    answer(
        &server,
        "DescribeVServerGroupAttribute",
        ok(json!({"BackendServers": {"BackendServer": [{"ServerId": "i-1", "Port": 80}]}})),
    )
    .await;
    let err = client(&server)
        .describe_vserver_group("rsp-1")
        .await
        .unwrap_err();
    assert_eq!(err.code, "InvalidResponse");
    assert_eq!(err.class, ErrorClass::Unavailable);
}

#[tokio::test]
async fn health_status_decodes() {
    let server = MockServer::start().await;
    answer(
        &server,
        "DescribeHealthStatus",
        ok(
            json!({"RequestId": "r", "BackendServers": {"BackendServer": [
                {"ServerId": "i-1", "ServerIp": "192.168.0.2", "Port": 30080, "ListenerPort": "80",
                 "ServerHealthStatus": "normal", "Protocol": "tcp"},
                {"ServerId": "eni-2", "EniHost": "10.0.0.5", "Port": "8080",
                 "ServerHealthStatus": "abnormal"}
            ]}}),
        ),
    )
    .await;
    let health = client(&server)
        .describe_health("lb-1", Some(80))
        .await
        .unwrap();
    assert_eq!(health.len(), 2);
    assert_eq!(health[0].server_id, "i-1");
    assert_eq!(health[0].server_ip, Some("192.168.0.2".parse().unwrap()));
    assert_eq!((health[0].port, health[0].listener_port), (30080, 80));
    assert_eq!(health[0].status, "normal");
    assert_eq!(health[1].server_ip, Some("10.0.0.5".parse().unwrap()));
    assert_eq!(
        health[1].listener_port, 80,
        "defaults to the port asked about"
    );
    assert_eq!(health[1].status, "abnormal");
    let requests = sent(&server).await;
    assert_eq!(requests[0]["LoadBalancerId"], "lb-1");
    assert_eq!(requests[0]["ListenerPort"], "80");
}

#[tokio::test]
async fn listeners_are_read_in_one_call_with_their_group_drain_and_health_check() {
    let server = MockServer::start().await;
    // Shaped as DescribeLoadBalancerListeners answers (SLB 2014-05-15): the settings of
    // each listener in a <PROTOCOL>ListenerConfig object.
    answer(
        &server,
        "DescribeLoadBalancerListeners",
        ok(
            json!({"RequestId": "r", "TotalCount": 4, "MaxResults": 100, "NextToken": "",
            "Listeners": [
                {"LoadBalancerId": "lb-1", "ListenerPort": 443, "ListenerProtocol": "https",
                 "VServerGroupId": "rsp-443", "HTTPSListenerConfig": {"HealthCheck": "off"}},
                {"LoadBalancerId": "lb-1", "ListenerPort": 80, "ListenerProtocol": "tcp",
                 "VServerGroupId": "rsp-80", "TCPListenerConfig": {"ConnectionDrain": "on",
                 "ConnectionDrainTimeout": 300, "HealthCheck": "on", "HealthCheckInterval": 5,
                 "HealthyThreshold": "4", "UnhealthyThreshold": 2}},
                {"LoadBalancerId": "lb-1", "ListenerPort": "53", "ListenerProtocol": "udp",
                 "UDPListenerConfig": {"ConnectionDrain": "off", "HealthCheck": "on"}},
                {"LoadBalancerId": "lb-1", "ListenerPort": 8080, "ListenerProtocol": "http",
                 "VServerGroupId": "rsp-8080"},
                {"LoadBalancerId": "lb-other", "ListenerPort": 81, "ListenerProtocol": "tcp"}
            ]}),
        ),
    )
    .await;
    let listeners = client(&server).describe_listeners("lb-1").await.unwrap();
    let checked = |interval_secs, healthy_threshold, unhealthy_threshold| {
        Some(HealthCheck {
            interval_secs,
            healthy_threshold,
            unhealthy_threshold,
        })
    };
    let listener = |port, protocol, group: Option<&str>, drain, timeout, health_check| Listener {
        port,
        protocol,
        v_server_group_id: group.map(str::to_string),
        connection_drain: drain,
        connection_drain_timeout: timeout,
        health_check,
    };
    assert_eq!(
        listeners,
        vec![
            listener(
                53,
                ListenerProtocol::Udp,
                None,
                Some(false),
                None,
                checked(2, 3, 3)
            ),
            listener(
                80,
                ListenerProtocol::Tcp,
                Some("rsp-80"),
                Some(true),
                Some(300),
                checked(5, 4, 2)
            ),
            listener(
                443,
                ListenerProtocol::Https,
                Some("rsp-443"),
                None,
                None,
                None
            ),
            listener(
                8080,
                ListenerProtocol::Http,
                Some("rsp-8080"),
                None,
                None,
                None
            ),
        ],
        "the other instance's listener is not taken"
    );
    let requests = sent(&server).await;
    assert_eq!(requests.len(), 1, "one call for every listener");
    assert_eq!(requests[0]["LoadBalancerId.1"], "lb-1");
    assert_eq!(requests[0]["MaxResults"], "100");
}

#[tokio::test]
async fn listeners_past_one_page_are_followed_by_their_token() {
    let server = MockServer::start().await;
    let entry = |port: u16| {
        json!({"ListenerPort": port, "ListenerProtocol": "tcp",
        "TCPListenerConfig": {"ConnectionDrain": "off"}})
    };
    Mock::given(query_param("Action", "DescribeLoadBalancerListeners"))
        .and(query_param("NextToken", "page-2"))
        .respond_with(ok(json!({"Listeners": [entry(90)], "NextToken": ""})))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(query_param("Action", "DescribeLoadBalancerListeners"))
        .respond_with(ok(json!({"Listeners": [entry(80)], "NextToken": "page-2"})))
        .with_priority(2)
        .mount(&server)
        .await;
    let listeners = client(&server).describe_listeners("lb-1").await.unwrap();
    let ports: Vec<u16> = listeners.iter().map(|l| l.port).collect();
    assert_eq!(ports, [80, 90]);
    assert_eq!(sent(&server).await.len(), 2);
}

#[tokio::test]
async fn listeners_of_several_instances_are_read_in_one_call_and_told_apart() {
    let server = MockServer::start().await;
    answer(
        &server,
        "DescribeLoadBalancerListeners",
        ok(json!({"RequestId": "r", "NextToken": "", "Listeners": [
            {"LoadBalancerId": "lb-2", "ListenerPort": 81, "ListenerProtocol": "tcp",
             "TCPListenerConfig": {"HealthCheck": "on"}},
            {"LoadBalancerId": "lb-1", "ListenerPort": 80, "ListenerProtocol": "tcp",
             "TCPListenerConfig": {"HealthCheck": "off"}},
            {"LoadBalancerId": "lb-9", "ListenerPort": 99, "ListenerProtocol": "tcp"}
        ]})),
    )
    .await;
    let ids = ["lb-1", "lb-2", "lb-3"].map(String::from);
    let found = client(&server).describe_listeners_of(&ids).await.unwrap();
    let ports = |lb: &str| -> Vec<u16> { found[lb].iter().map(|l| l.port).collect() };
    assert_eq!(ports("lb-1"), [80]);
    assert_eq!(ports("lb-2"), [81]);
    assert!(found["lb-2"][0].health_check.is_some());
    assert_eq!(
        ports("lb-3"),
        [] as [u16; 0],
        "no listener is an answer too"
    );
    assert!(!found.contains_key("lb-9"), "not asked for");
    let requests = sent(&server).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["LoadBalancerId.1"], "lb-1");
    assert_eq!(requests[0]["LoadBalancerId.3"], "lb-3");
}

#[tokio::test]
async fn an_instance_gone_from_a_read_of_several_leaves_the_others_read() {
    let server = MockServer::start().await;
    let gone = || {
        Mock::given(query_param("Action", "DescribeLoadBalancerListeners"))
            .and(query_param("LoadBalancerId.1", "lb-gone"))
    };
    // Asked together, the API refuses the whole read for the instance that is gone.
    Mock::given(query_param("Action", "DescribeLoadBalancerListeners"))
        .and(query_param("LoadBalancerId.2", "lb-gone"))
        .respond_with(api_error(404, "InvalidLoadBalancerId.NotFound"))
        .with_priority(1)
        .mount(&server)
        .await;
    gone()
        .respond_with(api_error(404, "InvalidLoadBalancerId.NotFound"))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(query_param("Action", "DescribeLoadBalancerListeners"))
        .respond_with(ok(json!({"NextToken": "", "Listeners": [
            {"ListenerPort": 80, "ListenerProtocol": "tcp"}]})))
        .with_priority(2)
        .mount(&server)
        .await;
    let c = client(&server);
    let ids = ["lb-1", "lb-gone"].map(String::from);
    let found = c.describe_listeners_of(&ids).await.unwrap();
    assert_eq!(found["lb-1"].len(), 1);
    assert!(!found.contains_key("lb-gone"), "its own read failed");
    assert_eq!(sent(&server).await.len(), 3, "together, then each alone");
    // Alone, the instance that is gone is an error, as before.
    let only_gone = ["lb-gone".to_owned()];
    assert!(c.describe_listeners_of(&only_gone).await.is_err());
}

#[tokio::test]
async fn a_listener_of_several_instances_that_names_none_is_not_guessed_at() {
    let server = MockServer::start().await;
    // Asked together, an entry without LoadBalancerId could be either instance's.
    Mock::given(query_param("Action", "DescribeLoadBalancerListeners"))
        .and(query_param("LoadBalancerId.2", "lb-2"))
        .respond_with(ok(json!({"NextToken": "", "Listeners": [
            {"ListenerPort": 80, "ListenerProtocol": "tcp"}]})))
        .with_priority(1)
        .mount(&server)
        .await;
    // Asked alone, the entry is the instance's.
    Mock::given(query_param("Action", "DescribeLoadBalancerListeners"))
        .and(query_param("LoadBalancerId.1", "lb-2"))
        .respond_with(ok(json!({"NextToken": "", "Listeners": [
            {"ListenerPort": 82, "ListenerProtocol": "tcp"}]})))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(query_param("Action", "DescribeLoadBalancerListeners"))
        .respond_with(ok(json!({"NextToken": "", "Listeners": [
            {"ListenerPort": 81, "ListenerProtocol": "tcp"}]})))
        .with_priority(2)
        .mount(&server)
        .await;
    let ids = ["lb-1", "lb-2"].map(String::from);
    let found = client(&server).describe_listeners_of(&ids).await.unwrap();
    let ports = |lb: &str| -> Vec<u16> { found[lb].iter().map(|l| l.port).collect() };
    assert_eq!(ports("lb-1"), [81]);
    assert_eq!(ports("lb-2"), [82]);
    assert_eq!(sent(&server).await.len(), 3, "together, then each alone");
}

#[tokio::test]
async fn an_endpoint_without_the_listing_action_is_asked_listener_by_listener() {
    let server = MockServer::start().await;
    answer(
        &server,
        "DescribeLoadBalancerListeners",
        api_error(404, "InvalidAction.NotFound"),
    )
    .await;
    answer(
        &server,
        "DescribeLoadBalancerAttribute",
        ok(json!({"RequestId": "r", "LoadBalancerId": "lb-1",
        "ListenerPortsAndProtocol": {"ListenerPortAndProtocol": [
            {"ListenerPort": 443, "ListenerProtocol": "https"},
            {"ListenerPort": 80, "ListenerProtocol": "tcp"},
            {"ListenerPort": "53", "ListenerProtocol": "udp"},
            {"ListenerPort": 8080, "ListenerProtocol": "http"}
        ]}})),
    )
    .await;
    answer(
        &server,
        "DescribeLoadBalancerTCPListenerAttribute",
        ok(
            json!({"ListenerPort": 80, "VServerGroupId": "rsp-80", "ConnectionDrain": "on",
                  "ConnectionDrainTimeout": "300"}),
        ),
    )
    .await;
    answer(
        &server,
        "DescribeLoadBalancerUDPListenerAttribute",
        ok(json!({"ListenerPort": 53, "VServerGroupId": "", "ConnectionDrain": "off"})),
    )
    .await;
    answer(
        &server,
        "DescribeLoadBalancerHTTPListenerAttribute",
        ok(json!({"ListenerPort": 8080, "VServerGroupId": "rsp-8080"})),
    )
    .await;
    answer(
        &server,
        "DescribeLoadBalancerHTTPSListenerAttribute",
        ok(json!({"ListenerPort": 443, "VServerGroupId": "rsp-443"})),
    )
    .await;
    let listeners = client(&server).describe_listeners("lb-1").await.unwrap();
    let listener = |port, protocol, group: Option<&str>, drain, timeout| Listener {
        port,
        protocol,
        v_server_group_id: group.map(str::to_string),
        connection_drain: drain,
        connection_drain_timeout: timeout,
        health_check: None,
    };
    assert_eq!(
        listeners,
        vec![
            listener(53, ListenerProtocol::Udp, None, Some(false), None),
            listener(
                80,
                ListenerProtocol::Tcp,
                Some("rsp-80"),
                Some(true),
                Some(300)
            ),
            listener(443, ListenerProtocol::Https, Some("rsp-443"), None, None),
            listener(8080, ListenerProtocol::Http, Some("rsp-8080"), None, None),
        ]
    );
    let requests = sent(&server).await;
    assert_eq!(requests.len(), 6);
    assert_eq!(requests[1]["Action"], "DescribeLoadBalancerAttribute");
    assert!(requests[2..]
        .iter()
        .all(|r| r["LoadBalancerId"] == "lb-1" && r.contains_key("ListenerPort")));
}

#[tokio::test]
async fn listeners_from_the_older_misspelled_field_are_read_too() {
    let server = MockServer::start().await;
    answer(
        &server,
        "DescribeLoadBalancerListeners",
        api_error(400, "InvalidAction"),
    )
    .await;
    answer(
        &server,
        "DescribeLoadBalancerAttribute",
        ok(
            json!({"ListenerPortsAndProtocal": {"ListenerPortAndProtocal": [
            {"ListenerPort": 80, "ListenerProtocal": "TCP"}]}}),
        ),
    )
    .await;
    answer(
        &server,
        "DescribeLoadBalancerTCPListenerAttribute",
        ok(json!({"VServerGroupId": "rsp-80"})),
    )
    .await;
    let listeners = client(&server).describe_listeners("lb-1").await.unwrap();
    assert_eq!(listeners.len(), 1);
    assert_eq!(listeners[0].v_server_group_id.as_deref(), Some("rsp-80"));
    assert_eq!(listeners[0].connection_drain, Some(false));
}

#[tokio::test]
async fn listener_drain_is_set_on_tcp_and_udp_only() {
    let server = MockServer::start().await;
    answer(
        &server,
        "SetLoadBalancerTCPListenerAttribute",
        ok(json!({"RequestId": "r"})),
    )
    .await;
    answer(
        &server,
        "SetLoadBalancerUDPListenerAttribute",
        ok(json!({"RequestId": "r"})),
    )
    .await;
    let c = client(&server);
    let listener = |port, protocol| Listener {
        port,
        protocol,
        v_server_group_id: None,
        connection_drain: Some(false),
        connection_drain_timeout: None,
        health_check: None,
    };
    c.set_listener_drain(
        "lb-1",
        &listener(80, ListenerProtocol::Tcp),
        true,
        Some(120),
    )
    .await
    .unwrap();
    c.set_listener_drain(
        "lb-1",
        &listener(53, ListenerProtocol::Udp),
        false,
        Some(120),
    )
    .await
    .unwrap();
    let err = c
        .set_listener_drain(
            "lb-1",
            &listener(443, ListenerProtocol::Https),
            true,
            Some(60),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);

    let requests = sent(&server).await;
    assert_eq!(requests.len(), 2, "nothing sent for an HTTPS listener");
    assert_eq!(requests[0]["Action"], "SetLoadBalancerTCPListenerAttribute");
    assert_eq!(requests[0]["LoadBalancerId"], "lb-1");
    assert_eq!(requests[0]["ListenerPort"], "80");
    assert_eq!(requests[0]["ConnectionDrain"], "on");
    assert_eq!(requests[0]["ConnectionDrainTimeout"], "120");
    assert_eq!(requests[1]["Action"], "SetLoadBalancerUDPListenerAttribute");
    assert_eq!(requests[1]["ConnectionDrain"], "off");
    assert!(!requests[1].contains_key("ConnectionDrainTimeout"));
}
