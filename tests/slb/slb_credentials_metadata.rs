//! Credentials of the ECS instance RAM role from a local metadata fake with a controlled
//! clock: caching, refresh before expiry, a failed refresh, hardened mode, bad answers,
//! and the role's SecurityToken on signed calls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::json;
use slb_sync::slb::credentials::{
    CredentialsError, CredentialsProvider, ExposeSecret, MetadataProvider,
};
use slb_sync::slb::{RpcConfig, RpcSlbClient, SlbApi};
use support::credentials::{manual_clock, role_answer, ROLE_PATH, T0};
use wiremock::matchers::{header, header_exists, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn metadata_fake(fetches: Arc<AtomicUsize>) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(ROLE_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_string("node-role\n"))
        .mount(&server)
        .await;
    // Each fetch hands out a new pair valid for one hour from the fetch.
    Mock::given(method("GET"))
        .and(path(format!("{ROLE_PATH}node-role")))
        .respond_with(move |_: &wiremock::Request| {
            let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
            ResponseTemplate::new(200).set_body_json(role_answer(n, T0 + 3600 * n as i64))
        })
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn role_credentials_are_cached_and_refreshed_five_minutes_before_expiry() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let server = metadata_fake(fetches.clone()).await;
    let (now, clock) = manual_clock();
    let provider = MetadataProvider::new(server.uri(), None)
        .unwrap()
        .with_clock(clock);

    let creds = provider.credentials().await.unwrap();
    assert_eq!(creds.access_key_id(), "STS.key1");
    assert_eq!(
        creds.security_token().unwrap().expose_secret(),
        "role-token-1"
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    // 54 minutes in (6 minutes before expiry): served from the cache.
    now.store(T0 + 54 * 60, Ordering::SeqCst);
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id(),
        "STS.key1"
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    // 56 minutes in (4 minutes before expiry): refreshed.
    now.store(T0 + 56 * 60, Ordering::SeqCst);
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id(),
        "STS.key2"
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id(),
        "STS.key2"
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_failed_early_refresh_keeps_the_cached_pair_until_it_expires() {
    let server = MockServer::start().await;
    Mock::given(path(format!("{ROLE_PATH}node-role")))
        .respond_with(ResponseTemplate::new(200).set_body_json(role_answer(1, T0 + 3600)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path(format!("{ROLE_PATH}node-role")))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let (now, clock) = manual_clock();
    let provider = MetadataProvider::new(server.uri(), Some("node-role".into()))
        .unwrap()
        .with_clock(clock);
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id(),
        "STS.key1"
    );

    now.store(T0 + 58 * 60, Ordering::SeqCst);
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id(),
        "STS.key1",
        "refresh failed, the pair is still valid"
    );

    now.store(T0 + 3600, Ordering::SeqCst);
    let err = provider.credentials().await.unwrap_err();
    assert!(matches!(err, CredentialsError::Metadata { .. }), "{err}");
    assert!(err.to_string().contains("HTTP 500"), "{err}");
    let received = server.received_requests().await.unwrap();
    assert!(
        received.iter().all(|r| r.url.path() != ROLE_PATH),
        "a configured role name skips discovery"
    );
}

#[tokio::test]
async fn hardened_mode_sends_the_session_token() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/latest/api/token"))
        .and(header_exists("X-aliyun-ecs-metadata-token-ttl-seconds"))
        .respond_with(ResponseTemplate::new(200).set_body_string("md-session-token"))
        .mount(&server)
        .await;
    for route in [ROLE_PATH.to_string(), format!("{ROLE_PATH}node-role")] {
        let body = if route == ROLE_PATH {
            ResponseTemplate::new(200).set_body_string("node-role")
        } else {
            ResponseTemplate::new(200).set_body_json(role_answer(1, T0 + 3600))
        };
        Mock::given(method("GET"))
            .and(path(route))
            .and(header("X-aliyun-ecs-metadata-token", "md-session-token"))
            .respond_with(body)
            .mount(&server)
            .await;
    }
    // Without the token header the hardened service refuses.
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let (_, clock) = manual_clock();
    let provider = MetadataProvider::new(server.uri(), None)
        .unwrap()
        .with_clock(clock);
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id(),
        "STS.key1"
    );
}

#[tokio::test]
async fn bad_metadata_answers_are_errors() {
    for body in [
        json!({"Code": "Failed", "Message": "no role"}),
        json!({"Code": "Success", "AccessKeyId": "STS.x", "AccessKeySecret": "s",
               "SecurityToken": "t"}),
        json!({"Code": "Success", "AccessKeyId": "STS.x", "AccessKeySecret": "s",
               "Expiration": "2030-01-01T00:00:00Z"}),
    ] {
        let server = MockServer::start().await;
        Mock::given(path(format!("{ROLE_PATH}r")))
            .respond_with(ResponseTemplate::new(200).set_body_json(&body))
            .mount(&server)
            .await;
        let provider = MetadataProvider::new(server.uri(), Some("r".into())).unwrap();
        let err = provider.credentials().await.unwrap_err();
        assert!(
            matches!(err, CredentialsError::Metadata { .. }),
            "{body}: {err}"
        );
    }
}

#[tokio::test]
async fn role_credentials_sign_calls_with_their_security_token() {
    let metadata = metadata_fake(Arc::new(AtomicUsize::new(0))).await;
    let slb = MockServer::start().await;
    Mock::given(query_param("Action", "DeleteVServerGroup"))
        .and(query_param("SecurityToken", "role-token-1"))
        .and(query_param("AccessKeyId", "STS.key1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"RequestId": "r"})))
        .expect(1)
        .mount(&slb)
        .await;
    let (_, clock) = manual_clock();
    let provider = MetadataProvider::new(metadata.uri(), None)
        .unwrap()
        .with_clock(clock);
    let mut config = RpcConfig::new("cn-hangzhou");
    config.slb_endpoint = Some(slb.uri());
    RpcSlbClient::new(config, Arc::new(provider))
        .delete_vserver_group("rsp-1")
        .await
        .unwrap();
}
