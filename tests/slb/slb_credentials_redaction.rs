//! No secret (key secret, security token, OIDC token) reaches Debug output, Display,
//! errors or logs: every provider and config type, malformed files and answers that
//! contain secrets, and the failing client's errors as the reconciler logs them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use slb_sync::slb::credentials::{
    CredentialsConfig, CredentialsProvider, FileProvider, MetadataProvider, RrsaProvider,
    SecretString, StaticProvider,
};
use slb_sync::slb::{ErrorClass, RpcConfig, RpcSlbClient, SlbApi, SlbError};
use support::credentials::*;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn no_credential_type_prints_its_secret() {
    let creds = secret_creds();
    assert_clean("Credentials Debug", &format!("{creds:?}"));
    assert_clean(
        "StaticProvider Debug",
        &format!("{:?}", StaticProvider::new(creds.clone())),
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("creds");
    write(
        &file,
        &json!({"AccessKeyId": "LTAIleaktest", "AccessKeySecret": SECRET,
                "SecurityToken": TOKEN})
        .to_string(),
    );
    let provider = FileProvider::new(file.clone());
    provider.credentials().await.unwrap();
    assert_clean("FileProvider Debug", &format!("{provider:?}"));

    let config = CredentialsConfig {
        access_key_id: Some("LTAIleaktest".into()),
        access_key_secret: Some(SecretString::from(SECRET)),
        security_token: Some(SecretString::from(TOKEN)),
        ..CredentialsConfig::default()
    };
    assert_clean("CredentialsConfig Debug", &format!("{config:?}"));
    assert_clean("provider Debug", &format!("{:?}", config.build().unwrap()));

    let server = MockServer::start().await;
    Mock::given(path(format!("{ROLE_PATH}r")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "Code": "Success", "AccessKeyId": "STS.leak", "AccessKeySecret": SECRET,
            "SecurityToken": TOKEN, "Expiration": "2099-01-01T00:00:00Z"})))
        .mount(&server)
        .await;
    let role = MetadataProvider::new(server.uri(), Some("r".into())).unwrap();
    role.credentials().await.unwrap();
    assert_clean("MetadataProvider Debug", &format!("{role:?}"));

    // Malformed files and metadata answers that contain the secret.
    write(&file, &format!("AccessKeySecret={SECRET}\n{TOKEN}\n"));
    let err = FileProvider::new(file.clone())
        .credentials()
        .await
        .unwrap_err();
    assert_error_clean("file format error", &err);
    write(
        &file,
        &format!("{{\"AccessKeySecret\": \"{SECRET}\", \"SecurityToken\": {TOKEN}}}"),
    );
    let err = FileProvider::new(file.clone())
        .credentials()
        .await
        .unwrap_err();
    assert_error_clean("file JSON error", &err);
    write(&file, &format!("AccessKeySecret={SECRET}\n"));
    let err = FileProvider::new(file).credentials().await.unwrap_err();
    assert_error_clean("incomplete file error", &err);

    let server = MockServer::start().await;
    Mock::given(path(format!("{ROLE_PATH}r")))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(format!("not json {SECRET} {TOKEN}")),
        )
        .mount(&server)
        .await;
    let err = MetadataProvider::new(server.uri(), Some("r".into()))
        .unwrap()
        .credentials()
        .await
        .unwrap_err();
    assert_error_clean("metadata error", &err);
}

