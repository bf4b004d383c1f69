//! Contract of the SLB RPC client's error handling (loopback `wiremock` server): every
//! error class with Code, Message and RequestId quoted, non-JSON and slow answers,
//! refused connections, and the per-action call metrics.

use support::slb_contract::*;

#[tokio::test]
async fn api_errors_are_classified_and_quote_code_message_and_request_id() {
    for (status, code, class) in [
        (400, "Throttling", ErrorClass::Throttling),
        (400, "Throttling.User", ErrorClass::Throttling),
        (503, "Throttling.Api", ErrorClass::Throttling),
        (400, "SystemBusy", ErrorClass::Busy),
        (400, "OperationBusy", ErrorClass::Busy),
        (400, "VServerGroupProcessing", ErrorClass::Busy),
        (409, "BackendServer.configuring", ErrorClass::Busy),
        (400, "ServiceIsConfiguring", ErrorClass::Busy),
        (400, "ServiceIsStopping", ErrorClass::Busy),
        (503, "ServiceUnavailable", ErrorClass::Unavailable),
        (500, "InternalError", ErrorClass::Unavailable),
        (400, "InvalidParameter", ErrorClass::Permanent),
        (404, "InvalidVServerGroupId.NotFound", ErrorClass::Permanent),
        (400, "RspoolVipExist", ErrorClass::Permanent),
        (
            400,
            "InstanceBackendServerNumberOverLimit",
            ErrorClass::Permanent,
        ),
        (403, "Forbidden.RAM", ErrorClass::Permanent),
        (400, "SignatureDoesNotMatch", ErrorClass::Permanent),
        (404, "InvalidAccessKeyId.NotFound", ErrorClass::Permanent),
    ] {
        let err = error_for(api_error(status, code)).await;
        assert_eq!(err.class, class, "{code}");
        assert_eq!(err.code, code);
        assert_eq!(err.message, format!("message of {code}"));
        assert_eq!(err.request_id.as_deref(), Some("REQ-42"));
        assert_eq!(err.action, "DeleteVServerGroup");
        assert_eq!(err.is_retryable(), class != ErrorClass::Permanent);
        let text = err.to_string();
        assert!(text.contains(code) && text.contains("REQ-42"), "{text}");
    }
}

#[tokio::test]
async fn a_non_json_5xx_body_is_unavailable() {
    let err = error_for(
        ResponseTemplate::new(502)
            .set_body_string("<html><body>502 Bad Gateway</body></html>")
            .insert_header("content-type", "text/html"),
    )
    .await;
    assert_eq!(err.class, ErrorClass::Unavailable, "{err}");
    assert_eq!(err.code, "InvalidErrorResponse");
    let err = error_for(ResponseTemplate::new(503)).await;
    assert_eq!(err.class, ErrorClass::Unavailable, "empty 503: {err}");
}

#[tokio::test]
async fn a_non_json_success_body_is_unavailable_not_a_panic() {
    for body in ["<xml/>", "", "[1,2]", "null", "\u{0}\u{1}garbage"] {
        let err = error_for(ResponseTemplate::new(200).set_body_string(body)).await;
        assert_eq!(err.class, ErrorClass::Unavailable, "{body:?}");
        assert_eq!(err.code, "InvalidResponse");
    }
}

#[tokio::test]
async fn a_slow_answer_times_out_as_unavailable() {
    let server = MockServer::start().await;
    answer(
        &server,
        "DeleteVServerGroup",
        ok(json!({"RequestId": "r"})).set_delay(Duration::from_secs(3)),
    )
    .await;
    let c = client_with(&server, false, Duration::from_millis(200));
    let started = Instant::now();
    let err = c.delete_vserver_group("rsp-1").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.class, ErrorClass::Unavailable, "{err}");
    assert_eq!(err.code, "Timeout", "{err}");
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    // A port that was just free: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = RpcConfig::new("cn-hangzhou");
    config.slb_endpoint = Some(format!("http://127.0.0.1:{port}"));
    let c = RpcSlbClient::new(config, Arc::new(StaticProvider::new(creds(true))));
    let err = c.delete_vserver_group("rsp-1").await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Unavailable, "{err}");
    assert_eq!(err.code, "Transport");
}

#[tokio::test]
async fn calls_are_counted_by_action_and_result() {
    let server = MockServer::start().await;
    answer(
        &server,
        "DeleteVServerGroup",
        api_error(400, "Throttling.User"),
    )
    .await;
    answer(
        &server,
        "CreateVServerGroup",
        ok(json!({"VServerGroupId": "rsp-1"})),
    )
    .await;
    let registry = prometheus::Registry::new();
    let c = client(&server).with_metrics(SlbMetrics::register(&registry).unwrap());
    c.create_vserver_group("lb-1", "g").await.unwrap();
    c.delete_vserver_group("rsp-1").await.unwrap_err();
    c.delete_vserver_group("rsp-1").await.unwrap_err();

    let families = registry.gather();
    let count = |action: &str, result: &str| -> f64 {
        families
            .iter()
            .find(|f| f.name() == "slb_sync_slb_calls_total")
            .unwrap()
            .get_metric()
            .iter()
            .find(|m| {
                let labels: BTreeMap<_, _> = m
                    .get_label()
                    .iter()
                    .map(|l| (l.name(), l.value()))
                    .collect();
                labels["action"] == action && labels["result"] == result
            })
            .map(|m| m.get_counter().get_value())
            .unwrap_or(-1.0)
    };
    assert_eq!(count("CreateVServerGroup", "ok"), 1.0);
    assert_eq!(count("DeleteVServerGroup", "throttling"), 2.0);
    assert_eq!(
        count("DeleteVServerGroup", "ok"),
        0.0,
        "pre-registered at zero"
    );
    let histogram = families
        .iter()
        .find(|f| f.name() == "slb_sync_slb_call_duration_seconds")
        .unwrap();
    let samples: u64 = histogram
        .get_metric()
        .iter()
        .map(|m| m.get_histogram().get_sample_count())
        .sum();
    assert_eq!(samples, 3);
}
