//! Helpers of the SLB/ECS RPC client contract tests (`tests/slb/slb_contract_*.rs`): a
//! loopback `wiremock` server, canned answers, the requests the client sent, and the
//! signature recomputed independently of the client.

pub use std::collections::BTreeMap;
pub use std::net::IpAddr;
pub use std::sync::Arc;
pub use std::time::{Duration, Instant};

pub use base64::Engine as _;
pub use hmac::{Hmac, Mac};
pub use serde_json::{json, Value};
pub use slb_sync::model::{BackendType, SlbBackend, Weight};
pub use slb_sync::slb::credentials::{Credentials, SecretString, StaticProvider};
pub use slb_sync::slb::{
    ErrorClass, Listener, ListenerProtocol, RpcConfig, RpcSlbClient, SlbApi, SlbError, SlbMetrics,
};
pub use wiremock::matchers::{method, query_param};
pub use wiremock::{Mock, MockServer, ResponseTemplate};

pub const SECRET: &str = "contract-secret-value";
pub const TOKEN: &str = "contract/token+value=";

pub fn creds(temporary: bool) -> Credentials {
    Credentials::new(
        "LTAIcontract",
        SecretString::from(SECRET),
        temporary.then(|| SecretString::from(TOKEN)),
        "test",
    )
    .unwrap()
}

pub fn client_with(server: &MockServer, temporary: bool, timeout: Duration) -> RpcSlbClient {
    let mut config = RpcConfig::new("cn-hangzhou");
    config.slb_endpoint = Some(server.uri());
    config.ecs_endpoint = Some(format!("{}/", server.uri()));
    config.timeout = timeout;
    RpcSlbClient::new(config, Arc::new(StaticProvider::new(creds(temporary))))
}

pub fn client(server: &MockServer) -> RpcSlbClient {
    client_with(server, false, Duration::from_secs(5))
}

pub fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

/// Answers `action`, sent as GET (reads) or POST (backend writes; `Action` is in the
/// query either way).
pub async fn answer(server: &MockServer, action: &str, response: ResponseTemplate) {
    Mock::given(query_param("Action", action))
        .respond_with(response)
        .mount(server)
        .await;
}

/// The parameters of every request received (query, plus the form body of a POST),
/// form-decoded, in arrival order.
pub async fn sent(server: &MockServer) -> Vec<BTreeMap<String, String>> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let mut params: BTreeMap<String, String> = r.url.query_pairs().into_owned().collect();
            if r.method.as_str() == "POST" {
                params.extend(form_urlencoded_pairs(&r.body));
            }
            params
        })
        .collect()
}

/// The HTTP method of every request received, in arrival order.
pub async fn methods(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| r.method.to_string())
        .collect()
}

fn form_urlencoded_pairs(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

pub fn rfc3986(s: &str) -> String {
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

/// Signature v1 of a GET as the API verifies it, recomputed from what was actually sent.
pub fn expected_signature(params: &BTreeMap<String, String>, secret: &str) -> String {
    expected_signature_for("GET", params, secret)
}

/// Signature v1 for `method`, recomputed from every parameter sent (query and body).
pub fn expected_signature_for(
    method: &str,
    params: &BTreeMap<String, String>,
    secret: &str,
) -> String {
    let canonical: Vec<String> = params
        .iter()
        .filter(|(k, _)| k.as_str() != "Signature")
        .map(|(k, v)| format!("{}={}", rfc3986(k), rfc3986(v)))
        .collect();
    let string_to_sign = format!("{method}&%2F&{}", rfc3986(&canonical.join("&")));
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(format!("{secret}&").as_bytes()).unwrap();
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub fn ecs(id: &str, port: u16, weight: u32) -> SlbBackend {
    SlbBackend {
        server_id: id.into(),
        server_ip: None,
        port,
        weight: Weight::new(weight).unwrap(),
        backend_type: BackendType::Ecs,
        description: "k8s/80/web/default/c1".into(),
    }
}

pub fn batch_items(params: &BTreeMap<String, String>) -> Vec<Value> {
    let raw = params.get("BackendServers").expect("BackendServers sent");
    serde_json::from_str::<Vec<Value>>(raw).expect("BackendServers is a JSON array")
}

pub async fn error_for(response: ResponseTemplate) -> SlbError {
    let server = MockServer::start().await;
    answer(&server, "DeleteVServerGroup", response).await;
    client(&server)
        .delete_vserver_group("rsp-1")
        .await
        .unwrap_err()
}

pub fn api_error(status: u16, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"Code": code,
        "Message": format!("message of {code}"), "RequestId": "REQ-42",
        "HostId": "slb.cn-hangzhou.aliyuncs.com", "Recommend": "https://next.api.aliyun.com"}))
}
