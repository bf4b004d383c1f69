//! Contract of the SLB client's transport (loopback `wiremock` and mock-slb): reads as
//! GET, backend writes as POST forms signed over query and body; error answers keep their
//! HTTP status and are classified by status and Code together; redirects are not
//! followed; one kept-alive connection serves many calls; HTTPS needs no process-wide
//! crypto provider; transport errors carry nothing secret.
use support::slb_mock;

use slb_sync::slb::http::HttpError;
use support::slb_contract::*;

#[tokio::test]
async fn reads_are_get_and_backend_writes_post_forms_signed_over_both() {
    for temporary in [false, true] {
        let server = MockServer::start().await;
        for action in [
            "DescribeVServerGroupAttribute",
            "SetVServerGroupAttribute",
            "DeleteVServerGroup",
        ] {
            answer(&server, action, ok(json!({"RequestId": "r"}))).await;
        }
        let c = client_with(&server, temporary, Duration::from_secs(5));
        c.describe_vserver_group("rsp-1").await.unwrap();
        let backends: Vec<SlbBackend> = (0..20)
            .map(|i| ecs(&format!("i-{i:02}"), 30080, 50))
            .collect();
        c.set_backends("rsp-1", &backends).await.unwrap();
        c.delete_vserver_group("rsp-1").await.unwrap();

        assert_eq!(methods(&server).await, ["GET", "POST", "GET"]);
        let requests = server.received_requests().await.unwrap();
        let post = &requests[1];
        let query: BTreeMap<String, String> = post.url.query_pairs().into_owned().collect();
        assert!(
            !query.contains_key("BackendServers") && !query.contains_key("VServerGroupId"),
            "the call's parameters travel in the body: {query:?}"
        );
        assert_eq!(query["Action"], "SetVServerGroupAttribute");
        assert_eq!(
            post.headers.get("content-type").unwrap(),
            "application/x-www-form-urlencoded"
        );
        let params = &sent(&server).await[1];
        assert_eq!(batch_items(params).len(), 20);
        assert_eq!(
            params.get("SecurityToken").map(String::as_str),
            temporary.then_some(TOKEN)
        );
        assert_eq!(
            params["Signature"],
            expected_signature_for("POST", params, SECRET),
            "the signature covers query and body, with method POST"
        );
    }
}

#[tokio::test]
async fn error_answers_keep_their_status_and_are_classified_with_it() {
    for (status, code, class) in [
        (503, "SomethingNew", ErrorClass::Unavailable),
        (500, "Backend.Unknown", ErrorClass::Unavailable),
        (400, "SomethingNew", ErrorClass::Permanent),
        (429, "SomethingNew", ErrorClass::Throttling),
        (400, "Throttling.User", ErrorClass::Throttling),
        (503, "Throttling", ErrorClass::Throttling),
        (404, "InvalidVServerGroupId.NotFound", ErrorClass::Permanent),
    ] {
        let err = error_for(api_error(status, code)).await;
        assert_eq!(err.class, class, "{status} {code}");
        assert_eq!(err.status(), Some(status));
        assert_eq!(err.code, code);
        assert_eq!(err.message, format!("message of {code}"));
        assert_eq!(err.request_id.as_deref(), Some("REQ-42"));
        assert!(err.to_string().contains(&format!("HTTP {status}")), "{err}");
    }
    // Bodies that are not API errors: the status alone decides.
    for (status, class) in [
        (404, ErrorClass::Permanent),
        (403, ErrorClass::Permanent),
        (502, ErrorClass::Unavailable),
        (429, ErrorClass::Throttling),
    ] {
        let err = error_for(ResponseTemplate::new(status).set_body_string("<html>no</html>")).await;
        assert_eq!(
            (err.class, err.code.as_str()),
            (class, "InvalidErrorResponse")
        );
        assert_eq!(err.status(), Some(status));
    }
}

#[tokio::test]
async fn redirects_are_answers_not_followed() {
    let server = MockServer::start().await;
    answer(
        &server,
        "DeleteVServerGroup",
        ResponseTemplate::new(301).insert_header("location", format!("{}/moved", server.uri())),
    )
    .await;
    let err = client(&server)
        .delete_vserver_group("rsp-1")
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent, "{err}");
    assert_eq!(err.status(), Some(301));
    assert!(err.message.contains("check the endpoint"), "{err}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_thousand_sequential_calls_share_one_connection() {
    let (mock, client) = slb_mock::start(slb_mock::seed(194, false, json!({}))).await;
    for _ in 0..1000 {
        client
            .describe_vserver_group(slb_mock::GROUP)
            .await
            .unwrap();
    }
    let connections = mock.api_connections();
    assert!(
        (1..=2).contains(&connections),
        "{connections} connections for 1,000 calls"
    );
}

#[tokio::test]
async fn https_works_without_a_process_wide_crypto_provider() {
    // A loopback listener that is not TLS: the handshake fails as a transport error. No
    // rustls provider was installed for the process; the client brings its own.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = socket.write_all(b"HTTP/1.1 400 not tls\r\n\r\n").await;
        }
    });
    let mut config = RpcConfig::new("cn-hangzhou");
    config.slb_endpoint = Some(format!("https://{addr}"));
    let c = RpcSlbClient::new(config, Arc::new(StaticProvider::new(creds(true))));
    let err = c.delete_vserver_group("rsp-1").await.unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str()),
        (ErrorClass::Unavailable, "Transport"),
        "{err}"
    );
}

/// The vendor SDK's errors quoted the signed URL, so its errors had to be scrubbed. Ours
/// quote scheme, host and port only: the raw transport error (before any scrubbing)
/// holds no secret, token, signature or parameter.
#[tokio::test]
async fn transport_errors_carry_nothing_to_scrub() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let slow = MockServer::start().await;
    answer(
        &slow,
        "DeleteVServerGroup",
        ok(json!({})).set_delay(Duration::from_secs(3)),
    )
    .await;
    let mut errors = Vec::new();
    for (endpoint, timeout) in [
        (format!("http://127.0.0.1:{port}"), Duration::from_secs(5)),
        (slow.uri(), Duration::from_millis(200)),
        ("http://[not a host".to_string(), Duration::from_secs(5)),
    ] {
        let mut config = RpcConfig::new("cn-hangzhou");
        config.slb_endpoint = Some(endpoint);
        config.timeout = timeout;
        let c = RpcSlbClient::new(config, Arc::new(StaticProvider::new(creds(true))));
        errors.push(c.delete_vserver_group("rsp-1").await.unwrap_err());
    }
    let codes: Vec<_> = errors.iter().map(|e| e.code.as_str()).collect();
    assert_eq!(codes, ["Transport", "Timeout", "InvalidEndpoint"]);
    for err in &errors {
        let raw = std::error::Error::source(err)
            .and_then(|s| s.downcast_ref::<HttpError>())
            .expect("the transport error is the source");
        for text in [raw.to_string(), format!("{raw:?}"), err.to_string()] {
            for needle in [SECRET, TOKEN, "Signature", "SecurityToken", "rsp-1", "LTAI"] {
                assert!(!text.contains(needle), "{needle:?} in {text}");
            }
        }
    }
}
