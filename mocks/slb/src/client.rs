//! A minimal signing RPC client over plain HTTP/1.1, for the mock's own tests and for
//! poking the mock by hand. (The production client lives in slb-sync; this one exists so
//! the mock can be tested without it.)

use std::net::SocketAddr;

use rand::Rng as _;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::auth::sign::{self, CommonParams};

/// An answer: HTTP status and JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// The error `Code`, if any.
    pub fn code(&self) -> Option<&str> {
        self.body.get("Code").and_then(Value::as_str)
    }
}

/// Signs calls with one key pair and sends them to one endpoint.
#[derive(Debug, Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub access_key_id: String,
    pub secret: String,
    pub region: String,
    pub security_token: Option<String>,
    /// `GET` (query) or `POST` (form body).
    pub method: String,
}

impl Client {
    pub fn new(addr: SocketAddr, access_key_id: &str, secret: &str) -> Self {
        Self {
            addr,
            access_key_id: access_key_id.into(),
            secret: secret.into(),
            region: "cn-hangzhou".into(),
            security_token: None,
            method: "GET".into(),
        }
    }

    /// The common parameters of a fresh call (new nonce, current wall-clock time).
    pub fn common(&self, action: &str, version: &str) -> Vec<(String, String)> {
        let nonce: u128 = rand::rng().random();
        let mut v = CommonParams {
            action,
            version,
            access_key_id: &self.access_key_id,
            nonce: format!("{nonce:032x}"),
            timestamp: jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
            security_token: self.security_token.as_deref(),
        }
        .pairs();
        v.push(("RegionId".into(), self.region.clone()));
        v
    }

    /// Calls an SLB (2014-05-15) action.
    pub async fn slb(&self, action: &str, params: &[(&str, &str)]) -> std::io::Result<Answer> {
        self.call(action, crate::api::SLB_VERSION, params).await
    }

    /// Calls an ECS (2014-05-26) action.
    pub async fn ecs(&self, action: &str, params: &[(&str, &str)]) -> std::io::Result<Answer> {
        self.call(action, crate::api::ECS_VERSION, params).await
    }

    pub async fn call(
        &self,
        action: &str,
        version: &str,
        params: &[(&str, &str)],
    ) -> std::io::Result<Answer> {
        let mut all = self.common(action, version);
        all.extend(params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self.send_signed(all).await
    }

    /// Signs exactly these parameters with this client's secret and sends them.
    pub async fn send_signed(&self, params: Vec<(String, String)>) -> std::io::Result<Answer> {
        let query = sign::sign_query(&self.method, &params, &self.secret);
        self.send_raw(&self.method, &query).await
    }

    /// Sends an already encoded query (no signing): for tampered-request tests.
    pub async fn send_raw(&self, method: &str, query: &str) -> std::io::Result<Answer> {
        if method.eq_ignore_ascii_case("POST") {
            http(
                self.addr,
                "POST",
                "/",
                Some(("application/x-www-form-urlencoded", query)),
            )
            .await
        } else {
            http(self.addr, "GET", &format!("/?{query}"), None).await
        }
    }
}

/// One HTTP/1.1 request with `Connection: close`; returns status and JSON body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<(&str, &str)>,
) -> std::io::Result<Answer> {
    let mut s = TcpStream::connect(addr).await?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some((ctype, b)) = body {
        req.push_str(&format!(
            "Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(Answer {
        status,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    })
}
