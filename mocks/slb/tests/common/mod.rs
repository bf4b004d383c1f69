//! Shared fixtures: a seeded mock, a signing client, echo backends, clock jumps.
#![allow(dead_code)]

use mock_slb::client::{Answer, Client};
use mock_slb::{Config, MockSlb, MockSlbHandle, Seed};
use serde_json::{json, Value};

pub const KEY_ID: &str = "testid";
pub const SECRET: &str = "testsecret";
pub const LB: &str = "lb-test";
pub const GROUP: &str = "rsp-test";

/// A seed with one instance, one TCP listener on port 80 bound to `rsp-test` (drain as
/// given), ECS `i-1`…`i-3` at 127.0.`net`.1…3 and ENI `eni-1` at 127.0.`net`.11/.12.
pub fn seed(net: u8, drain: bool, extra: Value) -> Seed {
    let mut v = json!({
        "access_keys": [{"id": KEY_ID, "secret": SECRET}],
        "ecs_instances": [
            {"id": "i-1", "ip": format!("127.0.{net}.1")},
            {"id": "i-2", "ip": format!("127.0.{net}.2")},
            {"id": "i-3", "ip": format!("127.0.{net}.3")},
        ],
        "enis": [{"id": "eni-1", "ips": [format!("127.0.{net}.11"), format!("127.0.{net}.12")]}],
        "load_balancers": [{
            "id": LB,
            "name": "test",
            "listeners": [
                {"port": 80, "protocol": "tcp", "vserver_group_id": GROUP,
                 "connection_drain": drain, "connection_drain_timeout": 10},
                {"port": 53, "protocol": "udp"},
                {"port": 8080, "protocol": "http"},
            ],
            "vserver_groups": [{"id": GROUP, "name": "web", "backends": []}],
        }],
    });
    if let Value::Object(extra) = extra {
        for (k, val) in extra {
            v[k] = val;
        }
    }
    serde_json::from_value(v).expect("test seed is valid")
}

pub async fn start(seed: Seed) -> (MockSlbHandle, Client) {
    let h = MockSlb::start(Config {
        seed,
        ..Config::default()
    })
    .await
    .expect("mock starts");
    let c = Client::new(h.api_addr(), KEY_ID, SECRET);
    (h, c)
}

/// Asserts an error answer's status and code.
#[track_caller]
pub fn assert_err(a: &Answer, status: u16, code: &str) {
    assert_eq!(
        (a.status, a.code()),
        (status, Some(code)),
        "unexpected answer: {}",
        a.body
    );
    assert!(
        a.body["RequestId"].is_string(),
        "error without RequestId: {}",
        a.body
    );
    assert!(a.body["HostId"].is_string() && a.body["Recommend"].is_string());
}

#[track_caller]
pub fn assert_ok(a: &Answer) {
    assert_eq!(a.status, 200, "unexpected answer: {}", a.body);
    assert!(a.body["RequestId"].is_string());
}

/// `BackendServers` JSON for (server id, port, weight).
pub fn backends(list: &[(&str, u16, u8)]) -> String {
    let v: Vec<Value> = list
        .iter()
        .map(|(id, port, w)| json!({"ServerId": id, "Port": port.to_string(), "Weight": w, "Type": "ecs"}))
        .collect();
    Value::Array(v).to_string()
}

// Not every test binary that includes this file uses all of them.
#[allow(unused_imports)]
pub use mock_slb::testkit::{echo_backend, jump, Conn};