#[tokio::test]
async fn a_failing_client_never_prints_the_secret_or_token() {
    let logs = Captured::default();
    let guard = logs.install();

    let server = MockServer::start().await;
    // The real SignatureDoesNotMatch message echoes the server's string-to-sign, which
    // holds the SecurityToken (encoded twice); some gateways echo raw parameters.
    let string_to_sign = format!(
        "GET&%2F&AccessKeyId%3DLTAIleaktest%26SecurityToken%3D{}",
        url_encode(&url_encode(TOKEN))
    );
    Mock::given(query_param("Action", "DeleteVServerGroup"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "Code": "SignatureDoesNotMatch",
            "Message": format!("Specified signature is not matched with our calculation. server string to sign is:{string_to_sign} secret {SECRET} token {TOKEN} {}", url_encode(TOKEN)),
            "RequestId": "R-sig"})))
        .mount(&server)
        .await;
    Mock::given(query_param("Action", "CreateVServerGroup"))
        .respond_with(ResponseTemplate::new(502).set_body_string(format!("<html>{TOKEN}</html>")))
        .mount(&server)
        .await;
    Mock::given(query_param("Action", "DescribeVServerGroups"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({}))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;

    let provider = Arc::new(StaticProvider::new(secret_creds()));
    let mut config = RpcConfig::new("cn-hangzhou");
    config.slb_endpoint = Some(server.uri());
    let client = RpcSlbClient::new(config.clone(), provider.clone());
    assert_clean("RpcSlbClient Debug", &format!("{client:?}"));
    let mut impatient = config.clone();
    impatient.timeout = Duration::from_millis(200);
    let impatient = RpcSlbClient::new(impatient, provider.clone());

    let mut errors: Vec<(&str, SlbError)> = vec![
        (
            "API error",
            client.delete_vserver_group("rsp-1").await.unwrap_err(),
        ),
        (
            "non-JSON 5xx",
            client.create_vserver_group("lb-1", "g").await.unwrap_err(),
        ),
        (
            "timeout",
            impatient.list_vserver_groups("lb-1").await.unwrap_err(),
        ),
    ];
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    config.slb_endpoint = Some(format!("http://127.0.0.1:{port}"));
    let refused = RpcSlbClient::new(config.clone(), provider.clone());
    errors.push((
        "transport",
        refused.delete_vserver_group("rsp-1").await.unwrap_err(),
    ));
    config.slb_endpoint = Some("http://[not a host".into());
    let broken = RpcSlbClient::new(config, provider);
    errors.push((
        "bad endpoint",
        broken.delete_vserver_group("rsp-1").await.unwrap_err(),
    ));

    assert_eq!(errors[0].1.code, "SignatureDoesNotMatch");
    assert!(errors[0].1.message.contains("[REDACTED]"));
    assert_eq!(errors[3].1.class, ErrorClass::Unavailable);
    for (what, err) in &errors {
        assert_error_clean(what, err);
        tracing::error!(error = %err, debug = ?err, "as the reconciler would log it");
    }
    drop(guard);
    let logs = logs.text();
    assert!(
        logs.contains("SignatureDoesNotMatch"),
        "logs captured: {logs}"
    );
    assert_clean("logs", &logs);
}

/// An STS that answers the first exchange with the test secrets, then refuses with a
/// message that quotes the OIDC token (raw and URL-encoded), as a verbose gateway might.
async fn leaky_sts() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "RequestId": "R-ok",
            "Credentials": {"AccessKeyId": "STS.leak", "AccessKeySecret": SECRET,
                            "SecurityToken": TOKEN, "Expiration": at(T0 + 3600)}})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "RequestId": "R-refused",
            "Code": "AuthenticationFail.OIDCToken.Invalid",
            "Message": format!("The OIDC token {OIDC_TOKEN} ({}) is invalid", url_encode(OIDC_TOKEN))})))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn rrsa_never_prints_the_oidc_token_or_the_pair_it_got() {
    let logs = Captured::default();
    let guard = logs.install();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    write(&token, OIDC_TOKEN);
    let sts = leaky_sts().await;
    let config = rrsa_config(&sts, &token);
    assert_clean("RRSA CredentialsConfig Debug", &format!("{config:?}"));
    assert_clean(
        "RRSA provider Debug",
        &format!("{:?}", config.build().unwrap()),
    );

    let (now, clock) = manual_clock();
    let settings = config.rrsa_settings().unwrap().unwrap();
    let provider = RrsaProvider::new(settings).unwrap().with_clock(clock);
    provider.credentials().await.unwrap();
    assert_clean("RrsaProvider Debug", &format!("{provider:?}"));

    // The early refresh fails: logged as a warning while the cached pair is still used.
    now.store(T0 + 58 * 60, Ordering::SeqCst);
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id(),
        "STS.leak"
    );
    // Once the pair expired, the refusal is the error.
    now.store(T0 + 3600, Ordering::SeqCst);
    let err = provider.credentials().await.unwrap_err();
    assert!(err.to_string().contains("[REDACTED]"), "{err}");
    assert_error_clean("STS refusal", &err);

    // Through the client, as the reconciler logs it.
    let slb = MockServer::start().await;
    let mut rpc = RpcConfig::new("cn-hangzhou");
    rpc.slb_endpoint = Some(slb.uri());
    let client = RpcSlbClient::new(rpc, Arc::new(provider));
    let e = client.list_vserver_groups("lb-1").await.unwrap_err();
    assert_error_clean("client error", &e);
    tracing::error!(error = %e, debug = ?e, "as the reconciler would log it");

    drop(guard);
    let logs = logs.text();
    assert!(logs.contains("refresh failed"), "logs captured: {logs}");
    assert!(
        logs.contains("AuthenticationFail.OIDCToken.Invalid"),
        "{logs}"
    );
    assert_clean("logs", &logs);
}
