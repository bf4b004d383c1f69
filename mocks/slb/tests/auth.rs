//! Authentication like the real gateway: every failure code, with its HTTP status.

mod common;

use std::time::Duration;

use common::*;
use mock_slb::sign;
use serde_json::json;

fn group_params(c: &mock_slb::client::Client) -> Vec<(String, String)> {
    let mut p = c.common("DescribeVServerGroups", "2014-05-15");
    p.push(("LoadBalancerId".into(), LB.into()));
    p
}

#[tokio::test]
async fn signed_get_and_post_succeed_and_extra_params_are_ignored() {
    let (_h, mut c) = start(seed(20, false, json!({}))).await;
    let mut p = group_params(&c);
    p.push(("SignatureType".into(), String::new()));
    p.push(("OwnerId".into(), "12345".into()));
    assert_ok(&c.send_signed(p).await.unwrap());
    c.method = "POST".into();
    assert_ok(&c.send_signed(group_params(&c)).await.unwrap());
    c.security_token = Some("sts-token".into());
    assert_ok(
        &c.slb("DescribeVServerGroups", &[("LoadBalancerId", LB)])
            .await
            .unwrap(),
    );
}

#[tokio::test]
async fn fractional_seconds_timestamp_is_accepted() {
    let (_h, c) = start(seed(21, false, json!({}))).await;
    let mut p = group_params(&c);
    let ts = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        .to_string();
    assert!(ts.contains('.'), "{ts}");
    for (k, v) in p.iter_mut() {
        if k == "Timestamp" {
            *v = ts.clone();
        }
    }
    assert_ok(&c.send_signed(p).await.unwrap());
}

#[tokio::test]
async fn wrong_secret_is_signature_does_not_match() {
    let (_h, mut c) = start(seed(22, false, json!({}))).await;
    c.secret = "not-the-secret".into();
    let a = c
        .slb("DescribeVServerGroups", &[("LoadBalancerId", LB)])
        .await
        .unwrap();
    assert_err(&a, 400, "SignatureDoesNotMatch");
}

#[tokio::test]
async fn tampered_parameter_is_signature_does_not_match() {
    let (_h, c) = start(seed(23, false, json!({}))).await;
    let p = group_params(&c);
    let q = sign::sign_query("GET", &p, SECRET).replace("lb-test", "lb-other");
    assert_err(
        &c.send_raw("GET", &q).await.unwrap(),
        400,
        "SignatureDoesNotMatch",
    );
    // Signed for GET, sent as POST.
    let q = sign::sign_query("GET", &group_params(&c), SECRET);
    assert_err(
        &c.send_raw("POST", &q).await.unwrap(),
        400,
        "SignatureDoesNotMatch",
    );
}

#[tokio::test]
async fn unknown_key_is_not_found_404() {
    let (_h, mut c) = start(seed(24, false, json!({}))).await;
    c.access_key_id = "nobody".into();
    let a = c
        .slb("DescribeVServerGroups", &[("LoadBalancerId", LB)])
        .await
        .unwrap();
    assert_err(&a, 404, "InvalidAccessKeyId.NotFound");
}

#[tokio::test]
async fn timestamp_skew_of_15_minutes_is_expired() {
    let (_h, c) = start(seed(25, false, json!({}))).await;
    // Ahead by 15 min + 2 s: the timestamp is cut to whole seconds (up to 1 s back) and
    // reaches the mock a few ms later, so + 1 s could land just under 15 minutes.
    for skew in [-15 * 60i64, 15 * 60 + 2] {
        let mut p = group_params(&c);
        let ts = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(skew))
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        for (k, v) in p.iter_mut() {
            if k == "Timestamp" {
                *v = ts.clone();
            }
        }
        assert_err(
            &c.send_signed(p).await.unwrap(),
            400,
            "InvalidTimeStamp.Expired",
        );
    }
    // 14 minutes off is fine.
    let mut p = group_params(&c);
    let ts = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(14 * 60))
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    for (k, v) in p.iter_mut() {
        if k == "Timestamp" {
            *v = ts.clone();
        }
    }
    assert_ok(&c.send_signed(p).await.unwrap());
}

