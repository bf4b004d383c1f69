//! Contract tests of the SLB/ECS RPC client against a loopback `wiremock` server: the
//! requests it sends (action, version, common and signature parameters, batch contents)
//! and how it reads every kind of answer, success or error.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use slb_sync::model::{BackendType, SlbBackend, Weight};
use slb_sync::slb::credentials::{Credentials, SecretString, StaticProvider};
use slb_sync::slb::{
    ErrorClass, Listener, ListenerProtocol, RpcConfig, RpcSlbClient, SlbApi, SlbError, SlbMetrics,
};
use wiremock::matchers::{method, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "contract-secret-value";
const TOKEN: &str = "contract/token+value=";

fn creds(temporary: bool) -> Credentials {
    Credentials::new(
        "LTAIcontract",
        SecretString::from(SECRET),
        temporary.then(|| SecretString::from(TOKEN)),
        "test",
    )
    .unwrap()
}

fn client_with(server: &MockServer, temporary: bool, timeout: Duration) -> RpcSlbClient {
    let mut config = RpcConfig::new("cn-hangzhou");
    config.slb_endpoint = Some(server.uri());
    config.ecs_endpoint = Some(format!("{}/", server.uri()));
    config.timeout = timeout;
    RpcSlbClient::new(config, Arc::new(StaticProvider::new(creds(temporary))))
}

fn client(server: &MockServer) -> RpcSlbClient {
    client_with(server, false, Duration::from_secs(5))
}

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

async fn answer(server: &MockServer, action: &str, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(query_param("Action", action))
        .respond_with(response)
        .mount(server)
        .await;
}

/// The query parameters of every request received, form-decoded, in arrival order.
async fn sent(server: &MockServer) -> Vec<BTreeMap<String, String>> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| r.url.query_pairs().into_owned().collect())
        .collect()
}

fn rfc3986(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Signature v1 as the API verifies it, recomputed from what was actually sent.
fn expected_signature(params: &BTreeMap<String, String>, secret: &str) -> String {
    let canonical: Vec<String> = params
        .iter()
        .filter(|(k, _)| k.as_str() != "Signature")
        .map(|(k, v)| format!("{}={}", rfc3986(k), rfc3986(v)))
        .collect();
    let string_to_sign = format!("GET&%2F&{}", rfc3986(&canonical.join("&")));
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(format!("{secret}&").as_bytes()).unwrap();
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn ecs(id: &str, port: u16, weight: u32) -> SlbBackend {
    SlbBackend {
        server_id: id.into(),
        server_ip: None,
        port,
        weight: Weight::new(weight).unwrap(),
        backend_type: BackendType::Ecs,
        description: "k8s/80/web/default/c1".into(),
    }
}

fn batch_items(params: &BTreeMap<String, String>) -> Vec<Value> {
    let raw = params.get("BackendServers").expect("BackendServers sent");
    serde_json::from_str::<Vec<Value>>(raw).expect("BackendServers is a JSON array")
}

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
    let health = client(&server).describe_health("lb-1", 80).await.unwrap();
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
async fn listeners_are_discovered_with_their_group_and_drain_settings() {
    let server = MockServer::start().await;
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
    assert_eq!(requests.len(), 5);
    assert!(requests[1..]
        .iter()
        .all(|r| r["LoadBalancerId"] == "lb-1" && r.contains_key("ListenerPort")));
}

#[tokio::test]
async fn listeners_from_the_older_misspelled_field_are_read_too() {
    let server = MockServer::start().await;
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

async fn error_for(response: ResponseTemplate) -> SlbError {
    let server = MockServer::start().await;
    answer(&server, "DeleteVServerGroup", response).await;
    client(&server)
        .delete_vserver_group("rsp-1")
        .await
        .unwrap_err()
}

fn api_error(status: u16, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"Code": code,
        "Message": format!("message of {code}"), "RequestId": "REQ-42",
        "HostId": "slb.cn-hangzhou.aliyuncs.com", "Recommend": "https://next.api.aliyun.com"}))
}

