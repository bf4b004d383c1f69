use std::time::Duration;

use super::*;
use crate::apps::tests::eventually;
use crate::apps::{App, AppConfig};
use crate::delay::rng_for;
use crate::http::get_once;

const T: Duration = Duration::from_secs(10);

fn ep(addr: &str, node: &str, ready: bool, serving: bool, terminating: bool) -> Endpoint {
    Endpoint {
        addr: addr.parse().unwrap(),
        node: node.into(),
        ready,
        serving,
        terminating,
    }
}

#[test]
fn rules_follow_traffic_policy_and_terminating_fallback() {
    let a = ep("127.0.1.2:80", "n1", true, true, false);
    let b = ep("127.0.2.2:80", "n2", true, true, false);
    let t = ep("127.0.1.3:80", "n1", false, true, true);
    let gone = ep("127.0.1.4:80", "n1", false, false, true);
    let view = vec![a.clone(), b.clone(), t.clone(), gone.clone()];
    assert_eq!(
        targets(&view, "n1", TrafficPolicy::Cluster),
        vec![a.addr, b.addr]
    );
    assert_eq!(targets(&view, "n1", TrafficPolicy::Local), vec![a.addr]);
    let draining = vec![b.clone(), t.clone(), gone.clone()];
    assert_eq!(
        targets(&draining, "n1", TrafficPolicy::Local),
        vec![t.addr],
        "serving+terminating fallback"
    );
    assert!(
        targets(&[b.clone(), gone], "n1", TrafficPolicy::Local).is_empty(),
        "no rules"
    );
    assert_eq!(
        targets(&[t], "n1", TrafficPolicy::Cluster),
        Vec::<SocketAddr>::new(),
        "Cluster: ready only"
    );
}

#[tokio::test]
async fn forwards_by_lagging_view_and_names_no_rules() {
    let app = App::start(AppConfig {
        name: "web-1".into(),
        addr: "127.0.1.2:0".parse().unwrap(),
        startup_delay: Duration::ZERO,
        response_delay: Duration::ZERO,
        idle_close: Duration::from_secs(30),
    })
    .await
    .unwrap();
    let (tx, feed) = watch::channel(Arc::new(Vec::new()));
    let proxy = KubeProxy::start(
        ProxyConfig {
            node: "n1".into(),
            addr: "127.0.1.1:0".parse().unwrap(),
            policy: TrafficPolicy::Local,
            lag: Delay::fixed(Duration::from_millis(100)),
        },
        feed,
        rng_for(1, "proxy"),
    )
    .await
    .unwrap();
    let at = proxy.addr();
    let r = get_once(at, "/", T).await.unwrap();
    assert_eq!(r.cause.as_deref(), Some("no-rules"));

    tx.send_replace(Arc::new(vec![Endpoint {
        addr: app.addr(),
        node: "n1".into(),
        ready: true,
        serving: true,
        terminating: false,
    }]));
    eventually("proxy applies the endpoint", || async {
        !proxy.view().is_empty()
    })
    .await;
    let r = get_once(at, "/", T).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "web-1"));

    // The endpoint's pod is gone but the rule is still there: the connection is refused.
    let gone = app.addr();
    drop(app);
    tx.send_replace(Arc::new(vec![Endpoint {
        addr: gone,
        node: "n1".into(),
        ready: true,
        serving: true,
        terminating: false,
    }]));
    eventually("refused by a stopped pod", || async {
        get_once(at, "/", T)
            .await
            .map(|r| r.cause.as_deref() == Some("stopped"))
            .unwrap_or(false)
    })
    .await;

    // Only another node's endpoint: Local has no rule here.
    tx.send_replace(Arc::new(vec![Endpoint {
        addr: gone,
        node: "n2".into(),
        ready: true,
        serving: true,
        terminating: false,
    }]));
    eventually("no rules", || async {
        get_once(at, "/", T)
            .await
            .map(|r| r.cause.as_deref() == Some("no-rules"))
            .unwrap_or(false)
    })
    .await;
    assert!(proxy.counters.no_rules.load(Ordering::Relaxed) >= 2);
}
