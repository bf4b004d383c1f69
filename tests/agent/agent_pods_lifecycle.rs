//! The pod side of the agent against mock-kube through a real `kube::Client`: finalizer,
//! confirmed-removal handshake, readiness gates, fail-open and the drain journal.

use support::pod_side;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::DeleteParams;
use kube::Api;
use pod_side::*;
use slb_sync::agent::pods::PodSide;
use slb_sync::k8s::names::{DRAINED_CONDITION, DRAIN_STARTED_AT_ANNOTATION, POD_FINALIZER};
use slb_sync::model::{BackendKey, BackendState, StoredPod};
use slb_sync::reconcile::{Clock, DrainJournal, TokioClock};

const GATE: &str = "registered.slb-sync.io/web";

async fn held_pod(h: &Harness, name: &str, gate: bool, grace: Option<i64>) {
    h.kube.put(&mk_pod(name, gate, grace)).unwrap();
    eventually("the pod finalizer is added", || {
        pod_json(h, name).is_some_and(|p| finalizers(&p).contains(&POD_FINALIZER.to_owned()))
    })
    .await;
    store_shows(h, name, |p| {
        p.metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == POD_FINALIZER))
    })
    .await;
}

#[tokio::test]
async fn finalizer_is_added_to_pods_the_managed_service_selects() {
    let h = start(Duration::from_secs(60), true).await;
    put_service_and_node(&h, true).await;
    held_pod(&h, "web-0", false, None).await;

    // A pod the Service does not select stays untouched.
    let mut other = mk_pod("api-0", false, None);
    other.metadata.labels = Some([("app".to_owned(), "api".to_owned())].into());
    h.kube.put(&other).unwrap();
    settle().await;
    assert!(finalizers(&pod_json(&h, "api-0").unwrap()).is_empty());
}

#[tokio::test]
async fn only_the_leader_writes_and_a_new_leader_catches_up() {
    let h = start(Duration::from_secs(60), false).await;
    put_service_and_node(&h, false).await;
    h.kube.put(&mk_pod("web-0", false, None)).unwrap();
    store_shows(&h, "web-0", |_| true).await;
    settle().await;
    assert!(finalizers(&pod_json(&h, "web-0").unwrap()).is_empty());
    h.leader.send(true).unwrap();
    eventually("the new leader adds the finalizer", || {
        pod_json(&h, "web-0").is_some_and(|p| finalizers(&p) == [POD_FINALIZER])
    })
    .await;
}

#[tokio::test]
async fn deleted_pod_is_marked_drained_then_released_after_its_backend_is_removed() {
    let h = start(Duration::from_secs(600), true).await;
    put_service_and_node(&h, true).await;
    held_pod(&h, "web-0", false, None).await;
    pass(
        &h,
        eni_desired(Some(BackendState::Active)),
        vec![eni_member(100)],
    );

    let pods: Api<Pod> = Api::namespaced(h.client.clone(), NS);
    pods.delete("web-0", &DeleteParams::default())
        .await
        .unwrap();
    store_shows(&h, "web-0", |p| p.metadata.deletion_timestamp.is_some()).await;

    // Weight 0, draining: the pod is held and not drained.
    pass(
        &h,
        eni_desired(Some(BackendState::Draining)),
        vec![eni_member(0)],
    );
    let key = BackendKey::Eni {
        server_ip: ip(),
        port: 8080,
    };
    h.lifecycle
        .drain_started("rsp-1", &key, jiff::Timestamp::now());
    eventually("DrainStarted is reported on the pod", || {
        event_reasons(&h, "web-0").contains(&"DrainStarted".to_owned())
    })
    .await;
    settle().await;
    let pod = pod_json(&h, "web-0").expect("still held");
    assert_eq!(condition(&pod, DRAINED_CONDITION), None);
    assert_eq!(finalizers(&pod), [POD_FINALIZER]);

    // Removed from the group: drained, then released, then gone.
    let log = record_pod(&h, "web-0").await;
    pass(&h, eni_desired(None), vec![]);
    eventually("the pod is gone", || pod_json(&h, "web-0").is_none()).await;
    let versions = with_timeout(log).await.unwrap();
    let drained_while_held = versions.iter().any(|p| {
        has_condition(&StoredPod::from(p.clone()), DRAINED_CONDITION, "True")
            && p.metadata
                .finalizers
                .as_ref()
                .is_some_and(|f| f.iter().any(|f| f == POD_FINALIZER))
    });
    assert!(
        drained_while_held,
        "drained must be set before the release: {versions:?}"
    );
    let reasons = event_reasons(&h, "web-0");
    assert!(
        reasons.contains(&"DrainCompleted".to_owned()),
        "{reasons:?}"
    );
    assert_eq!(h.metrics.finalizer_fail_open_total.get(), 0);
}

