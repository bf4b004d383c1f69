//! RRSA: the projected service-account token exchanged at a fake STS
//! (`AssumeRoleWithOIDC`). The request is exactly the documented anonymous one; refusals
//! keep STS's Code, Message and RequestId with a fix; the pair is cached and refreshed
//! ahead of its Expiration on tokio's clock; the token file is read again for every
//! exchange (the kubelet rotates it); and the production client signs mock-slb calls with
//! the pair it got.

use support::slb_mock;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mock_slb::testkit::jump;
use serde_json::json;
use slb_sync::slb::credentials::{
    CredentialsConfig, CredentialsError, CredentialsProvider, ExposeSecret, RrsaProvider,
};
use slb_sync::slb::{ErrorClass, RpcConfig, RpcSlbClient, SlbApi};
use support::credentials::{
    form_fields, key_id, kubelet_write, query_fields, rrsa_config, sts_answer, sts_fake,
    tokio_clock, write, OIDC_TOKEN, PROVIDER_ARN, ROLE_ARN, T0,
};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn provider(config: &CredentialsConfig) -> RrsaProvider {
    let settings = config.rrsa_settings().unwrap().expect("RRSA configured");
    RrsaProvider::new(settings).unwrap()
}

/// One STS answer for every exchange.
async fn sts_answering(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(template)
        .mount(&server)
        .await;
    server
}

fn pairs(list: &[(&str, &str)]) -> BTreeMap<String, String> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn the_exchange_is_the_documented_anonymous_request() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    // A trailing newline (hand-made files) is not part of the token.
    write(&token, &format!("{OIDC_TOKEN}\n"));
    let exchanges = Arc::new(AtomicUsize::new(0));
    let sts = sts_fake(exchanges.clone()).await;
    let config = CredentialsConfig {
        role_session_name: Some("slb-sync.pod-0".into()),
        role_session_duration: Some(Duration::from_secs(1800)),
        ..rrsa_config(&sts, &token)
    };
    let (_, clock) = support::credentials::manual_clock();
    let creds = provider(&config)
        .with_clock(clock)
        .credentials()
        .await
        .unwrap();
    assert_eq!(creds.access_key_id(), "STS.rrsa1");
    assert_eq!(creds.access_key_secret().expose_secret(), "rrsa-secret-1");
    assert_eq!(
        creds.security_token().unwrap().expose_secret(),
        "rrsa-token-1"
    );

    let received = sts.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/");
    // Common parameters in the query, no AccessKeyId and no signature of any kind.
    assert_eq!(
        query_fields(request),
        pairs(&[
            ("Action", "AssumeRoleWithOIDC"),
            ("Format", "JSON"),
            ("Timestamp", "2027-01-15T08:00:00Z"),
            ("Version", "2015-04-01"),
        ])
    );
    assert_eq!(
        request.headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    // The action's parameters, token included, only in the body.
    assert_eq!(
        form_fields(request),
        pairs(&[
            ("DurationSeconds", "1800"),
            ("OIDCProviderArn", PROVIDER_ARN),
            ("OIDCToken", OIDC_TOKEN),
            ("RoleArn", ROLE_ARN),
            ("RoleSessionName", "slb-sync.pod-0"),
        ])
    );

    // Defaults: session name `slb-sync`, no DurationSeconds (STS's own default).
    provider(&rrsa_config(&sts, &token))
        .credentials()
        .await
        .unwrap();
    let received = sts.received_requests().await.unwrap();
    let form = form_fields(&received[1]);
    assert_eq!(form["RoleSessionName"], "slb-sync");
    assert!(!form.contains_key("DurationSeconds"), "{form:?}");
    assert_eq!(exchanges.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn refusals_keep_code_message_and_request_id_and_say_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    write(&token, OIDC_TOKEN);

    // The answer STS gives when the role's trust policy does not admit the token.
    let sts = sts_answering(ResponseTemplate::new(400).set_body_json(json!({
        "RequestId": "1C2E6C1B-8E21-5F4C-9C4B-2A4D7E1F0A3B",
        "HostId": "sts.aliyuncs.com",
        "Code": "AuthenticationFail.NoPermission",
        "Message": "There is no permission",
        "Recommend": "https://api.aliyun.com/troubleshoot?q=AuthenticationFail.NoPermission"
    })))
    .await;
    let config = rrsa_config(&sts, &token);
    let err = provider(&config).credentials().await.unwrap_err();
    let CredentialsError::StsRefused {
        status,
        code,
        message,
        request_id,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(*status, 400);
    assert_eq!(code, "AuthenticationFail.NoPermission");
    assert_eq!(message, "There is no permission");
    assert_eq!(request_id, "1C2E6C1B-8E21-5F4C-9C4B-2A4D7E1F0A3B");
    let text = err.to_string();
    for part in [
        "AuthenticationFail.NoPermission",
        "There is no permission",
        "1C2E6C1B-8E21-5F4C-9C4B-2A4D7E1F0A3B",
        "trust policy",
        "system:serviceaccount:",
    ] {
        assert!(text.contains(part), "{part} missing in: {text}");
    }
    assert!(!err.is_transient());

    // Through the SLB client: a Permanent credentials error, no SLB call attempted.
    let slb = MockServer::start().await;
    let mut rpc = RpcConfig::new("cn-hangzhou");
    rpc.slb_endpoint = Some(slb.uri());
    let client = RpcSlbClient::new(rpc.clone(), config.build().unwrap());
    let e = client.list_vserver_groups("lb-1").await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "Credentials")
    );
    assert!(e.message.contains("AuthenticationFail.NoPermission"), "{e}");
    assert!(slb.received_requests().await.unwrap().is_empty());

    // Throttling and gateway pages are worth retrying; the client says Unavailable.
    for (template, variant) in [
        (
            ResponseTemplate::new(400).set_body_json(json!({
                "RequestId": "R-throttled", "Code": "Throttling.User",
                "Message": "Request was denied due to user flow control."})),
            "StsRefused",
        ),
        (
            ResponseTemplate::new(502).set_body_string("<html>bad gateway</html>"),
            "StsUnreachable",
        ),
        (
            ResponseTemplate::new(200).set_body_string("not json"),
            "StsAnswer",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"RequestId": "R-empty"})),
            "StsAnswer",
        ),
    ] {
        let sts = sts_answering(template).await;
        let config = rrsa_config(&sts, &token);
        let err = provider(&config).credentials().await.unwrap_err();
        assert!(format!("{err:?}").starts_with(variant), "{err:?}");
        assert!(err.is_transient(), "{err}");
        let client = RpcSlbClient::new(rpc.clone(), config.build().unwrap());
        let e = client.list_vserver_groups("lb-1").await.unwrap_err();
        assert_eq!(e.class, ErrorClass::Unavailable, "{e}");
    }

    // Nothing listening: the error says why, down to the socket.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = provider(&CredentialsConfig {
        sts_endpoint: Some(format!("http://127.0.0.1:{port}")),
        ..config.clone()
    })
    .credentials()
    .await
    .unwrap_err();
    assert!(
        matches!(err, CredentialsError::StsUnreachable { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("Connection refused"), "{err}");
    assert!(err.to_string().contains("--sts-endpoint"), "{err}");
    assert!(err.is_transient());

    // A pair without its SecurityToken is unusable, not a permanent key.
    let mut answer = sts_answer(1, T0 + 3600);
    answer["Credentials"]["SecurityToken"] = json!("");
    let sts = sts_answering(ResponseTemplate::new(200).set_body_json(answer)).await;
    let err = provider(&rrsa_config(&sts, &token))
        .credentials()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("SecurityToken"), "{err}");
}

