//! The mock accepts requests exactly as `aliyun-openapi-core-rust-sdk` (the vendor's own
//! client, the oracle the agent's signer is checked against) builds them: its timestamp format (fractional seconds),
//! its encoding, GET and POST.

mod common;

use aliyun_openapi_core_rust_sdk::client::error::Error as SdkError;
use aliyun_openapi_core_rust_sdk::client::rpc::RPClient;
use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn sdk_get_post_and_errors() {
    let (h, _c) = start(seed(30, false, json!({}))).await;
    let sdk = || RPClient::new(KEY_ID, SECRET, h.api_url());
    let v: Value = sdk()
        .get("DescribeVServerGroups")
        .version("2014-05-15")
        .query([("RegionId", "cn-hangzhou"), ("LoadBalancerId", LB)])
        .json()
        .await
        .expect("signed GET accepted");
    assert_eq!(
        v["VServerGroups"]["VServerGroup"][0]["VServerGroupId"],
        GROUP
    );

    let servers = r#"[{"ServerId":"i-1","Port":"8080","Weight":"100","Type":"ecs","Description":"k8s/80/web/default/c1"}]"#;
    let v: Value = sdk()
        .post("AddVServerGroupBackendServers")
        .version("2014-05-15")
        .query([
            ("RegionId", "cn-hangzhou"),
            ("VServerGroupId", GROUP),
            ("BackendServers", servers),
        ])
        .json()
        .await
        .expect("signed POST accepted");
    assert_eq!(v["BackendServers"]["BackendServer"][0]["Port"], 8080);

    let v: Value = sdk()
        .get("DescribeNetworkInterfaces")
        .version("2014-05-26")
        .query([
            ("RegionId", "cn-hangzhou"),
            ("PrivateIpAddress.1", "127.0.30.12"),
        ])
        .json()
        .await
        .expect("ECS call accepted");
    assert_eq!(
        v["NetworkInterfaceSets"]["NetworkInterfaceSet"][0]["NetworkInterfaceId"],
        "eni-1"
    );

    let err = RPClient::new(KEY_ID, "wrong", h.api_url())
        .get("DescribeVServerGroups")
        .version("2014-05-15")
        .query([("RegionId", "cn-hangzhou"), ("LoadBalancerId", LB)])
        .send()
        .await
        .expect_err("bad secret refused");
    match err {
        SdkError::InvalidResponse {
            error_code,
            request_id,
            ..
        } => {
            assert_eq!(error_code, "SignatureDoesNotMatch");
            assert!(!request_id.is_empty());
        }
        other => panic!("unexpected error {other:?}"),
    }
}

/// Throughput figure (run with `--ignored --nocapture`): sequential signed calls through
/// the SDK (a new HTTP client per call) and through the mock's own minimal client.
#[tokio::test]
#[ignore = "measurement, not a check"]
async fn measure_call_rate() {
    let (h, c) = start(seed(31, false, json!({}))).await;
    let n = 300;
    let t = std::time::Instant::now();
    for _ in 0..n {
        let _: Value = RPClient::new(KEY_ID, SECRET, h.api_url())
            .get("DescribeVServerGroups")
            .version("2014-05-15")
            .query([("RegionId", "cn-hangzhou"), ("LoadBalancerId", LB)])
            .json()
            .await
            .unwrap();
    }
    let sdk = t.elapsed();
    let t = std::time::Instant::now();
    for _ in 0..n {
        assert_ok(
            &c.slb("DescribeVServerGroups", &[("LoadBalancerId", LB)])
                .await
                .unwrap(),
        );
    }
    let own = t.elapsed();
    println!(
        "{n} calls: sdk {:?} ({:.0}/s, {:?}/call), mock client {:?} ({:.0}/s, {:?}/call)",
        sdk,
        n as f64 / sdk.as_secs_f64(),
        sdk / n,
        own,
        n as f64 / own.as_secs_f64(),
        own / n
    );
}
