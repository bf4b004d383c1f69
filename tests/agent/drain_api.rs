//! The agent's HTTP server: drain API long-polls (under tokio's paused clock), input
//! errors, health, readiness and metrics; plus a real socket with graceful shutdown.

use support::drain_fixture;

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use drain_fixture::{fixture, mk_pod, Fixture, Phase};
use kube::runtime::watcher;
use serde_json::{json, Value};
use slb_sync::http::{HttpServer, MAX_LONG_POLL};
use tokio::time::Instant;
use tower::ServiceExt;

async fn get(app: Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = app
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

async fn get_json(app: Router, uri: &str) -> (StatusCode, Value) {
    let (status, headers, body) = get(app, uri).await;
    assert_eq!(
        headers.get(header::CONTENT_TYPE).unwrap(),
        "application/json",
        "{body}"
    );
    (status, serde_json::from_str(&body).unwrap())
}

fn answer(state: &str) -> Value {
    json!({ "namespace": "shop", "pod": "web-0", "state": state })
}

#[tokio::test(start_paused = true)]
async fn answers_each_state_at_once_without_timeout() {
    let mut fx = fixture();
    fx.cluster.list(vec![
        mk_pod("web-0", Phase::Active),
        mk_pod("web-1", Phase::Draining),
        mk_pod("web-2", Phase::Drained),
        mk_pod("web-3", Phase::Unheld),
    ]);
    let start = Instant::now();
    for (pod, state) in [
        ("web-0", "active"),
        ("web-1", "draining"),
        ("web-2", "drained"),
        ("web-3", "unmanaged"),
        ("gone-4", "unmanaged"),
    ] {
        let (status, body) = get_json(fx.app(), &format!("/v1/drain/shop/{pod}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({ "namespace": "shop", "pod": pod, "state": state })
        );
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn long_poll_returns_as_soon_as_the_pod_is_drained() {
    let mut fx = fixture();
    fx.cluster.list(vec![mk_pod("web-0", Phase::Draining)]);
    let start = Instant::now();
    let poll = tokio::spawn(get_json(fx.app(), "/v1/drain/shop/web-0?timeout=60"));
    fx.until_waiting(1).await;

    // An unrelated change wakes the poll but does not end it.
    fx.cluster
        .apply(watcher::Event::Apply(mk_pod("web-1", Phase::Active)));
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(!poll.is_finished());

    // The agent sets the condition, then releases the finalizer.
    let mut drained = mk_pod("web-0", Phase::Draining);
    drained.status = mk_pod("web-0", Phase::Drained).status;
    fx.cluster.apply(watcher::Event::Apply(drained));
    let (status, body) = poll.await.unwrap();
    assert_eq!((status, body), (StatusCode::OK, answer("drained")));
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    assert_eq!(fx.gauge("slb_sync_drain_api_waiting"), 0.0);
}

#[tokio::test(start_paused = true)]
async fn long_poll_answers_the_current_state_when_the_timeout_passes() {
    let mut fx = fixture();
    fx.cluster.list(vec![mk_pod("web-0", Phase::Active)]);
    let start = Instant::now();
    let poll = tokio::spawn(get_json(fx.app(), "/v1/drain/shop/web-0?timeout=2.5"));
    fx.until_waiting(1).await;
    // Deletion starts: not final, keep waiting.
    fx.cluster
        .apply(watcher::Event::Apply(mk_pod("web-0", Phase::Draining)));
    let (status, body) = poll.await.unwrap();
    assert_eq!((status, body), (StatusCode::OK, answer("draining")));
    assert_eq!(start.elapsed(), Duration::from_millis(2500));
}

#[tokio::test(start_paused = true)]
async fn a_pod_removed_while_polling_is_unmanaged() {
    let mut fx = fixture();
    fx.cluster.list(vec![mk_pod("web-0", Phase::Draining)]);
    let start = Instant::now();
    let poll = tokio::spawn(get_json(fx.app(), "/v1/drain/shop/web-0?timeout=60"));
    fx.until_waiting(1).await;
    fx.cluster
        .apply(watcher::Event::Delete(mk_pod("web-0", Phase::Draining)));
    assert_eq!(poll.await.unwrap(), (StatusCode::OK, answer("unmanaged")));
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn long_timeouts_are_capped() {
    let mut fx = fixture();
    fx.cluster.list(vec![mk_pod("web-0", Phase::Draining)]);
    let start = Instant::now();
    let (status, body) = get_json(fx.app(), "/v1/drain/shop/web-0?timeout=86400").await;
    assert_eq!((status, body), (StatusCode::OK, answer("draining")));
    assert_eq!(start.elapsed(), MAX_LONG_POLL);
}

#[tokio::test(start_paused = true)]
async fn before_the_first_pod_list_the_answer_waits_then_is_503() {
    let mut fx = fixture();
    let start = Instant::now();
    let (status, headers, body) = get(fx.app(), "/v1/drain/shop/web-0?timeout=5").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers.get(header::RETRY_AFTER).unwrap(), "1");
    assert!(body.contains("has not listed"), "{body}");
    assert_eq!(start.elapsed(), Duration::from_secs(5));

    // A poll waiting when the list arrives answers from it.
    let poll = tokio::spawn(get_json(fx.app(), "/v1/drain/shop/web-0?timeout=60"));
    fx.until_waiting(1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    fx.cluster.list(vec![mk_pod("web-0", Phase::Drained)]);
    assert_eq!(poll.await.unwrap(), (StatusCode::OK, answer("drained")));
    assert_eq!(start.elapsed(), Duration::from_secs(6));
}

#[tokio::test(start_paused = true)]
async fn shutdown_answers_waiting_polls_at_once() {
    let mut fx = fixture();
    fx.cluster.list(vec![mk_pod("web-0", Phase::Draining)]);
    let start = Instant::now();
    let polls: Vec<_> = (0..3)
        .map(|_| tokio::spawn(get_json(fx.app(), "/v1/drain/shop/web-0?timeout=60")))
        .collect();
    fx.until_waiting(3).await;
    fx.state.begin_shutdown();
    for poll in polls {
        assert_eq!(poll.await.unwrap(), (StatusCode::OK, answer("draining")));
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test]
async fn bad_paths_are_404_and_bad_input_is_400_naming_it() {
    let mut fx = fixture();
    fx.cluster.list(vec![mk_pod("web-0", Phase::Active)]);
    for (uri, status, needle) in [
        ("/v1/drain/shop", StatusCode::NOT_FOUND, "/v1/drain/shop`"),
        (
            "/v1/drain/shop/web-0/x",
            StatusCode::NOT_FOUND,
            "/v1/drain/<namespace>/<pod>",
        ),
        ("/v1/drain", StatusCode::NOT_FOUND, "no such path"),
        ("/nope", StatusCode::NOT_FOUND, "/nope"),
        (
            "/v1/drain/shop/web-0?timeout=soon",
            StatusCode::BAD_REQUEST,
            "timeout=`soon`",
        ),
        (
            "/v1/drain/shop/web-0?timeout=-5",
            StatusCode::BAD_REQUEST,
            "timeout=`-5`",
        ),
        (
            "/v1/drain/shop/web-0?wait=5",
            StatusCode::BAD_REQUEST,
            "`wait`",
        ),
        (
            "/v1/drain/Shop/web-0",
            StatusCode::BAD_REQUEST,
            "`Shop` is not a namespace",
        ),
        (
            "/v1/drain/shop/web_0",
            StatusCode::BAD_REQUEST,
            "`web_0` is not a pod name",
        ),
    ] {
        let (got, body) = get_json(fx.app(), uri).await;
        assert_eq!(got, status, "{uri}: {body}");
        let message = body["error"].as_str().unwrap();
        assert!(message.contains(needle), "{uri}: {message}");
    }
    let text = metrics_text(&fx).await;
    assert!(
        text.contains("slb_sync_drain_api_requests_total{result=\"bad_request\"} 5"),
        "{text}"
    );
}

async fn metrics_text(fx: &Fixture) -> String {
    let (status, headers, body) = get(fx.app(), "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers.get(header::CONTENT_TYPE).unwrap(),
        prometheus::TEXT_FORMAT
    );
    body
}

#[tokio::test]
async fn healthz_is_alive_and_readyz_follows_the_synced_flag() {
    let fx = fixture();
    assert_eq!(get(fx.app(), "/healthz").await.0, StatusCode::OK);
    let (status, _, body) = get(fx.app(), "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("not synced"), "{body}");
    fx.ready.set(true);
    assert_eq!(get(fx.app(), "/readyz").await.0, StatusCode::OK);
    fx.ready.set(false);
    assert_eq!(
        get(fx.app(), "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn metrics_exposes_every_registered_metric() {
    let mut fx = fixture();
    let other = prometheus::IntCounterVec::new(
        prometheus::Opts::new("slb_sync_test_steps_total", "steps"),
        &["action"],
    )
    .unwrap();
    fx.registry.register(Box::new(other.clone())).unwrap();
    other.with_label_values(&["remove"]).inc_by(3);
    fx.cluster.list(vec![mk_pod("web-0", Phase::Drained)]);
    get_json(fx.app(), "/v1/drain/shop/web-0").await;

    let text = metrics_text(&fx).await;
    for line in [
        "# TYPE slb_sync_test_steps_total counter",
        "slb_sync_test_steps_total{action=\"remove\"} 3",
        "# TYPE slb_sync_drain_api_requests_total counter",
        "slb_sync_drain_api_requests_total{result=\"drained\"} 1",
        "slb_sync_drain_api_requests_total{result=\"draining\"} 0",
        "slb_sync_drain_api_requests_total{result=\"not_synced\"} 0",
        "# TYPE slb_sync_drain_api_waiting gauge",
        "slb_sync_drain_api_waiting 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

/// Over a real loopback socket: serving, then a graceful shutdown that answers a waiting
/// long-poll instead of holding the shutdown for its whole timeout.
#[tokio::test]
async fn serves_on_loopback_and_shuts_down_gracefully() {
    let mut fx = fixture();
    fx.cluster.list(vec![mk_pod("web-0", Phase::Draining)]);
    let server = HttpServer::bind("127.0.0.1:0".parse().unwrap(), fx.state.clone())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let health = client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);

    let poll = tokio::spawn(
        client
            .get(format!("http://{addr}/v1/drain/shop/web-0?timeout=300"))
            .send(),
    );
    fx.until_waiting(1).await;
    let started = std::time::Instant::now();
    stop.send(()).unwrap();
    let answer_: Value = poll.await.unwrap().unwrap().json().await.unwrap();
    assert_eq!(answer_, answer("draining"));
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("server did not stop")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn binding_a_taken_address_names_the_flag() {
    let fx = fixture();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = HttpServer::bind(addr, fx.state.clone())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains(&addr.to_string()) && err.contains("--http-addr"),
        "{err}"
    );
}
