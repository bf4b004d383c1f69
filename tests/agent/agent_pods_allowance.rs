//! The kube-proxy allowance of the confirmed-removal handshake, against mock-kube: Cluster
//! and Local pods are held and reported drained only once they have been terminating for
//! the allowance (kube-proxy's sync lag), on a timer, with no other event needed; ENI
//! pods, which bypass kube-proxy, are not delayed.
//!
//! The tokio clock runs in real time and jumps over the allowance (`jump_to`): a clock
//! paused for the whole test would auto-advance while the agent waits on mock-kube's
//! sockets, by an amount that depends on the machine's load.

use support::pod_side;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use pod_side::*;
use slb_sync::k8s::names::{DRAINED_CONDITION, POD_FINALIZER};
use slb_sync::model::{Backend, BackendState, BackendType, SlbBackend, Weight};
use slb_sync::reconcile::{Clock, TokioClock};

const ALLOWANCE: Duration = Duration::from_secs(20);
const GRACE_SECS: i64 = 30;

fn cluster_service() -> Service {
    let mut svc = mk_service(false);
    if let Some(spec) = svc.spec.as_mut() {
        spec.external_traffic_policy = Some("Cluster".into());
    }
    svc
}

fn node_member(weight: u32) -> SlbBackend {
    SlbBackend {
        server_id: "i-a".into(),
        server_ip: None,
        port: 30080,
        weight: Weight::new(weight).unwrap(),
        backend_type: BackendType::Ecs,
        description: owner().to_string(),
    }
}

fn node_desired(weight: u32) -> Vec<Backend> {
    vec![Backend::ecs(
        "i-a",
        30080,
        Weight::new(weight).unwrap(),
        BackendState::Active,
    )]
}

async fn started(service: Service) -> (Harness, Arc<TokioClock>) {
    let clock = Arc::new(TokioClock::new());
    let h = start_with(Duration::from_secs(600), true, clock.clone(), ALLOWANCE).await;
    h.kube.put(&mk_node()).unwrap();
    h.kube.put(&service).unwrap();
    eventually("the stores hold the Service", || {
        h.stores
            .services
            .get(&kube::runtime::reflector::ObjectRef::new("web").within(NS))
            .is_some()
    })
    .await;
    h.kube
        .put(&mk_pod("web-0", false, Some(GRACE_SECS)))
        .unwrap();
    eventually("the pod finalizer is added", || {
        pod_json(&h, "web-0").is_some_and(|p| finalizers(&p) == [POD_FINALIZER])
    })
    .await;
    store_shows(&h, "web-0", |p| {
        p.metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == POD_FINALIZER))
    })
    .await;
    (h, clock)
}

/// Deletes the pod "now" on the agent's clock, as the API server stamps it (mock-kube
/// stamps real wall time, which a paused tokio clock leaves behind). Returns the latest
/// moment the stamp says it turned terminating (whole seconds: one second after the
/// truncated deletion time).
async fn delete_now(h: &Harness, clock: &TokioClock) -> Timestamp {
    let mut pod = api_pod(h, "web-0");
    let since = Timestamp::from_second(clock.now().as_second()).unwrap();
    let kill_at = since
        .checked_add(Duration::from_secs(GRACE_SECS as u64))
        .unwrap();
    pod.metadata.deletion_timestamp = Some(Time(kill_at));
    pod.metadata.deletion_grace_period_seconds = Some(GRACE_SECS);
    h.kube.put(&pod).unwrap();
    store_shows(h, "web-0", |p| p.metadata.deletion_timestamp.is_some()).await;
    since.checked_add(Duration::from_secs(1)).unwrap()
}

fn drained(h: &Harness) -> bool {
    pod_json(h, "web-0")
        .is_some_and(|p| condition(&p, DRAINED_CONDITION).is_some_and(|(s, _)| s == "True"))
}

#[tokio::test]
async fn cluster_pod_is_held_until_the_allowance_passes_then_drained_on_a_timer() {
    let (h, clock) = started(cluster_service()).await;
    pass(&h, node_desired(100), vec![node_member(100)]);
    let since = delete_now(&h, &clock).await;
    // Cluster mode: nothing changes on the SLB, the pass confirms the SLB side at once.
    pass(&h, node_desired(100), vec![node_member(100)]);

    let end = clock.instant_at(since.checked_add(ALLOWANCE).unwrap());
    jump_to(end - Duration::from_secs(1)).await;
    settle().await;
    let pod = pod_json(&h, "web-0").expect("held within the allowance");
    assert_eq!(finalizers(&pod), [POD_FINALIZER]);
    assert!(!drained(&h), "drained before kube-proxy's allowance ended");

    // No pass and no pod event after this point: the allowance's own timer decides.
    jump_to(end + Duration::from_millis(10)).await;
    eventually(
        "the pod is drained and released at the allowance's end",
        || pod_json(&h, "web-0").is_none(),
    )
    .await;
    assert!(event_reasons(&h, "web-0").contains(&"DrainCompleted".to_owned()));
    assert_eq!(h.metrics.finalizer_fail_open_total.get(), 0);
}

#[tokio::test]
async fn local_pod_whose_node_keeps_serving_waits_for_the_allowance() {
    let (h, clock) = started(mk_service(false)).await;
    pass(&h, node_desired(2), vec![node_member(2)]);
    let since = delete_now(&h, &clock).await;
    // Its node's weight is lowered to the one that excludes it, but only another serving
    // endpoint on the node lets that confirm; with none, the node must leave the group.
    pass(&h, node_desired(1), vec![node_member(1)]);
    settle().await;
    assert!(
        !drained(&h),
        "a node without another endpoint must leave first"
    );
    pass(&h, vec![], vec![]);

    let end = clock.instant_at(since.checked_add(ALLOWANCE).unwrap());
    jump_to(end - Duration::from_secs(1)).await;
    settle().await;
    assert!(
        pod_json(&h, "web-0").is_some() && !drained(&h),
        "the node left the SLB, but kube-proxy's allowance has not passed"
    );
    jump_to(end + Duration::from_millis(10)).await;
    eventually("the pod is released after the allowance", || {
        pod_json(&h, "web-0").is_none()
    })
    .await;
}

#[tokio::test]
async fn eni_pod_bypasses_kube_proxy_and_is_not_delayed() {
    let (h, clock) = started(mk_service(true)).await;
    pass(
        &h,
        eni_desired(Some(BackendState::Active)),
        vec![eni_member(100)],
    );
    let since = delete_now(&h, &clock).await;
    pass(&h, eni_desired(None), vec![]);
    eventually("the pod is released once its IP left the group", || {
        pod_json(&h, "web-0").is_none()
    })
    .await;
    assert!(
        clock.now() < since.checked_add(ALLOWANCE).unwrap(),
        "an ENI pod waited for kube-proxy"
    );
}
