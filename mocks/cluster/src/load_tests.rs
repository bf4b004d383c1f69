use super::*;
use crate::apps::tests::eventually;
use crate::apps::{App, AppConfig};

fn reply(status: u16, cause: Option<&str>) -> Result<Reply, ExchangeError> {
    Ok(Reply {
        status,
        pod: None,
        cause: cause.map(str::to_string),
        close: false,
        body: String::new(),
    })
}

#[test]
fn failures_are_named_by_cause() {
    assert_eq!(classify(&reply(200, None), true), None);
    assert_eq!(
        classify(&reply(503, Some("not-ready")), false),
        Some(Cause::NotReady)
    );
    assert_eq!(
        classify(&reply(503, Some("stopped")), false),
        Some(Cause::Stopped)
    );
    assert_eq!(
        classify(&reply(503, Some("no-rules")), false),
        Some(Cause::NoRules)
    );
    assert_eq!(classify(&reply(502, None), false), Some(Cause::Other));
    assert_eq!(
        classify(&Err(ExchangeError::Closed { received: 0 }), true),
        Some(Cause::Cut)
    );
    assert_eq!(
        classify(&Err(ExchangeError::Closed { received: 7 }), false),
        Some(Cause::Cut)
    );
    assert_eq!(
        classify(&Err(ExchangeError::Closed { received: 0 }), false),
        Some(Cause::Other),
        "nothing to dial"
    );
    assert_eq!(
        classify(&Err(ExchangeError::Timeout(Duration::from_secs(1))), true),
        Some(Cause::Other)
    );
}

#[tokio::test]
async fn polite_stop_is_no_cut_but_new_connections_see_stopped_and_a_kill_cuts() {
    let app = App::start(AppConfig {
        name: "web-1".into(),
        addr: "127.0.9.2:0".parse().unwrap(),
        startup_delay: Duration::ZERO,
        response_delay: Duration::ZERO,
        idle_close: Duration::from_secs(30),
    })
    .await
    .unwrap();
    let load = Load::start(LoadConfig {
        target: app.addr(),
        short_every: Some(Duration::from_millis(20)),
        keepalive_conns: 2,
        keepalive_every: Duration::from_millis(20),
        slow_conns: 0,
        slow_delay: Default::default(),
        streams: 0,
        stream_hold: Default::default(),
        seed: 1,
        timeout: Duration::from_secs(5),
    });
    eventually("steady successes", || async { load.report().ok >= 40 }).await;
    assert_eq!(load.report().failed(), 0, "{:?}", load.report().samples);
    assert!(load.report().p50 > Duration::ZERO);

    app.sigterm();
    eventually("new connections refused", || async {
        load.report()
            .failures
            .get(&Cause::Stopped)
            .copied()
            .unwrap_or(0)
            >= 3
    })
    .await;
    assert_eq!(
        load.report().failures.get(&Cause::Cut),
        None,
        "SIGTERM closes keep-alive politely"
    );

    let app2 = App::start(AppConfig {
        name: "web-2".into(),
        addr: "127.0.9.3:0".parse().unwrap(),
        startup_delay: Duration::ZERO,
        response_delay: Duration::ZERO,
        idle_close: Duration::from_secs(30),
    })
    .await
    .unwrap();
    let load2 = Load::start(LoadConfig {
        target: app2.addr(),
        short_every: None,
        keepalive_conns: 2,
        keepalive_every: Duration::from_millis(20),
        slow_conns: 0,
        slow_delay: Default::default(),
        streams: 0,
        stream_hold: Default::default(),
        seed: 1,
        timeout: Duration::from_secs(5),
    });
    eventually("keep-alive established", || async {
        load2.report().ok >= 10
    })
    .await;
    app2.kill();
    eventually("killed connections count as cut", || async {
        load2
            .report()
            .failures
            .get(&Cause::Cut)
            .copied()
            .unwrap_or(0)
            >= 1
    })
    .await;
    let total = load.stop();
    assert!(total.requests >= total.ok + 3);
}

#[tokio::test]
async fn a_long_poll_dropped_in_flight_is_a_cut_and_polls_stay_out_of_latency() {
    let app = App::start(AppConfig {
        name: "web-4".into(),
        addr: "127.0.9.4:0".parse().unwrap(),
        startup_delay: Duration::ZERO,
        response_delay: Duration::ZERO,
        idle_close: Duration::from_secs(30),
    })
    .await
    .unwrap();
    let hold = Duration::from_millis(300);
    let load = Load::start(LoadConfig {
        target: app.addr(),
        short_every: None,
        keepalive_conns: 0,
        keepalive_every: Duration::from_millis(20),
        slow_conns: 1,
        slow_delay: Delay::fixed(hold),
        streams: 0,
        stream_hold: Default::default(),
        seed: 1,
        timeout: Duration::from_secs(5),
    });
    eventually("state fetched and two polls answered", || async {
        load.report().ok >= 3
    })
    .await;
    let r = load.report();
    assert_eq!(r.failed(), 0, "{:?}", r.samples);
    assert!(
        r.p99 < hold,
        "only the state fetch counts for latency: {:?}",
        r.p99
    );
    // Every exchange on the connection after the first is a poll held `hold`.
    let polls_before = r.ok;
    eventually("a poll in flight", || async {
        app.active_connections() == 1
    })
    .await;
    tokio::time::sleep(hold / 3).await;
    app.kill();
    eventually("the dropped poll is counted", || async {
        load.report().failed() >= 1
    })
    .await;
    let r = load.stop();
    assert_eq!(
        r.failures.get(&Cause::Cut),
        Some(&1),
        "a reused connection dropped mid-poll: {:?} (after {polls_before} answers)",
        r.samples
    );
}