#[tokio::test]
async fn api_errors_are_classified_and_quote_code_message_and_request_id() {
    for (status, code, class) in [
        (400, "Throttling", ErrorClass::Throttling),
        (400, "Throttling.User", ErrorClass::Throttling),
        (503, "Throttling.Api", ErrorClass::Throttling),
        (400, "SystemBusy", ErrorClass::Busy),
        (400, "OperationBusy", ErrorClass::Busy),
        (400, "VServerGroupProcessing", ErrorClass::Busy),
        (409, "BackendServer.configuring", ErrorClass::Busy),
        (400, "ServiceIsConfiguring", ErrorClass::Busy),
        (400, "ServiceIsStopping", ErrorClass::Busy),
        (503, "ServiceUnavailable", ErrorClass::Unavailable),
        (500, "InternalError", ErrorClass::Unavailable),
        (400, "InvalidParameter", ErrorClass::Permanent),
        (404, "InvalidVServerGroupId.NotFound", ErrorClass::Permanent),
        (400, "RspoolVipExist", ErrorClass::Permanent),
        (
            400,
            "InstanceBackendServerNumberOverLimit",
            ErrorClass::Permanent,
        ),
        (403, "Forbidden.RAM", ErrorClass::Permanent),
        (400, "SignatureDoesNotMatch", ErrorClass::Permanent),
        (404, "InvalidAccessKeyId.NotFound", ErrorClass::Permanent),
    ] {
        let err = error_for(api_error(status, code)).await;
        assert_eq!(err.class, class, "{code}");
        assert_eq!(err.code, code);
        assert_eq!(err.message, format!("message of {code}"));
        assert_eq!(err.request_id.as_deref(), Some("REQ-42"));
        assert_eq!(err.action, "DeleteVServerGroup");
        assert_eq!(err.is_retryable(), class != ErrorClass::Permanent);
        let text = err.to_string();
        assert!(text.contains(code) && text.contains("REQ-42"), "{text}");
    }
}

#[tokio::test]
async fn a_non_json_5xx_body_is_unavailable() {
    let err = error_for(
        ResponseTemplate::new(502)
            .set_body_string("<html><body>502 Bad Gateway</body></html>")
            .insert_header("content-type", "text/html"),
    )
    .await;
    assert_eq!(err.class, ErrorClass::Unavailable, "{err}");
    assert_eq!(err.code, "InvalidErrorResponse");
    let err = error_for(ResponseTemplate::new(503)).await;
    assert_eq!(err.class, ErrorClass::Unavailable, "empty 503: {err}");
}

#[tokio::test]
async fn a_non_json_success_body_is_unavailable_not_a_panic() {
    for body in ["<xml/>", "", "[1,2]", "null", "\u{0}\u{1}garbage"] {
        let err = error_for(ResponseTemplate::new(200).set_body_string(body)).await;
        assert_eq!(err.class, ErrorClass::Unavailable, "{body:?}");
        assert_eq!(err.code, "InvalidResponse");
    }
}

#[tokio::test]
async fn a_slow_answer_times_out_as_unavailable() {
    let server = MockServer::start().await;
    answer(
        &server,
        "DeleteVServerGroup",
        ok(json!({"RequestId": "r"})).set_delay(Duration::from_secs(3)),
    )
    .await;
    let c = client_with(&server, false, Duration::from_millis(200));
    let started = Instant::now();
    let err = c.delete_vserver_group("rsp-1").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.class, ErrorClass::Unavailable);
    assert_eq!(err.code, "Timeout");
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    // A port that was just free: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = RpcConfig::new("cn-hangzhou");
    config.slb_endpoint = Some(format!("http://127.0.0.1:{port}"));
    let c = RpcSlbClient::new(config, Arc::new(StaticProvider::new(creds(true))));
    let err = c.delete_vserver_group("rsp-1").await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Unavailable, "{err}");
    assert_eq!(err.code, "Transport");
}

#[tokio::test]
async fn calls_are_counted_by_action_and_result() {
    let server = MockServer::start().await;
    answer(
        &server,
        "DeleteVServerGroup",
        api_error(400, "Throttling.User"),
    )
    .await;
    answer(
        &server,
        "CreateVServerGroup",
        ok(json!({"VServerGroupId": "rsp-1"})),
    )
    .await;
    let registry = prometheus::Registry::new();
    let c = client(&server).with_metrics(SlbMetrics::register(&registry).unwrap());
    c.create_vserver_group("lb-1", "g").await.unwrap();
    c.delete_vserver_group("rsp-1").await.unwrap_err();
    c.delete_vserver_group("rsp-1").await.unwrap_err();

    let families = registry.gather();
    let count = |action: &str, result: &str| -> f64 {
        families
            .iter()
            .find(|f| f.name() == "slb_sync_slb_calls_total")
            .unwrap()
            .get_metric()
            .iter()
            .find(|m| {
                let labels: BTreeMap<_, _> = m
                    .get_label()
                    .iter()
                    .map(|l| (l.name(), l.value()))
                    .collect();
                labels["action"] == action && labels["result"] == result
            })
            .map(|m| m.get_counter().get_value())
            .unwrap_or(-1.0)
    };
    assert_eq!(count("CreateVServerGroup", "ok"), 1.0);
    assert_eq!(count("DeleteVServerGroup", "throttling"), 2.0);
    assert_eq!(
        count("DeleteVServerGroup", "ok"),
        0.0,
        "pre-registered at zero"
    );
    let histogram = families
        .iter()
        .find(|f| f.name() == "slb_sync_slb_call_duration_seconds")
        .unwrap();
    let samples: u64 = histogram
        .get_metric()
        .iter()
        .map(|m| m.get_histogram().get_sample_count())
        .sum();
    assert_eq!(samples, 3);
}
