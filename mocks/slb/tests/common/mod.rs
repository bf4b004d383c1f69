//! Shared fixtures: a seeded mock, a signing client, echo backends, clock jumps.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mock_slb::client::{Answer, Client};
use mock_slb::{Config, MockSlb, MockSlbHandle, Seed};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

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

/// Moves the tokio clock forward by `d` while letting real I/O run in real time
/// afterwards (a paused clock would otherwise auto-advance during socket waits).
pub async fn jump(d: Duration) {
    tokio::time::pause();
    tokio::time::advance(d).await;
    tokio::time::resume();
    // Let timers that fell due run.
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// An echo server on `ip` (ephemeral port) that first writes `name\n`, then echoes.
pub async fn echo_backend(ip: &str, name: &'static str) -> SocketAddr {
    let ip: IpAddr = ip.parse().unwrap();
    let l = TcpListener::bind((ip, 0)).await.expect("bind echo backend");
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                if s.write_all(format!("{name}\n").as_bytes()).await.is_err() {
                    return;
                }
                let mut buf = [0u8; 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// A connection through the mock's listener, with the backend's name read.
pub struct Conn {
    pub name: String,
    reader: BufReader<TcpStream>,
}

impl Conn {
    /// Connects; `None` when the mock closed the connection without a backend.
    pub async fn open(addr: SocketAddr) -> Option<Conn> {
        let s = TcpStream::connect(addr).await.ok()?;
        let mut reader = BufReader::new(s);
        let mut name = String::new();
        let n = tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut name))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        Some(Conn {
            name: name.trim().to_string(),
            reader,
        })
    }

    /// True when a round trip through the connection works.
    pub async fn alive(&mut self) -> bool {
        if self.reader.get_mut().write_all(b"ping\n").await.is_err() {
            return false;
        }
        let mut line = String::new();
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.reader.read_line(&mut line)).await,
            Ok(Ok(n)) if n > 0 && line == "ping\n"
        )
    }

    /// True when the peer closed the connection (EOF or reset) within a second.
    pub async fn closed(&mut self) -> bool {
        let mut buf = [0u8; 16];
        matches!(
            tokio::time::timeout(Duration::from_secs(1), self.reader.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}