#[tokio::test]
async fn nonce_reuse_is_refused_for_15_minutes_of_mock_time() {
    let (_h, c) = start(seed(26, false, json!({}))).await;
    let q = sign::sign_query("GET", &group_params(&c), SECRET);
    assert_ok(&c.send_raw("GET", &q).await.unwrap());
    assert_err(
        &c.send_raw("GET", &q).await.unwrap(),
        400,
        "SignatureNonceUsed",
    );
    jump(Duration::from_secs(14 * 60)).await;
    assert_err(
        &c.send_raw("GET", &q).await.unwrap(),
        400,
        "SignatureNonceUsed",
    );
    jump(Duration::from_secs(60)).await;
    assert_ok(&c.send_raw("GET", &q).await.unwrap());
}

#[tokio::test]
async fn each_missing_common_parameter_is_named() {
    let (_h, c) = start(seed(27, false, json!({}))).await;
    for missing in [
        "Action",
        "Version",
        "AccessKeyId",
        "SignatureMethod",
        "SignatureVersion",
        "SignatureNonce",
        "Timestamp",
    ] {
        let p: Vec<_> = group_params(&c)
            .into_iter()
            .filter(|(k, _)| k != missing)
            .collect();
        let a = c.send_signed(p).await.unwrap();
        assert_err(&a, 400, "MissingParameter");
        assert!(
            a.body["Message"].as_str().unwrap().contains(missing),
            "{}",
            a.body
        );
    }
    let q = sign::canonical_query(&group_params(&c));
    assert_err(
        &c.send_raw("GET", &q).await.unwrap(),
        400,
        "MissingParameter",
    );
    let p: Vec<_> = group_params(&c)
        .into_iter()
        .filter(|(k, _)| k != "RegionId")
        .collect();
    assert_err(&c.send_signed(p).await.unwrap(), 400, "MissingParameter");
}

#[tokio::test]
async fn wrong_version_and_unknown_action() {
    let (_h, c) = start(seed(28, false, json!({}))).await;
    let a = c
        .call(
            "DescribeVServerGroups",
            "2014-05-26",
            &[("LoadBalancerId", LB)],
        )
        .await
        .unwrap();
    assert_err(&a, 400, "InvalidVersion");
    let a = c.slb("DescribeNothing", &[]).await.unwrap();
    assert_err(&a, 404, "InvalidAction.NotFound");
}

#[tokio::test]
async fn temporary_credentials_need_their_security_token() {
    let s = seed(
        29,
        false,
        json!({"access_keys": [{"id": "STS.tmp", "secret": "tmpsecret", "security_token": "tok"}]}),
    );
    let (h, _) = start(s).await;
    let mut c = mock_slb::client::Client::new(h.api_addr(), "STS.tmp", "tmpsecret");
    let call = |c: mock_slb::client::Client| async move {
        c.slb("DescribeVServerGroups", &[("LoadBalancerId", LB)])
            .await
            .unwrap()
    };
    assert_err(&call(c.clone()).await, 400, "MissingParameter");
    c.security_token = Some("other".into());
    assert_err(
        &call(c.clone()).await,
        400,
        "InvalidSecurityToken.MismatchWithAccessKey",
    );
    c.security_token = Some("tok".into());
    assert_ok(&call(c.clone()).await);
    // Revoked through the admin API: the key is gone.
    let a = mock_slb::client::http(h.api_addr(), "DELETE", "/admin/access-keys/STS.tmp", None)
        .await
        .unwrap();
    assert_eq!(a.status, 204);
    assert_err(&call(c).await, 404, "InvalidAccessKeyId.NotFound");
}
