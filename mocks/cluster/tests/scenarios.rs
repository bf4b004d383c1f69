//! ENI mode through [`Scenario`]: the baseline removes a deleted pod's ENI backend at
//! once. Without preStop the SLB keeps sending to the stopped pod until the removal lands
//! (`stopped`); with a preStop sleep the pod outlives that, but the removal (no weight 0,
//! no drain) cuts the keep-alive connections it still serves (`cut`).

use std::time::Duration;

use mock_cluster::baseline::BackendMode;
use mock_cluster::load::Cause;
use mock_cluster::scenario::{Policy, Scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eni_naive_sends_requests_to_stopped_pods() {
    let out = Scenario::new(BackendMode::Eni, Policy::Naive, 31, 51)
        .run()
        .await
        .unwrap();
    eprintln!(
        "naive/eni: {:?} rollout {:?} slb refused/connect_failed/cut {:?}",
        out.load, out.rollout, out.slb_refused_failed_cut
    );
    assert!(out.load.ok > 50, "{:?}", out.load);
    assert!(
        out.load.failures.get(&Cause::Stopped).copied().unwrap_or(0) > 0,
        "{:?}",
        out.load
    );
    assert_eq!(
        out.load.failures.get(&Cause::NoRules),
        None,
        "ENI bypasses kube-proxy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eni_sleep_on_the_stock_listener_still_cuts_keepalive_connections_on_removal() {
    let mut s = Scenario::new(
        BackendMode::Eni,
        Policy::Sleep {
            seconds: 2,
            drain: false,
        },
        32,
        52,
    );
    s.load.keepalive_conns = 12;
    let out = s.run().await.unwrap();
    eprintln!("sleep/eni: {:?} rollout {:?}", out.load, out.rollout);
    assert!(out.rollout > Duration::ZERO);
    let f = &out.load.failures;
    assert!(
        f.get(&Cause::Cut).copied().unwrap_or(0) > 0,
        "{:?}",
        out.load
    );
    for c in [Cause::NotReady, Cause::Stopped, Cause::NoRules] {
        assert_eq!(f.get(&c), None, "{c:?}: {:?}", out.load);
    }
}
