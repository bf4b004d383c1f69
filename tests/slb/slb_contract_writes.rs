//! Contract of the SLB/ECS RPC client's requests against a loopback `wiremock` server:
//! action, version, common and signature parameters, group writes, batch contents and
//! order, and ENI id lookups.

use support::slb_contract::*;

#[tokio::test]
async fn every_call_carries_common_and_signature_parameters() {
    for temporary in [false, true] {
        let server = MockServer::start().await;
        answer(
            &server,
            "DescribeVServerGroups",
            ok(json!({"RequestId": "r"})),
        )
        .await;
        answer(
            &server,
            "DescribeNetworkInterfaces",
            ok(json!({"RequestId": "r"})),
        )
        .await;
        let c = client_with(&server, temporary, Duration::from_secs(5));
        c.list_vserver_groups("lb-1").await.unwrap();
        c.resolve_eni_ids(&["10.0.0.1".parse().unwrap()])
            .await
            .unwrap();

        let requests = sent(&server).await;
        assert_eq!(requests.len(), 2);
        for (params, (action, version)) in requests.iter().zip([
            ("DescribeVServerGroups", "2014-05-15"),
            ("DescribeNetworkInterfaces", "2014-05-26"),
        ]) {
            assert_eq!(params["Action"], action);
            assert_eq!(params["Version"], version);
            assert_eq!(params["RegionId"], "cn-hangzhou");
            assert_eq!(params["Format"], "JSON");
            assert_eq!(params["AccessKeyId"], "LTAIcontract");
            assert_eq!(params["SignatureMethod"], "HMAC-SHA1");
            assert_eq!(params["SignatureVersion"], "1.0");
            assert!(!params["SignatureNonce"].is_empty());
            assert!(
                params["Timestamp"].ends_with('Z'),
                "{}",
                params["Timestamp"]
            );
            assert_eq!(
                params.get("SecurityToken").map(String::as_str),
                temporary.then_some(TOKEN),
                "SecurityToken only with temporary credentials"
            );
            assert_eq!(
                params["Signature"],
                expected_signature(params, SECRET),
                "signature covers every parameter sent, SecurityToken included"
            );
        }
        assert_ne!(
            requests[0]["SignatureNonce"], requests[1]["SignatureNonce"],
            "a fresh nonce per call"
        );
    }
}

#[tokio::test]
async fn create_and_delete_groups() {
    let server = MockServer::start().await;
    answer(
        &server,
        "CreateVServerGroup",
        ok(json!({"RequestId": "r", "VServerGroupId": "rsp-new", "BackendServers": {}})),
    )
    .await;
    answer(&server, "DeleteVServerGroup", ok(json!({"RequestId": "r"}))).await;
    let c = client(&server);
    assert_eq!(
        c.create_vserver_group("lb-1", "k8s/80/web/default/c1")
            .await
            .unwrap(),
        "rsp-new"
    );
    c.delete_vserver_group("rsp-new").await.unwrap();
    let requests = sent(&server).await;
    assert_eq!(requests[0]["LoadBalancerId"], "lb-1");
    assert_eq!(requests[0]["VServerGroupName"], "k8s/80/web/default/c1");
    assert_eq!(requests[1]["Action"], "DeleteVServerGroup");
    assert_eq!(requests[1]["VServerGroupId"], "rsp-new");
}

#[tokio::test]
async fn a_create_answer_without_an_id_is_an_error() {
    let server = MockServer::start().await;
    answer(&server, "CreateVServerGroup", ok(json!({"RequestId": "r"}))).await;
    let err = client(&server)
        .create_vserver_group("lb-1", "g")
        .await
        .unwrap_err();
    assert_eq!(err.code, "InvalidResponse");
}

