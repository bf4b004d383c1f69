//! Deletion: immediate, held by finalizers (incl. kube-runtime's `finalizer` helper),
//! preconditions, graceful pod termination and deletecollection.

mod common;

use std::sync::Arc;

use common::{api_err, create_pod, mk_pod, setup, WAIT};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, WatchEvent,
    WatchParams,
};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event as FinalizerEvent};
use kube::{Api, ResourceExt};
use mock_kube::MockKube;
use serde_json::json;
use tokio::time::timeout;

fn event_name(ev: &WatchEvent<Pod>) -> String {
    match ev {
        WatchEvent::Added(p) => format!("ADDED {}", p.name_any()),
        WatchEvent::Modified(p) => format!(
            "MODIFIED {}{}",
            p.name_any(),
            if p.metadata.deletion_timestamp.is_some() {
                " (deleting)"
            } else {
                ""
            }
        ),
        WatchEvent::Deleted(p) => format!("DELETED {}", p.name_any()),
        other => format!("{other:?}"),
    }
}

#[tokio::test]
async fn delete_without_finalizers_removes_at_once() {
    let (_kube, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let p = create_pod(&pods, "p", &[], Some("n1")).await;
    let res = pods.delete("p", &DeleteParams::default()).await.unwrap();
    let status = res.right().expect("a Status when deleted at once");
    assert_eq!(status.details.unwrap().uid, p.uid().unwrap());
    assert!(pods.get_opt("p").await.unwrap().is_none());
    let err = pods
        .delete("p", &DeleteParams::default())
        .await
        .unwrap_err();
    assert_eq!(api_err(err).0, 404);
}

#[tokio::test]
async fn finalizers_hold_the_object_until_the_last_is_removed() {
    let (_kube, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let mut p = mk_pod("p", &[], Some("n1"));
    p.metadata.finalizers = Some(vec!["slb-sync.io/drain".into(), "other/x".into()]);
    let created = pods.create(&PostParams::default(), &p).await.unwrap();
    let rv = created.resource_version().unwrap();
    let mut stream = pods
        .watch(&WatchParams::default().disable_bookmarks(), &rv)
        .await
        .unwrap()
        .boxed();

    let held = pods
        .delete("p", &DeleteParams::default().grace_period(5))
        .await
        .unwrap()
        .left()
        .expect("the object while finalizers hold it");
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(held.metadata.deletion_grace_period_seconds, Some(5));
    assert_eq!(held.metadata.generation, Some(2));
    // A second delete changes nothing.
    let again = pods
        .delete("p", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert_eq!(again.resource_version(), held.resource_version());

    // No new finalizers while deleting.
    let add = json!({"metadata": {"finalizers": ["slb-sync.io/drain", "other/x", "new/y"]}});
    let err = pods
        .patch("p", &PatchParams::default(), &Patch::Merge(&add))
        .await
        .unwrap_err();
    assert_eq!(api_err(err).0, 422);

    let drop_other = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["other/x"]}});
    let out = pods
        .patch("p", &PatchParams::default(), &Patch::Strategic(&drop_other))
        .await
        .unwrap();
    assert_eq!(out.finalizers(), ["slb-sync.io/drain"]);
    assert!(pods.get_opt("p").await.unwrap().is_some());

    let last = json!({"metadata": {"finalizers": null}});
    let out = pods
        .patch("p", &PatchParams::default(), &Patch::Merge(&last))
        .await
        .unwrap();
    assert!(out.finalizers().is_empty());
    assert!(pods.get_opt("p").await.unwrap().is_none());

    let mut seen = Vec::new();
    for _ in 0..3 {
        let ev = timeout(WAIT, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(event_name(&ev));
    }
    assert_eq!(
        seen,
        [
            "MODIFIED p (deleting)",
            "MODIFIED p (deleting)",
            "DELETED p"
        ]
    );
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

#[tokio::test]
async fn kube_runtime_finalizer_helper_adds_and_releases() {
    let (kube, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    create_pod(&pods, "p", &[], Some("n1")).await;
    let name = "slb-sync.io/drain";
    let run = |seen: Arc<std::sync::Mutex<Vec<String>>>| {
        move |ev: FinalizerEvent<Pod>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(match ev {
                    FinalizerEvent::Apply(_) => "apply".into(),
                    FinalizerEvent::Cleanup(_) => "cleanup".into(),
                });
                Ok::<_, Never>(Action::await_change())
            }
        }
    };
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    // First pass adds the finalizer (JSON patch with `test`), second reconciles.
    let obj = Arc::new(pods.get("p").await.unwrap());
    finalizer(&pods, name, obj, run(seen.clone()))
        .await
        .unwrap();
    let obj = Arc::new(pods.get("p").await.unwrap());
    assert_eq!(obj.finalizers(), [name]);
    finalizer(&pods, name, obj, run(seen.clone()))
        .await
        .unwrap();

    pods.delete("p", &DeleteParams::default()).await.unwrap();
    let obj = Arc::new(pods.get("p").await.unwrap());
    assert!(obj.metadata.deletion_timestamp.is_some());
    finalizer(&pods, name, obj, run(seen.clone()))
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), ["apply", "cleanup"]);
    assert!(pods.get_opt("p").await.unwrap().is_none());
    assert!(kube.get("v1", "Pod", "default", "p").is_none());
}

#[tokio::test]
async fn delete_preconditions_are_checked() {
    let (_kube, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let p = create_pod(&pods, "p", &[], None).await;
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some("not-the-uid".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let err = pods.delete("p", &dp).await.unwrap_err();
    assert_eq!(api_err(err), (409, "Conflict".to_string()));
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: p.uid(),
            resource_version: p.resource_version(),
        }),
        ..Default::default()
    };
    pods.delete("p", &dp).await.unwrap();
}

#[tokio::test]
async fn graceful_pod_deletion_waits_for_kubelet_and_finalizers() {
    let kube = MockKube::builder()
        .graceful_pod_deletion(true)
        .serve()
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(kube.client().unwrap(), "default");
    let mut p = mk_pod("p", &[], Some("n1"));
    p.spec.as_mut().unwrap().termination_grace_period_seconds = Some(40);
    p.metadata.finalizers = Some(vec!["slb-sync.io/drain".into()]);
    pods.create(&PostParams::default(), &p).await.unwrap();
    let held = pods
        .delete("p", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert_eq!(held.metadata.deletion_grace_period_seconds, Some(40));

    // The finalizer goes, but the containers have not stopped yet: still Terminating.
    let release = json!({"metadata": {"finalizers": null}});
    pods.patch("p", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    assert!(pods.get_opt("p").await.unwrap().is_some());
    kube.finish_pod_termination("default", "p").unwrap();
    assert!(pods.get_opt("p").await.unwrap().is_none());

    // Unscheduled pods go at once even with graceful deletion on.
    create_pod(&pods, "u", &[], None).await;
    assert!(pods
        .delete("u", &DeleteParams::default())
        .await
        .unwrap()
        .is_right());
}

#[tokio::test]
async fn delete_collection_by_label() {
    let (_kube, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    create_pod(&pods, "a", &[("app", "web")], None).await;
    create_pod(&pods, "b", &[("app", "web")], None).await;
    create_pod(&pods, "c", &[("app", "db")], None).await;
    pods.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("app=web"),
    )
    .await
    .unwrap();
    let left: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(left, ["c"]);
}
