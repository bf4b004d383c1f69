//! Our signature v1 (`slb_sync::slb::rpc::sign`) against the vendor's own client,
//! `aliyun-openapi-core-rust-sdk`, as the oracle: for random actions, versions, methods,
//! parameters (any Unicode, reserved characters, JSON lists) and credentials (STS tokens
//! included), the SDK signs and sends a request to a loopback `wiremock` server; our
//! signer signs the same parameters with the SDK's nonce and timestamp, and the canonical
//! query and signature must be identical. Our signed query also goes out through the
//! agent's HTTP client to the same server and must arrive byte for byte as the SDK's did.
//!
//! `SLB_SYNC_ORACLE_CASES` sets the number of random requests (default 10,000).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aliyun_openapi_core_rust_sdk::client::rpc::RPClient;
use bytes::Bytes;
use http_body_util::Full;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use slb_sync::slb::http::HttpClient;
use slb_sync::slb::rpc::sign::{self, CallIdentity, Method};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// Parameters the signer adds itself; a drawn parameter never takes one of these names.
const COMMON: [&str; 10] = [
    "AccessKeyId",
    "Action",
    "Format",
    "SecurityToken",
    "Signature",
    "SignatureMethod",
    "SignatureNonce",
    "SignatureVersion",
    "Timestamp",
    "Version",
];

#[derive(Debug, Clone)]
struct Case {
    action: String,
    version: &'static str,
    method: Method,
    access_key_id: String,
    secret: String,
    token: Option<String>,
    params: Vec<(String, String)>,
}

fn backend_list() -> impl Strategy<Value = String> {
    prop::collection::vec(
        ("i-[a-z0-9]{8,20}", 1u16..65535, 0u8..=100, "[ -~]{0,40}"),
        1..20,
    )
    .prop_map(|items| {
        let list: Vec<_> = items
            .into_iter()
            .map(|(id, port, weight, description)| {
                serde_json::json!({"ServerId": id, "Port": port.to_string(),
                    "Weight": weight.to_string(), "Type": "ecs", "Description": description})
            })
            .collect();
        serde_json::Value::Array(list).to_string()
    })
}

fn case() -> impl Strategy<Value = Case> {
    let action = prop_oneof![
        Just("DescribeVServerGroupAttribute".to_string()),
        Just("AddVServerGroupBackendServers".to_string()),
        Just("DescribeNetworkInterfaces".to_string()),
        Just("AssumeRole".to_string()),
        "[A-Z][A-Za-z]{1,40}",
    ];
    let version = prop_oneof![Just("2014-05-15"), Just("2014-05-26"), Just("2015-04-01")];
    let method = prop_oneof![Just(Method::Get), Just(Method::Post)];
    let key_id = prop_oneof!["LTAI[A-Za-z0-9]{12,20}", "STS\\.[A-Za-z0-9]{10,40}"];
    let secret = prop_oneof!["[A-Za-z0-9]{30}", "\\PC{1,40}"];
    let token = prop::option::of(prop_oneof!["[A-Za-z0-9+/=]{20,300}", "\\PC{1,80}"]);
    let value = prop_oneof![
        "\\PC{0,60}",
        "[ -~]{0,60}",
        backend_list(),
        Just(String::new())
    ];
    let params = prop::collection::btree_map("[A-Za-z][A-Za-z0-9.]{0,24}", value, 0..10);
    (action, version, method, key_id, secret, token, params).prop_map(
        |(action, version, method, access_key_id, secret, token, params)| Case {
            action,
            version,
            method,
            access_key_id,
            secret,
            token,
            params: params
                .into_iter()
                .filter(|(k, _)| !COMMON.contains(&k.as_str()))
                .collect(),
        },
    )
}

/// What the server received: method and the raw query string.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

async fn server() -> (MockServer, Seen) {
    let server = MockServer::builder()
        .disable_request_recording()
        .start()
        .await;
    let seen: Seen = Arc::default();
    let log = seen.clone();
    Mock::given(wiremock::matchers::any())
        .respond_with(move |r: &Request| {
            let query = r.url.query().unwrap_or("").to_string();
            log.lock().unwrap().push((r.method.to_string(), query));
            ResponseTemplate::new(200).set_body_string("{}")
        })
        .mount(&server)
        .await;
    (server, seen)
}

fn param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn check(
    case: Case,
    endpoint: &str,
    seen: &Seen,
    http: &HttpClient,
) -> Result<(), TestCaseError> {
    let mut params = case.params.clone();
    if let Some(token) = &case.token {
        params.push(("SecurityToken".into(), token.clone()));
    }
    seen.lock().unwrap().clear();
    RPClient::new(&case.access_key_id, &case.secret, endpoint)
        .version(case.version)
        .request(case.method.as_str(), &case.action)
        .query(params.clone())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| TestCaseError::fail(format!("SDK call: {e}")))?;
    let (sdk_method, sdk_query) = seen.lock().unwrap().pop().expect("the SDK's request");
    prop_assert_eq!(&sdk_method, case.method.as_str());

    // Ours, with the SDK's nonce and timestamp.
    let nonce = param(&sdk_query, "SignatureNonce").expect("nonce");
    let timestamp = param(&sdk_query, "Timestamp").expect("timestamp");
    let common = sign::common_params(CallIdentity {
        action: &case.action,
        version: case.version,
        access_key_id: &case.access_key_id,
        nonce: &nonce,
        timestamp: &timestamp,
    });
    let mut all: Vec<(&str, &str)> = common.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let ours = sign::sign(case.method, &all, &case.secret);

    let sdk_signature = param(&sdk_query, "Signature").expect("signature");
    let sdk_canonical = sdk_query
        .split_once('&')
        .map(|(_, rest)| rest)
        .unwrap_or("");
    prop_assert_eq!(&ours.canonical, sdk_canonical, "canonical query");
    prop_assert_eq!(&ours.signature, &sdk_signature, "signature");
    prop_assert_eq!(&ours.query(), &sdk_query, "whole query");

    // On the wire through the agent's client, the same bytes arrive.
    let method = match case.method {
        Method::Get => http::Method::GET,
        Method::Post => http::Method::POST,
    };
    let request = http::Request::builder()
        .method(method)
        .uri(format!("{endpoint}?{}", ours.query()))
        .body(Full::<Bytes>::default())
        .expect("request");
    let answer = http
        .send(request, Duration::from_secs(10))
        .await
        .map_err(|e| TestCaseError::fail(format!("our call: {e}")))?;
    prop_assert_eq!(answer.status.as_u16(), 200);
    let (_, our_query) = seen.lock().unwrap().pop().expect("our request");
    prop_assert_eq!(our_query, sdk_query, "as received");
    Ok(())
}

#[test]
fn our_signer_matches_the_vendor_sdk_on_random_requests() {
    // The SDK builds an OpenSSL client for every request, which parses the CA bundle each
    // time; the calls here are plain HTTP, so an empty bundle keeps 10,000 of them quick.
    // Set before any thread of this test binary exists.
    let empty = tempfile::NamedTempFile::new().expect("temp file");
    std::env::set_var("SSL_CERT_FILE", empty.path());
    std::env::set_var("SSL_CERT_DIR", empty.path());

    let cases: u32 = std::env::var("SLB_SYNC_ORACLE_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (server, seen) = rt.block_on(server());
    let endpoint = format!("{}/", server.uri());
    let http = HttpClient::new();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&case(), |case| {
            rt.block_on(check(case, &endpoint, &seen, &http))
        })
        .unwrap();
}