#[tokio::test]
async fn readiness_gate_opens_only_with_the_member_at_positive_weight() {
    let h = start(Duration::from_secs(60), true).await;
    put_service_and_node(&h, true).await;
    held_pod(&h, "web-0", true, None).await;

    pass(&h, eni_desired(Some(BackendState::Active)), vec![]);
    eventually("the gate is False while the member is missing", || {
        pod_json(&h, "web-0").and_then(|p| condition(&p, GATE))
            == Some(("False".into(), "BackendNotRegistered".into()))
    })
    .await;
    store_shows(&h, "web-0", |p| has_condition(p, GATE, "False")).await;

    pass(
        &h,
        eni_desired(Some(BackendState::Active)),
        vec![eni_member(0)],
    );
    settle().await;
    assert_eq!(
        condition(&pod_json(&h, "web-0").unwrap(), GATE),
        Some(("False".into(), "BackendNotRegistered".into()))
    );

    pass(
        &h,
        eni_desired(Some(BackendState::Active)),
        vec![eni_member(100)],
    );
    eventually("the gate is True", || {
        pod_json(&h, "web-0").and_then(|p| condition(&p, GATE))
            == Some(("True".into(), "BackendRegistered".into()))
    })
    .await;
    // Unchanged conditions are not written again.
    store_shows(&h, "web-0", |p| has_condition(p, GATE, "True")).await;
    let before = h.kube.request_count("patch", "pods/status");
    pass(
        &h,
        eni_desired(Some(BackendState::Active)),
        vec![eni_member(100)],
    );
    settle().await;
    assert_eq!(h.kube.request_count("patch", "pods/status"), before);
}

/// `lastTransitionTime` moves only when the gate's status changes: a write that changes
/// only the reason (here from a reason the agent does not use) keeps it.
#[tokio::test]
async fn gate_transition_time_moves_only_when_its_status_changes() {
    let h = start(Duration::from_secs(60), true).await;
    put_service_and_node(&h, true).await;
    let mut pod = mk_pod("web-0", true, None);
    let since: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    pod.status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new)
        .push(k8s_openapi::api::core::v1::PodCondition {
            type_: GATE.into(),
            status: "False".into(),
            reason: Some("WaitingForController".into()),
            last_transition_time: Some(Time(since)),
            ..Default::default()
        });
    h.kube.put(&pod).unwrap();
    eventually("the pod finalizer is added", || {
        pod_json(&h, "web-0").is_some_and(|p| finalizers(&p).contains(&POD_FINALIZER.to_owned()))
    })
    .await;
    let transition = |h: &Harness| {
        pod_json(h, "web-0").and_then(|p| {
            p["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == GATE)
                .and_then(|c| c["lastTransitionTime"].as_str().map(str::to_owned))
        })
    };

    pass(&h, eni_desired(Some(BackendState::Active)), vec![]);
    eventually("the gate's reason is the agent's", || {
        pod_json(&h, "web-0").and_then(|p| condition(&p, GATE))
            == Some(("False".into(), "BackendNotRegistered".into()))
    })
    .await;
    assert_eq!(transition(&h), Some(since.to_string()), "status unchanged");

    store_shows(&h, "web-0", |p| has_condition(p, GATE, "False")).await;
    pass(
        &h,
        eni_desired(Some(BackendState::Active)),
        vec![eni_member(100)],
    );
    eventually("the gate is True", || {
        pod_json(&h, "web-0").and_then(|p| condition(&p, GATE))
            == Some(("True".into(), "BackendRegistered".into()))
    })
    .await;
    let moved: jiff::Timestamp = transition(&h).unwrap().parse().unwrap();
    assert!(moved > since, "status changed: {moved}");
}

