//! Stateful round trip over every action, and every enforced limit with its code/status.

mod common;

use common::*;
use serde_json::{json, Value};

fn servers(v: &Value) -> Vec<Value> {
    v["BackendServers"]["BackendServer"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn stateful_round_trip() {
    let (h, c) = start(seed(40, false, json!({}))).await;

    let a = c
        .slb("DescribeLoadBalancerAttribute", &[("LoadBalancerId", LB)])
        .await
        .unwrap();
    assert_ok(&a);
    let pp = a.body["ListenerPortsAndProtocol"]["ListenerPortAndProtocol"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        pp.contains(&json!({"ListenerPort": 80, "ListenerProtocol": "tcp"})),
        "{pp:?}"
    );
    assert!(pp.contains(&json!({"ListenerPort": 53, "ListenerProtocol": "udp"})));

    // Create with a first member.
    let a = c
        .slb(
            "CreateVServerGroup",
            &[
                ("LoadBalancerId", LB),
                ("VServerGroupName", "k8s/80/web/default/c1"),
                ("BackendServers", &backends(&[("i-1", 30080, 100)])),
            ],
        )
        .await
        .unwrap();
    assert_ok(&a);
    let gid = a.body["VServerGroupId"].as_str().unwrap().to_string();
    assert!(gid.starts_with("rsp-"));

    let a = c
        .slb("DescribeVServerGroups", &[("LoadBalancerId", LB)])
        .await
        .unwrap();
    let names: Vec<_> = a.body["VServerGroups"]["VServerGroup"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["VServerGroupId"].as_str().unwrap().to_string(),
                g["VServerGroupName"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        names.contains(&(gid.clone(), "k8s/80/web/default/c1".to_string())),
        "{names:?}"
    );
    assert!(names.iter().any(|(id, _)| id == GROUP));

    // Add an ECS and an ENI (secondary IP); keys in odd case, numbers as numbers.
    let add = r#"[{"serverid":"i-2","port":30080,"weight":50,"description":"k8s/80/web/default/c1"},
                  {"ServerId":"eni-1","Port":"8080","Weight":"100","Type":"eni","ServerIp":"127.0.40.12"}]"#;
    let a = c
        .slb(
            "AddVServerGroupBackendServers",
            &[("VServerGroupId", &gid), ("BackendServers", add)],
        )
        .await
        .unwrap();
    assert_ok(&a);
    assert_eq!(a.body["VServerGroupId"], gid.as_str());
    assert_eq!(servers(&a.body).len(), 2);

    let a = c
        .slb("DescribeVServerGroupAttribute", &[("VServerGroupId", &gid)])
        .await
        .unwrap();
    assert_eq!(a.body["LoadBalancerId"], LB);
    assert_eq!(a.body["VServerGroupName"], "k8s/80/web/default/c1");
    let s = servers(&a.body);
    assert_eq!(s.len(), 3);
    assert_eq!(
        s[1],
        json!({"ServerId":"i-2","Port":30080,"Weight":50,"Type":"ecs","Description":"k8s/80/web/default/c1","ServerIp":"127.0.40.2"})
    );
    assert_eq!(s[2]["ServerIp"], "127.0.40.12");
    assert_eq!(s[2]["Type"], "eni");

    // Set weight and description.
    let set = r#"[{"ServerId":"i-2","Port":"30080","Weight":"0","Description":"draining"}]"#;
    let a = c
        .slb(
            "SetVServerGroupAttribute",
            &[("VServerGroupId", &gid), ("BackendServers", set)],
        )
        .await
        .unwrap();
    assert_ok(&a);
    assert_eq!(servers(&a.body)[0]["Weight"], 0);
    let g = &h.state().v_server_groups[&gid];
    assert_eq!(
        (g.backends[1].weight, g.backends[1].description.as_str()),
        (0, "draining")
    );

    // Remove i-2 and an absent member: success, only i-2 goes.
    let rm = backends(&[("i-2", 30080, 0), ("i-3", 30080, 100)]);
    let a = c
        .slb(
            "RemoveVServerGroupBackendServers",
            &[("VServerGroupId", &gid), ("BackendServers", &rm)],
        )
        .await
        .unwrap();
    assert_ok(&a);
    assert_eq!(h.state().v_server_groups[&gid].backends.len(), 2);

    // Listener drain and binding.
    let a = c
        .slb(
            "DescribeLoadBalancerTCPListenerAttribute",
            &[("LoadBalancerId", LB), ("ListenerPort", "80")],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            a.body["ConnectionDrain"].as_str(),
            a.body["VServerGroupId"].as_str()
        ),
        (Some("off"), Some(GROUP))
    );
    assert_eq!(a.body["ListenerPort"], 80);
    let a = c
        .slb(
            "SetLoadBalancerTCPListenerAttribute",
            &[
                ("LoadBalancerId", LB),
                ("ListenerPort", "80"),
                ("ConnectionDrain", "on"),
                ("ConnectionDrainTimeout", "30"),
                ("VServerGroup", "on"),
                ("VServerGroupId", &gid),
            ],
        )
        .await
        .unwrap();
    assert_ok(&a);
    let a = c
        .slb(
            "DescribeLoadBalancerTCPListenerAttribute",
            &[("LoadBalancerId", LB), ("ListenerPort", "80")],
        )
        .await
        .unwrap();
    assert_eq!(a.body["ConnectionDrain"], "on");
    assert_eq!(a.body["ConnectionDrainTimeout"], 30);
    assert_eq!(a.body["VServerGroupId"], gid.as_str());
    let a = c
        .slb(
            "DescribeLoadBalancerUDPListenerAttribute",
            &[("LoadBalancerId", LB), ("ListenerPort", "53")],
        )
        .await
        .unwrap();
    assert_eq!(a.body["ConnectionDrain"], "off");
    let a = c
        .slb(
            "DescribeLoadBalancerHTTPListenerAttribute",
            &[("LoadBalancerId", LB), ("ListenerPort", "8080")],
        )
        .await
        .unwrap();
    assert_ok(&a);
    assert!(
        a.body.get("ConnectionDrain").is_none(),
        "HTTP listeners have no drain"
    );
    let a = c
        .slb(
            "SetLoadBalancerUDPListenerAttribute",
            &[
                ("LoadBalancerId", LB),
                ("ListenerPort", "53"),
                ("ConnectionDrain", "on"),
                ("ConnectionDrainTimeout", "900"),
            ],
        )
        .await
        .unwrap();
    assert_ok(&a);

    // Health of the bound group's members (no health check configured: normal).
    let a = c
        .slb(
            "DescribeHealthStatus",
            &[("LoadBalancerId", LB), ("ListenerPort", "80")],
        )
        .await
        .unwrap();
    let hs = servers(&a.body);
    assert_eq!(hs.len(), 2);
    assert_eq!(hs[0]["ServerId"], "i-1");
    assert_eq!(hs[0]["ServerIp"], "127.0.40.1");
    assert_eq!(hs[0]["ListenerPort"], 80);
    // The listener does not check health: the SLB knows nothing of it.
    assert_eq!(hs[0]["ServerHealthStatus"], "unavailable");

    // A group in use cannot be deleted; after rebinding the listener it can.
    let a = c
        .slb("DeleteVServerGroup", &[("VServerGroupId", &gid)])
        .await
        .unwrap();
    assert_err(&a, 400, "RspoolVipExist");
    let a = c
        .slb(
            "SetLoadBalancerTCPListenerAttribute",
            &[
                ("LoadBalancerId", LB),
                ("ListenerPort", "80"),
                ("VServerGroupId", GROUP),
            ],
        )
        .await
        .unwrap();
    assert_ok(&a);
    assert_ok(
        &c.slb("DeleteVServerGroup", &[("VServerGroupId", &gid)])
            .await
            .unwrap(),
    );
    let a = c
        .slb("DescribeVServerGroupAttribute", &[("VServerGroupId", &gid)])
        .await
        .unwrap();
    assert_err(&a, 404, "InvalidParameter");
    assert!(a.body["Message"]
        .as_str()
        .unwrap()
        .contains("VServerGroupId does not exist"));
}

#[tokio::test]
async fn write_limits_and_codes() {
    let extra = json!({});
    let (_h, c) = start(seed(41, false, extra)).await;
    let add = |s: String| {
        let c = c.clone();
        async move {
            c.slb(
                "AddVServerGroupBackendServers",
                &[("VServerGroupId", GROUP), ("BackendServers", &s)],
            )
            .await
            .unwrap()
        }
    };
    let many: Vec<(&str, u16, u8)> = (1..=21).map(|p| ("i-1", p as u16, 100)).collect();
    assert_err(&add(backends(&many)).await, 400, "TooManyBackendServers");
    assert_ok(&add(backends(&many[..20])).await);
    assert_err(
        &add(backends(&[("i-2", 1, 101)])).await,
        400,
        "InvalidWeight.Malformed",
    );
    assert_err(
        &add(r#"[{"ServerId":"i-2","Port":0}]"#.into()).await,
        400,
        "InvalidParameter",
    );
    assert_err(
        &add(r#"[{"ServerId":"i-2","Port":65536}]"#.into()).await,
        400,
        "InvalidParameter",
    );
    assert_err(
        &add(r#"[{"ServerId":"i-2","Port":1,"Description":"has space"}]"#.into()).await,
        400,
        "InvalidParameter",
    );
    let long = "a".repeat(81);
    assert_err(
        &add(format!(
            r#"[{{"ServerId":"i-2","Port":1,"Description":"{long}"}}]"#
        ))
        .await,
        400,
        "InvalidParameter",
    );
    let max = "a/b.c_d-".repeat(10);
    assert_ok(
        &add(format!(
            r#"[{{"ServerId":"i-2","Port":1,"Description":"{max}"}}]"#
        ))
        .await,
    );
    assert_err(
        &add(r#"[{"ServerId":"i-2","Port":2,"Type":"eci"}]"#.into()).await,
        400,
        "BackendServer.InvalidType",
    );
    let dup = add(backends(&[("i-1", 1, 100)])).await;
    assert_err(&dup, 400, "InvalidParameter");
    assert!(dup.body["Message"]
        .as_str()
        .unwrap()
        .contains("already exists"));
    assert_err(
        &add(backends(&[("i-404", 1, 100)])).await,
        400,
        "InvalidServerId.NotExist",
    );
    assert_err(
        &add(r#"[{"ServerId":"eni-1","Port":1,"Type":"eni","ServerIp":"127.0.41.99"}]"#.into())
            .await,
        400,
        "InvalidParameter",
    );
    assert_err(
        &add("not json".into()).await,
        400,
        "BackendServersMalformed",
    );
    let a = c
        .slb(
            "AddVServerGroupBackendServers",
            &[("VServerGroupId", GROUP)],
        )
        .await
        .unwrap();
    assert_err(&a, 400, "MissingParameter");
    let a = c
        .slb(
            "AddVServerGroupBackendServers",
            &[
                ("VServerGroupId", "rsp-nope"),
                ("BackendServers", &backends(&[("i-1", 9, 1)])),
            ],
        )
        .await
        .unwrap();
    assert_err(&a, 404, "InvalidParameter");
    let a = c
        .slb("DescribeVServerGroups", &[("LoadBalancerId", "lb-nope")])
        .await
        .unwrap();
    assert_err(&a, 404, "InvalidLoadBalancerId.NotFound");
    // Set of a non-member is refused.
    let a = c
        .slb(
            "SetVServerGroupAttribute",
            &[
                ("VServerGroupId", GROUP),
                ("BackendServers", &backends(&[("i-3", 1, 5)])),
            ],
        )
        .await
        .unwrap();
    assert_err(&a, 400, "InvalidParameter");

    // Listener limits.
    let set = |k: &'static str, v: &'static str| {
        let c = c.clone();
        async move {
            c.slb(
                "SetLoadBalancerTCPListenerAttribute",
                &[("LoadBalancerId", LB), ("ListenerPort", "80"), (k, v)],
            )
            .await
            .unwrap()
        }
    };
    assert_err(
        &set("ConnectionDrainTimeout", "9").await,
        400,
        "InvalidParameter",
    );
    assert_err(
        &set("ConnectionDrainTimeout", "901").await,
        400,
        "InvalidParameter",
    );
    assert_ok(&set("ConnectionDrainTimeout", "10").await);
    assert_err(&set("ConnectionDrain", "on").await, 400, "MissingParameter");
    assert_err(
        &set("ConnectionDrain", "maybe").await,
        400,
        "InvalidParameter",
    );
    assert_err(
        &set("VServerGroupId", "rsp-nope").await,
        404,
        "InvalidParameter",
    );
    let a = c
        .slb(
            "SetLoadBalancerUDPListenerAttribute",
            &[
                ("LoadBalancerId", LB),
                ("ListenerPort", "80"),
                ("ConnectionDrain", "off"),
            ],
        )
        .await
        .unwrap();
    assert_err(&a, 404, "ListenerNotFound");
    let a = c
        .slb(
            "DescribeLoadBalancerTCPListenerAttribute",
            &[("LoadBalancerId", LB), ("ListenerPort", "81")],
        )
        .await
        .unwrap();
    assert_err(&a, 404, "ListenerNotFound");
}

#[tokio::test]
async fn per_instance_backend_quota() {
    let mut s = seed(42, false, json!({}));
    s.load_balancers[0].backend_quota = 3;
    let (_h, c) = start(s).await;
    let a = c
        .slb(
            "AddVServerGroupBackendServers",
            &[
                ("VServerGroupId", GROUP),
                ("BackendServers", &backends(&[("i-1", 1, 1), ("i-1", 2, 1)])),
            ],
        )
        .await
        .unwrap();
    assert_ok(&a);
    // The quota counts every group of the instance.
    let a = c
        .slb(
            "CreateVServerGroup",
            &[
                ("LoadBalancerId", LB),
                ("VServerGroupName", "other"),
                ("BackendServers", &backends(&[("i-2", 1, 1), ("i-2", 2, 1)])),
            ],
        )
        .await
        .unwrap();
    assert_err(&a, 400, "InstanceBackendServerNumberOverLimit");
    let a = c
        .slb(
            "AddVServerGroupBackendServers",
            &[
                ("VServerGroupId", GROUP),
                ("BackendServers", &backends(&[("i-1", 3, 1)])),
            ],
        )
        .await
        .unwrap();
    assert_ok(&a);
    let a = c
        .slb(
            "AddVServerGroupBackendServers",
            &[
                ("VServerGroupId", GROUP),
                ("BackendServers", &backends(&[("i-1", 4, 1)])),
            ],
        )
        .await
        .unwrap();
    assert_err(&a, 400, "InstanceBackendServerNumberOverLimit");
}

#[tokio::test]
async fn describe_network_interfaces_by_ip_with_paging() {
    let mut enis = Vec::new();
    for i in 1..=15u8 {
        enis.push(json!({"id": format!("eni-p{i:02}"), "ips": [format!("127.0.43.{}", 100 + i), format!("127.0.44.{i}")]}));
    }
    let (_h, c) = start(seed(43, false, json!({"enis": enis}))).await;
    let ip_params: Vec<(String, String)> = (1..=15u8)
        .map(|i| (format!("PrivateIpAddress.{i}"), format!("127.0.44.{i}")))
        .collect();
    let refs: Vec<(&str, &str)> = ip_params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let a = c.ecs("DescribeNetworkInterfaces", &refs).await.unwrap();
    assert_ok(&a);
    assert_eq!(a.body["TotalCount"], 15);
    assert_eq!(
        a.body["PageSize"], 10,
        "ECS pages by 10 unless PageSize is given"
    );
    let sets = a.body["NetworkInterfaceSets"]["NetworkInterfaceSet"]
        .as_array()
        .unwrap();
    assert_eq!(sets.len(), 10);
    assert_eq!(sets[0]["NetworkInterfaceId"], "eni-p01");
    assert_eq!(sets[0]["PrivateIpAddress"], "127.0.43.101");
    assert_eq!(
        sets[0]["PrivateIpSets"]["PrivateIpSet"],
        json!([{"PrivateIpAddress": "127.0.43.101", "Primary": true}, {"PrivateIpAddress": "127.0.44.1", "Primary": false}])
    );
    let mut with_size = refs.clone();
    with_size.push(("PageSize", "100"));
    let a = c
        .ecs("DescribeNetworkInterfaces", &with_size)
        .await
        .unwrap();
    assert_eq!(
        a.body["NetworkInterfaceSets"]["NetworkInterfaceSet"]
            .as_array()
            .unwrap()
            .len(),
        15
    );

    let too_many: Vec<(String, String)> = (1..=101u32)
        .map(|i| (format!("PrivateIpAddress.{i}"), "127.0.0.1".into()))
        .collect();
    let refs: Vec<(&str, &str)> = too_many
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_err(
        &c.ecs("DescribeNetworkInterfaces", &refs).await.unwrap(),
        400,
        "InvalidParameter",
    );
    let a = c
        .ecs(
            "DescribeNetworkInterfaces",
            &[("PrivateIpAddress.1", "127.9.9.9")],
        )
        .await
        .unwrap();
    assert_eq!(a.body["TotalCount"], 0);
}

#[tokio::test]
async fn describe_load_balancer_listeners_with_settings_and_paging() {
    let (_h, c) = start(seed(44, true, json!({}))).await;
    let a = c
        .slb(
            "DescribeLoadBalancerListeners",
            &[("LoadBalancerId.1", LB), ("MaxResults", "2")],
        )
        .await
        .unwrap();
    assert_ok(&a);
    assert_eq!(a.body["TotalCount"], 3);
    let first = a.body["Listeners"].as_array().unwrap().clone();
    assert_eq!(first.len(), 2);
    let token = a.body["NextToken"].as_str().unwrap().to_owned();
    assert!(!token.is_empty());
    let a = c
        .slb(
            "DescribeLoadBalancerListeners",
            &[("LoadBalancerId.1", LB), ("NextToken", &token)],
        )
        .await
        .unwrap();
    let rest = a.body["Listeners"].as_array().unwrap().clone();
    assert_eq!(rest.len(), 1);
    assert_eq!(a.body["NextToken"], "", "the last page has no token");
    let all: Vec<Value> = first.into_iter().chain(rest).collect();
    let tcp = all.iter().find(|l| l["ListenerPort"] == 80).unwrap();
    assert_eq!(tcp["ListenerProtocol"], "tcp");
    assert_eq!(tcp["VServerGroupId"], GROUP);
    assert_eq!(tcp["TCPListenerConfig"]["ConnectionDrain"], "on");
    assert_eq!(tcp["TCPListenerConfig"]["ConnectionDrainTimeout"], 10);
    let http = all.iter().find(|l| l["ListenerPort"] == 8080).unwrap();
    assert!(http["HTTPListenerConfig"].is_object());
    assert!(http.get("TCPListenerConfig").is_none());

    let eleven: Vec<(String, String)> = (1..=11u32)
        .map(|i| (format!("LoadBalancerId.{i}"), LB.to_owned()))
        .collect();
    let refs: Vec<(&str, &str)> = eleven
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_err(
        &c.slb("DescribeLoadBalancerListeners", &refs).await.unwrap(),
        400,
        "InvalidParameter",
    );
    assert_err(
        &c.slb(
            "DescribeLoadBalancerListeners",
            &[("LoadBalancerId.1", "lb-missing")],
        )
        .await
        .unwrap(),
        404,
        "InvalidLoadBalancerId.NotFound",
    );
}