#[tokio::test]
async fn token_file_problems_name_the_file_and_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let exchanges = Arc::new(AtomicUsize::new(0));
    let sts = sts_fake(exchanges.clone()).await;

    let missing = dir.path().join("not-mounted");
    let err = provider(&rrsa_config(&sts, &missing))
        .credentials()
        .await
        .unwrap_err();
    assert!(
        matches!(err, CredentialsError::OidcTokenRead { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("not-mounted"), "{text}");
    assert!(text.contains("ALIBABA_CLOUD_OIDC_TOKEN_FILE"), "{text}");
    assert!(
        err.is_transient(),
        "the kubelet may not have written it yet"
    );

    let empty = dir.path().join("empty");
    write(&empty, " \n");
    let err = provider(&rrsa_config(&sts, &empty))
        .credentials()
        .await
        .unwrap_err();
    assert!(
        matches!(err, CredentialsError::OidcTokenEmpty { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("ALIBABA_CLOUD_OIDC_TOKEN_FILE"));

    assert_eq!(exchanges.load(Ordering::SeqCst), 0, "STS is not asked");
}

/// The projected token volume as the kubelet lays it out, holding `token`.
fn project_token(root: &Path, generation: u32, token: &str) {
    kubelet_write(
        root,
        &format!("..2026_11_27_18_0{generation}_00.{generation}"),
        &[("token", token)],
    );
}

// The refresh tests run on tokio's clock, moved with `jump` (pause, advance, resume):
// under a clock paused for the whole test the HTTP timeout would fire while the request
// waits on the fake STS's own thread.

#[tokio::test]
async fn the_pair_is_cached_and_refreshed_five_minutes_before_expiry() {
    let dir = tempfile::tempdir().unwrap();
    project_token(dir.path(), 1, OIDC_TOKEN);
    let exchanges = Arc::new(AtomicUsize::new(0));
    let sts = sts_fake(exchanges.clone()).await;
    let provider =
        provider(&rrsa_config(&sts, &dir.path().join("token"))).with_clock(tokio_clock());

    let id = || key_id(&provider);
    assert_eq!(id().await, "STS.rrsa1");
    // 54 minutes in (6 minutes before expiry): served from the cache.
    jump(Duration::from_secs(54 * 60)).await;
    assert_eq!(id().await, "STS.rrsa1");
    assert_eq!(exchanges.load(Ordering::SeqCst), 1);
    // 56 minutes in (4 minutes before expiry): exchanged again, then cached.
    jump(Duration::from_secs(2 * 60)).await;
    assert_eq!(id().await, "STS.rrsa2");
    assert_eq!(id().await, "STS.rrsa2");
    assert_eq!(exchanges.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn each_exchange_reads_the_rotated_token() {
    let dir = tempfile::tempdir().unwrap();
    project_token(dir.path(), 1, "eyJ.first-token.sig1");
    let exchanges = Arc::new(AtomicUsize::new(0));
    let sts = sts_fake(exchanges.clone()).await;
    let provider =
        provider(&rrsa_config(&sts, &dir.path().join("token"))).with_clock(tokio_clock());
    provider.credentials().await.unwrap();

    // The kubelet rotates the token (at 80 % of its lifetime) by swapping `..data`.
    jump(Duration::from_secs(48 * 60)).await;
    project_token(dir.path(), 2, "eyJ.second-token.sig2");
    provider.credentials().await.unwrap();
    assert_eq!(exchanges.load(Ordering::SeqCst), 1, "still cached");
    jump(Duration::from_secs(10 * 60)).await;
    let creds = provider.credentials().await.unwrap();
    assert_eq!(creds.access_key_id(), "STS.rrsa2");

    let tokens: Vec<String> = sts
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| form_fields(r)["OIDCToken"].clone())
        .collect();
    assert_eq!(tokens, ["eyJ.first-token.sig1", "eyJ.second-token.sig2"]);
}

#[tokio::test]
async fn the_slb_client_works_against_mock_slb_with_the_assumed_role() {
    // mock-slb knows the pair STS hands out first, as the real SLB knows the role's.
    let mock = slb_mock::start_mock(slb_mock::seed(
        196,
        false,
        json!({"access_keys": [
            {"id": "STS.rrsa1", "secret": "rrsa-secret-1", "security_token": "rrsa-token-1"}
        ]}),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    project_token(dir.path(), 1, OIDC_TOKEN);
    let sts = sts_fake(Arc::new(AtomicUsize::new(0))).await;
    let config = CredentialsConfig {
        // Keys of a lower-precedence source are absent; the instance role is not asked.
        metadata_base_url: "http://127.0.0.1:9".into(),
        ..rrsa_config(&sts, &dir.path().join("token"))
    };
    let client = RpcSlbClient::new(slb_mock::config(&mock), config.build().unwrap());
    client
        .add_backends(slb_mock::GROUP, &[slb_mock::ecs("i-1", 30080, 100)])
        .await
        .unwrap();
    assert_eq!(slb_mock::members(&mock, slb_mock::GROUP).len(), 1);
    client.list_vserver_groups(slb_mock::LB).await.unwrap();
    let log = mock.call_log();
    assert_eq!(log.len(), 2);
    assert!(log
        .iter()
        .all(|c| c.status == 200 && c.params["AccessKeyId"] == "STS.rrsa1"));
    assert_eq!(
        sts.received_requests().await.unwrap().len(),
        1,
        "one exchange"
    );
}

#[tokio::test]
async fn a_failing_exchange_is_not_repeated_for_every_call() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    write(&token, OIDC_TOKEN);
    let sts = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(sts_answer(1, T0 + 3600)))
        .up_to_n_times(1)
        .mount(&sts)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "RequestId": "R-denied", "Code": "AuthenticationFail.NoPermission",
            "Message": "There is no permission"})))
        .mount(&sts)
        .await;
    let exchanges = || async { sts.received_requests().await.unwrap().len() };
    let (now, clock) = support::credentials::manual_clock();
    let provider = provider(&rrsa_config(&sts, &token)).with_clock(clock);
    assert_eq!(key_id(&provider).await, "STS.rrsa1");

    // The early refresh fails (the role's trust policy changed): the valid pair is used,
    // and every SLB call in the next seconds does not ask STS again.
    now.store(T0 + 56 * 60, Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(key_id(&provider).await, "STS.rrsa1");
    }
    assert_eq!(exchanges().await, 2);
    now.store(T0 + 56 * 60 + 5, Ordering::SeqCst);
    assert_eq!(key_id(&provider).await, "STS.rrsa1");
    assert_eq!(exchanges().await, 3);

    // Expired: the refusal, first from STS, then repeated without asking it.
    now.store(T0 + 3600, Ordering::SeqCst);
    let first = provider.credentials().await.unwrap_err();
    assert!(
        matches!(first, CredentialsError::StsRefused { .. }),
        "{first}"
    );
    let again = provider.credentials().await.unwrap_err();
    assert!(
        matches!(again, CredentialsError::RecentlyFailed { .. }),
        "{again}"
    );
    assert!(again
        .to_string()
        .contains("AuthenticationFail.NoPermission"));
    assert!(
        !again.is_transient(),
        "classified like the refusal it repeats"
    );
    assert_eq!(exchanges().await, 4);
    now.store(T0 + 3600 + 5, Ordering::SeqCst);
    provider.credentials().await.unwrap_err();
    assert_eq!(exchanges().await, 5);
}