/// A fresh agent (a restart, a new leader) has read no group yet: the open gates of
/// serving pods stay open rather than making every pod NotReady until its first pass.
#[tokio::test]
async fn a_fresh_agent_does_not_close_open_gates() {
    let h = start(Duration::from_secs(60), true).await;
    put_service_and_node(&h, true).await;
    let mut pod = mk_pod("web-0", true, None);
    pod.status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new)
        .push(k8s_openapi::api::core::v1::PodCondition {
            type_: GATE.into(),
            status: "True".into(),
            reason: Some("BackendRegistered".into()),
            ..Default::default()
        });
    h.kube.put(&pod).unwrap();
    eventually("the pod finalizer is added", || {
        pod_json(&h, "web-0").is_some_and(|p| finalizers(&p).contains(&POD_FINALIZER.to_owned()))
    })
    .await;
    // A pass that finds the backend at weight 0 does not close it either.
    pass(
        &h,
        eni_desired(Some(BackendState::Active)),
        vec![eni_member(0)],
    );
    settle().await;
    assert_eq!(
        pod_json(&h, "web-0").and_then(|p| condition(&p, GATE)),
        Some(("True".into(), "BackendRegistered".into()))
    );
}

fn has_condition(pod: &StoredPod, condition_type: &str, status: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == condition_type && c.status == status)
        })
}

