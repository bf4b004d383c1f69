//! Two agents on the same cluster and SLB: only the lease holder writes, and when it
//! shuts down it releases the lease and the other takes over.

use support::agent;
use support::slb_mock;

use std::time::Duration;

use agent::*;
use serde_json::json;
use slb_mock::GROUP;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_writes_and_a_released_lease_passes_to_the_follower() {
    let kube = start_kube().await;
    let slb = slb_mock::start_mock(slb_mock::seed(43, false, json!({}))).await;
    kube.put(&node(1)).unwrap();
    kube.put(&service("web", &[("vgroup-port", "rsp-int:80")], false))
        .unwrap();
    // A short lease: kube-lease-manager's followers look again only when the holder's
    // lease would expire, released or not.
    // The pod side learns whether it may write through `reconciling`.
    let mut reconciling = Vec::new();
    let mut short = |c: &mut slb_sync::agent::AgentConfig| {
        c.leader.duration_secs = 4;
        c.leader.grace_secs = 1;
        reconciling.push(c.reconciling.subscribe());
    };
    let a = start_agent_with(&kube, &slb, "agent-a", &mut short).await;
    let b = start_agent_with(&kube, &slb, "agent-b", &mut short).await;

    eventually("one node backend", WAIT, || {
        (members(&slb, GROUP).len() == 1).then_some(())
    })
    .await;
    let leader_of = |a: &Agent, b: &Agent| {
        (
            a.metric("slb_sync_leader", &[]),
            b.metric("slb_sync_leader", &[]),
        )
    };
    let (la, lb) = eventually("exactly one leader", WAIT, || {
        let l = leader_of(&a, &b);
        (l.0 + l.1 == 1.0).then_some(l)
    })
    .await;
    let (leader, follower) = if la == 1.0 { (a, b) } else { (b, a) };
    assert_eq!(lb + la, 1.0);
    assert_eq!(
        (*reconciling[0].borrow(), *reconciling[1].borrow()),
        (la == 1.0, lb == 1.0)
    );

    // Changes keep flowing to the SLB through the leader only.
    kube.put(&node(2)).unwrap();
    eventually("the second node", WAIT, || {
        (members(&slb, GROUP).len() == 2).then_some(())
    })
    .await;
    // The client counts a call once its response is read, a moment after the mock
    // applied it.
    eventually("the leader's two writes counted", WAIT, || {
        (leader.slb_writes() >= 2.0).then_some(())
    })
    .await;
    assert_eq!(follower.slb_writes(), 0.0);
    // The follower made no SLB call at all, and still serves readiness.
    assert_eq!(follower.metric("slb_sync_slb_calls_total", &[]), 0.0);
    let ready = reqwest::get(format!("http://{}/readyz", follower.addr))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    // The leader shuts down and releases the lease: the follower leads well before the
    // 15 s lease would have expired, and writes from then on.
    let stopped = tokio::time::Instant::now();
    leader.stop().await;
    eventually("the follower leading", Duration::from_secs(10), || {
        (follower.metric("slb_sync_leader", &[]) == 1.0).then_some(())
    })
    .await;
    assert!(
        stopped.elapsed() < Duration::from_secs(14),
        "{:?}",
        stopped.elapsed()
    );
    kube.put(&node(3)).unwrap();
    eventually("the third node", WAIT, || {
        (members(&slb, GROUP).len() == 3).then_some(())
    })
    .await;
    // Counted once the response is read, a moment after the mock applied it.
    eventually("the new leader's write counted", WAIT, || {
        (follower.slb_writes() >= 1.0).then_some(())
    })
    .await;
    follower.stop().await;
}
