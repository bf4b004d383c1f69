//! Real sockets on loopback; conditions are polled with generous deadlines.

use super::*;
use crate::http::{get_once, Conn, ExchangeError};

const T: Duration = Duration::from_secs(10);

fn cfg(name: &str, startup: Duration, response: Duration) -> AppConfig {
    AppConfig {
        name: name.into(),
        addr: "127.0.9.1:0".parse().unwrap(),
        startup_delay: startup,
        response_delay: response,
        idle_close: Duration::from_secs(30),
    }
}

/// Polls `f` until it holds or the deadline passes.
pub(crate) async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn starting_app_answers_not_ready_then_serves_its_name() {
    let slow = App::start(cfg("slow", Duration::from_secs(3600), Duration::ZERO))
        .await
        .unwrap();
    let r = get_once(slow.addr(), "/", T).await.unwrap();
    assert_eq!((r.status, r.cause.as_deref()), (503, Some("not-ready")));

    let app = App::start(cfg("pod-a", Duration::from_millis(100), Duration::ZERO))
        .await
        .unwrap();
    let addr = app.addr();
    eventually("serving", || async move {
        get_once(addr, "/", T)
            .await
            .map(|r| r.status == 200)
            .unwrap_or(false)
    })
    .await;
    let mut c = Conn::connect(addr, T).await.unwrap();
    for _ in 0..3 {
        let r = c.get("/", T).await.unwrap();
        assert_eq!(
            (r.status, r.body.as_str(), r.pod.as_deref(), r.close),
            (200, "pod-a", Some("pod-a"), false)
        );
    }
    assert_eq!(c.requests, 3, "keep-alive reuses one connection");
}

#[tokio::test]
async fn sigterm_closes_keepalive_politely_finishes_in_flight_and_refuses_new() {
    let app = App::start(cfg("pod-b", Duration::ZERO, Duration::from_millis(300)))
        .await
        .unwrap();
    let addr = app.addr();
    eventually("serving", || async { app.phase() == Phase::Serving }).await;
    let mut idle = Conn::connect(addr, T).await.unwrap();
    assert_eq!(idle.get("/", T).await.unwrap().status, 200);
    let mut busy = Conn::connect(addr, T).await.unwrap();
    let in_flight = tokio::spawn(async move { busy.get("/", T).await });
    eventually("request in flight", || async {
        app.active_connections() == 2
    })
    .await;
    // Give the busy connection's request time to arrive before SIGTERM.
    tokio::time::sleep(Duration::from_millis(50)).await;
    app.sigterm();

    let r = in_flight.await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.close),
        (200, true),
        "in-flight request finished with Connection: close"
    );
    let r = idle.get("/", T).await.unwrap();
    assert_eq!(
        (r.status, r.close),
        (200, true),
        "idle keep-alive told to close"
    );
    let r = get_once(addr, "/", T).await.unwrap();
    assert_eq!((r.status, r.cause.as_deref()), (503, Some("stopped")));
    tokio::time::timeout(T, app.exited())
        .await
        .expect("process exits once connections are gone");
}

#[tokio::test]
async fn kill_drops_established_connections() {
    let app = App::start(cfg("pod-c", Duration::ZERO, Duration::from_secs(3600)))
        .await
        .unwrap();
    let addr = app.addr();
    eventually("serving", || async { app.phase() == Phase::Serving }).await;
    let mut c = Conn::connect(addr, T).await.unwrap();
    let pending = tokio::spawn(async move { c.get("/", T).await });
    eventually("request in flight", || async {
        app.active_connections() == 1
    })
    .await;
    app.sigterm();
    app.kill();
    assert!(matches!(
        pending.await.unwrap(),
        Err(ExchangeError::Closed { .. })
    ));
    tokio::time::timeout(T, app.exited()).await.unwrap();
}

#[test]
fn delay_path_asks_for_a_capped_hold() {
    let head = |target: &str| format!("GET {target} HTTP/1.1\r\nhost: lab\r\n\r\n");
    let hold = |target: &str| extra_delay(head(target).as_bytes());
    assert_eq!(
        hold(&delay_path(Duration::from_millis(250))),
        (Duration::from_millis(250), false)
    );
    assert_eq!(hold("/"), (Duration::ZERO, false));
    assert_eq!(hold("/healthz"), (Duration::ZERO, false));
    assert_eq!(
        hold("/delay/soon"),
        (Duration::ZERO, false),
        "malformed: no hold"
    );
    assert_eq!(hold("/delay/99999999999"), (MAX_EXTRA_DELAY, false));
    assert_eq!(
        hold(&stream_path(Duration::from_secs(25))),
        (Duration::from_secs(25), true)
    );
    assert_eq!(hold("/stream/99999999999"), (MAX_STREAM, true));
}

#[tokio::test]
async fn a_slow_request_in_flight_at_sigterm_is_held_to_its_end_then_closed() {
    let app = App::start(cfg("pod-d", Duration::ZERO, Duration::ZERO))
        .await
        .unwrap();
    let addr = app.addr();
    eventually("serving", || async { app.phase() == Phase::Serving }).await;
    let mut c = Conn::connect(addr, T).await.unwrap();
    let r = c.get("/", T).await.unwrap();
    assert_eq!((r.status, r.close), (200, false));
    let started = tokio::time::Instant::now();
    let hold = Duration::from_millis(400);
    let poll = tokio::spawn(async move { c.get(&delay_path(hold), T).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.sigterm();
    let r = poll.await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.close),
        (200, true),
        "finished, then Connection: close"
    );
    assert!(started.elapsed() >= hold, "held {:?}", started.elapsed());
    tokio::time::timeout(T, app.exited()).await.unwrap();

    let starting = App::start(cfg("pod-e", Duration::from_secs(3600), Duration::ZERO))
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let r = get_once(starting.addr(), &delay_path(Duration::from_secs(20)), T)
        .await
        .unwrap();
    assert_eq!(r.cause.as_deref(), Some("not-ready"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a starting app answers at once"
    );
}

#[tokio::test]
async fn sigterm_ends_a_stream_politely_and_a_kill_cuts_one_after_its_head() {
    let app = App::start(cfg("pod-s", Duration::ZERO, Duration::ZERO))
        .await
        .unwrap();
    let addr = app.addr();
    let mut held = Conn::connect(addr, T).await.unwrap();
    let t0 = tokio::time::Instant::now();
    let stream = tokio::spawn(async move {
        held.get(
            &stream_path(Duration::from_secs(60)),
            Duration::from_secs(90),
        )
        .await
    });
    eventually("stream open", || async { app.active_connections() == 1 }).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.sigterm();
    let r = stream.await.unwrap().unwrap();
    assert_eq!((r.status, r.close, r.body.as_str()), (200, true, "pod-s"));
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "ended by SIGTERM, not its hold"
    );

    let app = App::start(cfg("pod-k", Duration::ZERO, Duration::ZERO))
        .await
        .unwrap();
    let addr = app.addr();
    let stream = tokio::spawn(async move {
        get_once(
            addr,
            &stream_path(Duration::from_secs(60)),
            Duration::from_secs(90),
        )
        .await
    });
    eventually("stream open", || async { app.active_connections() == 1 }).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.kill();
    match stream.await.unwrap() {
        Err(ExchangeError::Closed { received }) => {
            assert!(
                received > 0,
                "the head came first, so the client sees a cut"
            )
        }
        other => panic!("expected a cut, got {other:?}"),
    }
}