#[tokio::test]
async fn finalizer_is_released_fail_open_after_grace_plus_margin() {
    let h = start(Duration::from_secs(1), true).await;
    put_service_and_node(&h, true).await;
    held_pod(&h, "web-0", false, Some(0)).await;
    pass(
        &h,
        eni_desired(Some(BackendState::Active)),
        vec![eni_member(100)],
    );

    let pods: Api<Pod> = Api::namespaced(h.client.clone(), NS);
    pods.delete("web-0", &DeleteParams::default())
        .await
        .unwrap();
    // The SLB never confirms the removal.
    eventually("the finalizer is released fail-open", || {
        pod_json(&h, "web-0").is_none()
    })
    .await;
    assert_eq!(h.metrics.finalizer_fail_open_total.get(), 1);
    let reasons = event_reasons(&h, "web-0");
    assert!(
        reasons.contains(&"FailOpenRelease".to_owned()),
        "{reasons:?}"
    );
    assert!(
        !reasons.contains(&"DrainCompleted".to_owned()),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn drain_start_is_journaled_on_the_pod_and_restored() {
    let h = start(Duration::from_secs(60), true).await;
    put_service_and_node(&h, true).await;
    held_pod(&h, "web-0", false, None).await;
    pass(
        &h,
        eni_desired(Some(BackendState::Active)),
        vec![eni_member(100)],
    );

    let key = BackendKey::Eni {
        server_ip: ip(),
        port: 8080,
    };
    let at: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    h.lifecycle.drain_started("rsp-1", &key, at);
    h.lifecycle.drain_started("rsp-2", &key, at);
    eventually("both drain starts are on the pod", || {
        pod_json(&h, "web-0").is_some_and(|p| {
            p["metadata"]["annotations"][DRAIN_STARTED_AT_ANNOTATION]
                == r#"{"rsp-1:8080":"2026-01-01T00:00:00Z","rsp-2:8080":"2026-01-01T00:00:00Z"}"#
        })
    })
    .await;
    store_shows(&h, "web-0", |p| {
        p.metadata.annotations.as_ref().is_some_and(|a| {
            a.get(DRAIN_STARTED_AT_ANNOTATION)
                .is_some_and(|v| v.contains("rsp-2"))
        })
    })
    .await;

    let captured = Captured::default();
    h.lifecycle.restore(&captured);
    let ledger = captured.0.lock().unwrap().clone().expect("restored");
    assert_eq!(ledger.started_at("rsp-1", &key), Some(at));
    assert_eq!(ledger.started_at("rsp-2", &key), Some(at));

    h.lifecycle.drain_ended("rsp-1", &key);
    h.lifecycle.drain_ended("rsp-2", &key);
    eventually("the annotation goes with the last entry", || {
        pod_json(&h, "web-0")
            .is_some_and(|p| p["metadata"]["annotations"][DRAIN_STARTED_AT_ANNOTATION].is_null())
    })
    .await;
}

#[tokio::test]
async fn local_pod_is_drained_once_its_node_leaves_the_group() {
    use slb_sync::model::{Backend, BackendType, SlbBackend, Weight};
    let h = start(Duration::from_secs(600), true).await;
    put_service_and_node(&h, false).await;
    held_pod(&h, "web-0", false, None).await;
    let node = |weight: u32| SlbBackend {
        server_id: "i-a".into(),
        server_ip: None,
        port: 30080,
        weight: Weight::new(weight).unwrap(),
        backend_type: BackendType::Ecs,
        description: owner().to_string(),
    };
    let desired = |weight: u32, state| {
        vec![Backend::ecs(
            "i-a",
            30080,
            Weight::new(weight).unwrap(),
            state,
        )]
    };
    pass(&h, desired(1, BackendState::Active), vec![node(1)]);

    let pods: Api<Pod> = Api::namespaced(h.client.clone(), NS);
    pods.delete("web-0", &DeleteParams::default())
        .await
        .unwrap();
    store_shows(&h, "web-0", |p| p.metadata.deletion_timestamp.is_some()).await;
    // Its node's last endpoint: the node drains at weight 0 and the pod waits.
    pass(&h, desired(0, BackendState::Draining), vec![node(0)]);
    let node_key = BackendKey::Ecs {
        server_id: "i-a".into(),
        port: 30080,
    };
    h.lifecycle
        .drain_started("rsp-1", &node_key, jiff::Timestamp::now());
    eventually("the node's drain is announced on the pod", || {
        event_reasons(&h, "web-0").contains(&"DrainStarted".to_owned())
    })
    .await;
    settle().await;
    assert_eq!(
        finalizers(&pod_json(&h, "web-0").expect("held")),
        [POD_FINALIZER]
    );

    pass(&h, vec![], vec![]);
    eventually("the pod is gone", || pod_json(&h, "web-0").is_none()).await;
    assert!(event_reasons(&h, "web-0").contains(&"DrainCompleted".to_owned()));
}

/// The deadline is a timer on tokio's clock: under a paused clock the release happens
/// exactly when the margin has passed after the pod's deletionTimestamp (which the API
/// server sets to the deletion time plus the grace period).
#[tokio::test]
async fn fail_open_deadline_runs_on_tokio_time() {
    let clock = Arc::new(TokioClock::new());
    let h = start_with_clock(Duration::from_secs(60), true, clock.clone()).await;
    put_service_and_node(&h, true).await;
    held_pod(&h, "web-0", false, None).await;
    pass(
        &h,
        eni_desired(Some(BackendState::Active)),
        vec![eni_member(100)],
    );
    let deleted = delete_on_agent_clock(&h, &*clock, 30).await;

    // Margin 60 s after the deletionTimestamp, on tokio's clock.
    let deadline = clock.instant_at(deleted.checked_add(Duration::from_secs(60)).unwrap());
    released_at(&h, deadline).await;
    assert_eq!(h.metrics.finalizer_fail_open_total.get(), 1);
    // Said on the pod, so wait-drained answers `released`, not `unmanaged`.
    let pod = pod_json(&h, "web-0").unwrap();
    let drained = pod["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "slb-sync.io/drained"))
        .cloned()
        .expect("drained condition");
    assert_eq!(
        (drained["status"].as_str(), drained["reason"].as_str()),
        (Some("False"), Some("FailOpen"))
    );
    // The hold counts from the deletion (30 s grace + 60 s margin), not from the
    // deletionTimestamp (the kill time).
    let note = h
        .kube
        .list("events.k8s.io/v1", "Event", Some(NS))
        .into_iter()
        .find(|e| e["reason"] == "FailOpenRelease")
        .and_then(|e| e["note"].as_str().map(str::to_owned))
        .expect("FailOpenRelease event");
    assert!(note.contains("after 90s"), "{note}");
}

/// A second delete with a shorter grace period moves `deletionTimestamp` earlier; the
/// fail-open deadline follows it rather than keeping the first, later one.
#[tokio::test]
async fn a_shorter_second_delete_brings_the_fail_open_deadline_forward() {
    let clock = Arc::new(TokioClock::new());
    let h = start_with_clock(Duration::from_secs(60), true, clock.clone()).await;
    put_service_and_node(&h, true).await;
    held_pod(&h, "web-0", false, None).await;
    pass(
        &h,
        eni_desired(Some(BackendState::Active)),
        vec![eni_member(100)],
    );
    delete_on_agent_clock(&h, &*clock, 300).await;
    let deleted = delete_on_agent_clock(&h, &*clock, 10).await;
    released_at(
        &h,
        clock.instant_at(deleted.checked_add(Duration::from_secs(60)).unwrap()),
    )
    .await;
}

/// Marks web-0 deleted "now" on the agent's clock with `grace_secs` (mock-kube stamps real
/// wall time, which the jumps of the tokio clock leave behind) and returns the
/// `deletionTimestamp`, stamped as the API server does: deletion time plus grace period.
/// Another controller's finalizer keeps the object after ours goes, so what the agent
/// wrote on it can be read.
async fn delete_on_agent_clock(h: &Harness, clock: &dyn Clock, grace_secs: i64) -> jiff::Timestamp {
    let mut pod = api_pod(h, "web-0");
    let deleted = jiff::Timestamp::from_second(clock.now().as_second() + grace_secs).unwrap();
    pod.metadata.deletion_timestamp = Some(Time(deleted));
    pod.metadata.deletion_grace_period_seconds = Some(grace_secs);
    let finalizers = pod.metadata.finalizers.get_or_insert_with(Vec::new);
    if !finalizers.iter().any(|f| f == "example.com/keep") {
        finalizers.push("example.com/keep".into());
    }
    h.kube.put(&pod).unwrap();
    store_shows(h, "web-0", |p| {
        p.metadata.deletion_timestamp.as_ref().map(|t| t.0) == Some(deleted)
    })
    .await;
    deleted
}

/// Our finalizer holds web-0 until just before `deadline` and is released fail-open at it.
async fn released_at(h: &Harness, deadline: tokio::time::Instant) {
    jump_to(deadline - Duration::from_secs(1)).await;
    let ours = |p: &serde_json::Value| {
        p["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "slb-sync.io/drain"))
    };
    assert!(
        pod_json(h, "web-0").is_some_and(|p| ours(&p)),
        "released before the deadline"
    );
    assert_eq!(h.metrics.finalizer_fail_open_total.get(), 0);
    jump_to(deadline + Duration::from_millis(10)).await;
    eventually("the finalizer is released at the deadline", || {
        pod_json(h, "web-0").is_some_and(|p| !ours(&p))
    })
    .await;
}

/// A failed write is tried again: the drained condition write fails twice, and the pod
/// is still marked drained and released without waiting for another change.
#[tokio::test]
async fn failed_drained_write_is_retried() {
    let h = start(Duration::from_secs(600), true).await;
    put_service_and_node(&h, true).await;
    held_pod(&h, "web-0", false, None).await;
    pass(
        &h,
        eni_desired(Some(BackendState::Active)),
        vec![eni_member(100)],
    );
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), NS);
    pods.delete("web-0", &DeleteParams::default())
        .await
        .unwrap();
    store_shows(&h, "web-0", |p| p.metadata.deletion_timestamp.is_some()).await;

    h.kube.inject_fault(
        mock_kube::Fault::fail(
            "/api/v1/namespaces/shop/pods/web-0/status",
            500,
            "InternalError",
        )
        .method("PATCH")
        .times(2),
    );
    pass(&h, eni_desired(None), vec![]);
    eventually("the pod is gone", || pod_json(&h, "web-0").is_none()).await;
    assert!(h.kube.request_count("patch", "pods/status") >= 3);
    assert_eq!(h.metrics.finalizer_fail_open_total.get(), 0);
}

/// A held pod whose Service is gone has nothing left to drain: deleting it releases it
/// at once, reported drained.
#[tokio::test]
async fn pod_whose_service_is_gone_is_released_on_deletion() {
    let h = start(Duration::from_secs(600), true).await;
    put_service_and_node(&h, true).await;
    held_pod(&h, "web-0", false, None).await;
    h.kube.remove("v1", "Service", NS, "web").expect("removed");
    eventually("the store drops the Service", || {
        h.stores
            .services
            .get(&kube::runtime::reflector::ObjectRef::new("web").within(NS))
            .is_none()
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), NS);
    pods.delete("web-0", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the pod is gone", || pod_json(&h, "web-0").is_none()).await;
    assert_eq!(h.metrics.finalizer_fail_open_total.get(), 0);
}
