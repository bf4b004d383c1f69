//! Fixtures for running the production SLB client (`RpcSlbClient`) against the mock SLB
//! (`mock-slb`) over loopback HTTP: a seeded mock, a client pointed at it, backends,
//! loopback echo servers for the data plane and clock jumps.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use mock_slb::{Config, MockSlb, MockSlbHandle, Seed};
use serde_json::{json, Value};
use slb_sync::model::{BackendType, SlbBackend, Weight};
use slb_sync::slb::credentials::{Credentials, CredentialsProvider, SecretString, StaticProvider};
use slb_sync::slb::{RpcConfig, RpcSlbClient, SlbError};

pub const KEY_ID: &str = "LTAI-integration";
pub const SECRET: &str = "integration-secret-0123456789";
pub const LB: &str = "lb-int";
pub const GROUP: &str = "rsp-int";
/// Owner Description as the agent writes it.
pub const OWNER: &str = "k8s/80/web/default/c1";

/// A seed with one instance `lb-int`: TCP listener 80 bound to `rsp-int` (drain as given,
/// timeout 10 s), UDP 53, HTTP 8080 and HTTPS 443; ECS `i-1`…`i-50` at
/// 127.0.`net`.1…50, ENI `eni-1` at 127.0.`net`.101/.102 and `eni-2` at .103. Keys in
/// `extra` replace the seed's top-level sections.
pub fn seed(net: u8, drain: bool, extra: Value) -> Seed {
    let ecs: Vec<Value> = (1..=50)
        .map(|i| json!({"id": format!("i-{i}"), "ip": format!("127.0.{net}.{i}")}))
        .collect();
    let mut v = json!({
        "access_keys": [{"id": KEY_ID, "secret": SECRET}],
        "ecs_instances": ecs,
        "enis": [
            {"id": "eni-1", "ips": [format!("127.0.{net}.101"), format!("127.0.{net}.102")]},
            {"id": "eni-2", "ips": [format!("127.0.{net}.103")]},
        ],
        "load_balancers": [{
            "id": LB,
            "name": "integration",
            "listeners": [
                {"port": 80, "protocol": "tcp", "vserver_group_id": GROUP,
                 "connection_drain": drain, "connection_drain_timeout": 10},
                {"port": 53, "protocol": "udp"},
                {"port": 8080, "protocol": "http"},
                {"port": 443, "protocol": "https"},
            ],
            "vserver_groups": [{"id": GROUP, "name": OWNER, "backends": []}],
        }],
    });
    if let Value::Object(extra) = extra {
        for (k, val) in extra {
            v[k] = val;
        }
    }
    serde_json::from_value(v).expect("test seed is valid")
}

pub async fn start_mock(seed: Seed) -> MockSlbHandle {
    MockSlb::start(Config {
        seed,
        ..Config::default()
    })
    .await
    .expect("mock SLB starts")
}

/// Client config pointing both the SLB and the ECS endpoint at the mock.
pub fn config(mock: &MockSlbHandle) -> RpcConfig {
    let mut c = RpcConfig::new("cn-hangzhou");
    c.slb_endpoint = Some(mock.api_url());
    c.ecs_endpoint = Some(mock.api_url());
    c.timeout = Duration::from_secs(10);
    c
}

pub fn static_creds(id: &str, secret: &str, token: Option<&str>) -> Arc<dyn CredentialsProvider> {
    let creds = Credentials::new(
        id,
        SecretString::from(secret.to_string()),
        token.map(|t| SecretString::from(t.to_string())),
        "test",
    )
    .expect("complete credentials");
    Arc::new(StaticProvider::new(creds))
}

/// The production client with the seed's key pair.
pub fn client(mock: &MockSlbHandle) -> RpcSlbClient {
    RpcSlbClient::new(config(mock), static_creds(KEY_ID, SECRET, None))
}

/// Starts a mock with `seed` and a client for it.
pub async fn start(seed: Seed) -> (MockSlbHandle, RpcSlbClient) {
    let mock = start_mock(seed).await;
    let client = client(&mock);
    (mock, client)
}

pub fn ecs(id: &str, port: u16, weight: u32) -> SlbBackend {
    SlbBackend {
        server_id: id.to_string(),
        server_ip: None,
        port,
        weight: Weight::new(weight).expect("weight 0-100"),
        backend_type: BackendType::Ecs,
        description: OWNER.to_string(),
    }
}

pub fn eni(id: &str, ip: &str, port: u16, weight: u32) -> SlbBackend {
    SlbBackend {
        server_id: id.to_string(),
        server_ip: Some(ip.parse().expect("ip")),
        port,
        weight: Weight::new(weight).expect("weight 0-100"),
        backend_type: BackendType::Eni,
        description: OWNER.to_string(),
    }
}

/// (server id, server ip, port, weight) of each member of a group, as the mock stores it.
pub fn members(mock: &MockSlbHandle, group: &str) -> Vec<(String, Option<IpAddr>, u16, u8)> {
    mock.state()
        .v_server_groups
        .get(group)
        .map(|g| {
            g.backends
                .iter()
                .map(|b| (b.server_id.clone(), b.server_ip, b.port, b.weight))
                .collect()
        })
        .unwrap_or_default()
}

/// The call log entries of one action.
pub fn calls_of(mock: &MockSlbHandle, action: &str) -> Vec<mock_slb::calls::CallRecord> {
    mock.call_log()
        .into_iter()
        .filter(|c| c.action == action)
        .collect()
}

/// The `BackendServers` JSON each logged call of `action` carried.
pub fn batches_sent(mock: &MockSlbHandle, action: &str) -> Vec<Vec<Value>> {
    calls_of(mock, action)
        .iter()
        .map(|c| {
            let raw = c.params.get("BackendServers").expect("BackendServers sent");
            match serde_json::from_str(raw).expect("BackendServers is JSON") {
                Value::Array(items) => items,
                other => panic!("BackendServers is not an array: {other}"),
            }
        })
        .collect()
}

/// Asserts an error's code and class, that the API's message and RequestId came through,
/// and returns it for more checks.
#[track_caller]
pub fn assert_api_error<T: std::fmt::Debug>(
    result: Result<T, SlbError>,
    code: &str,
    class: slb_sync::slb::ErrorClass,
) -> SlbError {
    let e = result.expect_err("the call must fail");
    assert_eq!(
        (e.code.as_str(), e.class),
        (code, class),
        "unexpected error: {e}"
    );
    assert!(!e.message.is_empty(), "the API's message is kept: {e}");
    assert!(
        e.request_id.as_deref().is_some_and(|r| r.len() == 36),
        "the mock's RequestId is kept: {e}"
    );
    e
}

pub use mock_slb::testkit::{echo_backend, jump, Conn};
