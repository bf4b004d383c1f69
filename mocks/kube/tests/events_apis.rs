//! One Event, two APIs: what kube-runtime's `Recorder` writes through events.k8s.io/v1 is
//! what `kubectl get events` and `kubectl describe` read through core/v1, and back.

mod common;

use common::{api_err, setup, WAIT};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Event as CoreEvent, ObjectReference};
use k8s_openapi::api::events::v1::Event as EventV1;
use kube::api::{ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Api;
use serde_json::json;

fn service_ref() -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        name: Some("web".into()),
        namespace: Some("default".into()),
        uid: Some("0b5c-web".into()),
        ..Default::default()
    }
}

fn bad_annotation() -> Event {
    Event {
        type_: EventType::Warning,
        reason: "BadAnnotation".into(),
        note: Some("connection-drain-timeout=\"5\" is invalid".into()),
        action: "Reconcile".into(),
        secondary: None,
    }
}

#[tokio::test]
async fn recorder_events_are_read_through_core_v1_as_describe_searches_them() {
    let (_kube, client) = setup().await;
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "slb-sync".into(),
            instance: Some("slb-sync-0".into()),
        },
    );
    recorder
        .publish(&bad_annotation(), &service_ref())
        .await
        .unwrap();
    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    // The field selector `kubectl describe service web` sends.
    let described = core
        .list(&ListParams::default().fields(
            "involvedObject.name=web,involvedObject.namespace=default,involvedObject.kind=Service,involvedObject.uid=0b5c-web",
        ))
        .await
        .unwrap();
    assert_eq!(described.items.len(), 1);
    let e = &described.items[0];
    assert_eq!(
        e.message.as_deref(),
        Some("connection-drain-timeout=\"5\" is invalid")
    );
    assert_eq!(e.reporting_component.as_deref(), Some("slb-sync"));
    assert_eq!(e.reporting_instance.as_deref(), Some("slb-sync-0"));
    assert_eq!(e.involved_object.name.as_deref(), Some("web"));
    assert!(e.event_time.is_some());
    // operations.md's `kubectl get events -A --field-selector reportingComponent=slb-sync`.
    let all: Api<CoreEvent> = Api::all(client.clone());
    for selector in [
        "reportingComponent=slb-sync",
        "source=slb-sync",
        "type=Warning",
    ] {
        let found = all
            .list(&ListParams::default().fields(selector))
            .await
            .unwrap();
        assert_eq!(found.items.len(), 1, "{selector}");
    }
    let none = all
        .list(&ListParams::default().fields("reportingComponent=kubelet"))
        .await
        .unwrap();
    assert!(none.items.is_empty());

    // A repeat becomes a series (a patch through events.k8s.io), seen by core watchers.
    let mut watch = core
        .watch(
            &WatchParams::default(),
            &described.metadata.resource_version.unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    recorder
        .publish(&bad_annotation(), &service_ref())
        .await
        .unwrap();
    let next = tokio::time::timeout(WAIT, watch.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let WatchEvent::Modified(modified) = next else {
        panic!("expected MODIFIED, got {next:?}");
    };
    assert_eq!(modified.series.and_then(|s| s.count), Some(2));
}

#[tokio::test]
async fn core_writes_are_read_through_events_k8s_io_and_patches_cross_over() {
    let (kube, client) = setup().await;
    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let created = core
        .create(
            &PostParams::default(),
            &CoreEvent {
                metadata: kube::api::ObjectMeta {
                    name: Some("web.17".into()),
                    ..Default::default()
                },
                involved_object: service_ref(),
                message: Some("Drained".into()),
                reason: Some("DrainCompleted".into()),
                source: Some(k8s_openapi::api::core::v1::EventSource {
                    component: Some("kubelet".into()),
                    host: None,
                }),
                count: Some(3),
                type_: Some("Normal".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let v1: Api<EventV1> = Api::namespaced(client.clone(), "default");
    let seen = v1.get("web.17").await.unwrap();
    assert_eq!(seen.metadata.uid, created.metadata.uid);
    assert_eq!(
        seen.metadata.resource_version,
        created.metadata.resource_version
    );
    assert_eq!(seen.note.as_deref(), Some("Drained"));
    assert_eq!(
        seen.regarding.as_ref().unwrap().name.as_deref(),
        Some("web")
    );
    assert_eq!(seen.deprecated_count, Some(3));
    assert_eq!(
        seen.deprecated_source
            .as_ref()
            .unwrap()
            .component
            .as_deref(),
        Some("kubelet")
    );
    let by_regarding = v1
        .list(&ListParams::default().fields("regarding.name=web,regarding.kind=Service"))
        .await
        .unwrap();
    assert_eq!(by_regarding.items.len(), 1);
    let bad = v1
        .list(&ListParams::default().fields("involvedObject.name=web"))
        .await
        .unwrap_err();
    assert_eq!(api_err(bad).0, 400);

    // A merge patch in events.k8s.io's field names changes what core/v1 shows.
    v1.patch(
        "web.17",
        &PatchParams::default(),
        &Patch::Merge(json!({"note": "Drained again", "deprecatedCount": 4})),
    )
    .await
    .unwrap();
    let after = core.get("web.17").await.unwrap();
    assert_eq!(after.message.as_deref(), Some("Drained again"));
    assert_eq!(after.count, Some(4));
    assert_eq!(
        kube.get("events.k8s.io/v1", "Event", "default", "web.17")
            .unwrap()["note"],
        "Drained again"
    );
    // Deleting through one API removes it from both.
    v1.delete("web.17", &Default::default()).await.unwrap();
    assert!(core
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
    let watched: Vec<_> = v1
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap()
        .collect()
        .await;
    assert!(watched.is_empty(), "{watched:?}");
}