#[tokio::test]
async fn forty_five_backends_are_added_in_batches_of_20_20_5_in_order() {
    let server = MockServer::start().await;
    answer(
        &server,
        "AddVServerGroupBackendServers",
        ok(json!({"RequestId": "r"})),
    )
    .await;
    let backends: Vec<SlbBackend> = (0..45)
        .map(|i| ecs(&format!("i-{i:02}"), 30080, 50))
        .collect();
    client(&server)
        .add_backends("rsp-1", &backends)
        .await
        .unwrap();

    let requests = sent(&server).await;
    let sizes: Vec<usize> = requests.iter().map(|r| batch_items(r).len()).collect();
    assert_eq!(sizes, [20, 20, 5]);
    let ids: Vec<String> = requests
        .iter()
        .flat_map(batch_items)
        .map(|item| item["ServerId"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = backends.iter().map(|b| b.server_id.clone()).collect();
    assert_eq!(ids, expected, "every backend once, in the order given");
    assert!(requests.iter().all(|r| r["VServerGroupId"] == "rsp-1"));
    assert_eq!(
        batch_items(&requests[2])[0],
        json!({"ServerId": "i-40", "Port": 30080, "Weight": 50, "Type": "ecs",
               "Description": "k8s/80/web/default/c1"})
    );
}

#[tokio::test]
async fn a_configurable_batch_size_and_a_failed_batch_stops_the_rest() {
    let server = MockServer::start().await;
    // The first call succeeds, the second fails; the third must not be sent.
    Mock::given(query_param("Action", "RemoveVServerGroupBackendServers"))
        .respond_with(ok(json!({"RequestId": "r"})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    answer(
        &server,
        "RemoveVServerGroupBackendServers",
        ResponseTemplate::new(400).set_body_json(json!({"Code": "VServerGroupProcessing",
            "Message": "busy", "RequestId": "R-2"})),
    )
    .await;
    let mut config = RpcConfig::new("cn-hangzhou");
    config.slb_endpoint = Some(server.uri());
    config.batch_size = 2;
    let c = RpcSlbClient::new(config, Arc::new(StaticProvider::new(creds(false))));
    let backends: Vec<SlbBackend> = (0..5).map(|i| ecs(&format!("i-{i}"), 80, 0)).collect();
    let err = c.remove_backends("rsp-1", &backends).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Busy);
    assert_eq!(err.request_id.as_deref(), Some("R-2"));
    let requests = sent(&server).await;
    assert_eq!(requests.len(), 2);
    assert_eq!(
        batch_items(&requests[0]),
        vec![
            json!({"ServerId": "i-0", "Port": 80, "Weight": 0, "Type": "ecs"}),
            json!({"ServerId": "i-1", "Port": 80, "Weight": 0, "Type": "ecs"}),
        ],
        "removal sends the identity, no Description"
    );
    assert_eq!(batch_items(&requests[1])[0]["ServerId"], "i-2");
}

#[tokio::test]
async fn set_sends_weight_description_and_eni_ip() {
    let server = MockServer::start().await;
    answer(
        &server,
        "SetVServerGroupAttribute",
        ok(json!({"RequestId": "r"})),
    )
    .await;
    let eni = SlbBackend {
        server_id: "eni-abc".into(),
        server_ip: Some("10.1.2.3".parse().unwrap()),
        port: 8080,
        weight: Weight::ZERO,
        backend_type: BackendType::Eni,
        description: "k8s/80/web/default/c1".into(),
    };
    client(&server)
        .set_backends("rsp-1", &[eni, ecs("i-1", 30080, 100)])
        .await
        .unwrap();
    let requests = sent(&server).await;
    assert_eq!(requests[0]["VServerGroupId"], "rsp-1");
    assert_eq!(
        batch_items(&requests[0]),
        vec![
            json!({"ServerId": "eni-abc", "Port": 8080, "Weight": 0, "Type": "eni",
                   "Description": "k8s/80/web/default/c1", "ServerIp": "10.1.2.3"}),
            json!({"ServerId": "i-1", "Port": 30080, "Weight": 100, "Type": "ecs",
                   "Description": "k8s/80/web/default/c1"}),
        ]
    );
}

#[tokio::test]
async fn eni_ids_for_150_ips_take_two_calls() {
    let server = MockServer::start().await;
    // Every ENI carries a shared primary IP plus one secondary IP (the pod's).
    Mock::given(query_param("Action", "DescribeNetworkInterfaces"))
        .respond_with(|req: &wiremock::Request| {
            let sets: Vec<Value> = req
                .url
                .query_pairs()
                .filter(|(k, _)| k.starts_with("PrivateIpAddress."))
                .map(|(_, ip)| {
                    let ip = ip.into_owned();
                    json!({"NetworkInterfaceId": format!("eni-{}", ip.replace('.', "-")),
                        "PrivateIpAddress": "192.168.255.1",
                        "PrivateIpSets": {"PrivateIpSet": [
                            {"PrivateIpAddress": "192.168.255.1", "Primary": true},
                            {"PrivateIpAddress": ip, "Primary": false}]}})
                })
                .collect();
            ResponseTemplate::new(200).set_body_json(json!({"RequestId": "r",
                "TotalCount": sets.len(), "PageNumber": 1, "PageSize": 100,
                "NetworkInterfaceSets": {"NetworkInterfaceSet": sets}}))
        })
        .mount(&server)
        .await;
    let ips: Vec<IpAddr> = (0..150u32)
        .map(|i| IpAddr::from([10, 0, (i / 250) as u8, (i % 250) as u8 + 1]))
        .collect();
    let mut asked = ips.clone();
    asked.push(ips[0]); // duplicates are asked once
    let found = client(&server).resolve_eni_ids(&asked).await.unwrap();

    assert_eq!(found.len(), 150);
    assert_eq!(
        found[&ips[7]],
        format!("eni-{}", ips[7].to_string().replace('.', "-"))
    );
    assert!(
        !found.contains_key(&"192.168.255.1".parse::<IpAddr>().unwrap()),
        "only the IPs asked for"
    );
    let requests = sent(&server).await;
    let counts: Vec<usize> = requests
        .iter()
        .map(|r| {
            r.keys()
                .filter(|k| k.starts_with("PrivateIpAddress."))
                .count()
        })
        .collect();
    assert_eq!(counts, [100, 50]);
    assert!(requests[0].contains_key("PrivateIpAddress.1"));
    assert!(requests[0].contains_key("PrivateIpAddress.100"));
    assert_eq!(requests[0]["PageSize"], "100");
}
