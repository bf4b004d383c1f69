//! Libraries the agent uses, run against the double: kube-runtime's event `Recorder`,
//! server-side apply conflicts, and kube-lease-manager's leader election.

mod common;

use std::time::Duration;

use common::{api_err, setup, WAIT};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as EventV1;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Api;
use kube_lease_manager::LeaseManagerBuilder;
use serde_json::json;
use tokio::time::timeout;

#[tokio::test]
async fn recorder_creates_then_patches_a_series() {
    let (kube, client) = setup().await;
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "slb-sync".into(),
            instance: Some("agent-0".into()),
        },
    );
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        name: Some("web".into()),
        namespace: Some("default".into()),
        ..Default::default()
    };
    let ev = Event {
        type_: EventType::Warning,
        reason: "InvalidAnnotation".into(),
        note: Some("bad value".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap();
    let events: Api<EventV1> = Api::namespaced(client, "default");
    let list = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let e = &list.items[0];
    assert_eq!(e.reason.as_deref(), Some("InvalidAnnotation"));
    assert_eq!(e.series.as_ref().map(|s| s.count), Some(2));
    assert_eq!(kube.request_count("create", "events"), 1);
    assert_eq!(kube.request_count("patch", "events"), 1);
}

#[tokio::test]
async fn apply_conflicts_between_field_managers() {
    let (_kube, client) = setup().await;
    let leases: Api<Lease> = Api::namespaced(client, "default");
    let apply = |holder: &str| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": "l"}, "spec": {"holderIdentity": holder}})
    };
    leases
        .patch("l", &PatchParams::apply("a"), &Patch::Apply(apply("a")))
        .await
        .unwrap();
    let err = leases
        .patch("l", &PatchParams::apply("b"), &Patch::Apply(apply("b")))
        .await
        .unwrap_err();
    assert_eq!(api_err(err), (409, "Conflict".to_string()));
    // Same value: shared, no conflict.
    leases
        .patch("l", &PatchParams::apply("b"), &Patch::Apply(apply("a")))
        .await
        .unwrap();
    // Force takes over.
    let out = leases
        .patch(
            "l",
            &PatchParams::apply("b").force(),
            &Patch::Apply(apply("b")),
        )
        .await
        .unwrap();
    assert_eq!(out.spec.unwrap().holder_identity.as_deref(), Some("b"));
    // Now "a" is the one that conflicts.
    let err = leases
        .patch("l", &PatchParams::apply("a"), &Patch::Apply(apply("a")))
        .await
        .unwrap_err();
    assert_eq!(api_err(err).0, 409);
}

#[tokio::test]
async fn lease_manager_elects_exactly_one_leader_and_hands_over() {
    let (kube, client) = setup().await;
    let build = |id: &str| {
        LeaseManagerBuilder::new(client.clone(), "slb-sync")
            .with_namespace("kube-system")
            .with_identity(id)
            .with_duration(5)
            .with_grace(2)
            .build()
    };
    let a = build("a").await.unwrap();
    let b = build("b").await.unwrap();
    // Both race for the free lease; exactly one wins.
    let (ra, rb) = tokio::join!(
        timeout(Duration::from_secs(2), a.changed()),
        timeout(Duration::from_secs(2), b.changed()),
    );
    let a_leads = matches!(ra, Ok(Ok(true)));
    let b_leads = matches!(rb, Ok(Ok(true)));
    assert!(a_leads ^ b_leads, "a: {ra:?}, b: {rb:?}");
    let (leader, follower, leader_id) = if a_leads {
        (&a, &b, "a")
    } else {
        (&b, &a, "b")
    };
    let lease = kube
        .get("coordination.k8s.io/v1", "Lease", "kube-system", "slb-sync")
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], leader_id);

    // The leader releases; the follower takes over.
    leader.release().await.unwrap();
    let took = timeout(WAIT, follower.changed())
        .await
        .expect("follower takes over");
    assert!(took.unwrap());
    let lease = kube
        .get("coordination.k8s.io/v1", "Lease", "kube-system", "slb-sync")
        .unwrap();
    assert_ne!(lease["spec"]["holderIdentity"], leader_id);
}

#[tokio::test]
async fn apply_without_a_finalizer_releases_it() {
    let (_kube, client) = setup().await;
    let svcs: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client, "default");
    let pp = PatchParams::apply("slb-sync").force();
    let with = json!({"apiVersion": "v1", "kind": "Service",
                      "metadata": {"name": "web", "finalizers": ["slb-sync.io/cleanup"]}});
    svcs.patch("web", &pp, &Patch::Apply(&with)).await.unwrap();
    // Someone else's finalizer stays when slb-sync stops applying its own.
    let other = json!({"metadata": {"finalizers": ["slb-sync.io/cleanup", "other.io/x"]}});
    svcs.patch("web", &PatchParams::default(), &Patch::Merge(&other))
        .await
        .unwrap();
    let without = json!({"apiVersion": "v1", "kind": "Service",
                         "metadata": {"name": "web", "finalizers": []}});
    let out = svcs
        .patch("web", &pp, &Patch::Apply(&without))
        .await
        .unwrap();
    assert_eq!(
        out.metadata.finalizers,
        Some(vec!["other.io/x".to_string()])
    );
}
